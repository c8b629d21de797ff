import assert from 'node:assert/strict';
import { createInterface } from 'node:readline';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { pattern, tmpDirs } from '../../helpers/common';
import { openCache, REGION_BYTES, regionAt, SECTOR } from '../fixtures/cache-crash-plan';

const CHILD = path.join(__dirname, '..', 'fixtures', 'cache-crash-writer.js');

/** Acknowledged writes per region, by generation. */
type Acked = Map<number, Map<number, { offset: number; length: number }>>;

/** Run the writer and SIGKILL it once it has acknowledged killAfter writes (from here, or by itself). */
function runAndKill(dataDir: string, seed: number, killAfter: number, self: boolean): Promise<{ acked: Acked; count: number }> {
  return new Promise((resolve, reject) => {
    const args = [CHILD, dataDir, String(seed), ...(self ? [String(killAfter)] : [])];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    const acked: Acked = new Map();
    let count = 0;
    createInterface({ input: child.stdout }).on('line', (line) => {
      const [kind, region, offset, length, gen] = line.split(' ');
      if (kind === 'W') {
        count++;
        const m = acked.get(Number(region)) ?? new Map();
        m.set(Number(gen), { offset: Number(offset), length: Number(length) });
        acked.set(Number(region), m);
      }
      if (count >= killAfter && child.exitCode === null) child.kill('SIGKILL');
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`writer ended with code ${code} signal ${signal} before the kill`));
      else resolve({ acked, count });
    });
  });
}

describe('DKC cache, write-back: kill -9', () => {
  const tmp = tmpDirs();
  const seed = Number(process.env.SEED ?? 20261122);

  const cases = [[300, false, 'write-back'], [200, true, 'write-back'], [1500, true, 'write-through']] as const;
  for (const [n, self, reopen] of cases) {
    it(`kill -9 ${self ? 'right after' : 'soon after'} the ${n}th acknowledged write loses nothing acknowledged (reopened ${reopen})`, async function () {
      this.timeout(60_000);
      console.log(`      seed ${seed + n} (replay with SEED=${seed})`);
      const dir = tmp.make('dkc-cache-crash');
      const out = await runAndKill(dir, seed + n, n, self);
      assert.ok(out.count >= n);
      const { cache, disks, kernel } = await openCache(dir, reopen);
      try {
        assert.ok(cache.stats.replayedRecords > 0, 'the journal held writes not yet destaged');
        let checked = 0;
        for (const [region, gens] of out.acked) {
          const { group, offset: base } = regionAt(region);
          const got = Buffer.alloc(REGION_BYTES);
          await disks[group].readInto(base, got, 0, REGION_BYTES);
          // A second write (the whole region) may have been under way if not acknowledged.
          const w = gens.get(2) ?? gens.get(1)!;
          const allowed = gens.has(2) ? [2] : [1, 2];
          for (let at = w.offset; at < w.offset + w.length; at += SECTOR) {
            const lba = (base + at) / SECTOR;
            const sector = got.subarray(at, at + SECTOR);
            const ok = allowed.some((g) => sector.equals(pattern(SECTOR, lba, 1, seed + n + g)));
            assert.ok(ok, `region ${region} (group ${group} offset ${base + at}): acknowledged write lost`);
          }
          checked++;
        }
        assert.ok(checked >= n * 0.5, `checked ${checked} regions`);
      } finally {
        await cache.close();
        await kernel.stop();
        await Promise.all(disks.map((d) => d.close()));
      }
    });
  }
});
