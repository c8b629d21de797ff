// The pair operations as the host interface asks for them: by LDEV number, the way a vendor SCSI
// command names a volume (the addressed LU's, or one named on a command device). target/scsi
// sees pairs only through this interface and the typed errors of pair-errors.ts.
import type { BlockExtent } from '../block-bitmap';
import type { PairStatus } from './manager';

export type { BlockExtent } from '../block-bitmap';
export type { PairStatus } from './manager';
export * from './errors';

/** Pair names and consistency group names: 1-32 of A-Z a-z 0-9 _ -, starting with a letter or digit. */
export const PAIR_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/;

export interface PairControl {
  /** A new pair of two LDEVs; the initial copy runs in the background. */
  create(primary: number, secondary: number, o?: { id?: string; group?: string }): Promise<PairStatus>;
  /**
   * Split the pair the LDEV is in (either volume): the whole volume, listed areas, or (group)
   * every pair of its consistency group at one instant. Resolves once the split is in effect.
   */
  splitVolume(ldev: number, o?: { areas?: BlockExtent[]; group?: boolean }): Promise<void>;
  /** Resync (or, reverse, restore the primary from the secondary); resolves once scheduled. */
  resyncVolume(ldev: number, o?: { areas?: BlockExtent[]; reverse?: boolean; group?: boolean }): Promise<void>;
  deleteVolume(ldev: number): Promise<void>;
  /** The pair the LDEV is in, or null (SMPL). */
  pairOf(ldev: number): PairStatus | null;
  list(): PairStatus[];
  /** The NAA identifier of an LDEV (VPD 83h), so a host can find a partner volume among its LUs. */
  naa(ldev: number): Buffer | undefined;
}
