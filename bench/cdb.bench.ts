// CDB decoder benchmarks (target/scsi/cdb.ts) on fixed READ(10) and WRITE(16) CDBs.
import Benchmark from 'benchmark';
import { decodeRw } from '../target/scsi/cdb';

const read10 = Buffer.from([0x28, 0x08, 0x00, 0x12, 0x34, 0x56, 0x00, 0x00, 0x80, 0x00]);
const write16 = Buffer.from([0x8a, 0x08, 0, 0, 0, 1, 0x23, 0x45, 0x67, 0x89, 0, 0, 0x01, 0x00, 0x00, 0x00]);

let sink: unknown;

export function cdbSuite(): Benchmark.Suite {
  return new Benchmark.Suite('cdb')
    .add('decodeRw READ(10)', () => { sink = decodeRw(read10, 10); })
    .add('decodeRw WRITE(16)', () => { sink = decodeRw(write16, 16); });
}

export function consume(): unknown {
  return sink;
}
