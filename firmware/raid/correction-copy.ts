// The RAID maintenance ROM tasks of a DKC.
//
// Correction copy (rebuild): when a slot of a RAID group has failed, take a healthy spare from
// the pool (or the slot's own drive once it is replaced or back), reconstruct the slot row by row
// from redundancy, and make it a normal member again. Progress is saved in the RAID table every
// REBUILD_ROWS_PER_CHECKPOINT rows (behind the real progress, never ahead), so after a restart
// the rebuild resumes from there. Host I/O goes on throughout: each row is locked only while it
// is rebuilt, and the task sleeps paceMs between steps.
//
// Scrub: every intervalMs, read every row of every healthy group, check its redundancy and
// repair what disagrees.
import type { Dkc } from '../dkc';
import type { RaidGroupDevice } from '../drive';
import type { TaskContext } from '../kernel/kernel';

export interface RebuildOptions {
  /** Clock time to rest between steps, letting host I/O through (default 0: just yield). */
  paceMs?: number;
}

export interface ScrubOptions {
  /** A pass over every group starts this long after the previous one ended. */
  intervalMs: number;
  paceMs?: number;
}

/** Rows rebuilt between two saves of the rebuild cursor. */
const REBUILD_ROWS_PER_CHECKPOINT = 64;
/** Rows rebuilt or scrubbed per step (between sleeps). */
const ROWS_PER_STEP = 8;
/** How often the correction-copy task looks for work when nothing woke it. */
const REBUILD_POLL_MS = 1000;

interface RebuildJob {
  group: RaidGroupDevice;
  slot: number;
  /** The drive that will hold the slot. */
  drive: string;
  /** Taken from the spare pool (else: the slot's own drive, replaced or back). */
  fromSpares: boolean;
  /** Already rebuilding (resumed after a restart or an interruption). */
  resume: boolean;
}

export async function correctionCopy(dkc: Dkc, t: TaskContext, opts: RebuildOptions): Promise<void> {
  while (!t.signal.aborted) {
    const job = nextJob(dkc);
    if (!job) {
      await t.sleep(REBUILD_POLL_MS);
      continue;
    }
    await rebuild(dkc, t, job, opts.paceMs ?? 0);
  }
}

/** The first slot that can be rebuilt now: one rebuilding already, else a failed one with a drive to take it. */
function nextJob(dkc: Dkc): RebuildJob | undefined {
  const failed: { group: RaidGroupDevice; slot: number; drive: string }[] = [];
  for (const group of dkc.drive.all()) {
    if (group.state === 'failed') continue; // beyond what redundancy can rebuild
    const slots = dkc.raidTable.slots(group.name);
    for (let slot = 0; slot < slots.length; slot++) {
      const s = slots[slot];
      if (s.state === 'rebuilding') return { group, slot, drive: s.drive, fromSpares: false, resume: true };
      if (s.state === 'failed') failed.push({ group, slot, drive: s.drive });
    }
  }
  for (const f of failed) {
    if (dkc.bays.status(f.drive).health === 'ok') return { ...f, fromSpares: false, resume: false };
    const diskBytes = dkc.ram.raidGroup(f.group.name)!.diskSizeBytes;
    const spare = dkc.raidTable.spares.find((s) => {
      const st = dkc.bays.status(s);
      return st.health === 'ok' && st.sizeBytes >= diskBytes;
    });
    if (spare) return { ...f, drive: spare, fromSpares: true, resume: false };
  }
  return undefined;
}

async function rebuild(dkc: Dkc, t: TaskContext, job: RebuildJob, paceMs: number): Promise<void> {
  const { group, slot } = job;
  const table = dkc.raidTable;
  let row = 0;
  if (job.resume) {
    row = table.slots(group.name)[slot].rebuiltRows;
  } else {
    // A crash before the table names the new drive leaves the slot failed: the rebuild starts over.
    if (job.fromSpares) await table.removeSpare(job.drive);
    group.replaceMember(slot, dkc.bays.drive(job.drive), 0);
    await table.setSlot(group.name, slot, { drive: job.drive, state: 'rebuilding', rebuiltRows: 0 });
  }
  const label = `${group.name} slot ${slot} -> ${job.drive}`;
  let saved = row;
  try {
    while (row < group.rowCount) {
      if (t.signal.aborted) return; // shutting down: the table has the cursor
      const stepEnd = Math.min(group.rowCount, row + ROWS_PER_STEP);
      for (; row < stepEnd; row++) await group.rebuildRow(slot, row);
      if (row - saved >= REBUILD_ROWS_PER_CHECKPOINT) {
        await table.setSlot(group.name, slot, { drive: job.drive, state: 'rebuilding', rebuiltRows: row });
        saved = row;
      }
      t.report(`rebuilding ${label}: ${((row / group.rowCount) * 100).toFixed(1)}% (${row} of ${group.rowCount} rows)`);
      await t.sleep(paceMs);
    }
  } catch (err) {
    // The new drive or another member failed under the rebuild: the group's own failure
    // handling has recorded it; the next pass picks up whatever can still be rebuilt.
    t.report(`rebuild of ${label} stopped at row ${row}: ${(err as Error).message}`);
    return;
  }
  group.completeRebuild(slot);
  await table.setSlot(group.name, slot, { drive: job.drive, state: 'normal', rebuiltRows: 0 });
  t.report(`rebuilt ${label}`);
}

export async function scrub(dkc: Dkc, t: TaskContext, opts: ScrubOptions): Promise<void> {
  let passes = 0;
  let repaired = 0;
  while (!t.signal.aborted) {
    await t.sleep(opts.intervalMs);
    for (const group of dkc.drive.all()) {
      for (let row = 0; row < group.rowCount && !t.signal.aborted; ) {
        const stepEnd = Math.min(group.rowCount, row + ROWS_PER_STEP);
        for (; row < stepEnd; row++) if ((await group.scrubRow(row)) === 'repaired') repaired++;
        t.report(`pass ${passes + 1}: ${group.name} row ${row} of ${group.rowCount}; ${repaired} rows repaired so far`);
        await t.sleep(opts.paceMs ?? 0);
      }
    }
    passes++;
    t.report(`${passes} passes done; ${repaired} rows repaired`);
  }
}
