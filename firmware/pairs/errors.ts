// Errors of pair operations: typed, so the SCSI vendor-command layer can map each to sense data
// (a command in the wrong pair state, a bad block range, a volume that cannot be paired).
import type { PairState } from './table';
import { WriteProtectedError } from '../volume';

export type PairErrorCode = 'STATE' | 'NOT_FOUND' | 'VOLUME' | 'RANGE' | 'EXISTS' | 'NO_GROUP';

export class PairError extends Error {
  constructor(readonly code: PairErrorCode, message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** The operation is not allowed in the pair's current state (or while a copy is under way). */
export class PairStateError extends PairError {
  constructor(
    readonly pairId: string,
    readonly state: PairState,
    readonly operation: string,
    readonly why = `needs ${operation === 'split' ? 'PAIR' : 'another state'}`,
  ) {
    super('STATE', `pair ${pairId}: ${operation} not allowed in state ${state} (${why})`);
  }
}

export class PairNotFoundError extends PairError {
  constructor(readonly pairId: string) {
    super('NOT_FOUND', `no pair ${pairId}`);
  }
}

/** A group operation on a pair that is in no consistency group. */
export class PairGroupError extends PairError {
  constructor(readonly pairId: string) {
    super('NO_GROUP', `pair ${pairId} is in no consistency group`);
  }
}

/** A pair id already in use. */
export class PairExistsError extends PairError {
  constructor(readonly pairId: string) {
    super('EXISTS', `pair ${pairId} already exists`);
  }
}

/** The volumes cannot form a pair (missing, the same, different geometry, already paired). */
export class PairVolumeError extends PairError {
  constructor(message: string) {
    super('VOLUME', message);
  }
}

/** A block range outside the volume, empty, or not whole numbers. */
export class PairRangeError extends PairError {
  constructor(readonly lba: number, readonly blocks: number, readonly volumeBlocks: number) {
    super('RANGE', `block range [${lba}, +${blocks}) is not a non-empty range within ${volumeBlocks} blocks`);
  }
}

/**
 * A host write to a secondary volume where it is mirrored (COPY, PAIR, or outside split areas).
 * A WriteProtectedError, so the host hears DATA PROTECT like for any write-protected blocks.
 */
export class SecondaryProtectedError extends WriteProtectedError {
  readonly code = 'SVOL_PROTECTED';
  constructor(readonly pairId: string, readonly state: PairState, lba: number) {
    super(lba, `pair ${pairId} (${state}): secondary volume is write-protected at LBA ${lba}`);
    this.name = 'SecondaryProtectedError';
  }
}
