// ScsiTarget: the SCSI target device behind one iSCSI target (one target port group). It owns the
// LUs and the live I_T nexuses; dispatch.ts runs each command against the disk template.
//
// Persistent state (APTPL reservations, saved mode pages) is loaded lazily: construction is
// synchronous and each LU reads its StateStore before its first command runs (or when load() is
// awaited, which a rack may do at start-up to surface StateStore errors early).
import pino from 'pino';
import type { Logger } from 'pino';
import {
  LuDefinition, Nexus, ScsiCommand, ScsiResponse, ScsiTargetDevice, TmfFunction, TmfResponse,
} from './types';
import { LogicalUnit, itKey } from './lu';
import { Sense, SenseCode } from './sense';
import { TargetInfo, dispatch } from './dispatch';
import type { OpTable } from './dispatch';
import { diskOpcodes } from './disk';
import { controllerOpcodes } from './controller';
import type { PairControl } from '../../firmware/pairs/control';

export interface ScsiTargetOptions {
  /** Target IQN. */
  name: string;
  luns: LuDefinition[];
  log?: Logger;
  /** Hears of every unexpected exception (answered INTERNAL TARGET FAILURE); tests fail on it. */
  onInternalError?: (err: unknown) => void;
  /** The pair operations of the DKC behind the target (the vendor pair commands). */
  pairs?: PairControl;
}

function opcodes(def: LuDefinition): OpTable {
  return def.kind === 'command-device' ? controllerOpcodes : diskOpcodes;
}

export class ScsiTarget implements ScsiTargetDevice {
  readonly name: string;
  /** Every unexpected exception seen so far (bounded); an empty list is the healthy state. */
  readonly internalErrors: unknown[] = [];
  private readonly luns = new Map<number, LogicalUnit>();
  private readonly live = new Map<number, Nexus>();
  private readonly log: Logger;
  private readonly onInternalError?: (err: unknown) => void;
  private readonly info: TargetInfo;

  constructor(opts: ScsiTargetOptions) {
    this.name = opts.name;
    this.log = (opts.log ?? pino({ level: 'silent' })).child({ target: opts.name });
    this.onInternalError = opts.onInternalError;
    for (const def of opts.luns) {
      if (this.luns.has(def.lun)) throw new Error(`duplicate LUN ${def.lun} in target ${opts.name}`);
      this.luns.set(def.lun, new LogicalUnit(def, opcodes(def)));
    }
    const live = this.live;
    this.info = {
      name: this.name, luns: this.luns, table: diskOpcodes, pairs: opts.pairs,
      nexuses: () => live.values(),
      *nexusKeys() { for (const n of live.values()) yield itKey(n); },
    };
  }

  /** Loads every LU's persisted state now instead of before its first command. */
  async load(): Promise<void> {
    await Promise.all([...this.luns.values()].map((lu) => lu.load()));
  }

  hasLun(lun: number): boolean {
    return this.luns.has(lun);
  }

  nexusAdded(nexus: Nexus): void {
    this.live.set(nexus.id, nexus);
    for (const lu of this.luns.values()) lu.addUa(itKey(nexus), Sense.POWER_ON_RESET);
  }

  nexusRemoved(nexus: Nexus): void {
    this.live.delete(nexus.id);
    const key = itKey(nexus);
    if ([...this.live.values()].some((n) => itKey(n) === key)) return; // same I_T nexus still live
    for (const lu of this.luns.values()) {
      if (lu.reservedBy === key) lu.reservedBy = null; // SPC-2 5.5.1: released on I_T nexus loss
      lu.preventers.delete(key);
      lu.mode.forget(key);
      lu.copies.forget(key);
      lu.clearUa(key);
    }
  }

  execute(cmd: ScsiCommand): Promise<ScsiResponse> {
    // No child logger per command: the few log lines on this path name lun and itt themselves.
    return dispatch(this.info, cmd, this.log, (e) => {
      if (this.internalErrors.length < 100) this.internalErrors.push(e);
      this.onInternalError?.(e);
    });
  }

  taskManagement(fn: TmfFunction, nexus: Nexus, lun: number): TmfResponse {
    switch (fn) {
      case TmfFunction.AbortTask:
      case TmfFunction.AbortTaskSet:
      case TmfFunction.ClearTaskSet:
        return this.luns.has(lun) ? TmfResponse.Complete : TmfResponse.LunDoesNotExist;
      case TmfFunction.LogicalUnitReset: {
        const lu = this.luns.get(lun);
        if (!lu) return TmfResponse.LunDoesNotExist;
        this.resetLu(lu, Sense.BUS_DEVICE_RESET);
        return TmfResponse.Complete;
      }
      case TmfFunction.TargetWarmReset:
      case TmfFunction.TargetColdReset: {
        const s = fn === TmfFunction.TargetColdReset ? Sense.POWER_ON_OCCURRED : Sense.BUS_DEVICE_RESET;
        for (const lu of this.luns.values()) this.resetLu(lu, s);
        return TmfResponse.Complete;
      }
      case TmfFunction.ClearAca:
      case TmfFunction.TaskReassign:
        return TmfResponse.NotSupported;
    }
  }

  /**
   * SAM-5 6.3.3 / SPC-2 5.5.1: a reset releases RESERVE reservations and medium-removal
   * prevention, and every I_T nexus (the issuer's too: libiscsi MultipathIO.Reset) gets the UA.
   */
  private resetLu(lu: LogicalUnit, s: SenseCode): void {
    lu.reservedBy = null;
    lu.preventers.clear();
    lu.addUaAll(this.info.nexusKeys(), s);
  }

  /** Adds an LU at run time; every nexus gets REPORTED LUNS DATA HAS CHANGED (SPC-4 6.33). */
  addLun(def: LuDefinition): void {
    if (this.luns.has(def.lun)) throw new Error(`LUN ${def.lun} already exists in target ${this.name}`);
    this.luns.set(def.lun, new LogicalUnit(def, opcodes(def)));
    this.lunsChanged();
  }

  removeLun(lun: number): boolean {
    const gone = this.luns.delete(lun);
    if (gone) this.lunsChanged();
    return gone;
  }

  private lunsChanged(): void {
    for (const lu of this.luns.values()) lu.addUaAll(this.info.nexusKeys(), Sense.REPORTED_LUNS_DATA_HAS_CHANGED);
  }
}
