// RAID groups over emulated drives: one logical, byte-addressed space per group (the
// RaidGroupDevice of firmware/drive.ts). The levels live in firmware/raid/:
//   base.ts          member slots and states, failing members, events, row locks, rebuild bookkeeping
//   striped.ts       RAID 0
//   mirror.ts        RAID 1 (n-way mirror) and RAID 10 (mirrored pairs, striped)
//   parity-group.ts  RAID 5 and RAID 6 (rotating P, and Q), left-symmetric as Linux md
// The firmware owns rebuild tasks, pacing, spares and progress; a group gives the per-row mechanics.
import type { Drive, RaidGroupDevice, RaidLevel, RowLog } from '../drive';
import { MemberInit, RaidGroupBase } from './base';
import { MirrorGroup } from './mirror';
import { ParityGroup } from './parity-group';
import { Raid0Group } from './striped';

export { MemberInit, RaidDataLost, RaidGroupBase } from './base';
export { MirrorGroup } from './mirror';
export { ParityGroup } from './parity-group';
export { Raid0Group } from './striped';

/** Bytes a group offers: whole rows (one stripe chunk per member) times the data chunks per row. */
export function raidCapacity(level: RaidLevel, diskCount: number, diskSizeBytes: number, stripeSizeBytes: number): number {
  switch (level) {
    case 0:
      return Raid0Group.capacity(diskCount, diskSizeBytes, stripeSizeBytes);
    case 1:
    case 10:
      return MirrorGroup.capacity(level, diskCount, diskSizeBytes, stripeSizeBytes);
    case 5:
    case 6:
      return ParityGroup.capacity(level, diskCount, diskSizeBytes, stripeSizeBytes);
  }
}

/**
 * A RAID group over drives (slot i = drives[i]). members: each slot's state as the firmware last
 * recorded it (omitted: all normal); a failed slot's drive is never touched, a rebuilding one is
 * trusted below its rebuiltRows. rowLog: RAID 5/6 log their degraded row writes there (the write
 * hole); without one they do not.
 */
export function createRaidGroup(
  name: string, level: RaidLevel, stripeSizeBytes: number, drives: Drive[], members?: MemberInit[], rowLog?: RowLog,
): RaidGroupDevice & RaidGroupBase {
  switch (level) {
    case 0:
      return new Raid0Group(name, stripeSizeBytes, drives, members);
    case 1:
    case 10:
      return new MirrorGroup(name, level, stripeSizeBytes, drives, members);
    case 5:
    case 6:
      return new ParityGroup(name, level, stripeSizeBytes, drives, members, rowLog);
  }
}
