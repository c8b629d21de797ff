// The DKC's multitask kernel (seed 001 Fig. 3: the CPU runs a multitask OS; the ROM holds the
// programs). ROM tasks are async functions on one scheduler that owns the clock and the seeded
// random generator:
//   - perpetual tasks (destage, rebuild, scrub, later remote copy) start at power-on and loop,
//     "waiting a few milliseconds and looking again" (the seeds) with TaskContext.sleep;
//   - request tasks (host read, host write) run once per host request through Kernel.run.
// Each program keeps counters (runs, busy time, waits) that status shows.
//
// A task is busy from when it runs until it sleeps or ends. On a VirtualClock, runUntil()
// moves time to the next timer only when no task is busy, so a rebuild that sleeps between
// steps finishes in virtual time while its real I/O still completes in order.
import type pino from 'pino';
import { Clock, RealClock, VirtualClock } from './clock';
import { Prng } from './prng';

export type TaskKind = 'perpetual' | 'request';

/** One ROM program's counters, as status shows them. */
export interface TaskStats {
  name: string;
  kind: TaskKind;
  /** Requests served (request tasks) or loop passes between sleeps (perpetual tasks). */
  runs: number;
  /** Clock time spent running, not sleeping. */
  busyMs: number;
  /** Times the task slept ("wait and look again"). */
  waits: number;
  /** Instances running now (requests in flight; 0 or 1 for a perpetual task). */
  active: number;
  /** A perpetual task's own words on where it is (e.g. rebuild progress), or why it stopped. */
  detail?: string;
}

/** What a perpetual task body sees of the kernel. */
export interface TaskContext {
  readonly name: string;
  /** Aborted when the kernel stops: the body should return soon after. */
  readonly signal: AbortSignal;
  readonly clock: Clock;
  readonly random: Prng;
  /** Not busy for ms of clock time (or until woken or stopped); counts a wait. */
  sleep(ms: number): Promise<void>;
  /** Set the detail status shows for this task. */
  report(detail: string): void;
}

/** A ROM program's counters; request tasks hold one to avoid a lookup per I/O. */
export class Program {
  runs = 0;
  busyMs = 0;
  waits = 0;
  active = 0;
  detail: string | undefined;

  constructor(readonly name: string, readonly kind: TaskKind) {}

  stats(): TaskStats {
    const s: TaskStats = { name: this.name, kind: this.kind, runs: this.runs, busyMs: this.busyMs, waits: this.waits, active: this.active };
    if (this.detail !== undefined) s.detail = this.detail;
    return s;
  }
}

interface Perpetual {
  program: Program;
  done: Promise<void>;
  /** Cuts the current sleep short (wake()). */
  wakeup: AbortController | null;
}

export interface KernelOptions {
  clock?: Clock;
  seed?: number;
  log?: pino.Logger;
}

/** Host turns with busy tasks but no file I/O before runUntil lets virtual time move. */
const QUIET_TURNS = 3;
/** Bound on runUntil's idle turns with no timer pending before it gives up (a hung test). */
const IDLE_TURNS_MAX = 1_000_000;

export class Kernel {
  readonly clock: Clock;
  readonly random: Prng;
  private readonly log: pino.Logger | undefined;
  private readonly programs = new Map<string, Program>();
  private readonly perpetual = new Map<string, Perpetual>();
  private readonly stopping = new AbortController();
  /** Task instances running and not sleeping. */
  private busyCount = 0;

  constructor(opts: KernelOptions = {}) {
    this.clock = opts.clock ?? new RealClock();
    this.random = new Prng(opts.seed ?? 1);
    this.log = opts.log;
  }

  get busy(): number {
    return this.busyCount;
  }

  get stopped(): boolean {
    return this.stopping.signal.aborted;
  }

  /** The counters of a ROM program, registered on first use. */
  program(name: string, kind: TaskKind = 'request'): Program {
    let p = this.programs.get(name);
    if (!p) {
      p = new Program(name, kind);
      this.programs.set(name, p);
    }
    return p;
  }

  /** Run one request through a ROM program (host read, host write, ...). */
  run<T>(program: Program, body: () => Promise<T>): Promise<T> {
    const started = this.clock.now();
    program.runs++;
    program.active++;
    this.busyCount++;
    const end = () => {
      program.active--;
      this.busyCount--;
      program.busyMs += this.clock.now() - started;
    };
    let p: Promise<T>;
    try {
      p = body();
    } catch (err) {
      end();
      return Promise.reject(err);
    }
    return p.finally(end);
  }

  /** Start a perpetual task; it runs until its body returns or the kernel stops. */
  start(name: string, body: (t: TaskContext) => Promise<void>): void {
    if (this.perpetual.has(name)) throw new Error(`task ${name} is already running`);
    const program = this.program(name, 'perpetual');
    const task: Perpetual = { program, done: Promise.resolve(), wakeup: null };
    let since = this.clock.now();
    const ctx: TaskContext = {
      name,
      signal: this.stopping.signal,
      clock: this.clock,
      random: this.random.fork(name),
      sleep: async (ms) => {
        program.busyMs += this.clock.now() - since;
        program.waits++;
        this.busyCount--;
        task.wakeup = new AbortController();
        try {
          await this.clock.sleep(ms, AbortSignal.any([task.wakeup.signal, this.stopping.signal]));
        } finally {
          task.wakeup = null;
          this.busyCount++;
          program.runs++;
          since = this.clock.now();
        }
      },
      report: (detail) => {
        program.detail = detail;
      },
    };
    program.runs++;
    program.active = 1;
    this.busyCount++;
    task.done = (async () => {
      try {
        await body(ctx);
      } catch (err) {
        program.detail = `stopped by an error: ${err instanceof Error ? err.message : String(err)}`;
        this.log?.error({ task: name, err }, 'ROM task stopped by an error');
      } finally {
        program.busyMs += this.clock.now() - since;
        program.active = 0;
        this.busyCount--;
        this.perpetual.delete(name);
      }
    })();
    this.perpetual.set(name, task);
  }

  /** Whether a perpetual task of that name is running. */
  running(name: string): boolean {
    return this.perpetual.has(name);
  }

  /** Cut a perpetual task's sleep short: work has arrived for it. */
  wake(name: string): void {
    this.perpetual.get(name)?.wakeup?.abort();
  }

  /** Resolves when the named perpetual task has ended (at once if it is not running). */
  async join(name: string): Promise<void> {
    await this.perpetual.get(name)?.done;
  }

  stats(): TaskStats[] {
    return [...this.programs.values()].map((p) => p.stats());
  }

  /**
   * Wait for p. On a VirtualClock, time jumps to the next timer once the host is quiet: no task
   * is busy, or the busy ones have had no file I/O in flight for QUIET_TURNS host turns (they
   * wait on virtual timers, e.g. a drive's modelled service time). Sleeping tasks thus run as fast
   * as their real work allows. On a RealClock this is just `await p`.
   */
  async runUntil<T>(p: Promise<T>): Promise<T> {
    const clock = this.clock;
    if (!(clock instanceof VirtualClock)) return p;
    let settled = false;
    const watched = p.finally(() => {
      settled = true;
    });
    watched.catch(() => undefined);
    let quietTurns = 0;
    let idleTurns = 0;
    while (!settled) {
      await clock.yieldToHost();
      if (settled) break;
      const quiet = this.busyCount === 0 || !clock.hostIoInFlight();
      quietTurns = quiet ? quietTurns + 1 : 0;
      if (quietTurns < (this.busyCount === 0 ? 1 : QUIET_TURNS)) continue;
      quietTurns = 0;
      if (clock.advanceToNext()) idleTurns = 0;
      else if (++idleTurns > IDLE_TURNS_MAX) throw new Error('runUntil: nothing is running and no timer is pending');
    }
    return watched;
  }

  /** Stop every perpetual task and wait for them to end. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await Promise.all([...this.perpetual.values()].map((t) => t.done));
  }
}
