// Pairs in one DKC: a primary (user) volume mirrored to a secondary volume, after seed 002
// (first embodiment: pair split and resync with a difference bitmap, Figs. 2-3; third
// embodiment: split of listed areas only with a pair split bitmap, Figs. 5-7).
//
// Per pair, two bitmaps of the same unit (DIFF_UNIT_BYTES worth of blocks per bit):
//   diff  (seed 002 difference bit map 9): units where primary and secondary may differ, i.e.
//         what a copy or resync must copy. Persisted (BitmapStore, dirty protocol): a bit is set
//         in RAM, the file is marked dirty and that is durable before the host write that caused
//         it starts. A file left dirty by a crash loads as all ones (a full copy); one saved
//         clean at a copier checkpoint (no host write under way, data flushed) is trusted, so a
//         copy resumes where the checkpoint left it.
//   split (seed 002 pair split bit map 10): units that are split. The whole volume for a pair
//         split (PSUS), listed areas rounded out to whole units for an area split (seed 002
//         [0042] allows one bit per n blocks). Persisted as extents in the pair table.
// Host writes to the primary (seed 002 Fig. 6): in split units, set diff and write the primary
// only (step 64); elsewhere write both volumes before the acknowledgement (step 65), in COPY as
// in PAIR (simple and correct: the copier and host writes exclude each other per range).
// Host writes to a split secondary hold their range too, so a resync never copies a unit under
// a secondary write that would land after the copy.
// The copier (perpetual ROM task pair-copy) copies units set in diff and not split, in chunks of
// at most copyBlocksPerStep blocks, and clears them (seed 002 Fig. 7 steps 71-74).
// A split during a copy (seed 004: the split is reported at once, the copy goes on) keeps a third
// bitmap, the split image: units the secondary still lacks from the primary as of the split
// instant. Before the primary changes there, or the secondary is read or written there, the unit
// is copied and its bit cleared durably (seed 004 claims 12, 16); the copier completes the rest.
// The image file is saved after every change and only ever loses bits, so it is never stale in
// the unsafe direction; if it is lost, so is the image, and the pair is PSUE.
import * as path from 'node:path';
import type pino from 'pino';
import { BitmapStore, PersistentBitmap } from '../bitmap-store';
import { BlockBitmap, BlockExtent } from '../block-bitmap';
import type { Kernel, Program, TaskContext } from '../kernel/kernel';
import type { HostUpdate, Ldev } from '../ldev';
import { PAIR_NAME_RE, PairControl } from './control';
import {
  PairExistsError,
  PairGroupError,
  PairNotFoundError,
  PairRangeError,
  PairStateError,
  PairVolumeError,
  SecondaryProtectedError,
} from './errors';
import { PairRow, PairState, PairTable } from './table';

export * from './errors';
export type { PairState, CopyDirection } from './table';

/** Bytes of a volume one difference-bitmap bit stands for. */
export const DIFF_UNIT_BYTES = 64 * 1024;
/** Chunks with nothing mapped one copier step may run through before it rests. */
const UNMAPPED_CHUNKS_PER_STEP = 64;

export interface PairCopyOptions {
  /** Bound on the blocks one copier step copies (default 2048). */
  copyBlocksPerStep?: number;
  /** Clock time the copier rests between steps (default 1 ms). */
  paceMs?: number;
  /** How often the copier looks for work when nothing woke it (default 1000 ms). */
  idleMs?: number;
  /** Copier steps between two saves of a pair's difference bitmap (default 64). */
  stepsPerCheckpoint?: number;
}

export interface PairStatus {
  id: string;
  primary: number;
  secondary: number;
  group?: string;
  state: PairState;
  direction: 'forward' | 'reverse';
  splitAreas: BlockExtent[];
  /** Blocks the difference bitmap marks (units that may differ). */
  differenceBlocks: number;
  /** Blocks the copier has copied for this pair since the DKC powered on. */
  copiedBlocks: number;
  /**
   * Split during a copy (seed 004): the secondary is still getting the split instant's data of
   * the units it lacked then; `copy` is that copy's progress.
   */
  imagePending: boolean;
  copy: { totalBlocks: number; remainingBlocks: number; percent: number };
  reason?: string;
}

export interface PairManagerOptions {
  /** Directory for the pair table and the difference bitmaps. */
  dir: string;
  kernel: Kernel;
  /** The DKC's LDEVs by number (undefined: not configured). */
  ldev(n: number): Ldev | undefined;
  log: pino.Logger;
  copy?: PairCopyOptions;
}

/** A range some I/O holds on a pair (a host write, or the copier's chunk). */
interface Hold {
  lba: number;
  blocks: number;
  done: Promise<void>;
}

class Pair {
  /** Host writes under way (to the primary, or to a split secondary). */
  readonly inflight = new Set<Hold>();
  /** The copier's chunk under way. */
  copying: Hold | null = null;
  /** Where the copier goes on (a unit boundary). */
  cursor = 0;
  stepsSinceSave = 0;
  deleted = false;
  copiedBlocks = 0;
  /** Split during a copy: units the secondary lacks from the split instant (seed 004). */
  image: PersistentBitmap | null = null;
  /** Image copies, one at a time: a unit's bit is clear only once its copy is durable. */
  imageChain: Promise<void> = Promise.resolve();

  constructor(
    readonly row: PairRow,
    readonly p: Ldev,
    readonly s: Ldev,
    readonly diff: PersistentBitmap,
    readonly split: BlockBitmap,
  ) {}

  get bpb(): number {
    return this.split.blocksPerBit;
  }
}

export class PairManager implements PairControl {
  private readonly pairs = new Map<string, Pair>();
  private readonly byLdev = new Map<number, { pair: Pair; role: 'primary' | 'secondary' }>();
  private stopping = false;
  /** The copier's current step (quiesce waits for it). */
  private step: Promise<unknown> = Promise.resolve();
  /** Work was announced since the copier's current step began. */
  private kicked = false;
  /** The pair the copier's last chunk was of: the next step starts after it. */
  private lastCopied: Pair | null = null;
  private readonly copyOpts: Required<PairCopyOptions>;
  private readonly commandProgram: Program;

  private constructor(
    private readonly opts: PairManagerOptions,
    private readonly table: PairTable,
    private readonly store: BitmapStore,
  ) {
    this.commandProgram = opts.kernel.program('pair-command');
    const c = opts.copy ?? {};
    this.copyOpts = {
      copyBlocksPerStep: c.copyBlocksPerStep ?? 2048,
      paceMs: c.paceMs ?? 1,
      idleMs: c.idleMs ?? 1000,
      stepsPerCheckpoint: c.stepsPerCheckpoint ?? 64,
    };
  }

  /** Load the pair table and each pair's bitmaps, hook the volumes, start the copier. */
  static async open(opts: PairManagerOptions): Promise<PairManager> {
    const table = await PairTable.open(path.join(opts.dir, 'pair-table.json'));
    const m = new PairManager(opts, table, new BitmapStore(opts.dir));
    let changed = false;
    try {
      for (const row of table.rows) {
        const p = opts.ldev(row.primary);
        const s = opts.ldev(row.secondary);
        if (!p || !s) throw new Error(`pair ${row.id}: LDEV ${p ? row.secondary : row.primary} is not configured`);
        const diff = await m.store.open(bitmapName(row.id), { volumeBlocks: p.blockCount, blocksPerBit: row.blocksPerBit });
        const split = new BlockBitmap(p.blockCount, row.blocksPerBit);
        for (const a of row.splitAreas) split.markBlocks(a.lba, a.blocks);
        const pair = new Pair(row, p, s, diff, split);
        if (row.imagePending) changed = (await m.openImage(pair)) || changed;
        else await m.store.remove(imageName(row.id)); // left by a split that never completed
        if (!diff.trusted) {
          opts.log.warn({ pair: row.id, reason: diff.reason }, 'difference bitmap not trusted: every unit will be copied');
          // A pair that was duplex may have lost differences with the bitmap: copy everything.
          if (row.state === 'PAIR' || row.state === 'COPY') {
            row.state = 'COPY';
            row.copyTotalBlocks = p.blockCount;
            changed = true;
          }
        }
        m.attach(pair);
      }
      if (changed) await table.save();
    } catch (err) {
      await m.closeBitmaps();
      throw err;
    }
    opts.kernel.start('pair-copy', (t) => m.copyTask(t));
    return m;
  }

  // ---- operations -------------------------------------------------------------------------

  /** Create a pair: state COPY, an initial copy of every unit in the background, then PAIR. */
  create(primary: number, secondary: number, o: { id?: string; group?: string } = {}): Promise<PairStatus> {
    return this.command(() => this.createOp(primary, secondary, o));
  }

  private async createOp(primary: number, secondary: number, o: { id?: string; group?: string } = {}): Promise<PairStatus> {
    const id = o.id ?? `${primary}-${secondary}`;
    if (!PAIR_NAME_RE.test(id)) throw new PairVolumeError(`bad pair id ${JSON.stringify(id)}`);
    if (o.group !== undefined && !PAIR_NAME_RE.test(o.group)) throw new PairVolumeError(`bad group name ${JSON.stringify(o.group)}`);
    if (this.pairs.has(id)) throw new PairExistsError(id);
    const p = this.volume(primary);
    const s = this.volume(secondary);
    if (primary === secondary) throw new PairVolumeError(`LDEV ${primary} cannot be paired with itself`);
    if (p.blockSize !== s.blockSize || p.blockCount !== s.blockCount) {
      throw new PairVolumeError(`LDEVs ${primary} and ${secondary} differ in size (${p.blockCount}x${p.blockSize}, ${s.blockCount}x${s.blockSize})`);
    }
    for (const n of [primary, secondary]) if (this.byLdev.has(n)) throw new PairVolumeError(`LDEV ${n} is already in pair ${this.byLdev.get(n)!.pair.row.id}`);
    const blocksPerBit = Math.max(1, DIFF_UNIT_BYTES / p.blockSize);
    // A file left by a pair deleted in a crash is not this pair's: start from all ones.
    await this.store.remove(bitmapName(id));
    const diff = await this.store.create(bitmapName(id), { volumeBlocks: p.blockCount, blocksPerBit }, 'set');
    const row: PairRow = { id, primary, secondary, state: 'COPY', direction: 'forward', blocksPerBit, splitAreas: [], copyTotalBlocks: p.blockCount };
    if (o.group !== undefined) row.group = o.group;
    const pair = new Pair(row, p, s, diff, new BlockBitmap(p.blockCount, blocksPerBit));
    this.table.rows.push(row);
    this.attach(pair);
    const created = this.status(id); // as created: the copy may be done by the time the save is
    await this.table.save();
    this.opts.log.info({ pair: id, primary, secondary }, 'pair created; initial copy');
    this.kick();
    return created;
  }

  /**
   * Split pairs at one instant (seed 002 Fig. 3 step 44): from this call on, host writes are no
   * longer reflected on the secondaries; it resolves once the writes already under way have
   * landed, so every write acknowledged before the call is on the secondary. Several ids (a
   * consistency group) split at the same instant: all are checked first, then all flip. A pair
   * still copying (create or resync) splits at once too (seed 004): its split image goes on.
   */
  split(ids: string | string[]): Promise<void> {
    return this.command(() => this.splitOp(ids));
  }

  private async splitOp(ids: string | string[]): Promise<void> {
    const pairs = (Array.isArray(ids) ? ids : [ids]).map((id) => this.pair(id));
    for (const pair of pairs) {
      const r = pair.row;
      if (r.state !== 'PAIR' && !(r.state === 'COPY' && r.direction === 'forward')) {
        throw new PairStateError(r.id, r.state, 'split', 'needs PAIR, or the copy of a create or resync');
      }
    }
    // seed 004: a pair still copying splits at once. The units left to copy are an over-estimate
    // once this resolves (in COPY the copier only removes units, host writes go to both), which is
    // safe: a unit copied twice gets the same split-instant data.
    const copying = pairs.filter((p) => p.row.state === 'COPY');
    const images = await Promise.all(copying.map((p) => this.createImage(p)));
    const gone = pairs.find((p) => p.deleted || (p.row.state !== 'PAIR' && p.row.state !== 'COPY'));
    if (gone) {
      await Promise.all(images.map((img, i) => img.close().then(() => this.store.remove(imageName(copying[i].row.id)))));
      throw new PairStateError(gone.row.id, gone.row.state, 'split', 'changed while splitting');
    }
    copying.forEach((pair, i) => {
      pair.image = images[i];
      pair.row.imagePending = true;
      pair.row.copyTotalBlocks = images[i].bitmap.countBlocks();
      pair.cursor = 0;
    });
    for (const pair of pairs) {
      pair.split.bits.setAll();
      pair.row.state = 'PSUS';
    }
    await this.drainAndSave(pairs);
  }

  /** Split every pair of a consistency group at one instant. */
  async splitGroup(group: string): Promise<void> {
    const ids = [...this.pairs.values()].filter((p) => p.row.group === group).map((p) => p.row.id);
    if (ids.length === 0) throw new PairNotFoundError(`group ${group}`);
    await this.split(ids);
  }

  /**
   * Split listed areas only (seed 002 Fig. 6 step 60-61): mirroring goes on elsewhere. From PAIR,
   * or PSUS by areas with no resync under way; areas add to those already split.
   */
  splitAreas(id: string, areas: BlockExtent[]): Promise<void> {
    return this.command(() => this.splitAreasOp(id, areas));
  }

  private async splitAreasOp(id: string, areas: BlockExtent[]): Promise<void> {
    const pair = this.pair(id);
    this.checkAreas(pair, areas);
    const st = pair.row.state;
    if (st !== 'PAIR' && st !== 'PSUS') throw new PairStateError(id, st, 'area split', 'needs PAIR or PSUS');
    if (this.workBlocks(pair) > 0) throw new PairStateError(id, st, 'area split', 'a copy is under way');
    for (const a of areas) pair.split.markBlocks(a.lba, a.blocks);
    pair.row.state = 'PSUS';
    await this.drainAndSave([pair]);
  }

  /**
   * Resync (seed 002 Fig. 7): un-split all areas, or those the listed ranges touch, and copy the
   * units that differ there from the primary to the secondary. Resolves once the copy is
   * scheduled; the pair is COPY until it ends and then PAIR (PSUS while other areas stay split).
   * From PSUE, a full copy.
   */
  resync(id: string, areas?: BlockExtent[]): Promise<PairStatus> {
    return this.command(() => this.resyncOp(id, areas));
  }

  private async resyncOp(id: string, areas?: BlockExtent[]): Promise<PairStatus> {
    const pair = this.pair(id);
    const st = pair.row.state;
    if (areas) this.checkAreas(pair, areas);
    if (st === 'PSUE' && !areas) {
      pair.diff.bitmap.bits.setAll();
      pair.split.bits.reset();
      pair.row.reason = undefined;
    } else if (st === 'PSUS') {
      if (areas) for (const a of areas) unsplit(pair.split, a);
      else pair.split.bits.reset();
      // Units copied from the primary as it is now need no split-instant data any more.
      await this.trimImage(pair);
    } else {
      throw new PairStateError(id, st, areas ? 'area resync' : 'resync', areas ? 'needs PSUS' : 'needs PSUS or PSUE');
    }
    pair.row.direction = 'forward';
    return this.startCopy(pair);
  }

  /** Reverse resync: restore the primary from the split secondary; then PAIR. */
  reverseResync(id: string): Promise<PairStatus> {
    return this.command(() => this.reverseResyncOp(id));
  }

  private async reverseResyncOp(id: string): Promise<PairStatus> {
    const pair = this.pair(id);
    const st = pair.row.state;
    if (st !== 'PSUS' || !pair.split.bits.allSet(0, pair.split.bits.size)) throw new PairStateError(id, st, 'reverse resync', 'needs a whole-volume PSUS');
    if (pair.image) throw new PairStateError(id, st, 'reverse resync', 'the split image is still being copied to the secondary');
    pair.split.bits.reset();
    pair.row.direction = 'reverse';
    return this.startCopy(pair);
  }

  // ---- by volume (the host interface's vendor commands, firmware/pairs/control.ts) ------------

  splitVolume(ldev: number, o: { areas?: BlockExtent[]; group?: boolean } = {}): Promise<void> {
    return this.command(async () => {
      const pair = this.pairOfLdev(ldev);
      if (o.areas) return this.splitAreasOp(pair.row.id, o.areas);
      return this.splitOp(o.group ? this.groupOf(pair).map((p) => p.row.id) : pair.row.id);
    });
  }

  resyncVolume(ldev: number, o: { areas?: BlockExtent[]; reverse?: boolean; group?: boolean } = {}): Promise<void> {
    return this.command(async () => {
      const pair = this.pairOfLdev(ldev);
      const op = o.reverse ? (p: Pair) => this.reverseResyncOp(p.row.id) : (p: Pair) => this.resyncOp(p.row.id, o.areas);
      if (!o.group) {
        await op(pair);
        return;
      }
      // A group resyncs all or nothing: every pair's state is checked before any starts.
      const pairs = this.groupOf(pair);
      for (const p of pairs) {
        const st = p.row.state;
        const ok = o.reverse ? st === 'PSUS' && p.split.bits.allSet(0, p.split.bits.size) : st === 'PSUS' || st === 'PSUE';
        if (!ok) throw new PairStateError(p.row.id, st, o.reverse ? 'reverse resync' : 'resync', `group ${p.row.group}`);
      }
      for (const p of pairs) await op(p);
    });
  }

  deleteVolume(ldev: number): Promise<void> {
    return this.command(() => this.deleteOp(this.pairOfLdev(ldev).row.id));
  }

  pairOf(ldev: number): PairStatus | null {
    const e = this.byLdev.get(ldev);
    return e ? this.status(e.pair.row.id) : null;
  }

  naa(ldev: number): Buffer | undefined {
    return this.opts.ldev(ldev)?.naa;
  }

  /** Dissolve the pair (both volumes SMPL); the secondary keeps what it holds. */
  delete(id: string): Promise<void> {
    return this.command(() => this.deleteOp(id));
  }

  private async deleteOp(id: string): Promise<void> {
    const pair = this.pair(id);
    pair.deleted = true;
    this.detach(pair);
    await Promise.all([...pair.inflight].map((h) => h.done));
    await pair.copying?.done;
    await pair.imageChain;
    const i = this.table.rows.indexOf(pair.row);
    if (i >= 0) this.table.rows.splice(i, 1);
    await this.table.save();
    await pair.diff.close();
    await this.store.remove(bitmapName(id));
    await this.dropImage(pair);
    this.opts.log.info({ pair: id }, 'pair deleted');
  }

  status(id: string): PairStatus {
    const pair = this.pair(id);
    const r = pair.row;
    const remaining = pair.image ? pair.image.bitmap.countBlocks() : this.workBlocks(pair);
    const total = Math.max(r.copyTotalBlocks, remaining);
    const s: PairStatus = {
      id: r.id,
      primary: r.primary,
      secondary: r.secondary,
      state: r.state,
      direction: r.direction,
      splitAreas: [...pair.split.extents()],
      differenceBlocks: pair.diff.bitmap.countBlocks(),
      copiedBlocks: pair.copiedBlocks,
      imagePending: pair.image !== null,
      copy: { totalBlocks: total, remainingBlocks: remaining, percent: total === 0 ? 100 : Math.floor(((total - remaining) / total) * 1000) / 10 },
    };
    if (r.group !== undefined) s.group = r.group;
    if (r.reason !== undefined) s.reason = r.reason;
    return s;
  }

  list(): PairStatus[] {
    return [...this.pairs.keys()].map((id) => this.status(id));
  }

  /** The state of an LDEV with respect to pairs (SMPL when in none). */
  volumeState(ldev: number): PairState {
    return this.byLdev.get(ldev)?.pair.row.state ?? 'SMPL';
  }

  /** Change the copier's pace (the operator's copy pace; tests slow it to watch a copy). */
  setCopyOptions(o: PairCopyOptions): void {
    Object.assign(this.copyOpts, Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)));
    this.kick();
  }

  /** Stop the copier after its current step (power-off, before host I/O is drained). */
  async quiesce(): Promise<void> {
    this.stopping = true;
    this.kick();
    await this.step.catch(() => undefined);
  }

  /** After the data is flushed: save every bitmap clean and the table (power-off). */
  async close(): Promise<void> {
    this.stopping = true;
    await this.step.catch(() => undefined);
    for (const pair of this.pairs.values()) {
      try {
        await pair.diff.save();
      } catch (err) {
        this.opts.log.error({ err, pair: pair.row.id }, 'difference bitmap save at power-off failed');
      }
    }
    await this.table.save().catch((err: unknown) => this.opts.log.error({ err }, 'pair table save at power-off failed'));
    await Promise.all([...this.pairs.values()].map((p) => p.imageChain)); // each image change saves itself
    await this.closeBitmaps();
  }

  // ---- host I/O (the LDEV write hook) -------------------------------------------------------

  private attach(pair: Pair): void {
    this.pairs.set(pair.row.id, pair);
    this.byLdev.set(pair.row.primary, { pair, role: 'primary' });
    this.byLdev.set(pair.row.secondary, { pair, role: 'secondary' });
    const hook = (ldev: Ldev, u: HostUpdate, local: () => Promise<void>) => this.hostUpdate(ldev, u, local);
    pair.p.writeHook = hook;
    pair.s.writeHook = hook;
    pair.s.readHook = (_ldev, lba, blocks) => (pair.image ? this.completeImage(pair, lba, blocks) : Promise.resolve());
  }

  private detach(pair: Pair): void {
    this.pairs.delete(pair.row.id);
    this.byLdev.delete(pair.row.primary);
    this.byLdev.delete(pair.row.secondary);
    pair.p.writeHook = null;
    pair.s.writeHook = null;
    pair.s.readHook = null;
  }

  private hostUpdate(ldev: Ldev, u: HostUpdate, local: () => Promise<void>): Promise<void> {
    const e = this.byLdev.get(ldev.def.number);
    if (!e) return local();
    const blocks = u.kind === 'write' ? u.data.length / ldev.blockSize : u.blocks;
    if (blocks === 0) return local();
    return e.role === 'primary' ? this.primaryUpdate(e.pair, u, u.lba, blocks, local) : this.secondaryUpdate(e.pair, u.lba, blocks, local);
  }

  /** seed 002 Fig. 6 steps 62-65. */
  private async primaryUpdate(pair: Pair, u: HostUpdate, lba: number, blocks: number, local: () => Promise<void>): Promise<void> {
    // The copier's chunk and a host write to the same blocks exclude each other, so the copier
    // never writes older data over a newer duplex write.
    while (pair.copying && overlaps(pair.copying, lba, blocks)) await pair.copying.done;
    // seed 004: the split instant's data goes to the secondary before the primary changes.
    if (pair.image) await this.completeImage(pair, lba, blocks);
    if (pair.row.state === 'PSUE' || pair.deleted) return local();
    // From here to the writes' start nothing yields but markDirty: the decision below is made
    // at one instant with respect to splits, and the hold makes a split wait for this write.
    const mirrored = mirroredRuns(pair.split, lba, blocks);
    const local_ = splitRuns(pair.split, lba, blocks);
    for (const r of local_) pair.diff.bitmap.markBlocks(r.lba, r.blocks);
    await this.held(pair, lba, blocks, async () => {
      // seed 002 Fig. 6 step 64: the bit is on (durably: also when another write set it) before
      // the write. A duplex write marks the file dirty too: a crash with it half done (on one
      // volume only) must not leave a clean bitmap saying the two are equal.
      await pair.diff.markDirty();
      const localP = local();
      const remoteP = Promise.all(mirrored.map((r) => this.mirror(pair, u, r))).then(
        () => undefined,
        (err: unknown) => this.suspend(pair, `secondary write failed: ${(err as Error).message}`),
      );
      const [l] = await Promise.allSettled([localP, remoteP]);
      if (l.status === 'rejected') throw l.reason;
    });
  }

  private mirror(pair: Pair, u: HostUpdate, r: BlockExtent): Promise<void> {
    if (u.kind === 'unmap') return pair.s.internalUnmap(r.lba, r.blocks);
    const bs = pair.s.blockSize;
    const data = u.data.subarray((r.lba - u.lba) * bs, (r.lba - u.lba + r.blocks) * bs);
    return pair.s.internalWrite(r.lba, data, { fua: u.fua });
  }

  /** Host writes to a secondary: only where it is split (they make the unit differ). */
  private async secondaryUpdate(pair: Pair, lba: number, blocks: number, local: () => Promise<void>): Promise<void> {
    // A copier chunk still landing here (from before a split) must not land over this write.
    while (pair.copying && overlaps(pair.copying, lba, blocks)) await pair.copying.done;
    if (pair.image) await this.completeImage(pair, lba, blocks); // the rest of the units is the split image's
    // From the check to the hold nothing yields: a resync cannot copy these units in between.
    const st = pair.row.state;
    if (st === 'PSUE') return local(); // the bitmap is all ones already
    const first = pair.split.bitOf(lba);
    const last = pair.split.bitOf(lba + blocks - 1);
    if (st !== 'PSUS' || !pair.split.bits.allSet(first, last - first + 1)) throw new SecondaryProtectedError(pair.row.id, st, lba);
    pair.diff.bitmap.markBlocks(lba, blocks);
    await this.held(pair, lba, blocks, async () => {
      await pair.diff.markDirty();
      await local();
    });
  }

  /** Run a host write holding its range of the pair: the copier and splits wait for it. */
  private async held(pair: Pair, lba: number, blocks: number, body: () => Promise<void>): Promise<void> {
    let release!: () => void;
    const hold: Hold = { lba, blocks, done: new Promise<void>((r) => (release = r)) };
    pair.inflight.add(hold);
    try {
      await body();
    } finally {
      pair.inflight.delete(hold);
      release();
    }
  }

  /** A failure broke the mirror: PSUE, every unit differs (only a full copy is trusted). */
  private async suspend(pair: Pair, reason: string): Promise<void> {
    if (pair.row.state === 'PSUE' || pair.deleted) return;
    this.opts.log.warn({ pair: pair.row.id, reason }, 'pair suspended (PSUE)');
    pair.row.state = 'PSUE';
    pair.row.reason = reason;
    pair.split.bits.reset();
    pair.diff.bitmap.bits.setAll();
    pair.row.splitAreas = [];
    await Promise.all([pair.diff.markDirty(), this.dropImage(pair)]);
  }

  // ---- the split image (a split during a copy, seed 004) ----------------------------------------

  /** The units a copying pair has left to copy, saved as its split image file. */
  private async createImage(pair: Pair): Promise<PersistentBitmap> {
    const geometry = { volumeBlocks: pair.p.blockCount, blocksPerBit: pair.bpb };
    await this.store.remove(imageName(pair.row.id));
    const img = await this.store.create(imageName(pair.row.id), geometry, 'clear');
    img.bitmap.copyFrom(pair.diff.bitmap);
    img.bitmap.andNot(pair.split);
    await img.save();
    return img;
  }

  /** On power-on: the image file of a pair split during a copy; lost, the pair is PSUE. */
  private async openImage(pair: Pair): Promise<boolean> {
    const img = await this.store.open(imageName(pair.row.id), { volumeBlocks: pair.p.blockCount, blocksPerBit: pair.bpb });
    if (img.trusted) {
      pair.image = img;
      return false;
    }
    await img.close();
    this.opts.log.error({ pair: pair.row.id, reason: img.reason }, 'split image bitmap lost: the secondary no longer holds the split image (PSUE)');
    await this.store.remove(imageName(pair.row.id));
    Object.assign(pair.row, { state: 'PSUE', reason: `split image bitmap lost (${img.reason})`, splitAreas: [] });
    delete pair.row.imagePending;
    pair.split.bits.reset();
    pair.diff.bitmap.bits.setAll();
    await pair.diff.markDirty();
    return true;
  }

  /**
   * Copy the split instant's data of the image units in [lba, +blocks) to the secondary, durably,
   * then clear their bits durably (seed 004 claims 12, 16). One at a time per pair, so a unit
   * seen clear is clear on disk.
   */
  private completeImage(pair: Pair, lba: number, blocks: number): Promise<void> {
    return this.imageOp(pair, async () => {
      const img = pair.image;
      if (!img || pair.deleted || blocks <= 0 || lba < 0 || lba >= img.bitmap.volumeBlocks) return;
      const runs: BlockExtent[] = [];
      const bpb = img.bitmap.blocksPerBit;
      const end = Math.min(Math.ceil((lba + blocks) / bpb) * bpb, img.bitmap.volumeBlocks); // whole units
      for (let e = img.bitmap.nextExtent(lba); e && e.lba < end; e = img.bitmap.nextExtent(e.lba + e.blocks)) {
        runs.push({ lba: e.lba, blocks: Math.min(e.lba + e.blocks, end) - e.lba });
      }
      if (runs.length === 0) return;
      try {
        for (const r of runs) await this.copyBlocks(pair.p, pair.s, r);
        await pair.s.flush();
      } catch (err) {
        await this.suspend(pair, `split image copy failed: ${(err as Error).message}`);
        return;
      }
      if (pair.image !== img) return; // dropped meanwhile (resync, delete)
      for (const r of runs) {
        img.bitmap.clearBlocks(r.lba, r.blocks);
        pair.copiedBlocks += r.blocks;
      }
      if (img.bitmap.bits.isEmpty()) await this.imageComplete(pair);
      else await img.save();
    });
  }

  /** Image bits of units no longer split: those are copied from the primary as it is now. */
  private trimImage(pair: Pair): Promise<void> {
    return this.imageOp(pair, async () => {
      const img = pair.image;
      if (!img) return;
      img.bitmap.bits.and(pair.split.bits);
      if (img.bitmap.bits.isEmpty()) await this.dropImage(pair);
      else await img.save();
    });
  }

  /** Changes to a pair's split image run one at a time. */
  private imageOp(pair: Pair, body: () => Promise<void>): Promise<void> {
    const run = pair.imageChain.then(body);
    pair.imageChain = run.catch(() => undefined);
    return run;
  }

  /** The image is complete or moot: the row first, then the file (a leftover file is removed on open). */
  private async dropImage(pair: Pair): Promise<void> {
    const img = pair.image;
    pair.image = null;
    delete pair.row.imagePending;
    await this.table.save();
    if (!img) return;
    await img.close();
    await this.store.remove(imageName(pair.row.id));
  }

  // ---- copier (ROM task pair-copy) ------------------------------------------------------------

  private async copyTask(t: TaskContext): Promise<void> {
    while (!t.signal.aborted && !this.stopping) {
      this.kicked = false;
      const s = this.copyStep(t);
      this.step = s;
      const worked = await s;
      if (t.signal.aborted || this.stopping) return;
      // A kick during the step (new work it may have missed) wakes no sleep yet: rest briefly.
      await t.sleep(worked || this.kicked ? this.copyOpts.paceMs : this.copyOpts.idleMs);
    }
  }

  /** New work for the copier: wake it, or keep it from an idle rest. */
  private kick(): void {
    this.kicked = true;
    this.opts.kernel.wake('pair-copy');
  }

  /** One bounded chunk of one pair with work, round robin over the pairs; false if none has any. */
  private async copyStep(t: TaskContext): Promise<boolean> {
    const all = [...this.pairs.values()];
    const from = all.indexOf(this.lastCopied!) + 1; // 0 when none, or it is gone
    for (const pair of [...all.slice(from), ...all.slice(0, from)]) {
      if (pair.deleted || pair.row.state === 'PSUE' || pair.row.state === 'PAIR') continue;
      if (pair.image) {
        this.lastCopied = pair;
        await this.imageStep(pair);
        const st = this.status(pair.row.id);
        t.report(`pair ${pair.row.id} ${st.state} split image: ${st.copy.percent}% (${st.copy.remainingBlocks} blocks to go)`);
        return true;
      }
      let ext = nextWork(pair, pair.cursor, this.copyOpts.copyBlocksPerStep);
      if (!ext && pair.cursor > 0) ext = nextWork(pair, 0, this.copyOpts.copyBlocksPerStep);
      if (!ext) {
        await this.copyEnded(pair);
        continue;
      }
      this.lastCopied = pair;
      // A chunk with nothing mapped moves no data (thin volumes stay thin): the step goes on to
      // the next chunk without the pace, so an empty 64 GiB volume does not take 65536 paces.
      for (let chunks = 1; ext; chunks++) {
        const moved = await this.copyChunk(pair, ext);
        if (pair.deleted) return true;
        pair.cursor = ext.lba + ext.blocks;
        if (++pair.stepsSinceSave >= this.copyOpts.stepsPerCheckpoint) await this.checkpoint(pair);
        if (moved || chunks >= UNMAPPED_CHUNKS_PER_STEP || this.stopping) break;
        ext = nextWork(pair, pair.cursor, this.copyOpts.copyBlocksPerStep);
      }
      const st = this.status(pair.row.id);
      t.report(`pair ${pair.row.id} ${st.state} ${pair.row.direction}: ${st.copy.percent}% (${st.copy.remainingBlocks} blocks to go)`);
      return true;
    }
    await this.saveIdle();
    return false;
  }

  /** One bounded chunk of a pair's split image; once none is left, the image file goes. */
  private async imageStep(pair: Pair): Promise<void> {
    const img = pair.image!;
    const max = this.copyOpts.copyBlocksPerStep;
    const ext = img.bitmap.nextExtent(pair.cursor, max) ?? img.bitmap.nextExtent(0, max);
    if (ext) {
      await this.completeImage(pair, ext.lba, ext.blocks);
      pair.cursor = ext.lba + ext.blocks;
      return;
    }
    await pair.imageChain;
    if (pair.image === img) await this.imageComplete(pair);
  }

  private async imageComplete(pair: Pair): Promise<void> {
    pair.cursor = 0;
    pair.row.copyTotalBlocks = 0;
    await this.dropImage(pair);
    this.opts.log.info({ pair: pair.row.id }, 'split image complete: the secondary holds the split instant');
  }

  /** Copy one chunk; whether any data moved (not only unmaps). */
  private async copyChunk(pair: Pair, ext: BlockExtent): Promise<boolean> {
    const reverse = pair.row.direction === 'reverse';
    const src = reverse ? pair.s : pair.p;
    const dst = reverse ? pair.p : pair.s;
    for (;;) {
      const h = [...pair.inflight].find((x) => overlaps(x, ext.lba, ext.blocks));
      if (!h) break;
      await h.done;
    }
    let release!: () => void;
    pair.copying = { ...ext, done: new Promise<void>((r) => (release = r)) };
    let moved = false;
    try {
      moved = await this.copyBlocks(src, dst, ext);
      pair.diff.bitmap.clearBlocks(ext.lba, ext.blocks); // seed 002 Fig. 7 step 73
      pair.copiedBlocks += ext.blocks;
    } catch (err) {
      if (!this.stopping) await this.suspend(pair, `copy failed at LBA ${ext.lba}: ${(err as Error).message}`);
    } finally {
      pair.copying = null;
      release();
    }
    return moved;
  }

  /** Copy blocks between the volumes of a pair; whether any data moved (not only unmaps). */
  private async copyBlocks(src: Ldev, dst: Ldev, ext: BlockExtent): Promise<boolean> {
    let moved = false;
    const end = ext.lba + ext.blocks;
    for (let b = ext.lba; b < end; ) {
      // Thin volumes stay thin: an unmapped run of the source is unmapped on the destination.
      const x = src.extent(b, end - b);
      if (x.mapped) {
        // The read returns a shared slab (firmware/read-buffers.ts): copied before it is written.
        await dst.internalWrite(b, Buffer.from(await src.internalRead(b, x.blocks)), { fua: false });
        moved = true;
      } else {
        await dst.internalUnmap(b, x.blocks);
      }
      b += x.blocks;
    }
    return moved;
  }

  /** No unit left to copy: COPY ends in PAIR (seed 002 Fig. 7 step 76); PSUS stays PSUS. */
  private async copyEnded(pair: Pair): Promise<void> {
    pair.cursor = 0;
    if (pair.row.state !== 'COPY' && pair.row.copyTotalBlocks === 0) return;
    if (pair.row.state === 'COPY') {
      pair.row.state = 'PAIR';
      pair.row.direction = 'forward';
    }
    pair.row.copyTotalBlocks = 0;
    await this.checkpoint(pair);
    this.opts.log.info({ pair: pair.row.id, state: pair.row.state }, 'copy ended');
  }

  /** Copied data durable first, then the cleared bits and the table. */
  private async checkpoint(pair: Pair): Promise<void> {
    pair.stepsSinceSave = 0;
    await this.saveQuiet(pair);
    await this.table.save();
  }

  /**
   * Save the bitmap clean if no host write is under way on the pair (one half done would make a
   * clean bitmap lie); the data on both volumes is made durable first. Else it stays dirty.
   */
  private async saveQuiet(pair: Pair): Promise<void> {
    if (pair.inflight.size > 0) return;
    await Promise.all([pair.p.flush(), pair.s.flush()]);
    if (pair.inflight.size > 0 || pair.deleted) return;
    await pair.diff.save();
  }

  /** With nothing to copy: save the dirty bitmaps of quiet pairs, so a crash later costs no full copy. */
  private async saveIdle(): Promise<void> {
    for (const pair of [...this.pairs.values()]) {
      if (!pair.deleted && pair.diff.dirty && !this.stopping) await this.saveQuiet(pair);
    }
  }

  // ---- helpers ------------------------------------------------------------------------------

  /** Pair commands run as requests of the ROM program pair-command (their I/O holds the clock). */
  private command<T>(body: () => Promise<T>): Promise<T> {
    return this.opts.kernel.run(this.commandProgram, body);
  }

  /** The copy as scheduled (it may be over by the time the table is saved). */
  private async startCopy(pair: Pair): Promise<PairStatus> {
    const r = pair.row;
    r.splitAreas = [...pair.split.extents()];
    r.state = pair.split.bits.isEmpty() ? 'COPY' : 'PSUS';
    pair.cursor = 0;
    r.copyTotalBlocks = this.workBlocks(pair);
    if (r.state === 'COPY' && r.copyTotalBlocks === 0) {
      r.state = 'PAIR';
      r.direction = 'forward';
    }
    const started = this.status(r.id);
    await this.table.save();
    this.kick();
    return started;
  }

  private async drainAndSave(pairs: Pair[]): Promise<void> {
    await Promise.all(pairs.flatMap((p) => [...p.inflight].map((h) => h.done)));
    for (const p of pairs) p.row.splitAreas = [...p.split.extents()];
    await this.table.save();
  }

  /** Blocks the copier still has to copy: units set in diff and not split (word-wise: asked every step). */
  private workBlocks(pair: Pair): number {
    if (pair.row.state === 'PSUE') return 0;
    const diff = pair.diff.bitmap;
    if (pair.split.bits.isEmpty()) return diff.countBlocks();
    const work = new BlockBitmap(diff.volumeBlocks, diff.blocksPerBit);
    work.copyFrom(diff);
    work.andNot(pair.split);
    return work.countBlocks();
  }

  private checkAreas(pair: Pair, areas: BlockExtent[]): void {
    const n = pair.p.blockCount;
    if (areas.length === 0) throw new PairRangeError(0, 0, n);
    for (const a of areas) {
      if (!(Number.isSafeInteger(a.lba) && Number.isSafeInteger(a.blocks) && a.lba >= 0 && a.blocks > 0 && a.lba + a.blocks <= n)) {
        throw new PairRangeError(a.lba, a.blocks, n);
      }
    }
  }

  private pair(id: string): Pair {
    const p = this.pairs.get(id);
    if (!p) throw new PairNotFoundError(id);
    return p;
  }

  private pairOfLdev(ldev: number): Pair {
    const e = this.byLdev.get(ldev);
    if (!e) throw new PairNotFoundError(`of LDEV ${ldev}`);
    return e.pair;
  }

  /** The pairs of a pair's consistency group (the pair must have one). */
  private groupOf(pair: Pair): Pair[] {
    const g = pair.row.group;
    if (g === undefined) throw new PairGroupError(pair.row.id);
    return [...this.pairs.values()].filter((p) => p.row.group === g);
  }

  private volume(n: number): Ldev {
    const l = this.opts.ldev(n);
    if (!l) throw new PairVolumeError(`no LDEV ${n}`);
    return l;
  }

  private async closeBitmaps(): Promise<void> {
    await Promise.all([...this.pairs.values()].flatMap((p) => [p.diff.close(), p.image?.close()]));
  }
}

function bitmapName(id: string): string {
  return `pair-${id}`;
}

function imageName(id: string): string {
  return `pair-${id}-image`;
}

function overlaps(h: { lba: number; blocks: number }, lba: number, blocks: number): boolean {
  return h.lba < lba + blocks && lba < h.lba + h.blocks;
}

/** Clear the split units a range touches (split rounds out, so un-split does too). */
function unsplit(split: BlockBitmap, a: BlockExtent): void {
  const first = split.bitOf(a.lba);
  const last = split.bitOf(a.lba + a.blocks - 1);
  split.bits.clear(first, last - first + 1);
}

/** The runs of [lba, +blocks) whose units are split (want = true) or not, clipped to the range. */
function runs(split: BlockBitmap, lba: number, blocks: number, want: boolean): BlockExtent[] {
  const out: BlockExtent[] = [];
  const bpb = split.blocksPerBit;
  const end = lba + blocks;
  const lastUnit = split.bitOf(end - 1) + 1;
  for (let u = split.bitOf(lba); u < lastUnit; ) {
    const isSplit = split.bits.test(u);
    const next = isSplit ? split.bits.findNextClear(u, lastUnit) : split.bits.findNextSet(u, lastUnit);
    if (isSplit === want) {
      const a = Math.max(lba, u * bpb);
      out.push({ lba: a, blocks: Math.min(end, next * bpb) - a });
    }
    u = next;
  }
  return out;
}

function mirroredRuns(split: BlockBitmap, lba: number, blocks: number): BlockExtent[] {
  return split.bits.isEmpty() ? [{ lba, blocks }] : runs(split, lba, blocks, false);
}

function splitRuns(split: BlockBitmap, lba: number, blocks: number): BlockExtent[] {
  return split.bits.isEmpty() ? [] : runs(split, lba, blocks, true);
}

/** The next run of units set in diff and not split, from the unit holding fromLba, at most blocksMax. */
function nextWork(pair: Pair, fromLba: number, blocksMax: number): BlockExtent | null {
  const diff = pair.diff.bitmap;
  const d = diff.bits;
  const sp = pair.split.bits;
  const n = d.size;
  const bpb = pair.bpb;
  if (fromLba >= diff.volumeBlocks) return null;
  const unitsMax = Math.max(1, Math.floor(blocksMax / bpb));
  for (let u = Math.floor(fromLba / bpb); u < n; ) {
    u = d.findNextSet(u);
    if (u >= n) return null;
    if (sp.test(u)) {
      u = sp.findNextClear(u);
      continue;
    }
    let e = u + 1;
    while (e < n && e - u < unitsMax && d.test(e) && !sp.test(e)) e++;
    return { lba: u * bpb, blocks: Math.min(e * bpb, diff.volumeBlocks) - u * bpb };
  }
  return null;
}
