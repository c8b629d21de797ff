// Bitmap benchmarks (firmware/bitmap.ts) over 16M bits (2 MiB, e.g. a 64 GiB volume at one bit
// per 4 KiB): a 1M-bit range set (a resync marking a split area), a findNextSet scan of a sparse
// bitmap (1 bit in 4096: how a resync walks a difference bitmap after light writes), a count of
// all bits, and an OR of two 16M-bit bitmaps (merging a main and a sub bitmap, seed 001).
// Fixed inputs; every case touches all of its 2 MiB (or 128 KiB for the range set).
import Benchmark from 'benchmark';
import { Bitmap } from '../firmware/bitmap';

const BITS = 16 * 1024 * 1024;
const RANGE_BITS = 1024 * 1024;
const SPARSE_STRIDE = 4096;

const ranged = new Bitmap(BITS);
const sparse = new Bitmap(BITS);
for (let i = 17; i < BITS; i += SPARSE_STRIDE) sparse.set(i);
const dense = new Bitmap(BITS);
for (let i = 0; i < BITS; i += 3) dense.set(i);
/** OR target: a copy of the dense bitmap, so every OR reads and writes all 2 MiB the same way. */
const orDst = dense.clone();
/** Range starts walk the bitmap in a fixed order, off word boundaries. */
let rangeStep = 0;

let sink = 0;

export function bitmapSuite(): Benchmark.Suite {
  return new Benchmark.Suite('bitmap')
    .add('set + clear a 1M-bit range in 16M bits', () => {
      rangeStep = (rangeStep + 5) % 15;
      const start = rangeStep * RANGE_BITS + 7;
      sink += ranged.set(start, RANGE_BITS) ? 1 : 0;
      ranged.clear(start, RANGE_BITS);
    })
    .add('findNextSet scan of 16M bits, 1 set in 4096 (4096 hits)', () => {
      let n = 0;
      for (let b = sparse.findNextSet(0); b < BITS; b = sparse.findNextSet(b + 1)) n++;
      sink += n;
    })
    .add('count 16M bits', () => {
      sink += dense.count();
    })
    .add('OR two 16M-bit bitmaps', () => {
      sink += orDst.or(sparse) ? 1 : 0;
    });
}

export function consume(): number {
  return sink;
}
