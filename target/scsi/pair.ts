// The vendor pair commands (docs/pairs.md, layouts in pair-cdb.ts): decode and check the CDB and
// the parameter list, name the volume (the addressed data LU's, or an LDEV a command device names
// that this target maps), ask the firmware's PairControl, and turn its typed errors into sense.
// Nothing here knows bitmaps or copies: that is firmware/pairs/manager.ts.
import type { Ctx, OpRow } from './dispatch';
import type { LogicalUnit } from './lu';
import { CheckCondition, FieldPointer, Sense, invalidCdbField, invalidParamField } from './sense';
import {
  AREAS_MAX, AREA_DESCRIPTOR_BYTES, Area, CREATE_PARAMETER_BYTES, NAME_BYTES, PAIR_CDB_LENGTH, PAIR_STATE_CODES,
  PairFlag, PairOp, PairRecord, PairVpd, encodePairVpd, encodeStatusData,
} from './pair-cdb';
import {
  PAIR_NAME_RE, PairControl, PairExistsError, PairGroupError, PairNotFoundError, PairRangeError, PairStateError,
  PairStatus, PairVolumeError,
} from '../../firmware/pairs/control';

const LDEV_FIELD: FieldPointer = { cdb: true, byte: 4 };
const SECONDARY_FIELD: FieldPointer = { cdb: true, byte: 2 };

function isCommandDevice(lu: LogicalUnit): boolean {
  return lu.def.kind === 'command-device';
}

function control(ctx: Ctx): PairControl {
  const pairs = ctx.target.pairs;
  // A target built without firmware pairs (unit tests of the transport) has no such commands.
  if (!pairs) throw new CheckCondition(Sense.INVALID_COMMAND_OPERATION_CODE);
  return pairs;
}

/** The disk LU of this target that maps the LDEV; anything else is not reachable from here. */
function reachable(ctx: Ctx, ldev: number, field: FieldPointer): LogicalUnit {
  for (const lu of ctx.target.luns.values()) {
    if (!isCommandDevice(lu) && lu.def.ldev === ldev) return lu;
  }
  // The same answer for an LDEV that does not exist and one this session may not reach.
  throw new CheckCondition(Sense.INVALID_FIELD_IN_CDB, { fieldPointer: { ...field, bit: 7 } });
}

/**
 * The LDEV a command acts on: a data LU acts on its own volume (LDEVV must be 0); a command
 * device acts on the LDEV it names (LDEVV must be 1), which this target must map.
 */
function subject(ctx: Ctx): LogicalUnit {
  const named = (ctx.cdb[1] & PairFlag.LDEVV) !== 0;
  if (isCommandDevice(ctx.lu)) {
    if (!named) throw invalidCdbField(1, 3);
    return reachable(ctx, ctx.cdb.readUInt16BE(4), LDEV_FIELD);
  }
  if (named) throw invalidCdbField(1, 3);
  return ctx.lu;
}

function ldevOf(lu: LogicalUnit): number {
  if (lu.def.ldev === undefined) throw new CheckCondition(Sense.INVALID_COMMAND_OPERATION_CODE);
  return lu.def.ldev;
}

/** The parameter list: PARAMETER LIST LENGTH (bytes 6-9) as the command needs, and all of it sent. */
function parameterList(ctx: Ctx, needed: (n: number) => boolean): Buffer {
  const n = ctx.cdb.readUInt32BE(6);
  if (!needed(n) || ctx.dataOut.length < n) throw new CheckCondition(Sense.PARAMETER_LIST_LENGTH_ERROR);
  return ctx.dataOut;
}

function decodeAreas(data: Buffer, count: number, volume: LogicalUnit): Area[] {
  const areas: Area[] = [];
  for (let i = 0; i < count; i++) {
    const at = i * AREA_DESCRIPTOR_BYTES;
    const lba = data.readBigUInt64BE(at);
    const blocks = data.readUInt32BE(at + 8);
    if (data.readUInt32BE(at + 12) !== 0) throw invalidParamField(at + 12, 7);
    if (blocks === 0) throw invalidParamField(at + 8, 7);
    if (lba + BigInt(blocks) > BigInt(volume.volume.blockCount)) {
      throw new CheckCondition(Sense.LBA_OUT_OF_RANGE, { information: lba, fieldPointer: { cdb: false, byte: at } });
    }
    areas.push({ lba: Number(lba), blocks });
  }
  return areas;
}

/** A NUL-padded ASCII name field; empty is undefined. */
function decodeName(data: Buffer, at: number): string | undefined {
  const raw = data.subarray(at, at + NAME_BYTES);
  const end = raw.indexOf(0);
  const len = end < 0 ? NAME_BYTES : end;
  for (let i = len; i < NAME_BYTES; i++) if (raw[i] !== 0) throw invalidParamField(at + i, 7);
  if (len === 0) return undefined;
  const s = raw.subarray(0, len).toString('latin1');
  if (!PAIR_NAME_RE.test(s)) throw invalidParamField(at, 7);
  return s;
}

/** The firmware's refusal as sense data. */
function refusal(e: unknown): never {
  if (e instanceof PairStateError || e instanceof PairNotFoundError) {
    // COMMAND-SPECIFIC INFORMATION: the pair state the command met (00h SMPL: no pair).
    const state = e instanceof PairStateError ? e.state : 'SMPL';
    throw new CheckCondition(Sense.COMMAND_SEQUENCE_ERROR, { commandSpecific: PAIR_STATE_CODES.indexOf(state) });
  }
  if (e instanceof PairGroupError) throw invalidCdbField(1, 2);
  if (e instanceof PairExistsError) throw invalidParamField(0, 7);
  if (e instanceof PairRangeError) throw new CheckCondition(Sense.LBA_OUT_OF_RANGE, { information: e.lba });
  if (e instanceof PairVolumeError) throw invalidCdbField(SECONDARY_FIELD.byte, 7);
  throw e;
}

function stateError(st: PairStatus): CheckCondition {
  return new CheckCondition(Sense.COMMAND_SEQUENCE_ERROR, { commandSpecific: PAIR_STATE_CODES.indexOf(st.state) });
}

/** PAIR SPLIT/RESYNC (C0h), seed 002 Fig. 5. */
export async function pairSplitResync(ctx: Ctx): Promise<void> {
  const pairs = control(ctx);
  const f = ctx.cdb[1];
  const split = (f & PairFlag.SPLIT) !== 0;
  const reverse = (f & PairFlag.REVERSE) !== 0;
  const group = (f & PairFlag.GROUP) !== 0;
  const count = ctx.cdb.readUInt16BE(2);
  if (split && reverse) throw invalidCdbField(1, 1);
  if (count > AREAS_MAX) throw invalidCdbField(2, 7);
  if (count > 0 && (group || reverse)) throw invalidCdbField(1, group ? 2 : 1);
  const lu = subject(ctx);
  const data = parameterList(ctx, (n) => n === count * AREA_DESCRIPTOR_BYTES);
  const areas = count > 0 ? decodeAreas(data, count, lu) : undefined;
  const ldev = ldevOf(lu);
  try {
    if (split) await pairs.splitVolume(ldev, { areas, group });
    else await pairs.resyncVolume(ldev, { areas, reverse, group });
  } catch (e) {
    refusal(e);
  }
}

/** PAIR CREATE (C1h): the volume becomes the primary of a new pair with the SECONDARY LDEV. */
export async function pairCreate(ctx: Ctx): Promise<void> {
  const pairs = control(ctx);
  const p = subject(ctx);
  const s = reachable(ctx, ctx.cdb.readUInt16BE(2), SECONDARY_FIELD);
  const data = parameterList(ctx, (n) => n === 0 || n === CREATE_PARAMETER_BYTES);
  const id = data.length > 0 ? decodeName(data, 0) : undefined;
  const group = data.length > 0 ? decodeName(data, NAME_BYTES) : undefined;
  if (p === s || p.volume.blockSize !== s.volume.blockSize || p.volume.blockCount !== s.volume.blockCount) {
    throw invalidCdbField(SECONDARY_FIELD.byte, 7);
  }
  for (const lu of [p, s]) {
    const st = pairs.pairOf(ldevOf(lu));
    if (st) throw stateError(st);
  }
  try {
    await pairs.create(ldevOf(p), ldevOf(s), { id, group });
  } catch (e) {
    refusal(e);
  }
}

/** PAIR DELETE (C2h): both volumes SMPL again; the secondary keeps what it holds. */
export async function pairDelete(ctx: Ctx): Promise<void> {
  const pairs = control(ctx);
  const ldev = ldevOf(subject(ctx));
  try {
    await pairs.deleteVolume(ldev);
  } catch (e) {
    refusal(e);
  }
}

/**
 * PAIR STATUS (C3h): the pair of the volume (none when SMPL); on a command device without LDEVV,
 * every pair with a volume this target maps.
 */
export async function pairStatus(ctx: Ctx): Promise<Buffer> {
  const pairs = control(ctx);
  let list: PairStatus[];
  if (isCommandDevice(ctx.lu) && !(ctx.cdb[1] & PairFlag.LDEVV)) {
    const mapped = new Set([...ctx.target.luns.values()].filter((lu) => !isCommandDevice(lu)).map((lu) => lu.def.ldev));
    list = pairs.list().filter((st) => mapped.has(st.primary) || mapped.has(st.secondary));
  } else {
    const st = pairs.pairOf(ldevOf(subject(ctx)));
    list = st ? [st] : [];
  }
  return encodeStatusData(list.map((st) => record(pairs, st)));
}

function record(pairs: PairControl, st: PairStatus): PairRecord {
  return {
    id: st.id, group: st.group, primary: st.primary, secondary: st.secondary, state: st.state, direction: st.direction,
    copyTotalBlocks: st.copy.totalBlocks, copyRemainingBlocks: st.copy.remainingBlocks,
    differenceBlocks: st.differenceBlocks, copiedBlocks: st.copiedBlocks, imagePending: st.imagePending,
    primaryNaa: pairs.naa(st.primary) ?? Buffer.alloc(16), secondaryNaa: pairs.naa(st.secondary) ?? Buffer.alloc(16),
    splitAreaCount: st.splitAreas.length, splitAreas: st.splitAreas,
  };
}

/** VPD C0h, Pair Information (seed 002 step 43): paired?, the partner, the pair state. */
export function pairVpdPage(ctx: Ctx, lu: LogicalUnit): Buffer {
  const ldev = lu.def.ldev ?? 0;
  const st = ctx.target.pairs?.pairOf(ldev);
  const v: PairVpd = { state: 'SMPL', role: 'none', direction: 'forward', ldev };
  if (st) {
    const primary = st.primary === ldev;
    v.state = st.state;
    v.role = primary ? 'primary' : 'secondary';
    v.direction = st.direction;
    v.partner = primary ? st.secondary : st.primary;
    v.partnerNaa = ctx.target.pairs!.naa(v.partner);
    v.id = st.id;
    v.group = st.group;
  }
  return encodePairVpd(0x00, v);
}

/**
 * The rows of the pair commands. On a data LU they change the volume, so a persistent reservation
 * held through another I_T nexus blocks them ('write'; PAIR STATUS is 'allowed'); a command device
 * has no data of its own to reserve.
 */
export function pairRows(pr: 'write' | 'allowed'): [number, OpRow][] {
  const shape = { cdbLength: PAIR_CDB_LENGTH, timeoutSec: 60 } as const;
  return [
    [PairOp.SPLIT_RESYNC, { name: 'PAIR SPLIT/RESYNC', ...shape, dir: 'out', parameterListLength: [6, 4], bits: { 1: 0x0f, 2: 0xff, 3: 0xff, 4: 0xff, 5: 0xff }, pr, run: pairSplitResync }],
    [PairOp.CREATE, { name: 'PAIR CREATE', ...shape, dir: 'out', parameterListLength: [6, 4], bits: { 1: PairFlag.LDEVV, 2: 0xff, 3: 0xff, 4: 0xff, 5: 0xff }, pr, run: pairCreate }],
    [PairOp.DELETE, { name: 'PAIR DELETE', ...shape, dir: 'none', bits: { 1: PairFlag.LDEVV, 4: 0xff, 5: 0xff }, pr, run: pairDelete }],
    [PairOp.STATUS, { name: 'PAIR STATUS', ...shape, dir: 'in', allocationLength: [6, 4], bits: { 1: PairFlag.LDEVV, 4: 0xff, 5: 0xff }, pr: 'allowed', spc2Allowed: true, run: pairStatus }],
  ];
}
