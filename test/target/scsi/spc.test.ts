import * as assert from 'assert';
import { Sense, Status } from '../../../target/scsi/sense';
import { TmfFunction, TmfResponse } from '../../../target/scsi/types';
import { Harness, checkCondition, conflict, good, hex, makeNexus, IQN } from './harness';

const TUR = hex('00 00 00 00 00 00');
const inquiry = (evpd: number, page: number, alloc = 0x1000) => Buffer.from([0x12, evpd, page, alloc >> 8, alloc & 0xff, 0]);

describe('INQUIRY', () => {
  let h: Harness;
  beforeEach(() => { h = new Harness([{ lun: 0 }, { lun: 3, removable: true, vendor: 'ACME', product: 'ARRAY', revision: '7' }]); });
  afterEach(() => h.assertNoBugs());

  it('standard data: SPC-4, response format 2, TPGS implicit, additional length', async () => {
    const n = await h.login();
    const d = good(await h.run(n, inquiry(0, 0, 260)));
    assert.strictEqual(d.length, 96);
    assert.strictEqual(d[0], 0x00);
    assert.strictEqual(d[1], 0x00); // not removable
    assert.strictEqual(d[2], 0x06);
    assert.strictEqual(d[3] & 0x0f, 2);
    assert.strictEqual(d[4], d.length - 5);
    assert.strictEqual((d[5] >> 4) & 3, 1);
    assert.strictEqual(d.toString('ascii', 8, 16), 'DKC-EMU ');
    assert.strictEqual(d.readUInt16BE(58), 0x00a0);
  });

  it('vendor/product/revision and RMB from the LU definition', async () => {
    const n = await h.login();
    const d = good(await h.run(n, inquiry(0, 0), { lun: 3 }));
    assert.strictEqual(d[1], 0x80);
    assert.strictEqual(d.toString('ascii', 8, 36), 'ACME    ARRAY           7   ');
  });

  it('trimmed to ALLOCATION LENGTH', async () => {
    const n = await h.login();
    assert.strictEqual(good(await h.run(n, inquiry(0, 0, 5))).length, 5);
    assert.strictEqual(good(await h.run(n, inquiry(0, 0, 0))).length, 0);
  });

  it('EVPD=0 with PAGE CODE != 0 -> INVALID FIELD IN CDB byte 2', async () => {
    const n = await h.login();
    checkCondition(await h.run(n, inquiry(0, 0x83)), Sense.INVALID_FIELD_IN_CDB, { fieldPointer: { cdb: true, byte: 2, bit: 7 } });
  });

  it('CMDDT (byte 1 bit 1) -> INVALID FIELD IN CDB byte 1 bit 1', async () => {
    const n = await h.login();
    checkCondition(await h.run(n, inquiry(2, 0)), Sense.INVALID_FIELD_IN_CDB, { fieldPointer: { cdb: true, byte: 1, bit: 1 } });
  });

  it('VPD 00h lists 00 80 83 86 8F B0 B1 B2 C0 (Pair Information, docs/pairs.md)', async () => {
    const n = await h.login();
    const d = good(await h.run(n, inquiry(1, 0)));
    assert.deepStrictEqual(d, hex('00 00 0009 00 80 83 86 8f b0 b1 b2 c0'));
  });

  it('VPD C0h without a DKC pair engine: SMPL, no partner', async () => {
    const n = await h.login();
    const d = good(await h.run(n, inquiry(1, 0xc0)));
    assert.strictEqual(d.length, 96);
    assert.deepStrictEqual([d[1], d.readUInt16BE(2), d[4], d[5]], [0xc0, 92, 0, 0]);
  });

  it('VPD 80h: unit serial number', async () => {
    const n = await h.login();
    const d = good(await h.run(n, inquiry(1, 0x80)));
    assert.strictEqual(d[1], 0x80);
    assert.strictEqual(d.toString('ascii', 4), h.vol().serial);
  });

  it('VPD 83h: NAA, relative target port, target port group, target port and target names', async () => {
    const n = await h.login(undefined, undefined, 2, 5);
    const d = good(await h.run(n, inquiry(1, 0x83)));
    const found: Record<string, Buffer> = {};
    for (let p = 4; p < 4 + d.readUInt16BE(2); p += 4 + d[p + 3]) {
      found[`${(d[p + 1] >> 4) & 3}/${d[p + 1] & 0x0f}`] = d.subarray(p, p + 4 + d[p + 3]);
    }
    assert.deepStrictEqual(found['0/3'], Buffer.concat([hex('01 03 00 10'), h.vol().naa]));
    assert.deepStrictEqual(found['1/4'], hex('51 94 00 04 0000 0005'));
    assert.deepStrictEqual(found['1/5'], hex('51 95 00 04 0000 0002'));
    assert.strictEqual(found['1/8'].subarray(4).toString().replace(/\0+$/, ''), `${IQN},t,0x0002`);
    assert.strictEqual(found['2/8'].subarray(4).toString().replace(/\0+$/, ''), IQN);
    assert.strictEqual(found['2/8'][3] % 4, 0);
  });

  it('VPD B0h: block limits', async () => {
    const n = await h.login();
    const d = good(await h.run(n, inquiry(1, 0xb0)));
    assert.strictEqual(d.readUInt16BE(2), 0x3c);
    assert.strictEqual(d[4] & 1, 0); // WSNZ=0: NUMBER OF LOGICAL BLOCKS 0 writes to the end
    assert.strictEqual(d[5], 255);
    assert.strictEqual(d.readUInt16BE(6), 8); // 4 KiB optimal transfer length granularity
    assert.strictEqual(d.readUInt32BE(8), 16384); // 8 MiB / 512
    assert.strictEqual(d.readUInt32BE(20), 1 << 20);
    assert.strictEqual(d.readUInt32BE(24), 256);
    assert.strictEqual(d.readUInt32BE(28), 1);
    assert.strictEqual(d.readUInt32BE(32), 0x80000000);
    assert.strictEqual(d.readBigUInt64BE(36), 0xffffn);
    assert.strictEqual(d.readUInt32BE(44), 2048); // MAXIMUM ATOMIC TRANSFER LENGTH: 1 MiB / 512
    assert.strictEqual(d.readUInt32BE(48), 0); // ATOMIC ALIGNMENT
    assert.strictEqual(d.readUInt32BE(52), 0); // ATOMIC TRANSFER LENGTH GRANULARITY
    assert.ok(d.readUInt32BE(44) <= d.readUInt32BE(8), 'atomic limit within MAXIMUM TRANSFER LENGTH');
  });

  it('VPD B0h on a 512e LU: OPTIMAL UNMAP GRANULARITY is one physical block', async () => {
    const h2 = new Harness([{ physicalBlockSize: 4096 }]);
    const n = await h2.login();
    const d = good(await h2.run(n, inquiry(1, 0xb0)));
    assert.strictEqual(d.readUInt32BE(28), 8);
    h2.assertNoBugs();
  });

  it('VPD B1h non-rotating, B2h LBPU/LBPWS/LBPWS10/LBPRZ thin', async () => {
    const n = await h.login();
    assert.strictEqual(good(await h.run(n, inquiry(1, 0xb1))).readUInt16BE(4), 1);
    assert.deepStrictEqual(good(await h.run(n, inquiry(1, 0xb2))), hex('00 b2 0004 00 e4 02 00'));
  });

  it('unsupported VPD page -> INVALID FIELD IN CDB byte 2', async () => {
    const n = await h.login();
    checkCondition(await h.run(n, inquiry(1, 0x89)), Sense.INVALID_FIELD_IN_CDB, { fieldPointer: { cdb: true, byte: 2, bit: 7 } });
  });

  it('LUN that does not exist: peripheral qualifier 011b, type 1Fh', async () => {
    const n = await h.login();
    const d = good(await h.run(n, inquiry(0, 0), { lun: 9 }));
    assert.strictEqual(d[0], 0x7f);
  });

  it('is not blocked by a unit attention', async () => {
    const n = makeNexus();
    h.target.nexusAdded(n);
    good(await h.run(n, inquiry(0, 0)));
    checkCondition(await h.run(n, TUR), Sense.POWER_ON_RESET);
    good(await h.run(n, TUR));
  });
});

describe('REPORT LUNS', () => {
  let h: Harness;
  beforeEach(() => { h = new Harness([{ lun: 0 }, { lun: 7 }, { lun: 300 }]); });
  afterEach(() => h.assertNoBugs());
  const rl = (select: number, alloc = 0x1000) => Buffer.from([0xa0, 0, select, 0, 0, 0, alloc >>> 24, (alloc >> 16) & 0xff, (alloc >> 8) & 0xff, alloc & 0xff, 0, 0]);

  it('SELECT REPORT 0: every LU, peripheral and flat addressing', async () => {
    const n = await h.login();
    assert.deepStrictEqual(good(await h.run(n, rl(0))), hex('00000018 00000000 0000000000000000 0007000000000000 412c000000000000'));
  });

  it('SELECT REPORT 1: the REPORT LUNS well-known LU only; 2: both', async () => {
    const n = await h.login();
    assert.deepStrictEqual(good(await h.run(n, rl(1))), hex('00000008 00000000 c101000000000000'));
    assert.strictEqual(good(await h.run(n, rl(2))).readUInt32BE(0), 32);
  });

  it('SELECT REPORT 3 -> INVALID FIELD IN CDB byte 2', async () => {
    const n = await h.login();
    checkCondition(await h.run(n, rl(3)), Sense.INVALID_FIELD_IN_CDB, { fieldPointer: { cdb: true, byte: 2, bit: 7 } });
  });

  it('works on a LUN that does not exist and on the well-known LUN', async () => {
    const n = await h.login();
    assert.strictEqual(good(await h.run(n, rl(0), { lun: 55 })).readUInt32BE(0), 24);
    assert.strictEqual(good(await h.run(n, rl(0), { lun: 0xc101 })).readUInt32BE(0), 24);
    assert.strictEqual(good(await h.run(n, inquiry(0, 0), { lun: 0xc101 }))[0], 0x1e);
    good(await h.run(n, TUR, { lun: 0xc101 }));
  });

  it('trimmed to ALLOCATION LENGTH, list length still whole', async () => {
    const n = await h.login();
    const d = good(await h.run(n, rl(0, 16)));
    assert.strictEqual(d.length, 16);
    assert.strictEqual(d.readUInt32BE(0), 24);
  });

  it('a new LU raises REPORTED LUNS DATA HAS CHANGED; REPORT LUNS clears it', async () => {
    const n = await h.login();
    h.target.addLun({ lun: 8, kind: 'disk', volume: h.vol(), state: h.stores.get(0)! });
    good(await h.run(n, rl(0)));
    good(await h.run(n, TUR));
    const m = await h.login('iqn.x:other');
    h.target.removeLun(8);
    checkCondition(await h.run(m, TUR), Sense.REPORTED_LUNS_DATA_HAS_CHANGED);
  });
});

describe('ScsiTarget', () => {
  it('refuses duplicate LUNs; hasLun answers for configured LUNs only', () => {
    assert.throws(() => new Harness([{ lun: 1 }, { lun: 1 }]), /duplicate LUN 1/);
    const h = new Harness([{ lun: 2 }]);
    assert.strictEqual(h.target.hasLun(2), true);
    assert.strictEqual(h.target.hasLun(0), false);
    assert.strictEqual(h.target.hasLun(0xc101), false);
  });

  it('TMFs on a LUN that does not exist -> LUN DOES NOT EXIST; ABORT TASK -> COMPLETE', () => {
    const h = new Harness([{ lun: 0 }]);
    const n = makeNexus();
    assert.strictEqual(h.target.taskManagement(TmfFunction.AbortTask, n, 0), TmfResponse.Complete);
    assert.strictEqual(h.target.taskManagement(TmfFunction.AbortTaskSet, n, 3), TmfResponse.LunDoesNotExist);
    assert.strictEqual(h.target.taskManagement(TmfFunction.TaskReassign, n, 0), TmfResponse.NotSupported);
  });
});

describe('dispatcher', () => {
  let h: Harness;
  beforeEach(() => { h = new Harness(); });
  afterEach(() => h.assertNoBugs());

  it('unsupported opcode -> INVALID COMMAND OPERATION CODE', async () => {
    const n = await h.login();
    checkCondition(await h.run(n, hex('04 00 00 00 00 00')), Sense.INVALID_COMMAND_OPERATION_CODE); // FORMAT UNIT
    checkCondition(await h.run(n, hex('a4 00 00 00 00 00 00 00 00 00 00 00')), Sense.INVALID_COMMAND_OPERATION_CODE); // MAINTENANCE OUT
  });

  it('unsupported service action -> INVALID FIELD IN CDB byte 1', async () => {
    const n = await h.login();
    checkCondition(await h.run(n, hex('9e 11 00')), Sense.INVALID_FIELD_IN_CDB, { fieldPointer: { cdb: true, byte: 1, bit: 4 } });
  });

  it('NACA bit in CONTROL -> INVALID FIELD IN CDB at the control byte, bit 2', async () => {
    const n = await h.login();
    checkCondition(await h.run(n, hex('00 00 00 00 00 04')), Sense.INVALID_FIELD_IN_CDB, { fieldPointer: { cdb: true, byte: 5, bit: 2 } });
    checkCondition(await h.run(n, hex('28 00 00000000 00 0001 04')), Sense.INVALID_FIELD_IN_CDB, { fieldPointer: { cdb: true, byte: 9, bit: 2 } });
  });

  it('LUN that does not exist -> LOGICAL UNIT NOT SUPPORTED', async () => {
    const n = await h.login();
    checkCondition(await h.run(n, TUR, { lun: 4 }), Sense.LU_NOT_SUPPORTED);
    checkCondition(await h.run(n, hex('28 00 00000000 00 0001 00'), { lun: 4 }), Sense.LU_NOT_SUPPORTED);
  });

  it('REQUEST SENSE on a LUN that does not exist returns LOGICAL UNIT NOT SUPPORTED data', async () => {
    const n = await h.login();
    const d = good(await h.run(n, hex('03 00 00 00 ff 00'), { lun: 4 }));
    assert.deepStrictEqual([d[2], d[12], d[13]], [0x05, 0x25, 0x00]);
  });

  it('a unit attention comes before INVALID COMMAND OPERATION CODE', async () => {
    const n = makeNexus();
    h.target.nexusAdded(n);
    checkCondition(await h.run(n, hex('04 00 00 00 00 00')), Sense.POWER_ON_RESET);
    checkCondition(await h.run(n, hex('04 00 00 00 00 00')), Sense.INVALID_COMMAND_OPERATION_CODE);
  });

  it('an unexpected exception -> INTERNAL TARGET FAILURE, reported to onInternalError', async () => {
    const n = await h.login();
    h.vol().read = async () => { throw new TypeError('boom'); };
    checkCondition(await h.run(n, hex('28 00 00000000 00 0001 00')), Sense.INTERNAL_TARGET_FAILURE);
    assert.strictEqual(h.bugs.length, 1);
    assert.strictEqual(h.target.internalErrors.length, 1);
    h.bugs.length = 0;
  });
});

describe('TEST UNIT READY and REQUEST SENSE', () => {
  let h: Harness;
  beforeEach(() => { h = new Harness(); });
  afterEach(() => h.assertNoBugs());

  it('POWER ON RESET on a new nexus, once', async () => {
    const n = makeNexus();
    h.target.nexusAdded(n);
    checkCondition(await h.run(n, TUR), Sense.POWER_ON_RESET);
    good(await h.run(n, TUR));
  });

  it('REQUEST SENSE reports and clears the unit attention; fixed or descriptor per DESC', async () => {
    const n = makeNexus();
    h.target.nexusAdded(n);
    const d = good(await h.run(n, hex('03 01 00 00 ff 00')));
    assert.deepStrictEqual(d, hex('72 06 29 00 00 00 00 00'));
    const f = good(await h.run(n, hex('03 00 00 00 ff 00')));
    assert.deepStrictEqual(f, hex('70 00 00 00000000 0a 00000000 00 00 00 000000'));
    good(await h.run(n, TUR));
  });

  it('REQUEST SENSE trimmed to ALLOCATION LENGTH', async () => {
    const n = await h.login();
    assert.strictEqual(good(await h.run(n, hex('03 00 00 00 08 00'))).length, 8);
  });
});

describe('REPORT SUPPORTED OPERATION CODES', () => {
  let h: Harness;
  beforeEach(() => { h = new Harness(); });
  afterEach(() => h.assertNoBugs());
  const rsoc = (opts: number, opcode = 0, sa = 0, alloc = 0xffff) => {
    const b = hex('a3 0c 00 00 0000 00000000 00 00');
    b[2] = opts; b[3] = opcode; b.writeUInt16BE(sa, 4); b.writeUInt32BE(alloc, 6);
    return b;
  };

  it('all commands: sorted descriptors, service actions flagged', async () => {
    const n = await h.login();
    const d = good(await h.run(n, rsoc(0)));
    const len = d.readUInt32BE(0);
    assert.strictEqual(len + 4, d.length);
    const ops: string[] = [];
    for (let p = 4; p < d.length; p += 8) ops.push(`${d[p].toString(16)}/${d[p + 5] & 1 ? d.readUInt16BE(p + 2).toString(16) : '-'}/${d.readUInt16BE(p + 6)}`);
    assert.ok(ops.includes('28/-/10'));
    assert.ok(ops.includes('9e/10/16'));
    assert.ok(ops.includes('9e/12/16'));
    assert.ok(ops.includes('5f/7/10'));
    assert.ok(ops.includes('89/-/16'));
    assert.ok(ops.includes('48/1/10')); // SANITIZE OVERWRITE
    assert.ok(ops.includes('83/0/16')); // EXTENDED COPY(LID1)
    assert.ok(ops.includes('84/3/16')); // RECEIVE COPY OPERATING PARAMETERS
    assert.ok(ops.includes('9c/-/16')); // WRITE ATOMIC(16)
    assert.ok(!ops.some((o) => o.startsWith('4/')));
  });

  it('RCTD adds a command timeouts descriptor after each descriptor', async () => {
    const n = await h.login();
    const d = good(await h.run(n, rsoc(0x80)));
    assert.strictEqual(d[4 + 5] & 0x02, 0x02); // CTDP
    assert.strictEqual(d.readUInt16BE(4 + 8), 0x0a);
    assert.strictEqual((d.length - 4) % 20, 0);
  });

  it('one command: READ(10) usage data', async () => {
    const n = await h.login();
    assert.deepStrictEqual(good(await h.run(n, rsoc(1, 0x28))), hex('00 03 000a 28 1e ffffffff 3f ffff 00'));
  });

  it('one command with service action: READ CAPACITY(16) usage data carries the SA', async () => {
    const n = await h.login();
    const d = good(await h.run(n, rsoc(2, 0x9e, 0x10)));
    assert.deepStrictEqual(d.subarray(0, 6), hex('00 03 0010 9e 10'));
  });

  it('reporting option 1 for an opcode with service actions -> INVALID FIELD IN CDB', async () => {
    const n = await h.login();
    checkCondition(await h.run(n, rsoc(1, 0x9e)), Sense.INVALID_FIELD_IN_CDB);
    checkCondition(await h.run(n, rsoc(2, 0x28)), Sense.INVALID_FIELD_IN_CDB);
  });

  it('reporting option 3: service action used only where the opcode has them; RCTD adds timeouts', async () => {
    const n = await h.login();
    assert.deepStrictEqual(good(await h.run(n, rsoc(3, 0x28, 0x1234))).subarray(0, 5), hex('00 03 000a 28'));
    const d = good(await h.run(n, rsoc(0x83, 0x9e, 0x12)));
    assert.deepStrictEqual(d.subarray(0, 6), hex('00 83 0010 9e 12'));
    assert.strictEqual(d.length, 4 + 16 + 12);
    assert.strictEqual(d.readUInt16BE(20), 0x0a);
    assert.deepStrictEqual(good(await h.run(n, rsoc(3, 0x9e, 0x1f))), hex('00 01 0000'));
  });

  it('unsupported opcode: SUPPORT 001b', async () => {
    const n = await h.login();
    assert.deepStrictEqual(good(await h.run(n, rsoc(1, 0x04))), hex('00 01 0000'));
  });

  it('reporting option 4 -> INVALID FIELD IN CDB byte 2 bit 2', async () => {
    const n = await h.login();
    checkCondition(await h.run(n, rsoc(4)), Sense.INVALID_FIELD_IN_CDB, { fieldPointer: { cdb: true, byte: 2, bit: 2 } });
  });
});

describe('REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS', () => {
  it('ATS ATSS CTSS LURS TRS; REPD extends to 16 bytes', async () => {
    const h = new Harness();
    const n = await h.login();
    assert.deepStrictEqual(good(await h.run(n, hex('a3 0d 00 00 0000 00000004 00 00'))), hex('da 00 00 00'));
    const d = good(await h.run(n, hex('a3 0d 80 00 0000 00000010 00 00')));
    assert.strictEqual(d.length, 16);
    assert.strictEqual(d[3], 0x0c);
  });
});

describe('REPORT TARGET PORT GROUPS', () => {
  it('one active/optimized group with the ports in use', async () => {
    const h = new Harness();
    const a = await h.login('iqn.x:a', undefined, 1, 1);
    await h.login('iqn.x:b', undefined, 1, 2);
    assert.deepStrictEqual(good(await h.run(a, hex('a3 0a 00 00 0000 00001000 00 00'))),
      hex('00000010 80 01 0001 00 00 00 02 0000 0001 0000 0002'));
    assert.deepStrictEqual(good(await h.run(a, hex('a3 2a 00 00 0000 00001000 00 00'))),
      hex('00000014 10 00 0000 80 01 0001 00 00 00 02 0000 0001 0000 0002'));
    checkCondition(await h.run(a, hex('a3 4a 00 00 0000 00001000 00 00')), Sense.INVALID_FIELD_IN_CDB, { fieldPointer: { cdb: true, byte: 1, bit: 7 } });
    h.assertNoBugs();
  });
});

describe('RESERVE(6) / RELEASE(6)', () => {
  let h: Harness;
  beforeEach(() => { h = new Harness(); });
  afterEach(() => h.assertNoBugs());
  const RESERVE6 = hex('16 00 00 00 00 00');
  const RELEASE6 = hex('17 00 00 00 00 00');
  const READ10 = hex('28 00 00000000 00 0001 00');

  it('other nexus gets RESERVATION CONFLICT; INQUIRY still allowed; RELEASE from it is a no-op', async () => {
    const a = await h.login('iqn.x:a');
    const b = await h.login('iqn.x:b');
    good(await h.run(a, RESERVE6));
    conflict(await h.run(b, READ10));
    conflict(await h.run(b, TUR));
    conflict(await h.run(b, RESERVE6));
    good(await h.run(b, inquiry(0, 0)));
    good(await h.run(b, RELEASE6));
    conflict(await h.run(b, READ10));
    good(await h.run(a, READ10));
    good(await h.run(a, RELEASE6));
    good(await h.run(b, READ10));
  });

  it('released by I_T nexus loss', async () => {
    const a = await h.login('iqn.x:a');
    const b = await h.login('iqn.x:b');
    good(await h.run(a, hex('56 00 00 00 00 00 00 00 00 00')));
    h.target.nexusRemoved(a);
    good(await h.run(b, READ10));
  });

  it('released by LOGICAL UNIT RESET, which raises BUS DEVICE RESET for every nexus', async () => {
    const a = await h.login('iqn.x:a');
    const b = await h.login('iqn.x:b');
    good(await h.run(a, RESERVE6));
    assert.strictEqual(h.target.taskManagement(TmfFunction.LogicalUnitReset, a, 0), TmfResponse.Complete);
    checkCondition(await h.run(a, TUR), Sense.BUS_DEVICE_RESET); // the issuer too (libiscsi MultipathIO.Reset)
    good(await h.run(a, TUR));
    checkCondition(await h.run(b, READ10), Sense.BUS_DEVICE_RESET);
    good(await h.run(b, RESERVE6));
    assert.strictEqual(h.target.taskManagement(TmfFunction.LogicalUnitReset, a, 9), TmfResponse.LunDoesNotExist);
    assert.strictEqual(h.target.taskManagement(TmfFunction.ClearAca, a, 0), TmfResponse.NotSupported);
  });

  it('TARGET COLD RESET raises POWER ON OCCURRED', async () => {
    const a = await h.login('iqn.x:a');
    const b = await h.login('iqn.x:b');
    h.target.taskManagement(TmfFunction.TargetColdReset, a, 0);
    checkCondition(await h.run(b, TUR), Sense.POWER_ON_OCCURRED);
  });

  it('RESERVE while persistent registrations exist -> RESERVATION CONFLICT', async () => {
    const a = await h.login('iqn.x:a');
    const reg = Buffer.alloc(24);
    reg.writeBigUInt64BE(0x1234n, 8);
    good(await h.run(a, hex('5f 00 00 00 00 00 00 00 18 00'), { dataOut: reg }));
    conflict(await h.run(a, RESERVE6));
  });
});

describe('START STOP UNIT and PREVENT ALLOW MEDIUM REMOVAL', () => {
  let h: Harness;
  beforeEach(() => { h = new Harness([{ lun: 0, removable: true }, { lun: 1 }]); });
  afterEach(() => h.assertNoBugs());
  const ssu = (loej: boolean, start: boolean, pc = 0) => Buffer.from([0x1b, 0, 0, 0, (pc << 4) | (loej ? 2 : 0) | (start ? 1 : 0), 0]);
  const PREVENT = hex('1e 00 00 00 01 00');
  const ALLOW = hex('1e 00 00 00 00 00');

  it('LOEJ ejects: NOT READY / MEDIUM NOT PRESENT until loaded', async () => {
    const n = await h.login();
    good(await h.run(n, ssu(true, false)));
    checkCondition(await h.run(n, TUR), Sense.MEDIUM_NOT_PRESENT);
    checkCondition(await h.run(n, hex('28 00 00000000 00 0001 00')), Sense.MEDIUM_NOT_PRESENT);
    checkCondition(await h.run(n, hex('25 00 00000000 0000 00 00')), Sense.MEDIUM_NOT_PRESENT);
    good(await h.run(n, inquiry(0, 0)));
    const rs = good(await h.run(n, hex('03 00 00 00 12 00')));
    assert.deepStrictEqual([rs[2], rs[12]], [0x02, 0x3a]);
    good(await h.run(n, ssu(true, true)));
    good(await h.run(n, TUR));
  });

  it('LOEJ=0 does not eject; power conditions ignore START and LOEJ', async () => {
    const n = await h.login();
    good(await h.run(n, ssu(false, false)));
    good(await h.run(n, TUR));
    for (let pc = 1; pc < 16; pc++) {
      good(await h.run(n, ssu(true, false, pc)));
      good(await h.run(n, TUR));
    }
  });

  it('LOEJ on a non-removable LU -> INVALID FIELD IN CDB byte 4 bit 1', async () => {
    const n = await h.login();
    checkCondition(await h.run(n, ssu(true, false), { lun: 1 }), Sense.INVALID_FIELD_IN_CDB, { fieldPointer: { cdb: true, byte: 4, bit: 1 } });
  });

  it('PREVENT blocks ejection -> MEDIUM REMOVAL PREVENTED; ALLOW lifts it', async () => {
    const n = await h.login();
    good(await h.run(n, PREVENT));
    checkCondition(await h.run(n, ssu(true, false)), Sense.MEDIUM_REMOVAL_PREVENTED);
    good(await h.run(n, TUR));
    good(await h.run(n, ALLOW));
    good(await h.run(n, ssu(true, false)));
    good(await h.run(n, PREVENT));
    checkCondition(await h.run(n, ssu(true, true)), Sense.MEDIUM_REMOVAL_PREVENTED); // loading too
    checkCondition(await h.run(n, TUR), Sense.MEDIUM_NOT_PRESENT);
    good(await h.run(n, ALLOW));
    good(await h.run(n, ssu(true, true)));
  });

  it('prevention ends with I_T nexus loss and with TARGET WARM RESET', async () => {
    const a = await h.login('iqn.x:a');
    const b = await h.login('iqn.x:b');
    good(await h.run(a, PREVENT));
    h.target.nexusRemoved(a);
    good(await h.run(b, ssu(true, false)));
    good(await h.run(b, ssu(true, true)));
    good(await h.run(b, TUR));
    const c = await h.login('iqn.x:c');
    good(await h.run(c, PREVENT));
    checkCondition(await h.run(b, ssu(true, false)), Sense.MEDIUM_REMOVAL_PREVENTED);
    h.target.taskManagement(TmfFunction.TargetWarmReset, b, 0);
    checkCondition(await h.run(b, ssu(true, false)), Sense.BUS_DEVICE_RESET);
    good(await h.run(b, ssu(true, false)));
    checkCondition(await h.run(c, TUR), Sense.BUS_DEVICE_RESET);
  });

  it('eject and load by one nexus: the other sees NOT READY in between, no unit attention after', async () => {
    const a = await h.login('iqn.x:a');
    const b = await h.login('iqn.x:b');
    good(await h.run(a, ssu(true, false)));
    checkCondition(await h.run(b, TUR), Sense.MEDIUM_NOT_PRESENT);
    good(await h.run(a, ssu(true, true)));
    good(await h.run(b, TUR));
  });
});
