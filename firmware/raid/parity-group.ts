// RAID 5 and RAID 6: striping with rotating parity, Linux md's default layout (left-symmetric,
// drivers/md/raid5.c raid5_compute_sector, ALGORITHM_LEFT_SYMMETRIC):
//   row r: P on disk n-1 - (r mod n); RAID 6: Q on the disk after P (mod n);
//          data chunk i on disk (P + parities + i) mod n, so data runs on from just after the parity.
//   Logical chunk c is data chunk c mod d of row floor(c / d), d = n - parities.
// Q's coefficient of data chunk i is g^i (firmware/raid/parity.ts).
// Reads of readable members go straight to the data chunk; anything else (a failed or rebuilding
// member, a media error) reconstructs the range from the rest of the row under its shared lock.
// Writes take the row's exclusive lock and choose read-modify-write or reconstruct-write,
// whichever reads less; a full-stripe write reads nothing.
// The write hole (docs/raid.md): a write to a row that is degraded, or that has a live record in
// the row log, is a reconstruct-write whose new data of every data chunk over [lo, hi) is
// recorded durably in the row log before any member is written; power-on redoes the records.
import type { DiskExtent, Drive, RowLog, RowLogTicket } from '../drive';
import { DriveError } from '../drive';
import { computePQ, gfPow2, mulXorInto, recover, xorInto } from './parity';
import { MemberInit, RaidGroupBase } from './base';

/** The part of a host write that falls into one data chunk of a row. */
interface Piece {
  /** Data chunk index within the row. */
  i: number;
  /** Byte range within the chunk. */
  lo: number;
  len: number;
  /** Where its bytes are in the host buffer. */
  src: number;
}

export class ParityGroup extends RaidGroupBase {
  /** Parity chunks per row (1: P; 2: P and Q) and data chunks per row. */
  private readonly parities: number;
  private readonly dataChunks: number;

  constructor(
    name: string, readonly level: 5 | 6, stripeSizeBytes: number, drives: Drive[], members?: MemberInit[],
    private readonly rowLog: RowLog | null = null,
  ) {
    const parities = level === 5 ? 1 : 2;
    super(name, stripeSizeBytes, drives, drives.length - parities, members);
    if (drives.length < parities + 2) throw new Error(`${name}: RAID ${level} needs at least ${parities + 2} disks; have ${drives.length}`);
    this.parities = parities;
    this.dataChunks = drives.length - parities;
  }

  static capacity(level: 5 | 6, diskCount: number, diskSizeBytes: number, stripeSizeBytes: number): number {
    const data = Math.max(0, diskCount - (level === 5 ? 1 : 2));
    return Math.floor(diskSizeBytes / stripeSizeBytes) * stripeSizeBytes * data;
  }

  protected survives(lost: boolean[]): boolean {
    return lost.filter(Boolean).length <= this.parities;
  }

  /** The disk holding P of row. */
  pSlot(row: number): number {
    const n = this.slots.length;
    return n - 1 - (row % n);
  }

  /** The disk holding chunk idx of row: data 0..d-1, then P (d) and Q (d+1). */
  slotOf(row: number, idx: number): number {
    const n = this.slots.length;
    const p = this.pSlot(row);
    if (idx >= this.dataChunks) return (p + idx - this.dataChunks) % n;
    return (p + this.parities + idx) % n;
  }

  /** Inverse of slotOf. */
  private indexOf(row: number, slot: number): number {
    const n = this.slots.length;
    const r = (slot - this.pSlot(row) + n) % n; // 0: P, 1: Q (RAID 6), then the data
    return r < this.parities ? this.dataChunks + r : r - this.parities;
  }

  readInto(offset: number, buf: Buffer, bufOffset: number, length: number): Promise<void> {
    this.check(offset, length);
    const chunk = this.stripeSizeBytes;
    const within = offset % chunk;
    if (within + length <= chunk && this.healthy) {
      // Fast path: one data chunk of a healthy group: one pread, no allocation.
      const c = (offset - within) / chunk;
      const row = Math.floor(c / this.dataChunks);
      const slot = this.slotOf(row, c % this.dataChunks);
      const drive = this.slots[slot].drive;
      return drive.readInto(row * chunk + within, buf, bufOffset, length).catch((err: unknown) => {
        const bad = this.firstReadFailed(slot, drive, err) ? [slot] : [];
        return this.reconstructPiece(row, slot, within, length, buf, bufOffset, bad, offset);
      });
    }
    const ops: Promise<void>[] = [];
    this.forEachPiece(offset, length, (row, i, lo, len, pos) => ops.push(this.readPiece(row, i, lo, len, buf, bufOffset + pos, offset + pos)));
    return Promise.all(ops).then(() => undefined);
  }

  async write(offset: number, data: Buffer, dataOffset: number, length: number, fua: boolean): Promise<void> {
    this.check(offset, length);
    const rows = new Map<number, Piece[]>();
    this.forEachPiece(offset, length, (row, i, lo, len, pos) => {
      let pieces = rows.get(row);
      if (!pieces) rows.set(row, (pieces = []));
      pieces.push({ i, lo, len, src: dataOffset + pos });
    });
    const ops: Promise<void>[] = [];
    for (const [row, pieces] of rows) ops.push(this.locks.with(row, true, () => this.writeRow(row, pieces, data, fua)));
    await Promise.all(ops);
  }

  /** Data extents of the range (where the data lives; parity is not listed). */
  mapExtent(offset: number, length: number): DiskExtent[] {
    this.check(offset, length);
    const out: DiskExtent[] = [];
    const chunk = this.stripeSizeBytes;
    this.forEachPiece(offset, length, (row, i, lo, len) => out.push({ disk: this.slotOf(row, i), offset: row * chunk + lo, length: len }));
    return out;
  }

  async rebuildRow(slot: number, row: number): Promise<void> {
    const drive = this.assertRebuilding(slot, row);
    const chunk = this.stripeSizeBytes;
    await this.locks.with(row, true, async () => {
      // The slot's own bytes are never trusted here, even below rebuiltRows.
      const bufs = await this.loadRow(row, 0, chunk, [slot], [], [slot], this.rowOffset(row));
      if (!(await this.writeSlot(slot, row * chunk, bufs[slot]!, 0, chunk, false))) {
        throw new Error(`${this.name}: rebuild of slot ${slot} row ${row}: ${drive.name} failed`);
      }
      this.rebuilt(slot, drive, row);
    });
  }

  async scrubRow(row: number): Promise<'consistent' | 'repaired' | 'skipped'> {
    if (this.state !== 'normal' || row < 0 || row >= this.rowCount) return 'skipped';
    const chunk = this.stripeSizeBytes;
    const d = this.dataChunks;
    const repaired = await this.locks.with(row, true, async () => {
      const all = this.slots.map((_s, slot) => slot);
      const bufs = await this.loadRow(row, 0, chunk, all, [], [], this.rowOffset(row));
      const data = Array.from({ length: d }, (_x, i) => bufs[this.slotOf(row, i)]!);
      const p = Buffer.allocUnsafe(chunk);
      const q = this.parities === 2 ? Buffer.allocUnsafe(chunk) : null;
      computePQ(data, p, q);
      // The data is taken as right and the parity rewritten from it (as md's "repair" does).
      const fixes: Array<Promise<boolean>> = [];
      const pSlot = this.slotOf(row, d);
      if (!p.equals(bufs[pSlot]!)) fixes.push(this.writeSlot(pSlot, row * chunk, p, 0, chunk, false));
      const qSlot = this.slotOf(row, d + 1);
      if (q && !q.equals(bufs[qSlot]!)) fixes.push(this.writeSlot(qSlot, row * chunk, q, 0, chunk, false));
      await Promise.all(fixes);
      return fixes.length > 0;
    });
    if (repaired) this.emit({ kind: 'scrub-repaired', row });
    return repaired ? 'repaired' : 'consistent';
  }

  private async readPiece(row: number, i: number, lo: number, len: number, buf: Buffer, bufOffset: number, logical: number): Promise<void> {
    const slot = this.slotOf(row, i);
    const bad: number[] = [];
    if (this.readable(slot, row)) {
      const r = await this.readSlot(slot, row * this.stripeSizeBytes + lo, buf, bufOffset, len);
      if (r === 'ok') return;
      if (r === 'media') bad.push(slot);
    }
    await this.reconstructPiece(row, slot, lo, len, buf, bufOffset, bad, logical);
  }

  /** The fast path's read failed: true for a media error (the member stays), else the member is failed now. */
  private firstReadFailed(slot: number, drive: Drive, err: unknown): boolean {
    if (err instanceof DriveError && err.kind === 'media') return true;
    this.markFailed(slot, drive, err);
    return false;
  }

  /** Fill buf with slot's bytes [lo, +len) of row, rebuilt from the rest of the row. */
  private reconstructPiece(row: number, slot: number, lo: number, len: number, buf: Buffer, bufOffset: number, bad: number[], logical: number): Promise<void> {
    return this.locks.with(row, false, async () => {
      const bufs = await this.loadRow(row, lo, lo + len, [slot], bad, [], logical);
      bufs[slot]!.copy(buf, bufOffset, 0, len);
    });
  }

  /** One row's share of a host write, holding the row's exclusive lock. */
  private async writeRow(row: number, pieces: Piece[], data: Buffer, fua: boolean): Promise<void> {
    const chunk = this.stripeSizeBytes;
    const d = this.dataChunks;
    let lo = chunk;
    let hi = 0;
    for (const p of pieces) {
      lo = Math.min(lo, p.lo);
      hi = Math.max(hi, p.lo + p.len);
    }
    const len = hi - lo;
    const at = row * chunk + lo;
    let logged = this.mustLog(row);
    let [p, q, cols] = await this.newParity(row, pieces, data, lo, hi, logged);
    if (!logged && this.mustLog(row)) {
      // A member failed while the old data was read: the row is degraded now, so it is logged.
      logged = true;
      [p, q, cols] = await this.reconstructWrite(row, pieces, data, lo, hi);
    }
    const ticket: RowLogTicket | null = logged ? await this.rowLog!.append(this.name, row, lo, cols!) : null;
    try {
      const ops: Promise<boolean>[] = [];
      for (const piece of pieces) ops.push(this.writeSlot(this.slotOf(row, piece.i), row * chunk + piece.lo, data, piece.src, piece.len, fua));
      ops.push(this.writeSlot(this.slotOf(row, d), at, p, 0, len, fua));
      if (q) ops.push(this.writeSlot(this.slotOf(row, d + 1), at, q, 0, len, fua));
      await Promise.all(ops);
    } finally {
      if (ticket) this.rowLog!.end(ticket);
    }
    // Whatever failed on the way, the row is good if what is left can still rebuild it.
    let gone = 0;
    for (let s = 0; s < this.slots.length; s++) if (!this.readable(s, row)) gone++;
    if (gone > this.parities) throw this.lost(this.rowOffset(row) + pieces[0].i * chunk + pieces[0].lo, len, `row ${row} lost ${gone} members`);
  }

  /**
   * The row's new P (and Q) over [lo, hi), and with reconstruct-write the whole row's new data
   * there. A logged write needs that data, so it is always a reconstruct-write.
   */
  private newParity(row: number, pieces: Piece[], data: Buffer, lo: number, hi: number, logged: boolean): Promise<[Buffer, Buffer | null, Buffer[] | null]> {
    const len = hi - lo;
    const full = (p: Piece) => p.lo === lo && p.len === len;
    // Reads, in units of [lo, hi): RMW reads the old data it replaces and the parities;
    // reconstruct-write reads the data chunks the write leaves, whole or in part.
    const rmwReads = pieces.length + this.parities;
    const rcwReads = this.dataChunks - pieces.length + pieces.filter((p) => !full(p)).length;
    return !logged && this.rowReadable(row) && rmwReads < rcwReads
      ? this.readModifyWrite(row, pieces, data, lo, hi)
      : this.reconstructWrite(row, pieces, data, lo, hi);
  }

  /** A write to row goes through the row log: some member of the row is not readable, or the log still holds the row. */
  private mustLog(row: number): boolean {
    return this.rowLog !== null && (!this.rowReadable(row) || this.rowLog.live(this.name, row));
  }

  /** Every member's chunk of row can be read. */
  private rowReadable(row: number): boolean {
    if (this.healthy) return true;
    for (let s = 0; s < this.slots.length; s++) if (!this.readable(s, row)) return false;
    return true;
  }

  /** Power-on: a row log record's data written again, with the parity it makes (every member that takes writes). */
  async redoRow(row: number, lo: number, data: Buffer[]): Promise<void> {
    const chunk = this.stripeSizeBytes;
    const d = this.dataChunks;
    const len = data[0]?.length ?? 0;
    if (data.length !== d || data.some((b) => b.length !== len) || row < 0 || row >= this.rowCount || lo < 0 || lo + len > chunk) {
      throw new Error(`${this.name}: a row log record (row ${row}, [${lo}, +${len}), ${data.length} chunks) does not fit this group`);
    }
    await this.locks.with(row, true, async () => {
      const p = Buffer.allocUnsafe(len);
      const q = this.parities === 2 ? Buffer.allocUnsafe(len) : null;
      computePQ(data, p, q);
      const at = row * chunk + lo;
      const ops: Promise<boolean>[] = data.map((b, i) => this.writeSlot(this.slotOf(row, i), at, b, 0, len, false));
      ops.push(this.writeSlot(this.slotOf(row, d), at, p, 0, len, false));
      if (q) ops.push(this.writeSlot(this.slotOf(row, d + 1), at, q, 0, len, false));
      await Promise.all(ops);
    });
  }

  /** New parity = old parity + the change of each written range (times g^i for Q). */
  private async readModifyWrite(row: number, pieces: Piece[], data: Buffer, lo: number, hi: number): Promise<[Buffer, Buffer | null, null]> {
    const d = this.dataChunks;
    const want = pieces.map((p) => this.slotOf(row, p.i));
    want.push(this.slotOf(row, d));
    if (this.parities === 2) want.push(this.slotOf(row, d + 1));
    const bufs = await this.loadRow(row, lo, hi, want, [], [], this.rowOffset(row));
    const p = bufs[this.slotOf(row, d)]!;
    const q = this.parities === 2 ? bufs[this.slotOf(row, d + 1)]! : null;
    for (const piece of pieces) {
      const from = piece.lo - lo;
      const delta = bufs[this.slotOf(row, piece.i)]!.subarray(from, from + piece.len);
      xorInto(delta, data.subarray(piece.src, piece.src + piece.len));
      xorInto(p.subarray(from, from + piece.len), delta);
      if (q) mulXorInto(q.subarray(from, from + piece.len), delta, gfPow2(piece.i));
    }
    return [p, q, null];
  }

  /** Parity from the whole row's data over [lo, hi): the new data, and the rest read (or rebuilt). Also returns that data. */
  private async reconstructWrite(row: number, pieces: Piece[], data: Buffer, lo: number, hi: number): Promise<[Buffer, Buffer | null, Buffer[]]> {
    const d = this.dataChunks;
    const len = hi - lo;
    const pieceOf: Array<Piece | undefined> = new Array(d);
    for (const piece of pieces) pieceOf[piece.i] = piece;
    const want: number[] = [];
    for (let i = 0; i < d; i++) {
      const piece = pieceOf[i];
      if (!piece || piece.lo !== lo || piece.len !== len) want.push(this.slotOf(row, i));
    }
    const bufs = want.length > 0 ? await this.loadRow(row, lo, hi, want, [], [], this.rowOffset(row)) : [];
    const cols: Buffer[] = [];
    for (let i = 0; i < d; i++) {
      const piece = pieceOf[i];
      if (piece && piece.lo === lo && piece.len === len) {
        cols.push(data.subarray(piece.src, piece.src + len));
        continue;
      }
      const b = bufs[this.slotOf(row, i)]!;
      if (piece) data.copy(b, piece.lo - lo, piece.src, piece.src + piece.len);
      cols.push(b);
    }
    const p = Buffer.allocUnsafe(len);
    const q = this.parities === 2 ? Buffer.allocUnsafe(len) : null;
    computePQ(cols, p, q);
    return [p, q, cols];
  }

  /**
   * Bytes [lo, hi) of the chunks want of row (by slot), read where readable, rebuilt from the
   * rest of the row where not. bad: slots known to have a media error there; skip: slots not to
   * read (a rebuild's target). Bad ones that are still members are rewritten with the rebuilt
   * bytes (a write remaps the sectors). The caller holds the row's lock.
   */
  private async loadRow(row: number, lo: number, hi: number, want: number[], bad: number[], skip: number[], logical: number): Promise<Array<Buffer | undefined>> {
    const n = this.slots.length;
    const len = hi - lo;
    const at = row * this.stripeSizeBytes + lo;
    const bufs: Array<Buffer | undefined> = new Array(n);
    const media = new Set<number>(bad);
    const gone = new Set<number>([...bad, ...skip]);
    for (let s = 0; s < n; s++) if (!this.readable(s, row)) gone.add(s);
    let toRead = want.filter((s) => !gone.has(s));
    for (;;) {
      await Promise.all(
        toRead.map(async (s) => {
          const b = Buffer.allocUnsafe(len);
          const r = await this.readSlot(s, at, b, 0, len);
          if (r === 'ok') bufs[s] = b;
          else gone.add(s);
          if (r === 'media') media.add(s);
        }),
      );
      if (want.every((s) => bufs[s])) break;
      if (gone.size > this.parities) {
        for (const s of media) this.uncorrected(s);
        throw this.lost(logical, len, `row ${row}: ${gone.size} of ${n} members unreadable, RAID ${this.level} rebuilds at most ${this.parities}`);
      }
      toRead = [];
      for (let s = 0; s < n; s++) if (!gone.has(s) && !bufs[s]) toRead.push(s);
      if (toRead.length === 0) {
        this.rebuildChunks(row, bufs, [...gone], len);
        break;
      }
    }
    for (const s of media) {
      if (!this.writable(s) || !bufs[s]) continue;
      if (await this.writeSlot(s, at, bufs[s]!, 0, len, false)) this.corrected(s, at, len);
    }
    return bufs;
  }

  /** Fill the gone slots' buffers from the others (every other slot of the row is loaded). */
  private rebuildChunks(row: number, bufs: Array<Buffer | undefined>, gone: number[], len: number): void {
    for (const s of gone) bufs[s] = Buffer.allocUnsafe(len);
    const d = this.dataChunks;
    const data = Array.from({ length: d }, (_x, i) => bufs[this.slotOf(row, i)]!);
    const p = bufs[this.slotOf(row, d)]!;
    const q = this.parities === 2 ? bufs[this.slotOf(row, d + 1)]! : null;
    recover(data, p, q, gone.map((s) => this.indexOf(row, s)));
  }

  private rowOffset(row: number): number {
    return row * this.stripeSizeBytes * this.dataChunks;
  }

  /** Visit each data chunk piece: (row, data index, offset in chunk, length, position in the request). */
  private forEachPiece(offset: number, length: number, visit: (row: number, i: number, lo: number, len: number, pos: number) => void): void {
    const chunk = this.stripeSizeBytes;
    let pos = 0;
    while (pos < length) {
      const o = offset + pos;
      const within = o % chunk;
      const c = (o - within) / chunk;
      const len = Math.min(chunk - within, length - pos);
      visit(Math.floor(c / this.dataChunks), c % this.dataChunks, within, len, pos);
      pos += len;
    }
  }
}
