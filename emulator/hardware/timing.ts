// Timing models for drives: decorators that make each I/O take the time a real drive would, on
// the injected clock (a VirtualClock makes an hour of seeks cost no real waiting). Off unless a
// group's disks say `timing: hdd` or `ssd`. The service time is decided when the I/O arrives, from
// the drive's state then (head position, busy until), so the model is deterministic.
//   HDD: one request at a time per spindle (FIFO). Seek time grows linearly with the distance the
//        head moves, 3x the average seek for a full stroke (the average of uniform random pairs
//        is a third of the stroke); then half a revolution on average; then transfer at the
//        sustained rate. An I/O that starts where the last one ended pays neither.
//   SSD: a fixed latency, overlapped on a few parallel channels, then the transfer over one shared
//        bus at the drive's bandwidth.
import type { Drive } from '../../firmware/drive';
import type { Clock } from '../../firmware/kernel/clock';

export interface HddTiming {
  rpm: number;
  averageSeekMs: number;
  transferMBps: number;
}

export interface SsdTiming {
  latencyMs: number;
  transferMBps: number;
  channels: number;
}

export const HDD_DEFAULTS: HddTiming = { rpm: 7200, averageSeekMs: 8.5, transferMBps: 200 };
export const SSD_DEFAULTS: SsdTiming = { latencyMs: 0.08, transferMBps: 500, channels: 4 };

/** Bytes over MB/s (10^6 bytes per second), in ms. */
function transferMs(bytes: number, mbps: number): number {
  return bytes / (mbps * 1000);
}

abstract class TimedDrive implements Drive {
  constructor(readonly inner: Drive, protected readonly clock: Clock) {}

  get name(): string {
    return this.inner.name;
  }

  get sizeBytes(): number {
    return this.inner.sizeBytes;
  }

  /** The clock time at which an I/O of length bytes at offset, arriving now, completes. */
  protected abstract schedule(offset: number, length: number): number;

  private async wait(offset: number, length: number): Promise<void> {
    const done = this.schedule(offset, length);
    const now = this.clock.now();
    if (done > now) await this.clock.sleep(done - now);
  }

  readInto(offset: number, buf: Buffer, bufOffset: number, length: number): Promise<void> {
    return this.wait(offset, length).then(() => this.inner.readInto(offset, buf, bufOffset, length));
  }

  readv(offset: number, buffers: Buffer[], length: number): Promise<void> {
    return this.wait(offset, length).then(() => this.inner.readv(offset, buffers, length));
  }

  write(offset: number, data: Buffer, dataOffset: number, length: number, fua: boolean): Promise<void> {
    return this.wait(offset, length).then(() => this.inner.write(offset, data, dataOffset, length, fua));
  }

  writev(offset: number, buffers: Buffer[], length: number, fua: boolean): Promise<void> {
    return this.wait(offset, length).then(() => this.inner.writev(offset, buffers, length, fua));
  }

  flush(): Promise<void> {
    return this.inner.flush();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

export class HddDrive extends TimedDrive {
  readonly timing: HddTiming;
  /** When the spindle finishes the requests it has (FIFO), and where its head then is. */
  private busyUntil = 0;
  private head = 0;

  constructor(inner: Drive, clock: Clock, timing: Partial<HddTiming> = {}) {
    super(inner, clock);
    this.timing = { ...HDD_DEFAULTS, ...timing };
  }

  /** Service time of one request, given where the head is. */
  serviceMs(headAt: number, offset: number, length: number): number {
    const t = this.timing;
    const distance = Math.abs(offset - headAt);
    const positioning = distance === 0 ? 0 : Math.min(1, distance / this.sizeBytes) * 3 * t.averageSeekMs + 30000 / t.rpm;
    return positioning + transferMs(length, t.transferMBps);
  }

  protected schedule(offset: number, length: number): number {
    const start = Math.max(this.clock.now(), this.busyUntil);
    this.busyUntil = start + this.serviceMs(this.head, offset, length);
    this.head = offset + length;
    return this.busyUntil;
  }
}

export class SsdDrive extends TimedDrive {
  readonly timing: SsdTiming;
  /** When each channel is free again, and when the shared transfer bus is. */
  private readonly channelFree: number[];
  private busFree = 0;

  constructor(inner: Drive, clock: Clock, timing: Partial<SsdTiming> = {}) {
    super(inner, clock);
    this.timing = { ...SSD_DEFAULTS, ...timing };
    this.channelFree = new Array(Math.max(1, this.timing.channels)).fill(0);
  }

  protected schedule(_offset: number, length: number): number {
    let c = 0;
    for (let i = 1; i < this.channelFree.length; i++) if (this.channelFree[i] < this.channelFree[c]) c = i;
    const start = Math.max(this.clock.now(), this.channelFree[c]);
    const done = Math.max(start + this.timing.latencyMs, this.busFree) + transferMs(length, this.timing.transferMBps);
    this.busFree = done;
    this.channelFree[c] = done;
    return done;
  }
}

export type TimingModel = 'none' | 'hdd' | 'ssd';

/** The drive behind the named timing model ('none': the drive itself). */
export function withTiming(drive: Drive, model: TimingModel, clock: Clock): Drive {
  if (model === 'hdd') return new HddDrive(drive, clock);
  if (model === 'ssd') return new SsdDrive(drive, clock);
  return drive;
}
