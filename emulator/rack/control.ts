// What the management interface can ask of a running rack (emulator/rack/mgmt.ts serves it over
// HTTP; tests call it directly): status, and the operator's hands on the drives.
import type { DkcStatus } from '../../firmware/status';

export interface RackStatus {
  rack: string;
  dkcs: DkcStatus[];
}

/**
 * fail: the drive breaks (every I/O fails until replaced); pull / insert: out of its bay and
 * back with its data; replace: a new blank drive in its bay; slow: latencyMs added to each I/O
 * (0 ends it); media-error: count sectors from sector (512-byte units on the drive) read back as
 * unrecoverable until written.
 */
export type DiskAction =
  | { action: 'fail' }
  | { action: 'pull' }
  | { action: 'insert' }
  | { action: 'replace' }
  | { action: 'slow'; latencyMs: number }
  | { action: 'media-error'; sector: number; count: number };

/** A request the rack refuses; status is the HTTP status the management API answers with. */
export class ControlError extends Error {
  constructor(readonly status: 400 | 404 | 409, message: string) {
    super(message);
  }
}

export interface RackControl {
  status(): RackStatus;
  disk(dkc: string, drive: string, a: DiskAction): Promise<void>;
}
