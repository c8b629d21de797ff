import * as assert from 'assert';
import { Sense } from '../../../target/scsi/sense';
import { Nexus } from '../../../target/scsi/types';
import { Harness, checkCondition, conflict, good, hex } from './harness';

const SA = { REGISTER: 0, RESERVE: 1, RELEASE: 2, CLEAR: 3, PREEMPT: 4, PREEMPT_AND_ABORT: 5, REGISTER_IGNORE: 6, REGISTER_AND_MOVE: 7 };
const T = { WE: 1, EA: 3, WE_RO: 5, EA_RO: 6, WE_AR: 7, EA_AR: 8 };

function proutCdb(sa: number, type: number, len: number): Buffer {
  const b = Buffer.alloc(10);
  b[0] = 0x5f; b[1] = sa; b[2] = type; b.writeUInt32BE(len, 5);
  return b;
}

/** Basic PR OUT parameter list (SPC-4 6.16.3), laid out by hand. */
function params(key: bigint, saKey: bigint, flags = 0, tail = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(24);
  b.writeBigUInt64BE(key, 0);
  b.writeBigUInt64BE(saKey, 8);
  b[20] = flags;
  return Buffer.concat([b, tail]);
}

function iscsiTransportId(port: string): Buffer {
  const name = Buffer.from(port + '\0');
  const len = Math.max(20, Math.ceil(name.length / 4) * 4);
  const b = Buffer.alloc(4 + len);
  b[0] = 0x45; b.writeUInt16BE(len, 2); name.copy(b, 4);
  return b;
}

const prin = (sa: number, alloc = 0x2000) => { const b = Buffer.alloc(10); b[0] = 0x5e; b[1] = sa; b.writeUInt16BE(alloc, 7); return b; };
const READ10 = hex('28 00 00000000 00 0001 00');
const WRITE10 = hex('2a 00 00000000 00 0001 00');
const BLK = Buffer.alloc(512);

describe('PERSISTENT RESERVE IN/OUT', () => {
  let h: Harness;
  let a: Nexus, b: Nexus, c: Nexus;
  beforeEach(async () => {
    h = new Harness([{ blockCount: 100 }]);
    a = await h.login('iqn.x:a');
    b = await h.login('iqn.x:b');
    c = await h.login('iqn.x:c');
  });
  afterEach(() => h.assertNoBugs());

  const register = (n: Nexus, key: bigint, old = 0n, flags = 0) => h.run(n, proutCdb(SA.REGISTER, 0, 24), { dataOut: params(old, key, flags) });
  const out = (n: Nexus, sa: number, type: number, key: bigint, saKey = 0n) => h.run(n, proutCdb(sa, type, 24), { dataOut: params(key, saKey) });
  const keys = async (n: Nexus) => {
    const d = good(await h.run(n, prin(0)));
    const ks: bigint[] = [];
    for (let p = 8; p < 8 + d.readUInt32BE(4); p += 8) ks.push(d.readBigUInt64BE(p));
    return { generation: d.readUInt32BE(0), keys: ks };
  };

  it('REGISTER and READ KEYS; PRgeneration counts registrations', async () => {
    good(await register(a, 0xaan));
    good(await register(b, 0xbbn));
    assert.deepStrictEqual(await keys(c), { generation: 2, keys: [0xaan, 0xbbn] });
  });

  it('REGISTER with a wrong RESERVATION KEY -> RESERVATION CONFLICT', async () => {
    conflict(await register(a, 0xaan, 0x1n));
    good(await register(a, 0xaan));
    conflict(await register(a, 0xccn, 0x1n));
    good(await register(a, 0xccn, 0xaan));
    assert.deepStrictEqual((await keys(a)).keys, [0xccn]);
  });

  it('REGISTER AND IGNORE EXISTING KEY replaces the key; SA key 0 unregisters', async () => {
    good(await register(a, 0xaan));
    good(await h.run(a, proutCdb(SA.REGISTER_IGNORE, 0, 24), { dataOut: params(0x999n, 0x77n) }));
    assert.deepStrictEqual((await keys(a)).keys, [0x77n]);
    good(await register(a, 0n, 0x77n));
    assert.deepStrictEqual((await keys(a)).keys, []);
  });

  it('parameter list length other than 24 -> PARAMETER LIST LENGTH ERROR', async () => {
    checkCondition(await h.run(a, proutCdb(SA.REGISTER, 0, 20), { dataOut: params(0n, 1n).subarray(0, 20) }), Sense.PARAMETER_LIST_LENGTH_ERROR);
    checkCondition(await h.run(a, proutCdb(SA.REGISTER, 0, 28), { dataOut: Buffer.concat([params(0n, 1n), Buffer.alloc(4)]) }), Sense.PARAMETER_LIST_LENGTH_ERROR);
  });

  it('RESERVE from an unregistered nexus -> RESERVATION CONFLICT; invalid type -> INVALID FIELD IN CDB', async () => {
    conflict(await out(a, SA.RESERVE, T.WE, 0n));
    good(await register(a, 0xaan));
    checkCondition(await out(a, SA.RESERVE, 2, 0xaan), Sense.INVALID_FIELD_IN_CDB, { fieldPointer: { cdb: true, byte: 2, bit: 3 } });
    checkCondition(await out(a, SA.RESERVE, 0x11, 0xaan), Sense.INVALID_FIELD_IN_CDB, { fieldPointer: { cdb: true, byte: 2, bit: 7 } });
  });

  it('READ RESERVATION shows key, scope and type', async () => {
    good(await register(a, 0xaan));
    assert.deepStrictEqual(good(await h.run(b, prin(1))), hex('00000001 00000000'));
    good(await out(a, SA.RESERVE, T.EA, 0xaan));
    assert.deepStrictEqual(good(await h.run(b, prin(1))), hex('00000001 00000010 00000000000000aa 00000000 00 03 0000'));
    good(await out(a, SA.RESERVE, T.EA, 0xaan)); // same type again: GOOD
    conflict(await out(a, SA.RESERVE, T.WE, 0xaan));
  });

  // SPC-4 5.13.1 table 63: [registered reader, registered writer, unregistered reader, unregistered writer]
  const access: [string, number, [boolean, boolean, boolean, boolean]][] = [
    ['WRITE EXCLUSIVE', T.WE, [true, false, true, false]],
    ['EXCLUSIVE ACCESS', T.EA, [false, false, false, false]],
    ['WRITE EXCLUSIVE - REGISTRANTS ONLY', T.WE_RO, [true, true, true, false]],
    ['EXCLUSIVE ACCESS - REGISTRANTS ONLY', T.EA_RO, [true, true, false, false]],
    ['WRITE EXCLUSIVE - ALL REGISTRANTS', T.WE_AR, [true, true, true, false]],
    ['EXCLUSIVE ACCESS - ALL REGISTRANTS', T.EA_AR, [true, true, false, false]],
  ];
  for (const [name, type, [regRead, regWrite, unregRead, unregWrite]] of access) {
    it(`${name}: access of holder, registrant and non-registrant`, async () => {
      good(await register(a, 0xaan));
      good(await register(b, 0xbbn));
      good(await out(a, SA.RESERVE, type, 0xaan));
      good(await h.run(a, READ10));
      good(await h.run(a, WRITE10, { dataOut: BLK }));
      const expect = async (n: Nexus, cdb: Buffer, ok: boolean, dataOut?: Buffer) => {
        const r = await h.run(n, cdb, { dataOut });
        if (ok) good(r); else conflict(r);
      };
      await expect(b, READ10, regRead);
      await expect(b, WRITE10, regWrite, BLK);
      await expect(c, READ10, unregRead);
      await expect(c, WRITE10, unregWrite, BLK);
      good(await h.run(c, hex('12 00 00 00 24 00'))); // INQUIRY always allowed
      good(await h.run(c, prin(0)));
      good(await h.run(c, hex('25 00 00000000 0000 00 00'))); // READ CAPACITY allowed
    });
  }

  it('RELEASE by the holder; a wrong type -> INVALID RELEASE OF PERSISTENT RESERVATION', async () => {
    good(await register(a, 0xaan));
    good(await out(a, SA.RESERVE, T.WE, 0xaan));
    checkCondition(await out(a, SA.RELEASE, T.EA, 0xaan), Sense.INVALID_RELEASE_OF_PERSISTENT_RESERVATION);
    good(await register(b, 0xbbn));
    good(await out(b, SA.RELEASE, T.WE, 0xbbn)); // not the holder: GOOD, nothing released
    conflict(await h.run(b, WRITE10, { dataOut: BLK }));
    good(await out(a, SA.RELEASE, T.WE, 0xaan));
    good(await h.run(b, WRITE10, { dataOut: BLK }));
    assert.strictEqual((await keys(a)).generation, 2); // RESERVE and RELEASE do not count
  });

  it('RELEASE of a registrants-only reservation -> RESERVATIONS RELEASED to other registrants', async () => {
    good(await register(a, 0xaan));
    good(await register(b, 0xbbn));
    good(await out(a, SA.RESERVE, T.WE_RO, 0xaan));
    good(await out(a, SA.RELEASE, T.WE_RO, 0xaan));
    checkCondition(await h.run(b, READ10), Sense.RESERVATIONS_RELEASED);
    good(await h.run(a, READ10));
    good(await h.run(c, READ10));
  });

  it('unregistering the holder of WE_RO releases it; of WE_AR keeps it while registrants remain', async () => {
    good(await register(a, 0xaan));
    good(await register(b, 0xbbn));
    good(await out(a, SA.RESERVE, T.WE_AR, 0xaan));
    good(await register(a, 0n, 0xaan));
    conflict(await h.run(c, WRITE10, { dataOut: BLK }));
    good(await register(b, 0n, 0xbbn));
    good(await h.run(c, WRITE10, { dataOut: BLK }));
    good(await register(a, 0xaan));
    good(await out(a, SA.RESERVE, T.WE_RO, 0xaan));
    good(await register(a, 0n, 0xaan));
    good(await h.run(c, WRITE10, { dataOut: BLK }));
  });

  it('CLEAR removes everything; others get RESERVATIONS PREEMPTED', async () => {
    good(await register(a, 0xaan));
    good(await register(b, 0xbbn));
    good(await out(a, SA.RESERVE, T.EA, 0xaan));
    conflict(await out(c, SA.CLEAR, 0, 0n));
    good(await out(b, SA.CLEAR, 0, 0xbbn));
    assert.deepStrictEqual((await keys(b)).keys, []);
    checkCondition(await h.run(a, READ10), Sense.RESERVATIONS_PREEMPTED);
    good(await h.run(c, WRITE10, { dataOut: BLK }));
  });

  it('PREEMPT the holder: reservation moves, preempted registration removed with REGISTRATIONS PREEMPTED', async () => {
    good(await register(a, 0xaan));
    good(await register(b, 0xbbn));
    good(await out(a, SA.RESERVE, T.WE, 0xaan));
    good(await out(b, SA.PREEMPT, T.EA, 0xbbn, 0xaan));
    assert.deepStrictEqual((await keys(b)).keys, [0xbbn]);
    assert.deepStrictEqual(good(await h.run(b, prin(1))).subarray(8, 16), hex('00000000000000bb'));
    checkCondition(await h.run(a, READ10), Sense.REGISTRATIONS_PREEMPTED);
    conflict(await h.run(a, READ10));
  });

  it('PREEMPT a non-holder key removes registrations only; unknown key -> RESERVATION CONFLICT; 0 -> INVALID FIELD IN PARAMETER LIST', async () => {
    good(await register(a, 0xaan));
    good(await register(b, 0xbbn));
    good(await register(c, 0xccn));
    good(await out(a, SA.RESERVE, T.WE, 0xaan));
    good(await out(a, SA.PREEMPT_AND_ABORT, T.WE, 0xaan, 0xccn));
    assert.deepStrictEqual((await keys(a)).keys, [0xaan, 0xbbn]);
    conflict(await out(a, SA.PREEMPT, T.WE, 0xaan, 0x1234n));
    checkCondition(await out(a, SA.PREEMPT, T.WE, 0xaan, 0n), Sense.INVALID_FIELD_IN_PARAMETER_LIST, { fieldPointer: { cdb: false, byte: 8, bit: 7 } });
  });

  it('PREEMPT with SA key 0 of an all-registrants reservation takes it alone', async () => {
    good(await register(a, 0xaan));
    good(await register(b, 0xbbn));
    good(await out(a, SA.RESERVE, T.EA_AR, 0xaan));
    good(await out(b, SA.PREEMPT, T.EA, 0xbbn, 0n));
    assert.deepStrictEqual((await keys(b)).keys, [0xbbn]);
    checkCondition(await h.run(a, READ10), Sense.REGISTRATIONS_PREEMPTED);
    conflict(await h.run(a, READ10));
  });

  it('the holder may PREEMPT its own reservation to change the type; others get RESERVATIONS RELEASED', async () => {
    good(await register(a, 0xaan));
    good(await register(b, 0xbbn));
    good(await out(a, SA.RESERVE, T.WE, 0xaan));
    good(await out(a, SA.PREEMPT, T.EA, 0xaan, 0xaan));
    assert.deepStrictEqual((await keys(a)).keys, [0xaan, 0xbbn]);
    checkCondition(await h.run(b, READ10), Sense.RESERVATIONS_RELEASED);
    conflict(await h.run(b, READ10));
  });

  it('READ FULL STATUS of an all-registrants reservation marks every registrant holder; READ RESERVATION key 0', async () => {
    good(await register(a, 0xaan));
    good(await register(b, 0xbbn));
    good(await out(b, SA.RESERVE, T.WE_AR, 0xbbn));
    assert.deepStrictEqual(good(await h.run(c, prin(1))).subarray(8, 24), hex('0000000000000000 00000000 00 07 0000'));
    const d = good(await h.run(c, prin(3)));
    let p = 8, holders = 0;
    while (p < d.length) {
      if (d[p + 12] & 1) { holders++; assert.strictEqual(d[p + 13], 0x07); }
      p += 24 + d.readUInt32BE(p + 20);
    }
    assert.strictEqual(holders, 2);
  });

  it('REPORT CAPABILITIES', async () => {
    assert.deepStrictEqual(good(await h.run(a, prin(2))), hex('0008 0d 80 ea 01 0000'));
  });

  it('READ FULL STATUS: keys, holder, relative target port and iSCSI TransportID', async () => {
    good(await register(a, 0xaan));
    good(await out(a, SA.RESERVE, T.WE, 0xaan));
    const d = good(await h.run(b, prin(3)));
    const tid = iscsiTransportId(a.initiatorPort);
    assert.strictEqual(d.readUInt32BE(4), 24 + tid.length);
    assert.deepStrictEqual(d.subarray(8, 32), Buffer.concat([hex('00000000000000aa 00000000 01 01 00000000 0001'), Buffer.from([0, 0, 0, tid.length])]));
    assert.deepStrictEqual(d.subarray(32), tid);
  });

  it('unsupported PR IN service action -> INVALID FIELD IN CDB', async () => {
    checkCondition(await h.run(a, prin(4)), Sense.INVALID_FIELD_IN_CDB, { fieldPointer: { cdb: true, byte: 1, bit: 4 } });
  });

  it('SPEC_I_PT registers the named initiator ports too', async () => {
    const list = Buffer.alloc(4);
    const tid = iscsiTransportId(b.initiatorPort);
    list.writeUInt32BE(tid.length, 0);
    const p = params(0n, 0x55n, 0x08, Buffer.concat([list, tid]));
    good(await h.run(a, proutCdb(SA.REGISTER, 0, p.length), { dataOut: p }));
    assert.deepStrictEqual((await keys(c)).keys, [0x55n, 0x55n]);
    good(await out(b, SA.RESERVE, T.WE, 0x55n));
  });

  it('SPEC_I_PT with a bad TransportID -> INVALID FIELD IN PARAMETER LIST', async () => {
    const tid = iscsiTransportId(b.initiatorPort);
    tid[0] = 0x41; // protocol 1 (SPI)
    const list = Buffer.alloc(4);
    list.writeUInt32BE(tid.length, 0);
    const p = params(0n, 0x55n, 0x08, Buffer.concat([list, tid]));
    checkCondition(await h.run(a, proutCdb(SA.REGISTER, 0, p.length), { dataOut: p }), Sense.INVALID_FIELD_IN_PARAMETER_LIST, { fieldPointer: { cdb: false, byte: 28, bit: 3 } });
  });

  it('ALL_TG_PT registers the initiator port on every target port', async () => {
    good(await register(a, 0xaan, 0n, 0x04));
    const a2 = await h.login('iqn.x:a', '023d00000001', 2, 2);
    good(await out(a2, SA.RESERVE, T.EA, 0xaan));
    good(await h.run(a, READ10));
  });

  it('REGISTER AND MOVE hands the reservation to another I_T nexus', async () => {
    good(await register(a, 0xaan));
    good(await out(a, SA.RESERVE, T.WE, 0xaan));
    const tid = iscsiTransportId(b.initiatorPort);
    const p = Buffer.alloc(24);
    p.writeBigUInt64BE(0xaan, 0);
    p.writeBigUInt64BE(0xbbn, 8);
    p[17] = 0x02; // UNREG
    p.writeUInt16BE(1, 18);
    p.writeUInt32BE(tid.length, 20);
    const list = Buffer.concat([p, tid]);
    good(await h.run(a, proutCdb(SA.REGISTER_AND_MOVE, T.WE, list.length), { dataOut: list }));
    assert.deepStrictEqual((await keys(c)).keys, [0xbbn]);
    good(await h.run(b, WRITE10, { dataOut: BLK }));
    conflict(await h.run(a, WRITE10, { dataOut: BLK }));
  });

  it('registrations survive I_T nexus loss', async () => {
    good(await register(a, 0xaan));
    good(await out(a, SA.RESERVE, T.EA, 0xaan));
    h.target.nexusRemoved(a);
    conflict(await h.run(b, READ10));
  });
});

describe('APTPL', () => {
  it('with APTPL=1 registrations and the reservation are reloaded from the StateStore', async () => {
    const h = new Harness([{ blockCount: 100 }]);
    const a = await h.login('iqn.x:a');
    good(await h.run(a, proutCdb(SA.REGISTER, 0, 24), { dataOut: params(0n, 0xaan, 0x01) }));
    good(await h.run(a, proutCdb(SA.RESERVE, T.WE_RO, 24), { dataOut: params(0xaan, 0n) }));
    const h2 = new Harness([{ blockCount: 100, state: h.stores.get(0) }]);
    await h2.target.load();
    const b = await h2.login('iqn.x:b');
    assert.deepStrictEqual(good(await h2.run(b, prin(1))), hex('00000001 00000010 00000000000000aa 00000000 00 05 0000'));
    conflict(await h2.run(b, WRITE10, { dataOut: BLK }));
    const caps = good(await h2.run(b, prin(2)));
    assert.strictEqual(caps[3] & 1, 1); // PTPL_A
    const a2 = await h2.login('iqn.x:a');
    good(await h2.run(a2, WRITE10, { dataOut: BLK }));
    h.assertNoBugs();
    h2.assertNoBugs();
  });

  it('with APTPL=0 nothing survives', async () => {
    const h = new Harness([{ blockCount: 100 }]);
    const a = await h.login('iqn.x:a');
    good(await h.run(a, proutCdb(SA.REGISTER, 0, 24), { dataOut: params(0n, 0xaan, 0x01) }));
    good(await h.run(a, proutCdb(SA.REGISTER, 0, 24), { dataOut: params(0xaan, 0xabn, 0x00) }));
    const h2 = new Harness([{ blockCount: 100, state: h.stores.get(0) }]);
    const b = await h2.login('iqn.x:b');
    assert.deepStrictEqual(good(await h2.run(b, prin(0))), hex('00000000 00000000'));
    h2.assertNoBugs();
  });

  it('a StateStore failure on load -> INTERNAL TARGET FAILURE, retried on the next command', async () => {
    const h = new Harness([{ blockCount: 100 }]);
    const store = h.stores.get(0)!;
    const orig = store.load.bind(store);
    let fail = true;
    store.load = async (name) => { if (fail) throw new Error('disk gone'); return orig(name); };
    const a = makeLoggedOutNexus(h);
    checkCondition(await h.run(a, READ10), Sense.INTERNAL_TARGET_FAILURE);
    assert.ok(h.bugs.length >= 1);
    h.bugs.length = 0;
    fail = false;
    checkCondition(await h.run(a, READ10), Sense.POWER_ON_RESET);
    good(await h.run(a, READ10));
  });
});

function makeLoggedOutNexus(h: Harness): Nexus {
  const n: Nexus = { id: 9999, initiatorPort: 'iqn.x:z,i,0x000000000001', targetPort: 'iqn.t,t,0x0001', relativeTargetPortId: 1 };
  h.target.nexusAdded(n);
  return n;
}
