import * as assert from 'assert';
import {
  CheckCondition, Sense, decodeSense, encodeDescriptorSense, encodeFixedSense, invalidCdbField,
} from '../../../target/scsi/sense';
import { hex } from './harness';

describe('sense data', () => {
  it('table is frozen and names itself', () => {
    assert.ok(Object.isFrozen(Sense));
    assert.ok(Object.isFrozen(Sense.LBA_OUT_OF_RANGE));
    assert.strictEqual(Sense.LBA_OUT_OF_RANGE.name, 'LBA_OUT_OF_RANGE');
  });

  it('fixed format: INVALID FIELD IN CDB, field pointer byte 2 bit 5', () => {
    const e = invalidCdbField(2, 5);
    assert.ok(e instanceof CheckCondition);
    assert.deepStrictEqual(encodeFixedSense(e.sense, e.detail),
      hex('70 00 05 00000000 0a 00000000 24 00 00 cd 0002'));
  });

  it('fixed format: INFORMATION with VALID', () => {
    assert.deepStrictEqual(encodeFixedSense(Sense.MISCOMPARE_DURING_VERIFY, { information: 0x1234 }),
      hex('f0 00 0e 00001234 0a 00000000 1d 00 00 000000'));
  });

  it('fixed format: INFORMATION above 32 bits leaves VALID clear', () => {
    const b = encodeFixedSense(Sense.LBA_OUT_OF_RANGE, { information: 0x100000000n });
    assert.strictEqual(b[0], 0x70);
    assert.strictEqual(b.readUInt32BE(3), 0);
  });

  it('descriptor format: information and sense-key specific descriptors', () => {
    const b = encodeDescriptorSense(Sense.INVALID_FIELD_IN_PARAMETER_LIST, { information: 7n, fieldPointer: { cdb: false, byte: 0x0102 } });
    assert.deepStrictEqual(b, hex('72 05 26 00 000000 14  00 0a 80 00 0000000000000007  02 06 0000 80 0102 00'));
  });

  it('descriptor format: no descriptors', () => {
    assert.deepStrictEqual(encodeDescriptorSense(Sense.POWER_ON_RESET), hex('72 06 29 00 00 00 00 00'));
  });

  it('decodes both formats back', () => {
    const d = decodeSense(hex('f0 00 0e 00001234 0a 00000000 1d 00 00 000000'));
    assert.deepStrictEqual(d, { descriptor: false, key: 0xe, asc: 0x1d, ascq: 0, information: 0x1234n, fieldPointer: undefined });
    const d2 = decodeSense(hex('72 05 26 00 000000 14  00 0a 80 00 0000000000000007  02 06 0000 80 0102 00'));
    assert.deepStrictEqual(d2, { descriptor: true, key: 5, asc: 0x26, ascq: 0, information: 7n, fieldPointer: { cdb: false, byte: 0x102, bit: undefined } });
  });

  it('rejects truncated sense data', () => {
    assert.throws(() => decodeSense(hex('70 00 05')), RangeError);
    assert.throws(() => decodeSense(hex('70 00 05 00000000 0a 00')), RangeError);
  });
});
