// The firmware's face toward the host interface: one logical volume (LDEV) as target/scsi sees it.
// target/scsi turns CDBs into these typed requests; it never touches disks itself.
// Blocks are numbers inside the product (2^53 blocks is far beyond any volume here);
// 64-bit LBAs are bigint only at the CDB codec boundary.

/** A read or write the drive side could not complete (MEDIUM ERROR to the host). */
export class MediumError extends Error {
  constructor(readonly lba: number, readonly kind: 'read' | 'write', message?: string) {
    super(message ?? `unrecovered ${kind} error at LBA ${lba}`);
  }
}

/** The firmware refuses a host write to these blocks (a mirrored secondary volume): DATA PROTECT. */
export class WriteProtectedError extends Error {
  constructor(readonly lba: number, message: string) {
    super(message);
  }
}

export interface WriteOptions {
  /** Force Unit Access: the data is on stable storage (fsync) before the promise resolves. */
  fua: boolean;
}

/** How GET LBA STATUS describes a run of blocks starting at an LBA. */
export interface LbaExtent {
  mapped: boolean;
  blocks: number;
}

export interface Volume {
  /** LDEV id, unique within the rack, e.g. "dkc0:ldev:0001". */
  readonly id: string;
  readonly blockSize: 512 | 4096;
  /** Current capacity; may grow (capacity-changed unit attention is the target's business). */
  readonly blockCount: number;
  /** 16-byte NAA IEEE Registered Extended (type 6) identifier, unique per volume, stable across restarts. */
  readonly naa: Buffer;
  /** Unit serial number (VPD 80h), printable ASCII, stable across restarts. */
  readonly serial: string;

  read(lba: number, blocks: number): Promise<Buffer>;
  write(lba: number, data: Buffer, opts: WriteOptions): Promise<void>;
  /** Everything acknowledged so far is on stable storage (SYNCHRONIZE CACHE). */
  flush(): Promise<void>;
  /** Deallocate; unmapped blocks read as zeros (LBPRZ=1). */
  unmap(lba: number, blocks: number): Promise<void>;
  /** Mapping state of the run of blocks starting at lba (at most maxBlocks long). */
  extent(lba: number, maxBlocks: number): LbaExtent;
}

/** Small named documents the target keeps per LU across restarts (e.g. APTPL reservations). */
export interface StateStore {
  load(name: string): Promise<string | undefined>;
  /** Atomic: after a crash either the old or the new text is there. */
  save(name: string, text: string): Promise<void>;
}
