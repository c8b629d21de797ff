// The DKC's RAM (seed 001 Fig. 3, RAM 1260): the management tables of seed 003 claim 14.
//   - LU table: host-visible address (target port, LUN) -> LDEV number
//   - volume configuration information table: LDEV number -> RAID group, offset, size, block size
//   - RAID group table: RAID group -> level, stripe size, member disks
// together they translate LU address -> LDEV -> RAID group address -> disk address.
// The per-LDEV allocation bitmaps live here too (owned by each LDEV's AllocationMap).
// Pair, log and mark tables (claims 14-15) arrive with the later issues that use them.
import type { RaidLevel } from './drive';
import type { LdevDefinition } from './ldev';

export interface LuEntry {
  /** Target port the LU is reached through (the iSCSI target name). */
  port: string;
  lun: number;
  ldev: number;
}

export interface RaidGroupEntry {
  name: string;
  level: RaidLevel;
  stripeSizeBytes: number;
  /** Member disks in slot order as configured, by bay name (firmware/raid/table.ts has who is there now). */
  disks: string[];
  diskSizeBytes: number;
  sizeBytes: number;
}

export class Ram {
  private readonly luTable = new Map<string, LuEntry>();
  private readonly ldevTable = new Map<number, LdevDefinition>();
  private readonly raidGroupTable = new Map<string, RaidGroupEntry>();

  addRaidGroup(e: RaidGroupEntry): void {
    if (this.raidGroupTable.has(e.name)) throw new Error(`RAID group ${e.name} is defined twice`);
    this.raidGroupTable.set(e.name, e);
  }

  addLdev(d: LdevDefinition): void {
    if (this.ldevTable.has(d.number)) throw new Error(`LDEV ${d.number} is defined twice`);
    if (!this.raidGroupTable.has(d.group)) throw new Error(`LDEV ${d.name}: no RAID group ${d.group}`);
    this.ldevTable.set(d.number, d);
  }

  addLu(e: LuEntry): void {
    const key = luKey(e.port, e.lun);
    if (this.luTable.has(key)) throw new Error(`LUN ${e.lun} of ${e.port} is defined twice`);
    if (!this.ldevTable.has(e.ldev)) throw new Error(`LUN ${e.lun} of ${e.port}: no LDEV ${e.ldev}`);
    this.luTable.set(key, e);
  }

  lu(port: string, lun: number): LuEntry | undefined {
    return this.luTable.get(luKey(port, lun));
  }

  ldev(n: number): LdevDefinition | undefined {
    return this.ldevTable.get(n);
  }

  raidGroup(name: string): RaidGroupEntry | undefined {
    return this.raidGroupTable.get(name);
  }

  lus(): LuEntry[] {
    return [...this.luTable.values()];
  }

  ldevs(): LdevDefinition[] {
    return [...this.ldevTable.values()];
  }

  raidGroups(): RaidGroupEntry[] {
    return [...this.raidGroupTable.values()];
  }
}

function luKey(port: string, lun: number): string {
  return `${port}\u0000${lun}`;
}
