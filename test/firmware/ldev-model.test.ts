import assert from 'node:assert/strict';
import fc from 'fast-check';
import { PAGE_BITS } from '../../firmware/allocation-map';
import type { Dkc } from '../../firmware/dkc';
import { openDkc } from '../../emulator/rack/build';
import { parseConfig } from '../../emulator/rack/config';
import { pattern, silentLog, tmpDirs } from '../helpers/common';

// A RAID 0 group with small stripes under a volume spanning three map pages: requests cross
// stripes, disks and map pages. 512-byte blocks.
const YAML = `
dkcs:
  - name: m
    serial: 3
    raidGroups: [ { name: g, level: 0, stripeSize: 4KiB, disks: { count: 3, size: 32MiB } } ]
    volumes: [ { name: v, group: g, size: 40MiB } ]
    targets: []
`;

type Op =
  | { kind: 'write'; lba: number; blocks: number; fua: boolean }
  | { kind: 'unmap'; lba: number; blocks: number }
  | { kind: 'read'; lba: number; blocks: number }
  | { kind: 'reopen' };

const BLOCKS = 81920;
// Requests cluster around the map page boundaries, where off-by-ones would hide.
const lbaArb = fc.oneof(
  fc.nat({ max: BLOCKS - 1 }),
  fc.integer({ min: PAGE_BITS - 40, max: PAGE_BITS + 40 }),
  fc.integer({ min: 2 * PAGE_BITS - 40, max: 2 * PAGE_BITS + 40 }),
  fc.integer({ min: BLOCKS - 40, max: BLOCKS - 1 }),
);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('write' as const), lba: lbaArb, blocks: fc.integer({ min: 1, max: 80 }), fua: fc.boolean() }),
  fc.record({ kind: fc.constant('unmap' as const), lba: lbaArb, blocks: fc.integer({ min: 1, max: 200 }) }),
  fc.record({ kind: fc.constant('read' as const), lba: lbaArb, blocks: fc.integer({ min: 1, max: 120 }) }),
  fc.constant({ kind: 'reopen' as const }),
);

describe('LDEV against a model (fast-check)', () => {
  const tmp = tmpDirs();
  const seed = Number(process.env.SEED ?? 7);

  it('random writes, unmaps, reads and restarts agree with a block map', async function () {
    this.timeout(120_000);
    const config = parseConfig(YAML, 'model.yaml');
    assert.ok(config.ok);
    const dkcConfig = config.config.dkcs[0];
    console.log(`      seed ${seed} (replay with SEED=${seed})`);
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 25 }), async (ops) => {
        const dir = tmp.make('dkc-model');
        let dkc: Dkc = await openDkc(dkcConfig, dir, silentLog);
        const model = new Map<number, Buffer>(); // LBA -> contents of a mapped block
        try {
          let gen = 0;
          for (const op of ops) {
            if (op.kind === 'reopen') {
              await dkc.close();
              dkc = await openDkc(dkcConfig, dir, silentLog);
              continue;
            }
            const v = dkc.ldevByName('v');
            const blocks = Math.min(op.blocks, BLOCKS - op.lba);
            if (op.kind === 'write') {
              const data = pattern(512, op.lba, blocks, ++gen);
              await v.write(op.lba, data, { fua: op.fua });
              for (let i = 0; i < blocks; i++) model.set(op.lba + i, data.subarray(i * 512, (i + 1) * 512));
            } else if (op.kind === 'unmap') {
              await v.unmap(op.lba, blocks);
              for (let i = 0; i < blocks; i++) model.delete(op.lba + i);
            } else {
              const got = await v.read(op.lba, blocks);
              for (let i = 0; i < blocks; i++) {
                const want = model.get(op.lba + i) ?? Buffer.alloc(512);
                assert.ok(got.subarray(i * 512, (i + 1) * 512).equals(want), `LBA ${op.lba + i}`);
                assert.equal(v.extent(op.lba + i, 1).mapped, model.has(op.lba + i), `extent of LBA ${op.lba + i}`);
              }
            }
          }
          assert.equal(dkc.ldevByName('v').allocatedBlocks(), model.size);
        } finally {
          await dkc.close();
        }
      }),
      { numRuns: 40, seed },
    );
  });
});
