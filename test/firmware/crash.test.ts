import assert from 'node:assert/strict';
import { createInterface } from 'node:readline';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import type { EmulatedBays } from '../../emulator/hardware/bays';
import { openDkc } from '../../emulator/rack/build';
import { pattern, silentLog, tmpDirs } from '../helpers/common';
import { CRASH_VOLUMES, crashConfig, generation, PARITY_ROW_BYTES, SLOT_BLOCKS, slotMap, SlotVolume } from './fixtures/crash-plan';

const CHILD = path.join(__dirname, 'fixtures', 'crash-writer.js');

interface Outcome {
  issued: Set<number>;
  written: Map<number, { lba: number; blocks: number }>;
  unmapping: Set<number>;
  unmapped: Set<number>;
  done: boolean;
}

/**
 * Run the writer child and SIGKILL it once it has acknowledged killAfter writes: from here
 * (some writes later), or by itself the instant it prints the killAfter-th acknowledgement.
 */
function runAndKill(dataDir: string, seed: number, killAfter: number, self: boolean): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const args = [CHILD, dataDir, String(seed), ...(self ? [String(killAfter)] : [])];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    const out: Outcome = { issued: new Set(), written: new Map(), unmapping: new Set(), unmapped: new Set(), done: false };
    createInterface({ input: child.stdout }).on('line', (line) => {
      const [kind, slot, lba, blocks] = line.split(' ');
      if (kind === 'I') out.issued.add(Number(slot));
      else if (kind === 'W') out.written.set(Number(slot), { lba: Number(lba), blocks: Number(blocks) });
      else if (kind === 'X') out.unmapping.add(Number(slot));
      else if (kind === 'U') out.unmapped.add(Number(slot));
      else if (kind === 'DONE') out.done = true;
      if (out.written.size >= killAfter && child.exitCode === null) child.kill('SIGKILL');
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`writer ended with code ${code} signal ${signal} before the kill`));
      else resolve(out);
    });
  });
}

describe('LDEV crash safety (RAID 1, 0, 5, 6)', () => {
  const tmp = tmpDirs();
  const seed = Number(process.env.SEED ?? 20261122);

  for (const [n, self] of [[400, false], [250, true], [900, true]] as const) {
    it(`kill -9 ${self ? 'right after' : 'soon after'} the ${n}th acknowledged write loses nothing acknowledged`, async function () {
      this.timeout(60_000);
      console.log(`      seed ${seed + n} (replay with SEED=${seed})`);
      await killAndVerify(tmp.make('dkc-crash'), seed + n, n, self);
    });
  }
});

async function killAndVerify(dir: string, seed: number, killAfter: number, self: boolean): Promise<void> {
  const out = await runAndKill(dir, seed, killAfter, self);
  assert.ok(out.written.size >= killAfter && !out.done);
  const dkc = await openDkc(crashConfig(), dir, silentLog);
  try {
    const map = slotMap(CRASH_VOLUMES.map((n) => dkc.ldevByName(n)));
    let checkedData = 0;
    let checkedZero = 0;
    const perVolume = CRASH_VOLUMES.map(() => 0);
    let fullRows = 0;
    let partialRows = 0;
    const parityReads: { v: SlotVolume; name: string; lba: number; got: Buffer }[] = [];
    for (let slot = 0; slot < map.count; slot++) {
      const { v, vi, base } = map.at(slot);
      const bs = v.blockSize;
      const w = out.written.get(slot);
      if (!out.issued.has(slot) || out.unmapped.has(slot)) {
        // Never written, or unmapped and acknowledged: the whole slot reads zeros.
        assert.deepEqual(v.extent(base, SLOT_BLOCKS), { mapped: false, blocks: SLOT_BLOCKS }, `slot ${slot} should be unmapped`);
        assert.ok((await v.read(base, SLOT_BLOCKS)).equals(Buffer.alloc(SLOT_BLOCKS * bs)), `slot ${slot} should read zeros`);
        checkedZero++;
      } else if (w) {
        const got = await v.read(w.lba, w.blocks);
        const want = pattern(bs, w.lba, w.blocks, generation(seed, vi));
        // If an unmap of this slot was in flight, a block may read data or zeros (unmapped).
        const mayBeUnmapped = out.unmapping.has(slot);
        for (let i = 0; i < w.blocks; i++) {
          const b = got.subarray(i * bs, (i + 1) * bs);
          const ok = b.equals(want.subarray(i * bs, (i + 1) * bs)) || (mayBeUnmapped && b.equals(Buffer.alloc(bs)) && !v.extent(w.lba + i, 1).mapped);
          assert.ok(ok, `slot ${slot} LBA ${w.lba + i}: acknowledged write lost`);
        }
        checkedData++;
        perVolume[vi]++;
        if (vi >= 2) {
          // vol5, vol6: did this write cover a whole row (full-row write) or only part of one?
          const rowBlocks = PARITY_ROW_BYTES / bs;
          if (w.lba % rowBlocks === 0 && w.blocks >= rowBlocks) fullRows++;
          else partialRows++;
          parityReads.push({ v, name: CRASH_VOLUMES[vi], lba: w.lba, got });
        }
      }
    }
    assert.ok(checkedData >= killAfter * 0.7, `checked ${checkedData} written slots`);
    assert.ok(checkedZero > 0);
    // Every level took writes, and the parity groups both kinds of row write.
    perVolume.forEach((n, vi) => assert.ok(n > 0, `no acknowledged write to ${CRASH_VOLUMES[vi]}`));
    assert.ok(fullRows > 0 && partialRows > 0, `parity writes: ${fullRows} full rows, ${partialRows} partial`);
    // Parity agrees with the data the crash left: with members failed (one of rg5, two of rg6),
    // reconstructed reads give what the healthy groups gave.
    for (const d of ['rg5-0', 'rg6-0', 'rg6-1']) {
      (dkc.bays as EmulatedBays).bay(d)!.faults.fail();
      await dkc.driveChanged(d, 'failed');
    }
    assert.deepEqual(['rg5', 'rg6'].map((g) => dkc.drive.group(g).state), ['degraded', 'degraded']);
    for (const r of parityReads) {
      const again = await r.v.read(r.lba, r.got.length / r.v.blockSize);
      assert.ok(again.equals(r.got), `${r.name} LBA ${r.lba}: degraded read differs from the healthy read`);
    }
  } finally {
    await dkc.close();
  }
}
