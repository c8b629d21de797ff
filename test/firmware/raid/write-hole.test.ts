// The RAID 5/6 write hole at the group level (docs/raid.md, "Write hole"): a row written while
// degraded, with the crash simulated by drives that drop some of the row's writes (as if the
// process died between them), then a new group over the same drives (a restart). Without the
// row log's records the failed members' chunks rebuild wrongly; redoing the records makes every
// byte what the group was last given.
import assert from 'node:assert/strict';
import { ParityGroup } from '../../../firmware/raid';
import { DiskExtent, Drive, DriveError, MemberState, RowLog, RowLogTicket } from '../../../firmware/drive';
import { Prng } from '../../../firmware/kernel/prng';

const CHUNK = 4096;
const ROWS = 8;

/** A drive in memory; writes at offsets drop() names vanish (the crash came first); broken: writes fail. */
class MemDrive implements Drive {
  readonly bytes = Buffer.alloc(ROWS * CHUNK);
  drop: (offset: number) => boolean = () => false;
  broken = false;
  constructor(readonly name: string) {}
  get sizeBytes(): number {
    return this.bytes.length;
  }
  async readInto(offset: number, buf: Buffer, bufOffset: number, length: number): Promise<void> {
    this.bytes.copy(buf, bufOffset, offset, offset + length);
  }
  async readv(offset: number, buffers: Buffer[], length: number): Promise<void> {
    await this.readInto(offset, Buffer.concat(buffers), 0, length);
  }
  async write(offset: number, data: Buffer, dataOffset: number, length: number): Promise<void> {
    if (this.broken) throw new DriveError(this.name, 'failed', offset, length, `${this.name}: failed (injected)`, true);
    if (!this.drop(offset)) data.copy(this.bytes, offset, dataOffset, dataOffset + length);
  }
  async writev(offset: number, buffers: Buffer[], length: number): Promise<void> {
    await this.write(offset, Buffer.concat(buffers), 0, length);
  }
  async flush(): Promise<void> {}
  async close(): Promise<void> {}
}

/** A row log in memory: what a restart would find (copies of the records, in order). */
class MemLog implements RowLog {
  readonly records: { row: number; lo: number; data: Buffer[] }[] = [];
  private seq = 0;
  live(_group: string, row: number): boolean {
    return this.records.some((r) => r.row === row);
  }
  async append(_group: string, row: number, lo: number, data: Buffer[]): Promise<RowLogTicket> {
    this.records.push({ row, lo, data: data.map((b) => Buffer.from(b)) });
    return { seq: ++this.seq };
  }
  end(): void {}
}

function randomBytes(r: Prng, len: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i += 4) b.writeUInt32LE(r.uint32(), i);
  return b;
}

interface Case {
  level: 5 | 6;
  disks: number;
  /** Slots failed before the write. */
  failed: number[];
  /** A slot that fails during the write (its write errors). */
  failsDuring?: number;
  /** Which of the row's writes the crash drops: the parity or the data. */
  dropped: 'parity' | 'data';
  /** The write goes to a failed member's data chunk (its new bytes live only in parity). */
  toFailedChunk?: boolean;
}

const CASES: Case[] = [
  { level: 5, disks: 4, failed: [1], dropped: 'parity' },
  { level: 5, disks: 4, failed: [1], dropped: 'data' },
  { level: 5, disks: 4, failed: [1], dropped: 'parity', toFailedChunk: true },
  { level: 6, disks: 5, failed: [1, 3], dropped: 'parity' },
  { level: 6, disks: 5, failed: [1, 3], dropped: 'data' },
  { level: 6, disks: 6, failed: [0, 4], dropped: 'parity', toFailedChunk: true },
  { level: 6, disks: 5, failed: [1], failsDuring: 3, dropped: 'parity' },
  { level: 6, disks: 5, failed: [1], failsDuring: 3, dropped: 'data' },
];

function label(c: Case): string {
  const during = c.failsDuring === undefined ? '' : `, slot ${c.failsDuring} fails during the write`;
  const to = c.toFailedChunk ? ' to the failed member\'s chunk' : '';
  return `RAID ${c.level} (${c.disks} disks) with slot(s) ${c.failed.join(', ')} failed${during}: write${to}, crash drops the ${c.dropped} write`;
}

/** Which slot holds the logical byte offset (the group's own map). */
function slotAt(g: ParityGroup, offset: number): DiskExtent {
  return g.mapExtent(offset, 512)[0];
}

async function run(c: Case, seed: number): Promise<{ without: boolean; model: Buffer; drives: MemDrive[]; log: MemLog; states: MemberState[] }> {
  const r = new Prng(seed);
  const drives = Array.from({ length: c.disks }, (_x, i) => new MemDrive(`rg-${i}`));
  const log = new MemLog();
  const g = new ParityGroup('rg', c.level, CHUNK, drives, undefined, log);
  const model = randomBytes(r, g.sizeBytes);
  await g.write(0, model, 0, model.length, false);
  for (const s of c.failed) g.failMember(s, 'test');
  assert.equal(log.records.length, 0, 'a healthy group logs nothing');
  const d = c.disks - (c.level === 5 ? 1 : 2);
  const rowBytes = d * CHUNK;
  // The write: 2 sectors of one data chunk (a failed member's or not, as asked; never the one failing during it).
  let row = 0;
  let offset = -1;
  for (; row < ROWS && offset < 0; row++) {
    for (let i = 0; i < d; i++) {
      const at = row * rowBytes + i * CHUNK + 1024;
      const slot = slotAt(g, at).disk;
      if (c.failed.includes(slot) !== (c.toFailedChunk ?? false) || slot === c.failsDuring) continue;
      // Data on a failed member other than the one written: what the hole would take.
      if (c.toFailedChunk || c.failed.some((s) => s !== slot && isDataSlot(g, row, rowBytes, s))) offset = at;
    }
  }
  assert.ok(offset >= 0, 'no row fits the case');
  row--;
  const dataSlot = slotAt(g, offset).disk;
  for (const [s, drive] of drives.entries()) {
    const isData = s === dataSlot;
    drive.drop = (at) => at >= row * CHUNK && at < (row + 1) * CHUNK && (c.dropped === 'data' ? isData : !isData);
  }
  if (c.failsDuring !== undefined) drives[c.failsDuring].broken = true;
  const data = randomBytes(r, 1024);
  await g.write(offset, data, 0, data.length, false);
  data.copy(model, offset);
  assert.equal(log.records.length, 1, 'the degraded row write is logged');
  // Restart: the same drives, the members failed as the RAID table would have them.
  for (const drive of drives) {
    drive.drop = () => false;
    drive.broken = false;
  }
  const gone = [...c.failed, ...(c.failsDuring === undefined ? [] : [c.failsDuring])];
  const states = drives.map((_d, s): MemberState => (gone.includes(s) ? 'failed' : 'normal'));
  const after = new ParityGroup('rg', c.level, CHUNK, drives, states.map((state) => ({ state })));
  const got = Buffer.alloc(model.length);
  await after.readInto(0, got, 0, got.length);
  return { without: got.equals(model), model, drives, log, states };
}

/** Slot s holds a data chunk of row. */
function isDataSlot(g: ParityGroup, row: number, rowBytes: number, s: number): boolean {
  const d = rowBytes / CHUNK;
  for (let i = 0; i < d; i++) if (slotAt(g, row * rowBytes + i * CHUNK).disk === s) return true;
  return false;
}

describe('RAID 5/6 write hole: the row log', () => {
  const seed = Number(process.env.SEED ?? 20261125);

  for (const [k, c] of CASES.entries()) {
    it(`${label(c)}: wrong without the log, right after the redo`, async () => {
      const x = await run(c, seed + k);
      assert.equal(x.without, false, 'the crash should have left the row inconsistent (the test does not reach the hole)');
      const after = new ParityGroup('rg', c.level, CHUNK, x.drives, x.states.map((state) => ({ state })));
      for (const rec of x.log.records) await after.redoRow(rec.row, rec.lo, rec.data);
      const got = Buffer.alloc(x.model.length);
      await after.readInto(0, got, 0, got.length);
      assert.ok(got.equals(x.model), 'after the redo every byte is the last one written');
    });
  }

  it('a healthy row with a live record is written through the log too; an unlogged healthy row is not', async () => {
    const drives = Array.from({ length: 4 }, (_x, i) => new MemDrive(`rg-${i}`));
    const log = new MemLog();
    const g = new ParityGroup('rg', 5, CHUNK, drives, undefined, log);
    log.records.push({ row: 2, lo: 0, data: [Buffer.alloc(512), Buffer.alloc(512), Buffer.alloc(512)] });
    const rowBytes = 3 * CHUNK;
    await g.write(2 * rowBytes + 512, Buffer.alloc(512, 7), 0, 512, false);
    assert.equal(log.records.length, 2);
    assert.deepEqual([log.records[1].row, log.records[1].lo, log.records[1].data.length], [2, 512, 3]);
    await g.write(3 * rowBytes + 512, Buffer.alloc(512, 7), 0, 512, false);
    assert.equal(log.records.length, 2);
  });

  it('a record that does not fit the group is refused', async () => {
    const drives = Array.from({ length: 4 }, (_x, i) => new MemDrive(`rg-${i}`));
    const g = new ParityGroup('rg', 5, CHUNK, drives);
    await assert.rejects(g.redoRow(0, 0, [Buffer.alloc(512), Buffer.alloc(512)]), /does not fit/);
    await assert.rejects(g.redoRow(0, CHUNK - 512, [Buffer.alloc(1024), Buffer.alloc(1024), Buffer.alloc(1024)]), /does not fit/);
    await assert.rejects(g.redoRow(ROWS, 0, [Buffer.alloc(512), Buffer.alloc(512), Buffer.alloc(512)]), /does not fit/);
  });
});
