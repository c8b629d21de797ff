import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { Dkc } from '../../../firmware/dkc';
import { VirtualClock } from '../../../firmware/kernel/clock';
import type { Ldev } from '../../../firmware/ldev';
import { PairRangeError, PairStateError, PairVolumeError, PairNotFoundError, SecondaryProtectedError, PairExistsError } from '../../../firmware/pairs/manager';
import { openDkc } from '../../../emulator/rack/build';
import { ldevDir } from '../../../emulator/rack/layout';
import { parseConfig } from '../../../emulator/rack/config';
import { pattern, silentLog, tmpDirs } from '../../helpers/common';

// issue 4 item 1 and 2: pairs in one DKC (seed 002 first and third embodiments).
const YAML = `
dkcs:
  - name: pd
    serial: 41
    raidGroups:
      - { name: a, level: 0, stripeSize: 4KiB, disks: { count: 2, size: 16MiB } }
      - { name: b, level: 0, stripeSize: 4KiB, disks: { count: 2, size: 16MiB } }
    volumes:
      - { name: p0, group: a, size: 2MiB }
      - { name: s0, group: b, size: 2MiB }
      - { name: p1, group: a, size: 2MiB }
      - { name: s1, group: b, size: 2MiB }
      - { name: odd, group: b, size: 1MiB }
    targets:
      - name: iqn.2026-11.dev.dkc-emu:pd
        portals: ["127.0.0.1:0"]
        luns: [ { lun: 0, volume: p0 } ]
`;
/** 64 KiB of 512-byte blocks: one difference-bitmap unit. */
const UNIT = 128;

class Rig {
  dkc!: Dkc;
  constructor(readonly dir: string) {}

  async open(): Promise<void> {
    const r = parseConfig(YAML, 'pd.yaml');
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
    this.dkc = await openDkc(r.config.dkcs[0], this.dir, silentLog, { clock: new VirtualClock() });
  }

  run<T>(p: Promise<T>): Promise<T> {
    return this.dkc.kernel.runUntil(p);
  }

  v(name: string): Ldev {
    return this.dkc.ldevByName(name);
  }

  write(name: string, lba: number, blocks: number, gen: number): Promise<void> {
    return this.run(this.v(name).write(lba, pattern(512, lba, blocks, gen), { fua: false }));
  }

  read(name: string, lba = 0, blocks = this.v(name).blockCount): Promise<Buffer> {
    return this.run(this.v(name).read(lba, blocks).then((b) => Buffer.from(b)));
  }

  /** Wait (on the virtual clock) until the pair's copy has ended. */
  async copied(id: string): Promise<void> {
    const k = this.dkc.kernel;
    await this.run((async () => {
      for (let i = 0; i < 100_000; i++) {
        const s = this.dkc.pairs.status(id);
        if (s.state !== 'COPY' && s.copy.remainingBlocks === 0) return;
        await k.clock.sleep(10);
      }
      throw new Error(`pair ${id} copy did not end: ${JSON.stringify(this.dkc.pairs.status(id))}`);
    })());
  }

  async same(a: string, b: string, lba = 0, blocks = this.v(a).blockCount): Promise<boolean> {
    return (await this.read(a, lba, blocks)).equals(await this.read(b, lba, blocks));
  }

  /** Let the copier do one unit and then rest (a copy in progress to look at). */
  slow(): void {
    this.dkc.pairs.setCopyOptions({ copyBlocksPerStep: UNIT, paceMs: 1e9 });
  }

  fast(): void {
    this.dkc.pairs.setCopyOptions({ copyBlocksPerStep: 2048, paceMs: 1 });
  }

  async restart(): Promise<void> {
    await this.run(this.dkc.close());
    await this.open();
  }

  close(): Promise<void> {
    return this.run(this.dkc.close());
  }
}

describe('pairs in one DKC (seed 002)', () => {
  const tmp = tmpDirs();
  let rig: Rig;
  beforeEach(async () => {
    rig = new Rig(tmp.make('pairs'));
    await rig.open();
  });
  afterEach(async () => rig.close());

  async function paired(id = 'x', p = 0, s = 1, group?: string): Promise<void> {
    const st = await rig.run(rig.dkc.pairs.create(p, s, { id, group }));
    assert.equal(st.state, 'COPY');
    await rig.copied(id);
    assert.equal(rig.dkc.pairs.status(id).state, 'PAIR');
  }

  it('create: COPY with progress, then PAIR with the secondary equal to the primary', async () => {
    await rig.write('p0', 0, 64, 1);
    await rig.write('p0', 3000, 40, 2);
    await rig.write('s0', 100, 8, 9); // old content of the secondary is overwritten or unmapped
    rig.slow();
    const st = await rig.run(rig.dkc.pairs.create(0, 1, { id: 'x' }));
    assert.equal(st.state, 'COPY');
    assert.equal(st.copy.totalBlocks, 4096);
    await rig.run(rig.dkc.kernel.clock.sleep(10));
    const mid = rig.dkc.pairs.status('x');
    assert.equal(mid.state, 'COPY');
    assert.ok(mid.copy.percent > 0 && mid.copy.percent < 100, `progress ${mid.copy.percent}%`);
    assert.equal(rig.dkc.pairs.volumeState(0), 'COPY');
    assert.match(rig.dkc.status().tasks.find((t) => t.name === 'pair-copy')?.detail ?? '', /pair x COPY forward/);
    rig.fast();
    await rig.copied('x');
    const s = rig.dkc.pairs.status('x');
    assert.equal(s.state, 'PAIR');
    assert.equal(s.copy.percent, 100);
    assert.equal(s.differenceBlocks, 0);
    assert.ok(await rig.same('p0', 's0'));
    assert.equal(rig.v('s0').allocatedBlocks(), rig.v('p0').allocatedBlocks(), 'a thin secondary stays thin');
    assert.equal(rig.dkc.pairs.volumeState(4), 'SMPL');
  });

  it('PAIR: host writes and unmaps are on the secondary when acknowledged', async () => {
    await paired();
    await rig.write('p0', 500, 300, 3);
    await rig.run(rig.v('p0').unmap(600, 10));
    assert.ok(await rig.same('p0', 's0'));
    assert.equal(rig.v('s0').extent(600, 10).mapped, false);
  });

  it('PAIR: host write to the secondary -> SecondaryProtectedError', async () => {
    await paired();
    await assert.rejects(rig.write('s0', 0, 1, 1), SecondaryProtectedError);
  });

  it('split freezes the secondary; differences are recorded per unit; resync copies only those', async () => {
    await paired();
    await rig.write('p0', 10, 5, 1); // acknowledged before the split: on the secondary
    await rig.run(rig.dkc.pairs.split('x'));
    assert.equal(rig.dkc.pairs.status('x').state, 'PSUS');
    const frozen = await rig.read('s0');
    await rig.write('p0', 20, 5, 2); // after: not on the secondary
    await rig.write('p0', 1000, 200, 3);
    assert.ok((await rig.read('s0')).equals(frozen));
    assert.ok((await rig.read('s0', 10, 5)).equals(pattern(512, 10, 5, 1)));
    // units 0, 7, 8, 9 (1000..1199 spans 7..9)
    assert.equal(rig.dkc.pairs.status('x').differenceBlocks, 4 * UNIT);
    // the host may write the split secondary; that unit differs too
    await rig.write('s0', 2 * UNIT, 1, 4);
    assert.equal(rig.dkc.pairs.status('x').differenceBlocks, 5 * UNIT);
    const st = await rig.run(rig.dkc.pairs.resync('x'));
    assert.equal(st.state, 'COPY');
    assert.equal(st.copy.totalBlocks, 5 * UNIT, 'only the units that differ are copied');
    await rig.copied('x');
    assert.equal(rig.dkc.pairs.status('x').state, 'PAIR');
    assert.ok(await rig.same('p0', 's0'));
  });

  it('a write under way at the split is either wholly mirrored or recorded; the next one is not mirrored', async () => {
    await paired();
    const w = rig.v('p0').write(5, pattern(512, 5, 3, 7), { fua: false });
    const sp = rig.dkc.pairs.split('x');
    await rig.run(Promise.all([w, sp]));
    const onS = (await rig.read('s0', 5, 3)).equals(pattern(512, 5, 3, 7));
    const marked = rig.dkc.pairs.status('x').differenceBlocks > 0;
    assert.ok(onS !== marked || onS, 'in flight at the split: on the secondary, or marked in the difference bitmap');
    await rig.run(rig.dkc.pairs.resync('x'));
    await rig.copied('x');
    assert.ok(await rig.same('p0', 's0'));
  });

  it('reverse resync restores the primary from the secondary', async () => {
    await rig.write('p0', 0, 100, 1);
    await paired();
    await rig.run(rig.dkc.pairs.split('x'));
    const backup = await rig.read('s0');
    await rig.write('p0', 50, 300, 2); // the application damages the primary
    const rev = await rig.run(rig.dkc.pairs.reverseResync('x'));
    assert.equal(rev.direction, 'reverse');
    assert.equal(rev.state, 'COPY');
    await rig.copied('x');
    const s = rig.dkc.pairs.status('x');
    assert.equal(s.state, 'PAIR');
    assert.equal(s.direction, 'forward');
    assert.ok((await rig.read('p0')).equals(backup));
    assert.ok(await rig.same('p0', 's0'));
  });

  it('area split: only the listed ranges are frozen; mirroring goes on elsewhere; resync by ranges', async () => {
    await paired();
    await rig.run(rig.dkc.pairs.splitAreas('x', [{ lba: 130, blocks: 10 }, { lba: 1000, blocks: 300 }]));
    const st = rig.dkc.pairs.status('x');
    assert.equal(st.state, 'PSUS');
    // rounded out to whole units (seed 002 [0042]: one bit per n blocks)
    assert.deepEqual(st.splitAreas, [{ lba: 128, blocks: 128 }, { lba: 896, blocks: 512 }]);
    await rig.write('p0', 120, 20, 1); // straddles unit 0 (mirrored) and unit 1 (split)
    await rig.write('p0', 2000, 4, 2); // mirrored
    await rig.write('p0', 1100, 4, 3); // split
    assert.ok((await rig.read('s0', 120, 8)).equals(pattern(512, 120, 8, 1)));
    assert.ok(!(await rig.read('s0', 128, 12)).equals(pattern(512, 128, 12, 1)));
    assert.ok(await rig.same('p0', 's0', 2000, 4));
    assert.ok(!(await rig.same('p0', 's0', 1100, 4)));
    await assert.rejects(rig.write('s0', 0, 1, 9), SecondaryProtectedError); // mirrored part
    // resync the first area only
    await rig.run(rig.dkc.pairs.resync('x', [{ lba: 130, blocks: 1 }]));
    await rig.copied('x');
    const after1 = rig.dkc.pairs.status('x');
    assert.equal(after1.state, 'PSUS');
    assert.deepEqual(after1.splitAreas, [{ lba: 896, blocks: 512 }]);
    assert.ok(await rig.same('p0', 's0', 0, 896));
    assert.ok(!(await rig.same('p0', 's0', 1100, 4)));
    // and the rest
    await rig.run(rig.dkc.pairs.resync('x', [{ lba: 896, blocks: 512 }]));
    await rig.copied('x');
    assert.equal(rig.dkc.pairs.status('x').state, 'PAIR');
    assert.ok(await rig.same('p0', 's0'));
  });

  it('consistency group: pairs split at one instant', async () => {
    await paired('x', 0, 1, 'cg');
    await paired('y', 2, 3, 'cg');
    await rig.write('p0', 0, 1, 1);
    await rig.write('p1', 0, 1, 1);
    await rig.run(rig.dkc.pairs.splitGroup('cg'));
    assert.deepEqual(rig.dkc.pairs.list().map((s) => s.state), ['PSUS', 'PSUS']);
    assert.ok(await rig.same('p0', 's0'));
    assert.ok(await rig.same('p1', 's1'));
  });

  it('a secondary write failure suspends the pair (PSUE); the host write still succeeds; resync is a full copy', async () => {
    await rig.write('p0', 0, 8, 1);
    await paired();
    const s0 = rig.v('s0');
    const real = s0.internalWrite.bind(s0);
    s0.internalWrite = () => Promise.reject(new Error('injected: secondary write fails'));
    await rig.write('p0', 300, 4, 2);
    const st = rig.dkc.pairs.status('x');
    assert.equal(st.state, 'PSUE');
    assert.match(st.reason ?? '', /injected/);
    assert.equal(st.differenceBlocks, 4096);
    await assert.rejects(rig.run(rig.dkc.pairs.split('x')), PairStateError);
    s0.internalWrite = real;
    assert.equal((await rig.run(rig.dkc.pairs.resync('x'))).copy.totalBlocks, 4096);
    await rig.copied('x');
    assert.equal(rig.dkc.pairs.status('x').state, 'PAIR');
    assert.ok(await rig.same('p0', 's0'));
  });

  it('delete: both volumes SMPL, writes no longer mirrored', async () => {
    await paired();
    await rig.run(rig.dkc.pairs.delete('x'));
    assert.equal(rig.dkc.pairs.volumeState(0), 'SMPL');
    await rig.write('p0', 0, 1, 5);
    assert.ok(!(await rig.same('p0', 's0', 0, 1)));
    await rig.write('s0', 0, 1, 6); // writable again
    assert.throws(() => rig.dkc.pairs.status('x'), PairNotFoundError);
    await paired('x'); // the id can be used again
  });

  it('wrong state and bad arguments -> typed errors', async () => {
    const pairs = rig.dkc.pairs;
    await assert.rejects(rig.run(pairs.create(0, 0)), PairVolumeError);
    await assert.rejects(rig.run(pairs.create(0, 4)), PairVolumeError); // sizes differ
    await assert.rejects(rig.run(pairs.create(0, 99)), PairVolumeError);
    await assert.rejects(rig.run(pairs.split('nope')), PairNotFoundError);
    rig.slow();
    await rig.run(pairs.create(0, 1, { id: 'x' }));
    await assert.rejects(rig.run(pairs.create(2, 3, { id: 'x' })), PairExistsError);
    await assert.rejects(rig.run(pairs.create(1, 2)), PairVolumeError); // already paired
    // COPY (a whole split is allowed: seed 004, tested below)
    await assert.rejects(rig.run(pairs.splitAreas('x', [{ lba: 0, blocks: 1 }])), PairStateError);
    await assert.rejects(rig.run(pairs.resync('x')), PairStateError);
    await assert.rejects(rig.write('s0', 0, 1, 1), SecondaryProtectedError);
    rig.fast();
    await rig.copied('x');
    // PAIR
    await assert.rejects(rig.run(pairs.resync('x')), (e: PairStateError) => e.state === 'PAIR' && e.code === 'STATE');
    await assert.rejects(rig.run(pairs.reverseResync('x')), PairStateError);
    await assert.rejects(rig.run(pairs.splitAreas('x', [{ lba: 4090, blocks: 10 }])), PairRangeError);
    await assert.rejects(rig.run(pairs.splitAreas('x', [{ lba: 0, blocks: 0 }])), PairRangeError);
    await assert.rejects(rig.run(pairs.splitAreas('x', [])), PairRangeError);
    // PSUS
    await rig.run(pairs.split('x'));
    await assert.rejects(rig.run(pairs.split('x')), (e: PairStateError) => e.state === 'PSUS');
    await rig.run(pairs.resync('x', [{ lba: 0, blocks: 1 }]));
    await assert.rejects(rig.run(pairs.reverseResync('x')), PairStateError); // no longer whole-volume
    // COPY of a restore: no split
    await rig.run(pairs.resync('x'));
    await rig.copied('x');
    await rig.write('p0', 0, 4096, 1);
    await rig.run(pairs.split('x'));
    await rig.write('s0', 0, 4096, 2);
    rig.slow();
    await rig.run(pairs.reverseResync('x'));
    await assert.rejects(rig.run(pairs.split('x')), (e: PairStateError) => e instanceof PairStateError && e.state === 'COPY');
  });

  it('state, bitmaps and progress survive a restart', async () => {
    await paired('x', 0, 1);
    await rig.write('p1', 0, 4096, 5); // data in every unit: each copier step moves one
    rig.dkc.pairs.setCopyOptions({ copyBlocksPerStep: UNIT, paceMs: 10 });
    await rig.run(rig.dkc.pairs.create(2, 3, { id: 'y' })); // restart in the middle of COPY
    await rig.run(rig.dkc.kernel.clock.sleep(250));
    const yBefore = rig.dkc.pairs.status('y').copy;
    // more than one default step (2048 blocks) done, so a copy started over could not look like this
    assert.ok(yBefore.remainingBlocks < 2048 && yBefore.remainingBlocks > 0, JSON.stringify(yBefore));
    await rig.run(rig.dkc.pairs.split('x'));
    await rig.write('p0', 700, 3, 1);
    await rig.restart();
    const y = rig.dkc.pairs.status('y'); // before the copier has had virtual time to move
    assert.equal(y.state, 'COPY');
    assert.equal(y.copy.totalBlocks, 4096);
    assert.ok(y.copy.remainingBlocks <= yBefore.remainingBlocks, `the copy resumes where it was: ${JSON.stringify(y.copy)}`);
    const x = rig.dkc.pairs.status('x');
    assert.equal(x.state, 'PSUS');
    assert.equal(x.differenceBlocks, UNIT, 'the clean bitmap is trusted: only the written unit');
    assert.ok(!(await rig.same('p0', 's0', 700, 3)));
    await rig.copied('y');
    assert.equal(rig.dkc.pairs.status('y').state, 'PAIR');
    assert.ok(await rig.same('p1', 's1'));
    rig.slow();
    assert.equal((await rig.run(rig.dkc.pairs.resync('x'))).copy.totalBlocks, UNIT);
    await rig.restart();
    await rig.copied('x');
    assert.ok(await rig.same('p0', 's0'));
  });
  it('host writes concurrent with the copier: the secondary ends identical', async () => {
    await rig.write('p0', 0, 4096, 1);
    rig.dkc.pairs.setCopyOptions({ copyBlocksPerStep: UNIT, paceMs: 1 });
    await rig.run(rig.dkc.pairs.create(0, 1, { id: 'x' }));
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 40; i++) {
      const lba = (i * 997) % 4000;
      writes.push(rig.v('p0').write(lba, pattern(512, lba, 50, 100 + i), { fua: false }));
      if (i % 8 === 0) writes.push(rig.dkc.kernel.clock.sleep(1));
    }
    await rig.run(Promise.all(writes));
    await rig.copied('x');
    assert.ok(await rig.same('p0', 's0'));
  });

  it('a split pair keeps its difference bitmap file dirty until saved (seed 002 Fig. 6 step 64 before the ack)', async () => {
    await paired();
    await rig.run(rig.dkc.pairs.split('x'));
    const file = path.join(ldevDir(rig.dir, 'pd'), 'pairs', 'pair-x.bitmap');
    const stateOf = async () => (await fs.readFile(file)).readUInt32LE(12);
    assert.equal(await stateOf(), 1, 'clean after the split');
    await rig.write('p0', 5, 1, 1);
    assert.equal(await stateOf(), 2, 'dirty once a write is acknowledged');
    await rig.restart();
    assert.equal(await stateOf(), 1, 'clean after a power-off');
    assert.equal(rig.dkc.pairs.status('x').differenceBlocks, UNIT);
    // once quiet, the copier's idle pass saves it clean again
    await rig.write('p0', 5, 1, 2);
    assert.equal(await stateOf(), 2);
    await rig.run(rig.dkc.kernel.clock.sleep(2500));
    assert.equal(await stateOf(), 1, 'saved clean when idle');
  });

  it('PAIR: a duplex write marks the bitmap file dirty before the ack (a crash then means a full copy)', async () => {
    await paired();
    const file = path.join(ldevDir(rig.dir, 'pd'), 'pairs', 'pair-x.bitmap');
    await rig.run(rig.dkc.kernel.clock.sleep(2500));
    assert.equal((await fs.readFile(file)).readUInt32LE(12), 1);
    await rig.write('p0', 5, 1, 1);
    assert.equal((await fs.readFile(file)).readUInt32LE(12), 2);
  });

  it('an untrusted difference bitmap (lost in a crash) means a full copy', async () => {
    await paired('x', 0, 1);
    await paired('y', 2, 3);
    await rig.run(rig.dkc.pairs.split('y'));
    await rig.run(rig.dkc.close());
    const dir = path.join(ldevDir(rig.dir, 'pd'), 'pairs');
    await fs.unlink(path.join(dir, 'pair-x.bitmap'));
    await fs.writeFile(path.join(dir, 'pair-y.bitmap'), 'torn');
    await rig.open();
    const x = rig.dkc.pairs.status('x');
    assert.equal(x.state, 'COPY', 'a duplex pair whose bitmap is lost copies everything');
    assert.equal(x.copy.totalBlocks, 4096);
    const y = rig.dkc.pairs.status('y');
    assert.equal(y.state, 'PSUS');
    assert.equal(y.differenceBlocks, 4096);
    await rig.copied('x');
    assert.ok(await rig.same('p0', 's0'));
    assert.equal((await rig.run(rig.dkc.pairs.resync('y'))).copy.totalBlocks, 4096);
    await rig.copied('y');
    assert.ok(await rig.same('p1', 's1'));
  });
  it('an empty volume copies without a pace per chunk: unmapped chunks run through in one step', async () => {
    await rig.write('p0', 10 * UNIT + 5, 8, 1);
    await rig.write('p0', 31 * UNIT, 8, 1);
    rig.dkc.pairs.setCopyOptions({ copyBlocksPerStep: UNIT, paceMs: 1000 });
    await rig.run(rig.dkc.pairs.create(0, 1, { id: 'x' }));
    await rig.run(rig.dkc.kernel.clock.sleep(10)); // well within the first pace
    const st = rig.dkc.pairs.status('x');
    assert.equal(st.copiedBlocks, 11 * UNIT, 'the first step: ten unmapped units, then the one with data');
    assert.ok(await rig.same('p0', 's0', 0, 11 * UNIT));
    await rig.run(rig.dkc.kernel.clock.sleep(2000)); // the second step copies the rest, the third ends the copy
    assert.equal(rig.dkc.pairs.status('x').state, 'PAIR');
  });

  /** A pair in the middle of its initial copy of p0 (written whole with generation 1). */
  async function copying(): Promise<void> {
    await rig.write('p0', 0, 4096, 1);
    rig.slow();
    await rig.run(rig.dkc.pairs.create(0, 1, { id: 'x' }));
    await rig.run(rig.dkc.kernel.clock.sleep(10));
    const st = rig.dkc.pairs.status('x');
    assert.ok(st.state === 'COPY' && st.copy.remainingBlocks > 0 && st.copy.remainingBlocks < 4096, JSON.stringify(st.copy));
  }

  it('split during a copy (seed 004): done at once; the secondary is the split instant while the primary changes', async () => {
    await copying();
    await rig.run(rig.dkc.pairs.split('x'));
    const st = rig.dkc.pairs.status('x');
    assert.equal(st.state, 'PSUS');
    assert.ok(st.imagePending && st.copy.remainingBlocks > 0, `the image is still being copied: ${JSON.stringify(st)}`);
    await rig.write('p0', 30 * UNIT, 2 * UNIT, 2); // units not yet copied: their old data goes first
    await rig.write('p0', 0, 8, 2); // a unit copied before the split
    assert.ok((await rig.read('s0', 30 * UNIT, UNIT)).equals(pattern(512, 30 * UNIT, UNIT, 1)), 'a unit the copy had not reached');
    await rig.write('s0', 20 * UNIT + 3, 1, 3); // the secondary is writable: the rest of that unit is the split's
    assert.ok((await rig.read('s0', 20 * UNIT, 3)).equals(pattern(512, 20 * UNIT, 3, 1)));
    rig.fast();
    await rig.run(rig.dkc.kernel.clock.sleep(100));
    assert.equal(rig.dkc.pairs.status('x').imagePending, false, 'the copier completed the image');
    const want = pattern(512, 0, 4096, 1);
    pattern(512, 20 * UNIT + 3, 1, 3).copy(want, (20 * UNIT + 3) * 512);
    assert.ok((await rig.read('s0')).equals(want), 'the secondary holds the split instant (and its own write)');
    await rig.run(rig.dkc.pairs.resync('x'));
    await rig.copied('x');
    assert.ok(await rig.same('p0', 's0'));
  });

  it('split during a copy survives a restart; a lost split image bitmap makes the pair PSUE', async () => {
    await copying();
    await rig.run(rig.dkc.pairs.split('x'));
    await rig.write('p0', 0, 4096, 2); // every unit: those not yet copied go to the secondary first
    await rig.restart();
    const st = rig.dkc.pairs.status('x');
    assert.equal(st.state, 'PSUS');
    assert.ok((await rig.read('s0')).equals(pattern(512, 0, 4096, 1)));
    // Again, and lose the image file while powered off.
    await rig.run(rig.dkc.pairs.resync('x'));
    await rig.copied('x');
    await rig.run(rig.dkc.pairs.delete('x'));
    await copying();
    await rig.run(rig.dkc.pairs.split('x'));
    await rig.close();
    const files = (await fs.readdir(rig.dir, { recursive: true })).filter((f) => f.endsWith('pair-x-image.bitmap'));
    assert.equal(files.length, 1, `one image file: ${files}`);
    await fs.rm(path.join(rig.dir, files[0]));
    await rig.open();
    const lost = rig.dkc.pairs.status('x');
    assert.equal(lost.state, 'PSUE');
    assert.match(lost.reason ?? '', /split image bitmap lost/);
    await rig.run(rig.dkc.pairs.resync('x')); // from PSUE: a full copy
    await rig.copied('x');
    assert.ok(await rig.same('p0', 's0'));
  });

  it('a copier chunk still landing at a split does not land over a later secondary write', async () => {
    await rig.write('p0', 0, 4096, 1);
    const s0 = rig.v('s0');
    const real = s0.internalWrite.bind(s0);
    let held = false;
    // The copier's write of unit 5 to the secondary takes 300 ms; the split comes while it is under way.
    s0.internalWrite = (lba, data, opts) => {
      if (held || lba !== 5 * UNIT) return real(lba, data, opts);
      held = true;
      return rig.dkc.kernel.clock.sleep(300).then(() => real(lba, data, opts));
    };
    rig.dkc.pairs.setCopyOptions({ copyBlocksPerStep: UNIT, paceMs: 1 });
    await rig.run(rig.dkc.pairs.create(0, 1, { id: 'x' }));
    await rig.run(rig.dkc.kernel.clock.sleep(50));
    assert.ok(held, 'the copier is writing unit 5');
    await rig.run(rig.dkc.pairs.split('x'));
    await rig.write('s0', 5 * UNIT, 16, 2);
    await rig.run(rig.dkc.kernel.clock.sleep(500));
    s0.internalWrite = real;
    assert.ok((await rig.read('s0', 5 * UNIT, 16)).equals(pattern(512, 5 * UNIT, 16, 2)), 'the acknowledged secondary write stays');
  });

  it('the copier serves pairs round robin: two initial copies progress together', async () => {
    await rig.write('p0', 0, 4096, 1);
    await rig.write('p1', 0, 4096, 2);
    rig.dkc.pairs.setCopyOptions({ copyBlocksPerStep: UNIT, paceMs: 1 });
    await rig.run(rig.dkc.pairs.create(0, 1, { id: 'x' }));
    await rig.run(rig.dkc.pairs.create(2, 3, { id: 'y' }));
    await rig.run(rig.dkc.kernel.clock.sleep(6));
    const [x, y] = [rig.dkc.pairs.status('x'), rig.dkc.pairs.status('y')];
    assert.ok(x.copiedBlocks > 0 && y.copiedBlocks > 0, `both copying: x ${x.copiedBlocks}, y ${y.copiedBlocks} blocks`);
    assert.ok(Math.abs(x.copiedBlocks - y.copiedBlocks) <= UNIT, `in turns: x ${x.copiedBlocks}, y ${y.copiedBlocks}`);
    await rig.copied('x');
    await rig.copied('y');
  });

  it('a secondary write under way when a resync starts lands before its unit is copied', async () => {
    await paired();
    await rig.write('p0', 0, 4096, 1);
    await rig.run(rig.dkc.pairs.split('x'));
    const s0 = rig.v('s0');
    const hook = s0.writeHook!;
    // The secondary's own write takes 50 ms: the resync is asked for while it is under way.
    s0.writeHook = (ldev, u, local) => hook(ldev, u, () => rig.dkc.kernel.clock.sleep(50).then(local));
    const w = s0.write(256, pattern(512, 256, 8, 2), { fua: false });
    await rig.run(Promise.all([w, rig.dkc.pairs.resync('x')]));
    s0.writeHook = hook;
    await rig.copied('x');
    assert.equal(rig.dkc.pairs.status('x').state, 'PAIR');
    assert.ok(await rig.same('p0', 's0'), 'the copy of the unit came after the secondary write');
  });

  it('a host write to the blocks the copier is copying waits for it (never overwritten by older data)', async () => {
    await rig.write('p0', 0, 4096, 1);
    rig.dkc.pairs.setCopyOptions({ copyBlocksPerStep: UNIT, paceMs: 1 });
    const s0 = rig.v('s0');
    const real = s0.internalWrite.bind(s0);
    const hostWrites: Promise<void>[] = [];
    let gen = 100;
    // While the copier holds a chunk's old data on its way to the secondary, the host writes there.
    s0.internalWrite = (lba, data, opts) => {
      if (data.length === UNIT * 512 && hostWrites.length < 16) {
        hostWrites.push(rig.v('p0').write(lba + 10, pattern(512, lba + 10, 20, gen), { fua: false }));
        gen++;
        return rig.dkc.kernel.clock.sleep(5).then(() => real(lba, data, opts));
      }
      return real(lba, data, opts);
    };
    await rig.run(rig.dkc.pairs.create(0, 1, { id: 'x' }));
    await rig.copied('x');
    await rig.run(Promise.all(hostWrites));
    s0.internalWrite = real;
    assert.equal(hostWrites.length, 16);
    assert.ok(await rig.same('p0', 's0'));
  });
});
