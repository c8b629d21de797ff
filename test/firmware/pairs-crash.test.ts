// kill -9 during a pair's copy (issue 4): the initial copy of a new pair, and the resync of a
// split pair. A child process copies at a slow pace and is SIGKILLed mid-way, at one of four
// points: once a checkpoint has saved the difference bitmap clean with part of the copy done and
// no host I/O since (the restart trusts a partial bitmap and resumes; host writes made during the
// copy before it must have been mirrored); with host writes and unmaps to the primary going on,
// as one is issued or right after one is acknowledged (the bitmap file is dirty: the restart
// copies everything); or with a duplex write torn, on the primary and never on the secondary, in
// a unit the copy had no more work in. After the restart the pair must reach PAIR with the
// secondary byte for byte the primary, and the primary must hold the data written before and
// every write and unmap the child had acknowledged.
import assert from 'node:assert/strict';
import { ChildProcess, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { openDkc } from '../../emulator/build';
import { ldevDir } from '../../emulator/layout';
import { BitmapStore } from '../../firmware/bitmap-store';
import type { Dkc } from '../../firmware/dkc';
import type { Ldev } from '../../firmware/ldev';
import type { PairRow } from '../../firmware/pair-table';
import { pattern, prng, silentLog, tmpDirs } from '../emulator/helpers';
import {
  BLOCK_BYTES, CacheMode, childGeneration, HostIo, PAIR_ID, pairsConfig, Phase, PRIMARY, SECONDARY, SLOT_BLOCKS,
  UNIT_BLOCKS, VOLUME_BLOCKS,
} from './fixtures/pairs-crash-writer';

const CHILD = path.join(__dirname, 'fixtures', 'pairs-crash-writer.js');
/** The copy must not be further than this when the kill is sent (else pace the child slower). */
const KILL_PERCENT_MAX = 80;
/** Bounds on waiting: for the child to reach the kill point, and for the copy after the restart. */
const KILL_WAIT_MS = 20_000;
const PAIR_WAIT_MS = 15_000;
const POLL_MS = 10;
/** Units of the primary the parent writes while the pair is split (the resync's work). */
const SPLIT_WRITE_UNITS = 40;
const SPLIT_SECONDARY_UNITS = 6;
/** Never written by the parent: unmapped on the primary, stale data on the secondary. */
const HOLES = [
  { lba: 20 * UNIT_BLOCKS, blocks: 4 * UNIT_BLOCKS },
  { lba: 39 * UNIT_BLOCKS + 40, blocks: 11 },
  { lba: 40 * UNIT_BLOCKS, blocks: UNIT_BLOCKS / 2 },
];

/**
 * When, once the copy is at killAtPercent or more, the child is killed: after a checkpoint with
 * no host I/O since (io none or burst); with host I/O going on (io all), as a request is issued
 * or acknowledged; by itself, with a duplex write torn (io torn).
 */
type KillPoint = 'checkpoint' | 'issued' | 'acked' | 'torn';

interface Case {
  phase: Phase;
  cache: CacheMode;
  io: HostIo;
  killAt: KillPoint;
  killAtPercent: number;
}

/** What the child reported before the kill. */
interface Outcome {
  requests: Map<number, { kind: 'w' | 'u'; lba: number; blocks: number }>;
  acked: Set<number>;
  totalBlocks: number;
  /** The child made its last request. */
  done: boolean;
  /** The child tore a duplex write and killed itself. */
  torn: boolean;
  killedAtPercent: number;
}

/** The generations of the parent's patterns; the child's writes use childGeneration(seed). */
function generations(seed: number) {
  return { primary: seed, staleSecondary: seed + 0x100, splitPrimary: seed + 0x200, splitSecondary: seed + 0x280, after: seed + 0x400 };
}

function isHole(lba: number): boolean {
  return HOLES.some((h) => lba >= h.lba && lba < h.lba + h.blocks);
}

/** Write gen over [lba, +blocks) of v and of the image of what v must hold. */
async function put(v: Ldev, image: Buffer | null, lba: number, blocks: number, gen: number): Promise<void> {
  const data = pattern(BLOCK_BYTES, lba, blocks, gen);
  await v.write(lba, data, { fua: false });
  image?.set(data, lba * BLOCK_BYTES);
}

/** The pair's volumes before the copy: the primary written but for the holes, the secondary stale. */
async function writeVolumes(dkc: Dkc, image: Buffer, seed: number): Promise<void> {
  const g = generations(seed);
  const p = dkc.ldevByName(PRIMARY);
  const s = dkc.ldevByName(SECONDARY);
  const chunk = 64;
  for (let lba = 0; lba < VOLUME_BLOCKS; lba += chunk) {
    await put(s, null, lba, chunk, g.staleSecondary);
    for (let b = lba; b < lba + chunk; ) {
      let e = b;
      while (e < lba + chunk && isHole(e) === isHole(b)) e++;
      if (!isHole(b)) await put(p, image, b, e - b, g.primary);
      b = e;
    }
  }
}

/** Wait (real time) until the copy has ended in PAIR; returns how long that took. */
async function waitPair(dkc: Dkc): Promise<number> {
  const started = Date.now();
  for (let st = dkc.pairs.status(PAIR_ID); st.state !== 'PAIR' || st.copy.remainingBlocks > 0; st = dkc.pairs.status(PAIR_ID)) {
    if (Date.now() - started > PAIR_WAIT_MS) throw new Error(`no PAIR after ${PAIR_WAIT_MS} ms: ${JSON.stringify(st)}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  return Date.now() - started;
}

/**
 * The DKC as the child finds it (opened and closed cleanly here). create: two volumes, no pair.
 * resync: the pair made and duplex, split, and the split written to: many units of the primary
 * (writes and unmaps), a few of the secondary (a resync overwrites them from the primary).
 * Returns what the primary holds.
 */
async function prepare(dir: string, seed: number, c: Case, track: (d: Dkc | undefined) => void): Promise<{ image: Buffer; quietUnit: number }> {
  const image = Buffer.alloc(VOLUME_BLOCKS * BLOCK_BYTES);
  const dkc = await openDkc(pairsConfig(c.cache), dir, silentLog);
  track(dkc);
  try {
    await writeVolumes(dkc, image, seed);
    // A unit the child's copy has no work in once it is under way: the first one an initial copy
    // copies; for a resync, one nobody wrote while the pair was split.
    const quietUnit = c.phase === 'resync' ? await splitAndWrite(dkc, image, seed) : 0;
    return { image, quietUnit };
  } finally {
    await dkc.close();
    track(undefined);
  }
}

/** Returns a unit nobody wrote while split (no difference to resync). */
async function splitAndWrite(dkc: Dkc, image: Buffer, seed: number): Promise<number> {
  const g = generations(seed);
  const p = dkc.ldevByName(PRIMARY);
  const s = dkc.ldevByName(SECONDARY);
  await dkc.pairs.create(p.def.number, s.def.number, { id: PAIR_ID, group: 'cg' });
  await waitPair(dkc);
  await dkc.pairs.split(PAIR_ID);
  const rand = prng(seed ^ 0x5a5a);
  const units = Array.from({ length: VOLUME_BLOCKS / UNIT_BLOCKS }, (_x, i) => i);
  for (let i = units.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [units[i], units[j]] = [units[j], units[i]];
  }
  for (const u of units.slice(0, SPLIT_WRITE_UNITS)) {
    for (let k = 0, n = 1 + Math.floor(rand() * 3); k < n; k++) {
      const off = Math.floor(rand() * UNIT_BLOCKS);
      const lba = u * UNIT_BLOCKS + off;
      const blocks = 1 + Math.floor(rand() * (UNIT_BLOCKS - off));
      if (rand() < 0.25) {
        await p.unmap(lba, blocks);
        image.fill(0, lba * BLOCK_BYTES, (lba + blocks) * BLOCK_BYTES);
      } else {
        await put(p, image, lba, blocks, g.splitPrimary);
      }
    }
  }
  // The secondary's own changes while split: in units the primary left alone, and in a hole.
  const secondaryUnits = [...units.slice(units.length - (SPLIT_SECONDARY_UNITS - 1)), HOLES[0].lba / UNIT_BLOCKS];
  for (const u of secondaryUnits) await put(s, null, u * UNIT_BLOCKS + 7, 50, g.splitSecondary);
  const st = dkc.pairs.status(PAIR_ID);
  assert.equal(st.state, 'PSUS');
  // Enough units differ for the child's pace to put the kill inside the resync.
  assert.ok(st.differenceBlocks >= SPLIT_WRITE_UNITS * UNIT_BLOCKS, `only ${st.differenceBlocks} blocks differ`);
  return units.slice(SPLIT_WRITE_UNITS).find((u) => !secondaryUnits.includes(u))!;
}

/** The bitmap file as a restart would load it (firmware/pairs.ts names it pair-<id>). */
async function diffFile(dir: string): Promise<{ reason: string; blocks: number }> {
  const store = new BitmapStore(path.join(ldevDir(dir, 'dkc0'), 'pairs'));
  const b = await store.open(`pair-${PAIR_ID}`, { volumeBlocks: VOLUME_BLOCKS, blocksPerBit: UNIT_BLOCKS });
  try {
    return { reason: b.reason, blocks: b.bitmap.countBlocks() };
  } finally {
    await b.close();
  }
}

async function tableRow(dir: string): Promise<PairRow> {
  const doc = JSON.parse(await fs.readFile(path.join(ldevDir(dir, 'dkc0'), 'pairs', 'pair-table.json'), 'utf8')) as { pairs: PairRow[] };
  const row = doc.pairs.find((r) => r.id === PAIR_ID);
  assert.ok(row, 'the pair is in the table');
  return row;
}

/**
 * Run the child; SIGKILL it once the copy is at killAtPercent or more and at the case's kill
 * point: the child's last request made and then the bitmap file on disk clean with part of the
 * copy done (a checkpoint saved after every write, which marks the file dirty before it starts),
 * or the child's next request issued or acknowledged.
 */
function runAndKill(dir: string, seed: number, c: Case, tornLba: number, track: (ch: ChildProcess) => void): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const io = { checkpoint: ['none', 'burst'], issued: ['all'], acked: ['all'], torn: ['torn'] }[c.killAt];
    assert.ok(io.includes(c.io), `kill point ${c.killAt} with host I/O ${c.io}`);
    const args = [CHILD, dir, String(seed), c.phase, c.cache, c.io, String(c.killAtPercent), String(tornLba)];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    track(child);
    const out: Outcome = { requests: new Map(), acked: new Set(), totalBlocks: -1, done: c.io === 'none', torn: false, killedAtPercent: -1 };
    let rest = '';
    let killed = false;
    let checking = false;
    let failure: Error | undefined;
    const kill = (why?: string) => {
      if (killed) return;
      killed = true;
      if (why) failure = new Error(why);
      child.kill('SIGKILL');
    };
    const timer = setTimeout(() => kill(`the copy did not reach ${c.killAtPercent}% within ${KILL_WAIT_MS} ms`), KILL_WAIT_MS);
    const progress = (state: string, percent: number) => {
      if (killed) return;
      if (state !== 'COPY' || percent > KILL_PERCENT_MAX) {
        kill(`the copy got to ${state} ${percent}% before the kill point: pace the child slower`);
        return;
      }
      if (percent < c.killAtPercent || c.killAt === 'torn') return; // torn: the child kills itself
      if (c.killAt === 'issued' || c.killAt === 'acked') {
        if (out.killedAtPercent < 0) out.killedAtPercent = percent; // the kill goes with the next I or A
      } else if (out.done && !checking) {
        checking = true;
        void diffFile(dir).then((f) => {
          checking = false;
          if (!killed && f.reason === 'clean' && f.blocks < out.totalBlocks) {
            out.killedAtPercent = percent;
            kill();
          }
        }, (err: Error) => kill(`reading the bitmap file: ${err.message}`));
      }
    };
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) {
        const f = line.split(' ');
        if (f[0] === 'S') out.totalBlocks = Number(f[1]);
        else if (f[0] === 'DONE') out.done = true;
        else if (f[0] === 'T') {
          out.torn = true;
          out.killedAtPercent = Number(f[1]);
        } else if (f[0] === 'P') progress(f[1], Number(f[2]));
        else if (f[0] === 'I') {
          out.requests.set(Number(f[1]), { kind: f[2] as 'w' | 'u', lba: Number(f[3]), blocks: Number(f[4]) });
          if (c.killAt === 'issued' && out.killedAtPercent >= 0) kill();
        } else if (f[0] === 'A') {
          out.acked.add(Number(f[1]));
          if (c.killAt === 'acked' && out.killedAtPercent >= 0) kill();
        }
      }
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (failure) reject(failure);
      else if (signal !== 'SIGKILL' || !(killed || out.torn)) reject(new Error(`pairs writer ended with code ${code} signal ${signal} before the kill`));
      else resolve(out);
    });
  });
}

/**
 * The primary holds the prepared image with every acknowledged child request applied (a request
 * in flight at the kill: per block, old or new), and the secondary is byte for byte the primary.
 */
async function verify(dkc: Dkc, image: Buffer, out: Outcome, seed: number): Promise<{ writes: number; unmaps: number; inFlight: number }> {
  const want = Buffer.from(image);
  const maybe = new Map<number, Buffer>(); // LBA -> what an unacknowledged request would have left
  const counts = { writes: 0, unmaps: 0, inFlight: 0 };
  for (const [slot, r] of out.requests) {
    const data = r.kind === 'w' ? pattern(BLOCK_BYTES, r.lba, r.blocks, childGeneration(seed)) : Buffer.alloc(r.blocks * BLOCK_BYTES);
    if (out.acked.has(slot)) {
      want.set(data, r.lba * BLOCK_BYTES);
      counts[r.kind === 'w' ? 'writes' : 'unmaps']++;
    } else {
      for (let i = 0; i < r.blocks; i++) maybe.set(r.lba + i, data.subarray(i * BLOCK_BYTES, (i + 1) * BLOCK_BYTES));
      counts.inFlight++;
    }
  }
  const pd = await dkc.ldevByName(PRIMARY).read(0, VOLUME_BLOCKS);
  const sd = await dkc.ldevByName(SECONDARY).read(0, VOLUME_BLOCKS);
  for (let lba = 0; lba < VOLUME_BLOCKS; lba++) {
    const at = (b: Buffer) => b.subarray(lba * BLOCK_BYTES, (lba + 1) * BLOCK_BYTES);
    const got = at(pd);
    const ok = got.equals(at(want)) || maybe.get(lba)?.equals(got) === true;
    assert.ok(ok, `primary LBA ${lba}: ${maybe.has(lba) ? 'neither old nor new data' : 'data lost'} (generation ${got.readUInt32LE(4)})`);
    assert.ok(at(sd).equals(got), `secondary LBA ${lba} differs from the primary (generation ${at(sd).readUInt32LE(4)} vs ${got.readUInt32LE(4)})`);
  }
  return counts;
}

describe('pairs: kill -9 during a copy', () => {
  const live: { dkc?: Dkc; child?: ChildProcess } = {};
  // Before tmpDirs(): nothing may still have files open in a directory being removed.
  afterEach(async () => {
    if (live.child && live.child.exitCode === null && live.child.signalCode === null) live.child.kill('SIGKILL');
    await live.dkc?.close();
    live.dkc = undefined;
  });
  const tmp = tmpDirs();
  const seed = Number(process.env.SEED ?? 20261124);

  const cases: Case[] = [
    { phase: 'create', cache: 'write-through', io: 'none', killAt: 'checkpoint', killAtPercent: 30 },
    { phase: 'create', cache: 'write-back', io: 'burst', killAt: 'checkpoint', killAtPercent: 20 },
    { phase: 'create', cache: 'write-back', io: 'all', killAt: 'issued', killAtPercent: 50 },
    { phase: 'create', cache: 'write-through', io: 'all', killAt: 'acked', killAtPercent: 25 },
    { phase: 'create', cache: 'write-back', io: 'torn', killAt: 'torn', killAtPercent: 30 },
    { phase: 'resync', cache: 'write-back', io: 'none', killAt: 'checkpoint', killAtPercent: 40 },
    { phase: 'resync', cache: 'write-through', io: 'burst', killAt: 'checkpoint', killAtPercent: 20 },
    { phase: 'resync', cache: 'write-through', io: 'all', killAt: 'issued', killAtPercent: 60 },
    { phase: 'resync', cache: 'write-back', io: 'all', killAt: 'acked', killAtPercent: 30 },
    { phase: 'resync', cache: 'write-through', io: 'torn', killAt: 'torn', killAtPercent: 30 },
  ];
  cases.forEach((c, i) => {
    const during = c.phase === 'create' ? 'the initial copy' : 'a resync';
    const how = {
      checkpoint: `after a checkpoint${c.io === 'burst' ? ' that followed host writes' : ''}`,
      issued: 'host writes, one issued',
      acked: 'host writes, one just acknowledged',
      torn: 'a duplex write on the primary only',
    }[c.killAt];
    it(`kill -9 during ${during} (>= ${c.killAtPercent}%, ${how}, ${c.cache}): after the restart PAIR with identical volumes`, async function () {
      this.timeout(60_000);
      const s = seed + i;
      console.log(`      seed ${s} (replay with SEED=${seed})`);
      await killDuringCopy(tmp.make('dkc-pairs-crash'), s, c, live);
    });
  });
});

async function killDuringCopy(dir: string, seed: number, c: Case, live: { dkc?: Dkc; child?: ChildProcess }): Promise<void> {
  const { image, quietUnit } = await prepare(dir, seed, c, (d) => (live.dkc = d));
  const out = await runAndKill(dir, seed, c, quietUnit * UNIT_BLOCKS + 10, (ch) => (live.child = ch));
  assert.ok(out.totalBlocks > 0 && out.killedAtPercent >= c.killAtPercent);
  assert.equal(out.torn, c.killAt === 'torn');

  // As the kill left it: mid-copy in the table; the bitmap as the restart will load it.
  const row = await tableRow(dir);
  assert.equal(row.state, 'COPY');
  assert.equal(row.direction, 'forward');
  const file = await diffFile(dir);

  const dkc = await openDkc(pairsConfig(c.cache), dir, silentLog);
  live.dkc = dkc;
  const atOpen = dkc.pairs.status(PAIR_ID);
  assert.ok(atOpen.state === 'COPY' || atOpen.state === 'PAIR', `state after the restart: ${atOpen.state}`);
  assert.equal(atOpen.direction, 'forward');
  if (c.killAt === 'torn') {
    // The tear really happened: the primary kept its half (the child saw it there and waited).
    const r = out.requests.get(0)!;
    const got = await dkc.ldevByName(PRIMARY).read(r.lba, r.blocks);
    assert.ok(got.equals(pattern(BLOCK_BYTES, r.lba, r.blocks, childGeneration(seed))), 'the torn write is not on the primary');
  }
  const waitedMs = await waitPair(dkc);
  const counts = await verify(dkc, image, out, seed);
  if (c.io === 'burst' || c.io === 'all') assert.ok(counts.writes > 0 && counts.unmaps > 0, `acknowledged: ${counts.writes} writes, ${counts.unmaps} unmaps`);

  // Duplex again: a write to the primary is on the secondary when acknowledged.
  const p = dkc.ldevByName(PRIMARY);
  const lba = 3 * UNIT_BLOCKS + SLOT_BLOCKS;
  await put(p, null, lba, 100, generations(seed).after);
  assert.ok((await dkc.ldevByName(SECONDARY).read(lba, 100)).equals(pattern(BLOCK_BYTES, lba, 100, generations(seed).after)));

  const resumed = file.reason === 'clean' ? `bitmap clean, ${file.blocks} of ${out.totalBlocks} blocks left` : `bitmap ${file.reason}: full copy`;
  console.log(`      killed at ${out.killedAtPercent}% (${resumed}); PAIR ${waitedMs} ms after the restart; ` +
    `${counts.writes} writes and ${counts.unmaps} unmaps acknowledged, ${counts.inFlight} in flight`);
  await dkc.close();
  live.dkc = undefined;
}
