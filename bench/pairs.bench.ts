// Pair engine benchmarks (issue 4, firmware/pairs/manager.ts): a scenario on one DKC, not a
// Benchmark.js suite. Firmware level (Ldev.write and dkc.pairs, no iSCSI), on the real clock
// (openDkc's default), on a RAID 0 group of two sparse-file disks in a temp directory that is
// removed at the end; the DKC cache is the default (512 MiB, write-through).
//   1. Resync copies only what changed: split a 1 GiB pair, write 1% of its bytes (64 KiB writes
//      on distinct 64 KiB units, then 4 KiB writes on distinct 4 KiB blocks), resync, and compare
//      the blocks the copier copied (status().copiedBlocks, before and after) with the bytes written.
//   2. Split time of a 1 GiB and a 64 GiB pair of thin (never written) volumes: median of
//      SPLIT_ROUNDS splits, the two pairs alternating; each split is followed by a resync (nothing
//      to copy) to bring it back to PAIR.
//   3. Host 4 KiB write latency at queue depth 1 on the primary (random 4 KiB-aligned LBAs):
//      no pair, during the initial copy of 1 GiB of data, in PAIR, in PSUS, and during a resync
//      of RESYNC_DIRTY_UNITS scattered 64 KiB units; the copier at its default pace.
// Run: npm run build && node dist/bench/run.js pairs (npm run bench alone leaves it out: it takes
// a few minutes and writes ~2.5 GiB). Random places come from the kernel's Prng with SEED.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { openDkc } from '../emulator/rack/build';
import { parseConfig } from '../emulator/rack/config';
import type { Dkc } from '../firmware/dkc';
import { Prng } from '../firmware/kernel/prng';
import type { Ldev } from '../firmware/ldev';
import { DIFF_UNIT_BYTES, PairState } from '../firmware/pairs/manager';

const SEED = 4;
const GIB = 1024 ** 3;
const KIB4 = 4096;
const MIB = 1024 * 1024;
/** Writes per latency case (fewer when a copy ends first). */
const LATENCY_WRITES = 4000;
const SPLIT_ROUNDS = 25;
/** 25% of a 1 GiB volume's 16384 units: a resync long enough to write through. */
const RESYNC_DIRTY_UNITS = 4096;
const WAIT_STATE_MS_MAX = 600_000;

// LDEVs: 0 p / 1 s (1 GiB, filled), 2 t1 / 3 u1 (1 GiB, thin), 4 t64 / 5 u64 (64 GiB, thin).
const YAML = `
dkcs:
  - name: pb
    serial: 44
    seed: ${SEED}
    raidGroups:
      - { name: rg, level: 0, stripeSize: 64KiB, disks: { count: 2, size: 80GiB } }
    volumes:
      - { name: p, group: rg, size: 1GiB }
      - { name: s, group: rg, size: 1GiB }
      - { name: t1, group: rg, size: 1GiB }
      - { name: u1, group: rg, size: 1GiB }
      - { name: t64, group: rg, size: 64GiB }
      - { name: u64, group: rg, size: 64GiB }
    targets:
      - name: iqn.2026-11.dev.dkc-emu:bench.pairs
        portals: ["127.0.0.1:0"]
        luns: [ { lun: 0, volume: p } ]
`;

async function openBenchDkc(dir: string): Promise<Dkc> {
  const r = parseConfig(YAML, 'bench/pairs.bench.ts');
  if (!r.ok) throw new Error(r.errors.map(String).join('\n'));
  return openDkc(r.config.dkcs[0], dir, pino({ level: 'silent' }));
}

function nowNs(): bigint {
  return process.hrtime.bigint();
}

function msSince(t0: bigint): number {
  return Number(nowNs() - t0) / 1e6;
}

/** Poll until the pair is in `state` with nothing left to copy; the time waited in ms. */
async function waitState(dkc: Dkc, id: string, state: PairState): Promise<number> {
  const t0 = nowNs();
  for (;;) {
    const s = dkc.pairs.status(id);
    if (s.state === state && s.copy.remainingBlocks === 0) return msSince(t0);
    if (s.state === 'PSUE') throw new Error(`pair ${id} suspended: ${s.reason}`);
    if (msSince(t0) > WAIT_STATE_MS_MAX) throw new Error(`pair ${id} not ${state}: ${JSON.stringify(s)}`);
    await sleep(5);
  }
}

/** `count` distinct integers of [0, n) in random order (partial Fisher-Yates). */
function distinct(prng: Prng, n: number, count: number): number[] {
  assert(count <= n);
  const a = Uint32Array.from({ length: n }, (_x, i) => i);
  for (let i = 0; i < count; i++) {
    const j = i + prng.int(n - i);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return [...a.subarray(0, count)];
}

/** A buffer whose bytes name the generation that wrote it (so a stale copy is visible). */
function filled(bytes: number, gen: number): Buffer {
  const b = Buffer.alloc(bytes, (gen * 37) & 0xff | 1);
  b.writeUInt32LE(gen, 0);
  return b;
}

interface Latency {
  writes: number;
  p50Us: number;
  p99Us: number;
  maxUs: number;
}

/** QD 1 random 4 KiB writes while `going()` holds, at most LATENCY_WRITES. */
async function writeLatency(v: Ldev, prng: Prng, gen: number, going: () => boolean = () => true): Promise<Latency> {
  const slots = (v.blockCount * v.blockSize) / KIB4;
  const perSlot = KIB4 / v.blockSize;
  const data = filled(KIB4, gen);
  const us: number[] = [];
  while (us.length < LATENCY_WRITES && going()) {
    const lba = prng.int(slots) * perSlot;
    const t0 = nowNs();
    await v.write(lba, data, { fua: false });
    us.push(Number(nowNs() - t0) / 1e3);
  }
  us.sort((a, b) => a - b);
  const q = (p: number) => us[Math.min(us.length - 1, Math.floor(p * us.length))];
  return { writes: us.length, p50Us: q(0.5), p99Us: q(0.99), maxUs: us[us.length - 1] };
}

/** Write every block of the volume once, 1 MiB at a time. */
async function fill(v: Ldev, gen: number): Promise<void> {
  const perMib = MIB / v.blockSize;
  for (let lba = 0; lba < v.blockCount; lba += perMib) await v.write(lba, filled(MIB, gen + lba), { fua: false });
}

/** Read both volumes whole and compare them, 1 MiB at a time. */
async function same(a: Ldev, b: Ldev): Promise<boolean> {
  const perMib = MIB / a.blockSize;
  for (let lba = 0; lba < a.blockCount; lba += perMib) {
    const x = Buffer.from(await a.read(lba, perMib));
    if (!x.equals(await b.read(lba, perMib))) return false;
  }
  return true;
}

function row(cells: Array<string | number>): string {
  return `| ${cells.join(' | ')} |`;
}

function latencyRow(label: string, l: Latency, note = ''): string {
  return row([label, l.writes, l.p50Us.toFixed(0), l.p99Us.toFixed(0), l.maxUs.toFixed(0), note]);
}

/** Must-show 3: the latency table; leaves pair 'ps' in PAIR. */
async function latencyCases(dkc: Dkc, prng: Prng): Promise<void> {
  const p = dkc.ldevByName('p');
  let t0 = nowNs();
  await fill(p, 1);
  console.log(`filled p (1 GiB, 1 MiB writes) in ${msSince(t0).toFixed(0)} ms`);
  const out = ['| case | writes | p50 us | p99 us | max us | note |', '| --- | ---: | ---: | ---: | ---: | --- |'];
  out.push(latencyRow('idle (no pair)', await writeLatency(p, prng, 2)));

  t0 = nowNs();
  await dkc.pairs.create(0, 1, { id: 'ps' });
  const copying = () => dkc.pairs.volumeState(0) === 'COPY';
  const initial = await writeLatency(p, prng, 3, copying);
  const left = dkc.pairs.status('ps').copy.percent;
  await waitState(dkc, 'ps', 'PAIR');
  const copyMs = msSince(t0);
  out.push(latencyRow('during the initial copy (1 GiB of data)', initial, `copy ${copyMs.toFixed(0)} ms; ${left}% done after the writes`));
  out.push(latencyRow('PAIR (duplex: both volumes written)', await writeLatency(p, prng, 4)));

  await dkc.pairs.split('ps');
  out.push(latencyRow('PSUS (split: primary + difference bit)', await writeLatency(p, prng, 5)));
  const units = (p.blockCount * p.blockSize) / DIFF_UNIT_BYTES;
  const perUnit = DIFF_UNIT_BYTES / p.blockSize;
  const unitData = filled(DIFF_UNIT_BYTES, 6);
  for (const u of distinct(prng, units, RESYNC_DIRTY_UNITS)) await p.write(u * perUnit, unitData, { fua: false });
  const dirty = dkc.pairs.status('ps').differenceBlocks / perUnit;
  t0 = nowNs();
  await dkc.pairs.resync('ps');
  const resyncing = await writeLatency(p, prng, 7, copying);
  const leftR = dkc.pairs.status('ps').copy.percent;
  await waitState(dkc, 'ps', 'PAIR');
  const note = `${dirty} units (${((dirty / units) * 100).toFixed(1)}%) to copy; resync ${msSince(t0).toFixed(0)} ms; ${leftR}% done after the writes`;
  out.push(latencyRow('during a resync', resyncing, note));
  console.log('\n## 3. Host 4 KiB random write latency, QD 1, on the primary p\n');
  console.log(out.join('\n'));
  assert.ok(await same(p, dkc.ldevByName('s')), 'p and s differ after the resync');
  console.log('\np = s after the resync (compared whole)');
}

interface ResyncCase {
  label: string;
  writes: number;
  writeBytes: number;
  unitsTouched: number;
  diffBlocks: number;
  copiedBlocks: number;
  resyncMs: number;
}

/** Split, write `writes` pieces of `bytes` on distinct aligned places, resync; what was copied. */
async function resyncCase(dkc: Dkc, prng: Prng, label: string, bytes: number, writes: number, gen: number): Promise<ResyncCase> {
  const p = dkc.ldevByName('p');
  await dkc.pairs.split('ps');
  const data = filled(bytes, gen);
  const perPiece = bytes / p.blockSize;
  const piecesPerUnit = DIFF_UNIT_BYTES / bytes;
  const touched = new Set<number>();
  for (const piece of distinct(prng, (p.blockCount * p.blockSize) / bytes, writes)) {
    await p.write(piece * perPiece, data, { fua: false });
    touched.add(Math.floor(piece / piecesPerUnit));
  }
  const before = dkc.pairs.status('ps');
  const t0 = nowNs();
  await dkc.pairs.resync('ps');
  await waitState(dkc, 'ps', 'PAIR');
  const resyncMs = msSince(t0);
  const after = dkc.pairs.status('ps');
  return {
    label, writes, writeBytes: writes * bytes, unitsTouched: touched.size, diffBlocks: before.differenceBlocks,
    copiedBlocks: after.copiedBlocks - before.copiedBlocks, resyncMs,
  };
}

/** Must-show 1 (pair 'ps' in PAIR on entry and exit). */
async function resyncCases(dkc: Dkc, prng: Prng): Promise<void> {
  const p = dkc.ldevByName('p');
  const volBytes = p.blockCount * p.blockSize;
  const onePct = volBytes / 100;
  const cases = [
    await resyncCase(dkc, prng, '64 KiB writes, distinct 64 KiB units', DIFF_UNIT_BYTES, Math.round(onePct / DIFF_UNIT_BYTES), 10),
    await resyncCase(dkc, prng, '4 KiB writes, distinct 4 KiB blocks, scattered', KIB4, Math.round(onePct / KIB4), 11),
  ];
  console.log('\n## 1. Resync after writing 1% of a 1 GiB volume\n');
  console.log('| writes | bytes written | % of volume | units touched | difference bitmap | copied by the resync | % of volume | copied / written | resync ms |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const c of cases) {
    const copied = c.copiedBlocks * p.blockSize;
    console.log(row([
      `${c.writes} x ${c.label}`, c.writeBytes, pct(c.writeBytes, volBytes), c.unitsTouched, c.diffBlocks * p.blockSize,
      copied, pct(copied, volBytes), (copied / c.writeBytes).toFixed(3), c.resyncMs.toFixed(0),
    ]));
  }
  assert.ok(await same(p, dkc.ldevByName('s')), 'p and s differ after the resyncs');
  console.log('\np = s after the resyncs (compared whole)');
}

function pct(x: number, of: number): string {
  return `${((x / of) * 100).toFixed(3)}%`;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Must-show 2, and how fast a thin pair's initial copy goes at the default pace. */
async function splitCases(dkc: Dkc): Promise<void> {
  console.log('\n## 2. Split time, thin (never written) pairs\n');
  await dkc.pairs.create(2, 3, { id: 'g1' });
  console.log(`1 GiB thin pair: initial copy at the default pace ${(await waitState(dkc, 'g1', 'PAIR')).toFixed(0)} ms`);
  await dkc.pairs.create(4, 5, { id: 'g64' });
  console.log(`64 GiB thin pair: initial copy at the default pace ${(await waitState(dkc, 'g64', 'PAIR')).toFixed(0)} ms`);

  // Wall time, and CPU time of the process (all threads: the pool's fsyncs count) per split.
  const ms: Record<string, number[]> = { ps: [], g1: [], g64: [] };
  const cpuUs: Record<string, number[]> = { ps: [], g1: [], g64: [] };
  for (let i = 0; i < SPLIT_ROUNDS; i++) {
    const order = i % 2 === 0 ? ['g1', 'g64', 'ps'] : ['g64', 'g1', 'ps'];
    for (const id of order) {
      const cpu0 = process.cpuUsage();
      const t0 = nowNs();
      await dkc.pairs.split(id);
      ms[id].push(msSince(t0));
      const cpu = process.cpuUsage(cpu0);
      cpuUs[id].push(cpu.user + cpu.system);
      await dkc.pairs.resync(id);
      await waitState(dkc, id, 'PAIR');
    }
  }
  console.log('| pair | splits | median ms | min ms | max ms | median CPU us |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
  const label: Record<string, string> = { g1: '1 GiB thin', g64: '64 GiB thin', ps: '1 GiB, all blocks written' };
  for (const id of ['g1', 'g64', 'ps']) {
    const xs = ms[id];
    console.log(row([label[id], xs.length, median(xs).toFixed(2), Math.min(...xs).toFixed(2), Math.max(...xs).toFixed(2), median(cpuUs[id]).toFixed(0)]));
  }
  console.log(`\nmedian 64 GiB / median 1 GiB = ${(median(ms.g64) / median(ms.g1)).toFixed(2)}`);
}

export async function pairsBench(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dkc-pairs-bench-'));
  console.log(`pairs bench: seed ${SEED}, node ${process.version} ${process.platform}/${process.arch}, ` +
    `load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}, data in ${dir}`);
  const t0 = nowNs();
  let dkc: Dkc | undefined;
  try {
    dkc = await openBenchDkc(dir);
    const prng = new Prng(SEED);
    await latencyCases(dkc, prng);
    await resyncCases(dkc, prng);
    await splitCases(dkc);
  } finally {
    await dkc?.close();
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`\ntotal ${(msSince(t0) / 1000).toFixed(0)} s; load average now ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
}

if (require.main === module) {
  pairsBench().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
