// The management API: HTTP/1.1 and JSON on a loopback port, for the operator's view of a running
// rack (GET /v1/status) and their hands on its drives (POST /v1/dkcs/:dkc/disks/:drive/:action).
// It only calls a RackControl (emulator/rack/control.ts); what the rack does with a request is the
// rack's business. docs/management.md describes it for people.
//
// Why it is safe enough on a shared machine: it listens on a loopback address only (checked here
// as well as in the config), and every request must carry the rack's bearer token (RFC 6750),
// compared in constant time. Bodies are bounded (MGMT_BODY_BYTES_MAX) and so are connections.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import type pino from 'pino';
import type { Portal } from '../../target/iscsi/types';
import type { ManagementConfig } from './config';
import { isLoopback } from './config-check';
import { ControlError, DiskAction, RackControl } from './control';
import { TOKEN_RE } from './schema';

/** Largest request body taken; beyond it: 413. The biggest real body is a few dozen bytes. */
export const MGMT_BODY_BYTES_MAX = 4096;
/** What an oversized body may still send (read and dropped) before its connection is cut. */
const MGMT_DRAIN_BYTES_MAX = 1024 * 1024;
const MGMT_CONNECTIONS_MAX = 32;
const MGMT_HEADER_BYTES_MAX = 8192;
/** node:http's own limits for a slow client (its timers, not ours: nothing here reads the clock). */
const MGMT_REQUEST_TIMEOUT_MS = 10_000;
const MGMT_HEADERS_TIMEOUT_MS = 5_000;
/** Bounds of the fault parameters (dkc disk slow / media-error). */
export const SLOW_LATENCY_MS_MAX = 60_000;
export const MEDIA_ERROR_SECTORS_MAX = 65_536;

export const DISK_ACTIONS = ['fail', 'pull', 'insert', 'replace', 'slow', 'media-error'] as const;
export type DiskActionName = (typeof DISK_ACTIONS)[number];

export const MANAGEMENT_TOKEN_FILE = 'management.token';

export function managementTokenFile(dataDir: string): string {
  return path.join(dataDir, MANAGEMENT_TOKEN_FILE);
}

/**
 * The management API's bearer token: the configured one, else the one kept in
 * <dataDir>/management.token, made on first use (32 random bytes, base64url; mode 0600). The
 * token guards a real machine, so it comes from the host's CSPRNG, not the kernel's seeded one.
 */
export async function managementToken(config: ManagementConfig, dataDir: string): Promise<string> {
  if (config.token !== undefined) return config.token;
  const file = managementTokenFile(dataDir);
  await fs.mkdir(dataDir, { recursive: true });
  const token = randomBytes(32).toString('base64url');
  try {
    const fh = await fs.open(file, 'wx', 0o600);
    try {
      await fh.writeFile(`${token}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    return token;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  await fs.chmod(file, 0o600);
  return readManagementToken(file);
}

/** The token in a token file (management.token, or the CLI's --token-file). */
export async function readManagementToken(file: string): Promise<string> {
  const token = (await fs.readFile(file, 'utf8')).trim();
  if (!TOKEN_RE.test(token)) throw new Error(`${file} holds no valid management token (16 to 256 b64token characters); remove it to get a new one`);
  return token;
}

export interface ManagementServerOptions {
  /** A loopback address; port 0: any free port (see address()). */
  listen: Portal;
  token: string;
  control: RackControl;
  log: pino.Logger;
}

type Reply = { status: number; body: unknown; headers?: Record<string, string> };

/** Who a request path names, or why it names nothing. */
type Route =
  | { kind: 'status' }
  | { kind: 'disk'; dkc: string; drive: string; action: DiskActionName }
  | { kind: 'none'; message: string };

const ALLOW: Record<Exclude<Route['kind'], 'none'>, string> = { status: 'GET', disk: 'POST' };

export class ManagementServer {
  private server: http.Server | null = null;
  private readonly tokenDigest: Buffer;
  private readonly log: pino.Logger;

  constructor(private readonly opts: ManagementServerOptions) {
    // The config checks this too; an API that drives faults must never face the network.
    if (!isLoopback(opts.listen.host)) throw new Error(`management API: ${opts.listen.host} is not a loopback address`);
    if (!TOKEN_RE.test(opts.token)) throw new Error('management API: the token must be 16 to 256 b64token characters (RFC 6750)');
    this.tokenDigest = digest(opts.token);
    this.log = opts.log.child({ component: 'mgmt' });
  }

  async start(): Promise<void> {
    if (this.server) return;
    const server = http.createServer(
      { requestTimeout: MGMT_REQUEST_TIMEOUT_MS, headersTimeout: MGMT_HEADERS_TIMEOUT_MS, maxHeaderSize: MGMT_HEADER_BYTES_MAX },
      (req, res) => this.handle(req, res),
    );
    server.maxConnections = MGMT_CONNECTIONS_MAX;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: this.opts.listen.host, port: this.opts.listen.port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.log.error({ err }, 'management API server error'));
    this.server = server;
    this.log.info({ address: this.address() }, 'management API listening');
  }

  /** Where it listens (the bound port when the configuration said 0). */
  address(): Portal {
    const a = this.server?.address() as AddressInfo | null | undefined;
    if (!a) throw new Error('management API: not listening');
    return { host: a.address, port: a.port };
  }

  /** Stop listening and cut every connection, idle or not. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.serve(req)
      .then((r) => send(res, r))
      .catch((err: unknown) => {
        if (err instanceof BodyAborted) return;
        this.log.error({ err, method: req.method, url: req.url }, 'management request failed');
        send(res, { status: 500, body: { error: `internal error: ${err instanceof Error ? err.message : String(err)}` } });
      });
  }

  private async serve(req: http.IncomingMessage): Promise<Reply> {
    // Authentication first: nobody learns which paths exist without the token.
    if (!this.authorized(req.headers.authorization)) {
      return { status: 401, body: { error: 'missing or wrong bearer token' }, headers: { 'WWW-Authenticate': 'Bearer realm="dkc-emu"' } };
    }
    const route = matchRoute(req.url ?? '/');
    if (route.kind === 'none') return { status: 404, body: { error: route.message } };
    if (req.method !== ALLOW[route.kind]) {
      return { status: 405, body: { error: `${req.method} not allowed here (use ${ALLOW[route.kind]})` }, headers: { Allow: ALLOW[route.kind] } };
    }
    const body = await readBody(req);
    if (body === null) {
      return { status: 413, body: { error: `request body larger than ${MGMT_BODY_BYTES_MAX} bytes` }, headers: { Connection: 'close' } };
    }
    if (route.kind === 'status') return { status: 200, body: this.opts.control.status() };
    const action = parseDiskAction(route.action, body);
    if (typeof action === 'string') return { status: 400, body: { error: action } };
    return this.disk(route.dkc, route.drive, action);
  }

  private async disk(dkc: string, drive: string, action: DiskAction): Promise<Reply> {
    const log = this.log.child({ dkc, drive });
    try {
      await this.opts.control.disk(dkc, drive, action);
    } catch (err) {
      if (!(err instanceof ControlError)) throw err;
      log.info({ action, status: err.status, reason: err.message }, 'disk action refused');
      return { status: err.status, body: { error: err.message } };
    }
    log.info({ action }, 'disk action done');
    return { status: 200, body: { dkc, drive, ...action } };
  }

  private authorized(header: string | undefined): boolean {
    const m = /^Bearer +(\S+) *$/i.exec(header ?? '');
    // Digests of equal length, so timingSafeEqual does not leak the token's length either.
    return m !== null && timingSafeEqual(digest(m[1]), this.tokenDigest);
  }
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

function send(res: http.ServerResponse, r: Reply): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = `${JSON.stringify(r.body)}\n`;
  res.writeHead(r.status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
    ...r.headers,
  });
  res.end(text);
}

export function matchRoute(url: string): Route {
  let pathname: string;
  try {
    pathname = new URL(url, 'http://mgmt.invalid').pathname;
  } catch {
    return { kind: 'none', message: 'bad request path' };
  }
  const parts = pathname.split('/').slice(1);
  if (parts.length === 2 && parts[0] === 'v1' && parts[1] === 'status') return { kind: 'status' };
  if (parts.length === 6 && parts[0] === 'v1' && parts[1] === 'dkcs' && parts[3] === 'disks') {
    const action = parts[5] as DiskActionName;
    if (!DISK_ACTIONS.includes(action)) return { kind: 'none', message: `no disk action ${parts[5]} (have: ${DISK_ACTIONS.join(', ')})` };
    const dkc = decode(parts[2]);
    const drive = decode(parts[4]);
    if (!dkc || !drive) return { kind: 'none', message: 'bad DKC or drive name in the path' };
    return { kind: 'disk', dkc, drive, action };
  }
  return { kind: 'none', message: `no such path ${pathname} (see docs/management.md)` };
}

function decode(seg: string): string | null {
  try {
    const s = decodeURIComponent(seg);
    return s.length > 0 ? s : null;
  } catch {
    return null;
  }
}

class BodyAborted extends Error {}

/** The request body, or null when it is larger than MGMT_BODY_BYTES_MAX (the rest is drained). */
function readBody(req: http.IncomingMessage): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    let settled = false;
    const settle = (v: Buffer | null | Error) => {
      if (settled) return;
      settled = true;
      if (v instanceof Error) reject(v);
      else resolve(v);
    };
    if (Number(req.headers['content-length']) > MGMT_BODY_BYTES_MAX) {
      over = true;
      settle(null);
    }
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (over) {
        if (size > MGMT_DRAIN_BYTES_MAX) req.socket.destroy();
        return;
      }
      if (size > MGMT_BODY_BYTES_MAX) {
        over = true;
        chunks.length = 0;
        settle(null);
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => settle(over ? null : Buffer.concat(chunks)));
    req.on('close', () => settle(new BodyAborted('request aborted')));
    req.on('error', () => settle(new BodyAborted('request aborted')));
  });
}

const BODY_KEYS: Record<DiskActionName, readonly string[]> = {
  fail: [], pull: [], insert: [], replace: [], slow: ['latencyMs'], 'media-error': ['sector', 'count'],
};

/** The DiskAction a body asks for, or what is wrong with it (400). An empty body is {}. */
export function parseDiskAction(action: DiskActionName, body: Buffer): DiskAction | string {
  let value: unknown = {};
  if (body.length > 0) {
    try {
      value = JSON.parse(body.toString('utf8'));
    } catch {
      return 'body must be JSON';
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'body must be a JSON object';
  const o = value as Record<string, unknown>;
  const keys: readonly string[] = BODY_KEYS[action];
  const unknown = Object.keys(o).find((k) => !keys.includes(k));
  if (unknown !== undefined) return `unknown key ${unknown} for ${action} (expected: ${keys.length ? keys.join(', ') : 'none'})`;
  switch (action) {
    case 'fail':
    case 'pull':
    case 'insert':
    case 'replace':
      return { action };
    case 'slow': {
      const latencyMs = o.latencyMs;
      if (!isIntIn(latencyMs, 0, SLOW_LATENCY_MS_MAX)) return `latencyMs must be a whole number from 0 to ${SLOW_LATENCY_MS_MAX}`;
      return { action, latencyMs };
    }
    case 'media-error': {
      const { sector, count = 1 } = o;
      if (!isIntIn(sector, 0, Number.MAX_SAFE_INTEGER)) return 'sector must be a whole number from 0';
      if (!isIntIn(count, 1, MEDIA_ERROR_SECTORS_MAX)) return `count must be a whole number from 1 to ${MEDIA_ERROR_SECTORS_MAX}`;
      return { action, sector, count };
    }
  }
}

function isIntIn(v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max;
}
