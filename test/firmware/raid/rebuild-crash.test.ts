// kill -9 during a rebuild (issue 3): a RAID-5 member fails, correction copy rebuilds its slot
// onto the spare while the host writes, and the process is SIGKILLed once the RAID table has
// saved a rebuild cursor. After the restart the rebuild resumes from the saved cursor (not from
// row 0), finishes, and neither the data written before nor any acknowledged write is lost; a
// second member failure afterwards proves the rebuilt member holds the right data and parity.
import assert from 'node:assert/strict';
import { createInterface } from 'node:readline';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { EmulatedBays } from '../../../emulator/hardware/bays';
import { openDkc } from '../../../emulator/rack/build';
import { ldevDir } from '../../../emulator/rack/layout';
import type { Dkc } from '../../../firmware/dkc';
import { pattern, silentLog, tmpDirs } from '../../helpers/common';
import {
  FAILED_SLOT, generations, GROUP, rebuildConfig, SLOT_BLOCKS, SPARE, VOLUME,
} from '../fixtures/rebuild-writer';

const CHILD = path.join(__dirname, '..', 'fixtures', 'rebuild-writer.js');
/** How often the parent reads the RAID table while the child runs. */
const TABLE_POLL_MS = 5;
/** Bounds on waiting: for the child to reach the kill point, and for the resumed rebuild. */
const KILL_WAIT_MS = 30_000;
const REBUILD_POLLS_MAX = 1200;
const REBUILD_POLL_MS = 25;
/** The member failed after the rebuild: any but the rebuilt slot. */
const SECOND_FAILED_DRIVE = 'rg5-3';

interface SlotEntry {
  drive: string;
  state: string;
  rebuiltRows: number;
}

interface Outcome {
  issued: Map<number, { lba: number; blocks: number }>;
  acked: Set<number>;
  /** The rebuild's slot as the RAID table had it when the kill was sent. */
  seen: SlotEntry;
}

async function readSlot(tableFile: string): Promise<SlotEntry | undefined> {
  try {
    const doc = JSON.parse(await fs.readFile(tableFile, 'utf8')) as { groups: Record<string, SlotEntry[]> };
    return doc.groups[GROUP]?.[FAILED_SLOT];
  } catch {
    return undefined; // not written yet (the atomic rename makes a torn read impossible)
  }
}

/** Run the child; SIGKILL it once the table shows the slot rebuilding with rebuiltRows >= killAtRows. */
function runAndKill(dataDir: string, seed: number, killAtRows: number): Promise<Outcome> {
  const tableFile = path.join(ldevDir(dataDir, rebuildConfig().name), 'raid-table.json');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, dataDir, String(seed)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const out: Outcome = { issued: new Map(), acked: new Set(), seen: { drive: '', state: '', rebuiltRows: -1 } };
    let killed = false;
    createInterface({ input: child.stdout }).on('line', (line) => {
      const [kind, slot, lba, blocks] = line.split(' ');
      if (kind === 'I') out.issued.set(Number(slot), { lba: Number(lba), blocks: Number(blocks) });
      else if (kind === 'W') out.acked.add(Number(slot));
    });
    let polling = false;
    const started = process.hrtime.bigint();
    const timer = setInterval(() => {
      if (polling || killed) return;
      polling = true;
      void readSlot(tableFile).then((s) => {
        polling = false;
        if (killed) return;
        if (s && s.state === 'rebuilding' && s.rebuiltRows >= killAtRows) {
          out.seen = s;
          killed = true;
          child.kill('SIGKILL');
        } else if (s && s.state === 'normal' && s.drive === SPARE) {
          killed = true;
          child.kill('SIGKILL');
          reject(new Error(`the rebuild finished before the kill point (${killAtRows} rows): pace it slower`));
        } else if (Number(process.hrtime.bigint() - started) / 1e6 > KILL_WAIT_MS) {
          killed = true;
          child.kill('SIGKILL');
          reject(new Error(`no rebuild cursor >= ${killAtRows} within ${KILL_WAIT_MS} ms (table: ${JSON.stringify(s)})`));
        }
      });
    }, TABLE_POLL_MS);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearInterval(timer);
      if (signal !== 'SIGKILL') reject(new Error(`rebuild writer ended with code ${code} signal ${signal} before the kill`));
      else resolve(out);
    });
  });
}

/** Every block: the pre-written pattern, an acknowledged write's, or (write in flight) either. */
async function verifyVolume(dkc: Dkc, out: Outcome, seed: number, when: string): Promise<{ acked: number; inFlight: number }> {
  const v = dkc.ldevByName(VOLUME);
  const bs = v.blockSize;
  const gen = generations(seed);
  let acked = 0;
  let inFlight = 0;
  for (let slot = 0; slot < v.blockCount / SLOT_BLOCKS; slot++) {
    const base = slot * SLOT_BLOCKS;
    const got = await v.read(base, SLOT_BLOCKS);
    const w = out.issued.get(slot);
    const done = out.acked.has(slot);
    if (w && done) acked++;
    else if (w) inFlight++;
    for (let i = 0; i < SLOT_BLOCKS; i++) {
      const lba = base + i;
      const b = got.subarray(i * bs, (i + 1) * bs);
      const old = pattern(bs, lba, 1, gen.before);
      const written = w !== undefined && lba >= w.lba && lba < w.lba + w.blocks;
      if (written && done) {
        assert.ok(b.equals(pattern(bs, lba, 1, gen.during)), `${when}: LBA ${lba} (slot ${slot}): acknowledged write lost`);
      } else if (written) {
        assert.ok(b.equals(old) || b.equals(pattern(bs, lba, 1, gen.during)), `${when}: LBA ${lba} (slot ${slot}): neither old nor new data`);
      } else {
        assert.ok(b.equals(old), `${when}: LBA ${lba} (slot ${slot}): pre-written data lost`);
      }
    }
  }
  return { acked, inFlight };
}

/** The pre-written data: every block of the volume, in whole-slot writes. */
async function preWrite(dataDir: string, seed: number): Promise<void> {
  const dkc = await openDkc(rebuildConfig(), dataDir, silentLog);
  try {
    const v = dkc.ldevByName(VOLUME);
    const chunk = 8 * SLOT_BLOCKS;
    for (let lba = 0; lba < v.blockCount; lba += chunk) {
      await v.write(lba, pattern(v.blockSize, lba, chunk, generations(seed).before), { fua: false });
    }
  } finally {
    await dkc.close();
  }
}

async function waitRebuilt(dkc: Dkc): Promise<number> {
  for (let i = 0; i < REBUILD_POLLS_MAX; i++) {
    const s = dkc.raidTable.slots(GROUP)[FAILED_SLOT];
    if (s.state === 'normal') return i * REBUILD_POLL_MS;
    await new Promise((r) => setTimeout(r, REBUILD_POLL_MS));
  }
  throw new Error(`rebuild not done after ${REBUILD_POLLS_MAX * REBUILD_POLL_MS} ms: ${JSON.stringify(dkc.status().raidGroups[0].rebuild)}`);
}

describe('RAID 5 rebuild crash safety', () => {
  const tmp = tmpDirs();
  const seed = Number(process.env.SEED ?? 20261123);

  // 64 rows: the first cursor saved; 512: half way through the group's 1024 rows.
  for (const killAtRows of [64, 512]) {
    it(`kill -9 during a rebuild (cursor >= ${killAtRows} rows) and writes: the rebuild resumes, nothing acknowledged is lost`, async function () {
      this.timeout(120_000);
      const s = seed + killAtRows;
      console.log(`      seed ${s} (replay with SEED=${seed})`);
      await killDuringRebuild(tmp.make('dkc-rebuild-crash'), s, killAtRows);
    });
  }
});

async function killDuringRebuild(dir: string, seed: number, killAtRows: number): Promise<void> {
  await preWrite(dir, seed);
  const out = await runAndKill(dir, seed, killAtRows);
  assert.equal(out.seen.drive, SPARE);
  assert.ok(out.seen.rebuiltRows > 0);
  const dkc = await openDkc(rebuildConfig(), dir, silentLog);
  try {
    // Resumed, not restarted: the spare holds the slot and the cursor is where it was saved (or on).
    const slot = dkc.raidTable.slots(GROUP)[FAILED_SLOT];
    assert.equal(slot.drive, SPARE);
    assert.equal(slot.state, 'rebuilding');
    assert.ok(slot.rebuiltRows >= out.seen.rebuiltRows, `cursor ${slot.rebuiltRows} at open < ${out.seen.rebuiltRows} saved before the kill`);
    const rebuild = dkc.status().raidGroups.find((g) => g.name === GROUP)!.rebuild;
    assert.ok(rebuild && rebuild.slot === FAILED_SLOT && rebuild.drive === SPARE && rebuild.rowsDone >= out.seen.rebuiltRows,
      `status after open: ${JSON.stringify(rebuild)}`);
    assert.ok(!dkc.raidTable.spares.includes(SPARE));

    // Readable while degraded and rebuilding, and again once the rebuild is done.
    await verifyVolume(dkc, out, seed, 'during the resumed rebuild');
    const waitedMs = await waitRebuilt(dkc);
    const g = dkc.drive.group(GROUP);
    assert.equal(g.state, 'normal');
    assert.equal(g.members()[FAILED_SLOT].drive, SPARE);
    const counts = await verifyVolume(dkc, out, seed, 'after the rebuild');
    console.log(`      killed at cursor ${out.seen.rebuiltRows}, reopened at ${slot.rebuiltRows}; rebuilt ${waitedMs} ms later; ` +
      `${counts.acked} acknowledged writes, ${counts.inFlight} in flight`);
    assert.ok(counts.acked > 0, 'no write was acknowledged during the rebuild');

    // Another member fails: its chunks come from the rebuilt member and parity now.
    (dkc.bays as EmulatedBays).bay(SECOND_FAILED_DRIVE)!.faults.fail();
    await dkc.driveChanged(SECOND_FAILED_DRIVE, 'failed');
    assert.equal(g.state, 'degraded');
    await verifyVolume(dkc, out, seed, `with ${SECOND_FAILED_DRIVE} failed after the rebuild`);
  } finally {
    await dkc.close();
  }
}
