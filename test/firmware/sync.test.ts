import assert from 'node:assert/strict';
import { SyncCoalescer } from '../../firmware/sync';

/** A sync whose completion the test controls. */
function controlledSync() {
  const pending: (() => void)[] = [];
  let calls = 0;
  const coalescer = new SyncCoalescer(() => {
    calls++;
    return new Promise<void>((resolve) => pending.push(resolve));
  });
  return { coalescer, calls: () => calls, finishOne: () => pending.shift()!() };
}

const tick = () => new Promise<void>((r) => setImmediate(r));

describe('SyncCoalescer (group commit)', () => {
  it('callers during a running sync share one next sync, started after the running one ends', async () => {
    const c = controlledSync();
    let firstDone = false;
    let laterDone = 0;
    void c.coalescer.sync().then(() => (firstDone = true));
    for (let i = 0; i < 10; i++) void c.coalescer.sync().then(() => laterDone++);
    assert.equal(c.calls(), 1, 'only one sync runs');
    c.finishOne();
    await tick();
    assert.ok(firstDone);
    assert.equal(laterDone, 0, 'the first sync may predate their writes: they wait for the next');
    assert.equal(c.calls(), 2, 'one more sync for all ten');
    c.finishOne();
    await tick();
    assert.equal(laterDone, 10);
  });

  it('a failed sync fails its callers and the next one still runs', async () => {
    let n = 0;
    const c = new SyncCoalescer(async () => {
      if (n++ === 0) throw new Error('EIO');
    });
    const a = c.sync();
    const b = c.sync();
    await assert.rejects(a, /EIO/);
    await b;
    assert.equal(n, 2);
  });
});
