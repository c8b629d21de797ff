// The drive bays of one DKC: every emulated drive (group members and spares) by name, each a
// sparse file behind a fault decorator (dkc disk fail|pull|insert|slow|media-error) and, when
// configured, a timing model. A bay keeps its identity while the drive in it is swapped
// (dkc disk replace puts a new blank drive in), so RAID groups hold bays, not files.
import type { Drive, DriveBays, RaidGroupDevice, RowLog, SlotAssignment } from '../../firmware/drive';
import type { Clock } from '../../firmware/kernel/clock';
import type { Prng } from '../../firmware/kernel/prng';
import type { RaidGroupEntry } from '../../firmware/ram';
import type { DriveStatus } from '../../firmware/status';
import type { DiskTiming } from '../rack/config';
import { FileDisk } from './disk';
import { FaultyDisk } from './faulty-disk';
import { createRaidGroup } from '../../firmware/raid';
import { withTiming } from './timing';

export interface BaySpec {
  name: string;
  file: string;
  sizeBytes: number;
  timing: DiskTiming;
}

/** One bay and the drive in it. */
export class Bay implements Drive {
  private constructor(
    private readonly spec: BaySpec,
    private file: FileDisk,
    /** The fault decorator the operator's commands act on. */
    public faults: FaultyDisk,
    private drive: Drive,
    private readonly env: { clock: Clock; random: Prng },
  ) {}

  static async open(spec: BaySpec, env: { clock: Clock; random: Prng }): Promise<Bay> {
    const file = await FileDisk.open(spec.file, spec.sizeBytes, { create: true, name: spec.name });
    const { faults, drive } = Bay.decorate(spec, file, env);
    return new Bay(spec, file, faults, drive, env);
  }

  private static decorate(spec: BaySpec, file: FileDisk, env: { clock: Clock; random: Prng }): { faults: FaultyDisk; drive: Drive } {
    const faults = new FaultyDisk(file, { clock: env.clock }, env.random.fork(spec.name));
    return { faults, drive: withTiming(faults, spec.timing, env.clock) };
  }

  get name(): string {
    return this.spec.name;
  }

  get sizeBytes(): number {
    return this.spec.sizeBytes;
  }

  status(): DriveStatus {
    return {
      name: this.name,
      sizeBytes: this.sizeBytes,
      health: this.faults.health,
      slowMs: this.faults.slowMs,
      mediaErrors: this.faults.mediaErrorCount,
    };
  }

  /** A new blank drive in this bay (the old file is discarded). */
  async replace(): Promise<void> {
    await this.file.close();
    this.file = await FileDisk.recreate(this.spec.file, this.spec.sizeBytes, this.spec.name);
    const { faults, drive } = Bay.decorate(this.spec, this.file, this.env);
    this.faults = faults;
    this.drive = drive;
  }

  readInto(offset: number, buf: Buffer, bufOffset: number, length: number): Promise<void> {
    return this.drive.readInto(offset, buf, bufOffset, length);
  }

  readv(offset: number, buffers: Buffer[], length: number): Promise<void> {
    return this.drive.readv(offset, buffers, length);
  }

  write(offset: number, data: Buffer, dataOffset: number, length: number, fua: boolean): Promise<void> {
    return this.drive.write(offset, data, dataOffset, length, fua);
  }

  writev(offset: number, buffers: Buffer[], length: number, fua: boolean): Promise<void> {
    return this.drive.writev(offset, buffers, length, fua);
  }

  flush(): Promise<void> {
    return this.drive.flush();
  }

  close(): Promise<void> {
    return this.file.close();
  }
}

export class EmulatedBays implements DriveBays {
  private constructor(private readonly bays: Map<string, Bay>) {}

  static async open(specs: BaySpec[], env: { clock: Clock; random: Prng }): Promise<EmulatedBays> {
    const bays = new Map<string, Bay>();
    try {
      for (const s of specs) bays.set(s.name, await Bay.open(s, env));
    } catch (err) {
      await Promise.all([...bays.values()].map((b) => b.close()));
      throw err;
    }
    return new EmulatedBays(bays);
  }

  bay(name: string): Bay | undefined {
    return this.bays.get(name);
  }

  drive(name: string): Drive {
    const b = this.bays.get(name);
    if (!b) throw new Error(`no drive bay ${name}`);
    return b;
  }

  status(name: string): DriveStatus {
    const b = this.bays.get(name);
    if (!b) throw new Error(`no drive bay ${name}`);
    return b.status();
  }

  assemble(entry: RaidGroupEntry, slots: SlotAssignment[], rowLog?: RowLog): RaidGroupDevice {
    return createRaidGroup(entry.name, entry.level, entry.stripeSizeBytes, slots.map((s) => s.drive), slots, rowLog);
  }

  async close(): Promise<void> {
    await Promise.all([...this.bays.values()].map((b) => b.close()));
  }
}
