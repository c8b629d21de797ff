// PDU codec benchmarks on fixed inputs: BHS decode/encode of the hot-path PDUs, framing and
// reading a 128 KiB Data-In with and without digests, and binary-parser against a hand-written
// reader for the same BHS (to decide whether pdu.ts's approach costs too much).
import Benchmark from 'benchmark';
import { DigestSettings, framePdu, PduReader } from '../target/iscsi/framing';
import { DataIn, decodePdu, encodeBhs, encodeLun, Opcode, R2t, ScsiCommandPdu } from '../target/iscsi/pdu';

const E = Buffer.alloc(0);
const KIB128 = 128 * 1024;

export const scsiCommand: ScsiCommandPdu = {
  opcode: Opcode.ScsiCommand, immediate: false, final: true, read: true, write: false, attr: 1, ahs: E, data: E, itt: 0x1234,
  lun: encodeLun(1), expectedDataTransferLength: KIB128, cmdSn: 77, expStatSn: 66,
  cdb: Buffer.from([0x88, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0]),
};
export const dataIn: DataIn = {
  opcode: Opcode.DataIn, immediate: false, final: true, acknowledge: false, residualOverflow: false, residualUnderflow: false,
  hasStatus: true, status: 0, ahs: E, data: Buffer.alloc(KIB128, 0x5a), itt: 0x1234, lun: encodeLun(1), ttt: 0xffffffff,
  statSn: 9, expCmdSn: 78, maxCmdSn: 141, dataSn: 0, bufferOffset: 0, residualCount: 0,
};
export const r2t: R2t = {
  opcode: Opcode.R2t, immediate: false, final: true, ahs: E, data: E, itt: 0x1234, lun: encodeLun(1), ttt: 7, statSn: 9,
  expCmdSn: 78, maxCmdSn: 141, r2tSn: 0, bufferOffset: 65536, desiredDataTransferLength: 262144,
};

const cmdBhs = encodeBhs(scsiCommand);
const dataInBhs = encodeBhs({ ...dataIn, data: E });
const r2tBhs = encodeBhs(r2t);

/** What a hand-written reader of a SCSI Command BHS would do: direct Buffer reads, no parser. */
function decodeScsiCommandByHand(b: Buffer): ScsiCommandPdu {
  const f = b[1];
  return {
    opcode: Opcode.ScsiCommand, immediate: (b[0] & 0x40) !== 0, final: (f & 0x80) !== 0, read: (f & 0x40) !== 0,
    write: (f & 0x20) !== 0, attr: f & 7, ahs: E, data: E, lun: b.subarray(8, 16), itt: b.readUInt32BE(16),
    expectedDataTransferLength: b.readUInt32BE(20), cmdSn: b.readUInt32BE(24), expStatSn: b.readUInt32BE(28), cdb: b.subarray(32, 48),
  };
}

function decodeDataInByHand(b: Buffer): DataIn {
  const f = b[1];
  const hasStatus = (f & 1) !== 0;
  return {
    opcode: Opcode.DataIn, immediate: false, final: (f & 0x80) !== 0, acknowledge: (f & 0x40) !== 0, residualOverflow: (f & 4) !== 0,
    residualUnderflow: (f & 2) !== 0, hasStatus, status: hasStatus ? b[3] : 0, ahs: E, data: E, lun: b.subarray(8, 16),
    itt: b.readUInt32BE(16), ttt: b.readUInt32BE(20), statSn: b.readUInt32BE(24), expCmdSn: b.readUInt32BE(28),
    maxCmdSn: b.readUInt32BE(32), dataSn: b.readUInt32BE(36), bufferOffset: b.readUInt32BE(40), residualCount: b.readUInt32BE(44),
  };
}

let sink: unknown;

function readerOf(digests: DigestSettings): { feed: (chunks: Buffer[]) => void } {
  const reader = new PduReader((r) => { sink = r; });
  reader.digests = digests;
  reader.maxDataSegmentLength = KIB128;
  return { feed: (chunks) => { for (const c of chunks) reader.push(c); } };
}

/** The wire bytes of one 128 KiB Data-In cut into 64 KiB socket reads. */
function chunked(digests: DigestSettings): Buffer[] {
  const wire = Buffer.concat(framePdu(dataIn, digests));
  const out: Buffer[] = [];
  for (let at = 0; at < wire.length; at += 65536) out.push(wire.subarray(at, at + 65536));
  return out;
}

export function pduSuite(): Benchmark.Suite {
  const none = { header: false, data: false };
  const both = { header: true, data: true };
  const plainChunks = chunked(none);
  const digestChunks = chunked(both);
  const plainReader = readerOf(none);
  const digestReader = readerOf(both);
  return new Benchmark.Suite('pdu')
    .add('decodePdu SCSI Command (binary-parser)', () => { sink = decodePdu(cmdBhs); })
    .add('decode SCSI Command by hand (comparison only)', () => { sink = decodeScsiCommandByHand(cmdBhs); })
    .add('decodePdu Data-In (binary-parser)', () => { sink = decodePdu(dataInBhs); })
    .add('decode Data-In by hand (comparison only)', () => { sink = decodeDataInByHand(dataInBhs); })
    .add('decodePdu R2T', () => { sink = decodePdu(r2tBhs); })
    .add('encodeBhs SCSI Command', () => { sink = encodeBhs(scsiCommand); })
    .add('encodeBhs Data-In', () => { sink = encodeBhs(dataIn); })
    .add('encodeBhs R2T', () => { sink = encodeBhs(r2t); })
    .add('framePdu Data-In 128 KiB, no digests', () => { sink = framePdu(dataIn, none); })
    .add('framePdu Data-In 128 KiB, header+data CRC32C', () => { sink = framePdu(dataIn, both); })
    .add('PduReader Data-In 128 KiB in 64 KiB reads, no digests', () => plainReader.feed(plainChunks))
    .add('PduReader Data-In 128 KiB in 64 KiB reads, header+data CRC32C', () => digestReader.feed(digestChunks));
}

export function consume(): unknown {
  return sink;
}
