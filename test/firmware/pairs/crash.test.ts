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
// Split during a copy (seed 004): the child splits the pair while the initial copy or the resync
// runs, goes on writing and unmapping the primary and now and then reads, writes or unmaps the
// secondary, and is killed while the split image is still being copied: as a request is issued
// or acknowledged, right after a write or unmap of the secondary was acknowledged, or right after
// a primary write to a unit of the image the copier had not reached was acknowledged (only the
// copy before that write, and the image file saved before it started, keep the split instant's
// data for the secondary). After the restart the pair is PSUS;
// the secondary, read at once (each read completes the image under it) or after the copier
// completed it, holds the primary as of the split instant: the data prepared before, the child's
// writes acknowledged before the split was sent (one in flight across it: per block, old or new),
// and the child's acknowledged writes to the secondary on top; each read the child made of the
// secondary said the same. Then a resync reaches PAIR with identical volumes and every
// acknowledged write on the primary.
import assert from 'node:assert/strict';
import { createInterface } from 'node:readline';
import { ChildProcess, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { openDkc } from '../../../emulator/rack/build';
import { ldevDir } from '../../../emulator/rack/layout';
import { BitmapStore } from '../../../firmware/bitmap-store';
import type { Dkc } from '../../../firmware/dkc';
import type { Ldev } from '../../../firmware/ldev';
import type { PairRow } from '../../../firmware/pairs/table';
import { pattern, prng, silentLog, tmpDirs } from '../../helpers/common';
import {
  BLOCK_BYTES, blockDigests, CacheMode, childGeneration, HostIo, PAIR_ID, pairsConfig, Phase, PRIMARY, RequestKind, SECONDARY,
  secondaryGeneration, SLOT_BLOCKS, UNIT_BLOCKS, VOLUME_BLOCKS,
} from '../fixtures/pairs-crash-writer';

const CHILD = path.join(__dirname, '..', 'fixtures', 'pairs-crash-writer.js');
/** The copy must not be further than this when the kill is sent (else pace the child slower). */
const KILL_PERCENT_MAX = 80;
/** Bounds on waiting: for the child to reach the kill point, and for the copy after the restart. */
const KILL_WAIT_MS = 20_000;
const PAIR_WAIT_MS = 15_000;
const POLL_MS = 10;
const UNITS = VOLUME_BLOCKS / UNIT_BLOCKS;
/**
 * The split cases' primary write to an image unit: in the last unit, which the copies (initial,
 * resync, the split image's) reach last, and a resync has work in (splitAndWrite writes it).
 */
const IMAGE_UNIT = UNITS - 1;
const IMAGE_LBA = IMAGE_UNIT * UNIT_BLOCKS + 2 * SLOT_BLOCKS;
/** After the restart of a split case, the copier's pace while the secondary is read, and after. */
const REOPEN_PACE_MS = 60;
const DEFAULT_PACE = { paceMs: 1, copyBlocksPerStep: 2048 };
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
 * no host I/O since (io none or burst); with host I/O going on (io all or split), as a request
 * is issued or acknowledged; by itself, with a duplex write torn (io torn). Split cases count
 * killAtPercent in the split image's copy; secondary-write: the next write or unmap of the
 * secondary acknowledged; image-write: right after the primary write to the image unit
 * (IMAGE_LBA) is acknowledged.
 */
type KillPoint = 'checkpoint' | 'issued' | 'acked' | 'torn' | 'secondary-write' | 'image-write';

interface Case {
  phase: Phase;
  cache: CacheMode;
  io: HostIo;
  killAt: KillPoint;
  killAtPercent: number;
  /**
   * io split: the copy's percent at which the child splits; after the restart, the secondary is
   * read at once with the copier slowed (reads complete the image) or once the copier completed it.
   */
  split?: { atPercent: number; reopen: 'reads' | 'copier' };
}

/** A request of the child's, with the numbers of the lines that issued and acknowledged it. */
interface Request {
  kind: RequestKind;
  lba: number;
  blocks: number;
  issuedAt: number;
  ackedAt?: number;
  /** A read of the secondary: what it read, block by block (blockDigests). */
  digests?: string[];
}

/** What the child reported before the kill. */
interface Outcome {
  requests: Map<number, Request>;
  totalBlocks: number;
  /** The child made its last request. */
  done: boolean;
  /** The child tore a duplex write and killed itself. */
  torn: boolean;
  killedAtPercent: number;
  /** Split cases: the numbers of the lines X (split sent) and Y (resolved); Infinity if never said. */
  splitSentAt: number;
  splitDoneAt: number;
  /** Blocks of the split image when the split resolved. */
  imageBlocks: number;
}

/** The child's decision rules: told of each status line and request, they may kill the child. */
interface Watch {
  progress(state: string, percent: number, image: boolean): void;
  issued(r: Request): void;
  acked(r: Request): void;
}
type Kill = (why?: string) => void;

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
  // The image unit differs: a split during the resync leaves it in the split image.
  units.splice(units.indexOf(IMAGE_UNIT), 1);
  units.unshift(IMAGE_UNIT);
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

/**
 * A pair's bitmap file as a restart would load it (firmware/pairs/manager.ts names the difference bitmap
 * pair-<id>, the split image pair-<id>-image): why it is (not) trusted, its blocks and set units.
 */
async function bitmapFile(dir: string, name = `pair-${PAIR_ID}`): Promise<{ reason: string; blocks: number; units: number[] }> {
  const store = new BitmapStore(path.join(ldevDir(dir, 'dkc0'), 'pairs'));
  const b = await store.open(name, { volumeBlocks: VOLUME_BLOCKS, blocksPerBit: UNIT_BLOCKS });
  try {
    const units = Array.from({ length: UNITS }, (_x, u) => u).filter((u) => b.bitmap.bits.test(u));
    return { reason: b.reason, blocks: b.bitmap.countBlocks(), units };
  } finally {
    await b.close();
  }
}

function imageFileExists(dir: string): Promise<boolean> {
  return fs.access(path.join(ldevDir(dir, 'dkc0'), 'pairs', `pair-${PAIR_ID}-image.bitmap`)).then(() => true, () => false);
}

async function tableRow(dir: string): Promise<PairRow> {
  const doc = JSON.parse(await fs.readFile(path.join(ldevDir(dir, 'dkc0'), 'pairs', 'pair-table.json'), 'utf8')) as { pairs: PairRow[] };
  const row = doc.pairs.find((r) => r.id === PAIR_ID);
  assert.ok(row, 'the pair is in the table');
  return row;
}

/**
 * Run the child; SIGKILL it at the case's kill point (copyWatch, splitWatch). Returns what it
 * reported, line by line: the line numbers order its requests against the split.
 */
function runAndKill(dir: string, seed: number, c: Case, atLba: number, track: (ch: ChildProcess) => void): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const atPercent = c.split ? c.split.atPercent : c.killAtPercent;
    const args = [CHILD, dir, String(seed), c.phase, c.cache, c.io, String(atPercent), String(atLba)];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    track(child);
    const out: Outcome = {
      requests: new Map(), totalBlocks: -1, done: c.io === 'none', torn: false, killedAtPercent: -1,
      splitSentAt: Infinity, splitDoneAt: Infinity, imageBlocks: -1,
    };
    let killed = false;
    let failure: Error | undefined;
    const kill: Kill = (why) => {
      if (killed) return;
      killed = true;
      if (why) failure = new Error(why);
      child.kill('SIGKILL');
    };
    const watch = c.io === 'split' ? splitWatch(c, out, kill) : copyWatch(dir, c, out, kill, () => killed);
    const timer = setTimeout(() => kill(`the child did not reach its kill point within ${KILL_WAIT_MS} ms`), KILL_WAIT_MS);
    let lineNo = 0;
    createInterface({ input: child.stdout }).on('line', (line) => hear(line.split(' '), ++lineNo, out, watch));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (failure) reject(failure);
      else if (signal !== 'SIGKILL' || !(killed || out.torn)) reject(new Error(`pairs writer ended with code ${code} signal ${signal} before the kill`));
      else resolve(out);
    });
  });
}

/** One line of the child's (fixtures/pairs-crash-writer.ts lists them). */
function hear(f: string[], lineNo: number, out: Outcome, watch: Watch): void {
  switch (f[0]) {
    case 'S':
      out.totalBlocks = Number(f[1]);
      break;
    case 'DONE':
      out.done = true;
      break;
    case 'T':
      out.torn = true;
      out.killedAtPercent = Number(f[1]);
      break;
    case 'X':
      out.splitSentAt = lineNo;
      break;
    case 'Y':
      out.splitDoneAt = lineNo;
      out.imageBlocks = Number(f[1]);
      break;
    case 'P':
      watch.progress(f[1], Number(f[2]), f[4] === '1');
      break;
    case 'I': {
      const r: Request = { kind: f[2] as RequestKind, lba: Number(f[3]), blocks: Number(f[4]), issuedAt: lineNo };
      out.requests.set(Number(f[1]), r);
      watch.issued(r);
      break;
    }
    case 'A': {
      const r = out.requests.get(Number(f[1]))!;
      r.ackedAt = lineNo;
      if (f[2] !== undefined) r.digests = f[2].split(',');
      watch.acked(r);
      break;
    }
  }
}

/**
 * Kill points of a copy, once it is at killAtPercent or more: the child's last request made and
 * then the bitmap file on disk clean with part of the copy done (a checkpoint saved after every
 * write, which marks the file dirty before it starts), or the child's next request issued or
 * acknowledged. torn: the child kills itself.
 */
function copyWatch(dir: string, c: Case, out: Outcome, kill: Kill, killed: () => boolean): Watch {
  const ios: Record<KillPoint, HostIo[]> = { checkpoint: ['none', 'burst'], issued: ['all'], acked: ['all'], torn: ['torn'], 'secondary-write': [], 'image-write': [] };
  const io = ios[c.killAt];
  assert.ok(io.includes(c.io), `kill point ${c.killAt} with host I/O ${c.io}`);
  let checking = false;
  return {
    progress(state, percent) {
      if (killed()) return;
      if (state !== 'COPY' || percent > KILL_PERCENT_MAX) {
        kill(`the copy got to ${state} ${percent}% before the kill point: pace the child slower`);
        return;
      }
      if (percent < c.killAtPercent || c.killAt === 'torn') return; // torn: the child kills itself
      if (c.killAt === 'issued' || c.killAt === 'acked') {
        if (out.killedAtPercent < 0) out.killedAtPercent = percent; // the kill goes with the next I or A
      } else if (out.done && !checking) {
        checking = true;
        void bitmapFile(dir).then((f) => {
          checking = false;
          if (!killed() && f.reason === 'clean' && f.blocks < out.totalBlocks) {
            out.killedAtPercent = percent;
            kill();
          }
        }, (err: Error) => kill(`reading the bitmap file: ${err.message}`));
      }
    },
    issued() {
      if (c.killAt === 'issued' && out.killedAtPercent >= 0) kill();
    },
    acked() {
      if (c.killAt === 'acked' && out.killedAtPercent >= 0) kill();
    },
  };
}

/**
 * Kill points of a split during a copy, with the split image pending (else the child is paced
 * too fast): once the image's copy is at killAtPercent, the next request issued or acknowledged,
 * or the next write or unmap of the secondary acknowledged; or right after the acknowledgement
 * of the primary write to the image unit.
 */
function splitWatch(c: Case, out: Outcome, kill: Kill): Watch {
  assert.ok(['issued', 'acked', 'secondary-write', 'image-write'].includes(c.killAt) && c.split, `kill point ${c.killAt} with a split`);
  let percentNow = -1;
  return {
    progress(state, percent, image) {
      if (out.splitDoneAt === Infinity) {
        if (state === 'PAIR' || (state === 'COPY' && percent > KILL_PERCENT_MAX)) kill(`the copy got to ${state} ${percent}% before the split: pace the child slower`);
        return;
      }
      if (state !== 'PSUS' || !image) {
        kill(`the split image was complete (${state}) before the kill point: pace the child slower`);
        return;
      }
      percentNow = percent;
      if (c.killAt !== 'image-write' && percent >= c.killAtPercent && out.killedAtPercent < 0) out.killedAtPercent = percent;
    },
    issued() {
      if (c.killAt === 'issued' && out.killedAtPercent >= 0) kill();
    },
    acked(r) {
      if (c.killAt === 'acked' && out.killedAtPercent >= 0) kill();
      if (c.killAt === 'secondary-write' && out.killedAtPercent >= 0 && (r.kind === 'sw' || r.kind === 'su')) kill();
      if (c.killAt === 'image-write' && r.issuedAt > out.splitDoneAt && r.kind === 'w' && r.lba === IMAGE_LBA) {
        out.killedAtPercent = percentNow;
        kill();
      }
    },
  };
}

type Effect = 'applied' | 'maybe';

/** The data a request of the child's leaves. */
function requestData(r: Request, seed: number): Buffer {
  if (r.kind === 'u' || r.kind === 'su') return Buffer.alloc(r.blocks * BLOCK_BYTES);
  return pattern(BLOCK_BYTES, r.lba, r.blocks, r.kind === 'w' ? childGeneration(seed) : secondaryGeneration(seed));
}

/**
 * What a volume may hold: base with some requests applied and others maybe (per block, old or
 * new: a request in flight). Each slot gets at most one request, so the old data is base's.
 */
class Expected {
  readonly want: Buffer;
  private readonly maybe = new Map<number, Buffer>();

  constructor(base: Buffer, effects: Array<[Request, Effect]>, seed: number) {
    this.want = Buffer.from(base);
    for (const [r, e] of effects) {
      const data = requestData(r, seed);
      if (e === 'applied') this.want.set(data, r.lba * BLOCK_BYTES);
      else for (let i = 0; i < r.blocks; i++) this.maybe.set(r.lba + i, data.subarray(i * BLOCK_BYTES, (i + 1) * BLOCK_BYTES));
    }
  }

  block(lba: number): Buffer {
    return this.want.subarray(lba * BLOCK_BYTES, (lba + 1) * BLOCK_BYTES);
  }

  /** Whether LBA may hold got; else why not. */
  check(lba: number, got: Buffer): string | null {
    if (got.equals(this.block(lba)) || this.maybe.get(lba)?.equals(got) === true) return null;
    const gen = (b: Buffer) => (b.every((x) => x === 0) ? 'zeros' : `generation ${b.readUInt32LE(4)}`);
    return `${gen(got)}, want ${gen(this.block(lba))}${this.maybe.has(lba) ? ` or ${gen(this.maybe.get(lba)!)}` : ''}`;
  }

  /** Whether LBA may hold the block of that digest. */
  allowsDigest(lba: number, digest: string): boolean {
    const m = this.maybe.get(lba);
    return blockDigests(this.block(lba))[0] === digest || (m !== undefined && blockDigests(m)[0] === digest);
  }
}

function isPrimary(r: Request): boolean {
  return r.kind === 'w' || r.kind === 'u';
}

/** The primary: every acknowledged write and unmap; one in flight at the kill maybe. */
function primaryEffects(out: Outcome): Array<[Request, Effect]> {
  return [...out.requests.values()].filter(isPrimary).map((r) => [r, r.ackedAt !== undefined ? 'applied' : 'maybe']);
}

/**
 * The secondary of a split pair: the primary's requests acknowledged before the split was sent,
 * maybe those issued before it resolved; its own writes and unmaps acknowledged before line
 * `from`, maybe those issued before line `until` (a read's issue and acknowledgement lines).
 */
function secondaryEffects(out: Outcome, from = Infinity, until = Infinity): Array<[Request, Effect]> {
  const effects: Array<[Request, Effect]> = [];
  for (const r of out.requests.values()) {
    if (r.kind === 'sr') continue;
    const [appliedBefore, maybeBefore] = isPrimary(r) ? [out.splitSentAt, out.splitDoneAt] : [from, until];
    if ((r.ackedAt ?? Infinity) < appliedBefore) effects.push([r, 'applied']);
    else if (r.issuedAt < maybeBefore) effects.push([r, 'maybe']);
  }
  return effects;
}

/**
 * The primary holds the prepared image with every acknowledged child request applied (a request
 * in flight at the kill: per block, old or new), and the secondary is byte for byte the primary.
 */
async function verify(dkc: Dkc, image: Buffer, out: Outcome, seed: number): Promise<{ writes: number; unmaps: number; inFlight: number }> {
  const effects = primaryEffects(out);
  const want = new Expected(image, effects, seed);
  const pd = await dkc.ldevByName(PRIMARY).read(0, VOLUME_BLOCKS);
  const sd = await dkc.ldevByName(SECONDARY).read(0, VOLUME_BLOCKS);
  for (let lba = 0; lba < VOLUME_BLOCKS; lba++) {
    const at = (b: Buffer) => b.subarray(lba * BLOCK_BYTES, (lba + 1) * BLOCK_BYTES);
    const got = at(pd);
    const wrong = want.check(lba, got);
    assert.ok(wrong === null, `primary LBA ${lba}: ${wrong}`);
    assert.ok(at(sd).equals(got), `secondary LBA ${lba} differs from the primary (generation ${at(sd).readUInt32LE(4)} vs ${got.readUInt32LE(4)})`);
  }
  return {
    writes: effects.filter(([r, e]) => e === 'applied' && r.kind === 'w').length,
    unmaps: effects.filter(([r, e]) => e === 'applied' && r.kind === 'u').length,
    inFlight: effects.filter(([, e]) => e === 'maybe').length,
  };
}

/**
 * Every read the child made of the secondary after the split read the split instant's data with
 * the secondary's own writes acknowledged before it. Returns the reads checked, and how many of
 * them covered a primary change made after the split (where a missing image copy would show).
 */
function checkChildReads(image: Buffer, out: Outcome, seed: number): { reads: number; overChanged: number } {
  let reads = 0;
  let overChanged = 0;
  const changedAfterSplit = [...out.requests.values()].filter((r) => isPrimary(r) && r.issuedAt > out.splitDoneAt);
  for (const r of out.requests.values()) {
    if (r.kind !== 'sr' || !r.digests) continue;
    const want = new Expected(image, secondaryEffects(out, r.issuedAt, r.ackedAt), seed);
    r.digests.forEach((d, i) => assert.ok(want.allowsDigest(r.lba + i, d), `the child's read of the secondary at LBA ${r.lba + i} (line ${r.issuedAt}) is not the split instant's data`));
    reads++;
    if (changedAfterSplit.some((w) => (w.ackedAt ?? Infinity) < r.issuedAt && w.lba < r.lba + r.blocks && r.lba < w.lba + w.blocks)) overChanged++;
  }
  return { reads, overChanged };
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
    // seed 004: split while the copy runs; killAtPercent is of the split image's copy.
    { phase: 'create', cache: 'write-through', io: 'split', killAt: 'image-write', killAtPercent: 0, split: { atPercent: 25, reopen: 'reads' } },
    { phase: 'create', cache: 'write-back', io: 'split', killAt: 'acked', killAtPercent: 40, split: { atPercent: 30, reopen: 'copier' } },
    { phase: 'resync', cache: 'write-back', io: 'split', killAt: 'image-write', killAtPercent: 0, split: { atPercent: 20, reopen: 'copier' } },
    { phase: 'resync', cache: 'write-through', io: 'split', killAt: 'issued', killAtPercent: 30, split: { atPercent: 25, reopen: 'reads' } },
    { phase: 'create', cache: 'write-back', io: 'split', killAt: 'secondary-write', killAtPercent: 15, split: { atPercent: 20, reopen: 'reads' } },
  ];
  cases.forEach((c, i) => {
    const during = c.phase === 'create' ? 'the initial copy' : 'a resync';
    const how = {
      checkpoint: `after a checkpoint${c.io === 'burst' ? ' that followed host writes' : ''}`,
      issued: 'host writes, one issued',
      acked: 'host writes, one just acknowledged',
      torn: 'a duplex write on the primary only',
      'secondary-write': 'host writes, one to the secondary just acknowledged',
      'image-write': 'host writes, one to a unit the image copy had not reached just acknowledged',
    }[c.killAt];
    const s = seed + i;
    const title = c.split
      ? `split during ${during} at ${c.split.atPercent}%, kill -9 while the split image is copied (${c.killAt === 'image-write' ? '' : `>= ${c.killAtPercent}%, `}${how}, ${c.cache}): ` +
        `after the restart PSUS with the split instant on the secondary (${c.split.reopen === 'reads' ? 'read at once' : 'once the copier completed it'}), then resync to PAIR`
      : `kill -9 during ${during} (>= ${c.killAtPercent}%, ${how}, ${c.cache}): after the restart PAIR with identical volumes`;
    it(title, async function () {
      this.timeout(60_000);
      console.log(`      seed ${s} (replay with SEED=${seed})`);
      const dir = tmp.make('dkc-pairs-crash');
      await (c.split ? killDuringSplitImage(dir, s, c, live) : killDuringCopy(dir, s, c, live));
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
  const file = await bitmapFile(dir);

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
  await duplexAgain(dkc, seed);

  const resumed = file.reason === 'clean' ? `bitmap clean, ${file.blocks} of ${out.totalBlocks} blocks left` : `bitmap ${file.reason}: full copy`;
  console.log(`      killed at ${out.killedAtPercent}% (${resumed}); PAIR ${waitedMs} ms after the restart; ` +
    `${counts.writes} writes and ${counts.unmaps} unmaps acknowledged, ${counts.inFlight} in flight`);
  await dkc.close();
  live.dkc = undefined;
}

/** Duplex again: a write to the primary is on the secondary when acknowledged. */
async function duplexAgain(dkc: Dkc, seed: number): Promise<void> {
  const lba = 3 * UNIT_BLOCKS + SLOT_BLOCKS;
  const gen = generations(seed).after;
  await put(dkc.ldevByName(PRIMARY), null, lba, 100, gen);
  assert.ok((await dkc.ldevByName(SECONDARY).read(lba, 100)).equals(pattern(BLOCK_BYTES, lba, 100, gen)), 'a write in PAIR is not on the secondary');
}

/**
 * seed 004: the child splits while the copy runs and is killed while the split image is copied.
 * After the restart: PSUS, the secondary the split instant (plus its own acknowledged writes),
 * the child's reads of it the same; then resync, PAIR, identical volumes.
 */
async function killDuringSplitImage(dir: string, seed: number, c: Case, live: { dkc?: Dkc; child?: ChildProcess }): Promise<void> {
  const { image } = await prepare(dir, seed, c, (d) => (live.dkc = d));
  const out = await runAndKill(dir, seed, c, IMAGE_LBA, (ch) => (live.child = ch));
  assert.ok(out.splitSentAt < out.splitDoneAt && out.splitDoneAt < Infinity, 'the split resolved before the kill');
  assert.ok(out.killedAtPercent >= c.killAtPercent, `killed at ${out.killedAtPercent}%`);
  const reads = checkChildReads(image, out, seed);

  // As the kill left it: split with the image pending in the table, the image file partly sent.
  const row = await tableRow(dir);
  assert.equal(row.state, 'PSUS');
  assert.equal(row.imagePending, true);
  const file = await bitmapFile(dir, `pair-${PAIR_ID}-image`);
  assert.equal(file.reason, 'clean');
  assert.ok(file.blocks > 0 && file.blocks < out.imageBlocks, `image file: ${file.blocks} of ${out.imageBlocks} blocks left`);
  if (c.killAt === 'image-write') {
    // The write's unit was copied before it (by the hook: the copier, which goes up from the
    // image's first unit and never skips one, has not passed a unit below it that is still set).
    assert.ok(!file.units.includes(IMAGE_UNIT), `unit ${IMAGE_UNIT} is still in the image file after a write to it was acknowledged`);
    assert.ok(file.units[0] < IMAGE_UNIT, 'the copier was past the image unit');
  }

  const dkc = await openDkc(pairsConfig(c.cache), dir, silentLog);
  live.dkc = dkc;
  if (c.split!.reopen === 'reads') dkc.pairs.setCopyOptions({ paceMs: REOPEN_PACE_MS, copyBlocksPerStep: UNIT_BLOCKS });
  const atOpen = dkc.pairs.status(PAIR_ID);
  assert.equal(atOpen.state, 'PSUS');
  const opened = Date.now();
  const left = await secondaryAtSplit(dkc, image, out, seed, c.split!.reopen);
  const st = dkc.pairs.status(PAIR_ID);
  assert.equal(st.state, 'PSUS');
  assert.equal(st.imagePending, false);
  const imageMs = Date.now() - opened;

  await dkc.pairs.resync(PAIR_ID);
  dkc.pairs.setCopyOptions(DEFAULT_PACE);
  const waitedMs = await waitPair(dkc);
  const primaryOnly = { ...out, requests: new Map([...out.requests].filter(([, r]) => isPrimary(r))) };
  const counts = await verify(dkc, image, primaryOnly, seed);
  assert.ok(counts.writes > 0, 'the child had primary writes acknowledged');
  await duplexAgain(dkc, seed);

  const secondary = [...out.requests.values()].filter((r) => r.kind === 'sw' || r.kind === 'su');
  const across = [...out.requests.values()].filter((r) => isPrimary(r) && r.issuedAt < out.splitDoneAt && (r.ackedAt ?? Infinity) > out.splitSentAt);
  console.log(`      split at ${out.imageBlocks} blocks to go, killed at ${out.killedAtPercent}% of the image (${file.blocks} blocks left in the file); ` +
    `after the restart ${atOpen.imagePending ? atOpen.copy.remainingBlocks : 0} blocks pending, ${left} as the reads began, secondary checked in ${imageMs} ms; PAIR ${waitedMs} ms after the resync; ` +
    `${counts.writes} writes and ${counts.unmaps} unmaps to the primary acknowledged, ${across.length} in flight across the split, ${counts.inFlight} at the kill; ` +
    `secondary: ${secondary.filter((r) => r.ackedAt !== undefined).length} writes acknowledged, ${reads.reads} reads checked (${reads.overChanged} over a changed primary)`);
  await dkc.close();
  live.dkc = undefined;
  assert.equal(await imageFileExists(dir), false, 'the image file is gone once the image is complete');
}

/**
 * The secondary holds the split instant's data with its own acknowledged writes on top: read at
 * once, unit by unit from the last (the copier goes up from the first), or once the copier
 * completed the image. Returns the image's blocks still pending when the reading began.
 */
async function secondaryAtSplit(dkc: Dkc, image: Buffer, out: Outcome, seed: number, reopen: 'reads' | 'copier'): Promise<number> {
  const want = new Expected(image, secondaryEffects(out), seed);
  const s = dkc.ldevByName(SECONDARY);
  if (reopen === 'copier') {
    const started = Date.now();
    while (dkc.pairs.status(PAIR_ID).imagePending) {
      if (Date.now() - started > PAIR_WAIT_MS) throw new Error(`the split image still pending after ${PAIR_WAIT_MS} ms`);
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }
  const left = dkc.pairs.status(PAIR_ID).copy.remainingBlocks;
  for (let u = UNITS - 1; u >= 0; u--) {
    const got = await s.read(u * UNIT_BLOCKS, UNIT_BLOCKS);
    for (let i = 0; i < UNIT_BLOCKS; i++) {
      const lba = u * UNIT_BLOCKS + i;
      const wrong = want.check(lba, got.subarray(i * BLOCK_BYTES, (i + 1) * BLOCK_BYTES));
      assert.ok(wrong === null, `secondary LBA ${lba} is not the split instant's: ${wrong}`);
    }
  }
  return left;
}
