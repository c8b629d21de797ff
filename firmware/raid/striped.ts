// RAID 0: striping, no redundancy. Logical stripe s lives on disk s mod n at row floor(s / n).
// Within one request, the chunks that land on one disk are consecutive rows, hence contiguous on
// that disk: one preadv/pwritev per member disk per request. Any member error loses data: the
// I/O rejects (media errors leave the member in; failures fail it, and with it the group).
import type { DiskExtent, Drive } from '../drive';
import { DriveError } from '../drive';
import { MemberInit, RaidGroupBase } from './base';

export class Raid0Group extends RaidGroupBase {
  readonly level = 0 as const;

  constructor(name: string, stripeSizeBytes: number, drives: Drive[], members?: MemberInit[]) {
    super(name, stripeSizeBytes, drives, drives.length, members);
  }

  static capacity(diskCount: number, diskSizeBytes: number, stripeSizeBytes: number): number {
    return Math.floor(diskSizeBytes / stripeSizeBytes) * stripeSizeBytes * diskCount;
  }

  protected survives(lost: boolean[]): boolean {
    return !lost.includes(true);
  }

  readInto(offset: number, buf: Buffer, bufOffset: number, length: number): Promise<void> {
    this.check(offset, length);
    const stripe = this.stripeSizeBytes;
    const within = offset % stripe;
    if (within + length <= stripe && this.healthy) {
      // Fast path (small random I/O): one stripe, one disk, one pread, no allocation.
      const s = (offset - within) / stripe;
      const d = s % this.slots.length;
      const drive = this.slots[d].drive;
      return drive.readInto(this.diskOffset(s) + within, buf, bufOffset, length).catch((err: unknown) => this.ioFailed(d, drive, err, offset, length));
    }
    return this.vectored(offset, buf, bufOffset, length, 'read', (d, at, bufs, len) => this.slots[d].drive.readv(at, bufs, len));
  }

  write(offset: number, data: Buffer, dataOffset: number, length: number, fua: boolean): Promise<void> {
    this.check(offset, length);
    const stripe = this.stripeSizeBytes;
    const within = offset % stripe;
    if (within + length <= stripe && this.healthy) {
      const s = (offset - within) / stripe;
      const d = s % this.slots.length;
      const drive = this.slots[d].drive;
      return drive.write(this.diskOffset(s) + within, data, dataOffset, length, fua).catch((err: unknown) => this.ioFailed(d, drive, err, offset, length, true));
    }
    return this.vectored(offset, data, dataOffset, length, 'write', (d, at, bufs, len) => this.slots[d].drive.writev(at, bufs, len, fua));
  }

  mapExtent(offset: number, length: number): DiskExtent[] {
    this.check(offset, length);
    const out: DiskExtent[] = [];
    this.forEachChunk(offset, length, (disk, at, _pos, len) => out.push({ disk, offset: at, length: len }));
    return out;
  }

  rebuildRow(slot: number, row: number): Promise<void> {
    this.assertRebuilding(slot, row);
    return Promise.reject(this.lost(row * this.stripeSizeBytes * this.slots.length, this.stripeSizeBytes * this.slots.length, 'RAID 0 has no redundancy to rebuild from'));
  }

  async scrubRow(row: number): Promise<'consistent' | 'skipped'> {
    // Nothing to compare: striping keeps one copy and no parity.
    return this.state === 'normal' && row >= 0 && row < this.rowCount ? 'consistent' : 'skipped';
  }

  /** A member I/O failed: a media error leaves the member in, anything else fails it; the data is lost either way. */
  private ioFailed(slot: number, drive: Drive, err: unknown, offset: number, length: number, write = false): never {
    if (err instanceof DriveError && err.kind === 'media' && !write) this.uncorrected(slot);
    else this.markFailed(slot, drive, err);
    const why = err instanceof Error ? err.message : String(err);
    throw this.lost(offset, length, `RAID 0 member ${slot} (${drive.name}): ${why}`);
  }

  private diskOffset(stripeIndex: number): number {
    return Math.floor(stripeIndex / this.slots.length) * this.stripeSizeBytes;
  }

  /** Split [offset, +length) into per-disk runs, each one vectored call. */
  private async vectored(
    offset: number,
    buf: Buffer,
    bufOffset: number,
    length: number,
    kind: 'read' | 'write',
    io: (disk: number, at: number, bufs: Buffer[], len: number) => Promise<void>,
  ): Promise<void> {
    const n = this.slots.length;
    const start: number[] = new Array(n).fill(-1);
    const lens: number[] = new Array(n).fill(0);
    const bufs: Buffer[][] = Array.from({ length: n }, () => []);
    this.forEachChunk(offset, length, (disk, at, pos, len) => {
      if (start[disk] < 0) start[disk] = at;
      bufs[disk].push(buf.subarray(bufOffset + pos, bufOffset + pos + len));
      lens[disk] += len;
    });
    for (let d = 0; d < n; d++) {
      if (lens[d] === 0) continue;
      const lastRow = (start[d] + lens[d] - 1 - ((start[d] + lens[d] - 1) % this.stripeSizeBytes)) / this.stripeSizeBytes;
      // A rebuilding RAID 0 member is only as good as its rebuilt rows; a failed one is gone.
      if (kind === 'read' ? !this.readable(d, lastRow) : !this.writable(d)) {
        throw this.lost(offset, length, `RAID 0 member ${d} (${this.slots[d].drive.name}) is ${this.slots[d].state}`);
      }
    }
    const ops: Promise<void>[] = [];
    for (let d = 0; d < n; d++) {
      if (lens[d] === 0) continue;
      const drive = this.slots[d].drive;
      ops.push(io(d, start[d], bufs[d], lens[d]).catch((err: unknown) => this.ioFailed(d, drive, err, offset, length, kind === 'write')));
    }
    const results = await Promise.allSettled(ops);
    const bad = results.find((r) => r.status === 'rejected');
    if (bad) throw (bad as PromiseRejectedResult).reason;
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
      visit(s % this.slots.length, this.diskOffset(s) + within, pos, len);
      pos += len;
    }
  }
}
