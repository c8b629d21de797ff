// Test harness: a ScsiTarget over MemoryVolumes, driven through execute() as the transport would.
import * as assert from 'assert';
import { ScsiTarget } from '../../../target/scsi/target';
import { LuDefinition, Nexus, ScsiResponse, TaskAttribute } from '../../../target/scsi/types';
import { decodeSense, DecodedSense, SenseCode, Status } from '../../../target/scsi/sense';
import { MemoryStateStore, MemoryVolume } from '../../helpers/memory-volume';

export const IQN = 'iqn.2026-01.dev.dkc-emu:target0';

let nextNexusId = 1;

export function makeNexus(initiator = 'iqn.2026-01.dev.test:init0', isid = '023d00000001', tpgt = 1, rtpi = 1): Nexus {
  return {
    id: nextNexusId++,
    initiatorPort: `${initiator},i,0x${isid}`,
    targetPort: `${IQN},t,0x${tpgt.toString(16).padStart(4, '0')}`,
    relativeTargetPortId: rtpi,
  };
}

export interface LuSpec extends Partial<Omit<LuDefinition, 'volume' | 'state'>> {
  blockCount?: number;
  blockSize?: 512 | 4096;
  volume?: MemoryVolume;
  state?: MemoryStateStore;
}

export class Harness {
  readonly target: ScsiTarget;
  readonly volumes = new Map<number, MemoryVolume>();
  readonly stores = new Map<number, MemoryStateStore>();
  readonly bugs: unknown[] = [];

  constructor(luns: LuSpec[] = [{}]) {
    const defs: LuDefinition[] = luns.map((s, i) => {
      const lun = s.lun ?? i;
      const volume = s.volume ?? new MemoryVolume({ blockCount: s.blockCount ?? 1024, blockSize: s.blockSize ?? 512, id: `test:ldev:${lun}` });
      const state = s.state ?? new MemoryStateStore();
      this.volumes.set(lun, volume);
      this.stores.set(lun, state);
      return { ...s, lun, kind: 'disk', volume, state };
    });
    this.target = new ScsiTarget({ name: IQN, luns: defs, onInternalError: (e) => this.bugs.push(e) });
  }

  vol(lun = 0): MemoryVolume {
    return this.volumes.get(lun)!;
  }

  /** A logged-in nexus whose POWER ON RESET unit attention is already consumed. */
  async login(initiator?: string, isid?: string, tpgt?: number, rtpi?: number): Promise<Nexus> {
    const n = makeNexus(initiator, isid, tpgt, rtpi);
    this.target.nexusAdded(n);
    for (const lun of this.volumes.keys()) {
      const r = await this.run(n, Buffer.from([0x00, 0, 0, 0, 0, 0]), { lun });
      assert.strictEqual(r.status, Status.CHECK_CONDITION, 'first command after login sees POWER ON RESET');
    }
    return n;
  }

  run(nexus: Nexus, cdb: Buffer, opts: { lun?: number; dataOut?: Buffer; expectedLength?: number; abort?: AbortSignal } = {}): Promise<ScsiResponse> {
    const padded = Buffer.alloc(Math.max(16, cdb.length));
    cdb.copy(padded);
    return this.target.execute({
      nexus, lun: opts.lun ?? 0, cdb: padded, dataOut: opts.dataOut ?? null,
      expectedLength: opts.expectedLength ?? opts.dataOut?.length ?? 0, taskTag: 1, attribute: TaskAttribute.Simple,
      ...(opts.abort ? { abort: opts.abort } : {}),
    });
  }

  assertNoBugs(): void {
    assert.deepStrictEqual(this.bugs, [], 'no INTERNAL TARGET FAILURE');
  }
}

export function good(r: ScsiResponse): Buffer {
  if (r.status !== Status.GOOD) {
    const s = r.sense ? decodeSense(r.sense) : undefined;
    assert.fail(`expected GOOD, got status ${r.status} ${s ? `sense ${s.key}/${s.asc.toString(16)}/${s.ascq.toString(16)}` : ''}`);
  }
  return r.data ?? Buffer.alloc(0);
}

/** Asserts CHECK CONDITION with this sense code (and field pointer / information when given). */
export function checkCondition(r: ScsiResponse, s: SenseCode, more: Partial<DecodedSense> = {}): DecodedSense {
  assert.strictEqual(r.status, Status.CHECK_CONDITION, `expected CHECK CONDITION ${s.name}, got status ${r.status}`);
  const d = decodeSense(r.sense!);
  assert.deepStrictEqual([d.key, d.asc, d.ascq], [s.key, s.asc, s.ascq], `expected ${s.name}`);
  if (more.fieldPointer) assert.deepStrictEqual(d.fieldPointer, more.fieldPointer);
  if (more.information !== undefined) assert.strictEqual(d.information, more.information);
  if (more.descriptor !== undefined) assert.strictEqual(d.descriptor, more.descriptor);
  return d;
}

export function conflict(r: ScsiResponse): void {
  assert.strictEqual(r.status, Status.RESERVATION_CONFLICT, `expected RESERVATION CONFLICT, got ${r.status}`);
}

export function hex(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex');
}

export function pattern(bytes: number, seed: number): Buffer {
  const b = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) b[i] = (i * 7 + seed * 13 + (i >> 9)) & 0xff;
  return b;
}
