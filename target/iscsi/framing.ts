// PDU framing over a byte stream (RFC 7143 11.1): BHS, AHS, header digest, data segment padded
// to 4 bytes, data digest. Shared by the target's connections and the initiator.
import { crc32c } from '@node-rs/crc32';
import { BHS_LENGTH, decodeLengths, decodePdu, encodeBhs, pad4, Pdu, PduError, RejectReason } from './pdu';

export const DIGEST_LENGTH = 4;
/** RFC 7143 13.12: MaxRecvDataSegmentLength before it is negotiated (and during login). */
export const LOGIN_DATA_SEGMENT_LENGTH = 8192;

export interface DigestSettings {
  header: boolean;
  data: boolean;
}

/** CRC32C as iSCSI puts it on the wire: least significant byte first (RFC 7143 13.1, RFC 3385). */
export function digestOf(parts: Buffer[]): Buffer {
  let crc = 0;
  for (const p of parts) crc = crc32c(p, crc);
  const d = Buffer.allocUnsafe(DIGEST_LENGTH);
  d.writeUInt32LE(crc >>> 0, 0);
  return d;
}

const PAD = Buffer.alloc(4);

/** The pieces to send for one PDU, in order; write them under one cork (no copy of the data). */
export function framePdu(pdu: Pdu, digests: DigestSettings): Buffer[] {
  const bhs = encodeBhs(pdu);
  const out: Buffer[] = [bhs];
  if (pdu.ahs.length > 0) out.push(pdu.ahs);
  if (digests.header) out.push(digestOf(pdu.ahs.length > 0 ? [bhs, pdu.ahs] : [bhs]));
  if (pdu.data.length > 0) {
    out.push(pdu.data);
    const padding = pad4(pdu.data.length) - pdu.data.length;
    const pad = PAD.subarray(0, padding);
    if (padding > 0) out.push(pad);
    if (digests.data) out.push(digestOf(padding > 0 ? [pdu.data, pad] : [pdu.data]));
  }
  return out;
}

/** What the reader hands up: a PDU, or a fault with as much of the header as was read. */
export type ReadResult =
  | { kind: 'pdu'; pdu: Pdu }
  /** The header is intact but the data digest failed, or the PDU decodes to an error: Reject it and go on. */
  | { kind: 'reject'; bhs: Buffer; error: PduError }
  /** Framing can no longer be trusted (header digest, oversized segment): the connection must close. */
  | { kind: 'fatal'; bhs: Buffer; error: PduError };

/**
 * Cuts a byte stream into PDUs. Settings may change between PDUs (digests after login,
 * MaxRecvDataSegmentLength after negotiation). Never buffers more than one PDU's worth of bytes.
 */
export class PduReader {
  digests: DigestSettings = { header: false, data: false };
  /** Our declared MaxRecvDataSegmentLength: a longer data segment is a protocol error. */
  maxDataSegmentLength = LOGIN_DATA_SEGMENT_LENGTH;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private failed = false;

  constructor(private readonly deliver: (r: ReadResult) => void) {}

  push(chunk: Buffer): void {
    if (this.failed) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    while (!this.failed && this.buffered >= BHS_LENGTH) {
      const bhs = this.peek(BHS_LENGTH);
      const { totalAhsLength, dataSegmentLength } = decodeLengths(bhs);
      if (dataSegmentLength > this.maxDataSegmentLength) {
        this.fail(bhs, new PduError('DATA_SEGMENT_LENGTH', RejectReason.ProtocolError,
          `DataSegmentLength ${dataSegmentLength} exceeds MaxRecvDataSegmentLength ${this.maxDataSegmentLength}`));
        return;
      }
      const ahsLength = totalAhsLength * 4;
      const hd = this.digests.header ? DIGEST_LENGTH : 0;
      const dd = this.digests.data && dataSegmentLength > 0 ? DIGEST_LENGTH : 0;
      const total = BHS_LENGTH + ahsLength + hd + pad4(dataSegmentLength) + dd;
      if (this.buffered < total) return;
      this.frame(this.take(total), ahsLength, dataSegmentLength);
    }
  }

  private frame(pdu: Buffer, ahsLength: number, dataLength: number): void {
    const bhs = pdu.subarray(0, BHS_LENGTH);
    const ahs = pdu.subarray(BHS_LENGTH, BHS_LENGTH + ahsLength);
    let at = BHS_LENGTH + ahsLength;
    if (this.digests.header) {
      if (!digestOf([pdu.subarray(0, at)]).equals(pdu.subarray(at, at + DIGEST_LENGTH))) {
        // RFC 7143 7.8: a header digest error at ErrorRecoveryLevel 0 means the connection is lost.
        this.fail(bhs, new PduError('HEADER_DIGEST', RejectReason.DataDigestError, 'header digest error'));
        return;
      }
      at += DIGEST_LENGTH;
    }
    const padded = pad4(dataLength);
    const data = pdu.subarray(at, at + dataLength);
    if (this.digests.data && dataLength > 0) {
      const expected = pdu.subarray(at + padded, at + padded + DIGEST_LENGTH);
      if (!digestOf([pdu.subarray(at, at + padded)]).equals(expected)) {
        this.deliver({ kind: 'reject', bhs, error: new PduError('DATA_DIGEST', RejectReason.DataDigestError, 'data digest error') });
        return;
      }
    }
    try {
      this.deliver({ kind: 'pdu', pdu: decodePdu(bhs, ahs, data) });
    } catch (e) {
      if (!(e instanceof PduError)) throw e;
      this.deliver({ kind: 'reject', bhs, error: e });
    }
  }

  private fail(bhs: Buffer, error: PduError): void {
    this.failed = true;
    this.chunks = [];
    this.buffered = 0;
    this.deliver({ kind: 'fatal', bhs: Buffer.from(bhs), error });
  }

  private peek(n: number): Buffer {
    this.gather(n);
    return this.chunks[0].subarray(0, n);
  }

  /** Makes the first chunk at least n bytes long, merging only the chunks that takes. */
  private gather(n: number): void {
    if (this.chunks[0].length >= n) return;
    let len = 0;
    let k = 0;
    while (len < n) len += this.chunks[k++].length;
    this.chunks.splice(0, k, Buffer.concat(this.chunks.slice(0, k), len));
  }

  /** Removes n bytes from the front; a PDU within one chunk costs no copy. */
  private take(n: number): Buffer {
    this.gather(n);
    const first = this.chunks[0];
    const out = first.subarray(0, n);
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.buffered -= n;
    return out;
  }
}
