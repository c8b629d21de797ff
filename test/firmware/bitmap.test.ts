import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Bitmap } from '../../firmware/bitmap';

describe('Bitmap', () => {
  it('set/clear/test over ranges that cross word boundaries', () => {
    const b = new Bitmap(200);
    assert.equal(b.set(30, 40), true);
    for (let i = 0; i < 200; i++) assert.equal(b.test(i), i >= 30 && i < 70, `bit ${i}`);
    assert.equal(b.set(30, 40), false, 'setting set bits changes nothing');
    assert.equal(b.clear(40, 5), true);
    assert.equal(b.test(39), true);
    assert.equal(b.test(40), false);
    assert.equal(b.test(44), false);
    assert.equal(b.test(45), true);
    assert.equal(b.count(), 35);
  });

  it('find-next-set and find-next-clear, bounded by end', () => {
    const b = new Bitmap(1000);
    b.set(100, 1);
    b.set(640, 200);
    assert.equal(b.findNextSet(0), 100);
    assert.equal(b.findNextSet(101), 640);
    assert.equal(b.findNextSet(101, 500), 500, 'none before end -> end');
    assert.equal(b.findNextClear(640), 840);
    assert.equal(b.findNextClear(640, 700), 700);
    assert.equal(b.findNextSet(841), 1000);
    assert.equal(b.findNextClear(0), 0);
  });

  it('a full last partial word: find-next-clear does not run past size', () => {
    const b = new Bitmap(70);
    b.set(0, 70);
    assert.equal(b.findNextClear(0), 70);
    assert.equal(b.allSet(0, 70), true);
    assert.equal(b.count(), 70);
  });

  it('allSet / noneSet', () => {
    const b = new Bitmap(128);
    b.set(32, 64);
    assert.equal(b.allSet(32, 64), true);
    assert.equal(b.allSet(31, 2), false);
    assert.equal(b.noneSet(0, 32), true);
    assert.equal(b.noneSet(0, 33), false);
    assert.equal(b.allSet(5, 0), true);
  });

  it('shares external storage byte-for-byte: bit i is byte i/8 bit i%8', () => {
    const bytes = Buffer.alloc(8);
    const b = new Bitmap(64, bytes);
    b.set(0);
    b.set(9);
    b.set(63);
    assert.deepEqual([...bytes], [0x01, 0x02, 0, 0, 0, 0, 0, 0x80]);
    bytes[2] = 0x10; // bit 20
    assert.equal(b.test(20), true);
  });

  it('out-of-range access is an assertion, not silent', () => {
    const b = new Bitmap(10);
    assert.throws(() => b.set(5, 6), /outside bitmap/);
    assert.throws(() => b.test(10), /outside bitmap/);
  });

  it('matches a boolean-array model under random operations', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 300 }).chain((size) =>
          fc.tuple(
            fc.constant(size),
            fc.array(
              fc.tuple(fc.constantFrom('set', 'clear'), fc.nat({ max: size - 1 }), fc.nat({ max: size })),
              { maxLength: 30 },
            ),
          ),
        ),
        ([size, ops]) => {
          const b = new Bitmap(size);
          const model = new Array<boolean>(size).fill(false);
          for (const [op, start, n] of ops) {
            const count = Math.min(n, size - start);
            const before = model.slice(start, start + count);
            const changed = op === 'set' ? b.set(start, count) : b.clear(start, count);
            for (let i = start; i < start + count; i++) model[i] = op === 'set';
            assert.equal(changed, before.some((v) => v !== (op === 'set')));
          }
          for (let from = 0; from < size; from += 7) {
            const nextSet = model.indexOf(true, from);
            const nextClear = model.indexOf(false, from);
            assert.equal(b.findNextSet(from), nextSet < 0 ? size : nextSet);
            assert.equal(b.findNextClear(from), nextClear < 0 ? size : nextClear);
          }
          assert.equal(b.count(), model.filter(Boolean).length);
          assert.equal(b.count(3 % size, size), model.slice(3 % size).filter(Boolean).length);
        },
      ),
      { numRuns: 300 },
    );
  });
});
