// The DKC's drive interface (seed 001 Fig. 3, drive interface 1230): what the firmware sees of
// the RAID groups beneath it. emulator/ implements RaidGroupDevice over files; the firmware never
// sees files or disks directly, only a RAID group's logical address space. Reads and writes pass
// through the DKC cache (firmware/cache.ts) unless it is off.
import { CachedGroup, DkcCache } from './cache';
import { MediumError } from './volume';

/** Where one byte range of a RAID group's logical space lands on one member disk. */
export interface DiskExtent {
  /** Index of the member disk within its RAID group. */
  disk: number;
  /** Byte offset on that disk. */
  offset: number;
  length: number;
}

/** One RAID group's logical address space, byte addressed (offsets are multiples of 512). */
export interface RaidGroupDevice {
  readonly name: string;
  readonly level: 0 | 1;
  readonly stripeSizeBytes: number;
  readonly diskCount: number;
  readonly sizeBytes: number;
  /** Fill buf[bufOffset, bufOffset+length) from the group's logical bytes at offset. */
  readInto(offset: number, buf: Buffer, bufOffset: number, length: number): Promise<void>;
  /** Write data[dataOffset, dataOffset+length) at offset; fua: on stable storage before resolving. */
  write(offset: number, data: Buffer, dataOffset: number, length: number, fua: boolean): Promise<void>;
  /** Everything written so far is on stable storage on every member disk. */
  flush(): Promise<void>;
  /** Member-disk extents for a logical range (management tables; not used on the I/O path). */
  mapExtent(offset: number, length: number): DiskExtent[];
  close(): Promise<void>;
}

/**
 * The drive interface of one DKC: names the RAID groups it is wired to and turns any failure
 * beneath into a MediumError naming the first LBA of the request (SBC: the host sees MEDIUM ERROR).
 */
export class DriveInterface {
  private readonly groups = new Map<string, RaidGroupDevice>();
  private readonly cached = new Map<RaidGroupDevice, CachedGroup>();

  /** cache null: every read and write goes straight to the RAID groups. */
  constructor(groups: Iterable<RaidGroupDevice>, readonly cache: DkcCache | null = null) {
    for (const g of groups) {
      this.groups.set(g.name, g);
      if (cache) this.cached.set(g, cache.attach(g));
    }
  }

  group(name: string): RaidGroupDevice {
    const g = this.groups.get(name);
    if (!g) throw new Error(`drive interface: no RAID group ${name}`);
    return g;
  }

  all(): RaidGroupDevice[] {
    return [...this.groups.values()];
  }

  readInto(g: RaidGroupDevice, offset: number, buf: Buffer, bufOffset: number, length: number, lba: number): Promise<void> {
    const cg = this.cached.get(g);
    const p = cg ? this.cache!.read(cg, offset, buf, bufOffset, length) : g.readInto(offset, buf, bufOffset, length);
    return p.catch((err: unknown) => {
      throw toMediumError(err, lba, 'read');
    });
  }

  write(g: RaidGroupDevice, offset: number, data: Buffer, length: number, fua: boolean, lba: number): Promise<void> {
    const cg = this.cached.get(g);
    const send = () => g.write(offset, data, 0, length, fua);
    const p = cg ? this.cache!.write(cg, offset, data, length, send) : send();
    return p.catch((err: unknown) => {
      throw toMediumError(err, lba, 'write');
    });
  }

  /** The bytes [offset, +length) of g hold no live data any more (UNMAP): the cache may drop them. */
  discard(g: RaidGroupDevice, offset: number, length: number): void {
    const cg = this.cached.get(g);
    if (cg) this.cache!.discard(cg, offset, length);
  }

  async flush(g: RaidGroupDevice, lba: number): Promise<void> {
    try {
      await g.flush();
    } catch (err) {
      throw toMediumError(err, lba, 'write');
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.all().map((g) => g.close()));
  }
}

function toMediumError(err: unknown, lba: number, kind: 'read' | 'write'): MediumError {
  if (err instanceof MediumError) return err;
  const detail = err instanceof Error ? err.message : String(err);
  return new MediumError(lba, kind, `unrecovered ${kind} error at LBA ${lba}: ${detail}`);
}
