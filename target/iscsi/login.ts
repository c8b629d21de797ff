// Login (RFC 7143 6, 11.12, 11.13): one handler per phase. The base refuses every PDU; the
// security and operational stages take Login Requests; the full feature phase (ffp.ts) the rest.
import type { Connection } from './connection';
import { ChapTarget } from './chap';
import { CHAP_KEYS, Negotiation, NegotiationFailure, SessionKind } from './keys';
import { FullFeaturePhase } from './ffp';
import { LoginRequest, Opcode, PduError } from './pdu';
import { PhaseHandler } from './phase';
import { cmdWindowMax, Session } from './session';
import { decodeText, encodeText, TEXT_EXCHANGE_BYTES_MAX, TextPairs } from './text';
import type { ChapSecret, TargetDefinition } from './types';

/** RFC 7143 11.13.5 status class and detail, as one 16-bit value. */
export const LoginStatus = Object.freeze({
  SUCCESS: 0x0000,
  INITIATOR_ERROR: 0x0200,
  AUTH_FAILURE: 0x0201,
  NOT_AUTHORIZED: 0x0202,
  NOT_FOUND: 0x0203,
  TARGET_REMOVED: 0x0204,
  UNSUPPORTED_VERSION: 0x0205,
  TOO_MANY_CONNECTIONS: 0x0206,
  MISSING_PARAMETER: 0x0207,
  SESSION_TYPE_NOT_SUPPORTED: 0x0209,
  SESSION_DOES_NOT_EXIST: 0x020a,
  INVALID_DURING_LOGIN: 0x020b,
  TARGET_ERROR: 0x0300,
  OUT_OF_RESOURCES: 0x0302,
});

/** RFC 7143 11.12.3: the stages in CSG/NSG. */
export const Stage = Object.freeze({ SECURITY: 0, OPERATIONAL: 1, FULL_FEATURE: 3 });

/** The version this target speaks (RFC 7143 11.12.4: 0x00). */
const ISCSI_VERSION = 0x00;

/** A login that cannot go on: answered with this status, then the connection closes. */
export class LoginFailure extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** What one login remembers across its PDUs. */
interface LoginState {
  first: boolean;
  isid: Buffer;
  tsih: number;
  cid: number;
  cmdSn: number;
  initiatorName: string;
  sessionType: SessionKind;
  target: TargetDefinition | undefined;
  existing: Session | undefined;
  negotiation: Negotiation;
  auth: 'None' | 'CHAP' | undefined;
  chap: ChapTarget | undefined;
  partial: Buffer[];
  partialBytes: number;
  /** Response text still to send (our C bit, RFC 7143 11.13.3). */
  outgoing: Buffer | undefined;
  /** Whether the stage may change once the continued response is out. */
  pendingTransit: boolean;
}

/** Keys handled by identify() in the first request rather than by the negotiation engine. */
const IDENTITY_KEYS = new Set(['InitiatorName', 'TargetName', 'SessionType', 'InitiatorAlias']);

/** The common part of the security and operational stages. */
abstract class LoginPhase extends PhaseHandler {
  protected abstract readonly stage: 0 | 1;

  constructor(conn: Connection, protected readonly st: LoginState) {
    super(conn);
  }

  protected refuse(): void {
    // RFC 7143 6.3: anything but a Login Request before the login completes ends the connection.
    this.fail(0, LoginStatus.INVALID_DURING_LOGIN, 'non-login PDU during login');
  }

  override login(req: LoginRequest): void {
    try {
      this.step(req);
    } catch (e) {
      if (e instanceof LoginFailure) return this.fail(req.itt, e.status, e.message);
      if (e instanceof NegotiationFailure) return this.fail(req.itt, LoginStatus.INITIATOR_ERROR, e.message);
      if (e instanceof PduError) return this.fail(req.itt, LoginStatus.INITIATOR_ERROR, e.message);
      // A bug here, or in the device's nexusAdded: the initiator hears "target error".
      this.conn.log.error({ err: e }, 'internal error during login');
      return this.fail(req.itt, LoginStatus.TARGET_ERROR, 'internal error');
    }
  }

  private step(req: LoginRequest): void {
    this.checkHeader(req);
    const st = this.st;
    if (st.outgoing !== undefined) {
      if (req.data.length > 0) throw new LoginFailure(LoginStatus.INITIATOR_ERROR, 'keys sent while the target response continues');
      return this.respond(req, [], st.pendingTransit && req.transit);
    }
    if (req.continue) {
      st.partialBytes += req.data.length;
      if (st.partialBytes > TEXT_EXCHANGE_BYTES_MAX) throw new LoginFailure(LoginStatus.INITIATOR_ERROR, 'login text too long');
      st.partial.push(req.data);
      // RFC 7143 11.12.2: each partial request gets an empty response.
      return this.sendResponse(req, Buffer.alloc(0), false, false, LoginStatus.SUCCESS);
    }
    const text = st.partial.length > 0 ? Buffer.concat([...st.partial, req.data]) : req.data;
    st.partial = [];
    st.partialBytes = 0;
    const pairs = decodeText(text);
    for (const [k] of pairs) st.negotiation.noteSeen(k);
    const replies: TextPairs = [];
    if (st.first) {
      st.first = false;
      this.identify(req, pairs, replies);
    } else if (pairs.some(([k]) => k === 'InitiatorName' || k === 'TargetName' || k === 'SessionType')) {
      throw new LoginFailure(LoginStatus.INITIATOR_ERROR, 'InitiatorName, TargetName and SessionType belong in the first request');
    }
    const transit = this.negotiate(req, pairs.filter(([k]) => !IDENTITY_KEYS.has(k)), replies);
    st.pendingTransit = transit;
    this.respond(req, replies, transit);
  }

  /** Version, ISID/TSIH/CID/CmdSN constancy and the CSG/NSG transition (RFC 7143 11.12). */
  private checkHeader(req: LoginRequest): void {
    const st = this.st;
    if (req.versionMin > ISCSI_VERSION || req.versionMax < ISCSI_VERSION) {
      throw new LoginFailure(LoginStatus.UNSUPPORTED_VERSION, `version ${req.versionMin}..${req.versionMax} not supported`);
    }
    if (st.first && st.isid.length === 0) {
      st.isid = Buffer.from(req.isid);
      st.tsih = req.tsih;
      st.cid = req.cid;
      st.cmdSn = req.cmdSn;
      // RFC 7143 11.13.4: the first response's StatSN starts the connection's numbering.
      this.conn.setStatSn(req.expStatSn);
    } else if (!req.isid.equals(st.isid) || req.tsih !== st.tsih || req.cid !== st.cid || req.cmdSn !== st.cmdSn) {
      throw new LoginFailure(LoginStatus.INITIATOR_ERROR, 'ISID, TSIH, CID or CmdSN changed during login');
    }
    if (req.transit && req.continue) throw new LoginFailure(LoginStatus.INITIATOR_ERROR, 'T and C both set');
    if (req.csg !== this.stage) throw new LoginFailure(LoginStatus.INITIATOR_ERROR, `CSG ${req.csg} while in stage ${this.stage}`);
    if (req.transit) {
      const ok = this.stage === Stage.SECURITY ? req.nsg === Stage.OPERATIONAL || req.nsg === Stage.FULL_FEATURE : req.nsg === Stage.FULL_FEATURE;
      if (!ok) throw new LoginFailure(LoginStatus.INITIATOR_ERROR, `transition from stage ${req.csg} to ${req.nsg}`);
    }
  }

  /** The first request names the initiator, the session type and the target (RFC 7143 6.3). */
  private identify(req: LoginRequest, pairs: TextPairs, replies: TextPairs): void {
    const st = this.st;
    const get = (k: string) => pairs.find(([key]) => key === k)?.[1];
    const initiatorName = get('InitiatorName');
    if (initiatorName === undefined || initiatorName.length === 0) throw new LoginFailure(LoginStatus.MISSING_PARAMETER, 'InitiatorName missing');
    st.initiatorName = initiatorName;
    const type = get('SessionType') ?? 'Normal';
    if (type !== 'Normal' && type !== 'Discovery') throw new LoginFailure(LoginStatus.SESSION_TYPE_NOT_SUPPORTED, `SessionType=${type}`);
    st.sessionType = type;
    if (this.conn.server.stopping) throw new LoginFailure(LoginStatus.TARGET_REMOVED, 'target is shutting down');
    const targetName = get('TargetName');
    if (type === 'Normal') {
      if (targetName === undefined) throw new LoginFailure(LoginStatus.MISSING_PARAMETER, 'TargetName missing');
      const target = this.conn.server.targets.get(targetName);
      if (target === undefined) throw new LoginFailure(LoginStatus.NOT_FOUND, `no target ${targetName}`);
      if (target.acl !== undefined && target.acl.length > 0 && !target.acl.includes(initiatorName)) {
        throw new LoginFailure(LoginStatus.NOT_AUTHORIZED, `${initiatorName} is not in the ACL of ${targetName}`);
      }
      st.target = target;
      replies.push(['TargetPortalGroupTag', String(target.tpgt)]);
      if (target.alias !== undefined) replies.push(['TargetAlias', target.alias]);
    } else if (targetName !== undefined) {
      replies.push(['TargetName', 'Irrelevant']);
    }
    if (st.tsih !== 0) this.findExisting(req);
    if (this.stage === Stage.OPERATIONAL && this.credentials() !== undefined) {
      throw new LoginFailure(LoginStatus.AUTH_FAILURE, 'authentication required: login must start in the security stage');
    }
  }

  /** A nonzero TSIH adds or reinstates a connection of a live session (RFC 7143 6.3.4, 6.3.5). */
  private findExisting(req: LoginRequest): void {
    const st = this.st;
    const s = this.conn.server.sessions.get(st.tsih);
    if (s === undefined || s.closed || !s.isid.equals(st.isid) || s.initiatorName !== st.initiatorName || s.target !== st.target) {
      throw new LoginFailure(LoginStatus.SESSION_DOES_NOT_EXIST, `no session with TSIH ${st.tsih}`);
    }
    // MaxConnections=1: only the connection with the same CID may be reinstated.
    if (s.connection !== undefined && s.connection.cid !== req.cid) {
      throw new LoginFailure(LoginStatus.TOO_MANY_CONNECTIONS, 'MaxConnections=1');
    }
    st.existing = s;
  }

  /** CHAP credentials the login needs, or undefined when none are configured. */
  protected credentials(): ChapSecret | undefined {
    return this.st.sessionType === 'Discovery' ? this.conn.server.options.discoveryChap : this.st.target?.chap;
  }

  /** Answers the keys of one complete request; returns whether the stage may change now. */
  protected abstract negotiate(req: LoginRequest, pairs: TextPairs, replies: TextPairs): boolean;

  private respond(req: LoginRequest, replies: TextPairs, transit: boolean): void {
    const st = this.st;
    let text = st.outgoing ?? encodeText(replies);
    st.outgoing = undefined;
    const limit = this.conn.params.initiatorMaxRecvDataSegmentLength;
    let more = false;
    if (text.length > limit) {
      st.outgoing = text.subarray(limit);
      text = text.subarray(0, limit);
      more = true;
    }
    const t = transit && !more;
    if (t && req.nsg === Stage.FULL_FEATURE) return this.complete(req, text);
    this.sendResponse(req, text, t, more, LoginStatus.SUCCESS);
    if (t) this.conn.phase = new OperationalPhase(this.conn, st);
  }

  /** The last login response: the session exists and the connection enters full feature phase. */
  private complete(req: LoginRequest, text: Buffer): void {
    const st = this.st;
    const session = st.existing ?? this.createSession();
    if (session === undefined) return this.fail(req.itt, LoginStatus.OUT_OF_RESOURCES, 'no free TSIH');
    if (session.connection !== undefined) session.connection.drop('connection reinstated');
    this.conn.session = session;
    this.conn.cid = st.cid;
    session.connection = this.conn;
    this.conn.log = this.conn.log.child({ tsih: session.tsih, cid: st.cid });
    st.tsih = session.tsih;
    this.sendResponse(req, text, true, false, LoginStatus.SUCCESS);
    this.conn.phase = new FullFeaturePhase(this.conn, session);
    this.conn.enterFullFeature(st.negotiation.connection);
    const cp = st.negotiation.connection;
    this.conn.log.info({ initiator: st.initiatorName, target: st.target?.name, type: st.sessionType, auth: st.auth ?? 'None',
      headerDigest: cp.headerDigest, dataDigest: cp.dataDigest }, 'login complete');
  }

  private createSession(): Session | undefined {
    const st = this.st;
    const server = this.conn.server;
    // RFC 7143 6.3.5: the same initiator and ISID logging in again reinstates the session.
    const old = server.sessions.findByIsid(st.initiatorName, st.isid, st.target?.name);
    if (old !== undefined) server.endSession(old, 'session reinstated');
    const tsih = server.sessions.allocateTsih();
    if (tsih === undefined) return undefined;
    const s = new Session(tsih, st.isid, st.initiatorName, st.sessionType, st.target, st.negotiation.session, st.cmdSn,
      this.conn.log.child({ tsih }));
    server.sessions.add(s);
    if (s.nexus !== undefined) st.target!.device.nexusAdded(s.nexus);
    return s;
  }

  protected sendResponse(req: LoginRequest, text: Buffer, transit: boolean, more: boolean, status: number): void {
    const st = this.st;
    const live = this.conn.session ?? st.existing;
    const win = live?.window() ?? { expCmdSn: st.cmdSn, maxCmdSn: (st.cmdSn + cmdWindowMax - 1) >>> 0 };
    this.conn.send([{
      opcode: Opcode.LoginResponse, immediate: false, final: transit, transit, continue: more,
      csg: this.stage, nsg: transit ? req.nsg : 0, versionMax: ISCSI_VERSION, versionActive: ISCSI_VERSION,
      isid: st.isid.length === 6 ? st.isid : Buffer.alloc(6), tsih: status === LoginStatus.SUCCESS ? st.tsih : 0,
      itt: req.itt, statSn: this.conn.takeStatSn(), ...win,
      statusClass: status >> 8, statusDetail: status & 0xff, ahs: Buffer.alloc(0), data: text,
    }]);
  }

  fail(itt: number, status: number, why: string): void {
    const st = this.st;
    this.conn.log.info({ status: `0x${status.toString(16).padStart(4, '0')}`, initiator: st.initiatorName || undefined }, `login failed: ${why}`);
    this.sendResponse({ itt, nsg: 0 } as LoginRequest, Buffer.alloc(0), false, false, status);
    this.conn.close(`login failed: ${why}`);
  }
}

/** Security negotiation stage (RFC 7143 6.3.2): AuthMethod and CHAP. */
export class SecurityPhase extends LoginPhase {
  protected readonly stage = Stage.SECURITY;

  protected negotiate(req: LoginRequest, pairs: TextPairs, replies: TextPairs): boolean {
    const st = this.st;
    const creds = this.credentials();
    const chapKeys = new Map<string, string>();
    const other: TextPairs = [];
    for (const [k, v] of pairs) {
      if (k === 'AuthMethod') replies.push(['AuthMethod', this.chooseAuth(v, creds)]);
      else if (CHAP_KEYS.has(k)) chapKeys.set(k, v);
      else other.push([k, v]);
    }
    replies.push(...st.negotiation.answer(other, { stage: 'security', sessionType: st.sessionType, leading: st.tsih === 0 }));
    if (chapKeys.size > 0) {
      if (st.chap === undefined) throw new LoginFailure(LoginStatus.INITIATOR_ERROR, 'CHAP keys without AuthMethod=CHAP');
      const r = st.chap.step(chapKeys);
      if (r.kind === 'fail') throw new LoginFailure(LoginStatus.AUTH_FAILURE, r.reason);
      replies.push(...r.replies);
      if (r.kind === 'done') this.conn.log.debug({ user: r.user }, 'CHAP authenticated');
    }
    if (!req.transit) return false;
    if (creds !== undefined && st.auth === undefined) throw new LoginFailure(LoginStatus.AUTH_FAILURE, 'authentication required');
    return st.auth !== 'CHAP' || st.chap!.done;
  }

  private chooseAuth(offer: string, creds: ChapSecret | undefined): string {
    const st = this.st;
    const list = offer.split(',');
    if (creds !== undefined) {
      // A target with CHAP configured refuses None.
      if (!list.includes('CHAP')) throw new LoginFailure(LoginStatus.AUTH_FAILURE, `AuthMethod=${offer}: CHAP required`);
      st.auth = 'CHAP';
      st.chap = new ChapTarget(creds);
      return 'CHAP';
    }
    if (!list.includes('None')) throw new LoginFailure(LoginStatus.AUTH_FAILURE, `AuthMethod=${offer}: no credentials configured`);
    st.auth = 'None';
    return 'None';
  }
}

/** Operational parameter negotiation stage (RFC 7143 6.3.3). */
export class OperationalPhase extends LoginPhase {
  protected readonly stage = Stage.OPERATIONAL;

  protected negotiate(req: LoginRequest, pairs: TextPairs, replies: TextPairs): boolean {
    const st = this.st;
    for (const [k] of pairs) {
      if (k === 'AuthMethod' || CHAP_KEYS.has(k)) throw new LoginFailure(LoginStatus.INITIATOR_ERROR, `${k} in the operational stage`);
    }
    replies.push(...st.negotiation.answer(pairs, { stage: 'operational', sessionType: st.sessionType, leading: st.tsih === 0 }));
    return req.transit;
  }
}

/** The phase a new connection starts in: a Login Request may start in either login stage. */
export class LoginStart extends PhaseHandler {
  private readonly st: LoginState;

  constructor(conn: Connection) {
    super(conn);
    this.st = {
      first: true, isid: Buffer.alloc(0), tsih: 0, cid: 0, cmdSn: 0, initiatorName: '', sessionType: 'Normal',
      target: undefined, existing: undefined, negotiation: new Negotiation(conn.server.keyValues), auth: undefined, chap: undefined,
      partial: [], partialBytes: 0, outgoing: undefined, pendingTransit: false,
    };
  }

  protected refuse(): void {
    new SecurityPhase(this.conn, this.st).fail(0, LoginStatus.INVALID_DURING_LOGIN, 'non-login PDU before login');
  }

  override login(req: LoginRequest): void {
    const next = req.csg === Stage.OPERATIONAL ? new OperationalPhase(this.conn, this.st) : new SecurityPhase(this.conn, this.st);
    this.conn.phase = next;
    next.login(req);
  }
}
