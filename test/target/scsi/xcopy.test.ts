// EXTENDED COPY(LID1) and RECEIVE COPY RESULTS through ScsiTarget.execute(). Parameter lists are
// laid out by hand here (SPC-4 6.4.3, 6.4.5.x, 6.4.6.5), never by the code under test.
import * as assert from 'assert';
import { Sense, Status } from '../../../target/scsi/sense';
import { Nexus } from '../../../target/scsi/types';
import { MemoryVolume } from '../../helpers/memory-volume';
import { Harness, checkCondition, conflict, good, hex, pattern } from './harness';

const BS = 512;

function xcopyCdb(len: number): Buffer {
  const b = Buffer.alloc(16);
  b[0] = 0x83;
  b.writeUInt32BE(len, 10);
  return b;
}

function rcrCdb(sa: number, listId: number, alloc = 1024): Buffer {
  const b = Buffer.alloc(16);
  b[0] = 0x84; b[1] = sa; b[2] = listId;
  b.writeUInt32BE(alloc, 10);
  return b;
}

/** Identification CSCD descriptor (E4h) naming an NAA designator, block device, DISK BLOCK LENGTH. */
function cscd(naa: Buffer, blockLength = BS, type = 0xe4, peripheral = 0): Buffer {
  const d = Buffer.alloc(32);
  d[0] = type; d[1] = peripheral;
  d[4] = 0x01; d[5] = 0x03; d[7] = naa.length; // binary, association LU, NAA
  naa.copy(d, 8);
  d.writeUIntBE(blockLength, 29, 3);
  return d;
}

/** Block device to block device segment descriptor (02h). */
function b2b(src: number, dst: number, blocks: number, srcLba: number, dstLba: number, type = 0x02): Buffer {
  const d = Buffer.alloc(28);
  d[0] = type; d.writeUInt16BE(0x18, 2);
  d.writeUInt16BE(src, 4); d.writeUInt16BE(dst, 6);
  d.writeUInt16BE(blocks, 10);
  d.writeBigUInt64BE(BigInt(srcLba), 12); d.writeBigUInt64BE(BigInt(dstLba), 20);
  return d;
}

interface ListOpts { listId?: number; usage?: number; inline?: number; byte1?: number; cscdLen?: number; segLen?: number }

function paramList(cscds: Buffer[], segs: Buffer[], o: ListOpts = {}): Buffer {
  const c = Buffer.concat(cscds);
  const s = Buffer.concat(segs);
  const h = Buffer.alloc(16);
  h[0] = o.listId ?? 1;
  h[1] = o.byte1 ?? ((o.usage ?? 2) << 3);
  h.writeUInt16BE(o.cscdLen ?? c.length, 2);
  h.writeUInt32BE(o.segLen ?? s.length, 8);
  h.writeUInt32BE(o.inline ?? 0, 12);
  return Buffer.concat([h, c, s]);
}

describe('EXTENDED COPY(LID1)', () => {
  let h: Harness;
  let n: Nexus;
  const naa = (lun: number) => h.vol(lun).naa;
  const xcopy = (list: Buffer, nexus = n, lun = 0) => h.run(nexus, xcopyCdb(list.length), { dataOut: list, lun });

  beforeEach(async () => {
    h = new Harness([{ blockCount: 8192 }, { blockCount: 4096 }, { blockCount: 1024, blockSize: 4096 }, { blockCount: 1024, readOnly: true }]);
    n = await h.login();
  });
  afterEach(() => h.assertNoBugs());

  it('copies blocks within one LU, in bounded chunks through the volume', async () => {
    const data = pattern(4096 * BS, 3);
    good(await h.run(n, hex('8a 00 0000000000000000 00001000 00 00'), { dataOut: data }));
    const writes = h.vol().stats.writes;
    good(await xcopy(paramList([cscd(naa(0))], [b2b(0, 0, 4096, 0, 4096)])));
    assert.strictEqual(h.vol().stats.writes - writes, 2, '2 MiB copied as two 1 MiB writes');
    assert.deepStrictEqual(await h.vol().read(4096, 4096), data);
  });

  it('copies between two LUs of the target; source and destination CSCD indexes differ', async () => {
    const data = pattern(10 * BS, 4);
    await h.vol(1).write(100, data, { fua: false });
    good(await xcopy(paramList([cscd(naa(0)), cscd(naa(1))], [b2b(1, 0, 10, 100, 7)])));
    assert.deepStrictEqual(await h.vol(0).read(7, 10), data);
  });

  it('overlapping ranges of one LU (destination ahead of source) copy as if through a buffer', async () => {
    const data = pattern(3000 * BS, 5);
    await h.vol().write(0, data, { fua: false });
    good(await xcopy(paramList([cscd(naa(0))], [b2b(0, 0, 3000, 0, 100)])));
    assert.deepStrictEqual(await h.vol().read(100, 3000), data);
  });

  it('runs every segment in order; 0 blocks is not an error', async () => {
    await h.vol().write(0, pattern(4 * BS, 6), { fua: false });
    good(await xcopy(paramList([cscd(naa(0))], [b2b(0, 0, 2, 0, 10), b2b(0, 0, 0, 0, 20), b2b(0, 0, 2, 10, 30)])));
    assert.deepStrictEqual(await h.vol().read(30, 2), await h.vol().read(0, 2));
    assert.strictEqual(h.vol().isMapped(20), false);
  });

  it('PARAMETER LIST LENGTH 0 -> GOOD, nothing copied', async () => {
    const writes = h.vol().stats.writes;
    good(await h.run(n, xcopyCdb(0)));
    assert.strictEqual(h.vol().stats.writes, writes);
  });

  it('header shorter than 16 bytes, or lengths past the parameter list -> PARAMETER LIST LENGTH ERROR', async () => {
    checkCondition(await h.run(n, xcopyCdb(15), { dataOut: Buffer.alloc(15) }), Sense.PARAMETER_LIST_LENGTH_ERROR);
    const full = paramList([cscd(naa(0))], [b2b(0, 0, 1, 0, 1)]);
    const cut = (len: number) => h.run(n, xcopyCdb(len), { dataOut: full.subarray(0, len) });
    checkCondition(await cut(16 + 31), Sense.PARAMETER_LIST_LENGTH_ERROR); // CSCD cut short
    checkCondition(await cut(16 + 32 + 27), Sense.PARAMETER_LIST_LENGTH_ERROR); // segment cut short
    // CSCD DESCRIPTOR LIST LENGTH not a whole number of 32-byte descriptors
    checkCondition(await xcopy(paramList([cscd(naa(0))], [b2b(0, 0, 1, 0, 1)], { cscdLen: 31 })), Sense.PARAMETER_LIST_LENGTH_ERROR);
    // a segment descriptor longer than the segment list
    checkCondition(await xcopy(paramList([cscd(naa(0))], [b2b(0, 0, 1, 0, 1)], { segLen: 20 })), Sense.PARAMETER_LIST_LENGTH_ERROR);
  });

  it('LIST ID USAGE 01b, reserved bits, LIST ID USAGE 11b with a LIST IDENTIFIER -> INVALID FIELD IN PARAMETER LIST', async () => {
    const segs = [b2b(0, 0, 1, 0, 1)];
    checkCondition(await xcopy(paramList([cscd(naa(0))], segs, { usage: 1 })), Sense.INVALID_FIELD_IN_PARAMETER_LIST, { fieldPointer: { cdb: false, byte: 1, bit: 4 } });
    checkCondition(await xcopy(paramList([cscd(naa(0))], segs, { byte1: 0x40 })), Sense.INVALID_FIELD_IN_PARAMETER_LIST, { fieldPointer: { cdb: false, byte: 1, bit: 7 } });
    checkCondition(await xcopy(paramList([cscd(naa(0))], segs, { usage: 3, listId: 5 })), Sense.INVALID_FIELD_IN_PARAMETER_LIST, { fieldPointer: { cdb: false, byte: 0, bit: 7 } });
    good(await xcopy(paramList([cscd(naa(0))], segs, { usage: 3, listId: 0 })));
    // STR and PRIORITY are accepted (hints)
    good(await xcopy(paramList([cscd(naa(0))], segs, { byte1: 0x20 | (2 << 3) | 0x07 })));
  });

  it('inline data (MAXIMUM INLINE DATA LENGTH 0) -> INVALID FIELD IN PARAMETER LIST byte 12', async () => {
    const list = Buffer.concat([paramList([cscd(naa(0))], [b2b(0, 0, 1, 0, 1)], { inline: 4 }), Buffer.alloc(4)]);
    checkCondition(await xcopy(list), Sense.INVALID_FIELD_IN_PARAMETER_LIST, { fieldPointer: { cdb: false, byte: 12, bit: 7 } });
  });

  it('more than 16 CSCD or segment descriptors -> TOO MANY ...; more than 1024 descriptor bytes -> PARAMETER LIST LENGTH ERROR', async () => {
    const c = cscd(naa(0));
    const s = b2b(0, 0, 1, 0, 1);
    checkCondition(await xcopy(paramList(Array(17).fill(c), [s])), Sense.TOO_MANY_TARGET_DESCRIPTORS);
    checkCondition(await xcopy(paramList([c], Array(17).fill(s))), Sense.TOO_MANY_SEGMENT_DESCRIPTORS);
    good(await xcopy(paramList(Array(16).fill(c), Array(16).fill(s))));
    checkCondition(await xcopy(paramList(Array(17).fill(c), Array(18).fill(s))), Sense.PARAMETER_LIST_LENGTH_ERROR);
  });

  it('unsupported descriptor type codes -> UNSUPPORTED TARGET / SEGMENT DESCRIPTOR TYPE CODE pointing at them', async () => {
    checkCondition(await xcopy(paramList([cscd(naa(0)), cscd(naa(0), BS, 0xe0)], [b2b(0, 0, 1, 0, 1)])),
      Sense.UNSUPPORTED_TARGET_DESCRIPTOR_TYPE_CODE, { fieldPointer: { cdb: false, byte: 48, bit: undefined } });
    const streamToStream = Buffer.alloc(20);
    streamToStream[0] = 0x03; streamToStream.writeUInt16BE(0x10, 2);
    checkCondition(await xcopy(paramList([cscd(naa(0))], [b2b(0, 0, 1, 0, 1), streamToStream])),
      Sense.UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE_CODE, { fieldPointer: { cdb: false, byte: 16 + 32 + 28, bit: undefined } });
    // a block-to-block descriptor of the wrong length
    const odd = Buffer.concat([b2b(0, 0, 1, 0, 1), Buffer.alloc(4)]);
    odd.writeUInt16BE(0x1c, 2);
    checkCondition(await xcopy(paramList([cscd(naa(0))], [odd])), Sense.INVALID_FIELD_IN_PARAMETER_LIST, { fieldPointer: { cdb: false, byte: 16 + 32 + 2, bit: 7 } });
  });

  it('CSCD fields: non-block peripheral type, wrong DISK BLOCK LENGTH -> INVALID FIELD IN PARAMETER LIST; LU ID TYPE ignored', async () => {
    const segs = [b2b(0, 0, 1, 0, 1)];
    checkCondition(await xcopy(paramList([cscd(naa(0), BS, 0xe4, 0x01)], segs)), Sense.INVALID_FIELD_IN_PARAMETER_LIST, { fieldPointer: { cdb: false, byte: 17, bit: 4 } });
    checkCondition(await xcopy(paramList([cscd(naa(0), 4096)], segs)), Sense.INVALID_FIELD_IN_PARAMETER_LIST, { fieldPointer: { cdb: false, byte: 16 + 29, bit: 7 } });
    good(await xcopy(paramList([cscd(naa(0), BS, 0xe4, 0x80)], segs))); // SPC-4: LU ID TYPE ignored for E4h
  });

  it('segment naming a CSCD index past the list -> COPY ABORTED, COPY TARGET DEVICE NOT REACHABLE, segment number', async () => {
    const d = checkCondition(await xcopy(paramList([cscd(naa(0))], [b2b(0, 0, 1, 0, 1), b2b(0, 1, 1, 0, 1)])), Sense.COPY_TARGET_DEVICE_NOT_REACHABLE,
      { fieldPointer: { cdb: false, byte: 16 + 32 + 28 + 6, bit: undefined } });
    assert.strictEqual(d.commandSpecific, 1n);
  });

  it('SECURITY: a CSCD naming another target\'s LU by its NAA is not reachable; that volume is untouched', async () => {
    const other = new Harness([{ volume: new MemoryVolume({ blockCount: 1024, id: 'other-target:ldev:7' }) }]);
    const victim = other.vol();
    assert.notDeepStrictEqual(victim.naa, naa(0));
    await h.vol().write(0, pattern(4 * BS, 7), { fua: false });
    checkCondition(await xcopy(paramList([cscd(naa(0)), cscd(victim.naa)], [b2b(0, 1, 4, 0, 0)])), Sense.COPY_TARGET_DEVICE_NOT_REACHABLE);
    checkCondition(await xcopy(paramList([cscd(victim.naa), cscd(naa(0))], [b2b(0, 1, 4, 0, 0)])), Sense.COPY_TARGET_DEVICE_NOT_REACHABLE);
    assert.strictEqual(victim.mappedBlocks, 0);
    assert.strictEqual(victim.stats.reads + victim.stats.writes, 0);
    // a designator that is not an LU NAA (association: target port) names nothing either
    const portAssoc = cscd(naa(0));
    portAssoc[5] = 0x13;
    checkCondition(await xcopy(paramList([portAssoc], [b2b(0, 0, 1, 0, 1)])), Sense.COPY_TARGET_DEVICE_NOT_REACHABLE);
  });

  it('destination reserved (RESERVE(6)) by another I_T nexus -> RESERVATION CONFLICT, nothing written', async () => {
    const other = await h.login('iqn.2026-01.dev.test:other', '023d00000009');
    good(await h.run(other, hex('16 00 00 00 00 00'), { lun: 1 }));
    await h.vol(0).write(0, pattern(BS, 8), { fua: false });
    conflict(await xcopy(paramList([cscd(naa(0)), cscd(naa(1))], [b2b(0, 1, 1, 0, 0)], { usage: 0, listId: 7 })));
    assert.strictEqual(h.vol(1).mappedBlocks, 0);
    assert.deepStrictEqual(good(await h.run(n, rcrCdb(0x04, 7))), Buffer.concat([hex('00000038'), Buffer.alloc(52), hex('18 00 0000')]));
    // the holder itself may copy into it
    good(await xcopy(paramList([cscd(naa(0)), cscd(naa(1))], [b2b(0, 1, 1, 0, 0)]), other));
    assert.strictEqual(h.vol(1).mappedBlocks, 1);
  });

  it('a reservation taken mid-copy stops the rest: RESERVATION CONFLICT, the first chunk stays', async () => {
    const other = await h.login('iqn.2026-01.dev.test:other', '023d00000009');
    await h.vol(0).write(0, pattern(4096 * BS, 10), { fua: false });
    let reserved = false;
    h.vol(1).hooks.beforeWrite = async () => {
      if (reserved) return;
      reserved = true;
      good(await h.run(other, hex('16 00 00 00 00 00'), { lun: 1 })); // while chunk 1 is being written
    };
    const list = paramList([cscd(naa(0)), cscd(naa(1))], [b2b(0, 1, 4096, 0, 0)], { usage: 0, listId: 3 });
    conflict(await xcopy(list));
    assert.strictEqual(h.vol(1).mappedBlocks, 2048, 'only the first 1 MiB chunk was written');
    assert.deepStrictEqual(good(await h.run(n, rcrCdb(0x00, 3))), hex('00000008 02 0000 00 00100000'));
  });

  it('persistent reservations: WRITE EXCLUSIVE blocks a destination, EXCLUSIVE ACCESS a source', async () => {
    const other = await h.login('iqn.2026-01.dev.test:other', '023d00000009');
    const reg = Buffer.alloc(24); reg.writeBigUInt64BE(0xabn, 8);
    const res = Buffer.alloc(24); res.writeBigUInt64BE(0xabn, 0);
    const prout = (sa: number, type: number) => { const b = Buffer.alloc(10); b[0] = 0x5f; b[1] = sa; b[2] = type; b.writeUInt32BE(24, 5); return b; };
    good(await h.run(other, prout(0, 0), { dataOut: reg, lun: 1 }));
    good(await h.run(other, prout(1, 1), { dataOut: res, lun: 1 })); // WRITE EXCLUSIVE on LU 1
    conflict(await xcopy(paramList([cscd(naa(0)), cscd(naa(1))], [b2b(0, 1, 1, 0, 0)])));
    good(await xcopy(paramList([cscd(naa(0)), cscd(naa(1))], [b2b(1, 0, 1, 0, 0)]))); // reading LU 1 is allowed
    good(await h.run(other, prout(2, 1), { dataOut: res, lun: 1 })); // RELEASE
    good(await h.run(other, prout(1, 3), { dataOut: res, lun: 1 })); // EXCLUSIVE ACCESS
    conflict(await xcopy(paramList([cscd(naa(0)), cscd(naa(1))], [b2b(1, 0, 1, 0, 0)])));
  });

  it('write-protected destination -> DATA PROTECT, WRITE PROTECTED; copying from it is fine', async () => {
    checkCondition(await xcopy(paramList([cscd(naa(0)), cscd(naa(3))], [b2b(0, 1, 1, 0, 0)])), Sense.WRITE_PROTECTED);
    good(await xcopy(paramList([cscd(naa(0)), cscd(naa(3))], [b2b(1, 0, 1, 0, 0)])));
  });

  it('beyond the end of a copy target -> COPY ABORTED with the segment number; earlier segments are done', async () => {
    await h.vol().write(0, pattern(2 * BS, 9), { fua: false });
    const list = paramList([cscd(naa(0)), cscd(naa(1))], [b2b(0, 1, 2, 0, 0), b2b(0, 1, 2, 0, 4095)], { usage: 0, listId: 9 });
    const d = checkCondition(await xcopy(list), Sense.COPY_ABORTED, { fieldPointer: { cdb: false, byte: 16 + 64 + 28 + 20, bit: undefined } });
    assert.strictEqual(d.commandSpecific, 1n);
    assert.deepStrictEqual(await h.vol(1).read(0, 2), pattern(2 * BS, 9));
    const st = good(await h.run(n, rcrCdb(0x00, 9)));
    assert.deepStrictEqual(st, hex('00000008 02 0001 00 00000400')); // completed with error, 1 segment, 1024 bytes
    const fsd = good(await h.run(n, rcrCdb(0x04, 9)));
    assert.strictEqual(fsd.readUInt32BE(0), fsd.length - 4);
    assert.strictEqual(fsd[56], Status.CHECK_CONDITION);
    const senseLen = fsd.readUInt16BE(58);
    assert.deepStrictEqual([fsd[60 + 2] & 0x0f, fsd[60 + 12], fsd[60 + 13]], [0x0a, 0, 0]);
    assert.strictEqual(fsd.readUInt32BE(60 + 8), 1); // COMMAND-SPECIFIC INFORMATION: segment 1
    assert.strictEqual(senseLen, 18);
    checkCondition(await h.run(n, rcrCdb(0x04, 9)), Sense.INVALID_FIELD_IN_CDB); // reported once
  });

  it('a medium error while copying -> COPY ABORTED with the segment number', async () => {
    h.vol().injectReadError(3);
    const d = checkCondition(await xcopy(paramList([cscd(naa(0))], [b2b(0, 0, 2, 8, 100), b2b(0, 0, 8, 0, 200)])), Sense.COPY_ABORTED);
    assert.strictEqual(d.commandSpecific, 1n);
    assert.strictEqual(h.vol().isMapped(200), false, 'the failed chunk wrote nothing');
  });

  it('copy targets of different block sizes -> COPY ABORTED', async () => {
    checkCondition(await xcopy(paramList([cscd(naa(0)), cscd(naa(2), 4096)], [b2b(0, 1, 8, 0, 0)])), Sense.COPY_ABORTED);
  });
});

describe('RECEIVE COPY RESULTS', () => {
  let h: Harness;
  let n: Nexus;
  const naa = (lun: number) => h.vol(lun).naa;
  const xcopy = (list: Buffer, nexus = n) => h.run(nexus, xcopyCdb(list.length), { dataOut: list });

  beforeEach(async () => {
    h = new Harness([{ blockCount: 4096 }]);
    n = await h.login();
  });
  afterEach(() => h.assertNoBugs());

  it('OPERATING PARAMETERS: the copy manager limits', async () => {
    const d = good(await h.run(n, rcrCdb(0x03, 0)));
    assert.deepStrictEqual(d, hex(`0000002a 01 000000 0010 0010 00000400 10000000 00000000 00000000 00000000 0000 0010 10 00 00 00 000000 02 02 e4`));
  });

  it('COPY STATUS: unknown LIST ID -> INVALID FIELD IN CDB byte 2', async () => {
    checkCondition(await h.run(n, rcrCdb(0x00, 1)), Sense.INVALID_FIELD_IN_CDB, { fieldPointer: { cdb: true, byte: 2, bit: 7 } });
  });

  it('COPY STATUS of a held copy: completed, segments, bytes; then discarded', async () => {
    good(await xcopy(paramList([cscd(naa(0))], [b2b(0, 0, 16, 0, 100), b2b(0, 0, 4, 0, 200)], { usage: 0, listId: 1 })));
    assert.deepStrictEqual(good(await h.run(n, rcrCdb(0x00, 1))), hex('00000008 01 0002 00 00002800'));
    checkCondition(await h.run(n, rcrCdb(0x00, 1)), Sense.INVALID_FIELD_IN_CDB);
  });

  it('LIST ID USAGE 10b and 11b hold nothing', async () => {
    good(await xcopy(paramList([cscd(naa(0))], [b2b(0, 0, 1, 0, 100)], { usage: 2, listId: 2 })));
    checkCondition(await h.run(n, rcrCdb(0x00, 2)), Sense.INVALID_FIELD_IN_CDB);
    good(await xcopy(paramList([cscd(naa(0))], [b2b(0, 0, 1, 0, 100)], { usage: 3, listId: 0 })));
    checkCondition(await h.run(n, rcrCdb(0x00, 0)), Sense.INVALID_FIELD_IN_CDB);
  });

  it('results are per I_T nexus and go with it', async () => {
    const other = await h.login('iqn.2026-01.dev.test:other', '023d00000009');
    good(await xcopy(paramList([cscd(naa(0))], [b2b(0, 0, 1, 0, 100)], { usage: 0, listId: 3 })));
    checkCondition(await h.run(other, rcrCdb(0x00, 3)), Sense.INVALID_FIELD_IN_CDB);
    h.target.nexusRemoved(n);
    const again = await h.login();
    checkCondition(await h.run(again, rcrCdb(0x00, 3)), Sense.INVALID_FIELD_IN_CDB);
  });

  it('a LIST IDENTIFIER in use on the nexus -> OPERATION IN PROGRESS; COPY STATUS shows it running', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    let held = false;
    h.vol().hooks.beforeWrite = async () => { if (!held) { held = true; await gate; } };
    const list = paramList([cscd(naa(0))], [b2b(0, 0, 4, 0, 100)], { usage: 0, listId: 4 });
    const first = xcopy(list);
    while (!held) await new Promise((r) => setImmediate(r));
    checkCondition(await xcopy(list), Sense.OPERATION_IN_PROGRESS);
    assert.deepStrictEqual(good(await h.run(n, rcrCdb(0x00, 4))), hex('00000008 00 0000 00 00000000'));
    assert.deepStrictEqual(good(await h.run(n, rcrCdb(0x04, 4))), hex('00000000')); // nothing while it runs
    release();
    good(await first);
    assert.deepStrictEqual(good(await h.run(n, rcrCdb(0x00, 4))), hex('00000008 01 0001 00 00000800'));
  });

  it('held results are bounded per LU (oldest dropped)', async () => {
    for (let id = 0; id < 70; id++) good(await xcopy(paramList([cscd(naa(0))], [b2b(0, 0, 1, 0, 100)], { usage: 0, listId: id })));
    checkCondition(await h.run(n, rcrCdb(0x00, 0)), Sense.INVALID_FIELD_IN_CDB);
    good(await h.run(n, rcrCdb(0x00, 69)));
    assert.ok(h.target['luns'].get(0)!.copies.size <= 64);
  });
});

describe('third-party copy advertisement', () => {
  it('INQUIRY 3PC=1; VPD 8Fh lists EXTENDED COPY and RECEIVE COPY RESULTS service actions', async () => {
    const h = new Harness();
    const n = await h.login();
    const std = good(await h.run(n, hex('12 00 00 00 60 00')));
    assert.strictEqual(std[5] & 0x08, 0x08);
    const d = good(await h.run(n, hex('12 01 8f 04 00 00')));
    assert.strictEqual(d[1], 0x8f);
    assert.strictEqual(d.readUInt16BE(2), d.length - 4);
    // first descriptor: Supported Commands (0001h): 83h [00h], 84h [00h 03h 04h], padded to 4
    assert.deepStrictEqual(d.subarray(4, 20), hex('0001 000c 08 83 01 00 84 03 00 03 04 00 00 00'));
    const types: number[] = [];
    for (let p = 4; p < d.length; p += 4 + d.readUInt16BE(p + 2)) {
      types.push(d.readUInt16BE(p));
      assert.strictEqual((4 + d.readUInt16BE(p + 2)) % 4, 0);
    }
    assert.deepStrictEqual(types, [0x0001, 0x0004, 0x0008, 0x000c, 0x8001]);
    h.assertNoBugs();
  });
});
