// A fixed-size bit array: the DKC's bitmaps in RAM (seed 001 Fig. 3: bitmaps live in RAM 1260).
// Used for LDEV allocation maps now, and for main/sub/differential bitmaps in later issues.
// Every operation works a 32-bit word at a time; only the partial words at the ends of a range
// are masked. Bit i lives in word i >>> 5 at bit i & 31, which on a little-endian host is byte
// i >>> 3 at bit i & 7: the byte view (bytes()) is the on-disk layout, independent of word size.
import assert from 'node:assert';
import { endianness } from 'node:os';

assert(endianness() === 'LE', 'Bitmap byte layout assumes a little-endian host');

const WORD_BITS = 32;

/** Mask of bits [lo, hi) within one word, 0 <= lo < hi <= 32. */
function mask(lo: number, hi: number): number {
  const upper = hi === WORD_BITS ? 0xffffffff : ((1 << hi) - 1) >>> 0;
  return (upper & ~((1 << lo) - 1)) >>> 0;
}

function popcount32(v: number): number {
  v = v - ((v >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

/** Index of the lowest set bit of a non-zero word. */
function lowestSet(v: number): number {
  return 31 - Math.clz32(v & -v);
}

export class Bitmap {
  readonly size: number;
  private readonly words: Uint32Array;

  /**
   * @param size number of bits
   * @param storage optional backing bytes (at least byteLength(size), 4-byte aligned offset);
   *   the bitmap reads and writes them in place.
   */
  constructor(size: number, storage?: Uint8Array) {
    assert(Number.isSafeInteger(size) && size >= 0, `bad bitmap size ${size}`);
    this.size = size;
    const wordCount = Math.ceil(size / WORD_BITS);
    if (storage) {
      assert(storage.byteLength >= wordCount * 4, 'bitmap storage too small');
      assert(storage.byteOffset % 4 === 0, 'bitmap storage must be 4-byte aligned');
      this.words = new Uint32Array(storage.buffer, storage.byteOffset, wordCount);
    } else {
      this.words = new Uint32Array(wordCount);
    }
  }

  /** Bytes needed to store `size` bits (whole 32-bit words). */
  static byteLength(size: number): number {
    return Math.ceil(size / WORD_BITS) * 4;
  }

  /** The backing bytes (shared, not a copy). */
  bytes(): Buffer {
    return Buffer.from(this.words.buffer, this.words.byteOffset, this.words.byteLength);
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

  /** True if every bit of [start, start+count) is set (true for count 0). */
  allSet(start: number, count: number): boolean {
    return this.findNextClear(start, start + count) === start + count;
  }

  /** True if no bit of [start, start+count) is set. */
  noneSet(start: number, count: number): boolean {
    return this.findNextSet(start, start + count) === start + count;
  }

  /** First set bit in [from, end) (end defaults to size), or end if there is none. */
  findNextSet(from: number, end = this.size): number {
    return this.find(from, end, 0);
  }

  /** First clear bit in [from, end), or end if there is none. */
  findNextClear(from: number, end = this.size): number {
    return this.find(from, end, 0xffffffff);
  }

  /** Number of set bits in [start, end). */
  count(start = 0, end = this.size): number {
    this.check(start, end - start);
    let total = 0;
    let bit = start;
    while (bit < end) {
      const w = bit >>> 5;
      const lo = bit & 31;
      const hi = Math.min(WORD_BITS, end - (w << 5));
      const m = lo === 0 && hi === WORD_BITS ? 0xffffffff : mask(lo, hi);
      total += popcount32(this.words[w] & m);
      bit = (w + 1) << 5;
    }
    return total;
  }

  /** Clear everything. */
  reset(): void {
    this.words.fill(0);
  }

  /** Word scan: `invert` 0 looks for a 1 bit, 0xffffffff looks for a 0 bit. */
  private find(from: number, end: number, invert: number): number {
    this.check(from, end - from);
    if (from >= end) return end;
    let w = from >>> 5;
    let v = ((this.words[w] ^ invert) & mask(from & 31, WORD_BITS)) >>> 0;
    const lastWord = (end - 1) >>> 5;
    while (v === 0) {
      if (++w > lastWord) return end;
      v = (this.words[w] ^ invert) >>> 0;
    }
    const found = (w << 5) + lowestSet(v);
    return found < end ? found : end;
  }

  private apply(start: number, count: number, value: boolean): boolean {
    this.check(start, count);
    const end = start + count;
    let changed = 0;
    let bit = start;
    while (bit < end) {
      const w = bit >>> 5;
      const lo = bit & 31;
      const hi = Math.min(WORD_BITS, end - (w << 5));
      const m = lo === 0 && hi === WORD_BITS ? 0xffffffff : mask(lo, hi);
      const old = this.words[w];
      const next = value ? (old | m) >>> 0 : (old & ~m) >>> 0;
      changed |= old ^ next;
      this.words[w] = next;
      bit = (w + 1) << 5;
    }
    return changed !== 0;
  }

  private check(start: number, count: number): void {
    // The message is built only on failure: this runs on every I/O.
    if (!(Number.isInteger(start) && Number.isInteger(count) && start >= 0 && count >= 0 && start + count <= this.size)) {
      assert.fail(`bit range [${start}, +${count}) outside bitmap of ${this.size}`);
    }
  }
}
