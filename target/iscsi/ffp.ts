// Full feature phase (RFC 7143 4.2): commands through the CmdSN window, Data-Out and R2T,
// Data-In and status, NOP, Text, Logout, SNACK and Reject. Task management is in tmf.ts.
import type { Connection } from './connection';
import { encodeFixedSense, Sense, SenseCode, SenseKey, Status } from '../scsi/sense';
import { TaskAttribute, type ScsiCommand, type ScsiResponse } from '../scsi/types';
import {
  DataOut, decodeLun, encodeBhs, encodeLun, InitiatorPdu, LogoutRequest, NopOut, Opcode, Pdu, PduError, RejectReason, RESERVED_TAG,
  ScsiCommandPdu, SnackRequest, TaskMgmtRequest, TextRequest,
} from './pdu';
import { PhaseHandler } from './phase';
import { immediateTasksMax, Session } from './session';
import { responsePdus, Task } from './task';
import { handleTaskManagement } from './tmf';
import { handleText, TextExchange } from './discovery';

/** Largest write a task buffers (Expected Data Transfer Length); larger ones get CHECK CONDITION. */
export const taskWriteBytesMax = 16 * 1024 * 1024;
/** R2Ts outstanding per task, whatever MaxOutstandingR2T says. */
export const r2tPerTaskMax = 16;
/** ITTs of aborted or refused tasks remembered so their late Data-Out is dropped quietly. */
export const endedTagsMax = 256;
/** Ping data echoed in a NOP-In is cut to this (and to the initiator's MaxRecvDataSegmentLength). */
export const nopEchoBytesMax = 65536;

const EMPTY = Buffer.alloc(0);

/** SPC-4 Annex D conditions that only the transport reports (ABORTED COMMAND, 4Bh: data phase). */
export const TransportSense = Object.freeze({
  DATA_PHASE_ERROR: Object.freeze({ key: SenseKey.ABORTED_COMMAND, asc: 0x4b, ascq: 0x00, name: 'DATA_PHASE_ERROR' }),
  DATA_OFFSET_ERROR: Object.freeze({ key: SenseKey.ABORTED_COMMAND, asc: 0x4b, ascq: 0x05, name: 'DATA_OFFSET_ERROR' }),
  PROTOCOL_SERVICE_CRC_ERROR: Object.freeze({ key: SenseKey.ABORTED_COMMAND, asc: 0x47, ascq: 0x05, name: 'PROTOCOL_SERVICE_CRC_ERROR' }),
});

/** RFC 7143 11.3.1.2 ATTR: 0 untagged, 1 simple, 2 ordered, 3 head of queue, 4 ACA. */
const ATTRIBUTES: Readonly<Record<number, TaskAttribute>> = Object.freeze({
  0: TaskAttribute.Simple, 1: TaskAttribute.Simple, 2: TaskAttribute.Ordered, 3: TaskAttribute.HeadOfQueue, 4: TaskAttribute.Aca,
});

type Ordered = ScsiCommandPdu | TaskMgmtRequest | TextRequest | LogoutRequest | NopOut;

export class FullFeaturePhase extends PhaseHandler {
  /** Non-immediate tasks in CmdSN order: they reach the device in this order. */
  private readonly queue: Task[] = [];
  private readonly endedTags = new Set<number>();
  private nextTtt = 1;
  textExchange: TextExchange | undefined;
  loggingOut = false;

  constructor(conn: Connection, readonly session: Session) {
    super(conn);
    conn.onClose(() => this.connectionClosed());
  }

  get device() {
    return this.session.target!.device;
  }

  // ---- refusals and Reject (RFC 7143 11.17)

  protected refuse(bhs: Buffer | undefined, why: string, error?: PduError): void {
    this.reject(bhs ?? Buffer.alloc(48), error?.reason ?? RejectReason.ProtocolError, why);
    // RFC 7143 7.8: a non-data PDU with a digest error is discarded and the initiator retries;
    // a lost Data-Out cannot be asked for again at ERL0, so its task ends with CHECK CONDITION.
    if (error?.reason === RejectReason.DataDigestError && bhs !== undefined && (bhs[0] & 0x3f) === Opcode.DataOut) {
      const task = this.session.tasks.get(bhs.readUInt32BE(16));
      if (task !== undefined && task.owner === this) this.failData(task, TransportSense.PROTOCOL_SERVICE_CRC_ERROR);
    }
  }

  reject(bhs: Buffer, reason: RejectReason, why: string): void {
    this.conn.log.debug({ reason, why }, 'Reject');
    const w = this.session.window();
    this.conn.send([{
      opcode: Opcode.Reject, immediate: false, final: true, reason, itt: RESERVED_TAG, statSn: this.conn.takeStatSn(), ...w,
      dataSn: 0, ahs: EMPTY, data: bhs.subarray(0, 48),
    }]);
  }

  private rejectPdu(p: InitiatorPdu, reason: RejectReason, why: string): void {
    this.reject(headerOf(p), reason, why);
  }

  /**
   * A Data-Out that breaks the burst rules (DataSN, Buffer Offset, TTT, length): Reject it, and
   * end the task with CHECK CONDITION. The connection stays up: ERL0 has no within-command
   * recovery, but one bad task need not cost the session (libiscsi iSCSIdatasn relies on it).
   */
  private dataError(p: DataOut, why: string, task?: Task): void {
    this.rejectPdu(p, RejectReason.ProtocolError, why);
    if (task === undefined) return;
    this.failData(task, why.startsWith('Buffer Offset') ? TransportSense.DATA_OFFSET_ERROR : TransportSense.DATA_PHASE_ERROR);
  }

  /** Ends a task still gathering data with CHECK CONDITION; its later Data-Out is dropped. */
  private failData(task: Task, sense: SenseCode): void {
    if (task.state !== 'data') return;
    this.rememberEnded(task.itt);
    task.r2ts.clear();
    task.unsolicitedOpen = false;
    task.refusal = sense;
    this.ready(task);
  }

  override snack(p: SnackRequest): void {
    // RFC 7143 11.16: SNACK needs ErrorRecoveryLevel > 0.
    this.rejectPdu(p, RejectReason.ProtocolError, 'SNACK at ErrorRecoveryLevel 0');
  }

  private order(p: Ordered, run: (p: Ordered) => void): void {
    const s = this.session as unknown as Session<Ordered>;
    if (this.loggingOut) return;
    if (!s.order(p, run)) this.conn.log.debug({ cmdSn: p.cmdSn, exp: this.session.expCmdSn }, 'CmdSN outside the window: dropped');
  }

  // ---- SCSI commands

  override scsiCommand(p: ScsiCommandPdu): void {
    this.order(p, (q) => this.startCommand(q as ScsiCommandPdu));
  }

  private startCommand(p: ScsiCommandPdu): void {
    const s = this.session;
    if (s.kind !== 'Normal') return this.rejectPdu(p, RejectReason.ProtocolError, 'SCSI command in a discovery session');
    if (p.immediate && s.immediateRunning >= immediateTasksMax) {
      return this.rejectPdu(p, RejectReason.ImmediateCommandReject, 'too many immediate commands');
    }
    if (s.tasks.has(p.itt)) return this.rejectPdu(p, RejectReason.TaskInProgress, `ITT 0x${p.itt.toString(16)} is in use`);
    const cdb = cdbOf(p);
    if (cdb === undefined) return this.rejectPdu(p, RejectReason.InvalidPduField, 'malformed extended CDB AHS');
    const prm = s.params;
    if (p.data.length > 0) {
      // RFC 7143 4.2.5.1 / 13.11: immediate data only for writes, with ImmediateData=Yes, within FirstBurstLength.
      if (!p.write) return this.rejectPdu(p, RejectReason.ProtocolError, 'data with a command that is not a write');
      if (!prm.immediateData) return this.rejectPdu(p, RejectReason.ProtocolError, 'immediate data with ImmediateData=No');
      if (p.data.length > p.expectedDataTransferLength || p.data.length > prm.firstBurstLength) {
        return this.rejectPdu(p, RejectReason.ProtocolError, 'immediate data beyond EDTL or FirstBurstLength');
      }
    }
    if (p.write && !p.final && prm.initialR2T) return this.rejectPdu(p, RejectReason.ProtocolError, 'unsolicited Data-Out with InitialR2T=Yes');
    const task = this.newTask(p, cdb);
    s.tasks.set(task.itt, task);
    if (task.immediate) s.immediateRunning++;
    else {
      s.activeTasks++;
      this.queue.push(task);
    }
    if (task.state === 'data') this.startWrite(task, p);
    else this.ready(task);
  }

  private newTask(p: ScsiCommandPdu, cdb: Buffer): Task {
    const edtl = p.expectedDataTransferLength;
    const write = p.write && edtl > 0;
    return {
      itt: p.itt, cmdSn: p.cmdSn, immediate: p.immediate, lun: decodeLun(p.lun), lunField: p.lun, cdb,
      attr: p.attr, read: p.read, write: p.write, expectedLength: edtl, owner: this, state: write ? 'data' : 'ready', aborted: false,
      buffer: null, received: 0, unsolicitedOpen: write && !p.final,
      unsolicitedLimit: Math.min(this.session.params.firstBurstLength, edtl), unsolicitedDataSn: 0,
      r2ts: new Map(), nextR2tOffset: 0, r2tSn: 0, refusal: undefined, execution: undefined, abortController: undefined,
    };
  }

  private startWrite(task: Task, p: ScsiCommandPdu): void {
    const edtl = task.expectedLength;
    if (edtl > taskWriteBytesMax) {
      // Bounded memory: the data is not solicited, only unsolicited data is swallowed.
      task.refusal = Sense.INVALID_FIELD_IN_CDB;
    } else if (edtl > 0) {
      if (p.data.length === edtl) task.buffer = p.data; // the whole write came as immediate data: no copy
      else {
        task.buffer = Buffer.allocUnsafe(edtl);
        p.data.copy(task.buffer, 0);
      }
    }
    task.received = p.data.length;
    task.nextR2tOffset = task.received;
    this.advanceWrite(task);
  }

  /** After data arrived: solicit more, or hand the task on when all of it is here. */
  private advanceWrite(task: Task): void {
    if (task.state !== 'data' || task.unsolicitedOpen) return;
    if (task.refusal !== undefined || task.received >= task.expectedLength) {
      if (task.r2ts.size === 0) this.ready(task);
      return;
    }
    this.issueR2ts(task);
  }

  private issueR2ts(task: Task): void {
    const prm = this.session.params;
    const outstandingMax = Math.min(prm.maxOutstandingR2T, r2tPerTaskMax);
    const pdus: Pdu[] = [];
    while (task.r2ts.size < outstandingMax && task.nextR2tOffset < task.expectedLength) {
      const length = Math.min(prm.maxBurstLength, task.expectedLength - task.nextR2tOffset);
      const ttt = this.allocTtt();
      task.r2ts.set(ttt, { ttt, offset: task.nextR2tOffset, length, received: 0, nextDataSn: 0 });
      pdus.push({
        opcode: Opcode.R2t, immediate: false, final: true, lun: task.lunField, itt: task.itt, ttt, statSn: this.conn.peekStatSn(),
        ...this.session.window(), r2tSn: task.r2tSn++, bufferOffset: task.nextR2tOffset, desiredDataTransferLength: length,
        ahs: EMPTY, data: EMPTY,
      });
      task.nextR2tOffset += length;
    }
    if (pdus.length > 0) this.conn.send(pdus);
  }

  private allocTtt(): number {
    const t = this.nextTtt;
    this.nextTtt = this.nextTtt >= 0xfffffffe ? 1 : this.nextTtt + 1;
    return t;
  }

  override dataOut(p: DataOut): void {
    const task = this.session.tasks.get(p.itt);
    if (task === undefined || task.state !== 'data' || task.owner !== this) {
      // Data for a task aborted or answered early is dropped (RFC 7143 4.2.3.3 / 11.6.2).
      if (this.endedTags.has(p.itt) || (task !== undefined && task.aborted)) return;
      return this.dataError(p, `no task waiting for data with ITT 0x${p.itt.toString(16)}`);
    }
    const len = p.data.length;
    if (p.bufferOffset + len > task.expectedLength) return this.dataError(p, 'data beyond the Expected Data Transfer Length', task);
    if (p.ttt === RESERVED_TAG) return this.unsolicitedData(task, p);
    const r2t = task.r2ts.get(p.ttt);
    if (r2t === undefined) return this.dataError(p, `TTT 0x${p.ttt.toString(16)} is not an outstanding R2T`, task);
    // DataPDUInOrder=Yes: DataSN from 0 and contiguous offsets within the burst (RFC 7143 13.18, 11.7.5).
    if (p.dataSn !== r2t.nextDataSn) return this.dataError(p, `DataSN ${p.dataSn}, expected ${r2t.nextDataSn}`, task);
    if (p.bufferOffset !== r2t.offset + r2t.received) return this.dataError(p, `Buffer Offset ${p.bufferOffset}, expected ${r2t.offset + r2t.received}`, task);
    if (r2t.received + len > r2t.length) return this.dataError(p, 'more data than the R2T asked for', task);
    if (task.buffer !== null) p.data.copy(task.buffer, p.bufferOffset);
    r2t.received += len;
    r2t.nextDataSn++;
    task.received += len;
    if (!p.final) return;
    if (r2t.received !== r2t.length) return this.dataError(p, 'F bit before the end of the burst', task);
    task.r2ts.delete(r2t.ttt);
    this.advanceWrite(task);
  }

  private unsolicitedData(task: Task, p: DataOut): void {
    if (!task.unsolicitedOpen) return this.dataError(p, 'unsolicited Data-Out after the F bit', task);
    if (p.dataSn !== task.unsolicitedDataSn) return this.dataError(p, `DataSN ${p.dataSn}, expected ${task.unsolicitedDataSn}`, task);
    if (p.bufferOffset !== task.received) return this.dataError(p, `Buffer Offset ${p.bufferOffset}, expected ${task.received}`, task);
    if (task.received + p.data.length > task.unsolicitedLimit) return this.dataError(p, 'unsolicited data beyond FirstBurstLength', task);
    if (task.buffer !== null) p.data.copy(task.buffer, p.bufferOffset);
    task.received += p.data.length;
    task.unsolicitedDataSn++;
    if (!p.final) return;
    task.unsolicitedOpen = false;
    task.nextR2tOffset = task.received;
    this.advanceWrite(task);
  }

  // ---- running tasks in CmdSN order

  private ready(task: Task): void {
    task.state = 'ready';
    if (task.immediate) this.run(task);
    else this.dispatch();
  }

  private dispatch(): void {
    while (this.queue.length > 0 && this.queue[0].state !== 'data') {
      const t = this.queue.shift()!;
      if (t.state === 'ready') this.run(t);
    }
  }

  private run(task: Task): void {
    task.state = 'running';
    if (task.refusal !== undefined) {
      this.finish(task, { status: Status.CHECK_CONDITION, sense: encodeFixedSense(task.refusal) });
      return;
    }
    const cmd: ScsiCommand = {
      nexus: this.session.nexus!, lun: task.lun, cdb: task.cdb, expectedLength: task.expectedLength,
      dataOut: task.write ? (task.buffer?.subarray(0, task.received) ?? EMPTY) : null, taskTag: task.itt,
      attribute: ATTRIBUTES[task.attr] ?? TaskAttribute.Simple,
      // Lazy: an AbortController per command would cost every command; few handlers look.
      get abort(): AbortSignal {
        if (task.abortController === undefined) {
          task.abortController = new AbortController();
          if (task.aborted) task.abortController.abort();
        }
        return task.abortController.signal;
      },
    };
    let result: Promise<ScsiResponse>;
    try {
      result = this.device.execute(cmd);
    } catch (e) {
      result = Promise.reject(e);
    }
    task.execution = result.then((r) => this.finish(task, r), (e: unknown) => {
      this.conn.log.error({ err: e, itt: task.itt }, 'device.execute threw');
      this.finish(task, { status: Status.CHECK_CONDITION, sense: encodeFixedSense(Sense.INTERNAL_TARGET_FAILURE) });
    }).catch((e: unknown) => this.internalError(e));
  }

  /** A bug in this layer: logged, and only this connection pays for it. */
  private internalError(e: unknown): void {
    this.conn.log.error({ err: e }, 'internal error in full feature phase');
    this.conn.drop('internal error');
  }

  private finish(task: Task, resp: ScsiResponse): void {
    if (task.state === 'done') return;
    this.retire(task);
    if (task.aborted || this.conn.closed) return;
    this.conn.send(responsePdus(task, resp, {
      maxSegment: this.conn.params.initiatorMaxRecvDataSegmentLength, maxBurst: this.session.params.maxBurstLength,
      takeStatSn: () => this.conn.takeStatSn(), peekStatSn: () => this.conn.peekStatSn(), window: this.session.window(),
    }));
  }

  /** Takes a task out of the session's books; the window reopens by one. */
  private retire(task: Task): void {
    task.state = 'done';
    const s = this.session;
    if (s.tasks.get(task.itt) === task) s.tasks.delete(task.itt);
    if (task.immediate) s.immediateRunning--;
    else s.activeTasks--;
  }

  /**
   * TaskOwner: abort without response. A running task is told through ScsiCommand.abort (SANITIZE
   * then ends at once, its operation going on: SBC-3 4.11.2); waits for the device to let go of it.
   */
  abortTask(task: Task): Promise<void> {
    task.aborted = true;
    this.rememberEnded(task.itt);
    if (task.state === 'running') {
      task.abortController?.abort();
      return task.execution ?? Promise.resolve();
    }
    if (task.state === 'done') return Promise.resolve();
    task.r2ts.clear();
    const i = this.queue.indexOf(task);
    if (i >= 0) this.queue.splice(i, 1);
    this.retire(task);
    this.dispatch();
    return Promise.resolve();
  }

  private rememberEnded(itt: number): void {
    this.endedTags.add(itt);
    if (this.endedTags.size > endedTagsMax) this.endedTags.delete(this.endedTags.values().next().value as number);
  }

  /** Every task of this connection, for TMFs and shutdown. */
  tasks(): Task[] {
    return [...this.session.tasks.values()].filter((t) => t.owner === this);
  }

  private connectionClosed(): void {
    for (const t of this.tasks()) void this.abortTask(t);
    if (this.session.connection === this.conn) this.conn.server.endSession(this.session, 'connection closed');
  }

  // ---- NOP (RFC 7143 11.18, 11.19)

  override nopOut(p: NopOut): void {
    if (p.itt === RESERVED_TAG) {
      // An answer to our ping, or a ping that wants no answer; either must be immediate.
      if (!p.immediate) return this.rejectPdu(p, RejectReason.ProtocolError, 'NOP-Out with ITT 0xffffffff must be immediate');
      if (p.ttt !== RESERVED_TAG && !this.conn.pingAnswered(p.ttt)) this.conn.log.debug({ ttt: p.ttt }, 'NOP-Out for an unknown ping');
      return;
    }
    if (p.ttt !== RESERVED_TAG) return this.rejectPdu(p, RejectReason.ProtocolError, 'NOP-Out with an ITT must carry TTT 0xffffffff');
    this.order(p, () => {
      const echo = p.data.subarray(0, Math.min(nopEchoBytesMax, this.conn.params.initiatorMaxRecvDataSegmentLength));
      this.conn.send([{
        opcode: Opcode.NopIn, immediate: false, final: true, lun: p.lun, itt: p.itt, ttt: RESERVED_TAG,
        statSn: this.conn.takeStatSn(), ...this.session.window(), ahs: EMPTY, data: echo,
      }]);
    });
  }

  // ---- Task management, Text

  override taskMgmt(p: TaskMgmtRequest): void {
    this.order(p, () => handleTaskManagement(this, p));
  }

  override text(p: TextRequest): void {
    // Every Text Request, a continuation too, is a command with its own CmdSN (RFC 7143 11.10).
    this.order(p, () => handleText(this, p));
  }

  // ---- Logout (RFC 7143 11.14, 11.15)

  override logout(p: LogoutRequest): void {
    this.order(p, () => this.doLogout(p));
  }

  private doLogout(p: LogoutRequest): void {
    const respond = (response: number) => this.conn.send([{
      opcode: Opcode.LogoutResponse, immediate: false, final: true, response, itt: p.itt, statSn: this.conn.takeStatSn(),
      ...this.session.window(), time2Wait: 0, time2Retain: 0, ahs: EMPTY, data: EMPTY,
    }]);
    switch (p.reasonCode) {
      case 0: // close the session
      case 1: // close the connection (the only one)
        if (p.reasonCode === 1 && p.cid !== this.conn.cid) return respond(1); // CID not found
        this.loggingOut = true;
        this.drainThen(() => {
          respond(0);
          // The close hook ends the session once the response is on its way.
          this.conn.close('logout');
        }).catch((e: unknown) => this.internalError(e));
        return;
      case 2: // remove the connection for recovery
        return respond(2); // RFC 7143 11.15.1: connection recovery is not supported at ERL0
      default:
        return this.rejectPdu(p, RejectReason.InvalidPduField, `logout reason ${p.reasonCode}`);
    }
  }

  /** Waits for the tasks in the device; tasks still waiting for data are aborted. */
  async drainThen(then: () => void): Promise<void> {
    const pending = this.tasks().map((t) => (t.state === 'running' ? t.execution : this.abortTask(t)));
    await Promise.allSettled(pending);
    if (!this.conn.closed) then();
  }

  /** Server shutdown: RFC 7143 11.9.1 AsyncEvent 1 asks the initiator to log out. */
  requestLogout(secondsToLogout: number): void {
    this.conn.send([{
      opcode: Opcode.AsyncMessage, immediate: false, final: true, lun: encodeLun(0), itt: RESERVED_TAG,
      statSn: this.conn.takeStatSn(), ...this.session.window(), asyncEvent: 1, asyncVCode: 0,
      parameter1: 0, parameter2: 0, parameter3: secondsToLogout, ahs: EMPTY, data: EMPTY,
    }]);
  }
}

/** The 48-byte header of a PDU, for the Reject data segment (RFC 7143 11.17.4). */
function headerOf(p: InitiatorPdu): Buffer {
  return encodeBhs(p);
}

/** The CDB: 16 bytes in the BHS, more in an Extended CDB AHS (RFC 7143 11.3.5, AHSType 1). */
function cdbOf(p: ScsiCommandPdu): Buffer | undefined {
  if (p.ahs.length === 0) return p.cdb;
  let at = 0;
  while (at + 4 <= p.ahs.length) {
    const ahsLength = p.ahs.readUInt16BE(at);
    const type = p.ahs[at + 2];
    const end = at + 3 + ahsLength;
    if (end > p.ahs.length) return undefined;
    if (type === 1) return Buffer.concat([p.cdb, p.ahs.subarray(at + 4, end)]);
    at = (end + 3) & ~3;
  }
  return p.cdb;
}
