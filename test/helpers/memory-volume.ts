// An in-memory Volume with an allocation map, and an in-memory StateStore, for anyone's tests.
// Unwritten and unmapped blocks read as zeros (LBPRZ=1). Faults are injected explicitly and say so.
import { createHash } from 'crypto';
import { LbaExtent, MediumError, StateStore, Volume, WriteOptions } from '../../firmware/volume';

export interface MemoryVolumeOptions {
  blockCount: number;
  blockSize?: 512 | 4096;
  id?: string;
}

/** Hooks that let a test hold an I/O in flight (e.g. to prove COMPARE AND WRITE atomicity). */
export interface MemoryVolumeHooks {
  beforeRead?: (lba: number, blocks: number) => Promise<void>;
  beforeWrite?: (lba: number, blocks: number) => Promise<void>;
}

export class MemoryVolume implements Volume {
  readonly id: string;
  readonly blockSize: 512 | 4096;
  blockCount: number;
  readonly naa: Buffer;
  readonly serial: string;
  hooks: MemoryVolumeHooks = {};
  /** Counters a test may assert on. */
  readonly stats = { reads: 0, writes: 0, fuaWrites: 0, flushes: 0, unmaps: 0 };
  private readonly blocks = new Map<number, Buffer>();
  private readonly readErrors = new Set<number>();
  private readonly writeErrors = new Set<number>();

  constructor(opts: MemoryVolumeOptions) {
    this.id = opts.id ?? 'mem:ldev:0000';
    this.blockSize = opts.blockSize ?? 512;
    this.blockCount = opts.blockCount;
    const h = createHash('sha256').update(this.id).digest();
    this.naa = Buffer.from(h.subarray(0, 16));
    this.naa[0] = 0x60 | (this.naa[0] & 0x0f); // NAA 6: IEEE Registered Extended
    this.serial = 'MV' + h.subarray(16, 24).toString('hex').toUpperCase();
  }

  /** Grows or shrinks the volume (blocks beyond the new end are dropped). */
  resize(blockCount: number): void {
    for (const lba of this.blocks.keys()) if (lba >= blockCount) this.blocks.delete(lba);
    this.blockCount = blockCount;
  }

  injectReadError(lba: number): void { this.readErrors.add(lba); }
  injectWriteError(lba: number): void { this.writeErrors.add(lba); }
  clearFaults(): void { this.readErrors.clear(); this.writeErrors.clear(); }

  isMapped(lba: number): boolean { return this.blocks.has(lba); }
  get mappedBlocks(): number { return this.blocks.size; }

  private check(lba: number, blocks: number): void {
    if (!Number.isInteger(lba) || !Number.isInteger(blocks) || lba < 0 || blocks < 0 || lba + blocks > this.blockCount) {
      throw new RangeError(`${this.id}: I/O ${lba}+${blocks} outside 0..${this.blockCount}`);
    }
  }

  async read(lba: number, blocks: number): Promise<Buffer> {
    this.check(lba, blocks);
    await this.hooks.beforeRead?.(lba, blocks);
    this.stats.reads++;
    const out = Buffer.alloc(blocks * this.blockSize);
    for (let i = 0; i < blocks; i++) {
      if (this.readErrors.has(lba + i)) throw new MediumError(lba + i, 'read', `injected read error at LBA ${lba + i}`);
      this.blocks.get(lba + i)?.copy(out, i * this.blockSize);
    }
    return out;
  }

  async write(lba: number, data: Buffer, opts: WriteOptions): Promise<void> {
    if (data.length % this.blockSize !== 0) throw new RangeError(`${this.id}: write of ${data.length} bytes is not whole blocks`);
    const blocks = data.length / this.blockSize;
    this.check(lba, blocks);
    await this.hooks.beforeWrite?.(lba, blocks);
    this.stats.writes++;
    if (opts.fua) this.stats.fuaWrites++;
    for (let i = 0; i < blocks; i++) {
      if (this.writeErrors.has(lba + i)) throw new MediumError(lba + i, 'write', `injected write error at LBA ${lba + i}`);
      this.blocks.set(lba + i, Buffer.from(data.subarray(i * this.blockSize, (i + 1) * this.blockSize)));
    }
  }

  async flush(): Promise<void> {
    this.stats.flushes++;
  }

  async unmap(lba: number, blocks: number): Promise<void> {
    this.check(lba, blocks);
    this.stats.unmaps++;
    for (let i = 0; i < blocks; i++) this.blocks.delete(lba + i);
  }

  /** O(mapped blocks), not O(volume): an unmapped run ends at the next mapped block. */
  extent(lba: number, maxBlocks: number): LbaExtent {
    this.check(lba, 0);
    const mapped = this.blocks.has(lba);
    const limit = Math.max(1, Math.min(maxBlocks, this.blockCount - lba));
    if (mapped) {
      let n = 1;
      while (n < limit && this.blocks.has(lba + n)) n++;
      return { mapped, blocks: n };
    }
    let next = lba + limit;
    for (const k of this.blocks.keys()) if (k > lba && k < next) next = k;
    return { mapped, blocks: next - lba };
  }
}

/** StateStore in memory; `docs` is visible so a test can hand the same store to a new target. */
export class MemoryStateStore implements StateStore {
  readonly docs = new Map<string, string>();
  saves = 0;

  async load(name: string): Promise<string | undefined> {
    return this.docs.get(name);
  }

  async save(name: string, text: string): Promise<void> {
    this.saves++;
    this.docs.set(name, text);
  }
}
