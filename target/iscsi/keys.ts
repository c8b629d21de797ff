// Login and text keys (RFC 7143 section 13) as data, and the engine that answers an
// initiator's offers. Pure: no sockets, no timers, no logger.
import type { TextPairs } from './text';

export type KeyStage = 'security' | 'operational' | 'any';
export type SessionKind = 'Discovery' | 'Normal';

interface KeyBase {
  /** Where the value lives once negotiated. */
  scope: 'session' | 'connection';
  stage: KeyStage;
  /** LO: only on the leading connection of a session (RFC 7143 13, "Use: LO"). */
  leadingOnly?: boolean;
  /** RFC 7143 13: "Irrelevant when: SessionType=Discovery". */
  irrelevantForDiscovery?: boolean;
}

export interface NumericKey extends KeyBase { kind: 'numeric'; merge: 'min' | 'max'; min: number; max: number; initial: number }
export interface BooleanKey extends KeyBase { kind: 'boolean'; merge: 'and' | 'or'; initial: boolean }
export interface ListKey extends KeyBase { kind: 'list'; values: readonly string[]; initial: string }
/** Declared by one side; the other side does not answer (RFC 7143 6.2 declarative). */
export interface DeclarativeKey extends KeyBase { kind: 'declarative'; by: 'initiator' | 'target'; numeric?: { min: number; max: number } }
/** RFC 7143 13.25: obsolete keys; the answer is fixed. */
export interface ObsoleteKey extends KeyBase { kind: 'obsolete'; answer: 'No' | 'Reject' }
export type KeyDef = NumericKey | BooleanKey | ListKey | DeclarativeKey | ObsoleteKey;

const op = { stage: 'operational' } as const;

/** Every key this target understands, with RFC 7143's range, default and merge rule. */
export const KEYS: Readonly<Record<string, KeyDef>> = Object.freeze({
  AuthMethod: { kind: 'list', scope: 'connection', stage: 'security', values: ['None', 'CHAP'], initial: 'None' },
  HeaderDigest: { kind: 'list', scope: 'connection', ...op, values: ['None', 'CRC32C'], initial: 'None' },
  DataDigest: { kind: 'list', scope: 'connection', ...op, values: ['None', 'CRC32C'], initial: 'None' },
  MaxConnections: { kind: 'numeric', scope: 'session', ...op, leadingOnly: true, merge: 'min', min: 1, max: 65535, initial: 1 },
  InitialR2T: { kind: 'boolean', scope: 'session', ...op, leadingOnly: true, irrelevantForDiscovery: true, merge: 'or', initial: true },
  ImmediateData: { kind: 'boolean', scope: 'session', ...op, leadingOnly: true, irrelevantForDiscovery: true, merge: 'and', initial: true },
  MaxRecvDataSegmentLength: { kind: 'declarative', scope: 'connection', ...op, by: 'initiator', numeric: { min: 512, max: 16777215 } },
  MaxBurstLength: { kind: 'numeric', scope: 'session', ...op, leadingOnly: true, irrelevantForDiscovery: true, merge: 'min', min: 512, max: 16777215, initial: 262144 },
  FirstBurstLength: { kind: 'numeric', scope: 'session', ...op, leadingOnly: true, irrelevantForDiscovery: true, merge: 'min', min: 512, max: 16777215, initial: 65536 },
  DefaultTime2Wait: { kind: 'numeric', scope: 'session', ...op, leadingOnly: true, merge: 'max', min: 0, max: 3600, initial: 2 },
  DefaultTime2Retain: { kind: 'numeric', scope: 'session', ...op, leadingOnly: true, merge: 'min', min: 0, max: 3600, initial: 20 },
  MaxOutstandingR2T: { kind: 'numeric', scope: 'session', ...op, leadingOnly: true, irrelevantForDiscovery: true, merge: 'min', min: 1, max: 65535, initial: 1 },
  DataPDUInOrder: { kind: 'boolean', scope: 'session', ...op, leadingOnly: true, irrelevantForDiscovery: true, merge: 'or', initial: true },
  DataSequenceInOrder: { kind: 'boolean', scope: 'session', ...op, leadingOnly: true, irrelevantForDiscovery: true, merge: 'or', initial: true },
  ErrorRecoveryLevel: { kind: 'numeric', scope: 'session', ...op, leadingOnly: true, merge: 'min', min: 0, max: 2, initial: 0 },
  // RFC 7143 13.23 / RFC 7144: answered with what this target does.
  TaskReporting: { kind: 'list', scope: 'session', ...op, leadingOnly: true, values: ['RFC3720'], initial: 'RFC3720' },
  iSCSIProtocolLevel: { kind: 'numeric', scope: 'session', ...op, leadingOnly: true, merge: 'min', min: 0, max: 31, initial: 0 },
  // Declaratives valid in either stage (RFC 7143 13.4-13.9).
  InitiatorName: { kind: 'declarative', scope: 'session', stage: 'any', leadingOnly: true, by: 'initiator' },
  TargetName: { kind: 'declarative', scope: 'session', stage: 'any', leadingOnly: true, by: 'initiator' },
  SessionType: { kind: 'declarative', scope: 'session', stage: 'any', leadingOnly: true, by: 'initiator' },
  InitiatorAlias: { kind: 'declarative', scope: 'session', stage: 'any', by: 'initiator' },
  TargetAlias: { kind: 'declarative', scope: 'session', stage: 'any', by: 'target' },
  TargetAddress: { kind: 'declarative', scope: 'session', stage: 'any', by: 'target' },
  TargetPortalGroupTag: { kind: 'declarative', scope: 'session', stage: 'any', by: 'target' },
  // RFC 7143 13.25: markers are gone. IFMarker/OFMarker SHOULD get Reject, MAY get No;
  // open-iscsi still offers IFMarker=No, and answering No keeps it quiet.
  IFMarker: { kind: 'obsolete', scope: 'connection', ...op, answer: 'No' },
  OFMarker: { kind: 'obsolete', scope: 'connection', ...op, answer: 'No' },
  IFMarkInt: { kind: 'obsolete', scope: 'connection', ...op, answer: 'Reject' },
  OFMarkInt: { kind: 'obsolete', scope: 'connection', ...op, answer: 'Reject' },
} satisfies Record<string, KeyDef>);

/** CHAP keys (RFC 7143 12.1.3) belong to the security stage; chap.ts reads them. */
export const CHAP_KEYS: ReadonlySet<string> = new Set(['CHAP_A', 'CHAP_I', 'CHAP_C', 'CHAP_N', 'CHAP_R']);

export interface SessionParams {
  maxConnections: number;
  initialR2T: boolean;
  immediateData: boolean;
  maxBurstLength: number;
  firstBurstLength: number;
  defaultTime2Wait: number;
  defaultTime2Retain: number;
  maxOutstandingR2T: number;
  dataPduInOrder: boolean;
  dataSequenceInOrder: boolean;
  errorRecoveryLevel: number;
}

export interface ConnectionParams {
  headerDigest: boolean;
  dataDigest: boolean;
  /** The initiator's declaration: bounds our Data-In, text and NOP-In data segments. */
  initiatorMaxRecvDataSegmentLength: number;
  /** Ours: bounds what we accept. */
  targetMaxRecvDataSegmentLength: number;
}

/** What this target offers: its side of every min/max/and/or merge. */
export interface TargetKeyValues extends SessionParams {
  maxRecvDataSegmentLength: number;
  iscsiProtocolLevel: number;
}

export const TARGET_KEY_VALUES: Readonly<TargetKeyValues> = Object.freeze({
  // ERL0 with one connection per session; the answer to MaxConnections says so.
  maxConnections: 1,
  initialR2T: false,
  immediateData: true,
  maxBurstLength: 1048576,
  firstBurstLength: 262144,
  defaultTime2Wait: 2,
  defaultTime2Retain: 0,
  maxOutstandingR2T: 8,
  dataPduInOrder: true,
  dataSequenceInOrder: true,
  errorRecoveryLevel: 0,
  maxRecvDataSegmentLength: 262144,
  iscsiProtocolLevel: 1,
});

/** RFC 7143 13.x defaults: what applies when a key is never negotiated. */
export function defaultSessionParams(): SessionParams {
  return {
    maxConnections: 1, initialR2T: true, immediateData: true, maxBurstLength: 262144, firstBurstLength: 65536,
    defaultTime2Wait: 2, defaultTime2Retain: 20, maxOutstandingR2T: 1, dataPduInOrder: true, dataSequenceInOrder: true,
    errorRecoveryLevel: 0,
  };
}

export function defaultConnectionParams(): ConnectionParams {
  return { headerDigest: false, dataDigest: false, initiatorMaxRecvDataSegmentLength: 8192, targetMaxRecvDataSegmentLength: 8192 };
}

const SESSION_FIELD: Record<string, keyof SessionParams> = {
  MaxConnections: 'maxConnections', InitialR2T: 'initialR2T', ImmediateData: 'immediateData', MaxBurstLength: 'maxBurstLength',
  FirstBurstLength: 'firstBurstLength', DefaultTime2Wait: 'defaultTime2Wait', DefaultTime2Retain: 'defaultTime2Retain',
  MaxOutstandingR2T: 'maxOutstandingR2T', DataPDUInOrder: 'dataPduInOrder', DataSequenceInOrder: 'dataSequenceInOrder',
  ErrorRecoveryLevel: 'errorRecoveryLevel',
};

const OURS: Record<string, keyof TargetKeyValues> = {
  ...SESSION_FIELD as Record<string, keyof TargetKeyValues>,
  iSCSIProtocolLevel: 'iscsiProtocolLevel',
};

/** RFC 7143 6.1: numerical-value is decimal-constant or hex-constant (0x...), < 2^64. */
export function parseNumber(v: string): number | undefined {
  if (/^[0-9]{1,20}$/.test(v)) return Number(v);
  if (/^0[xX][0-9a-fA-F]{1,16}$/.test(v)) return Number.parseInt(v.slice(2), 16);
  return undefined;
}

/** Why a login must fail while negotiating: an initiator error (RFC 7143 11.13.5, 0x0200 class). */
export class NegotiationFailure extends Error {
  constructor(readonly detail: number, message: string) {
    super(message);
  }
}

export interface NegotiationContext {
  stage: 'security' | 'operational';
  sessionType: SessionKind;
  /** Connection joins an existing session: leading-only keys may not be sent. */
  leading: boolean;
}

/**
 * One login's negotiation: answers the initiator's offers, remembers which keys were seen
 * (a key may be negotiated once per login, RFC 7143 6.2) and builds the resulting parameters.
 */
export class Negotiation {
  readonly session: SessionParams = defaultSessionParams();
  readonly connection: ConnectionParams = defaultConnectionParams();
  private readonly seen = new Set<string>();
  /** Operational keys the target declares once, in its first operational response. */
  private declaredOurs = false;

  constructor(private readonly ours: TargetKeyValues = TARGET_KEY_VALUES) {
    this.connection.targetMaxRecvDataSegmentLength = ours.maxRecvDataSegmentLength;
  }

  /** Rejects a key sent twice in one login (RFC 7143 6.2: "MUST respond with Login reject"). */
  noteSeen(key: string): void {
    if (this.seen.has(key)) throw new NegotiationFailure(0x00, `key ${key} sent twice in one login`);
    this.seen.add(key);
  }

  /**
   * Answers the operational keys of one request. Keys handled elsewhere (security keys,
   * InitiatorName, TargetName, SessionType) are skipped by the caller.
   */
  answer(pairs: TextPairs, ctx: NegotiationContext): TextPairs {
    const replies: TextPairs = [];
    for (const [key, value] of pairs) {
      const reply = this.answerOne(key, value, ctx);
      if (reply !== undefined) replies.push([key, reply]);
    }
    this.fixBursts(replies);
    if (ctx.stage === 'operational' && !this.declaredOurs) {
      // RFC 7143 13.12: MaxRecvDataSegmentLength is declared by each side for what it receives.
      this.declaredOurs = true;
      replies.push(['MaxRecvDataSegmentLength', String(this.ours.maxRecvDataSegmentLength)]);
    }
    return replies;
  }

  private answerOne(key: string, value: string, ctx: NegotiationContext): string | undefined {
    const def = KEYS[key];
    // RFC 7143 6.2: unknown keys (X- and X# extensions included) -> NotUnderstood.
    if (def === undefined) return 'NotUnderstood';
    if (def.stage !== 'any' && def.stage !== ctx.stage) {
      throw new NegotiationFailure(0x00, `key ${key} is not allowed in the ${ctx.stage} stage`);
    }
    if (def.leadingOnly && !ctx.leading) throw new NegotiationFailure(0x00, `key ${key} is leading-only`);
    if (ctx.sessionType === 'Discovery' && def.irrelevantForDiscovery) return 'Irrelevant';
    if (value === 'NotUnderstood' || value === 'Irrelevant' || value === 'Reject') return undefined;
    switch (def.kind) {
      case 'numeric': return this.numeric(key, def, value);
      case 'boolean': return this.boolean(key, def, value);
      case 'list': return this.list(key, def, value);
      case 'declarative': return this.declarative(key, def, value);
      case 'obsolete': return def.answer;
    }
  }

  private numeric(key: string, def: NumericKey, value: string): string {
    const n = parseNumber(value);
    // RFC 7143 6.2: an offer outside the admissible range or not a number -> key=Reject.
    if (n === undefined || n < def.min || n > def.max) return 'Reject';
    const ours = this.ours[OURS[key]] as number;
    const result = def.merge === 'min' ? Math.min(n, ours) : Math.max(n, ours);
    const field = SESSION_FIELD[key];
    if (field !== undefined) (this.session[field] as number) = result;
    return String(result);
  }

  private boolean(key: string, def: BooleanKey, value: string): string {
    if (value !== 'Yes' && value !== 'No') return 'Reject';
    const offered = value === 'Yes';
    const ours = this.ours[OURS[key]] as boolean;
    const result = def.merge === 'and' ? offered && ours : offered || ours;
    (this.session[SESSION_FIELD[key]] as boolean) = result;
    return result ? 'Yes' : 'No';
  }

  private list(key: string, def: ListKey, value: string): string {
    const offered = value.split(',');
    if (offered.some((v) => v.length === 0)) return 'Reject';
    // RFC 7143 6.2.1: the first value of the originator's list that the responder supports.
    const chosen = offered.find((v) => def.values.includes(v));
    if (chosen === undefined) return 'Reject';
    if (key === 'HeaderDigest') this.connection.headerDigest = chosen === 'CRC32C';
    if (key === 'DataDigest') this.connection.dataDigest = chosen === 'CRC32C';
    return chosen;
  }

  private declarative(key: string, def: DeclarativeKey, value: string): string | undefined {
    // A key only the target may declare, sent by the initiator.
    if (def.by === 'target') return 'Reject';
    if (def.numeric !== undefined) {
      const n = parseNumber(value);
      // A declaration is not negotiated: an inadmissible one leaves nothing to answer with.
      if (n === undefined || n < def.numeric.min || n > def.numeric.max) throw new NegotiationFailure(0x00, `${key}=${value} is out of range`);
      if (key === 'MaxRecvDataSegmentLength') this.connection.initiatorMaxRecvDataSegmentLength = n;
    }
    return undefined;
  }

  /** RFC 7143 13.14: FirstBurstLength MUST NOT exceed MaxBurstLength. */
  private fixBursts(replies: TextPairs): void {
    if (this.session.firstBurstLength <= this.session.maxBurstLength) return;
    this.session.firstBurstLength = this.session.maxBurstLength;
    const fb = replies.find(([k]) => k === 'FirstBurstLength');
    if (fb !== undefined) fb[1] = String(this.session.firstBurstLength);
  }
}
