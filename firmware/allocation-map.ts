// The allocation map of one thin LDEV: one bit per block, in RAM (a Bitmap) and in a map file
// that survives restarts, kill -9 and (for anything flushed) power loss.
//
// Map file layout (all integers little-endian):
//   [0, 4096)            header, written once at creation (temp file + fsync + rename)
//   4096 + (2p + s)*4096 slot s (0 or 1) of map page p
// A map page holds PAGE_PAYLOAD_BYTES of the bitmap (PAGE_BITS blocks). A slot is:
//   0 magic u32 'DKMP' | 4 page u32 | 8 sequence u64 | 16 crc32c u32 | 20..32 zero | 32.. payload
// The crc covers the whole slot except its own 4 bytes.
//
// Why two slots per page: a page is updated in place with one pwrite of a fixed 4 KiB region.
// A crash (kill -9) cannot tear a pwrite that returned, but a power loss can tear a 4 KiB write
// into sectors. Each update goes to the slot NOT holding the newest valid copy, with sequence+1,
// so a torn write leaves the previous copy intact; on load each page takes its valid slot with the
// highest sequence. Updates of one page are serialized (at most one in flight, the rest coalesce
// into one queued write that snapshots the bitmap when it starts), so the sequence never forks.
import assert from 'node:assert';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { Bitmap } from './bitmap';
import { fsyncDir } from './durable';
import { SyncCoalescer } from './sync';

const HEADER_BYTES = 4096;
const SLOT_BYTES = 4096;
const SLOT_HEADER_BYTES = 32;
export const PAGE_PAYLOAD_BYTES = SLOT_BYTES - SLOT_HEADER_BYTES; // 4064
export const PAGE_BITS = PAGE_PAYLOAD_BYTES * 8; // 32512 blocks per page
const HEADER_MAGIC = 'DKCMAP01';
const SLOT_MAGIC = 0x504d4b44; // 'DKMP'
const FORMAT_VERSION = 1;
/** Map pages read per pread when loading. */
const LOAD_PAGES_PER_READ = 256;

/** What the map file was made for; a mismatch on open means the data dir belongs to another layout. */
export interface AllocationMapIdentity {
  serial: number;
  ldev: number;
  blockSize: number;
  blockCount: number;
}

interface PageState {
  /** Sequence of the newest valid copy on disk (0: none). */
  seq: number;
  /** Slot holding that copy. */
  slot: 0 | 1;
  inflight: Promise<void> | null;
  queued: Promise<void> | null;
  /** The last write of this page failed: RAM is ahead of disk until a write succeeds. */
  failed: boolean;
}

export class AllocationMap {
  readonly bitmap: Bitmap;
  private readonly pages: PageState[];
  private readonly syncer: SyncCoalescer;
  /** Page writes issued / covered by a completed datasync: FUA and flush sync only when they differ. */
  private writtenGen = 0;
  private syncedGen = 0;

  private constructor(
    readonly file: string,
    private readonly fh: fs.FileHandle,
    readonly identity: AllocationMapIdentity,
    /** The bitmap's bytes, whole pages long (the tail past the volume stays zero). */
    private readonly storage: Buffer,
    pages: PageState[],
  ) {
    this.bitmap = new Bitmap(identity.blockCount, storage);
    this.pages = pages;
    this.syncer = new SyncCoalescer(() => this.fh.datasync());
  }

  static pageCount(blockCount: number): number {
    return Math.max(1, Math.ceil(blockCount / PAGE_BITS));
  }

  static fileBytes(blockCount: number): number {
    return HEADER_BYTES + AllocationMap.pageCount(blockCount) * 2 * SLOT_BYTES;
  }

  /** Open the map file, creating an empty one (nothing mapped) if it does not exist. */
  static async open(file: string, identity: AllocationMapIdentity): Promise<AllocationMap> {
    let fh: fs.FileHandle;
    try {
      fh = await fs.open(file, 'r+');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      await AllocationMap.create(file, identity);
      fh = await fs.open(file, 'r+');
    }
    try {
      const { storage, pages } = await AllocationMap.load(fh, file, identity);
      return new AllocationMap(file, fh, identity, storage, pages);
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  private static async create(file: string, id: AllocationMapIdentity): Promise<void> {
    const header = encodeHeader(id);
    const tmp = `${file}.tmp`;
    const fh = await fs.open(tmp, 'w');
    try {
      await fh.write(header, 0, header.length, 0);
      await fh.truncate(AllocationMap.fileBytes(id.blockCount)); // sparse: unwritten slots read as zeros
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, file);
    await fsyncDir(path.dirname(file));
  }

  private static async load(fh: fs.FileHandle, file: string, id: AllocationMapIdentity) {
    const pageCount = AllocationMap.pageCount(id.blockCount);
    const header = Buffer.alloc(HEADER_BYTES);
    await readExactly(fh, header, 0, file);
    checkHeader(header, file, id);
    const storage = Buffer.alloc(pageCount * PAGE_PAYLOAD_BYTES);
    const pages: PageState[] = [];
    // Read in bounded chunks: a map of 2^31 blocks is 530 MB of slots.
    const chunk = Buffer.alloc(Math.min(pageCount, LOAD_PAGES_PER_READ) * 2 * SLOT_BYTES);
    for (let first = 0; first < pageCount; first += LOAD_PAGES_PER_READ) {
      const n = Math.min(LOAD_PAGES_PER_READ, pageCount - first);
      const base = slotOffset(first, 0);
      await readExactly(fh, chunk.subarray(0, n * 2 * SLOT_BYTES), base, file);
      for (let p = first; p < first + n; p++) {
        const best = newestSlot(chunk, base, p);
        if (best) chunk.copy(storage, p * PAGE_PAYLOAD_BYTES, best.start + SLOT_HEADER_BYTES, best.start + SLOT_BYTES);
        pages.push({ seq: best?.seq ?? 0, slot: best?.slot ?? 1, inflight: null, queued: null, failed: false });
      }
    }
    // Bits past the end of the volume must stay clear (find/count rely on it).
    const tailBits = pageCount * PAGE_BITS - id.blockCount;
    if (tailBits > 0) new Bitmap(pageCount * PAGE_BITS, storage).clear(id.blockCount, tailBits);
    return { storage, pages };
  }

  /**
   * Set or clear bits [start, start+count) and make the change persistent before the returned
   * promise resolves (null: nothing to wait for). When nothing changes, still wait for page
   * writes in flight that carry these bits: someone else's unacknowledged update must not let
   * this request be acknowledged first.
   */
  update(start: number, count: number, value: boolean, fua: boolean): Promise<void> | null {
    const first = Math.floor(start / PAGE_BITS);
    const last = Math.floor((start + count - 1) / PAGE_BITS);
    if (first === last) {
      // Common case (any request under 16 MiB at 512-byte blocks, aligned): no array, and no
      // promise at all when the bits were already persisted.
      const w = this.updatePage(first, start, count, value);
      if (!fua) return w;
      return w ? w.then(() => this.sync()) : this.sync();
    }
    const waits: Promise<void>[] = [];
    for (let p = first; p <= last; p++) {
      const from = Math.max(start, p * PAGE_BITS);
      const to = Math.min(start + count, (p + 1) * PAGE_BITS);
      const w = this.updatePage(p, from, to - from, value);
      if (w) waits.push(w);
    }
    if (!fua && waits.length === 0) return null;
    return Promise.all(waits).then(() => (fua ? this.sync() : undefined));
  }

  /** Change bits within one page; the promise (if any) covers these bits reaching the file. */
  private updatePage(p: number, from: number, count: number, value: boolean): Promise<void> | null {
    const changed = value ? this.bitmap.set(from, count) : this.bitmap.clear(from, count);
    const st = this.pages[p];
    return changed || st.failed ? this.persistPage(p) : st.queued ?? st.inflight;
  }

  /** Every page write issued so far is on stable storage. */
  async sync(): Promise<void> {
    if (this.syncedGen === this.writtenGen) return;
    const gen = this.writtenGen;
    await this.syncer.sync();
    if (gen > this.syncedGen) this.syncedGen = gen;
  }

  async close(): Promise<void> {
    await Promise.all(this.pages.map((st) => st.queued ?? st.inflight));
    await this.sync();
    await this.fh.close();
  }

  private persistPage(p: number): Promise<void> {
    const st = this.pages[p];
    // A queued write snapshots the page when it starts, so it carries our bits. Check it first:
    // between the end of the write in flight and the start of the queued one, inflight is
    // already null, and starting another write then would put two writes on one slot.
    if (st.queued) return st.queued;
    if (!st.inflight) return this.startPageWrite(p);
    const after = () => {
      st.queued = null;
      return this.startPageWrite(p);
    };
    st.queued = st.inflight.then(after, after);
    return st.queued;
  }

  private startPageWrite(p: number): Promise<void> {
    const st = this.pages[p];
    const slot: 0 | 1 = st.slot === 0 ? 1 : 0;
    const seq = st.seq + 1;
    // Snapshot now: bits set after this point go into the next (queued) write.
    const buf = encodeSlot(p, seq, this.storage.subarray(p * PAGE_PAYLOAD_BYTES, (p + 1) * PAGE_PAYLOAD_BYTES));
    const run = async () => {
      try {
        const { bytesWritten } = await this.fh.write(buf, 0, SLOT_BYTES, slotOffset(p, slot));
        if (bytesWritten !== SLOT_BYTES) throw new Error(`${this.file}: short write of map page ${p} (${bytesWritten} bytes)`);
        st.seq = seq;
        st.slot = slot;
        st.failed = false;
        this.writtenGen++;
      } catch (err) {
        st.failed = true;
        throw err;
      } finally {
        st.inflight = null;
      }
    };
    st.inflight = run();
    return st.inflight;
  }
}

function slotOffset(page: number, slot: 0 | 1): number {
  return HEADER_BYTES + (page * 2 + slot) * SLOT_BYTES;
}

function encodeSlot(page: number, seq: number, payload: Buffer): Buffer {
  const buf = Buffer.alloc(SLOT_BYTES);
  buf.writeUInt32LE(SLOT_MAGIC, 0);
  buf.writeUInt32LE(page, 4);
  buf.writeBigUInt64LE(BigInt(seq), 8);
  payload.copy(buf, SLOT_HEADER_BYTES);
  buf.writeUInt32LE(slotCrc(buf), 16);
  return buf;
}

function slotCrc(slot: Buffer): number {
  return crc32c(slot.subarray(20), crc32c(slot.subarray(0, 16)));
}

/** The newest valid copy of a page in buf, which holds the file from byte `base` on. */
function newestSlot(buf: Buffer, base: number, page: number): { start: number; seq: number; slot: 0 | 1 } | null {
  let best: { start: number; seq: number; slot: 0 | 1 } | null = null;
  for (const slot of [0, 1] as const) {
    const start = slotOffset(page, slot) - base;
    const s = buf.subarray(start, start + SLOT_BYTES);
    if (s.readUInt32LE(0) !== SLOT_MAGIC || s.readUInt32LE(4) !== page) continue;
    if (s.readUInt32LE(16) !== slotCrc(s)) continue; // torn or corrupt: the other slot holds the previous copy
    const seq = Number(s.readBigUInt64LE(8));
    if (!best || seq > best.seq) best = { start, seq, slot };
  }
  return best;
}

async function readExactly(fh: fs.FileHandle, buf: Buffer, position: number, file: string): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) throw new Error(`${file}: allocation map is truncated at byte ${position + done}`);
    done += bytesRead;
  }
}

function encodeHeader(id: AllocationMapIdentity): Buffer {
  const h = Buffer.alloc(HEADER_BYTES);
  h.write(HEADER_MAGIC, 0, 'latin1');
  h.writeUInt32LE(FORMAT_VERSION, 8);
  h.writeUInt32LE(id.serial, 12);
  h.writeUInt32LE(id.ldev, 16);
  h.writeUInt32LE(id.blockSize, 20);
  h.writeBigUInt64LE(BigInt(id.blockCount), 24);
  h.writeUInt32LE(PAGE_BITS, 32);
  h.writeUInt32LE(crc32c(h.subarray(0, 60)), 60);
  return h;
}

function checkHeader(h: Buffer, file: string, want: AllocationMapIdentity): void {
  if (h.toString('latin1', 0, 8) !== HEADER_MAGIC || h.readUInt32LE(60) !== crc32c(h.subarray(0, 60))) {
    throw new Error(`${file}: not a dkc-emu allocation map (bad magic or checksum)`);
  }
  if (h.readUInt32LE(8) !== FORMAT_VERSION || h.readUInt32LE(32) !== PAGE_BITS) {
    throw new Error(`${file}: allocation map format ${h.readUInt32LE(8)} is not supported`);
  }
  const have: AllocationMapIdentity = {
    serial: h.readUInt32LE(12),
    ldev: h.readUInt32LE(16),
    blockSize: h.readUInt32LE(20),
    blockCount: Number(h.readBigUInt64LE(24)),
  };
  for (const key of ['serial', 'ldev', 'blockSize', 'blockCount'] as const) {
    if (have[key] !== want[key]) {
      throw new Error(`${file}: allocation map was made for ${key} ${have[key]}, the configuration says ${want[key]}`);
    }
  }
}

assert(PAGE_PAYLOAD_BYTES % 4 === 0, 'page payload must be whole bitmap words');
