// Sense data (SPC-4 4.5): one frozen table of named conditions, the CheckCondition exception
// handlers throw, and the fixed (70h) and descriptor (72h) encoders. Pure: bytes out only.

export const Status = Object.freeze({
  GOOD: 0x00,
  CHECK_CONDITION: 0x02,
  CONDITION_MET: 0x04,
  BUSY: 0x08,
  RESERVATION_CONFLICT: 0x18,
  TASK_SET_FULL: 0x28,
});

export const SenseKey = Object.freeze({
  NO_SENSE: 0x0,
  RECOVERED_ERROR: 0x1,
  NOT_READY: 0x2,
  MEDIUM_ERROR: 0x3,
  HARDWARE_ERROR: 0x4,
  ILLEGAL_REQUEST: 0x5,
  UNIT_ATTENTION: 0x6,
  DATA_PROTECT: 0x7,
  COPY_ABORTED: 0xa,
  ABORTED_COMMAND: 0xb,
  MISCOMPARE: 0xe,
});

export interface SenseCode {
  readonly key: number;
  readonly asc: number;
  readonly ascq: number;
  readonly name: string;
}

function sense(key: number, asc: number, ascq: number): Omit<SenseCode, 'name'> {
  return { key, asc, ascq };
}

const K = SenseKey;
const table = {
  NO_SENSE: sense(K.NO_SENSE, 0x00, 0x00),
  LU_NOT_READY_MANUAL_INTERVENTION: sense(K.NOT_READY, 0x04, 0x03),
  SANITIZE_IN_PROGRESS: sense(K.NOT_READY, 0x04, 0x1b),
  SANITIZE_COMMAND_FAILED: sense(K.MEDIUM_ERROR, 0x31, 0x03),
  MEDIUM_NOT_PRESENT: sense(K.NOT_READY, 0x3a, 0x00),
  UNRECOVERED_READ_ERROR: sense(K.MEDIUM_ERROR, 0x11, 0x00),
  WRITE_ERROR: sense(K.MEDIUM_ERROR, 0x0c, 0x00),
  INTERNAL_TARGET_FAILURE: sense(K.HARDWARE_ERROR, 0x44, 0x00),
  PARAMETER_LIST_LENGTH_ERROR: sense(K.ILLEGAL_REQUEST, 0x1a, 0x00),
  INVALID_FIELD_IN_COMMAND_INFORMATION_UNIT: sense(K.ILLEGAL_REQUEST, 0x0e, 0x03),
  INVALID_COMMAND_OPERATION_CODE: sense(K.ILLEGAL_REQUEST, 0x20, 0x00),
  LBA_OUT_OF_RANGE: sense(K.ILLEGAL_REQUEST, 0x21, 0x00),
  /** A pair command in the wrong pair state (docs/pairs.md: COMMAND-SPECIFIC INFORMATION = the state). */
  COMMAND_SEQUENCE_ERROR: sense(K.ILLEGAL_REQUEST, 0x2c, 0x00),
  INVALID_FIELD_IN_CDB: sense(K.ILLEGAL_REQUEST, 0x24, 0x00),
  LU_NOT_SUPPORTED: sense(K.ILLEGAL_REQUEST, 0x25, 0x00),
  INVALID_FIELD_IN_PARAMETER_LIST: sense(K.ILLEGAL_REQUEST, 0x26, 0x00),
  INVALID_RELEASE_OF_PERSISTENT_RESERVATION: sense(K.ILLEGAL_REQUEST, 0x26, 0x04),
  TOO_MANY_TARGET_DESCRIPTORS: sense(K.ILLEGAL_REQUEST, 0x26, 0x06),
  UNSUPPORTED_TARGET_DESCRIPTOR_TYPE_CODE: sense(K.ILLEGAL_REQUEST, 0x26, 0x07),
  TOO_MANY_SEGMENT_DESCRIPTORS: sense(K.ILLEGAL_REQUEST, 0x26, 0x08),
  UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE_CODE: sense(K.ILLEGAL_REQUEST, 0x26, 0x09),
  OPERATION_IN_PROGRESS: sense(K.ILLEGAL_REQUEST, 0x00, 0x16),
  SAVING_PARAMETERS_NOT_SUPPORTED: sense(K.ILLEGAL_REQUEST, 0x39, 0x00),
  INSUFFICIENT_REGISTRATION_RESOURCES: sense(K.ILLEGAL_REQUEST, 0x55, 0x04),
  MEDIUM_REMOVAL_PREVENTED: sense(K.ILLEGAL_REQUEST, 0x53, 0x02),
  POWER_ON_RESET: sense(K.UNIT_ATTENTION, 0x29, 0x00),
  POWER_ON_OCCURRED: sense(K.UNIT_ATTENTION, 0x29, 0x01),
  BUS_DEVICE_RESET: sense(K.UNIT_ATTENTION, 0x29, 0x03),
  I_T_NEXUS_LOSS: sense(K.UNIT_ATTENTION, 0x29, 0x07),
  MODE_PARAMETERS_CHANGED: sense(K.UNIT_ATTENTION, 0x2a, 0x01),
  RESERVATIONS_PREEMPTED: sense(K.UNIT_ATTENTION, 0x2a, 0x03),
  RESERVATIONS_RELEASED: sense(K.UNIT_ATTENTION, 0x2a, 0x04),
  REGISTRATIONS_PREEMPTED: sense(K.UNIT_ATTENTION, 0x2a, 0x05),
  CAPACITY_DATA_HAS_CHANGED: sense(K.UNIT_ATTENTION, 0x2a, 0x09),
  MEDIUM_MAY_HAVE_CHANGED: sense(K.UNIT_ATTENTION, 0x28, 0x00),
  REPORTED_LUNS_DATA_HAS_CHANGED: sense(K.UNIT_ATTENTION, 0x3f, 0x0e),
  WRITE_PROTECTED: sense(K.DATA_PROTECT, 0x27, 0x00),
  MISCOMPARE_DURING_VERIFY: sense(K.MISCOMPARE, 0x1d, 0x00),
  /** SPC-4 6.4.5: a segment could not be processed; COMMAND-SPECIFIC INFORMATION = segment number. */
  COPY_ABORTED: sense(K.COPY_ABORTED, 0x00, 0x00),
  COPY_TARGET_DEVICE_NOT_REACHABLE: sense(K.COPY_ABORTED, 0x0d, 0x02),
} as const;

export type SenseName = keyof typeof table;

/** The named sense conditions this target reports (SPC-4 Annex D). */
export const Sense: { readonly [N in SenseName]: SenseCode } = Object.freeze(
  Object.fromEntries(
    Object.entries(table).map(([name, s]) => [name, Object.freeze({ ...s, name })]),
  ),
) as { readonly [N in SenseName]: SenseCode };

/** SPC-4 4.5.2.4.2: where the offending field is (sense-key specific, field pointer). */
export interface FieldPointer {
  /** true: the field is in the CDB (C/D=1); false: in the parameter list. */
  cdb: boolean;
  byte: number;
  /** Bit pointer (0-7) when a single bit or the high bit of a field is meant. */
  bit?: number;
}

export interface SenseDetail {
  /** INFORMATION field (an LBA or an offset). */
  information?: number | bigint;
  fieldPointer?: FieldPointer;
  /** COMMAND-SPECIFIC INFORMATION (EXTENDED COPY: the number of the segment that failed). */
  commandSpecific?: number;
}

/** A handler's way to end a command with CHECK CONDITION; the dispatcher encodes it. */
export class CheckCondition extends Error {
  constructor(readonly sense: SenseCode, readonly detail: SenseDetail = {}) {
    super(`CHECK CONDITION ${sense.name}`);
  }
}

/** Ends a command with RESERVATION CONFLICT status (no sense data, SPC-4 5.13). */
export class ReservationConflict extends Error {
  constructor(why: string) {
    super(`RESERVATION CONFLICT: ${why}`);
  }
}

/** Shorthand: INVALID FIELD IN CDB at byte/bit. */
export function invalidCdbField(byte: number, bit?: number): CheckCondition {
  return new CheckCondition(Sense.INVALID_FIELD_IN_CDB, { fieldPointer: { cdb: true, byte, bit } });
}

/** Shorthand: INVALID FIELD IN PARAMETER LIST at byte/bit. */
export function invalidParamField(byte: number, bit?: number): CheckCondition {
  return new CheckCondition(Sense.INVALID_FIELD_IN_PARAMETER_LIST, {
    fieldPointer: { cdb: false, byte, bit },
  });
}

function sksBytes(fp: FieldPointer): Buffer {
  const b = Buffer.alloc(3);
  b[0] = 0x80 | (fp.cdb ? 0x40 : 0) | (fp.bit !== undefined ? 0x08 | (fp.bit & 7) : 0);
  b.writeUInt16BE(fp.byte & 0xffff, 1);
  return b;
}

/** SPC-4 4.5.3: fixed format sense data, 18 bytes. */
export function encodeFixedSense(s: SenseCode, d: SenseDetail = {}): Buffer {
  const b = Buffer.alloc(18);
  b[0] = 0x70;
  b[2] = s.key & 0x0f;
  if (d.information !== undefined && BigInt(d.information) <= 0xffffffffn) {
    b[0] |= 0x80; // VALID: INFORMATION holds the value
    b.writeUInt32BE(Number(d.information), 3);
  }
  b[7] = 10;
  if (d.commandSpecific !== undefined) b.writeUInt32BE(d.commandSpecific >>> 0, 8);
  b[12] = s.asc;
  b[13] = s.ascq;
  if (d.fieldPointer) sksBytes(d.fieldPointer).copy(b, 15);
  return b;
}

/** SPC-4 4.5.2: descriptor format sense data with INFORMATION and SENSE KEY SPECIFIC descriptors. */
export function encodeDescriptorSense(s: SenseCode, d: SenseDetail = {}): Buffer {
  const descs: Buffer[] = [];
  if (d.information !== undefined) {
    const info = Buffer.alloc(12);
    info[0] = 0x00;
    info[1] = 0x0a;
    info[2] = 0x80; // VALID
    info.writeBigUInt64BE(BigInt(d.information), 4);
    descs.push(info);
  }
  if (d.commandSpecific !== undefined) {
    const cs = Buffer.alloc(12);
    cs[0] = 0x01; // SPC-4 4.5.2.3: command-specific information descriptor
    cs[1] = 0x0a;
    cs.writeBigUInt64BE(BigInt(d.commandSpecific), 4);
    descs.push(cs);
  }
  if (d.fieldPointer) {
    const sks = Buffer.alloc(8);
    sks[0] = 0x02;
    sks[1] = 0x06;
    sksBytes(d.fieldPointer).copy(sks, 4);
    descs.push(sks);
  }
  const body = Buffer.concat(descs);
  const head = Buffer.from([0x72, s.key & 0x0f, s.asc, s.ascq, 0, 0, 0, body.length]);
  return Buffer.concat([head, body]);
}

export function encodeSense(s: SenseCode, d: SenseDetail, descriptor: boolean): Buffer {
  return descriptor ? encodeDescriptorSense(s, d) : encodeFixedSense(s, d);
}

/** Decoded view of either format, for tests and for the client side. */
export interface DecodedSense {
  descriptor: boolean;
  key: number;
  asc: number;
  ascq: number;
  information?: bigint;
  fieldPointer?: FieldPointer;
  commandSpecific?: bigint;
}

function decodeSks(b: Buffer): FieldPointer | undefined {
  if (!(b[0] & 0x80)) return undefined;
  return {
    cdb: (b[0] & 0x40) !== 0,
    byte: b.readUInt16BE(1),
    bit: b[0] & 0x08 ? b[0] & 7 : undefined,
  };
}

export function decodeSense(b: Buffer): DecodedSense {
  if (b.length < 8) throw new RangeError(`sense data too short: ${b.length}`);
  const code = b[0] & 0x7f;
  if (code === 0x70 || code === 0x71) {
    if (b.length < 18) throw new RangeError(`fixed sense too short: ${b.length}`);
    return {
      descriptor: false, key: b[2] & 0x0f, asc: b[12], ascq: b[13],
      information: b[0] & 0x80 ? BigInt(b.readUInt32BE(3)) : undefined,
      fieldPointer: decodeSks(b.subarray(15, 18)),
      ...(b.readUInt32BE(8) !== 0 ? { commandSpecific: BigInt(b.readUInt32BE(8)) } : {}),
    };
  }
  if (code !== 0x72 && code !== 0x73) throw new RangeError(`unknown sense response code ${code}`);
  const out: DecodedSense = { descriptor: true, key: b[1] & 0x0f, asc: b[2], ascq: b[3] };
  const end = Math.min(b.length, 8 + b[7]);
  for (let p = 8; p + 2 <= end; p += 2 + b[p + 1]) {
    if (b[p] === 0x00 && p + 12 <= end) out.information = b.readBigUInt64BE(p + 4);
    if (b[p] === 0x01 && p + 12 <= end) out.commandSpecific = b.readBigUInt64BE(p + 4);
    if (b[p] === 0x02 && p + 8 <= end) out.fieldPointer = decodeSks(b.subarray(p + 4, p + 7));
  }
  return out;
}
