// The DKC's drive interface (seed 001 Fig. 3, drive interface 1230): what the firmware sees of
// the RAID groups beneath it. emulator/ implements RaidGroupDevice over files; the firmware never
// sees files or disks directly, only a RAID group's logical address space. Reads and writes pass
// through the DKC cache (firmware/cache/cache.ts) unless it is off.
import { CachedGroup, DkcCache } from './cache/cache';
import type { RaidGroupEntry } from './ram';
import type { DriveStatus } from './status';
import { MediumError } from './volume';

/** Where one byte range of a RAID group's logical space lands on one member disk. */
export interface DiskExtent {
  /** Index of the member disk within its RAID group. */
  disk: number;
  /** Byte offset on that disk. */
  offset: number;
  length: number;
}

/** RAID levels the drive side emulates. 10 is 1+0: mirrored pairs, striped. */
export type RaidLevel = 0 | 1 | 5 | 6 | 10;

/** A physical drive as the drive interface sees it (emulator/: a file, maybe behind fault or timing decorators). */
export interface Drive {
  /** Its name in the DKC, e.g. "rg0-2" or "spare-0". */
  readonly name: string;
  readonly sizeBytes: number;
  readInto(offset: number, buf: Buffer, bufOffset: number, length: number): Promise<void>;
  readv(offset: number, buffers: Buffer[], length: number): Promise<void>;
  write(offset: number, data: Buffer, dataOffset: number, length: number, fua: boolean): Promise<void>;
  writev(offset: number, buffers: Buffer[], length: number, fua: boolean): Promise<void>;
  flush(): Promise<void>;
  close(): Promise<void>;
}

/**
 * A drive could not do an I/O. media: the sectors at [offset, +length) are unreadable (a write
 * there remaps them, as a real drive does); failed: the drive is broken; missing: it was pulled.
 * Any other error from a drive counts as failed.
 */
export class DriveError extends Error {
  constructor(
    readonly drive: string,
    readonly kind: 'media' | 'failed' | 'missing',
    readonly offset: number,
    readonly length: number,
    message: string,
    /** Injected by a fault decorator (dkc disk ...), not a real host I/O error. */
    readonly injected = false,
  ) {
    super(message);
  }
}

/** One slot of a RAID group. */
export type MemberState = 'normal' | 'failed' | 'rebuilding';

export interface MemberStatus {
  slot: number;
  /** The drive in the slot (a spare's name once it has taken over). */
  drive: string;
  state: MemberState;
  /** Rebuilding: rows [0, rebuiltRows) hold good data on this drive. */
  rebuiltRows: number;
  /** Errors this member has had: media errors corrected from redundancy, failed I/Os. */
  errors: number;
}

export type RaidGroupState = 'normal' | 'degraded' | 'rebuilding' | 'failed';

/** What happened beneath, for the firmware's log, counters and rebuild task. */
export type RaidEvent =
  | { kind: 'member-failed'; slot: number; drive: string; reason: string }
  | { kind: 'media-error-corrected'; slot: number; drive: string; offset: number; length: number }
  | { kind: 'unrecoverable'; offset: number; length: number; reason: string }
  | { kind: 'scrub-repaired'; row: number };

/** A slot as the firmware's RAID table records it, with the drive now in it. */
export interface SlotAssignment {
  drive: Drive;
  state: MemberState;
  rebuiltRows: number;
}

/**
 * The controller's non-volatile row log (firmware/raid/parity-log.ts, the DKC's NVRAM): closes the
 * RAID 5/6 write hole. Before a parity group writes a row that is degraded (a member of the row
 * not readable), or one that still has a record here, it records the row's new data bytes
 * [lo, lo + len) of every data chunk, durably; power-on redoes the records a crash left, before
 * any I/O (docs/raid.md, "Write hole").
 */
export interface RowLog {
  /** Whether row of group has a record not yet retired (its writes must be logged too). */
  live(group: string, row: number): boolean;
  /**
   * Record data (one buffer per data chunk of the row, all of one length, in data-chunk order):
   * resolves once the record is durable. The caller holds the row's exclusive lock until end.
   */
  append(group: string, row: number, lo: number, data: Buffer[]): Promise<RowLogTicket>;
  /** The member writes the record was for have returned (done or failed). */
  end(ticket: RowLogTicket): void;
}

/** What RowLog.append hands back, for RowLog.end. */
export interface RowLogTicket {
  readonly seq: number;
}

/**
 * The drive bays of one DKC (emulator/ fills them): every physical drive by name, group members
 * and spares alike, and how to build a RAID group over some of them. The firmware decides which
 * drive sits in which slot (firmware/raid/table.ts).
 */
export interface DriveBays {
  drive(name: string): Drive;
  status(name: string): DriveStatus;
  /** rowLog: where RAID 5/6 groups log degraded row writes (other levels need none). */
  assemble(entry: RaidGroupEntry, slots: SlotAssignment[], rowLog?: RowLog): RaidGroupDevice;
  /** Close every drive (groups do not close their members). */
  close(): Promise<void>;
}

/** A byte-addressed space the cache sits in front of (offsets and lengths are multiples of 512). */
export interface BlockDevice {
  readonly name: string;
  readonly sizeBytes: number;
  /** Fill buf[bufOffset, bufOffset+length) from the device's bytes at offset. */
  readInto(offset: number, buf: Buffer, bufOffset: number, length: number): Promise<void>;
  /** Write data[dataOffset, dataOffset+length) at offset; fua: on stable storage before resolving. */
  write(offset: number, data: Buffer, dataOffset: number, length: number, fua: boolean): Promise<void>;
  /** Everything written so far is on stable storage. */
  flush(): Promise<void>;
}

/** One RAID group's logical address space. */
export interface RaidGroupDevice extends BlockDevice {
  readonly level: RaidLevel;
  readonly stripeSizeBytes: number;
  readonly diskCount: number;
  /** Rows (one stripe chunk on every member): the unit of rebuild and scrub. */
  readonly rowCount: number;
  readonly state: RaidGroupState;
  /** Set by the firmware; called synchronously when something happens beneath. */
  onEvent: ((e: RaidEvent) => void) | null;
  /** Member-disk extents for a logical range (management tables; not used on the I/O path). */
  mapExtent(offset: number, length: number): DiskExtent[];
  members(): MemberStatus[];
  /**
   * The firmware learned that the drive in slot is gone (an enclosure event: pulled, failed):
   * mark it failed now, as if an I/O had failed (onEvent 'member-failed'). No-op if already failed.
   */
  failMember(slot: number, reason: string): void;
  /** Put drive into a failed slot; it is rebuilding, with rows [0, rebuiltRows) already good. */
  replaceMember(slot: number, drive: Drive, rebuiltRows?: number): void;
  /** Reconstruct the rebuilding slot's part of one row from redundancy (locked against host writes). */
  rebuildRow(slot: number, row: number): Promise<void>;
  /** Every row is rebuilt: the slot is a normal member again. */
  completeRebuild(slot: number): void;
  /**
   * RAID 5/6, power-on: write a row log record again (data: the record's buffers, one per data
   * chunk) and the parity computed from it, to every member that takes writes.
   */
  redoRow?(row: number, lo: number, data: Buffer[]): Promise<void>;
  /** Check one row's redundancy and repair it when it disagrees (skipped while degraded). */
  scrubRow(row: number): Promise<'consistent' | 'repaired' | 'skipped'>;
  close(): Promise<void>;
}

/**
 * The drive interface of one DKC: names the RAID groups it is wired to and turns any failure
 * beneath into a MediumError naming the first LBA of the request (SBC: the host sees MEDIUM ERROR).
 */
export class DriveInterface {
  private readonly groups = new Map<string, RaidGroupDevice>();
  private readonly cached = new Map<RaidGroupDevice, CachedGroup>();
  /** A RAID table update writes must not be acknowledged before (holdAcks). */
  private ackBarrier: Promise<void> | null = null;

  /** cache null: every read and write goes straight to the RAID groups. */
  constructor(groups: Iterable<RaidGroupDevice>, readonly cache: DkcCache | null = null) {
    for (const g of groups) {
      this.groups.set(g.name, g);
      if (cache) this.cached.set(g, cache.attach(g));
    }
  }

  group(name: string): RaidGroupDevice {
    const g = this.groups.get(name);
    if (!g) throw new Error(`drive interface: no RAID group ${name}`);
    return g;
  }

  all(): RaidGroupDevice[] {
    return [...this.groups.values()];
  }

  readInto(g: RaidGroupDevice, offset: number, buf: Buffer, bufOffset: number, length: number, lba: number): Promise<void> {
    const cg = this.cached.get(g);
    const p = cg ? this.cache!.read(cg, offset, buf, bufOffset, length) : g.readInto(offset, buf, bufOffset, length);
    return p.catch((err: unknown) => {
      throw toMediumError(err, lba, 'read');
    });
  }

  write(g: RaidGroupDevice, offset: number, data: Buffer, length: number, fua: boolean, lba: number): Promise<void> {
    const cg = this.cached.get(g);
    const send = () => g.write(offset, data, 0, length, fua);
    const p = cg ? this.cache!.write(cg, offset, data, length, send, fua) : send();
    return p.then(
      () => this.ackBarrier ?? undefined,
      (err: unknown) => {
        throw toMediumError(err, lba, 'write');
      },
    );
  }

  /**
   * Writes that complete while p is pending are acknowledged only after it: a write that went
   * degraded past a member that just failed must not be acknowledged before the RAID table
   * says that member is failed, or a restart would read the stale member as good.
   */
  holdAcks(p: Promise<void>): void {
    const barrier = p.finally(() => {
      if (this.ackBarrier === barrier) this.ackBarrier = null;
    });
    this.ackBarrier = barrier;
  }

  /** The bytes [offset, +length) of g hold no live data any more (UNMAP): the cache may drop them. */
  discard(g: RaidGroupDevice, offset: number, length: number): void {
    const cg = this.cached.get(g);
    if (cg) this.cache!.discard(cg, offset, length);
  }

  async flush(g: RaidGroupDevice, lba: number): Promise<void> {
    try {
      // SYNCHRONIZE CACHE: write-back data is durable once its journal is (fdatasync).
      await this.cache?.sync();
      await g.flush();
    } catch (err) {
      throw toMediumError(err, lba, 'write');
    }
  }
}

function toMediumError(err: unknown, lba: number, kind: 'read' | 'write'): MediumError {
  if (err instanceof MediumError) return err;
  const detail = err instanceof Error ? err.message : String(err);
  return new MediumError(lba, kind, `unrecovered ${kind} error at LBA ${lba}: ${detail}`);
}
