// What a DKC reports about itself (the management interface's status, `dkc status`).
// Plain JSON-able data: the management API sends it as it is.
import type { MemberStatus, RaidGroupState, RaidLevel } from './drive';
import type { TaskStats } from './kernel/kernel';
import type { PairStatus } from './pairs/manager';

export interface DriveStatus {
  name: string;
  sizeBytes: number;
  /** As the fault decorator has it: ok, failed, or pulled out of its bay. */
  health: 'ok' | 'failed' | 'pulled';
  /** Injected latency per I/O (dkc disk slow), 0 when none. */
  slowMs: number;
  /** Sectors with an injected media error still pending. */
  mediaErrors: number;
}

export interface RaidGroupStatus {
  name: string;
  level: RaidLevel;
  state: RaidGroupState;
  sizeBytes: number;
  stripeSizeBytes: number;
  rowCount: number;
  members: (MemberStatus & { health: DriveStatus['health'] })[];
  /** A rebuild under way: which slot, rows done, percent. */
  rebuild?: { slot: number; drive: string; rowsDone: number; rowCount: number; percent: number };
}

export interface VolumeStatus {
  ldev: number;
  name: string;
  group: string;
  blockSize: number;
  blockCount: number;
  /** Blocks that hold data (thin volumes). */
  allocatedBlocks: number;
}

export interface DkcStatus {
  name: string;
  serial: number;
  cache: { mode: string; sizeBytes: number; usedBytes: number; dirtyBytes: number; hits: number; misses: number };
  raidGroups: RaidGroupStatus[];
  /** Drives in the spare pool, not (yet) in any group. */
  spares: DriveStatus[];
  volumes: VolumeStatus[];
  luns: { port: string; lun: number; ldev: number }[];
  /** Volume pairs (firmware/pairs/manager.ts): state, copy progress, split areas. */
  pairs: PairStatus[];
  tasks: TaskStats[];
  /** Virtual or real clock time of the DKC's kernel, ms. */
  clockMs: number;
}
