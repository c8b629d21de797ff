import assert from 'node:assert/strict';
import { promises as fs, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { CACHE_SLOT_BYTES, CachedGroup, CacheMode, DESTAGE_TASK, DkcCache } from '../../../firmware/cache/cache';
import {
  decodeHeader, encodeHeader, encodeRecord, JOURNAL_FILE_NAMES, JOURNAL_HEADER_BYTES, recoverJournal, scanJournal,
} from '../../../firmware/cache/journal';
import type { BlockDevice } from '../../../firmware/drive';
import { VirtualClock } from '../../../firmware/kernel/clock';
import { Kernel } from '../../../firmware/kernel/kernel';
import { prng, silentLog, tmpDirs } from '../../helpers/common';

const S = CACHE_SLOT_BYTES;

/**
 * A RAID group in memory. Writes land at once unless held (then they wait for release()), and
 * are counted with their offsets and lengths; flushes are counted.
 */
class MemoryGroup implements BlockDevice {
  readonly bytes: Buffer;
  readonly writes: { offset: number; length: number }[] = [];
  reads = 0;
  flushes = 0;
  held = false;
  failWrites = false;
  private gate: (() => void)[] = [];

  constructor(readonly sizeBytes: number, readonly name = 'rg0') {
    this.bytes = Buffer.alloc(sizeBytes);
  }

  readInto(offset: number, buf: Buffer, bufOffset: number, length: number): Promise<void> {
    this.reads++;
    this.bytes.copy(buf, bufOffset, offset, offset + length);
    return Promise.resolve();
  }

  async write(offset: number, data: Buffer, dataOffset: number, length: number): Promise<void> {
    const copy = Buffer.from(data.subarray(dataOffset, dataOffset + length));
    if (this.held) await new Promise<void>((r) => this.gate.push(r));
    if (this.failWrites) throw new Error('injected write error');
    this.writes.push({ offset, length });
    copy.copy(this.bytes, offset);
  }

  flush(): Promise<void> {
    this.flushes++;
    return Promise.resolve();
  }

  release(): void {
    this.held = false;
    for (const r of this.gate.splice(0)) r();
  }
}

interface Opened {
  cache: DkcCache;
  g: CachedGroup;
  kernel: Kernel;
}

async function openWb(dir: string, dev: BlockDevice, o: { slots?: number; mode?: CacheMode; journalFileBytes?: number; idleMs?: number; kernel?: Kernel } = {}): Promise<Opened> {
  const kernel = o.kernel ?? new Kernel();
  const cache = await DkcCache.open({
    sizeBytes: (o.slots ?? 16) * S,
    mode: o.mode ?? 'write-back',
    groups: [dev],
    dir,
    kernel,
    log: silentLog,
    journalFileBytes: o.journalFileBytes,
    destageIdleMs: o.idleMs ?? 60_000,
  });
  return { cache, g: cache.attach(dev), kernel };
}

const filled = (n: number, v: number) => Buffer.alloc(n, v);
const noSend = () => Promise.reject(new Error('write-back must not send the write to the group'));

/** Leave an opened cache as kill -9 would (no destage, no close), but release its file handles. */
async function abandon(o: Opened): Promise<void> {
  await o.kernel.stop();
  // The journal's files stay as they are; closing the handles writes nothing.
  await (o.cache as unknown as { journal: { close(): Promise<void> } }).journal.close();
}

describe('cache journal format', () => {
  it('header: fields at their offsets, CRC32C over the first 60 bytes', () => {
    const b = encodeHeader({ generation: 3, startSeq: 0x1_0000_0005 });
    const want = Buffer.alloc(JOURNAL_HEADER_BYTES);
    want.write('DKCCJNL1', 0, 'latin1');
    want.writeUInt32LE(1, 8);
    want.writeUInt32LE(64, 12);
    want.writeUInt32LE(3, 16);
    want.writeUInt32LE(5, 24);
    want.writeUInt32LE(1, 28);
    want.writeUInt32LE(crc32c(want.subarray(0, 60)), 60);
    assert.ok(b.equals(want));
    assert.deepEqual(decodeHeader(b), { generation: 3, startSeq: 0x1_0000_0005 });
    b[20] ^= 1;
    assert.equal(decodeHeader(b), null, 'a damaged header is no header');
  });

  it('write record: fixed part, name, payload; CRC32C over everything after the CRC', () => {
    const data = filled(1024, 0xab);
    const b = encodeRecord({ type: 'write', seq: 9, group: 'rg7', offset: 3 * S + 512, data }, 2);
    const want = Buffer.alloc(40 + 3 + 1024);
    want.write('JREC', 0, 'latin1');
    want.writeUInt32LE(9, 8);
    want[16] = 1;
    want[17] = 3;
    want.writeUInt32LE(1024, 20);
    want.writeUInt32LE(3 * S + 512, 24);
    want.writeUInt32LE(2, 32);
    want.write('rg7', 40, 'latin1');
    data.copy(want, 43);
    want.writeUInt32LE(crc32c(want.subarray(8)), 4);
    assert.ok(b.equals(want));
  });

  it('a torn tail, a damaged record or a seq out of order ends the valid part', () => {
    const head = encodeHeader({ generation: 1, startSeq: 10 });
    const r = (seq: number, v: number) => encodeRecord({ type: 'write', seq, group: 'rg0', offset: v * 512, data: filled(512, v) }, 1);
    const cp = encodeRecord({ type: 'checkpoint', seq: 12, stableSeq: 11 }, 1);
    const whole = Buffer.concat([head, r(10, 1), r(11, 2), cp, r(13, 3)]);
    assert.deepEqual(scanJournal(whole).records.map((x) => x.seq), [10, 11, 12, 13]);
    assert.equal(scanJournal(whole.subarray(0, whole.length - 1)).records.length, 3, 'torn last record');
    const bad = Buffer.from(whole);
    bad[bad.length - 100] ^= 0xff;
    assert.equal(scanJournal(bad).records.length, 3, 'CRC');
    const gap = Buffer.concat([head, r(10, 1), r(12, 2)]);
    assert.equal(scanJournal(gap).records.length, 1, 'seq gap');
    const otherGen = Buffer.concat([head, encodeRecord({ type: 'write', seq: 10, group: 'rg0', offset: 0, data: filled(512, 1) }, 2)]);
    assert.equal(scanJournal(otherGen).records.length, 0, 'a record of another generation (stale bytes)');
  });
});

describe('DKC cache, write-back', () => {
  const tmp = tmpDirs();

  it('a write is acknowledged from RAM and the journal; reads see it; destage writes it once', async () => {
    const dev = new MemoryGroup(16 * S);
    const o = await openWb(tmp.make(), dev);
    const { cache, g } = o;
    await cache.write(g, 4096, filled(8192, 7), 8192, noSend);
    assert.equal(dev.writes.length, 0);
    assert.equal(cache.stats.dirtyBytes, 8192);
    const back = Buffer.alloc(16384);
    await cache.read(g, 0, back, 0, 16384);
    assert.ok(back.equals(Buffer.concat([filled(4096, 0), filled(8192, 7), filled(4096, 0)])));
    await cache.destageAll();
    assert.deepEqual(dev.writes, [{ offset: 4096, length: 8192 }]);
    assert.ok(dev.bytes.subarray(4096, 12288).equals(filled(8192, 7)));
    assert.equal(cache.stats.dirtyBytes, 0);
    assert.ok(dev.flushes >= 1);
    await cache.close();
  });

  it('destage coalesces adjacent dirty ranges, across slots too, into one group write', async () => {
    const dev = new MemoryGroup(16 * S);
    const o = await openWb(tmp.make(), dev);
    const { cache, g } = o;
    await Promise.all([
      cache.write(g, S - 4096, filled(4096, 1), 4096, noSend),
      cache.write(g, S, filled(4096, 2), 4096, noSend),
      cache.write(g, S + 4096, filled(512, 3), 512, noSend),
      cache.write(g, 5 * S, filled(512, 4), 512, noSend),
    ]);
    await cache.close();
    assert.deepEqual(dev.writes, [{ offset: S - 4096, length: 8704 }, { offset: 5 * S, length: 512 }]);
    assert.equal(cache.stats.destageWrites, 2);
  });

  it('a read of a partly written slot merges the disk bytes under the written ones', async () => {
    const dev = new MemoryGroup(4 * S);
    dev.bytes.fill(9);
    const { cache, g } = await openWb(tmp.make(), dev);
    await cache.write(g, S + 1536, filled(512, 1), 512, noSend);
    const back = Buffer.alloc(S);
    await cache.read(g, S, back, 0, S);
    const want = filled(S, 9);
    want.fill(1, 1536, 2048);
    assert.ok(back.equals(want));
    assert.equal(dev.reads, 1);
    await cache.read(g, S, back, 0, S);
    assert.equal(dev.reads, 1, 'the merged slot is whole in RAM now');
    await cache.close();
    assert.ok(dev.bytes.subarray(S, 2 * S).equals(want));
  });

  it('a write while the slot is being read from disk survives the fill', async () => {
    const dev = new MemoryGroup(4 * S);
    dev.bytes.fill(9);
    let release!: () => void;
    const slowRead = dev.readInto.bind(dev);
    dev.readInto = (offset, buf, bufOffset, length) =>
      new Promise<void>((r) => (release = r)).then(() => slowRead(offset, buf, bufOffset, length));
    const { cache, g } = await openWb(tmp.make(), dev);
    const early = Buffer.alloc(4096);
    const r = cache.read(g, 0, early, 0, 4096);
    await cache.write(g, 0, filled(1024, 5), 1024, noSend);
    release();
    await r;
    const back = Buffer.alloc(4096);
    await cache.read(g, 0, back, 0, 4096);
    assert.ok(back.equals(Buffer.concat([filled(1024, 5), filled(3072, 9)])));
    await cache.close();
  });

  it('a full cache of dirty slots makes host writes wait for destage, never fail', async () => {
    const dev = new MemoryGroup(16 * S);
    const { cache, g, kernel } = await openWb(tmp.make(), dev, { slots: 2 });
    dev.held = true;
    await cache.write(g, 0, filled(512, 1), 512, noSend);
    await cache.write(g, S, filled(512, 2), 512, noSend);
    let acked = false;
    const third = cache.write(g, 2 * S, filled(512, 3), 512, noSend).then(() => (acked = true));
    await new Promise((r) => setImmediate(r));
    assert.equal(acked, false);
    assert.equal(cache.stats.writeWaits, 1);
    assert.ok(kernel.running(DESTAGE_TASK));
    dev.release();
    await third;
    const back = Buffer.alloc(512);
    for (const [slot, v] of [[0, 1], [1, 2], [2, 3]]) {
      await cache.read(g, slot * S, back, 0, 512);
      assert.ok(back.equals(filled(512, v)), `slot ${slot}`);
    }
    await cache.close();
    assert.ok(dev.bytes.subarray(2 * S, 2 * S + 512).equals(filled(512, 3)));
  });

  it('destage runs by itself after the idle interval (virtual clock)', async () => {
    const dev = new MemoryGroup(16 * S);
    const kernel = new Kernel({ clock: new VirtualClock() });
    const { cache, g } = await openWb(tmp.make(), dev, { kernel, idleMs: 1000 });
    await cache.write(g, 0, filled(4096, 4), 4096, noSend);
    await kernel.runUntil(kernel.clock.sleep(500));
    assert.equal(dev.writes.length, 0, 'not idle long enough yet');
    await kernel.runUntil(kernel.clock.sleep(2500));
    assert.deepEqual(dev.writes, [{ offset: 0, length: 4096 }]);
    assert.equal(cache.stats.dirtyBytes, 0);
    const st = kernel.stats().find((t) => t.name === DESTAGE_TASK)!;
    assert.match(st.detail ?? '', /0 dirty bytes/);
    await cache.close();
  });

  it('restart without close (as after kill -9) replays every acknowledged write', async () => {
    const dir = tmp.make();
    const dev = new MemoryGroup(16 * S);
    const o = await openWb(dir, dev);
    await o.cache.write(o.g, 0, filled(4096, 1), 4096, noSend);
    await o.cache.write(o.g, 2048, filled(4096, 2), 4096, noSend, true);
    await o.cache.write(o.g, 7 * S, filled(S, 3), S, noSend);
    await abandon(o);
    assert.equal(dev.writes.length, 0);
    const again = await openWb(dir, dev);
    assert.equal(again.cache.stats.replayedRecords, 3);
    const want = Buffer.concat([filled(2048, 1), filled(4096, 2)]);
    assert.ok(dev.bytes.subarray(0, 6144).equals(want));
    assert.ok(dev.bytes.subarray(7 * S, 8 * S).equals(filled(S, 3)));
    await again.cache.close();
    const third = await openWb(dir, dev);
    assert.equal(third.cache.stats.replayedRecords, 0, 'a clean close leaves nothing to replay');
    await third.cache.close();
  });

  it('a torn record at the end of the journal is ignored; those before it are replayed', async () => {
    const dir = tmp.make();
    const dev = new MemoryGroup(16 * S);
    const o = await openWb(dir, dev);
    await o.cache.write(o.g, 0, filled(4096, 1), 4096, noSend);
    await o.cache.write(o.g, S, filled(4096, 2), 4096, noSend);
    await abandon(o);
    const file = await activeJournal(dir);
    const size = (await fs.stat(file)).size;
    await fs.truncate(file, size - 100);
    const again = await openWb(dir, dev);
    assert.equal(again.cache.stats.replayedRecords, 1);
    assert.ok(dev.bytes.subarray(0, 4096).equals(filled(4096, 1)));
    assert.ok(dev.bytes.subarray(S, S + 4096).equals(filled(4096, 0)), 'the torn write (never acknowledged) is not applied');
    await again.cache.close();
  });

  it('the journal stays within its bound: the files alternate as destage frees them', async () => {
    const dir = tmp.make();
    const dev = new MemoryGroup(64 * S);
    const o = await openWb(dir, dev, { slots: 32, journalFileBytes: 1024 * 1024 });
    const rnd = prng(7);
    const model = Buffer.alloc(64 * S);
    let maxJournal = 0;
    for (let n = 0; n < 600; n++) {
      const len = (1 + Math.floor(rnd() * 16)) * 512;
      const off = Math.floor(rnd() * (64 * S - len) / 512) * 512;
      const data = filled(len, 1 + (n % 250));
      data.copy(model, off);
      await o.cache.write(o.g, off, data, len, noSend);
      maxJournal = Math.max(maxJournal, o.cache.stats.journalBytes);
    }
    assert.ok(maxJournal <= 2 * 1024 * 1024 + 64 * 1024, `journal reached ${maxJournal} bytes`);
    assert.ok(o.cache.journalStats!.rotations >= 2, `${o.cache.journalStats!.rotations} rotations`);
    await abandon(o);
    const again = await openWb(dir, dev);
    assert.ok(dev.bytes.equals(model), 'the groups hold every acknowledged write after replay');
    await again.cache.close();
  });

  it('write-through after write-back: the journal is replayed, then removed', async () => {
    const dir = tmp.make();
    const dev = new MemoryGroup(16 * S);
    const o = await openWb(dir, dev);
    await o.cache.write(o.g, 0, filled(4096, 6), 4096, noSend);
    await abandon(o);
    const wt = await openWb(dir, dev, { mode: 'write-through' });
    assert.ok(dev.bytes.subarray(0, 4096).equals(filled(4096, 6)));
    assert.deepEqual((await fs.readdir(dir)).filter((f) => f.startsWith('cache-journal')), []);
    await wt.cache.close();
  });

  it('FUA and SYNCHRONIZE CACHE fdatasync the journal; plain writes do not', async () => {
    const dev = new MemoryGroup(16 * S);
    const { cache, g } = await openWb(tmp.make(), dev);
    await cache.write(g, 0, filled(4096, 1), 4096, noSend);
    assert.equal(cache.journalStats!.datasyncs, 0);
    await cache.write(g, 4096, filled(4096, 2), 4096, noSend, true);
    assert.equal(cache.journalStats!.datasyncs, 1);
    await cache.sync();
    assert.equal(cache.journalStats!.datasyncs, 2);
    assert.equal(dev.flushes, 0, 'nothing needed from the groups');
    await cache.close();
  });

  it('a failed destage write keeps the data dirty and readable; it is written later', async () => {
    const dir = tmp.make();
    const dev = new MemoryGroup(16 * S);
    const o = await openWb(dir, dev);
    await o.cache.write(o.g, S, filled(4096, 8), 4096, noSend);
    dev.failWrites = true;
    await assert.rejects(o.cache.destageAll(), /could not be destaged/);
    assert.ok(o.cache.stats.destageErrors > 0);
    assert.equal(o.cache.stats.dirtyBytes, 4096);
    const back = Buffer.alloc(4096);
    await o.cache.read(o.g, S, back, 0, 4096);
    assert.ok(back.equals(filled(4096, 8)));
    dev.failWrites = false;
    await o.cache.close();
    assert.ok(dev.bytes.subarray(S, S + 4096).equals(filled(4096, 8)));
  });

  it('a journal naming a RAID group that is not there is refused, not dropped', async () => {
    const dir = tmp.make();
    const o = await openWb(dir, new MemoryGroup(16 * S, 'rg-old'));
    await o.cache.write(o.g, 0, filled(512, 1), 512, noSend);
    await abandon(o);
    await assert.rejects(openWb(dir, new MemoryGroup(16 * S, 'rg-new')), /RAID group rg-old/);
    assert.equal((await recoverJournal(dir)).writes.length, 1, 'the journal is untouched');
  });
});

describe('DKC cache, write-back, against a model (random interleavings and restarts)', () => {
  const tmp = tmpDirs();
  const seed = Number(process.env.SEED ?? 20261122);

  it('reads return the last acknowledged write; after a restart the groups hold them all', async function () {
    this.timeout(60_000);
    console.log(`      seed ${seed} (replay with SEED=${seed})`);
    const rnd = prng(seed);
    const pick = (n: number) => Math.floor(rnd() * n);
    const size = 12 * S;
    let waits = 0;
    let rotations = 0;
    for (let round = 0; round < 12; round++) {
      const dir = tmp.make();
      const dev = new MemoryGroup(size);
      const model = Buffer.alloc(size);
      let o = await openWb(dir, dev, { slots: 4, journalFileBytes: 1024 * 1024, idleMs: 1 });
      for (let step = 0; step < 150; step++) {
        const len = (1 + pick(3)) * (pick(2) ? 512 : S / 2);
        const off = Math.min(pick(size / 512) * 512, size - len);
        const r = rnd();
        if (r < 0.45) {
          const data = filled(len, 1 + pick(250));
          data.copy(model, off);
          await o.cache.write(o.g, off, data, len, noSend, rnd() < 0.1);
        } else if (r < 0.9) {
          const back = Buffer.alloc(len);
          await o.cache.read(o.g, off, back, 0, len);
          assert.ok(back.equals(model.subarray(off, off + len)), `round ${round} step ${step}: read at ${off}+${len}`);
        } else if (r < 0.95) {
          waits += o.cache.stats.writeWaits;
          rotations += o.cache.journalStats!.rotations;
          await abandon(o);
          o = await openWb(dir, dev, { slots: 4, journalFileBytes: 1024 * 1024, idleMs: 1 });
          assert.ok(dev.bytes.equals(model), `round ${round} step ${step}: after restart`);
        } else {
          await o.cache.destageAll();
          assert.ok(dev.bytes.equals(model), `round ${round} step ${step}: after destage`);
        }
      }
      waits += o.cache.stats.writeWaits;
      rotations += o.cache.journalStats!.rotations;
      await o.cache.close();
      assert.ok(dev.bytes.equals(model), `round ${round}: after close`);
    }
    assert.ok(waits > 0 && rotations > 0, `back-pressure ${waits} times, ${rotations} journal rotations`);
  });
});

async function activeJournal(dir: string): Promise<string> {
  let best = '';
  let gen = -1;
  for (const n of JOURNAL_FILE_NAMES) {
    const h = decodeHeader(readFileSync(path.join(dir, n)).subarray(0, JOURNAL_HEADER_BYTES));
    if (h !== null && h.generation > gen) {
      gen = h.generation;
      best = path.join(dir, n);
    }
  }
  return best;
}
