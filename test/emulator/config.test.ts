import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { formatSize, loadConfig, parseConfig, parseSize } from '../../emulator/config';
import { BROKEN_DIR, expectedErrors, ROOT } from './helpers';

describe('rack config', () => {
  describe('sizes', () => {
    it('binary units', () => {
      assert.equal(parseSize('10GiB'), 10 * 2 ** 30);
      assert.equal(parseSize('512MiB'), 512 * 2 ** 20);
      assert.equal(parseSize('64KiB'), 65536);
      assert.equal(parseSize('4096B'), 4096);
      assert.throws(() => parseSize('10GB'));
      assert.equal(formatSize(3 * 2 ** 30), '3GiB');
      assert.equal(formatSize(1536 * 2 ** 20), '1536MiB');
    });
  });

  describe('shipped configs', () => {
    for (const f of ['configs/default.yaml', 'configs/test.yaml']) {
      it(`${f} is valid`, async () => {
        const r = await loadConfig(path.join(ROOT, f));
        assert.ok(r.ok, r.ok ? '' : r.errors.join('\n'));
      });
    }

    it('the example in docs/config.md is valid', () => {
      const md = readFileSync(path.join(ROOT, 'docs', 'config.md'), 'utf8');
      const example = /```yaml\n([\s\S]*?)```/.exec(md)?.[1];
      assert.ok(example, 'docs/config.md has a yaml example');
      const r = parseConfig(example, 'docs/config.md');
      assert.ok(r.ok, r.ok ? '' : r.errors.join('\n'));
    });

    it('configs/test.yaml has the layout the system tests expect (scripts/README.md)', async () => {
      const r = await loadConfig(path.join(ROOT, 'configs/test.yaml'));
      assert.ok(r.ok);
      const d = r.config.dkcs[0];
      const [main, chap, mutual] = d.targets;
      const vol = (name: string) => d.volumes.find((v) => v.name === name)!;
      assert.equal(main.luns.length, 6);
      assert.equal(vol(main.luns[0].volume).blockSize, 512);
      assert.ok(vol(main.luns[0].volume).sizeBytes >= 2 ** 30, 'LUN 0 carries ext4 from the Linux initiator test');
      assert.equal(vol(main.luns[1].volume).blockSize, 4096);
      assert.ok(vol(main.luns[1].volume).sizeBytes >= 64 * 2 ** 20);
      assert.equal(main.luns[2].removable, true);
      assert.equal(main.luns[3].readOnly, true);
      // LUN 4 512e (the LBPPB tests), LUN 5 the volume named "sanitize" (libiscsi's SANITIZE tests)
      assert.equal(vol(main.luns[4].volume).blockSize, 512);
      assert.equal(vol(main.luns[4].volume).physicalBlockSize, 4096);
      assert.equal(main.luns[5].volume, 'sanitize');
      assert.ok(!main.luns[5].readOnly && !main.luns[5].removable);
      assert.equal(main.chap, undefined);
      assert.ok(chap.chap && !chap.chap.mutualUser);
      assert.ok(mutual.chap?.mutualUser && mutual.chap.mutualSecret);
      for (const t of [chap, mutual]) assert.ok(vol(t.luns[0].volume).sizeBytes >= 128 * 2 ** 20);
      assert.equal(r.config.discoveryChap, undefined, 'discovery without CHAP');
    });

    it('normalizes: defaults, LDEV numbers, 1 MiB aligned placement, portals', () => {
      const r = parseConfig(
        [
          'dkcs:',
          '  - name: d',
          '    serial: 7',
          '    raidGroups: [ { name: g, level: 0, disks: { count: 3, size: 100MiB } } ]',
          '    volumes:',
          '      - { name: a, group: g, size: 1000KiB }',
          '      - { name: b, group: g, size: 8MiB, blockSize: 4096 }',
          '    targets:',
          '      - name: iqn.2026-11.dev.dkc-emu:x',
          '        portals: ["[::1]:3260", "0.0.0.0:0"]',
          '        luns: [ { lun: 5, volume: b } ]',
        ].join('\n'),
        'x.yaml',
      );
      assert.ok(r.ok, r.ok ? '' : r.errors.join('\n'));
      const d = r.config.dkcs[0];
      assert.equal(r.config.name, 'x');
      assert.equal(d.raidGroups[0].stripeSizeBytes, 65536);
      assert.equal(d.raidGroups[0].capacityBytes, 300 * 2 ** 20);
      assert.deepEqual(
        d.volumes.map((v) => [v.ldev, v.offsetBytes, v.blockSize, v.blockCount]),
        [[0, 0, 512, 2000], [1, 2 ** 20, 4096, 2048]],
      );
      assert.deepEqual(d.targets[0].portals, [{ host: '::1', port: 3260 }, { host: '0.0.0.0', port: 0 }]);
      assert.deepEqual(d.targets[0].luns[0], {
        lun: 5, volume: 'b', ldev: 1, readOnly: false, removable: false, vendor: undefined, product: undefined, revision: undefined,
      });
    });
  });

  describe('broken configs name file:line and the key', () => {
    const files = readdirSync(BROKEN_DIR).filter((f) => f.endsWith('.yaml')).sort();
    it('there is a set of them', () => assert.ok(files.length >= 15));
    for (const f of files) {
      it(f, async () => {
        const file = path.join(BROKEN_DIR, f);
        const want = expectedErrors(file);
        assert.ok(want.length > 0, 'the file states what it expects');
        const r = await loadConfig(file);
        assert.equal(r.ok, false);
        if (!r.ok) assert.deepEqual(r.errors.map(String), want);
      });
    }
  });

  it('an unreadable file is an error naming it', async () => {
    const r = await loadConfig('/nonexistent/rack.yaml');
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(String(r.errors[0]), /^\/nonexistent\/rack\.yaml:0: cannot read: ENOENT/);
  });
});
