// The kernel's seeded random generator (STYLE.md: randomness only from the seeded generator, so
// a run replays from its seed). xoshiro128** (Blackman and Vigna), state seeded by splitmix32.
import assert from 'node:assert';

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(readonly seed: number) {
    assert(Number.isSafeInteger(seed), `bad seed ${seed}`);
    const next = splitmix32(seed ^ Math.floor(seed / 2 ** 32));
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    if ((this.a | this.b | this.c | this.d) === 0) this.a = 1; // the all-zero state is a fixed point
  }

  /** Next 32 random bits as an unsigned integer. */
  uint32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result;
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.uint32() / 2 ** 32;
  }

  /** Uniform integer in [0, n), n <= 2^32. */
  int(n: number): number {
    assert(Number.isInteger(n) && n > 0 && n <= 2 ** 32, `bad range ${n}`);
    return Math.floor(this.float() * n);
  }

  /** True with probability percent/100. */
  chance(percent: number): boolean {
    return this.float() * 100 < percent;
  }

  /** An independent generator whose sequence depends only on this one's seed and the label. */
  fork(label: string): Prng {
    let h = this.seed >>> 0;
    for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193) >>> 0;
    return new Prng(h);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
