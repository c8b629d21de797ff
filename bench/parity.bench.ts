// RAID parity benchmarks (firmware/raid/parity.ts): P as the XOR of 4 data chunks of 64 KiB, P+Q of
// RAID 6 over the same 4 chunks, and for comparison a plain Buffer.copy of the same 256 KiB.
// Fixed inputs, filled once before timing.
import Benchmark from 'benchmark';
import { computePQ, xorBlocks } from '../firmware/raid/parity';

const CHUNK = 64 * 1024;
const DATA = 4;

function filled(seed: number): Buffer {
  const b = Buffer.alloc(CHUNK);
  let x = seed;
  for (let i = 0; i < CHUNK; i += 4) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b.writeUInt32LE(x, i);
  }
  return b;
}

const data = Array.from({ length: DATA }, (_x, i) => filled(i + 1));
const p = Buffer.alloc(CHUNK);
const q = Buffer.alloc(CHUNK);
const src = Buffer.concat(data);
const dst = Buffer.alloc(CHUNK * DATA);
let sink: unknown;

export function paritySuite(): Benchmark.Suite {
  return new Benchmark.Suite('parity')
    .add('XOR 4 x 64 KiB into P', () => {
      xorBlocks(p, data);
      sink = p[0];
    })
    .add('RAID 6 P+Q of 4 x 64 KiB', () => {
      computePQ(data, p, q);
      sink = q[0];
    })
    .add('Buffer.copy 256 KiB (comparison only)', () => {
      sink = src.copy(dst, 0, 0, src.length);
    });
}

export function consume(): unknown {
  return sink;
}
