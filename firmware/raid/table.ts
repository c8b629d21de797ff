// The RAID group table's changing half (seed 003 claim 14: RAID group -> disks), kept in the
// data directory: which drive sits in each slot of each group, the slot's state, how far a
// rebuild has got, and the spare pool. The configuration says what a group was built from; this
// table says what it is now, after failures and spare takeovers, so a restart assembles the
// same groups and a rebuild resumes where it was.
//
// Updates are whole-document atomic writes (firmware/durable.ts), serialized. The rebuild
// cursor is saved behind the real progress, never ahead of it: a restart redoes a few rows.
import { JsonDocumentFile } from '../durable';
import type { MemberState } from '../drive';

const FORMAT = 'dkc-emu-raid-table/1';

export interface SlotEntry {
  drive: string;
  state: MemberState;
  rebuiltRows: number;
}

interface Doc {
  format: string;
  groups: Record<string, SlotEntry[]>;
  spares: string[];
}

export class RaidTable {
  private constructor(private readonly store: JsonDocumentFile, private readonly doc: Doc) {}

  /**
   * Load the table, or start it from the configuration. Groups and spares the configuration adds
   * to an existing data directory join the table; nothing already there is moved.
   */
  static async open(file: string, config: { groups: { name: string; drives: string[] }[]; spares: string[] }): Promise<RaidTable> {
    const store = new JsonDocumentFile(file);
    const found = await store.read();
    const doc = found === undefined ? { format: FORMAT, groups: {}, spares: [] } : check(file, found);
    const known = new Set(Object.values(doc.groups).flatMap((slots) => slots.map((s) => s.drive)));
    for (const d of doc.spares) known.add(d);
    for (const g of config.groups) {
      if (doc.groups[g.name]) continue;
      doc.groups[g.name] = g.drives.map((drive) => ({ drive, state: 'normal', rebuiltRows: 0 }));
      g.drives.forEach((d) => known.add(d));
    }
    for (const s of config.spares) if (!known.has(s)) doc.spares.push(s);
    const table = new RaidTable(store, doc);
    await table.save();
    return table;
  }

  slots(group: string): readonly SlotEntry[] {
    const s = this.doc.groups[group];
    if (!s) throw new Error(`RAID table: no group ${group}`);
    return s;
  }

  get spares(): readonly string[] {
    return this.doc.spares;
  }

  /** Where a drive is: a group slot, the spare pool, or nowhere (taken out by a spare's takeover). */
  locate(drive: string): { group: string; slot: number } | 'spare' | undefined {
    for (const [group, slots] of Object.entries(this.doc.groups)) {
      const slot = slots.findIndex((s) => s.drive === drive);
      if (slot >= 0) return { group, slot };
    }
    return this.doc.spares.includes(drive) ? 'spare' : undefined;
  }

  setSlot(group: string, slot: number, entry: SlotEntry): Promise<void> {
    this.slots(group);
    this.doc.groups[group][slot] = { ...entry };
    return this.save();
  }

  addSpare(drive: string): Promise<void> {
    if (!this.doc.spares.includes(drive)) this.doc.spares.push(drive);
    return this.save();
  }

  removeSpare(drive: string): Promise<void> {
    this.doc.spares = this.doc.spares.filter((d) => d !== drive);
    return this.save();
  }

  /** Resolves when every change made so far has been written (or has failed to be). */
  idle(): Promise<void> {
    return this.store.idle();
  }

  /** Resolves when this and every earlier change is durable. */
  save(): Promise<void> {
    return this.store.write(this.doc);
  }
}

function check(file: string, found: unknown): Doc {
  const doc = found as Doc;
  if (doc?.format !== FORMAT || typeof doc.groups !== 'object' || !Array.isArray(doc.spares)) {
    throw new Error(`${file}: not a ${FORMAT} document`);
  }
  for (const [g, slots] of Object.entries(doc.groups)) {
    for (const s of slots) {
      if (typeof s.drive !== 'string' || !['normal', 'failed', 'rebuilding'].includes(s.state) || !Number.isSafeInteger(s.rebuiltRows)) {
        throw new Error(`${file}: group ${g} has a bad slot ${JSON.stringify(s)}`);
      }
    }
  }
  return doc;
}
