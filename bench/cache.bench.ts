// DKC cache benchmarks (firmware/cache/cache.ts): the read-hit path (lookup, LRU touch, copy out) for
// 4 KiB and 128 KiB reads over a working set of 1024 resident slots (64 MiB, larger than the CPU
// caches), the write path's RAM update, and a bare Buffer.copy of the same sizes for comparison.
// Fixed inputs; the slots are filled once before timing, so no case touches the disk.
// Write-back cases (docs/cache.md): the read-hit and RAM-side write paths of a write-back cache,
// and acknowledged writes, which wait for the journal's pwritev (a file in os.tmpdir(), through
// the page cache) at queue depth 1 and 32; destage runs meanwhile, into the memory group.
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Benchmark from 'benchmark';
import { CACHE_SLOT_BYTES, CachedGroup, DkcCache } from '../firmware/cache/cache';
import type { BlockDevice } from '../firmware/drive';
import { Kernel } from '../firmware/kernel/kernel';

const SLOTS = 1024;
const KIB4 = 4096;
const KIB128 = 128 * 1024;

/** A RAID group in memory that completes everything at once (only used to fill the slots). */
class MemoryGroup implements BlockDevice {
  readonly name = 'bench';
  readonly sizeBytes = SLOTS * CACHE_SLOT_BYTES;

  readInto(_offset: number, buf: Buffer, bufOffset: number, length: number): Promise<void> {
    buf.fill(0x5a, bufOffset, bufOffset + length);
    return Promise.resolve();
  }
  write(): Promise<void> {
    return Promise.resolve();
  }
  flush(): Promise<void> {
    return Promise.resolve();
  }
}

const cache = new DkcCache(SLOTS * CACHE_SLOT_BYTES);
const group = cache.attach(new MemoryGroup());
const out4 = Buffer.alloc(KIB4);
const out128 = Buffer.alloc(KIB128);
const src = Buffer.alloc(SLOTS * CACHE_SLOT_BYTES, 1);
const data4 = Buffer.alloc(KIB4, 2);
const sent = Promise.resolve();
/** Offsets visited in a fixed scattered order (a multiplicative step modulo the slot count). */
let step = 0;
function nextSlot(): number {
  step = (step + 617) % SLOTS;
  return step;
}

let wb: DkcCache;
let wbGroup: CachedGroup;
const QD = 32;

/** Fill every slot once (the fills complete in microtasks); open the write-back cache. */
export async function prepareCache(): Promise<void> {
  const one = Buffer.alloc(512);
  for (let s = 0; s < SLOTS; s++) await cache.read(group, s * CACHE_SLOT_BYTES, one, 0, 512);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dkc-cache-bench-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const dev = new MemoryGroup();
  wb = await DkcCache.open({ sizeBytes: SLOTS * CACHE_SLOT_BYTES, mode: 'write-back', groups: [dev], dir, kernel: new Kernel(), journalFileBytes: 16 * 1024 * 1024 });
  wbGroup = wb.attach(dev);
  for (let s = 0; s < SLOTS; s++) await wb.read(wbGroup, s * CACHE_SLOT_BYTES, one, 0, 512);
}

function wbWrite(): Promise<void> {
  return wb.write(wbGroup, nextSlot() * CACHE_SLOT_BYTES + 4096, data4, KIB4, () => sent);
}

let sink: unknown;

export function cacheSuite(): Benchmark.Suite {
  return new Benchmark.Suite('cache')
    .add('read hit 4 KiB (lookup + LRU touch + copy)', () => {
      sink = cache.read(group, nextSlot() * CACHE_SLOT_BYTES + 8192, out4, 0, KIB4);
    })
    .add('Buffer.copy 4 KiB (comparison only)', () => {
      const o = nextSlot() * CACHE_SLOT_BYTES + 8192;
      sink = src.copy(out4, 0, o, o + KIB4);
    })
    .add('read hit 128 KiB, two slots', () => {
      sink = cache.read(group, (nextSlot() % (SLOTS - 1)) * CACHE_SLOT_BYTES, out128, 0, KIB128);
    })
    .add('Buffer.copy 128 KiB (comparison only)', () => {
      const o = (nextSlot() % (SLOTS - 1)) * CACHE_SLOT_BYTES;
      sink = src.copy(out128, 0, o, o + KIB128);
    })
    .add('write 4 KiB into a resident slot (RAM side)', () => {
      sink = cache.write(group, nextSlot() * CACHE_SLOT_BYTES + 4096, data4, KIB4, () => sent);
    })
    .add('write-back: read hit 4 KiB', () => {
      sink = wb.read(wbGroup, nextSlot() * CACHE_SLOT_BYTES + 8192, out4, 0, KIB4);
    })
    .add('write-back: write 4 KiB, acknowledged (QD 1: one journal pwritev each)', {
      defer: true,
      fn: (d: Benchmark.Deferred) => {
        wbWrite().then(() => d.resolve(), (err: unknown) => { throw err; });
      },
    })
    .add(`write-back: ${QD} writes of 4 KiB at once, all acknowledged (per ${QD})`, {
      defer: true,
      fn: (d: Benchmark.Deferred) => {
        const ps: Promise<void>[] = [];
        for (let i = 0; i < QD; i++) ps.push(wbWrite());
        Promise.all(ps).then(() => d.resolve(), (err: unknown) => { throw err; });
      },
    })
    // The destage task's timer would keep the process alive.
    .on('complete', () => void closeCache());
}

/** Close the write-back cache (destage, flush, journal closed). */
export async function closeCache(): Promise<void> {
  await wb?.close();
}

export function consume(): unknown {
  return sink;
}
