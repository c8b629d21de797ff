// One TCP connection of the target: framing, the send path (StatSN, cork), the current phase
// handler and the NOP-In keep-alive. Socket callbacks only enqueue PDUs; the drain runs them.
import type { Socket } from 'net';
import type { Logger } from 'pino';
import { framePdu, PduReader, ReadResult } from './framing';
import { defaultConnectionParams, ConnectionParams } from './keys';
import { assertNever, encodeBhs, encodeLun, Opcode, Pdu, PduError, RejectReason, RESERVED_TAG } from './pdu';
import type { PhaseHandler } from './phase';
import type { Session } from './session';
import type { ServerContext } from './server-context';

/** PDUs decoded but not yet handled; the socket is paused above this. */
export const inboxPdusMax = 256;
/** A login that takes longer than this is dropped (RFC 7143 leaves the bound to the target). */
export const loginTimeoutMs = 30_000;
/** How long close() waits for the peer to take the last PDUs before destroying the socket. */
const closeLingerMs = 2_000;

let nextConnectionId = 1;

export class Connection {
  readonly id = nextConnectionId++;
  log: Logger;
  params: ConnectionParams = defaultConnectionParams();
  session: Session | undefined;
  /** CID from the login request. */
  cid = 0;
  phase!: PhaseHandler;
  closed = false;
  private statSn = 0;
  private readonly reader: PduReader;
  private readonly inbox: ReadResult[] = [];
  private draining = false;
  private lastReceiveMs = Date.now();
  private readonly traceEnabled: boolean;
  private nopTimer: NodeJS.Timeout | undefined;
  private pingTtt: number | undefined;
  private pingSentMs = 0;
  private nextPingTtt = 1;
  private loginTimer: NodeJS.Timeout | undefined;
  private readonly closeHooks: Array<() => void> = [];

  constructor(readonly socket: Socket, readonly server: ServerContext, log: Logger) {
    this.log = log.child({ conn: this.id, peer: `${socket.remoteAddress}:${socket.remotePort}` });
    this.reader = new PduReader((r) => this.enqueue(r));
    this.traceEnabled = this.log.isLevelEnabled('trace');
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (e) => this.log.debug({ err: e.message }, 'socket error'));
    socket.on('close', () => this.onClosed());
    this.loginTimer = setTimeout(() => this.drop('login did not complete in time'), loginTimeoutMs);
  }

  /** The address the initiator reached us on (for SendTargets when a portal listens on 0.0.0.0). */
  get localAddress(): { host: string; port: number } {
    return { host: this.socket.localAddress ?? '127.0.0.1', port: this.socket.localPort ?? 0 };
  }

  onClose(hook: () => void): void {
    this.closeHooks.push(hook);
  }

  // ---- receive

  private receive(chunk: Buffer): void {
    try {
      this.reader.push(chunk);
    } catch (e) {
      // The framer only throws on a bug; it must not take the process down.
      this.log.error({ err: e }, 'internal error reading PDUs');
      this.drop('internal error');
    }
  }

  private enqueue(r: ReadResult): void {
    this.inbox.push(r);
    if (this.inbox.length >= inboxPdusMax) this.socket.pause();
    if (!this.draining) {
      this.draining = true;
      queueMicrotask(() => this.drain());
    }
  }

  private drain(): void {
    try {
      while (this.inbox.length > 0 && !this.closed) {
        const r = this.inbox.shift()!;
        this.lastReceiveMs = Date.now();
        this.handle(r);
      }
    } catch (e) {
      // A bug, not input: log it and drop this connection only.
      this.log.error({ err: e }, 'internal error handling a PDU');
      this.drop('internal error');
    } finally {
      this.draining = false;
      if (this.socket.isPaused() && !this.closed) this.socket.resume();
    }
  }

  private handle(r: ReadResult): void {
    switch (r.kind) {
      case 'pdu': return this.dispatch(r.pdu);
      case 'reject': return this.phase.malformed(r.bhs, r.error);
      case 'fatal':
        this.log.warn({ code: r.error.code }, r.error.message);
        this.phase.malformed(r.bhs, r.error);
        this.drop(r.error.message);
        return;
      default: return assertNever(r);
    }
  }

  private dispatch(pdu: Pdu): void {
    if (this.traceEnabled) this.log.trace({ pdu: summary(pdu) }, 'received');
    switch (pdu.opcode) {
      case Opcode.LoginRequest: return this.phase.login(pdu);
      case Opcode.ScsiCommand: return this.phase.scsiCommand(pdu);
      case Opcode.DataOut: return this.phase.dataOut(pdu);
      case Opcode.NopOut: return this.phase.nopOut(pdu);
      case Opcode.TaskMgmtRequest: return this.phase.taskMgmt(pdu);
      case Opcode.TextRequest: return this.phase.text(pdu);
      case Opcode.LogoutRequest: return this.phase.logout(pdu);
      case Opcode.SnackRequest: return this.phase.snack(pdu);
      case Opcode.NopIn:
      case Opcode.ScsiResponse:
      case Opcode.TaskMgmtResponse:
      case Opcode.LoginResponse:
      case Opcode.TextResponse:
      case Opcode.DataIn:
      case Opcode.LogoutResponse:
      case Opcode.R2t:
      case Opcode.AsyncMessage:
      case Opcode.Reject:
        // A target opcode from the initiator (RFC 7143 11.17.1: not an initiator PDU).
        return this.phase.malformed(encodeBhs(pdu),
          new PduError('TARGET_OPCODE', RejectReason.ProtocolError, `opcode 0x${pdu.opcode.toString(16)} is a target opcode`));
      default: return assertNever(pdu);
    }
  }

  // ---- send

  /** StatSN for the next status-bearing PDU (RFC 7143 4.2.2.2). */
  takeStatSn(): number {
    const sn = this.statSn;
    this.statSn = (this.statSn + 1) >>> 0;
    return sn;
  }

  /** StatSN a PDU without status carries (R2T, NOP-In ping, Data-In without S). */
  peekStatSn(): number {
    return this.statSn;
  }

  setStatSn(sn: number): void {
    this.statSn = sn >>> 0;
  }

  /**
   * Writes PDUs without copying their data. The socket stays corked until the current tick ends,
   * so PDUs sent by several completions in one tick leave in one writev.
   */
  send(pdus: Pdu[]): void {
    if (this.closed || this.socket.destroyed) return;
    if (this.traceEnabled) for (const pdu of pdus) this.log.trace({ pdu: summary(pdu) }, 'sent');
    const digests = { header: this.params.headerDigest && this.fullFeature, data: this.params.dataDigest && this.fullFeature };
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    for (const pdu of pdus) for (const piece of framePdu(pdu, digests)) this.socket.write(piece);
  }

  private corked = false;

  private fullFeature = false;

  /** After the last login response: digests on, our MaxRecvDataSegmentLength enforced, keep-alive on. */
  enterFullFeature(params: ConnectionParams): void {
    this.params = params;
    this.fullFeature = true;
    this.reader.digests = { header: params.headerDigest, data: params.dataDigest };
    this.reader.maxDataSegmentLength = params.targetMaxRecvDataSegmentLength;
    if (this.loginTimer !== undefined) clearTimeout(this.loginTimer);
    this.loginTimer = undefined;
    this.scheduleNop();
  }

  // ---- NOP-In keep-alive (RFC 7143 11.19: target-initiated ping with a TTT)

  private scheduleNop(): void {
    const { intervalMs = 5000, timeoutMs = 30000 } = { ...this.server.options.nopIn, ...this.session!.target?.nopIn };
    if (intervalMs === 0) return;
    const tick = Math.max(10, Math.min(intervalMs, timeoutMs) / 2);
    this.nopTimer = setInterval(() => this.nopTick(intervalMs, timeoutMs), tick);
    this.nopTimer.unref();
  }

  private nopTick(intervalMs: number, timeoutMs: number): void {
    if (this.closed) return;
    const now = Date.now();
    if (this.pingTtt !== undefined) {
      if (now - this.pingSentMs >= timeoutMs) this.drop(`no answer to NOP-In within ${timeoutMs} ms`);
      return;
    }
    if (now - this.lastReceiveMs < intervalMs) return;
    this.pingTtt = this.nextPingTtt;
    this.nextPingTtt = this.nextPingTtt >= 0x7fffffff ? 1 : this.nextPingTtt + 1;
    this.pingSentMs = now;
    const w = this.session!.window();
    this.send([{
      opcode: Opcode.NopIn, immediate: false, final: true, ahs: EMPTY, data: EMPTY, itt: RESERVED_TAG,
      lun: encodeLun(0), ttt: this.pingTtt, statSn: this.peekStatSn(), ...w,
    }]);
  }

  /** A NOP-Out with ITT 0xffffffff answering our ping; false when the TTT is not ours. */
  pingAnswered(ttt: number): boolean {
    if (this.pingTtt === undefined || ttt !== this.pingTtt) return false;
    this.pingTtt = undefined;
    return true;
  }

  // ---- close

  /** Sends what is queued, then closes; the peer gets closeLingerMs to read it. */
  close(reason: string): void {
    if (this.closed) return;
    this.log.debug({ reason }, 'closing connection');
    this.socket.end();
    const t = setTimeout(() => this.socket.destroy(), closeLingerMs);
    t.unref();
    this.shutdown();
  }

  /** Drops the connection at once (ERL0 recovery): tasks are aborted and get no response. */
  drop(reason: string): void {
    if (this.closed) return;
    this.log.info({ reason }, 'dropping connection');
    this.socket.destroy();
    this.shutdown();
  }

  private onClosed(): void {
    this.shutdown();
  }

  private shutdown(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.nopTimer !== undefined) clearInterval(this.nopTimer);
    if (this.loginTimer !== undefined) clearTimeout(this.loginTimer);
    this.inbox.length = 0;
    for (const hook of this.closeHooks.splice(0)) hook();
  }
}

const EMPTY = Buffer.alloc(0);

/** A PDU without its data, for trace logs. */
function summary(pdu: Pdu): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(pdu)) {
    if (k === 'data' || k === 'ahs') out[k + 'Length'] = (v as Buffer).length;
    else if (Buffer.isBuffer(v)) out[k] = v.toString('hex');
    else out[k] = v;
  }
  return out;
}
