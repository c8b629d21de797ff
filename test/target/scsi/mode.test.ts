import * as assert from 'assert';
import { Sense } from '../../../target/scsi/sense';
import { Harness, checkCondition, good, hex } from './harness';

const ms6 = (page: number, pc = 0, dbd = false, sub = 0, alloc = 255) => Buffer.from([0x1a, dbd ? 8 : 0, (pc << 6) | page, sub, alloc, 0]);
const ms10 = (page: number, opts: { pc?: number; dbd?: boolean; llbaa?: boolean; alloc?: number } = {}) => {
  const b = Buffer.from([0x5a, (opts.dbd ? 8 : 0) | (opts.llbaa ? 0x10 : 0), ((opts.pc ?? 0) << 6) | page, 0, 0, 0, 0, 0, 0, 0]);
  b.writeUInt16BE(opts.alloc ?? 0x1000, 7);
  return b;
};
const sel6 = (len: number, sp = false) => Buffer.from([0x15, 0x10 | (sp ? 1 : 0), 0, 0, len, 0]);
const sel10 = (len: number) => { const b = Buffer.from([0x55, 0x10, 0, 0, 0, 0, 0, 0, 0, 0]); b.writeUInt16BE(len, 7); return b; };

/** MODE SELECT(6) list: header, no block descriptor, the control page with D_SENSE/SWP as given. */
function controlList(dsense: boolean, swp = false): Buffer {
  return Buffer.concat([hex('00 00 00 00'), Buffer.from([0x0a, 0x0a, dsense ? 0x04 : 0, 0x10, swp ? 0x08 : 0, 0, 0, 0, 0xff, 0xff, 0, 0])]);
}

describe('MODE SENSE', () => {
  let h: Harness;
  beforeEach(() => { h = new Harness([{ blockCount: 1000 }]); });
  afterEach(() => h.assertNoBugs());

  it('(6) control page with block descriptor', async () => {
    const n = await h.login();
    assert.deepStrictEqual(good(await h.run(n, ms6(0x0a))), hex(`
      17 00 10 08
      000003e8 00 000200
      8a 0a 00 10 00 00 0000 ffff 0000`));
  });

  it('(6) DBD: no block descriptor', async () => {
    const n = await h.login();
    assert.deepStrictEqual(good(await h.run(n, ms6(0x08, 0, true))).subarray(0, 6), hex('17 00 10 00 88 12'));
  });

  it('(10) LLBAA: 16-byte block descriptor and LONGLBA', async () => {
    const n = await h.login();
    const d = good(await h.run(n, ms10(0x1c, { llbaa: true })));
    assert.deepStrictEqual(d.subarray(0, 24), hex('0022 00 10 01 00 0010 00000000000003e8 00000000 00000200'));
    assert.deepStrictEqual(d.subarray(24), hex('9c 0a 08 00 00000000 00000000'));
  });

  it('page 3Fh returns every page in order', async () => {
    const n = await h.login();
    const d = good(await h.run(n, ms6(0x3f, 0, true)));
    assert.strictEqual(d[0], d.length - 1);
    const codes = [];
    for (let p = 4; p < d.length; p += 2 + d[p + 1]) codes.push(d[p] & 0x3f);
    assert.deepStrictEqual(codes, [0x08, 0x0a, 0x1c]);
    assert.strictEqual(good(await h.run(n, ms6(0x3f, 0, true, 0xff))).length, d.length);
  });

  it('changeable values', async () => {
    const n = await h.login();
    assert.deepStrictEqual(good(await h.run(n, ms6(0x0a, 1, true))).subarray(4), hex('8a 0a 04 00 08 00 0000 0000 0000'));
    assert.deepStrictEqual(good(await h.run(n, ms6(0x08, 1, true))).subarray(4, 8), hex('88 12 04 00'));
  });

  it('unknown page -> INVALID FIELD IN CDB byte 2 bit 5; subpage -> byte 3', async () => {
    const n = await h.login();
    checkCondition(await h.run(n, ms6(0x19)), Sense.INVALID_FIELD_IN_CDB, { fieldPointer: { cdb: true, byte: 2, bit: 5 } });
    checkCondition(await h.run(n, ms6(0x0a, 0, false, 1)), Sense.INVALID_FIELD_IN_CDB, { fieldPointer: { cdb: true, byte: 3, bit: 7 } });
  });

  it('trimmed to ALLOCATION LENGTH; mode data length still whole', async () => {
    const n = await h.login();
    const d = good(await h.run(n, ms6(0x3f, 0, false, 0, 4)));
    assert.strictEqual(d.length, 4);
    assert.ok(d[0] > 3);
  });
});

describe('MODE SELECT', () => {
  let h: Harness;
  beforeEach(() => { h = new Harness([{ blockCount: 1000 }]); });
  afterEach(() => h.assertNoBugs());

  it('D_SENSE=1 switches errors to descriptor format', async () => {
    const n = await h.login();
    good(await h.run(n, sel6(16), { dataOut: controlList(true) }));
    const d = checkCondition(await h.run(n, hex('28 00 00001000 00 0001 00')), Sense.LBA_OUT_OF_RANGE);
    assert.strictEqual(d.descriptor, true);
    good(await h.run(n, sel6(16), { dataOut: controlList(false) }));
    assert.strictEqual(checkCondition(await h.run(n, hex('28 00 00001000 00 0001 00')), Sense.LBA_OUT_OF_RANGE).descriptor, false);
  });

  it('a shared page change (WCE) -> MODE PARAMETERS CHANGED for other nexuses, not the issuer', async () => {
    const a = await h.login('iqn.x:a');
    const b = await h.login('iqn.x:b');
    const page = hex('08 12 00 00 ffff 0000 ffff ffff 80 14 00 00 00 00 00 00');
    good(await h.run(a, sel6(24), { dataOut: Buffer.concat([hex('00000000'), page]) }));
    good(await h.run(a, hex('00 00 00 00 00 00')));
    checkCondition(await h.run(b, hex('00 00 00 00 00 00')), Sense.MODE_PARAMETERS_CHANGED);
    assert.strictEqual(good(await h.run(b, ms6(0x08, 0, true)))[6] & 0x04, 0);
  });

  it('D_SENSE is per I_T nexus: no unit attention, other nexuses keep fixed format', async () => {
    const a = await h.login('iqn.x:a');
    const b = await h.login('iqn.x:b');
    good(await h.run(a, sel6(16), { dataOut: controlList(true) }));
    const oob = hex('28 00 00001000 00 0001 00');
    assert.strictEqual(checkCondition(await h.run(b, oob), Sense.LBA_OUT_OF_RANGE).descriptor, false);
    assert.strictEqual(checkCondition(await h.run(a, oob), Sense.LBA_OUT_OF_RANGE).descriptor, true);
    assert.strictEqual(good(await h.run(b, ms6(0x0a, 0, true)))[6] & 0x04, 0);
    h.target.nexusRemoved(a);
    const a2 = await h.login('iqn.x:a');
    assert.strictEqual(checkCondition(await h.run(a2, oob), Sense.LBA_OUT_OF_RANGE).descriptor, false);
  });

  it('SWP=1 write-protects the LU for every nexus (WP bit, DATA PROTECT) until cleared; others get MODE PARAMETERS CHANGED', async () => {
    const a = await h.login('iqn.x:a');
    const b = await h.login('iqn.x:b');
    const write = hex('2a 00 00000010 00 0001 00'), read = hex('28 00 00000010 00 0001 00');
    const block = Buffer.alloc(512, 0x5a);
    good(await h.run(a, sel6(16), { dataOut: controlList(false, true) }));
    assert.strictEqual(good(await h.run(a, ms6(0x0a, 0, true)))[2] & 0x80, 0x80);
    assert.strictEqual(good(await h.run(a, ms6(0x0a, 0, true)))[4 + 4] & 0x08, 0x08);
    checkCondition(await h.run(a, write, { dataOut: block }), Sense.WRITE_PROTECTED);
    checkCondition(await h.run(b, read), Sense.MODE_PARAMETERS_CHANGED);
    checkCondition(await h.run(b, write, { dataOut: block }), Sense.WRITE_PROTECTED);
    good(await h.run(b, read));
    good(await h.run(b, sel6(16), { dataOut: controlList(false, false) }));
    checkCondition(await h.run(a, read), Sense.MODE_PARAMETERS_CHANGED);
    good(await h.run(a, write, { dataOut: block }));
    assert.strictEqual(good(await h.run(b, ms6(0x0a, 0, true)))[2] & 0x80, 0);
  });

  it('a non-changeable bit -> INVALID FIELD IN PARAMETER LIST with field pointer', async () => {
    const n = await h.login();
    const l = controlList(false);
    l[4 + 3] = 0x00; // QUEUE ALGORITHM MODIFIER is not changeable
    checkCondition(await h.run(n, sel6(16), { dataOut: l }), Sense.INVALID_FIELD_IN_PARAMETER_LIST, { fieldPointer: { cdb: false, byte: 7, bit: 4 } });
  });

  it('wrong page length -> INVALID FIELD IN PARAMETER LIST at the page length byte', async () => {
    const n = await h.login();
    const l = controlList(false);
    l[5] = 0x0b;
    checkCondition(await h.run(n, sel6(16), { dataOut: l }), Sense.INVALID_FIELD_IN_PARAMETER_LIST, { fieldPointer: { cdb: false, byte: 5, bit: 7 } });
  });

  it('unknown page -> INVALID FIELD IN PARAMETER LIST', async () => {
    const n = await h.login();
    const l = controlList(false);
    l[4] = 0x19;
    checkCondition(await h.run(n, sel6(16), { dataOut: l }), Sense.INVALID_FIELD_IN_PARAMETER_LIST, { fieldPointer: { cdb: false, byte: 4, bit: 5 } });
  });

  it('truncated page or header -> PARAMETER LIST LENGTH ERROR', async () => {
    const n = await h.login();
    checkCondition(await h.run(n, sel6(10), { dataOut: controlList(true).subarray(0, 10) }), Sense.PARAMETER_LIST_LENGTH_ERROR);
    checkCondition(await h.run(n, sel6(3), { dataOut: hex('000000') }), Sense.PARAMETER_LIST_LENGTH_ERROR);
  });

  it('PF=0 -> INVALID FIELD IN CDB byte 1 bit 4', async () => {
    const n = await h.login();
    checkCondition(await h.run(n, hex('15 00 00 00 10 00'), { dataOut: controlList(true) }), Sense.INVALID_FIELD_IN_CDB, { fieldPointer: { cdb: true, byte: 1, bit: 4 } });
  });

  it('(10) with a block descriptor of the right block length; a wrong block length is refused', async () => {
    const n = await h.login();
    const head = hex('0000 00 00 00 00 0008');
    const page = hex('08 12 00 00 ffff 0000 ffff ffff 80 14 00 00 00 00 00 00');
    good(await h.run(n, sel10(36), { dataOut: Buffer.concat([head, hex('00000000 00 000200'), page]) }));
    assert.strictEqual(good(await h.run(n, ms6(0x08, 0, true)))[6] & 0x04, 0); // WCE now 0
    checkCondition(await h.run(n, sel10(36), { dataOut: Buffer.concat([head, hex('00000000 00 000400'), page]) }),
      Sense.INVALID_FIELD_IN_PARAMETER_LIST, { fieldPointer: { cdb: false, byte: 13, bit: 7 } });
  });

  it('WCE=0 makes every write FUA', async () => {
    const n = await h.login();
    const page = hex('08 12 00 00 ffff 0000 ffff ffff 80 14 00 00 00 00 00 00');
    good(await h.run(n, sel6(24), { dataOut: Buffer.concat([hex('00000000'), page]) }));
    good(await h.run(n, hex('2a 00 00000000 00 0001 00'), { dataOut: Buffer.alloc(512) }));
    assert.strictEqual(h.vol().stats.fuaWrites, 1);
  });

  it('SP=1 saves; saved values come back in a new target over the same StateStore', async () => {
    const n = await h.login();
    good(await h.run(n, sel6(16, true), { dataOut: controlList(true) }));
    assert.strictEqual(good(await h.run(n, ms6(0x0a, 3, true)))[6] & 0x04, 0x04);
    const h2 = new Harness([{ blockCount: 1000, state: h.stores.get(0) }]);
    const m = await h2.login();
    assert.strictEqual(good(await h2.run(m, ms6(0x0a, 0, true)))[6] & 0x04, 0x04);
    assert.strictEqual(good(await h2.run(m, ms6(0x0a, 2, true)))[6] & 0x04, 0x00); // default unchanged
    h2.assertNoBugs();
  });
});
