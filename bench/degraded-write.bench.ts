// What the parity log (firmware/raid/parity-log.ts, docs/raid.md "Write hole") costs: 4 KiB random
// writes at queue depth 32 on a RAID-5 volume, healthy, then with one member failed (each row
// write then goes through the log: one record and one fdatasync per group commit). Firmware
// level (Ldev.write, no iSCSI), real clock, DKC cache off, a RAID-5 group of four 1 GiB sparse
// disks (64 KiB stripe) in a temp directory removed at the end; the volume is written whole
// first so that reads of the rows hit allocated blocks.
// Run: npm run build && node dist/bench/run.js degraded
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import type { EmulatedBays } from '../emulator/hardware/bays';
import { openDkc } from '../emulator/rack/build';
import { parseConfig } from '../emulator/rack/config';
import { Prng } from '../firmware/kernel/prng';
import type { Ldev } from '../firmware/ldev';

const SEED = 5;
const QUEUE_DEPTH = 32;
const WRITES = 20_000;
const FILL_BLOCKS = 256;

const YAML = `
dkcs:
  - name: db
    serial: 45
    seed: ${SEED}
    cache: { size: 64MiB, mode: off }
    raidGroups:
      - { name: rg5, level: 5, stripeSize: 64KiB, disks: { count: 4, size: 1GiB } }
    volumes:
      - { name: v, group: rg5, size: 3GiB, blockSize: 4096 }
    targets: []
`;

async function randomWrites(v: Ldev, rand: Prng): Promise<number> {
  const buf = Buffer.alloc(v.blockSize, 0x5a);
  let left = WRITES;
  const start = process.hrtime.bigint();
  const worker = async () => {
    while (left-- > 0) await v.write(Math.floor(rand.int(v.blockCount)), buf, { fua: false });
  };
  await Promise.all(Array.from({ length: QUEUE_DEPTH }, worker));
  const s = Number(process.hrtime.bigint() - start) / 1e9;
  return Math.round(WRITES / s);
}

export async function degradedWriteBench(): Promise<void> {
  const r = parseConfig(YAML, 'degraded.yaml');
  if (!r.ok) throw new Error(r.errors.join('\n'));
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dkc-degraded-bench-'));
  const dkc = await openDkc(r.config.dkcs[0], dir, pino({ level: 'silent' }));
  try {
    const v = dkc.ldevByName('v');
    const fill = Buffer.alloc(FILL_BLOCKS * v.blockSize, 0xa5);
    for (let lba = 0; lba < v.blockCount; lba += FILL_BLOCKS) await v.write(lba, fill, { fua: false });
    const rand = new Prng(SEED);
    const healthy = await randomWrites(v, rand);
    (dkc.bays as EmulatedBays).bay('rg5-1')!.faults.fail();
    await dkc.driveChanged('rg5-1', 'failed');
    const degraded = await randomWrites(v, rand);
    console.log(`node ${process.version}; RAID 5 (4 x 1 GiB, 64 KiB stripe), cache off, 4 KiB random writes, qd ${QUEUE_DEPTH}, ${WRITES} each`);
    console.log(`| healthy | ${healthy} IOPS |`);
    console.log(`| degraded (rg5-1 failed) | ${degraded} IOPS |`);
  } finally {
    await dkc.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
