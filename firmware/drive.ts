// The DKC's drive interface (seed 001 Fig. 3, drive interface 1230): what the firmware sees of
// the RAID groups beneath it. emulator/ implements RaidGroupDevice over files; the firmware never
// sees files or disks directly, only a RAID group's logical address space.
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

  constructor(groups: Iterable<RaidGroupDevice>) {
    for (const g of groups) this.groups.set(g.name, g);
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
    return g.readInto(offset, buf, bufOffset, length).catch((err: unknown) => {
      throw toMediumError(err, lba, 'read');
    });
  }

  async write(g: RaidGroupDevice, offset: number, data: Buffer, length: number, fua: boolean, lba: number): Promise<void> {
    try {
      await g.write(offset, data, 0, length, fua);
    } catch (err) {
      throw toMediumError(err, lba, 'write');
    }
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
