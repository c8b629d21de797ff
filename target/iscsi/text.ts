// Text key=value data (RFC 7143 6.1): "key=value\0" repeated. Pure codec.
import { PduError, RejectReason } from './pdu';

/** RFC 7143 6.1: a key name is at most 63 bytes. */
export const KEY_LENGTH_MAX = 63;
/** Longest value accepted: CHAP_C / CHAP_R in hex of up to 1024 bytes, with slack (RFC 7143 6.1 large binary values). */
export const VALUE_LENGTH_MAX = 8192;
/** A login or text exchange stops growing beyond this many bytes of keys (spread over PDUs with the C bit). */
export const TEXT_EXCHANGE_BYTES_MAX = 65536;

export type TextPairs = Array<[key: string, value: string]>;

/**
 * Decodes key=value pairs. Padding zeros after the last NUL are ignored; a pair without '=',
 * a key longer than KEY_LENGTH_MAX or a value longer than VALUE_LENGTH_MAX is a protocol error.
 */
export function decodeText(data: Buffer): TextPairs {
  const pairs: TextPairs = [];
  let start = 0;
  while (start < data.length) {
    let end = data.indexOf(0, start);
    if (end < 0) end = data.length; // tolerate a missing final NUL
    if (end > start) pairs.push(splitPair(data.toString('utf8', start, end)));
    start = end + 1;
  }
  return pairs;
}

function splitPair(text: string): [string, string] {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new PduError('TEXT_SYNTAX', RejectReason.ProtocolError, `text item '${text.slice(0, 40)}' is not key=value`);
  const key = text.slice(0, eq);
  const value = text.slice(eq + 1);
  if (Buffer.byteLength(key) > KEY_LENGTH_MAX) throw new PduError('TEXT_KEY_LENGTH', RejectReason.ProtocolError, `key '${key.slice(0, 40)}...' is longer than ${KEY_LENGTH_MAX} bytes`);
  if (Buffer.byteLength(value) > VALUE_LENGTH_MAX) throw new PduError('TEXT_VALUE_LENGTH', RejectReason.ProtocolError, `value of ${key} is longer than ${VALUE_LENGTH_MAX} bytes`);
  return [key, value];
}

export function encodeText(pairs: TextPairs): Buffer {
  return Buffer.from(pairs.map(([k, v]) => `${k}=${v}\0`).join(''), 'utf8');
}
