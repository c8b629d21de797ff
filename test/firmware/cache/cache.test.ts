import assert from 'node:assert/strict';
import { CACHE_SLOT_BYTES, CachedGroup, DkcCache } from '../../../firmware/cache/cache';
import type { BlockDevice, RaidGroupDevice } from '../../../firmware/drive';
import { DriveInterface } from '../../../firmware/drive';
import { MediumError } from '../../../firmware/volume';
import { openDkc } from '../../../emulator/rack/build';
import { prng, silentLog, tmpDirs } from '../../helpers/common';
import { dkcConfig } from '../ldev.test';

const S = CACHE_SLOT_BYTES;

interface PendingIo {
  kind: 'read' | 'write';
  offset: number;
  length: number;
  /** Do the I/O against the backing bytes now and resolve (or fail it). */
  complete(err?: Error): void;
}

/**
 * A RAID group in memory whose reads and writes wait until the test completes them, in any
 * order: a read copies the backing bytes at the moment it is completed, like a pread that runs
 * then, and a write lands at the moment it is completed.
 */
class ControlledGroup implements BlockDevice {
  readonly name = 'rg0';
  readonly bytes: Buffer;
  readonly pending: PendingIo[] = [];
  /** Complete every I/O at once (no test control). */
  auto = false;

  constructor(readonly sizeBytes: number) {
    this.bytes = Buffer.alloc(sizeBytes);
  }

  readInto(offset: number, buf: Buffer, bufOffset: number, length: number): Promise<void> {
    return this.queue('read', offset, length, () => this.bytes.copy(buf, bufOffset, offset, offset + length));
  }

  write(offset: number, data: Buffer, dataOffset: number, length: number): Promise<void> {
    const copy = Buffer.from(data.subarray(dataOffset, dataOffset + length));
    return this.queue('write', offset, length, () => copy.copy(this.bytes, offset));
  }

  flush(): Promise<void> {
    return Promise.resolve();
  }



  take(kind: 'read' | 'write'): PendingIo {
    const i = this.pending.findIndex((p) => p.kind === kind);
    assert.ok(i >= 0, `no ${kind} pending`);
    return this.pending.splice(i, 1)[0];
  }

  private queue(kind: 'read' | 'write', offset: number, length: number, io: () => void): Promise<void> {
    return new Promise((resolve, reject) => {
      const p: PendingIo = {
        kind, offset, length,
        complete: (err) => {
          if (err) return reject(err);
          io();
          resolve();
        },
      };
      if (this.auto) p.complete();
      else this.pending.push(p);
    });
  }
}

function setup(slots: number, groupBytes = 16 * S): { cache: DkcCache; dev: ControlledGroup; g: CachedGroup } {
  const cache = new DkcCache(slots * S);
  const dev = new ControlledGroup(groupBytes);
  return { cache, dev, g: cache.attach(dev) };
}

const tick = () => new Promise<void>((r) => setImmediate(r));

function filled(n: number, v: number): Buffer {
  return Buffer.alloc(n, v);
}

describe('DKC cache', () => {
  it('a miss reads the whole slot once; the next read of it is a hit with no disk I/O', async () => {
    const { cache, dev, g } = setup(4);
    dev.bytes.fill(7, S, 2 * S);
    const a = Buffer.alloc(4096);
    const p = cache.read(g, S + 8192, a, 0, 4096);
    const io = dev.take('read');
    assert.deepEqual([io.offset, io.length], [S, S]);
    io.complete();
    await p;
    assert.ok(a.equals(filled(4096, 7)));
    const b = Buffer.alloc(512);
    await cache.read(g, S + 512, b, 0, 512);
    assert.equal(dev.pending.length, 0);
    assert.ok(b.equals(filled(512, 7)));
    assert.deepEqual([cache.stats.hits, cache.stats.misses, cache.stats.fills], [1, 1, 1]);
  });

  it('single flight: readers of a slot being filled wait for that one read', async () => {
    const { cache, dev, g } = setup(4);
    dev.bytes.fill(3, 0, S);
    const bufs = [Buffer.alloc(512), Buffer.alloc(4096), Buffer.alloc(S)];
    const ps = [cache.read(g, 0, bufs[0], 0, 512), cache.read(g, 4096, bufs[1], 0, 4096), cache.read(g, 0, bufs[2], 0, S)];
    assert.equal(dev.pending.length, 1);
    dev.take('read').complete();
    await Promise.all(ps);
    for (const b of bufs) assert.ok(b.equals(filled(b.length, 3)));
    assert.equal(cache.stats.fills, 1);
  });

  it('LRU: never more slots than the bound; the least recently used goes first', async () => {
    const { cache, dev, g } = setup(3);
    dev.auto = true;
    const one = Buffer.alloc(512);
    for (const slot of [0, 1, 2]) await cache.read(g, slot * S, one, 0, 512);
    await cache.read(g, 0, one, 0, 512); // slot 0 is now the most recently used
    await cache.read(g, 3 * S, one, 0, 512); // evicts slot 1
    assert.deepEqual([0, 1, 2, 3].map((s) => cache.isResident(g, s)), [true, false, true, true]);
    for (let s = 4; s < 16; s++) await cache.read(g, s * S, one, 0, 512);
    assert.equal(cache.residentSlots, 3);
    assert.equal(cache.allocatedBytes, 3 * S);
    assert.equal(cache.stats.evictions, 13);
  });

  it('a write updates a resident slot and is acknowledged only when the disk has it', async () => {
    const { cache, dev, g } = setup(4);
    dev.auto = true;
    await cache.read(g, 0, Buffer.alloc(512), 0, 512);
    dev.auto = false;
    let acked = false;
    const w = cache.write(g, 1024, filled(1024, 9), 1024, () => dev.write(1024, filled(1024, 9), 0, 1024)).then(() => (acked = true));
    await tick();
    assert.equal(acked, false);
    dev.take('write').complete();
    await w;
    const back = Buffer.alloc(3072);
    await cache.read(g, 0, back, 0, 3072);
    assert.ok(back.equals(Buffer.concat([filled(1024, 0), filled(1024, 9), filled(1024, 0)])));
    assert.ok(dev.bytes.subarray(1024, 2048).equals(filled(1024, 9)));
  });

  it('a fill that started before a write is not inserted, even if its read ran first', async () => {
    const { cache, dev, g } = setup(4);
    dev.bytes.fill(1, 0, S);
    const early = Buffer.alloc(4096);
    const r = cache.read(g, 0, early, 0, 4096);
    const w = cache.write(g, 0, filled(4096, 2), 4096, () => dev.write(0, filled(4096, 2), 0, 4096));
    dev.take('read').complete(); // the fill read the old bytes
    await r;
    assert.ok(early.equals(filled(4096, 1)), 'a reader concurrent with the write may see the old data');
    assert.equal(cache.isResident(g, 0), false);
    dev.take('write').complete();
    await w;
    const late = Buffer.alloc(4096);
    const r2 = cache.read(g, 0, late, 0, 4096);
    dev.take('read').complete();
    await r2;
    assert.ok(late.equals(filled(4096, 2)));
    assert.equal(cache.stats.staleFills, 1);
  });

  it('a read while a write to the slot is in flight goes to disk and inserts nothing', async () => {
    const { cache, dev, g } = setup(4);
    const w = cache.write(g, 0, filled(512, 5), 512, () => dev.write(0, filled(512, 5), 0, 512));
    const buf = Buffer.alloc(512);
    const r = cache.read(g, 0, buf, 0, 512);
    dev.take('read').complete(); // runs before the write lands: old data
    await r;
    assert.equal(cache.isResident(g, 0), false);
    dev.take('write').complete();
    await w;
    const r2 = cache.read(g, 0, buf, 0, 512);
    dev.take('read').complete();
    await r2;
    assert.ok(buf.equals(filled(512, 5)));
    assert.equal(cache.isResident(g, 0), true);
  });

  it('overlapping writes end in RAM as they are submitted (the drive keeps that order on disk)', async () => {
    const { cache, dev, g } = setup(4);
    dev.auto = true;
    await cache.read(g, 0, Buffer.alloc(512), 0, 512);
    const ws = [1, 2, 3].map((v) => cache.write(g, 0, filled(2048, v), v * 512, () => dev.write(0, filled(2048, v), 0, v * 512)));
    await Promise.all(ws);
    const back = Buffer.alloc(2048);
    await cache.read(g, 0, back, 0, 2048);
    assert.ok(back.equals(Buffer.concat([filled(1536, 3), filled(512, 0)])));
    assert.ok(dev.bytes.subarray(0, 2048).equals(back));
  });

  it('a write covering a slot whole makes it resident without a disk read; a failed write drops it', async () => {
    const { cache, dev, g } = setup(4);
    dev.auto = true;
    await cache.write(g, S, filled(S, 4), S, () => dev.write(S, filled(S, 4), 0, S));
    assert.equal(cache.isResident(g, 1), true);
    assert.equal(cache.stats.writeAllocations, 1);
    const failing = cache.write(g, S, filled(512, 6), 512, () => Promise.reject(new Error('injected write error')));
    await assert.rejects(failing, /injected/);
    assert.equal(cache.isResident(g, 1), false);
    const back = Buffer.alloc(512);
    await cache.read(g, S, back, 0, 512);
    assert.ok(back.equals(filled(512, 4)), 'after a failed write the disk is the truth');
  });

  it('a read error fails every waiter and inserts nothing', async () => {
    const { cache, dev, g } = setup(4);
    const ps = [cache.read(g, 0, Buffer.alloc(512), 0, 512), cache.read(g, 512, Buffer.alloc(512), 0, 512)];
    dev.take('read').complete(new Error('injected read error'));
    for (const p of ps) await assert.rejects(p, /injected/);
    assert.equal(cache.isResident(g, 0), false);
  });

  it('a long read of missing slots is one disk read, and never evicts', async () => {
    const { cache, dev, g } = setup(2);
    dev.auto = true;
    dev.bytes.fill(8, 0, 4 * S);
    const buf = Buffer.alloc(4 * S);
    await cache.read(g, 0, buf, 0, 4 * S);
    assert.ok(buf.equals(filled(4 * S, 8)));
    assert.equal(cache.residentSlots, 2, 'two free buffers taken, then plain disk reads');
    const before = cache.stats.evictions;
    await cache.read(g, 4 * S, Buffer.alloc(2 * S), 0, 2 * S);
    assert.equal(cache.stats.evictions, before);
    assert.deepEqual([0, 1].map((s) => cache.isResident(g, s)), [true, true]);
  });

  it('the last slot stops at the end of the group', async () => {
    const { cache, dev, g } = setup(4, S + 8192);
    dev.bytes.fill(6, S);
    const buf = Buffer.alloc(4096);
    const r = cache.read(g, S + 4096, buf, 0, 4096);
    const io = dev.take('read');
    assert.deepEqual([io.offset, io.length], [S, 8192]);
    io.complete();
    await r;
    assert.ok(buf.equals(filled(4096, 6)));
  });

  it('a long read that ends at the end of the group stops there', async () => {
    const { cache, dev, g } = setup(4, 2 * S + 8192);
    dev.auto = true;
    dev.bytes.fill(5);
    const buf = Buffer.alloc(S + 8192);
    await cache.read(g, S, buf, 0, S + 8192);
    assert.ok(buf.equals(filled(S + 8192, 5)));
    assert.deepEqual([1, 2].map((s) => cache.isResident(g, s)), [true, true]);
  });

  it('drive interface: errors beneath become MEDIUM ERROR naming the LBA', async () => {
    const dev = new ControlledGroup(4 * S);
    // The drive interface takes RAID groups; the cache path uses only their BlockDevice part.
    const rg = dev as unknown as RaidGroupDevice;
    const drive = new DriveInterface([rg], new DkcCache(4 * S));
    const r = drive.readInto(rg, 0, Buffer.alloc(512), 0, 512, 77);
    dev.take('read').complete(new Error('injected'));
    await assert.rejects(r, (e: unknown) => e instanceof MediumError && e.lba === 77);
  });
});

describe('DKC cache under a thin LDEV', () => {
  const tmp = tmpDirs();

  it('unmap, then re-map part of the range: old data is never returned', async () => {
    const dkc = await openDkc(dkcConfig(), tmp.make(), silentLog);
    try {
      const v = dkc.ldevByName('small');
      const bs = v.blockSize;
      const slotBlocks = S / bs;
      const old = filled(2 * S, 0xaa);
      await v.write(0, old, { fua: false });
      assert.ok((await v.read(0, 2 * slotBlocks)).equals(old)); // in the cache now
      await v.unmap(0, 2 * slotBlocks);
      assert.ok((await v.read(0, 2 * slotBlocks)).equals(Buffer.alloc(2 * S)));
      await v.write(8, filled(bs, 0x55), { fua: false });
      const back = await v.read(0, 2 * slotBlocks);
      const want = Buffer.alloc(2 * S);
      want.fill(0x55, 8 * bs, 9 * bs);
      assert.ok(back.equals(want), 're-mapped block has the new data, the rest reads zeros');
      assert.ok((await v.read(8, 1)).equals(filled(bs, 0x55)));
      assert.ok((await v.read(9, 1)).equals(Buffer.alloc(bs)));
    } finally {
      await dkc.close();
    }
  });

  it('with mode off the DKC has no cache and reads still work', async () => {
    const cfg = dkcConfig();
    const dkc = await openDkc({ ...cfg, cache: { sizeBytes: cfg.cache.sizeBytes, mode: 'off' } }, tmp.make(), silentLog);
    try {
      assert.equal(dkc.drive.cache, null);
      const v = dkc.ldevByName('small');
      await v.write(0, filled(4096, 1), { fua: true });
      assert.ok((await v.read(0, 8)).equals(filled(4096, 1)));
    } finally {
      await dkc.close();
    }
  });
});

describe('DKC cache against a model (random interleavings)', () => {
  const seed = Number(process.env.SEED ?? 20261122);

  it('after any interleaving of reads, writes, failures and completions, RAM equals the disk', async () => {
    console.log(`      seed ${seed} (replay with SEED=${seed})`);
    const rnd = prng(seed);
    const pick = (n: number) => Math.floor(rnd() * n);
    for (let round = 0; round < 60; round++) {
      const { cache, dev, g } = setup(3, 8 * S);
      /** Writes not yet landed, in submission order (the drive lands overlapping ones in order). */
      const writes: PendingIo[] = [];
      const ops: Promise<unknown>[] = [];
      for (let step = 0; step < 80; step++) {
        const r = rnd();
        if (r < 0.35) {
          const len = (1 + pick(3)) * (pick(2) ? 512 : S);
          const off = Math.min(pick(8 * S / 512) * 512, 8 * S - len);
          ops.push(cache.read(g, off, Buffer.alloc(len), 0, len).catch(() => undefined));
        } else if (r < 0.65) {
          const len = (1 + pick(3)) * (pick(2) ? 512 : S);
          const off = Math.min(pick(8 * S / 512) * 512, 8 * S - len);
          const data = filled(len, 1 + pick(250));
          ops.push(cache.write(g, off, data, len, () => dev.write(off, data, 0, len)).catch(() => undefined));
          writes.push(dev.pending[dev.pending.length - 1]);
        } else if (dev.pending.length > 0) {
          // Complete one I/O: any read, or a write that no earlier pending write overlaps.
          const ready = dev.pending.filter((p) => p.kind === 'read' || !writes.some((w) => w !== p && writes.indexOf(w) < writes.indexOf(p) && w.offset < p.offset + p.length && p.offset < w.offset + w.length));
          const io = ready[pick(ready.length)];
          dev.pending.splice(dev.pending.indexOf(io), 1);
          if (io.kind === 'write') writes.splice(writes.indexOf(io), 1);
          io.complete(io.kind === 'write' && rnd() < 0.05 ? new Error('injected write error') : undefined);
          await tick();
        }
      }
      dev.auto = true;
      while (dev.pending.length > 0) {
        const io = dev.pending.shift()!; // submission order: overlapping writes land in order
        io.complete();
      }
      await Promise.all(ops);
      for (let slot = 0; slot < 8; slot++) {
        const back = Buffer.alloc(S);
        await cache.read(g, slot * S, back, 0, S);
        assert.ok(back.equals(dev.bytes.subarray(slot * S, (slot + 1) * S)), `round ${round}: slot ${slot} differs from the disk`);
      }
    }
  });
});
