import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { FileDisk } from '../../../emulator/hardware/disk';
import { pattern, tmpDirs } from '../../helpers/common';

const MiB = 1024 * 1024;

async function disks(dir: string, n: number, size: number): Promise<FileDisk[]> {
  const out: FileDisk[] = [];
  for (let i = 0; i < n; i++) out.push(await FileDisk.open(path.join(dir, `d${i}.img`), size, { create: true }));
  return out;
}

describe('FileDisk', () => {
  const tmp = tmpDirs();

  it('is a sparse file of the configured size that reads zeros', async () => {
    const dir = tmp.make();
    const [d] = await disks(dir, 1, 64 * MiB);
    const st = await fs.stat(path.join(dir, 'd0.img'));
    assert.equal(st.size, 64 * MiB);
    assert.ok(st.blocks * 512 < 1 * MiB, `allocated ${st.blocks * 512} bytes`);
    const buf = Buffer.alloc(4096, 0xee);
    await d.readInto(32 * MiB, buf, 0, 4096);
    assert.ok(buf.equals(Buffer.alloc(4096)));
    await d.close();
  });

  it('reopening with another size is refused', async () => {
    const dir = tmp.make();
    const [d] = await disks(dir, 1, 4 * MiB);
    await d.close();
    await assert.rejects(FileDisk.open(path.join(dir, 'd0.img'), 8 * MiB, { create: true }), /disk is 4194304 bytes, the configuration says 8388608/);
  });

  it('write, FUA write, flush, read back; vectored I/O fills buffers in order', async () => {
    const [d] = await disks(tmp.make(), 1, 4 * MiB);
    const a = pattern(512, 0, 8, 1);
    const b = pattern(512, 8, 8, 1);
    await d.write(0, a, 0, a.length, false);
    await d.write(a.length, b, 0, b.length, true);
    await d.flush();
    const back = [Buffer.alloc(1000), Buffer.alloc(a.length + b.length - 1000)];
    await d.readv(0, back, a.length + b.length);
    assert.ok(Buffer.concat(back).equals(Buffer.concat([a, b])));
    await d.writev(MiB, [b, a], a.length + b.length, true);
    const one = Buffer.alloc(a.length + b.length);
    await d.readInto(MiB, one, 0, one.length);
    assert.ok(one.equals(Buffer.concat([b, a])));
    await d.close();
  });

  it('missing file without create is an error', async () => {
    await assert.rejects(FileDisk.open(path.join(tmp.make(), 'nope.img'), MiB, { create: false }), /ENOENT/);
  });
});
