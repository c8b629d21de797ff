import assert from 'node:assert/strict';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import * as vm from 'node:vm';
import type { Dkc } from '../../firmware/dkc';
import { Clock, RealClock, VirtualClock } from '../../firmware/kernel/clock';
import type { EmulatedBays } from '../../emulator/hardware/bays';
import { openDkc } from '../../emulator/rack/build';
import { parseConfig } from '../../emulator/rack/config';
import { pattern, prng, silentLog, tmpDirs } from '../helpers/common';

// STYLE.md: firmware/ and emulator/ read time and randomness only through the kernel. The static
// scan (no-clock.test.ts) reads the sources; this test watches a running DKC: every host source
// of time, timers and randomness is wrapped for the length of a scenario, each call's caller is
// taken from its stack, and a caller under dist/firmware or dist/emulator fails the test unless
// it is the kernel's clock (or the management API's token, a credential).

/** The compiled tree the callers live in (tests run from dist/test/firmware). */
const DIST = path.resolve(__dirname, '..', '..');
/** Files allowed to touch the host, each for its reason (as in no-clock.test.ts). */
const EXEMPT = new Set([
  path.join('firmware', 'kernel', 'clock.js'), // the kernel's clock: the one door to real time
  path.join('emulator', 'rack', 'mgmt.js'), // the management API token is a credential
]);
const GUARDED_DIRS = ['firmware', 'emulator'];
/** Deep enough to get past node's own frames to the caller. */
const STACK_FRAMES_MAX = 40;

/** The file of the first frame of a V8 stack that is neither node's own nor this guard's. */
export function callerFile(stack: string, self = __filename): string | undefined {
  for (const line of stack.split('\n')) {
    const m = /^\s+at (?:.*\()?((?:file:\/\/)?[^()\s]+?):\d+:\d+\)?$/.exec(line);
    if (!m) continue;
    const file = m[1].startsWith('file://') ? new URL(m[1]).pathname : m[1];
    if (file.startsWith('node:') || file.startsWith('internal/') || !path.isAbsolute(file) || file === self) continue;
    return file;
  }
  return undefined;
}

/** Whether a call from that file breaks the rule. */
export function classify(file: string | undefined): 'allowed' | 'forbidden' {
  if (file === undefined) return 'allowed';
  const rel = path.relative(DIST, file);
  if (rel.startsWith('..') || path.isAbsolute(rel)) return 'allowed';
  const top = rel.split(path.sep)[0];
  return GUARDED_DIRS.includes(top) && !EXEMPT.has(rel) ? 'forbidden' : 'allowed';
}

interface HostCall {
  api: string;
  caller: string | undefined;
  verdict: 'allowed' | 'forbidden';
  stack: string;
}

type AnyFn = (...args: unknown[]) => unknown;

/** Wraps every host source of time and randomness until restore(); calls are recorded. */
class HostTimeGuard {
  readonly calls: HostCall[] = [];
  private readonly undo: (() => void)[] = [];

  constructor() {
    try {
      this.wrapAll();
    } catch (err) {
      this.restore();
      throw err;
    }
  }

  private wrapAll(): void {
    const crypto = require('node:crypto') as Record<string, unknown> & { webcrypto: object };
    const timers = require('node:timers') as Record<string, unknown>;
    const timersPromises = require('node:timers/promises') as Record<string, unknown>;
    this.wrap(Date, 'now', 'Date.now');
    this.wrap(Math, 'random', 'Math.random');
    this.wrap(performance, 'now', 'performance.now');
    this.wrapHrtime();
    for (const f of ['randomBytes', 'randomUUID', 'randomInt', 'randomFill', 'randomFillSync', 'getRandomValues']) this.wrap(crypto, f, `crypto.${f}`);
    for (const f of ['getRandomValues', 'randomUUID']) {
      this.wrap(crypto.webcrypto, f, `webcrypto.${f}`);
      if (globalThis.crypto !== crypto.webcrypto) this.wrap(globalThis.crypto, f, `globalThis.crypto.${f}`);
    }
    for (const f of ['setTimeout', 'setInterval', 'setImmediate']) {
      this.wrap(globalThis, f, f);
      if (timers[f] !== (globalThis as Record<string, unknown>)[f]) this.wrap(timers, f, `timers.${f}`);
      this.wrap(timersPromises, f, `timers/promises.${f}`);
    }
  }

  get violations(): HostCall[] {
    return this.calls.filter((c) => c.verdict === 'forbidden');
  }

  private record(api: string, wrapper: AnyFn): void {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = STACK_FRAMES_MAX;
    const holder: { stack?: string } = {};
    Error.captureStackTrace(holder, wrapper);
    Error.stackTraceLimit = limit;
    const stack = holder.stack ?? '';
    const caller = callerFile(stack);
    this.calls.push({ api, caller, verdict: classify(caller), stack });
  }

  private wrap(obj: object, key: string, api: string): void {
    const target = obj as Record<string, unknown>;
    const original = target[key];
    if (typeof original !== 'function') return;
    const own = Object.getOwnPropertyDescriptor(obj, key);
    // node:crypto's getRandomValues is a fixed getter that calls webcrypto's, which is wrapped.
    if (own && !own.configurable) return;
    const guard = this;
    const wrapper = function (this: unknown, ...args: unknown[]): unknown {
      guard.record(api, wrapper as AnyFn);
      return (original as AnyFn).apply(this, args);
    };
    // Keep what hangs off the original (util.promisify.custom on setTimeout, ...).
    for (const k of Reflect.ownKeys(original)) {
      if (k === 'length' || k === 'name' || k === 'prototype') continue;
      const d = Object.getOwnPropertyDescriptor(original, k)!;
      Object.defineProperty(wrapper, k, d);
    }
    Object.defineProperty(obj, key, { value: wrapper, writable: true, configurable: true, enumerable: own?.enumerable ?? false });
    this.undo.push(() => {
      if (own) Object.defineProperty(obj, key, own);
      else delete target[key];
    });
  }

  private wrapHrtime(): void {
    const original = process.hrtime;
    const originalBigint = process.hrtime.bigint;
    const guard = this;
    const hrtime = function (time?: [number, number]): [number, number] {
      guard.record('process.hrtime', hrtime as unknown as AnyFn);
      return original(time);
    } as NodeJS.HRTime;
    const bigint = function (): bigint {
      guard.record('process.hrtime.bigint', bigint);
      return originalBigint();
    };
    hrtime.bigint = bigint;
    process.hrtime = hrtime;
    this.undo.push(() => {
      process.hrtime = original;
    });
  }

  restore(): void {
    while (this.undo.length > 0) this.undo.pop()!();
  }
}

/** Run body with the guard in place; everything is restored whatever happens. */
async function guarded<T>(body: () => Promise<T>): Promise<{ value: T; guard: HostTimeGuard }> {
  const guard = new HostTimeGuard();
  try {
    return { value: await body(), guard };
  } finally {
    guard.restore();
  }
}

/** Each forbidden (api, caller) once, with its count and first stack; '' when there is none. */
function report(guard: HostTimeGuard): string {
  const seen = new Map<string, { n: number; stack: string }>();
  for (const c of guard.violations) {
    const k = `${c.api} from ${c.caller}`;
    const e = seen.get(k);
    if (e) e.n++;
    else seen.set(k, { n: 1, stack: c.stack });
  }
  return [...seen].map(([k, e]) => `${k} (${e.n}x)\n${e.stack}`).join('\n\n');
}

/** Calls by api and caller (relative to dist), for the log. */
function summary(guard: HostTimeGuard): string {
  const n = new Map<string, number>();
  for (const c of guard.calls) {
    const k = `${c.api}<-${c.caller ? path.relative(DIST, c.caller) : '?'}`;
    n.set(k, (n.get(k) ?? 0) + 1);
  }
  return [...n].map(([k, v]) => `${k} ${v}`).join(', ');
}

describe('firmware and emulator take no time or randomness from the host (dynamic)', () => {
  describe('the guard itself', () => {
    it('finds the caller past node frames and its own', () => {
      const stack = [
        'Error',
        `    at wrapper (${__filename}:10:5)`,
        '    at listOnTimeout (node:internal/timers:573:17)',
        '    at process.processTimers (node:internal/timers:514:7)',
        `    at async RaidTable.save (${path.join(DIST, 'firmware', 'raid-table.js')}:40:9)`,
        `    at Context.<anonymous> (${path.join(DIST, 'test', 'x.test.js')}:1:1)`,
      ].join('\n');
      assert.equal(callerFile(stack), path.join(DIST, 'firmware', 'raid-table.js'));
      assert.equal(callerFile(`Error\n    at ${path.join(DIST, 'emulator', 'hardware', 'disk.js')}:3:4`), path.join(DIST, 'emulator', 'hardware', 'disk.js'));
      assert.equal(callerFile('Error\n    at node:internal/main:1:1'), undefined);
    });

    it('classifies firmware and emulator callers as forbidden, the clock, mgmt and the rest as allowed', () => {
      assert.equal(classify(path.join(DIST, 'firmware', 'correction-copy.js')), 'forbidden');
      assert.equal(classify(path.join(DIST, 'firmware', 'kernel', 'kernel.js')), 'forbidden');
      assert.equal(classify(path.join(DIST, 'emulator', 'hardware', 'timing.js')), 'forbidden');
      assert.equal(classify(path.join(DIST, 'firmware', 'kernel', 'clock.js')), 'allowed');
      assert.equal(classify(path.join(DIST, 'emulator', 'rack', 'mgmt.js')), 'allowed');
      assert.equal(classify(path.join(DIST, 'test', 'firmware', 'dkc.test.js')), 'allowed');
      assert.equal(classify(path.join(DIST, '..', 'node_modules', 'mocha', 'lib', 'runner.js')), 'allowed');
      assert.equal(classify(undefined), 'allowed');
    });

    it('sees the kernel clock use the host timers and lets it', async () => {
      const { guard } = await guarded(async () => {
        await new RealClock().sleep(1);
        await new VirtualClock().yieldToHost();
        new RealClock().now();
      });
      const clockJs = path.join(DIST, 'firmware', 'kernel', 'clock.js');
      for (const api of ['setTimeout', 'setImmediate', 'performance.now']) {
        const c = guard.calls.find((x) => x.api === api && x.caller === clockJs);
        assert.ok(c, `${api} from clock.js not recorded: ${JSON.stringify(guard.calls.map((x) => [x.api, x.caller]))}`);
        assert.equal(c.verdict, 'allowed');
      }
      assert.equal(report(guard), '');
    });

    it('catches a call made from code under dist/firmware, and restores every original', async () => {
      const originals = [Date.now, Math.random, performance.now, process.hrtime, process.hrtime.bigint, setTimeout, setImmediate, setInterval];
      // Code compiled under a firmware file name (no file written): its frames carry that name.
      const probe = vm.runInThisContext('(() => [Date.now(), Math.random(), process.hrtime.bigint()])', {
        filename: path.join(DIST, 'firmware', 'guard-probe.js'),
      }) as () => unknown[];
      const { guard } = await guarded(async () => probe());
      assert.deepEqual(guard.violations.map((c) => c.api), ['Date.now', 'Math.random', 'process.hrtime.bigint']);
      assert.deepEqual([Date.now, Math.random, performance.now, process.hrtime, process.hrtime.bigint, setTimeout, setImmediate, setInterval], originals);
    });
  });

  describe('a running DKC', () => {
    const tmp = tmpDirs();
    const SEED = process.env.SEED !== undefined ? Number(process.env.SEED) : 7031;
    const yaml = (timing: string, paceMs: number) => `
dkcs:
  - name: nh
    serial: 32
    seed: ${SEED}
    rebuild: { paceMs: ${paceMs} }
    raidGroups:
      - { name: g, level: 6, stripeSize: 4KiB, disks: { count: 5, size: 2MiB, timing: ${timing} } }
    spares: { count: 1, size: 2MiB, timing: ${timing} }
    volumes:
      - { name: v, group: g, size: 6MiB }
    targets:
      - name: iqn.2026-11.dev.dkc-emu:nh
        portals: ["127.0.0.1:0"]
        luns: [ { lun: 0, volume: v } ]
`;

    /** Power on, write, read, fail a member, rebuild onto the spare, read again, power off. */
    async function scenario(clock: Clock, timing: string, paceMs: number): Promise<void> {
      const r = parseConfig(yaml(timing, paceMs), 'nh.yaml');
      assert.ok(r.ok);
      let dkc: Dkc | undefined;
      const drive = <T>(p: Promise<T>) => (clock instanceof VirtualClock ? dkc!.kernel.runUntil(p) : p);
      dkc = await openDkc(r.config.dkcs[0], tmp.make('nohost'), silentLog, { clock });
      try {
        const ldev = dkc.ldevByName('v');
        const rnd = prng(SEED);
        const writes = Array.from({ length: 16 }, (_x, i) => {
          const lba = Math.floor(rnd() * (ldev.blockCount - 8));
          return { lba, data: pattern(ldev.blockSize, lba, 8, i + 1) };
        });
        await drive(Promise.all(writes.map((w) => ldev.write(w.lba, w.data, { fua: w.lba % 2 === 0 }))));
        await drive(Promise.all(writes.map((w) => ldev.read(w.lba, 8))));
        (dkc.bays as EmulatedBays).bay('g-3')!.faults.fail();
        await drive(dkc.driveChanged('g-3', 'failed'));
        const d = dkc;
        await drive((async () => {
          for (let i = 0; i < 600 && d.status().raidGroups[0].members[3].state !== 'normal'; i++) await d.kernel.clock.sleep(100);
        })());
        assert.equal(dkc.status().raidGroups[0].members[3].drive, 'spare-0');
        const last = writes[writes.length - 1];
        assert.ok((await drive(ldev.read(last.lba, 8))).equals(last.data));
        await drive(dkc.flush());
      } finally {
        const d = dkc;
        dkc = undefined;
        await (clock instanceof VirtualClock ? d.kernel.runUntil(d.close()) : d.close());
      }
    }

    it(`on the virtual clock with HDD timing: only the clock touches the host (seed ${SEED})`, async () => {
      console.log(`      seed ${SEED} (replay with SEED=${SEED})`);
      const { guard } = await guarded(() => scenario(new VirtualClock(), 'hdd', 20));
      console.log(`      host calls: ${summary(guard)}`);
      assert.equal(report(guard), '');
      // The guard saw the clock at work (runUntil's host turns), so it was in place.
      assert.ok(guard.calls.some((c) => c.api === 'setImmediate' && c.verdict === 'allowed'));
    });

    it('on the real clock with SSD timing: only the clock touches the host', async () => {
      const { guard } = await guarded(() => scenario(new RealClock(), 'ssd', 0));
      console.log(`      host calls: ${summary(guard)}`);
      assert.equal(report(guard), '');
      assert.ok(guard.calls.some((c) => c.api === 'setTimeout' && c.verdict === 'allowed'));
    });
  });
});
