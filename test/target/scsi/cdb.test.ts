import * as assert from 'assert';
import * as cdb from '../../../target/scsi/cdb';
import { hex } from './harness';

/** Decodes the hand-written bytes, compares with the expected values, and encodes them back. */
function roundTrip<T>(bytes: Buffer, decode: (b: Buffer) => T, encode: (v: T) => Buffer, expect: Partial<T>): void {
  const v = decode(bytes);
  for (const [k, want] of Object.entries(expect)) assert.deepStrictEqual((v as Record<string, unknown>)[k], want, k);
  assert.deepStrictEqual(encode(v), bytes);
}

describe('CDB codecs', () => {
  it('READ(6): 21-bit LBA, transfer length 0 means 256', () => {
    const b = hex('08 1f ffff 00 00');
    const v = cdb.decodeRw6(b);
    assert.deepStrictEqual(v, { opcode: 0x08, lba: 0x1fffffn, transferLength: 256, control: 0 });
    roundTrip(hex('0a 01 0203 10 00'), cdb.decodeRw6, cdb.encodeRw6, { lba: 0x10203n, transferLength: 16 });
  });

  it('READ(10) / WRITE(12) / READ(16) shapes', () => {
    roundTrip(hex('28 18 01020304 05 0607 00'), (b) => cdb.decodeRw(b, 10), (v) => cdb.encodeRw(10, v),
      { lba: 0x01020304n, transferLength: 0x0607, dpo: true, fua: true, groupNumber: 5 });
    roundTrip(hex('aa 08 01020304 00000100 00 00'), (b) => cdb.decodeRw(b, 12), (v) => cdb.encodeRw(12, v),
      { lba: 0x01020304n, transferLength: 256, fua: true, dpo: false });
    roundTrip(hex('88 00 0102030405060708 0000ffff 00 00'), (b) => cdb.decodeRw(b, 16), (v) => cdb.encodeRw(16, v),
      { lba: 0x0102030405060708n, transferLength: 0xffff });
  });

  it('VERIFY(10) BYTCHK and VRPROTECT', () => {
    const v = cdb.decodeRw(hex('2f e6 00000010 00 0008 00'), 10);
    assert.strictEqual(v.protect, 7);
    assert.strictEqual(v.bytchk, 3);
  });

  it('WRITE SAME(16) ANCHOR/UNMAP/NDOB', () => {
    roundTrip(hex('93 19 0000000000000100 00000020 00 00'), (b) => cdb.decodeWriteSame(b, 16), (v) => cdb.encodeWriteSame(16, v),
      { anchor: true, unmap: true, ndob: true, lba: 0x100n, numberOfBlocks: 0x20 });
    roundTrip(hex('41 08 00000100 00 0020 00'), (b) => cdb.decodeWriteSame(b, 10), (v) => cdb.encodeWriteSame(10, v),
      { unmap: true, ndob: false, numberOfBlocks: 0x20 });
  });

  it('COMPARE AND WRITE', () => {
    roundTrip(hex('89 08 0000000000000010 000000 02 00 00'), cdb.decodeCompareAndWrite,
      (v) => cdb.encodeCompareAndWrite({ lba: v.lba, numberOfLogicalBlocks: v.numberOfLogicalBlocks, flags: 0x08 }),
      { lba: 0x10n, numberOfLogicalBlocks: 2, fua: true });
  });

  it('SERVICE ACTION IN(16): READ CAPACITY(16) and GET LBA STATUS', () => {
    roundTrip(hex('9e 10 0000000000000000 00000020 00 00'), cdb.decodeServiceActionIn16, cdb.encodeServiceActionIn16,
      { serviceAction: 0x10, allocationLength: 32, pmi: false });
    roundTrip(hex('9e 12 0000000000000400 00001000 00 00'), cdb.decodeServiceActionIn16, cdb.encodeServiceActionIn16,
      { serviceAction: 0x12, lba: 0x400n, allocationLength: 0x1000 });
  });

  it('READ CAPACITY(10)', () => {
    roundTrip(hex('25 00 00000001 0000 01 00'), cdb.decodeReadCapacity10, cdb.encodeReadCapacity10, { lba: 1, pmi: true });
  });

  it('INQUIRY', () => {
    roundTrip(hex('12 01 83 0100 00'), cdb.decodeInquiry, cdb.encodeInquiry, { evpd: true, pageCode: 0x83, allocationLength: 256 });
  });

  it('MODE SENSE(6/10), MODE SELECT(6/10)', () => {
    roundTrip(hex('1a 08 ca 00 ff 00'), (b) => cdb.decodeModeSense(b, 6), (v) => cdb.encodeModeSense(6, v),
      { dbd: true, pc: 3, pageCode: 0x0a, allocationLength: 255 });
    roundTrip(hex('5a 10 3f ff 000000 1000 00'), (b) => cdb.decodeModeSense(b, 10), (v) => cdb.encodeModeSense(10, v),
      { llbaa: true, dbd: false, pc: 0, pageCode: 0x3f, subpageCode: 0xff, allocationLength: 0x1000 });
    roundTrip(hex('15 11 00 00 18 00'), (b) => cdb.decodeModeSelect(b, 6), (v) => cdb.encodeModeSelect(6, v),
      { pf: true, sp: true, parameterListLength: 0x18 });
    roundTrip(hex('55 10 00 00 00 00 00 0100 00'), (b) => cdb.decodeModeSelect(b, 10), (v) => cdb.encodeModeSelect(10, v),
      { pf: true, sp: false, parameterListLength: 256 });
  });

  it('REPORT LUNS', () => {
    roundTrip(hex('a0 00 02 000000 00001000 00 00'), cdb.decodeReportLuns, cdb.encodeReportLuns, { selectReport: 2, allocationLength: 0x1000 });
  });

  it('MAINTENANCE IN: REPORT SUPPORTED OPERATION CODES', () => {
    const b = hex('a3 0c 82 9e 0010 0000ffff 00 00');
    const v = cdb.decodeMaintenanceIn(b);
    assert.deepStrictEqual([v.serviceAction, v.rctd, v.reportingOptions, v.requestedOpcode, v.requestedServiceAction, v.allocationLength],
      [0x0c, true, 2, 0x9e, 0x10, 0xffff]);
    assert.deepStrictEqual(cdb.encodeMaintenanceIn(v), b);
  });

  it('PERSISTENT RESERVE IN/OUT', () => {
    roundTrip(hex('5e 03 00 00000000 2000 00'), cdb.decodePrIn, cdb.encodePrIn, { serviceAction: 3, allocationLength: 0x2000 });
    roundTrip(hex('5f 01 05 00 00 00000018 00'), cdb.decodePrOut, cdb.encodePrOut, { serviceAction: 1, scope: 0, type: 5, parameterListLength: 24 });
  });

  it('START STOP UNIT', () => {
    roundTrip(hex('1b 01 00 00 27 00'), cdb.decodeStartStopUnit, cdb.encodeStartStopUnit,
      { immed: true, powerCondition: 2, noFlush: true, loej: true, start: true });
  });

  it('UNMAP, SYNCHRONIZE CACHE(10/16), READ DEFECT DATA(10/12)', () => {
    roundTrip(hex('42 01 00 00 00 00 00 0018 00'), cdb.decodeUnmap, cdb.encodeUnmap, { anchor: true, parameterListLength: 24 });
    roundTrip(hex('35 02 00000010 00 0008 00'), (b) => cdb.decodeSyncCache(b, 10), (v) => cdb.encodeSyncCache(10, v), { immed: true, lba: 16n, numberOfBlocks: 8 });
    roundTrip(hex('91 00 0000000000000010 00000000 00 00'), (b) => cdb.decodeSyncCache(b, 16), (v) => cdb.encodeSyncCache(16, v), { immed: false, numberOfBlocks: 0 });
    roundTrip(hex('37 00 1d 00 00 00 00 0200 00'), (b) => cdb.decodeReadDefectData(b, 10), (v) => cdb.encodeReadDefectData(10, v),
      { reqPlist: true, reqGlist: true, defectListFormat: 5, allocationLength: 512 });
    roundTrip(hex('b7 0c 00 00 00 00 00010000 00 00'), (b) => cdb.decodeReadDefectData(b, 12), (v) => cdb.encodeReadDefectData(12, v),
      { reqPlist: false, reqGlist: true, defectListFormat: 4, allocationLength: 0x10000 });
  });

  it('short CDBs throw CdbLengthError', () => {
    assert.throws(() => cdb.decodeRw(hex('28 00 0000'), 10), cdb.CdbLengthError);
    assert.throws(() => cdb.decodeInquiry(hex('12 00')), cdb.CdbLengthError);
    assert.throws(() => cdb.decodeCompareAndWrite(hex('89')), cdb.CdbLengthError);
  });
});
