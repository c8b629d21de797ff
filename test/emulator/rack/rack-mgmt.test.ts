// The management API and the dkc CLI against a real rack: status from the firmware, and a disk
// failed from the command line degrading a real RAID group that a spare then rebuilds.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { parseConfig } from '../../../emulator/rack/config';
import { managementTokenFile } from '../../../emulator/rack/mgmt';
import { Rack } from '../../../emulator/rack/rack';
import { pattern, ROOT, silentLog, tmpDirs } from '../../helpers/common';

const run = promisify(execFile);
const CLI = path.join(ROOT, 'dist', 'emulator', 'cli', 'dkc.js');

const YAML = `
management: { listen: "127.0.0.1:0" }
dkcs:
  - name: dkc0
    serial: 410099
    spares: { count: 1, size: 8MiB }
    raidGroups: [ { name: rg5, level: 5, stripeSize: 16KiB, disks: { count: 3, size: 8MiB } } ]
    volumes: [ { name: v, group: rg5, size: 8MiB } ]
    targets:
      - name: iqn.2026-11.dev.dkc-emu:mgmt.t0
        portals: ["127.0.0.1:0"]
        luns: [ { lun: 0, volume: v } ]
`;

describe('management API and dkc CLI on a running rack', function () {
  this.timeout(60_000);
  let rack: Rack;
  after(async () => rack?.stop()); // before tmpDirs' after hook removes the directory
  const tmp = tmpDirs();
  let mgmt: string;
  let tokenFile: string;

  before(async () => {
    const r = parseConfig(YAML, 'mgmt.yaml');
    if (!r.ok) throw new Error(r.errors.join('\n'));
    const dataDir = tmp.make('rack-mgmt');
    rack = await Rack.open(r.config, { dataDir, log: silentLog });
    await rack.start();
    const a = rack.mgmt!.address();
    mgmt = `http://${a.host}:${a.port}`;
    tokenFile = managementTokenFile(dataDir);
    assert.equal((await fs.stat(tokenFile)).mode & 0o077, 0, 'the token file is private to its owner');
  });

  const dkc = (...args: string[]) => run(process.execPath, [CLI, ...args, '--mgmt', mgmt, '--token-file', tokenFile]);

  it('GET /v1/status without the token -> 401; with it, the firmware status', async () => {
    assert.equal((await fetch(`${mgmt}/v1/status`)).status, 401);
    const token = (await fs.readFile(tokenFile, 'utf8')).trim();
    const res = await fetch(`${mgmt}/v1/status`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
    const s = (await res.json()) as ReturnType<Rack['status']>;
    const g = s.dkcs[0].raidGroups[0];
    assert.deepEqual([g.name, g.level, g.state, g.members.length], ['rg5', 5, 'normal', 3]);
    assert.deepEqual(s.dkcs[0].spares.map((x) => [x.name, x.health]), [['spare-0', 'ok']]);
    assert.ok(s.dkcs[0].tasks.some((t) => t.name === 'correction-copy' && t.kind === 'perpetual'));
  });

  it('dkc disk fail degrades the group; the spare takes over; dkc status --json shows it; host data intact', async () => {
    const v = rack.dkc('dkc0').ldevByName('v');
    await v.write(100, pattern(512, 100, 64, 3), { fua: false });
    await dkc('disk', 'fail', 'dkc0', 'rg5-1');
    let g = rack.status().dkcs[0].raidGroups[0];
    for (let i = 0; i < 400 && g.state !== 'normal'; i++) {
      await new Promise((r) => setTimeout(r, 25));
      g = rack.status().dkcs[0].raidGroups[0];
    }
    const { stdout } = await dkc('status', '--json');
    const s = JSON.parse(stdout) as ReturnType<Rack['status']>;
    const slot1 = s.dkcs[0].raidGroups[0].members[1];
    assert.deepEqual([slot1.drive, slot1.state], ['spare-0', 'normal']);
    assert.deepEqual(s.dkcs[0].spares, []);
    assert.ok((await v.read(100, 64)).equals(pattern(512, 100, 64, 3)));
    const table = (await dkc('status')).stdout;
    assert.match(table, /rg5/);
    assert.match(table, /spare-0/);
  });

  it('refusals come back as the CLI error and a non-zero exit', async () => {
    await assert.rejects(dkc('disk', 'fail', 'dkc0', 'rg5-1'), (err: { code: number; stderr: string }) => err.code !== 0 && /already failed/.test(err.stderr));
    await assert.rejects(dkc('disk', 'pull', 'dkc0', 'nope'), (err: { code: number; stderr: string }) => err.code !== 0 && /no drive nope/.test(err.stderr));
    await assert.rejects(dkc('disk', 'replace', 'dkc0', 'rg5-0'), (err: { stderr: string }) => /healthy and in use/.test(err.stderr));
  });

  it('the failed drive, replaced by a blank one, joins the spare pool', async () => {
    await dkc('disk', 'replace', 'dkc0', 'rg5-1');
    const s = rack.status().dkcs[0];
    assert.deepEqual(s.spares.map((x) => [x.name, x.health]), [['rg5-1', 'ok']]);
  });
});
