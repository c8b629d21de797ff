// Volume pairs through the whole stack (issue 4 must-show, docs/pairs.md): one host session of the
// project's initiator writes to a primary LU while it creates the pair, splits it and resyncs it
// with the vendor pair commands, and reads the secondary, mapped as its own LU, while the primary
// keeps changing. Several writer loops run while the split is sent, so the test knows, for every
// chunk, which writes were acknowledged before the split was sent (on the secondary), which were
// in flight across it (either) and which were sent after its GOOD (not on the secondary).
import assert from 'node:assert/strict';
import type { Rack } from '../../emulator/rack/rack';
import type { CommandResult, IscsiInitiator } from '../../target/iscsi/initiator/initiator';
import {
  Area, PAIR_VPD_PAGE, PairRecord, PairVpd, WireCommand, decodePairVpd, decodeStatusData, pairCreate, pairDelete,
  pairSplitResync, pairStatus,
} from '../../target/scsi/pair-cdb';
import { pattern, prng } from '../helpers/common';
import { rackWithHost } from '../helpers/rack-host';

const IQN = 'iqn.2026-11.dev.dkc-emu:pairs.e2e';
// LDEV numbers are indexes in `volumes:`; the pair's volumes are neither 0 nor their LUN numbers.
const LDEV_P = 2;
const LDEV_S = 1;
const LUN_P = 0;
const LUN_S = 1;
const PAIR_NAME = 'e2e-pair';
const YAML = `
dkcs:
  - name: dkc0
    serial: 410079
    raidGroups:
      - { name: rgp, level: 5, stripeSize: 16KiB, disks: { count: 4, size: 8MiB } }
      - { name: rgs, level: 1, disks: { count: 2, size: 24MiB } }
    volumes:
      - { name: other, group: rgs, size: 4MiB }
      - { name: svol, group: rgs, size: 16MiB }
      - { name: pvol, group: rgp, size: 16MiB }
    targets:
      - name: ${IQN}
        portals: ["127.0.0.1:0"]
        luns:
          - { lun: ${LUN_P}, volume: pvol }
          - { lun: ${LUN_S}, volume: svol }
`;

const BLOCK = 512;
const VOLUME_BLOCKS = (16 * 1024 * 1024) / BLOCK;
/** One difference-bitmap bit: 64 KiB (firmware/pairs/manager.ts DIFF_UNIT_BYTES). */
const UNIT_BLOCKS = (64 * 1024) / BLOCK;
/** 16 KiB, one WRITE(16) each: four chunks per unit, none across a unit boundary. */
const CHUNK_BLOCKS = 32;
const CHUNKS = VOLUME_BLOCKS / CHUNK_BLOCKS;
const UNITS = VOLUME_BLOCKS / UNIT_BLOCKS;
const CHUNKS_PER_UNIT = UNIT_BLOCKS / CHUNK_BLOCKS;
/** The writers touch only these units, so a resync has less than the whole volume to copy. */
const HOT_UNITS = 96;
const WRITERS = 4;
/** Acknowledged writes before a split is sent: the pair mirrors under load first. */
const WRITES_BEFORE_SPLIT = 300;
const READ_BLOCKS = 2048;
const PICK_TRIES_MAX = 1000;
const POLL_ROUNDS_MAX = 500;
const POLL_MS = 20;
/** Generations of the host's direct writes to the secondary: no writer reaches them. */
const SECONDARY_GEN_BASE = 0x70000000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const unitOf = (chunk: number) => Math.floor(chunk / CHUNKS_PER_UNIT);
const expected = (chunk: number, gen: number) =>
  gen === 0 ? Buffer.alloc(CHUNK_BLOCKS * BLOCK) : pattern(BLOCK, chunk * CHUNK_BLOCKS, CHUNK_BLOCKS, gen);

/** One WRITE(16) to one chunk; `sent` and `ack` are ticks of the host's event counter. */
interface WriteRec {
  gen: number;
  sent: number;
  ack: number;
}

/** A pair command as the host saw it: ticked before it was sent and when its response arrived. */
interface Window {
  sent: number;
  done: number;
}

/**
 * What the host did to the primary, chunk by chunk. Writes to one chunk never overlap (a chunk
 * is busy while written), so a chunk's history is in order of both sending and acknowledgement.
 */
class HostModel {
  private seq = 0;
  private gen = 1;
  readonly history: WriteRec[][] = Array.from({ length: CHUNKS }, () => []);
  readonly busy = new Set<number>();

  tick(): number {
    return ++this.seq;
  }

  begin(chunk: number): WriteRec {
    const w: WriteRec = { gen: this.gen++, sent: this.tick(), ack: Infinity };
    this.history[chunk].push(w);
    return w;
  }

  /** The generation the primary holds once no write is in flight: the last write's (0: never written). */
  last(chunk: number): number {
    const h = this.history[chunk];
    return h.length === 0 ? 0 : h[h.length - 1].gen;
  }

  /**
   * What the secondary may hold for a chunk after a split in `w`: the generation of the last
   * write acknowledged before the split was sent, or of a write in flight across the split (sent
   * before its response arrived, not acknowledged before it was sent). Nothing sent later.
   */
  atSplit(chunk: number, w: Window): number[] {
    let before = 0;
    const across: number[] = [];
    for (const x of this.history[chunk]) {
      if (x.ack < w.sent) before = x.gen;
      else if (x.sent < w.done) across.push(x.gen);
    }
    return [before, ...across];
  }

  /** Units with a write acknowledged after `tick` (may differ) or sent after it (do differ). */
  unitsWritten(after: number, by: 'ack' | 'sent'): Set<number> {
    const units = new Set<number>();
    this.history.forEach((h, c) => {
      if (h.some((x) => x[by] > after)) units.add(unitOf(c));
    });
    return units;
  }
}

/** WRITERS loops writing random chunks of the hot units to the primary until stopped. */
class Writers {
  acks = 0;
  private stopped = false;
  private readonly loops: Promise<void>;
  private failure: Error | null = null;

  constructor(ini: IscsiInitiator, private readonly model: HostModel, private readonly hot: number[], rand: () => number) {
    const loop = async () => {
      while (!this.stopped) {
        const c = this.pick(rand);
        const w = model.begin(c);
        try {
          await ini.write16(LUN_P, c * CHUNK_BLOCKS, expected(c, w.gen));
        } finally {
          model.busy.delete(c);
        }
        w.ack = model.tick();
        this.acks++;
      }
    };
    this.loops = Promise.all(Array.from({ length: WRITERS }, loop)).then(
      () => undefined,
      (err: Error) => {
        this.failure = err;
        this.stopped = true;
        throw err;
      },
    );
    this.loops.catch(() => undefined); // reported by the next untilAcks or stop
  }

  private pick(rand: () => number): number {
    for (let i = 0; i < PICK_TRIES_MAX; i++) {
      const u = this.hot[Math.floor(rand() * this.hot.length)];
      const c = u * CHUNKS_PER_UNIT + Math.floor(rand() * CHUNKS_PER_UNIT);
      if (!this.model.busy.has(c)) {
        this.model.busy.add(c);
        return c;
      }
    }
    throw new Error(`no idle chunk in ${PICK_TRIES_MAX} tries`);
  }

  /** Until `n` more writes are acknowledged. */
  async untilAcks(n: number): Promise<void> {
    const target = this.acks + n;
    while (this.acks < target) {
      if (this.failure) throw this.failure;
      await sleep(2);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loops;
  }
}

/** The NAA designator of VPD 83h (SPC-4 7.8.6: designator type 3, association 0: the LU). */
function naaOf(page83: Buffer): Buffer {
  const end = 4 + page83.readUInt16BE(2);
  for (let at = 4; at + 4 <= end; at += 4 + page83[at + 3]) {
    if ((page83[at + 1] & 0x0f) === 3 && ((page83[at + 1] >> 4) & 0x03) === 0) return page83.subarray(at + 4, at + 4 + page83[at + 3]);
  }
  assert.fail('VPD 83h has no NAA designator');
}

/** WRITE(16) (SBC-3 5.19) for a command whose status the test looks at itself. */
function write16Cdb(lba: number, blocks: number): Buffer {
  const b = Buffer.alloc(16);
  b[0] = 0x8a;
  b.writeBigUInt64BE(BigInt(lba), 2);
  b.writeUInt32BE(blocks, 10);
  return b;
}

/** Units, as the sorted extents a split bitmap reports (adjacent units merge). */
function extentsOf(units: Iterable<number>): Area[] {
  const out: Area[] = [];
  for (const u of [...new Set(units)].sort((a, b) => a - b)) {
    const last = out[out.length - 1];
    if (last && last.lba + last.blocks === u * UNIT_BLOCKS) last.blocks += UNIT_BLOCKS;
    else out.push({ lba: u * UNIT_BLOCKS, blocks: UNIT_BLOCKS });
  }
  return out;
}

const genIn = (b: Buffer) => b.readUInt32LE(4);

describe('volume pairs through iSCSI: in-band create, split under writes, frozen secondary, resync', function () {
  this.timeout(60_000);
  const host = rackWithHost(YAML, { file: 'pairs-e2e.yaml', targetName: IQN, initiatorName: 'iqn.2026-11.dev.dkc-emu:pairs.host', luns: [LUN_P, LUN_S] });
  let rack: Rack;
  let ini: IscsiInitiator;
  const seed = Number(process.env.SEED ?? 20261204);
  const rand = prng(seed);
  const model = new HostModel();
  // HOT_UNITS distinct units, seeded.
  const hot = Array.from({ length: UNITS }, (_x, i) => i)
    .map((u) => ({ u, k: rand() }))
    .sort((a, b) => a.k - b.k)
    .slice(0, HOT_UNITS)
    .map((x) => x.u)
    .sort((a, b) => a - b);
  const cold = Array.from({ length: UNITS }, (_x, i) => i).filter((u) => !hot.includes(u));

  before(() => {
    console.log(`      seed ${seed} (replay with SEED=${seed})`);
    ({ rack, ini } = host);
  });

  async function send(lun: number, w: WireCommand): Promise<CommandResult> {
    return ini.command({ lun, cdb: w.cdb, dataOut: w.dataOut, expectedLength: w.expectedLength });
  }

  async function good(lun: number, w: WireCommand, what: string): Promise<CommandResult> {
    const r = await send(lun, w);
    const s = r.senseInfo;
    assert.equal(r.status, 0, `${what}: status 0x${r.status.toString(16)}${s ? ` sense ${s.key.toString(16)}/${s.asc.toString(16)}/${s.ascq.toString(16)}` : ''}`);
    return r;
  }

  /** A pair command sent while the writers run: its window on the host's event counter. */
  async function timed(lun: number, w: WireCommand, what: string): Promise<Window> {
    const sent = model.tick();
    await good(lun, w, what);
    return { sent, done: model.tick() };
  }

  async function status(): Promise<PairRecord> {
    const list = decodeStatusData((await good(LUN_P, pairStatus({}), 'PAIR STATUS')).data);
    assert.equal(list.length, 1, 'PAIR STATUS on the primary LU: one pair');
    return list[0];
  }

  async function untilPair(what: string): Promise<{ rec: PairRecord; seen: Set<string> }> {
    const seen = new Set<string>();
    for (let i = 0; i < POLL_ROUNDS_MAX; i++) {
      const rec = await status();
      seen.add(rec.state);
      if (rec.state === 'PAIR') return { rec, seen };
      assert.ok(rec.state === 'COPY' || rec.state === 'PSUS', `${what}: ${rec.state} (${JSON.stringify(rec)})`);
      await sleep(POLL_MS);
    }
    assert.fail(`${what}: not PAIR after ${POLL_ROUNDS_MAX} polls: ${JSON.stringify(await status())}`);
  }

  async function vpd(lun: number): Promise<PairVpd> {
    return decodePairVpd(await ini.inquiryVpd(lun, PAIR_VPD_PAGE));
  }

  async function readLu(lun: number, from = 0, blocks = VOLUME_BLOCKS): Promise<Buffer> {
    const parts: Buffer[] = [];
    for (let b = from; b < from + blocks; b += READ_BLOCKS) parts.push(await ini.read16(lun, b, Math.min(READ_BLOCKS, from + blocks - b)));
    return Buffer.concat(parts);
  }

  /** A chunk of an LU image read from LBA `from`. */
  const chunkOf = (image: Buffer, c: number, from = 0) =>
    image.subarray((c * CHUNK_BLOCKS - from) * BLOCK, ((c + 1) * CHUNK_BLOCKS - from) * BLOCK);

  /** Every chunk holds one of the generations `allowed` gives it, whole. */
  function check(image: Buffer, chunks: Iterable<number>, allowed: (c: number) => number[], what: string, from = 0): void {
    for (const c of chunks) {
      const got = chunkOf(image, c, from);
      const ok = allowed(c);
      if (!ok.some((g) => got.equals(expected(c, g)))) {
        const h = model.history[c].map((x) => `${x.gen}@${x.sent}..${x.ack}`).join(' ');
        assert.fail(`${what}: chunk ${c} (LBA ${c * CHUNK_BLOCKS}) is not whole generation ${ok.join(' or ')}; first block says ${genIn(got)}; writes gen@sent..ack: ${h}`);
      }
    }
  }

  /** A host write to the secondary where it mirrors the primary: DATA PROTECT / WRITE PROTECTED. */
  async function refusedOnSecondary(chunk: number, what: string): Promise<void> {
    const lba = chunk * CHUNK_BLOCKS;
    const r = await ini.command({ lun: LUN_S, cdb: write16Cdb(lba, CHUNK_BLOCKS), dataOut: expected(chunk, SECONDARY_GEN_BASE) });
    assert.equal(r.status, 2, `${what}: CHECK CONDITION`);
    assert.deepEqual(r.senseInfo && [r.senseInfo.key, r.senseInfo.asc, r.senseInfo.ascq], [0x7, 0x27, 0x00], `${what}: DATA PROTECT / WRITE PROTECTED`);
  }

  const all = Array.from({ length: CHUNKS }, (_x, i) => i);
  const chunksOfUnits = (units: Iterable<number>) => [...units].flatMap((u) => Array.from({ length: CHUNKS_PER_UNIT }, (_x, i) => u * CHUNKS_PER_UNIT + i));
  let naaP: Buffer;
  let naaS: Buffer;
  let writers: Writers | null = null;
  let split: Window;
  afterEach(async () => {
    await writers?.stop().catch(() => undefined); // a failed test leaves none running into the next
    writers = null;
  });

  it('PAIR CREATE on the primary LU naming the secondary LU\'s LDEV: COPY, then PAIR; VPD C0h on both LUs', async () => {
    // Three quarters of the chunks written, the rest left unmapped: the copy carries both.
    const written = all.filter(() => rand() < 0.75);
    for (const c of written) {
      const w = model.begin(c);
      await ini.write16(LUN_P, c * CHUNK_BLOCKS, expected(c, w.gen));
      w.ack = model.tick();
    }
    naaP = Buffer.from(naaOf(await ini.inquiryVpd(LUN_P, 0x83)));
    naaS = Buffer.from(naaOf(await ini.inquiryVpd(LUN_S, 0x83)));
    assert.notDeepEqual(naaP, naaS);
    assert.deepEqual(await vpd(LUN_P), { state: 'SMPL', role: 'none', direction: 'forward', ldev: LDEV_P });
    assert.deepEqual(await vpd(LUN_S), { state: 'SMPL', role: 'none', direction: 'forward', ldev: LDEV_S });
    assert.equal(decodeStatusData((await good(LUN_P, pairStatus({}), 'PAIR STATUS before')).data).length, 0, 'no pair yet');

    await good(LUN_P, pairCreate({ secondary: LDEV_S, name: PAIR_NAME }), 'PAIR CREATE');
    const { rec, seen } = await untilPair('initial copy');
    console.log(`      states seen: ${[...seen].join(' -> ')}; copied ${rec.copiedBlocks} of ${VOLUME_BLOCKS} blocks`);
    assert.deepEqual(
      { id: rec.id, primary: rec.primary, secondary: rec.secondary, direction: rec.direction, splitAreaCount: rec.splitAreaCount },
      { id: PAIR_NAME, primary: LDEV_P, secondary: LDEV_S, direction: 'forward', splitAreaCount: 0 },
    );
    assert.deepEqual(rec.primaryNaa, naaP, 'PRIMARY NAA is the primary LU\'s VPD 83h NAA');
    assert.deepEqual(rec.secondaryNaa, naaS, 'SECONDARY NAA is the secondary LU\'s VPD 83h NAA');
    assert.ok(rec.copiedBlocks <= VOLUME_BLOCKS, `the initial copy copied each unit once at most (${rec.copiedBlocks})`);

    const p = await vpd(LUN_P);
    const s = await vpd(LUN_S);
    assert.deepEqual({ ...p, partnerNaa: undefined }, { state: 'PAIR', role: 'primary', direction: 'forward', ldev: LDEV_P, partner: LDEV_S, partnerNaa: undefined, id: PAIR_NAME });
    assert.deepEqual({ ...s, partnerNaa: undefined }, { state: 'PAIR', role: 'secondary', direction: 'forward', ldev: LDEV_S, partner: LDEV_P, partnerNaa: undefined, id: PAIR_NAME });
    assert.deepEqual(p.partnerNaa, naaS, 'the primary names the secondary LU by its VPD 83h NAA');
    assert.deepEqual(s.partnerNaa, naaP, 'the secondary names the primary LU by its VPD 83h NAA');

    check(await readLu(LUN_S), all, (c) => [model.last(c)], 'secondary after the initial copy');
    // A refused write leaves the secondary as it was: the full read below sees the primary's data.
    const c = written[Math.floor(rand() * written.length)];
    await refusedOnSecondary(c, 'host write to the secondary in PAIR');
    check(await ini.read16(LUN_S, c * CHUNK_BLOCKS, CHUNK_BLOCKS), [c], () => [model.last(c)], 'the refused write\'s chunk', c * CHUNK_BLOCKS);
  });

  it('PAIR SPLIT while the writers run: the secondary holds the primary as of the split, frozen while the primary changes', async () => {
    writers = new Writers(ini, model, hot, rand);
    await writers.untilAcks(WRITES_BEFORE_SPLIT);
    const t0 = Date.now();
    split = await timed(LUN_P, pairSplitResync({ split: true }), 'PAIR SPLIT');
    const splitMs = Date.now() - t0;
    const across = all.filter((c) => model.atSplit(c, split).length > 1).length;

    const acks0 = writers.acks;
    const first = await readLu(LUN_S);
    const acks1 = writers.acks;
    const second = await readLu(LUN_S);
    const acks2 = writers.acks;
    assert.ok(acks1 > acks0 && acks2 > acks1, `the primary changed during both reads (${acks0} ${acks1} ${acks2} writes acknowledged)`);
    assert.ok(first.equals(second), 'the split secondary reads the same twice while the primary changes');
    check(first, all, (c) => model.atSplit(c, split), 'secondary after the split');
    const exact = all.filter((c) => model.atSplit(c, split).length === 1 && model.history[c].some((x) => x.sent > split.done));
    assert.ok(exact.length > 0, 'some chunks were last written before the split and again after it (the check is not empty)');
    console.log(
      `      split took ${splitMs} ms; ${across} chunks had writes in flight across it; ` +
        `${exact.length} chunks written again after it read exactly their generation at the split`,
    );

    assert.equal((await status()).state, 'PSUS');
    assert.equal((await vpd(LUN_P)).state, 'PSUS');
    assert.equal((await vpd(LUN_S)).state, 'PSUS');
    await writers.stop();
    writers = null;
  });

  let secondaryWrite: number;

  it('after the split a host write to the secondary succeeds; the primary holds every acknowledged write', async () => {
    assert.ok(split, 'the previous test split the pair');
    // A cold unit: resync must copy it although the primary never changed there.
    const u = cold[Math.floor(rand() * cold.length)];
    secondaryWrite = u * CHUNKS_PER_UNIT + Math.floor(rand() * CHUNKS_PER_UNIT);
    await ini.write16(LUN_S, secondaryWrite * CHUNK_BLOCKS, expected(secondaryWrite, SECONDARY_GEN_BASE + 1));
    check(await ini.read16(LUN_S, secondaryWrite * CHUNK_BLOCKS, CHUNK_BLOCKS), [secondaryWrite], () => [SECONDARY_GEN_BASE + 1], 'the secondary write', secondaryWrite * CHUNK_BLOCKS);
    check(await readLu(LUN_P), all, (c) => [model.last(c)], 'primary in PSUS');
    const rec = await status();
    const may = new Set([...model.unitsWritten(split.sent, 'ack'), u]);
    const must = new Set([...model.unitsWritten(split.done, 'sent'), u]);
    assert.ok(
      rec.differenceBlocks >= must.size * UNIT_BLOCKS && rec.differenceBlocks <= may.size * UNIT_BLOCKS,
      `DIFFERENCE BLOCKS ${rec.differenceBlocks}: the units written after the split (${must.size} to ${may.size} units)`,
    );
  });

  it('resync (split bit 0): PAIR again, only the changed units copied; both LUs hold the last acknowledged writes', async () => {
    const before = await status();
    const t0 = Date.now();
    await good(LUN_P, pairSplitResync({ split: false }), 'PAIR SPLIT/RESYNC (resync)');
    const { rec, seen } = await untilPair('resync');
    const copied = rec.copiedBlocks - before.copiedBlocks;
    const may = new Set([...model.unitsWritten(split.sent, 'ack'), unitOf(secondaryWrite)]);
    const must = new Set([...model.unitsWritten(split.done, 'sent'), unitOf(secondaryWrite)]);
    console.log(`      resync ${[...seen].join(' -> ')} in ${Date.now() - t0} ms: copied ${copied} blocks; ${must.size} to ${may.size} units of ${UNITS} changed`);
    assert.ok(copied >= must.size * UNIT_BLOCKS, `copied ${copied} blocks, at least the ${must.size} units written after the split`);
    assert.ok(copied <= may.size * UNIT_BLOCKS, `copied ${copied} blocks, at most the ${may.size} units written since the split was sent`);
    assert.ok(copied < VOLUME_BLOCKS, 'not the whole volume');
    assert.equal(rec.splitAreaCount, 0);
    const p = await readLu(LUN_P);
    const s = await readLu(LUN_S);
    assert.ok(p.equals(s), 'primary and secondary identical after the resync');
    check(s, all, (c) => [model.last(c)], 'secondary after the resync');
    assert.equal((await vpd(LUN_S)).state, 'PAIR');
    await refusedOnSecondary(secondaryWrite, 'host write to the secondary in PAIR again');
  });

  it('area split while the writers run: the split units freeze, the rest stays mirrored; then resync', async () => {
    // An unaligned area rounds out to the two units it touches; an aligned one is one unit.
    const [u1, u2] = [hot[Math.floor(hot.length / 4)], hot[Math.floor((3 * hot.length) / 4)]];
    const areas: Area[] = [{ lba: u1 * UNIT_BLOCKS + 40, blocks: UNIT_BLOCKS }, { lba: u2 * UNIT_BLOCKS, blocks: UNIT_BLOCKS }];
    const splitUnits = new Set([u1, u1 + 1, u2]);
    const frozen = chunksOfUnits(splitUnits).sort((a, b) => a - b);
    writers = new Writers(ini, model, hot, rand);
    await writers.untilAcks(WRITES_BEFORE_SPLIT);
    const w = await timed(LUN_P, pairSplitResync({ split: true, areas }), 'PAIR SPLIT of areas');
    const rec = await status();
    assert.equal(rec.state, 'PSUS');
    assert.deepEqual(rec.splitAreas, extentsOf(splitUnits), 'split areas rounded out to whole 64 KiB units');
    assert.equal(rec.splitAreaCount, rec.splitAreas.length);

    // While the primary keeps changing, the split units read the same twice and as of the split.
    for (const x of extentsOf(splitUnits)) {
      const a = await readLu(LUN_S, x.lba, x.blocks);
      await writers.untilAcks(WRITERS); // a small area reads faster than a write: let some land between
      const b = await readLu(LUN_S, x.lba, x.blocks);
      assert.ok(a.equals(b), `split area LBA ${x.lba} +${x.blocks} reads the same twice`);
      const inX = frozen.filter((c) => c * CHUNK_BLOCKS >= x.lba && c * CHUNK_BLOCKS < x.lba + x.blocks);
      check(a, inX, (c) => model.atSplit(c, w), `split area LBA ${x.lba}`, x.lba);
    }
    const mirrored = hot.find((u) => !splitUnits.has(u))! * CHUNKS_PER_UNIT;
    await refusedOnSecondary(mirrored, 'host write to the secondary outside the split areas');
    const inside = u2 * CHUNKS_PER_UNIT + 1;
    await ini.write16(LUN_S, inside * CHUNK_BLOCKS, expected(inside, SECONDARY_GEN_BASE + 2));

    const changedAfter = () => [...splitUnits].filter((u) => chunksOfUnits([u]).some((c) => model.history[c].some((x) => x.sent > w.done)));
    for (let i = 0; i < POLL_ROUNDS_MAX && changedAfter().length === 0; i++) await writers.untilAcks(WRITERS);
    assert.ok(changedAfter().length > 0, 'the writers changed a split unit after the split');
    await writers.stop();
    writers = null;
    const s = await readLu(LUN_S);
    const frozenSet = new Set(frozen);
    check(s, all.filter((c) => !frozenSet.has(c)), (c) => [model.last(c)], 'secondary outside the split areas (mirrored)');
    check(s, frozen.filter((c) => c !== inside), (c) => model.atSplit(c, w), 'secondary in the split areas');
    check(s, [inside], () => [SECONDARY_GEN_BASE + 2], 'the secondary write in a split area');

    const before = await status();
    await good(LUN_P, pairSplitResync({ split: false }), 'PAIR SPLIT/RESYNC (resync of the areas)');
    const after = (await untilPair('resync after the area split')).rec;
    const copied = after.copiedBlocks - before.copiedBlocks;
    assert.ok(copied <= splitUnits.size * UNIT_BLOCKS, `copied ${copied} blocks, at most the ${splitUnits.size} split units`);
    assert.ok(copied >= new Set([...changedAfter(), u2]).size * UNIT_BLOCKS, `copied ${copied} blocks, at least the split units changed`);
    const p = await readLu(LUN_P);
    assert.ok(p.equals(await readLu(LUN_S)), 'primary and secondary identical after the resync');
    check(p, all, (c) => [model.last(c)], 'primary after the area resync');
  });

  it('PAIR DELETE: both LUs SMPL, the secondary keeps its data and takes writes', async () => {
    await good(LUN_P, pairDelete({}), 'PAIR DELETE');
    assert.deepEqual(await vpd(LUN_P), { state: 'SMPL', role: 'none', direction: 'forward', ldev: LDEV_P });
    assert.deepEqual(await vpd(LUN_S), { state: 'SMPL', role: 'none', direction: 'forward', ldev: LDEV_S });
    assert.equal(decodeStatusData((await good(LUN_P, pairStatus({}), 'PAIR STATUS after delete')).data).length, 0);
    check(await readLu(LUN_S), all, (c) => [model.last(c)], 'former secondary');
    await ini.write16(LUN_S, 0, expected(0, SECONDARY_GEN_BASE + 3));
  });
});
