// The dispatcher: the only place that checks LUN existence, unit attention, reservations,
// medium state, write protection and LBA range, sizes the Data-Out and trims Data-In to the
// ALLOCATION LENGTH. Rows of the opcode tables (disk.ts) declare each CDB's shape; handlers in
// spc.ts, sbc.ts, pr.ts, mode.ts and vpd.ts do only the command's own work.
import type { Logger } from 'pino';
import type { Nexus, ScsiCommand, ScsiResponse } from './types';
import type { LogicalUnit } from './lu';
import { itKey } from './lu';
import {
  CheckCondition, FieldPointer, ReservationConflict, Sense, Status, encodeSense, invalidCdbField,
} from './sense';
import { prConflict } from './pr';
import { readField } from './cdb';
import { MediumError, WriteProtectedError } from '../../firmware/volume';
import type { PairControl } from '../../firmware/pairs/control';

export type Dir = 'none' | 'in' | 'out';

/**
 * How a command fares against a reservation held through another I_T nexus (SPC-4 5.13.1
 * table 63, SBC-3 4.17 table 13): 'allowed' always runs; 'read' conflicts only under the
 * exclusive-access types; 'write' conflicts under every type for non-holders.
 */
export type PrClass = 'allowed' | 'read' | 'write';

type Field = readonly [offset: number, size: number];

export interface OpRow {
  name: string;
  cdbLength: number;
  dir: Dir;
  lba?: Field;
  /** TRANSFER LENGTH (blocks). */
  length?: Field;
  /** TRANSFER LENGTH 0 means this many blocks (READ(6)/WRITE(6): 256). */
  zeroLengthBlocks?: number;
  /** TRANSFER LENGTH is a data transfer bounded by the Block Limits MAXIMUM TRANSFER LENGTH. */
  transferLimited?: boolean;
  allocationLength?: Field;
  parameterListLength?: Field;
  /** Bits the command honours, per CDB byte; overrides the field ranges for that byte. */
  bits?: Readonly<Record<number, number>>;
  pr: PrClass;
  /** Allowed while another I_T nexus holds a RESERVE(6/10) reservation (SPC-2 5.5.1). */
  spc2Allowed?: boolean;
  /** SAM-5 5.14: INQUIRY, REPORT LUNS and REQUEST SENSE are not blocked by a unit attention. */
  uaExempt?: boolean;
  /** Runs for a LUN that does not exist (INQUIRY, REPORT LUNS, REQUEST SENSE). */
  anyLun?: boolean;
  /** Accepted on the REPORT LUNS well-known LU. */
  wlun?: boolean;
  /** NOT READY / MEDIUM NOT PRESENT when a removable medium is out. */
  needsMedium?: boolean;
  /** SANITIZE itself: allowed after a failed sanitize (SBC-3 4.11.3). */
  sanitize?: boolean;
  /** DATA PROTECT / WRITE PROTECTED on a write-protected LU. */
  writes?: boolean;
  /**
   * The initiator's Expected Data Transfer Length must equal the Data-Out the CDB implies (WRITE
   * SAME, COMPARE AND WRITE: a partial transfer cannot be carried out); a mismatch is blamed on
   * this CDB field, or on the command information unit ('iu').
   */
  exactDataOut?: FieldPointer | 'iu';
  /** Data-Out bytes when not TRANSFER LENGTH x block size nor PARAMETER LIST LENGTH. */
  dataOutBytes?: (cdb: Buffer, blockSize: number) => number;
  /** Nominal and recommended timeouts reported by REPORT SUPPORTED OPERATION CODES (RCTD). */
  timeoutSec?: number;
  run: (ctx: Ctx) => Promise<Buffer | void>;
}

/** An opcode either runs a row or has a nested table of service actions (SA in byte 1 bits 4-0). */
export type OpEntry = OpRow | { name: string; serviceActions: ReadonlyMap<number, OpRow> };
export type OpTable = ReadonlyMap<number, OpEntry>;

export function isServiceActionEntry(e: OpEntry): e is { name: string; serviceActions: ReadonlyMap<number, OpRow> } {
  return 'serviceActions' in e;
}

export interface TargetInfo {
  readonly name: string;
  readonly luns: ReadonlyMap<number, LogicalUnit>;
  /** The opcodes of a LUN that does not exist (INQUIRY, REPORT LUNS, REQUEST SENSE answer there). */
  readonly table: OpTable;
  /** The pair operations of the DKC behind this target (vendor pair commands). */
  readonly pairs?: PairControl;
  /** Keys of the live I_T nexuses. */
  nexusKeys(): Iterable<string>;
  /** The live I_T nexuses. */
  nexuses(): Iterable<Nexus>;
}

export interface Ctx {
  readonly cmd: ScsiCommand;
  readonly cdb: Buffer;
  readonly nexus: Nexus;
  /** itKey(nexus). */
  readonly key: string;
  /** The addressed LU; throws for rows with anyLun when the LU does not exist (use luOrNull). */
  readonly lu: LogicalUnit;
  readonly luOrNull: LogicalUnit | undefined;
  readonly target: TargetInfo;
  readonly lba: number;
  readonly blocks: number;
  /** Data-Out, at most the bytes the command wants. */
  readonly dataOut: Buffer;
  readonly log: Logger;
}

/** SPC-4 7.7.3: the REPORT LUNS well-known logical unit. */
export const WLUN_REPORT_LUNS = 0xc101;
/**
 * Block Limits VPD MAXIMUM TRANSFER LENGTH in bytes (divided by the block size per LU). Below the
 * 16 MiB the iSCSI transport buffers for one write task, so every write we allow can arrive.
 */
export const maxTransferBytes = 8 * 1024 * 1024;

export function maxTransferBlocks(blockSize: number): number {
  return maxTransferBytes / blockSize;
}

/** Usage masks are fixed per row: built on first use, not per command. Callers must not modify them. */
const usageByRow = new WeakMap<OpRow, { opcode: number; serviceAction?: number; usage: Buffer }>();

/** CDB USAGE DATA (SPC-4 6.35.3): the bits of each CDB byte the command honours. */
export function cdbUsage(opcode: number, row: OpRow, serviceAction?: number): Buffer {
  const hit = usageByRow.get(row);
  if (hit && hit.opcode === opcode && hit.serviceAction === serviceAction) return hit.usage;
  const usage = buildUsage(opcode, row, serviceAction);
  usageByRow.set(row, { opcode, serviceAction, usage });
  return usage;
}

function buildUsage(opcode: number, row: OpRow, serviceAction?: number): Buffer {
  const u = Buffer.alloc(row.cdbLength);
  for (const f of [row.lba, row.length, row.allocationLength, row.parameterListLength]) {
    if (f) u.fill(0xff, f[0], f[0] + f[1]);
  }
  for (const [i, bits] of Object.entries(row.bits ?? {})) u[Number(i)] = bits;
  u[0] = opcode;
  if (serviceAction !== undefined) u[1] = (u[1] & 0xe0) | serviceAction;
  u[row.cdbLength - 1] = 0x00; // CONTROL: no NACA, no LINK
  return u;
}

/** Finds the row for a CDB; unsupported opcode or service action -> ILLEGAL REQUEST. */
export function lookupRow(table: OpTable, cdb: Buffer): { row: OpRow; serviceAction?: number } {
  const e = table.get(cdb[0]);
  if (!e) throw new CheckCondition(Sense.INVALID_COMMAND_OPERATION_CODE);
  if (!isServiceActionEntry(e)) return { row: e };
  const sa = (cdb[1] ?? 0) & 0x1f;
  const row = e.serviceActions.get(sa);
  if (!row) throw invalidCdbField(1, 4);
  return { row, serviceAction: sa };
}

/** CDB length, reserved bits (anything outside the usage mask) and the NACA bit. */
function checkCdb(row: OpRow, cdb: Buffer, serviceAction?: number): void {
  if (cdb.length < row.cdbLength) throw invalidCdbField(0, 7);
  const usage = cdbUsage(cdb[0], row, serviceAction);
  for (let i = 1; i < row.cdbLength - 1; i++) {
    const bad = cdb[i] & ~usage[i] & 0xff;
    if (bad) throw invalidCdbField(i, 31 - Math.clz32(bad));
  }
  // SAM-5 5.2: NACA=1 without ACA support -> INVALID FIELD IN CDB.
  if (cdb[row.cdbLength - 1] & 0x04) throw invalidCdbField(row.cdbLength - 1, 2);
}

function checkReservations(row: OpRow, lu: LogicalUnit, nexus: Nexus, key: string): void {
  if (lu.reservedBy !== null && lu.reservedBy !== key && !row.spc2Allowed) {
    throw new ReservationConflict(`${row.name}: reserved by another I_T nexus`);
  }
  if (row.pr !== 'allowed' && prConflict(lu.pr, nexus, row.pr)) {
    throw new ReservationConflict(`${row.name}: persistent reservation`);
  }
}

/** Decodes LBA and TRANSFER LENGTH per the row and checks them against the capacity. */
function lbaRange(row: OpRow, cdb: Buffer, lu: LogicalUnit | undefined): { lba: number; blocks: number } {
  if (!row.lba && !row.length) return { lba: 0, blocks: 0 };
  let lba = 0n;
  if (row.lba) {
    const [off, size] = row.lba;
    lba = size === 8 ? cdb.readBigUInt64BE(off) : BigInt(readField(cdb, off, size));
    if (row.cdbLength === 6) lba &= 0x1fffffn;
  }
  let blocks = row.length ? readField(cdb, row.length[0], row.length[1]) : 0;
  if (blocks === 0 && row.zeroLengthBlocks) blocks = row.zeroLengthBlocks;
  const capacity = BigInt(lu?.volume.blockCount ?? 0);
  if (lba + BigInt(blocks) > capacity) {
    throw new CheckCondition(Sense.LBA_OUT_OF_RANGE, { information: lba });
  }
  if (row.transferLimited && lu && blocks > maxTransferBlocks(lu.volume.blockSize)) {
    throw invalidCdbField(row.length![0], 7);
  }
  return { lba: Number(lba), blocks };
}

function dataOutWanted(row: OpRow, cdb: Buffer, blocks: number, blockSize: number): number | undefined {
  if (row.dir !== 'out') return undefined;
  if (row.dataOutBytes) return row.dataOutBytes(cdb, blockSize);
  if (row.parameterListLength) return readField(cdb, row.parameterListLength[0], row.parameterListLength[1]);
  return blocks * blockSize;
}

/** Unit attention gate (SAM-5 5.14, SPC-4 5.8.7): reports and clears the oldest pending one. */
function checkUnitAttention(row: OpRow, lu: LogicalUnit, key: string, targetKeys: Iterable<string>): void {
  if (lu.volume.blockCount !== lu.capacitySeen) {
    lu.capacitySeen = lu.volume.blockCount;
    lu.addUaAll(targetKeys, Sense.CAPACITY_DATA_HAS_CHANGED);
  }
  if (row.uaExempt) return;
  const ua = lu.takeUa(key);
  if (ua) throw new CheckCondition(ua);
}

function gate(row: OpRow, lu: LogicalUnit, nexus: Nexus, key: string): void {
  // SBC-3 4.11.2: while a sanitize runs only INQUIRY, REPORT LUNS and REQUEST SENSE are served.
  if (lu.sanitizing && !row.uaExempt) throw new CheckCondition(Sense.SANITIZE_IN_PROGRESS);
  // SBC-3 4.11.3: after a failed sanitize, medium access fails until a SANITIZE succeeds.
  if (lu.sanitizeFailed && row.needsMedium && !row.sanitize) throw new CheckCondition(Sense.SANITIZE_COMMAND_FAILED);
  checkReservations(row, lu, nexus, key);
  if (row.needsMedium && !lu.mediumPresent) throw new CheckCondition(Sense.MEDIUM_NOT_PRESENT);
  if (row.writes && lu.writeProtected) throw new CheckCondition(Sense.WRITE_PROTECTED);
}

interface Prepared { row: OpRow; ctx: Ctx; wanted?: number }

function prepare(info: TargetInfo, cmd: ScsiCommand, log: Logger): Prepared {
  const lu = info.luns.get(cmd.lun);
  const key = itKey(cmd.nexus);
  const cdb = cmd.cdb;
  let found: { row: OpRow; serviceAction?: number };
  try {
    found = lookupRowForLun(info, cmd, lu);
  } catch (e) {
    const ua = lu?.takeUa(key); // SAM-5 5.14: the unit attention comes before other errors
    throw ua ? new CheckCondition(ua) : e;
  }
  const { row, serviceAction } = found;
  if (lu) checkUnitAttention(row, lu, key, info.nexusKeys());
  checkCdb(row, cdb, serviceAction);
  if (lu) gate(row, lu, cmd.nexus, key);
  const { lba, blocks } = lbaRange(row, cdb, lu);
  const wanted = dataOutWanted(row, cdb, blocks, lu?.volume.blockSize ?? 512);
  if (row.exactDataOut && wanted !== cmd.expectedLength) {
    const e = row.exactDataOut;
    throw e === 'iu' ? new CheckCondition(Sense.INVALID_FIELD_IN_COMMAND_INFORMATION_UNIT) : new CheckCondition(Sense.INVALID_FIELD_IN_CDB, { fieldPointer: e });
  }
  const dataOut = (cmd.dataOut ?? NO_DATA).subarray(0, wanted ?? 0);
  const ctx: Ctx = {
    cmd, cdb, nexus: cmd.nexus, key, luOrNull: lu, target: info, lba, blocks, dataOut, log,
    get lu(): LogicalUnit {
      if (!lu) throw new Error(`${row.name}: handler used ctx.lu for a LUN that does not exist`);
      return lu;
    },
  };
  return { row, ctx, wanted };
}

/** Data-Out of commands that carry none: one shared empty buffer, not one per command. */
const NO_DATA = Buffer.alloc(0);

function lookupRowForLun(info: TargetInfo, cmd: ScsiCommand, lu: LogicalUnit | undefined): { row: OpRow; serviceAction?: number } {
  if (lu) return lookupRow(lu.table, cmd.cdb);
  let found: { row: OpRow; serviceAction?: number } | undefined;
  try {
    found = lookupRow(info.table, cmd.cdb);
  } catch (e) {
    if (cmd.lun !== WLUN_REPORT_LUNS) throw new CheckCondition(Sense.LU_NOT_SUPPORTED);
    throw e;
  }
  if (cmd.lun === WLUN_REPORT_LUNS ? !found.row.wlun : !found.row.anyLun) {
    throw new CheckCondition(cmd.lun === WLUN_REPORT_LUNS ? Sense.INVALID_COMMAND_OPERATION_CODE : Sense.LU_NOT_SUPPORTED);
  }
  return found;
}

function trim(row: OpRow, cdb: Buffer, data: Buffer): Buffer {
  if (!row.allocationLength) return data;
  const alloc = readField(cdb, row.allocationLength[0], row.allocationLength[1]);
  return data.length > alloc ? data.subarray(0, alloc) : data;
}

/** Runs one command to completion; never throws. `onBug` hears of every unexpected exception. */
export async function dispatch(info: TargetInfo, cmd: ScsiCommand, log: Logger, onBug: (e: unknown) => void): Promise<ScsiResponse> {
  let wanted: number | undefined;
  try {
    await info.luns.get(cmd.lun)?.load();
    const p = prepare(info, cmd, log);
    wanted = p.wanted;
    const data = await p.row.run(p.ctx);
    const res: ScsiResponse = { status: Status.GOOD };
    if (data) res.data = trim(p.row, cmd.cdb, data);
    if (wanted !== undefined) res.dataOutWanted = wanted;
    return res;
  } catch (e) {
    return failure(info, cmd, e, wanted, log, onBug);
  }
}

function failure(info: TargetInfo, cmd: ScsiCommand, e: unknown, wanted: number | undefined, log: Logger, onBug: (e: unknown) => void): ScsiResponse {
  const extra = wanted !== undefined ? { dataOutWanted: wanted } : {};
  if (e instanceof ReservationConflict) return { status: Status.RESERVATION_CONFLICT, ...extra };
  const descriptor = info.luns.get(cmd.lun)?.descriptorSense(itKey(cmd.nexus)) ?? false;
  if (e instanceof MediumError) {
    // SBC-3 4.15: unrecovered errors, INFORMATION = the first LBA in error.
    const s = e.kind === 'read' ? Sense.UNRECOVERED_READ_ERROR : Sense.WRITE_ERROR;
    return { status: Status.CHECK_CONDITION, sense: encodeSense(s, { information: e.lba }, descriptor), ...extra };
  }
  if (e instanceof WriteProtectedError) {
    return { status: Status.CHECK_CONDITION, sense: encodeSense(Sense.WRITE_PROTECTED, {}, descriptor), ...extra };
  }
  if (e instanceof CheckCondition) {
    return { status: Status.CHECK_CONDITION, sense: encodeSense(e.sense, e.detail, descriptor), ...extra };
  }
  log.error({ err: e, lun: cmd.lun, itt: cmd.taskTag, cdb: cmd.cdb.toString('hex') }, 'internal target failure');
  onBug(e);
  return { status: Status.CHECK_CONDITION, sense: encodeSense(Sense.INTERNAL_TARGET_FAILURE, {}, descriptor), ...extra };
}
