import assert from 'node:assert/strict';
import { MERGE_BYTES_MAX, WriteIo, WriteMerger } from '../../../emulator/hardware/write-merge';

interface Issued {
  offset: number;
  length: number;
  buffers: Buffer[];
  done(err?: Error): void;
}

/** A disk whose writes complete when the test says so. */
class ControlledIo implements WriteIo {
  readonly issued: Issued[] = [];
  syncs = 0;

  write(offset: number, data: Buffer, dataOffset: number, length: number): Promise<void> {
    return this.writev(offset, [data.subarray(dataOffset, dataOffset + length)], length);
  }

  writev(offset: number, buffers: Buffer[], length: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.issued.push({ offset, length, buffers, done: (err) => (err ? reject(err) : resolve()) });
    });
  }

  datasync(): Promise<void> {
    this.syncs++;
    return Promise.resolve();
  }
}

const tick = () => new Promise<void>((r) => setImmediate(r));

function track(p: Promise<void>): { state: 'pending' | 'ok' | 'failed' } {
  const t = { state: 'pending' as 'pending' | 'ok' | 'failed' };
  p.then(() => (t.state = 'ok'), () => (t.state = 'failed'));
  return t;
}

describe('write merging (per disk)', () => {
  it('writes queued behind one in flight leave as one pwritev, and each is acknowledged', async () => {
    const io = new ControlledIo();
    const m = new WriteMerger(io);
    const first = track(m.write(0, Buffer.alloc(4096, 1), 0, 4096, false));
    const rest = Array.from({ length: 31 }, (_x, i) => track(m.write((i + 1) * 4096, Buffer.alloc(4096, i + 2), 0, 4096, false)));
    assert.equal(io.issued.length, 1, 'only the first went out');
    io.issued[0].done();
    await tick();
    assert.equal(first.state, 'ok');
    assert.equal(io.issued.length, 2);
    const merged = io.issued[1];
    assert.deepEqual([merged.offset, merged.length, merged.buffers.length], [4096, 31 * 4096, 31]);
    assert.ok(merged.buffers.every((b, i) => b[0] === i + 2), 'pieces in disk order');
    assert.ok(rest.every((t) => t.state === 'pending'), 'nothing acknowledged before the disk has it');
    merged.done();
    await tick();
    assert.ok(rest.every((t) => t.state === 'ok'));
    assert.deepEqual(m.stats, { parts: 32, runs: 2 });
  });

  it('a merged write that fails fails every part it carries, and only those', async () => {
    const io = new ControlledIo();
    const m = new WriteMerger(io);
    const head = track(m.write(0, Buffer.alloc(512), 0, 512, false));
    const a = [track(m.write(4096, Buffer.alloc(512), 0, 512, false)), track(m.write(4608, Buffer.alloc(512), 0, 512, false))];
    const b = track(m.write(65536, Buffer.alloc(512), 0, 512, false));
    io.issued[0].done();
    await tick();
    assert.equal(io.issued.length, 3, 'two runs in the second batch');
    io.issued[1].done(new Error('injected EIO'));
    io.issued[2].done();
    await tick();
    assert.equal(head.state, 'ok');
    assert.deepEqual(a.map((t) => t.state), ['failed', 'failed']);
    assert.equal(b.state, 'ok');
  });

  it('overlapping writes never share a batch: they reach the disk in submission order', async () => {
    const io = new ControlledIo();
    const m = new WriteMerger(io);
    void m.write(0, Buffer.alloc(512, 1), 0, 512, false);
    void m.write(8192, Buffer.alloc(1024, 2), 0, 1024, false);
    void m.write(8704, Buffer.alloc(512, 3), 0, 512, false); // overlaps the previous one
    io.issued[0].done();
    await tick();
    assert.equal(io.issued.length, 2);
    assert.deepEqual([io.issued[1].offset, io.issued[1].length], [8192, 1024]);
    io.issued[1].done();
    await tick();
    assert.deepEqual([io.issued[2].offset, io.issued[2].length, io.issued[2].buffers[0][0]], [8704, 512, 3]);
  });

  it('merging is bounded by MERGE_BYTES_MAX; writes arriving in reverse order prepend', async () => {
    const io = new ControlledIo();
    const m = new WriteMerger(io);
    void m.write(1 << 30, Buffer.alloc(512), 0, 512, false);
    const piece = 128 * 1024;
    const n = (2 * MERGE_BYTES_MAX) / piece;
    for (let i = n - 1; i >= 0; i--) void m.write(i * piece, Buffer.alloc(piece), 0, piece, false);
    io.issued[0].done();
    await tick();
    const runs = io.issued.slice(1);
    assert.deepEqual(runs.map((r) => [r.offset, r.length]), [[MERGE_BYTES_MAX, MERGE_BYTES_MAX], [0, MERGE_BYTES_MAX]]);
  });

  it('FUA parts wait for a datasync after their write; others in the run do not', async () => {
    const io = new ControlledIo();
    const m = new WriteMerger(io);
    void m.write(1 << 20, Buffer.alloc(512), 0, 512, false);
    const plain = m.write(0, Buffer.alloc(512), 0, 512, false);
    const fua = m.write(512, Buffer.alloc(512), 0, 512, true);
    io.issued[0].done();
    await tick();
    io.issued[1].done();
    await Promise.all([plain, fua]);
    assert.equal(io.syncs, 1);
  });
});
