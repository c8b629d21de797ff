// The initiator's half of login key negotiation (RFC 7143 6.2, 13). Pure: the keys are data,
// offers are built from options, the target's answers are checked against what was offered and
// folded into the session's operational parameters.
import { TextPairs } from '../text';

type Merge = 'min' | 'max' | 'or' | 'and' | 'list' | 'declare';

interface KeyRule {
  merge: Merge;
  /** Value range for numeric keys (RFC 7143 13). */
  min?: number;
  max?: number;
  /** RFC 7143 default, used when the key is not negotiated or answered Irrelevant/Reject. */
  initial: string;
  /** Negotiated in a discovery session too (RFC 7143 13.1, 13.12). */
  discovery?: boolean;
}

const DSL_MAX = 16777215;

/** RFC 7143 section 13: the operational keys this initiator offers and how answers combine. */
export const OperationalKeys: Readonly<Record<string, KeyRule>> = Object.freeze({
  HeaderDigest: { merge: 'list', initial: 'None', discovery: true },
  DataDigest: { merge: 'list', initial: 'None', discovery: true },
  MaxConnections: { merge: 'min', min: 1, max: 65535, initial: '1' },
  InitialR2T: { merge: 'or', initial: 'Yes' },
  ImmediateData: { merge: 'and', initial: 'Yes' },
  MaxRecvDataSegmentLength: { merge: 'declare', min: 512, max: DSL_MAX, initial: '8192', discovery: true },
  MaxBurstLength: { merge: 'min', min: 512, max: DSL_MAX, initial: '262144' },
  FirstBurstLength: { merge: 'min', min: 512, max: DSL_MAX, initial: '65536' },
  DefaultTime2Wait: { merge: 'max', min: 0, max: 3600, initial: '2' },
  DefaultTime2Retain: { merge: 'min', min: 0, max: 3600, initial: '20' },
  MaxOutstandingR2T: { merge: 'min', min: 1, max: 65535, initial: '1' },
  DataPDUInOrder: { merge: 'or', initial: 'Yes' },
  DataSequenceInOrder: { merge: 'or', initial: 'Yes' },
  ErrorRecoveryLevel: { merge: 'min', min: 0, max: 2, initial: '0' },
});

/** What the initiator would like; every field has a default in DEFAULT_PROPOSAL. */
export interface Proposal {
  headerDigest: Array<'CRC32C' | 'None'>;
  dataDigest: Array<'CRC32C' | 'None'>;
  /** Ours: the largest data segment the target may send us. */
  maxRecvDataSegmentLength: number;
  maxBurstLength: number;
  firstBurstLength: number;
  initialR2T: boolean;
  immediateData: boolean;
  maxOutstandingR2T: number;
  defaultTime2Wait: number;
  defaultTime2Retain: number;
}

export const DEFAULT_PROPOSAL: Readonly<Proposal> = Object.freeze<Proposal>({
  headerDigest: ['None', 'CRC32C'],
  dataDigest: ['None', 'CRC32C'],
  maxRecvDataSegmentLength: 262144,
  maxBurstLength: 262144,
  firstBurstLength: 65536,
  initialR2T: false,
  immediateData: true,
  maxOutstandingR2T: 1,
  defaultTime2Wait: 2,
  defaultTime2Retain: 0,
});

/** The session's parameters once login has ended. */
export interface SessionParams {
  headerDigest: boolean;
  dataDigest: boolean;
  /** Ours (what the target may send us). */
  maxRecvDataSegmentLength: number;
  /** The target's declared value: the longest data segment we may send. */
  targetMaxRecvDataSegmentLength: number;
  maxBurstLength: number;
  firstBurstLength: number;
  initialR2T: boolean;
  immediateData: boolean;
  maxOutstandingR2T: number;
  maxConnections: number;
  defaultTime2Wait: number;
  defaultTime2Retain: number;
  dataPduInOrder: boolean;
  dataSequenceInOrder: boolean;
  errorRecoveryLevel: number;
  /** Keys the target declared that are not operational (TargetAlias, TargetPortalGroupTag...). */
  declared: Record<string, string>;
}

export class NegotiationError extends Error {
  constructor(readonly key: string, message: string) {
    super(message);
  }
}

const yesNo = (b: boolean): string => (b ? 'Yes' : 'No');

/** Tracks one login's operational negotiation: what was offered, what came back. */
export class Negotiation {
  /** Keys we offered and have not had an answer to. */
  private readonly offered = new Map<string, string>();
  private readonly agreed = new Map<string, string>();
  /** Answers to keys the target offered first, to send in the next Login Request. */
  private owed: TextPairs = [];
  /** Keys the target declared that are not operational keys (TargetAlias, TargetPortalGroupTag...). */
  readonly declared: Record<string, string> = {};

  constructor(private readonly proposal: Proposal, private readonly discovery: boolean) {}

  /** The keys of the first operational Login Request. */
  offer(): TextPairs {
    const p = this.proposal;
    const all: TextPairs = [
      ['HeaderDigest', p.headerDigest.join(',')],
      ['DataDigest', p.dataDigest.join(',')],
      ['MaxRecvDataSegmentLength', String(p.maxRecvDataSegmentLength)],
    ];
    if (!this.discovery) {
      all.push(
        ['MaxConnections', '1'],
        ['InitialR2T', yesNo(p.initialR2T)],
        ['ImmediateData', yesNo(p.immediateData)],
        ['MaxBurstLength', String(p.maxBurstLength)],
        // RFC 7143 13.14: FirstBurstLength must not exceed MaxBurstLength.
        ['FirstBurstLength', String(Math.min(p.firstBurstLength, p.maxBurstLength))],
        ['DefaultTime2Wait', String(p.defaultTime2Wait)],
        ['DefaultTime2Retain', String(p.defaultTime2Retain)],
        ['MaxOutstandingR2T', String(p.maxOutstandingR2T)],
        ['DataPDUInOrder', 'Yes'],
        ['DataSequenceInOrder', 'Yes'],
        ['ErrorRecoveryLevel', '0'],
      );
    }
    for (const [k, v] of all) {
      // Declarative keys need no answer (RFC 7143 6.2).
      if (OperationalKeys[k].merge !== 'declare') this.offered.set(k, v);
    }
    return all;
  }

  /** Folds one Login Response's keys in. Throws NegotiationError on an answer we never offered. */
  absorb(pairs: TextPairs): void {
    for (const [key, value] of pairs) {
      const rule = OperationalKeys[key];
      if (rule === undefined) {
        this.absorbOther(key, value);
      } else if (rule.merge === 'declare') {
        this.agreed.set(key, String(checkNumber(key, value, rule)));
      } else if (this.offered.has(key)) {
        this.agreed.set(key, checkAnswer(key, this.offered.get(key)!, value, rule));
        this.offered.delete(key);
      } else {
        const answer = answerOffer(key, value, rule, this.ownValue(key));
        this.owed.push([key, answer]);
        this.agreed.set(key, answer === 'Reject' ? rule.initial : answer);
      }
    }
  }

  private absorbOther(key: string, value: string): void {
    if (key.startsWith('Target') || key === 'AuthMethod' || key.startsWith('CHAP_')) {
      this.declared[key] = value;
      return;
    }
    // RFC 7143 6.2: an unknown key offered by the other side is answered NotUnderstood.
    if (value !== 'NotUnderstood' && value !== 'Irrelevant' && value !== 'Reject') this.owed.push([key, 'NotUnderstood']);
  }

  /** Answers owed to the target's own offers; cleared by reading. */
  takeOwed(): TextPairs {
    const o = this.owed;
    this.owed = [];
    return o;
  }

  /** True while some of our offers are unanswered. */
  get pending(): boolean {
    return this.offered.size > 0;
  }

  private ownValue(key: string): string {
    const p = this.proposal;
    const own: Record<string, string> = {
      HeaderDigest: p.headerDigest.join(','), DataDigest: p.dataDigest.join(','),
      MaxConnections: '1', InitialR2T: yesNo(p.initialR2T), ImmediateData: yesNo(p.immediateData),
      MaxBurstLength: String(p.maxBurstLength), FirstBurstLength: String(p.firstBurstLength),
      DefaultTime2Wait: String(p.defaultTime2Wait), DefaultTime2Retain: String(p.defaultTime2Retain),
      MaxOutstandingR2T: String(p.maxOutstandingR2T), DataPDUInOrder: 'Yes', DataSequenceInOrder: 'Yes',
      ErrorRecoveryLevel: '0',
    };
    return own[key] ?? OperationalKeys[key].initial;
  }

  /** The parameters in force after login (RFC defaults where a key was not negotiated). */
  result(): SessionParams {
    const get = (k: string): string => this.agreed.get(k) ?? OperationalKeys[k].initial;
    const num = (k: string): number => Number(get(k));
    const initialR2T = get('InitialR2T') === 'Yes';
    const immediateData = get('ImmediateData') === 'Yes';
    const maxBurstLength = num('MaxBurstLength');
    return {
      headerDigest: get('HeaderDigest') === 'CRC32C',
      dataDigest: get('DataDigest') === 'CRC32C',
      maxRecvDataSegmentLength: this.proposal.maxRecvDataSegmentLength,
      targetMaxRecvDataSegmentLength: num('MaxRecvDataSegmentLength'),
      maxBurstLength,
      // RFC 7143 13.14: FirstBurstLength must not exceed MaxBurstLength.
      firstBurstLength: Math.min(num('FirstBurstLength'), maxBurstLength),
      initialR2T,
      immediateData,
      maxOutstandingR2T: num('MaxOutstandingR2T'),
      maxConnections: num('MaxConnections'),
      defaultTime2Wait: num('DefaultTime2Wait'),
      defaultTime2Retain: num('DefaultTime2Retain'),
      dataPduInOrder: get('DataPDUInOrder') === 'Yes',
      dataSequenceInOrder: get('DataSequenceInOrder') === 'Yes',
      errorRecoveryLevel: num('ErrorRecoveryLevel'),
      declared: { ...this.declared },
    };
  }
}

function checkNumber(key: string, value: string, rule: KeyRule): number {
  if (!/^(0|[1-9][0-9]{0,9})$/.test(value)) throw new NegotiationError(key, `${key}=${value} is not a decimal number`);
  const n = Number(value);
  if ((rule.min !== undefined && n < rule.min) || (rule.max !== undefined && n > rule.max)) {
    throw new NegotiationError(key, `${key}=${value} is outside ${rule.min}..${rule.max}`);
  }
  return n;
}

/** RFC 7143 6.2.2, 6.2.1: the answer to our offer must be one the offer allowed. */
function checkAnswer(key: string, offer: string, answer: string, rule: KeyRule): string {
  if (answer === 'Irrelevant' || answer === 'Reject' || answer === 'NotUnderstood') return rule.initial;
  switch (rule.merge) {
    case 'list':
      if (!offer.split(',').includes(answer)) throw new NegotiationError(key, `${key}=${answer} was not offered (${offer})`);
      return answer;
    case 'min':
    case 'max': {
      const n = checkNumber(key, answer, rule);
      const mine = Number(offer);
      if (rule.merge === 'min' ? n > mine : n < mine) throw new NegotiationError(key, `${key}=${answer} breaks the ${rule.merge} rule against ${offer}`);
      return String(n);
    }
    case 'or':
    case 'and':
      if (answer !== 'Yes' && answer !== 'No') throw new NegotiationError(key, `${key}=${answer} is not Yes or No`);
      // OR: our Yes cannot become No; AND: our No cannot become Yes.
      if (rule.merge === 'or' && offer === 'Yes' && answer === 'No') throw new NegotiationError(key, `${key}: Yes answered No`);
      if (rule.merge === 'and' && offer === 'No' && answer === 'Yes') throw new NegotiationError(key, `${key}: No answered Yes`);
      return answer;
    case 'declare':
      return answer;
  }
}

/** Our answer to a key the target offered first. */
function answerOffer(key: string, offer: string, rule: KeyRule, own: string): string {
  switch (rule.merge) {
    case 'list': {
      const ours = own.split(',');
      return offer.split(',').find((v) => ours.includes(v)) ?? 'Reject';
    }
    case 'min':
    case 'max': {
      const n = checkNumber(key, offer, rule);
      return String(rule.merge === 'min' ? Math.min(n, Number(own)) : Math.max(n, Number(own)));
    }
    case 'or':
      return offer === 'Yes' || own === 'Yes' ? 'Yes' : 'No';
    case 'and':
      return offer === 'Yes' && own === 'Yes' ? 'Yes' : 'No';
    case 'declare':
      return own;
  }
}
