import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import type { RaidGroupDevice } from '../../../firmware/drive';
import {
  decodeLogHeader, encodeLogHeader, encodeRowRecord, ParityLog, PLOG_HEADER_BYTES, scanRowLog,
} from '../../../firmware/raid/parity-log';
import { tmpDirs } from '../../helpers/common';

/** A record built field by field, apart from the encoder (firmware/raid/parity-log.ts, "Format"). */
function recordByHand(seq: number, generation: number, group: string, row: number, lo: number, data: Buffer[]): Buffer {
  const name = Buffer.from(group);
  const len = data[0].length;
  const fixed = Buffer.alloc(48);
  fixed.write('PREC', 0, 'latin1');
  fixed.writeBigUInt64LE(BigInt(seq), 8);
  fixed.writeBigUInt64LE(BigInt(generation), 16);
  fixed.writeBigUInt64LE(BigInt(row), 24);
  fixed.writeUInt32LE(lo, 32);
  fixed.writeUInt32LE(len, 36);
  fixed[40] = data.length;
  fixed[41] = name.length;
  const b = Buffer.concat([fixed, name, ...data]);
  b.writeUInt32LE(crc32c(b.subarray(8)), 4);
  return b;
}

function headerByHand(generation: number): Buffer {
  const b = Buffer.alloc(64);
  b.write('DKCPLOG1', 0, 'latin1');
  b.writeUInt32LE(1, 8);
  b.writeUInt32LE(64, 12);
  b.writeBigUInt64LE(BigInt(generation), 16);
  b.writeUInt32LE(crc32c(b.subarray(0, 60)), 60);
  return b;
}

const cols = (n: number, len: number, fill: number) => Array.from({ length: n }, (_x, i) => Buffer.alloc(len, fill + i));

/** A parity group as replay sees it: the redoRow calls it gets. */
function fakeGroup(name: string): RaidGroupDevice & { redone: [number, number, Buffer[]][] } {
  const redone: [number, number, Buffer[]][] = [];
  return {
    name, level: 5, redone,
    redoRow: async (row: number, lo: number, data: Buffer[]) => {
      redone.push([row, lo, data.map((b) => Buffer.from(b))]);
    },
  } as unknown as RaidGroupDevice & { redone: [number, number, Buffer[]][] };
}

describe('parity log (firmware/raid/parity-log.ts)', () => {
  const tmp = tmpDirs();

  describe('format', () => {
    it('header and record encode to the bytes of the format, and decode back', () => {
      assert.ok(encodeLogHeader(7).equals(headerByHand(7)));
      assert.equal(decodeLogHeader(headerByHand(2 ** 33 + 5)), 2 ** 33 + 5);
      const data = cols(3, 1024, 0x41);
      const rec = encodeRowRecord({ seq: 9, group: 'rg5', row: 300, lo: 2048, data }, 7);
      assert.ok(rec.equals(recordByHand(9, 7, 'rg5', 300, 2048, data)));
      const scan = scanRowLog(Buffer.concat([headerByHand(7), rec]));
      assert.equal(scan.generation, 7);
      assert.equal(scan.validBytes, PLOG_HEADER_BYTES + rec.length);
      assert.deepEqual(scan.records.map((r) => [r.seq, r.group, r.row, r.lo, r.data.length]), [[9, 'rg5', 300, 2048, 3]]);
      scan.records[0].data.forEach((b, i) => assert.ok(b.equals(data[i])));
    });

    it('a torn tail, a bad CRC, an older generation or a seq out of order ends the valid part', () => {
      const a = recordByHand(1, 4, 'rg', 0, 0, cols(2, 512, 1));
      const b = recordByHand(2, 4, 'rg', 1, 0, cols(2, 512, 2));
      const head = headerByHand(4);
      assert.equal(scanRowLog(Buffer.concat([head, a, b.subarray(0, b.length - 1)])).records.length, 1);
      const bad = Buffer.from(b);
      bad[100] ^= 1;
      assert.equal(scanRowLog(Buffer.concat([head, a, bad])).records.length, 1);
      assert.equal(scanRowLog(Buffer.concat([head, a, recordByHand(2, 3, 'rg', 1, 0, cols(2, 512, 2))])).records.length, 1);
      assert.equal(scanRowLog(Buffer.concat([head, b, a])).records.length, 1);
      assert.equal(scanRowLog(Buffer.concat([headerByHand(5), a, b])).records.length, 0);
      const torn = headerByHand(4);
      torn[20] ^= 1;
      assert.equal(scanRowLog(Buffer.concat([torn, a])).generation, null);
    });
  });

  describe('appends, replay, checkpoints', () => {
    it('a record is in the file when append resolves; power-on replays the records in order and empties the file', async () => {
      const file = path.join(tmp.make('plog'), 'parity-log');
      const log = await ParityLog.open(file);
      assert.equal((await fs.stat(file)).size, PLOG_HEADER_BYTES);
      const t1 = await log.append('rg5', 4, 512, cols(3, 1024, 1));
      const t2 = await log.append('rg5', 9, 0, cols(3, 512, 7));
      assert.ok(log.live('rg5', 4) && log.live('rg5', 9) && !log.live('rg5', 5) && !log.live('rg6', 4));
      // kill -9 now: what the file holds is what a restart finds (the writes never ended).
      const after = await ParityLog.open(file);
      assert.deepEqual(after.pending.map((r) => [r.seq, r.row, r.lo]), [[t1.seq, 4, 512], [t2.seq, 9, 0]]);
      assert.ok(after.live('rg5', 4));
      const g = fakeGroup('rg5');
      assert.equal(await after.replay((n) => (n === 'rg5' ? g : undefined)), 2);
      assert.deepEqual(g.redone.map(([row, lo, d]) => [row, lo, d.length, d[0][0]]), [[4, 512, 3, 1], [9, 0, 3, 7]]);
      assert.equal((await fs.stat(file)).size, PLOG_HEADER_BYTES);
      assert.ok(!after.live('rg5', 4));
      await after.close();
      log.end(t1);
      log.end(t2);
      await log.close();
    });

    it('a record of a group that is not there (or is not RAID 5/6) stops power-on', async () => {
      const file = path.join(tmp.make('plog'), 'parity-log');
      const log = await ParityLog.open(file);
      log.end(await log.append('gone', 1, 0, cols(2, 512, 1)));
      await log.close(); // no checkpoint sync was set: close retires the record
      const l2 = await ParityLog.open(file);
      assert.equal(l2.pending.length, 0);
      l2.end(await l2.append('gone', 1, 0, cols(2, 512, 1)));
      const l3 = await ParityLog.open(file);
      await assert.rejects(l3.replay(() => undefined), /for no group gone/);
      await l3.close();
      assert.equal(scanRowLog(await fs.readFile(file)).records.length, 1, 'a record not redone is kept');
      await l2.close();
    });

    it('a full file waits for the writes under way, flushes the groups, starts over; then rows are unlogged', async () => {
      const file = path.join(tmp.make('plog'), 'parity-log');
      const log = await ParityLog.open(file, { fileBytesMax: 8192 });
      let syncs = 0;
      log.setCheckpointSync(async () => {
        syncs++;
      });
      const t1 = await log.append('rg', 1, 0, cols(3, 1024, 1));
      const t2 = await log.append('rg', 2, 0, cols(3, 1024, 2));
      let resolved = false;
      const p3 = log.append('rg', 3, 0, cols(3, 1024, 3)).then((t) => {
        resolved = true;
        return t;
      });
      for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
      assert.ok(!resolved && syncs === 0, 'the checkpoint waits for the writes of records 1 and 2');
      log.end(t1);
      for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
      assert.ok(!resolved && syncs === 0);
      log.end(t2);
      const t3 = await p3;
      assert.equal(syncs, 1);
      assert.ok(!log.live('rg', 1) && !log.live('rg', 2) && log.live('rg', 3));
      assert.deepEqual(scanRowLog(await fs.readFile(file)).records.map((r) => r.row), [3]);
      assert.equal(log.stats.checkpoints, 1);
      log.end(t3);
      await log.close();
      assert.equal(syncs, 2);
      assert.equal((await fs.stat(file)).size, PLOG_HEADER_BYTES);
    });
  });
});
