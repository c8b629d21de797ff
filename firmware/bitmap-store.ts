// Block bitmaps that survive a restart: one file per named bitmap in a directory of the data dir,
// replaced atomically on every update (temp file + fsync + rename + fsync of the directory), with
// a clean/dirty protocol so that a bitmap that might be stale is never trusted.
//
// File `<name>.bitmap` (all integers little-endian):
//   0  magic 'DKCBITMP' (8 bytes)      32 bits u64 (= ceil(volumeBlocks / blocksPerBit))
//   8  format version u32 (1)          40 payload bytes u32 (clean: Bitmap.byteLength(bits); dirty: 0)
//   12 state u32: 1 clean, 2 dirty     44 payload crc32c u32 (crc32c of the payload; 0 when dirty)
//   16 blocksPerBit u32                48..60 zero
//   20 zero u32                        60 header crc32c u32 (crc32c of bytes [0, 60))
//   24 volumeBlocks u64
//   64.. payload: the bitmap's bytes (Bitmap.bytes(): bit i is byte i/8 bit i%8; the bits past
//        `bits` in the last 32-bit word are zero)
//
// Protocol. A clean file holds the bitmap exactly as it is in RAM. Before the first change after
// a save, the owner calls markDirty(), which replaces the file with a dirty header (no payload:
// a dirty bitmap is never read) and resolves once that is durable; save() writes the bitmap and
// makes the file clean again. On open, anything short of a clean file whose header matches the
// expected geometry and whose checksums hold (missing, torn, corrupt, other geometry, dirty)
// means the bitmap might be stale: it loads as all ones (every unit must be copied again) with
// trusted false and the reason, for the owner to log. A bitmap that never existed (a new pair,
// a fresh volume) is made with create(), never with open(): only the owner knows the difference
// between "never existed" and "existed but lost", and a missing file on open() is the latter.
import assert from 'node:assert';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { Bitmap } from './bitmap';
import { BlockBitmap } from './block-bitmap';
import { fsyncDir, writeFileAtomic } from './durable';

const MAGIC = 'DKCBITMP';
const FORMAT_VERSION = 1;
const HEADER_BYTES = 64;
const STATE_CLEAN = 1;
const STATE_DIRTY = 2;
const SUFFIX = '.bitmap';
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export interface BitmapGeometry {
  volumeBlocks: number;
  blocksPerBit: number;
}

/** Why open() did or did not trust the file. */
export type BitmapLoadReason = 'clean' | 'created' | 'missing' | 'dirty' | 'corrupt' | 'geometry';

/** What a brand-new bitmap starts as: nothing to copy, or everything (e.g. an initial copy). */
export type BitmapInitial = 'clear' | 'set';

/** The file's state once every queued write has landed ('unknown' after a failed write). */
type FileState = 'clean' | 'dirty' | 'unknown';

export class BitmapStore {
  private readonly open_ = new Set<string>();

  constructor(readonly dir: string) {}

  /**
   * A bitmap that never existed (a new pair, a fresh volume), written durably as `initial`.
   * A file of that name must not exist: remove() the old one first (a leftover is a bug).
   */
  async create(name: string, geometry: BitmapGeometry, initial: BitmapInitial): Promise<PersistentBitmap> {
    const file = this.claim(name);
    try {
      await fs.mkdir(this.dir, { recursive: true });
      if (await exists(file)) throw new Error(`bitmap store: ${file} already exists`);
      const bitmap = new BlockBitmap(geometry.volumeBlocks, geometry.blocksPerBit);
      if (initial === 'set') bitmap.bits.setAll();
      const p = new PersistentBitmap(this, name, file, bitmap, 'created', 'clean');
      await p.save();
      return p;
    } catch (err) {
      this.release(name);
      throw err;
    }
  }

  /**
   * A bitmap that existed before (a restart): trusted only if its file is clean, whole and of
   * this geometry; otherwise all ones with trusted false. I/O errors other than a missing file
   * are thrown.
   */
  async open(name: string, geometry: BitmapGeometry): Promise<PersistentBitmap> {
    const file = this.claim(name);
    try {
      const bitmap = new BlockBitmap(geometry.volumeBlocks, geometry.blocksPerBit);
      const data = await readIfExists(file);
      const reason = data ? decode(data, bitmap) : 'missing';
      if (reason !== 'clean') bitmap.bits.setAll();
      // An untrusted file loads as all ones again, so it is as good as a dirty mark.
      return new PersistentBitmap(this, name, file, bitmap, reason, reason === 'clean' ? 'clean' : 'dirty');
    } catch (err) {
      this.release(name);
      throw err;
    }
  }

  /** Remove a bitmap's file durably (a deleted pair). It must not be open. */
  async remove(name: string): Promise<void> {
    assert(!this.open_.has(name), `bitmap ${name} is open`);
    try {
      await fs.unlink(this.file(name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    await fsyncDir(this.dir);
  }

  /** @internal PersistentBitmap.close() */
  release(name: string): void {
    this.open_.delete(name);
  }

  /** One open handle per name: two would race on one temp file. */
  private claim(name: string): string {
    const file = this.file(name);
    assert(!this.open_.has(name), `bitmap ${name} is already open`);
    this.open_.add(name);
    return file;
  }

  // Names come from firmware code, not from users: anything else is a bug.
  private file(name: string): string {
    assert(NAME_RE.test(name), `bitmap store: bad bitmap name ${JSON.stringify(name)}`);
    return path.join(this.dir, name + SUFFIX);
  }
}

/** One named bitmap: the BlockBitmap in RAM and its file. */
export class PersistentBitmap {
  private fileState: FileState;
  /** Every write to the file, in call order. */
  private chain: Promise<void> = Promise.resolve();
  /** The dirty write in flight or done since the last save (what markDirty() waits for). */
  private dirtyWrite: Promise<void> = Promise.resolve();
  private writes = 0;
  private closed = false;

  /** @internal made by BitmapStore.create() and open() */
  constructor(
    private readonly store: BitmapStore,
    readonly name: string,
    readonly file: string,
    readonly bitmap: BlockBitmap,
    /** Why the content was or was not trusted when opened. */
    readonly reason: BitmapLoadReason,
    fileState: 'clean' | 'dirty',
  ) {
    this.fileState = fileState;
  }

  /** False when the content could not be trusted at open and was set to all ones. */
  get trusted(): boolean {
    return this.reason === 'clean' || this.reason === 'created';
  }

  /** True when the file does not (or will not, once queued writes land) hold a clean copy. */
  get dirty(): boolean {
    return this.fileState !== 'clean';
  }

  /**
   * Record durably that RAM may now differ from the file. Call it, and wait for it, before the
   * first change after a save takes effect anywhere it must survive. Cheap when already dirty.
   */
  markDirty(): Promise<void> {
    if (this.fileState === 'dirty') return this.dirtyWrite;
    this.fileState = 'dirty';
    this.dirtyWrite = this.enqueue('dirty', encodeHeader(STATE_DIRTY, this.bitmap, 0, 0));
    return this.dirtyWrite;
  }

  /** Write the bitmap as it is now (a snapshot taken at the call) and mark the file clean. */
  save(): Promise<void> {
    const payload = Buffer.from(this.bitmap.bits.bytes()); // a copy: RAM may change during the write
    const header = encodeHeader(STATE_CLEAN, this.bitmap, payload.length, crc32c(payload));
    this.fileState = 'clean';
    return this.enqueue('clean', Buffer.concat([header, payload]));
  }

  /** Wait for queued writes and let the name be opened again. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.chain.catch(() => undefined);
    this.store.release(this.name);
  }

  private enqueue(state: 'clean' | 'dirty', data: Buffer): Promise<void> {
    assert(!this.closed, `bitmap ${this.name} is closed`);
    const gen = ++this.writes;
    const next = this.chain
      .catch(() => undefined)
      .then(async () => {
        await fs.mkdir(path.dirname(this.file), { recursive: true });
        await writeFileAtomic(this.file, data);
      });
    this.chain = next;
    // A failed write leaves the old file (atomic replace), whose state we no longer know: the
    // next markDirty() must write again. A later write queued behind it decides the state.
    next.catch(() => {
      if (this.writes === gen && this.fileState === state) this.fileState = 'unknown';
    });
    return next;
  }
}

function encodeHeader(state: number, bitmap: BlockBitmap, payloadBytes: number, payloadCrc: number): Buffer {
  const h = Buffer.alloc(HEADER_BYTES);
  h.write(MAGIC, 0, 'latin1');
  h.writeUInt32LE(FORMAT_VERSION, 8);
  h.writeUInt32LE(state, 12);
  h.writeUInt32LE(bitmap.blocksPerBit, 16);
  h.writeBigUInt64LE(BigInt(bitmap.volumeBlocks), 24);
  h.writeBigUInt64LE(BigInt(bitmap.bits.size), 32);
  h.writeUInt32LE(payloadBytes, 40);
  h.writeUInt32LE(payloadCrc, 44);
  h.writeUInt32LE(crc32c(h.subarray(0, 60)), 60);
  return h;
}

/** Check a file against the expected geometry and, if it is clean and whole, load it into `into`. */
function decode(data: Buffer, into: BlockBitmap): BitmapLoadReason {
  if (data.length < HEADER_BYTES) return 'corrupt';
  const h = data.subarray(0, HEADER_BYTES);
  if (h.toString('latin1', 0, 8) !== MAGIC || h.readUInt32LE(60) !== crc32c(h.subarray(0, 60))) return 'corrupt';
  if (h.readUInt32LE(8) !== FORMAT_VERSION) return 'corrupt';
  const state = h.readUInt32LE(12);
  if (state === STATE_DIRTY) return 'dirty';
  if (state !== STATE_CLEAN) return 'corrupt';
  if (
    h.readUInt32LE(16) !== into.blocksPerBit ||
    h.readBigUInt64LE(24) !== BigInt(into.volumeBlocks) ||
    h.readBigUInt64LE(32) !== BigInt(into.bits.size)
  ) {
    return 'geometry';
  }
  const payloadBytes = Bitmap.byteLength(into.bits.size);
  const payload = data.subarray(HEADER_BYTES);
  if (h.readUInt32LE(40) !== payloadBytes || payload.length !== payloadBytes) return 'corrupt';
  if (h.readUInt32LE(44) !== crc32c(payload)) return 'corrupt';
  into.bits.bytes().set(payload);
  // The bits past the end must be zero (Bitmap's invariant); a file that says otherwise is not ours.
  const tail = into.bits.size & 31;
  if (tail !== 0 && payload.readUInt32LE(payloadBytes - 4) >>> tail !== 0) return 'corrupt';
  return 'clean';
}

async function readIfExists(file: string): Promise<Buffer | undefined> {
  try {
    return await fs.readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await fs.stat(file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
