import assert from 'node:assert/strict';
import { DKC_EMU_COMPANY_ID, ldevHex, ldevId, ldevNaa, ldevSerial } from '../../firmware/identity';

describe('LDEV identity (VPD 80h, 83h)', () => {
  it('NAA 6h: NAA | company id | vendor specific id (DKC serial) | extension (DKC, LDEV)', () => {
    // Bytes written out by hand: 6 | 0ADCE0 | 0 FFFFFFFF | 00444B43 0000FFFF
    assert.equal(ldevNaa(0xffffffff, 0xffff).toString('hex'), '60adce00ffffffff00444b430000ffff');
    assert.equal(ldevNaa(1, 0).toString('hex'), '60adce000000000100444b4300000000');
  });

  it('the company id is locally administered (X bit set, not multicast)', () => {
    const firstOctet = DKC_EMU_COMPANY_ID >> 16;
    assert.equal(firstOctet & 0x02, 0x02);
    assert.equal(firstOctet & 0x01, 0);
  });

  it('serials and ids are stable text', () => {
    assert.equal(ldevSerial(410001, 0x2a), '410001002A');
    assert.equal(ldevHex(0x2a), '002A');
    assert.equal(ldevId('dkc0', 1), 'dkc0:ldev:0001');
  });

  it('different serials or LDEVs never give the same NAA', () => {
    const seen = new Set<string>();
    for (const serial of [1, 2, 410001, 0xffffffff]) {
      for (const ldev of [0, 1, 0xff, 0xffff]) seen.add(ldevNaa(serial, ldev).toString('hex'));
    }
    assert.equal(seen.size, 16);
  });

  it('out-of-range numbers are assertions', () => {
    assert.throws(() => ldevNaa(2 ** 32, 0), /bad DKC serial/);
    assert.throws(() => ldevSerial(1, 0x10000), /bad LDEV number/);
  });
});
