import * as assert from 'assert';
import { diskOpcodes } from '../../../target/scsi/disk';
import { OpRow, cdbUsage, isServiceActionEntry } from '../../../target/scsi/dispatch';
import { Sense } from '../../../target/scsi/sense';
import { Harness, checkCondition, good, hex } from './harness';

/** Every (opcode, service action, row) of the disk template. */
function allRows(): { opcode: number; sa?: number; row: OpRow }[] {
  const out: { opcode: number; sa?: number; row: OpRow }[] = [];
  for (const [opcode, e] of diskOpcodes) {
    if (isServiceActionEntry(e)) for (const [sa, row] of e.serviceActions) out.push({ opcode, sa, row });
    else out.push({ opcode, row: e });
  }
  return out;
}

describe('disk opcode table', () => {
  it('rows are well formed: CDB length 6/10/12/16, fields inside the CDB, data direction consistent', () => {
    for (const { opcode, row } of allRows()) {
      assert.ok([6, 10, 12, 16].includes(row.cdbLength), row.name);
      for (const f of [row.lba, row.length, row.allocationLength, row.parameterListLength]) {
        if (f) assert.ok(f[0] >= 1 && f[0] + f[1] <= row.cdbLength - 1, `${row.name}: field ${f}`);
      }
      if (row.allocationLength) assert.strictEqual(row.dir, 'in', row.name);
      if (row.parameterListLength) assert.strictEqual(row.dir, 'out', row.name);
      if (row.writes) assert.strictEqual(row.dir, 'out', row.name);
      // CDB length follows the group code of the opcode (SPC-4 4.2.5.1)
      const group = opcode >> 5;
      const want = group === 0 ? 6 : group <= 2 ? 10 : group === 4 ? 16 : 12;
      assert.strictEqual(row.cdbLength, want, `${row.name} length by group code`);
    }
  });

  it('CDB usage data: byte 0 is the opcode, a service action sits in byte 1, CONTROL reports no NACA', () => {
    for (const { opcode, sa, row } of allRows()) {
      const u = cdbUsage(opcode, row, sa);
      assert.strictEqual(u.length, row.cdbLength);
      assert.strictEqual(u[0], opcode);
      if (sa !== undefined) assert.strictEqual(u[1] & 0x1f, sa, row.name);
      assert.strictEqual(u[row.cdbLength - 1] & 0x04, 0);
    }
  });

  it('every bit outside the usage data -> INVALID FIELD IN CDB pointing at it', async () => {
    const h = new Harness([{ blockCount: 1000 }]);
    const n = await h.login();
    for (const { opcode, sa, row } of allRows()) {
      const usage = cdbUsage(opcode, row, sa);
      for (let byte = 1; byte < row.cdbLength - 1; byte++) {
        const free = ~usage[byte] & 0xff;
        if (!free) continue;
        const bit = 31 - Math.clz32(free);
        const cdb = Buffer.alloc(row.cdbLength);
        cdb[0] = opcode;
        if (sa !== undefined) cdb[1] = sa;
        cdb[byte] |= 1 << bit;
        const r = await h.run(n, cdb);
        checkCondition(r, Sense.INVALID_FIELD_IN_CDB, { fieldPointer: { cdb: true, byte, bit } });
      }
    }
    h.assertNoBugs();
  });

  it('REPORT SUPPORTED OPERATION CODES one-command answers match the table for every row', async () => {
    const h = new Harness();
    const n = await h.login();
    for (const { opcode, sa, row } of allRows()) {
      const cdb = hex('a3 0c 00 00 0000 0000ffff 00 00');
      cdb[2] = sa === undefined ? 1 : 2;
      cdb[3] = opcode;
      cdb.writeUInt16BE(sa ?? 0, 4);
      const d = good(await h.run(n, cdb));
      assert.strictEqual(d[1] & 7, 3, row.name);
      assert.deepStrictEqual(d.subarray(4, 4 + d.readUInt16BE(2)), cdbUsage(opcode, row, sa), row.name);
    }
    h.assertNoBugs();
  });
});

describe('LBA range and capacity', () => {
  it('READ CAPACITY(10) above 2^32 blocks reports FFFFFFFFh; READ(16) beyond 2^32 works', async () => {
    const h = new Harness([{ blockCount: 2 ** 33 }]);
    const n = await h.login();
    assert.strictEqual(good(await h.run(n, hex('25 00 00000000 0000 00 00'))).readUInt32BE(0), 0xffffffff);
    assert.strictEqual(good(await h.run(n, hex('9e 10 0000000000000000 00000020 00 00'))).readBigUInt64BE(0), 2n ** 33n - 1n);
    const data = Buffer.alloc(512, 0x5a);
    good(await h.run(n, hex('8a 00 00000001ffffffff 00000001 00 00'), { dataOut: data }));
    assert.deepStrictEqual(good(await h.run(n, hex('88 00 00000001ffffffff 00000001 00 00'))), data);
    const s = good(await h.run(n, hex('9e 12 00000001fffffff0 00000038 00 00')));
    assert.deepStrictEqual(s, hex(`00000024 00000000
      00000001fffffff0 0000000f 01 000000
      00000001ffffffff 00000001 00 000000`)); // the last LBA ends the list
    const head = good(await h.run(n, hex('9e 12 0000000000000000 00000018 00 00')));
    assert.deepStrictEqual(head, hex('00000014 00000000 0000000000000000 ffffffff 01 000000')); // 4-byte count caps the run
    const d = checkCondition(await h.run(n, hex('88 00 0000000200000000 00000001 00 00')), Sense.LBA_OUT_OF_RANGE);
    assert.strictEqual(d.information, undefined); // fixed format cannot carry a 34-bit LBA
    h.assertNoBugs();
  });

  it('4096-byte blocks: transfer sizes and READ CAPACITY follow the block size', async () => {
    const h = new Harness([{ blockCount: 100, blockSize: 4096 }]);
    const n = await h.login();
    assert.deepStrictEqual(good(await h.run(n, hex('25 00 00000000 0000 00 00'))), hex('00000063 00001000'));
    const r = await h.run(n, hex('2a 00 00000000 00 0002 00'), { dataOut: Buffer.alloc(8192, 1) });
    good(r);
    assert.strictEqual(r.dataOutWanted, 8192);
    assert.strictEqual(good(await h.run(n, hex('28 00 00000000 00 0002 00'))).length, 8192);
    h.assertNoBugs();
  });
});

describe('descriptor format sense', () => {
  it('MISCOMPARE carries the offset in an INFORMATION descriptor; INVALID FIELD a sense-key specific one', async () => {
    const h = new Harness([{ blockCount: 100 }]);
    const n = await h.login();
    const list = Buffer.concat([hex('00000000'), hex('0a 0a 04 10 00 00 0000 ffff 0000')]);
    good(await h.run(n, hex('15 10 00 00 10 00'), { dataOut: list }));
    const caw = hex('89 00 0000000000000000 000000 01 00 00');
    const data = Buffer.alloc(1024);
    data[77] = 1;
    const d = checkCondition(await h.run(n, caw, { dataOut: data }), Sense.MISCOMPARE_DURING_VERIFY, { information: 77n, descriptor: true });
    assert.strictEqual(d.fieldPointer, undefined);
    checkCondition(await h.run(n, hex('28 20 00000000 00 0001 00')), Sense.INVALID_FIELD_IN_CDB, { descriptor: true, fieldPointer: { cdb: true, byte: 1, bit: 5 } });
    h.vol().injectReadError(5);
    checkCondition(await h.run(n, hex('28 00 00000004 00 0002 00')), Sense.UNRECOVERED_READ_ERROR, { descriptor: true, information: 5n });
    h.assertNoBugs();
  });
});
