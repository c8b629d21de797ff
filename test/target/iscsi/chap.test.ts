import assert from 'assert';
import { createHash } from 'crypto';
import { ChapTarget, chapResponse, decodeBinary } from '../../../target/iscsi/chap';

const SECRET = { user: 'alice', secret: 'alice-secret-12', mutualUser: 'tgt', mutualSecret: 'target-secret-34' };

/** Deterministic "random": id 7, challenge 0x00..0x0f. */
function fixedRandom(n: number): Buffer {
  return n === 1 ? Buffer.from([7]) : Buffer.from(Array.from({ length: n }, (_, i) => i));
}

describe('CHAP (RFC 1994, RFC 7143 12.1.3)', () => {
  it('binary values: 0x hex, odd length, 0b base64; anything else is refused', () => {
    assert.deepStrictEqual(decodeBinary('0x0102ff'), Buffer.from([1, 2, 255]));
    assert.deepStrictEqual(decodeBinary('0X102'), Buffer.from([1, 2]));
    assert.deepStrictEqual(decodeBinary('0bAQL/'), Buffer.from([1, 2, 255]));
    for (const v of ['0102', '0x', '0xzz', '0b$$$$', '0bAQL']) assert.strictEqual(decodeBinary(v), undefined, v);
  });

  it('response is MD5(id || secret || challenge)', () => {
    const c = Buffer.from('0123456789abcdef', 'hex');
    const want = createHash('md5').update(Buffer.concat([Buffer.from([9]), Buffer.from('s3cret'), c])).digest();
    assert.deepStrictEqual(chapResponse(9, 's3cret', c), want);
  });

  it('one-way: CHAP_A -> challenge of 16 bytes; right response -> done', () => {
    const t = new ChapTarget(SECRET, fixedRandom);
    const s1 = t.step(new Map([['CHAP_A', '7,5']]));
    assert.strictEqual(s1.kind, 'continue');
    const r1 = new Map(s1.kind === 'continue' ? s1.replies : []);
    assert.strictEqual(r1.get('CHAP_A'), '5');
    assert.strictEqual(r1.get('CHAP_I'), '7');
    assert.strictEqual(r1.get('CHAP_C'), '0x000102030405060708090a0b0c0d0e0f');
    const resp = chapResponse(7, SECRET.secret, fixedRandom(16));
    const s2 = t.step(new Map([['CHAP_N', 'alice'], ['CHAP_R', `0x${resp.toString('hex')}`]]));
    assert.deepStrictEqual(s2, { kind: 'done', replies: [], user: 'alice' });
    assert.strictEqual(t.done, true);
  });

  it('base64 response is accepted', () => {
    const t = new ChapTarget(SECRET, fixedRandom);
    t.step(new Map([['CHAP_A', '5']]));
    const resp = chapResponse(7, SECRET.secret, fixedRandom(16));
    assert.strictEqual(t.step(new Map([['CHAP_N', 'alice'], ['CHAP_R', `0b${resp.toString('base64')}`]])).kind, 'done');
  });

  it('wrong secret, wrong name, or no MD5 -> fail', () => {
    const bad = chapResponse(7, 'wrong', fixedRandom(16));
    let t = new ChapTarget(SECRET, fixedRandom);
    t.step(new Map([['CHAP_A', '5']]));
    assert.strictEqual(t.step(new Map([['CHAP_N', 'alice'], ['CHAP_R', `0x${bad.toString('hex')}`]])).kind, 'fail');
    t = new ChapTarget(SECRET, fixedRandom);
    t.step(new Map([['CHAP_A', '5']]));
    const good = chapResponse(7, SECRET.secret, fixedRandom(16));
    assert.strictEqual(t.step(new Map([['CHAP_N', 'bob'], ['CHAP_R', `0x${good.toString('hex')}`]])).kind, 'fail');
    assert.strictEqual(new ChapTarget(SECRET, fixedRandom).step(new Map([['CHAP_A', '6,7']])).kind, 'fail');
  });

  it('mutual: the target answers the initiator challenge with its own name and secret', () => {
    const t = new ChapTarget(SECRET, fixedRandom);
    t.step(new Map([['CHAP_A', '5']]));
    const ic = Buffer.alloc(16, 0xab);
    const s = t.step(new Map([
      ['CHAP_N', 'alice'], ['CHAP_R', `0x${chapResponse(7, SECRET.secret, fixedRandom(16)).toString('hex')}`],
      ['CHAP_I', '200'], ['CHAP_C', `0x${ic.toString('hex')}`],
    ]));
    assert.strictEqual(s.kind, 'done');
    const r = new Map(s.kind === 'done' ? s.replies : []);
    assert.strictEqual(r.get('CHAP_N'), 'tgt');
    assert.strictEqual(r.get('CHAP_R'), `0x${chapResponse(200, SECRET.mutualSecret, ic).toString('hex')}`);
  });

  it('mutual: a reflected challenge is refused', () => {
    const t = new ChapTarget(SECRET, fixedRandom);
    t.step(new Map([['CHAP_A', '5']]));
    const s = t.step(new Map([
      ['CHAP_N', 'alice'], ['CHAP_R', `0x${chapResponse(7, SECRET.secret, fixedRandom(16)).toString('hex')}`],
      ['CHAP_I', '7'], ['CHAP_C', '0x000102030405060708090a0b0c0d0e0f'],
    ]));
    assert.strictEqual(s.kind, 'fail');
  });

  it('mutual without a configured target secret -> fail', () => {
    const t = new ChapTarget({ user: 'alice', secret: SECRET.secret }, fixedRandom);
    t.step(new Map([['CHAP_A', '5']]));
    const s = t.step(new Map([
      ['CHAP_N', 'alice'], ['CHAP_R', `0x${chapResponse(7, SECRET.secret, fixedRandom(16)).toString('hex')}`],
      ['CHAP_I', '1'], ['CHAP_C', '0x11223344556677881122334455667788'],
    ]));
    assert.strictEqual(s.kind, 'fail');
  });
});
