// Fault injection for one drive (STYLE.md: faults are decorators around the same interface, and
// injected faults say that they were injected): new FaultyDisk(disk, { readErrorPercent: 2 }, prng).
//   fail()              every I/O throws DriveError 'failed' (the drive is broken) until heal()
//   pull() / insert()   every I/O throws DriveError 'missing' while the drive is out of its bay
//   mediaError(s, n)    reads touching sectors [s, s+n) throw DriveError 'media'; a write over a
//                       sector clears it (the drive remaps it, as a real one does)
//   slow(ms)            each I/O waits ms more on the injected clock (0 ends it)
//   readErrors(pct)     each read fails with a media error with probability pct% (seeded Prng)
// With no fault set, every call goes straight to the drive beneath.
import assert from 'node:assert';
import { Drive, DriveError } from '../../firmware/drive';
import type { Clock } from '../../firmware/kernel/clock';
import type { Prng } from '../../firmware/kernel/prng';
import { SECTOR_BYTES } from './disk';

export interface FaultOptions {
  /** Percent of reads that fail with a (transient) media error; needs a Prng. */
  readErrorPercent?: number;
  /** The clock slow() waits on. */
  clock?: Clock;
}

export type DriveHealth = 'ok' | 'failed' | 'pulled';

export class FaultyDisk implements Drive {
  private condition: DriveHealth = 'ok';
  private latencyMs = 0;
  private readErrorPercent: number;
  /** Sector numbers with an injected media error. */
  private readonly badSectors = new Set<number>();
  /** Nothing injected: pass every call through untouched. */
  private quiet = true;

  constructor(readonly inner: Drive, private readonly opts: FaultOptions = {}, private readonly prng: Prng | null = null) {
    this.readErrorPercent = 0;
    this.readErrors(opts.readErrorPercent ?? 0);
  }

  get name(): string {
    return this.inner.name;
  }

  get sizeBytes(): number {
    return this.inner.sizeBytes;
  }

  get health(): DriveHealth {
    return this.condition;
  }

  get slowMs(): number {
    return this.latencyMs;
  }

  get mediaErrorCount(): number {
    return this.badSectors.size;
  }

  /** The drive breaks: every I/O fails until heal(). */
  fail(): void {
    this.condition = 'failed';
    this.update();
  }

  /** Out of its bay: every I/O fails as missing until insert(). */
  pull(): void {
    if (this.condition === 'ok') this.condition = 'pulled';
    this.update();
  }

  /** Back in its bay (a failed drive stays failed). */
  insert(): void {
    if (this.condition === 'pulled') this.condition = 'ok';
    this.update();
  }

  /** Every injected fault is gone. */
  heal(): void {
    this.condition = 'ok';
    this.latencyMs = 0;
    this.readErrorPercent = 0;
    this.badSectors.clear();
    this.update();
  }

  slow(latencyMs: number): void {
    assert(latencyMs >= 0, `bad latency ${latencyMs}`);
    assert(latencyMs === 0 || this.opts.clock, `${this.name}: slow() needs a clock`);
    this.latencyMs = latencyMs;
    this.update();
  }

  mediaError(sector: number, count = 1): void {
    assert(Number.isInteger(sector) && Number.isInteger(count) && sector >= 0 && count >= 1, `bad sectors ${sector}+${count}`);
    assert((sector + count) * SECTOR_BYTES <= this.sizeBytes, `${this.name}: sectors ${sector}+${count} beyond the drive`);
    for (let s = sector; s < sector + count; s++) this.badSectors.add(s);
    this.update();
  }

  readErrors(percent: number): void {
    assert(percent >= 0 && percent <= 100, `bad percent ${percent}`);
    assert(percent === 0 || this.prng, `${this.name}: random read errors need a Prng`);
    this.readErrorPercent = percent;
    this.update();
  }

  readInto(offset: number, buf: Buffer, bufOffset: number, length: number): Promise<void> {
    if (this.quiet) return this.inner.readInto(offset, buf, bufOffset, length);
    return this.faultyRead(offset, length).then(() => this.inner.readInto(offset, buf, bufOffset, length));
  }

  readv(offset: number, buffers: Buffer[], length: number): Promise<void> {
    if (this.quiet) return this.inner.readv(offset, buffers, length);
    return this.faultyRead(offset, length).then(() => this.inner.readv(offset, buffers, length));
  }

  write(offset: number, data: Buffer, dataOffset: number, length: number, fua: boolean): Promise<void> {
    if (this.quiet) return this.inner.write(offset, data, dataOffset, length, fua);
    return this.faultyWrite(offset, length, () => this.inner.write(offset, data, dataOffset, length, fua));
  }

  writev(offset: number, buffers: Buffer[], length: number, fua: boolean): Promise<void> {
    if (this.quiet) return this.inner.writev(offset, buffers, length, fua);
    return this.faultyWrite(offset, length, () => this.inner.writev(offset, buffers, length, fua));
  }

  async flush(): Promise<void> {
    if (!this.quiet) await this.gate(0, 0);
    await this.inner.flush();
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private update(): void {
    this.quiet = this.condition === 'ok' && this.latencyMs === 0 && this.readErrorPercent === 0 && this.badSectors.size === 0;
  }

  /** Latency, then the drive's condition (a drive pulled during the wait is missing). */
  private async gate(offset: number, length: number): Promise<void> {
    if (this.latencyMs > 0) await this.opts.clock!.sleep(this.latencyMs);
    if (this.condition === 'failed') throw new DriveError(this.name, 'failed', offset, length, `${this.name}: drive failed (injected)`, true);
    if (this.condition === 'pulled') throw new DriveError(this.name, 'missing', offset, length, `${this.name}: drive pulled (injected)`, true);
  }

  private async faultyRead(offset: number, length: number): Promise<void> {
    await this.gate(offset, length);
    const bad = this.firstBadRun(offset, length);
    if (bad) throw new DriveError(this.name, 'media', bad[0], bad[1], `${this.name}: unreadable sectors at byte ${bad[0]}, +${bad[1]} (injected)`, true);
    if (this.readErrorPercent > 0 && this.prng!.chance(this.readErrorPercent)) {
      throw new DriveError(this.name, 'media', offset, SECTOR_BYTES, `${this.name}: random read error at byte ${offset} (injected)`, true);
    }
  }

  private async faultyWrite(offset: number, length: number, io: () => Promise<void>): Promise<void> {
    await this.gate(offset, length);
    await io();
    if (this.badSectors.size === 0) return;
    const first = offset / SECTOR_BYTES;
    const end = first + length / SECTOR_BYTES;
    for (const s of [...this.badSectors]) if (s >= first && s < end) this.badSectors.delete(s);
    this.update();
  }

  /** The first run of bad sectors within [offset, +length), as [byte offset, byte length]. */
  private firstBadRun(offset: number, length: number): [number, number] | null {
    if (this.badSectors.size === 0) return null;
    const first = Math.floor(offset / SECTOR_BYTES);
    const end = Math.ceil((offset + length) / SECTOR_BYTES);
    let lo = -1;
    if (this.badSectors.size < end - first) {
      for (const s of this.badSectors) if (s >= first && s < end && (lo < 0 || s < lo)) lo = s;
    } else {
      for (let s = first; s < end && lo < 0; s++) if (this.badSectors.has(s)) lo = s;
    }
    if (lo < 0) return null;
    let hi = lo + 1;
    while (hi < end && this.badSectors.has(hi)) hi++;
    return [lo * SECTOR_BYTES, (hi - lo) * SECTOR_BYTES];
  }
}
