import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { parseConfig, RackConfig } from '../../../emulator/rack/config';
import { lockDataDir, luStateDir, prepareDataDir } from '../../../emulator/rack/layout';
import { tmpDirs } from '../../helpers/common';

const BASE = `
dkcs:
  - name: dkc0
    serial: 5
    raidGroups: [ { name: rg0, level: 1, disks: { count: 2, size: 64MiB } } ]
    volumes:
      - { name: a, group: rg0, size: 8MiB }
      - { name: b, group: rg0, size: 8MiB }
    targets: []
`;

function cfg(text: string): RackConfig {
  const r = parseConfig(text, 'rack.yaml');
  if (!r.ok) throw new Error(r.errors.join('\n'));
  return r.config;
}

describe('data directory layout', () => {
  const tmp = tmpDirs();

  it('a new directory is created; the same config reopens it', async () => {
    const dir = path.join(tmp.make(), 'data');
    assert.equal(await prepareDataDir(dir, cfg(BASE)), true);
    assert.equal(await prepareDataDir(dir, cfg(BASE)), false);
  });

  it('appending a volume is allowed', async () => {
    const dir = tmp.make();
    await prepareDataDir(dir, cfg(BASE));
    await prepareDataDir(dir, cfg(BASE.replace('    targets: []', '      - { name: c, group: rg0, size: 8MiB }\n    targets: []')));
  });

  it('resizing a volume is refused, naming it', async () => {
    const dir = tmp.make();
    await prepareDataDir(dir, cfg(BASE));
    await assert.rejects(
      prepareDataDir(dir, cfg(BASE.replace('{ name: a, group: rg0, size: 8MiB }', '{ name: a, group: rg0, size: 16MiB }'))),
      /does not match rack\.yaml: dkc0 volume a \(LDEV 0\) has sizeBytes 8388608 there, 16777216 in rack\.yaml/,
    );
  });

  it('removing a volume or changing a RAID group is refused', async () => {
    const dir = tmp.make();
    await prepareDataDir(dir, cfg(BASE));
    await assert.rejects(prepareDataDir(dir, cfg(BASE.replace('      - { name: b, group: rg0, size: 8MiB }\n', ''))), /volume b \(LDEV 1\) is missing/);
    await assert.rejects(prepareDataDir(dir, cfg(BASE.replace('size: 64MiB', 'size: 128MiB'))), /RAID group rg0 has diskSizeBytes 67108864 there, 134217728/);
    await assert.rejects(prepareDataDir(dir, cfg(BASE.replace('serial: 5', 'serial: 6'))), /DKC dkc0 has serial 5 there, 6/);
  });

  it('a non-empty directory that is not a data directory is refused', async () => {
    const dir = tmp.make();
    await fs.writeFile(path.join(dir, 'precious.txt'), 'x');
    await assert.rejects(prepareDataDir(dir, cfg(BASE)), /is not empty and has no rack\.json/);
  });

  it('the lock keeps a second user out and is taken over from a dead process', async () => {
    const dir = tmp.make();
    const unlock = await lockDataDir(dir);
    await assert.rejects(lockDataDir(dir), /is in use by process/);
    await unlock();
    await fs.writeFile(path.join(dir, 'lock'), '999999999\n'); // no such process
    const again = await lockDataDir(dir);
    await again();
  });

  it('LU state directories: target name escaped into one path segment, keyed by LDEV', () => {
    const d = luStateDir('/data', 'dkc0', 'iqn.2026-11.dev.dkc-emu:a/b', 0x1a);
    assert.equal(d, '/data/dkc0/state/iqn.2026-11.dev.dkc-emu%3aa%2fb/ldev-001A');
  });
});
