import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { BitmapStore, type BitmapGeometry } from '../../firmware/bitmap-store';
import { tmpDirs } from '../helpers/common';

const GEO: BitmapGeometry = { volumeBlocks: 1000, blocksPerBit: 64 }; // 16 bits, one 32-bit word

/** Test-only builder of the documented 64-byte header (not the code under test). */
function header(f: { state: number; bpb: number; vol: number; bits: number; payloadBytes: number; payloadCrc: number }): Buffer {
  const h = Buffer.alloc(64);
  h.write('DKCBITMP', 0, 'latin1');
  h.writeUInt32LE(1, 8);
  h.writeUInt32LE(f.state, 12);
  h.writeUInt32LE(f.bpb, 16);
  h.writeBigUInt64LE(BigInt(f.vol), 24);
  h.writeBigUInt64LE(BigInt(f.bits), 32);
  h.writeUInt32LE(f.payloadBytes, 40);
  h.writeUInt32LE(f.payloadCrc, 44);
  h.writeUInt32LE(crc32c(h.subarray(0, 60)), 60);
  return h;
}

function cleanFile(payload: Buffer, geo = GEO, bits = 16): Buffer {
  const h = header({ state: 1, bpb: geo.blocksPerBit, vol: geo.volumeBlocks, bits, payloadBytes: payload.length, payloadCrc: crc32c(payload) });
  return Buffer.concat([h, payload]);
}

describe('BitmapStore', () => {
  const tmp = tmpDirs();

  it('create writes the documented format; a save round-trips through open', async () => {
    const store = new BitmapStore(path.join(tmp.make(), 'bitmaps'));
    const p = await store.create('pair-0', GEO, 'clear');
    assert.equal(p.trusted, true);
    assert.equal(p.reason, 'created');
    assert.equal(p.bitmap.bits.isEmpty(), true);
    assert.deepEqual(await fs.readFile(p.file), cleanFile(Buffer.alloc(4)));
    await p.markDirty();
    p.bitmap.markBlocks(0, 1); // unit 0
    p.bitmap.markBlocks(999, 1); // unit 15, the partial last one
    await p.save();
    assert.deepEqual(await fs.readFile(p.file), cleanFile(Buffer.from([0x01, 0x80, 0, 0])));
    await p.close();
    const q = await store.open('pair-0', GEO);
    assert.equal(q.trusted, true);
    assert.equal(q.reason, 'clean');
    assert.equal(q.dirty, false);
    assert.deepEqual([...q.bitmap.extents()], [{ lba: 0, blocks: 64 }, { lba: 960, blocks: 40 }]);
    await q.close();
    assert.deepEqual(await fs.readdir(store.dir), ['pair-0.bitmap'], 'no temp file left');
  });

  it('create with initial "set": a brand-new bitmap that is all ones and trusted (an initial copy)', async () => {
    const store = new BitmapStore(tmp.make());
    const p = await store.create('rc-main', GEO, 'set');
    assert.equal(p.trusted, true);
    assert.equal(p.bitmap.countBlocks(), 1000);
    await p.close();
    const q = await store.open('rc-main', GEO);
    assert.equal(q.trusted, true);
    assert.equal(q.bitmap.countBlocks(), 1000);
    await q.close();
  });

  it('create over an existing bitmap is refused (remove it first)', async () => {
    const store = new BitmapStore(tmp.make());
    await (await store.create('b', GEO, 'clear')).close();
    await assert.rejects(store.create('b', GEO, 'clear'), /already exists/);
    await store.remove('b');
    const p = await store.create('b', GEO, 'set');
    assert.equal(p.bitmap.countBlocks(), 1000);
    await p.close();
    await store.remove('b');
    await store.remove('b'); // removing what is gone is fine
    assert.deepEqual(await fs.readdir(store.dir), []);
  });

  it('open of a missing file (existed but lost) -> all ones, trusted false, reason missing', async () => {
    const store = new BitmapStore(tmp.make());
    const p = await store.open('gone', GEO);
    assert.equal(p.trusted, false);
    assert.equal(p.reason, 'missing');
    assert.equal(p.bitmap.countBlocks(), 1000);
    assert.equal(p.dirty, true);
    await p.markDirty(); // already as good as dirty: a missing file loads as all ones again
    await assert.rejects(fs.stat(p.file), /ENOENT/);
    p.bitmap.bits.clear(0, 8);
    await p.save();
    await p.close();
    const q = await store.open('gone', GEO);
    assert.equal(q.trusted, true);
    assert.equal(q.bitmap.countBlocks(), 1000 - 8 * 64);
    await q.close();
  });

  it('a dirty mark -> all ones, trusted false, reason dirty (the changes after it were never saved)', async () => {
    const store = new BitmapStore(tmp.make());
    const p = await store.create('d', GEO, 'clear');
    await p.markDirty();
    assert.equal(p.dirty, true);
    const file = await fs.readFile(p.file);
    assert.deepEqual(file, header({ state: 2, bpb: 64, vol: 1000, bits: 16, payloadBytes: 0, payloadCrc: 0 }));
    p.bitmap.markBlocks(100, 1);
    await p.close(); // a crash: no save
    const q = await store.open('d', GEO);
    assert.equal(q.trusted, false);
    assert.equal(q.reason, 'dirty');
    assert.equal(q.bitmap.countBlocks(), 1000);
    await q.close();
  });

  it('markDirty is written once until the next save; the order of calls is the order on disk', async () => {
    const store = new BitmapStore(tmp.make());
    const p = await store.create('o', GEO, 'clear');
    const first = p.markDirty();
    assert.equal(p.markDirty(), first, 'a second mark waits for the first, writes nothing');
    await first;
    p.bitmap.markBlocks(0, 1);
    const saved = p.save();
    assert.equal(p.dirty, false);
    p.bitmap.markBlocks(500, 1); // after the snapshot: not in this save
    const dirtyAgain = p.markDirty();
    assert.notEqual(dirtyAgain, first);
    await Promise.all([saved, dirtyAgain]);
    await p.close();
    const q = await store.open('o', GEO);
    assert.equal(q.reason, 'dirty', 'the mark queued after the save landed last');
    await q.close();
  });

  it('save writes the bitmap as it was at the call', async () => {
    const store = new BitmapStore(tmp.make());
    const p = await store.create('s', GEO, 'clear');
    await p.markDirty();
    p.bitmap.markBlocks(0, 1);
    const saved = p.save();
    p.bitmap.markBlocks(500, 1); // a protocol breach (no markDirty), only to show the snapshot
    await saved;
    await p.close();
    const q = await store.open('s', GEO);
    assert.deepEqual([...q.bitmap.extents()], [{ lba: 0, blocks: 64 }]);
    await q.close();
  });

  it('a torn or corrupt file -> all ones, trusted false, reason corrupt', async () => {
    const store = new BitmapStore(tmp.make());
    const good = cleanFile(Buffer.from([0x01, 0, 0, 0]));
    const file = path.join(store.dir, 'c.bitmap');
    const flip = (at: number) => {
      const b = Buffer.from(good);
      b[at] ^= 0x10;
      return b;
    };
    const bad: Array<[string, Buffer]> = [
      ['empty', Buffer.alloc(0)],
      ['torn header', good.subarray(0, 40)],
      ['header only', good.subarray(0, 64)],
      ['torn payload', good.subarray(0, 66)],
      ['trailing bytes', Buffer.concat([good, Buffer.alloc(4)])],
      ['flipped magic', flip(0)],
      ['flipped header field', flip(17)],
      ['flipped payload bit', flip(64)],
      ['zeros', Buffer.alloc(good.length)],
      ['bits set past the end', cleanFile(Buffer.from([0x01, 0, 0x01, 0]))],
      ['unknown state', Buffer.concat([header({ state: 3, bpb: 64, vol: 1000, bits: 16, payloadBytes: 4, payloadCrc: crc32c(good.subarray(64)) }), good.subarray(64)])],
    ];
    for (const [what, data] of bad) {
      await fs.writeFile(file, data);
      const p = await store.open('c', GEO);
      assert.equal(p.trusted, false, what);
      assert.equal(p.reason, 'corrupt', what);
      assert.equal(p.bitmap.countBlocks(), 1000, what);
      await p.close();
    }
    await fs.writeFile(file, good);
    const p = await store.open('c', GEO);
    assert.equal(p.reason, 'clean', 'the good file itself loads');
    assert.equal(p.bitmap.countBlocks(), 64);
    await p.close();
  });

  it('a header of another geometry -> all ones, trusted false, reason geometry', async () => {
    const store = new BitmapStore(tmp.make());
    await (await store.create('g', GEO, 'clear')).close();
    for (const geo of [{ volumeBlocks: 1001, blocksPerBit: 64 }, { volumeBlocks: 1000, blocksPerBit: 32 }]) {
      const p = await store.open('g', geo);
      assert.equal(p.trusted, false);
      assert.equal(p.reason, 'geometry');
      assert.equal(p.bitmap.countBlocks(), geo.volumeBlocks);
      await p.close();
    }
  });

  it('a temp file left by a crash mid-save is ignored', async () => {
    const store = new BitmapStore(tmp.make());
    const p = await store.create('t', GEO, 'clear');
    await p.close();
    await fs.writeFile(`${p.file}.tmp`, 'half a bitmap');
    const q = await store.open('t', GEO);
    assert.equal(q.reason, 'clean');
    await q.markDirty();
    await q.save();
    await q.close();
    assert.deepEqual(await fs.readdir(store.dir), ['t.bitmap']);
  });

  it('a failed dirty write is retried by the next markDirty', async () => {
    const store = new BitmapStore(tmp.make());
    const p = await store.create('f', GEO, 'clear');
    await fs.mkdir(`${p.file}.tmp`); // the temp file cannot be opened for writing
    await assert.rejects(p.markDirty(), /EISDIR/);
    await fs.rmdir(`${p.file}.tmp`);
    await p.markDirty();
    await p.close();
    const q = await store.open('f', GEO);
    assert.equal(q.reason, 'dirty');
    await q.close();
  });

  it('one handle per name; bad names are assertions', async () => {
    const store = new BitmapStore(tmp.make());
    const p = await store.create('h', GEO, 'clear');
    await assert.rejects(store.open('h', GEO), /already open/);
    await assert.rejects(store.remove('h'), /is open/);
    await p.close();
    await (await store.open('h', GEO)).close();
    await assert.rejects(store.open('../x', GEO), /bad bitmap name/);
    assert.throws(() => p.save(), /closed/);
  });

  it('16M bits (2 MiB) round-trip', async () => {
    const store = new BitmapStore(tmp.make());
    const geo = { volumeBlocks: 16 * 1024 * 1024 * 8 - 3, blocksPerBit: 8 };
    const p = await store.create('big', geo, 'clear');
    await p.markDirty();
    for (let lba = 0; lba < geo.volumeBlocks; lba += 4096 * 8 + 8) p.bitmap.markBlocks(lba, 1);
    p.bitmap.markBlocks(geo.volumeBlocks - 1, 1);
    await p.save();
    await p.close();
    const q = await store.open('big', geo);
    assert.equal(q.trusted, true);
    assert.equal(q.bitmap.bits.equals(p.bitmap.bits), true);
    await q.close();
  });
});
