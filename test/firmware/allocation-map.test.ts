import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { AllocationMap, PAGE_BITS } from '../../firmware/allocation-map';
import { tmpDirs } from '../helpers/common';

const ID = { serial: 1, ldev: 2, blockSize: 512, blockCount: 3 * PAGE_BITS - 100 };

/** Sequence numbers of both slots of a page, read from the file (0: never written). */
async function slotSeqs(file: string, page: number): Promise<[number, number]> {
  const buf = await fs.readFile(file);
  const seq = (slot: number) => Number(buf.readBigUInt64LE(4096 + (page * 2 + slot) * 4096 + 8));
  return [seq(0), seq(1)];
}

describe('AllocationMap', () => {
  const tmp = tmpDirs();

  it('a new map is all clear; the file is sparse and of fixed size', async () => {
    const file = path.join(tmp.make(), 'a.map');
    const m = await AllocationMap.open(file, ID);
    assert.equal(m.bitmap.count(), 0);
    assert.equal((await fs.stat(file)).size, AllocationMap.fileBytes(ID.blockCount));
    assert.equal(AllocationMap.pageCount(ID.blockCount), 3);
    await m.close();
  });

  it('concurrent updates of one page coalesce: one write in flight, one queued (seq 1 and 2)', async () => {
    const file = path.join(tmp.make(), 'a.map');
    const m = await AllocationMap.open(file, ID);
    await Promise.all(Array.from({ length: 100 }, (_x, i) => m.update(i * 7, 1, true, false)));
    await m.close();
    assert.deepEqual(await slotSeqs(file, 0), [1, 2]);
    const again = await AllocationMap.open(file, ID);
    assert.equal(again.bitmap.count(), 100);
    await again.close();
  });

  it('an update spanning pages writes each page; an unchanged update writes nothing', async () => {
    const file = path.join(tmp.make(), 'a.map');
    const m = await AllocationMap.open(file, ID);
    await m.update(PAGE_BITS - 5, PAGE_BITS + 10, true, false); // pages 0, 1 and 2
    assert.equal(m.update(PAGE_BITS, 10, true, false), null, 'already set and persisted: nothing to wait for');
    await m.close();
    for (const p of [0, 1, 2]) assert.deepEqual(await slotSeqs(file, p), [1, 0], `page ${p}`);
  });

  it('bits past the end of the volume stay clear whatever the file says', async () => {
    const file = path.join(tmp.make(), 'a.map');
    const m = await AllocationMap.open(file, ID);
    await m.update(ID.blockCount - 1, 1, true, false);
    await m.close();
    const again = await AllocationMap.open(file, ID);
    assert.equal(again.bitmap.findNextClear(ID.blockCount - 1), ID.blockCount);
    assert.equal(again.bitmap.count(), 1);
    await again.close();
  });

  it('another identity is refused, naming what differs', async () => {
    const file = path.join(tmp.make(), 'a.map');
    await (await AllocationMap.open(file, ID)).close();
    await assert.rejects(AllocationMap.open(file, { ...ID, ldev: 3 }), /allocation map was made for ldev 2, the configuration says 3/);
    await fs.writeFile(file, Buffer.alloc(8192, 1));
    await assert.rejects(AllocationMap.open(file, ID), /not a dkc-emu allocation map/);
  });
});

describe('AllocationMap under concurrent updates', () => {
  const tmp = tmpDirs();

  it('sets and clears from 64 workers: what the file holds after close equals RAM', async function () {
    this.timeout(60_000);
    const file = path.join(tmp.make(), 'a.map');
    const m = await AllocationMap.open(file, ID);
    let x = 12345;
    const next = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0);
    const worker = async (w: number) => {
      for (let i = 0; i < 150; i++) {
        const bit = next() % 4000; // all on page 0: maximal contention
        const p = m.update(bit, 1 + (next() % 3), next() % 3 !== 0, w % 8 === 0 && i % 10 === 0);
        if (p) await p;
        if (i % 7 === w % 7) await Promise.resolve(); // vary where in the microtask queue we land
      }
    };
    await Promise.all(Array.from({ length: 64 }, (_x, w) => worker(w)));
    const ram = Buffer.from(m.bitmap.bytes());
    await m.close();
    const again = await AllocationMap.open(file, ID);
    assert.ok(again.bitmap.bytes().equals(ram));
    await again.close();
  });
});
