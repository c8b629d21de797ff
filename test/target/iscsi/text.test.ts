import assert from 'node:assert/strict';
import fc from 'fast-check';
import { PduError, RejectReason } from '../../../target/iscsi/pdu';
import { decodeText, encodeText, KEY_LENGTH_MAX, VALUE_LENGTH_MAX } from '../../../target/iscsi/text';

const bytes = (s: string): Buffer => Buffer.from(s, 'utf8');

function protocolError(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => e instanceof PduError && e.code === code && e.reason === RejectReason.ProtocolError);
}

describe('iSCSI text key=value (RFC 7143 6.1)', () => {
  it('decodes NUL-terminated pairs in order, duplicates kept', () => {
    assert.deepStrictEqual(decodeText(bytes('InitiatorName=iqn.x\0SessionType=Normal\0A=1\0A=2\0')), [
      ['InitiatorName', 'iqn.x'], ['SessionType', 'Normal'], ['A', '1'], ['A', '2'],
    ]);
  });

  it('encodes each pair as key=value NUL', () => {
    assert.deepStrictEqual(encodeText([['A', 'b'], ['C', '']]), bytes('A=b\0C=\0'));
    assert.equal(encodeText([]).length, 0);
  });

  it('the value is everything after the first =', () => {
    assert.deepStrictEqual(decodeText(bytes('X-k=a=b=c\0')), [['X-k', 'a=b=c']]);
  });

  it('an empty value is kept', () => {
    assert.deepStrictEqual(decodeText(bytes('TargetAlias=\0')), [['TargetAlias', '']]);
  });

  it('padding NULs after the last pair are ignored', () => {
    assert.deepStrictEqual(decodeText(bytes('A=B\0\0\0\0')), [['A', 'B']]);
    assert.deepStrictEqual(decodeText(Buffer.alloc(4)), []);
  });

  it('a missing final NUL is tolerated', () => {
    assert.deepStrictEqual(decodeText(bytes('A=B\0C=D')), [['A', 'B'], ['C', 'D']]);
  });

  it('empty data -> no pairs', () => {
    assert.deepStrictEqual(decodeText(Buffer.alloc(0)), []);
  });

  it('an item without = -> TEXT_SYNTAX', () => {
    protocolError(() => decodeText(bytes('A=B\0garbage\0')), 'TEXT_SYNTAX');
  });

  it('an empty key (=value) -> TEXT_SYNTAX', () => {
    protocolError(() => decodeText(bytes('=value\0')), 'TEXT_SYNTAX');
  });

  it(`key of ${KEY_LENGTH_MAX} bytes is accepted, ${KEY_LENGTH_MAX + 1} -> TEXT_KEY_LENGTH`, () => {
    const ok = 'K'.repeat(KEY_LENGTH_MAX);
    assert.deepStrictEqual(decodeText(bytes(`${ok}=v\0`)), [[ok, 'v']]);
    protocolError(() => decodeText(bytes(`${ok}K=v\0`)), 'TEXT_KEY_LENGTH');
  });

  it('key length counts bytes, not characters', () => {
    // 32 two-byte characters are 64 bytes.
    protocolError(() => decodeText(bytes(`${'é'.repeat(32)}=v\0`)), 'TEXT_KEY_LENGTH');
    assert.equal(decodeText(bytes(`X-${'é'.repeat(30)}=v\0`)).length, 1);
  });

  it(`value of ${VALUE_LENGTH_MAX} bytes is accepted, ${VALUE_LENGTH_MAX + 1} -> TEXT_VALUE_LENGTH`, () => {
    const ok = 'v'.repeat(VALUE_LENGTH_MAX);
    assert.equal(decodeText(bytes(`CHAP_C=${ok}\0`))[0][1].length, VALUE_LENGTH_MAX);
    protocolError(() => decodeText(bytes(`CHAP_C=${ok}v\0`)), 'TEXT_VALUE_LENGTH');
  });

  it('round-trips any keys and values within the bounds', () => {
    const key = fc.stringMatching(/^[A-Za-z][A-Za-z0-9.\-_]{0,62}$/);
    const value = fc.string({ maxLength: 200 }).filter((s) => !s.includes('\0'));
    fc.assert(fc.property(fc.array(fc.tuple(key, value), { maxLength: 20 }), (pairs) => {
      assert.deepStrictEqual(decodeText(encodeText(pairs)), pairs);
    }), { numRuns: 300 });
  });

  it('random bytes either decode or throw a PduError, nothing else', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (a) => {
      try {
        decodeText(Buffer.from(a));
      } catch (e) {
        assert.ok(e instanceof PduError, String(e));
      }
    }), { numRuns: 1000 });
  });
});
