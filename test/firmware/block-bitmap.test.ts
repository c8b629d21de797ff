import assert from 'node:assert/strict';
import fc from 'fast-check';
import { BlockBitmap, type BlockExtent } from '../../firmware/block-bitmap';

const FC_SEED = 0xb10c;

/** The naive model: one boolean per unit, extents by walking every block. */
function modelExtents(units: boolean[], volumeBlocks: number, bpb: number, blocksMax = Infinity): BlockExtent[] {
  const out: BlockExtent[] = [];
  const unitsMax = Math.max(1, Math.floor(blocksMax / bpb));
  let u = 0;
  while (u < units.length) {
    if (!units[u]) {
      u++;
      continue;
    }
    let v = u;
    while (v < units.length && units[v] && v - u < unitsMax) v++;
    out.push({ lba: u * bpb, blocks: Math.min(v * bpb, volumeBlocks) - u * bpb });
    u = v;
  }
  return out;
}

describe('BlockBitmap', () => {
  it('geometry: a partial last unit covers only the blocks up to the volume end', () => {
    const b = new BlockBitmap(1000, 64); // 15 full units + one of 40 blocks
    assert.equal(b.bits.size, 16);
    assert.equal(BlockBitmap.bitsFor(1000, 64), 16);
    assert.equal(BlockBitmap.bitsFor(1024, 64), 16);
    assert.equal(b.bitOf(0), 0);
    assert.equal(b.bitOf(63), 0);
    assert.equal(b.bitOf(64), 1);
    assert.equal(b.bitOf(999), 15);
    assert.deepEqual(b.blocksOf(0), { lba: 0, blocks: 64 });
    assert.deepEqual(b.blocksOf(15), { lba: 960, blocks: 40 });
    assert.throws(() => b.bitOf(1000), /outside volume/);
    assert.throws(() => b.blocksOf(16), /outside bitmap/);
  });

  it('markBlocks sets every unit the range touches, even by one block', () => {
    const b = new BlockBitmap(1000, 64);
    assert.equal(b.markBlocks(63, 2), true); // last block of unit 0, first of unit 1
    assert.deepEqual([...b.extents()], [{ lba: 0, blocks: 128 }]);
    assert.equal(b.markBlocks(0, 128), false, 'already marked');
    assert.equal(b.markBlocks(999, 1), true);
    assert.deepEqual(b.nextExtent(128), { lba: 960, blocks: 40 }, 'clipped to the volume end');
    assert.equal(b.countBlocks(), 128 + 40);
    assert.equal(b.markBlocks(500, 0), false, 'zero blocks mark nothing');
    assert.throws(() => b.markBlocks(990, 11), /outside volume/);
  });

  it('clearBlocks clears only units wholly covered; reaching the volume end covers the partial unit', () => {
    const b = new BlockBitmap(1000, 64);
    b.bits.setAll();
    assert.equal(b.clearBlocks(10, 100), false, 'touches units 0 and 1 but covers neither');
    assert.equal(b.clearBlocks(64, 64), true);
    assert.equal(b.bits.test(1), false);
    assert.equal(b.clearBlocks(960, 39), false, 'one block short of the partial last unit');
    assert.equal(b.clearBlocks(960, 40), true);
    assert.equal(b.bits.test(15), false);
    assert.equal(b.countBlocks(), 1000 - 64 - 40);
  });

  it('anyMarked looks at every unit the range touches', () => {
    const b = new BlockBitmap(1000, 64);
    b.markBlocks(200, 1); // unit 3: blocks 192..255
    assert.equal(b.anyMarked(255, 1), true);
    assert.equal(b.anyMarked(256, 100), false);
    assert.equal(b.anyMarked(0, 192), false);
    assert.equal(b.anyMarked(191, 2), true);
    assert.equal(b.anyMarked(191, 0), false);
  });

  it('extents: bounded length, resumable from any cursor', () => {
    const b = new BlockBitmap(1000, 64);
    b.markBlocks(0, 1000);
    assert.deepEqual([...b.extents(0, 300)], [
      { lba: 0, blocks: 256 },
      { lba: 256, blocks: 256 },
      { lba: 512, blocks: 256 },
      { lba: 768, blocks: 232 },
    ]);
    assert.deepEqual(b.nextExtent(700, 10), { lba: 640, blocks: 64 }, 'a bound under one unit still yields one unit, from its start');
    assert.equal(b.nextExtent(1000), null);
    b.bits.reset();
    assert.equal(b.nextExtent(0), null);
    assert.equal(b.countBlocks(), 0);
  });

  it('one block per bit: extents are the runs of marked blocks', () => {
    const b = new BlockBitmap(100, 1);
    b.markBlocks(10, 5);
    b.markBlocks(15, 5);
    b.markBlocks(99, 1);
    assert.deepEqual([...b.extents()], [{ lba: 10, blocks: 10 }, { lba: 99, blocks: 1 }]);
    assert.equal(b.countBlocks(), 11);
  });

  it('an empty volume has no bits and no extents', () => {
    const b = new BlockBitmap(0, 8);
    assert.equal(b.bits.size, 0);
    assert.equal(b.countBlocks(), 0);
    assert.deepEqual([...b.extents()], []);
    assert.equal(b.markBlocks(0, 0), false);
  });

  it('or / copyFrom / andNot between block bitmaps need the same geometry', () => {
    const a = new BlockBitmap(1000, 64);
    const b = new BlockBitmap(1000, 64);
    b.markBlocks(100, 1);
    assert.equal(a.or(b), true);
    assert.equal(a.anyMarked(100, 1), true);
    a.markBlocks(900, 1);
    assert.equal(a.andNot(b), true);
    assert.deepEqual([...a.extents()], [{ lba: 896, blocks: 64 }]);
    assert.equal(a.copyFrom(b), true);
    assert.equal(a.bits.equals(b.bits), true);
    assert.throws(() => a.or(new BlockBitmap(1000, 32)), /geometry differs/);
    assert.throws(() => a.or(new BlockBitmap(1001, 64)), /geometry differs/, 'same bit count, other volume');
  });

  it('matches a per-unit model under random marks and clears', () => {
    fc.assert(
      fc.property(
        fc
          .tuple(fc.integer({ min: 1, max: 400 }), fc.integer({ min: 1, max: 40 }))
          .chain(([vol, bpb]) =>
            fc.tuple(
              fc.constant(vol),
              fc.constant(bpb),
              fc.array(fc.tuple(fc.boolean(), fc.nat({ max: vol - 1 }), fc.nat({ max: vol })), { maxLength: 20 }),
              fc.integer({ min: 1, max: 200 }),
            ),
          ),
        ([vol, bpb, ops, blocksMax]) => {
          const b = new BlockBitmap(vol, bpb);
          const units = new Array<boolean>(Math.ceil(vol / bpb)).fill(false);
          for (const [mark, lba, n] of ops) {
            const blocks = Math.min(n, vol - lba);
            if (mark) b.markBlocks(lba, blocks);
            else b.clearBlocks(lba, blocks);
            for (let u = 0; u < units.length; u++) {
              const uStart = u * bpb;
              const uEnd = Math.min(uStart + bpb, vol);
              if (mark && blocks > 0 && lba < uEnd && lba + blocks > uStart) units[u] = true;
              if (!mark && lba <= uStart && lba + blocks >= uEnd) units[u] = false;
            }
          }
          assert.deepEqual([...b.extents()], modelExtents(units, vol, bpb));
          assert.deepEqual([...b.extents(0, blocksMax)], modelExtents(units, vol, bpb, blocksMax));
          const blocks = units.reduce((s, v, u) => s + (v ? Math.min(bpb, vol - u * bpb) : 0), 0);
          assert.equal(b.countBlocks(), blocks);
          for (let lba = 0; lba < vol; lba += 13) assert.equal(b.anyMarked(lba, 1), units[Math.floor(lba / bpb)]);
        },
      ),
      { seed: FC_SEED, numRuns: 400 },
    );
  });
});
