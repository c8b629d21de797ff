// The initiator's login conversation (RFC 7143 6.3): security stage (no authentication, CHAP,
// mutual CHAP), then operational negotiation, then the switch to Full Feature Phase, which the
// connection makes synchronously on the final Login Response.
import { LoginResponse } from '../pdu';
import { TextPairs } from '../text';
import { Negotiation, NegotiationError, SessionParams } from './negotiation';
import { chapResponse, chapVerify, CHAP_CHALLENGE_BYTES_MIN, decodeBinaryValue, encodeBinaryValue, parseChapIdentifier } from './chap';

/** Login Requests per stage (and C-bit continuations) before the login is given up. */
export const loginRoundsMax = 16;

/** Why an initiator operation failed; `code` is stable, the message is for people. */
export class InitiatorError extends Error {
  constructor(readonly code: InitiatorErrorCode, message: string, readonly detail: Record<string, unknown> = {}) {
    super(message);
  }
}
export type InitiatorErrorCode =
  | 'NOT_CONNECTED' | 'CONNECTION_CLOSED' | 'TIMEOUT' | 'REJECTED' | 'ABORTED' | 'PROTOCOL'
  | 'LOGIN_FAILED' | 'NEGOTIATION' | 'AUTHENTICATION' | 'QUEUE_FULL' | 'WRONG_STATE';

export interface ChapCredentials {
  user: string;
  secret: string;
  /** Mutual CHAP: the secret the target must answer our challenge with, and optionally its CHAP_N. */
  mutualSecret?: string;
  mutualUser?: string;
  /** CHAP_A values offered, in preference order (default [5], MD5). */
  algorithms?: number[];
}

export interface LoginResult {
  tsih: number;
  params: SessionParams;
  targetPortalGroupTag?: number;
  targetAlias?: string;
}

/** What the login conversation needs from the connection. */
export interface LoginHost {
  allocateItt(): number;
  readonly randomBytes: (n: number) => Buffer;
  /** One Login Request and its whole response; onFinal runs in the receive path. */
  loginStep(req: { transit: boolean; csg: number; nsg: number; pairs: TextPairs; itt: number },
    onFinal: (pdu: LoginResponse, pairs: TextPairs) => void): Promise<{ pdu: LoginResponse; pairs: TextPairs }>;
  enterFullFeature(pdu: LoginResponse, params: SessionParams): void;
}

/** The login conversation: security stage (CHAP or none), then operational negotiation. */
export class LoginExchange {
  private readonly itt: number;

  constructor(private readonly ini: LoginHost, private readonly negotiation: Negotiation, private readonly chap: ChapCredentials | undefined) {
    this.itt = ini.allocateItt();
  }

  async run(first: TextPairs): Promise<LoginResult> {
    let declared = await this.security(first);
    const r = await this.operational();
    declared = { ...declared, ...r.declared };
    return {
      tsih: r.tsih, params: r.params,
      targetPortalGroupTag: declared.TargetPortalGroupTag !== undefined ? Number(declared.TargetPortalGroupTag) : undefined,
      targetAlias: declared.TargetAlias,
    };
  }

  private step(csg: number, transit: boolean, pairs: TextPairs): Promise<{ pdu: LoginResponse; pairs: TextPairs }> {
    return this.ini.loginStep({ csg, nsg: csg === 0 ? 1 : 3, transit, pairs, itt: this.itt }, (pdu, answer) => {
      // Synchronous: absorb the last answers and switch the reader before the next PDU is read.
      try {
        this.negotiation.absorb(answer.filter(([k]) => !isSecurityKey(k)));
      } catch (e) {
        this.pendingError = e as Error;
        return;
      }
      this.ini.enterFullFeature(pdu, this.negotiation.result());
    });
  }

  private pendingError: Error | null = null;

  /** Security stage (RFC 7143 6.3.1); returns the keys the target declared there. */
  private async security(first: TextPairs): Promise<Record<string, string>> {
    const declared: Record<string, string> = {};
    const chap = this.chap;
    let r = await this.step(0, chap === undefined, [...first, ['AuthMethod', chap === undefined ? 'None' : 'CHAP']]);
    collect(declared, r.pairs);
    const method = r.pairs.find(([k]) => k === 'AuthMethod')?.[1];
    if (chap !== undefined) {
      if (method !== 'CHAP') throw new InitiatorError('AUTHENTICATION', `target answered AuthMethod=${method ?? '(nothing)'} to CHAP`);
      r = await this.chapExchange(chap, declared);
    } else if (method !== undefined && method !== 'None') {
      throw new InitiatorError('AUTHENTICATION', `target wants AuthMethod=${method}; no credentials configured`);
    }
    for (let rounds = 0; !(r.pdu.transit && r.pdu.nsg === 1); rounds++) {
      if (r.pdu.transit && r.pdu.nsg === 3) throw new InitiatorError('PROTOCOL', 'target skipped operational negotiation');
      if (rounds >= loginRoundsMax) throw new InitiatorError('PROTOCOL', 'security stage does not end');
      r = await this.step(0, true, []);
      collect(declared, r.pairs);
    }
    return declared;
  }

  /** RFC 7143 12.1.3: CHAP_A, then CHAP_N/CHAP_R (and our challenge when mutual). */
  private async chapExchange(chap: ChapCredentials, declared: Record<string, string>): Promise<{ pdu: LoginResponse; pairs: TextPairs }> {
    const algorithms = chap.algorithms ?? [5];
    let r = await this.step(0, false, [['CHAP_A', algorithms.join(',')]]);
    collect(declared, r.pairs);
    const get = (k: string): string | undefined => r.pairs.find(([key]) => key === k)?.[1];
    const algorithm = Number(get('CHAP_A'));
    if (!algorithms.includes(algorithm)) throw new InitiatorError('AUTHENTICATION', `target chose CHAP_A=${get('CHAP_A')}, not offered`);
    const id = parseChapIdentifier(get('CHAP_I') ?? '');
    const challenge = decodeBinaryValue(get('CHAP_C') ?? '');
    if (challenge.length < CHAP_CHALLENGE_BYTES_MIN) throw new InitiatorError('AUTHENTICATION', `CHAP challenge of ${challenge.length} bytes is too short`);
    const answer: TextPairs = [['CHAP_N', chap.user], ['CHAP_R', encodeBinaryValue(chapResponse(algorithm, id, chap.secret, challenge))]];
    let mutual: { id: number; challenge: Buffer } | null = null;
    if (chap.mutualSecret !== undefined) {
      mutual = { id: this.ini.randomBytes(1)[0], challenge: this.ini.randomBytes(16) };
      answer.push(['CHAP_I', String(mutual.id)], ['CHAP_C', encodeBinaryValue(mutual.challenge)]);
    }
    r = await this.step(0, true, answer);
    collect(declared, r.pairs);
    if (mutual !== null) this.checkMutual(chap, algorithm, mutual, r.pairs);
    return r;
  }

  private checkMutual(chap: ChapCredentials, algorithm: number, mutual: { id: number; challenge: Buffer }, pairs: TextPairs): void {
    const name = pairs.find(([k]) => k === 'CHAP_N')?.[1];
    const response = pairs.find(([k]) => k === 'CHAP_R')?.[1];
    if (response === undefined) throw new InitiatorError('AUTHENTICATION', 'target did not answer the mutual CHAP challenge');
    if (chap.mutualUser !== undefined && name !== chap.mutualUser) throw new InitiatorError('AUTHENTICATION', `target CHAP_N=${name}, expected ${chap.mutualUser}`);
    if (!chapVerify(algorithm, mutual.id, chap.mutualSecret!, mutual.challenge, decodeBinaryValue(response))) {
      throw new InitiatorError('AUTHENTICATION', 'target failed mutual CHAP');
    }
  }

  /** Operational stage (RFC 7143 6.3.2): offer, fold answers, answer the target's offers. */
  private async operational(): Promise<{ tsih: number; params: SessionParams; declared: Record<string, string> }> {
    let pairs = this.negotiation.offer();
    for (let rounds = 0; ; rounds++) {
      if (rounds >= loginRoundsMax) throw new InitiatorError('PROTOCOL', 'operational negotiation does not end');
      const r = await this.step(1, true, pairs);
      if (this.pendingError) throw wrapNegotiation(this.pendingError);
      if (r.pdu.transit && r.pdu.nsg === 3) {
        const params = this.negotiation.result();
        if (r.pdu.tsih === 0) throw new InitiatorError('PROTOCOL', 'final Login Response has TSIH 0');
        return { tsih: r.pdu.tsih, params, declared: params.declared };
      }
      try {
        this.negotiation.absorb(r.pairs);
      } catch (e) {
        throw wrapNegotiation(e as Error);
      }
      pairs = this.negotiation.takeOwed();
    }
  }
}

function wrapNegotiation(e: Error): Error {
  return e instanceof NegotiationError ? new InitiatorError('NEGOTIATION', e.message, { key: e.key }) : e;
}

function isSecurityKey(k: string): boolean {
  return k === 'AuthMethod' || k.startsWith('CHAP_');
}

function collect(into: Record<string, string>, pairs: TextPairs): void {
  for (const [k, v] of pairs) if (k.startsWith('Target')) into[k] = v;
}
