// Parity arithmetic for RAID 5 and 6: P is the XOR of the data chunks; Q is the Reed-Solomon
// syndrome over GF(2^8) with generator g = 2 and field polynomial x^8+x^4+x^3+x^2+1 (0x11d),
// Q = sum g^i * D_i, as in H. Peter Anvin, "The mathematics of RAID-6" (2004), and Linux md.
// Pure code: buffers in, buffers out. Hot loops work on 32-bit words through Int32Array views
// whenever every buffer is 4-byte aligned (bench/parity.bench.ts), bytes otherwise.
import assert from 'node:assert';

/** GF(2^8) exponentials of g = 2, doubled so exp[log a + log b] needs no modulo. */
const EXP = new Uint8Array(512);
/** log[a] for a != 0 (log[0] is unused). */
const LOG = new Uint8Array(256);
{
  let x = 1;
  for (let i = 0; i < 255; i++) {
    EXP[i] = x;
    LOG[x] = i;
    x <<= 1;
    if (x & 0x100) x ^= 0x11d;
  }
  for (let i = 255; i < 512; i++) EXP[i] = EXP[i - 255];
}

export function gfMul(a: number, b: number): number {
  return a === 0 || b === 0 ? 0 : EXP[LOG[a] + LOG[b]];
}

export function gfInv(a: number): number {
  assert(a !== 0, 'GF(2^8): 0 has no inverse');
  return EXP[255 - LOG[a]];
}

/** g^i for any integer i (negative: the inverse). */
export function gfPow2(i: number): number {
  return EXP[((i % 255) + 255) % 255];
}

/** Row c of the full multiplication table (c * x for every byte x), built on first use. */
const MUL_ROWS: Array<Uint8Array | undefined> = new Array(256);
function mulRow(c: number): Uint8Array {
  let row = MUL_ROWS[c];
  if (!row) {
    row = new Uint8Array(256);
    for (let x = 0; x < 256; x++) row[x] = gfMul(c, x);
    MUL_ROWS[c] = row;
  }
  return row;
}

function aligned(bufs: Buffer[], length: number): boolean {
  let bits = length;
  for (const b of bufs) bits |= b.byteOffset;
  return (bits & 3) === 0;
}

function words(b: Buffer, length: number): Int32Array {
  return new Int32Array(b.buffer, b.byteOffset, length >> 2);
}

function aligned8(bufs: Buffer[], length: number): boolean {
  let bits = length;
  for (const b of bufs) bits |= b.byteOffset;
  return (bits & 7) === 0;
}

function words64(b: Buffer, length: number): BigUint64Array {
  return new BigUint64Array(b.buffer, b.byteOffset, length >> 3);
}

/**
 * d = a ^ b ^ c ^ e (first) or d ^= a ^ b ^ c ^ e, 64 bits at a time: about twice the rate of
 * 32-bit words in V8 (bench/parity.bench.ts); BigUint64Array element ops stay unboxed when optimized.
 */
function xor4x64(d: BigUint64Array, a: BigUint64Array, b: BigUint64Array, c: BigUint64Array, e: BigUint64Array, first: boolean): void {
  const n = d.length;
  if (first) for (let i = 0; i < n; i++) d[i] = a[i] ^ b[i] ^ c[i] ^ e[i];
  else for (let i = 0; i < n; i++) d[i] ^= a[i] ^ b[i] ^ c[i] ^ e[i];
}

/** dst[0, length) ^= src[0, length). */
export function xorInto(dst: Buffer, src: Buffer, length = dst.length): void {
  if (aligned([dst, src], length)) {
    const d = words(dst, length);
    const s = words(src, length);
    for (let i = 0; i < d.length; i++) d[i] ^= s[i];
  } else {
    for (let i = 0; i < length; i++) dst[i] ^= src[i];
  }
}

/** dst = XOR of srcs (each at least dst.length bytes; dst may be one of them). */
export function xorBlocks(dst: Buffer, srcs: Buffer[]): void {
  const length = dst.length;
  assert(srcs.length >= 1, 'xorBlocks: no sources');
  if (srcs.length === 4 && aligned8([dst, ...srcs], length)) {
    // The common case (RAID 5 of 5, P of 4 data chunks) on the fastest path.
    const [a, b, c, e] = srcs.map((x) => words64(x, length));
    return xor4x64(words64(dst, length), a, b, c, e, true);
  }
  if (!aligned([dst, ...srcs], length)) {
    if (dst !== srcs[0]) srcs[0].copy(dst, 0, 0, length);
    for (let k = 1; k < srcs.length; k++) xorInto(dst, srcs[k], length);
    return;
  }
  // Up to four sources per pass over dst: fewer passes over memory than one per source.
  const d = words(dst, length);
  let k = 0;
  let first = true;
  while (k < srcs.length) {
    const take = Math.min(4, srcs.length - k);
    const a = words(srcs[k], length);
    const b = take > 1 ? words(srcs[k + 1], length) : a;
    const c = take > 2 ? words(srcs[k + 2], length) : a;
    const e = take > 3 ? words(srcs[k + 3], length) : a;
    const n = d.length;
    if (first) {
      if (take === 4) for (let i = 0; i < n; i++) d[i] = a[i] ^ b[i] ^ c[i] ^ e[i];
      else if (take === 3) for (let i = 0; i < n; i++) d[i] = a[i] ^ b[i] ^ c[i];
      else if (take === 2) for (let i = 0; i < n; i++) d[i] = a[i] ^ b[i];
      else if (d !== a) d.set(a);
    } else {
      if (take === 4) for (let i = 0; i < n; i++) d[i] ^= a[i] ^ b[i] ^ c[i] ^ e[i];
      else if (take === 3) for (let i = 0; i < n; i++) d[i] ^= a[i] ^ b[i] ^ c[i];
      else if (take === 2) for (let i = 0; i < n; i++) d[i] ^= a[i] ^ b[i];
      else for (let i = 0; i < n; i++) d[i] ^= a[i];
    }
    first = false;
    k += take;
  }
}

/** dst[0, length) ^= c * src[0, length) in GF(2^8). */
export function mulXorInto(dst: Buffer, src: Buffer, c: number, length = dst.length): void {
  if (c === 0) return;
  if (c === 1) return xorInto(dst, src, length);
  const row = mulRow(c);
  for (let i = 0; i < length; i++) dst[i] ^= row[src[i]];
}

/** dst[0, length) = c * src[0, length) in GF(2^8) (dst may be src). */
export function mulInto(dst: Buffer, src: Buffer, c: number, length = dst.length): void {
  const row = mulRow(c);
  for (let i = 0; i < length; i++) dst[i] = row[src[i]];
}

/**
 * P and/or Q of the data chunks (all data[i] at least p/q's length). Q by Horner's rule,
 * Q = (((D_{k-1} g + D_{k-2}) g + ...) g + D_0), multiplying four bytes by g at once:
 * shift each byte left and fold the carried-out bits back with 0x1d (the Linux int.uc trick).
 */
export function computePQ(data: Buffer[], p: Buffer | null, q: Buffer | null): void {
  const out = (p ?? q)!;
  assert(out && data.length >= 1, 'computePQ: nothing to compute');
  const length = out.length;
  if (!q) return xorBlocks(p!, data);
  const k = data.length;
  const all = p ? [q, p, ...data] : [q, ...data];
  if (aligned(all, length)) {
    // One tight pass per data chunk (V8 optimizes these far better than a loop over chunks per word).
    const qw = words(q, length);
    qw.set(words(data[k - 1], length));
    for (let i = k - 2; i >= 0; i--) mul2Xor(qw, words(data[i], length));
    if (p) xorBlocks(p, data);
    return;
  }
  for (let j = 0; j < length; j++) {
    let pv = data[k - 1][j];
    let qv = pv;
    for (let i = k - 2; i >= 0; i--) {
      const d = data[i][j];
      pv ^= d;
      qv = ((qv << 1) ^ (qv & 0x80 ? 0x11d : 0)) ^ d;
    }
    if (p) p[j] = pv;
    q[j] = qv & 0xff;
  }
}

/** q = q * g + d, four bytes at a time. */
function mul2Xor(q: Int32Array, d: Int32Array): void {
  const n = q.length;
  for (let w = 0; w < n; w++) {
    const v = q[w];
    q[w] = (((v & 0x7f7f7f7f) << 1) ^ (((v >>> 7) & 0x01010101) * 0x1d)) ^ d[w];
  }
}

/**
 * Rebuild lost chunks of one row in place. data, p, q: the row's chunks (q null for RAID 5),
 * all the same length; lost: which of them are unreadable, data indexes 0..k-1, then k for P
 * and k+1 for Q (at most one for RAID 5, two for RAID 6). Lost buffers are overwritten.
 */
export function recover(data: Buffer[], p: Buffer, q: Buffer | null, lost: number[]): void {
  const k = data.length;
  const lostData = lost.filter((i) => i < k).sort((a, b) => a - b);
  const lostP = lost.includes(k);
  const lostQ = lost.includes(k + 1);
  assert(lost.length <= (q ? 2 : 1), `cannot recover ${lost.length} chunks`);
  assert(q || !lostQ, 'no Q to recover');
  if (lostData.length === 0) {
    if (lostP || lostQ) computePQ(data, lostP ? p : null, lostQ ? q : null);
    return;
  }
  const length = p.length;
  if (lostData.length === 1 && !lostP) {
    // D_x = P + sum of the other data (RAID 5, and RAID 6 with Q lost or intact).
    const x = lostData[0];
    xorBlocks(data[x], [p, ...data.filter((_b, i) => i !== x)]);
    if (lostQ) computePQ(data, null, q);
    return;
  }
  assert(q, 'two lost data chunks need Q');
  if (lostData.length === 1) {
    // P lost as well: Q + Q_x = g^x D_x, where Q_x is Q with D_x = 0 (Anvin section 4).
    const x = lostData[0];
    data[x].fill(0, 0, length);
    const qx = Buffer.allocUnsafe(length);
    computePQ(data, null, qx);
    xorInto(qx, q, length);
    mulInto(data[x], qx, gfPow2(-x), length);
    computePQ(data, p, null);
    return;
  }
  // Two data chunks x < y (Anvin section 4): with Pxy, Qxy the syndromes with D_x = D_y = 0,
  // D_x = A (P + Pxy) + B (Q + Qxy), D_y = (P + Pxy) + D_x,
  // A = g^(y-x) / (g^(y-x) + 1), B = g^(-x) / (g^(y-x) + 1).
  const [x, y] = lostData;
  data[x].fill(0, 0, length);
  data[y].fill(0, 0, length);
  const pd = Buffer.allocUnsafe(length);
  const qd = Buffer.allocUnsafe(length);
  computePQ(data, pd, qd);
  xorInto(pd, p, length);
  xorInto(qd, q, length);
  const denom = gfInv(gfPow2(y - x) ^ 1);
  const a = mulRow(gfMul(gfPow2(y - x), denom));
  const b = mulRow(gfMul(gfPow2(-x), denom));
  const dx = data[x];
  const dy = data[y];
  for (let j = 0; j < length; j++) {
    const v = a[pd[j]] ^ b[qd[j]];
    dx[j] = v;
    dy[j] = pd[j] ^ v;
  }
}
