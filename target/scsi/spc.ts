// SPC-4 primary commands: INQUIRY, REPORT LUNS, TEST UNIT READY, REQUEST SENSE, REPORT SUPPORTED
// OPERATION CODES, REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS, REPORT TARGET PORT GROUPS,
// RESERVE/RELEASE(6/10) and PREVENT ALLOW MEDIUM REMOVAL.
import type { Ctx, OpEntry, OpRow } from './dispatch';
import type { LogicalUnit } from './lu';
import { WLUN_REPORT_LUNS, cdbUsage, isServiceActionEntry } from './dispatch';
import { ReservationConflict, Sense, encodeSense, invalidCdbField } from './sense';
import { decodeInquiry, decodeMaintenanceIn, decodeReportLuns } from './cdb';
import { targetPortGroup, vpdPage, wlunVpdPage } from './vpd';

export const DeviceType = Object.freeze({ DISK: 0x00, STORAGE_ARRAY_CONTROLLER: 0x0c, WELL_KNOWN_LU: 0x1e, UNKNOWN: 0x1f });
/** Peripheral qualifier 011b: no LU at this LUN (SPC-4 6.4.2). */
const PQ_NOT_SUPPORTED = 0x60;

// Version descriptors (SPC-4 table 148): SAM-5, iSCSI (RFC 7143), SPC-4, SBC-3.
const versionDescriptors = [0x00a0, 0x0960, 0x0460, 0x04c0];

function ascii(s: string | undefined, fallback: string, len: number): string {
  return (s ?? fallback).replace(/[^\x20-\x7e]/g, ' ').padEnd(len).slice(0, len);
}

function standardInquiry(ctx: Ctx, peripheral: number): Buffer {
  const lu = ctx.luOrNull;
  const b = Buffer.alloc(96);
  b[0] = peripheral;
  b[1] = lu?.def.removable ? 0x80 : 0; // RMB
  b[2] = 0x06; // VERSION: SPC-4
  b[3] = 0x10 | 0x02; // HISUP, RESPONSE DATA FORMAT 2
  b[4] = b.length - 5;
  const disk = peripheral === DeviceType.DISK;
  b[5] = 0x10 | (disk ? 0x08 : 0); // TPGS 01b: implicit asymmetric access only; 3PC: EXTENDED COPY (xcopy.ts)
  b[7] = 0x02; // CMDQUE
  b.write(ascii(lu?.def.vendor, 'DKC-EMU', 8), 8, 'ascii');
  b.write(ascii(lu?.def.product, disk ? 'VIRTUAL DISK' : 'COMMAND DEVICE', 16), 16, 'ascii');
  b.write(ascii(lu?.def.revision, '0001', 4), 32, 'ascii');
  (disk ? versionDescriptors : versionDescriptors.slice(0, 3)).forEach((v, i) => b.writeUInt16BE(v, 58 + 2 * i));
  return b;
}

/** INQUIRY (SPC-4 6.4). */
export async function inquiry(ctx: Ctx): Promise<Buffer> {
  const c = decodeInquiry(ctx.cdb);
  if (!c.evpd && c.pageCode !== 0) throw invalidCdbField(2, 7); // SPC-4 6.4.1
  const lu = ctx.luOrNull;
  const wlun = !lu && ctx.cmd.lun === WLUN_REPORT_LUNS;
  const peripheral = lu ? peripheralType(lu) : wlun ? DeviceType.WELL_KNOWN_LU : PQ_NOT_SUPPORTED | DeviceType.UNKNOWN;
  if (!c.evpd) return standardInquiry(ctx, peripheral);
  if (lu) return vpdPage(ctx, lu, c.pageCode, peripheral);
  return wlunVpdPage(c.pageCode, peripheral);
}

/** A command device is a storage array controller (SCC-2); every other LU a disk. */
export function peripheralType(lu: LogicalUnit): number {
  return lu.def.kind === 'command-device' ? DeviceType.STORAGE_ARRAY_CONTROLLER : DeviceType.DISK;
}

/** SAM-5 4.6.4/4.6.6: peripheral device addressing below 256, flat space addressing above. */
export function encodeLun(lun: number): Buffer {
  const b = Buffer.alloc(8);
  if (lun === WLUN_REPORT_LUNS) b.writeUInt16BE(WLUN_REPORT_LUNS, 0);
  else if (lun < 256) b[1] = lun;
  else b.writeUInt16BE(0x4000 | (lun & 0x3fff), 0);
  return b;
}

/** REPORT LUNS (SPC-4 6.33): SELECT REPORT 00h all LUs, 01h well-known LUs, 02h both. */
export async function reportLuns(ctx: Ctx): Promise<Buffer> {
  const c = decodeReportLuns(ctx.cdb);
  if (c.selectReport > 2) throw invalidCdbField(2, 7);
  const luns = c.selectReport === 1 ? [] : [...ctx.target.luns.keys()].sort((a, b) => a - b);
  if (c.selectReport !== 0) luns.push(WLUN_REPORT_LUNS);
  const h = Buffer.alloc(8);
  h.writeUInt32BE(8 * luns.length, 0);
  // SPC-4 6.33: REPORT LUNS clears REPORTED LUNS DATA HAS CHANGED for this I_T nexus.
  for (const lu of ctx.target.luns.values()) lu.dropUa(ctx.key, Sense.REPORTED_LUNS_DATA_HAS_CHANGED);
  return Buffer.concat([h, ...luns.map(encodeLun)]);
}

export async function testUnitReady(): Promise<void> {
  // The dispatcher has checked unit attention, reservations and the medium.
}

/** REQUEST SENSE (SPC-4 6.39): reports (and clears) a pending unit attention, else the LU's state. */
export async function requestSense(ctx: Ctx): Promise<Buffer> {
  const desc = (ctx.cdb[1] & 0x01) !== 0;
  const lu = ctx.luOrNull;
  if (!lu) {
    const s = ctx.cmd.lun === WLUN_REPORT_LUNS ? Sense.NO_SENSE : Sense.LU_NOT_SUPPORTED;
    return encodeSense(s, {}, desc);
  }
  const ua = lu.takeUa(ctx.key);
  if (ua) return encodeSense(ua, {}, desc);
  if (lu.sanitizing) return encodeSense(Sense.SANITIZE_IN_PROGRESS, {}, desc);
  if (lu.sanitizeFailed) return encodeSense(Sense.SANITIZE_COMMAND_FAILED, {}, desc);
  if (!lu.mediumPresent) return encodeSense(Sense.MEDIUM_NOT_PRESENT, {}, desc);
  return encodeSense(Sense.NO_SENSE, {}, desc);
}

// ---------------------------------------------------------------- REPORT SUPPORTED OPERATION CODES

const ReportingOptions = Object.freeze({ ALL: 0, OPCODE: 1, OPCODE_SA: 2, OPCODE_MAYBE_SA: 3 });

function timeoutsDescriptor(row: OpRow): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16BE(0x0a, 0);
  const t = row.timeoutSec ?? 30;
  b.writeUInt32BE(t, 4);
  b.writeUInt32BE(t * 2, 8);
  return b;
}

function allCommands(table: ReadonlyMap<number, OpEntry>, rctd: boolean): Buffer {
  const out: Buffer[] = [];
  const add = (opcode: number, row: OpRow, sa?: number): void => {
    const d = Buffer.alloc(8);
    d[0] = opcode;
    d.writeUInt16BE(sa ?? 0, 2);
    d[5] = (rctd ? 0x02 : 0) | (sa !== undefined ? 0x01 : 0); // CTDP, SERVACTV
    d.writeUInt16BE(row.cdbLength, 6);
    out.push(d);
    if (rctd) out.push(timeoutsDescriptor(row));
  };
  for (const opcode of [...table.keys()].sort((a, b) => a - b)) {
    const e = table.get(opcode)!;
    if (!isServiceActionEntry(e)) add(opcode, e);
    else for (const sa of [...e.serviceActions.keys()].sort((a, b) => a - b)) add(opcode, e.serviceActions.get(sa)!, sa);
  }
  const body = Buffer.concat(out);
  const h = Buffer.alloc(4);
  h.writeUInt32BE(body.length, 0);
  return Buffer.concat([h, body]);
}

function oneCommand(row: OpRow | undefined, opcode: number, sa: number | undefined, rctd: boolean): Buffer {
  if (!row) return Buffer.from([0, 0x01, 0, 0]); // SUPPORT 001b: not supported
  const usage = cdbUsage(opcode, row, sa);
  const h = Buffer.from([0, (rctd ? 0x80 : 0) | 0x03, 0, 0]); // SUPPORT 011b
  h.writeUInt16BE(usage.length, 2);
  return Buffer.concat([h, usage, rctd ? timeoutsDescriptor(row) : Buffer.alloc(0)]);
}

/** REPORT SUPPORTED OPERATION CODES (SPC-4 6.35), generated from the opcode table. */
export async function reportSupportedOpcodes(ctx: Ctx): Promise<Buffer> {
  const c = decodeMaintenanceIn(ctx.cdb);
  const table = ctx.luOrNull?.table ?? ctx.target.table;
  if (c.reportingOptions === ReportingOptions.ALL) return allCommands(table, c.rctd);
  if (c.reportingOptions > ReportingOptions.OPCODE_MAYBE_SA) throw invalidCdbField(2, 2);
  const e = table.get(c.requestedOpcode);
  const hasSa = e !== undefined && isServiceActionEntry(e);
  if (c.reportingOptions === ReportingOptions.OPCODE && hasSa) throw invalidCdbField(3, 7);
  if (c.reportingOptions === ReportingOptions.OPCODE_SA && e && !hasSa) throw invalidCdbField(3, 7);
  if (!e) return oneCommand(undefined, c.requestedOpcode, undefined, c.rctd);
  if (!isServiceActionEntry(e)) return oneCommand(e, c.requestedOpcode, undefined, c.rctd);
  const sa = c.requestedServiceAction;
  return oneCommand(e.serviceActions.get(sa), c.requestedOpcode, sa, c.rctd);
}

/** REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS (SPC-4 6.36). */
export async function reportSupportedTmfs(ctx: Ctx): Promise<Buffer> {
  const repd = (ctx.cdb[2] & 0x80) !== 0;
  // ATS, ATSS, CTSS, LURS, TRS: ABORT TASK, ABORT TASK SET, CLEAR TASK SET, LU RESET, TARGET RESET.
  const b = Buffer.alloc(repd ? 16 : 4);
  b[0] = 0x80 | 0x40 | 0x10 | 0x08 | 0x02;
  if (repd) b[3] = 0x0c;
  return b;
}

/**
 * REPORT TARGET PORT GROUPS (SPC-4 6.37): one group, active/optimized, holding the ports in use.
 * PARAMETER DATA FORMAT 000b (length only) or 001b (extended header, which Linux asks first).
 */
export async function reportTargetPortGroups(ctx: Ctx): Promise<Buffer> {
  const format = ctx.cdb[1] >> 5;
  if (format > 1) throw invalidCdbField(1, 7);
  const group = targetPortGroup(ctx.nexus);
  const ports = new Set<number>([ctx.nexus.relativeTargetPortId]);
  for (const n of ctx.target.nexuses()) if (targetPortGroup(n) === group) ports.add(n.relativeTargetPortId);
  const d = Buffer.alloc(8 + 4 * ports.size);
  d[0] = 0x80; // PREF, ASYMMETRIC ACCESS STATE 0h active/optimized
  d[1] = 0x01; // AO_SUP
  d.writeUInt16BE(group, 2);
  d[7] = ports.size;
  [...ports].sort((a, b) => a - b).forEach((p, i) => d.writeUInt16BE(p, 8 + 4 * i + 2));
  const h = Buffer.alloc(format === 1 ? 8 : 4);
  h.writeUInt32BE(d.length + h.length - 4, 0);
  if (format === 1) h[4] = 0x10; // FORMAT TYPE 001b; IMPLICIT TRANSITION TIME 0
  return Buffer.concat([h, d]);
}

// ---------------------------------------------------------------- RESERVE / RELEASE (SPC-2 7.21, 7.23)

function prPresent(ctx: Ctx): boolean {
  return ctx.lu.pr.regs.length > 0 || ctx.lu.pr.reservation !== null;
}

export async function reserve(ctx: Ctx): Promise<void> {
  // SPC-4 5.13.3 (CRH=0): RESERVE while persistent reservations are in use -> RESERVATION CONFLICT.
  if (prPresent(ctx)) throw new ReservationConflict('RESERVE while persistent registrations exist');
  ctx.lu.reservedBy = ctx.key; // the dispatcher already refused a reservation held by another nexus
}

export async function release(ctx: Ctx): Promise<void> {
  if (ctx.lu.pr.reservation !== null) throw new ReservationConflict('RELEASE while a persistent reservation exists');
  if (ctx.lu.reservedBy === ctx.key) ctx.lu.reservedBy = null; // other nexuses: GOOD, no effect
}

/** PREVENT ALLOW MEDIUM REMOVAL (SPC-4 6.13 / SBC-3 5.5): per I_T nexus. */
export async function preventAllowMediumRemoval(ctx: Ctx): Promise<void> {
  const prevent = ctx.cdb[4] & 0x03;
  if (prevent > 1) throw invalidCdbField(4, 1);
  if (prevent) ctx.lu.preventers.add(ctx.key);
  else ctx.lu.preventers.delete(ctx.key);
}

