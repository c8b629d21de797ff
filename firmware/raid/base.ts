// What every RAID level shares: the member slots and their states, failing a member on the first
// error that says it is broken, events to the firmware, the row locks, and the rebuild bookkeeping.
// A row is one stripe chunk on every member, at the same disk offset row * stripeSizeBytes.
//   member states: normal -> failed (an I/O error of kind failed/missing, or any non-DriveError)
//                  failed -> rebuilding (replaceMember) -> normal (completeRebuild)
// A failed member is never read or written again: only replaceMember brings the slot back.
// A rebuilding member is written by host writes (so it converges) but read only below rebuiltRows.
import assert from 'node:assert';
import {
  DiskExtent, Drive, DriveError, MemberState, MemberStatus, RaidEvent, RaidGroupDevice, RaidGroupState, RaidLevel,
} from '../drive';
import { SECTOR_BYTES } from '../../emulator/hardware/disk';
import { RowLocks } from './locks';

/** The data the I/O needs is lost: more members are gone than the level tolerates, or RAID 0. */
export class RaidDataLost extends Error {}

/** A slot's state when the group is built (the firmware restores it from its own records). */
export interface MemberInit {
  state: MemberState;
  /** For state rebuilding: rows [0, rebuiltRows) are good on the drive. */
  rebuiltRows?: number;
}

interface Slot {
  drive: Drive;
  state: MemberState;
  rebuiltRows: number;
  errors: number;
}

export abstract class RaidGroupBase implements RaidGroupDevice {
  abstract readonly level: RaidLevel;
  readonly sizeBytes: number;
  readonly rowCount: number;
  onEvent: ((e: RaidEvent) => void) | null = null;
  protected readonly slots: Slot[];
  protected readonly locks = new RowLocks();
  /** Every member normal: the fast paths need no per-member checks. */
  protected healthy = true;

  constructor(
    readonly name: string,
    readonly stripeSizeBytes: number,
    drives: Drive[],
    /** Data chunks per row (disks for RAID 0, 1 for RAID 1, disks - parities for RAID 5/6). */
    dataChunksPerRow: number,
    members?: MemberInit[],
  ) {
    assert(drives.length >= 1, `${name}: a RAID group needs disks`);
    assert(stripeSizeBytes > 0 && stripeSizeBytes % SECTOR_BYTES === 0, `${name}: bad stripe size ${stripeSizeBytes}`);
    assert(!members || members.length === drives.length, `${name}: ${members?.length} member states for ${drives.length} drives`);
    this.rowCount = Math.floor(Math.min(...drives.map((d) => d.sizeBytes)) / stripeSizeBytes);
    this.sizeBytes = this.rowCount * stripeSizeBytes * dataChunksPerRow;
    this.slots = drives.map((drive, i) => ({
      drive,
      state: members?.[i].state ?? 'normal',
      rebuiltRows: members?.[i].state === 'rebuilding' ? members[i].rebuiltRows ?? 0 : 0,
      errors: 0,
    }));
    this.updateHealth();
  }

  get diskCount(): number {
    return this.slots.length;
  }

  /** Whether the data survives with the members marked lost (failed, or rebuilding: not yet whole). */
  protected abstract survives(lost: boolean[]): boolean;

  get state(): RaidGroupState {
    if (this.healthy) return 'normal';
    if (!this.survives(this.slots.map((s) => s.state !== 'normal'))) return 'failed';
    // A member without a drive to rebuild onto is the more urgent news than a rebuild under way.
    if (this.slots.some((s) => s.state === 'failed')) return 'degraded';
    return 'rebuilding';
  }

  abstract readInto(offset: number, buf: Buffer, bufOffset: number, length: number): Promise<void>;
  abstract write(offset: number, data: Buffer, dataOffset: number, length: number, fua: boolean): Promise<void>;
  abstract mapExtent(offset: number, length: number): DiskExtent[];
  abstract rebuildRow(slot: number, row: number): Promise<void>;
  abstract scrubRow(row: number): Promise<'consistent' | 'repaired' | 'skipped'>;

  members(): MemberStatus[] {
    return this.slots.map((s, slot) => ({ slot, drive: s.drive.name, state: s.state, rebuiltRows: s.rebuiltRows, errors: s.errors }));
  }

  replaceMember(slot: number, drive: Drive, rebuiltRows = 0): void {
    const s = this.slots[slot];
    assert(s && s.state === 'failed', `${this.name}: slot ${slot} is not a failed member`);
    assert(drive.sizeBytes >= this.rowCount * this.stripeSizeBytes, `${this.name}: ${drive.name} is smaller than the members`);
    assert(rebuiltRows >= 0 && rebuiltRows <= this.rowCount, `${this.name}: rebuiltRows ${rebuiltRows} of ${this.rowCount}`);
    s.drive = drive;
    s.state = 'rebuilding';
    s.rebuiltRows = rebuiltRows;
    s.errors = 0;
    this.updateHealth();
  }

  completeRebuild(slot: number): void {
    const s = this.slots[slot];
    assert(s && s.state === 'rebuilding', `${this.name}: slot ${slot} is not rebuilding`);
    assert(s.rebuiltRows >= this.rowCount, `${this.name}: slot ${slot} has rebuilt ${s.rebuiltRows} of ${this.rowCount} rows`);
    s.state = 'normal';
    this.updateHealth();
  }

  async flush(): Promise<void> {
    const live = this.slots.filter((s) => s.state !== 'failed');
    await Promise.all(live.map((s) => s.drive.flush().catch((err: unknown) => this.markFailed(this.slots.indexOf(s), s.drive, err))));
    if (this.state === 'failed') throw this.lost(0, this.sizeBytes, 'flush: more members failed than the level tolerates');
  }

  /** The group stops; its drives stay open (the drive bays own and close them: DriveBays.close). */
  async close(): Promise<void> {
    this.onEvent = null;
  }

  /** The slot's chunk of row can be read: a normal member, or a rebuilding one below rebuiltRows. */
  protected readable(slot: number, row: number): boolean {
    const s = this.slots[slot];
    return s.state === 'normal' || (s.state === 'rebuilding' && row < s.rebuiltRows);
  }

  protected writable(slot: number): boolean {
    return this.slots[slot].state !== 'failed';
  }

  /**
   * Read from one member; 'media': unreadable sectors (the member stays), 'failed': the member is
   * failed now (or was already, by a concurrent I/O).
   */
  protected async readSlot(slot: number, at: number, buf: Buffer, bufOffset: number, length: number): Promise<'ok' | 'media' | 'failed'> {
    const s = this.slots[slot];
    const drive = s.drive;
    if (s.state === 'failed') return 'failed';
    try {
      await drive.readInto(at, buf, bufOffset, length);
      return 'ok';
    } catch (err) {
      if (err instanceof DriveError && err.kind === 'media') return 'media';
      this.markFailed(slot, drive, err);
      return 'failed';
    }
  }

  /** Write to one member unless it is failed; any error fails it (a drive that cannot write is broken). */
  protected async writeSlot(slot: number, at: number, buf: Buffer, bufOffset: number, length: number, fua: boolean): Promise<boolean> {
    const s = this.slots[slot];
    const drive = s.drive;
    if (s.state === 'failed') return false;
    try {
      await drive.write(at, buf, bufOffset, length, fua);
      return true;
    } catch (err) {
      this.markFailed(slot, drive, err);
      return false;
    }
  }

  /** An enclosure event (pulled, failed): the slot's member is failed now, as if an I/O had failed. */
  failMember(slot: number, reason: string): void {
    assert(this.slots[slot], `${this.name}: no slot ${slot}`);
    this.markFailed(slot, this.slots[slot].drive, reason, false);
  }

  /** Mark a member failed (once; only if drive is still the one in the slot) and tell the firmware. */
  protected markFailed(slot: number, drive: Drive, err: unknown, ioError = true): void {
    const s = this.slots[slot];
    if (s.drive !== drive || s.state === 'failed') return;
    s.state = 'failed';
    if (ioError) s.errors++;
    this.updateHealth();
    const reason = err instanceof Error ? err.message : String(err);
    this.emit({ kind: 'member-failed', slot, drive: drive.name, reason });
  }

  /** Sectors of a member were rewritten from redundancy after a media error. */
  protected corrected(slot: number, at: number, length: number): void {
    const s = this.slots[slot];
    s.errors++;
    this.emit({ kind: 'media-error-corrected', slot, drive: s.drive.name, offset: at, length });
  }

  /** Report lost data (logical range) and return the error to reject with. */
  protected lost(offset: number, length: number, reason: string): RaidDataLost {
    this.emit({ kind: 'unrecoverable', offset, length, reason });
    return new RaidDataLost(`${this.name}: [${offset}, +${length}): ${reason}`);
  }

  /** Count a media error on a member that could not be corrected. */
  protected uncorrected(slot: number): void {
    this.slots[slot].errors++;
  }

  /** After a row of slot is rebuilt: rows are rebuilt in order, so only the next one advances. */
  protected rebuilt(slot: number, drive: Drive, row: number): void {
    const s = this.slots[slot];
    if (s.drive === drive && s.state === 'rebuilding' && row === s.rebuiltRows) s.rebuiltRows++;
  }

  protected assertRebuilding(slot: number, row: number): Drive {
    const s = this.slots[slot];
    assert(s && s.state === 'rebuilding', `${this.name}: slot ${slot} is not rebuilding`);
    assert(Number.isInteger(row) && row >= 0 && row < this.rowCount, `${this.name}: no row ${row}`);
    return s.drive;
  }

  protected emit(e: RaidEvent): void {
    this.onEvent?.(e);
  }

  private updateHealth(): void {
    this.healthy = this.slots.every((s) => s.state === 'normal');
  }

  protected check(offset: number, length: number): void {
    // The message is built only on failure: this runs on every I/O.
    if (!(offset >= 0 && length >= 0 && offset + length <= this.sizeBytes && offset % SECTOR_BYTES === 0 && length % SECTOR_BYTES === 0)) {
      assert.fail(`${this.name}: I/O [${offset}, +${length}) is not whole sectors inside ${this.sizeBytes} bytes`);
    }
  }
}
