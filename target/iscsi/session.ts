// Sessions (RFC 7143 4.1): the session table with TSIH allocation and reinstatement, and per
// session the command window (RFC 7143 4.2.2.1) that delivers commands in CmdSN order.
import type { Logger } from 'pino';
import type { Nexus } from '../scsi/types';
import type { SessionKind, SessionParams } from './keys';
import { snLessThan } from './pdu';
import type { TargetDefinition } from './types';
import type { Task } from './task';

/** Commands the initiator may have outstanding: MaxCmdSN - ExpCmdSN + 1 + tasks running. */
export const cmdWindowMax = 128;
/** Immediate commands running at once; more get Reject "immediate command reject" (RFC 7143 11.17.1). */
export const immediateTasksMax = 16;
/** TSIH 0 is reserved for "new session" (RFC 7143 11.12.6). */
const TSIH_MAX = 0xffff;

/** Something that owns a session's connection: lets the session close it on reinstatement. */
export interface SessionConnection {
  readonly cid: number;
  /** Drops the connection; its tasks are aborted and get no response. */
  drop(reason: string): void;
  /** Closes after what was sent is flushed; tasks are aborted at once. */
  close(reason: string): void;
}

/** A PDU that takes part in CmdSN ordering. */
export interface OrderedPdu {
  immediate: boolean;
  cmdSn: number;
}

/** RFC 7143 11.5.1 b): a CmdSN "considered received" by ABORT TASK before its command came. */
const CONSUMED = Symbol('consumed');

let nextNexusId = 1;

export class Session<P extends OrderedPdu = OrderedPdu> {
  connection: SessionConnection | undefined;
  /** Tasks by Initiator Task Tag (RFC 7143 4.2.1: ITTs are unique per session). */
  readonly tasks = new Map<number, Task>();
  expCmdSn: number;
  maxCmdSn: number;
  immediateRunning = 0;
  /** Tasks counted against the window: received and not yet finished. */
  activeTasks = 0;
  readonly nexus: Nexus | undefined;
  closed = false;
  private readonly held = new Map<number, P | typeof CONSUMED>();

  constructor(
    readonly tsih: number,
    readonly isid: Buffer,
    readonly initiatorName: string,
    readonly kind: SessionKind,
    readonly target: TargetDefinition | undefined,
    readonly params: SessionParams,
    firstCmdSn: number,
    readonly log: Logger,
  ) {
    this.expCmdSn = firstCmdSn >>> 0;
    this.maxCmdSn = (firstCmdSn + cmdWindowMax - 1) >>> 0;
    if (target !== undefined && kind === 'Normal') {
      // RFC 7143 13.2.1 / 10.1.1: iSCSI initiator and target port names.
      this.nexus = {
        id: nextNexusId++,
        initiatorPort: `${initiatorName},i,0x${isid.toString('hex')}`,
        targetPort: `${target.name},t,0x${target.tpgt.toString(16).padStart(4, '0')}`,
        relativeTargetPortId: 1,
      };
    }
  }

  /** RFC 7143 3.2.2.1: is sn within [ExpCmdSN, MaxCmdSN]? */
  inWindow(sn: number): boolean {
    return !snLessThan(sn, this.expCmdSn) && !snLessThan(this.maxCmdSn, sn);
  }

  /**
   * Delivers non-immediate PDUs in CmdSN order: runs what is next, holds what is ahead within
   * the window, and silently drops duplicates and anything outside it (RFC 7143 3.2.2.1).
   * Returns false when the PDU was dropped.
   */
  order(pdu: P, run: (p: P) => void): boolean {
    if (pdu.immediate) {
      run(pdu);
      return true;
    }
    const sn = pdu.cmdSn >>> 0;
    if (sn !== this.expCmdSn) {
      if (!this.inWindow(sn) || this.held.has(sn)) return false;
      this.held.set(sn, pdu);
      return true;
    }
    this.expCmdSn = (this.expCmdSn + 1) >>> 0;
    run(pdu);
    for (;;) {
      const next = this.held.get(this.expCmdSn);
      if (next === undefined) break;
      this.held.delete(this.expCmdSn);
      this.expCmdSn = (this.expCmdSn + 1) >>> 0;
      if (next !== CONSUMED) run(next);
    }
    return true;
  }

  /** A held (not yet delivered) PDU with this CmdSN, or whether the CmdSN is still to come. */
  heldAt(sn: number): P | undefined {
    const h = this.held.get(sn >>> 0);
    return h === CONSUMED ? undefined : h;
  }

  /** RFC 7143 11.5.1 b): treat a CmdSN as received; the command, if it comes, is dropped. */
  consume(sn: number): void {
    if (sn === this.expCmdSn) {
      this.order({ immediate: false, cmdSn: sn } as P, () => undefined);
      return;
    }
    this.held.set(sn >>> 0, CONSUMED);
  }

  /** ExpCmdSN and MaxCmdSN for the next PDU sent; the window reopens as tasks finish. */
  window(): { expCmdSn: number; maxCmdSn: number } {
    const candidate = (this.expCmdSn + cmdWindowMax - 1 - this.activeTasks) >>> 0;
    // RFC 7143 4.2.2.1: MaxCmdSN never moves backwards.
    if (snLessThan(this.maxCmdSn, candidate)) this.maxCmdSn = candidate;
    return { expCmdSn: this.expCmdSn, maxCmdSn: this.maxCmdSn };
  }
}

/** All live sessions of one server, by TSIH. */
export class SessionTable {
  private readonly byTsih = new Map<number, Session>();
  private lastTsih = 0;

  get(tsih: number): Session | undefined {
    return this.byTsih.get(tsih);
  }

  /** RFC 7143 6.3.5: the session an initiator reinstates by logging in again with the same ISID. */
  findByIsid(initiatorName: string, isid: Buffer, targetName: string | undefined): Session | undefined {
    for (const s of this.byTsih.values()) {
      if (s.initiatorName === initiatorName && s.isid.equals(isid) && s.target?.name === targetName) return s;
    }
    return undefined;
  }

  /** A fresh nonzero TSIH not in use; undefined when all 65535 are taken. */
  allocateTsih(): number | undefined {
    for (let i = 0; i < TSIH_MAX; i++) {
      this.lastTsih = (this.lastTsih % TSIH_MAX) + 1;
      if (!this.byTsih.has(this.lastTsih)) return this.lastTsih;
    }
    return undefined;
  }

  add(s: Session): void {
    this.byTsih.set(s.tsih, s);
  }

  remove(s: Session): void {
    if (this.byTsih.get(s.tsih) === s) this.byTsih.delete(s.tsih);
  }

  all(): Session[] {
    return [...this.byTsih.values()];
  }
}
