import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { HddDrive, SsdDrive, withTiming } from '../../../emulator/hardware/timing';
import type { Drive } from '../../../firmware/drive';
import { VirtualClock } from '../../../firmware/kernel/clock';
import { Prng } from '../../../firmware/kernel/prng';

const MiB = 1024 * 1024;

/** A drive in memory that completes at once (timing is all the decorator's). */
export class MemoryDrive implements Drive {
  readonly bytes: Buffer;
  constructor(readonly name: string, readonly sizeBytes: number) {
    this.bytes = Buffer.alloc(sizeBytes);
  }
  async readInto(o: number, b: Buffer, bo: number, l: number) { this.bytes.copy(b, bo, o, o + l); }
  async readv(o: number, bufs: Buffer[], _l: number) { for (const b of bufs) { this.bytes.copy(b, 0, o, o + b.length); o += b.length; } }
  async write(o: number, d: Buffer, doff: number, l: number) { d.copy(this.bytes, o, doff, doff + l); }
  async writev(o: number, bufs: Buffer[]) { for (const b of bufs) { b.copy(this.bytes, o); o += b.length; } }
  async flush() {}
  async close() {}
}

/** Run virtual time until p settles. */
async function settle<T>(clock: VirtualClock, p: Promise<T>): Promise<T> {
  let done = false;
  p.then(() => (done = true), () => (done = true));
  while (!done) {
    await clock.yieldToHost();
    if (!done) clock.advanceToNext();
  }
  return p;
}

const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-9, `${a} != ${b}`);

describe('timing: HDD model', () => {
  it('sequential I/O pays transfer only; a seek pays distance and half a turn', async () => {
    const clock = new VirtualClock();
    const d = new HddDrive(new MemoryDrive('h', 100 * MiB), clock);
    const buf = Buffer.alloc(4096);
    await settle(clock, d.readInto(0, buf, 0, 4096));
    close(clock.now(), 4096 / 200_000); // 200 MB/s = 200000 bytes per ms
    const t0 = clock.now();
    await settle(clock, d.readInto(50 * MiB, buf, 0, 4096));
    // half the stroke: 1.5 x 8.5 ms of seek, 60000 / 7200 / 2 ms of rotation, and the transfer
    close(clock.now() - t0, ((50 * MiB - 4096) / (100 * MiB)) * 3 * 8.5 + 30000 / 7200 + 4096 / 200_000);
  });

  it('one request at a time per spindle: concurrent I/Os queue', async () => {
    const clock = new VirtualClock();
    const d = new HddDrive(new MemoryDrive('h', 100 * MiB), clock, { rpm: 15000, averageSeekMs: 4, transferMBps: 100 });
    const ends: number[] = [];
    const io = (o: number) => d.write(o, Buffer.alloc(8192), 0, 8192, false).then(() => ends.push(clock.now()));
    await settle(clock, Promise.all([io(10 * MiB), io(90 * MiB), io(90 * MiB + 8192)]));
    const s1 = (10 * MiB / (100 * MiB)) * 12 + 2 + 8192 / 100_000;
    const s2 = ((80 * MiB - 8192) / (100 * MiB)) * 12 + 2 + 8192 / 100_000;
    const s3 = 8192 / 100_000; // continues where the last one ended
    close(ends[0], s1);
    close(ends[1], s1 + s2);
    close(ends[2], s1 + s2 + s3);
  });

  it('an hour of virtual seeking costs no real waiting', async () => {
    const clock = new VirtualClock();
    const d = withTiming(new MemoryDrive('h', 1024 * MiB), 'hdd', clock);
    const r = new Prng(5);
    const buf = Buffer.alloc(4096);
    const t = performance.now();
    const ios: Promise<void>[] = [];
    for (let i = 0; i < 3000; i++) ios.push(d.readInto(r.int(1024 * MiB / 4096) * 4096, buf, 0, 4096));
    await settle(clock, Promise.all(ios));
    assert.ok(clock.now() > 3000 * 4, `virtual ${clock.now()} ms`);
    assert.ok(performance.now() - t < 5000);
  });
});

describe('timing: SSD model', () => {
  it('latency overlaps on the channels; transfers share the bus', async () => {
    const clock = new VirtualClock();
    const d = new SsdDrive(new MemoryDrive('s', 100 * MiB), clock, { channels: 2 });
    const x = 65536 / 500_000; // 64 KiB at 500 MB/s
    const ends: number[] = [];
    const io = (o: number) => d.readInto(o, Buffer.alloc(65536), 0, 65536).then(() => ends.push(clock.now()));
    await settle(clock, Promise.all([io(0), io(MiB), io(2 * MiB)]));
    close(ends[0], 0.08 + x);
    close(ends[1], 0.08 + 2 * x); // its latency overlapped the first; it waited for the bus
    close(ends[2], Math.max(0.08 + x + 0.08, 0.08 + 2 * x) + x); // a channel once the first is done, then the bus
  });

  it('none is the drive itself', () => {
    const m = new MemoryDrive('m', MiB);
    assert.equal(withTiming(m, 'none', new VirtualClock()), m);
  });
});
