// Write merging for one disk (the drive side of seed 001 Fig. 3's cache: many small host writes
// become few large disk writes). While a batch of writes is on its way to the disk, new writes
// queue; when the batch completes, the queue goes out as the next batch, with writes that touch
// end to end merged into one pwritev. Sequential 4 KiB writes at queue depth 32 then cost about
// one system call per few dozen writes instead of one each, which matters because every call
// is a round trip through the libuv thread pool.
//
// Rules that keep the disk right:
//   - Within a batch no two runs overlap, and batches go out one after the other, so writes
//     that overlap reach the disk in the order they were submitted (the DKC cache relies on it:
//     firmware/cache/cache.ts applies writes to RAM in submission order).
//   - A write is acknowledged when the run carrying it has been written (pwritev returned: the
//     data is in the OS page cache, so it survives kill -9); FUA parts also wait for a datasync
//     that started after that.
//   - A run that fails fails every part it carries; other runs of the batch are unaffected.

/** Bytes one merged write carries at most. */
export const MERGE_BYTES_MAX = 1024 * 1024;
/** Pieces (iovecs) in one merged write; Linux IOV_MAX is 1024. */
export const MERGE_PIECES_MAX = 512;
/** Separate runs sent together in one batch (each its own pwrite/pwritev). */
export const BATCH_RUNS_MAX = 64;

/** What the merger needs from the disk beneath. */
export interface WriteIo {
  /** One pwrite of data[dataOffset, +length) at offset, complete (short writes finished). */
  write(offset: number, data: Buffer, dataOffset: number, length: number): Promise<void>;
  /** One pwritev of the buffers, one after the other, at offset, complete. */
  writev(offset: number, buffers: Buffer[], length: number): Promise<void>;
  /** Everything written so far is on stable storage (coalesced fdatasync). */
  datasync(): Promise<void>;
}

interface Part {
  offset: number;
  length: number;
  /** Single-buffer parts keep (data, dataOffset); vectored parts keep their buffers. */
  data: Buffer | null;
  dataOffset: number;
  buffers: Buffer[] | null;
  fua: boolean;
  resolve: () => void;
  reject: (err: unknown) => void;
}

interface Run {
  offset: number;
  end: number;
  pieces: number;
  fua: boolean;
  parts: Part[];
}

export interface MergeStats {
  /** Writes submitted. */
  parts: number;
  /** Disk writes issued (pwrite or pwritev calls). */
  runs: number;
}

export class WriteMerger {
  /** Batches waiting to go out; the last one still takes new writes. */
  private readonly queue: Run[][] = [];
  /** Runs of the batch on its way to the disk (0: idle). */
  private inflight = 0;
  readonly stats: MergeStats = { parts: 0, runs: 0 };

  constructor(private readonly io: WriteIo) {}

  write(offset: number, data: Buffer, dataOffset: number, length: number, fua: boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      this.submit({ offset, length, data, dataOffset, buffers: null, fua, resolve, reject });
    });
  }

  writev(offset: number, buffers: Buffer[], length: number, fua: boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      this.submit({ offset, length, data: null, dataOffset: 0, buffers, fua, resolve, reject });
    });
  }

  /** Writes submitted and not yet acknowledged or failed. */
  get pending(): boolean {
    return this.inflight > 0 || this.queue.length > 0;
  }

  private submit(p: Part): void {
    this.stats.parts++;
    if (this.inflight === 0 && this.queue.length === 0) {
      // Idle disk: no reason to wait, out it goes alone.
      this.issue([newRun(p)]);
      return;
    }
    const batch = this.queue.length > 0 ? this.queue[this.queue.length - 1] : null;
    if (batch === null || !addToBatch(batch, p)) this.queue.push([newRun(p)]);
  }

  private issue(batch: Run[]): void {
    this.inflight = batch.length;
    this.stats.runs += batch.length;
    for (const run of batch) this.issueRun(run);
  }

  private issueRun(run: Run): void {
    const io = run.parts.length === 1 ? this.single(run.parts[0]) : this.io.writev(run.offset, gather(run), run.end - run.offset);
    io.then(
      () => this.written(run),
      (err: unknown) => {
        for (const p of run.parts) p.reject(err);
        this.runDone();
      },
    );
  }

  private single(p: Part): Promise<void> {
    return p.data !== null ? this.io.write(p.offset, p.data, p.dataOffset, p.length) : this.io.writev(p.offset, p.buffers!, p.length);
  }

  private written(run: Run): void {
    if (!run.fua) {
      for (const p of run.parts) p.resolve();
    } else {
      const synced = this.io.datasync();
      for (const p of run.parts) {
        if (!p.fua) p.resolve();
        else synced.then(p.resolve, p.reject);
      }
    }
    this.runDone();
  }

  private runDone(): void {
    if (--this.inflight > 0) return;
    const next = this.queue.shift();
    if (next) this.issue(next);
  }
}

function newRun(p: Part): Run {
  return { offset: p.offset, end: p.offset + p.length, pieces: piecesOf(p), fua: p.fua, parts: [p] };
}

function piecesOf(p: Part): number {
  return p.buffers === null ? 1 : p.buffers.length;
}

/**
 * Put p into the batch: merged onto a run it touches end to end, or as a run of its own. False if
 * it must wait for a later batch (it overlaps a run here, or the batch is full).
 */
function addToBatch(batch: Run[], p: Part): boolean {
  const start = p.offset;
  const end = p.offset + p.length;
  let after: Run | null = null;
  let before: Run | null = null;
  for (let i = batch.length - 1; i >= 0; i--) {
    const r = batch[i];
    if (r.offset < end && start < r.end) return false; // overlap: keep submission order on the disk
    if (r.end === start) after = r;
    else if (r.offset === end) before = r;
  }
  const pieces = piecesOf(p);
  if (after !== null && fits(after, p.length, pieces)) {
    after.parts.push(p);
    after.end = end;
    grow(after, p, pieces);
  } else if (before !== null && fits(before, p.length, pieces)) {
    before.parts.unshift(p);
    before.offset = start;
    grow(before, p, pieces);
  } else if (batch.length < BATCH_RUNS_MAX) {
    batch.push(newRun(p));
  } else {
    return false;
  }
  return true;
}

function grow(r: Run, p: Part, pieces: number): void {
  r.pieces += pieces;
  if (p.fua) r.fua = true;
}

function fits(r: Run, length: number, pieces: number): boolean {
  return r.end - r.offset + length <= MERGE_BYTES_MAX && r.pieces + pieces <= MERGE_PIECES_MAX;
}

/** The iovecs of a merged run, in disk order. */
function gather(run: Run): Buffer[] {
  const out: Buffer[] = [];
  for (const p of run.parts) {
    if (p.buffers !== null) {
      for (const b of p.buffers) out.push(b);
    } else {
      out.push(p.dataOffset === 0 && p.length === p.data!.length ? p.data! : p.data!.subarray(p.dataOffset, p.dataOffset + p.length));
    }
  }
  return out;
}
