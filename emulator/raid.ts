// RAID groups over emulated disks: one logical, byte-addressed space per group.
//   RAID 0: striping. Logical stripe s lives on disk s mod n at row floor(s / n).
//           Within one request, the chunks that land on one disk are consecutive rows, hence
//           contiguous on that disk: one preadv/pwritev per member disk per request.
//   RAID 1: mirroring. Writes go to every member; a read goes to one member (round robin),
//           and to the next member if that one fails.
import assert from 'node:assert';
import type { DiskExtent, RaidGroupDevice } from '../firmware/drive';
import { SECTOR_BYTES } from './disk';

/** What a RAID group needs from a member disk (FileDisk, or a fault-injecting decorator). */
export interface MemberDisk {
  readonly file: string;
  readonly sizeBytes: number;
  readInto(offset: number, buf: Buffer, bufOffset: number, length: number): Promise<void>;
  readv(offset: number, buffers: Buffer[], length: number): Promise<void>;
  write(offset: number, data: Buffer, dataOffset: number, length: number, fua: boolean): Promise<void>;
  writev(offset: number, buffers: Buffer[], length: number, fua: boolean): Promise<void>;
  flush(): Promise<void>;
  close(): Promise<void>;
}

abstract class RaidGroupBase implements RaidGroupDevice {
  abstract readonly level: 0 | 1;
  abstract readonly sizeBytes: number;

  constructor(readonly name: string, readonly stripeSizeBytes: number, protected readonly disks: MemberDisk[]) {
    assert(disks.length >= 1, `${name}: a RAID group needs disks`);
    assert(stripeSizeBytes > 0 && stripeSizeBytes % SECTOR_BYTES === 0, `${name}: bad stripe size ${stripeSizeBytes}`);
  }

  get diskCount(): number {
    return this.disks.length;
  }

  abstract readInto(offset: number, buf: Buffer, bufOffset: number, length: number): Promise<void>;
  abstract write(offset: number, data: Buffer, dataOffset: number, length: number, fua: boolean): Promise<void>;
  abstract mapExtent(offset: number, length: number): DiskExtent[];

  async flush(): Promise<void> {
    await Promise.all(this.disks.map((d) => d.flush()));
  }

  async close(): Promise<void> {
    await Promise.all(this.disks.map((d) => d.close()));
  }

  protected check(offset: number, length: number): void {
    // The message is built only on failure: this runs on every I/O.
    if (!(offset >= 0 && length >= 0 && offset + length <= this.sizeBytes && offset % SECTOR_BYTES === 0 && length % SECTOR_BYTES === 0)) {
      assert.fail(`${this.name}: I/O [${offset}, +${length}) is not whole sectors inside ${this.sizeBytes} bytes`);
    }
  }
}

export class Raid0Group extends RaidGroupBase {
  readonly level = 0 as const;
  readonly sizeBytes: number;
  private readonly rows: number;

  constructor(name: string, stripeSizeBytes: number, disks: MemberDisk[]) {
    super(name, stripeSizeBytes, disks);
    const diskBytes = Math.min(...disks.map((d) => d.sizeBytes));
    this.rows = Math.floor(diskBytes / stripeSizeBytes);
    this.sizeBytes = this.rows * stripeSizeBytes * disks.length;
  }

  static capacity(diskCount: number, diskSizeBytes: number, stripeSizeBytes: number): number {
    return Math.floor(diskSizeBytes / stripeSizeBytes) * stripeSizeBytes * diskCount;
  }

  readInto(offset: number, buf: Buffer, bufOffset: number, length: number): Promise<void> {
    this.check(offset, length);
    const stripe = this.stripeSizeBytes;
    const within = offset % stripe;
    if (within + length <= stripe) {
      // Fast path (small random I/O): one stripe, one disk, one pread, no allocation.
      const s = (offset - within) / stripe;
      return this.disks[s % this.disks.length].readInto(this.diskOffset(s) + within, buf, bufOffset, length);
    }
    return this.vectored(offset, buf, bufOffset, length, (d, at, bufs, len) => this.disks[d].readv(at, bufs, len));
  }

  write(offset: number, data: Buffer, dataOffset: number, length: number, fua: boolean): Promise<void> {
    this.check(offset, length);
    const stripe = this.stripeSizeBytes;
    const within = offset % stripe;
    if (within + length <= stripe) {
      const s = (offset - within) / stripe;
      return this.disks[s % this.disks.length].write(this.diskOffset(s) + within, data, dataOffset, length, fua);
    }
    return this.vectored(offset, data, dataOffset, length, (d, at, bufs, len) => this.disks[d].writev(at, bufs, len, fua));
  }

  mapExtent(offset: number, length: number): DiskExtent[] {
    this.check(offset, length);
    const out: DiskExtent[] = [];
    this.forEachChunk(offset, length, (disk, at, _pos, len) => out.push({ disk, offset: at, length: len }));
    return out;
  }

  private diskOffset(stripeIndex: number): number {
    return Math.floor(stripeIndex / this.disks.length) * this.stripeSizeBytes;
  }

  /** Split [offset, +length) into per-disk runs, each one vectored call. */
  private vectored(
    offset: number,
    buf: Buffer,
    bufOffset: number,
    length: number,
    io: (disk: number, at: number, bufs: Buffer[], len: number) => Promise<void>,
  ): Promise<void> {
    const n = this.disks.length;
    const start: number[] = new Array(n).fill(-1);
    const lens: number[] = new Array(n).fill(0);
    const bufs: Buffer[][] = Array.from({ length: n }, () => []);
    this.forEachChunk(offset, length, (disk, at, pos, len) => {
      if (start[disk] < 0) start[disk] = at;
      bufs[disk].push(buf.subarray(bufOffset + pos, bufOffset + pos + len));
      lens[disk] += len;
    });
    const ops: Promise<void>[] = [];
    for (let d = 0; d < n; d++) if (lens[d] > 0) ops.push(io(d, start[d], bufs[d], lens[d]));
    return Promise.all(ops).then(() => undefined);
  }

  /** Visit each stripe chunk: (disk, offset on disk, position within the request, length). */
  private forEachChunk(offset: number, length: number, visit: (disk: number, at: number, pos: number, len: number) => void): void {
    const stripe = this.stripeSizeBytes;
    let pos = 0;
    while (pos < length) {
      const o = offset + pos;
      const within = o % stripe;
      const s = (o - within) / stripe;
      const len = Math.min(stripe - within, length - pos);
      visit(s % this.disks.length, this.diskOffset(s) + within, pos, len);
      pos += len;
    }
  }
}

export class Raid1Group extends RaidGroupBase {
  readonly level = 1 as const;
  readonly sizeBytes: number;
  private nextReader = 0;

  constructor(name: string, stripeSizeBytes: number, disks: MemberDisk[]) {
    super(name, stripeSizeBytes, disks);
    this.sizeBytes = Math.min(...disks.map((d) => d.sizeBytes));
  }

  static capacity(_diskCount: number, diskSizeBytes: number): number {
    return diskSizeBytes;
  }

  readInto(offset: number, buf: Buffer, bufOffset: number, length: number): Promise<void> {
    this.check(offset, length);
    const first = this.nextReader;
    this.nextReader = (first + 1) % this.disks.length;
    return this.disks[first]
      .readInto(offset, buf, bufOffset, length)
      .catch((err: unknown) => this.readOthers(first, err, offset, buf, bufOffset, length));
  }

  /** The chosen mirror failed: the others may still have the data. */
  private async readOthers(failed: number, firstError: unknown, offset: number, buf: Buffer, bufOffset: number, length: number): Promise<void> {
    const n = this.disks.length;
    for (let i = 1; i < n; i++) {
      try {
        return await this.disks[(failed + i) % n].readInto(offset, buf, bufOffset, length);
      } catch {
        // keep trying; report the first failure
      }
    }
    throw firstError;
  }

  async write(offset: number, data: Buffer, dataOffset: number, length: number, fua: boolean): Promise<void> {
    this.check(offset, length);
    await Promise.all(this.disks.map((d) => d.write(offset, data, dataOffset, length, fua)));
  }

  mapExtent(offset: number, length: number): DiskExtent[] {
    this.check(offset, length);
    return this.disks.map((_d, disk) => ({ disk, offset, length }));
  }
}

export function raidCapacity(level: 0 | 1, diskCount: number, diskSizeBytes: number, stripeSizeBytes: number): number {
  return level === 0 ? Raid0Group.capacity(diskCount, diskSizeBytes, stripeSizeBytes) : Raid1Group.capacity(diskCount, diskSizeBytes);
}

export function createRaidGroup(name: string, level: 0 | 1, stripeSizeBytes: number, disks: MemberDisk[]): RaidGroupDevice {
  return level === 0 ? new Raid0Group(name, stripeSizeBytes, disks) : new Raid1Group(name, stripeSizeBytes, disks);
}
