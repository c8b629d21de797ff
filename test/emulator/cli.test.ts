import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { BROKEN_DIR, expectedErrors, ROOT, tmpDirs } from './helpers';

const CLI = path.join(ROOT, 'dist', 'emulator', 'cli.js');

function dkc(...args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8' });
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
