// Every RAID level against a byte model of its logical space and an independently written
// reference layout (which member holds what), through FileDisks behind FaultyDisks.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { FileDisk } from '../../../emulator/hardware/disk';
import { FaultyDisk } from '../../../emulator/hardware/faulty-disk';
import { computePQ } from '../../../firmware/raid/parity';
import { createRaidGroup, raidCapacity, RaidGroupBase } from '../../../firmware/raid';
import type { RaidEvent, RaidGroupDevice, RaidLevel } from '../../../firmware/drive';
import { Prng } from '../../../firmware/kernel/prng';
import { tmpDirs } from '../../helpers/common';

const CHUNK = 4096;
const ROWS = 24;
const DISK_BYTES = ROWS * CHUNK + 1536; // a partial row at the end is not used
const SEED = Number(process.env.SEED ?? 20260301);

interface Rig {
  level: RaidLevel;
  g: RaidGroupDevice & RaidGroupBase;
  disks: FaultyDisk[];
  files: FileDisk[];
  events: RaidEvent[];
  model: Buffer;
  dir: string;
  r: Prng;
}

const opened: FileDisk[] = [];
after(async () => {
  await Promise.all(opened.splice(0).map((d) => d.close()));
});

async function rig(dir: string, level: RaidLevel, n: number, seed: number): Promise<Rig> {
  const files: FileDisk[] = [];
  for (let i = 0; i < n; i++) files.push(await FileDisk.open(path.join(dir, `d${i}.img`), DISK_BYTES, { create: true, name: `rg-${i}` }));
  opened.push(...files);
  const disks = files.map((f) => new FaultyDisk(f));
  const g = createRaidGroup('rg', level, CHUNK, disks);
  const events: RaidEvent[] = [];
  g.onEvent = (e) => events.push(e);
  return { level, g, disks, files, events, model: Buffer.alloc(g.sizeBytes), dir, r: new Prng(seed) };
}

function randomBytes(r: Prng, len: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i + 4 <= len; i += 4) b.writeUInt32LE(r.uint32(), i);
  return b;
}

/** A random whole-sector range of up to three chunks. */
function randomRange(r: Prng, size: number): [number, number] {
  const sectors = size / 512;
  const off = r.int(sectors);
  const len = 1 + r.int(Math.min(3 * (CHUNK / 512), sectors - off));
  return [off * 512, len * 512];
}

/** Writes at random places, in batches of concurrent non-overlapping writes; the model follows. */
async function randomWrites(x: Rig, count: number): Promise<void> {
  for (let done = 0; done < count; ) {
    const batch: Array<[number, Buffer]> = [];
    for (let k = 0; k < 6 && done < count; k++, done++) {
      const [off, len] = randomRange(x.r, x.g.sizeBytes);
      if (batch.some(([o, b]) => off < o + b.length && o < off + len)) continue;
      batch.push([off, randomBytes(x.r, len)]);
    }
    await Promise.all(batch.map(([off, b]) => x.g.write(off, b, 0, b.length, false)));
    for (const [off, b] of batch) b.copy(x.model, off);
  }
}

async function readAll(g: RaidGroupDevice): Promise<Buffer> {
  const buf = Buffer.alloc(g.sizeBytes);
  await g.readInto(0, buf, 0, buf.length);
  return buf;
}

/** Whole read, and random small reads, equal the model. */
async function checkReads(x: Rig, small = 30): Promise<void> {
  assert.ok((await readAll(x.g)).equals(x.model), 'whole read equals the model');
  for (let i = 0; i < small; i++) {
    const [off, len] = randomRange(x.r, x.g.sizeBytes);
    const b = Buffer.alloc(len);
    await x.g.readInto(off, b, 0, len);
    assert.ok(b.equals(x.model.subarray(off, off + len)), `read [${off}, +${len})`);
  }
}

/** What each member must hold for the model, from the level's definition (not from the code under test). */
function referenceLayout(level: RaidLevel, n: number, model: Buffer): Buffer[] {
  const members = Array.from({ length: n }, () => Buffer.alloc(ROWS * CHUNK));
  const chunk = (c: number) => model.subarray(c * CHUNK, (c + 1) * CHUNK);
  for (let row = 0; row < ROWS; row++) {
    const at = row * CHUNK;
    if (level === 0) for (let d = 0; d < n; d++) chunk(row * n + d).copy(members[d], at);
    if (level === 1) for (let d = 0; d < n; d++) chunk(row).copy(members[d], at);
    if (level === 10) {
      for (let pair = 0; pair < n / 2; pair++) for (const d of [2 * pair, 2 * pair + 1]) chunk(row * (n / 2) + pair).copy(members[d], at);
    }
    if (level === 5 || level === 6) {
      const k = level === 5 ? 1 : 2;
      const dc = n - k;
      const pd = n - 1 - (row % n); // left-symmetric: parity walks from the last disk down
      const data = Array.from({ length: dc }, (_x, i) => Buffer.from(chunk(row * dc + i)));
      data.forEach((b, i) => b.copy(members[(pd + k + i) % n], at));
      const p = Buffer.alloc(CHUNK);
      const q = Buffer.alloc(CHUNK);
      computePQ(data, p, level === 6 ? q : null);
      p.copy(members[pd], at);
      if (level === 6) q.copy(members[(pd + 1) % n], at);
    }
  }
  return members;
}

async function checkLayout(x: Rig): Promise<void> {
  const want = referenceLayout(x.level, x.files.length, x.model);
  for (let d = 0; d < x.files.length; d++) {
    const have = Buffer.alloc(ROWS * CHUNK);
    await x.files[d].readInto(0, have, 0, have.length);
    for (let row = 0; row < ROWS; row++) {
      const a = row * CHUNK;
      assert.ok(have.subarray(a, a + CHUNK).equals(want[d].subarray(a, a + CHUNK)), `member ${d} row ${row} matches the reference layout`);
    }
  }
}

/** Put a blank drive into slot and rebuild every row onto it. */
async function replaceAndRebuild(x: Rig, slot: number): Promise<void> {
  const file = path.join(x.dir, `d${slot}.img`);
  await x.files[slot].close();
  const fresh = await FileDisk.recreate(file, DISK_BYTES, `spare-${slot}`);
  opened.push(fresh);
  x.files[slot] = fresh;
  x.disks[slot] = new FaultyDisk(fresh);
  x.g.replaceMember(slot, x.disks[slot]);
  assert.equal(x.g.members()[slot].state, 'rebuilding');
  for (let row = 0; row < x.g.rowCount; row++) await x.g.rebuildRow(slot, row);
  assert.equal(x.g.members()[slot].rebuiltRows, x.g.rowCount);
  x.g.completeRebuild(slot);
}

interface Shape {
  level: RaidLevel;
  n: number;
  /** Slots to fail together that the level survives; and a set it does not. */
  survivable: number[];
  fatal: number[];
}

const SHAPES: Shape[] = [
  { level: 0, n: 3, survivable: [], fatal: [1] },
  { level: 1, n: 2, survivable: [0], fatal: [0, 1] },
  { level: 1, n: 3, survivable: [0, 2], fatal: [0, 1, 2] },
  { level: 10, n: 4, survivable: [1, 2], fatal: [2, 3] },
  { level: 10, n: 6, survivable: [0, 3, 5], fatal: [4, 5] },
  { level: 5, n: 3, survivable: [1], fatal: [0, 2] },
  { level: 5, n: 5, survivable: [3], fatal: [1, 4] },
  { level: 6, n: 4, survivable: [0, 3], fatal: [0, 1, 2] },
  { level: 6, n: 6, survivable: [2, 3], fatal: [1, 3, 5] },
];

describe('RAID groups: capacity and geometry', () => {
  it('raidCapacity is whole rows times the data chunks of a row', () => {
    const disk = 10 * CHUNK + 1000;
    assert.equal(raidCapacity(0, 3, disk, CHUNK), 30 * CHUNK);
    assert.equal(raidCapacity(1, 3, disk, CHUNK), 10 * CHUNK);
    assert.equal(raidCapacity(10, 6, disk, CHUNK), 30 * CHUNK);
    assert.equal(raidCapacity(5, 5, disk, CHUNK), 40 * CHUNK);
    assert.equal(raidCapacity(6, 6, disk, CHUNK), 40 * CHUNK);
  });

  it('RAID 5 is left-symmetric: parity on the last disk first, data starting after it', async () => {
    const x = await rig(tmp.make(), 5, 3, 1);
    assert.equal(x.g.rowCount, ROWS);
    assert.deepEqual(x.g.mapExtent(0, 2 * CHUNK), [{ disk: 0, offset: 0, length: CHUNK }, { disk: 1, offset: 0, length: CHUNK }]);
    // row 1: P on disk 1, data 0 on disk 2, data 1 on disk 0
    assert.deepEqual(x.g.mapExtent(2 * CHUNK, 2 * CHUNK), [{ disk: 2, offset: CHUNK, length: CHUNK }, { disk: 0, offset: CHUNK, length: CHUNK }]);
  });

  it('too few disks for the level is refused', async () => {
    const dir = tmp.make();
    const f = await FileDisk.open(path.join(dir, 'a.img'), DISK_BYTES, { create: true });
    opened.push(f);
    assert.throws(() => createRaidGroup('rg', 5, CHUNK, [f, f]), /RAID 5 needs at least 3 disks/);
    assert.throws(() => createRaidGroup('rg', 6, CHUNK, [f, f, f]), /RAID 6 needs at least 4 disks/);
    assert.throws(() => createRaidGroup('rg', 10, CHUNK, [f, f, f, f, f, f].slice(0, 5)), /RAID 10 needs an even number/);
  });

  const tmp = tmpDirs();
});

for (const shape of SHAPES) {
  const { level, n } = shape;
  describe(`RAID ${level} of ${n} disks`, () => {
    const tmp = tmpDirs();
    const seed = SEED + level * 100 + n;

    it(`random writes read back and land where the layout says (SEED=${seed})`, async () => {
      const x = await rig(tmp.make(), level, n, seed);
      await randomWrites(x, 60);
      await checkReads(x);
      await checkLayout(x);
      assert.equal(x.g.state, 'normal');
      assert.deepEqual(x.events, []);
    });

    it('a full-row write reads nothing back from the members', async () => {
      const x = await rig(tmp.make(), level, n, seed);
      const rowBytes = x.g.sizeBytes / ROWS;
      const data = randomBytes(x.r, rowBytes);
      let reads = 0;
      for (const f of x.files) {
        const orig = f.readInto.bind(f);
        f.readInto = (...a: Parameters<FileDisk['readInto']>) => (reads++, orig(...a));
      }
      await x.g.write(3 * rowBytes, data, 0, rowBytes, false);
      assert.equal(reads, 0);
      data.copy(x.model, 3 * rowBytes);
      await checkLayout(x);
    });

    if (shape.survivable.length > 0) {
      it(`with ${shape.survivable.length} failed: reads are whole, writes go on, a rebuild restores every member`, async () => {
        const x = await rig(tmp.make(), level, n, seed);
        await randomWrites(x, 40);
        for (const s of shape.survivable) x.disks[s].fail();
        await checkReads(x);
        assert.deepEqual(x.g.members().filter((m) => m.state === 'failed').map((m) => m.slot).sort(), [...shape.survivable].sort());
        assert.equal(x.events.filter((e) => e.kind === 'member-failed').length, shape.survivable.length);
        assert.equal(x.g.state, 'degraded');
        await randomWrites(x, 40);
        await checkReads(x);
        for (const s of shape.survivable) await replaceAndRebuild(x, s);
        assert.equal(x.g.state, 'normal');
        await checkLayout(x);
        await checkReads(x);
      });

      it('rebuild under host writes converges', async () => {
        const x = await rig(tmp.make(), level, n, seed + 1);
        await randomWrites(x, 20);
        const slot = shape.survivable[0];
        x.g.failMember(slot, 'pulled (enclosure)');
        assert.deepEqual(x.events, [{ kind: 'member-failed', slot, drive: `rg-${slot}`, reason: 'pulled (enclosure)' }]);
        await x.files[slot].close();
        const fresh = await FileDisk.recreate(path.join(x.dir, `d${slot}.img`), DISK_BYTES, 'spare');
        opened.push(fresh);
        x.files[slot] = fresh;
        x.g.replaceMember(slot, fresh);
        assert.equal(x.g.state, 'rebuilding');
        const rebuild = (async () => {
          for (let row = 0; row < x.g.rowCount; row++) await x.g.rebuildRow(slot, row);
        })();
        await Promise.all([rebuild, randomWrites(x, 60)]);
        x.g.completeRebuild(slot);
        await checkLayout(x);
        await checkReads(x);
      });

      it('a rebuilding member is trusted below rebuiltRows only', async () => {
        const x = await rig(tmp.make(), level, n, seed + 2);
        await randomWrites(x, 30);
        const slot = shape.survivable[0];
        x.g.failMember(slot, 'test');
        await checkReads(x, 0);
        // The same (intact) file back as a spare: its first rows are good, the rest are zeroed.
        const half = ROWS / 2;
        await x.files[slot].write(half * CHUNK, Buffer.alloc((ROWS - half) * CHUNK), 0, (ROWS - half) * CHUNK, false);
        x.g.replaceMember(slot, x.disks[slot], half);
        await checkReads(x, 10);
        for (let row = half; row < ROWS; row++) await x.g.rebuildRow(slot, row);
        x.g.completeRebuild(slot);
        await checkLayout(x);
      });
    }

    it('failure beyond what the level tolerates -> I/O on lost data rejects', async () => {
      const x = await rig(tmp.make(), level, n, seed);
      await randomWrites(x, 20);
      for (const s of shape.fatal) x.disks[s].fail();
      await assert.rejects(readAll(x.g), /rg: /);
      assert.equal(x.g.state, 'failed');
      assert.ok(x.events.some((e) => e.kind === 'unrecoverable'));
      // A failed member is never touched again, even after its drive heals.
      for (const s of shape.fatal) x.disks[s].heal();
      await assert.rejects(readAll(x.g));
      assert.equal(x.g.state, 'failed');
    });

    it('a media error is corrected from redundancy, rewritten and reported (RAID 0: rejected)', async () => {
      const x = await rig(tmp.make(), level, n, seed);
      await randomWrites(x, 30);
      // Logical chunk 5's first data extent: put 3 bad sectors in the middle of it.
      const [ext] = x.g.mapExtent(5 * CHUNK, CHUNK);
      const sector = ext.offset / 512 + 2;
      x.disks[ext.disk].mediaError(sector, 3);
      const b = Buffer.alloc(CHUNK);
      // Read from every copy in turn (mirrors read round robin).
      for (let i = 0; i < n && level !== 0; i++) {
        await x.g.readInto(5 * CHUNK, b, 0, CHUNK);
        assert.ok(b.equals(x.model.subarray(5 * CHUNK, 6 * CHUNK)));
      }
      if (level === 0) {
        await assert.rejects(x.g.readInto(5 * CHUNK, b, 0, CHUNK), /unreadable sectors/);
        assert.equal(x.events[0].kind, 'unrecoverable');
        assert.equal(x.g.state, 'normal', 'a media error does not fail the member');
        return;
      }
      assert.equal(x.disks[ext.disk].mediaErrorCount, 0, 'the bad sectors were rewritten');
      const corrected = x.events.filter((e) => e.kind === 'media-error-corrected');
      assert.equal(corrected.length, 1);
      assert.equal(corrected[0].kind === 'media-error-corrected' && corrected[0].slot, ext.disk);
      assert.equal(x.g.members()[ext.disk].errors, 1);
      assert.equal(x.g.members()[ext.disk].state, 'normal');
      assert.equal(x.g.state, 'normal');
      await checkLayout(x);
    });

    if (level !== 0) {
      it('scrub finds a corrupted redundant chunk and repairs it', async () => {
        const x = await rig(tmp.make(), level, n, seed);
        await randomWrites(x, 40);
        const row = 7;
        for (let r = 0; r < ROWS; r++) assert.equal(await x.g.scrubRow(r), 'consistent');
        // Corrupt the redundancy of the row: the parity (RAID 5/6: P, and Q too), or the second copy.
        const victims = level === 5 ? [n - 1 - (row % n)] : level === 6 ? [n - 1 - (row % n), (n - (row % n)) % n] : [1];
        for (const v of victims) await x.files[v].write(row * CHUNK + 1024, randomBytes(x.r, 512), 0, 512, false);
        assert.equal(await x.g.scrubRow(row), 'repaired');
        assert.deepEqual(x.events, [{ kind: 'scrub-repaired', row }]);
        assert.equal(await x.g.scrubRow(row), 'consistent');
        await checkLayout(x);
        x.disks[victims[0]].fail();
        await x.g.write(row * (x.g.sizeBytes / ROWS), Buffer.alloc(x.g.sizeBytes / ROWS), 0, x.g.sizeBytes / ROWS, false);
        assert.equal(x.g.state, 'degraded');
        assert.equal(await x.g.scrubRow(row), 'skipped');
      });

      it('concurrent overlapping writes to one row keep the redundancy consistent', async () => {
        const x = await rig(tmp.make(), level, n, seed);
        await randomWrites(x, 10);
        const rowBytes = x.g.sizeBytes / ROWS;
        const base = 5 * rowBytes;
        const writes: Array<[number, Buffer]> = [];
        for (let i = 0; i < 24; i++) {
          const off = base + x.r.int(rowBytes / 512) * 512;
          const len = Math.min(512 * (1 + x.r.int(CHUNK / 256)), base + rowBytes - off);
          writes.push([off, randomBytes(x.r, len)]);
        }
        await Promise.all(writes.map(([off, b]) => x.g.write(off, b, 0, b.length, false)));
        for (let r = 0; r < ROWS; r++) assert.equal(await x.g.scrubRow(r), 'consistent', `row ${r}`);
        if (level === 5 || level === 6) {
          // Writes to one row are serialized in the order they were issued: the last one wins.
          for (const [off, b] of writes) b.copy(x.model, off);
          await checkLayout(x);
        }
      });
    }
  });
}
