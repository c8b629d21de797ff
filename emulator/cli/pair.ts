// `dkc pair create|split|resync|restore|delete|status`: the vendor pair commands of docs/pairs.md
// sent in-band through the project's own initiator to a portal the user names, in the spirit of
// CCI's paircreate, pairsplit, pairresync (-restore) and pairdisplay. Every argument is checked
// before a connection is made; a CHECK CONDITION becomes one line that names the sense; --wait
// polls PAIR STATUS on the kernel's clock (STYLE.md: no host timers in emulator/) and shows the
// copy's progress on stderr.
import { Presets, SingleBar } from 'cli-progress';
import { Command, InvalidArgumentError } from 'commander';
import { Clock, RealClock } from '../../firmware/kernel/clock';
import { PAIR_NAME_RE } from '../../firmware/pairs/control';
import type { ChapCredentials, CommandResult, IscsiInitiator } from '../../target/iscsi/initiator/initiator';
import { cdbInquiry, parseInquiry } from '../../target/iscsi/initiator/scsi';
import type { Portal } from '../../target/iscsi/types';
import {
  Area, AREAS_MAX, decodeStatusData, NAME_BYTES, PAIR_STATE_CODES, pairCreate, pairDelete, PairRecord, pairSplitResync,
  pairStatus, VolumeRef, WireCommand,
} from '../../target/scsi/pair-cdb';
import { DecodedSense, decodeSense, Sense, SenseCode, SenseKey, Status } from '../../target/scsi/sense';
import { intArg, portalArg } from './args';

export const DEFAULT_INITIATOR_NAME = 'iqn.2026-11.dev.dkc-emu:cli';
/** The CHAP secret comes from here, never from the command line (where `ps` would show it). */
export const CHAP_SECRET_ENV = 'DKC_CHAP_SECRET';
const LDEV_MAX = 65535;
const LUN_MAX = 16383;
const AREA_BLOCKS_MAX = 2 ** 32 - 1;
/** --wait: PAIR STATUS this often, and give up after --timeout seconds (the copy goes on). */
const POLL_INTERVAL_MS = 250;
const WAIT_TIMEOUT_S_DEFAULT = 3600;
const WAIT_TIMEOUT_S_MAX = 7 * 86400;
/** The target's pair command rows allow 60 s (target/scsi/pair.ts pairRows). */
const COMMAND_TIMEOUT_MS = 60_000;
const CONNECT_TIMEOUT_MS = 10_000;
/** A new I_T nexus meets POWER ON RESET on each LU first (SAM-5 5.14); retried this often. */
const UNIT_ATTENTIONS_MAX = 8;
const STATUS_ALLOCATION_BYTES = 64 * 1024;
/** ALLOCATION LENGTH of a retried PAIR STATUS is what the target said is available, up to this. */
const STATUS_ALLOCATION_BYTES_MAX = 16 * 1024 * 1024;
/** Without a terminal, a progress line each time the copy passes another this many percent. */
const PERCENT_LINE_STEP = 10;
const INQUIRY_BYTES = 96;
/** SPC-4 6.6.2: PERIPHERAL QUALIFIER 011b, no LU here; DEVICE TYPE 0Ch, a command device (docs/pairs.md). */
const NO_LU_QUALIFIER = 3;
const COMMAND_DEVICE_TYPE = 0x0c;
/** Split areas the status table lists per pair (JSON lists them all). */
const AREAS_SHOWN_MAX = 4;

type Verb = 'create' | 'split' | 'resync' | 'restore' | 'delete' | 'status';

interface CommonOptions {
  portal: Portal;
  target: string;
  lun?: number;
  commandDevice?: number;
  ldev?: number;
  initiatorName: string;
  chapUser?: string;
  json?: boolean;
}

interface WaitOptions {
  wait?: boolean;
  timeout: number;
}

interface CreateOptions extends CommonOptions, WaitOptions {
  secondary: number;
  name?: string;
  group?: string;
}

interface SplitResyncOptions extends CommonOptions, WaitOptions {
  area?: Area[];
  group?: boolean;
}

/** Where a command goes: the LU it is sent to, and the LDEV it names there (a command device). */
interface Address {
  lun: number;
  commandDevice: boolean;
  ref: VolumeRef;
  /** The volume as the user named it, for messages: "LUN 0" or "LDEV 9". */
  volume: string;
}

/** What a failed command was about, for its error line. */
interface CommandContext {
  verb: Verb;
  at: Address;
  target: string;
  secondary?: number;
  name?: string;
}

// ---- arguments: all checked before anything connects ----

function nameArg(text: string): string {
  if (!PAIR_NAME_RE.test(text)) throw new InvalidArgumentError(`must be 1 to ${NAME_BYTES} of A-Z a-z 0-9 _ -, starting with a letter or digit`);
  return text;
}

/** LBA+BLOCKS, e.g. 0+2048; repeated --area options add up. */
export function parseArea(text: string): Area {
  const m = /^([0-9]+)\+([0-9]+)$/.exec(text);
  if (!m) throw new InvalidArgumentError('must be LBA+BLOCKS, e.g. 0+2048');
  const lba = Number(m[1]);
  const blocks = Number(m[2]);
  if (!Number.isSafeInteger(lba)) throw new InvalidArgumentError(`LBA must be from 0 to ${Number.MAX_SAFE_INTEGER}`);
  if (blocks < 1 || blocks > AREA_BLOCKS_MAX) throw new InvalidArgumentError(`BLOCKS must be from 1 to ${AREA_BLOCKS_MAX}`);
  return { lba, blocks };
}

function areaArg(text: string, previous: Area[] | undefined): Area[] {
  const areas = [...(previous ?? []), parseArea(text)];
  if (areas.length > AREAS_MAX) throw new InvalidArgumentError(`at most ${AREAS_MAX} areas in one command`);
  return areas;
}

/** The volume the command acts on: a data LU's own, or an LDEV named on a command device. */
function address(o: CommonOptions, ldevRequired: boolean): Address {
  if (o.lun !== undefined && o.commandDevice !== undefined) {
    throw new Error('--lun and --command-device exclude each other: address a data LU (--lun N) or a command device (--command-device LUN --ldev N)');
  }
  if (o.lun !== undefined) {
    if (o.ldev !== undefined) throw new Error("--ldev goes with --command-device: through a data LU (--lun) a command acts on that LU's own volume");
    return { lun: o.lun, commandDevice: false, ref: {}, volume: `LUN ${o.lun}` };
  }
  if (o.commandDevice === undefined) throw new Error('which volume? Give --lun N (a data LU) or --command-device LUN --ldev N');
  if (o.ldev === undefined) {
    if (ldevRequired) throw new Error('--command-device needs --ldev N: the LDEV the command acts on (dkc status lists them)');
    return { lun: o.commandDevice, commandDevice: true, ref: {}, volume: `command device LUN ${o.commandDevice}` };
  }
  return { lun: o.commandDevice, commandDevice: true, ref: { ldev: o.ldev }, volume: `LDEV ${o.ldev}` };
}

function chapOf(o: CommonOptions): ChapCredentials | undefined {
  if (o.chapUser === undefined) return undefined;
  const secret = process.env[CHAP_SECRET_ENV];
  if (!secret) throw new Error(`--chap-user needs the CHAP secret in the environment variable ${CHAP_SECRET_ENV} (never on the command line)`);
  return { user: o.chapUser, secret };
}

// ---- sense data and other failures as one line ----

const hex2 = (n: number): string => n.toString(16).padStart(2, '0').toUpperCase();
/** Where the short names of sense.ts differ from SPC-4 Annex D's. */
const SENSE_NAMES: Partial<Record<string, string>> = {
  LBA_OUT_OF_RANGE: 'LOGICAL BLOCK ADDRESS OUT OF RANGE',
  LU_NOT_SUPPORTED: 'LOGICAL UNIT NOT SUPPORTED',
};

/** "ILLEGAL REQUEST, COMMAND SEQUENCE ERROR (2C/00)". */
export function senseName(d: { key: number; asc: number; ascq: number }): string {
  const key = Object.entries(SenseKey).find(([, k]) => k === d.key)?.[0].replace(/_/g, ' ') ?? `SENSE KEY ${hex2(d.key)}`;
  const all: SenseCode[] = Object.values(Sense);
  const code = all.find((s) => s.key === d.key && s.asc === d.asc && s.ascq === d.ascq) ?? all.find((s) => s.asc === d.asc && s.ascq === d.ascq);
  const what = code ? (SENSE_NAMES[code.name] ?? code.name.replace(/_/g, ' ')) : 'ASC/ASCQ';
  return `${key}, ${what} (${hex2(d.asc)}/${hex2(d.ascq)})`;
}

const same = (d: DecodedSense, s: SenseCode) => d.key === s.key && d.asc === s.asc && d.ascq === s.ascq;

/** What the sense means for this command (docs/pairs.md, Sense data), or undefined. */
function explain(d: DecodedSense, c: CommandContext): string | undefined {
  const fp = d.fieldPointer;
  if (same(d, Sense.COMMAND_SEQUENCE_ERROR)) {
    // COMMAND-SPECIFIC INFORMATION: the pair state the command met (00h SMPL: no pair).
    const state = PAIR_STATE_CODES[Number(d.commandSpecific ?? 0n)] ?? `state ${d.commandSpecific}`;
    if (c.verb === 'create') return `${c.at.volume} or LDEV ${c.secondary} is already in a pair, in state ${state}`;
    return state === 'SMPL' ? `${c.at.volume} is in no pair (SMPL)` : `pair is in state ${state}`;
  }
  if (same(d, Sense.INVALID_FIELD_IN_CDB) && fp?.cdb) {
    if (fp.byte === 4) return `LDEV ${c.at.ref.ldev} is not mapped by target ${c.target} (or does not exist)`;
    if (fp.byte === 2 && c.verb === 'create') {
      return `LDEV ${c.secondary} cannot be the secondary: not mapped by target ${c.target}, the primary itself, or not the primary's size and block size`;
    }
    if (fp.byte === 1 && fp.bit === 3) {
      return c.at.commandDevice ? `LUN ${c.at.lun} is not a command device (use --lun ${c.at.lun})` : `LUN ${c.at.lun} is a command device: use --command-device ${c.at.lun} --ldev N`;
    }
    if (fp.byte === 1 && fp.bit === 2) return 'the pair is in no consistency group (--group)';
  }
  if (same(d, Sense.INVALID_FIELD_IN_PARAMETER_LIST) && c.verb === 'create' && fp?.byte === 0) return `pair name ${c.name} is already in use`;
  if (same(d, Sense.LBA_OUT_OF_RANGE)) return `the area at LBA ${d.information} goes past the end of the volume`;
  if (same(d, Sense.LU_NOT_SUPPORTED)) return `target ${c.target} has no LUN ${c.at.lun}`;
  if (same(d, Sense.INVALID_COMMAND_OPERATION_CODE)) return `LUN ${c.at.lun} takes no pair commands`;
  return undefined;
}

/** The one line for a command that ended other than GOOD. */
export function failureLine(r: Pick<CommandResult, 'response' | 'status' | 'sense'>, c: CommandContext): string {
  if (r.response !== 0) return `target failure (iSCSI response ${hex2(r.response)})`;
  if (r.status === Status.RESERVATION_CONFLICT) return `RESERVATION CONFLICT: another initiator holds a persistent reservation on LUN ${c.at.lun}`;
  if (r.status === Status.BUSY || r.status === Status.TASK_SET_FULL) return `target busy (SCSI status ${hex2(r.status)}h): try again`;
  if (r.status !== Status.CHECK_CONDITION) return `SCSI status ${hex2(r.status)}h`;
  let d: DecodedSense;
  try {
    d = decodeSense(r.sense ?? Buffer.alloc(0));
  } catch {
    return 'CHECK CONDITION without readable sense data';
  }
  const why = explain(d, c);
  return why ? `${why}: ${senseName(d)}` : senseName(d);
}

/** RFC 7143 11.13.5: Status-Class and Status-Detail of a refused login. */
const LOGIN_STATUS: Partial<Record<number, string>> = {
  0x0200: 'initiator error',
  0x0201: 'authentication failed (check --chap-user and DKC_CHAP_SECRET)',
  0x0202: 'this initiator is not authorized (the target ACL)',
  0x0203: 'no such target',
  0x0204: 'target removed',
  0x0300: 'target error',
  0x0301: 'service unavailable',
  0x0302: 'target out of resources',
};

function connectFailure(e: unknown, o: CommonOptions): Error {
  const at = `${o.portal.host}:${o.portal.port}`;
  const err = e as Error & { code?: string; detail?: { statusClass?: number; statusDetail?: number } };
  const d = err.detail;
  if (d?.statusClass !== undefined && d.statusDetail !== undefined) {
    const what = LOGIN_STATUS[(d.statusClass << 8) | d.statusDetail] ?? 'refused';
    return new Error(`login to ${o.target} at ${at} failed: ${what} (status ${hex2(d.statusClass)}${hex2(d.statusDetail)})`);
  }
  if (err.code === 'AUTHENTICATION') return new Error(`login to ${o.target} at ${at} failed: ${err.message} (see --chap-user)`);
  return new Error(`cannot log in to ${o.target} at ${at}: ${err.message}`);
}

// ---- the session ----

/** One iSCSI session with the named target, sending pair commands to one LU. */
class PairSession {
  private constructor(private readonly ini: IscsiInitiator, readonly at: Address, private readonly target: string) {}

  static async open(o: CommonOptions, at: Address): Promise<PairSession> {
    const chap = chapOf(o);
    // Loaded here: `dkc validate` and `dkc pair --help` need nothing of the initiator.
    const { IscsiInitiator } = await import('../../target/iscsi/initiator/initiator');
    try {
      const ini = await IscsiInitiator.open(o.portal.host, o.portal.port, { targetName: o.target }, {
        initiatorName: o.initiatorName, chap, commandTimeoutMs: COMMAND_TIMEOUT_MS,
        connectTimeoutMs: CONNECT_TIMEOUT_MS, loginTimeoutMs: CONNECT_TIMEOUT_MS,
      });
      return new PairSession(ini, at, o.target);
    } catch (e) {
      throw connectFailure(e, o);
    }
  }

  /** One pair command; its Data-In, or an Error whose message is the one line to print. */
  async send(w: WireCommand, c: Omit<CommandContext, 'at' | 'target'>): Promise<Buffer> {
    for (let attentions = 0; ; attentions++) {
      let r: CommandResult;
      try {
        r = await this.ini.command({ lun: this.at.lun, cdb: w.cdb, dataOut: w.dataOut, expectedLength: w.expectedLength });
      } catch (e) {
        throw new Error(`pair ${c.verb}: ${(e as Error).message}`); // a timeout, the connection lost
      }
      if (r.response === 0 && r.status === Status.GOOD) return r.data;
      // The command was not run: a unit attention is reported instead (SAM-5 5.14).
      const attention = r.status === Status.CHECK_CONDITION && r.sense !== null && r.senseInfo?.key === SenseKey.UNIT_ATTENTION;
      if (attention && attentions < UNIT_ATTENTIONS_MAX) continue;
      throw new Error(`pair ${c.verb}: ${failureLine(r, { ...c, at: this.at, target: this.target })}`);
    }
  }

  /** PAIR STATUS: the pair of ref's volume (none when SMPL), or every pair (command device, no LDEV). */
  async status(ref: VolumeRef, verb: Verb): Promise<PairRecord[]> {
    let allocationLength = STATUS_ALLOCATION_BYTES;
    for (;;) {
      const d = await this.send(pairStatus({ ...ref, allocationLength }), { verb });
      const available = d.length >= 4 ? d.readUInt32BE(0) + 4 : 0;
      if (d.length >= available || allocationLength >= STATUS_ALLOCATION_BYTES_MAX) return decodeStatusData(d);
      allocationLength = Math.min(available, STATUS_ALLOCATION_BYTES_MAX);
    }
  }

  /** The LU's INQUIRY: PERIPHERAL QUALIFIER (3: no such LU) and DEVICE TYPE (0Ch: a command device). */
  async inquiry(verb: Verb): Promise<{ peripheralQualifier: number; peripheralDeviceType: number }> {
    return parseInquiry(await this.send({ cdb: cdbInquiry(INQUIRY_BYTES), expectedLength: INQUIRY_BYTES }, { verb }));
  }

  async close(): Promise<void> {
    await this.ini.logout().catch(() => this.ini.close());
  }
}

async function withSession<T>(o: CommonOptions, at: Address, fn: (s: PairSession) => Promise<T>): Promise<T> {
  const s = await PairSession.open(o, at);
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

// ---- --wait: poll until the copy ends ----

export interface CopyProgress {
  update(copiedBlocks: number, totalBlocks: number): void;
  stop(): void;
}

function percentOf(copied: number, total: number): number {
  return total === 0 ? 100 : Math.floor((copied / total) * 1000) / 10;
}

/** A bar on a terminal, a line now and then elsewhere, nothing with --json (stdout is the data). */
export function copyProgress(stream: NodeJS.WriteStream, label: string, quiet: boolean): CopyProgress {
  if (quiet) return { update: () => undefined, stop: () => undefined };
  if (stream.isTTY) {
    const bar = new SingleBar({ stream, format: `${label} |{bar}| {percentage}% | {value}/{total} blocks`, barsize: 30 }, Presets.shades_classic);
    let started = false;
    return {
      update(copied, total) {
        if (!started) bar.start(total, copied);
        else bar.setTotal(total);
        bar.update(copied);
        started = true;
      },
      stop: () => started && bar.stop(),
    };
  }
  let step = -1;
  return {
    update(copied, total) {
      const percent = percentOf(copied, total);
      if (Math.floor(percent / PERCENT_LINE_STEP) <= step) return;
      step = Math.floor(percent / PERCENT_LINE_STEP);
      stream.write(`${label}: ${percent.toFixed(1)}% (${copied}/${total} blocks)\n`);
    },
    stop: () => undefined,
  };
}

/** Which pairs a wait watches: ref's own, or (command device, --group) every pair of its group. */
async function watched(s: PairSession, group: boolean, verb: Verb): Promise<() => Promise<PairRecord[]>> {
  const own = () => s.status(s.at.ref, verb);
  const name = (await own())[0]?.group;
  // Through a data LU only its own pair is visible; a command device lists every pair of the target.
  if (!group || !s.at.commandDevice || name === undefined) return own;
  return async () => (await s.status({}, verb)).filter((r) => r.group === name);
}

/** Polls until every watched pair's copy has ended (PAIR, or PSUS while areas stay split). */
async function waitForCopy(s: PairSession, o: WaitOptions & { json?: boolean; group?: boolean }, verb: Verb, clock: Clock): Promise<PairRecord[]> {
  const poll = await watched(s, o.group === true, verb);
  const expected = (await poll()).map((r) => r.id);
  const progress = copyProgress(process.stderr, expected.length === 1 ? `pair ${expected[0]}` : `${expected.length} pairs`, o.json === true);
  const deadline = clock.now() + o.timeout * 1000;
  const totals = new Map<string, number>();
  try {
    for (;;) {
      const records = await poll();
      for (const id of expected) {
        const r = records.find((x) => x.id === id);
        if (!r) throw new Error(`pair ${verb}: pair ${id} was deleted while waiting for its copy`);
        if (r.state === 'PSUE') throw new Error(`pair ${verb}: pair ${id} is suspended by a failure (PSUE): the copy did not finish; resync copies everything again`);
      }
      // A copy that has ended reports COPY TOTAL BLOCKS 0: it counts with the total it had.
      for (const r of records) totals.set(r.id, Math.max(totals.get(r.id) ?? 0, r.copyTotalBlocks));
      const total = [...totals.values()].reduce((n, t) => n + t, 0);
      const remaining = records.reduce((n, r) => n + r.copyRemainingBlocks, 0);
      if (total > 0) progress.update(total - remaining, total);
      if (records.every((r) => r.state !== 'COPY' && r.copyRemainingBlocks === 0)) return records;
      if (clock.now() >= deadline) throw new Error(`pair ${verb}: still copying after ${o.timeout} s (--timeout); the copy goes on in the array`);
      await clock.sleep(POLL_INTERVAL_MS);
    }
  } finally {
    progress.stop();
  }
}

// ---- output ----

/** A pair as --json prints it. */
export function pairJson(r: PairRecord) {
  return {
    name: r.id, group: r.group ?? null, primary: r.primary, secondary: r.secondary, state: r.state, direction: r.direction,
    copy: { totalBlocks: r.copyTotalBlocks, remainingBlocks: r.copyRemainingBlocks, percent: percentOf(r.copyTotalBlocks - r.copyRemainingBlocks, r.copyTotalBlocks) },
    differenceBlocks: r.differenceBlocks, copiedBlocks: r.copiedBlocks, imagePending: r.imagePending,
    primaryNaa: r.primaryNaa.toString('hex'), secondaryNaa: r.secondaryNaa.toString('hex'),
    splitAreaCount: r.splitAreaCount, splitAreas: r.splitAreas,
  };
}

function copyColumn(r: PairRecord): string {
  if (r.copyTotalBlocks > 0) return `${percentOf(r.copyTotalBlocks - r.copyRemainingBlocks, r.copyTotalBlocks).toFixed(1)}%`;
  return r.state === 'PAIR' ? '100.0%' : '-';
}

function areasColumn(r: PairRecord): string {
  if (r.splitAreaCount === 0) return '-';
  const shown = r.splitAreas.slice(0, AREAS_SHOWN_MAX).map((a) => `${a.lba}+${a.blocks}`).join(',');
  return r.splitAreaCount > AREAS_SHOWN_MAX ? `${shown} (+${r.splitAreaCount - AREAS_SHOWN_MAX} more)` : shown;
}

/** The pairdisplay-like table: one row a pair, columns padded to their widest cell. */
export function formatPairs(records: PairRecord[]): string {
  const header = ['PAIR', 'GROUP', 'P-LDEV', 'S-LDEV', 'STATE', 'DIR', 'COPY%', 'DIFF-BLOCKS', 'SPLIT-AREAS(LBA+BLOCKS)'];
  const rows = records.map((r) => [
    // A split during a copy (seed 004): COPY% is the split image still on its way to the secondary.
    r.id, r.group ?? '-', String(r.primary), String(r.secondary), r.state, r.imagePending ? 'image' : r.direction, copyColumn(r), String(r.differenceBlocks), areasColumn(r),
  ]);
  const all = [header, ...rows];
  const widths = header.map((_h, c) => Math.max(...all.map((row) => row[c].length)));
  return all.map((row) => row.map((cell, c) => (c === row.length - 1 ? cell : cell.padEnd(widths[c]))).join('  ')).join('\n') + '\n';
}

function print(o: CommonOptions, verb: Verb, records: PairRecord[], none: string): void {
  if (o.json) process.stdout.write(`${JSON.stringify({ command: verb, pairs: records.map(pairJson) }, null, 2)}\n`);
  else process.stdout.write(records.length > 0 ? formatPairs(records) : `${none}\n`);
}

// ---- the subcommands ----

async function createCommand(o: CreateOptions, clock: Clock): Promise<void> {
  const at = address(o, true);
  const w = pairCreate({ ...at.ref, secondary: o.secondary, name: o.name, group: o.group });
  await withSession(o, at, async (s) => {
    await s.send(w, { verb: 'create', secondary: o.secondary, name: o.name });
    const records = o.wait ? await waitForCopy(s, { ...o, group: false }, 'create', clock) : await s.status(at.ref, 'create');
    print(o, 'create', records, `${at.volume}: SMPL (in no pair)`);
  });
}

async function splitResyncCommand(verb: 'split' | 'resync' | 'restore', o: SplitResyncOptions, clock: Clock): Promise<void> {
  const at = address(o, true);
  if (o.area && o.group) throw new Error('--area and --group exclude each other: a group splits and resyncs whole pairs');
  const w = pairSplitResync({ ...at.ref, split: verb === 'split', reverse: verb === 'restore', group: o.group, areas: o.area });
  await withSession(o, at, async (s) => {
    await s.send(w, { verb });
    const records = o.wait ? await waitForCopy(s, o, verb, clock) : await (await watched(s, o.group === true, verb))();
    print(o, verb, records, `${at.volume}: SMPL (in no pair)`);
  });
}

async function deleteCommand(o: CommonOptions): Promise<void> {
  const at = address(o, true);
  await withSession(o, at, async (s) => {
    const before = await s.status(at.ref, 'delete');
    await s.send(pairDelete(at.ref), { verb: 'delete' });
    if (o.json) {
      process.stdout.write(`${JSON.stringify({ command: 'delete', deleted: before.map(pairJson), pairs: [] }, null, 2)}\n`);
      return;
    }
    for (const r of before) process.stdout.write(`pair ${r.id} deleted: LDEV ${r.primary} and LDEV ${r.secondary} are SMPL\n`);
  });
}

/**
 * PAIR STATUS answers on either kind of LU, with a different meaning (a data LU: its own pair; a
 * command device without LDEV: every pair), so status checks the LU is the kind the user named.
 */
async function checkDeviceType(s: PairSession, target: string): Promise<void> {
  const { lun, commandDevice } = s.at;
  const inq = await s.inquiry('status');
  if (inq.peripheralQualifier === NO_LU_QUALIFIER) throw new Error(`pair status: target ${target} has no LUN ${lun}`);
  const isCommandDevice = inq.peripheralDeviceType === COMMAND_DEVICE_TYPE;
  if (isCommandDevice && !commandDevice) throw new Error(`pair status: LUN ${lun} is a command device: use --command-device ${lun} (with --ldev N for one volume)`);
  if (!isCommandDevice && commandDevice) throw new Error(`pair status: LUN ${lun} is not a command device (use --lun ${lun})`);
}

async function statusCommand(o: CommonOptions): Promise<void> {
  const at = address(o, false);
  await withSession(o, at, async (s) => {
    await checkDeviceType(s, o.target);
    const records = await s.status(at.ref, 'status');
    const none = at.ref.ldev === undefined && at.commandDevice ? `no pairs on target ${o.target}` : `${at.volume}: SMPL (in no pair)`;
    print(o, 'status', records, none);
  });
}

// ---- commander ----

/** The options of every pair subcommand: where the target is, which volume, how to log in. */
function withTarget(cmd: Command): Command {
  return cmd
    .requiredOption('--portal <host:port>', 'the iSCSI portal of the target, e.g. 127.0.0.1:3260', portalArg(1))
    .requiredOption('--target <iqn>', 'the target name, e.g. iqn.2026-11.dev.dkc-emu:test.pairs')
    .option('--lun <n>', `a data LU: the command acts on its volume (0 to ${LUN_MAX})`, intArg('--lun', 0, LUN_MAX))
    .option('--command-device <lun>', `a command device LU (0 to ${LUN_MAX}): the command acts on --ldev`, intArg('--command-device', 0, LUN_MAX))
    .option('--ldev <n>', `with --command-device: the LDEV (0 to ${LDEV_MAX}; dkc status lists them)`, intArg('--ldev', 0, LDEV_MAX))
    .option('--initiator-name <iqn>', 'the initiator name to log in with', DEFAULT_INITIATOR_NAME)
    .option('--chap-user <name>', `log in with CHAP as this user; the secret comes from the environment variable ${CHAP_SECRET_ENV}`)
    .option('--json', 'print the result as JSON on stdout (no progress display)');
}

function withWait(cmd: Command): Command {
  return cmd
    .option('--wait', 'wait until the copy ends, with its progress on stderr (PSUE is an error)')
    .option('--timeout <seconds>', `with --wait: stop waiting after this long; the copy goes on (1 to ${WAIT_TIMEOUT_S_MAX})`,
      intArg('--timeout', 1, WAIT_TIMEOUT_S_MAX), WAIT_TIMEOUT_S_DEFAULT);
}

const AREA_HELP = `only this area, LBA+BLOCKS (e.g. 0+2048; BLOCKS 1 to ${AREA_BLOCKS_MAX}); repeat for more, at most ${AREAS_MAX}`;

const EXAMPLES = `
The volume is a data LU's (--lun N), or an LDEV named through a command device
(--command-device LUN --ldev N). The CHAP secret comes from ${CHAP_SECRET_ENV}.

Examples (P=127.0.0.1:3260 T=iqn.2026-11.dev.dkc-emu:test.pairs):
  dkc pair create --portal $P --target $T --lun 0 --secondary 10 --wait
  dkc pair split  --portal $P --target $T --lun 0 --area 0+2048
  dkc pair resync --portal $P --target $T --command-device 9 --ldev 9 --wait
  dkc pair status --portal $P --target $T --command-device 9`;

/** Adds create, split, resync, restore, delete and status to `dkc pair`. */
export function pairCommands(pair: Command, clock: Clock = new RealClock()): void {
  pair.addHelpText('after', EXAMPLES);
  const create = withTarget(pair.command('create'))
    .description('pair the volume (the primary) with LDEV --secondary: an initial copy (COPY), then PAIR (like paircreate)')
    .requiredOption('--secondary <ldev>', `the secondary's LDEV, mapped by the same target (0 to ${LDEV_MAX})`, intArg('--secondary', 0, LDEV_MAX))
    .option('--name <id>', 'the pair name (default: PRIMARY-SECONDARY)', nameArg)
    .option('--group <name>', 'the consistency group the pair joins', nameArg);
  withWait(create).action((o: CreateOptions) => createCommand(o, clock));
  withTarget(pair.command('split'))
    .description("split the pair (PSUS): the whole volume, listed areas, or every pair of its consistency group at one instant (like pairsplit)")
    .option('--area <lba+blocks>', AREA_HELP, areaArg)
    .option('--group', "split every pair of the volume's consistency group at one instant")
    .action((o: SplitResyncOptions) => splitResyncCommand('split', o, clock));
  const resync = withTarget(pair.command('resync'))
    .description('resync a split pair: copy what differs from the primary to the secondary, then PAIR (like pairresync)')
    .option('--area <lba+blocks>', AREA_HELP, areaArg)
    .option('--group', "resync every pair of the volume's consistency group");
  withWait(resync).action((o: SplitResyncOptions) => splitResyncCommand('resync', o, clock));
  const restore = withTarget(pair.command('restore'))
    .description('restore the primary from the split secondary (reverse resync), then PAIR (like pairresync -restore)')
    .option('--group', "restore every pair of the volume's consistency group");
  withWait(restore).action((o: SplitResyncOptions) => splitResyncCommand('restore', o, clock));
  withTarget(pair.command('delete'))
    .description('dissolve the pair: both volumes SMPL, the secondary keeps what it holds (like pairsplit -S)')
    .action((o: CommonOptions) => deleteCommand(o));
  withTarget(pair.command('status'))
    .description("the volume's pair, or with a command device and no --ldev every pair of the target (like pairdisplay)")
    .action((o: CommonOptions) => statusCommand(o));
}
