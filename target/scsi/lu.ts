// One logical unit's SCSI-level state: unit attentions per I_T nexus, SPC-2 reservation,
// persistent reservations, mode pages, medium state and the write range locks.
import type { LuDefinition } from './types';
import type { Volume } from '../../firmware/volume';
import type { OpTable } from './dispatch';
import { Sense, SenseCode } from './sense';
import { ModeState } from './mode';
import { PrState } from './pr';
import { CopyTable } from './xcopy';

/** Pending unit attentions kept per I_T nexus; older ones drop off (SAM-5 5.14: may be merged). */
export const uaQueueMax = 8;

/**
 * Ranges locked against each other by write-path commands (COMPARE AND WRITE atomicity). Held
 * ranges and waiters are bounded by the commands in flight, which the iSCSI command window bounds.
 */
export class RangeLock {
  private held: { lba: number; end: number; done: Promise<void> }[] = [];

  async acquire(lba: number, blocks: number): Promise<() => void> {
    const end = lba + Math.max(blocks, 1);
    for (;;) {
      const clash = this.held.find((h) => h.lba < end && lba < h.end);
      if (!clash) break;
      await clash.done;
    }
    let release!: () => void;
    const entry = { lba, end, done: new Promise<void>((r) => { release = r; }) };
    this.held.push(entry);
    return () => {
      this.held = this.held.filter((h) => h !== entry);
      release();
    };
  }
}

const itKeys = new WeakMap<object, string>();

/**
 * "<initiator port>|<target port>": the identity of an I_T nexus across reconnects. Built once
 * per nexus object (it is asked for on every command), never changes: the port names are readonly.
 */
export function itKey(n: { readonly initiatorPort: string; readonly targetPort: string }): string {
  let k = itKeys.get(n);
  if (k === undefined) {
    k = `${n.initiatorPort}|${n.targetPort}`;
    itKeys.set(n, k);
  }
  return k;
}

export class LogicalUnit {
  readonly lun: number;
  readonly volume: Volume;
  readonly mode: ModeState;
  readonly pr: PrState;
  /** SPC-2 RESERVE(6/10) holder (I_T nexus key), or null. */
  reservedBy: string | null = null;
  mediumPresent = true;
  /** I_T nexuses that sent PREVENT ALLOW MEDIUM REMOVAL with PREVENT=1. */
  readonly preventers = new Set<string>();
  readonly locks = new RangeLock();
  /** EXTENDED COPY operations per (I_T nexus, LIST ID) for RECEIVE COPY RESULTS. */
  readonly copies = new CopyTable();
  /** SBC-3 4.11: a SANITIZE is running (most commands get NOT READY, SANITIZE IN PROGRESS). */
  sanitizing = false;
  /**
   * The running sanitize operation, settled (never rejected) when it ends. It outlives the
   * SANITIZE command when that task is aborted (SBC-3 4.11.2), so this is what to wait for.
   */
  sanitizeRun: Promise<void> | null = null;
  /**
   * SPC-4 4.5.2.4.4 PROGRESS INDICATION of the running sanitize: the fraction done, 0..65535
   * (65536 = 100%).
   */
  sanitizeProgress = 0;
  /** SBC-3 4.11: the last SANITIZE failed; only SANITIZE (or EXIT FAILURE MODE) clears it. */
  sanitizeFailed = false;
  /** Capacity last reported; a change raises CAPACITY DATA HAS CHANGED. */
  capacitySeen: number;
  private readonly ua = new Map<string, SenseCode[]>();
  private loading: Promise<void> | null = null;

  /** The opcodes this LU's device type takes. */
  constructor(readonly def: LuDefinition, readonly table: OpTable) {
    this.lun = def.lun;
    this.volume = def.volume;
    this.mode = new ModeState(def.state);
    this.pr = new PrState(def.state);
    this.capacitySeen = def.volume.blockCount;
  }

  /** Lazy load of the persisted state (APTPL reservations, saved mode pages) on first command. */
  load(): Promise<void> {
    if (!this.loading) {
      this.loading = Promise.all([this.mode.load(), this.pr.load()]).then(() => undefined, (e: unknown) => {
        this.loading = null; // retry on the next command
        throw e;
      });
    }
    return this.loading;
  }

  get writeProtected(): boolean {
    return this.def.readOnly === true || this.mode.swp;
  }

  /** Sense data format for this I_T nexus (control mode page D_SENSE). */
  descriptorSense(key: string): boolean {
    return this.mode.dSense(key);
  }

  addUa(key: string, s: SenseCode): void {
    let q = this.ua.get(key);
    if (!q) this.ua.set(key, (q = []));
    if (s === Sense.POWER_ON_RESET || s === Sense.POWER_ON_OCCURRED) q.length = 0;
    if (q.includes(s)) return;
    q.push(s);
    if (q.length > uaQueueMax) q.shift();
  }

  addUaAll(keys: Iterable<string>, s: SenseCode, except?: string): void {
    for (const k of keys) if (k !== except) this.addUa(k, s);
  }

  peekUa(key: string): SenseCode | undefined {
    return this.ua.get(key)?.[0];
  }

  takeUa(key: string): SenseCode | undefined {
    const q = this.ua.get(key);
    const s = q?.shift();
    if (q && q.length === 0) this.ua.delete(key);
    return s;
  }

  /** Removes one kind of pending unit attention (e.g. REPORT LUNS clears REPORTED LUNS DATA HAS CHANGED). */
  dropUa(key: string, s: SenseCode): void {
    const q = this.ua.get(key);
    if (!q) return;
    const rest = q.filter((x) => x !== s);
    if (rest.length) this.ua.set(key, rest);
    else this.ua.delete(key);
  }

  clearUa(key: string): void {
    this.ua.delete(key);
  }
}
