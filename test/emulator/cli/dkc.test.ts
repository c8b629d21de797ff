import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { BROKEN_DIR, expectedErrors, ROOT, tmpDirs } from '../../helpers/common';
import { fakeRack, STATUS, TOKEN } from '../rack/mgmt.test';

const CLI = path.join(ROOT, 'dist', 'emulator', 'cli', 'dkc.js');

function dkc(...args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8' });
}

/** dkc without blocking the event loop (the management server under test runs in this process). */
function dkcAsync(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

describe('dkc validate', () => {
  it('prints OK and exits 0 for configs/default.yaml', () => {
    const r = dkc('validate', 'configs/default.yaml');
    assert.equal(r.stdout, 'OK\n');
    assert.equal(r.status, 0);
  });

  const broken = readdirSync(BROKEN_DIR).filter((x) => x.endsWith('.yaml')).sort().map((f) => path.relative(ROOT, path.join(BROKEN_DIR, f)));

  for (const rel of broken.filter((f) => /bad-size|unknown-key|yaml-syntax/.test(f))) {
    it(`${path.basename(rel)}: prints FILE:LINE: KEY: message and exits 1`, () => {
      const r = dkc('validate', rel);
      assert.equal(r.status, 1);
      assert.equal(r.stdout, expectedErrors(rel).map((e) => `${e}\n`).join(''));
    });
  }

  it(`every broken config at once (${broken.length} files): each file's errors in order, exit 1`, () => {
    const r = dkc('validate', ...broken);
    assert.equal(r.status, 1);
    assert.equal(r.stdout, broken.flatMap(expectedErrors).map((e) => `${e}\n`).join(''));
  });

  it('several good files: FILE: OK each, exit 0', () => {
    const r = dkc('validate', 'configs/default.yaml', 'configs/test.yaml');
    assert.equal(r.status, 0);
    assert.equal(r.stdout, 'configs/default.yaml: OK\nconfigs/test.yaml: OK\n');
  });

  it('bin/dkc runs the same CLI', () => {
    const r = spawnSync(path.join(ROOT, 'bin', 'dkc'), ['validate', 'configs/test.yaml'], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(r.stdout, 'OK\n');
    assert.equal(r.status, 0);
  });

  it('--help describes the command', () => {
    const r = dkc('validate', '--help');
    assert.equal(r.status, 0);
    assert.match(r.stdout, /Usage: dkc validate \[options\] <file\.\.\.>/);
  });
});

describe('dkc start', () => {
  const tmp = tmpDirs();

  it('--help lists --config, --listen, --data-dir, --log-level', () => {
    const r = dkc('start', '--help');
    assert.equal(r.status, 0);
    for (const o of ['--config <file>', '--listen <host:port>', '--data-dir <dir>', '--log-level <level>']) assert.ok(r.stdout.includes(o), o);
  });

  it('a bad --listen is refused before anything starts', () => {
    const r = dkc('start', '--config', 'configs/test.yaml', '--listen', 'nowhere');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /--listen <host:port>' argument 'nowhere' is invalid. must be HOST:PORT/);
  });

  it('a portal already in use: error, exit 1, the data directory is released', async () => {
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    const port = (busy.address() as net.AddressInfo).port;
    const dataDir = tmp.make('dkc-busy');
    try {
      const r = await new Promise<{ status: number | null; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, [CLI, 'start', '--config', 'configs/test.yaml', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir, '--log-level', 'silent'], { cwd: ROOT });
        let stderr = '';
        child.stderr.on('data', (c) => (stderr += c));
        child.on('close', (status) => resolve({ status, stderr }));
      });
      assert.equal(r.status, 1);
      assert.match(r.stderr, /EADDRINUSE/);
      assert.ok(!existsSync(path.join(dataDir, 'lock')));
    } finally {
      busy.close();
    }
  });

  it('an invalid config is reported with file:line and exit 1', () => {
    const r = dkc('start', '--config', path.relative(ROOT, path.join(BROKEN_DIR, 'bad-size.yaml')));
    assert.equal(r.status, 1);
    assert.match(r.stderr, /bad-size\.yaml:10: dkcs\[0\]\.volumes\[0\]\.size: must be a size like 10GiB/);
  });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`serves configs/test.yaml: prints portal, targets and LUNs; ${signal} stops it cleanly (exit 0)`, async function () {
      this.timeout(30_000);
      const dataDir = tmp.make('dkc-start');
      const child = spawn(process.execPath, [CLI, 'start', '--config', 'configs/test.yaml', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--log-level', 'warn'], {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stderr.on('data', (c) => (stderr += c));
      const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('close', (code, sig) => resolve([code, sig])));
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (c) => {
          stdout += c;
          if (/LUN 3 /.test(stdout) && /mutual/.test(stdout)) resolve();
        });
        child.on('close', () => reject(new Error(`exited early:\n${stdout}\n${stderr}`)));
      });
      const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(stdout)?.[1]);
      assert.ok(port > 0, stdout);
      assert.match(stdout, /target iqn\.2026-11\.dev\.dkc-emu:test\.main/);
      assert.match(stdout, /LUN 1 +disk4k +256MiB +65536 x 4096 B/);
      assert.match(stdout, /LUN 3 +readonly .* read-only/);
      await new Promise<void>((resolve, reject) => {
        const s = net.connect(port, '127.0.0.1', () => {
          s.destroy();
          resolve();
        });
        s.on('error', reject);
      });
      child.kill(signal);
      assert.deepEqual(await exited, [0, null], stderr);
      assert.ok(!existsSync(path.join(dataDir, 'lock')), 'the data directory lock is released');
    });
  }
});

describe('dkc --help', () => {
  for (const cmd of [[], ['start'], ['validate'], ['status'], ['disk'], ...['fail', 'pull', 'insert', 'replace', 'slow', 'media-error'].map((a) => ['disk', a])]) {
    it(`dkc ${[...cmd, '--help'].join(' ')} prints its usage`, () => {
      const r = dkc(...cmd, '--help');
      assert.equal(r.status, 0, r.stderr);
      assert.ok(r.stdout.startsWith(`Usage: ${['dkc', ...cmd].join(' ')} `), r.stdout);
    });
  }

  it('the management commands list where the API is and its token', () => {
    for (const cmd of [['status'], ['disk', 'fail'], ['disk', 'media-error']]) {
      const r = dkc(...cmd, '--help');
      for (const o of ['--mgmt <url>', '--token <token>', '--token-file <file>', '--config <file>', '--data-dir <dir>']) assert.ok(r.stdout.includes(o), `${cmd}: ${o}`);
    }
    assert.match(dkc('status', '--help').stdout, /--json/);
    assert.match(dkc('disk', 'slow', '--help').stdout, /Usage: dkc disk slow \[options\] <dkc> <drive> <ms>/);
    assert.match(dkc('disk', 'media-error', '--help').stdout, /Usage: dkc disk media-error \[options\] <dkc> <drive> <sector> \[count\]/);
  });
});

describe('dkc status and dkc disk (against a management API with a fake rack)', () => {
  const rack = fakeRack();
  const tmp = tmpDirs();
  const api = () => ['--mgmt', rack.url(), '--token', TOKEN];
  beforeEach(() => rack.control().calls.splice(0));

  /** A rack file whose management section points at the fake rack. */
  function rackFile(token?: string): string {
    const dir = tmp.make('dkc-mgmt-config');
    const file = path.join(dir, 'fake.yaml');
    writeFileSync(file, [
      'dkcs:',
      '  - { name: dkc0, serial: 1, raidGroups: [ { name: rg0, level: 1, disks: { count: 2, size: 1GiB } } ], volumes: [], targets: [] }',
      'management:',
      `  listen: 127.0.0.1:${new URL(rack.url()).port}`,
      ...(token ? [`  token: ${token}`] : []),
    ].join('\n'));
    return file;
  }

  it('status: a table of the DKC, its RAID groups with each disk and the rebuild, spares, volumes, LUNs, pairs, tasks', async () => {
    const r = await dkcAsync('status', ...api());
    assert.equal(r.status, 0, r.stderr);
    const out = r.stdout;
    assert.match(out, /^rack fake\n/);
    assert.match(out, /DKC dkc0 +serial 410010 +clock 61\.500s +cache write-back 256MiB \(used 12\.5MiB, dirty 1MiB, hits 1200, misses 34\)/);
    assert.match(out, /RAID group rg0: RAID 6, rebuilding, 8GiB, stripe 64KiB, 32768 rows +rebuilding slot 1 \(spare-0\) 25\.0%/);
    assert.match(out, /\n +SLOT +DRIVE +STATE +HEALTH +ERRORS +REBUILT\n/);
    assert.match(out, /\n +1 +spare-0 +rebuilding +ok +0 +25\.0% \(8192\/32768 rows\)\n/);
    assert.match(out, /\n +2 +rg0-2 +normal +ok +3\n/);
    assert.match(out, /\n +spare-1 +2GiB +ok +0ms +0\n/);
    assert.match(out, /\n +0 +vol0 +rg0 +512 +4194304 +1048576 \(25\.0%\)\n/);
    assert.match(out, /\n +iqn\.2026-11\.dev\.dkc-emu:dkc0\.raid6 +1 +1 \(vol4k\)\n/);
    assert.match(out, /\n +PAIR +GROUP +PRIMARY +SECONDARY +STATE +COPY +DIFFERENCE +SPLIT AREAS\n +db +cg +0 \(vol0\) +2 \(vol0-copy\) +COPY +75\.0% \(1048576 blocks to go\) +1048576 blocks +0\n/);
    assert.match(out, /\n +TASK +KIND +RUNS +BUSY +WAITS +ACTIVE +DETAIL\n/);
    assert.match(out, /\n +rebuild +perpetual +8192 +1234\.6ms +8191 +1 +rg0 slot 1: 25\.0%\n/);
  });

  it('status --json: the API\'s RackStatus', async () => {
    const r = await dkcAsync('status', '--json', ...api());
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), STATUS);
  });

  it('status --token-file', async () => {
    const file = path.join(tmp.make('dkc-token'), 'token');
    writeFileSync(file, `${TOKEN}\n`);
    const r = await dkcAsync('status', '--json', '--mgmt', rack.url(), '--token-file', file);
    assert.equal(r.status, 0, r.stderr);
  });

  it('status --config --data-dir: the address from management.listen, the token from <data-dir>/management.token', async () => {
    const dataDir = tmp.make('dkc-data');
    writeFileSync(path.join(dataDir, 'management.token'), `${TOKEN}\n`, { mode: 0o600 });
    const r = await dkcAsync('status', '--json', '--config', rackFile(), '--data-dir', dataDir);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).rack, 'fake');
  });

  it('status --config: the token from the rack file when it has one', async () => {
    const r = await dkcAsync('status', '--json', '--config', rackFile(TOKEN));
    assert.equal(r.status, 0, r.stderr);
  });

  for (const action of ['fail', 'pull', 'insert', 'replace']) {
    it(`disk ${action} DKC DRIVE`, async () => {
      const r = await dkcAsync('disk', action, 'dkc0', 'rg0-2', ...api());
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, `dkc0 rg0-2: ${action}: OK\n`);
      assert.deepEqual(rack.control().calls, [{ dkc: 'dkc0', drive: 'rg0-2', action: { action } }]);
    });
  }

  it('disk slow DKC DRIVE MS', async () => {
    const r = await dkcAsync('disk', 'slow', 'dkc0', 'rg0-3', '250', ...api());
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(rack.control().calls[0].action, { action: 'slow', latencyMs: 250 });
  });

  it('disk media-error DKC DRIVE SECTOR [COUNT] (COUNT defaults to 1)', async () => {
    assert.equal((await dkcAsync('disk', 'media-error', 'dkc0', 'rg0-3', '2048', '8', ...api())).status, 0);
    assert.equal((await dkcAsync('disk', 'media-error', 'dkc0', 'rg0-3', '7', ...api())).status, 0);
    assert.deepEqual(rack.control().calls.map((c) => c.action), [
      { action: 'media-error', sector: 2048, count: 8 },
      { action: 'media-error', sector: 7, count: 1 },
    ]);
  });

  for (const [what, args, message] of [
    ['an unknown drive', ['disk', 'fail', 'dkc0', 'rg0-9'], 'dkc: dkc0 has no drive rg0-9 (HTTP 404)\n'],
    ['an unknown DKC', ['disk', 'pull', 'dkc7', 'rg0-0'], 'dkc: no DKC dkc7 (HTTP 404)\n'],
    ['a refusal', ['disk', 'insert', 'dkc0', 'rg0-1'], 'dkc: rg0-1 is in its bay (HTTP 409)\n'],
  ] as const) {
    it(`the API's error (${what}): its message on stderr, exit 1`, async () => {
      const r = await dkcAsync(...args, ...api());
      assert.equal(r.status, 1);
      assert.equal(r.stderr, message);
      assert.equal(r.stdout, '');
    });
  }

  it('a wrong token: 401 message, exit 1', async () => {
    const r = await dkcAsync('status', '--mgmt', rack.url(), '--token', 'wrong-token-0123456789');
    assert.equal(r.status, 1);
    assert.equal(r.stderr, 'dkc: missing or wrong bearer token (HTTP 401)\n');
  });

  it('nothing listening: says it cannot reach the API, exit 1', async () => {
    const s = net.createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    const port = (s.address() as net.AddressInfo).port;
    await new Promise<void>((r) => s.close(() => r()));
    const r = await dkcAsync('status', '--mgmt', `http://127.0.0.1:${port}`, '--token', TOKEN);
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`^dkc: cannot reach the management API at http://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
  });

  for (const [what, args, message] of [
    ['no --mgmt and no --config', ['status'], /^dkc: where is the management API\? Pass --mgmt URL/],
    ['--mgmt without a token', ['status', '--mgmt', 'http://127.0.0.1:3280'], /^dkc: no management token: pass --token, --token-file or --config/],
    ['--token with --token-file', ['status', '--mgmt', 'http://127.0.0.1:3280', '--token', TOKEN, '--token-file', 'x'], /cannot be used with option '--token-file <file>'/],
    ['--mgmt not an http URL', ['status', '--mgmt', 'https://127.0.0.1:3280/x', '--token', TOKEN], /--mgmt <url>' argument .* is invalid. must be http:\/\/HOST:PORT/],
    ['a rack file without management:', ['status', '--config', 'configs/test.yaml'], /^dkc: configs\/test\.yaml has no management: section/],
    ['no token file in the data dir', ['status', '--config', 'configs/default.yaml', '--data-dir', '/nonexistent/dkc'], /^dkc: no token file \/nonexistent\/dkc\/management\.token/],
    ['a bad MS', ['disk', 'slow', 'dkc0', 'rg0-0', 'fast', '--mgmt', 'http://127.0.0.1:3280', '--token', TOKEN], /ms must be a whole number from 0 to 60000/],
    ['COUNT 0', ['disk', 'media-error', 'dkc0', 'rg0-0', '1', '0', '--mgmt', 'http://127.0.0.1:3280', '--token', TOKEN], /count must be a whole number from 1 to 65536/],
    ['a missing DRIVE', ['disk', 'fail', 'dkc0', '--mgmt', 'http://127.0.0.1:3280', '--token', TOKEN], /missing required argument 'drive'/],
  ] as const) {
    it(`${what}: refused before any request, exit 1`, async () => {
      const r = await dkcAsync(...args);
      assert.equal(r.status, 1);
      assert.match(r.stderr, message);
      assert.equal(rack.control().calls.length, 0);
    });
  }
});
