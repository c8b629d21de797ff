import assert from 'node:assert/strict';
import { FaultyDisk } from '../../../emulator/hardware/faulty-disk';
import { DriveError } from '../../../firmware/drive';
import { VirtualClock } from '../../../firmware/kernel/clock';
import { Prng } from '../../../firmware/kernel/prng';
import { MemoryDrive } from './timing.test';

const KiB = 1024;

function driveError(kind: DriveError['kind'], offset?: number, length?: number) {
  return (err: unknown) => {
    assert.ok(err instanceof DriveError, String(err));
    assert.equal(err.kind, kind);
    assert.equal(err.injected, true);
    assert.match(err.message, /injected/);
    if (offset !== undefined) assert.equal(err.offset, offset);
    if (length !== undefined) assert.equal(err.length, length);
    return true;
  };
}

describe('FaultyDisk', () => {
  it('with no fault it is the drive beneath', async () => {
    const m = new MemoryDrive('d0', 64 * KiB);
    const f = new FaultyDisk(m);
    await f.write(512, Buffer.alloc(512, 7), 0, 512, false);
    const b = Buffer.alloc(512);
    await f.readInto(512, b, 0, 512);
    assert.ok(b.equals(Buffer.alloc(512, 7)));
    assert.equal(f.name, 'd0');
    assert.deepEqual([f.health, f.slowMs, f.mediaErrorCount], ['ok', 0, 0]);
  });

  it('fail(): every I/O -> DriveError failed, until heal()', async () => {
    const f = new FaultyDisk(new MemoryDrive('d0', 64 * KiB));
    f.fail();
    assert.equal(f.health, 'failed');
    await assert.rejects(f.readInto(0, Buffer.alloc(512), 0, 512), driveError('failed'));
    await assert.rejects(f.write(0, Buffer.alloc(512), 0, 512, true), driveError('failed'));
    await assert.rejects(f.flush(), driveError('failed'));
    f.insert();
    assert.equal(f.health, 'failed', 'insert does not mend a broken drive');
    f.heal();
    await f.readInto(0, Buffer.alloc(512), 0, 512);
  });

  it('pull(): every I/O -> DriveError missing, until insert()', async () => {
    const f = new FaultyDisk(new MemoryDrive('d0', 64 * KiB));
    f.pull();
    assert.equal(f.health, 'pulled');
    await assert.rejects(f.readv(0, [Buffer.alloc(512)], 512), driveError('missing'));
    f.insert();
    assert.equal(f.health, 'ok');
    await f.readv(0, [Buffer.alloc(512)], 512);
  });

  it('mediaError(): reads touching the sectors -> media error naming the run; a write over them clears it', async () => {
    const f = new FaultyDisk(new MemoryDrive('d0', 64 * KiB));
    f.mediaError(10, 3);
    assert.equal(f.mediaErrorCount, 3);
    await f.readInto(0, Buffer.alloc(5 * KiB), 0, 5 * KiB); // sectors 0-9
    await assert.rejects(f.readInto(4 * KiB, Buffer.alloc(4 * KiB), 0, 4 * KiB), driveError('media', 10 * 512, 3 * 512));
    await f.write(11 * 512, Buffer.alloc(512), 0, 512, false);
    assert.equal(f.mediaErrorCount, 2);
    await assert.rejects(f.readInto(11 * 512, Buffer.alloc(1024), 0, 1024), driveError('media', 12 * 512, 512));
    await f.writev(10 * 512, [Buffer.alloc(512), Buffer.alloc(1024)], 1536, false);
    assert.equal(f.mediaErrorCount, 0);
    await f.readInto(4 * KiB, Buffer.alloc(4 * KiB), 0, 4 * KiB);
  });

  it('slow(): each I/O takes that much longer on the injected clock', async () => {
    const clock = new VirtualClock();
    const f = new FaultyDisk(new MemoryDrive('d0', 64 * KiB), { clock });
    f.slow(25);
    assert.equal(f.slowMs, 25);
    let done = false;
    const p = f.readInto(0, Buffer.alloc(512), 0, 512).then(() => (done = true));
    await clock.yieldToHost();
    assert.equal(done, false);
    clock.advanceTo(24);
    await clock.yieldToHost();
    assert.equal(done, false);
    clock.advanceTo(25);
    await p;
    f.slow(0);
    await f.readInto(0, Buffer.alloc(512), 0, 512);
    assert.equal(clock.now(), 25);
  });

  it('readErrorPercent: seeded random media errors, the same for the same seed', async () => {
    const run = async (seed: number) => {
      const f = new FaultyDisk(new MemoryDrive('d0', 64 * KiB), { readErrorPercent: 20 }, new Prng(seed));
      const out: boolean[] = [];
      for (let i = 0; i < 200; i++) out.push(await f.readInto(0, Buffer.alloc(512), 0, 512).then(() => true, (e) => (driveError('media')(e), false)));
      return out;
    };
    const a = await run(9);
    assert.deepEqual(await run(9), a);
    const failures = a.filter((ok) => !ok).length;
    assert.ok(failures > 20 && failures < 60, `${failures} of 200`);
  });
});
