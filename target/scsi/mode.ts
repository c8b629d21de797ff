// Mode parameters (SPC-4 7.5, SBC-3 6.4): the page table, per-LU current and saved values, and the
// MODE SENSE(6/10) and MODE SELECT(6/10) handlers.
import type { StateStore } from '../../firmware/volume';
import type { Ctx } from './dispatch';
import { CheckCondition, Sense, invalidCdbField, invalidParamField } from './sense';
import { decodeModeSelect, decodeModeSense } from './cdb';

export const ModePage = Object.freeze({
  CACHING: 0x08,
  CONTROL: 0x0a,
  INFORMATIONAL_EXCEPTIONS: 0x1c,
  ALL: 0x3f,
});

/** MODE SENSE PAGE CONTROL field (SPC-4 6.11.1 table 154). */
export const PageControl = Object.freeze({ CURRENT: 0, CHANGEABLE: 1, DEFAULT: 2, SAVED: 3 });

interface PageDef {
  code: number;
  name: string;
  /** The whole page, header included (PS bit clear). */
  defaults: number[];
  /** Bits MODE SELECT may change, same layout. */
  changeable: number[];
}

// Pages in ascending page code order (SPC-4 6.11: page 3Fh returns them in that order).
const pages: readonly PageDef[] = Object.freeze([
  {
    // SBC-3 6.4.5: WCE=1 (write-back cache; FUA and SYNCHRONIZE CACHE reach stable storage).
    code: ModePage.CACHING, name: 'caching',
    defaults: [0x08, 0x12, 0x04, 0, 0xff, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x80, 0x14, 0, 0, 0, 0, 0, 0],
    changeable: [0, 0, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
  },
  {
    // SPC-4 7.5.8: D_SENSE (byte 2 bit 2, per I_T nexus) and SWP (byte 4 bit 3, shared: the
    // LU refuses writes from every nexus with DATA PROTECT, as a readOnly LU does) are
    // changeable; QAM=1 unrestricted.
    code: ModePage.CONTROL, name: 'control',
    defaults: [0x0a, 0x0a, 0x00, 0x10, 0x00, 0x00, 0, 0, 0xff, 0xff, 0, 0],
    changeable: [0, 0, 0x04, 0, 0x08, 0, 0, 0, 0, 0, 0, 0],
  },
  {
    // SPC-4 7.5.11: DEXCPT=1 (no informational exception reporting) by default.
    code: ModePage.INFORMATIONAL_EXCEPTIONS, name: 'informational exceptions',
    defaults: [0x1c, 0x0a, 0x08, 0x00, 0, 0, 0, 0, 0, 0, 0, 0],
    changeable: [0, 0, 0x08, 0x0f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
  },
]);

const stateName = 'mode-pages';

/**
 * D_SENSE is kept per I_T nexus (SPC-4 6.11.1 lets a device server keep mode parameters per I_T
 * nexus): the sense format is each initiator's own choice, and changing it is no business of the
 * other nexuses (no MODE PARAMETERS CHANGED for them). Every other field is shared by the LU.
 */
const D_SENSE_BYTE = 2, D_SENSE_BIT = 0x04;

function findPage(code: number): PageDef | undefined {
  return pages.find((p) => p.code === code);
}

/** Current and saved values of the mode pages of one LU (shared by all I_T nexuses). */
export class ModeState {
  private current = new Map<number, Buffer>();
  private saved = new Map<number, Buffer>();
  /** D_SENSE per I_T nexus key; a nexus without an entry uses the shared (saved or default) bit. */
  private readonly dSenseOf = new Map<string, boolean>();

  constructor(private readonly store: StateStore) {
    for (const p of pages) this.current.set(p.code, Buffer.from(p.defaults));
  }

  async load(): Promise<void> {
    const text = await this.store.load(stateName);
    if (!text) return;
    const doc = JSON.parse(text) as Record<string, string>;
    for (const p of pages) {
      const hex = doc[String(p.code)];
      if (hex === undefined) continue;
      const b = Buffer.from(hex, 'hex');
      if (b.length !== p.defaults.length) continue; // a layout from another version: keep defaults
      this.saved.set(p.code, b);
      this.current.set(p.code, Buffer.from(b));
    }
  }

  /** MODE SELECT with SP=1: the issuing nexus's current values become the saved ones. */
  async save(key: string): Promise<void> {
    const doc: Record<string, string> = {};
    for (const p of pages) {
      const b = this.page(p.code, PageControl.CURRENT, key);
      this.saved.set(p.code, Buffer.from(b));
      this.current.set(p.code, Buffer.from(b)); // nexuses without their own D_SENSE start from it
      doc[String(p.code)] = b.toString('hex');
    }
    await this.store.save(stateName, JSON.stringify(doc));
  }

  page(code: number, pc: number, key?: string): Buffer {
    const def = findPage(code)!;
    switch (pc) {
      case PageControl.CURRENT: {
        const b = Buffer.from(this.current.get(code)!);
        const own = key === undefined ? undefined : this.dSenseOf.get(key);
        if (code === ModePage.CONTROL && own !== undefined) {
          b[D_SENSE_BYTE] = (b[D_SENSE_BYTE] & ~D_SENSE_BIT) | (own ? D_SENSE_BIT : 0);
        }
        return b;
      }
      case PageControl.CHANGEABLE: {
        const b = Buffer.from(def.changeable);
        b[0] = def.defaults[0]; // page code and page length are reported as for any page
        b[1] = def.defaults[1];
        return b;
      }
      case PageControl.DEFAULT: return Buffer.from(def.defaults);
      default: return this.saved.get(code) ?? Buffer.from(def.defaults);
    }
  }

  /** Applies a validated page; returns whether a shared (not per-nexus) value changed. */
  set(code: number, b: Buffer, key: string): boolean {
    const shared = Buffer.from(b);
    if (code === ModePage.CONTROL) {
      this.dSenseOf.set(key, (b[D_SENSE_BYTE] & D_SENSE_BIT) !== 0);
      const cur = this.current.get(code)!;
      shared[D_SENSE_BYTE] = (shared[D_SENSE_BYTE] & ~D_SENSE_BIT) | (cur[D_SENSE_BYTE] & D_SENSE_BIT);
    }
    const changed = !shared.equals(this.current.get(code)!);
    this.current.set(code, shared);
    return changed;
  }

  /** The I_T nexus is gone: its own values go with it. */
  forget(key: string): void {
    this.dSenseOf.delete(key);
  }

  dSense(key: string): boolean {
    return (this.page(ModePage.CONTROL, PageControl.CURRENT, key)[D_SENSE_BYTE] & D_SENSE_BIT) !== 0;
  }

  get swp(): boolean {
    return (this.current.get(ModePage.CONTROL)![4] & 0x08) !== 0;
  }

  get wce(): boolean {
    return (this.current.get(ModePage.CACHING)![2] & 0x04) !== 0;
  }
}

function blockDescriptor(ctx: Ctx, long: boolean): Buffer {
  const v = ctx.lu.volume;
  if (long) {
    const b = Buffer.alloc(16);
    b.writeBigUInt64BE(BigInt(v.blockCount), 0);
    b.writeUInt32BE(v.blockSize, 12);
    return b;
  }
  const b = Buffer.alloc(8);
  b.writeUInt32BE(Math.min(v.blockCount, 0xffffffff), 0);
  b.writeUIntBE(v.blockSize, 5, 3);
  return b;
}

function selectPages(pageCode: number, subpageCode: number): PageDef[] {
  if (pageCode === ModePage.ALL) {
    if (subpageCode !== 0x00 && subpageCode !== 0xff) throw invalidCdbField(3, 7);
    return [...pages];
  }
  const p = findPage(pageCode);
  if (!p) throw invalidCdbField(2, 5);
  if (subpageCode !== 0) throw invalidCdbField(3, 7);
  return [p];
}

/** MODE SENSE(6) and (10), SPC-4 6.11 / 6.12. */
export async function modeSense(ctx: Ctx, size: 6 | 10): Promise<Buffer> {
  const c = decodeModeSense(ctx.cdb, size);
  const body = selectPages(c.pageCode, c.subpageCode).map((p) => {
    const b = Buffer.from(ctx.lu.mode.page(p.code, c.pc, ctx.key));
    b[0] = (b[0] & 0x3f) | 0x80; // PS=1: every page can be saved
    return b;
  });
  const bd = c.dbd ? Buffer.alloc(0) : blockDescriptor(ctx, c.llbaa);
  // Device-specific parameter (SBC-3 6.4.1): WP bit 7, DPOFUA bit 4.
  const dsp = (ctx.lu.writeProtected ? 0x80 : 0) | 0x10;
  const rest = Buffer.concat([bd, ...body]);
  if (size === 6) {
    const h = Buffer.from([0, 0, dsp, bd.length]);
    h[0] = Math.min(255, 3 + rest.length);
    return Buffer.concat([h, rest]);
  }
  const h = Buffer.alloc(8);
  h.writeUInt16BE(6 + rest.length, 0);
  h[3] = dsp;
  h[4] = c.llbaa && !c.dbd ? 1 : 0; // LONGLBA
  h.writeUInt16BE(bd.length, 6);
  return Buffer.concat([h, rest]);
}

/** Checks one block descriptor of a MODE SELECT parameter list: only our block size is accepted. */
function checkBlockDescriptor(ctx: Ctx, list: Buffer, at: number, long: boolean): void {
  const lenAt = long ? at + 12 : at + 5;
  const blockLength = long ? list.readUInt32BE(lenAt) : list.readUIntBE(lenAt, 3);
  if (blockLength !== 0 && blockLength !== ctx.lu.volume.blockSize) throw invalidParamField(lenAt, 7);
}

/** Validates one page against the changeable mask (SPC-4 6.9: INVALID FIELD IN PARAMETER LIST). */
function checkPage(ctx: Ctx, list: Buffer, at: number): { code: number; value: Buffer; end: number } {
  if (at + 2 > list.length) throw new CheckCondition(Sense.PARAMETER_LIST_LENGTH_ERROR);
  if (list[at] & 0x40) throw invalidParamField(at, 6); // SPF: we have no subpages
  const def = findPage(list[at] & 0x3f);
  if (!def) throw invalidParamField(at, 5);
  if (list[at + 1] !== def.defaults.length - 2) throw invalidParamField(at + 1, 7);
  const end = at + def.defaults.length;
  if (end > list.length) throw new CheckCondition(Sense.PARAMETER_LIST_LENGTH_ERROR);
  const cur = ctx.lu.mode.page(def.code, PageControl.CURRENT, ctx.key);
  const value = Buffer.from(cur);
  for (let i = 2; i < def.defaults.length; i++) {
    const wrong = (list[at + i] ^ cur[i]) & ~def.changeable[i] & 0xff;
    if (wrong) throw invalidParamField(at + i, 31 - Math.clz32(wrong));
    value[i] = list[at + i];
  }
  return { code: def.code, value, end };
}

/** MODE SELECT(6) and (10), SPC-4 6.9 / 6.10. */
export async function modeSelect(ctx: Ctx, size: 6 | 10): Promise<void> {
  const c = decodeModeSelect(ctx.cdb, size);
  if (!c.pf) throw invalidCdbField(1, 4);
  if (c.parameterListLength === 0) return;
  const list = ctx.dataOut.subarray(0, c.parameterListLength);
  const headerLength = size === 6 ? 4 : 8;
  if (list.length < headerLength) throw new CheckCondition(Sense.PARAMETER_LIST_LENGTH_ERROR);
  const long = size === 10 && (list[4] & 1) === 1;
  const bdLength = size === 6 ? list[3] : list.readUInt16BE(6);
  const bdSize = long ? 16 : 8;
  if (bdLength % bdSize !== 0 || bdLength > bdSize) throw invalidParamField(size === 6 ? 3 : 7, 7);
  if (headerLength + bdLength > list.length) throw new CheckCondition(Sense.PARAMETER_LIST_LENGTH_ERROR);
  if (bdLength) checkBlockDescriptor(ctx, list, headerLength, long);
  const updates: { code: number; value: Buffer }[] = [];
  for (let at = headerLength + bdLength; at < list.length;) {
    const u = checkPage(ctx, list, at);
    updates.push(u);
    at = u.end;
  }
  const mode = ctx.lu.mode;
  let changed = false;
  for (const u of updates) changed = mode.set(u.code, u.value, ctx.key) || changed;
  // SPC-4 6.9: shared parameters changed -> MODE PARAMETERS CHANGED for the other I_T nexuses.
  if (changed) ctx.lu.addUaAll(ctx.target.nexusKeys(), Sense.MODE_PARAMETERS_CHANGED, ctx.key);
  if (c.sp) await mode.save(ctx.key);
}
