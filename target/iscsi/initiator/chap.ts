// CHAP for the initiator (RFC 1994, RFC 7143 12.1.3): response computation, the CHAP_C/CHAP_R
// value encodings and the mutual check. Pure (hashing only).
import { createHash, timingSafeEqual } from 'node:crypto';

/** CHAP_A values (RFC 7143 12.1.3 and the IANA PPP registry) and the hash each one names. */
export const ChapAlgorithms: Readonly<Record<number, string>> = Object.freeze({ 5: 'md5', 6: 'sha1', 7: 'sha256', 8: 'sha3-256' });

/** RFC 7143 12.1.3: a challenge shorter than this is weak; the initiator refuses it. */
export const CHAP_CHALLENGE_BYTES_MIN = 16;
export const CHAP_CHALLENGE_BYTES_MAX = 1024;

export class ChapError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

/** Response = H(identifier || secret || challenge) (RFC 1994 4.1). */
export function chapResponse(algorithm: number, identifier: number, secret: string | Buffer, challenge: Buffer): Buffer {
  const hash = ChapAlgorithms[algorithm];
  if (hash === undefined) throw new ChapError('CHAP_ALGORITHM', `CHAP_A=${algorithm} is not supported`);
  return createHash(hash).update(Buffer.from([identifier & 0xff])).update(secret).update(challenge).digest();
}

/** RFC 7143 6.1: binary values are 0x-prefixed hex or 0b-prefixed base64. */
export function decodeBinaryValue(value: string): Buffer {
  if (/^0[xX][0-9a-fA-F]+$/.test(value)) {
    const hex = value.slice(2);
    return Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex');
  }
  if (/^0[bB][A-Za-z0-9+/]+=*$/.test(value)) return Buffer.from(value.slice(2), 'base64');
  throw new ChapError('CHAP_ENCODING', `'${value.slice(0, 20)}' is not a hex (0x) or base64 (0b) value`);
}

export function encodeBinaryValue(b: Buffer): string {
  return `0x${b.toString('hex')}`;
}

/** Checks the target's answer to our mutual challenge in constant time. */
export function chapVerify(algorithm: number, identifier: number, secret: string, challenge: Buffer, response: Buffer): boolean {
  const expected = chapResponse(algorithm, identifier, secret, challenge);
  return expected.length === response.length && timingSafeEqual(expected, response);
}

/** Parses CHAP_I (0..255, decimal or hex) strictly. */
export function parseChapIdentifier(value: string): number {
  const n = /^0[xX][0-9a-fA-F]{1,2}$/.test(value) ? parseInt(value.slice(2), 16) : /^[0-9]{1,3}$/.test(value) ? Number(value) : NaN;
  if (!(n >= 0 && n <= 255)) throw new ChapError('CHAP_IDENTIFIER', `CHAP_I=${value} is not 0..255`);
  return n;
}
