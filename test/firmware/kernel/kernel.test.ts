import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { VirtualClock } from '../../../firmware/kernel/clock';
import { Kernel } from '../../../firmware/kernel/kernel';
import { Prng } from '../../../firmware/kernel/prng';

describe('VirtualClock', () => {
  it('stands still until advanced, then fires due timers in deadline order', async () => {
    const clock = new VirtualClock();
    const fired: string[] = [];
    void clock.sleep(30).then(() => fired.push('b'));
    void clock.sleep(10).then(() => fired.push('a'));
    void clock.sleep(30).then(() => fired.push('c'));
    await clock.yieldToHost();
    assert.deepEqual(fired, []);
    clock.advanceTo(10);
    await clock.yieldToHost();
    assert.deepEqual(fired, ['a']);
    assert.equal(clock.advanceToNext(), true);
    await clock.yieldToHost();
    assert.deepEqual(fired, ['a', 'b', 'c']);
    assert.equal(clock.now(), 30);
    assert.equal(clock.advanceToNext(), false);
  });

  it('an aborted sleep resolves at once and leaves no timer behind', async () => {
    const clock = new VirtualClock();
    const ac = new AbortController();
    const p = clock.sleep(1000, ac.signal);
    ac.abort();
    await p;
    assert.equal(clock.nextDeadline(), undefined);
    assert.equal(clock.now(), 0);
  });

  it('refuses to go back in time', () => {
    const clock = new VirtualClock(100);
    assert.throws(() => clock.advanceTo(99), /cannot go back/);
  });
});

describe('Prng', () => {
  it('replays the same sequence from the same seed, and another from another seed', () => {
    const seq = (seed: number) => Array.from({ length: 8 }, ((r) => () => r.uint32())(new Prng(seed)));
    assert.deepEqual(seq(42), seq(42));
    assert.notDeepEqual(seq(42), seq(43));
  });

  it('int(n) stays in [0, n) and covers it', () => {
    const r = new Prng(7);
    const seen = new Set<number>();
    for (let i = 0; i < 1000; i++) {
      const v = r.int(10);
      assert.ok(Number.isInteger(v) && v >= 0 && v < 10);
      seen.add(v);
    }
    assert.equal(seen.size, 10);
  });

  it('fork(label) is independent of how much the parent has drawn', () => {
    const a = new Prng(5);
    const b = new Prng(5);
    b.uint32();
    assert.equal(a.fork('rebuild').uint32(), b.fork('rebuild').uint32());
    assert.notEqual(a.fork('rebuild').uint32(), a.fork('scrub').uint32());
  });
});

describe('Kernel', () => {
  it('counts runs and busy time of a request program on the clock', async () => {
    const clock = new VirtualClock();
    const k = new Kernel({ clock });
    const read = k.program('host-read');
    const p = k.run(read, async () => {
      assert.equal(k.busy, 1);
      return 7;
    });
    assert.equal(await p, 7);
    assert.equal(k.busy, 0);
    assert.deepEqual(k.stats(), [{ name: 'host-read', kind: 'request', runs: 1, busyMs: 0, waits: 0, active: 0 }]);
  });

  it('a request that throws is still counted as ended', async () => {
    const k = new Kernel({ clock: new VirtualClock() });
    const w = k.program('host-write');
    await assert.rejects(k.run(w, async () => { throw new Error('boom'); }), /boom/);
    await assert.rejects(k.run(w, () => { throw new Error('sync'); }), /sync/);
    assert.equal(k.busy, 0);
    assert.equal(w.active, 0);
    assert.equal(w.runs, 2);
  });

  it('a perpetual task that sleeps between steps finishes in virtual time with no real waiting', async () => {
    const clock = new VirtualClock();
    const k = new Kernel({ clock });
    let steps = 0;
    k.start('rebuild', async (t) => {
      while (steps < 3600) {
        steps++;
        t.report(`${steps} steps`);
        await t.sleep(1000); // one step a second: an hour of virtual time
      }
    });
    await k.runUntil(k.join('rebuild'));
    assert.equal(steps, 3600);
    assert.equal(clock.now(), 3600 * 1000);
    const s = k.stats().find((x) => x.name === 'rebuild')!;
    assert.equal(s.waits, 3600);
    assert.equal(s.active, 0);
    assert.equal(s.detail, '3600 steps');
  });

  it('virtual time does not move while a task is busy with real work', async () => {
    const clock = new VirtualClock();
    const k = new Kernel({ clock });
    const times: number[] = [];
    k.start('poller', async (t) => {
      while (!t.signal.aborted) await t.sleep(10);
    });
    const work = k.run(k.program('host-write'), async () => {
      times.push(clock.now());
      for (let i = 0; i < 20; i++) await fs.readFile(__filename); // real I/O over many host turns
      times.push(clock.now());
    });
    await k.runUntil(work);
    assert.equal(times[0], times[1]);
    await k.stop();
  });

  it('a busy task waiting only on virtual time (a modelled drive) lets time move', async () => {
    const clock = new VirtualClock();
    const k = new Kernel({ clock });
    const work = k.run(k.program('host-read'), async () => {
      for (let i = 0; i < 100; i++) await clock.sleep(8.5); // seek + rotation of a modelled disk
    });
    await k.runUntil(work);
    assert.equal(clock.now(), 850);
  });

  it('wake() cuts a sleep short; stop() ends every perpetual task', async () => {
    const clock = new VirtualClock();
    const k = new Kernel({ clock });
    let passes = 0;
    k.start('destage', async (t) => {
      while (!t.signal.aborted) {
        passes++;
        await t.sleep(60_000);
      }
    });
    await clock.yieldToHost();
    k.wake('destage');
    await clock.yieldToHost();
    assert.equal(passes, 2);
    assert.equal(clock.now(), 0);
    assert.equal(k.running('destage'), true);
    await k.stop();
    assert.equal(k.running('destage'), false);
  });

  it('a task that throws stops with the error in its detail and the others run on', async () => {
    const k = new Kernel({ clock: new VirtualClock() });
    k.start('scrub', async () => {
      throw new Error('disk on fire');
    });
    await k.join('scrub');
    assert.match(k.stats().find((s) => s.name === 'scrub')!.detail!, /disk on fire/);
    assert.equal(k.busy, 0);
    assert.throws(() => {
      k.start('x', async (t) => { await t.sleep(1); });
      k.start('x', async () => undefined);
    }, /already running/);
    await k.stop();
  });
});
