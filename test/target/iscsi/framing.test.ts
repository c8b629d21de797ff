import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DigestSettings, digestOf, framePdu, LOGIN_DATA_SEGMENT_LENGTH, PduReader, ReadResult } from '../../../target/iscsi/framing';
import { DataIn, encodeLun, NopOut, Opcode, Pdu, RejectReason, ScsiCommandPdu } from '../../../target/iscsi/pdu';
import { BhsBuilder, crc32cSlow } from '../../helpers/bhs-builder';

const E = Buffer.alloc(0);
const NONE: DigestSettings = { header: false, data: false };
const BOTH: DigestSettings = { header: true, data: true };

function dataIn(data: Buffer, dataSn = 0): DataIn {
  return {
    opcode: Opcode.DataIn, immediate: false, final: true, acknowledge: false, residualOverflow: false, residualUnderflow: false,
    hasStatus: false, status: 0, ahs: E, data, itt: 0x10, lun: encodeLun(1), ttt: 0xffffffff, statSn: 0, expCmdSn: 2, maxCmdSn: 9,
    dataSn, bufferOffset: 0, residualCount: 0,
  };
}

function command(ahs: Buffer, data: Buffer): ScsiCommandPdu {
  return {
    opcode: Opcode.ScsiCommand, immediate: false, final: true, read: false, write: true, attr: 0, ahs, data, itt: 7,
    lun: encodeLun(0), expectedDataTransferLength: data.length, cmdSn: 1, expStatSn: 1, cdb: Buffer.alloc(16, 0x2a),
  };
}

function collect(digests: DigestSettings, maxDataSegmentLength?: number): { reader: PduReader; out: ReadResult[] } {
  const out: ReadResult[] = [];
  const reader = new PduReader((r) => out.push(r));
  reader.digests = digests;
  if (maxDataSegmentLength !== undefined) reader.maxDataSegmentLength = maxDataSegmentLength;
  return { reader, out };
}

const le = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n, 0);
  return b;
};

describe('iSCSI framing (RFC 7143 11.1)', () => {
  describe('CRC32C digests (RFC 3720 B.4), least significant byte first', () => {
    const vectors: Array<[string, Buffer, number[]]> = [
      ['32 bytes of zeros', Buffer.alloc(32), [0xaa, 0x36, 0x91, 0x8a]],
      ['32 bytes of ones', Buffer.alloc(32, 0xff), [0x43, 0xab, 0xa8, 0x62]],
      ['32 incrementing bytes', Buffer.from(Array.from({ length: 32 }, (_, i) => i)), [0x4e, 0x79, 0xdd, 0x46]],
      ['32 decrementing bytes', Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i)), [0x5c, 0xdb, 0x3f, 0x11]],
    ];
    for (const [name, input, expected] of vectors) {
      it(name, () => {
        assert.deepStrictEqual([...digestOf([input])], expected);
        assert.deepStrictEqual(digestOf([input]), le(crc32cSlow([input])));
      });
    }

    it('a digest over several parts equals one over their concatenation', () => {
      fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 5 }), (parts) => {
        const bufs = parts.map((p) => Buffer.from(p));
        assert.deepStrictEqual(digestOf(bufs), digestOf([Buffer.concat(bufs)]));
        assert.deepStrictEqual(digestOf(bufs), le(crc32cSlow(bufs)));
      }), { numRuns: 200 });
    });
  });

  describe('framePdu', () => {
    it('lays out BHS, AHS, header digest, data, padding, data digest', () => {
      const ahs = Buffer.from([0, 1, 1, 0]);
      const data = Buffer.from([1, 2, 3, 4, 5]);
      const wire = Buffer.concat(framePdu(command(ahs, data), BOTH));
      assert.equal(wire.length, 48 + 4 + 4 + 8 + 4);
      const bhs = wire.subarray(0, 48);
      assert.equal(bhs[4], 1, 'TotalAHSLength in words');
      assert.equal(bhs.readUIntBE(5, 3), 5, 'DataSegmentLength excludes padding');
      assert.deepStrictEqual(wire.subarray(48, 52), ahs);
      assert.deepStrictEqual(wire.subarray(52, 56), le(crc32cSlow([wire.subarray(0, 52)])), 'header digest covers BHS and AHS');
      assert.deepStrictEqual(wire.subarray(56, 64), Buffer.from([1, 2, 3, 4, 5, 0, 0, 0]), 'padded with zeros');
      assert.deepStrictEqual(wire.subarray(64, 68), le(crc32cSlow([wire.subarray(56, 64)])), 'data digest covers data and padding');
    });

    it('no data segment: no padding and no data digest', () => {
      const wire = Buffer.concat(framePdu(command(E, E), BOTH));
      assert.equal(wire.length, 52);
    });

    for (let n = 0; n <= 8; n++) {
      it(`${n} data bytes pad to ${(n + 3) & ~3}`, () => {
        const wire = Buffer.concat(framePdu(dataIn(Buffer.alloc(n, 0xab)), NONE));
        assert.equal(wire.length, 48 + ((n + 3) & ~3));
        assert.ok(wire.subarray(48 + n).every((b) => b === 0));
      });
    }
  });

  describe('PduReader', () => {
    const pdus: Pdu[] = [command(Buffer.from([0, 1, 1, 0]), Buffer.from('abcde')), dataIn(Buffer.alloc(13, 7), 1), dataIn(E, 2)];

    for (const digests of [NONE, BOTH, { header: true, data: false }, { header: false, data: true }]) {
      it(`reassembles PDUs split at every byte (header digest ${digests.header}, data digest ${digests.data})`, () => {
        const wire = Buffer.concat(pdus.flatMap((p) => framePdu(p, digests)));
        for (let cut = 1; cut < wire.length; cut++) {
          const { reader, out } = collect(digests);
          reader.push(wire.subarray(0, cut));
          reader.push(wire.subarray(cut));
          assert.deepStrictEqual(out.map((r) => r.kind), ['pdu', 'pdu', 'pdu'], `cut at ${cut}`);
          out.forEach((r, i) => assert.deepStrictEqual(r.kind === 'pdu' ? { ...r.pdu } : r, pdus[i]));
        }
      });
    }

    it('reassembles a stream fed one byte at a time', () => {
      const wire = Buffer.concat(pdus.flatMap((p) => framePdu(p, BOTH)));
      const { reader, out } = collect(BOTH);
      for (let i = 0; i < wire.length; i++) reader.push(wire.subarray(i, i + 1));
      assert.equal(out.length, 3);
    });

    it('random chunking of many random PDUs delivers them all, in order', () => {
      fc.assert(fc.property(
        fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 50 }),
        fc.boolean(),
        (datas, cuts, dig) => {
          const digests = dig ? BOTH : NONE;
          const sent = datas.map((d, i) => dataIn(Buffer.from(d), i));
          const wire = Buffer.concat(sent.flatMap((p) => framePdu(p, digests)));
          const { reader, out } = collect(digests);
          let at = 0;
          for (let k = 0; at < wire.length; k++) {
            const n = cuts[k % cuts.length];
            reader.push(wire.subarray(at, at + n));
            at += n;
          }
          assert.deepStrictEqual(out.map((r) => (r.kind === 'pdu' ? (r.pdu as DataIn).dataSn : -1)), sent.map((p) => p.dataSn));
          out.forEach((r, i) => assert.deepStrictEqual(r.kind === 'pdu' && r.pdu.data, sent[i].data));
        },
      ), { numRuns: 300 });
    });

    it('a bad header digest is fatal: the connection must close and nothing more is read (RFC 7143 7.8)', () => {
      const wire = Buffer.concat([...framePdu(dataIn(Buffer.from('xy')), BOTH), ...framePdu(dataIn(E, 1), BOTH)]);
      wire[48] ^= 0x01; // first byte of the header digest
      const { reader, out } = collect(BOTH);
      reader.push(wire);
      assert.equal(out.length, 1);
      assert.ok(out[0].kind === 'fatal');
      assert.equal(out[0].error.code, 'HEADER_DIGEST');
      reader.push(Buffer.concat(framePdu(dataIn(E, 2), BOTH)));
      assert.equal(out.length, 1, 'a failed reader stays failed');
    });

    it('a flipped header bit under a header digest is caught too', () => {
      const wire = Buffer.concat(framePdu(dataIn(E), BOTH));
      wire[20] ^= 0x80; // TTT, not a length: the frame stays the same size
      const { reader, out } = collect(BOTH);
      reader.push(wire);
      assert.equal(out[0].kind, 'fatal');
    });

    it('a bad data digest rejects that PDU (data digest error) and the next one still arrives', () => {
      const first = Buffer.concat(framePdu(dataIn(Buffer.from('hello')), BOTH));
      first[first.length - 1] ^= 0xff;
      const { reader, out } = collect(BOTH);
      reader.push(Buffer.concat([first, ...framePdu(dataIn(Buffer.from('ok'), 1), BOTH)]));
      assert.deepStrictEqual(out.map((r) => r.kind), ['reject', 'pdu']);
      const rej = out[0];
      assert.ok(rej.kind === 'reject');
      assert.equal(rej.error.code, 'DATA_DIGEST');
      assert.equal(rej.error.reason, RejectReason.DataDigestError);
      assert.equal(rej.bhs[0] & 0x3f, Opcode.DataIn, 'the rejected header is handed up for the Reject PDU');
    });

    it('corrupted data under a good digest position is caught', () => {
      const wire = Buffer.concat(framePdu(dataIn(Buffer.from('abcdefgh')), BOTH));
      wire[48 + 4 + 3] ^= 0x10;
      const { reader, out } = collect(BOTH);
      reader.push(wire);
      assert.equal(out[0].kind, 'reject');
    });

    it('a DataSegmentLength over MaxRecvDataSegmentLength is fatal before the data arrives', () => {
      const bhs = new BhsBuilder(0x25).u8(1, 0x80).lengths(0, LOGIN_DATA_SEGMENT_LENGTH + 1).itt(1).build();
      const { reader, out } = collect(NONE);
      reader.push(bhs);
      assert.equal(out.length, 1);
      assert.ok(out[0].kind === 'fatal');
      assert.equal(out[0].error.code, 'DATA_SEGMENT_LENGTH');
      assert.equal(out[0].error.reason, RejectReason.ProtocolError);
    });

    it('exactly MaxRecvDataSegmentLength is accepted', () => {
      const { reader, out } = collect(NONE, 1024);
      reader.push(Buffer.concat(framePdu(dataIn(Buffer.alloc(1024, 1)), NONE)));
      assert.equal(out[0].kind, 'pdu');
    });

    it('an absurd DataSegmentLength (2^24 - 1) is fatal at once, nothing is buffered for it', () => {
      const bhs = new BhsBuilder(0x01).lengths(0, 0xffffff).build();
      const { reader, out } = collect(NONE, 262144);
      reader.push(bhs);
      assert.equal(out[0].kind, 'fatal');
    });

    it('an unknown opcode in a well-framed PDU is a reject, and reading goes on', () => {
      const bad = new BhsBuilder(0x1c).lengths(0, 3).build();
      const { reader, out } = collect(NONE);
      reader.push(Buffer.concat([bad, Buffer.from([1, 2, 3, 0]), ...framePdu(dataIn(E), NONE)]));
      assert.deepStrictEqual(out.map((r) => r.kind), ['reject', 'pdu']);
      assert.ok(out[0].kind === 'reject');
      assert.equal(out[0].error.reason, RejectReason.CommandNotSupported);
    });

    it('a truncated stream delivers nothing until the rest arrives', () => {
      const wire = Buffer.concat(framePdu(dataIn(Buffer.alloc(100)), BOTH));
      const { reader, out } = collect(BOTH);
      reader.push(wire.subarray(0, wire.length - 1));
      assert.equal(out.length, 0);
      reader.push(wire.subarray(wire.length - 1));
      assert.equal(out.length, 1);
    });

    it('settings changed between PDUs apply to the next PDU (digests after login)', () => {
      const login = Buffer.concat(framePdu(dataIn(E, 0), NONE));
      const after = Buffer.concat(framePdu(dataIn(Buffer.from('z'), 1), BOTH));
      const out: ReadResult[] = [];
      const reader = new PduReader((r) => {
        out.push(r);
        reader.digests = BOTH; // switched from inside the delivery, as a connection does
      });
      reader.push(Buffer.concat([login, after]));
      assert.deepStrictEqual(out.map((r) => r.kind), ['pdu', 'pdu']);
    });

    it('NOP-Out with padding bytes that are not zero still frames (padding is not checked)', () => {
      const nop: NopOut = { opcode: Opcode.NopOut, immediate: true, final: true, ahs: E, data: Buffer.from('a'), itt: 1, lun: encodeLun(0), ttt: 0xffffffff, cmdSn: 1, expStatSn: 1 };
      const wire = Buffer.concat(framePdu(nop, NONE));
      wire.fill(0x55, 49);
      const { reader, out } = collect(NONE);
      reader.push(wire);
      assert.ok(out[0].kind === 'pdu');
      assert.deepStrictEqual(out[0].pdu.data, Buffer.from('a'));
    });
  });
});
