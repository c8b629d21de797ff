// A logical device (LDEV): a thin volume carved from a RAID group at a fixed offset.
// Blocks never written are not allocated and read as zeros; the allocation map (one bit per
// block) says which blocks hold data. Write order for a block that becomes mapped:
// data to the RAID group, then the map page, then the acknowledgement.
import assert from 'node:assert';
import { AllocationMap } from './allocation-map';
import type { DriveInterface, RaidGroupDevice } from './drive';
import { ldevId, ldevNaa, ldevSerial } from './identity';
import type { Kernel, Program } from './kernel/kernel';
import { ReadBuffers } from './read-buffers';
import type { LbaExtent, Volume, WriteOptions } from './volume';
import { MediumError } from './volume';

/** One row of the volume configuration information table (seed 003 claim 14). */
export interface LdevDefinition {
  number: number;
  name: string;
  /** RAID group the LDEV is arranged in. */
  group: string;
  /** Byte address of LBA 0 within the RAID group's logical space. */
  offsetBytes: number;
  blockSize: 512 | 4096;
  blockCount: number;
}

/** A host write or unmap, as a write hook sees it. */
export type HostUpdate = { kind: 'write'; lba: number; data: Buffer; fua: boolean } | { kind: 'unmap'; lba: number; blocks: number };

/**
 * Sees every host write and unmap before it is acknowledged (the pair manager: duplex writes and
 * the difference bitmap, firmware/pairs/manager.ts). `local` performs the update on this LDEV; the hook
 * decides when, and what else must happen before the acknowledgement. Internal I/O (copy, resync)
 * uses internalWrite/internalUnmap, which do not call the hook.
 */
export type WriteHook = (ldev: Ldev, update: HostUpdate, local: () => Promise<void>) => Promise<void>;

/**
 * Sees every host read before it is served (the pair manager: a split secondary whose image of
 * the split instant is still being completed gets those blocks first, seed 004 claim 12).
 */
export type ReadHook = (ldev: Ldev, lba: number, blocks: number) => Promise<void>;

/** Read data for the host interface comes from shared slabs (fewer allocations per command). */
const readBuffers = new ReadBuffers();

export class Ldev implements Volume {
  readonly id: string;
  readonly blockSize: 512 | 4096;
  readonly blockCount: number;
  readonly naa: Buffer;
  readonly serial: string;
  private readonly offsetBytes: number;
  /** Host I/O under way; close() waits for it so no request outlives the files it uses. */
  private inflight = 0;
  private idle: { promise: Promise<void>; resolve: () => void } | null = null;
  private closed = false;
  /** The ROM programs host requests run through (seed 001 Fig. 3: the CPU runs the ROM's programs). */
  private readonly hostRead: Program;
  private readonly hostWrite: Program;
  /** Set by the pair manager while this LDEV is in a pair. */
  writeHook: WriteHook | null = null;
  readHook: ReadHook | null = null;

  constructor(
    dkcName: string,
    dkcSerial: number,
    readonly def: LdevDefinition,
    private readonly group: RaidGroupDevice,
    private readonly drive: DriveInterface,
    readonly map: AllocationMap,
    private readonly kernel: Kernel,
  ) {
    this.hostRead = kernel.program('host-read');
    this.hostWrite = kernel.program('host-write');
    assert(def.offsetBytes + def.blockCount * def.blockSize <= group.sizeBytes, `LDEV ${def.name} beyond RAID group ${group.name}`);
    this.id = ldevId(dkcName, def.number);
    this.blockSize = def.blockSize;
    this.blockCount = def.blockCount;
    this.naa = ldevNaa(dkcSerial, def.number);
    this.serial = ldevSerial(dkcSerial, def.number);
    this.offsetBytes = def.offsetBytes;
  }

  read(lba: number, blocks: number): Promise<Buffer> {
    return this.kernel.run(this.hostRead, () => {
      const hook = this.readHook;
      return hook ? hook(this, lba, blocks).then(() => this.readBlocks(lba, blocks)) : this.readBlocks(lba, blocks);
    });
  }

  write(lba: number, data: Buffer, opts: WriteOptions): Promise<void> {
    return this.kernel.run(this.hostWrite, () => {
      const local = () => this.writeBlocks(lba, data, opts);
      return this.writeHook ? this.writeHook(this, { kind: 'write', lba, data, fua: opts.fua }, local) : local();
    });
  }

  /** A read by the firmware itself (copy, resync): the same path as host I/O, without the hook. */
  internalRead(lba: number, blocks: number): Promise<Buffer> {
    return this.kernel.run(this.hostRead, () => this.readBlocks(lba, blocks));
  }

  /** A write by the firmware itself (copy, resync): the same path as host I/O, without the hook. */
  internalWrite(lba: number, data: Buffer, opts: WriteOptions): Promise<void> {
    return this.kernel.run(this.hostWrite, () => this.writeBlocks(lba, data, opts));
  }

  private readBlocks(lba: number, blocks: number): Promise<Buffer> {
    this.checkRange(lba, blocks);
    if (this.closed) return Promise.reject(this.closedError());
    if (blocks === 0) return Promise.resolve(Buffer.alloc(0));
    this.enter();
    const bs = this.blockSize;
    const end = lba + blocks;
    const bm = this.map.bitmap;
    const firstClear = bm.findNextClear(lba, end);
    if (firstClear === end) {
      // Fully mapped: one read of one contiguous run.
      const buf = readBuffers.alloc(blocks * bs);
      return this.drive.readInto(this.group, this.offsetBytes + lba * bs, buf, 0, buf.length, lba).then(
        () => this.leave(buf),
        (err: unknown) => this.leave(Promise.reject(err)),
      );
    }
    if (firstClear === lba && bm.findNextSet(lba, end) === end) return Promise.resolve(this.leave(Buffer.alloc(blocks * bs)));
    return this.readMixed(lba, blocks).finally(() => this.leave(undefined));
  }

  /** Partly mapped: one read per mapped run, zeros for the unmapped runs. */
  private async readMixed(lba: number, blocks: number): Promise<Buffer> {
    const bs = this.blockSize;
    const end = lba + blocks;
    const bm = this.map.bitmap;
    const buf = readBuffers.alloc(blocks * bs);
    const reads: Promise<void>[] = [];
    let b = lba;
    while (b < end) {
      const mappedEnd = bm.findNextClear(b, end);
      if (mappedEnd > b) {
        reads.push(this.drive.readInto(this.group, this.offsetBytes + b * bs, buf, (b - lba) * bs, (mappedEnd - b) * bs, b));
      }
      if (mappedEnd === end) break;
      const unmappedEnd = bm.findNextSet(mappedEnd, end);
      buf.fill(0, (mappedEnd - lba) * bs, (unmappedEnd - lba) * bs);
      b = unmappedEnd;
    }
    await Promise.all(reads);
    return buf;
  }

  private async writeBlocks(lba: number, data: Buffer, opts: WriteOptions): Promise<void> {
    const bs = this.blockSize;
    if (data.length % bs !== 0) assert.fail(`write of ${data.length} bytes is not whole ${bs}-byte blocks`);
    const blocks = data.length / bs;
    this.checkRange(lba, blocks);
    if (blocks === 0) return;
    this.enter();
    try {
      // seed 001 Fig. 4 sets the main bitmap (step 2030) before writing (step 2040): that bitmap
      // says what remains to copy, so early is safe. The allocation map says which blocks hold
      // data, so its bits are set only once the data is on the disks.
      await this.drive.write(this.group, this.offsetBytes + lba * bs, data, data.length, opts.fua, lba);
      const persisted = this.map.update(lba, blocks, true, opts.fua);
      if (persisted) await this.mapWrite(persisted, lba);
    } finally {
      this.leave(undefined);
    }
  }

  unmap(lba: number, blocks: number): Promise<void> {
    const local = () => this.unmapBlocks(lba, blocks);
    return this.writeHook ? this.writeHook(this, { kind: 'unmap', lba, blocks }, local) : local();
  }

  /** An unmap by the firmware itself (copy, resync), without the hook. */
  internalUnmap(lba: number, blocks: number): Promise<void> {
    return this.unmapBlocks(lba, blocks);
  }

  private async unmapBlocks(lba: number, blocks: number): Promise<void> {
    this.checkRange(lba, blocks);
    if (blocks === 0) return;
    this.enter();
    try {
      // The data stays in the disk file (no hole punching from Node); the map alone decides that
      // these blocks read as zeros (LBPRZ=1).
      const persisted = this.map.update(lba, blocks, false, false);
      // Correct either way (the cache mirrors the disk, and the map decides): this only frees RAM.
      this.drive.discard(this.group, this.offsetBytes + lba * this.blockSize, blocks * this.blockSize);
      if (persisted) await this.mapWrite(persisted, lba);
    } finally {
      this.leave(undefined);
    }
  }

  async flush(): Promise<void> {
    // Data first, then the map: everything acknowledged before this call is durable, both the
    // data and the map pages that say it is there (SBC SYNCHRONIZE CACHE).
    await this.drive.flush(this.group, 0);
    await this.mapWrite(this.map.sync(), 0);
  }

  extent(lba: number, maxBlocks: number): LbaExtent {
    this.checkRange(lba, 1);
    const end = Math.min(this.blockCount, lba + Math.max(1, maxBlocks));
    const bm = this.map.bitmap;
    const mapped = bm.test(lba);
    const runEnd = mapped ? bm.findNextClear(lba, end) : bm.findNextSet(lba, end);
    return { mapped, blocks: runEnd - lba };
  }

  /** Blocks currently allocated (for status and tests). */
  allocatedBlocks(): number {
    return this.map.bitmap.count();
  }

  /** Refuse new I/O and wait for the I/O under way (the transport may stop with commands in flight). */
  quiesce(): Promise<void> {
    this.closed = true;
    if (this.inflight === 0) return Promise.resolve();
    if (!this.idle) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.idle = { promise, resolve };
    }
    return this.idle.promise;
  }

  async close(): Promise<void> {
    await this.quiesce();
    await this.map.close();
  }

  private enter(): void {
    // After quiesce() the DKC is shutting down: no request may start on files about to close.
    if (this.closed) throw this.closedError();
    this.inflight++;
  }

  private leave<T>(value: T): T {
    if (--this.inflight === 0 && this.idle) {
      this.idle.resolve();
      this.idle = null;
    }
    return value;
  }

  private closedError(): Error {
    return new Error(`${this.id}: LDEV is closed`);
  }

  private async mapWrite(p: Promise<void>, lba: number): Promise<void> {
    try {
      await p;
    } catch (err) {
      throw new MediumError(lba, 'write', `allocation map update failed at LBA ${lba}: ${(err as Error).message}`);
    }
  }

  // The target's dispatcher checks LBA ranges against blockCount; a request outside is a bug.
  private checkRange(lba: number, blocks: number): void {
    // The message is built only on failure: this runs on every I/O.
    if (!(Number.isInteger(lba) && Number.isInteger(blocks) && lba >= 0 && blocks >= 0 && lba + blocks <= this.blockCount)) {
      assert.fail(`${this.id}: LBA range [${lba}, +${blocks}) outside ${this.blockCount} blocks`);
    }
  }
}
