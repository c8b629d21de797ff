import assert from 'node:assert/strict';
import type { Dkc } from '../../../firmware/dkc';
import { VirtualClock } from '../../../firmware/kernel/clock';
import type { EmulatedBays } from '../../../emulator/hardware/bays';
import { openDkc } from '../../../emulator/rack/build';
import { parseConfig } from '../../../emulator/rack/config';
import { HDD_DEFAULTS } from '../../../emulator/hardware/timing';
import { pattern, prng, silentLog, tmpDirs } from '../../helpers/common';

// issue 3: on the virtual clock, a rebuild of a large group on modelled HDDs takes hours of
// drive and pacing time, yet finishes in seconds of real time: time jumps whenever the rack
// is waiting only on its clock. Replay a run with SEED=...
const SEED = process.env.SEED !== undefined ? Number(process.env.SEED) : 20261103;
const STRIPE_BYTES = 4096;
/** Rows per member: 64 MiB / 4 KiB (sparse files; only the rows written hold data). */
const DISK_BYTES = 64 * 1024 * 1024;
/**
 * Rest between steps of 8 rows. 2 s makes the rebuild take over an hour of virtual time; the real
 * cost per row (about 0.25 ms here) does not depend on it, so at 50 ms the ratio is only ~25x.
 */
const PACE_MS = 2000;
/** The test's own status poll, on the virtual clock. */
const POLL_MS = 1000;
/** Slack for the few positioning delays (first I/O on each drive, 3 x seek + half a turn each). */
const POSITIONING_SLACK_MS = 4 * (3 * HDD_DEFAULTS.averageSeekMs + 30000 / HDD_DEFAULTS.rpm);
/** As firmware/raid/correction-copy.ts has it: rows rebuilt between two pace sleeps. */
const ROWS_PER_STEP = 8;
/** Bound on the poll loop: virtual seconds allowed for the rebuild. */
const POLLS_MAX = (24 * 3600 * 1000) / POLL_MS;
const WRITES = 48;
const WRITE_BLOCKS = 16;

const yaml = (seed: number) => `
dkcs:
  - name: vr
    serial: 31
    seed: ${seed}
    rebuild: { paceMs: ${PACE_MS} }
    cache: { mode: off } # reads after the rebuild come from the drives
    raidGroups:
      - { name: g, level: 5, stripeSize: 4KiB, disks: { count: 4, size: 64MiB, timing: hdd } }
    spares: { count: 1, size: 64MiB, timing: hdd }
    volumes:
      - { name: v, group: g, size: 192MiB }
    targets:
      - name: iqn.2026-11.dev.dkc-emu:vr
        portals: ["127.0.0.1:0"]
        luns: [ { lun: 0, volume: v } ]
`;

/** Real milliseconds since t0 (process.hrtime: the test measures the host, the DKC never does). */
function realMsSince(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

describe('virtual clock: rebuild of a large RAID 5 group on HDD timing', () => {
  let dkc: Dkc;
  const tmp = tmpDirs();
  after(async () => {
    if (dkc) await dkc.kernel.runUntil(dkc.close());
  });

  it('finishes in hours of virtual time with no real waiting, and the data reads back', async () => {
    console.log(`      seed ${SEED} (replay with SEED=${SEED})`);
    const r = parseConfig(yaml(SEED), 'vr.yaml');
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
    const clock = new VirtualClock();
    dkc = await openDkc(r.config.dkcs[0], tmp.make('vrebuild'), silentLog, { clock });
    const k = dkc.kernel;
    const ldev = dkc.ldevByName('v');
    const group = dkc.status().raidGroups[0];
    const rowCount = group.rowCount;
    assert.equal(rowCount, DISK_BYTES / STRIPE_BYTES);

    // Known data spread over the whole group, at seeded places.
    const rnd = prng(SEED);
    const writes = Array.from({ length: WRITES }, (_x, i) => {
      const lba = Math.floor(rnd() * (ldev.blockCount - WRITE_BLOCKS));
      return { lba, data: pattern(ldev.blockSize, lba, WRITE_BLOCKS, i + 1) };
    });
    // Later writes win where two overlap: expect what the last writer wrote, block by block.
    const expected = new Map<number, Buffer>();
    for (const w of writes) {
      for (let b = 0; b < WRITE_BLOCKS; b++) expected.set(w.lba + b, w.data.subarray(b * ldev.blockSize, (b + 1) * ldev.blockSize));
    }
    await k.runUntil((async () => {
      for (const w of writes) await ldev.write(w.lba, w.data, { fua: false });
    })());

    // Fail member 1; the correction-copy task takes the spare.
    (dkc.bays as EmulatedBays).bay('g-1')!.faults.fail();
    await k.runUntil(dkc.driveChanged('g-1', 'failed'));
    assert.equal(dkc.status().raidGroups[0].members[1].state, 'failed');

    const v0 = clock.now();
    const t0 = process.hrtime.bigint();
    let polls = 0;
    const done = k.runUntil((async () => {
      for (; polls < POLLS_MAX; polls++) {
        const slot = dkc.status().raidGroups[0].members[1];
        if (slot.state === 'normal') return slot;
        await k.clock.sleep(POLL_MS);
      }
      throw new Error(`rebuild not done after ${POLLS_MAX} polls: ${JSON.stringify(dkc.status().raidGroups[0].rebuild)}`);
    })());
    const slot = await done;
    const realMs = realMsSince(t0);
    const virtualMs = clock.now() - v0;

    // Lower bound: a pace sleep after every step of 8 rows, and per row at least the transfer of
    // one chunk read from the survivors (in parallel) and then one chunk written to the spare,
    // at the HDD model's sustained rate (seeks and rotation left out: sequential rows pay neither).
    const steps = Math.ceil(rowCount / ROWS_PER_STEP);
    const transferMs = STRIPE_BYTES / (HDD_DEFAULTS.transferMBps * 1000);
    const lowerBoundMs = steps * PACE_MS + rowCount * 2 * transferMs;
    const task = dkc.status().tasks.find((t) => t.name === 'correction-copy')!;
    console.log(
      `      ${rowCount} rows -> ${slot.drive}: virtual ${virtualMs.toFixed(0)} ms (lower bound ${lowerBoundMs.toFixed(0)} ms), ` +
        `real ${realMs.toFixed(0)} ms, ratio ${(virtualMs / realMs).toFixed(0)}x; ` +
        `correction-copy runs ${task.runs}, waits ${task.waits}, busy ${task.busyMs.toFixed(0)} ms; ${task.detail}`,
    );
    assert.equal(slot.drive, 'spare-0');
    assert.ok(virtualMs >= lowerBoundMs, `virtual ${virtualMs} ms < lower bound ${lowerBoundMs} ms`);
    // ... and time moved only by that: no jumps while real I/O was in flight.
    assert.ok(virtualMs <= lowerBoundMs + POSITIONING_SLACK_MS + POLL_MS, `virtual ${virtualMs} ms > ${lowerBoundMs} + slack`);
    assert.ok(virtualMs >= 3600_000, `virtual ${virtualMs} ms: not an hours-long rebuild`);
    assert.ok(realMs < virtualMs / 100, `real ${realMs} ms is not much less than virtual ${virtualMs} ms`);
    // The task slept once per step (plus its idle polls) and ran once after each sleep.
    assert.ok(task.waits >= steps, `correction-copy waits ${task.waits} < steps ${steps}`);
    assert.ok(task.runs >= steps, `correction-copy runs ${task.runs} < steps ${steps}`);
    // Busy (virtual) time is the drives' modelled time only: had time jumped while real I/O was in
    // flight (a RAID table save, a file read), a pace or poll interval would show up here.
    const driveMs = rowCount * 2 * transferMs;
    assert.ok(task.busyMs >= driveMs && task.busyMs <= driveMs + POSITIONING_SLACK_MS, `correction-copy busy ${task.busyMs} ms, drives ${driveMs} ms`);
    assert.match(task.detail ?? '', /rebuilt g slot 1 -> spare-0/);
    assert.equal(dkc.status().raidGroups[0].state, 'normal');

    // The data reads back identical, also with the rebuilt slot's drive the only way to it:
    // fail another member so reads of its chunks reconstruct through spare-0.
    const readAll = async () => {
      for (const [lba, want] of expected) {
        const got = await ldev.read(lba, 1);
        assert.ok(got.equals(want), `LBA ${lba} differs after the rebuild`);
      }
    };
    await k.runUntil(readAll());
    (dkc.bays as EmulatedBays).bay('g-2')!.faults.fail();
    await k.runUntil(dkc.driveChanged('g-2', 'failed'));
    await k.runUntil(readAll());
  });
});
