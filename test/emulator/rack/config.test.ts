import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { formatSize, loadConfig, parseConfig, parseSize, RackConfig } from '../../../emulator/rack/config';
import { isLoopback } from '../../../emulator/rack/config-check';
import { raidCapacity } from '../../../firmware/raid';
import { BROKEN_DIR, expectedErrors, ROOT } from '../../helpers/common';

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
    const shipped = readdirSync(path.join(ROOT, 'configs')).filter((f) => f.endsWith('.yaml')).sort();
    it('configs/ holds the default, test and example racks', () => {
      for (const f of ['default.yaml', 'test.yaml', 'raid6-spare.yaml', 'two-dkcs.yaml']) assert.ok(shipped.includes(f), f);
    });
    for (const f of shipped) {
      it(`configs/${f} is valid`, async () => {
        const r = await loadConfig(path.join(ROOT, 'configs', f));
        assert.ok(r.ok, r.ok ? '' : r.errors.join('\n'));
      });
    }

    it('configs/raid6-spare.yaml: one DKC, RAID 6 of 6 disks, a spare, volumes, a target, a management port', async () => {
      const r = await loadConfig(path.join(ROOT, 'configs/raid6-spare.yaml'));
      assert.ok(r.ok);
      const [d, ...rest] = r.config.dkcs;
      assert.equal(rest.length, 0);
      assert.deepEqual([d.raidGroups[0].level, d.raidGroups[0].diskCount], [6, 6]);
      assert.ok(d.spares && d.spares.count >= 1 && d.spares.sizeBytes >= d.raidGroups[0].diskSizeBytes);
      assert.ok(d.volumes.length >= 2);
      assert.equal(d.targets.length, 1);
      assert.ok(r.config.management);
    });

    it('configs/two-dkcs.yaml: two DKCs, different serials, each its own target on its own port', async () => {
      const r = await loadConfig(path.join(ROOT, 'configs/two-dkcs.yaml'));
      assert.ok(r.ok);
      const [a, b] = r.config.dkcs;
      assert.equal(r.config.dkcs.length, 2);
      assert.notEqual(a.serial, b.serial);
      assert.equal(a.targets.length, 1);
      assert.equal(b.targets.length, 1);
      assert.notEqual(a.targets[0].portals[0].port, b.targets[0].portals[0].port);
    });

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
      assert.equal(main.luns.length, 7);
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
      assert.ok(vol('sanitize').sizeBytes >= 2 ** 30 && d.raidGroups.find((g) => g.name === vol('sanitize').group)?.timing === 'hdd',
        'an overwrite lasts past the 3 s + resets + 1 s reconnect of libiscsi Sanitize.Reset');
      assert.ok(main.nopIn?.timeoutMs !== undefined && main.nopIn.timeoutMs > 60_000, "outlasts Sanitize.Reset's 60 s sleeps");
      // LUN 6 on a RAID-5 group (the conformance suite on RAID 5)
      assert.equal(d.raidGroups.find((g) => g.name === vol(main.luns[6].volume).group)?.level, 5);
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
        lun: 5, volume: 'b', ldev: 1, readOnly: false, removable: false, commandDevice: false, vendor: undefined, product: undefined, revision: undefined,
      });
    });
  });

  describe('RAID levels, spares, timing, cache, rebuild, scrub, seed', () => {
    const rack = (dkc: string[], top: string[] = []): RackConfig => {
      const text = ['dkcs:', '  - name: d', '    serial: 7', ...dkc.map((l) => `    ${l}`), '    volumes: []', '    targets: []', ...top].join('\n');
      const r = parseConfig(text, 'x.yaml');
      assert.ok(r.ok, r.ok ? '' : r.errors.join('\n'));
      return r.config;
    };
    const group = (level: number, count: number, extra = '') =>
      rack(['raidGroups:', `  - { name: g, level: ${level}, ${extra}disks: { count: ${count}, size: 100MiB } }`]).dkcs[0].raidGroups[0];

    it('capacity per level: RAID 0 n*d, 1 d, 10 n/2*d, 5 (n-1)*d, 6 (n-2)*d', () => {
      const d = 100 * 2 ** 20;
      assert.equal(group(0, 3).capacityBytes, 3 * d);
      assert.equal(group(1, 2).capacityBytes, d);
      assert.equal(group(1, 3).capacityBytes, d);
      assert.equal(group(10, 4).capacityBytes, 2 * d);
      assert.equal(group(10, 6).capacityBytes, 3 * d);
      assert.equal(group(5, 3).capacityBytes, 2 * d);
      assert.equal(group(5, 8).capacityBytes, 7 * d);
      assert.equal(group(6, 4).capacityBytes, 2 * d);
      assert.equal(group(6, 6).capacityBytes, 4 * d);
    });

    it('capacity counts whole stripes per disk only', () => {
      const s = 64 * 1024;
      const rows = Math.floor((100 * 2 ** 20 + 4096) / s);
      assert.equal(raidCapacity(5, 4, 100 * 2 ** 20 + 4096, s), 3 * rows * s);
      assert.equal(raidCapacity(6, 5, 100 * 2 ** 20 + 4096, s), 3 * rows * s);
      assert.equal(raidCapacity(10, 4, 100 * 2 ** 20 + 4096, s), 2 * rows * s);
      assert.equal(raidCapacity(0, 2, 100 * 2 ** 20 + 4096, s), 2 * rows * s);
    });

    it('the fewest disks each level takes', () => {
      for (const [level, count] of [[0, 2], [1, 2], [5, 3], [6, 4], [10, 4]]) assert.equal(group(level, count).diskCount, count);
    });

    it('stripeSize: default 64KiB; 4KiB and 1MiB are the bounds', () => {
      assert.equal(group(5, 3).stripeSizeBytes, 65536);
      assert.equal(group(5, 3, 'stripeSize: 4KiB, ').stripeSizeBytes, 4096);
      assert.equal(group(6, 4, 'stripeSize: 1MiB, ').stripeSizeBytes, 2 ** 20);
    });

    it('timing: default none; hdd and ssd', () => {
      assert.equal(group(1, 2).timing, 'none');
      const d = rack([
        'raidGroups:',
        '  - { name: a, level: 5, disks: { count: 3, size: 1GiB, timing: hdd } }',
        '  - { name: b, level: 1, disks: { count: 2, size: 1GiB, timing: ssd } }',
      ]).dkcs[0];
      assert.deepEqual(d.raidGroups.map((g) => g.timing), ['hdd', 'ssd']);
    });

    it('defaults: no spares, no scrub, rebuild without pause, seed 1, write-through cache, no management API', () => {
      const c = rack(['raidGroups: [ { name: g, level: 1, disks: { count: 2, size: 1GiB } } ]']);
      const d = c.dkcs[0];
      assert.equal(d.spares, null);
      assert.equal(d.scrub, null);
      assert.deepEqual(d.rebuild, { paceMs: 0 });
      assert.equal(d.seed, 1);
      assert.equal(d.cache.mode, 'write-through');
      assert.equal(c.management, undefined);
      assert.ok(!('management' in c));
    });

    it('spares, cache write-back, rebuild, scrub, seed', () => {
      const d = rack([
        'raidGroups:',
        '  - { name: small, level: 1, disks: { count: 2, size: 1GiB } }',
        '  - { name: big, level: 6, disks: { count: 4, size: 4GiB } }',
        'spares: { count: 2, size: 1GiB }   # serves small only: no warning needed',
        'cache: { size: 64MiB, mode: write-back }',
        'rebuild: { paceMs: 5 }',
        'scrub: { intervalMinutes: 90 }',
        'seed: 4294967295',
      ]).dkcs[0];
      assert.deepEqual(d.spares, { count: 2, sizeBytes: 2 ** 30, timing: 'none' });
      assert.deepEqual(d.cache, { sizeBytes: 64 * 2 ** 20, mode: 'write-back' });
      assert.deepEqual(d.rebuild, { paceMs: 5 });
      assert.deepEqual(d.scrub, { intervalMs: 90 * 60_000 });
      assert.equal(d.seed, 4294967295);
    });

    it('scrub: {} scrubs hourly; seed 0 is a seed; spares take a timing', () => {
      const d = rack([
        'raidGroups: [ { name: g, level: 5, disks: { count: 3, size: 1GiB } } ]',
        'spares: { count: 1, size: 2GiB, timing: hdd }',
        'scrub: {}',
        'rebuild: {}',
        'seed: 0',
      ]).dkcs[0];
      assert.deepEqual(d.scrub, { intervalMs: 60 * 60_000 });
      assert.deepEqual(d.rebuild, { paceMs: 0 });
      assert.equal(d.seed, 0);
      assert.equal(d.spares?.timing, 'hdd');
    });

    it('management: listen parsed, token kept when given', () => {
      const g = ['raidGroups: [ { name: g, level: 1, disks: { count: 2, size: 1GiB } } ]'];
      assert.deepEqual(rack(g, ['management: { listen: "127.0.0.1:3280" }']).management, { listen: { host: '127.0.0.1', port: 3280 } });
      assert.deepEqual(rack(g, ['management: { listen: "[::1]:0", token: abcdefghijklmnop-_.~+/= }']).management, {
        listen: { host: '::1', port: 0 },
        token: 'abcdefghijklmnop-_.~+/=',
      });
      assert.deepEqual(rack(g, ['management: { listen: "127.8.9.10:1" }']).management?.listen, { host: '127.8.9.10', port: 1 });
    });

    it('loopback addresses', () => {
      for (const h of ['127.0.0.1', '127.255.255.254', '::1', '0:0:0:0:0:0:0:1']) assert.ok(isLoopback(h), h);
      for (const h of ['0.0.0.0', '::', '128.0.0.1', '10.0.0.1', 'localhost', '::ffff:127.0.0.1', '::2', '1.127.0.0']) assert.ok(!isLoopback(h), h);
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
