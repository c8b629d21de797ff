// The vendor pair commands through iSCSI (docs/pairs.md): every command on a data LU and on a
// command device, in every wrong state and with malformed CDBs and parameter lists, each answer
// checked down to the sense key, ASC/ASCQ, field pointer, INFORMATION and COMMAND-SPECIFIC
// INFORMATION; the Pair Information VPD page; area split and resync; a consistency group.
import assert from 'node:assert/strict';
import type { Rack } from '../../emulator/rack/rack';
import type { CommandResult, IscsiInitiator } from '../../target/iscsi/initiator/initiator';
import {
  PAIR_VPD_PAGE, PairRecord, WireCommand, decodePairVpd, decodeStatusData, pairCreate, pairDelete, pairSplitResync, pairStatus,
} from '../../target/scsi/pair-cdb';
import { FieldPointer, decodeSense } from '../../target/scsi/sense';
import { pattern } from '../helpers/common';
import { rackWithHost } from '../helpers/rack-host';

const IQN = 'iqn.2026-11.dev.dkc-emu:pair.scsi';
const YAML = `
dkcs:
  - name: dkc0
    serial: 410088
    cache: { mode: off }
    raidGroups:
      - { name: a, level: 0, stripeSize: 64KiB, disks: { count: 2, size: 16MiB } }
      - { name: b, level: 0, stripeSize: 64KiB, disks: { count: 2, size: 16MiB } }
      - { name: c, level: 0, stripeSize: 64KiB, disks: { count: 2, size: 4MiB } }
    volumes:
      - { name: pv, group: a, size: 4MiB }      # LDEV 0
      - { name: sv, group: b, size: 4MiB }      # 1
      - { name: pv2, group: a, size: 2MiB }     # 2
      - { name: sv2, group: b, size: 2MiB }     # 3
      - { name: odd, group: b, size: 1MiB }     # 4
      - { name: cmd, group: a, size: 1MiB }     # 5
      - { name: hidden, group: a, size: 4MiB }  # 6: mapped by the other target only
      - { name: pv3, group: a, size: 2MiB }     # 7
      - { name: sv3, group: c, size: 2MiB }     # 8
    targets:
      - name: ${IQN}
        portals: ["127.0.0.1:0"]
        luns:
          - { lun: 0, volume: pv }
          - { lun: 1, volume: sv }
          - { lun: 2, volume: pv2 }
          - { lun: 3, volume: sv2 }
          - { lun: 4, volume: odd }
          - { lun: 5, volume: pv3 }
          - { lun: 6, volume: sv3 }
          - { lun: 9, volume: cmd, commandDevice: true }
      - name: ${IQN}.other
        portals: ["127.0.0.1:0"]
        luns:
          - { lun: 0, volume: hidden }
`;
const LDEV = { pv: 0, sv: 1, pv2: 2, sv2: 3, odd: 4, cmd: 5, hidden: 6, pv3: 7, sv3: 8 } as const;
const CMD_LUN = 9;
const VOLUME_BLOCKS = 8192; // 4 MiB of 512-byte blocks
const UNIT = 128; // blocks per difference-bitmap unit (64 KiB)
const STATE = { SMPL: 0, COPY: 1, PAIR: 2, PSUS: 3, PSUE: 4 } as const;
const POLL_ROUNDS_MAX = 400;

interface Want {
  key: number;
  asc: number;
  ascq: number;
  field?: FieldPointer;
  information?: bigint;
  state?: keyof typeof STATE;
}
const ILLEGAL = 0x5;
const invalidCdb = (byte: number, bit?: number): Want => ({ key: ILLEGAL, asc: 0x24, ascq: 0, field: { cdb: true, byte, bit } });
const invalidParam = (byte: number, bit?: number): Want => ({ key: ILLEGAL, asc: 0x26, ascq: 0, field: { cdb: false, byte, bit } });
const sequence = (state: keyof typeof STATE): Want => ({ key: ILLEGAL, asc: 0x2c, ascq: 0, state });
const PARAMETER_LIST_LENGTH = { key: ILLEGAL, asc: 0x1a, ascq: 0 };

/** The command with one CDB byte changed. */
function poke(w: WireCommand, byte: number, value: number): WireCommand {
  const cdb = Buffer.from(w.cdb);
  cdb[byte] = value;
  return { ...w, cdb };
}

describe('vendor pair commands through iSCSI (docs/pairs.md)', function () {
  this.timeout(60_000);
  const host = rackWithHost(YAML, { file: 'pair-scsi.yaml', targetName: IQN, initiatorName: 'iqn.2026-11.dev.dkc-emu:pair.host', luns: [0, 1, 2, 3, 4, 5, 6, CMD_LUN] });
  let rack: Rack;
  let ini: IscsiInitiator;
  before(() => ({ rack, ini } = host));

  const pairs = () => rack.dkcs[0].pairs;

  function send(lun: number, w: WireCommand): Promise<CommandResult> {
    return ini.command({ lun, cdb: w.cdb, dataOut: w.dataOut, expectedLength: w.expectedLength });
  }

  async function good(lun: number, w: WireCommand): Promise<CommandResult> {
    const r = await send(lun, w);
    assert.equal(r.status, 0, `expected GOOD, got status ${r.status} sense ${r.sense?.toString('hex')}`);
    return r;
  }

  async function refused(lun: number, w: WireCommand, want: Want): Promise<void> {
    const r = await send(lun, w);
    assert.equal(r.status, 0x02, `expected CHECK CONDITION for CDB ${w.cdb.toString('hex')}, got ${r.status}`);
    const s = decodeSense(r.sense!);
    assert.deepEqual([s.key, s.asc, s.ascq], [want.key, want.asc, want.ascq], `sense of CDB ${w.cdb.toString('hex')}`);
    if (want.field) assert.deepEqual(s.fieldPointer, { bit: undefined, ...want.field }, `field pointer of CDB ${w.cdb.toString('hex')}`);
    if (want.information !== undefined) assert.equal(s.information, want.information);
    // Fixed format: a COMMAND-SPECIFIC INFORMATION of 0 (SMPL) reads as absent.
    if (want.state) assert.equal(s.commandSpecific ?? 0n, BigInt(STATE[want.state]), `pair state in COMMAND-SPECIFIC INFORMATION`);
  }

  async function status(lun: number, ldev?: number): Promise<PairRecord[]> {
    return decodeStatusData((await good(lun, pairStatus({ ldev }))).data);
  }

  async function settle(lun: number, want: keyof typeof STATE): Promise<PairRecord> {
    for (let i = 0; i < POLL_ROUNDS_MAX; i++) {
      const [st] = await status(lun);
      if (st.state === want && st.copyTotalBlocks === 0) return st;
      await new Promise((r) => setTimeout(r, 25));
    }
    assert.fail(`LUN ${lun}: not ${want} in time: ${JSON.stringify(await status(lun))}`);
  }

  async function naa(lun: number): Promise<Buffer> {
    const p = await ini.inquiryVpd(lun, 0x83, 255);
    // The first designator is the volume's NAA IEEE Registered Extended (16 bytes).
    assert.equal(p[5] & 0x0f, 0x03);
    return p.subarray(8, 8 + p[7]);
  }

  describe('the command device (peripheral type 0Ch)', () => {
    it('answers INQUIRY as a storage array controller with VPD 00h, 80h, 83h only', async () => {
      const inq = await ini.inquiry(CMD_LUN);
      assert.equal(inq.peripheralDeviceType, 0x0c);
      assert.equal(inq.product, 'COMMAND DEVICE');
      const pages = await ini.inquiryVpd(CMD_LUN, 0x00);
      assert.equal(pages[0], 0x0c);
      assert.deepEqual([...pages.subarray(4, 4 + pages.readUInt16BE(2))], [0x00, 0x80, 0x83]);
      await refused(CMD_LUN, { cdb: Buffer.from([0x12, 0x01, PAIR_VPD_PAGE, 0, 255, 0]), expectedLength: 255 }, invalidCdb(2, 7));
    });

    it('refuses medium access: READ(10), WRITE(10), READ CAPACITY(10) are not its opcodes', async () => {
      const want = { key: ILLEGAL, asc: 0x20, ascq: 0 };
      await refused(CMD_LUN, { cdb: Buffer.from([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0]), expectedLength: 512 }, want);
      await refused(CMD_LUN, { cdb: Buffer.from([0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0]), dataOut: Buffer.alloc(512) }, want);
      await refused(CMD_LUN, { cdb: Buffer.from([0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]), expectedLength: 8 }, want);
    });

    it('reports exactly its own opcodes in REPORT SUPPORTED OPERATION CODES', async () => {
      const cdb = Buffer.from([0xa3, 0x0c, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0]);
      const r = await good(CMD_LUN, { cdb, expectedLength: 4096 });
      const ops = new Set<number>();
      for (let at = 4; at < 4 + r.data.readUInt32BE(0); at += 8) ops.add(r.data[at]);
      assert.deepEqual([...ops].sort((a, b) => a - b), [0x00, 0x03, 0x12, 0xa0, 0xa3, 0xc0, 0xc1, 0xc2, 0xc3]);
    });

    it('needs LDEVV on C0h-C2h, and a volume this target maps', async () => {
      await refused(CMD_LUN, pairSplitResync({ split: true }), invalidCdb(1, 3));
      await refused(CMD_LUN, pairCreate({ secondary: LDEV.sv }), invalidCdb(1, 3));
      await refused(CMD_LUN, pairDelete({}), invalidCdb(1, 3));
      for (const ldev of [LDEV.hidden, LDEV.cmd, 999]) {
        await refused(CMD_LUN, pairSplitResync({ ldev, split: true }), invalidCdb(4, 7));
        await refused(CMD_LUN, pairStatus({ ldev }), invalidCdb(4, 7));
        await refused(CMD_LUN, pairDelete({ ldev }), invalidCdb(4, 7));
        await refused(CMD_LUN, pairCreate({ ldev, secondary: LDEV.sv }), invalidCdb(4, 7));
      }
      assert.deepEqual(pairs().list(), []);
    });
  });

  describe('on data LUs', () => {
    it('VPD C0h says SMPL, and every command but create meets COMMAND SEQUENCE ERROR with state SMPL', async () => {
      const v = decodePairVpd(await ini.inquiryVpd(0, PAIR_VPD_PAGE));
      assert.deepEqual(v, { state: 'SMPL', role: 'none', direction: 'forward', ldev: LDEV.pv });
      const pages = await ini.inquiryVpd(0, 0x00);
      assert.ok(pages.subarray(4).includes(PAIR_VPD_PAGE), 'VPD 00h lists C0h');
      await refused(0, pairSplitResync({ split: true }), sequence('SMPL'));
      await refused(0, pairSplitResync({ split: false }), sequence('SMPL'));
      await refused(0, pairSplitResync({ split: false, reverse: true }), sequence('SMPL'));
      await refused(0, pairSplitResync({ split: true, areas: [{ lba: 0, blocks: 1 }] }), sequence('SMPL'));
      await refused(0, pairSplitResync({ split: false, areas: [{ lba: 0, blocks: 1 }] }), sequence('SMPL'));
      await refused(0, pairDelete({}), sequence('SMPL'));
      assert.deepEqual(await status(0), []);
    });

    it('refuses malformed PAIR CREATE: LDEVV, secondary, parameter list, names', async () => {
      await refused(0, pairCreate({ ldev: LDEV.pv, secondary: LDEV.sv }), invalidCdb(1, 3));
      for (const secondary of [LDEV.hidden, LDEV.cmd, 999, LDEV.pv, LDEV.odd]) {
        await refused(0, pairCreate({ secondary }), invalidCdb(2, 7));
      }
      const ok = pairCreate({ secondary: LDEV.sv });
      await refused(0, poke(ok, 9, 10), PARAMETER_LIST_LENGTH); // 10 bytes: neither 0 nor 64
      await refused(0, { cdb: ok.cdb, dataOut: ok.dataOut!.subarray(0, 32) }, PARAMETER_LIST_LENGTH); // less Data-Out than it says
      await refused(0, pairCreate({ secondary: LDEV.sv, name: 'a b' }), invalidParam(0, 7));
      await refused(0, pairCreate({ secondary: LDEV.sv, name: '-x' }), invalidParam(0, 7));
      await refused(0, pairCreate({ secondary: LDEV.sv, group: 'g/1' }), invalidParam(32, 7));
      const stray = Buffer.from(ok.dataOut!);
      stray.write('p1', 0, 'ascii');
      stray[5] = 0x41; // after the name's NUL
      await refused(0, { cdb: ok.cdb, dataOut: stray }, invalidParam(5, 7));
      await refused(0, poke(ok, 10, 1), invalidCdb(10, 0)); // reserved byte
      await refused(0, poke(ok, 1, 0x01), invalidCdb(1, 0)); // SPLIT is not a CREATE bit
      await refused(0, poke(ok, 11, 0x04), invalidCdb(11, 2)); // NACA
      assert.deepEqual(pairs().list(), []);
    });

    it('creates a pair: COPY then PAIR, VPD C0h on both volumes, the partner found by its NAA', async () => {
      await ini.write16(0, 0, pattern(512, 0, VOLUME_BLOCKS, 1));
      pairs().setCopyOptions({ paceMs: 60_000, copyBlocksPerStep: UNIT });
      await good(0, pairCreate({ secondary: LDEV.sv, name: 'p1' }));
      const [st] = await status(0);
      assert.equal(st.state, 'COPY');
      assert.equal(st.copyTotalBlocks, VOLUME_BLOCKS);
      assert.deepEqual([st.id, st.primary, st.secondary, st.group], ['p1', LDEV.pv, LDEV.sv, undefined]);
      assert.deepEqual(st.primaryNaa, await naa(0));
      assert.deepEqual(st.secondaryNaa, await naa(1));

      // Wrong states while the initial copy runs (a whole split is right: seed 004, below).
      await refused(0, pairSplitResync({ split: true, areas: [{ lba: 0, blocks: 1 }] }), sequence('COPY'));
      await refused(0, pairSplitResync({ split: false }), sequence('COPY'));
      await refused(0, pairSplitResync({ split: false, areas: [{ lba: 0, blocks: 1 }] }), sequence('COPY'));
      await refused(0, pairSplitResync({ split: false, reverse: true }), sequence('COPY'));
      await refused(0, pairCreate({ secondary: LDEV.sv }), sequence('COPY'));
      await refused(2, pairCreate({ secondary: LDEV.sv }), invalidCdb(2, 7)); // another size first
      const w = await ini.command({ lun: 1, cdb: Buffer.from([0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0]), dataOut: Buffer.alloc(512) });
      assert.deepEqual([w.status, w.senseInfo?.key, w.senseInfo?.asc, w.senseInfo?.ascq], [0x02, 0x7, 0x27, 0x00], 'secondary in COPY is write-protected');

      pairs().setCopyOptions({ paceMs: 1, copyBlocksPerStep: 2048 });
      await settle(0, 'PAIR');
      assert.ok((await ini.read16(1, 0, VOLUME_BLOCKS)).equals(pattern(512, 0, VOLUME_BLOCKS, 1)));
      const vp = decodePairVpd(await ini.inquiryVpd(0, PAIR_VPD_PAGE));
      const vs = decodePairVpd(await ini.inquiryVpd(1, PAIR_VPD_PAGE));
      assert.deepEqual(vp, { state: 'PAIR', role: 'primary', direction: 'forward', ldev: LDEV.pv, partner: LDEV.sv, partnerNaa: await naa(1), id: 'p1' });
      assert.deepEqual(vs, { state: 'PAIR', role: 'secondary', direction: 'forward', ldev: LDEV.sv, partner: LDEV.pv, partnerNaa: await naa(0), id: 'p1' });
    });

    it('in PAIR: resync, restore and create meet COMMAND SEQUENCE ERROR with state PAIR; the secondary is write-protected', async () => {
      await refused(0, pairSplitResync({ split: false }), sequence('PAIR'));
      await refused(0, pairSplitResync({ split: false, reverse: true }), sequence('PAIR'));
      await refused(0, pairSplitResync({ split: false, areas: [{ lba: 0, blocks: 1 }] }), sequence('PAIR'));
      await refused(1, pairCreate({ secondary: LDEV.pv }), sequence('PAIR'));
      await refused(2, pairCreate({ secondary: LDEV.sv2, name: 'p1' }), invalidParam(0, 7)); // the name is taken
      await refused(0, pairSplitResync({ split: true, group: true }), invalidCdb(1, 2)); // p1 is in no group
      const w = await ini.command({ lun: 1, cdb: Buffer.from([0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0]), dataOut: Buffer.alloc(512) });
      assert.deepEqual([w.status, w.senseInfo?.key, w.senseInfo?.asc], [0x02, 0x7, 0x27]);
    });

    it('refuses malformed PAIR SPLIT/RESYNC CDBs and area lists, changing nothing', async () => {
      await refused(0, pairSplitResync({ split: true, reverse: true }), invalidCdb(1, 1));
      await refused(0, poke(pairSplitResync({ split: true }), 1, 0x11), invalidCdb(1, 4)); // reserved bit
      await refused(0, pairSplitResync({ split: true, ldev: LDEV.pv }), invalidCdb(1, 3)); // LDEVV on a data LU
      const area = { lba: 0, blocks: 8 };
      await refused(0, pairSplitResync({ split: true, group: true, areas: [area] }), invalidCdb(1, 2));
      await refused(0, pairSplitResync({ split: false, reverse: true, areas: [area] }), invalidCdb(1, 1));
      const many = pairSplitResync({ split: true, areas: Array.from({ length: 257 }, (_, i) => ({ lba: i * 8, blocks: 8 })) });
      await refused(0, many, invalidCdb(2, 7));
      const one = pairSplitResync({ split: true, areas: [area] });
      await refused(0, poke(poke(one, 9, 0), 8, 0), PARAMETER_LIST_LENGTH); // count 1, length 0
      await refused(0, poke(one, 9, 32), PARAMETER_LIST_LENGTH); // count 1, length 32
      await refused(0, { cdb: one.cdb, dataOut: one.dataOut!.subarray(0, 8) }, PARAMETER_LIST_LENGTH); // short Data-Out
      await refused(0, pairSplitResync({ split: true, areas: [area, { lba: 64, blocks: 0 }] }), invalidParam(16 + 8, 7));
      const reserved = pairSplitResync({ split: true, areas: [area] });
      reserved.dataOut![13] = 1;
      await refused(0, reserved, invalidParam(12, 7));
      const past = { lba: VOLUME_BLOCKS - 4, blocks: 8 };
      await refused(0, pairSplitResync({ split: true, areas: [area, past] }), { key: ILLEGAL, asc: 0x21, ascq: 0, information: BigInt(past.lba), field: { cdb: false, byte: 16 } });
      const huge = pairSplitResync({ split: true, areas: [area] });
      huge.dataOut!.writeBigUInt64BE(0xffffffffffffff00n, 0);
      await refused(0, huge, { key: ILLEGAL, asc: 0x21, ascq: 0, field: { cdb: false, byte: 0 } });
      const [st] = await status(0);
      assert.equal(st.state, 'PAIR');
      assert.equal(st.splitAreaCount, 0);
    });

    it('splits at an instant: the secondary is frozen, writable, and differences are counted', async () => {
      await good(0, pairSplitResync({ split: true }));
      await ini.write16(0, 0, pattern(512, 0, UNIT, 2)); // one unit of the primary
      await ini.write16(1, 4 * UNIT, pattern(512, 4 * UNIT, 1, 3)); // one block of the secondary
      assert.ok((await ini.read16(1, 0, UNIT)).equals(pattern(512, 0, UNIT, 1)), 'secondary frozen at the split');
      const [st] = await status(0);
      assert.equal(st.state, 'PSUS');
      assert.equal(st.differenceBlocks, 2 * UNIT);
      assert.deepEqual(st.splitAreas, [{ lba: 0, blocks: VOLUME_BLOCKS }]);
      await refused(0, pairSplitResync({ split: true }), sequence('PSUS'));
      await refused(1, pairSplitResync({ split: true }), sequence('PSUS'));
      await refused(0, pairCreate({ secondary: LDEV.sv }), sequence('PSUS'));
      assert.equal(decodePairVpd(await ini.inquiryVpd(1, PAIR_VPD_PAGE)).state, 'PSUS');
    });

    it('resyncs only the units that differ, then PAIR', async () => {
      const before = (await status(0))[0].copiedBlocks;
      await good(0, pairSplitResync({ split: false }));
      const st = await settle(0, 'PAIR');
      assert.equal(st.copiedBlocks - before, 2 * UNIT);
      const p = await ini.read16(0, 0, VOLUME_BLOCKS);
      assert.ok(p.equals(await ini.read16(1, 0, VOLUME_BLOCKS)), 'identical after the resync');
    });

    it('restores the primary from the secondary (REVERSE), then PAIR', async () => {
      await good(0, pairSplitResync({ split: true }));
      await ini.write16(0, 10 * UNIT, pattern(512, 10 * UNIT, UNIT, 4)); // a change to undo
      const saved = await ini.read16(1, 0, VOLUME_BLOCKS);
      await good(1, pairSplitResync({ split: false, reverse: true })); // from the secondary's LU: either volume names the pair
      const st = await settle(0, 'PAIR');
      assert.equal(st.direction, 'forward');
      assert.ok((await ini.read16(0, 0, VOLUME_BLOCKS)).equals(saved), 'primary restored');
    });

    it('splits areas: listed units freeze, the rest mirrors; area resync; restore refused while areas are split', async () => {
      await good(0, pairSplitResync({ split: true, areas: [{ lba: 0, blocks: 8 }, { lba: 1000, blocks: 16 }] }));
      const [st] = await status(0);
      assert.equal(st.state, 'PSUS');
      assert.deepEqual(st.splitAreas, [{ lba: 0, blocks: UNIT }, { lba: 7 * UNIT, blocks: UNIT }]); // rounded out to 64 KiB units
      await ini.write16(0, 0, pattern(512, 0, 2 * UNIT, 5)); // unit 0 split, unit 1 mirrored
      const s = await ini.read16(1, 0, 2 * UNIT);
      assert.ok(!s.subarray(0, UNIT * 512).equals(pattern(512, 0, UNIT, 5)), 'split unit frozen');
      assert.ok(s.subarray(UNIT * 512).equals(pattern(512, UNIT, UNIT, 5)), 'unsplit unit mirrored');
      await refused(0, pairSplitResync({ split: false, reverse: true }), sequence('PSUS'));
      await refused(0, pairSplitResync({ split: true }), sequence('PSUS'));
      // A later split of another area freezes that area at its own time.
      await good(0, pairSplitResync({ split: true, areas: [{ lba: 20 * UNIT, blocks: UNIT }] }));
      assert.equal((await status(0))[0].splitAreaCount, 3);
      await ini.write16(0, 7 * UNIT, pattern(512, 7 * UNIT, UNIT, 5)); // split unit 7 differs too
      // One unit a step, a long rest between: the second unit is still to copy when we look.
      pairs().setCopyOptions({ paceMs: 60_000, copyBlocksPerStep: UNIT });
      await good(0, pairSplitResync({ split: false, areas: [{ lba: 3, blocks: 1 }, { lba: 7 * UNIT, blocks: 1 }] })); // units 0 and 7
      const mid = (await status(0))[0];
      assert.deepEqual(mid.splitAreas, [{ lba: 20 * UNIT, blocks: UNIT }]);
      assert.ok(mid.copyRemainingBlocks >= UNIT, `the area resync is copying: ${JSON.stringify(mid)}`);
      await refused(0, pairSplitResync({ split: true, areas: [{ lba: 30 * UNIT, blocks: 1 }] }), sequence('PSUS')); // not while a copy runs
      pairs().setCopyOptions({ paceMs: 1, copyBlocksPerStep: 2048 });
      await settle(0, 'PSUS');
      assert.ok((await ini.read16(1, 0, UNIT)).equals(pattern(512, 0, UNIT, 5)), 'unit 0 resynced');
      assert.ok((await ini.read16(1, 7 * UNIT, UNIT)).equals(pattern(512, 7 * UNIT, UNIT, 5)), 'unit 7 resynced');
      await good(0, pairSplitResync({ split: false }));
      await settle(0, 'PAIR');
      assert.ok((await ini.read16(0, 0, VOLUME_BLOCKS)).equals(await ini.read16(1, 0, VOLUME_BLOCKS)));
    });

    it('deletes the pair: both SMPL, the secondary keeps its data and is writable', async () => {
      await good(1, pairDelete({}));
      assert.deepEqual(await status(0), []);
      assert.equal(decodePairVpd(await ini.inquiryVpd(1, PAIR_VPD_PAGE)).role, 'none');
      await refused(0, pairDelete({}), sequence('SMPL'));
      await refused(0, poke(pairDelete({}), 2, 1), invalidCdb(2, 0));
      await ini.write16(1, 0, pattern(512, 0, 1, 6));
    });
  });

  describe('a split while the copy runs (seed 004)', () => {
    it('is GOOD at once; PAIR STATUS shows the split image on its way; the secondary reads the split instant', async () => {
      await ini.write16(0, 0, pattern(512, 0, VOLUME_BLOCKS, 7));
      pairs().setCopyOptions({ paceMs: 60_000, copyBlocksPerStep: UNIT });
      await good(0, pairCreate({ secondary: LDEV.sv, name: 'q1' }));
      await good(0, pairSplitResync({ split: true }));
      const [st] = await status(0);
      assert.equal(st.state, 'PSUS');
      assert.ok(st.imagePending && st.copyRemainingBlocks > 0 && st.copyTotalBlocks >= st.copyRemainingBlocks, JSON.stringify(st));
      await refused(0, pairSplitResync({ split: false, reverse: true }), sequence('PSUS')); // not before the image is whole
      await ini.write16(0, 0, pattern(512, 0, VOLUME_BLOCKS, 8)); // the primary changes everywhere
      assert.ok((await ini.read16(1, 0, VOLUME_BLOCKS)).equals(pattern(512, 0, VOLUME_BLOCKS, 7)), 'the secondary is the split instant');
      const [after] = await status(0);
      assert.equal(after.imagePending, false, 'each unit went before the primary changed it');
      pairs().setCopyOptions({ paceMs: 1, copyBlocksPerStep: 2048 });
      await good(0, pairSplitResync({ split: false }));
      await settle(0, 'PAIR');
      assert.ok((await ini.read16(1, 0, VOLUME_BLOCKS)).equals(pattern(512, 0, VOLUME_BLOCKS, 8)));
      await good(0, pairDelete({}));
    });
  });

  describe('through the command device, naming LDEVs', () => {
    it('creates two pairs in a consistency group and lists them', async () => {
      await good(CMD_LUN, pairCreate({ ldev: LDEV.pv, secondary: LDEV.sv, name: 'g1', group: 'cg' }));
      await good(CMD_LUN, pairCreate({ ldev: LDEV.pv2, secondary: LDEV.sv2, name: 'g2', group: 'cg' }));
      await settle(0, 'PAIR');
      await settle(2, 'PAIR');
      const all = await status(CMD_LUN);
      assert.deepEqual(all.map((r) => [r.id, r.group, r.primary, r.secondary, r.state]), [['g1', 'cg', 0, 1, 'PAIR'], ['g2', 'cg', 2, 3, 'PAIR']]);
      assert.deepEqual((await status(CMD_LUN, LDEV.sv2)).map((r) => r.id), ['g2']);
      assert.deepEqual(await status(CMD_LUN, LDEV.odd), []);
      const v = decodePairVpd(await ini.inquiryVpd(2, PAIR_VPD_PAGE));
      assert.equal(v.group, 'cg');
    });

    it('splits the whole group at one instant and resyncs it', async () => {
      await good(CMD_LUN, pairSplitResync({ ldev: LDEV.sv2, split: true, group: true }));
      assert.deepEqual((await status(CMD_LUN)).map((r) => r.state), ['PSUS', 'PSUS']);
      await refused(CMD_LUN, pairSplitResync({ ldev: LDEV.pv, split: true, group: true }), sequence('PSUS'));
      await good(CMD_LUN, pairSplitResync({ ldev: LDEV.pv, split: false }));
      await settle(0, 'PAIR');
      // g1 is PAIR again and g2 still PSUS: a group resync checks every pair first and does nothing.
      await refused(CMD_LUN, pairSplitResync({ ldev: LDEV.pv2, split: false, group: true }), sequence('PAIR'));
      assert.equal((await status(2))[0].state, 'PSUS');
      await good(CMD_LUN, pairSplitResync({ ldev: LDEV.pv, split: true }));
      await good(CMD_LUN, pairSplitResync({ ldev: LDEV.pv, split: false, group: true }));
      await settle(0, 'PAIR');
      await settle(2, 'PAIR');
      await good(CMD_LUN, pairDelete({ ldev: LDEV.pv }));
      await good(CMD_LUN, pairDelete({ ldev: LDEV.sv2 }));
      assert.deepEqual(await status(CMD_LUN), []);
    });
  });

  describe('PSUE', () => {
    it('after a failed secondary: split and area commands meet state PSUE; delete works', async () => {
      await good(5, pairCreate({ secondary: LDEV.sv3, name: 'e1' }));
      await settle(5, 'PAIR');
      await rack.disk('dkc0', 'c-0', { action: 'fail' }); // the secondary's RAID-0 group is lost
      await ini.write16(5, 0, pattern(512, 0, 8, 7)); // the primary write succeeds; the mirror breaks
      const [st] = await status(5);
      assert.equal(st.state, 'PSUE');
      assert.equal(st.differenceBlocks, 4096, 'every unit differs');
      await refused(5, pairSplitResync({ split: true }), sequence('PSUE'));
      await refused(5, pairSplitResync({ split: true, areas: [{ lba: 0, blocks: 1 }] }), sequence('PSUE'));
      await refused(5, pairSplitResync({ split: false, areas: [{ lba: 0, blocks: 1 }] }), sequence('PSUE'));
      await refused(5, pairSplitResync({ split: false, reverse: true }), sequence('PSUE'));
      await refused(5, pairCreate({ secondary: LDEV.sv3 }), sequence('PSUE'));
      await good(5, pairDelete({}));
      assert.deepEqual(await status(5), []);
    });
  });
});
