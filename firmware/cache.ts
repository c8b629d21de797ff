// The DKC's cache (seed 001 Fig. 3: the cache in RAM 1260), one per DKC, shared by its RAID
// groups. It holds fixed-size slots of the RAID groups' logical address space (not of LDEVs), so
// a slot means the same bytes whatever volume or pair reads it.
//
// Mode write-through (the only caching mode for now): a write is copied into RAM and sent to the
// disks; it is acknowledged only once the disks have it (pwrite returned; FUA: fdatasync), as
// without a cache, so kill -9 loses nothing acknowledged. A battery-backed write-back mode, which
// acknowledges from RAM, is issue 3's. Mode off: every read goes to the disks.
//
// Why the cache and the disks never disagree:
//   - Writes are applied to resident slots synchronously, in submission order, and the drive
//     side sends overlapping writes to each disk in the same order (emulator/write-merge.ts), so
//     the last write to a byte is the last one in RAM and on disk.
//   - A slot is read from disk (filled) only while no write to it is in flight; a write that
//     arrives during a fill marks the fill stale, so the fill's data is never inserted and later
//     readers start afresh. Readers that joined the fill before the write were concurrent with it
//     (SAM-5: no order among concurrent SIMPLE commands) and get the fill's data.
//   - A failed write drops the slots it touched: the disk is the truth, RAM only a copy of it.
//   - Thin LDEVs decide mapped or not from their allocation map before they ask for data, and a
//     block becomes mapped again only by a write, which passes through here first; so a slot may
//     hold the old bytes of unmapped blocks (as the disk does) without them ever being returned.
//     discard() drops slots that an UNMAP empties, only to give the RAM to live data.
// Slots are evicted least recently used first: an intrusive doubly linked list, O(1) per hit and
// per eviction. (A Map's insertion order would do as an LRU, but evicting from its front walks
// over the holes that delete-and-reinsert leaves there: measured 3x slower on streaming reads.)
// Memory is bounded: at most slotsMax slot buffers ever exist; they are reused.
import assert from 'node:assert';
import type { BlockDevice } from './drive';

/** Bytes per cache slot: a whole stripe unit of the default 64 KiB stripe. */
export const CACHE_SLOT_BYTES = 64 * 1024;
/** Cache size when the configuration names none. */
export const CACHE_DEFAULT_BYTES = 512 * 1024 * 1024;
/** Smallest and largest configurable cache. */
export const CACHE_MIN_BYTES = 1024 * 1024;
export const CACHE_MAX_BYTES = 64 * 1024 * 1024 * 1024;

export type CacheMode = 'write-through' | 'off';

export interface CacheDefinition {
  sizeBytes: number;
  mode: CacheMode;
}

export interface CacheStats {
  /** Slot lookups by reads that found the slot in RAM. */
  hits: number;
  /** Slot lookups by reads that did not (joined a fill, started one, or went to disk). */
  misses: number;
  /** Reads of whole slots from disk. */
  fills: number;
  /** Fills whose data a write overtook (not inserted). */
  staleFills: number;
  /** Slot reads that went straight to disk (a write in flight, or no free slot). */
  bypasses: number;
  /** Slots allocated by a write that covered them whole. */
  writeAllocations: number;
  evictions: number;
}

interface Waiter {
  buf: Buffer;
  bufOffset: number;
  /** Offset within the slot. */
  from: number;
  length: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** A resident slot: a node of the LRU list. */
interface Slot {
  key: number;
  buf: Buffer;
  prev: Slot | null;
  next: Slot | null;
}

interface Fill {
  buf: Buffer;
  stale: boolean;
  waiters: Waiter[];
}

/** One RAID group as the cache sees it: its number in the cache's keys and its size in slots. */
export class CachedGroup {
  readonly slotCount: number;

  constructor(readonly device: BlockDevice, readonly no: number) {
    this.slotCount = Math.ceil(device.sizeBytes / CACHE_SLOT_BYTES);
  }

  /** Length of slot i: the last slot stops at the end of the group. */
  slotLength(i: number): number {
    return Math.min(CACHE_SLOT_BYTES, this.device.sizeBytes - i * CACHE_SLOT_BYTES);
  }
}

const DONE: Promise<void> = Promise.resolve();

export class DkcCache {
  readonly slotsMax: number;
  readonly stats: CacheStats = { hits: 0, misses: 0, fills: 0, staleFills: 0, bypasses: 0, writeAllocations: 0, evictions: 0 };
  /** Slots in RAM by key; lru.head is the least recently used. */
  private readonly resident = new Map<number, Slot>();
  private lruHead: Slot | null = null;
  private lruTail: Slot | null = null;
  private readonly filling = new Map<number, Fill>();
  /** Writes in flight per slot: while any is, the slot is not filled from disk. */
  private readonly writing = new Map<number, number>();
  /** Slot buffers not in use (evicted or dropped), reused before any new allocation. */
  private readonly free: Buffer[] = [];
  /** Slot buffers in existence: resident + filling + free, never more than slotsMax. */
  private allocated = 0;
  private readonly groups: CachedGroup[] = [];

  constructor(sizeBytes: number) {
    this.slotsMax = Math.floor(sizeBytes / CACHE_SLOT_BYTES);
    assert(this.slotsMax >= 1, `cache of ${sizeBytes} bytes holds no ${CACHE_SLOT_BYTES}-byte slot`);
  }

  /** Register a RAID group; keys are slot * groupsMax + group number. */
  attach(device: BlockDevice): CachedGroup {
    assert(this.groups.length < CACHE_GROUPS_MAX, `a DKC cache serves at most ${CACHE_GROUPS_MAX} RAID groups`);
    const g = new CachedGroup(device, this.groups.length);
    this.groups.push(g);
    return g;
  }

  /** Slots in RAM now. */
  get residentSlots(): number {
    return this.resident.size;
  }

  /** Bytes of slot buffers allocated (at most slotsMax * CACHE_SLOT_BYTES). */
  get allocatedBytes(): number {
    return this.allocated * CACHE_SLOT_BYTES;
  }

  isResident(g: CachedGroup, slot: number): boolean {
    return this.resident.has(key(g, slot));
  }

  /**
   * Fill buf[bufOffset, +length) with the group's bytes at offset, from RAM where it can.
   * A one-slot read that misses fills the slot (evicting if it must). A longer read serves the
   * slots it finds and reads each run of missing slots from disk with one read straight into
   * buf; the slots of the run it covers whole are copied into RAM only if free buffers exist.
   * Long reads never evict: a stream longer than the cache would otherwise push out everything
   * else for data it will not read again soon (scan resistance).
   */
  read(g: CachedGroup, offset: number, buf: Buffer, bufOffset: number, length: number): Promise<void> {
    const first = Math.floor(offset / CACHE_SLOT_BYTES);
    const last = Math.floor((offset + length - 1) / CACHE_SLOT_BYTES);
    if (first === last) return this.readSlot(g, first, offset - first * CACHE_SLOT_BYTES, buf, bufOffset, length);
    const waits: Promise<void>[] = [];
    let pos = 0;
    let runPos = -1;
    for (let i = first; i <= last; i++) {
      const from = i === first ? offset - first * CACHE_SLOT_BYTES : 0;
      const len = Math.min(CACHE_SLOT_BYTES - from, length - pos);
      const k = key(g, i);
      const s = this.resident.get(k);
      const fill = s === undefined ? this.filling.get(k) : undefined;
      if (s === undefined && fill === undefined) {
        this.stats.misses++;
        if (runPos < 0) runPos = pos;
      } else {
        if (runPos >= 0) waits.push(this.readRun(g, offset + runPos, buf, bufOffset + runPos, pos - runPos));
        runPos = -1;
        if (s !== undefined) {
          this.stats.hits++;
          this.touch(s);
          s.buf.copy(buf, bufOffset + pos, from, from + len);
        } else {
          this.stats.misses++;
          waits.push(this.join(fill!, from, buf, bufOffset + pos, len));
        }
      }
      pos += len;
    }
    if (runPos >= 0) waits.push(this.readRun(g, offset + runPos, buf, bufOffset + runPos, pos - runPos));
    if (waits.length === 0) return DONE;
    return waits.length === 1 ? waits[0] : Promise.all(waits).then(noop);
  }

  /** One disk read of missing slots into buf; slots it covers whole go to RAM if buffers are free. */
  private readRun(g: CachedGroup, offset: number, buf: Buffer, bufOffset: number, length: number): Promise<void> {
    const firstWhole = Math.ceil(offset / CACHE_SLOT_BYTES);
    const fills: (Fill | null)[] = [];
    for (let i = firstWhole; i < g.slotCount && i * CACHE_SLOT_BYTES + g.slotLength(i) <= offset + length; i++) {
      const k = key(g, i);
      const b = this.writing.has(k) ? null : this.takeBuffer(false);
      const fill: Fill | null = b === null ? null : { buf: b, stale: false, waiters: [] };
      if (fill !== null) {
        this.filling.set(k, fill);
        this.stats.fills++;
      } else {
        this.stats.bypasses++;
      }
      fills.push(fill);
    }
    const p = g.device.readInto(offset, buf, bufOffset, length);
    if (fills.length === 0) return p;
    return p.then(
      () => {
        fills.forEach((fill, n) => {
          if (fill === null) return;
          const i = firstWhole + n;
          const at = bufOffset + i * CACHE_SLOT_BYTES - offset;
          buf.copy(fill.buf, 0, at, at + g.slotLength(i));
          this.filled(key(g, i), fill);
        });
      },
      (err: unknown) => {
        fills.forEach((fill, n) => {
          if (fill !== null) this.fillFailed(key(g, firstWhole + n), fill, err);
        });
        throw err;
      },
    );
  }

  private join(fill: Fill, from: number, buf: Buffer, bufOffset: number, length: number): Promise<void> {
    return new Promise((resolve, reject) => {
      fill.waiters.push({ buf, bufOffset, from, length, resolve, reject });
    });
  }

  /**
   * Apply a write to RAM, then send it to the disks with send(); resolves when send() does.
   * The caller passes the group write so that RAM is updated before the disk write is issued
   * (submission order is the order on disk, see the file comment).
   */
  write(g: CachedGroup, offset: number, data: Buffer, length: number, send: () => Promise<void>): Promise<void> {
    const first = Math.floor(offset / CACHE_SLOT_BYTES);
    const last = Math.floor((offset + length - 1) / CACHE_SLOT_BYTES);
    for (let i = first; i <= last; i++) this.applyWrite(g, i, offset, data, length);
    return send().then(
      () => this.writeDone(g, first, last, false),
      (err: unknown) => {
        this.writeDone(g, first, last, true);
        throw err;
      },
    );
  }

  /** Drop the slots lying wholly inside [offset, +length) (UNMAP: their data is no longer live). */
  discard(g: CachedGroup, offset: number, length: number): void {
    const first = Math.ceil(offset / CACHE_SLOT_BYTES);
    const end = offset + length;
    for (let i = first; i < g.slotCount && i * CACHE_SLOT_BYTES + g.slotLength(i) <= end; i++) this.drop(key(g, i));
  }

  private readSlot(g: CachedGroup, i: number, from: number, buf: Buffer, bufOffset: number, length: number): Promise<void> {
    const k = key(g, i);
    const s = this.resident.get(k);
    if (s !== undefined) {
      this.stats.hits++;
      this.touch(s);
      s.buf.copy(buf, bufOffset, from, from + length);
      return DONE;
    }
    this.stats.misses++;
    const fill = this.filling.get(k) ?? this.startFill(g, i, k);
    if (fill === null) {
      this.stats.bypasses++;
      return g.device.readInto(i * CACHE_SLOT_BYTES + from, buf, bufOffset, length);
    }
    return this.join(fill, from, buf, bufOffset, length);
  }

  /** Read slot i whole from disk, unless a write to it is in flight or no buffer is free. */
  private startFill(g: CachedGroup, i: number, k: number): Fill | null {
    if (this.writing.has(k)) return null;
    const buf = this.takeBuffer();
    if (buf === null) return null;
    const fill: Fill = { buf, stale: false, waiters: [] };
    this.filling.set(k, fill);
    this.stats.fills++;
    g.device.readInto(i * CACHE_SLOT_BYTES, buf, 0, g.slotLength(i)).then(
      () => this.filled(k, fill),
      (err: unknown) => this.fillFailed(k, fill, err),
    );
    return fill;
  }

  private filled(k: number, fill: Fill): void {
    if (this.filling.get(k) === fill) this.filling.delete(k);
    // Copy out now, synchronously: once inserted, the buffer may be evicted and reused.
    for (const w of fill.waiters) {
      fill.buf.copy(w.buf, w.bufOffset, w.from, w.from + w.length);
      w.resolve();
    }
    if (fill.stale) {
      this.stats.staleFills++;
      this.free.push(fill.buf);
    } else {
      assert(!this.resident.has(k), 'a slot was filled while resident');
      this.insert(k, fill.buf);
    }
  }

  private fillFailed(k: number, fill: Fill, err: unknown): void {
    if (this.filling.get(k) === fill) this.filling.delete(k);
    for (const w of fill.waiters) w.reject(err);
    this.free.push(fill.buf);
  }

  private applyWrite(g: CachedGroup, i: number, offset: number, data: Buffer, length: number): void {
    const k = key(g, i);
    const fill = this.filling.get(k);
    if (fill !== undefined) {
      // Its disk read may or may not see this write: its data must not become the slot.
      fill.stale = true;
      this.filling.delete(k);
    }
    this.writing.set(k, (this.writing.get(k) ?? 0) + 1);
    const slotStart = i * CACHE_SLOT_BYTES;
    const slotLen = g.slotLength(i);
    const from = Math.max(offset, slotStart);
    const to = Math.min(offset + length, slotStart + slotLen);
    let s = this.resident.get(k);
    if (s !== undefined) {
      this.touch(s);
    } else if (from === slotStart && to === slotStart + slotLen) {
      // The write covers the slot whole: RAM can hold it without reading the disk. Like long
      // reads, it takes only a free buffer and never evicts: a stream of writes larger than the
      // cache would otherwise replace everything with data nobody has read yet.
      const b = this.takeBuffer(false);
      if (b === null) return;
      this.stats.writeAllocations++;
      s = this.insert(k, b);
    } else {
      return;
    }
    data.copy(s.buf, from - slotStart, from - offset, to - offset);
  }

  private writeDone(g: CachedGroup, first: number, last: number, failed: boolean): void {
    for (let i = first; i <= last; i++) {
      const k = key(g, i);
      const n = this.writing.get(k)!;
      if (n === 1) this.writing.delete(k);
      else this.writing.set(k, n - 1);
      // What reached the disk is unknown (a mirror may have it, another not): forget the slot.
      if (failed) this.drop(k);
    }
  }

  private drop(k: number): void {
    const s = this.resident.get(k);
    if (s === undefined) return;
    this.resident.delete(k);
    this.unlink(s);
    this.free.push(s.buf);
  }

  /** A slot buffer: a free one, a new one while under the bound, or (evict) the LRU slot's; else null. */
  private takeBuffer(evict = true): Buffer | null {
    const f = this.free.pop();
    if (f !== undefined) return f;
    if (this.allocated < this.slotsMax) {
      this.allocated++;
      return Buffer.allocUnsafeSlow(CACHE_SLOT_BYTES);
    }
    const oldest = this.lruHead;
    if (oldest === null || !evict) return null;
    this.resident.delete(oldest.key);
    this.unlink(oldest);
    this.stats.evictions++;
    return oldest.buf;
  }

  private insert(k: number, buf: Buffer): Slot {
    const s: Slot = { key: k, buf, prev: null, next: null };
    this.resident.set(k, s);
    this.append(s);
    return s;
  }

  /** Most recently used now: to the tail of the list. */
  private touch(s: Slot): void {
    if (s === this.lruTail) return;
    this.unlink(s);
    this.append(s);
  }

  private append(s: Slot): void {
    s.prev = this.lruTail;
    s.next = null;
    if (this.lruTail !== null) this.lruTail.next = s;
    else this.lruHead = s;
    this.lruTail = s;
  }

  private unlink(s: Slot): void {
    if (s.prev !== null) s.prev.next = s.next;
    else this.lruHead = s.next;
    if (s.next !== null) s.next.prev = s.prev;
    else this.lruTail = s.prev;
    s.prev = null;
    s.next = null;
  }
}

/** RAID groups one DKC cache keys (slot * CACHE_GROUPS_MAX + group keeps keys exact below 2^53). */
export const CACHE_GROUPS_MAX = 1024;

function key(g: CachedGroup, slot: number): number {
  return slot * CACHE_GROUPS_MAX + g.no;
}

function noop(): void {}
