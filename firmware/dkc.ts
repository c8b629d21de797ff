// One disk controller (DKC), after seed 001 Fig. 3: a host interface (the Volumes handed to the
// target), a drive interface (the RAID groups beneath), and RAM holding the management tables
// (seed 003 claim 14) and the LDEVs' allocation bitmaps. The CPU/ROM multitask kernel arrives
// with the remote copy and pair work; here every host request runs straight through its LDEV.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type pino from 'pino';
import { AllocationMap } from './allocation-map';
import { CACHE_DEFAULT_BYTES, CacheDefinition, DkcCache } from './cache';
import { DiskExtent, DriveInterface, RaidGroupDevice } from './drive';
import { ldevHex } from './identity';
import { Ldev, LdevDefinition } from './ldev';
import { LuEntry, Ram, RaidGroupEntry } from './ram';
import type { Volume } from './volume';

export interface DkcDefinition {
  name: string;
  serial: number;
  raidGroups: RaidGroupEntry[];
  ldevs: LdevDefinition[];
  lus: LuEntry[];
  /** The DKC cache (default: CACHE_DEFAULT_BYTES, write-through). */
  cache?: CacheDefinition;
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

export class Dkc {
  readonly ram = new Ram();
  readonly hostInterface: HostInterface;
  private readonly ldevs = new Map<number, Ldev>();

  private constructor(
    readonly name: string,
    readonly serial: number,
    readonly drive: DriveInterface,
    private readonly log: pino.Logger,
  ) {
    this.hostInterface = new HostInterface(this.ram, this.ldevs);
  }

  /**
   * Load the tables into RAM and open each LDEV's allocation map under metaDir (created empty on
   * first start; a map made for another layout is refused).
   */
  static async open(def: DkcDefinition, groups: RaidGroupDevice[], metaDir: string, log: pino.Logger): Promise<Dkc> {
    const c = def.cache ?? { sizeBytes: CACHE_DEFAULT_BYTES, mode: 'write-through' };
    const cache = c.mode === 'off' ? null : new DkcCache(c.sizeBytes);
    const dkc = new Dkc(def.name, def.serial, new DriveInterface(groups, cache), log.child({ dkc: def.name }));
    for (const rg of def.raidGroups) dkc.ram.addRaidGroup(rg);
    for (const d of def.ldevs) dkc.ram.addLdev(d);
    for (const lu of def.lus) dkc.ram.addLu(lu);
    await fs.mkdir(metaDir, { recursive: true });
    try {
      for (const d of def.ldevs) {
        const map = await AllocationMap.open(path.join(metaDir, `ldev-${ldevHex(d.number)}.map`), {
          serial: def.serial,
          ldev: d.number,
          blockSize: d.blockSize,
          blockCount: d.blockCount,
        });
        dkc.ldevs.set(d.number, new Ldev(def.name, def.serial, d, dkc.drive.group(d.group), dkc.drive, map));
      }
    } catch (err) {
      await dkc.closeLdevs();
      throw err;
    }
    dkc.log.debug({ ldevs: def.ldevs.length, lus: def.lus.length }, 'DKC tables loaded');
    return dkc;
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
    return {
      lu,
      ldev,
      raidGroup: rg.name,
      raidGroupOffset,
      disks: extents.map((e) => ({ disk: rg.disks[e.disk], offset: e.offset, length: e.length })),
    };
  }

  /** Everything acknowledged on every LDEV is on stable storage (data first, then maps). */
  async flush(): Promise<void> {
    await Promise.all(this.drive.all().map((g) => this.drive.flush(g, 0)));
    await Promise.all([...this.ldevs.values()].map((l) => l.map.sync()));
  }

  async close(): Promise<void> {
    // Requests still under way (a transport that gave up waiting for them) finish first.
    await Promise.all([...this.ldevs.values()].map((l) => l.quiesce()));
    await this.flush();
    await this.closeLdevs();
    await this.drive.close();
    this.log.debug({ cache: this.drive.cache?.stats }, 'DKC closed');
  }

  private async closeLdevs(): Promise<void> {
    await Promise.all([...this.ldevs.values()].map((l) => l.close()));
    this.ldevs.clear();
  }
}
