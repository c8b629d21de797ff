// Test-only: writes a 48-byte BHS field by field at offsets copied by hand from RFC 7143
// section 11, so the codec tests never take their expected bytes from the code under test.
export class BhsBuilder {
  readonly bytes = Buffer.alloc(48);

  /** Byte 0: bit 6 is I, bits 5..0 the opcode (RFC 7143 11.2.1.1-2). */
  constructor(opcode: number, immediate = false) {
    this.bytes[0] = (immediate ? 0x40 : 0) | opcode;
  }

  u8(offset: number, v: number): this {
    this.bytes[offset] = v;
    return this;
  }

  u16(offset: number, v: number): this {
    this.bytes[offset] = (v >> 8) & 0xff;
    this.bytes[offset + 1] = v & 0xff;
    return this;
  }

  u32(offset: number, v: number): this {
    for (let i = 0; i < 4; i++) this.bytes[offset + i] = Math.floor(v / 2 ** (8 * (3 - i))) & 0xff;
    return this;
  }

  raw(offset: number, b: Buffer | number[]): this {
    Buffer.from(b).copy(this.bytes, offset);
    return this;
  }

  /** Byte 4 TotalAHSLength (words), bytes 5..7 DataSegmentLength (RFC 7143 11.2.1.4-5). */
  lengths(ahsWords: number, dataSegmentLength: number): this {
    this.bytes[4] = ahsWords;
    this.bytes[5] = (dataSegmentLength >> 16) & 0xff;
    this.bytes[6] = (dataSegmentLength >> 8) & 0xff;
    this.bytes[7] = dataSegmentLength & 0xff;
    return this;
  }

  /** Bytes 8..15: LUN or opcode-specific. */
  lun(b: number[]): this {
    return this.raw(8, b);
  }

  /** Bytes 16..19: Initiator Task Tag. */
  itt(v: number): this {
    return this.u32(16, v);
  }

  build(): Buffer {
    return Buffer.from(this.bytes);
  }
}

/** CRC32C (Castagnoli), bit by bit: a second implementation for checking digests. */
export function crc32cSlow(parts: Buffer[]): number {
  let crc = 0xffffffff;
  for (const p of parts) {
    for (const byte of p) {
      crc ^= byte;
      for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
    }
  }
  return (crc ^ 0xffffffff) >>> 0;
}
