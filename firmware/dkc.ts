// One disk controller (DKC), after seed 001 Fig. 3: a host interface (the Volumes handed to the
// target), a drive interface (the RAID groups beneath), a CPU running the multitask kernel with
// the ROM tasks (firmware/kernel/), and RAM holding the management tables (seed 003 claim 14),
// the LDEVs' allocation bitmaps and the cache.
//
// ROM tasks started at power-on: correction copy (rebuild onto a spare, firmware/raid/correction-copy.ts)
// and, when configured, scrub. Host reads and writes each run as a request task.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type pino from 'pino';
import { AllocationMap } from './allocation-map';
import { CACHE_DEFAULT_BYTES, CacheDefinition, DkcCache } from './cache/cache';
import { correctionCopy, RebuildOptions, scrub, ScrubOptions } from './raid/correction-copy';
import { DiskExtent, DriveBays, DriveInterface, RaidEvent, RaidGroupDevice } from './drive';
import { ldevHex } from './identity';
import { Kernel } from './kernel/kernel';
import { Ldev, LdevDefinition } from './ldev';
import { PairManager } from './pairs/manager';
import { ParityLog } from './raid/parity-log';
import { RaidTable } from './raid/table';
import { LuEntry, Ram, RaidGroupEntry } from './ram';
import type { DkcStatus, RaidGroupStatus } from './status';
import type { Volume } from './volume';

export interface DkcDefinition {
  name: string;
  serial: number;
  raidGroups: RaidGroupEntry[];
  /** Spare drives by bay name, for any group whose disks they can hold. */
  spares?: string[];
  ldevs: LdevDefinition[];
  lus: LuEntry[];
  /** The DKC cache (default: CACHE_DEFAULT_BYTES, write-through). */
  cache?: CacheDefinition;
  rebuild?: RebuildOptions;
  /** Scrub is off unless configured. */
  scrub?: ScrubOptions;
  /** The kernel's random seed (default 1). */
  seed?: number;
}

/** Where one LBA of one LU lives, table by table (seed 003 claim 14). */
export interface AddressChain {
  lu: LuEntry;
  ldev: LdevDefinition;
  raidGroup: string;
  raidGroupOffset: number;
  disks: { disk: string; offset: number; length: number }[];
}

/** The host interface: which Volume answers for a (target port, LUN). */
export class HostInterface {
  constructor(private readonly ram: Ram, private readonly ldevs: Map<number, Ldev>) {}

  volume(port: string, lun: number): Volume | undefined {
    const e = this.ram.lu(port, lun);
    return e === undefined ? undefined : this.ldevs.get(e.ldev);
  }
}

export interface DkcOptions {
  /** The DKC's kernel (default: one on real time, seeded from the definition). */
  kernel?: Kernel;
}

export class Dkc {
  readonly ram = new Ram();
  readonly hostInterface: HostInterface;
  private readonly ldevs = new Map<number, Ldev>();
  /** Pairs of this DKC's volumes (seed 002: split mirrors). */
  pairs!: PairManager;

  private constructor(
    readonly def: DkcDefinition,
    readonly kernel: Kernel,
    readonly drive: DriveInterface,
    private readonly cache: DkcCache,
    readonly bays: DriveBays,
    readonly raidTable: RaidTable,
    /** The parity log: RAID 5/6 rows written while degraded (firmware/raid/parity-log.ts). */
    readonly parityLog: ParityLog,
    private readonly log: pino.Logger,
  ) {
    this.hostInterface = new HostInterface(this.ram, this.ldevs);
  }

  get name(): string {
    return this.def.name;
  }

  get serial(): number {
    return this.def.serial;
  }

  /**
   * Power on: load the tables into RAM, assemble the RAID groups as the RAID table has them now,
   * open each LDEV's allocation map under metaDir (created empty on first start; a map made for
   * another layout is refused), and start the ROM tasks.
   */
  static async open(def: DkcDefinition, bays: DriveBays, metaDir: string, log: pino.Logger, opts: DkcOptions = {}): Promise<Dkc> {
    const dlog = log.child({ dkc: def.name });
    const kernel = opts.kernel ?? new Kernel({ seed: def.seed, log: dlog });
    await fs.mkdir(metaDir, { recursive: true });
    const table = await RaidTable.open(path.join(metaDir, 'raid-table.json'), {
      groups: def.raidGroups.map((g) => ({ name: g.name, drives: g.disks })),
      spares: def.spares ?? [],
    });
    // The controller's NVRAM for the write hole (docs/raid.md): redone before anything else runs.
    const parityLog = await ParityLog.open(path.join(metaDir, 'parity-log'), { log: dlog });
    let groups: RaidGroupDevice[];
    try {
      groups = def.raidGroups.map((g) =>
        bays.assemble(g, table.slots(g.name).map((s) => ({ drive: bays.drive(s.drive), state: s.state, rebuiltRows: s.rebuiltRows })), parityLog),
      );
      await Dkc.redoParityLog(parityLog, groups, table, dlog);
    } catch (err) {
      await parityLog.close().catch(() => undefined);
      throw err;
    }
    // Opened in every mode: a journal a write-back run left behind is replayed first.
    const cache = await DkcCache.open({
      ...(def.cache ?? { sizeBytes: CACHE_DEFAULT_BYTES, mode: 'write-through' }),
      groups,
      dir: path.join(metaDir, 'cache'),
      kernel,
      log: dlog,
    }).catch(async (err: unknown) => {
      await parityLog.close().catch(() => undefined);
      throw err;
    });
    const dkc = new Dkc(def, kernel, new DriveInterface(groups, cache.mode === 'off' ? null : cache), cache, bays, table, parityLog, dlog);
    try {
      for (const rg of def.raidGroups) dkc.ram.addRaidGroup(rg);
      for (const d of def.ldevs) dkc.ram.addLdev(d);
      for (const lu of def.lus) dkc.ram.addLu(lu);
      for (const d of def.ldevs) {
        const map = await AllocationMap.open(path.join(metaDir, `ldev-${ldevHex(d.number)}.map`), {
          serial: def.serial,
          ldev: d.number,
          blockSize: d.blockSize,
          blockCount: d.blockCount,
        });
        dkc.ldevs.set(d.number, new Ldev(def.name, def.serial, d, dkc.drive.group(d.group), dkc.drive, map, kernel));
      }
      dkc.pairs = await PairManager.open({ dir: path.join(metaDir, 'pairs'), kernel, ldev: (n) => dkc.ldevs.get(n), log: dlog });
    } catch (err) {
      // Power-on failed: nothing may keep running on files the caller is about to close.
      await dkc.closeLdevs();
      await cache.close().catch(() => undefined);
      await kernel.stop();
      await parityLog.close().catch(() => undefined);
      throw err;
    }
    for (const g of groups) g.onEvent = (e) => dkc.raidEvent(g, e);
    kernel.start('correction-copy', (t) => correctionCopy(dkc, t, def.rebuild ?? {}));
    if (def.scrub) kernel.start('scrub', (t) => scrub(dkc, t, def.scrub!));
    dkc.log.debug({ ldevs: def.ldevs.length, lus: def.lus.length }, 'DKC powered on');
    return dkc;
  }

  /**
   * Power-on, before the cache replays its journal and before any I/O: redo the RAID 5/6 rows a
   * crash left half-written while degraded (docs/raid.md, "Write hole"). A member that fails
   * meanwhile is written to the RAID table before the groups serve I/O. From here on a
   * checkpoint of the log flushes the parity groups' members.
   */
  private static async redoParityLog(parityLog: ParityLog, groups: RaidGroupDevice[], table: RaidTable, log: pino.Logger): Promise<void> {
    const parity = groups.filter((g) => g.level === 5 || g.level === 6);
    parityLog.setCheckpointSync(async () => {
      // A group past saving cannot flush; its records are of no use to it either.
      await Promise.all(parity.map((g) => g.flush().catch((err: unknown) => log.error({ err, group: g.name }, 'parity log checkpoint: flush failed'))));
    });
    const saves: Promise<void>[] = [];
    for (const g of parity) {
      g.onEvent = (e) => {
        if (e.kind === 'member-failed') saves.push(table.setSlot(g.name, e.slot, { drive: e.drive, state: 'failed', rebuiltRows: 0 }));
      };
    }
    try {
      await parityLog.replay((name) => groups.find((g) => g.name === name));
    } finally {
      for (const g of parity) g.onEvent = null;
      await Promise.all(saves);
    }
  }

  ldev(n: number): Ldev {
    const l = this.ldevs.get(n);
    if (!l) throw new Error(`${this.name}: no LDEV ${n}`);
    return l;
  }

  ldevByName(name: string): Ldev {
    for (const l of this.ldevs.values()) if (l.def.name === name) return l;
    throw new Error(`${this.name}: no volume ${name}`);
  }

  /** LU address -> LDEV -> RAID group address -> disk addresses, for one block. */
  resolve(port: string, lun: number, lba: number): AddressChain | undefined {
    const lu = this.ram.lu(port, lun);
    if (!lu) return undefined;
    const ldev = this.ram.ldev(lu.ldev)!;
    const rg = this.ram.raidGroup(ldev.group)!;
    const raidGroupOffset = ldev.offsetBytes + lba * ldev.blockSize;
    const extents: DiskExtent[] = this.drive.group(rg.name).mapExtent(raidGroupOffset, ldev.blockSize);
    const slots = this.raidTable.slots(rg.name);
    return {
      lu,
      ldev,
      raidGroup: rg.name,
      raidGroupOffset,
      disks: extents.map((e) => ({ disk: slots[e.disk].drive, offset: e.offset, length: e.length })),
    };
  }

  /**
   * The enclosure reports a change in a bay (the operator's hands: dkc disk ...). A drive that
   * failed or was pulled leaves its group at once; one that came back or was replaced by a blank
   * drive is rebuilt into its slot, or joins the spare pool if a spare has taken its slot.
   */
  async driveChanged(name: string, change: 'failed' | 'pulled' | 'inserted' | 'replaced'): Promise<void> {
    const where = this.raidTable.locate(name);
    this.log.info({ drive: name, change, where }, 'drive bay changed');
    if (change === 'failed' || change === 'pulled') {
      if (where && where !== 'spare') this.drive.group(where.group).failMember(where.slot, `drive ${name} ${change}`);
      await this.raidTable.idle();
      return;
    }
    if (where === undefined) await this.raidTable.addSpare(name);
    this.kernel.wake('correction-copy');
  }

  status(): DkcStatus {
    return {
      name: this.name,
      serial: this.serial,
      cache: this.cache.stats,
      raidGroups: this.drive.all().map((g) => this.groupStatus(g)),
      spares: this.raidTable.spares.map((s) => this.bays.status(s)),
      volumes: [...this.ldevs.values()].map((l) => ({
        ldev: l.def.number,
        name: l.def.name,
        group: l.def.group,
        blockSize: l.blockSize,
        blockCount: l.blockCount,
        allocatedBlocks: l.allocatedBlocks(),
      })),
      luns: this.ram.lus().map((e) => ({ port: e.port, lun: e.lun, ldev: e.ldev })),
      pairs: this.pairs.list(),
      tasks: this.kernel.stats(),
      clockMs: this.kernel.clock.now(),
    };
  }

  private groupStatus(g: RaidGroupDevice): RaidGroupStatus {
    const members = g.members().map((m) => ({ ...m, health: this.bays.status(m.drive).health }));
    const s: RaidGroupStatus = {
      name: g.name,
      level: g.level,
      state: g.state,
      sizeBytes: g.sizeBytes,
      stripeSizeBytes: g.stripeSizeBytes,
      rowCount: g.rowCount,
      members,
    };
    const r = members.find((m) => m.state === 'rebuilding');
    if (r) {
      s.rebuild = {
        slot: r.slot,
        drive: r.drive,
        rowsDone: r.rebuiltRows,
        rowCount: g.rowCount,
        percent: Math.floor((r.rebuiltRows / g.rowCount) * 1000) / 10,
      };
    }
    return s;
  }

  /** Something happened beneath a RAID group (called synchronously by the group). */
  private raidEvent(g: RaidGroupDevice, e: RaidEvent): void {
    switch (e.kind) {
      case 'member-failed': {
        this.log.warn({ group: g.name, slot: e.slot, drive: e.drive, reason: e.reason }, 'RAID member failed');
        const saved = this.raidTable
          .setSlot(g.name, e.slot, { drive: e.drive, state: 'failed', rebuiltRows: 0 })
          .catch((err: unknown) => this.log.error({ err, group: g.name }, 'RAID table update failed'));
        this.drive.holdAcks(saved);
        this.kernel.wake('correction-copy');
        return;
      }
      case 'media-error-corrected':
        this.log.warn({ group: g.name, slot: e.slot, drive: e.drive, offset: e.offset, length: e.length }, 'media error corrected from redundancy');
        return;
      case 'unrecoverable':
        this.log.error({ group: g.name, offset: e.offset, length: e.length, reason: e.reason }, 'unrecoverable RAID group error');
        return;
      case 'scrub-repaired':
        this.log.warn({ group: g.name, row: e.row }, 'scrub repaired an inconsistent row');
        return;
    }
  }

  /** Everything acknowledged on every LDEV is on stable storage (data first, then maps). */
  async flush(): Promise<void> {
    await Promise.all(this.drive.all().map((g) => this.drive.flush(g, 0)));
    await Promise.all([...this.ldevs.values()].map((l) => l.map.sync()));
  }

  async close(): Promise<void> {
    // Requests still under way (a transport that gave up waiting for them) finish first, then
    // the ROM tasks stop (a rebuild keeps its progress in the RAID table).
    await this.pairs.quiesce(); // the pair copier stops first: it does I/O on the LDEVs
    await Promise.all([...this.ldevs.values()].map((l) => l.quiesce()));
    try {
      await this.cache.close(); // destage everything (what cannot be written stays in the journal)
    } catch (err) {
      this.log.error({ err }, 'cache destage at power-off failed; the journal keeps the data');
    }
    await this.kernel.stop();
    try {
      await this.flush();
    } catch (err) {
      // A group that has lost more members than it tolerates cannot flush; shut down anyway.
      this.log.error({ err }, 'flush at power-off failed');
    }
    await this.pairs.close(); // after the flush: the bitmaps saved clean say the copied data is there
    await this.closeLdevs();
    try {
      await this.parityLog.close(); // after the flush: every record is retired, the file left empty
    } catch (err) {
      this.log.error({ err }, 'parity log close failed');
    }
    await this.raidTable.idle();
    await this.bays.close();
    this.log.debug({ cache: this.cache.stats }, 'DKC closed');
  }

  private async closeLdevs(): Promise<void> {
    await Promise.all([...this.ldevs.values()].map((l) => l.close()));
    this.ldevs.clear();
  }
}
