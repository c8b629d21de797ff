// A fixed-size bit array: the DKC's bitmaps in RAM (seed 001 Fig. 3: bitmaps live in RAM 1260).
// The shared building block of the firmware: LDEV allocation maps, pair difference bitmaps
// (seed 002), main/sub bitmaps of remote copy (seed 001), RAID write-intent and rebuild progress.
// Every operation works a 32-bit word at a time; only the partial words at the ends of a range
// are masked, and whole-word runs use native fill/copy where they can. Bit i lives in word
// i >>> 5 at bit i & 31, which on a little-endian host is byte i >>> 3 at bit i & 7: the byte
// view (bytes()) is the on-disk layout, independent of word size.
// Invariant: the bits of the last word past `size` are always zero (nothing sets them), so
// whole-word scans, popcounts and byte comparisons need no tail mask.
import assert from 'node:assert';
import { endianness } from 'node:os';

assert(endianness() === 'LE', 'Bitmap byte layout assumes a little-endian host');

const WORD_BITS = 32;
const FULL = 0xffffffff;
/** Bit indexes go through `>>> 5`, which is exact below 2^32. */
const SIZE_MAX = 2 ** 32;

/** Mask of bits [lo, hi) within one word, 0 <= lo < hi <= 32. */
function mask(lo: number, hi: number): number {
  const upper = hi === WORD_BITS ? FULL : ((1 << hi) - 1) >>> 0;
  return (upper & ~((1 << lo) - 1)) >>> 0;
}

function popcount32(v: number): number {
  v = v - ((v >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}

/** Set bits of every 16-bit value: count()'s word loop runs about twice as fast on it. */
const POPCOUNT16 = new Uint8Array(1 << 16);
for (let i = 1; i < POPCOUNT16.length; i++) POPCOUNT16[i] = (i & 1) + POPCOUNT16[i >>> 1];

/** Index of the lowest set bit of a non-zero word. */
function lowestSet(v: number): number {
  return 31 - Math.clz32(v & -v);
}

/** How a source word combines into a destination word (combine()). */
const enum Op {
  COPY,
  OR,
  AND,
  AND_NOT,
}

function combineWord(old: number, src: number, op: Op): number {
  switch (op) {
    case Op.COPY:
      return src;
    case Op.OR:
      return (old | src) >>> 0;
    case Op.AND:
      return (old & src) >>> 0;
    case Op.AND_NOT:
      return (old & ~src) >>> 0;
  }
}

export class Bitmap {
  readonly size: number;
  private readonly words: Uint32Array;
  /**
   * The same words as int32: V8 keeps these as small integers, while a Uint32Array element of
   * 2^31 or more is a heap number. The bulk loops (scan, count, OR...) read this view.
   */
  private readonly ints: Int32Array;

  /**
   * @param size number of bits
   * @param storage optional backing bytes (at least byteLength(size), 4-byte aligned offset);
   *   the bitmap reads and writes them in place.
   */
  constructor(size: number, storage?: Uint8Array) {
    assert(Number.isSafeInteger(size) && size >= 0 && size <= SIZE_MAX, `bad bitmap size ${size}`);
    this.size = size;
    const wordCount = Math.ceil(size / WORD_BITS);
    if (storage) {
      assert(storage.byteLength >= wordCount * 4, 'bitmap storage too small');
      assert(storage.byteOffset % 4 === 0, 'bitmap storage must be 4-byte aligned');
      this.words = new Uint32Array(storage.buffer, storage.byteOffset, wordCount);
    } else {
      this.words = new Uint32Array(wordCount);
    }
    this.ints = new Int32Array(this.words.buffer, this.words.byteOffset, wordCount);
  }

  /** Bytes needed to store `size` bits (whole 32-bit words). */
  static byteLength(size: number): number {
    return Math.ceil(size / WORD_BITS) * 4;
  }

  /** The backing bytes (shared, not a copy). */
  bytes(): Buffer {
    return Buffer.from(this.words.buffer, this.words.byteOffset, this.words.byteLength);
  }

  /** A new bitmap (own storage) with the same bits. */
  clone(): Bitmap {
    const b = new Bitmap(this.size);
    b.words.set(this.words);
    return b;
  }

  test(bit: number): boolean {
    this.check(bit, 1);
    return ((this.words[bit >>> 5] >>> (bit & 31)) & 1) === 1;
  }

  /** Set bits [start, start+count); returns true if any bit changed. */
  set(start: number, count = 1): boolean {
    return this.apply(start, count, true);
  }

  /** Clear bits [start, start+count); returns true if any bit changed. */
  clear(start: number, count = 1): boolean {
    return this.apply(start, count, false);
  }

  /** Set every bit. */
  setAll(): void {
    this.words.fill(FULL);
    const tail = this.size & 31;
    if (tail !== 0) this.words[this.words.length - 1] = mask(0, tail); // keep the invariant
  }

  /** Clear every bit. */
  reset(): void {
    this.words.fill(0);
  }

  /** True if every bit of [start, start+count) is set (true for count 0). */
  allSet(start: number, count: number): boolean {
    return this.findNextClear(start, start + count) === start + count;
  }

  /** True if no bit of [start, start+count) is set. */
  noneSet(start: number, count: number): boolean {
    return this.findNextSet(start, start + count) === start + count;
  }

  /** True if no bit is set. */
  isEmpty(): boolean {
    const w = this.ints;
    for (let i = 0; i < w.length; i++) if (w[i] !== 0) return false;
    return true;
  }

  /** Same size and the same bits (a bitmap of another size is simply not equal). */
  equals(other: Bitmap): boolean {
    return this.size === other.size && this.bytes().equals(other.bytes());
  }

  /** First set bit in [from, end) (end defaults to size), or end if there is none. */
  findNextSet(from: number, end = this.size): number {
    return this.find(from, end, 0);
  }

  /** First clear bit in [from, end), or end if there is none. */
  findNextClear(from: number, end = this.size): number {
    return this.find(from, end, -1);
  }

  /** Number of set bits in [start, end). */
  count(start = 0, end = this.size): number {
    this.check(start, end - start);
    if (start === end) return 0;
    const w = this.ints;
    const w0 = start >>> 5;
    const w1 = (end - 1) >>> 5;
    const hiLast = ((end - 1) & 31) + 1;
    if (w0 === w1) return popcount32((w[w0] & mask(start & 31, hiLast)) >>> 0);
    let total = popcount32((w[w0] & mask(start & 31, WORD_BITS)) >>> 0);
    for (let i = w0 + 1; i < w1; i++) {
      const v = w[i];
      total += POPCOUNT16[v & 0xffff] + POPCOUNT16[v >>> 16];
    }
    return total + popcount32((w[w1] & mask(0, hiLast)) >>> 0);
  }

  /** Make bits [start, start+count) equal to other's; true if any bit changed. Same size. */
  copyFrom(other: Bitmap, start = 0, count = this.size - start): boolean {
    return this.combine(other, start, count, Op.COPY);
  }

  /** Set in this what is set in other, over [start, start+count); true if any bit changed. */
  or(other: Bitmap, start = 0, count = this.size - start): boolean {
    return this.combine(other, start, count, Op.OR);
  }

  /** Clear in this what is clear in other, over [start, start+count); true if any bit changed. */
  and(other: Bitmap, start = 0, count = this.size - start): boolean {
    return this.combine(other, start, count, Op.AND);
  }

  /** Clear in this what is set in other, over [start, start+count); true if any bit changed. */
  andNot(other: Bitmap, start = 0, count = this.size - start): boolean {
    return this.combine(other, start, count, Op.AND_NOT);
  }

  /** Word scan: `invert` 0 looks for a 1 bit, -1 (all ones) looks for a 0 bit. */
  private find(from: number, end: number, invert: number): number {
    this.check(from, end - from);
    if (from >= end) return end;
    const words = this.ints;
    let w = from >>> 5;
    let v = (words[w] ^ invert) & mask(from & 31, WORD_BITS);
    const lastWord = (end - 1) >>> 5;
    while (v === 0) {
      if (++w > lastWord) return end;
      v = words[w] ^ invert;
    }
    const found = (w << 5) + lowestSet(v);
    return found < end ? found : end;
  }

  private apply(start: number, count: number, value: boolean): boolean {
    this.check(start, count);
    if (count === 0) return false;
    const end = start + count;
    const w0 = start >>> 5;
    const w1 = (end - 1) >>> 5;
    const hiLast = ((end - 1) & 31) + 1;
    if (w0 === w1) return this.applyWord(w0, mask(start & 31, hiLast), value);
    let changed = this.applyWord(w0, mask(start & 31, WORD_BITS), value);
    if (w1 > w0 + 1) changed = this.fillWords(w0 + 1, w1, value) || changed;
    return this.applyWord(w1, mask(0, hiLast), value) || changed;
  }

  private applyWord(w: number, m: number, value: boolean): boolean {
    const old = this.words[w];
    const next = value ? (old | m) >>> 0 : (old & ~m) >>> 0;
    this.words[w] = next;
    return old !== next;
  }

  /** Whole words [from, to) to all ones or all zeros; true if any of them differed. */
  private fillWords(from: number, to: number, value: boolean): boolean {
    const w = this.ints;
    const want = value ? -1 : 0;
    let changed = false;
    for (let i = from; i < to; i++) {
      if (w[i] !== want) {
        changed = true;
        break;
      }
    }
    if (changed) w.fill(want, from, to);
    return changed;
  }

  private combine(other: Bitmap, start: number, count: number, op: Op): boolean {
    assert(other.size === this.size, `bitmap sizes differ: ${this.size} and ${other.size}`);
    this.check(start, count);
    if (count === 0) return false;
    const end = start + count;
    const w0 = start >>> 5;
    const w1 = (end - 1) >>> 5;
    const hiLast = ((end - 1) & 31) + 1;
    if (w0 === w1) return this.combineMasked(other, w0, mask(start & 31, hiLast), op);
    let changed = this.combineMasked(other, w0, mask(start & 31, WORD_BITS), op);
    if (w1 > w0 + 1) changed = this.combineWords(other, w0 + 1, w1, op) || changed;
    return this.combineMasked(other, w1, mask(0, hiLast), op) || changed;
  }

  private combineMasked(other: Bitmap, w: number, m: number, op: Op): boolean {
    const old = this.words[w];
    const next = ((old & ~m) | (combineWord(old, other.words[w], op) & m)) >>> 0;
    this.words[w] = next;
    return old !== next;
  }

  /** Whole words [from, to): one tight loop per operation (the switch stays out of the loop). */
  private combineWords(other: Bitmap, from: number, to: number, op: Op): boolean {
    const a = this.ints;
    const b = other.ints;
    let diff = 0;
    switch (op) {
      case Op.COPY:
        for (let i = from; i < to && diff === 0; i++) diff = a[i] ^ b[i];
        if (diff !== 0) a.set(b.subarray(from, to), from);
        break;
      case Op.OR:
        for (let i = from; i < to; i++) {
          const o = a[i];
          const n = o | b[i];
          diff |= o ^ n;
          a[i] = n;
        }
        break;
      case Op.AND:
        for (let i = from; i < to; i++) {
          const o = a[i];
          const n = o & b[i];
          diff |= o ^ n;
          a[i] = n;
        }
        break;
      case Op.AND_NOT:
        for (let i = from; i < to; i++) {
          const o = a[i];
          const n = o & ~b[i];
          diff |= o ^ n;
          a[i] = n;
        }
        break;
    }
    return diff !== 0;
  }

  private check(start: number, count: number): void {
    // The message is built only on failure: this runs on every I/O.
    if (!(Number.isInteger(start) && Number.isInteger(count) && start >= 0 && count >= 0 && start + count <= this.size)) {
      assert.fail(`bit range [${start}, +${count}) outside bitmap of ${this.size}`);
    }
  }
}
