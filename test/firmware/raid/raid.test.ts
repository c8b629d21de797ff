import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { FileDisk } from '../../../emulator/hardware/disk';
import { Drive, DriveError } from '../../../firmware/drive';
import { MirrorGroup, Raid0Group } from '../../../firmware/raid';
import { pattern, tmpDirs } from '../../helpers/common';

const KiB = 1024;
const MiB = 1024 * KiB;

const opened: FileDisk[] = [];
after(async () => {
  await Promise.all(opened.splice(0).map((d) => d.close()));
});

/** Drives closed after the file's tests (a group does not close its drives). */
async function disks(dir: string, n: number, size: number): Promise<FileDisk[]> {
  const out: FileDisk[] = [];
  for (let i = 0; i < n; i++) out.push(await FileDisk.open(path.join(dir, `d${i}.img`), size, { create: true }));
  opened.push(...out);
  return out;
}

async function fileBytes(file: string, offset: number, length: number): Promise<Buffer> {
  const fh = await fs.open(file, 'r');
  try {
    const buf = Buffer.alloc(length);
    await fh.read(buf, 0, length, offset);
    return buf;
  } finally {
    await fh.close();
  }
}

/** Fault decorator for the mirror tests: every read is a media error, and says it was injected. */
class UnreadableDisk implements Drive {
  reads = 0;
  constructor(private readonly d: Drive) {}
  get name() { return this.d.name; }
  get sizeBytes() { return this.d.sizeBytes; }
  async readInto(o: number, _b: Buffer, _bo: number, l: number): Promise<void> {
    this.reads++;
    throw new DriveError(this.name, 'media', o, l, 'injected read fault', true);
  }
  async readv(o: number, _b: Buffer[], l: number): Promise<void> {
    this.reads++;
    throw new DriveError(this.name, 'media', o, l, 'injected read fault', true);
  }
  write(o: number, b: Buffer, bo: number, l: number, f: boolean) { return this.d.write(o, b, bo, l, f); }
  writev(o: number, b: Buffer[], l: number, f: boolean) { return this.d.writev(o, b, l, f); }
  flush() { return this.d.flush(); }
  close() { return this.d.close(); }
}

describe('RAID 0', () => {
  const tmp = tmpDirs();

  it('capacity is whole stripes times disks', () => {
    assert.equal(Raid0Group.capacity(3, 10 * MiB + 1000 * 512, 64 * KiB), 3 * 10 * MiB + 3 * 7 * 64 * KiB);
  });

  it('maps stripe s to disk s mod n at row s div n', async () => {
    const g = new Raid0Group('rg', 64 * KiB, await disks(tmp.make(), 3, 4 * MiB));
    assert.deepEqual(g.mapExtent(0, 4096), [{ disk: 0, offset: 0, length: 4096 }]);
    assert.deepEqual(g.mapExtent(64 * KiB, 512), [{ disk: 1, offset: 0, length: 512 }]);
    assert.deepEqual(g.mapExtent(3 * 64 * KiB + 1024, 512), [{ disk: 0, offset: 64 * KiB + 1024, length: 512 }]);
    assert.deepEqual(g.mapExtent(64 * KiB - 1024, 64 * KiB + 2048), [
      { disk: 0, offset: 64 * KiB - 1024, length: 1024 },
      { disk: 1, offset: 0, length: 64 * KiB },
      { disk: 2, offset: 0, length: 1024 },
    ]);
    await g.close();
  });

  it('data lands on the member disks where the mapping says, and reads back across stripes', async () => {
    const dir = tmp.make();
    const g = new Raid0Group('rg', 4 * KiB, await disks(dir, 2, 1 * MiB));
    const data = pattern(512, 0, 40, 7); // 20 KiB from offset 2 KiB: 6 chunks over both disks
    await g.write(2 * KiB, data, 0, data.length, false);
    // Logical [2K,4K) -> d0 [2K,4K); [4K,8K) -> d1 [0,4K); [8K,12K) -> d0 [4K,8K); ...
    assert.ok((await fileBytes(path.join(dir, 'd0.img'), 2 * KiB, 2 * KiB)).equals(data.subarray(0, 2 * KiB)));
    assert.ok((await fileBytes(path.join(dir, 'd1.img'), 0, 4 * KiB)).equals(data.subarray(2 * KiB, 6 * KiB)));
    assert.ok((await fileBytes(path.join(dir, 'd0.img'), 4 * KiB, 4 * KiB)).equals(data.subarray(6 * KiB, 10 * KiB)));
    const back = Buffer.alloc(data.length);
    await g.readInto(2 * KiB, back, 0, back.length);
    assert.ok(back.equals(data));
    const small = Buffer.alloc(512);
    await g.readInto(9 * KiB, small, 0, 512);
    assert.ok(small.equals(data.subarray(7 * KiB, 8 * KiB - 512)));
    await g.close();
  });

  it('I/O beyond the group is an assertion', async () => {
    const g = new Raid0Group('rg', 4 * KiB, await disks(tmp.make(), 2, 1 * MiB));
    await assert.rejects(async () => g.readInto(2 * MiB - 512, Buffer.alloc(1024), 0, 1024), /not whole sectors inside/);
    await g.close();
  });
});

describe('RAID 1', () => {
  const tmp = tmpDirs();

  it('writes go to every mirror', async () => {
    const dir = tmp.make();
    const g = new MirrorGroup('rg', 1, 64 * KiB, await disks(dir, 2, 1 * MiB));
    const data = pattern(512, 100, 8, 1);
    await g.write(100 * 512, data, 0, data.length, true);
    for (const f of ['d0.img', 'd1.img']) assert.ok((await fileBytes(path.join(dir, f), 100 * 512, data.length)).equals(data), f);
    assert.deepEqual(g.mapExtent(0, 512), [{ disk: 0, offset: 0, length: 512 }, { disk: 1, offset: 0, length: 512 }]);
    await g.close();
  });

  it('reads come from one mirror, alternating', async () => {
    const dir = tmp.make();
    const [a, b] = await disks(dir, 2, 1 * MiB);
    const fa = new UnreadableDisk(a);
    const g = new MirrorGroup('rg', 1, 64 * KiB, [fa, b]);
    const data = pattern(512, 0, 1, 3);
    await g.write(0, data, 0, 512, false);
    for (let i = 0; i < 4; i++) {
      const buf = Buffer.alloc(512);
      await g.readInto(0, buf, 0, 512);
      assert.ok(buf.equals(data), 'the other mirror answers');
    }
    assert.equal(fa.reads, 2, 'every other read tried the failing mirror first');
    await g.close();
  });

  it('a read fails only when every mirror fails', async () => {
    const [a, b] = await disks(tmp.make(), 2, 1 * MiB);
    const g = new MirrorGroup('rg', 1, 64 * KiB, [new UnreadableDisk(a), new UnreadableDisk(b)]);
    await assert.rejects(g.readInto(0, Buffer.alloc(512), 0, 512), /no readable copy in mirror set 0/);
    await g.close();
  });
});
