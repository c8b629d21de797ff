import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  BHS_LENGTH, decodeLengths, decodeLun, decodePdu, encodeBhs, encodeLun, Opcode, Pdu, PduError, RejectReason, snLessThan,
} from '../../../target/iscsi/pdu';
import { BhsBuilder } from '../../helpers/bhs-builder';

const LUN5 = [0, 5, 0, 0, 0, 0, 0, 0];
const lun5 = Buffer.from(LUN5);
const E = Buffer.alloc(0);

interface Case {
  name: string;
  bytes: Buffer;
  ahs?: Buffer;
  data?: Buffer;
  pdu: Pdu;
}

// Each case: the wire bytes written field by field from RFC 7143 section 11, and the decoded value.
const cases: Case[] = [
  {
    name: 'NOP-Out (11.18)',
    bytes: new BhsBuilder(0x00, true).u8(1, 0x80).lengths(0, 4).lun(LUN5).itt(0x11223344).u32(20, 0xffffffff).u32(24, 7).u32(28, 9).build(),
    data: Buffer.from('ping'),
    pdu: { opcode: Opcode.NopOut, immediate: true, final: true, ahs: E, data: Buffer.from('ping'), itt: 0x11223344, lun: lun5, ttt: 0xffffffff, cmdSn: 7, expStatSn: 9 },
  },
  {
    name: 'SCSI Command (11.3)',
    bytes: new BhsBuilder(0x01).u8(1, 0x80 | 0x40 | 0x01).lengths(0, 0).lun(LUN5).itt(1).u32(20, 4096).u32(24, 0x80000001).u32(28, 3)
      .raw(32, [0x28, 0, 0, 0, 0, 0x10, 0, 0, 8, 0]).build(),
    pdu: {
      opcode: Opcode.ScsiCommand, immediate: false, final: true, read: true, write: false, attr: 1, ahs: E, data: E, itt: 1, lun: lun5,
      expectedDataTransferLength: 4096, cmdSn: 0x80000001, expStatSn: 3, cdb: Buffer.from([0x28, 0, 0, 0, 0, 0x10, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0]),
    },
  },
  {
    name: 'SCSI Command, write with immediate data and an AHS',
    bytes: new BhsBuilder(0x01, true).u8(1, 0x20 | 0x02).lengths(1, 3).itt(2).u32(20, 512).u32(24, 4).u32(28, 5).raw(32, [0x2a]).build(),
    ahs: Buffer.from([0, 1, 0x02, 0]),
    data: Buffer.from([1, 2, 3]),
    pdu: {
      opcode: Opcode.ScsiCommand, immediate: true, final: false, read: false, write: true, attr: 2, ahs: Buffer.from([0, 1, 0x02, 0]),
      data: Buffer.from([1, 2, 3]), itt: 2, lun: Buffer.alloc(8), expectedDataTransferLength: 512, cmdSn: 4, expStatSn: 5,
      cdb: Buffer.from([0x2a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
    },
  },
  {
    name: 'Task Management Function Request (11.5)',
    bytes: new BhsBuilder(0x02, true).u8(1, 0x81).lun(LUN5).itt(10).u32(20, 9).u32(24, 11).u32(28, 12).u32(32, 8).u32(36, 2).build(),
    pdu: {
      opcode: Opcode.TaskMgmtRequest, immediate: true, final: true, function: 1, ahs: E, data: E, itt: 10, lun: lun5,
      referencedTaskTag: 9, cmdSn: 11, expStatSn: 12, refCmdSn: 8, expDataSn: 2,
    },
  },
  {
    name: 'Login Request (11.12)',
    bytes: new BhsBuilder(0x03, true).u8(1, 0x80 | 0x04 | 0x03).u8(2, 0).u8(3, 0).lengths(0, 6)
      .raw(8, [0x80, 1, 2, 3, 0, 0]).u16(14, 0x1234).itt(0x55).u16(20, 1).u32(24, 100).u32(28, 0).build(),
    data: Buffer.from('A=B\0\0\0'),
    pdu: {
      opcode: Opcode.LoginRequest, immediate: true, final: true, transit: true, continue: false, csg: 1, nsg: 3, versionMax: 0, versionMin: 0,
      isid: Buffer.from([0x80, 1, 2, 3, 0, 0]), tsih: 0x1234, ahs: E, data: Buffer.from('A=B\0\0\0'), itt: 0x55, cid: 1, cmdSn: 100, expStatSn: 0,
    },
  },
  {
    name: 'Login Request, C bit, security stage',
    bytes: new BhsBuilder(0x03, true).u8(1, 0x40 | 0x01).u8(2, 2).u8(3, 1).raw(8, [0x40, 0, 0, 9, 0, 1]).itt(1).u32(24, 1).u32(28, 2).build(),
    pdu: {
      opcode: Opcode.LoginRequest, immediate: true, final: false, transit: false, continue: true, csg: 0, nsg: 1, versionMax: 2, versionMin: 1,
      isid: Buffer.from([0x40, 0, 0, 9, 0, 1]), tsih: 0, ahs: E, data: E, itt: 1, cid: 0, cmdSn: 1, expStatSn: 2,
    },
  },
  {
    name: 'Text Request (11.10)',
    bytes: new BhsBuilder(0x04).u8(1, 0x40).lengths(0, 16).itt(3).u32(20, 0xffffffff).u32(24, 6).u32(28, 7).build(),
    data: Buffer.from('SendTargets=All\0'),
    pdu: {
      opcode: Opcode.TextRequest, immediate: false, final: false, continue: true, ahs: E, data: Buffer.from('SendTargets=All\0'), itt: 3,
      lun: Buffer.alloc(8), ttt: 0xffffffff, cmdSn: 6, expStatSn: 7,
    },
  },
  {
    name: 'SCSI Data-Out (11.7)',
    bytes: new BhsBuilder(0x05).u8(1, 0x80).lengths(0, 5).lun(LUN5).itt(4).u32(20, 0x99).u32(28, 13).u32(36, 2).u32(40, 16384).build(),
    data: Buffer.from('hello'),
    pdu: {
      opcode: Opcode.DataOut, immediate: false, final: true, ahs: E, data: Buffer.from('hello'), itt: 4, lun: lun5, ttt: 0x99,
      expStatSn: 13, dataSn: 2, bufferOffset: 16384,
    },
  },
  {
    name: 'Logout Request (11.14)',
    bytes: new BhsBuilder(0x06, true).u8(1, 0x80 | 0x02).itt(5).u16(20, 3).u32(24, 14).u32(28, 15).build(),
    pdu: { opcode: Opcode.LogoutRequest, immediate: true, final: true, reasonCode: 2, ahs: E, data: E, itt: 5, cid: 3, cmdSn: 14, expStatSn: 15 },
  },
  {
    name: 'SNACK Request (11.16)',
    bytes: new BhsBuilder(0x10).u8(1, 0x80 | 0x01).lun(LUN5).itt(6).u32(20, 0x77).u32(28, 16).u32(40, 3).u32(44, 4).build(),
    pdu: {
      opcode: Opcode.SnackRequest, immediate: false, final: true, type: 1, ahs: E, data: E, itt: 6, lun: lun5, ttt: 0x77,
      expStatSn: 16, begRun: 3, runLength: 4,
    },
  },
  {
    name: 'NOP-In (11.19)',
    bytes: new BhsBuilder(0x20).u8(1, 0x80).lun(LUN5).itt(0xffffffff).u32(20, 0x1000).u32(24, 20).u32(28, 21).u32(32, 52).build(),
    pdu: {
      opcode: Opcode.NopIn, immediate: false, final: true, ahs: E, data: E, itt: 0xffffffff, lun: lun5, ttt: 0x1000,
      statSn: 20, expCmdSn: 21, maxCmdSn: 52,
    },
  },
  {
    name: 'SCSI Response (11.4) with sense and every residual flag',
    bytes: new BhsBuilder(0x21).u8(1, 0x80 | 0x10 | 0x08 | 0x04 | 0x02).u8(2, 0).u8(3, 0x02).lengths(0, 20).itt(7).u32(20, 1)
      .u32(24, 22).u32(28, 23).u32(32, 54).u32(36, 5).u32(40, 6).u32(44, 0xfffffff0).build(),
    data: Buffer.concat([Buffer.from([0, 18]), Buffer.from([0x70, 0, 5, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0, 0, 0, 0, 0])]),
    pdu: {
      opcode: Opcode.ScsiResponse, immediate: false, final: true, bidiReadResidualOverflow: true, bidiReadResidualUnderflow: true,
      residualOverflow: true, residualUnderflow: true, response: 0, status: 2, ahs: E,
      data: Buffer.concat([Buffer.from([0, 18]), Buffer.from([0x70, 0, 5, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0, 0, 0, 0, 0])]),
      itt: 7, snackTag: 1, statSn: 22, expCmdSn: 23, maxCmdSn: 54, expDataSn: 5, bidiReadResidualCount: 6, residualCount: 0xfffffff0,
    },
  },
  {
    name: 'Task Management Function Response (11.6)',
    bytes: new BhsBuilder(0x22).u8(1, 0x80).u8(2, 5).itt(8).u32(24, 24).u32(28, 25).u32(32, 56).build(),
    pdu: { opcode: Opcode.TaskMgmtResponse, immediate: false, final: true, response: 5, ahs: E, data: E, itt: 8, statSn: 24, expCmdSn: 25, maxCmdSn: 56 },
  },
  {
    name: 'Login Response (11.13), failure status',
    bytes: new BhsBuilder(0x23).u8(1, 0x00).u8(2, 0).u8(3, 0).raw(8, [0x80, 1, 2, 3, 0, 0]).u16(14, 0).itt(0x55)
      .u32(24, 1).u32(28, 100).u32(32, 100).u8(36, 0x02).u8(37, 0x01).build(),
    pdu: {
      opcode: Opcode.LoginResponse, immediate: false, final: false, transit: false, continue: false, csg: 0, nsg: 0, versionMax: 0, versionActive: 0,
      isid: Buffer.from([0x80, 1, 2, 3, 0, 0]), tsih: 0, ahs: E, data: E, itt: 0x55, statSn: 1, expCmdSn: 100, maxCmdSn: 100,
      statusClass: 2, statusDetail: 1,
    },
  },
  {
    name: 'Login Response, transit to full feature',
    bytes: new BhsBuilder(0x23).u8(1, 0x80 | 0x04 | 0x03).raw(8, [0x80, 1, 2, 3, 0, 0]).u16(14, 9).itt(0x55)
      .u32(24, 2).u32(28, 100).u32(32, 131).build(),
    pdu: {
      opcode: Opcode.LoginResponse, immediate: false, final: true, transit: true, continue: false, csg: 1, nsg: 3, versionMax: 0, versionActive: 0,
      isid: Buffer.from([0x80, 1, 2, 3, 0, 0]), tsih: 9, ahs: E, data: E, itt: 0x55, statSn: 2, expCmdSn: 100, maxCmdSn: 131,
      statusClass: 0, statusDetail: 0,
    },
  },
  {
    name: 'Text Response (11.11)',
    bytes: new BhsBuilder(0x24).u8(1, 0x80).lengths(0, 4).itt(3).u32(20, 0xffffffff).u32(24, 26).u32(28, 27).u32(32, 58).build(),
    data: Buffer.from('a=b\0'),
    pdu: {
      opcode: Opcode.TextResponse, immediate: false, final: true, continue: false, ahs: E, data: Buffer.from('a=b\0'), itt: 3,
      lun: Buffer.alloc(8), ttt: 0xffffffff, statSn: 26, expCmdSn: 27, maxCmdSn: 58,
    },
  },
  {
    name: 'SCSI Data-In (11.7) with status and underflow',
    bytes: new BhsBuilder(0x25).u8(1, 0x80 | 0x02 | 0x01).u8(3, 0).lengths(0, 3).lun(LUN5).itt(9).u32(20, 0xffffffff)
      .u32(24, 28).u32(28, 29).u32(32, 60).u32(36, 1).u32(40, 8192).u32(44, 100).build(),
    data: Buffer.from([9, 8, 7]),
    pdu: {
      opcode: Opcode.DataIn, immediate: false, final: true, acknowledge: false, residualOverflow: false, residualUnderflow: true, hasStatus: true,
      status: 0, ahs: E, data: Buffer.from([9, 8, 7]), itt: 9, lun: lun5, ttt: 0xffffffff, statSn: 28, expCmdSn: 29, maxCmdSn: 60,
      dataSn: 1, bufferOffset: 8192, residualCount: 100,
    },
  },
  {
    name: 'SCSI Data-In, A bit, no status',
    bytes: new BhsBuilder(0x25).u8(1, 0x40).lun(LUN5).itt(9).u32(20, 0x31).u32(28, 29).u32(32, 60).u32(36, 0).build(),
    pdu: {
      opcode: Opcode.DataIn, immediate: false, final: false, acknowledge: true, residualOverflow: false, residualUnderflow: false, hasStatus: false,
      status: 0, ahs: E, data: E, itt: 9, lun: lun5, ttt: 0x31, statSn: 0, expCmdSn: 29, maxCmdSn: 60, dataSn: 0, bufferOffset: 0, residualCount: 0,
    },
  },
  {
    name: 'Logout Response (11.15)',
    bytes: new BhsBuilder(0x26).u8(1, 0x80).u8(2, 1).itt(5).u32(24, 30).u32(28, 31).u32(32, 62).u16(40, 2).u16(42, 20).build(),
    pdu: {
      opcode: Opcode.LogoutResponse, immediate: false, final: true, response: 1, ahs: E, data: E, itt: 5, statSn: 30, expCmdSn: 31,
      maxCmdSn: 62, time2Wait: 2, time2Retain: 20,
    },
  },
  {
    name: 'Ready To Transfer (11.8)',
    bytes: new BhsBuilder(0x31).u8(1, 0x80).lun(LUN5).itt(11).u32(20, 0xabc).u32(24, 32).u32(28, 33).u32(32, 64).u32(36, 3).u32(40, 65536).u32(44, 262144).build(),
    pdu: {
      opcode: Opcode.R2t, immediate: false, final: true, ahs: E, data: E, itt: 11, lun: lun5, ttt: 0xabc, statSn: 32, expCmdSn: 33, maxCmdSn: 64,
      r2tSn: 3, bufferOffset: 65536, desiredDataTransferLength: 262144,
    },
  },
  {
    name: 'Asynchronous Message (11.9)',
    bytes: new BhsBuilder(0x32).u8(1, 0x80).lun(LUN5).itt(0xffffffff).u32(24, 34).u32(28, 35).u32(32, 66)
      .u8(36, 1).u8(37, 0).u16(38, 0).u16(40, 2).u16(42, 20).build(),
    pdu: {
      opcode: Opcode.AsyncMessage, immediate: false, final: true, ahs: E, data: E, itt: 0xffffffff, lun: lun5, statSn: 34, expCmdSn: 35,
      maxCmdSn: 66, asyncEvent: 1, asyncVCode: 0, parameter1: 0, parameter2: 2, parameter3: 20,
    },
  },
  {
    name: 'Reject (11.17)',
    bytes: new BhsBuilder(0x3f).u8(1, 0x80).u8(2, 0x09).lengths(0, 48).itt(0xffffffff).u32(24, 36).u32(28, 37).u32(32, 68).u32(36, 0).build(),
    data: Buffer.alloc(48, 0xee),
    pdu: {
      opcode: Opcode.Reject, immediate: false, final: true, reason: RejectReason.InvalidPduField, ahs: E, data: Buffer.alloc(48, 0xee),
      itt: 0xffffffff, statSn: 36, expCmdSn: 37, maxCmdSn: 68, dataSn: 0,
    },
  },
];

describe('iSCSI PDU codec', () => {
  describe('every opcode, against bytes written out from RFC 7143 11', () => {
    for (const c of cases) {
      it(`${c.name}: decodes`, () => {
        assert.deepStrictEqual(decodePdu(c.bytes, c.ahs ?? E, c.data ?? E), c.pdu);
      });
      it(`${c.name}: encodes to the same bytes`, () => {
        assert.deepStrictEqual(encodeBhs(c.pdu), c.bytes);
      });
    }

    it('covers every opcode of the enum', () => {
      const covered = new Set(cases.map((c) => c.pdu.opcode));
      const all = Object.values(Opcode).filter((v): v is Opcode => typeof v === 'number');
      assert.deepStrictEqual([...covered].sort(), [...all].sort());
    });
  });

  describe('decodeLengths', () => {
    it('reads TotalAHSLength (words) and the 24-bit DataSegmentLength', () => {
      const b = new BhsBuilder(0x01).lengths(3, 0xfedcba).build();
      assert.deepStrictEqual(decodeLengths(b), { totalAhsLength: 3, dataSegmentLength: 0xfedcba });
    });
  });

  describe('malformed input', () => {
    const code = (fn: () => unknown, expected: string, reason: RejectReason): void => {
      assert.throws(fn, (e: unknown) => e instanceof PduError && e.code === expected && e.reason === reason);
    };

    it('short BHS -> BHS_LENGTH, protocol error', () => {
      code(() => decodePdu(Buffer.alloc(47)), 'BHS_LENGTH', RejectReason.ProtocolError);
      code(() => decodeLengths(Buffer.alloc(10)), 'BHS_LENGTH', RejectReason.ProtocolError);
      code(() => decodePdu(Buffer.alloc(0)), 'BHS_LENGTH', RejectReason.ProtocolError);
    });

    it('long BHS -> BHS_LENGTH', () => {
      code(() => decodePdu(Buffer.alloc(49)), 'BHS_LENGTH', RejectReason.ProtocolError);
    });

    for (const op of [0x07, 0x0f, 0x11, 0x1c, 0x1d, 0x1e, 0x27, 0x30, 0x33, 0x3c, 0x3d, 0x3e]) {
      it(`unknown opcode 0x${op.toString(16)} -> UNKNOWN_OPCODE, command not supported`, () => {
        code(() => decodePdu(new BhsBuilder(op).build()), 'UNKNOWN_OPCODE', RejectReason.CommandNotSupported);
      });
    }

    it('every one of the 64 opcodes either decodes or is UNKNOWN_OPCODE', () => {
      const known = new Set(cases.map((c) => c.pdu.opcode as number));
      for (let op = 0; op < 64; op++) {
        const bhs = new BhsBuilder(op).build();
        if (known.has(op)) assert.equal(decodePdu(bhs).opcode, op);
        else code(() => decodePdu(bhs), 'UNKNOWN_OPCODE', RejectReason.CommandNotSupported);
      }
    });

    it('the reserved bit of byte 0 does not change the opcode', () => {
      const b = new BhsBuilder(0x00).u8(1, 0x80).build();
      b[0] |= 0x80;
      assert.equal(decodePdu(b).opcode, Opcode.NopOut);
    });

    it('encoder refuses an AHS that is not whole words or longer than 1020 bytes', () => {
      const p = { ...cases[0].pdu, ahs: Buffer.alloc(3) } as Pdu;
      assert.throws(() => encodeBhs(p), RangeError);
      assert.throws(() => encodeBhs({ ...p, ahs: Buffer.alloc(1024) } as Pdu), RangeError);
      assert.equal(encodeBhs({ ...p, ahs: Buffer.alloc(1020) } as Pdu)[4], 255);
    });

    it('encoder refuses a data segment over 2^24 - 1 bytes', () => {
      const p = { ...cases[0].pdu, data: Buffer.alloc(0x1000000) } as Pdu;
      assert.throws(() => encodeBhs(p), RangeError);
      const max = encodeBhs({ ...p, data: Buffer.alloc(0xffffff) } as Pdu);
      assert.deepStrictEqual([...max.subarray(5, 8)], [0xff, 0xff, 0xff]);
    });
  });

  describe('round trip of random field values (fast-check)', () => {
    const u32 = fc.integer({ min: 0, max: 0xffffffff });
    const lun = fc.uint8Array({ minLength: 8, maxLength: 8 }).map((a) => Buffer.from(a));
    const data = fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a));
    const base = { immediate: fc.boolean(), ahs: fc.constant(E), data, itt: u32 };

    it('SCSI Command, Data-In and R2T survive encode -> decode', () => {
      const scsi = fc.record({
        ...base, opcode: fc.constant(Opcode.ScsiCommand as const), final: fc.boolean(), read: fc.boolean(), write: fc.boolean(),
        attr: fc.integer({ min: 0, max: 7 }), lun, expectedDataTransferLength: u32, cmdSn: u32, expStatSn: u32,
        cdb: fc.uint8Array({ minLength: 16, maxLength: 16 }).map((a) => Buffer.from(a)),
      });
      const dataIn = fc.record({
        ...base, opcode: fc.constant(Opcode.DataIn as const), final: fc.boolean(), acknowledge: fc.boolean(), residualOverflow: fc.boolean(),
        residualUnderflow: fc.boolean(), hasStatus: fc.boolean(), status: fc.integer({ min: 0, max: 255 }), lun, ttt: u32, statSn: u32,
        expCmdSn: u32, maxCmdSn: u32, dataSn: u32, bufferOffset: u32, residualCount: u32,
      }).map((p) => (p.hasStatus ? p : { ...p, status: 0 }));
      const r2t = fc.record({
        ...base, opcode: fc.constant(Opcode.R2t as const), final: fc.constant(true), lun, ttt: u32, statSn: u32, expCmdSn: u32,
        maxCmdSn: u32, r2tSn: u32, bufferOffset: u32, desiredDataTransferLength: u32,
      });
      fc.assert(fc.property(fc.oneof(scsi, dataIn, r2t), (p) => {
        const bhs = encodeBhs(p as Pdu);
        assert.equal(bhs.length, BHS_LENGTH);
        assert.equal(decodeLengths(bhs).dataSegmentLength, p.data.length);
        assert.deepStrictEqual(decodePdu(bhs, p.ahs, p.data), { ...p });
      }), { numRuns: 500 });
    });
  });

  describe('LUN field (SAM-5 4.6)', () => {
    it('peripheral addressing below 256, flat below 16384', () => {
      assert.deepStrictEqual([...encodeLun(0)], [0, 0, 0, 0, 0, 0, 0, 0]);
      assert.deepStrictEqual([...encodeLun(255)], [0, 255, 0, 0, 0, 0, 0, 0]);
      assert.deepStrictEqual([...encodeLun(256)], [0x41, 0x00, 0, 0, 0, 0, 0, 0]);
      assert.deepStrictEqual([...encodeLun(16383)], [0x7f, 0xff, 0, 0, 0, 0, 0, 0]);
      assert.throws(() => encodeLun(16384), RangeError);
    });

    it('decodes both forms; bus identifier, second level or other methods -> -1', () => {
      assert.equal(decodeLun(Buffer.from([0, 7, 0, 0, 0, 0, 0, 0])), 7);
      assert.equal(decodeLun(Buffer.from([0x40, 7, 0, 0, 0, 0, 0, 0])), 7);
      assert.equal(decodeLun(Buffer.from([0x41, 0x2c, 0, 0, 0, 0, 0, 0])), 300);
      assert.equal(decodeLun(Buffer.from([0x01, 7, 0, 0, 0, 0, 0, 0])), -1, 'bus identifier 1');
      assert.equal(decodeLun(Buffer.from([0, 7, 0, 1, 0, 0, 0, 0])), -1, 'second level');
      assert.equal(decodeLun(Buffer.from([0x80, 7, 0, 0, 0, 0, 0, 0])), -1, 'logical unit addressing');
      assert.equal(decodeLun(Buffer.from([0xc0, 7, 0, 0, 0, 0, 0, 0])), -1, 'extended addressing');
      assert.equal(decodeLun(Buffer.alloc(7)), -1);
    });

    it('round-trips every LUN below 16384', () => {
      for (let l = 0; l < 16384; l++) assert.equal(decodeLun(encodeLun(l)), l);
    });
  });

  describe('serial number arithmetic (RFC 1982)', () => {
    it('compares across the 2^32 wrap', () => {
      assert.equal(snLessThan(1, 2), true);
      assert.equal(snLessThan(2, 1), false);
      assert.equal(snLessThan(5, 5), false);
      assert.equal(snLessThan(0xffffffff, 0), true);
      assert.equal(snLessThan(0, 0xffffffff), false);
      assert.equal(snLessThan(0xfffffff0, 0x10), true);
      assert.equal(snLessThan(0, 0x7fffffff), true);
      assert.equal(snLessThan(0, 0x80000000), false, 'undefined distance is not less');
    });
  });
});
