// `dkc pair`: the pure parts (area syntax, sense lines, the status table, the progress display)
// and the whole CLI against a real rack on 127.0.0.1: create, split (whole, areas, a group through
// a command device), resync, restore, delete and status, each checked in the rack's own pair
// table; refusals become one line naming the sense; bad arguments never reach the network.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { parseConfig } from '../../../emulator/rack/config';
import { copyProgress, failureLine, formatPairs, parseArea, senseName } from '../../../emulator/cli/pair';
import { Rack } from '../../../emulator/rack/rack';
import type { PairRecord } from '../../../target/scsi/pair-cdb';
import { encodeDescriptorSense, encodeFixedSense, Sense } from '../../../target/scsi/sense';
import { pattern, ROOT, silentLog, tmpDirs } from '../../helpers/common';

const CLI = path.join(ROOT, 'dist', 'emulator', 'cli', 'dkc.js');
const PAIRS = 'iqn.2026-11.dev.dkc-emu:pcli.pairs';
const CHAP = 'iqn.2026-11.dev.dkc-emu:pcli.chap';
const CHAP_SECRET = 'pcli-secret-01';
const SUBCOMMANDS = ['create', 'split', 'resync', 'restore', 'delete', 'status'];

// LDEVs: 0 p, 1 s, 2 p2, 3 s2, 4 odd (another size), 5 cmd (the command device, LUN 9), 6 pc, 7 sc.
const YAML = `
dkcs:
  - name: dkc0
    serial: 410077
    raidGroups: [ { name: rg0, level: 1, disks: { count: 2, size: 64MiB } } ]
    volumes:
      - { name: p, group: rg0, size: 8MiB }
      - { name: s, group: rg0, size: 8MiB }
      - { name: p2, group: rg0, size: 4MiB }
      - { name: s2, group: rg0, size: 4MiB }
      - { name: odd, group: rg0, size: 2MiB }
      - { name: cmd, group: rg0, size: 1MiB }
      - { name: pc, group: rg0, size: 1MiB }
      - { name: sc, group: rg0, size: 1MiB }
    targets:
      - name: ${PAIRS}
        portals: ["127.0.0.1:0"]
        luns:
          - { lun: 0, volume: p }
          - { lun: 1, volume: s }
          - { lun: 2, volume: p2 }
          - { lun: 3, volume: s2 }
          - { lun: 4, volume: odd }
          - { lun: 9, volume: cmd, commandDevice: true }
      - name: ${CHAP}
        portals: ["127.0.0.1:0"]
        chap: { user: pcli, secret: ${CHAP_SECRET} }
        luns: [ { lun: 0, volume: pc }, { lun: 1, volume: sc } ]
`;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** dkc without blocking the event loop (the rack under test runs in this process). */
function dkc(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    const childEnv = { ...process.env, ...env };
    if (!('DKC_CHAP_SECRET' in env)) delete childEnv.DKC_CHAP_SECRET;
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

function ok(r: Run): Run {
  assert.equal(r.status, 0, `exit ${r.status}\n${r.stdout}${r.stderr}`);
  return r;
}

function record(o: Partial<PairRecord>): PairRecord {
  return {
    id: '9-10', primary: 9, secondary: 10, state: 'PAIR', direction: 'forward', copyTotalBlocks: 0, copyRemainingBlocks: 0,
    differenceBlocks: 0, copiedBlocks: 0, imagePending: false, primaryNaa: Buffer.alloc(16), secondaryNaa: Buffer.alloc(16), splitAreaCount: 0, splitAreas: [], ...o,
  };
}

describe('dkc pair: arguments, sense lines, the table, the progress display', () => {
  it('--area LBA+BLOCKS', () => {
    assert.deepEqual(parseArea('0+2048'), { lba: 0, blocks: 2048 });
    assert.deepEqual(parseArea('1048576+4294967295'), { lba: 1048576, blocks: 4294967295 });
    for (const bad of ['5', '0+0', '0+4294967296', '-1+5', '1+2+3', ' 0+1', '0x10+1', '9007199254740992+1']) {
      assert.throws(() => parseArea(bad), /must be/, bad);
    }
  });

  it('sense names: key, the SPC-4 name, ASC/ASCQ', () => {
    assert.equal(senseName(Sense.COMMAND_SEQUENCE_ERROR), 'ILLEGAL REQUEST, COMMAND SEQUENCE ERROR (2C/00)');
    assert.equal(senseName(Sense.LBA_OUT_OF_RANGE), 'ILLEGAL REQUEST, LOGICAL BLOCK ADDRESS OUT OF RANGE (21/00)');
    assert.equal(senseName(Sense.WRITE_PROTECTED), 'DATA PROTECT, WRITE PROTECTED (27/00)');
    assert.equal(senseName({ key: 0x5, asc: 0x99, ascq: 0x01 }), 'ILLEGAL REQUEST, ASC/ASCQ (99/01)');
  });

  const ctx = { verb: 'split', at: { lun: 0, commandDevice: false, ref: {}, volume: 'LUN 0' }, target: 'iqn.t' } as const;
  const cc = (sense: Buffer) => ({ response: 0, status: 0x02, sense });

  it('COMMAND SEQUENCE ERROR: the state from COMMAND-SPECIFIC INFORMATION, fixed and descriptor sense', () => {
    assert.equal(failureLine(cc(encodeFixedSense(Sense.COMMAND_SEQUENCE_ERROR, { commandSpecific: 3 })), ctx),
      'pair is in state PSUS: ILLEGAL REQUEST, COMMAND SEQUENCE ERROR (2C/00)');
    assert.equal(failureLine(cc(encodeDescriptorSense(Sense.COMMAND_SEQUENCE_ERROR, { commandSpecific: 4 })), ctx),
      'pair is in state PSUE: ILLEGAL REQUEST, COMMAND SEQUENCE ERROR (2C/00)');
    assert.equal(failureLine(cc(encodeFixedSense(Sense.COMMAND_SEQUENCE_ERROR, { commandSpecific: 0 })), ctx),
      'LUN 0 is in no pair (SMPL): ILLEGAL REQUEST, COMMAND SEQUENCE ERROR (2C/00)');
  });

  it('statuses other than CHECK CONDITION', () => {
    assert.equal(failureLine({ response: 0, status: 0x18, sense: null }, ctx), 'RESERVATION CONFLICT: another initiator holds a persistent reservation on LUN 0');
    assert.equal(failureLine({ response: 0, status: 0x08, sense: null }, ctx), 'target busy (SCSI status 08h): try again');
    assert.equal(failureLine({ response: 1, status: 0, sense: null }, ctx), 'target failure (iSCSI response 01)');
    assert.equal(failureLine({ response: 0, status: 0x02, sense: null }, ctx), 'CHECK CONDITION without readable sense data');
  });

  it('the status table: one row a pair, columns padded, copy % and split areas', () => {
    const table = formatPairs([
      record({ id: 'a', group: 'g1', state: 'COPY', copyTotalBlocks: 1000, copyRemainingBlocks: 250, differenceBlocks: 256 }),
      record({
        id: 'bb', primary: 11, secondary: 12, state: 'PSUS', splitAreaCount: 6,
        splitAreas: [0, 1, 2, 3, 4, 5].map((i) => ({ lba: i * 1000, blocks: 128 })),
      }),
      record({ id: 'c', primary: 13, secondary: 14 }),
    ]);
    assert.equal(table, [
      'PAIR  GROUP  P-LDEV  S-LDEV  STATE  DIR      COPY%   DIFF-BLOCKS  SPLIT-AREAS(LBA+BLOCKS)',
      'a     g1     9       10      COPY   forward  75.0%   256          -',
      'bb    -      11      12      PSUS   forward  -       0            0+128,1000+128,2000+128,3000+128 (+2 more)',
      'c     -      13      14      PAIR   forward  100.0%  0            -',
      '',
    ].join('\n'));
  });

  function sink(isTTY: boolean): { stream: NodeJS.WriteStream; text: () => string } {
    const s = Object.assign(new PassThrough(), { isTTY, columns: 100 });
    let text = '';
    s.on('data', (c: Buffer) => (text += c.toString()));
    return { stream: s as unknown as NodeJS.WriteStream, text: () => text };
  }

  it('progress without a terminal: a line each time another 10% is copied', () => {
    const out = sink(false);
    const p = copyProgress(out.stream, 'pair a', false);
    for (const copied of [0, 50, 99, 100, 350, 999, 1000]) p.update(copied, 1000);
    p.stop();
    assert.equal(out.text(), [
      'pair a: 0.0% (0/1000 blocks)', 'pair a: 10.0% (100/1000 blocks)', 'pair a: 35.0% (350/1000 blocks)',
      'pair a: 99.9% (999/1000 blocks)', 'pair a: 100.0% (1000/1000 blocks)', '',
    ].join('\n'));
  });

  it('progress on a terminal: a cli-progress bar; with --json: nothing', () => {
    const tty = sink(true);
    const p = copyProgress(tty.stream, 'pair a', false);
    p.update(0, 1000);
    p.update(1000, 1000);
    p.stop();
    assert.match(tty.text(), /pair a \|\u2588{30}\| 100% \| 1000\/1000 blocks/);
    const quiet = sink(true);
    const q = copyProgress(quiet.stream, 'pair a', true);
    q.update(500, 1000);
    q.stop();
    assert.equal(quiet.text(), '');
  });
});

describe('dkc pair --help', () => {
  it('dkc pair --help lists the six subcommands and an example', async () => {
    const r = ok(await dkc(['pair', '--help']));
    assert.ok(r.stdout.startsWith('Usage: dkc pair [options] [command]'), r.stdout);
    for (const c of SUBCOMMANDS) assert.match(r.stdout, new RegExp(`\\n  ${c} \\[options\\] `));
    assert.match(r.stdout, /dkc pair create --portal \$P --target \$T --lun 0 --secondary 10 --wait/);
  });

  const specific: Record<string, string[]> = {
    create: ['--secondary <ldev>', '--name <id>', '--group <name>', '--wait', '--timeout <seconds>'],
    split: ['--area <lba+blocks>', '--group'],
    resync: ['--area <lba+blocks>', '--group', '--wait', '--timeout <seconds>'],
    restore: ['--group', '--wait', '--timeout <seconds>'],
    delete: [],
    status: [],
  };
  for (const c of SUBCOMMANDS) {
    it(`dkc pair ${c} --help`, async () => {
      const r = ok(await dkc(['pair', c, '--help']));
      assert.ok(r.stdout.startsWith(`Usage: dkc pair ${c} [options]`), r.stdout);
      const common = ['--portal <host:port>', '--target <iqn>', '--lun <n>', '--command-device <lun>', '--ldev <n>', '--initiator-name <iqn>', '--chap-user <name>', '--json'];
      for (const o of [...common, ...specific[c]]) assert.ok(r.stdout.includes(o), `${c}: ${o}`);
      assert.ok(!r.stdout.includes('--area') || ['split', 'resync'].includes(c));
    });
  }
});

describe('dkc pair (against a rack)', function () {
  this.timeout(60_000);
  let rack: Rack;
  after(async () => rack?.stop()); // before tmpDirs' after hook removes the directory
  const tmp = tmpDirs();
  let portal: string;
  const on = (...args: string[]) => [...args, '--portal', portal, '--target', PAIRS];
  const pairs = () => rack.dkcs[0].pairs.list();
  const ldev = (name: string) => rack.dkc('dkc0').ldevByName(name);

  before(async () => {
    const r = parseConfig(YAML, 'pair-cli.yaml');
    if (!r.ok) throw new Error(r.errors.join('\n'));
    rack = await Rack.open(r.config, { dataDir: tmp.make('pair-cli'), log: silentLog });
    await rack.start();
    const a = rack.addresses()[0];
    portal = `${a.host}:${a.port}`;
  });

  it('create --wait: the initial copy with percent lines on stderr (no terminal), then PAIR', async () => {
    await ldev('p').write(0, pattern(512, 0, 16384, 1), { fua: false });
    // A slow copier, so the copy is seen under way.
    rack.dkcs[0].pairs.setCopyOptions({ copyBlocksPerStep: 128, paceMs: 20 });
    try {
      const r = ok(await dkc(['pair', 'create', ...on('--lun', '0', '--secondary', '1', '--name', 'p01', '--group', 'g1', '--wait')]));
      assert.match(r.stdout, /\np01 +g1 +0 +1 +PAIR +forward +100\.0% +0 +-\n$/);
      const lines = r.stderr.trimEnd().split('\n');
      assert.ok(lines.length >= 3, r.stderr);
      for (const l of lines) assert.match(l, /^pair p01: \d+\.\d% \(\d+\/16384 blocks\)$/);
      assert.equal(lines.at(-1), 'pair p01: 100.0% (16384/16384 blocks)');
    } finally {
      rack.dkcs[0].pairs.setCopyOptions({ copyBlocksPerStep: 2048, paceMs: 1 });
    }
    assert.deepEqual(pairs().map((p) => [p.id, p.group, p.primary, p.secondary, p.state]), [['p01', 'g1', 0, 1, 'PAIR']]);
    assert.ok((await ldev('s').read(0, 16384)).equals(pattern(512, 0, 16384, 1)), 'the secondary holds the copy');
  });

  it('status: the table through the data LU; --json through the command device', async () => {
    const t = ok(await dkc(['pair', 'status', ...on('--lun', '0')]));
    assert.equal(t.stdout, [
      'PAIR  GROUP  P-LDEV  S-LDEV  STATE  DIR      COPY%   DIFF-BLOCKS  SPLIT-AREAS(LBA+BLOCKS)',
      'p01   g1     0       1       PAIR   forward  100.0%  0            -',
      '',
    ].join('\n'));
    const j = ok(await dkc(['pair', 'status', '--json', ...on('--command-device', '9', '--ldev', '1')]));
    const out = JSON.parse(j.stdout);
    assert.equal(out.command, 'status');
    assert.deepEqual(out.pairs[0], {
      name: 'p01', group: 'g1', primary: 0, secondary: 1, state: 'PAIR', direction: 'forward',
      copy: { totalBlocks: 0, remainingBlocks: 0, percent: 100 }, differenceBlocks: 0, copiedBlocks: 16384, imagePending: false,
      primaryNaa: ldev('p').naa.toString('hex'), secondaryNaa: ldev('s').naa.toString('hex'), splitAreaCount: 0, splitAreas: [],
    });
    assert.equal(j.stderr, '');
  });

  it('split: PSUS; a second split is refused with the state, one line, exit 1', async () => {
    const r = ok(await dkc(['pair', 'split', ...on('--lun', '0')]));
    assert.match(r.stdout, /\np01 +g1 +0 +1 +PSUS +forward +- +0 +0\+16384\n$/);
    assert.equal(pairs()[0].state, 'PSUS');
    const again = await dkc(['pair', 'split', ...on('--lun', '0')]);
    assert.equal(again.status, 1);
    assert.equal(again.stderr, 'dkc: pair split: pair is in state PSUS: ILLEGAL REQUEST, COMMAND SEQUENCE ERROR (2C/00)\n');
    assert.equal(again.stdout, '');
  });

  it('resync --wait through the command device: what changed while split is copied, then PAIR', async () => {
    await ldev('p').write(256, pattern(512, 256, 256, 2), { fua: false });
    assert.equal(pairs()[0].differenceBlocks, 256);
    const r = ok(await dkc(['pair', 'resync', ...on('--command-device', '9', '--ldev', '0', '--wait')]));
    assert.match(r.stdout, /\np01 +g1 +0 +1 +PAIR +forward +100\.0% +0 +-\n$/);
    assert.equal(pairs()[0].state, 'PAIR');
    assert.ok((await ldev('s').read(256, 256)).equals(pattern(512, 256, 256, 2)));
  });

  it('split --area: only those areas; resync --area --wait brings one back, the other stays split', async () => {
    const r = ok(await dkc(['pair', 'split', ...on('--lun', '0', '--area', '0+128', '--area', '4096+256')]));
    assert.match(r.stdout, /\np01 +g1 +0 +1 +PSUS +forward +- +0 +0\+128,4096\+256\n$/);
    assert.deepEqual(pairs()[0].splitAreas, [{ lba: 0, blocks: 128 }, { lba: 4096, blocks: 256 }]);
    await ldev('p').write(0, pattern(512, 0, 128, 3), { fua: false }); // split: the primary only
    await ldev('p').write(8192, pattern(512, 8192, 128, 3), { fua: false }); // mirrored
    assert.ok((await ldev('s').read(8192, 128)).equals(pattern(512, 8192, 128, 3)));
    assert.ok(!(await ldev('s').read(0, 128)).equals(pattern(512, 0, 128, 3)));
    ok(await dkc(['pair', 'resync', ...on('--lun', '0', '--area', '0+1', '--wait')]));
    const st = pairs()[0];
    assert.deepEqual([st.state, st.splitAreas], ['PSUS', [{ lba: 4096, blocks: 256 }]]);
    assert.ok((await ldev('s').read(0, 128)).equals(pattern(512, 0, 128, 3)));
    ok(await dkc(['pair', 'resync', ...on('--lun', '0', '--wait')]));
    assert.equal(pairs()[0].state, 'PAIR');
  });

  it('restore --wait --json: the primary gets the secondary back; JSON on stdout, no progress', async () => {
    ok(await dkc(['pair', 'split', ...on('--lun', '0')]));
    await ldev('s').write(512, pattern(512, 512, 64, 4), { fua: false }); // a split secondary takes writes
    const r = ok(await dkc(['pair', 'restore', '--json', ...on('--lun', '0', '--wait')]));
    const out = JSON.parse(r.stdout);
    assert.deepEqual([out.command, out.pairs[0].name, out.pairs[0].state], ['restore', 'p01', 'PAIR']);
    assert.equal(r.stderr, '');
    assert.equal(pairs()[0].state, 'PAIR');
    assert.ok((await ldev('p').read(512, 64)).equals(pattern(512, 512, 64, 4)), 'the primary is restored');
  });

  it('a group through the command device: create into it, split --group at once, resync --group --wait', async () => {
    const c = ok(await dkc(['pair', 'create', ...on('--command-device', '9', '--ldev', '2', '--secondary', '3', '--name', 'p23', '--group', 'g1', '--wait')]));
    assert.match(c.stdout, /\np23 +g1 +2 +3 +PAIR /);
    const s = ok(await dkc(['pair', 'split', ...on('--command-device', '9', '--ldev', '2', '--group')]));
    assert.match(s.stdout, /\np01 +g1 +0 +1 +PSUS .*\np23 +g1 +2 +3 +PSUS /);
    assert.deepEqual(pairs().map((p) => [p.id, p.state]), [['p01', 'PSUS'], ['p23', 'PSUS']]);
    await ldev('p2').write(0, pattern(512, 0, 1024, 5), { fua: false });
    const r = ok(await dkc(['pair', 'resync', ...on('--command-device', '9', '--ldev', '0', '--group', '--wait')]));
    assert.match(r.stdout, /\np01 +g1 +0 +1 +PAIR .*\np23 +g1 +2 +3 +PAIR /);
    assert.deepEqual(pairs().map((p) => [p.id, p.state]), [['p01', 'PAIR'], ['p23', 'PAIR']]);
    assert.ok((await ldev('s2').read(0, 1024)).equals(pattern(512, 0, 1024, 5)));
  });

  it('status on the command device without --ldev: every pair of the target', async () => {
    const r = ok(await dkc(['pair', 'status', ...on('--command-device', '9')]));
    assert.match(r.stdout, /^PAIR .*\np01 +g1 +0 +1 +PAIR .*\np23 +g1 +2 +3 +PAIR .*\n$/);
  });

  const refusals: [string, string[], string][] = [
    ['a volume already paired', ['create', '--lun', '1', '--secondary', '0'],
      'pair create: LUN 1 or LDEV 0 is already in a pair, in state PAIR: ILLEGAL REQUEST, COMMAND SEQUENCE ERROR (2C/00)'],
    ['a secondary the target does not map', ['create', '--lun', '4', '--secondary', '99'],
      `pair create: LDEV 99 cannot be the secondary: not mapped by target ${PAIRS}, the primary itself, or not the primary's size and block size: ILLEGAL REQUEST, INVALID FIELD IN CDB (24/00)`],
    ['an LDEV the target does not map', ['status', '--command-device', '9', '--ldev', '77'],
      `pair status: LDEV 77 is not mapped by target ${PAIRS} (or does not exist): ILLEGAL REQUEST, INVALID FIELD IN CDB (24/00)`],
    ['a command device addressed as a data LU', ['split', '--lun', '9'],
      'pair split: LUN 9 is a command device: use --command-device 9 --ldev N: ILLEGAL REQUEST, INVALID FIELD IN CDB (24/00)'],
    ['a data LU addressed as a command device', ['delete', '--command-device', '0', '--ldev', '1'],
      'pair delete: LUN 0 is not a command device (use --lun 0): ILLEGAL REQUEST, INVALID FIELD IN CDB (24/00)'],
    ['status of a command device as --lun', ['status', '--lun', '9'], 'pair status: LUN 9 is a command device: use --command-device 9 (with --ldev N for one volume)'],
    ['a volume in no pair', ['split', '--lun', '4', '--group'], 'pair split: LUN 4 is in no pair (SMPL): ILLEGAL REQUEST, COMMAND SEQUENCE ERROR (2C/00)'],
    ['an area past the end', ['split', '--lun', '0', '--area', '16380+8'],
      'pair split: the area at LBA 16380 goes past the end of the volume: ILLEGAL REQUEST, LOGICAL BLOCK ADDRESS OUT OF RANGE (21/00)'],
    ['no such LUN', ['status', '--lun', '7'], `pair status: target ${PAIRS} has no LUN 7`],
  ];
  for (const [what, args, line] of refusals) {
    it(`refused by the target (${what}): one line, exit 1, nothing changed`, async () => {
      const before = pairs();
      const r = await dkc(['pair', ...on(...args)]);
      assert.equal(r.stderr, `dkc: ${line}\n`);
      assert.equal(r.status, 1);
      assert.equal(r.stdout, '');
      assert.deepEqual(pairs(), before);
    });
  }

  it('delete: both volumes SMPL; --json names what was deleted; a second delete says SMPL', async () => {
    const r = ok(await dkc(['pair', 'delete', ...on('--lun', '0')]));
    assert.equal(r.stdout, 'pair p01 deleted: LDEV 0 and LDEV 1 are SMPL\n');
    const j = ok(await dkc(['pair', 'delete', '--json', ...on('--command-device', '9', '--ldev', '3')]));
    const out = JSON.parse(j.stdout);
    assert.deepEqual([out.command, out.deleted.map((p: { name: string }) => p.name), out.pairs], ['delete', ['p23'], []]);
    assert.deepEqual(pairs(), []);
    const again = await dkc(['pair', 'delete', ...on('--lun', '0')]);
    assert.equal(again.status, 1);
    assert.equal(again.stderr, 'dkc: pair delete: LUN 0 is in no pair (SMPL): ILLEGAL REQUEST, COMMAND SEQUENCE ERROR (2C/00)\n');
    assert.equal(ok(await dkc(['pair', 'status', ...on('--lun', '0')])).stdout, 'LUN 0: SMPL (in no pair)\n');
    assert.equal(ok(await dkc(['pair', 'status', ...on('--command-device', '9')])).stdout, `no pairs on target ${PAIRS}\n`);
    assert.deepEqual(JSON.parse(ok(await dkc(['pair', 'status', '--json', ...on('--command-device', '9')])).stdout), { command: 'status', pairs: [] });
  });

  it('CHAP: --chap-user with the secret from DKC_CHAP_SECRET logs in; a wrong secret is refused', async () => {
    const chap = (...args: string[]) => ['pair', ...args, '--portal', portal, '--target', CHAP, '--chap-user', 'pcli'];
    const r = ok(await dkc(chap('create', '--lun', '0', '--secondary', '7', '--wait'), { DKC_CHAP_SECRET: CHAP_SECRET }));
    assert.match(r.stdout, /\n6-7 +- +6 +7 +PAIR /);
    assert.deepEqual(pairs().map((p) => [p.id, p.state]), [['6-7', 'PAIR']]);
    const wrong = await dkc(chap('status', '--lun', '0'), { DKC_CHAP_SECRET: 'wrong-secret-1' });
    assert.equal(wrong.status, 1);
    assert.match(wrong.stderr, new RegExp(`^dkc: login to ${CHAP} at ${portal} failed: authentication failed .*\\(status 0201\\)\\n$`));
    ok(await dkc(chap('delete', '--lun', '0'), { DKC_CHAP_SECRET: CHAP_SECRET }));
  });

  it('connection failures: no such target, nothing listening; exit 1 with the reason', async () => {
    const nt = await dkc(['pair', 'status', '--lun', '0', '--portal', portal, '--target', 'iqn.2026-11.dev.dkc-emu:nope']);
    assert.equal(nt.status, 1);
    assert.equal(nt.stderr, `dkc: login to iqn.2026-11.dev.dkc-emu:nope at ${portal} failed: no such target (status 0203)\n`);
    const s = net.createServer();
    await new Promise<void>((res) => s.listen(0, '127.0.0.1', () => res()));
    const port = (s.address() as net.AddressInfo).port;
    await new Promise<void>((res) => s.close(() => res()));
    const r = await dkc(['pair', 'status', '--lun', '0', '--portal', `127.0.0.1:${port}`, '--target', PAIRS]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`^dkc: cannot log in to ${PAIRS} at 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
  });

  // Port 1 on 127.0.0.1: nothing listens, so a CLI that tried to connect would say ECONNREFUSED.
  const nowhere = ['--portal', '127.0.0.1:1', '--target', PAIRS];
  const manyAreas = Array.from({ length: 257 }, (_x, i) => ['--area', `${i * 128}+1`]).flat();
  const argumentErrors: [string, string[], RegExp][] = [
    ['--lun with --command-device', ['split', '--lun', '0', '--command-device', '9', '--ldev', '0'], /^dkc: --lun and --command-device exclude each other/],
    ['neither --lun nor --command-device', ['split'], /^dkc: which volume\? Give --lun N \(a data LU\) or --command-device LUN --ldev N\n$/],
    ['--command-device without --ldev', ['resync', '--command-device', '9'], /^dkc: --command-device needs --ldev N/],
    ['--ldev with --lun', ['delete', '--lun', '0', '--ldev', '3'], /^dkc: --ldev goes with --command-device/],
    ['an --area that does not parse', ['split', '--lun', '0', '--area', '5'], /option '--area <lba\+blocks>' argument '5' is invalid\. must be LBA\+BLOCKS, e\.g\. 0\+2048/],
    ['an --area of 0 blocks', ['split', '--lun', '0', '--area', '0+0'], /BLOCKS must be from 1 to 4294967295/],
    ['an --area of 2^32 blocks', ['resync', '--lun', '0', '--area', '0+4294967296'], /BLOCKS must be from 1 to 4294967295/],
    ['257 areas', ['split', '--lun', '0', ...manyAreas], /at most 256 areas in one command/],
    ['--area with --group', ['split', '--lun', '0', '--area', '0+8', '--group'], /^dkc: --area and --group exclude each other/],
    ['LDEV 65536', ['status', '--command-device', '9', '--ldev', '65536'], /--ldev must be a whole number from 0 to 65535/],
    ['LUN 16384', ['status', '--lun', '16384'], /--lun must be a whole number from 0 to 16383/],
    ['a secondary that is not a number', ['create', '--lun', '0', '--secondary', 'ten'], /--secondary must be a whole number from 0 to 65535/],
    ['create without --secondary', ['create', '--lun', '0'], /required option '--secondary <ldev>' not specified/],
    ['a bad pair name', ['create', '--lun', '0', '--secondary', '1', '--name', 'no spaces'], /must be 1 to 32 of A-Z a-z 0-9 _ -/],
    ['--timeout 0', ['resync', '--lun', '0', '--wait', '--timeout', '0'], /--timeout must be a whole number from 1 to 604800/],
    ['--chap-user without DKC_CHAP_SECRET', ['status', '--lun', '0', '--chap-user', 'pcli'], /^dkc: --chap-user needs the CHAP secret in the environment variable DKC_CHAP_SECRET/],
  ];
  for (const [what, args, message] of argumentErrors) {
    it(`${what}: refused before connecting, exit 1`, async () => {
      const r = await dkc(['pair', ...args, ...nowhere]);
      assert.equal(r.status, 1);
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stderr, /ECONNREFUSED/);
      assert.equal(r.stdout, '');
    });
  }

  for (const [what, args, message] of [
    ['no --portal', ['status', '--lun', '0', '--target', PAIRS], /required option '--portal <host:port>' not specified/],
    ['a --portal that is not HOST:PORT', ['status', '--lun', '0', '--portal', 'nowhere', '--target', PAIRS], /argument 'nowhere' is invalid\. must be HOST:PORT/],
    ['--portal port 0', ['status', '--lun', '0', '--portal', '127.0.0.1:0', '--target', PAIRS], /port must be from 1 to 65535/],
    ['no --target', ['status', '--lun', '0', '--portal', '127.0.0.1:1'], /required option '--target <iqn>' not specified/],
  ] as const) {
    it(`${what}: refused, exit 1`, async () => {
      const r = await dkc(['pair', ...args]);
      assert.equal(r.status, 1);
      assert.match(r.stderr, message);
    });
  }
});
