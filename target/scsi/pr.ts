// Persistent reservations (SPC-4 5.13, 6.15, 6.16): registrations, the reservation, the conflict
// rule the dispatcher applies, PERSISTENT RESERVE IN/OUT handlers and APTPL persistence through the
// LU's StateStore (loaded lazily before the LU's first command, see LogicalUnit.load()).
import type { StateStore } from '../../firmware/volume';
import type { Nexus } from './types';
import type { Ctx, PrClass } from './dispatch';
import {
  CheckCondition, ReservationConflict, Sense, SenseCode, invalidCdbField, invalidParamField,
} from './sense';
import { decodePrIn, decodePrOut } from './cdb';
import { itKey } from './lu';

export const PrType = Object.freeze({
  WRITE_EXCLUSIVE: 1,
  EXCLUSIVE_ACCESS: 3,
  WRITE_EXCLUSIVE_REGISTRANTS_ONLY: 5,
  EXCLUSIVE_ACCESS_REGISTRANTS_ONLY: 6,
  WRITE_EXCLUSIVE_ALL_REGISTRANTS: 7,
  EXCLUSIVE_ACCESS_ALL_REGISTRANTS: 8,
});

export const PrInAction = Object.freeze({ READ_KEYS: 0, READ_RESERVATION: 1, REPORT_CAPABILITIES: 2, READ_FULL_STATUS: 3 });
export const PrOutAction = Object.freeze({
  REGISTER: 0, RESERVE: 1, RELEASE: 2, CLEAR: 3, PREEMPT: 4, PREEMPT_AND_ABORT: 5,
  REGISTER_AND_IGNORE_EXISTING_KEY: 6, REGISTER_AND_MOVE: 7,
});

const validTypes: readonly number[] = Object.values(PrType);
/** Registrations per LU (SPC-4 5.13.7: INSUFFICIENT REGISTRATION RESOURCES beyond it). */
export const registrationsMax = 256;
/** TransportIDs accepted in one SPEC_I_PT parameter list. */
export const specIPtTransportIdsMax = 64;
const stateName = 'persistent-reservations';

export interface Registration {
  key: bigint;
  /** "<name>,i,0x<ISID>", or just "<name>" when anyIsid (TransportID format 00b). */
  initiatorPort: string;
  anyIsid: boolean;
  targetPort: string;
  relativeTargetPortId: number;
  allTgPt: boolean;
}

export interface Reservation { holder: Registration; type: number; scope: number }

function isAllRegistrants(type: number): boolean {
  return type === PrType.WRITE_EXCLUSIVE_ALL_REGISTRANTS || type === PrType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS;
}

function matches(r: Registration, n: { initiatorPort: string; targetPort: string }): boolean {
  const port = r.anyIsid ? n.initiatorPort.split(',i,')[0] : n.initiatorPort;
  return port === r.initiatorPort && (r.allTgPt || r.targetPort === n.targetPort);
}

export class PrState {
  generation = 0;
  regs: Registration[] = [];
  reservation: Reservation | null = null;
  aptpl = false;

  constructor(private readonly store: StateStore) {}

  find(n: { initiatorPort: string; targetPort: string }): Registration | undefined {
    return this.regs.find((r) => matches(r, n));
  }

  isHolder(n: Nexus): boolean {
    const res = this.reservation;
    if (!res) return false;
    const reg = this.find(n);
    return reg !== undefined && (isAllRegistrants(res.type) || reg === res.holder);
  }

  remove(r: Registration): void {
    this.regs = this.regs.filter((x) => x !== r);
    const res = this.reservation;
    if (!res) return;
    // SPC-4 5.13.11.2.2: an all-registrants reservation lasts while any registration remains.
    if (isAllRegistrants(res.type) ? this.regs.length === 0 : res.holder === r) this.reservation = null;
    else if (isAllRegistrants(res.type) && res.holder === r) res.holder = this.regs[0];
  }

  async load(): Promise<void> {
    const text = await this.store.load(stateName);
    if (!text) return;
    const doc = JSON.parse(text) as PrDocument;
    if (!doc.aptpl) return;
    this.aptpl = true;
    this.generation = doc.generation;
    this.regs = doc.regs.map((r) => ({ ...r, key: BigInt(r.key) }));
    const res = doc.reservation;
    if (res && this.regs[res.holder]) this.reservation = { holder: this.regs[res.holder], type: res.type, scope: res.scope };
  }

  /** SPC-4 5.13.5: with APTPL the state survives power loss; without it nothing is kept. */
  async persist(): Promise<void> {
    const doc: PrDocument = { aptpl: this.aptpl, generation: this.generation, regs: [], reservation: null };
    if (this.aptpl) {
      doc.regs = this.regs.map((r) => ({ ...r, key: r.key.toString() }));
      const res = this.reservation;
      doc.reservation = res ? { holder: this.regs.indexOf(res.holder), type: res.type, scope: res.scope } : null;
    }
    await this.store.save(stateName, JSON.stringify(doc));
  }
}

interface PrDocument {
  aptpl: boolean;
  generation: number;
  regs: (Omit<Registration, 'key'> & { key: string })[];
  reservation: { holder: number; type: number; scope: number } | null;
}

/** SPC-4 5.13.1 table 63 / SBC-3 table 13: does this command conflict with the reservation? */
export function prConflict(pr: PrState, n: Nexus, cls: PrClass): boolean {
  const res = pr.reservation;
  if (!res || cls === 'allowed' || pr.isHolder(n)) return false;
  const registered = pr.find(n) !== undefined;
  switch (res.type) {
    case PrType.WRITE_EXCLUSIVE: return cls === 'write';
    case PrType.EXCLUSIVE_ACCESS: return true;
    case PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY:
    case PrType.WRITE_EXCLUSIVE_ALL_REGISTRANTS: return !registered && cls === 'write';
    default: return !registered;
  }
}

// ---------------------------------------------------------------- TransportIDs (SPC-4 7.6.4.6)

const ISCSI_PROTOCOL_ID = 5;

/** iSCSI TransportID, format 01b (initiator port name with ISID), padded to a multiple of 4. */
export function encodeTransportId(initiatorPort: string, anyIsid = false): Buffer {
  const name = Buffer.from(initiatorPort + '\0', 'utf8');
  const len = Math.max(20, Math.ceil(name.length / 4) * 4);
  const b = Buffer.alloc(4 + len);
  b[0] = (anyIsid ? 0x00 : 0x40) | ISCSI_PROTOCOL_ID;
  b.writeUInt16BE(len, 2);
  name.copy(b, 4);
  return b;
}

/** Decodes one TransportID at `at` of the parameter list; field pointers are list offsets. */
export function decodeTransportId(list: Buffer, at: number): { initiatorPort: string; anyIsid: boolean; end: number } {
  if (at + 4 > list.length) throw new CheckCondition(Sense.PARAMETER_LIST_LENGTH_ERROR);
  if ((list[at] & 0x0f) !== ISCSI_PROTOCOL_ID) throw invalidParamField(at, 3);
  const format = list[at] >> 6;
  if (format > 1) throw invalidParamField(at, 7);
  const len = list.readUInt16BE(at + 2);
  const end = at + 4 + len;
  if (len < 4 || end > list.length) throw invalidParamField(at + 2, 7);
  const raw = list.subarray(at + 4, end).toString('utf8');
  const text = raw.split('\0')[0];
  if (format === 1 && !/,i,0x[0-9a-fA-F]{12}$/.test(text)) throw invalidParamField(at + 4, 7);
  if (text.length === 0) throw invalidParamField(at + 4, 7);
  const initiatorPort = format === 1 ? text.replace(/0x([0-9a-fA-F]{12})$/, (_m, h: string) => `0x${h.toLowerCase()}`) : text;
  return { initiatorPort, anyIsid: format === 0, end };
}

// ---------------------------------------------------------------- PERSISTENT RESERVE IN

function prInHeader(pr: PrState, body: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt32BE(pr.generation >>> 0, 0);
  h.writeUInt32BE(body.length, 4);
  return Buffer.concat([h, body]);
}

function readKeys(pr: PrState): Buffer {
  const body = Buffer.alloc(8 * pr.regs.length);
  pr.regs.forEach((r, i) => body.writeBigUInt64BE(r.key, 8 * i));
  return prInHeader(pr, body);
}

function readReservation(pr: PrState): Buffer {
  const res = pr.reservation;
  if (!res) return prInHeader(pr, Buffer.alloc(0));
  const body = Buffer.alloc(16);
  // SPC-4 6.15.3.3: all-registrants reservations report key 0.
  body.writeBigUInt64BE(isAllRegistrants(res.type) ? 0n : res.holder.key, 0);
  body[13] = (res.scope << 4) | res.type;
  return prInHeader(pr, body);
}

function reportCapabilities(pr: PrState): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt16BE(8, 0);
  b[2] = 0x08 | 0x04 | 0x01; // SIP_C, ATP_C, PTPL_C
  b[3] = 0x80 | (pr.aptpl ? 0x01 : 0); // TMV, PTPL_A
  b[4] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02; // WR_EX_AR, EX_AC_RO, WR_EX_RO, EX_AC, WR_EX
  b[5] = 0x01; // EX_AC_AR
  return b;
}

function readFullStatus(pr: PrState): Buffer {
  const descs = pr.regs.map((r) => {
    const tid = encodeTransportId(r.initiatorPort, r.anyIsid);
    const d = Buffer.alloc(24);
    d.writeBigUInt64BE(r.key, 0);
    const res = pr.reservation;
    const holder = res !== null && (isAllRegistrants(res.type) || res.holder === r);
    d[12] = (r.allTgPt ? 0x02 : 0) | (holder ? 0x01 : 0);
    if (holder) d[13] = (res!.scope << 4) | res!.type;
    d.writeUInt16BE(r.allTgPt ? 0 : r.relativeTargetPortId, 18);
    d.writeUInt32BE(tid.length, 20);
    return Buffer.concat([d, tid]);
  });
  return prInHeader(pr, Buffer.concat(descs));
}

/** PERSISTENT RESERVE IN (SPC-4 6.15). */
export async function persistentReserveIn(ctx: Ctx): Promise<Buffer> {
  const c = decodePrIn(ctx.cdb);
  const pr = ctx.lu.pr;
  switch (c.serviceAction) {
    case PrInAction.READ_KEYS: return readKeys(pr);
    case PrInAction.READ_RESERVATION: return readReservation(pr);
    case PrInAction.REPORT_CAPABILITIES: return reportCapabilities(pr);
    case PrInAction.READ_FULL_STATUS: return readFullStatus(pr);
    default: throw invalidCdbField(1, 4);
  }
}

// ---------------------------------------------------------------- PERSISTENT RESERVE OUT

interface ProutParams {
  key: bigint;
  saKey: bigint;
  specIPt: boolean;
  allTgPt: boolean;
  aptpl: boolean;
  list: Buffer;
}

/** SPC-4 6.16.3: the basic parameter list is exactly 24 bytes unless SPEC_I_PT is set. */
function decodeProutParams(list: Buffer, declared: number): ProutParams {
  if (declared < 24 || list.length < 24) throw new CheckCondition(Sense.PARAMETER_LIST_LENGTH_ERROR);
  const p = {
    key: list.readBigUInt64BE(0), saKey: list.readBigUInt64BE(8),
    specIPt: (list[20] & 0x08) !== 0, allTgPt: (list[20] & 0x04) !== 0, aptpl: (list[20] & 0x01) !== 0, list,
  };
  if (!p.specIPt && declared !== 24) throw new CheckCondition(Sense.PARAMETER_LIST_LENGTH_ERROR);
  return p;
}

/** UA to every live I_T nexus a registration covers, except the one the command came through. */
function uaToRegistration(ctx: Ctx, r: Registration, s: SenseCode): void {
  for (const n of ctx.target.nexuses()) {
    const k = itKey(n);
    if (k !== ctx.key && matches(r, n)) ctx.lu.addUa(k, s);
  }
}

function requireRegistered(ctx: Ctx, p: ProutParams): Registration {
  const reg = ctx.lu.pr.find(ctx.nexus);
  if (!reg) throw new ReservationConflict('PERSISTENT RESERVE OUT from an unregistered I_T nexus');
  if (reg.key !== p.key) throw new ReservationConflict('RESERVATION KEY does not match');
  return reg;
}

function checkType(type: number, scope: number): void {
  if (scope !== 0) throw invalidCdbField(2, 7); // LU_SCOPE only
  if (!validTypes.includes(type)) throw invalidCdbField(2, 3);
}

/** SPEC_I_PT (SPC-4 6.16.3): the TransportIDs to register besides the issuing I_T nexus. */
function specifiedPorts(p: ProutParams): { initiatorPort: string; anyIsid: boolean }[] {
  if (p.list.length < 28) throw new CheckCondition(Sense.PARAMETER_LIST_LENGTH_ERROR);
  const total = p.list.readUInt32BE(24);
  if (28 + total > p.list.length) throw new CheckCondition(Sense.PARAMETER_LIST_LENGTH_ERROR);
  const out: { initiatorPort: string; anyIsid: boolean }[] = [];
  const end = 28 + total;
  for (let at = 28; at < end;) {
    if (out.length >= specIPtTransportIdsMax) throw new CheckCondition(Sense.INSUFFICIENT_REGISTRATION_RESOURCES);
    const t = decodeTransportId(p.list.subarray(0, end), at);
    out.push({ initiatorPort: t.initiatorPort, anyIsid: t.anyIsid });
    at = t.end;
  }
  return out;
}

function newRegistration(ctx: Ctx, p: ProutParams, port: { initiatorPort: string; anyIsid: boolean }): Registration {
  return {
    key: p.saKey, initiatorPort: port.initiatorPort, anyIsid: port.anyIsid,
    targetPort: ctx.nexus.targetPort, relativeTargetPortId: ctx.nexus.relativeTargetPortId, allTgPt: p.allTgPt,
  };
}

/** REGISTER and REGISTER AND IGNORE EXISTING KEY (SPC-4 5.13.7). */
function register(ctx: Ctx, p: ProutParams, ignoreKey: boolean): boolean {
  const pr = ctx.lu.pr;
  const reg = pr.find(ctx.nexus);
  if (!reg) {
    if (!ignoreKey && p.key !== 0n) throw new ReservationConflict('unregistered nexus with non-zero RESERVATION KEY');
    if (ignoreKey && p.specIPt) throw invalidParamField(20, 3);
    if (p.saKey === 0n) return false;
    const extra = p.specIPt ? specifiedPorts(p) : [];
    const all = [{ initiatorPort: ctx.nexus.initiatorPort, anyIsid: false }, ...extra].map((x) => newRegistration(ctx, p, x));
    for (const r of all.slice(1)) {
      if (pr.regs.some((x) => x.initiatorPort === r.initiatorPort && (x.allTgPt || r.allTgPt || x.targetPort === r.targetPort))) {
        throw new ReservationConflict('SPEC_I_PT names an I_T nexus that is already registered');
      }
    }
    if (pr.regs.length + all.length > registrationsMax) throw new CheckCondition(Sense.INSUFFICIENT_REGISTRATION_RESOURCES);
    pr.regs.push(...all);
  } else {
    if (!ignoreKey && p.key !== reg.key) throw new ReservationConflict('RESERVATION KEY does not match');
    if (p.specIPt) throw invalidParamField(20, 3);
    if (p.saKey === 0n) unregister(ctx, reg);
    else reg.key = p.saKey;
  }
  pr.aptpl = p.aptpl;
  return true;
}

/** SPC-4 5.13.11.2.2: unregistering the holder of a registrants-only reservation releases it. */
function unregister(ctx: Ctx, reg: Registration): void {
  const pr = ctx.lu.pr;
  const before = pr.reservation;
  pr.remove(reg);
  if (before && !pr.reservation && (before.type === PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY || before.type === PrType.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY)) {
    for (const r of pr.regs) uaToRegistration(ctx, r, Sense.RESERVATIONS_RELEASED);
  }
}

function reserve(ctx: Ctx, p: ProutParams, type: number, scope: number): void {
  const pr = ctx.lu.pr;
  const reg = requireRegistered(ctx, p);
  checkType(type, scope);
  const res = pr.reservation;
  if (res) {
    if (pr.isHolder(ctx.nexus) && res.type === type && res.scope === scope) return;
    throw new ReservationConflict('another reservation exists');
  }
  pr.reservation = { holder: reg, type, scope };
}

function release(ctx: Ctx, p: ProutParams, type: number, scope: number): void {
  const pr = ctx.lu.pr;
  requireRegistered(ctx, p);
  const res = pr.reservation;
  if (!res || !pr.isHolder(ctx.nexus)) return; // SPC-4 5.13.11.1: GOOD, nothing released
  if (res.type !== type || res.scope !== scope) throw new CheckCondition(Sense.INVALID_RELEASE_OF_PERSISTENT_RESERVATION);
  pr.reservation = null;
  if (type !== PrType.WRITE_EXCLUSIVE && type !== PrType.EXCLUSIVE_ACCESS) {
    for (const r of pr.regs) uaToRegistration(ctx, r, Sense.RESERVATIONS_RELEASED);
  }
}

function clear(ctx: Ctx, p: ProutParams): void {
  const pr = ctx.lu.pr;
  requireRegistered(ctx, p);
  const others = pr.regs;
  pr.regs = [];
  pr.reservation = null;
  for (const r of others) uaToRegistration(ctx, r, Sense.RESERVATIONS_PREEMPTED);
}

/** Removes the registrations holding `key`, sparing the issuer's own (SPC-4 5.13.11.2.4). */
function removeByKey(ctx: Ctx, key: bigint, issuer: Registration): Registration[] {
  const pr = ctx.lu.pr;
  const gone = pr.regs.filter((r) => r.key === key && r !== issuer);
  for (const r of gone) {
    pr.remove(r);
    uaToRegistration(ctx, r, Sense.REGISTRATIONS_PREEMPTED);
  }
  return gone;
}

/** PREEMPT and PREEMPT AND ABORT (SPC-4 5.13.11.2.4; aborting the tasks is the transport's part). */
function preempt(ctx: Ctx, p: ProutParams, type: number, scope: number): void {
  const pr = ctx.lu.pr;
  const me = requireRegistered(ctx, p);
  const res = pr.reservation;
  if (res && isAllRegistrants(res.type) && p.saKey === 0n) {
    checkType(type, scope);
    for (const r of pr.regs.filter((x) => x !== me)) {
      pr.regs = pr.regs.filter((x) => x !== r);
      uaToRegistration(ctx, r, Sense.REGISTRATIONS_PREEMPTED);
    }
    pr.reservation = { holder: me, type, scope };
    return;
  }
  if (p.saKey === 0n) throw invalidParamField(8, 7);
  if (res && !isAllRegistrants(res.type) && res.holder.key === p.saKey) {
    checkType(type, scope);
    const old = res;
    removeByKey(ctx, p.saKey, me);
    pr.reservation = { holder: me, type, scope };
    if (old.type !== type || old.scope !== scope) {
      for (const r of pr.regs) uaToRegistration(ctx, r, Sense.RESERVATIONS_RELEASED);
    }
    return;
  }
  if (removeByKey(ctx, p.saKey, me).length === 0) throw new ReservationConflict('PREEMPT: no registration with that key');
}

/** REGISTER AND MOVE (SPC-4 5.13.8): its own parameter list layout (6.16.4). */
async function registerAndMove(ctx: Ctx, list: Buffer, declared: number, type: number, scope: number): Promise<void> {
  if (declared < 24 || list.length < 24) throw new CheckCondition(Sense.PARAMETER_LIST_LENGTH_ERROR);
  const pr = ctx.lu.pr;
  const key = list.readBigUInt64BE(0);
  const saKey = list.readBigUInt64BE(8);
  const unreg = (list[17] & 0x02) !== 0;
  const aptpl = (list[17] & 0x01) !== 0;
  const rtpi = list.readUInt16BE(18);
  const tidLength = list.readUInt32BE(20);
  const me = requireRegistered(ctx, { key, saKey, specIPt: false, allTgPt: false, aptpl, list });
  const res = pr.reservation;
  if (!res || !pr.isHolder(ctx.nexus)) throw new ReservationConflict('REGISTER AND MOVE by a non-holder');
  if (isAllRegistrants(res.type)) throw new ReservationConflict('REGISTER AND MOVE of an all-registrants reservation');
  checkType(type, scope);
  if (saKey === 0n) throw invalidParamField(8, 7);
  if (24 + tidLength > list.length) throw new CheckCondition(Sense.PARAMETER_LIST_LENGTH_ERROR);
  const tid = decodeTransportId(list.subarray(0, 24 + tidLength), 24);
  const port = [...ctx.target.nexuses()].find((n) => n.relativeTargetPortId === rtpi) ?? (rtpi === ctx.nexus.relativeTargetPortId ? ctx.nexus : undefined);
  if (!port) throw invalidParamField(18, 7);
  const dest = { initiatorPort: tid.initiatorPort, targetPort: port.targetPort };
  if (tid.anyIsid || matches(me, dest)) throw invalidParamField(24, 7);
  let target = pr.find(dest);
  if (!target) {
    if (pr.regs.length >= registrationsMax) throw new CheckCondition(Sense.INSUFFICIENT_REGISTRATION_RESOURCES);
    target = { key: saKey, initiatorPort: dest.initiatorPort, anyIsid: false, targetPort: dest.targetPort, relativeTargetPortId: rtpi, allTgPt: false };
    pr.regs.push(target);
  } else {
    target.key = saKey;
  }
  pr.reservation = { holder: target, type, scope };
  if (unreg) pr.regs = pr.regs.filter((r) => r !== me);
  pr.aptpl = aptpl;
}

/** PERSISTENT RESERVE OUT (SPC-4 6.16). PRgeneration counts every change but RESERVE/RELEASE. */
export async function persistentReserveOut(ctx: Ctx): Promise<void> {
  const c = decodePrOut(ctx.cdb);
  const pr = ctx.lu.pr;
  const list = ctx.dataOut.subarray(0, c.parameterListLength);
  if (c.serviceAction === PrOutAction.REGISTER_AND_MOVE) {
    await registerAndMove(ctx, list, c.parameterListLength, c.type, c.scope);
    pr.generation++;
    return pr.persist();
  }
  const p = decodeProutParams(list, c.parameterListLength);
  let bump = true;
  switch (c.serviceAction) {
    case PrOutAction.REGISTER: bump = register(ctx, p, false); break;
    case PrOutAction.REGISTER_AND_IGNORE_EXISTING_KEY: bump = register(ctx, p, true); break;
    case PrOutAction.RESERVE: reserve(ctx, p, c.type, c.scope); bump = false; break;
    case PrOutAction.RELEASE: release(ctx, p, c.type, c.scope); bump = false; break;
    case PrOutAction.CLEAR: clear(ctx, p); break;
    case PrOutAction.PREEMPT:
    case PrOutAction.PREEMPT_AND_ABORT: preempt(ctx, p, c.type, c.scope); break;
    default: throw invalidCdbField(1, 4);
  }
  if (bump) pr.generation = (pr.generation + 1) >>> 0;
  await pr.persist();
}
