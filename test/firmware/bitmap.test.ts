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

/** A random bitmap and its boolean-array model. */
function randomPair(size: number, bits: boolean[]): { b: Bitmap; model: boolean[] } {
  const b = new Bitmap(size);
  bits.forEach((v, i) => v && b.set(i));
  return { b, model: bits.slice() };
}

function modelOf(b: Bitmap): boolean[] {
  return Array.from({ length: b.size }, (_x, i) => b.test(i));
}

const FC_SEED = 0x0b17; // fixed: a failure replays as is

describe('Bitmap: operations between bitmaps', () => {
  it('copyFrom / or / and / andNot over a range match a boolean-array model', () => {
    const ops = {
      copyFrom: (_a: boolean, s: boolean) => s,
      or: (a: boolean, s: boolean) => a || s,
      and: (a: boolean, s: boolean) => a && s,
      andNot: (a: boolean, s: boolean) => a && !s,
    } as const;
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 300 }).chain((size) =>
          fc.tuple(
            fc.constant(size),
            fc.array(fc.boolean(), { minLength: size, maxLength: size }),
            fc.array(fc.boolean(), { minLength: size, maxLength: size }),
            fc.constantFrom(...(Object.keys(ops) as Array<keyof typeof ops>)),
            fc.option(fc.tuple(fc.nat({ max: size }), fc.nat({ max: size }))),
          ),
        ),
        ([size, dst, src, op, range]) => {
          const { b, model } = randomPair(size, dst);
          const other = randomPair(size, src).b;
          const start = range ? Math.min(range[0], size) : 0;
          const count = range ? Math.min(range[1], size - start) : size;
          const changed = range ? b[op](other, start, count) : b[op](other);
          let modelChanged = false;
          for (let i = start; i < start + count; i++) {
            const v = ops[op](model[i], src[i]);
            modelChanged ||= v !== model[i];
            model[i] = v;
          }
          assert.deepEqual(modelOf(b), model);
          assert.equal(changed, modelChanged, 'changed reports whether any bit changed');
          assert.deepEqual(modelOf(other), src, 'the source is untouched');
          assert.equal(b.count(), model.filter(Boolean).length);
        },
      ),
      { seed: FC_SEED, numRuns: 500 },
    );
  });

  it('setAll / isEmpty / equals / clone match a boolean-array model', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 200 }).chain((size) =>
          fc.tuple(fc.constant(size), fc.array(fc.boolean(), { minLength: size, maxLength: size })),
        ),
        ([size, bits]) => {
          const { b, model } = randomPair(size, bits);
          assert.equal(b.isEmpty(), !model.includes(true));
          const c = b.clone();
          assert.equal(c.equals(b), true);
          for (let i = 0; i < size; i += 17) {
            if (model[i]) c.clear(i);
            else c.set(i);
            assert.equal(c.equals(b), false, `bit ${i} differs`);
            if (model[i]) c.set(i);
            else c.clear(i);
            assert.equal(c.equals(b), true);
          }
          b.setAll();
          assert.equal(b.count(), size);
          assert.equal(b.findNextClear(0), size);
          assert.equal(b.isEmpty(), size === 0);
          assert.deepEqual(modelOf(c), model, 'the clone has its own storage');
        },
      ),
      { seed: FC_SEED, numRuns: 300 },
    );
  });

  it('setAll keeps the bits past size zero (the on-disk bytes of a partial last word)', () => {
    const b = new Bitmap(70);
    b.setAll();
    assert.deepEqual([...b.bytes()], [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f, 0, 0, 0]);
    const o = new Bitmap(70);
    o.set(0, 70);
    assert.equal(b.equals(o), true);
  });

  it('bitmaps of different sizes: an assertion for or/copy, simply unequal for equals', () => {
    const a = new Bitmap(64);
    const b = new Bitmap(65);
    assert.throws(() => a.or(b), /sizes differ/);
    assert.throws(() => a.copyFrom(b), /sizes differ/);
    assert.throws(() => a.andNot(b, 0, 10), /sizes differ/);
    assert.equal(a.equals(b), false);
  });

  it('a range outside the bitmap is an assertion', () => {
    const a = new Bitmap(64);
    assert.throws(() => a.or(new Bitmap(64), 60, 5), /outside bitmap/);
  });

  it('16M bits: range set, count, OR, andNot and copy stay consistent', () => {
    const size = 16 * 1024 * 1024;
    const a = new Bitmap(size);
    const b = new Bitmap(size);
    assert.equal(a.set(3, 1_000_000), true);
    assert.equal(a.set(3, 1_000_000), false);
    for (let i = 5; i < size; i += 4096) b.set(i);
    assert.equal(b.count(), Math.ceil((size - 5) / 4096));
    assert.equal(a.or(b), true);
    assert.equal(a.count(), 1_000_000 + b.count(5 + 4096 * 245, size));
    assert.equal(a.andNot(b), true);
    assert.equal(a.count(), 1_000_000 - b.count(0, 1_000_003));
    const c = new Bitmap(size);
    assert.equal(c.copyFrom(a), true);
    assert.equal(c.equals(a), true);
    assert.equal(c.copyFrom(a), false);
    c.setAll();
    assert.equal(c.count(), size);
    assert.equal(c.andNot(c), true);
    assert.equal(c.isEmpty(), true);
  });
});
