// The bytes of the vendor-specific pair commands (docs/pairs.md): PAIR SPLIT/RESYNC after seed 002
// Fig. 5 (command code 50, split request bit 51, parameter list count 52, parameters 53 of head
// block address and block count), PAIR CREATE, PAIR DELETE, PAIR STATUS, and the Pair Information
// VPD page (seed 002 step 43). Encoders for the initiator side (the dkc CLI, tests) and the
// target side's data; decoders of what the target sends back. Pure: bytes in, bytes out.
import type { PairState } from '../../firmware/pairs/table';

/** Opcodes in the vendor-specific range C0h-DFh (SPC-4 4.3.5.1); every CDB is 12 bytes. */
export const PairOp = Object.freeze({ SPLIT_RESYNC: 0xc0, CREATE: 0xc1, DELETE: 0xc2, STATUS: 0xc3 });
export const PAIR_CDB_LENGTH = 12;

/** CDB byte 1. SPLIT, REVERSE and GROUP: PAIR SPLIT/RESYNC only; LDEVV: every pair command. */
export const PairFlag = Object.freeze({ SPLIT: 0x01, REVERSE: 0x02, GROUP: 0x04, LDEVV: 0x08 });

/** seed 002 Fig. 5 parameter 53: HEAD BLOCK ADDRESS (8), BLOCK COUNT (4), reserved (4). */
export const AREA_DESCRIPTOR_BYTES = 16;
/** Area descriptors one PAIR SPLIT/RESYNC may carry. */
export const AREAS_MAX = 256;
/** PAIR CREATE parameter list: PAIR NAME (32), GROUP NAME (32). */
export const CREATE_PARAMETER_BYTES = 64;
export const NAME_BYTES = 32;
/** Split areas listed per pair in PAIR STATUS data (SPLIT AREA COUNT gives them all). */
export const STATUS_AREAS_MAX = 1024;
export const STATUS_HEADER_BYTES = 8;
/** Bytes of a pair status descriptor before its area descriptors. */
export const STATUS_DESCRIPTOR_BYTES = 140;

/** The vendor VPD page that tells whether a volume is paired, its partner and the pair state. */
export const PAIR_VPD_PAGE = 0xc0;
export const PAIR_VPD_BYTES = 96;

export const PAIR_STATE_CODES: readonly PairState[] = ['SMPL', 'COPY', 'PAIR', 'PSUS', 'PSUE'];
export const PairRole = Object.freeze({ NONE: 0, PRIMARY: 1, SECONDARY: 2 });

export interface Area {
  lba: number;
  blocks: number;
}

/** Which volume a command acts on: the addressed LU's (data LU), or an LDEV named on a command device. */
export interface VolumeRef {
  ldev?: number;
}

export interface WireCommand {
  cdb: Buffer;
  dataOut?: Buffer;
  /** Data-In bytes asked for. */
  expectedLength?: number;
}

function cdb(op: number, flags: number, ref: VolumeRef): Buffer {
  const b = Buffer.alloc(PAIR_CDB_LENGTH);
  b[0] = op;
  b[1] = flags | (ref.ldev !== undefined ? PairFlag.LDEVV : 0);
  if (ref.ldev !== undefined) b.writeUInt16BE(ref.ldev, 4);
  return b;
}

export function encodeAreas(areas: readonly Area[]): Buffer {
  const b = Buffer.alloc(areas.length * AREA_DESCRIPTOR_BYTES);
  areas.forEach((a, i) => {
    b.writeBigUInt64BE(BigInt(a.lba), i * AREA_DESCRIPTOR_BYTES);
    b.writeUInt32BE(a.blocks, i * AREA_DESCRIPTOR_BYTES + 8);
  });
  return b;
}

/** PAIR SPLIT/RESYNC: split (or resync) the whole volume, or the listed areas. */
export function pairSplitResync(o: VolumeRef & { split: boolean; reverse?: boolean; group?: boolean; areas?: readonly Area[] }): WireCommand {
  const flags = (o.split ? PairFlag.SPLIT : 0) | (o.reverse ? PairFlag.REVERSE : 0) | (o.group ? PairFlag.GROUP : 0);
  const b = cdb(PairOp.SPLIT_RESYNC, flags, o);
  const data = encodeAreas(o.areas ?? []);
  b.writeUInt16BE(o.areas?.length ?? 0, 2);
  b.writeUInt32BE(data.length, 6);
  return { cdb: b, dataOut: data };
}

/** PAIR CREATE: the addressed (or named) volume becomes the primary of a pair with `secondary`. */
export function pairCreate(o: VolumeRef & { secondary: number; name?: string; group?: string }): WireCommand {
  const b = cdb(PairOp.CREATE, 0, o);
  b.writeUInt16BE(o.secondary, 2);
  b.writeUInt32BE(CREATE_PARAMETER_BYTES, 6);
  const data = Buffer.alloc(CREATE_PARAMETER_BYTES);
  data.write(o.name ?? '', 0, NAME_BYTES, 'ascii');
  data.write(o.group ?? '', NAME_BYTES, NAME_BYTES, 'ascii');
  return { cdb: b, dataOut: data };
}

export function pairDelete(o: VolumeRef): WireCommand {
  return { cdb: cdb(PairOp.DELETE, 0, o) };
}

export function pairStatus(o: VolumeRef & { allocationLength?: number }): WireCommand {
  const b = cdb(PairOp.STATUS, 0, o);
  const alloc = o.allocationLength ?? 64 * 1024;
  b.writeUInt32BE(alloc, 6);
  return { cdb: b, expectedLength: alloc };
}

// ---- data the target sends ------------------------------------------------------------------

export interface PairRecord {
  id: string;
  group?: string;
  primary: number;
  secondary: number;
  state: PairState;
  direction: 'forward' | 'reverse';
  copyTotalBlocks: number;
  copyRemainingBlocks: number;
  differenceBlocks: number;
  copiedBlocks: number;
  /** Split during a copy (seed 004): the secondary is still getting the split instant's data. */
  imagePending: boolean;
  primaryNaa: Buffer;
  secondaryNaa: Buffer;
  /** Every split area (the data lists at most STATUS_AREAS_MAX of them). */
  splitAreaCount: number;
  splitAreas: Area[];
}

function writeName(b: Buffer, at: number, s: string | undefined): void {
  if (s) b.write(s, at, NAME_BYTES, 'ascii');
}

function readName(b: Buffer, at: number): string {
  const raw = b.subarray(at, at + NAME_BYTES);
  const end = raw.indexOf(0);
  return raw.subarray(0, end < 0 ? NAME_BYTES : end).toString('ascii');
}

function writeNaa(b: Buffer, at: number, naa: Buffer | undefined): void {
  naa?.copy(b, at, 0, 16);
}

export function encodeStatusDescriptor(r: PairRecord): Buffer {
  const areas = r.splitAreas.slice(0, STATUS_AREAS_MAX);
  const b = Buffer.alloc(STATUS_DESCRIPTOR_BYTES + areas.length * AREA_DESCRIPTOR_BYTES);
  b.writeUInt16BE(b.length - 2, 0);
  b[2] = PAIR_STATE_CODES.indexOf(r.state);
  b[3] = (r.direction === 'reverse' ? 0x01 : 0) | (r.imagePending ? 0x02 : 0);
  b.writeUInt16BE(r.primary, 4);
  b.writeUInt16BE(r.secondary, 6);
  b.writeBigUInt64BE(BigInt(r.copyTotalBlocks), 8);
  b.writeBigUInt64BE(BigInt(r.copyRemainingBlocks), 16);
  b.writeBigUInt64BE(BigInt(r.differenceBlocks), 24);
  b.writeBigUInt64BE(BigInt(r.copiedBlocks), 32);
  writeName(b, 40, r.id);
  writeName(b, 72, r.group);
  writeNaa(b, 104, r.primaryNaa);
  writeNaa(b, 120, r.secondaryNaa);
  b.writeUInt32BE(r.splitAreaCount, 136);
  encodeAreas(areas).copy(b, STATUS_DESCRIPTOR_BYTES);
  return b;
}

export function encodeStatusData(records: readonly PairRecord[]): Buffer {
  const h = Buffer.alloc(STATUS_HEADER_BYTES);
  const body = Buffer.concat(records.map(encodeStatusDescriptor));
  h.writeUInt32BE(body.length + STATUS_HEADER_BYTES - 4, 0);
  h.writeUInt16BE(records.length, 4);
  return Buffer.concat([h, body]);
}

/** PAIR STATUS data; throws on data too short for what it declares (a truncated allocation). */
export function decodeStatusData(d: Buffer): PairRecord[] {
  if (d.length < STATUS_HEADER_BYTES) throw new Error(`PAIR STATUS data: ${d.length} bytes, header needs ${STATUS_HEADER_BYTES}`);
  const available = d.readUInt32BE(0) + 4;
  if (d.length < available) throw new Error(`PAIR STATUS data truncated: ${d.length} of ${available} bytes (allocation length too small)`);
  const out: PairRecord[] = [];
  for (let at = STATUS_HEADER_BYTES, n = d.readUInt16BE(4); n > 0; n--) {
    const len = d.readUInt16BE(at) + 2;
    const b = d.subarray(at, at + len);
    const areas: Area[] = [];
    for (let a = STATUS_DESCRIPTOR_BYTES; a + AREA_DESCRIPTOR_BYTES <= b.length; a += AREA_DESCRIPTOR_BYTES) {
      areas.push({ lba: Number(b.readBigUInt64BE(a)), blocks: b.readUInt32BE(a + 8) });
    }
    const r: PairRecord = {
      id: readName(b, 40),
      primary: b.readUInt16BE(4),
      secondary: b.readUInt16BE(6),
      state: PAIR_STATE_CODES[b[2]] ?? 'SMPL',
      direction: b[3] & 0x01 ? 'reverse' : 'forward',
      copyTotalBlocks: Number(b.readBigUInt64BE(8)),
      copyRemainingBlocks: Number(b.readBigUInt64BE(16)),
      differenceBlocks: Number(b.readBigUInt64BE(24)),
      copiedBlocks: Number(b.readBigUInt64BE(32)),
      imagePending: (b[3] & 0x02) !== 0,
      primaryNaa: Buffer.from(b.subarray(104, 120)),
      secondaryNaa: Buffer.from(b.subarray(120, 136)),
      splitAreaCount: b.readUInt32BE(136),
      splitAreas: areas,
    };
    const group = readName(b, 72);
    if (group) r.group = group;
    out.push(r);
    at += len;
  }
  return out;
}

export interface PairVpd {
  state: PairState;
  role: 'none' | 'primary' | 'secondary';
  direction: 'forward' | 'reverse';
  ldev: number;
  partner?: number;
  partnerNaa?: Buffer;
  id?: string;
  group?: string;
}

const ROLES = ['none', 'primary', 'secondary'] as const;

export function encodePairVpd(deviceType: number, v: PairVpd): Buffer {
  const b = Buffer.alloc(PAIR_VPD_BYTES);
  b[0] = deviceType;
  b[1] = PAIR_VPD_PAGE;
  b.writeUInt16BE(PAIR_VPD_BYTES - 4, 2);
  b[4] = PAIR_STATE_CODES.indexOf(v.state);
  b[5] = ROLES.indexOf(v.role);
  b[6] = v.direction === 'reverse' ? 0x01 : 0;
  b.writeUInt16BE(v.ldev, 8);
  b.writeUInt16BE(v.partner ?? 0, 10);
  writeNaa(b, 16, v.partnerNaa);
  writeName(b, 32, v.id);
  writeName(b, 64, v.group);
  return b;
}

export function decodePairVpd(d: Buffer): PairVpd {
  if (d.length < PAIR_VPD_BYTES || d[1] !== PAIR_VPD_PAGE) throw new Error(`not a Pair Information VPD page (${d.length} bytes, page ${d[1]})`);
  const v: PairVpd = {
    state: PAIR_STATE_CODES[d[4]] ?? 'SMPL',
    role: ROLES[d[5]] ?? 'none',
    direction: d[6] & 0x01 ? 'reverse' : 'forward',
    ldev: d.readUInt16BE(8),
  };
  if (v.role !== 'none') {
    v.partner = d.readUInt16BE(10);
    v.partnerNaa = Buffer.from(d.subarray(16, 32));
    v.id = readName(d, 32);
    const g = readName(d, 64);
    if (g) v.group = g;
  }
  return v;
}
