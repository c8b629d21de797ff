import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { PAGE_BITS } from '../../firmware/allocation-map';
import type { Dkc } from '../../firmware/dkc';
import { ldevNaa, ldevSerial } from '../../firmware/identity';
import { MediumError } from '../../firmware/volume';
import type { EmulatedBays } from '../../emulator/hardware/bays';
import { openDkc } from '../../emulator/rack/build';
import { DkcConfig, parseConfig } from '../../emulator/rack/config';
import { pattern, silentLog, tmpDirs } from '../helpers/common';

const YAML = `
dkcs:
  - name: dkc0
    serial: 410001
    raidGroups:
      - { name: rg0, level: 0, stripeSize: 64KiB, disks: { count: 2, size: 64MiB } }
    volumes:
      - { name: small, group: rg0, size: 32MiB }
      - { name: big4k, group: rg0, size: 64MiB, blockSize: 4096 }
    targets:
      - name: iqn.2026-11.dev.dkc-emu:t
        portals: ["127.0.0.1:0"]
        luns: [ { lun: 0, volume: small }, { lun: 1, volume: big4k } ]
`;

export function dkcConfig(yaml = YAML): DkcConfig {
  const r = parseConfig(yaml, 'inline.yaml');
  if (!r.ok) throw new Error(r.errors.join('\n'));
  return r.config.dkcs[0];
}

describe('LDEV (thin volume)', () => {
  const tmp = tmpDirs();
  let dir: string;
  let dkc: Dkc;

  beforeEach(async () => {
    dir = tmp.make();
    dkc = await openDkc(dkcConfig(), dir, silentLog);
  });
  afterEach(async () => {
    await dkc.close();
  });

  it('never-written blocks read as zeros and take no disk space', async () => {
    const v = dkc.ldevByName('small');
    assert.equal(v.blockCount, 65536);
    assert.ok((await v.read(1000, 64)).equals(Buffer.alloc(64 * 512)));
    assert.deepEqual(v.extent(0, 1 << 30), { mapped: false, blocks: 65536 });
    const du = await fs.stat(path.join(dir, 'dkc0', 'disks', 'rg0-0.img'));
    assert.ok(du.blocks * 512 < 256 * 1024, `disk allocated ${du.blocks * 512} bytes`);
  });

  it('writes map blocks; extent() reports the runs', async () => {
    const v = dkc.ldevByName('small');
    await v.write(100, pattern(512, 100, 10, 1), { fua: false });
    assert.deepEqual(v.extent(0, 1000), { mapped: false, blocks: 100 });
    assert.deepEqual(v.extent(100, 1000), { mapped: true, blocks: 10 });
    assert.deepEqual(v.extent(105, 2), { mapped: true, blocks: 2 });
    assert.deepEqual(v.extent(110, 1000), { mapped: false, blocks: 1000 });
    assert.equal(v.allocatedBlocks(), 10);
  });

  it('a read over mapped and unmapped runs returns data and zeros in place', async () => {
    const v = dkc.ldevByName('small');
    const a = pattern(512, 10, 5, 2);
    const b = pattern(512, 20, 3, 2);
    await v.write(10, a, { fua: false });
    await v.write(20, b, { fua: true });
    const got = await v.read(8, 20);
    assert.ok(got.subarray(0, 2 * 512).equals(Buffer.alloc(1024)));
    assert.ok(got.subarray(2 * 512, 7 * 512).equals(a));
    assert.ok(got.subarray(7 * 512, 12 * 512).equals(Buffer.alloc(5 * 512)));
    assert.ok(got.subarray(12 * 512, 15 * 512).equals(b));
    assert.ok(got.subarray(15 * 512).equals(Buffer.alloc(5 * 512)));
  });

  it('unmap: blocks read zeros again (LBPRZ) though the disk still holds the data', async () => {
    const v = dkc.ldevByName('small');
    await v.write(0, pattern(512, 0, 64, 3), { fua: false });
    await v.unmap(16, 32);
    const got = await v.read(0, 64);
    assert.ok(got.subarray(16 * 512, 48 * 512).equals(Buffer.alloc(32 * 512)));
    assert.ok(got.subarray(0, 16 * 512).equals(pattern(512, 0, 16, 3)));
    assert.deepEqual(v.extent(16, 100), { mapped: false, blocks: 32 });
    assert.equal(v.allocatedBlocks(), 32);
  });

  it('4096-byte blocks address the RAID group in 4 KiB units after the first volume', async () => {
    const v = dkc.ldevByName('big4k');
    assert.equal(v.blockSize, 4096);
    assert.equal(v.blockCount, 16384);
    await v.write(3, pattern(4096, 3, 2, 9), { fua: false });
    assert.ok((await v.read(3, 2)).equals(pattern(4096, 3, 2, 9)));
    assert.equal(v.def.offsetBytes, 32 * 1024 * 1024);
    const chain = dkc.resolve('iqn.2026-11.dev.dkc-emu:t', 1, 3)!;
    // RAID group address 32 MiB + 12 KiB = stripe 512 (row 256, disk 0) + 12 KiB.
    assert.equal(chain.raidGroupOffset, 32 * 1024 * 1024 + 3 * 4096);
    assert.deepEqual(chain.disks, [{ disk: 'rg0-0', offset: 256 * 65536 + 3 * 4096, length: 4096 }]);
  });

  it('naa is NAA type 6 from the DKC serial and LDEV number; serial is stable text', () => {
    const v = dkc.ldevByName('big4k');
    assert.equal(v.id, 'dkc0:ldev:0001');
    assert.equal(v.serial, '4100010001');
    assert.equal(v.naa.length, 16);
    assert.equal(v.naa[0] >> 4, 6);
    // company id 0x0ADCE0 | serial 410001 = 0x00064191 | 'DKC' | LDEV 1
    assert.equal(v.naa.toString('hex'), '60adce00' + '00064191' + '00444b43' + '00000001');
    assert.ok(ldevNaa(410001, 0).equals(dkc.ldevByName('small').naa));
    assert.notEqual(ldevSerial(410001, 0), v.serial);
  });

  it('writes and unmaps survive a close and reopen of the data directory', async () => {
    const v = dkc.ldevByName('small');
    await v.write(5, pattern(512, 5, 3, 4), { fua: false });
    await v.write(PAGE_BITS - 2, pattern(512, PAGE_BITS - 2, 4, 4), { fua: false }); // spans two map pages
    await v.write(60000, pattern(512, 60000, 8, 4), { fua: false });
    await v.unmap(60002, 2);
    await dkc.close();
    dkc = await openDkc(dkcConfig(), dir, silentLog);
    const w = dkc.ldevByName('small');
    assert.equal(w.allocatedBlocks(), 3 + 4 + 6);
    assert.ok((await w.read(5, 3)).equals(pattern(512, 5, 3, 4)));
    assert.ok((await w.read(PAGE_BITS - 2, 4)).equals(pattern(512, PAGE_BITS - 2, 4, 4)));
    assert.ok((await w.read(60002, 2)).equals(Buffer.alloc(1024)));
    assert.deepEqual(w.extent(60000, 100), { mapped: true, blocks: 2 });
  });

  it('concurrent writes to one map page all persist', async () => {
    const v = dkc.ldevByName('small');
    const writes = [];
    for (let i = 0; i < 64; i++) writes.push(v.write(i * 3, pattern(512, i * 3, 1, 5), { fua: i % 8 === 0 }));
    await Promise.all(writes);
    await dkc.close();
    dkc = await openDkc(dkcConfig(), dir, silentLog);
    const w = dkc.ldevByName('small');
    assert.equal(w.allocatedBlocks(), 64);
    for (let i = 0; i < 64; i++) assert.equal(w.extent(i * 3, 1).mapped, true, `LBA ${i * 3}`);
  });

  it('a torn newest copy of a map page falls back to the previous copy', async () => {
    const v = dkc.ldevByName('small');
    await v.write(0, pattern(512, 0, 1, 1), { fua: false }); // page 0, seq 1 -> slot 0
    await v.write(1, pattern(512, 1, 1, 1), { fua: false }); // page 0, seq 2 -> slot 1
    await dkc.close();
    const mapFile = path.join(dir, 'dkc0', 'ldev', 'ldev-0000.map');
    const fh = await fs.open(mapFile, 'r+');
    await fh.write(Buffer.from([0xff]), 0, 1, 4096 + 4096 + 100); // corrupt slot 1 of page 0
    await fh.close();
    dkc = await openDkc(dkcConfig(), dir, silentLog);
    const w = dkc.ldevByName('small');
    assert.deepEqual(w.extent(0, 10), { mapped: true, blocks: 1 }, 'seq 1 copy: only LBA 0');
    // The next update must not overwrite the surviving copy: it goes to the torn slot.
    await w.write(2, pattern(512, 2, 1, 1), { fua: false });
    await dkc.close();
    dkc = await openDkc(dkcConfig(), dir, silentLog);
    assert.deepEqual(dkc.ldevByName('small').extent(0, 10), { mapped: true, blocks: 1 }, 'LBA 1 was lost with the torn copy');
    assert.equal(dkc.ldevByName('small').extent(2, 1).mapped, true);
  });

  it('a map made for another volume size is refused', async () => {
    await dkc.close();
    const other = dkcConfig(YAML.replace('size: 32MiB', 'size: 16MiB'));
    await assert.rejects(openDkc(other, dir, silentLog), /allocation map was made for blockCount 65536, the configuration says 32768/);
    dkc = await openDkc(dkcConfig(), dir, silentLog);
  });

  it('FUA: the data write is FUA on the RAID group and the map is synced before the ack', async () => {
    const v = dkc.ldevByName('small');
    const g = dkc.drive.group('rg0');
    const fuas: boolean[] = [];
    const order: string[] = [];
    const write = g.write.bind(g);
    g.write = (o: number, d: Buffer, doff: number, l: number, fua: boolean) => {
      fuas.push(fua);
      return write(o, d, doff, l, fua).then(() => void order.push('data'));
    };
    const sync = v.map.sync.bind(v.map);
    v.map.sync = () => sync().then(() => void order.push('map sync'));
    try {
      await v.write(0, pattern(512, 0, 4, 1), { fua: true });
      order.push('ack');
      await v.write(8, pattern(512, 8, 4, 1), { fua: false });
      order.push('ack');
      assert.deepEqual(fuas, [true, false]);
      assert.deepEqual(order, ['data', 'map sync', 'ack', 'data', 'ack']);
    } finally {
      g.write = write;
      v.map.sync = sync;
    }
  });

  it('flush makes disks and maps durable and keeps serving', async () => {
    const v = dkc.ldevByName('small');
    await v.write(7, pattern(512, 7, 1, 1), { fua: false });
    await v.flush();
    assert.ok((await v.read(7, 1)).equals(pattern(512, 7, 1, 1)));
  });

  it('a failing disk read becomes a MediumError naming the LBA', async () => {
    const v = dkc.ldevByName('small');
    await v.write(40, pattern(512, 40, 1, 1), { fua: false });
    const old = dkc;
    const bays = old.bays as EmulatedBays;
    for (const m of old.drive.group('rg0').members()) bays.bay(m.drive)!.faults.fail(); // every member fails: reads fail
    await assert.rejects(v.read(40, 1), (err: unknown) => err instanceof MediumError && err.lba === 40 && err.kind === 'read');
    for (const n of ['small', 'big4k']) await old.ldevByName(n).close();
    dkc = await openDkc(dkcConfig(), dir, silentLog);
  });
});

describe('allocation map file', () => {
  const tmp = tmpDirs();
  const BIG = `
dkcs:
  - name: dkc0
    serial: 5
    raidGroups: [ { name: rg0, level: 0, disks: { count: 2, size: 3GiB } } ]
    volumes: [ { name: v, group: rg0, size: 5GiB } ]
    targets: []
`;

  it('a map of more pages than one load chunk (5 GiB, 323 pages) reloads every page', async () => {
    const dir = tmp.make();
    let dkc = await openDkc(dkcConfig(BIG), dir, silentLog);
    const far = 300 * PAGE_BITS + 17;
    await dkc.ldevByName('v').write(far, pattern(512, far, 3, 1), { fua: false });
    await dkc.ldevByName('v').write(0, pattern(512, 0, 1, 1), { fua: false });
    await dkc.close();
    dkc = await openDkc(dkcConfig(BIG), dir, silentLog);
    try {
      const v = dkc.ldevByName('v');
      assert.equal(v.allocatedBlocks(), 4);
      assert.ok((await v.read(far, 3)).equals(pattern(512, far, 3, 1)));
    } finally {
      await dkc.close();
    }
  });

  it('a truncated map file is refused, naming it', async () => {
    const dir = tmp.make();
    const dkc = await openDkc(dkcConfig(), dir, silentLog);
    await dkc.close();
    const file = path.join(dir, 'dkc0', 'ldev', 'ldev-0001.map');
    await fs.truncate(file, 10000);
    await assert.rejects(openDkc(dkcConfig(), dir, silentLog), /ldev-0001\.map: allocation map is truncated at byte/);
  });
});

describe('LDEV shutdown', () => {
  const tmp = tmpDirs();

  it('closing the DKC waits for I/O under way, then refuses new I/O', async () => {
    const dir = tmp.make();
    const dkc = await openDkc(dkcConfig(), dir, silentLog);
    const v = dkc.ldevByName('small');
    const writes = Array.from({ length: 32 }, (_x, i) => v.write(i * 64, pattern(512, i * 64, 64, 2), { fua: i % 4 === 0 }));
    const reads = Array.from({ length: 8 }, (_x, i) => v.read(i * 64, 64));
    const closing = dkc.close();
    await Promise.all([...writes, ...reads, closing]);
    await assert.rejects(v.read(0, 1), /LDEV is closed/);
    await assert.rejects(v.write(0, Buffer.alloc(512), { fua: false }), /LDEV is closed/);
    const again = await openDkc(dkcConfig(), dir, silentLog);
    try {
      const w = again.ldevByName('small');
      assert.equal(w.allocatedBlocks(), 32 * 64, 'every write acknowledged before close is there');
      assert.ok((await w.read(31 * 64, 64)).equals(pattern(512, 31 * 64, 64, 2)));
    } finally {
      await again.close();
    }
  });
});
