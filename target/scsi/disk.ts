// The device-type template for a direct-access block device (peripheral type 00h): the opcodes a
// disk LU supports, each row declaring its CDB shape for the dispatcher and for REPORT SUPPORTED
// OPERATION CODES.
import type { OpEntry, OpRow, OpTable } from './dispatch';
import * as spc from './spc';
import * as sbc from './sbc';
import { modeSelect, modeSense } from './mode';
import { persistentReserveIn, persistentReserveOut, PrInAction, PrOutAction } from './pr';
import { decodeWriteSame } from './cdb';
import { ReceiveCopyResultsAction, extendedCopy, receiveCopyResults } from './xcopy';
import { pairRows } from './pair';

export const Op = Object.freeze({
  TEST_UNIT_READY: 0x00,
  REQUEST_SENSE: 0x03,
  READ_6: 0x08,
  WRITE_6: 0x0a,
  INQUIRY: 0x12,
  MODE_SELECT_6: 0x15,
  RESERVE_6: 0x16,
  RELEASE_6: 0x17,
  MODE_SENSE_6: 0x1a,
  START_STOP_UNIT: 0x1b,
  PREVENT_ALLOW_MEDIUM_REMOVAL: 0x1e,
  READ_CAPACITY_10: 0x25,
  READ_10: 0x28,
  WRITE_10: 0x2a,
  WRITE_AND_VERIFY_10: 0x2e,
  VERIFY_10: 0x2f,
  PRE_FETCH_10: 0x34,
  SYNCHRONIZE_CACHE_10: 0x35,
  READ_DEFECT_DATA_10: 0x37,
  WRITE_SAME_10: 0x41,
  UNMAP: 0x42,
  SANITIZE: 0x48,
  MODE_SELECT_10: 0x55,
  RESERVE_10: 0x56,
  RELEASE_10: 0x57,
  MODE_SENSE_10: 0x5a,
  PERSISTENT_RESERVE_IN: 0x5e,
  PERSISTENT_RESERVE_OUT: 0x5f,
  EXTENDED_COPY: 0x83,
  RECEIVE_COPY_RESULTS: 0x84,
  READ_16: 0x88,
  COMPARE_AND_WRITE: 0x89,
  WRITE_16: 0x8a,
  ORWRITE_16: 0x8b,
  WRITE_AND_VERIFY_16: 0x8e,
  VERIFY_16: 0x8f,
  PRE_FETCH_16: 0x90,
  SYNCHRONIZE_CACHE_16: 0x91,
  WRITE_SAME_16: 0x93,
  WRITE_ATOMIC_16: 0x9c,
  SERVICE_ACTION_IN_16: 0x9e,
  REPORT_LUNS: 0xa0,
  MAINTENANCE_IN: 0xa3,
  READ_12: 0xa8,
  WRITE_12: 0xaa,
  WRITE_AND_VERIFY_12: 0xae,
  VERIFY_12: 0xaf,
  READ_DEFECT_DATA_12: 0xb7,
});

export const ServiceActionIn16 = Object.freeze({ READ_CAPACITY_16: 0x10, GET_LBA_STATUS: 0x12 });
export const MaintenanceIn = Object.freeze({
  REPORT_TARGET_PORT_GROUPS: 0x0a,
  REPORT_SUPPORTED_OPERATION_CODES: 0x0c,
  REPORT_SUPPORTED_TASK_MANAGEMENT_FUNCTIONS: 0x0d,
});

// Field positions of the 10/12/16-byte READ/WRITE shapes (SBC-3 5.x).
const lba10 = [2, 4] as const, len10 = [7, 2] as const;
const lba12 = [2, 4] as const, len12 = [6, 4] as const;
const lba16 = [2, 8] as const, len16 = [10, 4] as const;

type RwSize = 10 | 12 | 16;
const rwFields = { 10: { lba: lba10, length: len10, group: 6 }, 12: { lba: lba12, length: len12, group: 10 }, 16: { lba: lba16, length: len16, group: 14 } } as const;

const media = { needsMedium: true } as const;

function rw(name: string, size: RwSize, dir: 'in' | 'out', flags: number, run: OpRow['run'], extra: Partial<OpRow> = {}): OpRow {
  const f = rwFields[size];
  return {
    name, cdbLength: size, dir, lba: f.lba, length: f.length, transferLimited: true,
    bits: { 1: flags, [f.group]: 0x3f }, pr: dir === 'in' ? 'read' : 'write', writes: dir === 'out',
    timeoutSec: 30, run, ...media, ...extra,
  };
}

// Byte 1 bits honoured (SBC-3): DPO 0x10, FUA 0x08, RARC 0x04 (read), FUA_NV 0x02 (obsolete).
const READ_FLAGS = 0x1e, WRITE_FLAGS = 0x1a;

function verifyRow(name: string, size: RwSize): OpRow {
  return rw(name, size, 'out', 0x16, (ctx) => sbc.verify(ctx, size), {
    pr: 'read', writes: false, dataOutBytes: (cdb, bs) => sbc.verifyDataOut(cdb, bs, size),
  });
}

function writeSameRow(name: string, size: 10 | 16): OpRow {
  const f = rwFields[size];
  return {
    name, cdbLength: size, dir: 'out', lba: f.lba, bits: { 1: size === 16 ? 0x09 : 0x08, [f.group]: 0x3f, ...(size === 10 ? { 7: 0xff, 8: 0xff } : { 10: 0xff, 11: 0xff, 12: 0xff, 13: 0xff }) },
    pr: 'write', writes: true, ...media, timeoutSec: 60,
    // The number of blocks is checked against the capacity by the handler's own limits; the
    // dispatcher checks LBA + NUMBER OF LOGICAL BLOCKS through `length`.
    length: size === 10 ? [7, 2] : [10, 4],
    dataOutBytes: (cdb, bs) => (decodeWriteSame(cdb, size).ndob ? 0 : bs), exactDataOut: 'iu',
    run: (ctx) => sbc.writeSame(ctx, size),
  };
}

function saTable(rows: [number, OpRow][]): ReadonlyMap<number, OpRow> {
  return new Map(rows);
}

const prOutParams = [5, 4] as const;

/** SANITIZE (SBC-3 5.19): IMMED and AUSE honoured in byte 1; a parameter list only for OVERWRITE. */
function sanitizeRow(name: string): OpRow {
  return {
    name, cdbLength: 10, dir: 'out', parameterListLength: [7, 2], bits: { 1: 0xa0 }, pr: 'write',
    writes: true, ...media, sanitize: true, timeoutSec: 3600, run: sbc.sanitize,
  };
}

function receiveCopyResultsRow(name: string): OpRow {
  return {
    name, cdbLength: 16, dir: 'in', allocationLength: [10, 4], bits: { 2: 0xff }, pr: 'allowed',
    spc2Allowed: true, run: receiveCopyResults,
  };
}

const rows: [number, OpEntry][] = [
  [Op.TEST_UNIT_READY, { name: 'TEST UNIT READY', cdbLength: 6, dir: 'none', pr: 'allowed', wlun: true, ...media, run: spc.testUnitReady }],
  [Op.REQUEST_SENSE, { name: 'REQUEST SENSE', cdbLength: 6, dir: 'in', allocationLength: [4, 1], bits: { 1: 0x01 }, pr: 'allowed', spc2Allowed: true, uaExempt: true, anyLun: true, wlun: true, run: spc.requestSense }],
  [Op.READ_6, { name: 'READ(6)', cdbLength: 6, dir: 'in', lba: [1, 3], length: [4, 1], zeroLengthBlocks: 256, transferLimited: true, bits: { 1: 0x1f }, pr: 'read', ...media, run: sbc.read }],
  [Op.WRITE_6, { name: 'WRITE(6)', cdbLength: 6, dir: 'out', lba: [1, 3], length: [4, 1], zeroLengthBlocks: 256, transferLimited: true, bits: { 1: 0x1f }, pr: 'write', writes: true, ...media, run: sbc.write }],
  [Op.INQUIRY, { name: 'INQUIRY', cdbLength: 6, dir: 'in', allocationLength: [3, 2], bits: { 1: 0x01, 2: 0xff }, pr: 'allowed', spc2Allowed: true, uaExempt: true, anyLun: true, wlun: true, run: spc.inquiry }],
  [Op.MODE_SELECT_6, { name: 'MODE SELECT(6)', cdbLength: 6, dir: 'out', parameterListLength: [4, 1], bits: { 1: 0x11 }, pr: 'write', run: (c) => modeSelect(c, 6) }],
  [Op.RESERVE_6, { name: 'RESERVE(6)', cdbLength: 6, dir: 'none', pr: 'allowed', run: spc.reserve }],
  [Op.RELEASE_6, { name: 'RELEASE(6)', cdbLength: 6, dir: 'none', pr: 'allowed', spc2Allowed: true, run: spc.release }],
  [Op.MODE_SENSE_6, { name: 'MODE SENSE(6)', cdbLength: 6, dir: 'in', allocationLength: [4, 1], bits: { 1: 0x08, 2: 0xff, 3: 0xff }, pr: 'read', run: (c) => modeSense(c, 6) }],
  [Op.START_STOP_UNIT, { name: 'START STOP UNIT', cdbLength: 6, dir: 'none', bits: { 1: 0x01, 3: 0x0f, 4: 0xf7 }, pr: 'write', timeoutSec: 60, run: sbc.startStopUnit }],
  [Op.PREVENT_ALLOW_MEDIUM_REMOVAL, { name: 'PREVENT ALLOW MEDIUM REMOVAL', cdbLength: 6, dir: 'none', bits: { 4: 0x03 }, pr: 'read', run: spc.preventAllowMediumRemoval }],
  [Op.READ_CAPACITY_10, { name: 'READ CAPACITY(10)', cdbLength: 10, dir: 'in', bits: { 2: 0xff, 3: 0xff, 4: 0xff, 5: 0xff, 8: 0x01 }, pr: 'allowed', ...media, run: sbc.readCapacity10 }],
  [Op.READ_10, rw('READ(10)', 10, 'in', READ_FLAGS, sbc.read)],
  [Op.WRITE_10, rw('WRITE(10)', 10, 'out', WRITE_FLAGS, sbc.write)],
  [Op.WRITE_AND_VERIFY_10, rw('WRITE AND VERIFY(10)', 10, 'out', 0x12, sbc.writeAndVerify)],
  [Op.VERIFY_10, verifyRow('VERIFY(10)', 10)],
  [Op.PRE_FETCH_10, rw('PRE-FETCH(10)', 10, 'in', 0x02, sbc.preFetch, { dir: 'none', transferLimited: false })],
  [Op.SYNCHRONIZE_CACHE_10, rw('SYNCHRONIZE CACHE(10)', 10, 'out', 0x06, sbc.synchronizeCache, { dir: 'none', transferLimited: false, writes: false })],
  [Op.READ_DEFECT_DATA_10, { name: 'READ DEFECT DATA(10)', cdbLength: 10, dir: 'in', allocationLength: [7, 2], bits: { 2: 0x1f }, pr: 'read', ...media, run: (c) => sbc.readDefectData(c, 10) }],
  [Op.WRITE_SAME_10, writeSameRow('WRITE SAME(10)', 10)],
  [Op.UNMAP, { name: 'UNMAP', cdbLength: 10, dir: 'out', parameterListLength: [7, 2], bits: { 1: 0x01, 6: 0x3f }, pr: 'write', writes: true, ...media, run: sbc.unmap }],
  [Op.SANITIZE, {
    name: 'SANITIZE',
    serviceActions: saTable([
      [sbc.SanitizeAction.OVERWRITE, sanitizeRow('SANITIZE OVERWRITE')],
      [sbc.SanitizeAction.BLOCK_ERASE, sanitizeRow('SANITIZE BLOCK ERASE')],
      [sbc.SanitizeAction.CRYPTOGRAPHIC_ERASE, sanitizeRow('SANITIZE CRYPTOGRAPHIC ERASE')],
      [sbc.SanitizeAction.EXIT_FAILURE_MODE, sanitizeRow('SANITIZE EXIT FAILURE MODE')],
    ]),
  }],
  [Op.MODE_SELECT_10, { name: 'MODE SELECT(10)', cdbLength: 10, dir: 'out', parameterListLength: [7, 2], bits: { 1: 0x11 }, pr: 'write', run: (c) => modeSelect(c, 10) }],
  [Op.RESERVE_10, { name: 'RESERVE(10)', cdbLength: 10, dir: 'none', pr: 'allowed', run: spc.reserve }],
  [Op.RELEASE_10, { name: 'RELEASE(10)', cdbLength: 10, dir: 'none', pr: 'allowed', spc2Allowed: true, run: spc.release }],
  [Op.MODE_SENSE_10, { name: 'MODE SENSE(10)', cdbLength: 10, dir: 'in', allocationLength: [7, 2], bits: { 1: 0x18, 2: 0xff, 3: 0xff }, pr: 'read', run: (c) => modeSense(c, 10) }],
  [Op.PERSISTENT_RESERVE_IN, {
    name: 'PERSISTENT RESERVE IN',
    serviceActions: saTable(Object.entries(PrInAction).map(([n, sa]) => [sa, {
      name: `PERSISTENT RESERVE IN ${n.replace(/_/g, ' ')}`, cdbLength: 10, dir: 'in', allocationLength: [7, 2],
      pr: 'allowed', run: persistentReserveIn,
    }])),
  }],
  [Op.PERSISTENT_RESERVE_OUT, {
    name: 'PERSISTENT RESERVE OUT',
    serviceActions: saTable(Object.entries(PrOutAction).map(([n, sa]) => [sa, {
      name: `PERSISTENT RESERVE OUT ${n.replace(/_/g, ' ')}`, cdbLength: 10, dir: 'out', parameterListLength: prOutParams,
      bits: { 2: 0xff }, pr: 'allowed', run: persistentReserveOut,
    }])),
  }],
  [Op.EXTENDED_COPY, {
    name: 'EXTENDED COPY',
    serviceActions: saTable([
      // Reservations and write protection are checked per copy target by the copy manager.
      [0x00, { name: 'EXTENDED COPY(LID1)', cdbLength: 16, dir: 'out', parameterListLength: [10, 4], pr: 'allowed', timeoutSec: 600, run: extendedCopy }],
    ]),
  }],
  [Op.RECEIVE_COPY_RESULTS, {
    name: 'RECEIVE COPY RESULTS',
    serviceActions: saTable([
      [ReceiveCopyResultsAction.COPY_STATUS, receiveCopyResultsRow('RECEIVE COPY STATUS(LID1)')],
      [ReceiveCopyResultsAction.OPERATING_PARAMETERS, receiveCopyResultsRow('RECEIVE COPY OPERATING PARAMETERS')],
      [ReceiveCopyResultsAction.FAILED_SEGMENT_DETAILS, receiveCopyResultsRow('RECEIVE COPY FAILURE DETAILS(LID1)')],
    ]),
  }],
  [Op.READ_16, rw('READ(16)', 16, 'in', READ_FLAGS, sbc.read)],
  [Op.COMPARE_AND_WRITE, {
    name: 'COMPARE AND WRITE', cdbLength: 16, dir: 'out', lba: lba16, length: [13, 1], bits: { 1: 0x1a, 14: 0x3f },
    pr: 'write', writes: true, ...media, dataOutBytes: (cdb, bs) => 2 * cdb[13] * bs, run: sbc.compareAndWrite,
    // libiscsi CompareAndWrite.Simple: 256 blocks wrap to NUMBER OF LOGICAL BLOCKS 0 with 256
    // blocks of Data-Out, which must fail as INVALID FIELD IN CDB.
    exactDataOut: { cdb: true, byte: 13, bit: 7 },
  }],
  [Op.WRITE_16, rw('WRITE(16)', 16, 'out', WRITE_FLAGS, sbc.write)],
  [Op.ORWRITE_16, rw('ORWRITE(16)', 16, 'out', WRITE_FLAGS, sbc.orWrite)],
  [Op.WRITE_AND_VERIFY_16, rw('WRITE AND VERIFY(16)', 16, 'out', 0x12, sbc.writeAndVerify)],
  [Op.VERIFY_16, verifyRow('VERIFY(16)', 16)],
  [Op.PRE_FETCH_16, rw('PRE-FETCH(16)', 16, 'in', 0x02, sbc.preFetch, { dir: 'none', transferLimited: false })],
  [Op.SYNCHRONIZE_CACHE_16, rw('SYNCHRONIZE CACHE(16)', 16, 'out', 0x06, sbc.synchronizeCache, { dir: 'none', transferLimited: false, writes: false })],
  [Op.WRITE_SAME_16, writeSameRow('WRITE SAME(16)', 16)],
  [Op.WRITE_ATOMIC_16, {
    name: 'WRITE ATOMIC(16)', cdbLength: 16, dir: 'out', lba: lba16, length: [12, 2], transferLimited: true,
    bits: { 1: 0x18, 10: 0xff, 11: 0xff, 14: 0x3f }, pr: 'write', writes: true, ...media, timeoutSec: 30, run: sbc.writeAtomic,
  }],
  [Op.SERVICE_ACTION_IN_16, {
    name: 'SERVICE ACTION IN(16)',
    serviceActions: saTable([
      [ServiceActionIn16.READ_CAPACITY_16, { name: 'READ CAPACITY(16)', cdbLength: 16, dir: 'in', allocationLength: [10, 4], bits: { 2: 0xff, 3: 0xff, 4: 0xff, 5: 0xff, 6: 0xff, 7: 0xff, 8: 0xff, 9: 0xff, 14: 0x01 }, pr: 'allowed', ...media, run: sbc.readCapacity16 }],
      [ServiceActionIn16.GET_LBA_STATUS, { name: 'GET LBA STATUS', cdbLength: 16, dir: 'in', allocationLength: [10, 4], bits: { 2: 0xff, 3: 0xff, 4: 0xff, 5: 0xff, 6: 0xff, 7: 0xff, 8: 0xff, 9: 0xff }, pr: 'read', ...media, run: sbc.getLbaStatus }],
    ]),
  }],
  [Op.REPORT_LUNS, { name: 'REPORT LUNS', cdbLength: 12, dir: 'in', allocationLength: [6, 4], bits: { 2: 0xff }, pr: 'allowed', spc2Allowed: true, uaExempt: true, anyLun: true, wlun: true, run: spc.reportLuns }],
  [Op.MAINTENANCE_IN, {
    name: 'MAINTENANCE IN',
    serviceActions: saTable([
      [MaintenanceIn.REPORT_TARGET_PORT_GROUPS, { name: 'REPORT TARGET PORT GROUPS', cdbLength: 12, dir: 'in', allocationLength: [6, 4], bits: { 1: 0xe0 }, pr: 'allowed', spc2Allowed: true, run: spc.reportTargetPortGroups }],
      [MaintenanceIn.REPORT_SUPPORTED_OPERATION_CODES, { name: 'REPORT SUPPORTED OPERATION CODES', cdbLength: 12, dir: 'in', allocationLength: [6, 4], bits: { 2: 0x87, 3: 0xff, 4: 0xff, 5: 0xff }, pr: 'allowed', spc2Allowed: true, run: spc.reportSupportedOpcodes }],
      [MaintenanceIn.REPORT_SUPPORTED_TASK_MANAGEMENT_FUNCTIONS, { name: 'REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS', cdbLength: 12, dir: 'in', allocationLength: [6, 4], bits: { 2: 0x80 }, pr: 'allowed', spc2Allowed: true, run: spc.reportSupportedTmfs }],
    ]),
  }],
  [Op.READ_12, rw('READ(12)', 12, 'in', READ_FLAGS, sbc.read)],
  [Op.WRITE_12, rw('WRITE(12)', 12, 'out', WRITE_FLAGS, sbc.write)],
  [Op.WRITE_AND_VERIFY_12, rw('WRITE AND VERIFY(12)', 12, 'out', 0x12, sbc.writeAndVerify)],
  [Op.VERIFY_12, verifyRow('VERIFY(12)', 12)],
  [Op.READ_DEFECT_DATA_12, { name: 'READ DEFECT DATA(12)', cdbLength: 12, dir: 'in', allocationLength: [6, 4], bits: { 1: 0x1f }, pr: 'read', ...media, run: (c) => sbc.readDefectData(c, 12) }],
  ...pairRows('write'),
];

/** The disk template: every opcode a disk LU answers. */
export const diskOpcodes: OpTable = new Map(rows);
