// The DKC's cache (seed 001 Fig. 3: the cache in RAM 1260), one per DKC, shared by its RAID
// groups. It holds fixed-size slots of the RAID groups' logical address space (not of LDEVs), so
// a slot means the same bytes whatever volume or pair reads it.
//
// Mode write-through (the default): a write is copied into RAM and sent to the disks; it is
// acknowledged only once the disks have it (pwrite returned; FUA: fdatasync), as without a cache,
// so kill -9 loses nothing acknowledged. Mode off: every read and write goes to the disks.
// Mode write-back: see the second half of this file and firmware/cache/journal.ts.
//
// Why the cache and the disks never disagree (write-through):
//   - Writes are applied to resident slots synchronously, in submission order, and the drive
//     side sends overlapping writes to each disk in the same order (emulator/hardware/write-merge.ts), so
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
import type pino from 'pino';
import { CacheJournal, JournalRecovery, JournalStats, recoverJournal, removeJournal } from './journal';
import type { BlockDevice } from '../drive';
import type { Clock } from '../kernel/clock';
import type { Kernel, TaskContext } from '../kernel/kernel';

/** Bytes per cache slot: a whole stripe unit of the default 64 KiB stripe. */
export const CACHE_SLOT_BYTES = 64 * 1024;
/** Cache size when the configuration names none. */
export const CACHE_DEFAULT_BYTES = 512 * 1024 * 1024;
/** Smallest and largest configurable cache. */
export const CACHE_MIN_BYTES = 1024 * 1024;
export const CACHE_MAX_BYTES = 64 * 1024 * 1024 * 1024;

/** The perpetual ROM task that writes dirty slots to the RAID groups (write-back). */
export const DESTAGE_TASK = 'destage';
/** Destage runs pass after pass once dirty data reaches this share of the cache. */
export const DESTAGE_HIGH_WATER_PERCENT = 50;
/** Destage writes everything after this long without a host write, and looks again this often. */
export const DESTAGE_IDLE_MS = 200;
/** Dirty slots one destage pass takes (oldest first): 16 MiB. */
export const DESTAGE_SLOTS_PER_PASS = 256;
/** Largest single RAID-group write a pass makes of adjacent dirty ranges. */
export const DESTAGE_WRITE_BYTES_MAX = 1024 * 1024;
/** Passes in a row that clean nothing (every write failed) before close gives up on destaging. */
export const DESTAGE_CLOSE_RETRIES_MAX = 3;
/** Journal records replayed concurrently at open (overlapping ones wait for each other). */
export const REPLAY_WRITES_MAX = 64;
/** Spare 64 KiB buffers kept for write-back fills (more are allocated when needed, not kept). */
export const FILL_SCRATCH_MAX = 16;

export type CacheMode = 'write-through' | 'write-back' | 'off';

export interface CacheDefinition {
  sizeBytes: number;
  mode: CacheMode;
  /** write-back: bound of each of the two journal files (default JOURNAL_FILE_BYTES_DEFAULT). */
  journalFileBytes?: number;
  /** write-back: destage runs continuously from this much dirty data (% of the cache). */
  destageHighWaterPercent?: number;
  /** write-back: destage everything after this long without host writes. */
  destageIdleMs?: number;
}

export interface CacheOpenOptions extends CacheDefinition {
  /** The RAID groups, attached in this order; a journal left in dir is replayed into them. */
  groups: BlockDevice[];
  /** Where the write-back journal lives. Any mode replays and retires a journal found there. */
  dir: string;
  /** Runs the destage task and owns the clock (write-back). */
  kernel: Kernel;
  log?: pino.Logger;
}

/** Counters; stats adds the sizes. */
export interface CacheCounters {
  /** Slot lookups by reads that found the slot in RAM. */
  hits: number;
  /** Slot lookups by reads that did not (joined a fill, started one, or went to disk). */
  misses: number;
  /** Reads of whole slots from disk. */
  fills: number;
  /** Fills whose data a write overtook (not inserted; write-through). */
  staleFills: number;
  /** Slot reads that went straight to disk (a write in flight, or no free slot). */
  bypasses: number;
  /** Slots allocated by a write that covered them whole. */
  writeAllocations: number;
  evictions: number;
  /** write-back: host writes that waited for destage to free a slot (back-pressure). */
  writeWaits: number;
  /** write-back: RAID-group writes made by destage, and their bytes. */
  destageWrites: number;
  destagedBytes: number;
  /** write-back: destage writes that failed (the slots stay dirty and are tried again). */
  destageErrors: number;
  /** write-back: journal records replayed at open. */
  replayedRecords: number;
}

/** What status shows (firmware/status.ts DkcStatus.cache) and a few counters more. */
export interface CacheStats extends CacheCounters {
  mode: CacheMode;
  sizeBytes: number;
  /** Bytes of slots in RAM. */
  usedBytes: number;
  /** Bytes acknowledged to hosts and not yet on the RAID groups (write-back). */
  dirtyBytes: number;
  /** Bytes in the journal files (write-back). */
  journalBytes: number;
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

/**
 * A resident slot: a node of the LRU list while it may be evicted (write-through: always;
 * write-back: only when clean and not being filled).
 */
interface Slot {
  key: number;
  buf: Buffer;
  prev: Slot | null;
  next: Slot | null;
  inLru: boolean;
  // Write-back only (sector bitmaps: one bit per 512 bytes of the slot).
  /** Sectors that hold the group's current bytes; null: all of them. */
  valid: Uint32Array | null;
  /** Sectors newer than the RAID group's (acknowledged, not yet destaged); null: clean. */
  dirty: Uint32Array | null;
  /** Seq of the oldest journal record whose data is dirty here. */
  dirtySeq: number;
  /** Being written by destage; again: sectors written meanwhile (still dirty after it). */
  destaging: boolean;
  again: Uint32Array | null;
  againSeq: number;
  /** A read of the slot from disk under way; its data goes only into sectors not valid. */
  fill: WbFill | null;
}

interface WbFill {
  /** The buffer the disk read lands in (null: the reader's own buffer, see readRunWb). */
  scratch: Buffer | null;
  waiters: Waiter[];
}

/** A host write (the rest of it) waiting for slots (write-back back-pressure). */
interface WaitingWrite {
  g: CachedGroup;
  offset: number;
  data: Buffer;
  length: number;
  fua: boolean;
  /** Next slot index to apply. */
  next: number;
  last: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** Adjacent dirty ranges that one destage write carries. */
interface Extent {
  g: CachedGroup;
  offset: number;
  length: number;
  pieces: { s: Slot; from: number; to: number }[];
}

interface Fill {
  buf: Buffer;
  stale: boolean;
  waiters: Waiter[];
}

/** One RAID group as the cache sees it: its number in the cache's keys and its size in slots. */
export class CachedGroup {
  readonly slotCount: number;
  /** Its name as journal records carry it. */
  readonly nameBytes: Buffer;

  constructor(readonly device: BlockDevice, readonly no: number) {
    this.slotCount = Math.ceil(device.sizeBytes / CACHE_SLOT_BYTES);
    this.nameBytes = Buffer.from(device.name);
    assert(this.nameBytes.length <= 255, `RAID group name ${device.name} is longer than 255 bytes`);
  }

  /** Length of slot i: the last slot stops at the end of the group. */
  slotLength(i: number): number {
    return Math.min(CACHE_SLOT_BYTES, this.device.sizeBytes - i * CACHE_SLOT_BYTES);
  }
}

const DONE: Promise<void> = Promise.resolve();

export class DkcCache {
  readonly slotsMax: number;
  readonly counters: CacheCounters = {
    hits: 0, misses: 0, fills: 0, staleFills: 0, bypasses: 0, writeAllocations: 0, evictions: 0,
    writeWaits: 0, destageWrites: 0, destagedBytes: 0, destageErrors: 0, replayedRecords: 0,
  };
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
  private readonly writeBack: boolean;
  private readonly off: boolean;
  // Write-back state (see the second half of the file).
  private journal: CacheJournal | null = null;
  private kernel: Kernel | null = null;
  private clock: Clock | null = null;
  private log: pino.Logger | undefined;
  /** Dirty slots in the order they became dirty (oldest journal records first). */
  private readonly dirty = new Map<number, Slot>();
  private dirtyBytesValue = 0;
  private highWaterBytes = 0;
  private idleMs = DESTAGE_IDLE_MS;
  private lastWriteMs = 0;
  /** Seq of the last write record journaled. */
  private lastWriteSeq = 0;
  private readonly waiting: WaitingWrite[] = [];
  private readonly scratch: Buffer[] = [];
  /** Groups destage wrote to since they were last flushed. */
  private readonly unflushed = new Set<CachedGroup>();
  private pass: Promise<number> | null = null;
  private stabilizing: Promise<void> | null = null;
  private closing = false;
  /** Work arrived for destage since its loop last looked. */
  private wakeRequested = false;
  private closed = false;

  constructor(readonly sizeBytes: number, readonly mode: CacheMode = 'write-through') {
    this.slotsMax = Math.floor(sizeBytes / CACHE_SLOT_BYTES);
    assert(this.slotsMax >= 1, `cache of ${sizeBytes} bytes holds no ${CACHE_SLOT_BYTES}-byte slot`);
    this.writeBack = mode === 'write-back';
    this.off = mode === 'off';
  }

  /**
   * A cache in any mode, its groups attached. Whatever mode it is opened in, a journal left in
   * dir by a write-back run (clean close or not) is first replayed into the groups, which are then
   * flushed; write-back then starts a fresh journal and the destage task, the other modes remove
   * the journal. Rejects (and changes nothing) if the journal names a group that is not given.
   */
  static async open(o: CacheOpenOptions): Promise<DkcCache> {
    const cache = new DkcCache(o.sizeBytes, o.mode);
    for (const d of o.groups) cache.attach(d);
    const recovered = await recoverJournal(o.dir);
    if (recovered.writes.length > 0) {
      await replay(recovered, o.groups, o.dir);
      cache.counters.replayedRecords = recovered.writes.length;
      o.log?.info({ records: recovered.writes.length, tornBytes: recovered.tailBytes, dir: o.dir }, 'cache journal replayed');
    }
    if (o.mode === 'write-back') await cache.startWriteBack(o, recovered);
    else if (recovered.found) await removeJournal(o.dir, recovered);
    return cache;
  }

  /** Register a RAID group (again: the same CachedGroup); keys are slot * groupsMax + group number. */
  attach(device: BlockDevice): CachedGroup {
    const had = this.groups.find((g) => g.device === device);
    if (had !== undefined) return had;
    assert(this.groups.length < CACHE_GROUPS_MAX, `a DKC cache serves at most ${CACHE_GROUPS_MAX} RAID groups`);
    const g = new CachedGroup(device, this.groups.length);
    this.groups.push(g);
    return g;
  }

  get stats(): CacheStats {
    return {
      mode: this.mode,
      sizeBytes: this.sizeBytes,
      usedBytes: this.resident.size * CACHE_SLOT_BYTES,
      dirtyBytes: this.dirtyBytesValue,
      journalBytes: this.journal?.sizeBytes ?? 0,
      ...this.counters,
    };
  }

  /** The journal's counters (write-back; else null). */
  get journalStats(): JournalStats | null {
    return this.journal === null ? null : { ...this.journal.stats };
  }

  /** Bytes acknowledged to hosts and not yet on the RAID groups (write-back). */
  get dirtyBytes(): number {
    return this.dirtyBytesValue;
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
    if (this.writeBack) return this.readWb(g, offset, buf, bufOffset, length);
    if (this.off) return g.device.readInto(offset, buf, bufOffset, length);
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
        this.counters.misses++;
        if (runPos < 0) runPos = pos;
      } else {
        if (runPos >= 0) waits.push(this.readRun(g, offset + runPos, buf, bufOffset + runPos, pos - runPos));
        runPos = -1;
        if (s !== undefined) {
          this.counters.hits++;
          this.touch(s);
          s.buf.copy(buf, bufOffset + pos, from, from + len);
        } else {
          this.counters.misses++;
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
        this.counters.fills++;
      } else {
        this.counters.bypasses++;
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

  private join(fill: { waiters: Waiter[] }, from: number, buf: Buffer, bufOffset: number, length: number): Promise<void> {
    return new Promise((resolve, reject) => {
      fill.waiters.push({ buf, bufOffset, from, length, resolve, reject });
    });
  }

  /**
   * Write-through: apply a write to RAM, then send it to the disks with send(); resolves when
   * send() does. The caller passes the group write so that RAM is updated before the disk write
   * is issued (submission order is the order on disk, see the file comment).
   * Write-back: copy it into RAM and the journal (send is not called); resolves once the journal
   * has it, with fua once that is on stable storage.
   */
  write(g: CachedGroup, offset: number, data: Buffer, length: number, send: () => Promise<void>, fua = false): Promise<void> {
    if (this.writeBack) return this.writeWb(g, offset, data, length, fua);
    if (this.off) return send();
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
    for (let i = first; i < g.slotCount && i * CACHE_SLOT_BYTES + g.slotLength(i) <= end; i++) {
      const k = key(g, i);
      const s = this.resident.get(k);
      // Write-back keeps dirty slots: the UNMAP may not be durable yet, and until it is, a crash
      // must find those blocks with the data the host was told was written.
      if (s !== undefined && s.inLru) this.drop(k);
    }
  }

  /**
   * SYNCHRONIZE CACHE: every write acknowledged so far survives power loss. Write-back: the
   * journal is fdatasynced; write-through and off have nothing in RAM (flush the groups).
   */
  sync(): Promise<void> {
    return this.journal === null ? DONE : this.journal.commit(true);
  }

  private readSlot(g: CachedGroup, i: number, from: number, buf: Buffer, bufOffset: number, length: number): Promise<void> {
    const k = key(g, i);
    const s = this.resident.get(k);
    if (s !== undefined) {
      this.counters.hits++;
      this.touch(s);
      s.buf.copy(buf, bufOffset, from, from + length);
      return DONE;
    }
    this.counters.misses++;
    const fill = this.filling.get(k) ?? this.startFill(g, i, k);
    if (fill === null) {
      this.counters.bypasses++;
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
    this.counters.fills++;
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
      this.counters.staleFills++;
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
      this.counters.writeAllocations++;
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
    this.counters.evictions++;
    return oldest.buf;
  }

  private insert(k: number, buf: Buffer): Slot {
    const s = newSlot(k, buf, null);
    this.resident.set(k, s);
    this.append(s);
    return s;
  }

  /** Most recently used now: to the tail of the list (slots not in it stay out). */
  private touch(s: Slot): void {
    if (s === this.lruTail || !s.inLru) return;
    this.unlink(s);
    this.append(s);
  }

  private append(s: Slot): void {
    s.inLru = true;
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
    s.inLru = false;
  }

  // ---- Write-back -------------------------------------------------------------------------
  // A real array's write cache: a host write is acknowledged once it is in (battery-backed) RAM.
  // Here RAM is the slots and "battery-backed" is the journal (firmware/cache/journal.ts): a
  // write is copied into its slots, which become dirty, and one record per slot it touches is
  // queued to the journal; the write is acknowledged when the journal has them (FUA: on stable
  // storage). The destage ROM task writes dirty ranges to the RAID groups, oldest first, then
  // flushes the groups and lets the journal reuse its files (a checkpoint record).
  //   - Slots may be partly valid: a write does not read the rest of its slot from disk. A read
  //     that needs sectors not valid reads the whole slot from disk into a scratch buffer and
  //     copies in only the sectors still not valid at completion: bytes written meanwhile are
  //     newer than the disk's and stay.
  //   - Dirty slots are never evicted (they are out of the LRU list); dirty data is thus always
  //     resident, and a slot not resident has nothing newer than the disk. When no slot can be
  //     had, host writes wait in order for destage (back-pressure), they never fail.
  //   - Destage copies the dirty ranges before writing them (a RAID 5 write computes parity from
  //     its buffer; a host write must not change it meanwhile). Sectors written while destage is
  //     under way stay dirty.

  private async startWriteBack(o: CacheOpenOptions, recovered: JournalRecovery): Promise<void> {
    this.kernel = o.kernel;
    this.clock = o.kernel.clock;
    this.log = o.log;
    this.idleMs = o.destageIdleMs ?? DESTAGE_IDLE_MS;
    const pct = o.destageHighWaterPercent ?? DESTAGE_HIGH_WATER_PERCENT;
    this.highWaterBytes = Math.max(CACHE_SLOT_BYTES, Math.floor((this.slotsMax * CACHE_SLOT_BYTES * pct) / 100));
    this.journal = await CacheJournal.create(o.dir, recovered, {
      fileBytesMax: o.journalFileBytes,
      onPressure: () => this.wakeDestage(),
      log: o.log,
    });
    this.lastWriteSeq = this.journal.nextSeq - 1;
    this.lastWriteMs = this.clock.now();
    o.kernel.start(DESTAGE_TASK, (t) => this.destageTask(t));
  }

  /**
   * Destage everything, flush the groups, close the journal (Dkc.close, before the groups
   * close). If some dirty data cannot be written, it stays in the journal for the next start.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!this.writeBack) return;
    this.closing = true;
    this.kernel!.wake(DESTAGE_TASK);
    await this.kernel!.join(DESTAGE_TASK);
    try {
      await this.destageAll();
    } finally {
      await this.journal!.close();
    }
  }

  /** Write every dirty slot to the RAID groups and flush them (write-back; else nothing to do). */
  async destageAll(): Promise<void> {
    if (!this.writeBack) return;
    let failures = 0;
    while (this.dirty.size > 0 || this.waiting.length > 0) {
      if ((await this.destagePass()) > 0) failures = 0;
      else if (++failures > DESTAGE_CLOSE_RETRIES_MAX) {
        throw new Error(`cache: ${this.dirtyBytesValue} dirty bytes could not be destaged (kept in the journal for the next start)`);
      }
    }
    await this.stabilize();
  }

  private writeWb(g: CachedGroup, offset: number, data: Buffer, length: number, fua: boolean): Promise<void> {
    if (this.closed) return Promise.reject(new Error('cache: write after close'));
    // A journal that could not be written takes no more records (nothing after a hole counts).
    if (this.journal!.broken !== null) return Promise.reject(this.journal!.broken);
    this.lastWriteMs = this.clock!.now();
    const first = Math.floor(offset / CACHE_SLOT_BYTES);
    const last = Math.floor((offset + length - 1) / CACHE_SLOT_BYTES);
    let i = first;
    try {
      // Writes that find others waiting queue behind them (first come, first served).
      if (this.waiting.length === 0) while (i <= last && this.applyWb(g, i, offset, data, length)) i++;
    } catch (err) {
      return Promise.reject(err);
    }
    if (i > last) {
      if (this.dirtyBytesValue >= this.highWaterBytes || this.journal!.needsReclaim) this.wakeDestage();
      return this.journal!.commit(fua);
    }
    this.counters.writeWaits++;
    this.wakeDestage();
    return new Promise((resolve, reject) => {
      this.waiting.push({ g, offset, data, length, fua, next: i, last, resolve, reject });
    });
  }

  /** Copy the part of a write in slot i into RAM and queue its journal record; false: no slot to be had. */
  private applyWb(g: CachedGroup, i: number, offset: number, data: Buffer, length: number): boolean {
    const k = key(g, i);
    const slotStart = i * CACHE_SLOT_BYTES;
    const slotLen = g.slotLength(i);
    const from = Math.max(offset, slotStart) - slotStart;
    const to = Math.min(offset + length, slotStart + slotLen) - slotStart;
    let s = this.resident.get(k);
    if (s === undefined) {
      const b = this.takeBuffer(true);
      if (b === null) return false;
      const whole = from === 0 && to === slotLen;
      if (whole) this.counters.writeAllocations++;
      s = newSlot(k, b, whole ? null : new Uint32Array(BITMAP_WORDS));
      this.resident.set(k, s);
    } else if (s.inLru) {
      this.unlink(s); // dirty from now on: not evictable
    }
    const seq = this.journal!.appendWrite(g.nameBytes, slotStart + from, data, slotStart + from - offset, to - from);
    data.copy(s.buf, from, slotStart + from - offset, slotStart + to - offset);
    const f = from >> SECTOR_SHIFT;
    const t = to >> SECTOR_SHIFT;
    if (s.valid !== null) {
      setBits(s.valid, f, t);
      if (allSet(s.valid, 0, slotLen >> SECTOR_SHIFT)) s.valid = null;
    }
    if (s.dirty === null) {
      s.dirty = new Uint32Array(BITMAP_WORDS);
      s.dirtySeq = seq;
      this.dirty.set(k, s);
    }
    this.dirtyBytesValue += setBits(s.dirty, f, t) << SECTOR_SHIFT;
    if (s.destaging) {
      if (s.again === null) {
        s.again = new Uint32Array(BITMAP_WORDS);
        s.againSeq = seq;
      }
      setBits(s.again, f, t);
    }
    this.lastWriteSeq = seq;
    return true;
  }

  /** Apply waiting writes, in order, as far as slots allow. */
  private drainWaiting(): void {
    while (this.waiting.length > 0) {
      const w = this.waiting[0];
      try {
        while (w.next <= w.last && this.applyWb(w.g, w.next, w.offset, w.data, w.length)) w.next++;
      } catch (err) {
        this.waiting.shift();
        w.reject(err);
        continue;
      }
      if (w.next <= w.last) {
        this.wakeDestage();
        return;
      }
      this.waiting.shift();
      this.journal!.commit(w.fua).then(w.resolve, w.reject);
    }
  }

  private wakeDestage(): void {
    this.wakeRequested = true;
    this.kernel?.wake(DESTAGE_TASK);
  }

  private readWb(g: CachedGroup, offset: number, buf: Buffer, bufOffset: number, length: number): Promise<void> {
    const first = Math.floor(offset / CACHE_SLOT_BYTES);
    const last = Math.floor((offset + length - 1) / CACHE_SLOT_BYTES);
    const waits: Promise<void>[] = [];
    let pos = 0;
    let runPos = -1;
    for (let i = first; i <= last; i++) {
      const from = i === first ? offset - first * CACHE_SLOT_BYTES : 0;
      const len = Math.min(CACHE_SLOT_BYTES - from, length - pos);
      const s = this.resident.get(key(g, i));
      if (s === undefined) {
        this.counters.misses++;
        if (first === last) return this.missWb(g, i, from, buf, bufOffset, length);
        if (runPos < 0) runPos = pos;
      } else {
        if (runPos >= 0) waits.push(this.readRunWb(g, offset + runPos, buf, bufOffset + runPos, pos - runPos));
        runPos = -1;
        if (s.valid === null || allSet(s.valid, from >> SECTOR_SHIFT, (from + len) >> SECTOR_SHIFT)) {
          this.counters.hits++;
          this.touch(s);
          s.buf.copy(buf, bufOffset + pos, from, from + len);
        } else {
          this.counters.misses++;
          waits.push(this.join(this.fillWb(g, i, s), from, buf, bufOffset + pos, len));
        }
      }
      pos += len;
    }
    if (runPos >= 0) waits.push(this.readRunWb(g, offset + runPos, buf, bufOffset + runPos, pos - runPos));
    if (waits.length === 0) return DONE;
    return waits.length === 1 ? waits[0] : Promise.all(waits).then(noop);
  }

  /** A one-slot read of a slot not in RAM: fill it (evicting if need be), or read around the cache. */
  private missWb(g: CachedGroup, i: number, from: number, buf: Buffer, bufOffset: number, length: number): Promise<void> {
    const b = this.takeBuffer(true);
    if (b === null) {
      // Not resident, so nothing newer than the disk: the disk has the bytes.
      this.counters.bypasses++;
      return g.device.readInto(i * CACHE_SLOT_BYTES + from, buf, bufOffset, length);
    }
    const s = newSlot(key(g, i), b, new Uint32Array(BITMAP_WORDS));
    this.resident.set(s.key, s);
    return this.join(this.fillWb(g, i, s), from, buf, bufOffset, length);
  }

  /** The slot's fill under way, or a new one (a disk read of the whole slot into scratch). */
  private fillWb(g: CachedGroup, i: number, s: Slot): WbFill {
    if (s.fill !== null) return s.fill;
    if (s.inLru) this.unlink(s); // not evictable while the disk read is under way
    const scratch = this.scratch.pop() ?? Buffer.allocUnsafeSlow(CACHE_SLOT_BYTES);
    const fill: WbFill = { scratch, waiters: [] };
    s.fill = fill;
    this.counters.fills++;
    g.device.readInto(i * CACHE_SLOT_BYTES, scratch, 0, g.slotLength(i)).then(
      () => this.filledWb(g, i, s, scratch, 0),
      (err: unknown) => this.fillFailedWb(s, err),
    );
    return fill;
  }

  /**
   * A run of slots not in RAM: one disk read into the reader's buffer; the slots it covers whole
   * become resident (free buffers only: long reads never evict) and take their bytes from it.
   */
  private readRunWb(g: CachedGroup, offset: number, buf: Buffer, bufOffset: number, length: number): Promise<void> {
    const firstWhole = Math.ceil(offset / CACHE_SLOT_BYTES);
    const made: Slot[] = [];
    for (let i = firstWhole; i < g.slotCount && i * CACHE_SLOT_BYTES + g.slotLength(i) <= offset + length; i++) {
      const b = this.takeBuffer(false);
      if (b === null) {
        this.counters.bypasses++;
        continue;
      }
      const s = newSlot(key(g, i), b, new Uint32Array(BITMAP_WORDS));
      s.fill = { scratch: null, waiters: [] };
      this.resident.set(s.key, s);
      this.counters.fills++;
      made.push(s);
    }
    const p = g.device.readInto(offset, buf, bufOffset, length);
    if (made.length === 0) return p;
    return p.then(
      () => {
        for (const s of made) {
          const i = slotIndex(s.key);
          this.filledWb(g, i, s, buf, bufOffset + i * CACHE_SLOT_BYTES - offset);
        }
      },
      (err: unknown) => {
        for (const s of made) this.fillFailedWb(s, err);
        throw err;
      },
    );
  }

  /** The disk's bytes of slot i are in src at srcOffset: take those of the sectors not valid. */
  private filledWb(g: CachedGroup, i: number, s: Slot, src: Buffer, srcOffset: number): void {
    const fill = s.fill!;
    s.fill = null;
    const valid = s.valid;
    if (valid !== null) {
      if (fill.scratch !== null && isEmpty(valid)) {
        // Nothing written meanwhile (so nothing dirty, no destage reading it): swap, no copy.
        fill.scratch = s.buf;
        s.buf = src;
      } else {
        const r = runs(valid, g.slotLength(i) >> SECTOR_SHIFT, false);
        for (let n = 0; n < r.length; n += 2) {
          src.copy(s.buf, r[n] << SECTOR_SHIFT, srcOffset + (r[n] << SECTOR_SHIFT), srcOffset + (r[n + 1] << SECTOR_SHIFT));
        }
      }
      s.valid = null;
    }
    for (const w of fill.waiters) {
      s.buf.copy(w.buf, w.bufOffset, w.from, w.from + w.length);
      w.resolve();
    }
    this.releaseScratch(fill.scratch);
    if (s.dirty === null) this.append(s);
    if (this.waiting.length > 0) this.drainWaiting();
  }

  private fillFailedWb(s: Slot, err: unknown): void {
    const fill = s.fill!;
    s.fill = null;
    for (const w of fill.waiters) w.reject(err);
    this.releaseScratch(fill.scratch);
    if (s.dirty === null) {
      if (s.valid !== null && isEmpty(s.valid)) {
        this.resident.delete(s.key);
        this.free.push(s.buf);
      } else {
        this.append(s);
      }
    }
    if (this.waiting.length > 0) this.drainWaiting();
  }

  private releaseScratch(b: Buffer | null): void {
    if (b !== null && this.scratch.length < FILL_SCRATCH_MAX) this.scratch.push(b);
  }

  // ---- Destage (the ROM task) ----

  private async destageTask(t: TaskContext): Promise<void> {
    while (!t.signal.aborted && !this.closing) {
      this.wakeRequested = false;
      const idle = t.clock.now() - this.lastWriteMs >= this.idleMs;
      const urgent = this.urgent();
      let progress = false;
      try {
        if (this.dirty.size > 0 && (idle || urgent)) progress = (await this.destagePass()) > 0;
        if (this.dirty.size === 0 || this.journal!.needsReclaim) await this.stabilize();
      } catch (err) {
        this.log?.error({ err }, 'destage: flushing the RAID groups failed');
      }
      t.report(`${this.dirty.size} dirty slots, ${this.dirtyBytesValue} dirty bytes, ${this.counters.destagedBytes} bytes destaged, journal ${this.journal!.sizeBytes} bytes`);
      const more = progress && this.dirty.size > 0 && (t.clock.now() - this.lastWriteMs >= this.idleMs || this.urgent());
      // Checked just before sleeping (nothing runs in between): a wake that came while this
      // pass was under way is not lost.
      if (!more && !this.wakeRequested && !this.closing) await t.sleep(this.idleMs);
    }
  }

  private urgent(): boolean {
    return this.dirtyBytesValue >= this.highWaterBytes || this.waiting.length > 0 || this.journal!.needsReclaim;
  }

  /** One pass (never two at once): returns the slots it cleaned. */
  private destagePass(): Promise<number> {
    const p = (this.pass ?? DONE).catch(noop).then(() => this.destageOnce());
    const mine = p.finally(() => {
      if (this.pass === mine) this.pass = null;
    });
    this.pass = mine;
    return mine;
  }

  /** The oldest dirty slots (they hold the journal's tail), written in address order, adjacent ranges as one write. */
  private async destageOnce(): Promise<number> {
    const picked: Slot[] = [];
    for (const s of this.dirty.values()) {
      picked.push(s);
      if (picked.length >= DESTAGE_SLOTS_PER_PASS) break;
    }
    if (picked.length === 0) return 0;
    picked.sort((a, b) => (a.key % CACHE_GROUPS_MAX) - (b.key % CACHE_GROUPS_MAX) || a.key - b.key);
    const extents = this.extentsOf(picked);
    const failed = new Set<Slot>();
    await Promise.all(
      extents.map(async (e) => {
        try {
          await e.g.device.write(e.offset, e.data, 0, e.length, false);
          this.unflushed.add(e.g);
          this.counters.destageWrites++;
          this.counters.destagedBytes += e.length;
        } catch (err) {
          this.counters.destageErrors++;
          this.log?.warn({ err, group: e.g.device.name, offset: e.offset, length: e.length }, 'destage write failed; kept dirty');
          for (const p of e.pieces) failed.add(p.s);
        }
      }),
    );
    let cleaned = 0;
    for (const s of picked) if (this.destaged(s, failed.has(s))) cleaned++;
    if (this.waiting.length > 0) this.drainWaiting();
    return cleaned;
  }

  /** The dirty ranges of the picked slots as writes, each with a copy of its bytes (one buffer for the pass). */
  private extentsOf(picked: Slot[]): (Extent & { data: Buffer })[] {
    const out: Extent[] = [];
    let cur: Extent | null = null;
    let total = 0;
    for (const s of picked) {
      s.destaging = true;
      const g = this.groups[s.key % CACHE_GROUPS_MAX];
      const i = slotIndex(s.key);
      const r = runs(s.dirty!, g.slotLength(i) >> SECTOR_SHIFT, true);
      for (let n = 0; n < r.length; n += 2) {
        const from = r[n] << SECTOR_SHIFT;
        const to = r[n + 1] << SECTOR_SHIFT;
        const offset = i * CACHE_SLOT_BYTES + from;
        if (cur !== null && cur.g === g && cur.offset + cur.length === offset && cur.length + to - from <= DESTAGE_WRITE_BYTES_MAX) {
          cur.length += to - from;
        } else {
          cur = { g, offset, length: to - from, pieces: [] };
          out.push(cur);
        }
        cur.pieces.push({ s, from, to });
        total += to - from;
      }
    }
    const copy = Buffer.allocUnsafeSlow(total);
    let at = 0;
    return out.map((e) => {
      const start = at;
      for (const p of e.pieces) at += p.s.buf.copy(copy, at, p.from, p.to);
      return { ...e, data: copy.subarray(start, at) };
    });
  }

  /** Destage of s ended; true if it is clean now. */
  private destaged(s: Slot, failed: boolean): boolean {
    s.destaging = false;
    const again = s.again;
    s.again = null;
    if (failed) return false; // still dirty (again's sectors are in dirty too), same oldest seq
    this.dirtyBytesValue -= (countBits(s.dirty!) - (again === null ? 0 : countBits(again))) << SECTOR_SHIFT;
    this.dirty.delete(s.key);
    if (again !== null) {
      s.dirty = again;
      s.dirtySeq = s.againSeq;
      this.dirty.set(s.key, s); // to the end: its oldest record is recent
      return false;
    }
    s.dirty = null;
    if (s.fill === null) this.append(s);
    return true;
  }

  /**
   * Flush the groups destage wrote to, then tell the journal that every record below the
   * oldest still dirty is on stable storage (a checkpoint record; the other file may be reused).
   */
  private stabilize(): Promise<void> {
    // One at a time: another must not claim stability while this one's flush is under way.
    const p = (this.stabilizing ?? DONE).catch(noop).then(() => this.stabilizeOnce());
    const mine = p.finally(() => {
      if (this.stabilizing === mine) this.stabilizing = null;
    });
    this.stabilizing = mine;
    return mine;
  }

  private async stabilizeOnce(): Promise<void> {
    const journal = this.journal!;
    if (this.lastWriteSeq < journal.stableSeq) return;
    let low = journal.nextSeq;
    for (const s of this.dirty.values()) if (s.dirtySeq < low) low = s.dirtySeq;
    if (low <= journal.stableSeq) return;
    const groups = [...this.unflushed];
    this.unflushed.clear();
    try {
      await Promise.all(groups.map((g) => g.device.flush()));
    } catch (err) {
      for (const g of groups) this.unflushed.add(g);
      throw err;
    }
    journal.markStable(low);
    journal.appendCheckpoint(low);
    // Not waited for: losing it only means replaying records already on the groups.
    void journal.commit(false).catch(() => undefined);
  }
}

/** RAID groups one DKC cache keys (slot * CACHE_GROUPS_MAX + group keeps keys exact below 2^53). */
export const CACHE_GROUPS_MAX = 1024;

function key(g: CachedGroup, slot: number): number {
  return slot * CACHE_GROUPS_MAX + g.no;
}

function noop(): void {}

function slotIndex(k: number): number {
  return Math.floor(k / CACHE_GROUPS_MAX);
}

function newSlot(k: number, buf: Buffer, valid: Uint32Array | null): Slot {
  return { key: k, buf, prev: null, next: null, inLru: false, valid, dirty: null, dirtySeq: 0, destaging: false, again: null, againSeq: 0, fill: null };
}

// Sector bitmaps of a slot: bit n of word n >> 5 is the 512 bytes at n * 512.
const SECTOR_SHIFT = 9;
const BITMAP_WORDS = CACHE_SLOT_BYTES >> SECTOR_SHIFT >> 5;

function wordMask(lo: number, hi: number): number {
  return hi - lo === 32 ? 0xffffffff : (((1 << (hi - lo)) - 1) << lo) >>> 0;
}

function popcount(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24);
}

/** Set bits [from, to); returns how many were not set before. */
function setBits(b: Uint32Array, from: number, to: number): number {
  let added = 0;
  for (let w = from >>> 5; w << 5 < to; w++) {
    const m = wordMask(Math.max(from - (w << 5), 0), Math.min(to - (w << 5), 32));
    added += popcount(m & ~b[w]);
    b[w] = (b[w] | m) >>> 0;
  }
  return added;
}

function allSet(b: Uint32Array, from: number, to: number): boolean {
  for (let w = from >>> 5; w << 5 < to; w++) {
    const m = wordMask(Math.max(from - (w << 5), 0), Math.min(to - (w << 5), 32));
    if (((b[w] & m) >>> 0) !== m) return false;
  }
  return true;
}

function isEmpty(b: Uint32Array): boolean {
  for (let w = 0; w < b.length; w++) if (b[w] !== 0) return false;
  return true;
}

function countBits(b: Uint32Array): number {
  let n = 0;
  for (let w = 0; w < b.length; w++) n += popcount(b[w]);
  return n;
}

/** Runs of bits equal to set among the first n, as [from, to) pairs. */
function runs(b: Uint32Array, n: number, set: boolean): number[] {
  const out: number[] = [];
  let start = -1;
  for (let i = 0; i <= n; i++) {
    const on = i < n && ((b[i >>> 5] >>> (i & 31)) & 1) === (set ? 1 : 0);
    if (on && start < 0) start = i;
    else if (!on && start >= 0) {
      out.push(start, i);
      start = -1;
    }
  }
  return out;
}

/** Replay journal records into the groups, oldest first (overlapping ones in order), then flush them. */
async function replay(recovered: JournalRecovery, devices: BlockDevice[], dir: string): Promise<void> {
  const byName = new Map(devices.map((d) => [d.name, d]));
  for (const r of recovered.writes) {
    const d = byName.get(r.group);
    if (d === undefined) {
      throw new Error(`${dir}: the cache journal holds acknowledged writes to RAID group ${r.group}, which this DKC does not have`);
    }
    if (r.offset + r.data.length > d.sizeBytes) {
      throw new Error(`${dir}: the cache journal holds a write beyond the end of RAID group ${r.group} (${r.offset} + ${r.data.length})`);
    }
  }
  let batch: Promise<void>[] = [];
  const touched = new Set<string>();
  const written = new Set<BlockDevice>();
  for (const r of recovered.writes) {
    const d = byName.get(r.group)!;
    const keys: string[] = [];
    for (let i = Math.floor(r.offset / CACHE_SLOT_BYTES); i * CACHE_SLOT_BYTES < r.offset + r.data.length; i++) keys.push(`${r.group}/${i}`);
    if (batch.length >= REPLAY_WRITES_MAX || keys.some((k) => touched.has(k))) {
      await Promise.all(batch);
      batch = [];
      touched.clear();
    }
    batch.push(d.write(r.offset, r.data, 0, r.data.length, false));
    for (const k of keys) touched.add(k);
    written.add(d);
  }
  await Promise.all(batch);
  await Promise.all([...written].map((d) => d.flush()));
}
