// The non-volatile half of the DKC cache in write-back mode: a real array keeps dirty cache data
// in battery-backed RAM; dkc-emu keeps a journal of it in two files in the DKC's data directory
// (docs/cache.md, "Write-back"). A host write is acknowledged once its record is in the journal
// file (written through the page cache, so it survives kill -9 of the process; FUA and
// SYNCHRONIZE CACHE add an fdatasync, so those survive power loss too).
//
// Format (all integers little-endian):
//   file header, JOURNAL_HEADER_BYTES:
//     0 magic "DKCCJNL1" | 8 u32 version | 12 u32 header bytes | 16 u64 generation
//     24 u64 start seq (the seq of the file's first record) | 32..59 zero | 60 u32 CRC32C of 0..59
//   records, back to back from JOURNAL_HEADER_BYTES:
//     0 u32 magic "JREC" | 4 u32 CRC32C of bytes 8..end (fixed part, name, payload)
//     8 u64 seq | 16 u8 type (1 write, 2 checkpoint) | 17 u8 name bytes | 18 u16 zero
//     20 u32 payload bytes | 24 u64 offset (write: byte offset in the RAID group;
//     checkpoint: stable seq) | 32 u64 generation (the file's) | 40 name (UTF-8) | payload
// Records are appended in seq order, one batch (one pwritev) at a time: a record is in the file
// only if every earlier one is, so a torn tail (bad magic, CRC, generation or a seq out of order)
// ends the valid part, and only writes never acknowledged can be in it.
//
// A checkpoint record with stable seq N says: the data of every write record with seq < N is on
// the RAID groups' stable storage (destaged, then the groups were flushed). Restart replays the
// write records at or after the last checkpoint, oldest first.
//
// Reclaim: the two files alternate. Appends go to the active file; once it holds
// fileBytesMax / 2 the writer switches to the other file (truncated, new generation) provided
// the other file is dead, i.e. every record in it is below the stable seq. Otherwise it keeps
// appending up to fileBytesMax and then waits (back-pressure) while destage catches up.
import assert from 'node:assert';
import { promises as fs, fdatasync as fsFdatasync, writev as fsWritev } from 'node:fs';
import * as path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import type pino from 'pino';
import { fsyncDir, readU64, writeU64 } from '../durable';

export const JOURNAL_MAGIC = 'DKCCJNL1';
export const JOURNAL_VERSION = 1;
export const JOURNAL_HEADER_BYTES = 64;
export const RECORD_MAGIC = 0x4345524a; // "JREC" read as u32 LE
export const RECORD_FIXED_BYTES = 40;
export const RECORD_WRITE = 1;
export const RECORD_CHECKPOINT = 2;
/** Largest payload of one record (the cache writes at most one slot per record). */
export const RECORD_PAYLOAD_MAX = 1024 * 1024;
/** Default bound of one journal file; the journal never takes more than twice this. */
export const JOURNAL_FILE_BYTES_DEFAULT = 128 * 1024 * 1024;
export const JOURNAL_FILE_BYTES_MIN = 1024 * 1024;
/** Bounds of one batch (one pwritev): records (2 iovecs each, under IOV_MAX = 1024) and bytes. */
export const JOURNAL_BATCH_RECORDS_MAX = 256;
export const JOURNAL_BATCH_BYTES_MAX = 8 * 1024 * 1024;
export const JOURNAL_FILE_NAMES = ['cache-journal-0', 'cache-journal-1'] as const;

export interface JournalHeader {
  generation: number;
  startSeq: number;
}

export function encodeHeader(h: JournalHeader): Buffer {
  const b = Buffer.alloc(JOURNAL_HEADER_BYTES);
  b.write(JOURNAL_MAGIC, 0, 'latin1');
  b.writeUInt32LE(JOURNAL_VERSION, 8);
  b.writeUInt32LE(JOURNAL_HEADER_BYTES, 12);
  writeU64(b, h.generation, 16);
  writeU64(b, h.startSeq, 24);
  b.writeUInt32LE(crc32c(b.subarray(0, 60)), 60);
  return b;
}

/** The header, or null when the bytes are not a valid one (a file never initialised, or torn). */
export function decodeHeader(b: Buffer): JournalHeader | null {
  if (b.length < JOURNAL_HEADER_BYTES) return null;
  if (b.toString('latin1', 0, 8) !== JOURNAL_MAGIC) return null;
  if (b.readUInt32LE(60) !== crc32c(b.subarray(0, 60))) return null;
  if (b.readUInt32LE(8) !== JOURNAL_VERSION || b.readUInt32LE(12) !== JOURNAL_HEADER_BYTES) return null;
  return { generation: readU64(b, 16), startSeq: readU64(b, 24) };
}

export type JournalRecord =
  | { type: 'write'; seq: number; group: string; offset: number; data: Buffer }
  | { type: 'checkpoint'; seq: number; stableSeq: number };

/**
 * Fill head[at, +RECORD_FIXED_BYTES + name.length) with a record's fixed part and name, CRC
 * included (over the payload too). Returns the record's length without the payload.
 */
export function encodeRecordHead(
  head: Buffer, at: number, r: { seq: number; type: number; name: Buffer; offset: number; generation: number },
  payload: Buffer | null, payloadOffset: number, payloadLength: number,
): number {
  head.writeUInt32LE(RECORD_MAGIC, at);
  writeU64(head, r.seq, at + 8);
  head[at + 16] = r.type;
  head[at + 17] = r.name.length;
  head.writeUInt16LE(0, at + 18);
  head.writeUInt32LE(payloadLength, at + 20);
  writeU64(head, r.offset, at + 24);
  writeU64(head, r.generation, at + 32);
  r.name.copy(head, at + RECORD_FIXED_BYTES);
  const end = at + RECORD_FIXED_BYTES + r.name.length;
  let crc = crc32c(head.subarray(at + 8, end));
  if (payloadLength > 0) crc = crc32c(payload!.subarray(payloadOffset, payloadOffset + payloadLength), crc);
  head.writeUInt32LE(crc, at + 4);
  return end - at;
}

/** One record whole in a Buffer (tests and the checkpoint path). */
export function encodeRecord(r: JournalRecord, generation: number): Buffer {
  const name = Buffer.from(r.type === 'write' ? r.group : '');
  const payload = r.type === 'write' ? r.data : null;
  const len = payload?.length ?? 0;
  const head = Buffer.alloc(RECORD_FIXED_BYTES + name.length);
  const type = r.type === 'write' ? RECORD_WRITE : RECORD_CHECKPOINT;
  const offset = r.type === 'write' ? r.offset : r.stableSeq;
  encodeRecordHead(head, 0, { seq: r.seq, type, name, offset, generation }, payload, 0, len);
  return payload ? Buffer.concat([head, payload]) : head;
}

/** What one journal file holds: its header and its valid records (payloads are views of bytes). */
export interface JournalFileScan {
  header: JournalHeader | null;
  records: JournalRecord[];
  /** Bytes of the valid part (header and whole records). */
  validBytes: number;
  /** Bytes after the valid part (a torn tail, or stale bytes). */
  tailBytes: number;
}

/** Decode a whole journal file; stops at the first record that is not valid and in sequence. */
export function scanJournal(bytes: Buffer): JournalFileScan {
  const header = decodeHeader(bytes);
  if (header === null) return { header: null, records: [], validBytes: 0, tailBytes: bytes.length };
  const records: JournalRecord[] = [];
  let at = JOURNAL_HEADER_BYTES;
  let seq = header.startSeq;
  for (;;) {
    const r = decodeRecordAt(bytes, at, seq, header.generation);
    if (r === null) break;
    records.push(r.record);
    at += r.length;
    seq++;
  }
  return { header, records, validBytes: at, tailBytes: bytes.length - at };
}

function decodeRecordAt(b: Buffer, at: number, seq: number, generation: number): { record: JournalRecord; length: number } | null {
  if (b.length - at < RECORD_FIXED_BYTES || b.readUInt32LE(at) !== RECORD_MAGIC) return null;
  const nameLength = b[at + 17];
  const payloadLength = b.readUInt32LE(at + 20);
  if (payloadLength > RECORD_PAYLOAD_MAX) return null;
  const length = RECORD_FIXED_BYTES + nameLength + payloadLength;
  if (b.length - at < length) return null;
  if (b.readUInt32LE(at + 4) !== crc32c(b.subarray(at + 8, at + length))) return null;
  if (readU64(b, at + 8) !== seq || readU64(b, at + 32) !== generation) return null;
  const type = b[at + 16];
  const offset = readU64(b, at + 24);
  if (type === RECORD_WRITE) {
    const group = b.toString('utf8', at + RECORD_FIXED_BYTES, at + RECORD_FIXED_BYTES + nameLength);
    const data = b.subarray(at + RECORD_FIXED_BYTES + nameLength, at + length);
    return { record: { type: 'write', seq, group, offset, data }, length };
  }
  if (type === RECORD_CHECKPOINT) return { record: { type: 'checkpoint', seq, stableSeq: offset }, length };
  return null;
}

/** What restart finds in a journal directory. */
export interface JournalRecovery {
  /** Write records at or after the last checkpoint, oldest first: to be replayed. */
  writes: Extract<JournalRecord, { type: 'write' }>[];
  /** The seq the next record gets. */
  nextSeq: number;
  /** Highest generation seen (0 when no file had a valid header). */
  generation: number;
  /** Whether any journal file exists at all. */
  found: boolean;
  /** Bytes ignored after the valid parts (torn tails). */
  tailBytes: number;
}

/** Read both journal files and pick out what must be replayed. */
export async function recoverJournal(dir: string): Promise<JournalRecovery> {
  const scans: JournalFileScan[] = [];
  let found = false;
  for (const name of JOURNAL_FILE_NAMES) {
    let bytes: Buffer;
    try {
      bytes = await fs.readFile(path.join(dir, name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    found = true;
    scans.push(scanJournal(bytes));
  }
  const valid = scans.filter((s) => s.header !== null).sort((a, b) => a.header!.generation - b.header!.generation);
  // Oldest file first; a seq must rise (a newer file's records supersede nothing older).
  const all: JournalRecord[] = [];
  let nextSeq = 1;
  for (const s of valid) {
    nextSeq = Math.max(nextSeq, s.header!.startSeq);
    for (const r of s.records) {
      if (all.length > 0 && r.seq <= all[all.length - 1].seq) continue;
      all.push(r);
      nextSeq = r.seq + 1;
    }
  }
  let stable = 0;
  for (const r of all) if (r.type === 'checkpoint') stable = Math.max(stable, r.stableSeq);
  const writes = all.filter((r): r is Extract<JournalRecord, { type: 'write' }> => r.type === 'write' && r.seq >= stable);
  return {
    writes,
    nextSeq,
    generation: valid.length > 0 ? valid[valid.length - 1].header!.generation : 0,
    found,
    tailBytes: scans.reduce((n, s) => n + s.tailBytes, 0),
  };
}

interface PendingRecord {
  seq: number;
  type: number;
  name: Buffer;
  offset: number;
  data: Buffer | null;
  dataOffset: number;
  length: number;
}

interface Batch {
  records: PendingRecord[];
  bytes: number;
  /** fdatasync after the write (FUA or SYNCHRONIZE CACHE in it). */
  sync: boolean;
  done: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

interface JournalFile {
  name: string;
  fd: number;
  fh: fs.FileHandle;
  /** Bytes written (the append position). */
  size: number;
  startSeq: number;
}

export interface JournalOptions {
  /** Bound of one file (fileBytesMax / 2 is where it switches files when it can). */
  fileBytesMax?: number;
  /** Called when appends wait for the other file to become dead: destage must hurry. */
  onPressure?: () => void;
  log?: pino.Logger;
}

export interface JournalStats {
  records: number;
  batches: number;
  bytes: number;
  datasyncs: number;
  rotations: number;
  /** Batches that waited for the other file to be reclaimed. */
  stalls: number;
}

const NO_NAME = Buffer.alloc(0);

/** The appending side: group commit into the active file, rotation, durability on request. */
export class CacheJournal {
  readonly fileBytesMax: number;
  readonly stats: JournalStats = { records: 0, batches: 0, bytes: 0, datasyncs: 0, rotations: 0, stalls: 0 };
  /** Every write record below this seq is on the RAID groups' stable storage. */
  stableSeq: number;
  private nextSeqValue: number;
  /** Seq of the first record not yet handed to a write (a new file starts there). */
  private nextWriteSeq: number;
  private generation: number;
  private active: JournalFile;
  private other: JournalFile;
  /** Batches not yet written, oldest (maybe being written) first. */
  private readonly queue: Batch[] = [];
  /** The batch that takes new records (the last queued one, until its write starts). */
  private open: Batch | null = null;
  private writing = false;
  private failed: unknown = null;
  private reclaimWaiters: (() => void)[] = [];
  private readonly onPressure: () => void;
  private readonly batchBytesMax: number;

  private constructor(readonly dir: string, files: [JournalFile, JournalFile], nextSeq: number, generation: number, opts: JournalOptions) {
    this.fileBytesMax = opts.fileBytesMax ?? JOURNAL_FILE_BYTES_DEFAULT;
    this.batchBytesMax = Math.min(JOURNAL_BATCH_BYTES_MAX, Math.floor(this.fileBytesMax / 4));
    [this.active, this.other] = files;
    this.nextSeqValue = nextSeq;
    this.nextWriteSeq = nextSeq;
    this.stableSeq = nextSeq;
    this.generation = generation;
    this.onPressure = opts.onPressure ?? (() => undefined);
  }

  /**
   * Start a fresh journal after recovery (everything in the old files replayed and flushed):
   * the file with the older generation gets generation + 1 and a checkpoint at nextSeq that makes
   * every older record dead; both are durable before this resolves.
   */
  static async create(dir: string, recovered: JournalRecovery, opts: JournalOptions = {}): Promise<CacheJournal> {
    const fileBytesMax = opts.fileBytesMax ?? JOURNAL_FILE_BYTES_DEFAULT;
    assert(fileBytesMax >= JOURNAL_FILE_BYTES_MIN, `journal files of ${fileBytesMax} bytes are below ${JOURNAL_FILE_BYTES_MIN}`);
    await fs.mkdir(dir, { recursive: true });
    const handles = await Promise.all(JOURNAL_FILE_NAMES.map((n) => openOrCreate(path.join(dir, n))));
    const headers = await Promise.all(handles.map(async (fh) => {
      const b = Buffer.alloc(JOURNAL_HEADER_BYTES);
      const { bytesRead } = await fh.read(b, 0, b.length, 0);
      return decodeHeader(b.subarray(0, bytesRead));
    }));
    // The file to reuse: no valid header, or the older generation.
    const gen = (i: number) => headers[i]?.generation ?? -1;
    const a = gen(0) <= gen(1) ? 0 : 1;
    const generation = recovered.generation + 1;
    const seq = recovered.nextSeq;
    const fresh: JournalFile = { name: JOURNAL_FILE_NAMES[a], fh: handles[a], fd: handles[a].fd, size: 0, startSeq: seq };
    const other: JournalFile = { name: JOURNAL_FILE_NAMES[1 - a], fh: handles[1 - a], fd: handles[1 - a].fd, size: 0, startSeq: 0 };
    await fresh.fh.truncate(0);
    const head = encodeHeader({ generation, startSeq: seq });
    const cp = encodeRecord({ type: 'checkpoint', seq, stableSeq: seq }, generation);
    await fresh.fh.write(Buffer.concat([head, cp]), 0, head.length + cp.length, 0);
    await fresh.fh.datasync();
    await fsyncDir(dir);
    fresh.size = head.length + cp.length;
    const j = new CacheJournal(dir, [fresh, other], seq + 1, generation, opts);
    j.stableSeq = seq + 1;
    return j;
  }

  /** Why the journal takes no more records (a write or sync failed), or null. */
  get broken(): unknown {
    return this.failed;
  }

  /** [active, other] file names. */
  get fileNames(): [string, string] {
    return [this.active.name, this.other.name];
  }

  /** The seq the next record gets. */
  get nextSeq(): number {
    return this.nextSeqValue;
  }

  /** Seq of the active file's first record: the other file is dead once stableSeq reaches it. */
  get activeStartSeq(): number {
    return this.active.startSeq;
  }

  /** Bytes in both files (the other counts until it is reused). */
  get sizeBytes(): number {
    return this.active.size + this.other.size;
  }

  /** The active file is past its switch point but the other file still holds live records. */
  get needsReclaim(): boolean {
    return this.active.size >= this.fileBytesMax / 2 && this.stableSeq < this.active.startSeq;
  }

  /** Queue a write record; returns its seq. Durable once commit()'s promise resolves. */
  appendWrite(name: Buffer, offset: number, data: Buffer, dataOffset: number, length: number): number {
    return this.append({ seq: 0, type: RECORD_WRITE, name, offset, data, dataOffset, length });
  }

  /** Queue a checkpoint: every write record below stableSeq is on stable storage. */
  appendCheckpoint(stableSeq: number): number {
    return this.append({ seq: 0, type: RECORD_CHECKPOINT, name: NO_NAME, offset: stableSeq, data: null, dataOffset: 0, length: 0 });
  }

  /**
   * Resolves when every record queued so far is in the file (and, with sync, on stable storage).
   * Rejects if the journal cannot be written: nothing may be acknowledged after a hole.
   */
  commit(sync: boolean): Promise<void> {
    if (this.failed !== null) return Promise.reject(this.failed);
    const b = this.open ?? this.newBatch();
    if (sync) b.sync = true;
    return b.done;
  }

  /** Records below seq are on stable storage: the other file may be reused once it holds only such. */
  markStable(seq: number): void {
    if (seq <= this.stableSeq) return;
    this.stableSeq = seq;
    const ws = this.reclaimWaiters;
    this.reclaimWaiters = [];
    for (const w of ws) w();
  }

  /** Write what is queued, fdatasync, close both files. */
  async close(): Promise<void> {
    if (this.failed === null) await this.commit(true).catch(() => undefined);
    await Promise.all([this.active.fh.close(), this.other.fh.close()]);
  }

  private append(r: PendingRecord): number {
    if (this.failed !== null) throw this.failed;
    r.seq = this.nextSeqValue++;
    const bytes = RECORD_FIXED_BYTES + r.name.length + r.length;
    let b = this.open;
    if (b === null || b.records.length >= JOURNAL_BATCH_RECORDS_MAX || b.bytes + bytes > this.batchBytesMax) b = this.newBatch();
    b.records.push(r);
    b.bytes += bytes;
    this.stats.records++;
    return r.seq;
  }

  private newBatch(): Batch {
    let resolve!: () => void;
    let reject!: (err: unknown) => void;
    const done = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // The caller may not wait (checkpoints): a failure is kept in this.failed, not left unhandled.
    done.catch(() => undefined);
    const b: Batch = { records: [], bytes: 0, sync: false, done, resolve, reject };
    this.queue.push(b);
    this.open = b;
    // Start on a later microtask, so that every record queued in this turn joins the batch.
    if (!this.writing) {
      this.writing = true;
      void Promise.resolve().then(() => this.drain());
    }
    return b;
  }

  /** Write the queued batches one after the other (so the file holds a prefix of the seqs). */
  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const b = this.queue[0];
      if (b === this.open) this.open = null;
      try {
        await this.writeBatch(b);
        this.queue.shift();
        b.resolve();
      } catch (err) {
        this.failed = err instanceof Error ? err : new Error(String(err));
        for (const q of this.queue.splice(0)) q.reject(this.failed);
        this.open = null;
      }
    }
    this.writing = false;
  }

  private async writeBatch(b: Batch): Promise<void> {
    if (b.records.length > 0) {
      await this.makeRoom(b.bytes);
      const heads = Buffer.allocUnsafe(b.bytes - b.records.reduce((n, r) => n + r.length, 0));
      const iov: Buffer[] = [];
      let at = 0;
      for (const r of b.records) {
        const len = encodeRecordHead(heads, at, { ...r, generation: this.generation }, r.data, r.dataOffset, r.length);
        iov.push(heads.subarray(at, at + len));
        if (r.length > 0) iov.push(r.data!.subarray(r.dataOffset, r.dataOffset + r.length));
        at += len;
      }
      await writevAll(this.active.fd, iov, this.active.size, b.bytes);
      this.active.size += b.bytes;
      this.nextWriteSeq = b.records[b.records.length - 1].seq + 1;
      this.stats.batches++;
      this.stats.bytes += b.bytes;
    }
    if (b.sync) {
      await fdatasync(this.active.fd);
      this.stats.datasyncs++;
    }
  }

  /** Switch files when the active one is past half its bound and the other is dead; else wait at the bound. */
  private async makeRoom(bytes: number): Promise<void> {
    if (this.active.size + bytes <= this.fileBytesMax / 2) return;
    let stalled = false;
    while (this.stableSeq < this.active.startSeq) {
      if (this.active.size + bytes <= this.fileBytesMax) return;
      if (!stalled) this.stats.stalls++;
      stalled = true;
      const reclaimed = new Promise<void>((resolve) => this.reclaimWaiters.push(resolve));
      this.onPressure();
      await reclaimed;
    }
    await this.rotate();
  }

  private async rotate(): Promise<void> {
    // The old active file is complete and durable before the new one can hold anything.
    await fdatasync(this.active.fd);
    const next = this.other;
    this.generation++;
    await next.fh.truncate(0);
    const head = encodeHeader({ generation: this.generation, startSeq: this.nextWriteSeq });
    await writevAll(next.fd, [head], 0, head.length);
    next.size = head.length;
    next.startSeq = this.nextWriteSeq;
    this.other = this.active;
    this.active = next;
    this.stats.rotations++;
  }
}

/** Retire the journal of a cache that is no longer write-back: its records were replayed. */
export async function removeJournal(dir: string, recovered: JournalRecovery): Promise<void> {
  // First make every record dead durably (a fresh file with a checkpoint), so that a crash
  // between the two unlinks can never replay an old record over newer data.
  const j = await CacheJournal.create(dir, recovered);
  await j.close();
  // The stale file goes first: the fresh one alone replays nothing.
  for (const name of [j.fileNames[1], j.fileNames[0]]) {
    await fs.rm(path.join(dir, name), { force: true });
    await fsyncDir(dir);
  }
}

async function openOrCreate(file: string): Promise<fs.FileHandle> {
  try {
    return await fs.open(file, 'r+');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    return fs.open(file, 'w+');
  }
}

function writevAll(fd: number, iov: Buffer[], position: number, length: number): Promise<void> {
  return new Promise((resolve, reject) => {
    fsWritev(fd, iov, position, (err, written) => {
      if (err) return reject(err);
      if (written === length) return resolve();
      // A short write (rare: a signal, a full disk): write the rest.
      const rest = Buffer.concat(iov).subarray(written);
      writevAll(fd, [rest], position + written, length - written).then(resolve, reject);
    });
  });
}

function fdatasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fsFdatasync(fd, (err) => (err ? reject(err) : resolve())));
}
