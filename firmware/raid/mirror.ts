// RAID 1 and RAID 10 (1+0): mirror sets, striped.
//   RAID 1:  one set of n copies; logical offset x is at x on every member.
//   RAID 10: n/2 sets of two adjacent members (0+1, 2+3, ...); logical stripe s lives in set
//            s mod sets at row floor(s / sets), as RAID 0 stripes over disks (Linux md raid10 near=2).
// Writes go to every copy that is not failed (a rebuilding copy too, so it converges) under the
// rows' shared locks; a read goes to one trusted copy (round robin), and to the next on an error.
// A copy that answered with a media error is rewritten from a good one under the rows' exclusive
// locks. rebuildRow and scrubRow copy under the exclusive lock, so no host write crosses them.
import { DiskExtent, Drive, DriveError } from '../drive';
import { MemberInit, RaidGroupBase } from './base';

export class MirrorGroup extends RaidGroupBase {
  /** Copies per set and the number of sets striped over. */
  private readonly copies: number;
  private readonly sets: number;
  private nextReader = 0;

  constructor(name: string, readonly level: 1 | 10, stripeSizeBytes: number, drives: Drive[], members?: MemberInit[]) {
    const copies = level === 1 ? drives.length : 2;
    super(name, stripeSizeBytes, drives, drives.length / copies, members);
    if (level === 10 && (drives.length < 4 || drives.length % 2 !== 0)) throw new Error(`${name}: RAID 10 needs an even number of disks, at least 4; have ${drives.length}`);
    if (level === 1 && drives.length < 2) throw new Error(`${name}: RAID 1 needs at least 2 disks; have ${drives.length}`);
    this.copies = copies;
    this.sets = drives.length / copies;
  }

  static capacity(level: 1 | 10, diskCount: number, diskSizeBytes: number, stripeSizeBytes: number): number {
    const sets = level === 1 ? 1 : Math.floor(diskCount / 2);
    return Math.floor(diskSizeBytes / stripeSizeBytes) * stripeSizeBytes * sets;
  }

  protected survives(lost: boolean[]): boolean {
    for (let set = 0; set < this.sets; set++) {
      if (lost.slice(set * this.copies, (set + 1) * this.copies).every(Boolean)) return false;
    }
    return true;
  }

  readInto(offset: number, buf: Buffer, bufOffset: number, length: number): Promise<void> {
    this.check(offset, length);
    const chunk = this.stripeSizeBytes;
    const within = offset % chunk;
    if (this.sets === 1 || within + length <= chunk) {
      // One set, contiguous on its members (always so for RAID 1): one pread, no allocation.
      const s = (offset - within) / chunk;
      const set = s % this.sets;
      const at = this.diskOffset(s) + within;
      if (!this.healthy) return this.readCopies(set, at, buf, bufOffset, length, [], [], false, offset);
      const slot = set * this.copies + this.nextReader;
      this.nextReader = (this.nextReader + 1) % this.copies;
      const drive = this.slots[slot].drive;
      return drive.readInto(at, buf, bufOffset, length).catch((err: unknown) => {
        const bad = this.firstReadFailed(slot, drive, err) ? [slot] : [];
        return this.readCopies(set, at, buf, bufOffset, length, [slot], bad, false, offset);
      });
    }
    const ops: Promise<void>[] = [];
    this.forEachChunk(offset, length, (set, at, pos, len) => {
      ops.push(this.readCopies(set, at, buf, bufOffset + pos, len, [], [], false, offset + pos));
    });
    return Promise.all(ops).then(() => undefined);
  }

  async write(offset: number, data: Buffer, dataOffset: number, length: number, fua: boolean): Promise<void> {
    this.check(offset, length);
    const chunk = this.stripeSizeBytes;
    const within = offset % chunk;
    if (this.sets === 1 || within + length <= chunk) {
      const s = (offset - within) / chunk;
      return this.writeSet(s % this.sets, this.diskOffset(s) + within, data, dataOffset, length, fua, offset);
    }
    const ops: Promise<void>[] = [];
    this.forEachChunk(offset, length, (set, at, pos, len) => ops.push(this.writeSet(set, at, data, dataOffset + pos, len, fua, offset + pos)));
    await Promise.all(ops);
  }

  mapExtent(offset: number, length: number): DiskExtent[] {
    this.check(offset, length);
    const out: DiskExtent[] = [];
    const visit = (set: number, at: number, len: number) => {
      for (let c = 0; c < this.copies; c++) out.push({ disk: set * this.copies + c, offset: at, length: len });
    };
    if (this.sets === 1) visit(0, offset, length);
    else this.forEachChunk(offset, length, (set, at, _pos, len) => visit(set, at, len));
    return out;
  }

  async rebuildRow(slot: number, row: number): Promise<void> {
    const drive = this.assertRebuilding(slot, row);
    const chunk = this.stripeSizeBytes;
    const set = Math.floor(slot / this.copies);
    await this.locks.with(row, true, async () => {
      const buf = Buffer.allocUnsafe(chunk);
      await this.readCopies(set, row * chunk, buf, 0, chunk, [slot], [], true, this.logical(set, row));
      if (!(await this.writeSlot(slot, row * chunk, buf, 0, chunk, false))) {
        throw new Error(`${this.name}: rebuild of slot ${slot} row ${row}: ${drive.name} failed`);
      }
      this.rebuilt(slot, drive, row);
    });
  }

  async scrubRow(row: number): Promise<'consistent' | 'repaired' | 'skipped'> {
    if (this.state !== 'normal' || row < 0 || row >= this.rowCount) return 'skipped';
    const chunk = this.stripeSizeBytes;
    const at = row * chunk;
    let repaired = false;
    await this.locks.with(row, true, async () => {
      for (let set = 0; set < this.sets; set++) {
        const bufs: Array<Buffer | null> = [];
        for (let c = 0; c < this.copies; c++) {
          const b = Buffer.allocUnsafe(chunk);
          bufs.push((await this.readSlot(set * this.copies + c, at, b, 0, chunk)) === 'ok' ? b : null);
        }
        // The first readable member is the reference; an unreadable copy is rewritten like a wrong one.
        const ref = bufs.find((b) => b !== null);
        if (!ref) throw this.lost(this.logical(set, row), chunk, 'scrub: no copy of the row is readable');
        for (let c = 0; c < this.copies; c++) {
          if (bufs[c] !== null && bufs[c]!.equals(ref)) continue;
          const slot = set * this.copies + c;
          if (!(await this.writeSlot(slot, at, ref, 0, chunk, false))) continue;
          if (bufs[c] === null) this.corrected(slot, at, chunk);
          else repaired = true;
        }
      }
    });
    if (repaired) this.emit({ kind: 'scrub-repaired', row });
    return repaired ? 'repaired' : 'consistent';
  }

  /**
   * Fill buf from one trusted copy of the set, trying each in turn but those in skip; copies that
   * answered with a media error (bad, and any found here) are rewritten from the good data (under
   * the rows' exclusive locks unless the caller holds them: locked).
   */
  private async readCopies(
    set: number, at: number, buf: Buffer, bufOffset: number, length: number, skip: number[], bad: number[], locked: boolean, logical: number,
  ): Promise<void> {
    const chunk = this.stripeSizeBytes;
    const lastRow = Math.floor((at + length - 1) / chunk);
    const first = this.nextReader;
    // A retry after the fast path's read keeps the round robin where that read left it.
    if (skip.length === 0) this.nextReader = (first + 1) % this.copies;
    for (let i = 0; i < this.copies; i++) {
      const slot = set * this.copies + ((first + i) % this.copies);
      if (skip.includes(slot) || !this.readable(slot, lastRow)) continue;
      const r = await this.readSlot(slot, at, buf, bufOffset, length);
      if (r === 'media') bad.push(slot);
      if (r !== 'ok') continue;
      if (bad.length > 0) await this.repair(slot, bad, at, length, locked);
      return;
    }
    for (const slot of bad) this.uncorrected(slot);
    throw this.lost(logical, length, `no readable copy in mirror set ${set}`);
  }

  /** The fast path's read failed: true for a media error (the copy stays), else the copy is failed now. */
  private firstReadFailed(slot: number, drive: Drive, err: unknown): boolean {
    if (err instanceof DriveError && err.kind === 'media') return true;
    this.markFailed(slot, drive, err);
    return false;
  }

  /** Rewrite the bad copies' range from the good copy (re-read under the lock: a host write may have come since). */
  private async repair(good: number, bad: number[], at: number, length: number, locked: boolean): Promise<void> {
    const chunk = this.stripeSizeBytes;
    const firstRow = Math.floor(at / chunk);
    const lastRow = Math.floor((at + length - 1) / chunk);
    if (!locked) for (let r = firstRow; r <= lastRow; r++) await this.locks.acquire(r, true);
    try {
      const tmp = Buffer.allocUnsafe(length);
      if ((await this.readSlot(good, at, tmp, 0, length)) !== 'ok') return;
      for (const slot of bad) if (await this.writeSlot(slot, at, tmp, 0, length, false)) this.corrected(slot, at, length);
    } finally {
      if (!locked) for (let r = firstRow; r <= lastRow; r++) this.locks.release(r, true);
    }
  }

  /** Write every copy of the set that is not failed, holding the rows shared against rebuild and scrub. */
  private async writeSet(set: number, at: number, data: Buffer, dataOffset: number, length: number, fua: boolean, logical: number): Promise<void> {
    const chunk = this.stripeSizeBytes;
    const firstRow = Math.floor(at / chunk);
    const lastRow = Math.floor((at + length - 1) / chunk);
    for (let r = firstRow; r <= lastRow; r++) if (!this.locks.tryAcquire(r, false)) await this.locks.acquire(r, false);
    try {
      const base = set * this.copies;
      const ops: Promise<boolean>[] = [];
      for (let c = 0; c < this.copies; c++) ops.push(this.writeSlot(base + c, at, data, dataOffset, length, fua));
      const done = await Promise.all(ops);
      // The data is safe if a copy that is trusted for these rows has it.
      if (!done.some((ok, c) => ok && this.readable(base + c, lastRow))) throw this.lost(logical, length, `no copy in mirror set ${set} took the write`);
    } finally {
      for (let r = firstRow; r <= lastRow; r++) this.locks.release(r, false);
    }
  }

  private diskOffset(stripeIndex: number): number {
    return Math.floor(stripeIndex / this.sets) * this.stripeSizeBytes;
  }

  /** Logical offset of set's chunk in row (for events). */
  private logical(set: number, row: number): number {
    return (row * this.sets + set) * this.stripeSizeBytes;
  }

  /** Visit each stripe chunk: (set, offset on its disks, position within the request, length). */
  private forEachChunk(offset: number, length: number, visit: (set: number, at: number, pos: number, len: number) => void): void {
    const chunk = this.stripeSizeBytes;
    let pos = 0;
    while (pos < length) {
      const o = offset + pos;
      const within = o % chunk;
      const s = (o - within) / chunk;
      const len = Math.min(chunk - within, length - pos);
      visit(s % this.sets, this.diskOffset(s) + within, pos, len);
      pos += len;
    }
  }
}
