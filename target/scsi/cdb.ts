// CDB decoders and encoders, one per CDB shape (SPC-4, SBC-3). Pure: bytes in, values out, and
// back. Each decoder checks the CDB length first; 64-bit LBAs are bigint at this boundary.

export class CdbLengthError extends Error {
  constructor(readonly want: number, readonly got: number) {
    super(`CDB too short: want ${want} bytes, got ${got}`);
  }
}

function need(cdb: Buffer, n: number): void {
  if (cdb.length < n) throw new CdbLengthError(n, cdb.length);
}

const bit = (b: number, n: number): boolean => ((b >> n) & 1) === 1;

/** Big-endian unsigned field of 1..4 bytes. */
export function readField(cdb: Buffer, offset: number, size: number): number {
  return cdb.readUIntBE(offset, size);
}

/** Big-endian unsigned field of 1..8 bytes as bigint. */
export function readFieldBig(cdb: Buffer, offset: number, size: number): bigint {
  if (size === 8) return cdb.readBigUInt64BE(offset);
  return BigInt(cdb.readUIntBE(offset, size));
}

// ---------------------------------------------------------------- READ/WRITE family (SBC-3 5.x)

/** READ(6)/WRITE(6): 21-bit LBA, TRANSFER LENGTH 0 means 256 blocks (SBC-3 5.15). */
export interface Rw6 { opcode: number; lba: bigint; transferLength: number; control: number }

export function decodeRw6(cdb: Buffer): Rw6 {
  need(cdb, 6);
  const lba = ((cdb[1] & 0x1f) << 16) | cdb.readUInt16BE(2);
  return { opcode: cdb[0], lba: BigInt(lba), transferLength: cdb[4] === 0 ? 256 : cdb[4], control: cdb[5] };
}

export function encodeRw6(v: Omit<Rw6, 'control'> & { control?: number }): Buffer {
  const b = Buffer.alloc(6);
  b[0] = v.opcode;
  const lba = Number(v.lba);
  b[1] = (lba >> 16) & 0x1f;
  b.writeUInt16BE(lba & 0xffff, 2);
  b[4] = v.transferLength & 0xff;
  b[5] = v.control ?? 0;
  return b;
}

/** The common 10/12/16-byte READ, WRITE, VERIFY, WRITE AND VERIFY, ORWRITE, PRE-FETCH shape. */
export interface Rw {
  opcode: number;
  /** Byte 1 as sent: RDPROTECT/WRPROTECT/VRPROTECT, DPO, FUA, BYTCHK etc. */
  flags: number;
  protect: number;
  dpo: boolean;
  fua: boolean;
  /** BYTCHK (VERIFY, WRITE AND VERIFY): bits 2-1 of byte 1. */
  bytchk: number;
  /** IMMED (PRE-FETCH, SYNCHRONIZE CACHE): bit 1 of byte 1. */
  immed: boolean;
  lba: bigint;
  transferLength: number;
  groupNumber: number;
  control: number;
}

const rwLayout = {
  10: { lba: [2, 4], len: [7, 2], group: 6 },
  12: { lba: [2, 4], len: [6, 4], group: 10 },
  16: { lba: [2, 8], len: [10, 4], group: 14 },
} as const;

export function decodeRw(cdb: Buffer, size: 10 | 12 | 16): Rw {
  need(cdb, size);
  const l = rwLayout[size];
  const f = cdb[1];
  return {
    opcode: cdb[0], flags: f, protect: f >> 5, dpo: bit(f, 4), fua: bit(f, 3),
    bytchk: (f >> 1) & 3, immed: bit(f, 1),
    lba: readFieldBig(cdb, l.lba[0], l.lba[1]),
    transferLength: readField(cdb, l.len[0], l.len[1]),
    groupNumber: cdb[l.group] & 0x3f, control: cdb[size - 1],
  };
}

export function encodeRw(size: 10 | 12 | 16, v: { opcode: number; flags?: number; lba: bigint; transferLength: number; groupNumber?: number; control?: number }): Buffer {
  const b = Buffer.alloc(size);
  const l = rwLayout[size];
  b[0] = v.opcode;
  b[1] = v.flags ?? 0;
  if (size === 16) b.writeBigUInt64BE(v.lba, 2);
  else b.writeUInt32BE(Number(v.lba), 2);
  b.writeUIntBE(v.transferLength, l.len[0], l.len[1]);
  b[l.group] = v.groupNumber ?? 0;
  b[size - 1] = v.control ?? 0;
  return b;
}

// ---------------------------------------------------------------- WRITE SAME (SBC-3 5.41-5.43)

export interface WriteSame { opcode: number; wrprotect: number; anchor: boolean; unmap: boolean; ndob: boolean; lba: bigint; numberOfBlocks: number; control: number }

export function decodeWriteSame(cdb: Buffer, size: 10 | 16): WriteSame {
  const rw = decodeRw(cdb, size);
  const f = cdb[1];
  return {
    opcode: rw.opcode, wrprotect: f >> 5, anchor: bit(f, 4), unmap: bit(f, 3),
    ndob: size === 16 && bit(f, 0), lba: rw.lba,
    numberOfBlocks: size === 10 ? cdb.readUInt16BE(7) : cdb.readUInt32BE(10), control: rw.control,
  };
}

export function encodeWriteSame(size: 10 | 16, v: Omit<WriteSame, 'control'> & { control?: number }): Buffer {
  const flags = (v.wrprotect << 5) | (v.anchor ? 0x10 : 0) | (v.unmap ? 0x08 : 0) | (v.ndob ? 0x01 : 0);
  return encodeRw(size, { opcode: v.opcode, flags, lba: v.lba, transferLength: v.numberOfBlocks, control: v.control });
}

// ---------------------------------------------------------------- COMPARE AND WRITE (SBC-3 5.2)

export interface CompareAndWrite { wrprotect: number; dpo: boolean; fua: boolean; lba: bigint; numberOfLogicalBlocks: number; control: number }

export function decodeCompareAndWrite(cdb: Buffer): CompareAndWrite {
  need(cdb, 16);
  const f = cdb[1];
  return { wrprotect: f >> 5, dpo: bit(f, 4), fua: bit(f, 3), lba: cdb.readBigUInt64BE(2), numberOfLogicalBlocks: cdb[13], control: cdb[15] };
}

export function encodeCompareAndWrite(v: { lba: bigint; numberOfLogicalBlocks: number; flags?: number }): Buffer {
  const b = Buffer.alloc(16);
  b[0] = 0x89;
  b[1] = v.flags ?? 0;
  b.writeBigUInt64BE(v.lba, 2);
  b[13] = v.numberOfLogicalBlocks;
  return b;
}

// ---------------------------------------------------------------- SERVICE ACTION IN(16) family

/** READ CAPACITY(16), GET LBA STATUS: opcode 9Eh, SA in byte 1, LBA 2..9, ALLOCATION LENGTH 10..13. */
export interface ServiceActionIn16 { serviceAction: number; lba: bigint; allocationLength: number; pmi: boolean }

export function decodeServiceActionIn16(cdb: Buffer): ServiceActionIn16 {
  need(cdb, 16);
  return { serviceAction: cdb[1] & 0x1f, lba: cdb.readBigUInt64BE(2), allocationLength: cdb.readUInt32BE(10), pmi: bit(cdb[14], 0) };
}

export function encodeServiceActionIn16(v: { serviceAction: number; lba?: bigint; allocationLength: number; pmi?: boolean }): Buffer {
  const b = Buffer.alloc(16);
  b[0] = 0x9e;
  b[1] = v.serviceAction;
  b.writeBigUInt64BE(v.lba ?? 0n, 2);
  b.writeUInt32BE(v.allocationLength, 10);
  b[14] = v.pmi ? 1 : 0;
  return b;
}

/** READ CAPACITY(10): LBA 2..5, PMI byte 8 bit 0. */
export interface ReadCapacity10 { lba: number; pmi: boolean }

export function decodeReadCapacity10(cdb: Buffer): ReadCapacity10 {
  need(cdb, 10);
  return { lba: cdb.readUInt32BE(2), pmi: bit(cdb[8], 0) };
}

export function encodeReadCapacity10(v: ReadCapacity10): Buffer {
  const b = Buffer.alloc(10);
  b[0] = 0x25;
  b.writeUInt32BE(v.lba, 2);
  b[8] = v.pmi ? 1 : 0;
  return b;
}

// ---------------------------------------------------------------- SPC-4 primary commands

export interface Inquiry { evpd: boolean; pageCode: number; allocationLength: number }

export function decodeInquiry(cdb: Buffer): Inquiry {
  need(cdb, 6);
  return { evpd: bit(cdb[1], 0), pageCode: cdb[2], allocationLength: cdb.readUInt16BE(3) };
}

export function encodeInquiry(v: Inquiry): Buffer {
  const b = Buffer.from([0x12, v.evpd ? 1 : 0, v.pageCode, 0, 0, 0]);
  b.writeUInt16BE(v.allocationLength, 3);
  return b;
}

export interface ModeSense { dbd: boolean; llbaa: boolean; pc: number; pageCode: number; subpageCode: number; allocationLength: number }

export function decodeModeSense(cdb: Buffer, size: 6 | 10): ModeSense {
  need(cdb, size);
  return {
    dbd: bit(cdb[1], 3), llbaa: size === 10 && bit(cdb[1], 4), pc: cdb[2] >> 6, pageCode: cdb[2] & 0x3f,
    subpageCode: cdb[3], allocationLength: size === 6 ? cdb[4] : cdb.readUInt16BE(7),
  };
}

export function encodeModeSense(size: 6 | 10, v: ModeSense): Buffer {
  const b = Buffer.alloc(size);
  b[0] = size === 6 ? 0x1a : 0x5a;
  b[1] = (v.dbd ? 0x08 : 0) | (v.llbaa ? 0x10 : 0);
  b[2] = (v.pc << 6) | v.pageCode;
  b[3] = v.subpageCode;
  if (size === 6) b[4] = v.allocationLength;
  else b.writeUInt16BE(v.allocationLength, 7);
  return b;
}

export interface ModeSelect { pf: boolean; sp: boolean; parameterListLength: number }

export function decodeModeSelect(cdb: Buffer, size: 6 | 10): ModeSelect {
  need(cdb, size);
  return { pf: bit(cdb[1], 4), sp: bit(cdb[1], 0), parameterListLength: size === 6 ? cdb[4] : cdb.readUInt16BE(7) };
}

export function encodeModeSelect(size: 6 | 10, v: ModeSelect): Buffer {
  const b = Buffer.alloc(size);
  b[0] = size === 6 ? 0x15 : 0x55;
  b[1] = (v.pf ? 0x10 : 0) | (v.sp ? 0x01 : 0);
  if (size === 6) b[4] = v.parameterListLength;
  else b.writeUInt16BE(v.parameterListLength, 7);
  return b;
}

export interface ReportLuns { selectReport: number; allocationLength: number }

export function decodeReportLuns(cdb: Buffer): ReportLuns {
  need(cdb, 12);
  return { selectReport: cdb[2], allocationLength: cdb.readUInt32BE(6) };
}

export function encodeReportLuns(v: ReportLuns): Buffer {
  const b = Buffer.alloc(12);
  b[0] = 0xa0;
  b[2] = v.selectReport;
  b.writeUInt32BE(v.allocationLength, 6);
  return b;
}

/** MAINTENANCE IN (A3h): REPORT SUPPORTED OPERATION CODES (0Ch), REPORT SUPPORTED TMFs (0Dh). */
export interface MaintenanceIn { serviceAction: number; rctd: boolean; reportingOptions: number; requestedOpcode: number; requestedServiceAction: number; allocationLength: number; repd: boolean }

export function decodeMaintenanceIn(cdb: Buffer): MaintenanceIn {
  need(cdb, 12);
  return {
    serviceAction: cdb[1] & 0x1f, rctd: bit(cdb[2], 7), repd: bit(cdb[2], 7), reportingOptions: cdb[2] & 0x07,
    requestedOpcode: cdb[3], requestedServiceAction: cdb.readUInt16BE(4), allocationLength: cdb.readUInt32BE(6),
  };
}

export function encodeMaintenanceIn(v: { serviceAction: number; rctd?: boolean; reportingOptions?: number; requestedOpcode?: number; requestedServiceAction?: number; allocationLength: number }): Buffer {
  const b = Buffer.alloc(12);
  b[0] = 0xa3;
  b[1] = v.serviceAction;
  b[2] = (v.rctd ? 0x80 : 0) | (v.reportingOptions ?? 0);
  b[3] = v.requestedOpcode ?? 0;
  b.writeUInt16BE(v.requestedServiceAction ?? 0, 4);
  b.writeUInt32BE(v.allocationLength, 6);
  return b;
}

export interface PersistentReserveIn { serviceAction: number; allocationLength: number }

export function decodePrIn(cdb: Buffer): PersistentReserveIn {
  need(cdb, 10);
  return { serviceAction: cdb[1] & 0x1f, allocationLength: cdb.readUInt16BE(7) };
}

export function encodePrIn(v: PersistentReserveIn): Buffer {
  const b = Buffer.alloc(10);
  b[0] = 0x5e;
  b[1] = v.serviceAction;
  b.writeUInt16BE(v.allocationLength, 7);
  return b;
}

export interface PersistentReserveOut { serviceAction: number; scope: number; type: number; parameterListLength: number }

export function decodePrOut(cdb: Buffer): PersistentReserveOut {
  need(cdb, 10);
  return { serviceAction: cdb[1] & 0x1f, scope: cdb[2] >> 4, type: cdb[2] & 0x0f, parameterListLength: cdb.readUInt32BE(5) };
}

export function encodePrOut(v: PersistentReserveOut): Buffer {
  const b = Buffer.alloc(10);
  b[0] = 0x5f;
  b[1] = v.serviceAction;
  b[2] = (v.scope << 4) | v.type;
  b.writeUInt32BE(v.parameterListLength, 5);
  return b;
}

export interface StartStopUnit { immed: boolean; powerCondition: number; noFlush: boolean; loej: boolean; start: boolean }

export function decodeStartStopUnit(cdb: Buffer): StartStopUnit {
  need(cdb, 6);
  return { immed: bit(cdb[1], 0), powerCondition: cdb[4] >> 4, noFlush: bit(cdb[4], 2), loej: bit(cdb[4], 1), start: bit(cdb[4], 0) };
}

export function encodeStartStopUnit(v: StartStopUnit): Buffer {
  return Buffer.from([0x1b, v.immed ? 1 : 0, 0, 0,
    (v.powerCondition << 4) | (v.noFlush ? 4 : 0) | (v.loej ? 2 : 0) | (v.start ? 1 : 0), 0]);
}

/** UNMAP (SBC-3 5.28): ANCHOR byte 1 bit 0, PARAMETER LIST LENGTH 7..8. */
export interface Unmap { anchor: boolean; parameterListLength: number }

export function decodeUnmap(cdb: Buffer): Unmap {
  need(cdb, 10);
  return { anchor: bit(cdb[1], 0), parameterListLength: cdb.readUInt16BE(7) };
}

export function encodeUnmap(v: Unmap): Buffer {
  const b = Buffer.alloc(10);
  b[0] = 0x42;
  b[1] = v.anchor ? 1 : 0;
  b.writeUInt16BE(v.parameterListLength, 7);
  return b;
}

/** SYNCHRONIZE CACHE(10/16): IMMED byte 1 bit 1, LBA, NUMBER OF BLOCKS (0 = to the end). */
export interface SyncCache { immed: boolean; lba: bigint; numberOfBlocks: number }

export function decodeSyncCache(cdb: Buffer, size: 10 | 16): SyncCache {
  const rw = decodeRw(cdb, size);
  return { immed: rw.immed, lba: rw.lba, numberOfBlocks: rw.transferLength };
}

export function encodeSyncCache(size: 10 | 16, v: SyncCache): Buffer {
  return encodeRw(size, { opcode: size === 10 ? 0x35 : 0x91, flags: v.immed ? 2 : 0, lba: v.lba, transferLength: v.numberOfBlocks });
}

/** READ DEFECT DATA(10/12): REQ_PLIST, REQ_GLIST, DEFECT LIST FORMAT, ALLOCATION LENGTH. */
export interface ReadDefectData { reqPlist: boolean; reqGlist: boolean; defectListFormat: number; allocationLength: number }

export function decodeReadDefectData(cdb: Buffer, size: 10 | 12): ReadDefectData {
  need(cdb, size);
  const f = size === 10 ? cdb[2] : cdb[1];
  return {
    reqPlist: bit(f, 4), reqGlist: bit(f, 3), defectListFormat: f & 7,
    allocationLength: size === 10 ? cdb.readUInt16BE(7) : cdb.readUInt32BE(6),
  };
}

export function encodeReadDefectData(size: 10 | 12, v: ReadDefectData): Buffer {
  const b = Buffer.alloc(size);
  b[0] = size === 10 ? 0x37 : 0xb7;
  const f = (v.reqPlist ? 0x10 : 0) | (v.reqGlist ? 0x08 : 0) | v.defectListFormat;
  if (size === 10) { b[2] = f; b.writeUInt16BE(v.allocationLength, 7); }
  else { b[1] = f; b.writeUInt32BE(v.allocationLength, 6); }
  return b;
}
