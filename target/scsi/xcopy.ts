// EXTENDED COPY (LID1, SPC-4 6.4) and RECEIVE COPY RESULTS (SPC-4 6.18): the copy manager of
// this SCSI target device. It copies between LUs of the same target only (a CSCD naming any other
// LU, even by a valid NAA, is not reachable), through the same Volume read/write path, range locks,
// reservation and write-protection rules as host I/O, in bounded chunks.
import type { Ctx } from './dispatch';
import type { LogicalUnit } from './lu';
import type { Nexus } from './types';
import {
  CheckCondition, FieldPointer, ReservationConflict, Sense, SenseCode, Status, encodeFixedSense,
  invalidCdbField, invalidParamField,
} from './sense';
import { prConflict } from './pr';
import { MediumError } from '../../firmware/volume';

/** The copy manager's limits (RECEIVE COPY RESULTS OPERATING PARAMETERS, VPD 8Fh). */
export const CopyLimits = Object.freeze({
  maxCscdDescriptors: 16,
  maxSegmentDescriptors: 16,
  /** CSCD + segment descriptor bytes in one parameter list. */
  maxDescriptorListBytes: 1024,
  /** BLOCK DEVICE NUMBER OF BLOCKS is 16 bits: 65535 x 4096 fits. */
  maxSegmentBytes: 256 * 1024 * 1024,
  maxInlineDataBytes: 0,
  /** Copies one I_T nexus may run at once with a LIST IDENTIFIER in use. */
  maxConcurrentCopies: 16,
  /** Bytes read then written per step of a segment (bounded buffers). */
  chunkBytes: 1024 * 1024,
  /** Finished copies whose status is held for RECEIVE COPY RESULTS, per LU (oldest dropped). */
  heldResultsMax: 64,
});

/** Descriptor type codes (SPC-4 6.4.5, 6.4.6). */
export const CopyDescriptor = Object.freeze({ BLOCK_TO_BLOCK: 0x02, IDENTIFICATION: 0xe4 });
export const ReceiveCopyResultsAction = Object.freeze({
  COPY_STATUS: 0x00, OPERATING_PARAMETERS: 0x03, FAILED_SEGMENT_DETAILS: 0x04,
});
const ListIdUsage = Object.freeze({ HOLD: 0, RESERVED: 1, NO_HOLD: 2, NONE: 3 });

const HEADER_BYTES = 16;
const CSCD_BYTES = 32;
const B2B_DESCRIPTOR_LENGTH = 0x18;

export interface Cscd {
  /** Byte offset of the descriptor in the parameter list (for field pointers). */
  at: number;
  /** The LU it names, when it is one of this target's; null: not reachable. */
  lu: LogicalUnit | null;
  diskBlockLength: number;
}

export interface Segment {
  at: number;
  src: number;
  dst: number;
  blocks: number;
  srcLba: bigint;
  dstLba: bigint;
}

export interface CopyParameters {
  listId: number;
  listIdUsage: number;
  cscds: Cscd[];
  segments: Segment[];
}

type CopyState = 'running' | 'done' | 'failed';

/** One EXTENDED COPY as RECEIVE COPY RESULTS reports it. */
export interface CopyRecord {
  listId: number;
  state: CopyState;
  hold: boolean;
  segmentsProcessed: number;
  bytesTransferred: number;
  /** SCSI status the command ended with, and its fixed-format sense data (FAILED SEGMENT DETAILS). */
  status?: number;
  sense?: Buffer;
}

/** Copies per (I_T nexus, LIST ID) for one LU; finished ones are held up to heldResultsMax. */
export class CopyTable {
  private readonly records = new Map<string, CopyRecord>();

  private static key(it: string, listId: number): string {
    return `${it}#${listId}`;
  }

  get(it: string, listId: number): CopyRecord | undefined {
    return this.records.get(CopyTable.key(it, listId));
  }

  start(it: string, listId: number, hold: boolean): CopyRecord {
    const k = CopyTable.key(it, listId);
    if (this.records.get(k)?.state === 'running') throw new CheckCondition(Sense.OPERATION_IN_PROGRESS);
    let running = 0;
    for (const [key, r] of this.records) if (key.startsWith(`${it}#`) && r.state === 'running') running++;
    if (running >= CopyLimits.maxConcurrentCopies) throw new CheckCondition(Sense.OPERATION_IN_PROGRESS);
    this.records.delete(k); // a new command with a held LIST ID replaces the held results
    const r: CopyRecord = { listId, state: 'running', hold, segmentsProcessed: 0, bytesTransferred: 0 };
    this.records.set(k, r);
    return r;
  }

  finish(it: string, r: CopyRecord, failed?: { status: number; sense: Buffer }): void {
    r.state = failed ? 'failed' : 'done';
    r.status = failed?.status;
    r.sense = failed?.sense;
    const k = CopyTable.key(it, r.listId);
    if (!r.hold) {
      if (this.records.get(k) === r) this.records.delete(k);
      return;
    }
    this.evict();
  }

  drop(it: string, listId: number): void {
    this.records.delete(CopyTable.key(it, listId));
  }

  /** I_T nexus loss: its held results go. */
  forget(it: string): void {
    for (const k of [...this.records.keys()]) if (k.startsWith(`${it}#`)) this.records.delete(k);
  }

  private evict(): void {
    const held = [...this.records.entries()].filter(([, r]) => r.state !== 'running');
    for (let i = 0; held.length - i > CopyLimits.heldResultsMax; i++) this.records.delete(held[i][0]);
  }

  get size(): number {
    return this.records.size;
  }
}

// ---------------------------------------------------------------- parameter list

/** The LU of this target whose VPD 83h NAA designator (association 0) the CSCD names. */
function resolveIdentification(ctx: Ctx, d: Buffer): LogicalUnit | null {
  const codeSet = d[4] & 0x0f;
  const association = (d[5] >> 4) & 0x03;
  const type = d[5] & 0x0f;
  const length = d[7];
  // SPC-4 7.8.6.6: NAA designators are binary, 8 or 16 bytes; only LU designators name a LU.
  if (codeSet !== 1 || association !== 0 || type !== 3 || (length !== 8 && length !== 16)) return null;
  const naa = d.subarray(8, 8 + length);
  for (const lu of ctx.target.luns.values()) {
    if (lu.volume.naa.length === length && lu.volume.naa.equals(naa)) return lu;
  }
  return null;
}

function parseCscds(ctx: Ctx, list: Buffer, length: number): Cscd[] {
  if (length % CSCD_BYTES !== 0) throw new CheckCondition(Sense.PARAMETER_LIST_LENGTH_ERROR);
  const count = length / CSCD_BYTES;
  if (count > CopyLimits.maxCscdDescriptors) throw new CheckCondition(Sense.TOO_MANY_TARGET_DESCRIPTORS);
  const out: Cscd[] = [];
  for (let i = 0; i < count; i++) {
    const at = HEADER_BYTES + i * CSCD_BYTES;
    const d = list.subarray(at, at + CSCD_BYTES);
    if (d[0] !== CopyDescriptor.IDENTIFICATION) {
      throw new CheckCondition(Sense.UNSUPPORTED_TARGET_DESCRIPTOR_TYPE_CODE, { fieldPointer: { cdb: false, byte: at } });
    }
    // SPC-4 6.4.5.1: LU ID TYPE is ignored for the identification descriptor; NUL is obsolete.
    if ((d[1] & 0x1f) !== 0x00) throw invalidParamField(at + 1, 4); // only block devices (type 00h)
    const diskBlockLength = d.readUIntBE(29, 3);
    const lu = resolveIdentification(ctx, d);
    // SPC-4 6.4.6.2: DISK BLOCK LENGTH must be the copy target's logical block length.
    if (lu && diskBlockLength !== lu.volume.blockSize) throw invalidParamField(at + 29, 7);
    out.push({ at, lu, diskBlockLength });
  }
  return out;
}

function parseSegments(list: Buffer, start: number, length: number): Segment[] {
  const out: Segment[] = [];
  const end = start + length;
  for (let at = start; at < end;) {
    if (at + 4 > end) throw new CheckCondition(Sense.PARAMETER_LIST_LENGTH_ERROR);
    const len = 4 + list.readUInt16BE(at + 2);
    if (at + len > end) throw new CheckCondition(Sense.PARAMETER_LIST_LENGTH_ERROR);
    if (out.length === CopyLimits.maxSegmentDescriptors) throw new CheckCondition(Sense.TOO_MANY_SEGMENT_DESCRIPTORS);
    if (list[at] !== CopyDescriptor.BLOCK_TO_BLOCK) {
      throw new CheckCondition(Sense.UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE_CODE, { fieldPointer: { cdb: false, byte: at } });
    }
    if (len !== 4 + B2B_DESCRIPTOR_LENGTH) throw invalidParamField(at + 2, 7);
    out.push({
      at,
      src: list.readUInt16BE(at + 4),
      dst: list.readUInt16BE(at + 6),
      blocks: list.readUInt16BE(at + 10),
      srcLba: list.readBigUInt64BE(at + 12),
      dstLba: list.readBigUInt64BE(at + 20),
    });
    at += len;
  }
  return out;
}

/**
 * Checks the whole parameter list (SPC-4 6.4.3) before any data moves: header fields, lengths
 * against the PARAMETER LIST LENGTH and the copy manager's limits, descriptor type codes.
 */
export function parseCopyParameters(ctx: Ctx, list: Buffer): CopyParameters {
  if (list.length < HEADER_BYTES) throw new CheckCondition(Sense.PARAMETER_LIST_LENGTH_ERROR);
  const listId = list[0];
  const listIdUsage = (list[1] >> 3) & 0x03;
  if (list[1] & 0xc0) throw invalidParamField(1, 7);
  if (listIdUsage === ListIdUsage.RESERVED) throw invalidParamField(1, 4);
  // SPC-4 6.4.3.2: LIST ID USAGE 11b (no list identifier) needs LIST IDENTIFIER 0.
  if (listIdUsage === ListIdUsage.NONE && listId !== 0) throw invalidParamField(0, 7);
  const cscdLength = list.readUInt16BE(2);
  if (list.readUInt32BE(4) !== 0) throw invalidParamField(4, 7);
  const segLength = list.readUInt32BE(8);
  const inlineLength = list.readUInt32BE(12);
  if (cscdLength + segLength > CopyLimits.maxDescriptorListBytes) throw new CheckCondition(Sense.PARAMETER_LIST_LENGTH_ERROR);
  if (inlineLength > CopyLimits.maxInlineDataBytes) throw invalidParamField(12, 7);
  if (HEADER_BYTES + cscdLength + segLength + inlineLength > list.length) {
    throw new CheckCondition(Sense.PARAMETER_LIST_LENGTH_ERROR);
  }
  const cscds = parseCscds(ctx, list, cscdLength);
  const segments = parseSegments(list, HEADER_BYTES + cscdLength, segLength);
  return { listId, listIdUsage, cscds, segments };
}

// ---------------------------------------------------------------- copying

class SegmentFailure extends Error {
  constructor(readonly sense: SenseCode, readonly segment: number, readonly pointer?: FieldPointer) {
    super(`EXTENDED COPY segment ${segment}: ${sense.name}`);
  }
}

/** The copy target behind a CSCD index, checked as a host command from the issuing nexus would be. */
function copyTarget(ctx: Ctx, p: CopyParameters, index: number, n: number, seg: Segment, role: 'src' | 'dst'): LogicalUnit {
  const cscd = p.cscds[index];
  const pointer = { cdb: false, byte: seg.at + (role === 'src' ? 4 : 6) };
  // SPC-4 6.4.5: an index past the CSCD list, or a CSCD naming no LU of this target.
  if (!cscd || !cscd.lu || !ctx.target.luns.has(cscd.lu.lun) || ctx.target.luns.get(cscd.lu.lun) !== cscd.lu) {
    throw new SegmentFailure(Sense.COPY_TARGET_DEVICE_NOT_REACHABLE, n, pointer);
  }
  const lu = cscd.lu;
  checkAccess(lu, ctx.nexus, ctx.key, role);
  return lu;
}

/** Reservations, medium, sanitize and write protection on a copy target (SPC-4 5.13, SBC-3 4.17). */
function checkAccess(lu: LogicalUnit, nexus: Nexus, key: string, role: 'src' | 'dst'): void {
  if (lu.reservedBy !== null && lu.reservedBy !== key) throw new ReservationConflict('EXTENDED COPY: copy target reserved by another I_T nexus');
  if (prConflict(lu.pr, nexus, role === 'src' ? 'read' : 'write')) throw new ReservationConflict('EXTENDED COPY: copy target persistent reservation');
  if (lu.sanitizing) throw new CheckCondition(Sense.SANITIZE_IN_PROGRESS);
  if (!lu.mediumPresent) throw new CheckCondition(Sense.MEDIUM_NOT_PRESENT);
  if (role === 'dst' && lu.writeProtected) throw new CheckCondition(Sense.WRITE_PROTECTED);
}

async function copySegment(ctx: Ctx, p: CopyParameters, n: number, record: CopyRecord): Promise<void> {
  const seg = p.segments[n];
  const src = copyTarget(ctx, p, seg.src, n, seg, 'src');
  const dst = copyTarget(ctx, p, seg.dst, n, seg, 'dst');
  if (seg.blocks === 0) return; // SPC-4 6.4.6.5: no blocks, not an error
  const bs = src.volume.blockSize;
  if (dst.volume.blockSize !== bs) throw new SegmentFailure(Sense.COPY_ABORTED, n, { cdb: false, byte: seg.at + 10 });
  if (seg.srcLba + BigInt(seg.blocks) > BigInt(src.volume.blockCount)) throw new SegmentFailure(Sense.COPY_ABORTED, n, { cdb: false, byte: seg.at + 12 });
  if (seg.dstLba + BigInt(seg.blocks) > BigInt(dst.volume.blockCount)) throw new SegmentFailure(Sense.COPY_ABORTED, n, { cdb: false, byte: seg.at + 20 });
  const srcLba = Number(seg.srcLba), dstLba = Number(seg.dstLba);
  const chunk = Math.max(1, Math.floor(CopyLimits.chunkBytes / bs));
  // Overlapping ranges of one LU with the destination ahead of the source copy from the end.
  const backward = src === dst && dstLba > srcLba && dstLba < srcLba + seg.blocks;
  const steps = Math.ceil(seg.blocks / chunk);
  for (let i = 0; i < steps; i++) {
    const off = backward ? Math.max(0, seg.blocks - (i + 1) * chunk) : i * chunk;
    const len = backward ? seg.blocks - i * chunk - off : Math.min(chunk, seg.blocks - off);
    // Access is re-checked per chunk: a reservation taken mid-copy stops the rest.
    checkAccess(src, ctx.nexus, ctx.key, 'src');
    checkAccess(dst, ctx.nexus, ctx.key, 'dst');
    const release = await dst.locks.acquire(dstLba + off, len);
    try {
      const data = await src.volume.read(srcLba + off, len);
      await dst.volume.write(dstLba + off, data, { fua: !dst.mode.wce });
    } catch (e) {
      if (e instanceof MediumError) throw new SegmentFailure(Sense.COPY_ABORTED, n, { cdb: false, byte: seg.at });
      throw e;
    } finally {
      release();
    }
    record.bytesTransferred += len * bs;
  }
}

/** EXTENDED COPY(LID1), SPC-4 6.4: validates the list, then runs the segments in order. */
export async function extendedCopy(ctx: Ctx): Promise<void> {
  const paramLength = ctx.cdb.readUInt32BE(10);
  if (paramLength === 0) return; // SPC-4 6.4.1: not an error
  const p = parseCopyParameters(ctx, ctx.dataOut);
  const table = ctx.lu.copies;
  const tracked = p.listIdUsage !== ListIdUsage.NONE;
  const record: CopyRecord = tracked
    ? table.start(ctx.key, p.listId, p.listIdUsage === ListIdUsage.HOLD)
    : { listId: 0, state: 'running', hold: false, segmentsProcessed: 0, bytesTransferred: 0 };
  try {
    for (let n = 0; n < p.segments.length; n++) {
      await copySegment(ctx, p, n, record);
      record.segmentsProcessed = n + 1;
    }
  } catch (e) {
    const failure = e instanceof SegmentFailure
      ? new CheckCondition(e.sense, { commandSpecific: e.segment, fieldPointer: e.pointer })
      : e;
    if (tracked) {
      table.finish(ctx.key, record, failure instanceof CheckCondition
        ? { status: Status.CHECK_CONDITION, sense: encodeFixedSense(failure.sense, failure.detail) }
        : failure instanceof ReservationConflict
          ? { status: Status.RESERVATION_CONFLICT, sense: Buffer.alloc(0) }
          : { status: Status.CHECK_CONDITION, sense: encodeFixedSense(Sense.INTERNAL_TARGET_FAILURE) });
    }
    throw failure;
  }
  if (tracked) table.finish(ctx.key, record);
}

// ---------------------------------------------------------------- RECEIVE COPY RESULTS

function transferCount(bytes: number): { units: number; count: number } {
  // SPC-4 6.18.3 table: TRANSFER COUNT UNITS 00h bytes, 01h KiB, 02h MiB, 03h GiB.
  let units = 0;
  let count = bytes;
  while (count > 0xffffffff && units < 3) {
    count = Math.floor(count / 1024);
    units++;
  }
  return { units, count: Math.min(count, 0xffffffff) };
}

function copyStatus(r: CopyRecord): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt32BE(8, 0);
  // COPY MANAGER STATUS: 00h in progress, 01h completed without error, 02h completed with error.
  b[4] = r.state === 'running' ? 0x00 : r.state === 'done' ? 0x01 : 0x02;
  b.writeUInt16BE(Math.min(r.segmentsProcessed, 0xffff), 5);
  const t = transferCount(r.bytesTransferred);
  b[7] = t.units;
  b.writeUInt32BE(t.count, 8);
  return b;
}

/** OPERATING PARAMETERS (SPC-4 6.18.4). */
export function operatingParameters(): Buffer {
  const codes = [CopyDescriptor.BLOCK_TO_BLOCK, CopyDescriptor.IDENTIFICATION];
  const b = Buffer.alloc(44 + codes.length);
  b.writeUInt32BE(b.length - 4, 0);
  b[4] = 0x01; // SNLID: LIST ID USAGE 11b is supported
  b.writeUInt16BE(CopyLimits.maxCscdDescriptors, 8);
  b.writeUInt16BE(CopyLimits.maxSegmentDescriptors, 10);
  b.writeUInt32BE(CopyLimits.maxDescriptorListBytes, 12);
  b.writeUInt32BE(CopyLimits.maxSegmentBytes, 16);
  b.writeUInt32BE(CopyLimits.maxInlineDataBytes, 20);
  b.writeUInt32BE(0, 24); // HELD DATA LIMIT: no segment type holds data
  b.writeUInt32BE(0, 28); // MAXIMUM STREAM DEVICE TRANSFER SIZE: no stream devices
  b.writeUInt16BE(CopyLimits.maxConcurrentCopies, 34);
  b[36] = CopyLimits.maxConcurrentCopies;
  b[37] = 0; // DATA SEGMENT GRANULARITY 2^0: any number of bytes
  b[38] = 0;
  b[39] = 0;
  b[43] = codes.length;
  codes.forEach((c, i) => { b[44 + i] = c; });
  return b;
}

function failedSegmentDetails(r: CopyRecord): Buffer {
  // SPC-4 6.18.5: nothing to report while the command runs or when it succeeded.
  if (r.state !== 'failed' || !r.sense) return Buffer.alloc(4);
  const b = Buffer.alloc(60 + r.sense.length);
  b.writeUInt32BE(b.length - 4, 0);
  b[56] = r.status ?? Status.CHECK_CONDITION; // COPY COMMAND STATUS
  b.writeUInt16BE(r.sense.length, 58);
  r.sense.copy(b, 60);
  return b;
}

/** RECEIVE COPY RESULTS (SPC-4 6.18), service actions COPY STATUS, OPERATING PARAMETERS, FAILED SEGMENT DETAILS. */
export async function receiveCopyResults(ctx: Ctx): Promise<Buffer> {
  const sa = ctx.cdb[1] & 0x1f;
  if (sa === ReceiveCopyResultsAction.OPERATING_PARAMETERS) return operatingParameters();
  const listId = ctx.cdb[2];
  const table = ctx.lu.copies;
  const r = table.get(ctx.key, listId);
  if (!r) throw invalidCdbField(2, 7); // no copy with this LIST IDENTIFIER on this I_T nexus
  if (sa === ReceiveCopyResultsAction.COPY_STATUS) {
    const out = copyStatus(r);
    // SPC-4 6.18.3: a finished copy's status is discarded once reported, unless failed segment
    // details remain to be read.
    if (r.state === 'done') table.drop(ctx.key, listId);
    return out;
  }
  const out = failedSegmentDetails(r);
  if (r.state !== 'running') table.drop(ctx.key, listId);
  return out;
}

// ---------------------------------------------------------------- VPD 8Fh

function tpcDescriptor(type: number, body: Buffer): Buffer {
  const padded = Buffer.alloc(Math.ceil((4 + body.length) / 4) * 4);
  padded.writeUInt16BE(type, 0);
  padded.writeUInt16BE(padded.length - 4, 2);
  body.copy(padded, 4);
  return padded;
}

/** Third-party Copy VPD page descriptors for LID1 EXTENDED COPY (SPC-4 7.8.17). */
export function thirdPartyCopyDescriptors(): Buffer {
  const commands = [
    [0x83, [0x00]],
    [0x84, [ReceiveCopyResultsAction.COPY_STATUS, ReceiveCopyResultsAction.OPERATING_PARAMETERS, ReceiveCopyResultsAction.FAILED_SEGMENT_DETAILS]],
  ] as const;
  const list = Buffer.concat(commands.map(([op, sas]) => Buffer.from([op, sas.length, ...sas])));
  const supportedCommands = tpcDescriptor(0x0001, Buffer.concat([Buffer.from([list.length]), list]));
  const params = Buffer.alloc(28);
  params.writeUInt16BE(CopyLimits.maxCscdDescriptors, 4);
  params.writeUInt16BE(CopyLimits.maxSegmentDescriptors, 6);
  params.writeUInt32BE(CopyLimits.maxDescriptorListBytes, 8);
  params.writeUInt32BE(CopyLimits.maxInlineDataBytes, 12);
  const parameterData = tpcDescriptor(0x0004, params);
  const codes = [CopyDescriptor.BLOCK_TO_BLOCK, CopyDescriptor.IDENTIFICATION];
  const supportedDescriptors = tpcDescriptor(0x0008, Buffer.from([codes.length, ...codes]));
  const supportedCscdIds = tpcDescriptor(0x000c, Buffer.from([0, 0])); // no CSCD IDs beyond indexes
  const general = Buffer.alloc(32);
  general.writeUInt32BE(CopyLimits.maxConcurrentCopies, 0); // TOTAL CONCURRENT COPIES
  general.writeUInt32BE(CopyLimits.maxConcurrentCopies, 4); // MAXIMUM IDENTIFIED CONCURRENT COPIES
  general.writeUInt32BE(CopyLimits.maxSegmentBytes, 8);
  general[12] = 0; // DATA SEGMENT GRANULARITY (log2)
  general[13] = 0; // INLINE DATA GRANULARITY (log2)
  const generalCopy = tpcDescriptor(0x8001, general);
  return Buffer.concat([supportedCommands, parameterData, supportedDescriptors, supportedCscdIds, generalCopy]);
}
