import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { parseConfig, RackConfig } from '../../../emulator/rack/config';
import { Rack } from '../../../emulator/rack/rack';
import { pattern, silentLog, tmpDirs } from '../../helpers/common';

const YAML = `
dkcs:
  - name: dkc0
    serial: 77
    raidGroups: [ { name: rg0, level: 1, disks: { count: 2, size: 64MiB } } ]
    volumes:
      - { name: a, group: rg0, size: 16MiB }
      - { name: b, group: rg0, size: 16MiB, blockSize: 4096 }
    targets:
      - name: iqn.2026-11.dev.dkc-emu:rack.t0
        portals: ["127.0.0.1:0"]
        luns: [ { lun: 0, volume: a }, { lun: 1, volume: b, readOnly: true } ]
      - name: iqn.2026-11.dev.dkc-emu:rack.t1
        portals: ["127.0.0.1:0"]
        chap: { user: u, secret: twelve-chars }
        luns: [ { lun: 0, volume: a } ]
`;

function cfg(text = YAML): RackConfig {
  const r = parseConfig(text, 'rack.yaml');
  if (!r.ok) throw new Error(r.errors.join('\n'));
  return r.config;
}

function connect(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve();
    });
    s.on('error', reject);
  });
}

describe('Rack', () => {
  const tmp = tmpDirs();

  it('builds the targets from the LU table: one LU per configured LUN, the same LDEV behind shared volumes', async () => {
    const rack = await Rack.open(cfg(), { dataDir: tmp.make(), log: silentLog });
    try {
      const [t0, t1] = rack.targets;
      assert.deepEqual([t0.name, t1.name], ['iqn.2026-11.dev.dkc-emu:rack.t0', 'iqn.2026-11.dev.dkc-emu:rack.t1']);
      assert.ok(t0.device.hasLun(0) && t0.device.hasLun(1) && !t0.device.hasLun(2));
      assert.equal(t1.chap?.user, 'u');
      const host = rack.dkc('dkc0').hostInterface;
      assert.equal(host.volume(t0.name, 0), host.volume(t1.name, 0), 'one LDEV, two paths');
      assert.equal(host.volume(t0.name, 1)?.blockSize, 4096);
      assert.equal(host.volume(t0.name, 7), undefined);
    } finally {
      await rack.stop();
    }
  });

  it('--listen replaces every portal; start listens, stop closes and releases the directory', async () => {
    const dataDir = tmp.make();
    const rack = await Rack.open(cfg(), { dataDir, listen: { host: '127.0.0.1', port: 0 }, log: silentLog });
    await rack.start();
    const addrs = rack.addresses();
    assert.equal(addrs.length, 1, 'one distinct portal');
    assert.ok(addrs[0].port > 0);
    await connect(addrs[0].port);
    await rack.stop();
    await assert.rejects(connect(addrs[0].port));
    assert.ok(!existsSync(path.join(dataDir, 'lock')));
  });

  it('data written through a LU survives stop and reopen', async () => {
    const dataDir = tmp.make();
    const rack = await Rack.open(cfg(), { dataDir, log: silentLog });
    const vol = rack.dkc('dkc0').hostInterface.volume('iqn.2026-11.dev.dkc-emu:rack.t0', 0)!;
    await vol.write(1234, pattern(512, 1234, 16, 9), { fua: false });
    await rack.stop();
    const again = await Rack.open(cfg(), { dataDir, log: silentLog });
    try {
      const v = again.dkc('dkc0').hostInterface.volume('iqn.2026-11.dev.dkc-emu:rack.t1', 0)!;
      assert.ok((await v.read(1234, 16)).equals(pattern(512, 1234, 16, 9)));
      assert.equal(v.naa.toString('hex'), vol.naa.toString('hex'));
    } finally {
      await again.stop();
    }
  });

  it('a second rack on the same directory is refused; a mismatched layout is refused and leaves it usable', async () => {
    const dataDir = tmp.make();
    const rack = await Rack.open(cfg(), { dataDir, log: silentLog });
    await assert.rejects(Rack.open(cfg(), { dataDir, log: silentLog }), /is in use by process/);
    await rack.stop();
    await assert.rejects(
      Rack.open(cfg(YAML.replace('size: 16MiB }', 'size: 32MiB }')), { dataDir, log: silentLog }),
      /dkc0 volume a \(LDEV 0\) has sizeBytes 16777216 there, 33554432 in rack\.yaml/,
    );
    const ok = await Rack.open(cfg(), { dataDir, log: silentLog });
    await ok.stop();
  });
});
