import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { ControlError, DiskAction, RackControl, RackStatus } from '../../../emulator/rack/control';
import {
  DISK_ACTIONS, managementToken, managementTokenFile, ManagementServer, MGMT_BODY_BYTES_MAX, readManagementToken,
} from '../../../emulator/rack/mgmt';
import { TOKEN_RE } from '../../../emulator/rack/schema';
import { silentLog, tmpDirs } from '../../helpers/common';

export const TOKEN = 'test-token-0123456789abcdef';

/** A RackStatus as a rack with a rebuilding RAID 6 group would report it (firmware/status.ts). */
export const STATUS: RackStatus = {
  rack: 'fake',
  dkcs: [
    {
      name: 'dkc0',
      serial: 410010,
      cache: { mode: 'write-back', sizeBytes: 256 * 2 ** 20, usedBytes: 12.5 * 2 ** 20, dirtyBytes: 2 ** 20, hits: 1200, misses: 34 },
      raidGroups: [
        {
          name: 'rg0',
          level: 6,
          state: 'rebuilding',
          sizeBytes: 8 * 2 ** 30,
          stripeSizeBytes: 65536,
          rowCount: 32768,
          members: [
            { slot: 0, drive: 'rg0-0', state: 'normal', rebuiltRows: 0, errors: 0, health: 'ok' },
            { slot: 1, drive: 'spare-0', state: 'rebuilding', rebuiltRows: 8192, errors: 0, health: 'ok' },
            { slot: 2, drive: 'rg0-2', state: 'normal', rebuiltRows: 0, errors: 3, health: 'ok' },
            { slot: 3, drive: 'rg0-3', state: 'normal', rebuiltRows: 0, errors: 0, health: 'ok' },
          ],
          rebuild: { slot: 1, drive: 'spare-0', rowsDone: 8192, rowCount: 32768, percent: 25 },
        },
      ],
      spares: [{ name: 'spare-1', sizeBytes: 2 * 2 ** 30, health: 'ok', slowMs: 0, mediaErrors: 0 }],
      volumes: [
        { ldev: 0, name: 'vol0', group: 'rg0', blockSize: 512, blockCount: 4194304, allocatedBlocks: 1048576 },
        { ldev: 1, name: 'vol4k', group: 'rg0', blockSize: 4096, blockCount: 262144, allocatedBlocks: 0 },
        { ldev: 2, name: 'vol0-copy', group: 'rg0', blockSize: 512, blockCount: 4194304, allocatedBlocks: 1048576 },
      ],
      luns: [
        { port: 'iqn.2026-11.dev.dkc-emu:dkc0.raid6', lun: 0, ldev: 0 },
        { port: 'iqn.2026-11.dev.dkc-emu:dkc0.raid6', lun: 1, ldev: 1 },
      ],
      pairs: [{
        id: 'db', group: 'cg', primary: 0, secondary: 2, state: 'COPY', direction: 'forward', splitAreas: [],
        differenceBlocks: 1048576, copiedBlocks: 3145728, imagePending: false,
        copy: { totalBlocks: 4194304, remainingBlocks: 1048576, percent: 75 },
      }],
      tasks: [
        { name: 'rebuild', kind: 'perpetual', runs: 8192, busyMs: 1234.56, waits: 8191, active: 1, detail: 'rg0 slot 1: 25.0%' },
        { name: 'host-write', kind: 'request', runs: 42, busyMs: 3, waits: 0, active: 0 },
      ],
      clockMs: 61500,
    },
  ],
};

/** A RackControl that records what it is asked and refuses as a rack would. */
export class FakeControl implements RackControl {
  readonly calls: { dkc: string; drive: string; action: DiskAction }[] = [];

  status(): RackStatus {
    return STATUS;
  }

  async disk(dkc: string, drive: string, action: DiskAction): Promise<void> {
    if (dkc !== 'dkc0') throw new ControlError(404, `no DKC ${dkc}`);
    if (drive === 'rg0-9') throw new ControlError(404, `dkc0 has no drive ${drive}`);
    if (drive === 'rg0-1' && action.action === 'insert') throw new ControlError(409, 'rg0-1 is in its bay');
    if (drive === 'bad-sector') throw new ControlError(400, 'sector beyond the end of the drive');
    if (drive === 'bug') throw new Error('a bug in the rack');
    this.calls.push({ dkc, drive, action });
  }
}

/** A ManagementServer on 127.0.0.1, any free port, with a FakeControl; stopped after the block. */
export function fakeRack(): { server: () => ManagementServer; control: () => FakeControl; url: () => string } {
  let server: ManagementServer;
  let control: FakeControl;
  before(async () => {
    control = new FakeControl();
    server = new ManagementServer({ listen: { host: '127.0.0.1', port: 0 }, token: TOKEN, control, log: silentLog });
    await server.start();
  });
  after(() => server.stop());
  return { server: () => server, control: () => control, url: () => `http://127.0.0.1:${server.address().port}` };
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  json: unknown;
}

/** One request with node:http (exact control over headers and body framing). */
function request(url: string, method: string, route: string, opts: { token?: string | null; auth?: string; body?: string | Buffer; chunked?: boolean } = {}): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (opts.auth !== undefined) headers.Authorization = opts.auth;
  else if (opts.token !== null) headers.Authorization = `Bearer ${opts.token ?? TOKEN}`;
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}${route}`, { method, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, json: text ? JSON.parse(text) : undefined }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (opts.body !== undefined && opts.chunked) {
      // No Content-Length: the bound must hold while the body streams in.
      const buf = Buffer.from(opts.body);
      for (let i = 0; i < buf.length; i += 1024) req.write(buf.subarray(i, i + 1024));
      req.end();
    } else {
      req.end(opts.body);
    }
  });
}

describe('management API', () => {
  const rack = fakeRack();
  const call = (method: string, route: string, opts?: Parameters<typeof request>[3]) => request(rack.url(), method, route, opts);
  const disk = (drive: string, action: string, body?: unknown) =>
    call('POST', `/v1/dkcs/dkc0/disks/${drive}/${action}`, { body: body === undefined ? undefined : JSON.stringify(body) });

  describe('listening', () => {
    it('on the loopback address it was given, port 0 -> a free port', () => {
      const a = rack.server().address();
      assert.equal(a.host, '127.0.0.1');
      assert.ok(a.port > 0);
    });

    for (const host of ['0.0.0.0', '::', '192.168.1.10', '10.0.0.1', 'localhost', '::ffff:127.0.0.1']) {
      it(`never off loopback: ${host} is refused before anything listens`, () => {
        assert.throws(
          () => new ManagementServer({ listen: { host, port: 0 }, token: TOKEN, control: new FakeControl(), log: silentLog }),
          /is not a loopback address/,
        );
      });
    }

    it('a token that is not an RFC 6750 b64token is refused', () => {
      for (const token of ['short', 'has a space in it 0123', `${'x'.repeat(257)}`]) {
        assert.throws(() => new ManagementServer({ listen: { host: '127.0.0.1', port: 0 }, token, control: new FakeControl(), log: silentLog }), /token/);
      }
    });

    it('stop() closes kept-alive connections and frees the port', async () => {
      const s = new ManagementServer({ listen: { host: '127.0.0.1', port: 0 }, token: TOKEN, control: new FakeControl(), log: silentLog });
      await s.start();
      const url = `http://127.0.0.1:${s.address().port}`;
      const r = await fetch(`${url}/v1/status`, { headers: { Authorization: `Bearer ${TOKEN}` } });
      assert.equal(r.status, 200);
      await r.json();
      await s.stop();
      await assert.rejects(fetch(`${url}/v1/status`, { headers: { Authorization: `Bearer ${TOKEN}` } }));
    });
  });

  describe('authentication', () => {
    it('no Authorization header -> 401 with WWW-Authenticate: Bearer', async () => {
      const r = await call('GET', '/v1/status', { token: null });
      assert.equal(r.status, 401);
      assert.match(String(r.headers['www-authenticate']), /^Bearer /);
      assert.deepEqual(r.json, { error: 'missing or wrong bearer token' });
    });

    for (const [what, auth] of [
      ['a wrong token', `Bearer ${TOKEN.slice(0, -1)}x`],
      ['a prefix of the token', `Bearer ${TOKEN.slice(0, 10)}`],
      ['the token and more', `Bearer ${TOKEN}x`],
      ['Basic auth', `Basic ${Buffer.from(`u:${TOKEN}`).toString('base64')}`],
      ['the bare token', TOKEN],
      ['an empty Bearer', 'Bearer '],
    ] as const) {
      it(`${what} -> 401`, async () => {
        assert.equal((await call('GET', '/v1/status', { auth })).status, 401);
      });
    }

    it('before routing: unknown paths and disk actions also answer 401, and nothing is done', async () => {
      assert.equal((await call('GET', '/nowhere', { token: 'wrong-token-0123456789' })).status, 401);
      assert.equal((await call('POST', '/v1/dkcs/dkc0/disks/rg0-0/fail', { token: null })).status, 401);
      assert.equal(rack.control().calls.length, 0);
    });

    it('the scheme is case-insensitive (RFC 7235 2.1)', async () => {
      assert.equal((await call('GET', '/v1/status', { auth: `bearer ${TOKEN}` })).status, 200);
    });
  });

  describe('GET /v1/status', () => {
    it('-> 200 and the RackStatus as JSON', async () => {
      const r = await call('GET', '/v1/status');
      assert.equal(r.status, 200);
      assert.match(String(r.headers['content-type']), /^application\/json/);
      assert.equal(r.headers['cache-control'], 'no-store');
      assert.deepEqual(r.json, STATUS);
    });

    it('a query string is ignored', async () => {
      assert.equal((await call('GET', '/v1/status?verbose=1')).status, 200);
    });

    it('POST -> 405 with Allow: GET', async () => {
      const r = await call('POST', '/v1/status', { body: '{}' });
      assert.equal(r.status, 405);
      assert.equal(r.headers.allow, 'GET');
    });
  });

  describe('POST /v1/dkcs/:dkc/disks/:drive/:action', () => {
    beforeEach(() => rack.control().calls.splice(0));

    for (const action of ['fail', 'pull', 'insert', 'replace'] as const) {
      it(`${action} (no body) -> 200, the control is asked`, async () => {
        const r = await call('POST', `/v1/dkcs/dkc0/disks/rg0-2/${action}`);
        assert.equal(r.status, 200);
        assert.deepEqual(r.json, { dkc: 'dkc0', drive: 'rg0-2', action });
        assert.deepEqual(rack.control().calls, [{ dkc: 'dkc0', drive: 'rg0-2', action: { action } }]);
      });
    }

    it('fail with an empty JSON object -> 200', async () => {
      assert.equal((await disk('rg0-0', 'fail', {})).status, 200);
    });

    it('slow {latencyMs} -> 200', async () => {
      const r = await disk('rg0-3', 'slow', { latencyMs: 250 });
      assert.equal(r.status, 200);
      assert.deepEqual(rack.control().calls[0].action, { action: 'slow', latencyMs: 250 });
    });

    it('media-error {sector, count} -> 200; count defaults to 1', async () => {
      assert.equal((await disk('rg0-3', 'media-error', { sector: 2048, count: 8 })).status, 200);
      assert.equal((await disk('rg0-3', 'media-error', { sector: 7 })).status, 200);
      assert.deepEqual(rack.control().calls.map((c) => c.action), [
        { action: 'media-error', sector: 2048, count: 8 },
        { action: 'media-error', sector: 7, count: 1 },
      ]);
    });

    it('names in the path are URL-decoded', async () => {
      assert.equal((await call('POST', '/v1/dkcs/dkc%30/disks/rg0%2D1/pull')).status, 200);
      assert.deepEqual(rack.control().calls[0], { dkc: 'dkc0', drive: 'rg0-1', action: { action: 'pull' } });
    });

    it('GET -> 405 with Allow: POST, nothing done', async () => {
      const r = await call('GET', '/v1/dkcs/dkc0/disks/rg0-0/fail');
      assert.equal(r.status, 405);
      assert.equal(r.headers.allow, 'POST');
      assert.equal(rack.control().calls.length, 0);
    });

    for (const [what, action, body, message] of [
      ['not JSON', 'fail', 'fail!', /^body must be JSON$/],
      ['a JSON array', 'fail', '[]', /must be a JSON object/],
      ['a JSON string', 'slow', '"250"', /must be a JSON object/],
      ['an unknown key', 'fail', '{"now":true}', /unknown key now for fail \(expected: none\)/],
      ['slow without latencyMs', 'slow', '{}', /latencyMs must be a whole number from 0 to 60000/],
      ['slow with a fraction', 'slow', '{"latencyMs":1.5}', /latencyMs/],
      ['slow with a string', 'slow', '{"latencyMs":"250"}', /latencyMs/],
      ['slow beyond its bound', 'slow', '{"latencyMs":60001}', /latencyMs/],
      ['media-error without sector', 'media-error', '{"count":1}', /sector must be a whole number/],
      ['media-error with a negative sector', 'media-error', '{"sector":-1}', /sector/],
      ['media-error with count 0', 'media-error', '{"sector":0,"count":0}', /count must be a whole number from 1 to 65536/],
      ['media-error with a typo', 'media-error', '{"sector":0,"cnt":2}', /unknown key cnt for media-error \(expected: sector, count\)/],
    ] as const) {
      it(`${what} -> 400`, async () => {
        const r = await call('POST', `/v1/dkcs/dkc0/disks/rg0-0/${action}`, { body });
        assert.equal(r.status, 400);
        assert.match((r.json as { error: string }).error, message);
        assert.equal(rack.control().calls.length, 0);
      });
    }

    for (const [what, dkc, drive, action, status, message] of [
      ['an unknown DKC', 'dkc9', 'rg0-0', 'fail', 404, 'no DKC dkc9'],
      ['an unknown drive', 'dkc0', 'rg0-9', 'fail', 404, 'dkc0 has no drive rg0-9'],
      ['a conflict', 'dkc0', 'rg0-1', 'insert', 409, 'rg0-1 is in its bay'],
      ['a bad parameter', 'dkc0', 'bad-sector', 'media-error', 400, 'sector beyond the end of the drive'],
    ] as const) {
      it(`refused by the rack (${what}) -> ControlError's status ${status} and message`, async () => {
        const r = await call('POST', `/v1/dkcs/${dkc}/disks/${drive}/${action}`, { body: action === 'media-error' ? '{"sector":1}' : undefined });
        assert.equal(r.status, status);
        assert.deepEqual(r.json, { error: message });
      });
    }

    it('any other exception from the rack -> 500, and the server goes on', async () => {
      const r = await disk('bug', 'fail');
      assert.equal(r.status, 500);
      assert.match((r.json as { error: string }).error, /a bug in the rack/);
      assert.equal((await call('GET', '/v1/status')).status, 200);
    });
  });

  describe('unknown paths -> 404', () => {
    for (const route of ['/', '/v1', '/v2/status', '/v1/status/', '/v1/dkcs/dkc0/disks/rg0-0', '/v1/dkcs/dkc0/disks/rg0-0/explode', '/v1/dkcs/dkc0/drives/rg0-0/fail', '/v1/dkcs//disks/rg0-0/fail']) {
      it(route, async () => {
        const r = await call('POST', route);
        assert.equal(r.status, 404);
        assert.equal(typeof (r.json as { error: string }).error, 'string');
      });
    }

    it('an unknown action names the ones there are', async () => {
      const r = await call('POST', '/v1/dkcs/dkc0/disks/rg0-0/explode');
      assert.match((r.json as { error: string }).error, new RegExp(DISK_ACTIONS.join(', ')));
    });
  });

  describe(`request bodies are bounded (${MGMT_BODY_BYTES_MAX} bytes)`, () => {
    beforeEach(() => rack.control().calls.splice(0));
    const padded = (n: number) => `{"latencyMs":5}`.padEnd(n, ' ');

    it('exactly the bound is taken', async () => {
      const r = await call('POST', '/v1/dkcs/dkc0/disks/rg0-0/slow', { body: padded(MGMT_BODY_BYTES_MAX) });
      assert.equal(r.status, 200);
    });

    it('one byte more, with Content-Length -> 413, nothing done', async () => {
      const r = await call('POST', '/v1/dkcs/dkc0/disks/rg0-0/slow', { body: padded(MGMT_BODY_BYTES_MAX + 1) });
      assert.equal(r.status, 413);
      assert.match((r.json as { error: string }).error, /larger than 4096 bytes/);
      assert.equal(rack.control().calls.length, 0);
    });

    it('a chunked body that grows past the bound -> 413', async () => {
      const r = await call('POST', '/v1/dkcs/dkc0/disks/rg0-0/slow', { body: padded(64 * 1024), chunked: true });
      assert.equal(r.status, 413);
      assert.equal(rack.control().calls.length, 0);
    });

    it('a large body gets its 413 too, and the server goes on', async () => {
      assert.equal((await call('POST', '/v1/dkcs/dkc0/disks/rg0-0/fail', { body: 'x'.repeat(256 * 1024) })).status, 413);
      assert.equal((await call('GET', '/v1/status')).status, 200);
      assert.equal(rack.control().calls.length, 0);
    });
  });
});

describe('management token', () => {
  const tmp = tmpDirs();
  const listen = { host: '127.0.0.1', port: 0 };

  it('the configured token is used as it is; no file is written', async () => {
    const dir = tmp.make('mgmt-token');
    assert.equal(await managementToken({ listen, token: TOKEN }, dir), TOKEN);
    assert.throws(() => statSync(managementTokenFile(dir)), /ENOENT/);
  });

  it('without one: made on first use in <data-dir>/management.token, mode 0600, kept across calls', async () => {
    const dir = path.join(tmp.make('mgmt-token'), 'not-yet');
    const token = await managementToken({ listen }, dir);
    assert.match(token, TOKEN_RE);
    assert.ok(token.length >= 43, '32 random bytes');
    const file = managementTokenFile(dir);
    assert.equal(file, path.join(dir, 'management.token'));
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(readFileSync(file, 'utf8'), `${token}\n`);
    assert.equal(await managementToken({ listen }, dir), token);
    assert.equal(await readManagementToken(file), token);
  });

  it('two racks get different tokens', async () => {
    const a = await managementToken({ listen }, tmp.make('mgmt-token'));
    const b = await managementToken({ listen }, tmp.make('mgmt-token'));
    assert.notEqual(a, b);
  });

  it('a token file that others can read is made 0600', async () => {
    const dir = tmp.make('mgmt-token');
    writeFileSync(managementTokenFile(dir), `${TOKEN}\n`, { mode: 0o644 });
    assert.equal(await managementToken({ listen }, dir), TOKEN);
    assert.equal(statSync(managementTokenFile(dir)).mode & 0o777, 0o600);
  });

  it('a token file holding no valid token is an error naming it', async () => {
    const dir = tmp.make('mgmt-token');
    writeFileSync(managementTokenFile(dir), 'short\n');
    await assert.rejects(managementToken({ listen }, dir), /management\.token holds no valid management token/);
  });
});
