// The pair table (seed 003 claim 14 lists pair tables among the management tables; seed 002
// Fig. 2: user volume, secondary volume, difference bitmap), kept in the data directory so a
// restart finds every pair in the state it was left in. Whole-document atomic writes
// (firmware/durable.ts), serialized, like the RAID table. The difference bitmaps are not in it:
// each pair's bitmap is a BitmapStore file (firmware/bitmap-store.ts) named after the pair.
import type { BlockExtent } from '../block-bitmap';
import { JsonDocumentFile } from '../durable';

const FORMAT = 'dkc-emu-pair-table/1';

/**
 * SMPL is a volume in no pair (no row). COPY: an initial copy or a resync is under way (host
 * writes go to both volumes). PAIR: duplex. PSUS: split (all of the volume, or listed areas).
 * PSUE: suspended by a failure; only a full copy is trusted again.
 */
export type PairState = 'SMPL' | 'COPY' | 'PAIR' | 'PSUS' | 'PSUE';
export const PAIR_STATES: readonly PairState[] = ['SMPL', 'COPY', 'PAIR', 'PSUS', 'PSUE'];

/** Which way the copier copies: primary to secondary, or back (reverse resync). */
export type CopyDirection = 'forward' | 'reverse';

export interface PairRow {
  id: string;
  /** LDEV numbers. */
  primary: number;
  secondary: number;
  /** Consistency group: its pairs split at one instant. */
  group?: string;
  state: Exclude<PairState, 'SMPL'>;
  direction: CopyDirection;
  /** Blocks one difference-bitmap bit stands for. */
  blocksPerBit: number;
  /** Split areas in blocks, rounded out to whole units (seed 002 pair split bit map 10). */
  splitAreas: BlockExtent[];
  /** Blocks to copy when the current copy started (progress = 1 - remaining / this). */
  copyTotalBlocks: number;
  /** Why the pair is PSUE. */
  reason?: string;
  /**
   * Split during a copy (seed 004): the split image bitmap file exists, naming the units the
   * secondary still has to get from the primary to hold the image of the split instant.
   */
  imagePending?: boolean;
}

interface Doc {
  format: string;
  pairs: PairRow[];
}

export class PairTable {
  private constructor(private readonly doc: JsonDocumentFile, readonly rows: PairRow[]) {}

  static async open(file: string): Promise<PairTable> {
    const doc = new JsonDocumentFile(file);
    const found = await doc.read();
    return new PairTable(doc, found === undefined ? [] : check(file, found).pairs);
  }

  /** Resolves when this and every earlier change is durable (rows are snapshotted now). */
  save(): Promise<void> {
    return this.doc.write({ format: FORMAT, pairs: this.rows } satisfies Doc);
  }

  idle(): Promise<void> {
    return this.doc.idle();
  }
}

function check(file: string, found: unknown): Doc {
  const doc = found as Doc;
  if (doc?.format !== FORMAT || !Array.isArray(doc.pairs)) throw new Error(`${file}: not a ${FORMAT} document`);
  for (const r of doc.pairs) {
    const ok =
      typeof r.id === 'string' &&
      Number.isSafeInteger(r.primary) &&
      Number.isSafeInteger(r.secondary) &&
      ['COPY', 'PAIR', 'PSUS', 'PSUE'].includes(r.state) &&
      ['forward', 'reverse'].includes(r.direction) &&
      Number.isSafeInteger(r.blocksPerBit) &&
      r.blocksPerBit > 0 &&
      Array.isArray(r.splitAreas) &&
      Number.isSafeInteger(r.copyTotalBlocks);
    if (!ok) throw new Error(`${file}: bad pair row ${JSON.stringify(r)}`);
  }
  return doc;
}
