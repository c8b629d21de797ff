import assert from 'node:assert/strict';
import { computePQ, gfInv, gfMul, gfPow2, mulXorInto, recover, xorBlocks, xorInto } from '../../../firmware/raid/parity';
import { Prng } from '../../../firmware/kernel/prng';

// Naive references, written from the definitions (not from the code under test).
function slowMul(a: number, b: number): number {
  let r = 0;
  for (let i = 0; i < 8; i++) {
    if (b & (1 << i)) r ^= a;
    a <<= 1;
    if (a & 0x100) a ^= 0x11d;
  }
  return r;
}

function slowPow2(i: number): number {
  let r = 1;
  for (let k = 0; k < i; k++) r = slowMul(r, 2);
  return r;
}

function naivePQ(data: Buffer[]): { p: Buffer; q: Buffer } {
  const len = data[0].length;
  const p = Buffer.alloc(len);
  const q = Buffer.alloc(len);
  data.forEach((d, i) => {
    const g = slowPow2(i);
    for (let j = 0; j < len; j++) {
      p[j] ^= d[j];
      q[j] ^= slowMul(g, d[j]);
    }
  });
  return { p, q };
}

function randomBuf(r: Prng, len: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = r.int(256);
  return b;
}

describe('parity: GF(2^8) with g = 2 and polynomial 0x11d', () => {
  it('multiplication agrees with shift-and-add for every pair', () => {
    for (let a = 0; a < 256; a++) for (let b = 0; b < 256; b++) assert.equal(gfMul(a, b), slowMul(a, b), `${a}*${b}`);
  });

  it('every non-zero element has an inverse; g^-i is the inverse of g^i', () => {
    for (let a = 1; a < 256; a++) assert.equal(gfMul(a, gfInv(a)), 1);
    for (let i = 0; i < 300; i++) {
      assert.equal(gfPow2(i), slowPow2(i % 255));
      assert.equal(gfMul(gfPow2(i), gfPow2(-i)), 1);
    }
  });

  it('g has order 255 (0x11d is primitive)', () => {
    const seen = new Set<number>();
    for (let i = 0; i < 255; i++) seen.add(slowPow2(i));
    assert.equal(seen.size, 255);
  });
});

describe('parity: XOR and P+Q generation', () => {
  const r = new Prng(1);

  for (const [name, off] of [['aligned', 0], ['unaligned', 1]] as const) {
    it(`xorInto and xorBlocks match a byte loop (${name} buffers)`, () => {
      for (const n of [1, 2, 3, 4, 5, 9]) {
        const len = 4096 + (off ? 3 : 0);
        const srcs = Array.from({ length: n }, () => randomBuf(r, len + off).subarray(off));
        const want = Buffer.alloc(len);
        for (const s of srcs) for (let j = 0; j < len; j++) want[j] ^= s[j];
        const dst = Buffer.alloc(len + off).subarray(off);
        xorBlocks(dst, srcs);
        assert.ok(dst.equals(want), `xorBlocks of ${n}`);
        const acc = Buffer.from(srcs[0]);
        for (const s of srcs.slice(1)) xorInto(acc, s);
        assert.ok(acc.equals(want), `xorInto of ${n}`);
      }
    });

    it(`computePQ matches sum g^i D_i (${name} buffers)`, () => {
      for (const k of [1, 2, 3, 4, 7]) {
        const data = Array.from({ length: k }, () => randomBuf(r, 1024 + off).subarray(off));
        const want = naivePQ(data);
        const p = Buffer.alloc(1024);
        const q = Buffer.alloc(1024);
        computePQ(data, p, q);
        assert.ok(p.equals(want.p), `P of ${k}`);
        assert.ok(q.equals(want.q), `Q of ${k}`);
        const q2 = Buffer.alloc(1024);
        computePQ(data, null, q2);
        assert.ok(q2.equals(want.q), `Q alone of ${k}`);
      }
    });
  }

  it('mulXorInto adds c times the source', () => {
    const src = randomBuf(r, 256);
    const dst = randomBuf(r, 256);
    const want = Buffer.from(dst);
    for (let j = 0; j < 256; j++) want[j] ^= slowMul(0x53, src[j]);
    mulXorInto(dst, src, 0x53);
    assert.ok(dst.equals(want));
  });
});

describe('parity: recovery', () => {
  const r = new Prng(2);

  it('RAID 5: any one lost chunk (data or P) comes back', () => {
    const data = Array.from({ length: 4 }, () => randomBuf(r, 512));
    const { p } = naivePQ(data);
    for (let lost = 0; lost <= 4; lost++) {
      const d = data.map((b) => Buffer.from(b));
      const pp = Buffer.from(p);
      (lost < 4 ? d[lost] : pp).fill(0xee);
      recover(d, pp, null, [lost]);
      d.forEach((b, i) => assert.ok(b.equals(data[i]), `D${i} after losing ${lost}`));
      assert.ok(pp.equals(p));
    }
  });

  for (const k of [2, 4, 5]) {
    it(`RAID 6 with ${k} data chunks: every pair of lost chunks (data, P, Q) comes back`, () => {
      const data = Array.from({ length: k }, () => randomBuf(r, 1024));
      const { p, q } = naivePQ(data);
      for (let a = 0; a < k + 2; a++) {
        for (let b = a; b < k + 2; b++) {
          const lost = a === b ? [a] : [a, b];
          const d = data.map((x) => Buffer.from(x));
          const pp = Buffer.from(p);
          const qq = Buffer.from(q);
          for (const i of lost) (i < k ? d[i] : i === k ? pp : qq).fill(0x5a);
          recover(d, pp, qq, lost);
          d.forEach((x, i) => assert.ok(x.equals(data[i]), `D${i} after losing ${lost}`));
          assert.ok(pp.equals(p), `P after losing ${lost}`);
          assert.ok(qq.equals(q), `Q after losing ${lost}`);
        }
      }
    });
  }
});
