// RAID groups through the whole stack: a host writes known data over iSCSI (the project's own
// initiator) to volumes on RAID 5, 6, 1 and 1+0, members fail while it writes, and everything
// reads back identical degraded, during the rebuild onto spares and after it; a media error is
// corrected from redundancy and reported. The DKC cache is off so every read reaches the drives.
import assert from 'node:assert/strict';
import type { Rack } from '../../emulator/rack/rack';
import type { IscsiInitiator } from '../../target/iscsi/initiator/initiator';
import { pattern, prng } from '../helpers/common';
import { rackWithHost } from '../helpers/rack-host';

const IQN = 'iqn.2026-11.dev.dkc-emu:raid.e2e';
const YAML = `
dkcs:
  - name: dkc0
    serial: 410077
    cache: { mode: off }
    spares: { count: 10, size: 16MiB }
    rebuild: { paceMs: 20 }   # slow enough that the host reads while the rebuild runs
    raidGroups:
      - { name: rg5, level: 5, stripeSize: 16KiB, disks: { count: 4, size: 16MiB } }
      - { name: rg6, level: 6, stripeSize: 16KiB, disks: { count: 6, size: 8MiB } }
      - { name: rg1, level: 1, stripeSize: 16KiB, disks: { count: 2, size: 16MiB } }
      - { name: rg10, level: 10, stripeSize: 16KiB, disks: { count: 4, size: 8MiB } }
    volumes:
      - { name: v5, group: rg5, size: 16MiB }
      - { name: v6, group: rg6, size: 16MiB }
      - { name: v1, group: rg1, size: 8MiB }
      - { name: v10, group: rg10, size: 8MiB }
    targets:
      - name: ${IQN}
        portals: ["127.0.0.1:0"]
        luns:
          - { lun: 0, volume: v5 }
          - { lun: 1, volume: v6 }
          - { lun: 2, volume: v1 }
          - { lun: 3, volume: v10 }
`;

const CHUNK_BLOCKS = 64; // 32 KiB: spans two 16 KiB stripe chunks
const QUEUE_DEPTH = 4;
const POLL_ROUNDS_MAX = 600;

/** What the host expects each chunk of a volume to hold: the generation last acknowledged. */
class Expected {
  readonly gen: number[];
  constructor(readonly chunks: number) {
    this.gen = new Array(chunks).fill(0);
  }
}

async function writeChunks(ini: IscsiInitiator, lun: number, exp: Expected, chunks: number[], gen: number, onAck?: (n: number) => Promise<void>): Promise<void> {
  let next = 0;
  let acks = 0;
  const worker = async () => {
    while (next < chunks.length) {
      const c = chunks[next++];
      const lba = c * CHUNK_BLOCKS;
      await ini.write16(lun, lba, pattern(512, lba, CHUNK_BLOCKS, gen));
      exp.gen[c] = gen;
      await onAck?.(++acks);
    }
  };
  await Promise.all(Array.from({ length: QUEUE_DEPTH }, worker));
}

async function verify(ini: IscsiInitiator, lun: number, exp: Expected, when: string): Promise<void> {
  for (let c = 0; c < exp.chunks; c++) {
    const lba = c * CHUNK_BLOCKS;
    const got = await ini.read16(lun, lba, CHUNK_BLOCKS);
    const want = exp.gen[c] === 0 ? Buffer.alloc(CHUNK_BLOCKS * 512) : pattern(512, lba, CHUNK_BLOCKS, exp.gen[c]);
    if (!got.equals(want)) assert.fail(`${when}: LUN ${lun} chunk ${c} (LBA ${lba}) differs from generation ${exp.gen[c]}`);
  }
}

describe('RAID groups through iSCSI: failures while a host writes, rebuild onto spares', function () {
  this.timeout(120_000);
  const host = rackWithHost(YAML, { file: 'raid-e2e.yaml', targetName: IQN, initiatorName: 'iqn.2026-11.dev.dkc-emu:raid.host', luns: [0, 1, 2, 3] });
  let rack: Rack;
  let ini: IscsiInitiator;
  const seed = Number(process.env.SEED ?? 20261122);
  before(() => {
    console.log(`      seed ${seed} (replay with SEED=${seed})`);
    ({ rack, ini } = host);
  });


  const group = (name: string) => rack.status().dkcs[0].raidGroups.find((g) => g.name === name)!;

  async function rebuilt(name: string): Promise<void> {
    for (let i = 0; i < POLL_ROUNDS_MAX; i++) {
      const g = group(name);
      if (g.state === 'normal') return;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.fail(`${name} still ${group(name).state} after the rebuild should have ended: ${JSON.stringify(group(name).members)}`);
  }

  /** The DKC's one correction-copy task rebuilds one slot at a time: wait until it is free. */
  async function noRebuildRunning(): Promise<void> {
    for (let i = 0; i < POLL_ROUNDS_MAX; i++) {
      if (!rack.status().dkcs[0].raidGroups.some((g) => g.members.some((m) => m.state === 'rebuilding'))) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.fail('a rebuild is still running');
  }

  const cases = [
    { level: 'RAID 5', lun: 0, rg: 'rg5', fail: ['rg5-1'], then: 'rg5-3' },
    { level: 'RAID 6', lun: 1, rg: 'rg6', fail: ['rg6-0', 'rg6-4'], then: 'rg6-2' },
    { level: 'RAID 1', lun: 2, rg: 'rg1', fail: ['rg1-0'], then: 'rg1-1' },
    { level: 'RAID 1+0', lun: 3, rg: 'rg10', fail: ['rg10-2'], then: 'rg10-1' },
  ];
  for (const c of cases) {
    it(`${c.level}: ${c.fail.length} member(s) fail under writes; data identical degraded, during and after the rebuild onto spares`, async () => {
      await noRebuildRunning();
      const blocks = Number((await ini.readCapacity16(c.lun)).lastLba) + 1;
      const exp = new Expected(blocks / CHUNK_BLOCKS);
      const all = Array.from({ length: exp.chunks }, (_x, i) => i);
      await writeChunks(ini, c.lun, exp, all, 1);
      const rand = prng(seed + c.lun);
      const some = all.filter(() => rand() < 0.5);
      const failAt = Math.floor(some.length / 3);
      await writeChunks(ini, c.lun, exp, some, 2, async (acks) => {
        if (acks === failAt) for (const d of c.fail) await rack.disk('dkc0', d, { action: 'fail' });
      });
      assert.ok(group(c.rg).members.some((m) => m.state === 'rebuilding'), `a spare is being rebuilt while the host reads: ${JSON.stringify(group(c.rg))} ${JSON.stringify(rack.status().dkcs[0].tasks)}`);
      await verify(ini, c.lun, exp, 'during the rebuild (rows not yet rebuilt are read degraded)');
      await rebuilt(c.rg);
      const g = group(c.rg);
      for (const d of c.fail) assert.ok(!g.members.some((m) => m.drive === d), `${d} has left ${c.rg}`);
      assert.ok(g.members.every((m) => m.state === 'normal' && m.health === 'ok'));
      assert.equal(g.members.filter((m) => m.drive.startsWith('spare-')).length, c.fail.length, 'spares took the failed slots');
      await verify(ini, c.lun, exp, 'after the rebuild');
      // The rebuilt members carry real data and redundancy: lose another member and read again.
      await rack.disk('dkc0', c.then, { action: 'fail' });
      await verify(ini, c.lun, exp, `after the rebuild, with ${c.then} failed too`);
    });
  }

  it('a media error under a block is corrected from redundancy, reported, and the sector rewritten', async () => {
    const lun = 0; // RAID 5, whose rg5-3 failed at the end of its test: degraded, one left to lose
    await rebuilt('rg5').catch(() => undefined);
    const dkc = rack.dkc('dkc0');
    const lba = 5000;
    await ini.write16(lun, lba, pattern(512, lba, 8, 7));
    const where = dkc.resolve(IQN, lun, lba)!.disks[0];
    const before = group('rg5').members.find((m) => m.drive === where.disk)!.errors;
    await rack.disk('dkc0', where.disk, { action: 'media-error', sector: where.offset / 512, count: 1 });
    assert.equal(rack.status().dkcs[0].raidGroups.find((g) => g.name === 'rg5')!.members.find((m) => m.drive === where.disk)!.health, 'ok');
    assert.ok((await ini.read16(lun, lba, 8)).equals(pattern(512, lba, 8, 7)), 'the host reads its data');
    const m = group('rg5').members.find((x) => x.drive === where.disk)!;
    assert.equal(m.errors, before + 1, 'the corrected error is counted on that member');
    assert.equal(m.state, 'normal', 'a media error does not fail the member');
    assert.ok((await ini.read16(lun, lba, 8)).equals(pattern(512, lba, 8, 7)), 'and again, from the rewritten sector');
  });

  it('a loss beyond redundancy: reads of lost data are MEDIUM ERROR, the other groups serve on', async () => {
    // RAID 1: rg1's rebuilt pair lost rg1-1 at the end of its test; fail the other one as well.
    await rebuilt('rg1').catch(() => undefined);
    const g = group('rg1');
    for (const m of g.members) if (m.health === 'ok') await rack.disk('dkc0', m.drive, { action: 'fail' });
    const read16 = Buffer.alloc(16);
    read16[0] = 0x88;
    read16[13] = 8; // TRANSFER LENGTH 8 at LBA 0
    const r = await ini.command({ lun: 2, cdb: read16, expectedLength: 8 * 512 });
    assert.equal(r.status, 2);
    assert.equal(r.senseInfo?.key, 3, 'MEDIUM ERROR');
    assert.equal(group('rg1').state, 'failed');
    // The other groups are untouched.
    assert.equal((await ini.read16(1, 0, 8)).length, 8 * 512);
  });
});
