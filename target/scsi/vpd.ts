// Vital product data pages (SPC-4 7.8, SBC-3 6.5): a nested table keyed by page code.
import type { Ctx } from './dispatch';
import type { LogicalUnit } from './lu';
import type { Nexus } from './types';
import { maxTransferBlocks } from './dispatch';
import { invalidCdbField } from './sense';
import { thirdPartyCopyDescriptors } from './xcopy';
import { PAIR_VPD_PAGE } from './pair-cdb';
import { pairVpdPage } from './pair';

export const VpdPage = Object.freeze({
  SUPPORTED_PAGES: 0x00,
  UNIT_SERIAL_NUMBER: 0x80,
  DEVICE_IDENTIFICATION: 0x83,
  EXTENDED_INQUIRY: 0x86,
  THIRD_PARTY_COPY: 0x8f,
  BLOCK_LIMITS: 0xb0,
  BLOCK_DEVICE_CHARACTERISTICS: 0xb1,
  LOGICAL_BLOCK_PROVISIONING: 0xb2,
  /** Vendor specific (docs/pairs.md): whether the volume is paired, its partner, the pair state. */
  PAIR_INFORMATION: PAIR_VPD_PAGE,
});

/** Block limits advertised in VPD B0h; sbc.ts enforces the same numbers. */
export const BlockLimits = Object.freeze({
  maxCompareAndWriteBlocks: 255,
  /** libiscsi's Inquiry.BlockLimits calls more than 2^20 "insanely big". */
  maxUnmapLbaCount: 1 << 20,
  maxUnmapDescriptors: 256,
  /**
   * What WRITE SAME(10) can express. Initiators (libiscsi WriteSame16.Unmap) first WRITE as many
   * blocks as this allows, so it stays below the largest write the transport buffers.
   */
  maxWriteSameBlocks: 0xffff,
  /** Optimal transfer length granularity: 4 KiB expressed in blocks. */
  granularityBytes: 4096,
  optimalTransferBytes: 1024 * 1024,
  /** WRITE ATOMIC(16): at most this many bytes in one atomic write (256 blocks of 4096). */
  maxAtomicTransferBytes: 1024 * 1024,
});

export function maxAtomicTransferBlocks(blockSize: number): number {
  return BlockLimits.maxAtomicTransferBytes / blockSize;
}

/** Logical blocks per physical block: 8 on a 512e LU (physicalBlockSize 4096), else 1. */
export function logicalPerPhysical(lu: LogicalUnit): number {
  const phys = lu.def.physicalBlockSize ?? lu.volume.blockSize;
  return Math.max(1, Math.floor(phys / lu.volume.blockSize));
}

export const PROTOCOL_ISCSI = 5;

/** The target port group of a nexus: its TPGT ("<name>,t,0x<TPGT>"), at least 1. */
export function targetPortGroup(n: Nexus): number {
  const m = /,t,0x([0-9a-fA-F]+)$/.exec(n.targetPort);
  return m ? Math.max(1, parseInt(m[1], 16)) : 1;
}

function page(code: number, body: Buffer, deviceType = 0x00): Buffer {
  const h = Buffer.from([deviceType, code, 0, 0]);
  h.writeUInt16BE(body.length, 2);
  return Buffer.concat([h, body]);
}

/** Designation descriptor header (SPC-4 7.8.6.1). */
function designator(opts: { protocol?: number; codeSet: number; association: number; type: number }, value: Buffer): Buffer {
  const piv = opts.protocol !== undefined ? 0x80 : 0;
  const h = Buffer.from([((opts.protocol ?? 0) << 4) | opts.codeSet, piv | (opts.association << 4) | opts.type, 0, value.length]);
  return Buffer.concat([h, value]);
}

/** SCSI name string: UTF-8, null-terminated, padded to a multiple of 4 (SPC-4 7.8.6.11). */
function scsiNameString(s: string): Buffer {
  const raw = Buffer.from(s + '\0', 'utf8');
  const b = Buffer.alloc(Math.ceil(raw.length / 4) * 4);
  raw.copy(b);
  return b;
}

function twoByteId(id: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt16BE(id & 0xffff, 2);
  return b;
}

function deviceIdentification(ctx: Ctx, lu: LogicalUnit): Buffer {
  const vendor = (lu.def.vendor ?? 'DKC-EMU').padEnd(8).slice(0, 8);
  const n = ctx.nexus;
  const descs = [
    designator({ codeSet: 1, association: 0, type: 3 }, Buffer.from(lu.volume.naa)), // NAA
    designator({ codeSet: 2, association: 0, type: 1 }, Buffer.from(vendor + lu.volume.serial, 'ascii')), // T10 vendor ID
    designator({ protocol: PROTOCOL_ISCSI, codeSet: 1, association: 1, type: 4 }, twoByteId(n.relativeTargetPortId)),
    designator({ protocol: PROTOCOL_ISCSI, codeSet: 1, association: 1, type: 5 }, twoByteId(targetPortGroup(n))),
    designator({ protocol: PROTOCOL_ISCSI, codeSet: 3, association: 1, type: 8 }, scsiNameString(n.targetPort)),
    designator({ protocol: PROTOCOL_ISCSI, codeSet: 3, association: 2, type: 8 }, scsiNameString(ctx.target.name)),
  ];
  return page(VpdPage.DEVICE_IDENTIFICATION, Buffer.concat(descs));
}

function blockLimits(lu: LogicalUnit): Buffer {
  const bs = lu.volume.blockSize;
  const L = BlockLimits;
  const b = Buffer.alloc(0x3c);
  b[0] = 0x00; // WSNZ=0: WRITE SAME with NUMBER OF LOGICAL BLOCKS 0 writes to the last LBA
  b[1] = L.maxCompareAndWriteBlocks;
  b.writeUInt16BE(Math.max(1, L.granularityBytes / bs), 2);
  b.writeUInt32BE(maxTransferBlocks(bs), 4);
  b.writeUInt32BE(L.optimalTransferBytes / bs, 8);
  b.writeUInt32BE(maxTransferBlocks(bs), 12); // MAXIMUM PREFETCH LENGTH
  b.writeUInt32BE(L.maxUnmapLbaCount, 16);
  b.writeUInt32BE(L.maxUnmapDescriptors, 20);
  // OPTIMAL UNMAP GRANULARITY: one physical block (the volume itself deallocates single blocks).
  b.writeUInt32BE(logicalPerPhysical(lu), 24);
  b.writeUInt32BE(0x80000000, 28); // UGAVALID, alignment 0
  b.writeBigUInt64BE(BigInt(L.maxWriteSameBlocks), 32);
  // SBC-4 6.6.4: WRITE ATOMIC(16) limits; no alignment or granularity rule, no atomic boundaries.
  b.writeUInt32BE(maxAtomicTransferBlocks(bs), 40); // MAXIMUM ATOMIC TRANSFER LENGTH
  b.writeUInt32BE(0, 44); // ATOMIC ALIGNMENT
  b.writeUInt32BE(0, 48); // ATOMIC TRANSFER LENGTH GRANULARITY
  b.writeUInt32BE(0, 52); // MAXIMUM ATOMIC TRANSFER LENGTH WITH ATOMIC BOUNDARY
  b.writeUInt32BE(0, 56); // MAXIMUM ATOMIC BOUNDARY SIZE
  return page(VpdPage.BLOCK_LIMITS, b);
}

function blockDeviceCharacteristics(): Buffer {
  const b = Buffer.alloc(0x3c);
  b.writeUInt16BE(1, 0); // MEDIUM ROTATION RATE: non-rotating medium
  // SBC-3 6.5.2: WABEREQ 01b / WACEREQ 01b: reads after a SANITIZE BLOCK ERASE or CRYPTOGRAPHIC
  // ERASE succeed (deallocated blocks read as zeros).
  b[3] = 0x40 | 0x10;
  return page(VpdPage.BLOCK_DEVICE_CHARACTERISTICS, b);
}

function logicalBlockProvisioning(): Buffer {
  // SBC-3 6.5.4: LBPU, LBPWS, LBPWS10, LBPRZ; ANC_SUP=0; PROVISIONING TYPE 010b thin.
  return page(VpdPage.LOGICAL_BLOCK_PROVISIONING, Buffer.from([0x00, 0xe4, 0x02, 0x00]));
}

function extendedInquiry(): Buffer {
  const b = Buffer.alloc(0x3c);
  b[1] = 0x07; // HEADSUP, ORDSUP, SIMPSUP
  b[2] = 0x01; // V_SUP: volatile cache
  b[3] = 0x01; // LUICLR
  return page(VpdPage.EXTENDED_INQUIRY, b);
}

type VpdBuilder = (ctx: Ctx, lu: LogicalUnit) => Buffer;

/** The VPD pages of a disk LU, ascending (SPC-4 7.8.13: page 00h lists them in that order). */
export const diskVpdPages: ReadonlyMap<number, VpdBuilder> = new Map<number, VpdBuilder>([
  [VpdPage.SUPPORTED_PAGES, () => page(VpdPage.SUPPORTED_PAGES, Buffer.from([...diskVpdPages.keys()]))],
  [VpdPage.UNIT_SERIAL_NUMBER, (_c, lu) => page(VpdPage.UNIT_SERIAL_NUMBER, Buffer.from(lu.volume.serial, 'ascii'))],
  [VpdPage.DEVICE_IDENTIFICATION, deviceIdentification],
  [VpdPage.EXTENDED_INQUIRY, () => extendedInquiry()],
  [VpdPage.THIRD_PARTY_COPY, () => page(VpdPage.THIRD_PARTY_COPY, thirdPartyCopyDescriptors())],
  [VpdPage.BLOCK_LIMITS, (_c, lu) => blockLimits(lu)],
  [VpdPage.BLOCK_DEVICE_CHARACTERISTICS, () => blockDeviceCharacteristics()],
  [VpdPage.LOGICAL_BLOCK_PROVISIONING, () => logicalBlockProvisioning()],
  [VpdPage.PAIR_INFORMATION, pairVpdPage],
]);

/** The VPD pages of a command device: its identity only. */
const controllerVpdPages: ReadonlyMap<number, VpdBuilder> = new Map<number, VpdBuilder>([
  [VpdPage.SUPPORTED_PAGES, () => page(VpdPage.SUPPORTED_PAGES, Buffer.from([...controllerVpdPages.keys()]))],
  [VpdPage.UNIT_SERIAL_NUMBER, (_c, lu) => page(VpdPage.UNIT_SERIAL_NUMBER, Buffer.from(lu.volume.serial, 'ascii'))],
  [VpdPage.DEVICE_IDENTIFICATION, deviceIdentification],
]);

export function vpdPage(ctx: Ctx, lu: LogicalUnit, code: number, deviceType: number): Buffer {
  const build = (deviceType === 0x00 ? diskVpdPages : controllerVpdPages).get(code);
  if (!build) throw invalidCdbField(2, 7);
  const b = build(ctx, lu);
  b[0] = deviceType;
  return b;
}

/** VPD of the REPORT LUNS well-known LU: only the supported pages list. */
export function wlunVpdPage(code: number, deviceType: number): Buffer {
  if (code !== VpdPage.SUPPORTED_PAGES) throw invalidCdbField(2, 7);
  return page(VpdPage.SUPPORTED_PAGES, Buffer.from([0x00]), deviceType);
}
