// The `dkc` command: start a rack, validate a rack file, the operator's commands that go to a
// running rack's management API (docs/management.md): status, disk faults; and `dkc pair`, the
// vendor pair commands sent in-band over iSCSI (cli/pair.ts, docs/pairs.md).
import * as path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import pino from 'pino';
import type { PairStatus } from '../../firmware/pairs/manager';
import type { DkcStatus } from '../../firmware/status';
import type { Portal } from '../../target/iscsi/types';
import { formatSize, loadConfig, RackConfig } from '../rack/config';
import { intArg, portalArg } from './args';
import type { DiskAction, RackStatus } from '../rack/control';
import { managementTokenFile, MEDIA_ERROR_SECTORS_MAX, readManagementToken, SLOW_LATENCY_MS_MAX } from '../rack/mgmt';
import { pairCommands } from './pair';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function levelArg(text: string): string {
  if (!LOG_LEVELS.includes(text)) throw new InvalidArgumentError(`must be one of ${LOG_LEVELS.join(', ')}`);
  return text;
}

function hostPort(p: Portal): string {
  return p.host.includes(':') ? `[${p.host}]:${p.port}` : `${p.host}:${p.port}`;
}

/** The block printed on start: where to connect and what is there (management: the API's bound address). */
export function describeRack(config: RackConfig, dataDir: string, listening: Portal[], management?: Portal): string {
  const lines = [`dkc-emu rack ${config.name} (${config.file}), data in ${dataDir}`];
  lines.push(`  listening on ${listening.map(hostPort).join(', ') || '(nothing)'}`);
  if (management) {
    const token = config.management?.token !== undefined ? 'token in the rack file' : `token in ${managementTokenFile(dataDir)}`;
    lines.push(`  management API on http://${hostPort(management)}  [${token}]`);
  }
  for (const d of config.dkcs) {
    for (const t of d.targets) {
      const chap = t.chap ? (t.chap.mutualUser ? 'mutual CHAP' : 'CHAP') : 'no CHAP';
      const acl = t.acl.length ? `ACL ${t.acl.length} initiator(s)` : 'any initiator';
      lines.push(`  target ${t.name}  [${d.name}, ${chap}, ${acl}]`);
      for (const l of t.luns) {
        const v = d.volumes.find((x) => x.name === l.volume)!;
        const flags = [l.readOnly ? 'read-only' : '', l.removable ? 'removable' : ''].filter(Boolean).join(' ');
        lines.push(
          `    LUN ${String(l.lun).padEnd(3)} ${v.name.padEnd(12)} ${formatSize(v.sizeBytes).padStart(8)}  ` +
            `${v.blockCount} x ${v.blockSize} B${flags ? `  ${flags}` : ''}`,
        );
      }
    }
  }
  return lines.join('\n');
}

async function start(opts: { config: string; listen?: Portal; dataDir?: string; logLevel: string }): Promise<void> {
  const log = pino({ level: opts.logLevel, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }));
  const result = await loadConfig(opts.config);
  if (!result.ok) {
    for (const e of result.errors) process.stderr.write(`${e.toString()}\n`);
    process.exit(1);
  }
  const dataDir = opts.dataDir ?? path.join('data', result.config.name);
  // Loaded here so `dkc validate` needs nothing of the target stack.
  const { Rack } = await import('../rack/rack');
  const rack = await Rack.open(result.config, { dataDir, listen: opts.listen, log });
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting without a clean shutdown');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'shutting down');
    rack.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  try {
    await rack.start();
  } catch (err) {
    await rack.stop().catch(() => undefined);
    throw err;
  }
  process.stdout.write(`${describeRack(result.config, dataDir, rack.addresses(), rack.mgmt?.address())}\n`);
}

async function validate(files: string[]): Promise<void> {
  let failed = false;
  for (const file of files) {
    const result = await loadConfig(file);
    if (result.ok) {
      process.stdout.write(files.length === 1 ? 'OK\n' : `${file}: OK\n`);
      continue;
    }
    failed = true;
    for (const e of result.errors) process.stdout.write(`${e.toString()}\n`);
  }
  if (failed) process.exit(1);
}

// ---- The management API's client side: dkc status, dkc disk ... ----

/** How long the CLI waits for the management API before giving up. */
const MGMT_CLIENT_TIMEOUT_MS = 30_000;

interface MgmtOptions {
  mgmt?: string;
  token?: string;
  tokenFile?: string;
  config?: string;
  dataDir?: string;
}

interface MgmtEndpoint {
  url: string;
  token: string;
}

function mgmtUrlArg(text: string): string {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new InvalidArgumentError('must be a URL like http://127.0.0.1:3280');
  }
  if (u.protocol !== 'http:' || u.pathname !== '/' || u.search || u.hash || u.username) {
    throw new InvalidArgumentError('must be http://HOST:PORT, e.g. http://127.0.0.1:3280');
  }
  return u.origin;
}

/** The management options every client command takes. */
function withMgmt(cmd: Command): Command {
  return cmd
    .option('--mgmt <url>', 'management API, e.g. http://127.0.0.1:3280 (default: from --config)', mgmtUrlArg)
    .addOption(new Option('--token <token>', 'bearer token of the management API').conflicts('tokenFile'))
    .option('--token-file <file>', 'read the bearer token from this file')
    .option('--config <file>', "rack YAML file: the API's address (management.listen) and token")
    .option('--data-dir <dir>', "the rack's data directory, where management.token is (default: ./data/<rack name>)");
}

/** Where the API is and its token: --mgmt and --token/--token-file, else what --config says. */
async function resolveMgmt(opts: MgmtOptions): Promise<MgmtEndpoint> {
  let config: RackConfig | undefined;
  if (opts.config !== undefined) {
    const result = await loadConfig(opts.config);
    if (!result.ok) throw new Error(`${opts.config} is not a valid rack file:\n${result.errors.join('\n')}`);
    config = result.config;
    if (!config.management) throw new Error(`${opts.config} has no management: section, so its rack serves no management API`);
  }
  let url = opts.mgmt;
  if (url === undefined) {
    const listen = config?.management?.listen;
    if (!listen) throw new Error('where is the management API? Pass --mgmt URL (with --token or --token-file), or --config FILE');
    if (listen.port === 0) throw new Error(`${opts.config}: management.listen has port 0 (any free port): pass --mgmt with the address the rack printed`);
    url = `http://${hostPort(listen)}`;
  }
  let token = opts.token;
  if (token === undefined && opts.tokenFile !== undefined) token = await readTokenFile(opts.tokenFile);
  if (token === undefined && config) {
    token = config.management?.token ?? (await readTokenFile(managementTokenFile(opts.dataDir ?? path.join('data', config.name))));
  }
  if (token === undefined) throw new Error('no management token: pass --token, --token-file or --config');
  return { url, token };
}

async function readTokenFile(file: string): Promise<string> {
  try {
    return await readManagementToken(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Error(`no token file ${file} (has the rack been started with this data directory? see --data-dir)`);
    throw err;
  }
}

/** One request to the API; its JSON answer, or an Error with the API's message. */
async function callMgmt(ep: MgmtEndpoint, method: 'GET' | 'POST', route: string, body?: unknown): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(`${ep.url}${route}`, {
      method,
      headers: { Authorization: `Bearer ${ep.token}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(MGMT_CLIENT_TIMEOUT_MS),
    });
  } catch (err) {
    const cause = (err as { cause?: { message?: string } }).cause?.message;
    throw new Error(`cannot reach the management API at ${ep.url}: ${cause ?? (err as Error).message}`);
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`management API at ${ep.url} answered HTTP ${res.status} without JSON`);
  }
  if (!res.ok) {
    const message = (json as { error?: unknown }).error;
    throw new Error(`${typeof message === 'string' ? message : 'request refused'} (HTTP ${res.status})`);
  }
  return json;
}

async function statusCommand(opts: MgmtOptions & { json?: boolean }): Promise<void> {
  const status = (await callMgmt(await resolveMgmt(opts), 'GET', '/v1/status')) as RackStatus;
  process.stdout.write(opts.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status));
}

async function diskCommand(dkc: string, drive: string, action: DiskAction, opts: MgmtOptions): Promise<void> {
  const ep = await resolveMgmt(opts);
  const { action: name, ...body } = action;
  await callMgmt(ep, 'POST', `/v1/dkcs/${encodeURIComponent(dkc)}/disks/${encodeURIComponent(drive)}/${name}`, body);
  process.stdout.write(`${dkc} ${drive}: ${name}: OK\n`);
}

// ---- dkc status: the readable form ----

/** Bytes in the largest binary unit they reach, one decimal at most (12.5MiB). */
export function humanSize(bytes: number): string {
  for (const [unit, n] of [['TiB', 2 ** 40], ['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]] as const) {
    if (bytes >= n) return `${Number((bytes / n).toFixed(1))}${unit}`;
  }
  return `${bytes}B`;
}

function percent(part: number, whole: number): string {
  return whole > 0 ? `${((100 * part) / whole).toFixed(1)}%` : '-';
}

/** Rows under a header, columns padded to their widest cell. */
function table(indent: string, header: string[], rows: string[][]): string[] {
  const all = [header, ...rows];
  const widths = header.map((_h, c) => Math.max(...all.map((r) => (r[c] ?? '').length)));
  return all.map((r) => `${indent}${r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]))).join('  ')}`.trimEnd());
}

/** `dkc status` without --json. */
export function formatStatus(s: RackStatus): string {
  const lines = [`rack ${s.rack}`];
  for (const d of s.dkcs) lines.push('', ...formatDkc(d));
  return `${lines.join('\n')}\n`;
}

function formatDkc(d: DkcStatus): string[] {
  const c = d.cache;
  const cache = c
    ? `cache ${c.mode} ${humanSize(c.sizeBytes)} (used ${humanSize(c.usedBytes)}, dirty ${humanSize(c.dirtyBytes)}, hits ${c.hits}, misses ${c.misses})`
    : 'no cache';
  const lines = [`DKC ${d.name}  serial ${d.serial}  clock ${(d.clockMs / 1000).toFixed(3)}s  ${cache}`];
  for (const g of d.raidGroups) {
    const rebuild = g.rebuild ? `  rebuilding slot ${g.rebuild.slot} (${g.rebuild.drive}) ${g.rebuild.percent.toFixed(1)}%` : '';
    lines.push(
      `  RAID group ${g.name}: RAID ${g.level}, ${g.state}, ${humanSize(g.sizeBytes)}, stripe ${humanSize(g.stripeSizeBytes)}, ${g.rowCount} rows${rebuild}`,
    );
    lines.push(...table('    ', ['SLOT', 'DRIVE', 'STATE', 'HEALTH', 'ERRORS', 'REBUILT'], g.members.map((m) => [
      String(m.slot), m.drive, m.state, m.health, String(m.errors),
      m.state === 'rebuilding' ? `${percent(m.rebuiltRows, g.rowCount)} (${m.rebuiltRows}/${g.rowCount} rows)` : '',
    ])));
  }
  lines.push(...section('spares', ['SPARE', 'SIZE', 'HEALTH', 'SLOW', 'MEDIA ERRORS'], d.spares.map((x) => [
    x.name, humanSize(x.sizeBytes), x.health, `${x.slowMs}ms`, String(x.mediaErrors),
  ])));
  lines.push(...section('volumes', ['LDEV', 'VOLUME', 'GROUP', 'BLOCK', 'BLOCKS', 'ALLOCATED'], d.volumes.map((v) => [
    String(v.ldev), v.name, v.group, String(v.blockSize), String(v.blockCount),
    `${v.allocatedBlocks} (${percent(v.allocatedBlocks, v.blockCount)})`,
  ])));
  const volumeName = (ldev: number) => d.volumes.find((v) => v.ldev === ldev)?.name ?? '?';
  lines.push(...section('LUNs', ['PORT', 'LUN', 'LDEV'], d.luns.map((l) => [l.port, String(l.lun), `${l.ldev} (${volumeName(l.ldev)})`])));
  lines.push(...section('pairs', ['PAIR', 'GROUP', 'PRIMARY', 'SECONDARY', 'STATE', 'COPY', 'DIFFERENCE', 'SPLIT AREAS'], d.pairs.map((p) => [
    p.id, p.group ?? '', `${p.primary} (${volumeName(p.primary)})`, `${p.secondary} (${volumeName(p.secondary)})`,
    pairState(p),
    p.copy.totalBlocks > 0 ? `${p.copy.percent.toFixed(1)}% (${p.copy.remainingBlocks} blocks to go)` : '',
    `${p.differenceBlocks} blocks`, String(p.splitAreas.length),
  ])));
  lines.push(...section('tasks', ['TASK', 'KIND', 'RUNS', 'BUSY', 'WAITS', 'ACTIVE', 'DETAIL'], d.tasks.map((t) => [
    t.name, t.kind, String(t.runs), `${Number(t.busyMs.toFixed(1))}ms`, String(t.waits), String(t.active), t.detail ?? '',
  ])));
  return lines;
}

/** A split during a copy (seed 004) still sends the split image; a restore copies in reverse. */
function pairState(p: PairStatus): string {
  if (p.imagePending) return `${p.state} (split image on its way)`;
  return p.direction === 'reverse' ? `${p.state} reverse` : p.state;
}

function section(name: string, header: string[], rows: string[][]): string[] {
  return rows.length === 0 ? [`  no ${name}`] : table('  ', header, rows);
}

export function program(): Command {
  const p = new Command('dkc').description('dkc-emu: a disk-array controller emulator behind an iSCSI target');
  p.command('start')
    .description('start a rack: serve its targets over iSCSI until SIGINT/SIGTERM')
    .requiredOption('--config <file>', 'rack YAML file (see docs/config.md)')
    .option('--listen <host:port>', 'listen here instead of every portal in the file (port 0: any free port)', portalArg(0))
    .option('--data-dir <dir>', 'where disks and metadata live (default: ./data/<rack name>)')
    .option('--log-level <level>', `log level on stderr (${LOG_LEVELS.join(', ')})`, levelArg, 'info')
    .action(start);
  p.command('validate')
    .description('check rack YAML files; prints OK, or one error per line as FILE:LINE: KEY: message (exit 1)')
    .argument('<file...>', 'rack YAML file(s)')
    .action(validate);
  withMgmt(p.command('status'))
    .description("a running rack's state: DKCs, RAID groups and their disks, spares, volumes, LUNs, pairs, tasks (from its management API)")
    .option('--json', 'print the status as JSON (the API\'s RackStatus)')
    .action(statusCommand);
  diskCommands(p.command('disk').description("the operator's hands on a running rack's drives (management API)"));
  pairCommands(p.command('pair').description('volume pairs (docs/pairs.md): the vendor pair commands, sent over iSCSI to a target\'s portal'));
  return p;
}

function diskCommands(disk: Command): void {
  const plain = {
    fail: 'the drive breaks: every I/O fails until it is replaced',
    pull: 'pull the drive out of its bay (it keeps its data)',
    insert: 'put a pulled drive back',
    replace: 'put a new blank drive in the bay',
  } as const;
  for (const [name, what] of Object.entries(plain) as [keyof typeof plain, string][]) {
    withMgmt(disk.command(name).description(what).argument('<dkc>', 'DKC name').argument('<drive>', 'drive name, e.g. rg0-2'))
      .action((dkc: string, drive: string, opts: MgmtOptions) => diskCommand(dkc, drive, { action: name }, opts));
  }
  withMgmt(
    disk.command('slow').description('add latency to every I/O of the drive (0 ends it)')
      .argument('<dkc>', 'DKC name').argument('<drive>', 'drive name, e.g. rg0-2')
      .argument('<ms>', `milliseconds per I/O, 0 to ${SLOW_LATENCY_MS_MAX}`, intArg('ms', 0, SLOW_LATENCY_MS_MAX)),
  ).action((dkc: string, drive: string, latencyMs: number, opts: MgmtOptions) => diskCommand(dkc, drive, { action: 'slow', latencyMs }, opts));
  withMgmt(
    disk.command('media-error').description('make sectors of the drive unreadable until they are written')
      .argument('<dkc>', 'DKC name').argument('<drive>', 'drive name, e.g. rg0-2')
      .argument('<sector>', 'first sector (512-byte units on the drive)', intArg('sector', 0, Number.MAX_SAFE_INTEGER))
      .argument('[count]', `sectors, 1 to ${MEDIA_ERROR_SECTORS_MAX}`, intArg('count', 1, MEDIA_ERROR_SECTORS_MAX), 1),
  ).action((dkc: string, drive: string, sector: number, count: number, opts: MgmtOptions) =>
    diskCommand(dkc, drive, { action: 'media-error', sector, count }, opts));
}

if (require.main === module || require.main?.filename.endsWith(path.join('bin', 'dkc'))) {
  program()
    .parseAsync(process.argv)
    .catch((err: unknown) => {
      process.stderr.write(`dkc: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    });
}
