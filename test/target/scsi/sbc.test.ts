import * as assert from 'assert';
import { Sense, Status } from '../../../target/scsi/sense';
import { Harness, checkCondition, good, hex, pattern } from './harness';

const BS = 512;
const cdb10 = (op: number, lba: number, len: number, flags = 0) => {
  const b = Buffer.alloc(10); b[0] = op; b[1] = flags; b.writeUInt32BE(lba >>> 0, 2); b.writeUInt16BE(len, 7); return b;
};
const cdb12 = (op: number, lba: number, len: number, flags = 0) => {
  const b = Buffer.alloc(12); b[0] = op; b[1] = flags; b.writeUInt32BE(lba >>> 0, 2); b.writeUInt32BE(len, 6); return b;
};
const cdb16 = (op: number, lba: bigint, len: number, flags = 0) => {
  const b = Buffer.alloc(16); b[0] = op; b[1] = flags; b.writeBigUInt64BE(lba, 2); b.writeUInt32BE(len, 10); return b;
};
const read10 = (lba: number, len: number, flags = 0) => cdb10(0x28, lba, len, flags);
const write10 = (lba: number, len: number, flags = 0) => cdb10(0x2a, lba, len, flags);

describe('READ and WRITE', () => {
  let h: Harness;
  beforeEach(() => { h = new Harness([{ blockCount: 1000 }]); });
  afterEach(() => h.assertNoBugs());

  it('WRITE(10) then READ(10) returns the data; dataOutWanted = blocks x block size', async () => {
    const n = await h.login();
    const data = pattern(4 * BS, 1);
    const w = await h.run(n, write10(10, 4), { dataOut: data });
    good(w);
    assert.strictEqual(w.dataOutWanted, 4 * BS);
    assert.deepStrictEqual(good(await h.run(n, read10(10, 4))), data);
  });

  it('READ(6)/WRITE(6): transfer length 0 means 256 blocks', async () => {
    const n = await h.login();
    const data = pattern(256 * BS, 2);
    good(await h.run(n, hex('0a 00 0000 00 00'), { dataOut: data }));
    assert.deepStrictEqual(good(await h.run(n, hex('08 00 0000 00 00'))), data);
  });

  it('READ(12)/WRITE(12), READ(16)/WRITE(16)', async () => {
    const n = await h.login();
    const a = pattern(2 * BS, 3), b = pattern(3 * BS, 4);
    good(await h.run(n, cdb12(0xaa, 100, 2), { dataOut: a }));
    good(await h.run(n, cdb16(0x8a, 997n, 3), { dataOut: b }));
    assert.deepStrictEqual(good(await h.run(n, cdb12(0xa8, 100, 2))), a);
    assert.deepStrictEqual(good(await h.run(n, cdb16(0x88, 997n, 3))), b);
  });

  it('FUA reaches the volume; DPO and FUA_NV are accepted', async () => {
    const n = await h.login();
    good(await h.run(n, write10(0, 1, 0x08), { dataOut: pattern(BS, 1) }));
    assert.strictEqual(h.vol().stats.fuaWrites, 1);
    good(await h.run(n, write10(0, 1, 0x12), { dataOut: pattern(BS, 1) }));
    assert.strictEqual(h.vol().stats.fuaWrites, 1);
    good(await h.run(n, read10(0, 1, 0x1e)));
  });

  it('transfer length 0 -> GOOD, no data', async () => {
    const n = await h.login();
    const r = await h.run(n, read10(0, 0));
    assert.strictEqual(r.status, Status.GOOD);
    assert.strictEqual(r.data, undefined);
    good(await h.run(n, write10(0, 0)));
  });

  it('beyond end of LU -> LBA OUT OF RANGE', async () => {
    const n = await h.login();
    checkCondition(await h.run(n, read10(999, 2)), Sense.LBA_OUT_OF_RANGE);
    checkCondition(await h.run(n, read10(1001, 0)), Sense.LBA_OUT_OF_RANGE);
    checkCondition(await h.run(n, read10(0xffffffff, 1)), Sense.LBA_OUT_OF_RANGE);
    checkCondition(await h.run(n, cdb16(0x88, 0xffffffffffffffffn, 1)), Sense.LBA_OUT_OF_RANGE);
    checkCondition(await h.run(n, write10(1000, 1), { dataOut: pattern(BS, 0) }), Sense.LBA_OUT_OF_RANGE);
    good(await h.run(n, read10(999, 1)));
  });

  it('RDPROTECT/WRPROTECT != 0 -> INVALID FIELD IN CDB byte 1 (no protection information)', async () => {
    const n = await h.login();
    checkCondition(await h.run(n, read10(0, 1, 0x20)), Sense.INVALID_FIELD_IN_CDB, { fieldPointer: { cdb: true, byte: 1, bit: 5 } });
    checkCondition(await h.run(n, cdb16(0x8a, 0n, 1, 0xe0), { dataOut: pattern(BS, 0) }), Sense.INVALID_FIELD_IN_CDB, { fieldPointer: { cdb: true, byte: 1, bit: 7 } });
  });

  it('more than MAXIMUM TRANSFER LENGTH -> INVALID FIELD IN CDB at TRANSFER LENGTH', async () => {
    const h2 = new Harness([{ blockCount: 200000 }]);
    const n = await h2.login();
    good(await h2.run(n, cdb16(0x88, 0n, 16384)));
    checkCondition(await h2.run(n, cdb16(0x88, 0n, 16385)), Sense.INVALID_FIELD_IN_CDB, { fieldPointer: { cdb: true, byte: 10, bit: 7 } });
    h2.assertNoBugs();
  });

  it('Data-Out shorter than the CDB asks: only whole blocks received are written', async () => {
    const n = await h.login();
    good(await h.run(n, write10(0, 2), { dataOut: pattern(2 * BS, 0x61) }));
    const b = pattern(BS + 200, 0x62);
    good(await h.run(n, write10(0, 2), { dataOut: b }));
    const back = good(await h.run(n, read10(0, 2)));
    assert.deepStrictEqual(back.subarray(0, BS), b.subarray(0, BS));
    assert.deepStrictEqual(back.subarray(BS), pattern(2 * BS, 0x61).subarray(BS));
  });

  it('Data-Out longer than the CDB asks: only TRANSFER LENGTH blocks are written', async () => {
    const n = await h.login();
    good(await h.run(n, write10(0, 2), { dataOut: Buffer.alloc(2 * BS, 0x61) }));
    good(await h.run(n, write10(0, 1), { dataOut: Buffer.alloc(2 * BS, 0x62) }));
    const back = good(await h.run(n, read10(0, 2)));
    assert.strictEqual(back[BS - 1], 0x62);
    assert.strictEqual(back[BS], 0x61);
  });

  it('volume MediumError -> MEDIUM ERROR / UNRECOVERED READ ERROR with INFORMATION = LBA', async () => {
    const n = await h.login();
    h.vol().injectReadError(12);
    checkCondition(await h.run(n, read10(10, 4)), Sense.UNRECOVERED_READ_ERROR, { information: 12n });
    h.vol().injectWriteError(20);
    checkCondition(await h.run(n, write10(20, 1), { dataOut: pattern(BS, 0) }), Sense.WRITE_ERROR, { information: 20n });
  });
});

describe('write-protected LU', () => {
  it('writes -> DATA PROTECT / WRITE PROTECTED; reads work; WP in mode parameter header', async () => {
    const h = new Harness([{ readOnly: true }]);
    const n = await h.login();
    checkCondition(await h.run(n, write10(0, 1), { dataOut: pattern(BS, 0) }), Sense.WRITE_PROTECTED);
    checkCondition(await h.run(n, cdb10(0x41, 0, 1), { dataOut: Buffer.alloc(BS) }), Sense.WRITE_PROTECTED);
    checkCondition(await h.run(n, hex('42 00 00 00 00 00 00 0018 00'), { dataOut: Buffer.alloc(24) }), Sense.WRITE_PROTECTED);
    checkCondition(await h.run(n, cdb16(0x89, 0n, 0).fill(1, 13, 14), { dataOut: Buffer.alloc(2 * BS) }), Sense.WRITE_PROTECTED);
    good(await h.run(n, read10(0, 1)));
    good(await h.run(n, cdb10(0x35, 0, 0)));
    assert.strictEqual(good(await h.run(n, hex('1a 00 3f 00 ff 00')))[2] & 0x80, 0x80);
    h.assertNoBugs();
  });
});

describe('READ CAPACITY', () => {
  let h: Harness;
  beforeEach(() => { h = new Harness([{ blockCount: 1000 }]); });
  afterEach(() => h.assertNoBugs());

  it('READ CAPACITY(10): last LBA and block length', async () => {
    const n = await h.login();
    assert.deepStrictEqual(good(await h.run(n, hex('25 00 00000000 0000 00 00'))), hex('000003e7 00000200'));
  });

  it('READ CAPACITY(10): PMI=0 with LBA != 0 -> INVALID FIELD IN CDB', async () => {
    const n = await h.login();
    checkCondition(await h.run(n, hex('25 00 00000001 0000 00 00')), Sense.INVALID_FIELD_IN_CDB, { fieldPointer: { cdb: true, byte: 2, bit: 7 } });
  });

  it('READ CAPACITY(16): LBPME, LBPRZ, one logical block per physical block; trimmed to ALLOCATION LENGTH', async () => {
    const n = await h.login();
    const d = good(await h.run(n, hex('9e 10 0000000000000000 00000020 00 00')));
    assert.deepStrictEqual(d, hex('00000000000003e7 00000200 00 00 c0 00 0000000000000000 0000000000000000'));
    assert.strictEqual(good(await h.run(n, hex('9e 10 0000000000000000 00000008 00 00'))).length, 8);
  });

  it('capacity change -> CAPACITY DATA HAS CHANGED for every nexus', async () => {
    const n = await h.login();
    h.vol().resize(2000);
    checkCondition(await h.run(n, hex('25 00 00000000 0000 00 00')), Sense.CAPACITY_DATA_HAS_CHANGED);
    assert.strictEqual(good(await h.run(n, hex('25 00 00000000 0000 00 00'))).readUInt32BE(0), 1999);
  });
});

describe('SYNCHRONIZE CACHE and PRE-FETCH', () => {
  let h: Harness;
  beforeEach(() => { h = new Harness([{ blockCount: 1000 }]); });
  afterEach(() => h.assertNoBugs());

  it('SYNCHRONIZE CACHE(10/16) flushes; beyond end -> LBA OUT OF RANGE', async () => {
    const n = await h.login();
    good(await h.run(n, cdb10(0x35, 0, 0)));
    good(await h.run(n, cdb16(0x91, 10n, 10, 0x02)));
    assert.strictEqual(h.vol().stats.flushes, 2);
    checkCondition(await h.run(n, cdb10(0x35, 999, 2)), Sense.LBA_OUT_OF_RANGE);
  });

  it('PRE-FETCH(10/16): GOOD in range, LBA OUT OF RANGE beyond', async () => {
    const n = await h.login();
    good(await h.run(n, cdb10(0x34, 0, 10, 0x02)));
    good(await h.run(n, cdb16(0x90, 990n, 10)));
    checkCondition(await h.run(n, cdb16(0x90, 991n, 10)), Sense.LBA_OUT_OF_RANGE);
  });
});

describe('VERIFY', () => {
  let h: Harness;
  beforeEach(() => { h = new Harness([{ blockCount: 1000 }]); });
  afterEach(() => h.assertNoBugs());

  it('BYTCHK=0: medium verification, no Data-Out', async () => {
    const n = await h.login();
    const r = await h.run(n, cdb10(0x2f, 0, 8));
    good(r);
    assert.strictEqual(r.dataOutWanted, 0);
    h.vol().injectReadError(3);
    checkCondition(await h.run(n, cdb10(0x2f, 0, 8)), Sense.UNRECOVERED_READ_ERROR, { information: 3n });
  });

  it('BYTCHK=1: match -> GOOD, miscompare -> MISCOMPARE with INFORMATION = offset', async () => {
    const n = await h.login();
    const data = pattern(2 * BS, 5);
    good(await h.run(n, write10(4, 2), { dataOut: data }));
    good(await h.run(n, cdb12(0xaf, 4, 2, 0x02), { dataOut: data }));
    const bad = Buffer.from(data);
    bad[700] ^= 0xff;
    checkCondition(await h.run(n, cdb16(0x8f, 4n, 2, 0x02), { dataOut: bad }), Sense.MISCOMPARE_DURING_VERIFY, { information: 700n });
  });

  it('BYTCHK=3: one block compared against every block', async () => {
    const n = await h.login();
    const blk = pattern(BS, 9);
    good(await h.run(n, write10(0, 3), { dataOut: Buffer.concat([blk, blk, blk]) }));
    const r = await h.run(n, cdb10(0x2f, 0, 3, 0x06), { dataOut: blk });
    good(r);
    assert.strictEqual(r.dataOutWanted, BS);
    good(await h.run(n, write10(2, 1), { dataOut: Buffer.alloc(BS) }));
    checkCondition(await h.run(n, cdb10(0x2f, 0, 3, 0x06), { dataOut: blk }), Sense.MISCOMPARE_DURING_VERIFY, { information: BigInt(2 * BS + blk.findIndex((x) => x !== 0)) });
  });

  it('BYTCHK=2 -> INVALID FIELD IN CDB byte 1 bit 2; beyond end -> LBA OUT OF RANGE', async () => {
    const n = await h.login();
    checkCondition(await h.run(n, cdb10(0x2f, 0, 1, 0x04)), Sense.INVALID_FIELD_IN_CDB, { fieldPointer: { cdb: true, byte: 1, bit: 2 } });
    checkCondition(await h.run(n, cdb10(0x2f, 999, 2)), Sense.LBA_OUT_OF_RANGE);
  });
});

describe('WRITE AND VERIFY', () => {
  it('writes the data (10/12/16); beyond end -> LBA OUT OF RANGE', async () => {
    const h = new Harness([{ blockCount: 100 }]);
    const n = await h.login();
    const d = pattern(2 * BS, 11);
    good(await h.run(n, cdb10(0x2e, 1, 2, 0x02), { dataOut: d }));
    good(await h.run(n, cdb12(0xae, 3, 2), { dataOut: d }));
    good(await h.run(n, cdb16(0x8e, 5n, 2), { dataOut: d }));
    assert.deepStrictEqual(good(await h.run(n, read10(1, 6))), Buffer.concat([d, d, d]));
    checkCondition(await h.run(n, cdb10(0x2e, 99, 2), { dataOut: d }), Sense.LBA_OUT_OF_RANGE);
    h.assertNoBugs();
  });
});

describe('ORWRITE(16)', () => {
  it('ORs the data into the medium', async () => {
    const h = new Harness([{ blockCount: 100 }]);
    const n = await h.login();
    good(await h.run(n, write10(0, 1), { dataOut: Buffer.alloc(BS, 0x0f) }));
    good(await h.run(n, cdb16(0x8b, 0n, 1), { dataOut: Buffer.alloc(BS, 0xf0) }));
    assert.deepStrictEqual(good(await h.run(n, read10(0, 1))), Buffer.alloc(BS, 0xff));
    checkCondition(await h.run(n, cdb16(0x8b, 100n, 1), { dataOut: Buffer.alloc(BS) }), Sense.LBA_OUT_OF_RANGE);
    h.assertNoBugs();
  });
});

describe('WRITE SAME', () => {
  let h: Harness;
  beforeEach(() => { h = new Harness([{ blockCount: 5000 }]); });
  afterEach(() => h.assertNoBugs());

  it('WRITE SAME(10) writes the block N times', async () => {
    const n = await h.login();
    const blk = pattern(BS, 21);
    const r = await h.run(n, cdb10(0x41, 10, 3), { dataOut: blk });
    good(r);
    assert.strictEqual(r.dataOutWanted, BS);
    assert.deepStrictEqual(good(await h.run(n, read10(10, 3))), Buffer.concat([blk, blk, blk]));
  });

  it('WRITE SAME(16) larger than one write chunk', async () => {
    const n = await h.login();
    const blk = pattern(BS, 22);
    good(await h.run(n, cdb16(0x93, 0n, 4500), { dataOut: blk }));
    const back = good(await h.run(n, read10(4490, 10)));
    assert.deepStrictEqual(back.subarray(9 * BS), blk);
  });

  it('UNMAP=1 deallocates, whatever the Data-Out block holds (reads return zeros)', async () => {
    const n = await h.login();
    good(await h.run(n, write10(0, 8), { dataOut: pattern(8 * BS, 1) }));
    good(await h.run(n, cdb10(0x41, 0, 8, 0x08), { dataOut: Buffer.alloc(BS) }));
    assert.strictEqual(h.vol().mappedBlocks, 0);
    assert.deepStrictEqual(good(await h.run(n, read10(0, 8))), Buffer.alloc(8 * BS));
    good(await h.run(n, write10(0, 2), { dataOut: pattern(2 * BS, 2) }));
    good(await h.run(n, cdb16(0x93, 0n, 2, 0x08), { dataOut: Buffer.alloc(BS, 0xff) }));
    assert.strictEqual(h.vol().mappedBlocks, 0);
    assert.deepStrictEqual(good(await h.run(n, read10(0, 2))), Buffer.alloc(2 * BS));
  });

  it('NUMBER OF LOGICAL BLOCKS 0 (WSNZ=0) writes from the LBA to the last LBA', async () => {
    const n = await h.login();
    const blk = pattern(BS, 23);
    good(await h.run(n, cdb10(0x41, 4976, 0), { dataOut: blk })); // 5000-block LU
    assert.deepStrictEqual(good(await h.run(n, read10(4976, 24))), Buffer.concat(Array(24).fill(blk)));
    assert.strictEqual(h.vol().mappedBlocks, 24);
    // ...with UNMAP=1 it deallocates to the end
    good(await h.run(n, cdb16(0x93, 4986n, 0, 0x08), { dataOut: blk }));
    assert.strictEqual(h.vol().mappedBlocks, 10);
  });

  it('NUMBER OF LOGICAL BLOCKS 0: beyond MAXIMUM WRITE SAME LENGTH -> INVALID FIELD IN CDB; LBA = capacity -> LBA OUT OF RANGE', async () => {
    const big = new Harness([{ blockCount: 0x10000 + 10 }]);
    const n = await big.login();
    checkCondition(await big.run(n, cdb10(0x41, 0, 0), { dataOut: Buffer.alloc(BS) }), Sense.INVALID_FIELD_IN_CDB, { fieldPointer: { cdb: true, byte: 7, bit: 7 } });
    checkCondition(await big.run(n, cdb16(0x93, 0n, 0), { dataOut: Buffer.alloc(BS) }), Sense.INVALID_FIELD_IN_CDB, { fieldPointer: { cdb: true, byte: 10, bit: 7 } });
    good(await big.run(n, cdb10(0x41, 11, 0), { dataOut: Buffer.alloc(BS, 1) })); // exactly 65535 blocks
    assert.strictEqual(big.vol().mappedBlocks, 0xffff);
    checkCondition(await big.run(n, cdb10(0x41, 0x10000 + 10, 0), { dataOut: Buffer.alloc(BS) }), Sense.LBA_OUT_OF_RANGE);
    big.assertNoBugs();
  });

  it('NDOB: no Data-Out, zeros; with UNMAP deallocates', async () => {
    const n = await h.login();
    good(await h.run(n, write10(0, 4), { dataOut: pattern(4 * BS, 1) }));
    const r = await h.run(n, cdb16(0x93, 0n, 4, 0x09));
    good(r);
    assert.strictEqual(r.dataOutWanted, 0);
    assert.strictEqual(h.vol().mappedBlocks, 0);
  });

  it('ANCHOR -> INVALID FIELD IN CDB', async () => {
    const n = await h.login();
    checkCondition(await h.run(n, cdb16(0x93, 0n, 1, 0x18), { dataOut: Buffer.alloc(BS) }), Sense.INVALID_FIELD_IN_CDB, { fieldPointer: { cdb: true, byte: 1, bit: 4 } });
  });

  it('Expected Data Transfer Length other than one block -> INVALID FIELD IN COMMAND INFORMATION UNIT', async () => {
    const n = await h.login();
    checkCondition(await h.run(n, cdb10(0x41, 0, 1, 0x08), { dataOut: Buffer.alloc(BS / 2) }), Sense.INVALID_FIELD_IN_COMMAND_INFORMATION_UNIT);
    checkCondition(await h.run(n, cdb10(0x41, 0, 1, 0x08), { dataOut: Buffer.alloc(BS * 2) }), Sense.INVALID_FIELD_IN_COMMAND_INFORMATION_UNIT);
    checkCondition(await h.run(n, cdb16(0x93, 0n, 1, 0x01), { expectedLength: BS }), Sense.INVALID_FIELD_IN_COMMAND_INFORMATION_UNIT);
  });

  it('more than MAXIMUM WRITE SAME LENGTH -> INVALID FIELD IN CDB', async () => {
    const h2 = new Harness([{ blockCount: 70000 }]);
    const n = await h2.login();
    checkCondition(await h2.run(n, cdb16(0x93, 0n, 65536, 0x08), { dataOut: Buffer.alloc(BS) }), Sense.INVALID_FIELD_IN_CDB, { fieldPointer: { cdb: true, byte: 10, bit: 7 } });
    good(await h2.run(n, cdb16(0x93, 0n, 65535, 0x08), { dataOut: Buffer.alloc(BS) }));
    h2.assertNoBugs();
  });

  it('beyond end -> LBA OUT OF RANGE, also with 0 blocks past the end', async () => {
    const n = await h.login();
    checkCondition(await h.run(n, cdb10(0x41, 4999, 2), { dataOut: Buffer.alloc(BS) }), Sense.LBA_OUT_OF_RANGE);
    checkCondition(await h.run(n, cdb10(0x41, 5001, 0), { dataOut: Buffer.alloc(BS) }), Sense.LBA_OUT_OF_RANGE);
    checkCondition(await h.run(n, cdb10(0x41, 0x80000000, 0), { dataOut: Buffer.alloc(BS) }), Sense.LBA_OUT_OF_RANGE);
  });
});

describe('UNMAP', () => {
  let h: Harness;
  beforeEach(() => { h = new Harness([{ blockCount: 1000 }]); });
  afterEach(() => h.assertNoBugs());
  const unmapCdb = (len: number, anchor = 0) => { const b = hex('42 00 00 00 00 00 00 0000 00'); b[1] = anchor; b.writeUInt16BE(len, 7); return b; };
  const list = (descs: [bigint, number][]) => {
    const b = Buffer.alloc(8 + 16 * descs.length);
    b.writeUInt16BE(6 + 16 * descs.length, 0);
    b.writeUInt16BE(16 * descs.length, 2);
    descs.forEach(([lba, n], i) => { b.writeBigUInt64BE(lba, 8 + 16 * i); b.writeUInt32BE(n, 16 + 16 * i); });
    return b;
  };

  it('deallocates every descriptor; reads return zeros', async () => {
    const n = await h.login();
    good(await h.run(n, write10(0, 20), { dataOut: pattern(20 * BS, 3) }));
    const l = list([[0n, 4], [10n, 5]]);
    good(await h.run(n, unmapCdb(l.length), { dataOut: l }));
    assert.strictEqual(h.vol().mappedBlocks, 11);
    assert.deepStrictEqual(good(await h.run(n, read10(10, 5))), Buffer.alloc(5 * BS));
  });

  it('parameter list length 0 -> GOOD; 1..7 -> PARAMETER LIST LENGTH ERROR', async () => {
    const n = await h.login();
    good(await h.run(n, unmapCdb(0)));
    checkCondition(await h.run(n, unmapCdb(6), { dataOut: Buffer.alloc(6) }), Sense.PARAMETER_LIST_LENGTH_ERROR);
  });

  it('descriptor beyond end -> LBA OUT OF RANGE, nothing deallocated', async () => {
    const n = await h.login();
    good(await h.run(n, write10(0, 4), { dataOut: pattern(4 * BS, 3) }));
    const l = list([[0n, 4], [998n, 3]]);
    checkCondition(await h.run(n, unmapCdb(l.length), { dataOut: l }), Sense.LBA_OUT_OF_RANGE);
    assert.strictEqual(h.vol().mappedBlocks, 4);
  });

  it('more descriptors than MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT -> INVALID FIELD IN PARAMETER LIST', async () => {
    const n = await h.login();
    const l = list(Array.from({ length: 257 }, (_v, i) => [BigInt(i), 1] as [bigint, number]));
    const r = await h.run(n, unmapCdb(l.length), { dataOut: l });
    checkCondition(r, Sense.INVALID_FIELD_IN_PARAMETER_LIST, { fieldPointer: { cdb: false, byte: 2, bit: 7 } });
  });

  it('ANCHOR -> INVALID FIELD IN CDB byte 1 bit 0', async () => {
    const n = await h.login();
    const l = list([[0n, 1]]);
    checkCondition(await h.run(n, unmapCdb(l.length, 1), { dataOut: l }), Sense.INVALID_FIELD_IN_CDB, { fieldPointer: { cdb: true, byte: 1, bit: 0 } });
  });
});

describe('GET LBA STATUS', () => {
  let h: Harness;
  beforeEach(() => { h = new Harness([{ blockCount: 1000 }]); });
  afterEach(() => h.assertNoBugs());
  const gls = (lba: bigint, alloc = 0x1000) => { const b = hex('9e 12 0000000000000000 00000000 00 00'); b.writeBigUInt64BE(lba, 2); b.writeUInt32BE(alloc, 10); return b; };

  it('reports mapped and deallocated runs', async () => {
    const n = await h.login();
    good(await h.run(n, write10(8, 8), { dataOut: pattern(8 * BS, 1) }));
    const d = good(await h.run(n, gls(0n)));
    assert.deepStrictEqual(d.subarray(0, 56), hex(`
      00000034 00000000
      0000000000000000 00000008 01 000000
      0000000000000008 00000008 00 000000
      0000000000000010 000003d8 01 000000`));
  });

  it('ALLOCATION LENGTH bounds the descriptors', async () => {
    const n = await h.login();
    good(await h.run(n, write10(8, 8), { dataOut: pattern(8 * BS, 1) }));
    const d = good(await h.run(n, gls(0n, 24)));
    assert.strictEqual(d.length, 24);
  });

  it('LBA beyond end -> LBA OUT OF RANGE', async () => {
    const n = await h.login();
    checkCondition(await h.run(n, gls(1000n)), Sense.LBA_OUT_OF_RANGE);
    good(await h.run(n, gls(999n)));
  });
});

describe('COMPARE AND WRITE', () => {
  let h: Harness;
  beforeEach(() => { h = new Harness([{ blockCount: 1000 }]); });
  afterEach(() => h.assertNoBugs());
  const caw = (lba: bigint, n: number) => { const b = hex('89 00 0000000000000000 000000 00 00 00'); b.writeBigUInt64BE(lba, 2); b[13] = n; return b; };

  it('match -> writes; dataOutWanted = 2 x blocks', async () => {
    const n = await h.login();
    const old = pattern(2 * BS, 1), neu = pattern(2 * BS, 2);
    good(await h.run(n, write10(5, 2), { dataOut: old }));
    const r = await h.run(n, caw(5n, 2), { dataOut: Buffer.concat([old, neu]) });
    good(r);
    assert.strictEqual(r.dataOutWanted, 4 * BS);
    assert.deepStrictEqual(good(await h.run(n, read10(5, 2))), neu);
  });

  it('miscompare -> MISCOMPARE with INFORMATION = offset, nothing written', async () => {
    const n = await h.login();
    const old = pattern(2 * BS, 1);
    good(await h.run(n, write10(5, 2), { dataOut: old }));
    const wrong = Buffer.from(old);
    wrong[BS + 3] ^= 1;
    checkCondition(await h.run(n, caw(5n, 2), { dataOut: Buffer.concat([wrong, pattern(2 * BS, 9)]) }), Sense.MISCOMPARE_DURING_VERIFY, { information: BigInt(BS + 3) });
    assert.deepStrictEqual(good(await h.run(n, read10(5, 2))), old);
  });

  it('beyond end -> LBA OUT OF RANGE; 0 blocks without Data-Out GOOD', async () => {
    const n = await h.login();
    checkCondition(await h.run(n, caw(999n, 2), { dataOut: Buffer.alloc(4 * BS) }), Sense.LBA_OUT_OF_RANGE);
    good(await h.run(n, caw(0n, 0)));
  });

  it('Data-Out other than 2 x NUMBER OF LOGICAL BLOCKS (256 wrapped to 0) -> INVALID FIELD IN CDB byte 13', async () => {
    const n = await h.login();
    const fp = { fieldPointer: { cdb: true, byte: 13, bit: 7 } };
    checkCondition(await h.run(n, caw(0n, 0), { dataOut: Buffer.alloc(512 * BS) }), Sense.INVALID_FIELD_IN_CDB, fp);
    checkCondition(await h.run(n, caw(0n, 1), { dataOut: Buffer.alloc(4 * BS) }), Sense.INVALID_FIELD_IN_CDB, fp);
    checkCondition(await h.run(n, caw(0n, 3), { dataOut: Buffer.alloc(4 * BS) }), Sense.INVALID_FIELD_IN_CDB, fp);
  });

  it('is atomic against a WRITE to the same range', async () => {
    const n = await h.login();
    const m = await h.login('iqn.x:other');
    const old = Buffer.alloc(BS, 0xaa), neu = Buffer.alloc(BS, 0xbb), other = Buffer.alloc(BS, 0xcc);
    good(await h.run(n, write10(0, 1), { dataOut: old }));
    let releaseRead!: () => void;
    const held = new Promise<void>((r) => { releaseRead = r; });
    let reads = 0;
    h.vol().hooks.beforeRead = async () => { if (reads++ === 0) await held; };
    const cawDone = h.run(n, caw(0n, 1), { dataOut: Buffer.concat([old, neu]) });
    await new Promise((r) => setImmediate(r));
    const writeDone = h.run(m, write10(0, 1), { dataOut: other });
    await new Promise((r) => setImmediate(r));
    assert.strictEqual(h.vol().stats.writes, 1, 'the WRITE waits for the COMPARE AND WRITE');
    releaseRead();
    good(await cawDone);
    good(await writeDone);
    h.vol().hooks = {};
    assert.deepStrictEqual(good(await h.run(n, read10(0, 1))), other);
  });
});

describe('READ DEFECT DATA', () => {
  it('(10) and (12): empty lists', async () => {
    const h = new Harness();
    const n = await h.login();
    assert.deepStrictEqual(good(await h.run(n, hex('37 00 18 00 00 00 00 0004 00'))), hex('00 18 0000'));
    assert.deepStrictEqual(good(await h.run(n, hex('b7 1d 00 00 00 00 00000008 00 00'))), hex('00 1d 0000 00000000'));
    h.assertNoBugs();
  });
});

describe('WRITE ATOMIC(16)', () => {
  let h: Harness;
  beforeEach(() => { h = new Harness([{ blockCount: 4096 }, { blockCount: 64, readOnly: true }]); });
  afterEach(() => h.assertNoBugs());
  /** SBC-4 5.48: LBA bytes 2-9, ATOMIC BOUNDARY 10-11, TRANSFER LENGTH 12-13. */
  const wa = (lba: bigint, len: number, flags = 0, boundary = 0) => {
    const b = Buffer.alloc(16); b[0] = 0x9c; b[1] = flags; b.writeBigUInt64BE(lba, 2); b.writeUInt16BE(boundary, 10); b.writeUInt16BE(len, 12); return b;
  };

  it('writes the blocks in one volume request; DPO/FUA accepted (FUA reaches the volume)', async () => {
    const n = await h.login();
    const data = pattern(256 * BS, 31);
    const writes = h.vol().stats.writes;
    const r = await h.run(n, wa(100n, 256, 0x18), { dataOut: data });
    good(r);
    assert.strictEqual(r.dataOutWanted, 256 * BS);
    assert.strictEqual(h.vol().stats.writes - writes, 1);
    assert.strictEqual(h.vol().stats.fuaWrites, 1);
    assert.deepStrictEqual(good(await h.run(n, read10(100, 256))), data);
  });

  it('more than MAXIMUM ATOMIC TRANSFER LENGTH -> INVALID FIELD IN CDB byte 12; ATOMIC BOUNDARY != 0 -> byte 10', async () => {
    const n = await h.login();
    checkCondition(await h.run(n, wa(0n, 2049), { dataOut: Buffer.alloc(2049 * BS) }), Sense.INVALID_FIELD_IN_CDB, { fieldPointer: { cdb: true, byte: 12, bit: 7 } });
    checkCondition(await h.run(n, wa(0n, 8, 0, 4), { dataOut: Buffer.alloc(8 * BS) }), Sense.INVALID_FIELD_IN_CDB, { fieldPointer: { cdb: true, byte: 10, bit: 7 } });
    assert.strictEqual(h.vol().mappedBlocks, 0);
  });

  it('0 blocks is GOOD; beyond the end -> LBA OUT OF RANGE; WRPROTECT != 0 refused; read-only LU -> WRITE PROTECTED', async () => {
    const n = await h.login();
    good(await h.run(n, wa(0n, 0)));
    checkCondition(await h.run(n, wa(4096n - 8n, 16), { dataOut: Buffer.alloc(16 * BS) }), Sense.LBA_OUT_OF_RANGE);
    checkCondition(await h.run(n, wa(1n << 63n, 1), { dataOut: Buffer.alloc(BS) }), Sense.LBA_OUT_OF_RANGE);
    checkCondition(await h.run(n, wa(0n, 1, 0x20), { dataOut: Buffer.alloc(BS) }), Sense.INVALID_FIELD_IN_CDB, { fieldPointer: { cdb: true, byte: 1, bit: 5 } });
    checkCondition(await h.run(n, wa(0n, 1), { dataOut: Buffer.alloc(BS), lun: 1 }), Sense.WRITE_PROTECTED);
  });

  it('a short Data-Out writes nothing (all or nothing)', async () => {
    const n = await h.login();
    checkCondition(await h.run(n, wa(0n, 4), { dataOut: Buffer.alloc(3 * BS), expectedLength: 4 * BS }), Sense.PARAMETER_LIST_LENGTH_ERROR);
    assert.strictEqual(h.vol().mappedBlocks, 0);
  });

  it('atomic against other writes: an overlapping WRITE waits until the atomic write is done', async () => {
    const n = await h.login();
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const order: string[] = [];
    h.vol().hooks.beforeWrite = async (lba, blocks) => {
      order.push(`${lba}+${blocks}`);
      if (blocks === 8) await gate;
    };
    const atomic = h.run(n, wa(0n, 8), { dataOut: Buffer.alloc(8 * BS, 0xaa) });
    while (order.length === 0) await new Promise((r) => setImmediate(r));
    const other = h.run(n, write10(4, 1), { dataOut: Buffer.alloc(BS, 0xbb) });
    for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
    assert.deepStrictEqual(order, ['0+8'], 'the overlapping WRITE has not reached the volume');
    release();
    good(await atomic);
    good(await other);
    assert.deepStrictEqual(order, ['0+8', '4+1']);
    const back = good(await h.run(n, read10(0, 8)));
    assert.deepStrictEqual(back.subarray(4 * BS, 5 * BS), Buffer.alloc(BS, 0xbb));
    assert.deepStrictEqual(back.subarray(0, 4 * BS), Buffer.alloc(4 * BS, 0xaa));
  });
});

describe('512e LU (physicalBlockSize 4096 on 512-byte blocks)', () => {
  it('READ CAPACITY(16) LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT 3, LOWEST ALIGNED LBA 0; 512n stays 0', async () => {
    const h = new Harness([{ physicalBlockSize: 4096 }, { lun: 1 }]);
    const n = await h.login();
    const rc16 = hex('9e 10 0000000000000000 00000020 00 00');
    const d = good(await h.run(n, rc16));
    assert.strictEqual(d.readUInt32BE(8), 512);
    assert.strictEqual(d[13] & 0x0f, 3);
    assert.strictEqual(d.readUInt16BE(14) & 0x3fff, 0);
    assert.strictEqual(d[14] & 0xc0, 0xc0); // LBPME, LBPRZ unchanged
    assert.strictEqual(good(await h.run(n, rc16, { lun: 1 }))[13], 0);
    h.assertNoBugs();
  });

  it('GET LBA STATUS still reports per logical block (an unaligned unmap is exact)', async () => {
    const h = new Harness([{ physicalBlockSize: 4096, blockCount: 64 }]);
    const n = await h.login();
    good(await h.run(n, write10(0, 16), { dataOut: pattern(16 * BS, 1) }));
    good(await h.run(n, hex('42 00 00 00 00 00 00 0018 00'), { dataOut: hex('0016 0010 00000000 0000000000000003 00000002 00000000') }));
    const d = good(await h.run(n, hex('9e 12 0000000000000000 00000040 00 00')));
    assert.deepStrictEqual(d.subarray(8, 8 + 48), hex(
      '0000000000000000 00000003 00 000000  0000000000000003 00000002 01 000000  0000000000000005 0000000b 00 000000'));
  });
});

describe('SANITIZE', () => {
  let h: Harness;
  beforeEach(() => { h = new Harness([{ blockCount: 3000 }, { blockCount: 64, readOnly: true }]); });
  afterEach(() => h.assertNoBugs());
  const san = (sa: number, len: number, immed = false) => { const b = Buffer.alloc(10); b[0] = 0x48; b[1] = (immed ? 0x80 : 0) | sa; b.writeUInt16BE(len, 7); return b; };
  const overwriteList = (pattern: Buffer, count = 1, invert = false) => {
    const h4 = Buffer.from([(invert ? 0x80 : 0) | count, 0, 0, 0]);
    h4.writeUInt16BE(pattern.length, 2);
    return Buffer.concat([h4, pattern]);
  };
  const TUR = hex('00 00 00 00 00 00');

  it('OVERWRITE repeats the pattern over every block, in bounded chunks', async () => {
    const n = await h.login();
    const list = overwriteList(hex('a1b2c3d4'));
    const writes = h.vol().stats.writes;
    good(await h.run(n, san(1, list.length), { dataOut: list }));
    assert.strictEqual(h.vol().stats.writes - writes, 2, '3000 blocks as 2048 + 952');
    const blk = Buffer.alloc(BS);
    for (let i = 0; i < BS; i += 4) hex('a1b2c3d4').copy(blk, i);
    assert.deepStrictEqual(await h.vol().read(0, 1), blk);
    assert.deepStrictEqual(await h.vol().read(2999, 1), blk);
  });

  it('OVERWRITE with INVERT over 2 passes ends with the pattern as given', async () => {
    const n = await h.login();
    const list = overwriteList(Buffer.alloc(BS, 0x0f), 2, true);
    good(await h.run(n, san(1, list.length), { dataOut: list }));
    assert.deepStrictEqual(await h.vol().read(1234, 1), Buffer.alloc(BS, 0x0f));
  });

  it('OVERWRITE parameter checks: list length <= 4 or > block size + 4 -> INVALID FIELD IN CDB; count 0, pattern length 0 or > block -> INVALID FIELD IN PARAMETER LIST', async () => {
    const n = await h.login();
    for (const len of [0, 4]) checkCondition(await h.run(n, san(1, len), { dataOut: Buffer.alloc(len) }), Sense.INVALID_FIELD_IN_CDB, { fieldPointer: { cdb: true, byte: 7, bit: 7 } });
    checkCondition(await h.run(n, san(1, BS + 5), { dataOut: Buffer.alloc(BS + 5) }), Sense.INVALID_FIELD_IN_CDB, { fieldPointer: { cdb: true, byte: 7, bit: 7 } });
    const zeroCount = overwriteList(Buffer.alloc(BS, 1), 0);
    checkCondition(await h.run(n, san(1, zeroCount.length), { dataOut: zeroCount }), Sense.INVALID_FIELD_IN_PARAMETER_LIST, { fieldPointer: { cdb: false, byte: 0, bit: 4 } });
    const noPattern = Buffer.concat([hex('01 00 0000'), Buffer.alloc(BS)]);
    checkCondition(await h.run(n, san(1, noPattern.length), { dataOut: noPattern }), Sense.INVALID_FIELD_IN_PARAMETER_LIST, { fieldPointer: { cdb: false, byte: 2, bit: 7 } });
    const tooLong = Buffer.concat([hex('01 00 0204'), Buffer.alloc(BS)]);
    checkCondition(await h.run(n, san(1, tooLong.length), { dataOut: tooLong }), Sense.INVALID_FIELD_IN_PARAMETER_LIST, { fieldPointer: { cdb: false, byte: 2, bit: 7 } });
    assert.strictEqual(h.vol().mappedBlocks, 0);
  });

  it('BLOCK ERASE and CRYPTOGRAPHIC ERASE deallocate everything; a parameter list -> INVALID FIELD IN CDB', async () => {
    const n = await h.login();
    for (const sa of [2, 3]) {
      good(await h.run(n, write10(0, 8), { dataOut: pattern(8 * BS, sa) }));
      good(await h.run(n, write10(2990, 10), { dataOut: pattern(10 * BS, sa) }));
      checkCondition(await h.run(n, san(sa, 8), { dataOut: Buffer.alloc(8) }), Sense.INVALID_FIELD_IN_CDB, { fieldPointer: { cdb: true, byte: 7, bit: 7 } });
      good(await h.run(n, san(sa, 0)));
      assert.strictEqual(h.vol().mappedBlocks, 0);
      assert.deepStrictEqual(good(await h.run(n, read10(0, 8))), Buffer.alloc(8 * BS));
    }
  });

  it('EXIT FAILURE MODE: no parameter list allowed; other service actions -> INVALID FIELD IN CDB byte 1', async () => {
    const n = await h.login();
    good(await h.run(n, san(0x1f, 0)));
    checkCondition(await h.run(n, san(0x1f, 8), { dataOut: Buffer.alloc(8) }), Sense.INVALID_FIELD_IN_CDB, { fieldPointer: { cdb: true, byte: 7, bit: 7 } });
    for (const sa of [0, 4, 0x10, 0x1e]) checkCondition(await h.run(n, san(sa, 0)), Sense.INVALID_FIELD_IN_CDB, { fieldPointer: { cdb: true, byte: 1, bit: 4 } });
  });

  it('while it runs (IMMED=1): NOT READY, SANITIZE IN PROGRESS on every nexus; INQUIRY, REPORT LUNS, REQUEST SENSE served', async () => {
    const n = await h.login();
    const other = await h.login('iqn.2026-01.dev.test:other', '023d00000009');
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    h.vol().hooks.beforeWrite = () => gate;
    const list = overwriteList(Buffer.alloc(BS, 0x5a));
    good(await h.run(n, san(1, list.length, true), { dataOut: list })); // IMMED: GOOD at once
    checkCondition(await h.run(n, TUR), Sense.SANITIZE_IN_PROGRESS);
    checkCondition(await h.run(other, read10(0, 1)), Sense.SANITIZE_IN_PROGRESS);
    checkCondition(await h.run(other, san(2, 0)), Sense.SANITIZE_IN_PROGRESS);
    good(await h.run(other, hex('12 00 00 00 60 00')));
    good(await h.run(other, hex('a0 00 00 00 00 00 00 00 01 00 00 00')));
    const rs = good(await h.run(other, hex('03 00 00 00 12 00')));
    assert.deepStrictEqual([rs[2] & 0x0f, rs[12], rs[13]], [0x02, 0x04, 0x1b]);
    good(await h.run(n, TUR, { lun: 1 })); // other LUs are not affected
    // a LOGICAL UNIT RESET does not stop it
    h.target.taskManagement(5, n, 0);
    checkCondition(await h.run(n, TUR), Sense.BUS_DEVICE_RESET);
    checkCondition(await h.run(n, TUR), Sense.SANITIZE_IN_PROGRESS);
    release();
    for (let i = 0; i < 50 && h.target['luns'].get(0)!.sanitizing; i++) await new Promise((r) => setImmediate(r));
    checkCondition(await h.run(other, TUR), Sense.BUS_DEVICE_RESET);
    good(await h.run(other, TUR));
    assert.deepStrictEqual(await h.vol().read(2999, 1), Buffer.alloc(BS, 0x5a));
  });

  it('aborted task (IMMED=0): the command ends at once, the sanitize goes on and reports its progress until it ends', async () => {
    const n = await h.login();
    const lu = h.target['luns'].get(0)!;
    const held: Array<() => void> = [];
    h.vol().hooks.beforeWrite = () => new Promise<void>((r) => held.push(r));
    const list = overwriteList(Buffer.alloc(BS, 0x3c));
    const ac = new AbortController();
    let settled = false;
    const cmd = h.run(n, san(1, list.length), { dataOut: list, abort: ac.signal }).then((r) => { settled = true; return r; });
    while (held.length === 0) await new Promise((r) => setImmediate(r)); // first 1 MiB chunk in flight
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    assert.strictEqual(settled, false, 'IMMED=0: the command waits for the sanitize');
    ac.abort();
    await cmd; // no status goes out for an aborted task; the transport discards whatever this is
    assert.ok(lu.sanitizing, 'the abort did not stop the sanitize (SBC-3 4.11.2)');
    assert.strictEqual(lu.sanitizeProgress, 0);
    checkCondition(await h.run(n, TUR), Sense.SANITIZE_IN_PROGRESS);
    held.shift()!(); // chunk 1 (2048 of 3000 blocks) done
    while (held.length === 0) await new Promise((r) => setImmediate(r));
    assert.strictEqual(lu.sanitizeProgress, Math.floor((2048 / 3000) * 65536));
    checkCondition(await h.run(n, read10(0, 1)), Sense.SANITIZE_IN_PROGRESS);
    held.shift()!();
    await lu.sanitizeRun;
    assert.strictEqual(lu.sanitizing, false);
    assert.strictEqual(lu.sanitizeFailed, false);
    good(await h.run(n, TUR));
    assert.deepStrictEqual(await h.vol().read(2999, 1), Buffer.alloc(BS, 0x3c), 'the whole LU was overwritten');
  });

  it('task aborted before it starts: no sanitize at all', async () => {
    const n = await h.login();
    const ac = new AbortController();
    ac.abort();
    const writes = h.vol().stats.writes;
    await h.run(n, san(2, 0), { abort: ac.signal });
    good(await h.run(n, write10(0, 1), { dataOut: pattern(BS, 7) }));
    await h.run(n, san(1, 4 + BS), { dataOut: overwriteList(Buffer.alloc(BS, 1)), abort: ac.signal });
    good(await h.run(n, TUR));
    assert.strictEqual(h.vol().stats.writes - writes, 1, 'only the WRITE(10)');
    assert.strictEqual(h.vol().mappedBlocks, 1);
  });

  it('an abort after the sanitize ended changes nothing: GOOD was already returned', async () => {
    const n = await h.login();
    const ac = new AbortController();
    good(await h.run(n, san(2, 0), { abort: ac.signal }));
    ac.abort();
    good(await h.run(n, TUR));
  });

  it('a failed sanitize: MEDIUM ERROR, SANITIZE COMMAND FAILED for medium access until a SANITIZE succeeds', async () => {
    const n = await h.login();
    h.vol().injectWriteError(2500);
    const list = overwriteList(Buffer.alloc(BS, 1));
    checkCondition(await h.run(n, san(1, list.length), { dataOut: list }), Sense.SANITIZE_COMMAND_FAILED);
    checkCondition(await h.run(n, read10(0, 1)), Sense.SANITIZE_COMMAND_FAILED);
    h.vol().clearFaults();
    good(await h.run(n, san(2, 0)));
    good(await h.run(n, read10(0, 1)));
  });

  it('RESERVE(6) by another nexus -> RESERVATION CONFLICT; read-only LU -> WRITE PROTECTED', async () => {
    const n = await h.login();
    const other = await h.login('iqn.2026-01.dev.test:other', '023d00000009');
    good(await h.run(other, hex('16 00 00 00 00 00')));
    const list = overwriteList(Buffer.alloc(BS, 1));
    assert.strictEqual((await h.run(n, san(1, list.length), { dataOut: list })).status, Status.RESERVATION_CONFLICT);
    assert.strictEqual((await h.run(n, san(2, 0))).status, Status.RESERVATION_CONFLICT);
    checkCondition(await h.run(n, san(2, 0), { lun: 1 }), Sense.WRITE_PROTECTED);
  });
});
