// CHAP with MD5 (RFC 1994) as iSCSI carries it (RFC 7143 12.1.3): one-way, where the target
// challenges the initiator, and mutual, where the initiator challenges back.
import { createHash, randomBytes, timingSafeEqual } from 'crypto';
import type { ChapSecret } from './types';
import type { TextPairs } from './text';

/** CHAP_A=5: MD5 (RFC 1994, IANA PPP authentication algorithm 5). */
export const CHAP_ALGORITHM_MD5 = 5;
/** RFC 7143 12.1.3: challenges of at least 16 bytes; we send 16. */
export const CHAP_CHALLENGE_BYTES = 16;
/** Longest binary value accepted for CHAP_C / CHAP_R (RFC 7143 6.1 large binary values). */
export const CHAP_BINARY_BYTES_MAX = 1024;

/** Decodes a binary value: 0x / 0X hex or 0b / 0B base64 (RFC 7143 6.1). */
export function decodeBinary(v: string): Buffer | undefined {
  const prefix = v.slice(0, 2).toLowerCase();
  const body = v.slice(2);
  if (prefix === '0x') {
    if (!/^[0-9a-fA-F]+$/.test(body)) return undefined;
    return Buffer.from(body.length % 2 === 1 ? `0${body}` : body, 'hex');
  }
  if (prefix === '0b') {
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(body) || body.length % 4 !== 0) return undefined;
    return Buffer.from(body, 'base64');
  }
  return undefined;
}

export function encodeHex(b: Buffer): string {
  return `0x${b.toString('hex')}`;
}

/** RFC 1994 4.1: Response = MD5(Identifier || secret || Challenge). */
export function chapResponse(id: number, secret: string, challenge: Buffer): Buffer {
  return createHash('md5').update(Buffer.from([id])).update(Buffer.from(secret, 'utf8')).update(challenge).digest();
}

export type ChapStep =
  | { kind: 'continue'; replies: TextPairs }
  | { kind: 'done'; replies: TextPairs; user: string }
  | { kind: 'fail'; reason: string };

/**
 * The target's side of one CHAP exchange:
 *   I: CHAP_A=<list>          T: CHAP_A=5 CHAP_I=<id> CHAP_C=<challenge>
 *   I: CHAP_N CHAP_R [CHAP_I CHAP_C]   T: [CHAP_N CHAP_R]   (mutual when the initiator challenges)
 */
export class ChapTarget {
  private state: 'algorithm' | 'response' | 'done' = 'algorithm';
  private id = 0;
  private challenge: Buffer = Buffer.alloc(0);

  constructor(private readonly secret: ChapSecret, private readonly random: (n: number) => Buffer = randomBytes) {}

  get done(): boolean {
    return this.state === 'done';
  }

  step(keys: Map<string, string>): ChapStep {
    switch (this.state) {
      case 'algorithm': return this.algorithm(keys);
      case 'response': return this.response(keys);
      case 'done': return keys.size === 0 ? { kind: 'continue', replies: [] } : { kind: 'fail', reason: 'CHAP keys after authentication' };
    }
  }

  private algorithm(keys: Map<string, string>): ChapStep {
    const a = keys.get('CHAP_A');
    if (a === undefined) {
      if (keys.size === 0) return { kind: 'continue', replies: [] };
      return { kind: 'fail', reason: `expected CHAP_A, got ${[...keys.keys()].join(',')}` };
    }
    if (keys.size !== 1) return { kind: 'fail', reason: 'CHAP_A must come alone' };
    const offered = a.split(',').map((s) => Number(s));
    if (!offered.includes(CHAP_ALGORITHM_MD5)) return { kind: 'fail', reason: `CHAP_A=${a}: only MD5 (5) is supported` };
    this.id = this.random(1)[0];
    this.challenge = this.random(CHAP_CHALLENGE_BYTES);
    this.state = 'response';
    return {
      kind: 'continue',
      replies: [['CHAP_A', String(CHAP_ALGORITHM_MD5)], ['CHAP_I', String(this.id)], ['CHAP_C', encodeHex(this.challenge)]],
    };
  }

  private response(keys: Map<string, string>): ChapStep {
    const name = keys.get('CHAP_N');
    const r = keys.get('CHAP_R');
    if (name === undefined || r === undefined) return { kind: 'fail', reason: 'CHAP_N and CHAP_R are required' };
    const got = decodeBinary(r);
    if (got === undefined || got.length > CHAP_BINARY_BYTES_MAX) return { kind: 'fail', reason: 'CHAP_R is not a binary value' };
    const want = chapResponse(this.id, this.secret.secret, this.challenge);
    if (name !== this.secret.user || got.length !== want.length || !timingSafeEqual(got, want)) {
      return { kind: 'fail', reason: `CHAP response of '${name}' does not match` };
    }
    const iId = keys.get('CHAP_I');
    const iChallenge = keys.get('CHAP_C');
    if (iId === undefined && iChallenge === undefined) {
      this.state = 'done';
      return { kind: 'done', replies: [], user: name };
    }
    return this.mutual(iId, iChallenge, name);
  }

  private mutual(iId: string | undefined, iChallenge: string | undefined, user: string): ChapStep {
    if (iId === undefined || iChallenge === undefined) return { kind: 'fail', reason: 'mutual CHAP needs both CHAP_I and CHAP_C' };
    if (this.secret.mutualUser === undefined || this.secret.mutualSecret === undefined) {
      return { kind: 'fail', reason: 'mutual CHAP requested but no target secret is configured' };
    }
    const id = /^(0[xX][0-9a-fA-F]{1,2}|[0-9]{1,3})$/.test(iId) ? Number(iId) : NaN;
    if (!(id >= 0 && id <= 255)) return { kind: 'fail', reason: `CHAP_I=${iId} is not 0..255` };
    const c = decodeBinary(iChallenge);
    if (c === undefined || c.length === 0 || c.length > CHAP_BINARY_BYTES_MAX) return { kind: 'fail', reason: 'CHAP_C is not a binary value' };
    // RFC 7143 12.1.3: a target MUST NOT answer its own challenge reflected back.
    if (c.equals(this.challenge)) return { kind: 'fail', reason: 'initiator reflected the target challenge' };
    this.state = 'done';
    const answer = chapResponse(id, this.secret.mutualSecret, c);
    return { kind: 'done', replies: [['CHAP_N', this.secret.mutualUser], ['CHAP_R', encodeHex(answer)]], user };
  }
}
