// kill -9 of degraded RAID 5/6 groups mid-write: the write hole (docs/raid.md, "Write hole").
// The parent writes a known pattern over both volumes, fails one member of the RAID-5 group and
// two of the RAID-6 group, and a child writes small partial-row writes until the parent SIGKILLs
// it. A row whose data landed and whose parity did not (or the other way round) would rebuild the
// failed members' chunks of that row wrongly: the pattern written before the failure, long since
// acknowledged, would be lost. After the restart every block reads as the last acknowledged write
// to it (or the pre-written pattern), or, for a write in flight at the kill, as that write.
import assert from 'node:assert/strict';
import { createInterface } from 'node:readline';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { EmulatedBays } from '../../../emulator/hardware/bays';
import { openDkc } from '../../../emulator/rack/build';
import { ldevDir } from '../../../emulator/rack/layout';
import { scanRowLog } from '../../../firmware/raid/parity-log';
import { pattern, silentLog, tmpDirs } from '../../helpers/common';
import {
  baseGeneration, FAILED_DRIVES, openDegraded, VOLUMES, writeGeneration, writeHoleConfig,
} from '../fixtures/write-hole-writer';

const CHILD = path.join(__dirname, '..', 'fixtures', 'write-hole-writer.js');
/** Blocks per read when the parent writes and checks a volume. */
const IO_BLOCKS = 48;

interface Write {
  vi: number;
  lba: number;
  blocks: number;
}

interface Outcome {
  /** By id, in issue order. */
  issued: Map<number, Write>;
  acked: Set<number>;
}

function runAndKill(dataDir: string, seed: number, killAfter: number): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, dataDir, String(seed)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const out: Outcome = { issued: new Map(), acked: new Set() };
    createInterface({ input: child.stdout }).on('line', (line) => {
      const [kind, id, vi, lba, blocks] = line.split(' ');
      if (kind === 'I') out.issued.set(Number(id), { vi: Number(vi), lba: Number(lba), blocks: Number(blocks) });
      else if (kind === 'W') out.acked.add(Number(id));
      else if (kind === 'DONE') reject(new Error('the writer finished before the kill'));
      if (out.acked.size >= killAfter && child.exitCode === null) child.kill('SIGKILL');
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`writer ended with code ${code} signal ${signal} before the kill`));
      else resolve(out);
    });
  });
}

/** The pre-written pattern on both volumes, healthy; then the members fail (as `dkc disk fail`). */
async function preWrite(dir: string, seed: number): Promise<void> {
  const dkc = await openDkc(writeHoleConfig(), dir, silentLog);
  try {
    VOLUMES.forEach((n) => assert.equal(dkc.drive.group(dkc.ldevByName(n).def.group).state, 'normal'));
    for (const [vi, n] of VOLUMES.entries()) {
      const v = dkc.ldevByName(n);
      for (let lba = 0; lba < v.blockCount; lba += IO_BLOCKS) await v.write(lba, pattern(v.blockSize, lba, IO_BLOCKS, baseGeneration(seed, vi)), { fua: false });
    }
    for (const d of FAILED_DRIVES) {
      (dkc.bays as EmulatedBays).bay(d)!.faults.fail();
      await dkc.driveChanged(d, 'failed');
    }
    assert.deepEqual(['rg5', 'rg6'].map((g) => dkc.drive.group(g).state), ['degraded', 'degraded']);
  } finally {
    await dkc.close();
  }
}

describe('RAID 5/6 write hole: kill -9 while degraded', () => {
  const tmp = tmpDirs();
  const seed = Number(process.env.SEED ?? 20261124);

  for (const killAfter of [150, 500, 1200]) {
    it(`kill -9 after ${killAfter} acknowledged partial-row writes: nothing acknowledged is lost, on the failed members' chunks neither`, async function () {
      this.timeout(120_000);
      const s = seed + killAfter;
      console.log(`      seed ${s} (replay with SEED=${seed})`);
      await killAndVerify(tmp.make('dkc-write-hole'), s, killAfter);
    });
  }
});

async function killAndVerify(dir: string, seed: number, killAfter: number): Promise<void> {
  await preWrite(dir, seed);
  const out = await runAndKill(dir, seed, killAfter);
  const logFile = path.join(ldevDir(dir, writeHoleConfig().name), 'parity-log');
  const logged = await fs.readFile(logFile).then((b) => scanRowLog(b).records.length, () => 0);
  const dkc = await openDegraded(dir);
  try {
    // The writes to each block, oldest first: none overlapped in flight, so issue order is the order.
    const byBlock = VOLUMES.map(() => new Map<number, number[]>());
    for (const [id, w] of out.issued) {
      for (let b = w.lba; b < w.lba + w.blocks; b++) {
        const list = byBlock[w.vi].get(b);
        if (list) list.push(id);
        else byBlock[w.vi].set(b, [id]);
      }
    }
    let inFlight = 0;
    for (const id of out.issued.keys()) if (!out.acked.has(id)) inFlight++;
    let holeBlocks = 0;
    for (const [vi, n] of VOLUMES.entries()) {
      const v = dkc.ldevByName(n);
      const g = dkc.drive.group(v.def.group);
      assert.equal(g.state, 'degraded', `${g.name} after the restart`);
      const failed = new Set(g.members().filter((m) => m.state === 'failed').map((m) => m.slot));
      const rowBytes = g.stripeSizeBytes * (g.diskCount - (g.level === 5 ? 1 : 2));
      // Rows with a write in flight at the kill: where the write hole would be.
      const holeRows = new Set<number>();
      for (const [id, w] of out.issued) {
        if (w.vi !== vi || out.acked.has(id)) continue;
        const at = v.def.offsetBytes + w.lba * v.blockSize;
        for (let r = Math.floor(at / rowBytes); r <= Math.floor((at + w.blocks * v.blockSize - 1) / rowBytes); r++) holeRows.add(r);
      }
      const bs = v.blockSize;
      for (let lba0 = 0; lba0 < v.blockCount; lba0 += IO_BLOCKS) {
        const got = await v.read(lba0, IO_BLOCKS);
        for (let i = 0; i < IO_BLOCKS; i++) {
          const lba = lba0 + i;
          const b = got.subarray(i * bs, (i + 1) * bs);
          const ids = byBlock[vi].get(lba) ?? [];
          const last = ids[ids.length - 1];
          const before = ids.length >= 2 ? writeGeneration(seed, ids[ids.length - 2]) : baseGeneration(seed, vi);
          const where = `${n} LBA ${lba}`;
          if (last === undefined) {
            assert.ok(b.equals(pattern(bs, lba, 1, before)), `${where}: pre-written data lost`);
          } else if (out.acked.has(last)) {
            assert.ok(b.equals(pattern(bs, lba, 1, writeGeneration(seed, last))), `${where}: acknowledged write ${last} lost`);
          } else {
            const ok = b.equals(pattern(bs, lba, 1, before)) || b.equals(pattern(bs, lba, 1, writeGeneration(seed, last)));
            assert.ok(ok, `${where}: neither the data before write ${last} (in flight at the kill) nor its own`);
          }
          const off = v.def.offsetBytes + lba * bs;
          if (holeRows.has(Math.floor(off / rowBytes)) && failed.has(g.mapExtent(off, bs)[0].disk)) holeBlocks++;
        }
      }
    }
    console.log(`      ${out.acked.size} acknowledged, ${inFlight} in flight at the kill, ${logged} parity log records left; ` +
      `${holeBlocks} blocks on failed members in rows being written at the kill read back`);
    assert.ok(inFlight > 0, 'no write was in flight at the kill');
    assert.ok(holeBlocks > 0, 'no failed member chunk of a row being written was checked');
  } finally {
    await dkc.close();
  }
}
