// A bitmap over the blocks of a volume, one bit per `blocksPerBit` blocks (a "unit"): the shape
// of every block-tracking bitmap in the firmware. A set bit means "this unit must be copied":
// the pair difference bitmap (seed 002: split marks host writes, resync copies only the units
// that differ), the main/sub bitmaps of remote copy (seed 001), RAID write-intent regions and
// rebuild progress. Marking is conservative (a write that touches a unit at all marks the whole
// unit); clearing is exact (only units wholly copied are cleared), so a bit is never lost.
// The last unit may be partial: it covers the blocks from its start to the volume's end, and
// everything reported in blocks (extents, countBlocks) is clipped there.
import assert from 'node:assert';
import { Bitmap } from './bitmap';

/** A run of blocks: what a resync, rebuild or remote copy reads and writes in one go. */
export interface BlockExtent {
  lba: number;
  blocks: number;
}

export class BlockBitmap {
  readonly bits: Bitmap;

  /**
   * @param volumeBlocks blocks in the volume
   * @param blocksPerBit blocks one bit stands for (any positive integer; a power of two is usual)
   * @param storage optional backing bytes for the bits (see Bitmap)
   */
  constructor(
    readonly volumeBlocks: number,
    readonly blocksPerBit: number,
    storage?: Uint8Array,
  ) {
    assert(Number.isSafeInteger(volumeBlocks) && volumeBlocks >= 0, `bad volume size ${volumeBlocks}`);
    assert(Number.isSafeInteger(blocksPerBit) && blocksPerBit >= 1, `bad blocks per bit ${blocksPerBit}`);
    this.bits = new Bitmap(BlockBitmap.bitsFor(volumeBlocks, blocksPerBit), storage);
  }

  /** Bits needed for a volume of `volumeBlocks` at `blocksPerBit` (the last unit may be partial). */
  static bitsFor(volumeBlocks: number, blocksPerBit: number): number {
    return Math.ceil(volumeBlocks / blocksPerBit);
  }

  /** The bit (unit) holding block `lba`. */
  bitOf(lba: number): number {
    this.checkBlocks(lba, 1);
    return Math.floor(lba / this.blocksPerBit);
  }

  /** The blocks unit `bit` stands for, clipped to the volume's end. */
  blocksOf(bit: number): BlockExtent {
    assert(Number.isInteger(bit) && bit >= 0 && bit < this.bits.size, `bit ${bit} outside bitmap of ${this.bits.size}`);
    const lba = bit * this.blocksPerBit;
    return { lba, blocks: Math.min(this.blocksPerBit, this.volumeBlocks - lba) };
  }

  /** Set every unit that [lba, lba+blocks) touches; true if any bit changed. */
  markBlocks(lba: number, blocks: number): boolean {
    this.checkBlocks(lba, blocks);
    if (blocks === 0) return false;
    const first = Math.floor(lba / this.blocksPerBit);
    const last = Math.floor((lba + blocks - 1) / this.blocksPerBit);
    return this.bits.set(first, last - first + 1);
  }

  /**
   * Clear the units that [lba, lba+blocks) covers wholly (the partial last unit counts as whole
   * when the range reaches the volume's end); units only touched stay set. True if any changed.
   */
  clearBlocks(lba: number, blocks: number): boolean {
    this.checkBlocks(lba, blocks);
    const first = Math.ceil(lba / this.blocksPerBit);
    const end = lba + blocks;
    const last = end === this.volumeBlocks ? this.bits.size : Math.floor(end / this.blocksPerBit);
    return last > first ? this.bits.clear(first, last - first) : false;
  }

  /** True if any unit that [lba, lba+blocks) touches is set. */
  anyMarked(lba: number, blocks: number): boolean {
    this.checkBlocks(lba, blocks);
    if (blocks === 0) return false;
    const first = Math.floor(lba / this.blocksPerBit);
    const last = Math.floor((lba + blocks - 1) / this.blocksPerBit);
    return !this.bits.noneSet(first, last - first + 1);
  }

  /** Blocks that set units stand for (the partial last unit counts its own blocks only). */
  countBlocks(): number {
    const n = this.bits.size;
    if (n === 0) return 0;
    const full = this.bits.count(0, n - 1) * this.blocksPerBit;
    return this.bits.test(n - 1) ? full + this.blocksOf(n - 1).blocks : full;
  }

  /**
   * The first run of set units at or after the unit holding `fromLba`, as blocks clipped to the
   * volume's end, at most `blocksMax` long (rounded down to whole units, at least one unit);
   * null when no unit is set. The extent starts on a unit boundary, so a resync or rebuild can
   * resume from any cursor: the next call takes lba + blocks.
   */
  nextExtent(fromLba = 0, blocksMax = Infinity): BlockExtent | null {
    assert(blocksMax >= 1, `bad extent bound ${blocksMax}`);
    if (fromLba >= this.volumeBlocks) return null;
    this.checkBlocks(fromLba, 0);
    const n = this.bits.size;
    const first = this.bits.findNextSet(Math.floor(fromLba / this.blocksPerBit));
    if (first === n) return null;
    const unitsMax = Math.max(1, Math.floor(blocksMax / this.blocksPerBit));
    const end = this.bits.findNextClear(first, Math.min(n, first + unitsMax));
    const lba = first * this.blocksPerBit;
    return { lba, blocks: Math.min(end * this.blocksPerBit, this.volumeBlocks) - lba };
  }

  /** Every run of set units from `fromLba` on (see nextExtent); do not change bits while iterating. */
  *extents(fromLba = 0, blocksMax = Infinity): IterableIterator<BlockExtent> {
    for (let e = this.nextExtent(fromLba, blocksMax); e; e = this.nextExtent(e.lba + e.blocks, blocksMax)) yield e;
  }

  /** Same volume and unit size (what OR, copy and clear between block bitmaps need). */
  sameGeometry(other: BlockBitmap): boolean {
    return this.volumeBlocks === other.volumeBlocks && this.blocksPerBit === other.blocksPerBit;
  }

  /** Make this bitmap equal to other (same geometry); true if any bit changed. */
  copyFrom(other: BlockBitmap): boolean {
    return this.bits.copyFrom(this.peer(other));
  }

  /** Set what is set in other (same geometry); true if any bit changed. */
  or(other: BlockBitmap): boolean {
    return this.bits.or(this.peer(other));
  }

  /** Clear what is set in other (same geometry); true if any bit changed. */
  andNot(other: BlockBitmap): boolean {
    return this.bits.andNot(this.peer(other));
  }

  private peer(other: BlockBitmap): Bitmap {
    assert(this.sameGeometry(other), `block bitmap geometry differs: ${this.volumeBlocks}/${this.blocksPerBit} and ${other.volumeBlocks}/${other.blocksPerBit}`);
    return other.bits;
  }

  private checkBlocks(lba: number, blocks: number): void {
    // The message is built only on failure: this runs on every host write.
    if (!(Number.isInteger(lba) && Number.isInteger(blocks) && lba >= 0 && blocks >= 0 && lba + blocks <= this.volumeBlocks)) {
      assert.fail(`block range [${lba}, +${blocks}) outside volume of ${this.volumeBlocks} blocks`);
    }
  }
}
