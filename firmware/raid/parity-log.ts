// The DKC's parity log: the non-volatile memory a real controller keeps RAID 5/6 row writes in
// while a group is degraded, so that a crash between the data and the parity write of a row (the
// write hole) cannot make the missing member's chunk of that row rebuild wrongly (docs/raid.md,
// "Write hole"). It is a redo log kept in one file in the DKC's metadata directory,
// `<data-dir>/<dkc>/ldev/parity-log`; the RowLog interface (firmware/drive.ts) is what the parity
// groups see of it.
//
// A record holds a row's new data over [lo, lo + len) of every data chunk of the row, so the
// row's data and parity there follow from the record alone, whatever members are gone, failed
// during the write, or came back since. It is appended and fdatasync'd before any member of the
// row is written. Power-on redoes the valid records oldest first (RaidGroupDevice.redoRow), so
// each byte ends as the newest record has it; a row with a live record is logged on every write
// (RowLog.live), so nothing newer than its newest record is ever on the members unlogged.
//
// Retire: records are dead once the member writes they were for have returned and the members
// are flushed. When the file reaches fileBytesMax, new appends wait, the log waits for the
// writes under way, flushes the parity groups (checkpoint callback), and starts the file over
// with the next generation (header first, then truncate, then fdatasync). Only then are the
// rows unlogged again. A clean power-off does the same, so the file is empty after it.
//
// Format (integers little-endian):
//   header, PLOG_HEADER_BYTES: 0 magic "DKCPLOG1" | 8 u32 version | 12 u32 header bytes
//     16 u64 generation | 24..59 zero | 60 u32 CRC32C of 0..59
//   records, back to back: 0 u32 magic "PREC" | 4 u32 CRC32C of bytes 8..end | 8 u64 seq
//     16 u64 generation (the file's) | 24 u64 row | 32 u32 lo | 36 u32 len (bytes per chunk)
//     40 u8 data chunks | 41 u8 name bytes | 42..47 zero | 48 group name (UTF-8) | chunks x len
// A record is valid if its magic, CRC and generation are right and its seq follows the one
// before; the first that is not ends the file (a torn tail: a record never fdatasync'd, whose
// write never started). Records of an older generation are dead.
import assert from 'node:assert';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import type pino from 'pino';
import { fsyncDir, readU64, writeU64 } from '../durable';
import type { RaidGroupDevice, RowLog, RowLogTicket } from '../drive';

export const PLOG_MAGIC = 'DKCPLOG1';
export const PLOG_VERSION = 1;
export const PLOG_HEADER_BYTES = 64;
export const PREC_MAGIC = 0x43455250; // "PREC" read as u32 LE
export const PREC_FIXED_BYTES = 48;
/** Default bound of the file before a checkpoint starts it over (a record larger goes into an empty file). */
export const PLOG_FILE_BYTES_DEFAULT = 16 * 1024 * 1024;
/** Bounds of one group commit (one pwritev + one fdatasync). */
export const PLOG_BATCH_RECORDS_MAX = 256;
export const PLOG_BATCH_BYTES_MAX = 4 * 1024 * 1024;

/** One row's new data, as the log holds it. */
export interface RowRecord {
  seq: number;
  group: string;
  row: number;
  lo: number;
  /** One buffer per data chunk of the row, in data-chunk order, each len bytes. */
  data: Buffer[];
}

export function encodeLogHeader(generation: number): Buffer {
  const b = Buffer.alloc(PLOG_HEADER_BYTES);
  b.write(PLOG_MAGIC, 0, 'latin1');
  b.writeUInt32LE(PLOG_VERSION, 8);
  b.writeUInt32LE(PLOG_HEADER_BYTES, 12);
  writeU64(b, generation, 16);
  b.writeUInt32LE(crc32c(b.subarray(0, 60)), 60);
  return b;
}

/** The header's generation, or null when the bytes are not a valid header. */
export function decodeLogHeader(b: Buffer): number | null {
  if (b.length < PLOG_HEADER_BYTES || b.toString('latin1', 0, 8) !== PLOG_MAGIC) return null;
  if (b.readUInt32LE(60) !== crc32c(b.subarray(0, 60))) return null;
  if (b.readUInt32LE(8) !== PLOG_VERSION || b.readUInt32LE(12) !== PLOG_HEADER_BYTES) return null;
  return readU64(b, 16);
}

/** One record whole in a Buffer. */
export function encodeRowRecord(r: RowRecord, generation: number): Buffer {
  const name = Buffer.from(r.group, 'utf8');
  const len = r.data[0]?.length ?? 0;
  assert(name.length <= 255 && r.data.length >= 1 && r.data.length <= 255, `row log: record of ${r.group} has ${r.data.length} chunks`);
  assert(r.data.every((b) => b.length === len), 'row log: chunks of one record differ in length');
  const b = Buffer.allocUnsafe(PREC_FIXED_BYTES + name.length + r.data.length * len);
  b.writeUInt32LE(PREC_MAGIC, 0);
  writeU64(b, r.seq, 8);
  writeU64(b, generation, 16);
  writeU64(b, r.row, 24);
  b.writeUInt32LE(r.lo, 32);
  b.writeUInt32LE(len, 36);
  b[40] = r.data.length;
  b[41] = name.length;
  b.fill(0, 42, PREC_FIXED_BYTES);
  name.copy(b, PREC_FIXED_BYTES);
  let at = PREC_FIXED_BYTES + name.length;
  for (const d of r.data) at += d.copy(b, at);
  b.writeUInt32LE(crc32c(b.subarray(8)), 4);
  return b;
}

/** A log file's valid records (data are views of bytes) and where the valid part ends. */
export function scanRowLog(bytes: Buffer): { generation: number | null; records: RowRecord[]; validBytes: number } {
  const generation = decodeLogHeader(bytes);
  if (generation === null) return { generation, records: [], validBytes: 0 };
  const records: RowRecord[] = [];
  let at = PLOG_HEADER_BYTES;
  for (;;) {
    const r = decodeRecordAt(bytes, at, generation, records.length > 0 ? records[records.length - 1].seq : 0);
    if (r === null) break;
    records.push(r.record);
    at += r.length;
  }
  return { generation, records, validBytes: at };
}

function decodeRecordAt(b: Buffer, at: number, generation: number, lastSeq: number): { record: RowRecord; length: number } | null {
  if (b.length - at < PREC_FIXED_BYTES || b.readUInt32LE(at) !== PREC_MAGIC) return null;
  const len = b.readUInt32LE(at + 36);
  const chunks = b[at + 40];
  const nameLength = b[at + 41];
  const length = PREC_FIXED_BYTES + nameLength + chunks * len;
  if (chunks === 0 || b.length - at < length) return null;
  if (b.readUInt32LE(at + 4) !== crc32c(b.subarray(at + 8, at + length))) return null;
  const seq = readU64(b, at + 8);
  if (readU64(b, at + 16) !== generation || seq <= lastSeq) return null;
  const group = b.toString('utf8', at + PREC_FIXED_BYTES, at + PREC_FIXED_BYTES + nameLength);
  const base = at + PREC_FIXED_BYTES + nameLength;
  const data = Array.from({ length: chunks }, (_x, i) => b.subarray(base + i * len, base + (i + 1) * len));
  return { record: { seq, group, row: readU64(b, at + 24), lo: b.readUInt32LE(at + 32), data }, length };
}

export interface ParityLogOptions {
  fileBytesMax?: number;
  log?: pino.Logger;
}

export interface ParityLogStats {
  records: number;
  batches: number;
  datasyncs: number;
  checkpoints: number;
}

interface Pending {
  record: RowRecord;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class ParityLog implements RowLog {
  readonly stats: ParityLogStats = { records: 0, batches: 0, datasyncs: 0, checkpoints: 0 };
  /** Rows with a record in the file, by group: written through the log until the next checkpoint. */
  private readonly liveRows = new Map<string, Set<number>>();
  /** Records in the file whose member writes have not returned (appended, not ended). */
  private outstanding = 0;
  private outstandingZero: (() => void) | null = null;
  private readonly queue: Pending[] = [];
  private writing = false;
  private failed: unknown = null;
  private nextSeq = 1;
  /** Flushes the members of the parity groups (the DKC sets it at power-on). */
  private checkpointSync: () => Promise<void> = async () => undefined;
  private readonly fileBytesMax: number;

  private constructor(
    readonly file: string,
    private readonly fh: fs.FileHandle,
    private generation: number,
    /** The append position. */
    private size: number,
    /** What the file held at power-on, oldest first, for replay. */
    private recovered: RowRecord[],
    private readonly log: pino.Logger | undefined,
    opts: ParityLogOptions,
  ) {
    this.fileBytesMax = opts.fileBytesMax ?? PLOG_FILE_BYTES_DEFAULT;
    for (const r of recovered) this.markLive(r.group, r.row);
    if (recovered.length > 0) this.nextSeq = recovered[recovered.length - 1].seq + 1;
  }

  /** Open the log (created empty if missing); its records wait for replay. */
  static async open(file: string, opts: ParityLogOptions = {}): Promise<ParityLog> {
    let bytes: Buffer | null = null;
    try {
      bytes = await fs.readFile(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (bytes === null || decodeLogHeader(bytes) === null) {
      // New (or never initialised: a crash before the first header was durable, so no record).
      const fh = await fs.open(file, 'w+');
      try {
        await fh.write(encodeLogHeader(1), 0, PLOG_HEADER_BYTES, 0);
        await fh.datasync();
        await fsyncDir(path.dirname(file));
      } catch (err) {
        await fh.close();
        throw err;
      }
      return new ParityLog(file, fh, 1, PLOG_HEADER_BYTES, [], opts.log, opts);
    }
    const scan = scanRowLog(bytes);
    const fh = await fs.open(file, 'r+');
    return new ParityLog(file, fh, scan.generation!, scan.validBytes, scan.records, opts.log, opts);
  }

  /** The DKC's flush of every parity group's members: what a checkpoint waits for. */
  setCheckpointSync(sync: () => Promise<void>): void {
    this.checkpointSync = sync;
  }

  /** Records a crash left (before replay). */
  get pending(): readonly RowRecord[] {
    return this.recovered;
  }

  /**
   * Power-on, before any I/O: redo every record left, oldest first, then checkpoint (flush the
   * groups, start the file over). A record of a group that is not there, or not RAID 5/6, is an
   * error: the data it holds would be lost.
   */
  async replay(group: (name: string) => RaidGroupDevice | undefined): Promise<number> {
    const records = this.recovered;
    this.recovered = [];
    try {
      for (const r of records) {
        const g = group(r.group);
        if (!g?.redoRow) throw new Error(`${this.file}: a record (seq ${r.seq}) for ${g ? `RAID ${g.level} group` : 'no group'} ${r.group}`);
        await g.redoRow(r.row, r.lo, r.data);
      }
    } catch (err) {
      this.failed = err; // close must not retire records that were not redone
      throw err;
    }
    if (records.length > 0) {
      this.log?.warn({ records: records.length }, 'parity log: rows written while degraded redone after a crash');
      await this.checkpoint();
    }
    return records.length;
  }

  live(group: string, row: number): boolean {
    return this.liveRows.size > 0 && this.liveRows.get(group)?.has(row) === true;
  }

  append(group: string, row: number, lo: number, data: Buffer[]): Promise<RowLogTicket> {
    if (this.failed !== null) return Promise.reject(this.failedError());
    const record = { seq: this.nextSeq++, group, row, lo, data };
    this.markLive(group, row);
    return new Promise<RowLogTicket>((resolve, reject) => {
      this.queue.push({ record, resolve: () => resolve({ seq: record.seq }), reject });
      void this.pump();
    });
  }

  end(_ticket: RowLogTicket): void {
    assert(this.outstanding > 0, 'row log: end without append');
    if (--this.outstanding === 0 && this.outstandingZero) {
      const wake = this.outstandingZero;
      this.outstandingZero = null;
      wake();
    }
  }

  /** Clean power-off (after the DKC's flush): retire everything, leaving an empty file. */
  async close(): Promise<void> {
    try {
      assert(this.queue.length === 0 && !this.writing, 'row log: closed with appends under way');
      await this.waitIdle();
      if (this.failed === null && this.size > PLOG_HEADER_BYTES) await this.checkpoint();
    } finally {
      await this.fh.close();
    }
  }

  private markLive(group: string, row: number): void {
    let rows = this.liveRows.get(group);
    if (!rows) this.liveRows.set(group, (rows = new Set()));
    rows.add(row);
  }

  private failedError(): Error {
    const why = this.failed instanceof Error ? this.failed.message : String(this.failed);
    return new Error(`parity log ${this.file} failed: ${why}`);
  }

  /** Write what is queued, one group commit at a time; checkpoint first when the file is full. */
  private async pump(): Promise<void> {
    if (this.writing) return;
    this.writing = true;
    try {
      while (this.queue.length > 0) {
        if (this.size > PLOG_HEADER_BYTES && this.size + recordBytes(this.queue[0].record) > this.fileBytesMax) await this.checkpoint();
        const batch = this.takeBatch();
        // Encoded now: a record gets the generation of the file it goes into.
        const bufs = batch.map((p) => encodeRowRecord(p.record, this.generation));
        await writeAll(this.fh, bufs, this.size);
        await this.fh.datasync();
        this.size += bufs.reduce((n, b) => n + b.length, 0);
        this.stats.records += batch.length;
        this.stats.batches++;
        this.stats.datasyncs++;
        this.outstanding += batch.length;
        for (const p of batch) p.resolve();
      }
    } catch (err) {
      this.failed = err;
      this.log?.error({ err }, 'parity log write failed: degraded RAID 5/6 writes fail from now on');
      for (const p of this.queue.splice(0)) p.reject(this.failedError());
    } finally {
      this.writing = false;
    }
  }

  /** The next records to write, in seq order, within the batch bounds (at least one). */
  private takeBatch(): Pending[] {
    let bytes = 0;
    let n = 0;
    while (n < this.queue.length && n < PLOG_BATCH_RECORDS_MAX && (n === 0 || bytes + recordBytes(this.queue[n].record) <= PLOG_BATCH_BYTES_MAX)) {
      bytes += recordBytes(this.queue[n].record);
      n++;
    }
    return this.queue.splice(0, n);
  }

  /** Every record handed out has ended (its member writes returned). */
  private waitIdle(): Promise<void> {
    if (this.outstanding === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const before = this.outstandingZero;
      this.outstandingZero = () => {
        before?.();
        resolve();
      };
    });
  }

  /**
   * Retire every record: wait for the writes they are for (appends queued meanwhile wait with
   * their rows locked, so no write to a live row can start), flush the members, start the file
   * over durably, and only then let the rows go unlogged.
   */
  private async checkpoint(): Promise<void> {
    await this.waitIdle();
    await this.checkpointSync();
    this.generation++;
    await this.fh.write(encodeLogHeader(this.generation), 0, PLOG_HEADER_BYTES, 0);
    await this.fh.truncate(PLOG_HEADER_BYTES);
    await this.fh.datasync();
    this.size = PLOG_HEADER_BYTES;
    this.stats.checkpoints++;
    this.stats.datasyncs++;
    this.liveRows.clear();
    // Rows of records still queued are logged on, in the new file.
    for (const p of this.queue) this.markLive(p.record.group, p.record.row);
  }
}

function recordBytes(r: RowRecord): number {
  return PREC_FIXED_BYTES + Buffer.byteLength(r.group) + r.data.length * r.data[0].length;
}

/** pwritev of bufs at position, the rest again if the kernel took only part. */
async function writeAll(fh: fs.FileHandle, bufs: Buffer[], position: number): Promise<void> {
  const total = bufs.reduce((n, b) => n + b.length, 0);
  const { bytesWritten } = await fh.writev(bufs, position);
  if (bytesWritten < total) {
    const rest = Buffer.concat(bufs).subarray(bytesWritten);
    let at = 0;
    while (at < rest.length) at += (await fh.write(rest, at, rest.length - at, position + bytesWritten + at)).bytesWritten;
  }
}
