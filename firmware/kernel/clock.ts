// The kernel's clock (STYLE.md: time moves only by the clock). This file is the one place in
// firmware/ and emulator/ that touches the host's time and timers; test/firmware/no-clock.test.ts
// holds every other file to that.
//   RealClock:    wall time (performance.now) and real timers, for a running rack.
//   VirtualClock: time stands still until the kernel advances it, so a whole rack runs on it
//                 reproducibly and an hour of virtual time costs no real waiting.
import assert from 'node:assert';
import { performance } from 'node:perf_hooks';

export interface Clock {
  /** Milliseconds since an arbitrary origin (fractions allowed). */
  now(): number;
  /** Resolves once ms of this clock's time have passed; a signal that aborts resolves it early. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /** Resolves after the host has run pending I/O callbacks (a macrotask turn), without moving time. */
  yieldToHost(): Promise<void>;
}

export class RealClock implements Clock {
  now(): number {
    return performance.now();
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  yieldToHost(): Promise<void> {
    return new Promise((resolve) => setImmediate(resolve));
  }
}

interface Timer {
  at: number;
  /** Insertion order: timers due at the same instant fire first-come first-served. */
  seq: number;
  resolve: () => void;
}

/** Virtual time: moves only by advanceTo()/advanceToNext() (Kernel.runUntil calls them). */
export class VirtualClock implements Clock {
  private time = 0;
  private seq = 0;
  /** Pending timers, kept sorted by (at, seq); few enough that insertion sort is fine. */
  private readonly timers: Timer[] = [];

  constructor(startMs = 0) {
    this.time = startMs;
  }

  now(): number {
    return this.time;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const timer: Timer = { at: this.time + Math.max(0, ms), seq: this.seq++, resolve: () => undefined };
      const onAbort = () => {
        const i = this.timers.indexOf(timer);
        if (i >= 0) this.timers.splice(i, 1);
        resolve();
      };
      timer.resolve = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      let i = this.timers.length;
      while (i > 0 && this.timers[i - 1].at > timer.at) i--;
      this.timers.splice(i, 0, timer);
    });
  }

  yieldToHost(): Promise<void> {
    return new Promise((resolve) => setImmediate(resolve));
  }

  /**
   * Whether the host has file I/O in flight (libuv fs requests). A task waiting only on virtual
   * timers (a timing model's service time) is busy but not doing real work: time may move.
   */
  hostIoInFlight(): boolean {
    return process.getActiveResourcesInfo().some((r) => r.startsWith('FSReq') || r === 'CloseReq');
  }

  /** When the earliest pending timer is due, or undefined if none is pending. */
  nextDeadline(): number | undefined {
    return this.timers[0]?.at;
  }

  /** Move time to ms, firing every timer due by then in order. */
  advanceTo(ms: number): void {
    assert(ms >= this.time, `virtual time cannot go back from ${this.time} to ${ms}`);
    this.time = ms;
    while (this.timers.length > 0 && this.timers[0].at <= ms) this.timers.shift()!.resolve();
  }

  /** Jump to the earliest pending timer and fire every timer due then; false if none is pending. */
  advanceToNext(): boolean {
    const next = this.nextDeadline();
    if (next === undefined) return false;
    this.advanceTo(Math.max(next, this.time));
    return true;
  }
}
