// The few SCSI commands the initiator's convenience layer sends, and the parsers for what they
// return (SPC-4, SBC-3). Pure: CDB bytes out, parameter data in. The target side has its own
// decoders in target/scsi/; these are written separately so each side checks the other.
import { decodeLun } from '../pdu';

export const ScsiOp = Object.freeze({
  TEST_UNIT_READY: 0x00,
  REQUEST_SENSE: 0x03,
  INQUIRY: 0x12,
  READ_16: 0x88,
  WRITE_16: 0x8a,
  SYNCHRONIZE_CACHE_16: 0x91,
  SERVICE_ACTION_IN_16: 0x9e,
  REPORT_LUNS: 0xa0,
});

/** SBC-3 5.16: READ CAPACITY(16) is SERVICE ACTION IN(16) with service action 10h. */
export const SA_READ_CAPACITY_16 = 0x10;

export const GOOD = 0x00;
export const CHECK_CONDITION = 0x02;

export function cdbTestUnitReady(): Buffer {
  return Buffer.alloc(6);
}

export function cdbInquiry(allocationLength: number, page?: number): Buffer {
  const b = Buffer.alloc(6);
  b[0] = ScsiOp.INQUIRY;
  if (page !== undefined) { b[1] = 1; b[2] = page; }
  b.writeUInt16BE(allocationLength, 3);
  return b;
}

export function cdbReadCapacity16(allocationLength = 32): Buffer {
  const b = Buffer.alloc(16);
  b[0] = ScsiOp.SERVICE_ACTION_IN_16;
  b[1] = SA_READ_CAPACITY_16;
  b.writeUInt32BE(allocationLength, 10);
  return b;
}

/** READ(16)/WRITE(16) (SBC-3 5.11, 5.39); FUA is byte 1 bit 3. */
export function cdbRw16(opcode: number, lba: bigint, blocks: number, fua = false): Buffer {
  const b = Buffer.alloc(16);
  b[0] = opcode;
  b[1] = fua ? 0x08 : 0;
  b.writeBigUInt64BE(lba, 2);
  b.writeUInt32BE(blocks, 10);
  return b;
}

export function cdbSynchronizeCache16(lba: bigint, blocks: number): Buffer {
  const b = Buffer.alloc(16);
  b[0] = ScsiOp.SYNCHRONIZE_CACHE_16;
  b.writeBigUInt64BE(lba, 2);
  b.writeUInt32BE(blocks, 10);
  return b;
}

export function cdbReportLuns(allocationLength: number, selectReport = 0): Buffer {
  const b = Buffer.alloc(12);
  b[0] = ScsiOp.REPORT_LUNS;
  b[2] = selectReport;
  b.writeUInt32BE(allocationLength, 6);
  return b;
}

export interface InquiryData {
  peripheralQualifier: number;
  peripheralDeviceType: number;
  removable: boolean;
  version: number;
  responseDataFormat: number;
  vendor: string;
  product: string;
  revision: string;
}

/** SPC-4 6.6.2: standard INQUIRY data. */
export function parseInquiry(d: Buffer): InquiryData {
  if (d.length < 36) throw new RangeError(`standard INQUIRY data is ${d.length} bytes, under 36`);
  const text = (from: number, to: number): string => d.toString('latin1', from, to).trimEnd();
  return {
    peripheralQualifier: d[0] >> 5,
    peripheralDeviceType: d[0] & 0x1f,
    removable: (d[1] & 0x80) !== 0,
    version: d[2],
    responseDataFormat: d[3] & 0x0f,
    vendor: text(8, 16),
    product: text(16, 32),
    revision: text(32, 36),
  };
}

export interface Capacity16 {
  /** The LBA of the last logical block. */
  lastLba: bigint;
  blockLength: number;
  /** lastLba + 1 */
  blocks: bigint;
  protectionEnabled: boolean;
  logicalBlocksPerPhysicalBlockExponent: number;
  lbpme: boolean;
  lbprz: boolean;
}

/** SBC-3 5.16.2: READ CAPACITY(16) parameter data. */
export function parseCapacity16(d: Buffer): Capacity16 {
  if (d.length < 16) throw new RangeError(`READ CAPACITY(16) data is ${d.length} bytes, under 16`);
  const lastLba = d.readBigUInt64BE(0);
  return {
    lastLba,
    blockLength: d.readUInt32BE(8),
    blocks: lastLba + 1n,
    protectionEnabled: (d[12] & 1) !== 0,
    logicalBlocksPerPhysicalBlockExponent: d[13] & 0x0f,
    lbpme: (d[14] & 0x80) !== 0,
    lbprz: (d[14] & 0x40) !== 0,
  };
}

/** SPC-4 6.33: REPORT LUNS parameter data; LUNs not in single-level form come back as -1. */
export function parseReportLuns(d: Buffer): { listLength: number; luns: number[] } {
  if (d.length < 8) throw new RangeError(`REPORT LUNS data is ${d.length} bytes, under 8`);
  const listLength = d.readUInt32BE(0);
  const luns: number[] = [];
  for (let at = 8; at + 8 <= Math.min(d.length, 8 + listLength); at += 8) luns.push(decodeLun(d.subarray(at, at + 8)));
  return { listLength, luns };
}

export interface SenseSummary {
  responseCode: number;
  key: number;
  asc: number;
  ascq: number;
  /** The INFORMATION field when VALID is set (fixed) or an information descriptor is present. */
  information?: bigint;
}

/** SPC-4 4.5: fixed (70h/71h) or descriptor (72h/73h) sense, tolerant of short buffers. */
export function parseSense(s: Buffer): SenseSummary | null {
  if (s.length < 2) return null;
  const responseCode = s[0] & 0x7f;
  if (responseCode === 0x70 || responseCode === 0x71) {
    return {
      responseCode,
      key: s.length > 2 ? s[2] & 0x0f : 0,
      asc: s.length > 12 ? s[12] : 0,
      ascq: s.length > 13 ? s[13] : 0,
      information: s[0] & 0x80 && s.length >= 7 ? BigInt(s.readUInt32BE(3)) : undefined,
    };
  }
  if (responseCode === 0x72 || responseCode === 0x73) {
    const out: SenseSummary = { responseCode, key: s[1] & 0x0f, asc: s[2] ?? 0, ascq: s[3] ?? 0 };
    // Descriptor type 00h: information, 8-byte value at offset 4 of the descriptor.
    for (let at = 8; at + 2 <= s.length; at += 2 + s[at + 1]) {
      if (s[at] === 0 && at + 12 <= s.length) out.information = s.readBigUInt64BE(at + 4);
    }
    return out;
  }
  return null;
}
