import assert from 'node:assert/strict';
import type { Dkc } from '../../firmware/dkc';
import { Ram } from '../../firmware/ram';
import { openDkc } from '../../emulator/rack/build';
import { parseConfig } from '../../emulator/rack/config';
import { silentLog, tmpDirs } from '../helpers/common';

const YAML = `
dkcs:
  - name: dkc3
    serial: 9
    raidGroups:
      - { name: m, level: 1, disks: { count: 2, size: 16MiB } }
      - { name: s, level: 0, stripeSize: 4KiB, disks: { count: 4, size: 16MiB } }
    volumes:
      - { name: mv, group: m, size: 4MiB }
      - { name: sv, group: s, size: 4MiB }
    targets:
      - name: iqn.2026-11.dev.dkc-emu:x
        portals: ["127.0.0.1:0"]
        luns: [ { lun: 0, volume: mv }, { lun: 5, volume: sv } ]
`;

describe('DKC management tables (seed 003 claim 14)', () => {
  let dkc: Dkc;
  after(async () => dkc.close()); // before tmpDirs' own after hook removes the directory
  const tmp = tmpDirs();
  before(async () => {
    const r = parseConfig(YAML, 't.yaml');
    assert.ok(r.ok);
    dkc = await openDkc(r.config.dkcs[0], tmp.make(), silentLog);
  });

  it('LU -> LDEV -> RAID 1 group address -> the same address on both mirrors', () => {
    const c = dkc.resolve('iqn.2026-11.dev.dkc-emu:x', 0, 100)!;
    assert.equal(c.ldev.name, 'mv');
    assert.equal(c.raidGroup, 'm');
    assert.equal(c.raidGroupOffset, 100 * 512);
    assert.deepEqual(c.disks, [{ disk: 'm-0', offset: 51200, length: 512 }, { disk: 'm-1', offset: 51200, length: 512 }]);
  });

  it('LU -> LDEV -> RAID 0 group address -> one member disk', () => {
    // LBA 73 of sv: group byte 37376 = stripe 9 (4 KiB stripes) + 512 -> disk 9 mod 4 = 1, row 9 div 4 = 2.
    const c = dkc.resolve('iqn.2026-11.dev.dkc-emu:x', 5, 73)!;
    assert.equal(c.raidGroupOffset, 73 * 512);
    assert.deepEqual(c.disks, [{ disk: 's-1', offset: 2 * 4096 + 512, length: 512 }]);
  });

  it('an unknown LU resolves to nothing', () => {
    assert.equal(dkc.resolve('iqn.2026-11.dev.dkc-emu:x', 1, 0), undefined);
    assert.equal(dkc.resolve('iqn.2026-11.dev.dkc-emu:y', 0, 0), undefined);
    assert.equal(dkc.hostInterface.volume('iqn.2026-11.dev.dkc-emu:x', 5)?.id, 'dkc3:ldev:0001');
  });

  it('RAM refuses inconsistent tables', () => {
    const ram = new Ram();
    ram.addRaidGroup({ name: 'g', level: 1, stripeSizeBytes: 65536, disks: ['g-0', 'g-1'], diskSizeBytes: 1 << 20, sizeBytes: 1 << 20 });
    assert.throws(() => ram.addLdev({ number: 0, name: 'v', group: 'nope', offsetBytes: 0, blockSize: 512, blockCount: 8 }), /no RAID group nope/);
    ram.addLdev({ number: 0, name: 'v', group: 'g', offsetBytes: 0, blockSize: 512, blockCount: 8 });
    assert.throws(() => ram.addLu({ port: 'p', lun: 0, ldev: 3 }), /no LDEV 3/);
    ram.addLu({ port: 'p', lun: 0, ldev: 0 });
    assert.throws(() => ram.addLu({ port: 'p', lun: 0, ldev: 0 }), /defined twice/);
  });
});
