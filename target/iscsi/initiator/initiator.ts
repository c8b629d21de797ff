// An iSCSI initiator (RFC 7143): one connection, one session, ErrorRecoveryLevel 0. Used by the
// tests, by the dkc CLI and by one DKC's network interface talking to another DKC's target.
//
// The connection reads PDUs with the shared PduReader; every PDU from the target goes through
// receive(), an exhaustive switch. Commands beyond MaxCmdSN wait in a bounded queue and are
// numbered only when sent, so CmdSN order is send order (RFC 7143 3.2.2.1).
//
//   const ini = await IscsiInitiator.open('127.0.0.1', 3260, { targetName }, { chap, commandTimeoutMs: 30000 });
//   const cap = await ini.readCapacity16(0);
//   await ini.write16(0, 0n, data, { fua: true });
//   const r = await ini.command({ lun: 0, cdb, expectedLength: 512 });   // any status, raw
//   await ini.logout();
//
// Discovery: `await ini.connect(host, port); await ini.login(); await ini.sendTargets()`.
// Errors are InitiatorError with a stable code; the typed layer throws ScsiStatusError for a
// status other than GOOD. Events: 'pdu', 'reject', 'async', 'nop-in', 'unexpected', 'close'.
import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { randomBytes as cryptoRandomBytes } from 'node:crypto';
import pino from 'pino';
import type { Logger } from 'pino';
import { DigestSettings, framePdu, LOGIN_DATA_SEGMENT_LENGTH, PduReader, ReadResult } from '../framing';
import {
  assertNever, AsyncMessage, pad4, DataIn, encodeLun, LoginResponse, NopIn, Opcode, Pdu, R2t, Reject, RESERVED_TAG,
  ScsiCommandPdu, ScsiResponsePdu, snLessThan, TargetPdu, TaskMgmtResponse, TextResponse,
} from '../pdu';
import { decodeText, encodeText, TextPairs } from '../text';
import { DEFAULT_PROPOSAL, Negotiation, Proposal, SessionParams } from './negotiation';
import { ChapCredentials, InitiatorError, LoginExchange, LoginHost, LoginResult, loginRoundsMax } from './login';
import {
  Capacity16, cdbInquiry, cdbReadCapacity16, cdbReportLuns, cdbRw16, cdbSynchronizeCache16, cdbTestUnitReady,
  GOOD, InquiryData, parseCapacity16, parseInquiry, parseReportLuns, parseSense, ScsiOp, SenseSummary,
} from './scsi';

export { SessionParams } from './negotiation';
export { ChapCredentials, InitiatorError, InitiatorErrorCode, LoginResult, loginRoundsMax } from './login';

/** A command ended with a status other than GOOD (thrown by the convenience layer only). */
export class ScsiStatusError extends Error {
  readonly result: CommandResult;
  constructor(result: CommandResult) {
    const s = result.senseInfo;
    super(`SCSI status 0x${result.status.toString(16)}${s ? ` sense ${s.key.toString(16)}/${hex2(s.asc)}/${hex2(s.ascq)}` : ''}`);
    this.result = result;
  }
}
const hex2 = (n: number): string => n.toString(16).padStart(2, '0');

export interface InitiatorOptions {
  initiatorName?: string;
  initiatorAlias?: string;
  /** 6 bytes; default: random format (RFC 7143 11.12.5, T=10b). */
  isid?: Buffer;
  /** What login offers; missing fields take DEFAULT_PROPOSAL. */
  proposal?: Partial<Proposal>;
  chap?: ChapCredentials;
  /** Default per-command timeout; 0 disables. */
  commandTimeoutMs?: number;
  loginTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** Commands waiting for the window beyond this many are refused (QUEUE_FULL). */
  queuedCommandsMax?: number;
  log?: Logger;
  /** Injectable for a simulated rack (the kernel's clock and generator). */
  timers?: { setTimeout: (fn: () => void, ms: number) => unknown; clearTimeout: (h: unknown) => void };
  randomBytes?: (n: number) => Buffer;
  /** Log out when the target asks to (AsyncEvent 1); default true. */
  logoutOnRequest?: boolean;
}

export interface LoginOptions {
  /** Omitted for a discovery session. */
  targetName?: string;
  sessionType?: 'Normal' | 'Discovery';
  /** Overrides the constructor's CHAP credentials for this login. */
  chap?: ChapCredentials | null;
  /** Initial CmdSN (default 1). */
  cmdSn?: number;
}

export interface CommandRequest {
  lun: number;
  /** Up to 16 bytes in the BHS; longer CDBs (up to 260 bytes) go in an Extended CDB AHS. */
  cdb: Buffer;
  /** Write-direction data; its length is the Expected Data Transfer Length unless expectedLength says otherwise. */
  dataOut?: Buffer;
  /** Read-direction: bytes expected from the target. With dataOut, the EDTL to put in the PDU. */
  expectedLength?: number;
  /** The I bit: immediate delivery (RFC 7143 3.2.2.1). */
  immediate?: boolean;
  /** Send immediate data in the command PDU when negotiated (default true). */
  immediateData?: boolean;
  /** Send unsolicited Data-Out when InitialR2T=No (default true). */
  unsolicitedData?: boolean;
  taskAttribute?: number;
  timeoutMs?: number;
}

export interface CommandResult {
  itt: number;
  /** iSCSI Response (RFC 7143 11.4.3); 0 = command completed at target. */
  response: number;
  /** SAM status. */
  status: number;
  /** Data-In, reassembled: the bytes up to the highest offset the target sent. */
  data: Buffer;
  sense: Buffer | null;
  senseInfo: SenseSummary | null;
  residualUnderflow: boolean;
  residualOverflow: boolean;
  residualCount: number;
  /** R2Ts received for this command. */
  r2ts: number;
}

export interface BlockLimits {
  /** In logical blocks; 0 = no limit stated. */
  maximumTransferLength: number;
  optimalTransferLength: number;
  maximumUnmapLbaCount: number;
}

const NO_LIMITS: BlockLimits = Object.freeze({ maximumTransferLength: 0, optimalTransferLength: 0, maximumUnmapLbaCount: 0 });

/** SBC-3 6.6.4: MAXIMUM TRANSFER LENGTH at bytes 8..11, OPTIMAL at 12..15, MAXIMUM UNMAP LBA COUNT at 20..23. */
function parseBlockLimits(d: Buffer): BlockLimits {
  return {
    maximumTransferLength: d.readUInt32BE(8),
    optimalTransferLength: d.readUInt32BE(12),
    maximumUnmapLbaCount: d.length >= 24 ? d.readUInt32BE(20) : 0,
  };
}

export interface TargetRecord {
  name: string;
  addresses: Array<{ host: string; port: number; tpgt: number }>;
}

export type TaskKind = 'scsi' | 'nop' | 'tmf' | 'text' | 'logout';

interface Task {
  itt: number;
  kind: TaskKind;
  lun: number;
  immediate: boolean;
  /** Assigned when the first PDU is sent. */
  cmdSn: number | null;
  send: (cmdSn: number) => void;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: unknown;
  scsi?: ScsiState;
  /** Text exchange: pairs received so far. */
  text?: Buffer[];
}

interface ScsiState {
  expectedLength: number;
  readBuffer: Buffer | null;
  /** The data of a lone Data-In at offset 0, kept without a copy until a second one arrives. */
  firstData: Buffer | null;
  received: number;
  nextDataSn: number;
  dataOut: Buffer | null;
  r2ts: number;
}

const DEFAULT_NAME = 'iqn.2026-11.dev.dkc-emu:initiator';
/** Text Response PDUs and bytes in one text exchange. */
export const textRoundsMax = 64;
export const textBytesMax = 1 << 20;
/** Default bound of commands waiting for the command window (InitiatorOptions.queuedCommandsMax). */
export const queuedCommandsMax = 4096;

type State = 'idle' | 'connected' | 'login' | 'full' | 'logout' | 'closed';

/**
 * Events: 'pdu' (every PDU from the target), 'reject' (Reject), 'async' (AsyncMessage),
 * 'nop-in' (a target ping it answered), 'unexpected' (a PDU for no known task), 'close' (error?).
 */
export class IscsiInitiator extends EventEmitter implements LoginHost {
  readonly initiatorName: string;
  readonly isid: Buffer;
  private readonly opts: InitiatorOptions;
  private readonly log: Logger;
  private readonly timers: NonNullable<InitiatorOptions['timers']>;
  private socket: Duplex | null = null;
  private reader: PduReader | null = null;
  private digests: DigestSettings = { header: false, data: false };
  private state: State = 'idle';
  private closeError: Error | null = null;
  /** A Logout Response arrived: the close that follows is the clean end of the session. */
  private loggedOut = false;

  private params: SessionParams | null = null;
  private tsih = 0;
  private cmdSn = 1;
  private expCmdSn = 1;
  private maxCmdSn = 1;
  private expStatSn = 0;
  private nextItt = 1;
  private readonly tasks = new Map<number, Task>();
  private readonly queue: Task[] = [];
  private loginWaiter: { onResponse: (pdu: LoginResponse) => void; reject: (e: Error) => void } | null = null;
  private readonly blockLengths = new Map<number, number>();
  private readonly limits = new Map<number, BlockLimits>();

  constructor(opts: InitiatorOptions = {}) {
    super();
    this.opts = opts;
    this.initiatorName = opts.initiatorName ?? DEFAULT_NAME;
    const rnd = opts.randomBytes ?? cryptoRandomBytes;
    this.isid = opts.isid ?? Buffer.concat([Buffer.from([0x80]), rnd(3), Buffer.from([0, 0])]);
    if (this.isid.length !== 6) throw new RangeError('ISID must be 6 bytes');
    this.log = (opts.log ?? pino({ level: 'silent' })).child({ initiator: this.initiatorName });
    this.timers = opts.timers ?? { setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout) };
  }

  // ---- connection

  /**
   * Connects and logs in, following login redirections (status 0101/0102, RFC 7143 11.13.5)
   * up to redirectsMax times. Each attempt is a new initiator with the same options and ISID.
   */
  static async open(host: string, port: number, login: LoginOptions, opts: InitiatorOptions = {}): Promise<IscsiInitiator> {
    const rnd = opts.randomBytes ?? cryptoRandomBytes;
    const isid = opts.isid ?? Buffer.concat([Buffer.from([0x80]), rnd(3), Buffer.from([0, 0])]);
    let at = { host, port };
    for (let redirects = 0; ; redirects++) {
      const ini = new IscsiInitiator({ ...opts, isid });
      await ini.connect(at.host, at.port);
      try {
        await ini.login(login);
        return ini;
      } catch (e) {
        const to = e instanceof InitiatorError && e.detail.statusClass === 1 ? parseTargetAddress(String(e.detail.targetAddress ?? '')) : null;
        if (to === null || redirects >= redirectsMax) throw e;
        ini.log.info({ from: `${at.host}:${at.port}`, to: `${to.host}:${to.port}` }, 'login redirected');
        at = to;
      }
    }
  }

  /** Opens a TCP connection to a portal. */
  connect(host: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port, noDelay: true });
      const timeoutMs = this.opts.connectTimeoutMs ?? 10000;
      const timer = this.timers.setTimeout(() => {
        socket.destroy();
        reject(new InitiatorError('TIMEOUT', `connect to ${host}:${port} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('error', (e) => { this.timers.clearTimeout(timer); reject(e); });
      socket.once('connect', () => {
        this.timers.clearTimeout(timer);
        socket.removeAllListeners('error');
        this.attach(socket);
        resolve();
      });
    });
  }

  /** Uses an already open byte stream (a socket, or an in-process pipe in a simulated rack). */
  attach(stream: Duplex): void {
    if (this.state !== 'idle') throw new InitiatorError('WRONG_STATE', `attach in state ${this.state}`);
    this.socket = stream;
    this.state = 'connected';
    this.reader = new PduReader((r) => this.onRead(r));
    this.reader.maxDataSegmentLength = LOGIN_DATA_SEGMENT_LENGTH;
    stream.on('data', (chunk: Buffer) => {
      try {
        this.reader?.push(chunk);
      } catch (e) {
        this.fail(new InitiatorError('PROTOCOL', `reading PDUs: ${(e as Error).message}`));
      }
    });
    stream.on('error', (e) => this.fail(new InitiatorError('CONNECTION_CLOSED', `connection error: ${e.message}`)));
    stream.on('close', () => this.fail(new InitiatorError('CONNECTION_CLOSED', 'connection closed by the target')));
    stream.on('end', () => stream.end());
  }

  /** Drops the connection without logging out; every outstanding command fails. */
  close(): void {
    this.fail(new InitiatorError('CONNECTION_CLOSED', 'closed by the initiator'));
  }

  get connected(): boolean {
    return this.state !== 'idle' && this.state !== 'closed';
  }

  get session(): { tsih: number; params: SessionParams | null; cmdSn: number; expCmdSn: number; maxCmdSn: number; expStatSn: number; queued: number; outstanding: number } {
    return { tsih: this.tsih, params: this.params, cmdSn: this.cmdSn, expCmdSn: this.expCmdSn, maxCmdSn: this.maxCmdSn, expStatSn: this.expStatSn, queued: this.queue.length, outstanding: this.tasks.size };
  }

  /** Tasks sent or queued, oldest first (for abortTask and for tests). */
  outstandingTasks(): Array<{ itt: number; kind: TaskKind; lun: number; cmdSn: number | null }> {
    return [...this.tasks.values()].map((t) => ({ itt: t.itt, kind: t.kind, lun: t.lun, cmdSn: t.cmdSn }));
  }

  /** Resolves when the connection has closed (at once if it already has). */
  closed(): Promise<Error | null> {
    if (this.state === 'closed') return Promise.resolve(this.closeError);
    return new Promise((resolve) => this.once('close', (e: Error | null) => resolve(e)));
  }

  private fail(error: Error): void {
    if (this.state === 'closed') return;
    const graceful = this.loggedOut;
    this.state = 'closed';
    this.closeError = graceful ? null : error;
    this.socket?.destroy();
    this.reader = null;
    for (const t of [...this.tasks.values(), ...this.queue]) this.finish(t, error);
    this.queue.length = 0;
    this.loginWaiter?.reject(error);
    this.loginWaiter = null;
    this.log.debug({ err: error.message }, 'connection closed');
    this.emit('close', this.closeError);
  }

  // ---- raw access

  /** Frames and sends any PDU with the connection's current digests; for tests that need malformed traffic. */
  sendPdu(pdu: Pdu): void {
    this.write(framePdu(pdu, this.digests));
  }

  /** Sends raw bytes. */
  sendRaw(bytes: Buffer): void {
    this.write([bytes]);
  }

  private write(parts: Buffer[]): void {
    const s = this.socket;
    if (s === null || this.state === 'closed' || this.state === 'idle') throw new InitiatorError('NOT_CONNECTED', 'not connected');
    s.cork();
    for (const p of parts) s.write(p);
    s.uncork();
  }

  /** The ITT the next task will get; lets tests refer to it in raw PDUs. */
  allocateItt(): number {
    let itt = this.nextItt;
    // RFC 7143 11.2.1.8: 0xffffffff is reserved; skip tags still in use after wrap-around.
    while (itt === RESERVED_TAG || this.tasks.has(itt)) itt = (itt + 1) >>> 0;
    this.nextItt = (itt + 1) >>> 0;
    return itt;
  }

  /** Serial numbers the next raw PDU should carry. */
  get numbers(): { cmdSn: number; expStatSn: number } {
    return { cmdSn: this.cmdSn, expStatSn: this.expStatSn };
  }

  /** Raw PDUs that consume a CmdSN must advance the counter through here. */
  takeCmdSn(): number {
    const n = this.cmdSn;
    this.cmdSn = (this.cmdSn + 1) >>> 0;
    return n;
  }

  // ---- receive

  private onRead(r: ReadResult): void {
    if (r.kind === 'pdu') {
      this.receive(r.pdu);
      return;
    }
    // A digest error or undecodable PDU from the target: at ErrorRecoveryLevel 0 the
    // connection cannot be trusted any more (RFC 7143 7.8, 7.1.4.1).
    this.fail(new InitiatorError('PROTOCOL', `from the target: ${r.error.message}`, { code: r.error.code }));
  }

  private receive(pdu: Pdu): void {
    this.emit('pdu', pdu);
    switch (pdu.opcode) {
      case Opcode.LoginResponse: return this.onLoginResponse(pdu);
      case Opcode.ScsiResponse: return this.onScsiResponse(pdu);
      case Opcode.DataIn: return this.onDataIn(pdu);
      case Opcode.R2t: return this.onR2t(pdu);
      case Opcode.NopIn: return this.onNopIn(pdu);
      case Opcode.TaskMgmtResponse: return this.onTmfResponse(pdu);
      case Opcode.TextResponse: return this.onTextResponse(pdu);
      case Opcode.LogoutResponse: return this.onStatus(pdu, () => {
        if (this.tasks.get(pdu.itt)?.kind === 'logout' && pdu.response === 0) this.loggedOut = true;
        this.complete(pdu.itt, pdu);
      });
      case Opcode.AsyncMessage: return this.onAsync(pdu);
      case Opcode.Reject: return this.onReject(pdu);
      case Opcode.NopOut:
      case Opcode.ScsiCommand:
      case Opcode.TaskMgmtRequest:
      case Opcode.LoginRequest:
      case Opcode.TextRequest:
      case Opcode.DataOut:
      case Opcode.LogoutRequest:
      case Opcode.SnackRequest:
        // An initiator opcode from the target: RFC 7143 11.2.1.2, protocol error.
        return this.fail(new InitiatorError('PROTOCOL', `target sent initiator opcode 0x${pdu.opcode.toString(16)}`));
      default:
        return assertNever(pdu);
    }
  }

  /** Common to every PDU that carries StatSN as a status: acknowledge it and open the window. */
  private onStatus(pdu: { statSn: number; expCmdSn: number; maxCmdSn: number }, then: () => void): void {
    if (this.state !== 'full' && this.state !== 'logout') {
      return this.fail(new InitiatorError('PROTOCOL', 'full feature PDU before login completed'));
    }
    // StatSN only moves forward (RFC 7143 4.2.2.2); an old one acknowledges nothing new.
    const next = (pdu.statSn + 1) >>> 0;
    if (!snLessThan(next, this.expStatSn)) this.expStatSn = next;
    this.updateWindow(pdu.expCmdSn, pdu.maxCmdSn);
    then();
  }

  /** RFC 7143 4.2.2.1: MaxCmdSN < ExpCmdSN - 1 is ignored; both only move forward. */
  private updateWindow(expCmdSn: number, maxCmdSn: number): void {
    if (snLessThan(maxCmdSn, (expCmdSn - 1) >>> 0)) return;
    if (snLessThan(this.expCmdSn, expCmdSn)) this.expCmdSn = expCmdSn;
    if (snLessThan(this.maxCmdSn, maxCmdSn)) this.maxCmdSn = maxCmdSn;
    this.pump();
  }

  private onLoginResponse(pdu: LoginResponse): void {
    const waiter = this.loginWaiter;
    if (this.state !== 'login' || waiter === null) {
      return this.fail(new InitiatorError('PROTOCOL', 'Login Response outside login'));
    }
    this.loginWaiter = null;
    waiter.onResponse(pdu);
  }

  private onScsiResponse(pdu: ScsiResponsePdu): void {
    this.onStatus(pdu, () => {
      const task = this.tasks.get(pdu.itt);
      if (task?.scsi === undefined) return this.unexpected(pdu);
      let sense: Buffer | null = null;
      // RFC 7143 11.4.7: the data segment is SenseLength (2 bytes), sense data, response data.
      if (pdu.data.length >= 2) {
        const senseLength = pdu.data.readUInt16BE(0);
        sense = pdu.data.subarray(2, 2 + senseLength);
      }
      this.completeScsi(task, {
        response: pdu.response, status: pdu.status, sense,
        residualUnderflow: pdu.residualUnderflow, residualOverflow: pdu.residualOverflow, residualCount: pdu.residualCount,
      });
    });
  }

  private completeScsi(task: Task, r: Pick<CommandResult, 'response' | 'status' | 'sense' | 'residualUnderflow' | 'residualOverflow' | 'residualCount'>): void {
    const st = task.scsi!;
    const data = st.readBuffer !== null ? st.readBuffer.subarray(0, st.received) : st.firstData ?? EMPTY;
    const result: CommandResult = { itt: task.itt, ...r, data, senseInfo: r.sense && r.sense.length > 0 ? parseSense(r.sense) : null, r2ts: st.r2ts };
    this.finish(task, null, result);
  }

  private onDataIn(pdu: DataIn): void {
    const body = (): void => {
      const task = this.tasks.get(pdu.itt);
      if (task?.scsi === undefined) return this.unexpected(pdu);
      const st = task.scsi;
      const end = pdu.bufferOffset + pdu.data.length;
      if (pdu.dataSn !== st.nextDataSn || end > st.expectedLength) {
        // ERL 0 cannot ask for the data again (no SNACK): the command fails (RFC 7143 7.1.4.1).
        const why = pdu.dataSn !== st.nextDataSn ? `DataSN ${pdu.dataSn}, expected ${st.nextDataSn}` : `Data-In up to ${end} beyond EDTL ${st.expectedLength}`;
        return this.finish(task, new InitiatorError('PROTOCOL', why, { itt: pdu.itt }));
      }
      st.nextDataSn++;
      if (pdu.data.length > 0) {
        if (st.readBuffer === null && st.firstData === null && pdu.bufferOffset === 0) {
          st.firstData = pdu.data; // the common case, one Data-In for the whole transfer: no copy
        } else {
          if (st.readBuffer === null) {
            st.readBuffer = Buffer.alloc(st.expectedLength);
            st.firstData?.copy(st.readBuffer, 0);
          }
          pdu.data.copy(st.readBuffer, pdu.bufferOffset);
        }
        st.received = Math.max(st.received, end);
      }
      if (pdu.hasStatus) {
        this.completeScsi(task, {
          response: 0, status: pdu.status, sense: null,
          residualUnderflow: pdu.residualUnderflow, residualOverflow: pdu.residualOverflow, residualCount: pdu.residualCount,
        });
      }
    };
    // Only a Data-In with the S bit carries a StatSN to acknowledge (RFC 7143 11.7.4).
    if (pdu.hasStatus) return this.onStatus(pdu, body);
    if (this.state !== 'full' && this.state !== 'logout') return this.fail(new InitiatorError('PROTOCOL', 'Data-In before login completed'));
    this.updateWindow(pdu.expCmdSn, pdu.maxCmdSn);
    body();
  }

  private onR2t(pdu: R2t): void {
    if (this.state !== 'full' && this.state !== 'logout') return this.fail(new InitiatorError('PROTOCOL', 'R2T before login completed'));
    this.updateWindow(pdu.expCmdSn, pdu.maxCmdSn);
    const task = this.tasks.get(pdu.itt);
    const out = task?.scsi?.dataOut;
    if (task === undefined || out === null || out === undefined) return this.unexpected(pdu);
    const p = this.params!;
    task.scsi!.r2ts++;
    const end = pdu.bufferOffset + pdu.desiredDataTransferLength;
    // RFC 7143 11.8.4: the R2T must lie within the data and within MaxBurstLength.
    if (end > out.length || pdu.desiredDataTransferLength > p.maxBurstLength || pdu.desiredDataTransferLength === 0) {
      this.log.warn({ itt: pdu.itt, offset: pdu.bufferOffset, length: pdu.desiredDataTransferLength }, 'R2T outside the command data');
      return this.finish(task, new InitiatorError('PROTOCOL', `R2T for ${pdu.bufferOffset}+${pdu.desiredDataTransferLength} outside ${out.length} bytes or MaxBurstLength`));
    }
    this.sendDataOut(task, pdu.ttt, pdu.bufferOffset, end);
  }

  /** One sequence of Data-Out PDUs, each at most the target's MaxRecvDataSegmentLength. */
  private sendDataOut(task: Task, ttt: number, from: number, to: number): void {
    const out = task.scsi!.dataOut!;
    const chunk = this.params!.targetMaxRecvDataSegmentLength;
    const lun = encodeLun(task.lun);
    const parts: Buffer[] = [];
    let dataSn = 0;
    for (let at = from; at < to; at += chunk) {
      const n = Math.min(chunk, to - at);
      parts.push(...framePdu({
        opcode: Opcode.DataOut, immediate: false, final: at + n >= to, ahs: EMPTY, data: out.subarray(at, at + n),
        itt: task.itt, lun, ttt, expStatSn: this.expStatSn, dataSn: dataSn++, bufferOffset: at,
      }, this.digests));
    }
    this.write(parts);
  }

  private onNopIn(pdu: NopIn): void {
    const answer = (): void => {
      if (pdu.itt !== RESERVED_TAG) return this.complete(pdu.itt, pdu);
      if (pdu.ttt === RESERVED_TAG) return; // an unsolicited NOP-In that wants no answer
      // RFC 7143 11.18: answer the target's ping with its TTT, LUN and data, ITT reserved.
      this.emit('nop-in', pdu);
      this.sendPdu({
        opcode: Opcode.NopOut, immediate: true, final: true, ahs: EMPTY, data: pdu.data,
        itt: RESERVED_TAG, lun: pdu.lun, ttt: pdu.ttt, cmdSn: this.cmdSn, expStatSn: this.expStatSn,
      });
    };
    // RFC 7143 11.19: a NOP-In that is not a reply (ITT reserved) does not advance StatSN.
    if (pdu.itt !== RESERVED_TAG) return this.onStatus(pdu, answer);
    if (this.state !== 'full' && this.state !== 'logout') return this.fail(new InitiatorError('PROTOCOL', 'NOP-In before login completed'));
    this.updateWindow(pdu.expCmdSn, pdu.maxCmdSn);
    answer();
  }

  private onTmfResponse(pdu: TaskMgmtResponse): void {
    this.onStatus(pdu, () => this.complete(pdu.itt, pdu));
  }

  private onTextResponse(pdu: TextResponse): void {
    this.onStatus(pdu, () => {
      const task = this.tasks.get(pdu.itt);
      if (task?.text === undefined) return this.unexpected(pdu);
      task.text.push(pdu.data);
      const total = task.text.reduce((n, b) => n + b.length, 0);
      if (total > textBytesMax || task.text.length > textRoundsMax) {
        return this.finish(task, new InitiatorError('PROTOCOL', `text response longer than ${textBytesMax} bytes or ${textRoundsMax} PDUs`));
      }
      if (pdu.final && !pdu.continue) return this.finish(task, null, decodeText(Buffer.concat(task.text)));
      // RFC 7143 11.11.2: more to come; ask with an empty Text Request carrying the TTT.
      task.send = (cmdSn) => this.sendPdu({
        opcode: Opcode.TextRequest, immediate: false, final: true, continue: false, ahs: EMPTY, data: EMPTY,
        itt: task.itt, lun: pdu.lun, ttt: pdu.ttt, cmdSn, expStatSn: this.expStatSn,
      });
      this.enqueue(task);
    });
  }

  private onAsync(pdu: AsyncMessage): void {
    this.onStatus(pdu, () => {
      this.log.info({ event: pdu.asyncEvent, vcode: pdu.asyncVCode }, 'async message');
      this.emit('async', pdu);
      // AsyncEvent 2/3: the target drops the connection or the session (RFC 7143 11.9.1).
      // AsyncEvent 1: the target asks for a logout within Parameter3 seconds (RFC 7143 11.9.1).
      if (pdu.asyncEvent === 1 && this.opts.logoutOnRequest !== false && this.state === 'full') {
        this.logout().catch((e: Error) => this.log.debug({ err: e.message }, 'logout on request failed'));
      }
      if (pdu.asyncEvent === 2 || pdu.asyncEvent === 3) this.fail(new InitiatorError('CONNECTION_CLOSED', `target async event ${pdu.asyncEvent}: dropping the connection`));
    });
  }

  private onReject(pdu: Reject): void {
    const handle = (): void => {
      this.emit('reject', pdu);
      // RFC 7143 11.17: the data segment is the header of the rejected PDU.
      const itt = pdu.data.length >= 20 ? pdu.data.readUInt32BE(16) : RESERVED_TAG;
      const task = itt === RESERVED_TAG ? undefined : this.tasks.get(itt);
      if (task !== undefined) this.finish(task, new InitiatorError('REJECTED', `rejected by the target, reason 0x${pdu.reason.toString(16)}`, { reason: pdu.reason, itt }));
    };
    // A Reject during login is a protocol error of ours; it cannot be part of the login exchange.
    if (this.state === 'login') return this.fail(new InitiatorError('PROTOCOL', `Reject during login, reason 0x${pdu.reason.toString(16)}`));
    this.onStatus(pdu, handle);
  }

  private unexpected(pdu: TargetPdu): void {
    this.log.debug({ opcode: pdu.opcode, itt: pdu.itt }, 'PDU for no outstanding task');
    this.emit('unexpected', pdu);
  }

  // ---- tasks and the command window

  private newTask(kind: TaskKind, lun: number, immediate: boolean, timeoutMs: number, send: (cmdSn: number) => void): { task: Task; done: Promise<unknown> } {
    let resolve!: (v: unknown) => void;
    let reject!: (e: Error) => void;
    const done = new Promise<unknown>((res, rej) => { resolve = res; reject = rej; });
    const task: Task = { itt: this.allocateItt(), kind, lun, immediate, cmdSn: null, send, resolve, reject, timer: null };
    if (timeoutMs > 0) {
      task.timer = this.timers.setTimeout(() => this.onTimeout(task, timeoutMs), timeoutMs);
    }
    return { task, done };
  }

  private onTimeout(task: Task, timeoutMs: number): void {
    task.timer = null;
    const wasSent = task.cmdSn !== null;
    this.finish(task, new InitiatorError('TIMEOUT', `${task.kind} ITT 0x${task.itt.toString(16)} timed out after ${timeoutMs} ms`, { itt: task.itt }));
    // RFC 7143 7.1.1: a command the target still holds is aborted, so its tag can be reused.
    if (wasSent && task.kind === 'scsi' && this.state === 'full') {
      this.taskManagement(1, { lun: task.lun, referencedTaskTag: task.itt, refCmdSn: task.cmdSn! }).catch(() => undefined);
    }
  }

  /** Sends at once when immediate or inside the window, else queues (RFC 7143 3.2.2.1). */
  private issue(task: Task): void {
    if (this.state !== 'full' && !(this.state === 'logout' && task.kind === 'logout')) {
      return this.finish(task, new InitiatorError('WRONG_STATE', `cannot send a ${task.kind} request in state ${this.state}`));
    }
    this.tasks.set(task.itt, task);
    if (task.immediate) {
      // Immediate PDUs carry the next CmdSN without taking it.
      task.cmdSn = this.cmdSn;
      try {
        task.send(this.cmdSn);
      } catch (e) {
        this.finish(task, e as Error);
      }
      return;
    }
    this.enqueue(task);
  }

  private enqueue(task: Task): void {
    if (this.queue.length >= (this.opts.queuedCommandsMax ?? queuedCommandsMax)) {
      return this.finish(task, new InitiatorError('QUEUE_FULL', 'too many commands waiting for the command window'));
    }
    this.queue.push(task);
    this.pump();
  }

  private pump(): void {
    while (this.queue.length > 0 && !snLessThan(this.maxCmdSn, this.cmdSn) && this.state !== 'closed') {
      const task = this.queue.shift()!;
      task.cmdSn = this.takeCmdSn();
      try {
        task.send(task.cmdSn);
      } catch (e) {
        this.finish(task, e as Error);
      }
    }
  }

  private complete(itt: number, pdu: TargetPdu): void {
    const task = this.tasks.get(itt);
    if (task === undefined) return this.unexpected(pdu);
    this.finish(task, null, pdu);
  }

  private finish(task: Task, error: Error | null, value?: unknown): void {
    if (task.timer !== null) this.timers.clearTimeout(task.timer);
    task.timer = null;
    if (this.tasks.get(task.itt) === task) this.tasks.delete(task.itt);
    const q = this.queue.indexOf(task);
    if (q >= 0) this.queue.splice(q, 1);
    if (error) task.reject(error);
    else task.resolve(value);
  }

  private timeoutOf(t?: number): number {
    return t ?? this.opts.commandTimeoutMs ?? 30000;
  }

  // ---- login (RFC 7143 6.3)

  /** Logs in (security stage, then operational negotiation) and enters Full Feature Phase. */
  async login(o: LoginOptions = {}): Promise<LoginResult> {
    if (this.state !== 'connected') throw new InitiatorError('WRONG_STATE', `login in state ${this.state}`);
    const sessionType = o.sessionType ?? (o.targetName === undefined ? 'Discovery' : 'Normal');
    if (sessionType === 'Normal' && o.targetName === undefined) throw new InitiatorError('WRONG_STATE', 'a normal session needs a targetName');
    this.state = 'login';
    this.cmdSn = o.cmdSn ?? 1;
    const proposal: Proposal = { ...DEFAULT_PROPOSAL, ...this.opts.proposal };
    const exchange = new LoginExchange(this, new Negotiation(proposal, sessionType === 'Discovery'), o.chap === undefined ? this.opts.chap : o.chap ?? undefined);
    const timeoutMs = this.opts.loginTimeoutMs ?? 15000;
    const timer = this.timers.setTimeout(() => this.fail(new InitiatorError('TIMEOUT', `login timed out after ${timeoutMs} ms`)), timeoutMs);
    try {
      const first: TextPairs = [['InitiatorName', this.initiatorName], ['SessionType', sessionType]];
      if (this.opts.initiatorAlias) first.push(['InitiatorAlias', this.opts.initiatorAlias]);
      if (o.targetName !== undefined) first.push(['TargetName', o.targetName]);
      const result = await exchange.run(first);
      this.log.debug({ tsih: result.tsih, params: result.params }, 'logged in');
      return result;
    } catch (e) {
      this.fail(e as Error);
      throw e;
    } finally {
      this.timers.clearTimeout(timer);
    }
  }

  /**
   * One Login Request and its whole response (following C bits). Runs the synchronous part of
   * entering Full Feature Phase inside the receive path, before the next PDU is read.
   */
  loginStep(req: { transit: boolean; csg: number; nsg: number; pairs: TextPairs; itt: number },
    onFinal: (pdu: LoginResponse, pairs: TextPairs) => void): Promise<{ pdu: LoginResponse; pairs: TextPairs }> {
    return new Promise((resolve, reject) => {
      const parts: Buffer[] = [];
      const send = (pairs: TextPairs, transit: boolean): void => this.sendPdu({
        opcode: Opcode.LoginRequest, immediate: true, final: transit, transit, continue: false,
        csg: req.csg, nsg: transit ? req.nsg : 0, versionMax: 0, versionMin: 0, isid: this.isid, tsih: this.tsih,
        itt: req.itt, cid: 0, cmdSn: this.cmdSn, expStatSn: this.expStatSn, ahs: EMPTY, data: encodeText(pairs),
      });
      const onResponse = (pdu: LoginResponse): void => {
        try {
          this.expStatSn = (pdu.statSn + 1) >>> 0;
          if (pdu.statusClass !== 0) return reject(loginFailure(pdu));
          // RFC 7143 11.13: the response answers our request: same ITT and ISID, version 0.
          if (pdu.itt !== req.itt || !pdu.isid.equals(this.isid) || pdu.versionActive !== 0) {
            return reject(new InitiatorError('PROTOCOL', `Login Response for ITT 0x${pdu.itt.toString(16)}, ISID ${pdu.isid.toString('hex')}, version ${pdu.versionActive}`));
          }
          parts.push(pdu.data);
          if (parts.length > loginRoundsMax) return reject(new InitiatorError('PROTOCOL', 'login response continues too long'));
          if (pdu.continue) {
            // RFC 7143 11.13.4: ask for the rest with an empty request.
            this.loginWaiter = { onResponse, reject };
            return send([], false);
          }
          const pairs = decodeText(Buffer.concat(parts));
          if (pdu.transit && pdu.nsg === 3) onFinal(pdu, pairs);
          resolve({ pdu, pairs });
        } catch (e) {
          reject(e);
        }
      };
      this.loginWaiter = { onResponse, reject };
      try {
        send(req.pairs, req.transit);
      } catch (e) {
        reject(e);
      }
    });
  }

  /** Called from the receive path on the Login Response that ends login. */
  enterFullFeature(pdu: LoginResponse, params: SessionParams): void {
    this.params = params;
    this.tsih = pdu.tsih;
    this.expCmdSn = pdu.expCmdSn;
    this.maxCmdSn = pdu.maxCmdSn;
    this.state = 'full';
    // RFC 7143 13.1: digests start with the first PDU after the last Login Response.
    this.digests = { header: params.headerDigest, data: params.dataDigest };
    if (this.reader) {
      this.reader.digests = this.digests;
      this.reader.maxDataSegmentLength = params.maxRecvDataSegmentLength;
    }
  }

  get randomBytes(): (n: number) => Buffer {
    return this.opts.randomBytes ?? cryptoRandomBytes;
  }

  get logger(): Logger {
    return this.log;
  }

  // ---- full feature phase: requests

  /** Any SCSI command; resolves with the status, whatever it is. */
  command(req: CommandRequest): Promise<CommandResult> {
    if (req.cdb.length > CDB_LENGTH_MAX) return Promise.reject(new RangeError(`CDB of ${req.cdb.length} bytes, over ${CDB_LENGTH_MAX}`));
    const dataOut = req.dataOut ?? null;
    const expectedLength = req.expectedLength ?? dataOut?.length ?? 0;
    const { task, done } = this.newTask('scsi', req.lun, req.immediate ?? false, this.timeoutOf(req.timeoutMs), (cmdSn) => this.sendCommand(task, req, cmdSn));
    task.scsi = { expectedLength, readBuffer: null, firstData: null, received: 0, nextDataSn: 0, dataOut, r2ts: 0 };
    this.issue(task);
    return done as Promise<CommandResult>;
  }

  /** The SCSI Command PDU with immediate data, then unsolicited Data-Out (RFC 7143 3.2.4.2). */
  private sendCommand(task: Task, req: CommandRequest, cmdSn: number): void {
    const p = this.params!;
    const st = task.scsi!;
    const out = st.dataOut;
    const firstBurst = out === null ? 0 : Math.min(out.length, p.firstBurstLength, st.expectedLength);
    const immediateLength = out !== null && p.immediateData && req.immediateData !== false
      ? Math.min(firstBurst, p.targetMaxRecvDataSegmentLength) : 0;
    const unsolicitedEnd = out !== null && !p.initialR2T && req.unsolicitedData !== false ? firstBurst : immediateLength;
    const pdu: ScsiCommandPdu = {
      opcode: Opcode.ScsiCommand, immediate: task.immediate, final: unsolicitedEnd <= immediateLength,
      read: out === null && st.expectedLength > 0, write: out !== null, attr: req.taskAttribute ?? 0,
      ahs: extendedCdbAhs(req.cdb), data: out === null ? EMPTY : out.subarray(0, immediateLength), itt: task.itt, lun: encodeLun(req.lun),
      expectedDataTransferLength: st.expectedLength, cmdSn, expStatSn: this.expStatSn, cdb: padCdb(req.cdb),
    };
    this.sendPdu(pdu);
    if (unsolicitedEnd > immediateLength) this.sendDataOut(task, RESERVED_TAG, immediateLength, unsolicitedEnd);
  }

  /** NOP-Out ping (immediate); resolves with the echoed data and the round trip time. */
  async ping(data: Buffer = EMPTY, timeoutMs?: number): Promise<{ data: Buffer; rttMs: number }> {
    const started = process.hrtime.bigint();
    const { task, done } = this.newTask('nop', 0, true, this.timeoutOf(timeoutMs), (cmdSn) => this.sendPdu({
      opcode: Opcode.NopOut, immediate: true, final: true, ahs: EMPTY, data, itt: task.itt, lun: encodeLun(0),
      ttt: RESERVED_TAG, cmdSn, expStatSn: this.expStatSn,
    }));
    this.issue(task);
    const pdu = (await done) as NopIn;
    return { data: pdu.data, rttMs: Number(process.hrtime.bigint() - started) / 1e6 };
  }

  /**
   * A task management request (immediate). On FUNCTION COMPLETE the tasks it ended fail here
   * with ABORTED, since the target sends no response for them (RFC 7143 11.5.1).
   */
  async taskManagement(fn: number, o: { lun?: number; referencedTaskTag?: number; refCmdSn?: number; expDataSn?: number; timeoutMs?: number } = {}): Promise<number> {
    const lun = o.lun ?? 0;
    const before = [...this.tasks.values()].filter((t) => t.kind === 'scsi');
    const { task, done } = this.newTask('tmf', lun, true, this.timeoutOf(o.timeoutMs), (cmdSn) => this.sendPdu({
      opcode: Opcode.TaskMgmtRequest, immediate: true, final: true, function: fn, ahs: EMPTY, data: EMPTY, itt: task.itt,
      lun: encodeLun(lun), referencedTaskTag: o.referencedTaskTag ?? RESERVED_TAG, cmdSn,
      expStatSn: this.expStatSn, refCmdSn: o.refCmdSn ?? 0, expDataSn: o.expDataSn ?? 0,
    }));
    this.issue(task);
    const response = ((await done) as TaskMgmtResponse).response;
    if (response === 0 || (fn === 1 && response === 1)) {
      // Tasks that completed before the TMF response are not touched (their tag may be reused).
      const ended = before.filter((t) => this.tasks.get(t.itt) === t && tmfCovers(fn, lun, o.referencedTaskTag, t));
      for (const t of ended) this.finish(t, new InitiatorError('ABORTED', `task 0x${t.itt.toString(16)} ended by task management function ${fn}`, { itt: t.itt }));
    }
    return response;
  }

  /** ABORT TASK for a command of this session (by its ITT). */
  abortTask(itt: number): Promise<number> {
    const t = this.tasks.get(itt);
    return this.taskManagement(1, { lun: t?.lun ?? 0, referencedTaskTag: itt, refCmdSn: t?.cmdSn ?? this.cmdSn });
  }

  /** A Text Request exchange (continued by TTT until the target is done). */
  text(pairs: TextPairs, timeoutMs?: number): Promise<TextPairs> {
    const { task, done } = this.newTask('text', 0, false, this.timeoutOf(timeoutMs), (cmdSn) => this.sendPdu({
      opcode: Opcode.TextRequest, immediate: false, final: true, continue: false, ahs: EMPTY, data: encodeText(pairs),
      itt: task.itt, lun: encodeLun(0), ttt: RESERVED_TAG, cmdSn, expStatSn: this.expStatSn,
    }));
    task.text = [];
    this.issue(task);
    return done as Promise<TextPairs>;
  }

  /** SendTargets=All (RFC 7143 Appendix C), in a discovery or a normal session. */
  async sendTargets(which = 'All'): Promise<TargetRecord[]> {
    return parseSendTargets(await this.text([['SendTargets', which]]));
  }

  /** Logout (reason 0: close the session) and close the connection. */
  async logout(reasonCode = 0, timeoutMs?: number): Promise<{ response: number; time2Wait: number; time2Retain: number }> {
    const { task, done } = this.newTask('logout', 0, false, this.timeoutOf(timeoutMs), (cmdSn) => this.sendPdu({
      opcode: Opcode.LogoutRequest, immediate: false, final: true, reasonCode, ahs: EMPTY, data: EMPTY,
      itt: task.itt, cid: 0, cmdSn, expStatSn: this.expStatSn,
    }));
    this.issue(task);
    // New requests are refused from here on; responses to those in flight still arrive.
    if (this.state === 'full') this.state = 'logout';
    const pdu = (await done) as { response: number; time2Wait: number; time2Retain: number };
    this.socket?.end();
    return { response: pdu.response, time2Wait: pdu.time2Wait, time2Retain: pdu.time2Retain };
  }

  // ---- typed convenience layer (throws ScsiStatusError on a status other than GOOD)

  private async ok(req: CommandRequest): Promise<CommandResult> {
    const r = await this.command(req);
    if (r.response !== 0 || r.status !== GOOD) throw new ScsiStatusError(r);
    return r;
  }

  async testUnitReady(lun: number): Promise<void> {
    await this.ok({ lun, cdb: cdbTestUnitReady() });
  }

  async inquiry(lun: number): Promise<InquiryData> {
    return parseInquiry((await this.ok({ lun, cdb: cdbInquiry(96), expectedLength: 96 })).data);
  }

  /** An INQUIRY VPD page, raw. */
  async inquiryVpd(lun: number, page: number, allocationLength = 255): Promise<Buffer> {
    return (await this.ok({ lun, cdb: cdbInquiry(allocationLength, page), expectedLength: allocationLength })).data;
  }

  async readCapacity16(lun: number): Promise<Capacity16> {
    const cap = parseCapacity16((await this.ok({ lun, cdb: cdbReadCapacity16(32), expectedLength: 32 })).data);
    this.blockLengths.set(lun, cap.blockLength);
    return cap;
  }

  async reportLuns(lun = 0): Promise<number[]> {
    let allocation = 1024;
    for (;;) {
      const d = (await this.ok({ lun, cdb: cdbReportLuns(allocation), expectedLength: allocation })).data;
      const parsed = parseReportLuns(d);
      if (parsed.listLength + 8 <= allocation || allocation >= 1 << 20) return parsed.luns;
      allocation = parsed.listLength + 8;
    }
  }

  /** SBC-3 6.6.4: the Block Limits VPD page (B0h); zeros where the device states no limit or lacks the page. */
  async blockLimits(lun: number): Promise<BlockLimits> {
    const known = this.limits.get(lun);
    if (known !== undefined) return known;
    const r = await this.command({ lun, cdb: cdbInquiry(64, 0xb0), expectedLength: 64 });
    const limits = r.status === GOOD && r.data.length >= 16 && r.data[1] === 0xb0 ? parseBlockLimits(r.data) : NO_LIMITS;
    this.limits.set(lun, limits);
    return limits;
  }

  /** READ(16); a transfer over the device's MAXIMUM TRANSFER LENGTH is split into several commands. */
  async read16(lun: number, lba: bigint | number, blocks: number, o: { timeoutMs?: number } = {}): Promise<Buffer> {
    const size = await this.blockLength(lun);
    const parts: Buffer[] = [];
    for (const [at, n] of await this.pieces(lun, BigInt(lba), blocks)) {
      parts.push((await this.ok({ lun, cdb: cdbRw16(ScsiOp.READ_16, at, n), expectedLength: n * size, timeoutMs: o.timeoutMs })).data);
    }
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }

  /** WRITE(16), split like read16; resolves with the result of the last command. */
  async write16(lun: number, lba: bigint | number, data: Buffer, o: { fua?: boolean; timeoutMs?: number } = {}): Promise<CommandResult> {
    const size = await this.blockLength(lun);
    if (data.length % size !== 0) throw new RangeError(`write of ${data.length} bytes is not a whole number of ${size}-byte blocks`);
    let last: CommandResult | null = null;
    let offset = 0;
    for (const [at, n] of await this.pieces(lun, BigInt(lba), data.length / size)) {
      const piece = data.subarray(offset, offset + n * size);
      offset += n * size;
      last = await this.ok({ lun, cdb: cdbRw16(ScsiOp.WRITE_16, at, n, o.fua), dataOut: piece, timeoutMs: o.timeoutMs });
    }
    return last ?? this.ok({ lun, cdb: cdbRw16(ScsiOp.WRITE_16, BigInt(lba), 0, o.fua) });
  }

  private async pieces(lun: number, lba: bigint, blocks: number): Promise<Array<[bigint, number]>> {
    const max = blocks > 0 ? (await this.blockLimits(lun)).maximumTransferLength : 0;
    if (max === 0 || blocks <= max) return [[lba, blocks]];
    const out: Array<[bigint, number]> = [];
    for (let done = 0; done < blocks; done += max) out.push([lba + BigInt(done), Math.min(max, blocks - done)]);
    return out;
  }

  async synchronizeCache16(lun: number, lba: bigint | number = 0n, blocks = 0): Promise<void> {
    await this.ok({ lun, cdb: cdbSynchronizeCache16(BigInt(lba), blocks) });
  }

  private async blockLength(lun: number): Promise<number> {
    return this.blockLengths.get(lun) ?? (await this.readCapacity16(lun)).blockLength;
  }
}

const EMPTY = Buffer.alloc(0);

/** RFC 7143 11.3.5: 16 CDB bytes in the BHS, the rest in an AHS; the AHS length field is 16 bits but the AHS fits in 1020 bytes. */
export const CDB_LENGTH_MAX = 260;

/** RFC 7143 11.2.2: Extended CDB AHS (type 1): AHSLength = extra bytes + 1 reserved byte, padded to 4. */
function extendedCdbAhs(cdb: Buffer): Buffer {
  if (cdb.length <= 16) return EMPTY;
  const extra = cdb.length - 16;
  const ahs = Buffer.alloc(pad4(4 + extra));
  ahs.writeUInt16BE(extra + 1, 0);
  ahs[2] = 1;
  cdb.copy(ahs, 4, 16);
  return ahs;
}

function padCdb(cdb: Buffer): Buffer {
  if (cdb.length > 16) return cdb.subarray(0, 16);
  if (cdb.length === 16) return cdb;
  const b = Buffer.alloc(16);
  cdb.copy(b);
  return b;
}

/** Which outstanding tasks a successful TMF ended (RFC 7143 11.5.1, SAM-5 7). */
function tmfCovers(fn: number, lun: number, referencedTaskTag: number | undefined, t: Task): boolean {
  switch (fn) {
    case 1: return t.itt === referencedTaskTag;          // ABORT TASK
    case 2: case 4: case 5: return t.lun === lun;          // ABORT TASK SET, CLEAR TASK SET, LU RESET
    case 6: case 7: return true;                           // TARGET WARM/COLD RESET
    default: return false;
  }
}

function loginFailure(pdu: LoginResponse): InitiatorError {
  const pairs = (() => { try { return decodeText(pdu.data); } catch { return []; } })();
  const targetAddress = pairs.find(([k]) => k === 'TargetAddress')?.[1];
  const what = pdu.statusClass === 1 ? 'redirected' : pdu.statusClass === 2 ? 'initiator error' : 'target error';
  const code = pdu.statusClass === 2 && pdu.statusDetail === 1 ? 'AUTHENTICATION' : 'LOGIN_FAILED';
  return new InitiatorError(code, `login failed: ${what} (status ${hex2(pdu.statusClass)}${hex2(pdu.statusDetail)})`,
    { statusClass: pdu.statusClass, statusDetail: pdu.statusDetail, targetAddress });
}

/** Login redirections followed by IscsiInitiator.open() before it gives up. */
export const redirectsMax = 4;

/** RFC 7143 13.8: TargetAddress=domainname[:port][,portal-group-tag]; IPv6 in brackets. */
export function parseTargetAddress(v: string): { host: string; port: number; tpgt: number } | null {
  const m = /^(\[[^\]]+\]|[^:,\[\]]+)(?::(\d{1,5}))?(?:,(\d{1,5}))?$/.exec(v);
  if (m === null) return null;
  const port = Number(m[2] ?? 3260);
  if (port < 1 || port > 65535) return null;
  return { host: m[1].replace(/^\[|\]$/g, ''), port, tpgt: Number(m[3] ?? 1) };
}

/** SendTargets answer: TargetName= then its TargetAddress=host:port,tpgt lines. */
export function parseSendTargets(pairs: TextPairs): TargetRecord[] {
  const out: TargetRecord[] = [];
  for (const [k, v] of pairs) {
    if (k === 'TargetName') out.push({ name: v, addresses: [] });
    else if (k === 'TargetAddress' && out.length > 0) {
      const a = parseTargetAddress(v);
      if (a !== null) out[out.length - 1].addresses.push(a);
    }
  }
  return out;
}
