// The `dkc` command: start a rack, validate a rack file.
import * as path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import pino from 'pino';
import type { Portal } from '../target/iscsi/types';
import { formatSize, loadConfig, parsePortal, RackConfig } from './config';
import { PORTAL_RE } from './schema';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function listenArg(text: string): Portal {
  if (!PORTAL_RE.test(text)) throw new InvalidArgumentError('must be HOST:PORT, e.g. 127.0.0.1:3260');
  const p = parsePortal(text);
  if (p.port > 65535) throw new InvalidArgumentError('port must be from 0 to 65535');
  return p;
}

function levelArg(text: string): string {
  if (!LOG_LEVELS.includes(text)) throw new InvalidArgumentError(`must be one of ${LOG_LEVELS.join(', ')}`);
  return text;
}

function hostPort(p: Portal): string {
  return p.host.includes(':') ? `[${p.host}]:${p.port}` : `${p.host}:${p.port}`;
}

/** The block printed on start: where to connect and what is there. */
export function describeRack(config: RackConfig, dataDir: string, listening: Portal[]): string {
  const lines = [`dkc-emu rack ${config.name} (${config.file}), data in ${dataDir}`];
  lines.push(`  listening on ${listening.map(hostPort).join(', ') || '(nothing)'}`);
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
  const { Rack } = await import('./rack');
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
  process.stdout.write(`${describeRack(result.config, dataDir, rack.addresses())}\n`);
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

export function program(): Command {
  const p = new Command('dkc').description('dkc-emu: a disk-array controller emulator behind an iSCSI target');
  p.command('start')
    .description('start a rack: serve its targets over iSCSI until SIGINT/SIGTERM')
    .requiredOption('--config <file>', 'rack YAML file (see docs/config.md)')
    .option('--listen <host:port>', 'listen here instead of every portal in the file (port 0: any free port)', listenArg)
    .option('--data-dir <dir>', 'where disks and metadata live (default: ./data/<rack name>)')
    .option('--log-level <level>', `log level on stderr (${LOG_LEVELS.join(', ')})`, levelArg, 'info')
    .action(start);
  p.command('validate')
    .description('check rack YAML files; prints OK, or one error per line as FILE:LINE: KEY: message (exit 1)')
    .argument('<file...>', 'rack YAML file(s)')
    .action(validate);
  return p;
}

if (require.main === module || require.main?.filename.endsWith(path.join('bin', 'dkc'))) {
  program()
    .parseAsync(process.argv)
    .catch((err: unknown) => {
      process.stderr.write(`dkc: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    });
}
