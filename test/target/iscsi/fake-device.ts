// Test-only SCSI device: a few commands on 512-byte blocks, enough for the transport's tests,
// with a gate that holds commands in flight and a record of what the transport asked for.
import type { Nexus, ScsiCommand, ScsiResponse, ScsiTargetDevice, TmfFunction } from '../../../target/scsi/types';
import { TmfResponse } from '../../../target/scsi/types';

export const BLOCK = 512;

function checkCondition(key: number, asc: number, ascq = 0): ScsiResponse {
  const s = Buffer.alloc(18);
  s[0] = 0x70; s[2] = key; s[7] = 10; s[12] = asc; s[13] = ascq;
  return { status: 0x02, sense: s };
}

export class FakeDevice implements ScsiTargetDevice {
  readonly luns = new Set<number>([0]);
  readonly blocks = new Map<number, Buffer>();
  readonly commands: ScsiCommand[] = [];
  readonly added: Nexus[] = [];
  readonly removed: Nexus[] = [];
  readonly tmfs: Array<{ fn: TmfFunction; lun: number }> = [];
  /** Commands that ended because their ScsiCommand.abort was signalled (opcode 48h below). */
  readonly abortSeen: ScsiCommand[] = [];
  /** While set, execute() waits for it before answering. */
  gate: Promise<void> | undefined;
  private openGate: (() => void) | undefined;

  hold(): void {
    this.gate = new Promise((r) => { this.openGate = r; });
  }

  release(): void {
    this.gate = undefined;
    this.openGate?.();
  }

  nexusAdded(n: Nexus): void { this.added.push(n); }
  nexusRemoved(n: Nexus): void { this.removed.push(n); }
  hasLun(lun: number): boolean { return this.luns.has(lun); }

  taskManagement(fn: TmfFunction, _nexus: Nexus, lun: number): TmfResponse {
    this.tmfs.push({ fn, lun });
    return TmfResponse.Complete;
  }

  async execute(cmd: ScsiCommand): Promise<ScsiResponse> {
    this.commands.push(cmd);
    if (this.gate !== undefined) await this.gate;
    if (!this.luns.has(cmd.lun)) return checkCondition(0x05, 0x25);
    const c = cmd.cdb;
    switch (c[0]) {
      case 0x00: return { status: 0 };
      case 0x12: { // INQUIRY: 36 bytes standard data, trimmed to the allocation length
        const d = Buffer.alloc(36);
        d[2] = 6; d[3] = 2; d[4] = 31;
        d.write('FAKE    FAKE DISK       0001', 8, 'latin1');
        return { status: 0, data: d.subarray(0, Math.min(36, c.readUInt16BE(3))) };
      }
      case 0x28: { // READ(10): block n is filled with (n & 0xff), unless written
        const lba = c.readUInt32BE(2);
        const n = c.readUInt16BE(7);
        const out = Buffer.alloc(n * BLOCK);
        for (let i = 0; i < n; i++) (this.blocks.get(lba + i) ?? Buffer.alloc(BLOCK, (lba + i) & 0xff)).copy(out, i * BLOCK);
        return { status: 0, data: out };
      }
      case 0x2a: { // WRITE(10): writes what arrived, up to the CDB's length
        const lba = c.readUInt32BE(2);
        const n = c.readUInt16BE(7);
        const wanted = n * BLOCK;
        const data = cmd.dataOut ?? Buffer.alloc(0);
        for (let i = 0; i < n && (i + 1) * BLOCK <= data.length; i++) this.blocks.set(lba + i, Buffer.from(data.subarray(i * BLOCK, (i + 1) * BLOCK)));
        return { status: 0, dataOutWanted: wanted };
      }
      case 0x48: { // like SANITIZE: runs until its task is aborted, then ends at once
        const signal = cmd.abort;
        if (signal === undefined) return checkCondition(0x05, 0x24);
        await new Promise<void>((r) => {
          if (signal.aborted) r();
          else signal.addEventListener('abort', () => r(), { once: true });
        });
        this.abortSeen.push(cmd);
        return { status: 0 };
      }
      default:
        return checkCondition(0x05, 0x20);
    }
  }
}
