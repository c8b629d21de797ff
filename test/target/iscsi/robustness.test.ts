// Robustness: thousands of random and mutated PDUs and CDBs at a running target on 127.0.0.1,
// while a separate healthy session reads and writes and checks every byte. Seeded: the seed is
// printed and SEED=... replays it. FUZZ_SCALE=n multiplies the run counts (default 1).
import assert from 'node:assert/strict';
import * as net from 'node:net';
import fc from 'fast-check';
import { framePdu, PduReader } from '../../../target/iscsi/framing';
import { CommandResult, InitiatorError, IscsiInitiator } from '../../../target/iscsi/initiator/initiator';
import { parseSense } from '../../../target/iscsi/initiator/scsi';
import { encodeLun, Opcode, Pdu, RejectReason, RESERVED_TAG, snLessThan } from '../../../target/iscsi/pdu';
import { decodeText, encodeText } from '../../../target/iscsi/text';
import { IQN, Rig, startRig } from '../../helpers/iscsi-rig';

const seed = process.env.SEED !== undefined ? Number(process.env.SEED) : (Date.now() ^ (process.pid << 8)) >>> 0;
const scale = Number(process.env.FUZZ_SCALE ?? 1);
const E = Buffer.alloc(0);
const REJECT_REASONS = new Set(Object.values(RejectReason).filter((v) => typeof v === 'number'));
/** SAM-5 status codes a disk may return. */
const STATUSES = new Set([0x00, 0x02, 0x04, 0x08, 0x18, 0x28]);
const NO_DIGESTS = { header: false, data: false };

/** What one abused connection saw. */
interface Observed {
  /** ExpStatSN before the abuse: the StatSN the target's next status must carry. */
  statSn: number;
  pdus: Pdu[];
  outcome: 'alive' | 'closed' | 'silent';
  closeError: Error | null;
}

/** Sends raw bytes on a logged-in session, then probes it with a NOP-Out ping. */
async function abuse(ini: IscsiInitiator, bytes: Buffer[], probeMs: number): Promise<Observed> {
  const pdus: Pdu[] = [];
  const statSn = ini.numbers.expStatSn;
  ini.on('pdu', (p: Pdu) => pdus.push(p));
  for (const b of bytes) ini.sendRaw(b);
  try {
    await ini.ping(Buffer.from('probe'), probeMs);
    return { statSn, pdus, outcome: 'alive', closeError: null };
  } catch (e) {
    if (e instanceof InitiatorError && e.code === 'TIMEOUT') return { statSn, pdus, outcome: 'silent', closeError: null };
    return { statSn, pdus, outcome: 'closed', closeError: await ini.closed() };
  }
}

/** Every PDU the target sent must be a target PDU; every Reject well formed (RFC 7143 11.17). */
function checkReplies(o: Observed, what: string): void {
  if (o.closeError instanceof InitiatorError) {
    assert.notEqual(o.closeError.code, 'PROTOCOL', `${what}: the target sent something undecodable: ${o.closeError.message}`);
  }
  let next = o.statSn;
  let expCmdSn: number | null = null;
  for (const p of o.pdus) {
    assert.ok(p.opcode >= 0x20, `${what}: target sent initiator opcode 0x${p.opcode.toString(16)}`);
    if (p.opcode === Opcode.Reject) {
      assert.ok(REJECT_REASONS.has(p.reason), `${what}: Reject reason 0x${p.reason.toString(16)}`);
      assert.equal(p.data.length, 48, `${what}: a Reject carries the rejected header`);
      assert.equal(p.itt, RESERVED_TAG, `${what}: a Reject's ITT is reserved (RFC 7143 11.17)`);
    }
    if (!('statSn' in p) || p.opcode === Opcode.LoginResponse) continue;
    // RFC 7143 4.2.2.2: a status takes the next StatSN; R2T, NOP-In pings and Data-In without
    // status carry it without taking it (Data-In without status may carry 0: reserved).
    const takes = statusBearing(p);
    if (takes || !(p.opcode === Opcode.DataIn && p.statSn === 0)) {
      assert.equal(p.statSn, next, `${what}: ${Opcode[p.opcode]} StatSN ${p.statSn}, expected ${next}`);
    }
    if (takes) next = (next + 1) >>> 0;
    // RFC 7143 4.2.2.1: ExpCmdSN never goes back; MaxCmdSN >= ExpCmdSN - 1.
    if (expCmdSn !== null) assert.ok(!snLessThan(p.expCmdSn, expCmdSn), `${what}: ExpCmdSN went back to ${p.expCmdSn}`);
    expCmdSn = p.expCmdSn;
    assert.ok(!snLessThan(p.maxCmdSn, (p.expCmdSn - 1) >>> 0), `${what}: MaxCmdSN ${p.maxCmdSn} < ExpCmdSN ${p.expCmdSn} - 1`);
  }
}

function statusBearing(p: Pdu): boolean {
  switch (p.opcode) {
    case Opcode.DataIn: return p.hasStatus;
    case Opcode.NopIn: return p.itt !== RESERVED_TAG;
    case Opcode.R2t: return false;
    default: return true;
  }
}

const rejects = (o: Observed): number[] => o.pdus.flatMap((p) => (p.opcode === Opcode.Reject ? [p.reason] : []));

/** The valid initiator PDUs the mutations start from. */
function validPdus(ini: IscsiInitiator): Pdu[] {
  const { cmdSn, expStatSn } = ini.numbers;
  const lun = encodeLun(0);
  const cdb = Buffer.alloc(16);
  cdb[0] = 0x88;
  cdb[13] = 1;
  return [
    { opcode: Opcode.NopOut, immediate: true, final: true, ahs: E, data: Buffer.from('nop data'), itt: 0x1000, lun, ttt: 0xffffffff, cmdSn, expStatSn },
    { opcode: Opcode.ScsiCommand, immediate: false, final: true, read: true, write: false, attr: 0, ahs: E, data: E, itt: 0x1001, lun, expectedDataTransferLength: 512, cmdSn, expStatSn, cdb },
    { opcode: Opcode.ScsiCommand, immediate: false, final: true, read: false, write: true, attr: 0, ahs: E, data: Buffer.alloc(512, 0xa5), itt: 0x1002, lun, expectedDataTransferLength: 512, cmdSn, expStatSn, cdb: Buffer.from([0x8a, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0]) },
    { opcode: Opcode.TextRequest, immediate: false, final: true, continue: false, ahs: E, data: encodeText([['SendTargets', 'All']]), itt: 0x1003, lun, ttt: 0xffffffff, cmdSn, expStatSn },
    { opcode: Opcode.TaskMgmtRequest, immediate: true, final: true, function: 1, ahs: E, data: E, itt: 0x1004, lun, referencedTaskTag: 0x9999, cmdSn, expStatSn, refCmdSn: cmdSn, expDataSn: 0 },
    { opcode: Opcode.DataOut, immediate: false, final: true, ahs: E, data: Buffer.alloc(64), itt: 0x1005, lun, ttt: 0x77, expStatSn, dataSn: 0, bufferOffset: 0 },
    { opcode: Opcode.SnackRequest, immediate: false, final: true, type: 0, ahs: E, data: E, itt: 0x1006, lun, ttt: 0xffffffff, expStatSn, begRun: 0, runLength: 0 },
  ];
}

type Mutation =
  | { kind: 'flip'; pdu: number; bits: number[] }
  | { kind: 'opcode'; pdu: number; opcode: number }
  | { kind: 'lengths'; pdu: number; ahsWords: number; dsl: number }
  | { kind: 'absurd'; pdu: number; dsl: number }
  | { kind: 'truncate'; pdu: number; keep: number }
  | { kind: 'random'; bytes: Uint8Array };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('flip' as const), pdu: fc.nat(6), bits: fc.array(fc.integer({ min: 0, max: 48 * 8 - 1 }).filter((b) => b < 32 || b >= 64), { minLength: 1, maxLength: 8 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('opcode' as const), pdu: fc.nat(6), opcode: fc.integer({ min: 0, max: 63 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('lengths' as const), pdu: fc.nat(6), ahsWords: fc.nat(255), dsl: fc.nat(70000) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('absurd' as const), pdu: fc.nat(6), dsl: fc.integer({ min: 262145, max: 0xffffff }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), pdu: fc.nat(6), keep: fc.integer({ min: 1, max: 47 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('random' as const), bytes: fc.uint8Array({ minLength: 48, maxLength: 200 }) }) },
);

function apply(m: Mutation, base: Pdu[]): Buffer {
  if (m.kind === 'random') return Buffer.from(m.bytes);
  const wire = Buffer.concat(framePdu(base[m.pdu], NO_DIGESTS));
  switch (m.kind) {
    case 'flip':
      for (const b of m.bits) wire[b >> 3] ^= 0x80 >> (b & 7);
      return wire;
    case 'opcode':
      wire[0] = (wire[0] & 0xc0) | m.opcode;
      return wire;
    case 'lengths':
    case 'absurd':
      wire[4] = m.kind === 'lengths' ? m.ahsWords : wire[4];
      wire.writeUIntBE(m.dsl, 5, 3);
      return wire;
    case 'truncate':
      return wire.subarray(0, m.keep);
  }
}

/** A healthy session on its own target: write, read back, compare, until told to stop. */
class Healthy {
  ops = 0;
  private stopped = false;
  private done: Promise<void> = Promise.resolve();
  private readonly model = new Map<number, Buffer>();

  constructor(private readonly ini: IscsiInitiator, private readonly rnd: () => number, private readonly blocks: number) {}

  start(): void {
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      const lba = Math.floor(this.rnd() * (this.blocks - 8));
      const n = 1 + Math.floor(this.rnd() * 8);
      const data = Buffer.alloc(n * 512);
      for (let i = 0; i < data.length; i += 4) data.writeUInt32LE((this.ops * 2654435761 + i) >>> 0, i);
      await this.ini.write16(0, lba, data, { fua: this.rnd() < 0.2 });
      for (let i = 0; i < n; i++) this.model.set(lba + i, data.subarray(i * 512, (i + 1) * 512));
      const back = await this.ini.read16(0, lba, n);
      assert.ok(back.equals(data), `healthy session: read back differs at LBA ${lba}`);
      this.ops++;
    }
  }

  /** Stops the loop, then reads every block it ever wrote and checks it. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
    for (const [lba, data] of this.model) assert.ok((await this.ini.read16(0, lba, 1)).equals(data), `healthy session: LBA ${lba} lost`);
  }
}

/** Random/mutated CDBs: known opcodes (SPC, SBC) with random fields, any byte, or a flipped READ(16). */
const KNOWN_OPCODES = [
  0x00, 0x03, 0x04, 0x08, 0x0a, 0x12, 0x15, 0x16, 0x17, 0x1a, 0x1b, 0x1d, 0x1e, 0x25, 0x28, 0x2a, 0x2e, 0x2f, 0x34, 0x35, 0x37,
  0x3b, 0x3c, 0x41, 0x42, 0x4c, 0x4d, 0x55, 0x56, 0x57, 0x5a, 0x5e, 0x5f, 0x83, 0x84, 0x88, 0x89, 0x8a, 0x8e, 0x8f, 0x90, 0x91,
  0x93, 0x9e, 0x9f, 0xa0, 0xa3, 0xa4, 0xa8, 0xaa, 0xae, 0xaf, 0xb7, 0xc0, 0xe0, 0xff,
];

interface CdbCase {
  cdb: Buffer;
  dataOut: Buffer | undefined;
  expectedLength: number;
}

const cdbCase: fc.Arbitrary<CdbCase> = fc.record({
  opcode: fc.oneof(fc.constantFrom(...KNOWN_OPCODES), fc.integer({ min: 0, max: 255 })),
  body: fc.uint8Array({ minLength: 15, maxLength: 15 }),
  length: fc.constantFrom(6, 10, 12, 16),
  small: fc.boolean(),
  write: fc.boolean(),
  size: fc.integer({ min: 0, max: 16384 }),
  flipRead: fc.option(fc.array(fc.integer({ min: 0, max: 127 }), { minLength: 1, maxLength: 4 }), { freq: 4 }),
}).map((r) => {
  let cdb: Buffer;
  if (r.flipRead !== null) {
    cdb = Buffer.from([0x88, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 4, 0, 0]);
    for (const b of r.flipRead) cdb[b >> 3] ^= 0x80 >> (b & 7);
  } else {
    cdb = Buffer.concat([Buffer.from([r.opcode]), Buffer.from(r.body)]).subarray(0, r.length);
    // Mostly keep lengths and LBAs small so commands land inside the LU and do real work.
    if (r.small && cdb.length >= 10) cdb.fill(0, 2, Math.min(cdb.length - 4, 9));
  }
  const size = r.small ? r.size % 4097 : r.size;
  return { cdb, dataOut: r.write ? Buffer.alloc(size, 0x3c) : undefined, expectedLength: size };
});

/** The sense-key specific field pointer, fixed (bytes 15..17) or descriptor format (descriptor 02h). */
function fieldPointer(sense: Buffer): { cdb: boolean; byte: number } | null {
  let sks: Buffer | null = null;
  if ((sense[0] & 0x7f) <= 0x71 && sense.length >= 18) sks = sense.subarray(15, 18);
  else for (let at = 8; at + 2 <= sense.length; at += 2 + sense[at + 1]) {
    if (sense[at] === 0x02 && at + 7 <= sense.length) sks = sense.subarray(at + 4, at + 7);
  }
  if (sks === null || (sks[0] & 0x80) === 0) return null;
  return { cdb: (sks[0] & 0x40) !== 0, byte: sks.readUInt16BE(1) };
}

/** Applies Data-Out mutations to one R2T's sequence (by position, wrapping). */
function mutateSequence<T extends { dataSn: number; bufferOffset: number; ttt: number; final: boolean; data: Buffer }>(
  seq: T[], muts: Array<{ kind: string; at: number; by: number }>,
): T[] {
  const out = [...seq];
  for (const m of muts) {
    if (out.length === 0) break;
    const i = m.at % out.length;
    const d = { ...out[i] };
    switch (m.kind) {
      case 'dataSn': d.dataSn = (d.dataSn + m.by) >>> 0; break;
      case 'offset': d.bufferOffset = (d.bufferOffset + m.by) >>> 0; break;
      case 'ttt': d.ttt = (d.ttt ^ m.by) >>> 0; break;
      case 'final': d.final = !d.final; break;
      case 'drop': out.splice(i, 1); continue;
      case 'dup': out.splice(i, 0, d); continue;
      case 'grow': d.data = Buffer.concat([d.data, Buffer.alloc(Math.min(m.by, 512), 0x11)]); break;
      case 'swap': if (out.length > 1) { const j = (i + 1) % out.length; [out[i], out[j]] = [out[j], out[i]]; } continue;
    }
    out[i] = d;
  }
  return out;
}

let fieldPointers = 0;

function checkCdbResult(c: CdbCase, r: CommandResult): void {
  const what = `CDB ${c.cdb.toString('hex')} (${c.dataOut ? 'out' : 'in'} ${c.expectedLength})`;
  assert.equal(r.response, 0, `${what}: iSCSI response ${r.response}`);
  assert.ok(STATUSES.has(r.status), `${what}: status 0x${r.status.toString(16)}`);
  assert.ok(r.data.length <= c.expectedLength, `${what}: ${r.data.length} bytes of Data-In over EDTL`);
  if (r.residualUnderflow) assert.ok(r.data.length <= c.expectedLength - r.residualCount, `${what}: data beyond the residual`);
  if (r.status === 0x02) {
    assert.ok(r.sense !== null && r.sense.length >= 8, `${what}: CHECK CONDITION without sense`);
    const s = parseSense(r.sense);
    assert.ok(s !== null, `${what}: sense response code 0x${r.sense[0].toString(16)}`);
    assert.ok(!(s.key === 0x4 && s.asc === 0x44), `${what}: INTERNAL TARGET FAILURE`);
    // SPC-4 4.5.2.4.2: a field pointer into the CDB (SKSV=1, C/D=1) points inside the CDB.
    const sks = s.key === 0x5 ? fieldPointer(r.sense) : null;
    if (sks !== null && sks.cdb) fieldPointers++;
    if (sks !== null && sks.cdb) assert.ok(sks.byte < c.cdb.length, `${what}: field pointer to byte ${sks.byte} of a ${c.cdb.length}-byte CDB`);
  } else {
    assert.ok(r.sense === null || r.sense.length === 0, `${what}: sense data with status 0x${r.status.toString(16)}`);
  }
}

describe('iSCSI target robustness (property-based)', function () {
  this.timeout(120000);
  let rig: Rig;
  let healthy: Healthy;
  const opened: IscsiInitiator[] = [];

  const session = async (o: ConstructorParameters<typeof IscsiInitiator>[0] = {}): Promise<IscsiInitiator> => {
    const ini = new IscsiInitiator({ commandTimeoutMs: 10000, loginTimeoutMs: 5000, ...o });
    opened.push(ini);
    await ini.connect(rig.host, rig.port);
    await ini.login({ targetName: IQN.plain });
    return ini;
  };

  before(async () => {
    console.log(`      seed ${seed} (replay with SEED=${seed})`);
    rig = await startRig();
    const h = new IscsiInitiator({ commandTimeoutMs: 10000 });
    opened.push(h);
    await h.connect(rig.host, rig.port);
    await h.login({ targetName: IQN.healthy });
    for (let i = 0; i < 3 && (await h.command({ lun: 0, cdb: Buffer.alloc(6) })).status !== 0; i++);
    const prng = fc.sample(fc.integer({ min: 0, max: 0x7fffffff }), { seed, numRuns: 1 })[0];
    let state = prng || 1;
    const rnd = (): number => ((state = (state * 48271) % 0x7fffffff) / 0x7fffffff);
    healthy = new Healthy(h, rnd, rig.volumes[4].blockCount);
    healthy.start();
  });

  after(async () => {
    const errors = rig.internalErrors();
    try {
      await healthy.stop();
      console.log(`      healthy session: ${healthy.ops} write+read pairs checked`);
      assert.ok(healthy.ops > 20, `the healthy session made progress (${healthy.ops} write+read pairs)`);
    } finally {
      for (const i of opened) i.close();
      await rig.stop();
    }
    assert.deepStrictEqual(errors, [], 'no unexpected exception in the SCSI targets');
  });

  it('random and mutated PDUs in full feature phase: Reject, or the connection closed, never a crash', async () => {
    const counts: Record<string, number> = {};
    await fc.assert(fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 4 }), async (ms) => {
      const ini = await session();
      const bytes = ms.map((m) => apply(m, validPdus(ini)));
      const framing = ms.some((m) => m.kind === 'lengths' || m.kind === 'truncate' || m.kind === 'random');
      const o = await abuse(ini, bytes, framing ? 50 : 3000);
      const what = JSON.stringify(ms.map((m) => m.kind));
      checkReplies(o, what);
      if (!framing) assert.notEqual(o.outcome, 'silent', `${what}: the target stopped answering a well-framed connection`);
      if (ms.every((m) => m.kind === 'absurd')) assert.equal(o.outcome, 'closed', `${what}: DataSegmentLength over MaxRecvDataSegmentLength must close`);
      counts[o.outcome] = (counts[o.outcome] ?? 0) + 1;
      ini.close();
    }), { seed, numRuns: Math.round(400 * scale) });
    console.log(`      outcomes ${JSON.stringify(counts)}`);
    await assertServing();
  });

  it('an unknown opcode, well framed -> Reject (command not supported) and the session goes on', async () => {
    const ini = await session();
    const unknown = [0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x11, 0x12, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f];
    await fc.assert(fc.asyncProperty(fc.constantFrom(...unknown), fc.nat(6), async (op, which) => {
      const wire = Buffer.concat(framePdu(validPdus(ini)[which], NO_DIGESTS));
      wire[0] = (wire[0] & 0xc0) | op;
      const o = await abuse(ini, [wire], 3000);
      ini.removeAllListeners('pdu');
      checkReplies(o, `opcode 0x${op.toString(16)}`);
      assert.equal(o.outcome, 'alive', `opcode 0x${op.toString(16)}`);
      assert.deepStrictEqual(rejects(o), [RejectReason.CommandNotSupported], `opcode 0x${op.toString(16)}`);
    }), { seed, numRuns: Math.round(200 * scale) });
  });

  it('a target opcode sent by the initiator -> Reject (protocol error or command not supported), or the connection closed', async () => {
    const targetOpcodes = [0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x31, 0x32, 0x3f];
    await fc.assert(fc.asyncProperty(fc.constantFrom(...targetOpcodes), fc.nat(6), async (op, which) => {
      const ini = await session();
      const wire = Buffer.concat(framePdu(validPdus(ini)[which], NO_DIGESTS));
      wire[0] = (wire[0] & 0xc0) | op;
      const o = await abuse(ini, [wire], 3000);
      const what = `opcode 0x${op.toString(16)}`;
      checkReplies(o, what);
      assert.notEqual(o.outcome, 'silent', what);
      if (o.outcome === 'alive') {
        const r = rejects(o);
        assert.equal(r.length, 1, `${what}: one Reject`);
        assert.ok(r[0] === RejectReason.ProtocolError || r[0] === RejectReason.CommandNotSupported, `${what}: reason 0x${r[0].toString(16)}`);
      }
      ini.close();
    }), { seed, numRuns: Math.round(60 * scale) });
  });

  it('a DataSegmentLength over MaxRecvDataSegmentLength closes the connection (RFC 7143 11.2.1.5, 13.12)', async () => {
    await fc.assert(fc.asyncProperty(fc.nat(6), fc.integer({ min: 1, max: 0xffffff }), async (which, over) => {
      const ini = await session();
      const limit = ini.session.params!.maxRecvDataSegmentLength;
      const wire = Buffer.concat(framePdu(validPdus(ini)[which], NO_DIGESTS));
      wire.writeUIntBE(Math.min(0xffffff, limit + over), 5, 3);
      const o = await abuse(ini, [wire.subarray(0, 48)], 3000);
      checkReplies(o, 'DataSegmentLength');
      assert.equal(o.outcome, 'closed');
      ini.close();
    }), { seed, numRuns: Math.round(40 * scale) });
  });

  it('a valid PDU split at any byte with pauses between the pieces is served as a whole', async () => {
    const ini = await session();
    await fc.assert(fc.asyncProperty(fc.uniqueArray(fc.integer({ min: 1, max: 59 }), { minLength: 1, maxLength: 4 }), async (cuts) => {
      const itt = ini.allocateItt();
      const nop: Pdu = { opcode: Opcode.NopOut, immediate: true, final: true, ahs: E, data: Buffer.from('split ping'), itt, lun: encodeLun(0), ttt: 0xffffffff, ...ini.numbers };
      const wire = Buffer.concat(framePdu(nop, NO_DIGESTS));
      const answer = new Promise<Pdu>((resolve) => {
        const on = (p: Pdu): void => { if (p.opcode === Opcode.NopIn && p.itt === itt) { ini.off('unexpected', on); resolve(p); } };
        ini.on('unexpected', on);
      });
      let at = 0;
      for (const cut of [...cuts].sort((a, b) => a - b)) {
        ini.sendRaw(wire.subarray(at, cut));
        at = cut;
        await new Promise((r) => setTimeout(r, 2));
      }
      ini.sendRaw(wire.subarray(at));
      const p = await answer;
      assert.deepStrictEqual(p.data, Buffer.from('split ping'));
    }), { seed, numRuns: Math.round(100 * scale) });
    ini.close();
  });

  it('a truncated PDU and a closed socket leave the target serving', async () => {
    await fc.assert(fc.asyncProperty(fc.nat(6), fc.integer({ min: 1, max: 200 }), async (which, keep) => {
      const ini = await session();
      const wire = Buffer.concat(framePdu(validPdus(ini)[which], NO_DIGESTS));
      ini.sendRaw(wire.subarray(0, Math.min(keep, wire.length - 1)));
      ini.close();
    }), { seed, numRuns: Math.round(50 * scale) });
    await assertServing();
  });

  /** A NOP-Out with ping data, sent with both digests and one bit of one digest flipped. */
  async function badDigest(header: boolean, bit: number): Promise<Observed> {
    const ini = await session({ proposal: { headerDigest: ['CRC32C'], dataDigest: ['CRC32C'] } });
    const wire = Buffer.concat(framePdu(validPdus(ini)[0], { header: true, data: true }));
    // Header digest at 48..51; data digest in the last 4 bytes.
    const at = header ? 48 + (bit >> 3) : wire.length - 4 + (bit >> 3);
    wire[at] ^= 0x80 >> (bit & 7);
    const o = await abuse(ini, [wire], 3000);
    ini.close();
    return o;
  }

  it('a bad header digest closes the connection (RFC 7143 7.8: framing is lost at ERL 0)', async () => {
    await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: 31 }), async (bit) => {
      const o = await badDigest(true, bit);
      checkReplies(o, 'header digest');
      assert.equal(o.outcome, 'closed');
    }), { seed, numRuns: Math.round(50 * scale) });
  });

  it('a bad data digest on a NOP-Out -> Reject (data digest error) and the connection goes on (RFC 7143 7.8: non-data PDU)', async () => {
    await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: 31 }), async (bit) => {
      const o = await badDigest(false, bit);
      checkReplies(o, 'data digest');
      assert.deepStrictEqual(rejects(o), [RejectReason.DataDigestError]);
      // RFC 7143 7.8: "No further action is necessary for targets if the discarded PDU is a non-data PDU."
      assert.equal(o.outcome, 'alive', 'the connection was dropped for a digest error on a non-data PDU');
    }), { seed, numRuns: Math.round(50 * scale) });
  });

  it('random bytes as the first PDU of a connection: only Login Responses, or the connection closed', async () => {
    const loginBytes = fc.tuple(fc.array(fc.integer({ min: 0, max: 48 * 8 - 1 }).filter((b) => b < 32 || b >= 64), { minLength: 1, maxLength: 6 }), fc.boolean())
      .map(([bits, op]) => {
        const login = Buffer.concat(framePdu({
          opcode: Opcode.LoginRequest, immediate: true, final: true, transit: true, continue: false, csg: op ? 1 : 0, nsg: op ? 3 : 1,
          versionMax: 0, versionMin: 0, isid: Buffer.from([0x80, 0, 0, 1, 0, 0]), tsih: 0, itt: 1, cid: 0, cmdSn: 1, expStatSn: 0,
          ahs: E, data: encodeText([['InitiatorName', 'iqn.2026-11.dev.dkc-emu:fuzz'], ['SessionType', 'Normal'], ['TargetName', IQN.plain], ['AuthMethod', 'None']]),
        }, NO_DIGESTS));
        for (const b of bits) login[b >> 3] ^= 0x80 >> (b & 7);
        return { bytes: login, framed: true };
      });
    const randomBytes = fc.uint8Array({ minLength: 1, maxLength: 300 }).map((a) => ({ bytes: Buffer.from(a), framed: false }));
    await fc.assert(fc.asyncProperty(fc.oneof(loginBytes, randomBytes), async ({ bytes, framed }) => {
      const replies = await rawExchange(bytes, framed ? 2000 : 25);
      for (const p of replies.pdus) {
        assert.ok(p.opcode === Opcode.LoginResponse, `opcode 0x${p.opcode.toString(16)} answered a PDU during login`);
      }
      // A whole PDU (lengths untouched) gets an answer or a close; never silence.
      if (framed) assert.ok(replies.pdus.length > 0 || replies.closed, 'a framed PDU during login was left unanswered');
    }), { seed, numRuns: Math.round(400 * scale) });
    await assertServing();
  });

  it('random login keys and values: one well-formed Login Response (or a close), never a crash', async () => {
    const knownKeys = ['HeaderDigest', 'DataDigest', 'MaxConnections', 'InitialR2T', 'ImmediateData', 'MaxRecvDataSegmentLength',
      'MaxBurstLength', 'FirstBurstLength', 'DefaultTime2Wait', 'DefaultTime2Retain', 'MaxOutstandingR2T', 'DataPDUInOrder',
      'DataSequenceInOrder', 'ErrorRecoveryLevel', 'SessionType', 'TargetName', 'InitiatorName', 'AuthMethod', 'CHAP_A', 'IFMarker',
      'OFMarkInt', 'SendTargets', 'TargetAddress', 'TaskReporting', 'X-com.example.thing', 'X#vendor'];
    const value = fc.oneof(
      fc.constantFrom('Yes', 'No', 'None', 'CRC32C', 'CRC32C,None', '0', '1', '512', '8192', '16777215', '16777216', '4294967296',
        '-1', '', 'Reject', 'Irrelevant', 'NotUnderstood', 'All', 'CHAP,None', '0x10', '1~2'),
      fc.string({ maxLength: 30 }).filter((v) => !v.includes('\0')),
    );
    const pair = fc.tuple(fc.oneof(fc.constantFrom(...knownKeys), fc.stringMatching(/^[A-Za-z][A-Za-z0-9]{0,20}$/)), value);
    await fc.assert(fc.asyncProperty(fc.array(pair, { maxLength: 12 }), fc.boolean(), async (pairs, operational) => {
      const base: Array<[string, string]> = [['InitiatorName', 'iqn.2026-11.dev.dkc-emu:fuzz'], ['SessionType', 'Normal'], ['TargetName', IQN.plain]];
      const login = Buffer.concat(framePdu({
        opcode: Opcode.LoginRequest, immediate: true, final: true, transit: true, continue: false, csg: operational ? 1 : 0, nsg: operational ? 3 : 1,
        versionMax: 0, versionMin: 0, isid: Buffer.from([0x80, 0, 0, 2, 0, 0]), tsih: 0, itt: 1, cid: 0, cmdSn: 1, expStatSn: 0,
        ahs: E, data: encodeText([...base, ...(operational ? [] : [['AuthMethod', 'None'] as [string, string]]), ...pairs]),
      }, NO_DIGESTS));
      const replies = await rawExchange(login, 2000);
      assert.ok(replies.pdus.length > 0 || replies.closed, 'a Login Request was left unanswered');
      assert.ok(replies.pdus.length <= 1, 'one Login Response per Login Request');
      for (const p of replies.pdus) {
        assert.ok(p.opcode === Opcode.LoginResponse, `opcode 0x${p.opcode.toString(16)}`);
        assert.ok(p.statusClass <= 3, `status class ${p.statusClass}`);
        const answer = decodeText(p.data); // throws on malformed text from the target
        if (p.statusClass === 0) {
          for (const [k, v] of answer) assert.ok(v.length > 0 || k === 'TargetAlias', `${k} answered with an empty value`);
        }
      }
    }), { seed, numRuns: Math.round(300 * scale) });
    await assertServing();
  });

  it('Data-Out answering an R2T with mutated DataSN, offsets, TTT, F bits and lengths: the task ends or can be aborted', async () => {
    type DoMut = { kind: 'dataSn' | 'offset' | 'ttt' | 'final' | 'drop' | 'dup' | 'grow' | 'swap'; at: number; by: number };
    const doMut: fc.Arbitrary<DoMut> = fc.record({
      kind: fc.constantFrom('dataSn', 'offset', 'ttt', 'final', 'drop', 'dup', 'grow', 'swap'),
      at: fc.nat(15), by: fc.integer({ min: 1, max: 4096 }),
    });
    const outcomes: Record<string, number> = {};
    await fc.assert(fc.asyncProperty(fc.array(doMut, { maxLength: 3 }), fc.integer({ min: 1, max: 48 }), async (muts, blocks) => {
      const ini = await session({ proposal: { initialR2T: true, immediateData: false, maxBurstLength: 8192 } });
      for (let i = 0; i < 3 && (await ini.command({ lun: 0, cdb: Buffer.alloc(6) })).status !== 0; i++);
      const pdus: Pdu[] = [];
      const statSn = ini.numbers.expStatSn;
      ini.on('pdu', (p: Pdu) => pdus.push(p));
      const itt = ini.allocateItt();
      const cmdSn = ini.takeCmdSn();
      const len = blocks * 512;
      const data = Buffer.alloc(len);
      for (let i = 0; i < len; i += 4) data.writeUInt32BE((i * 2654435761 + blocks) >>> 0, i);
      const mrdsl = ini.session.params!.targetMaxRecvDataSegmentLength;
      let firstBurst = true;
      const ended = new Promise<Pdu | null>((resolve) => {
        ini.on('unexpected', (p: Pdu) => {
          if (p.itt !== itt) return;
          if (p.opcode === Opcode.ScsiResponse) return resolve(p);
          if (p.opcode !== Opcode.R2t) return;
          let seq: Array<Extract<Pdu, { opcode: Opcode.DataOut }>> = [];
          for (let at = p.bufferOffset, sn = 0; at < p.bufferOffset + p.desiredDataTransferLength; at += mrdsl, sn++) {
            const n = Math.min(mrdsl, p.bufferOffset + p.desiredDataTransferLength - at);
            seq.push({
              opcode: Opcode.DataOut, immediate: false, final: at + n >= p.bufferOffset + p.desiredDataTransferLength, ahs: E,
              data: data.subarray(Math.min(at, len), Math.min(at + n, len)), itt, lun: encodeLun(0), ttt: p.ttt,
              expStatSn: ini.numbers.expStatSn, dataSn: sn, bufferOffset: at,
            });
          }
          if (firstBurst) seq = mutateSequence(seq, muts);
          firstBurst = false;
          for (const d of seq) ini.sendPdu(d);
        });
        ini.once('close', () => resolve(null));
        setTimeout(() => resolve(null), 150);
      });
      ini.sendPdu({
        opcode: Opcode.ScsiCommand, immediate: false, final: true, read: false, write: true, attr: 0, ahs: E, data: E, itt,
        lun: encodeLun(0), expectedDataTransferLength: len, cmdSn, expStatSn: ini.numbers.expStatSn,
        cdb: Buffer.from([0x8a, 0, 0, 0, 0, 0, 0, 0, 0, 0x20, 0, 0, 0, blocks, 0, 0]),
      });
      const response = await ended;
      const what = JSON.stringify({ muts, blocks });
      let outcome: string;
      if (response !== null && response.opcode === Opcode.ScsiResponse) {
        assert.ok(STATUSES.has(response.status), `${what}: status 0x${response.status.toString(16)}`);
        if (response.status === 0x02) assert.ok(response.data.length >= 10, `${what}: CHECK CONDITION without sense`);
        if (muts.length === 0) assert.equal(response.status, 0, `${what}: an unmutated write is GOOD`);
        outcome = response.status === 0 ? 'good' : 'check condition';
        // GOOD means every byte arrived where it belongs (DataPDUInOrder=Yes, RFC 7143 13.18).
        if (response.status === 0) assert.ok((await ini.read16(0, 0x20, blocks)).equals(data), `${what}: GOOD but the blocks differ`);
      } else if (!ini.connected) {
        outcome = 'closed';
      } else {
        // Still waiting for data it will not get: ABORT TASK must be answered (RFC 7143 11.5).
        const r = await ini.taskManagement(1, { lun: 0, referencedTaskTag: itt, refCmdSn: cmdSn, timeoutMs: 3000 }).catch((e: Error) => e);
        assert.ok(typeof r === 'number' || (r instanceof InitiatorError && r.code === 'CONNECTION_CLOSED'), `${what}: ABORT TASK -> ${String(r)}`);
        outcome = typeof r === 'number' ? `aborted (${r})` : 'closed';
      }
      if (ini.connected) {
        const alive = await ini.ping(Buffer.alloc(0), 3000).then(() => true, (e: InitiatorError) => e.code === 'CONNECTION_CLOSED' ? false : Promise.reject(e));
        if (alive) assert.equal((await ini.command({ lun: 0, cdb: Buffer.alloc(6) })).response, 0, `${what}: the session still runs commands`);
      }
      checkReplies({ statSn, pdus, outcome: 'alive', closeError: null }, what);
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      ini.close();
    }), { seed, numRuns: Math.round(120 * scale) });
    console.log(`      outcomes ${JSON.stringify(outcomes)}`);
    await assertServing();
  });

  it('random and mutated CDBs in valid SCSI Command PDUs: a status per SAM-5, CHECK CONDITION with sense', async () => {
    let ini = await session();
    const statuses: Record<string, number> = {};
    await fc.assert(fc.asyncProperty(fc.array(cdbCase, { minLength: 1, maxLength: 8 }), fc.nat(1), async (cases, lun) => {
      if (!ini.connected) ini = await session();
      const results = await Promise.all(cases.map((c) => ini.command({ lun, cdb: c.cdb, dataOut: c.dataOut, expectedLength: c.expectedLength })));
      results.forEach((r, i) => {
        checkCdbResult(cases[i], r);
        statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      });
    }), { seed, numRuns: Math.round(500 * scale) });
    console.log(`      statuses ${JSON.stringify(statuses)}, CDB field pointers checked ${fieldPointers}`);
    assert.equal(ini.connected, true, 'CDBs alone never cost the connection');
    await assertServing();
  });

  /** The target still logs a new initiator in and serves it. */
  async function assertServing(): Promise<void> {
    const ini = await session();
    await ini.ping();
    ini.close();
  }

  /** A raw connection (no initiator logic): sends bytes, collects what comes back. */
  function rawExchange(bytes: Buffer, idleMs: number): Promise<{ pdus: Pdu[]; closed: boolean }> {
    return new Promise((resolve) => {
      const pdus: Pdu[] = [];
      const s = net.connect({ host: rig.host, port: rig.port });
      let closed = false;
      let settled = false;
      const finish = (): void => {
        if (settled) return;
        settled = true;
        clearTimeout(idle);
        s.destroy();
        resolve({ pdus, closed });
      };
      const idle = setTimeout(finish, idleMs);
      const reader = new PduReader((r) => {
        if (r.kind === 'pdu') pdus.push(r.pdu);
        else assert.fail(`target sent an undecodable PDU: ${r.error.message}`);
        // Give a close that follows the answer a moment to arrive.
        setTimeout(finish, 5);
      });
      reader.maxDataSegmentLength = 1 << 24;
      s.on('data', (c: Buffer) => reader.push(c));
      s.on('error', () => undefined);
      s.on('close', () => { closed = true; finish(); });
      s.on('connect', () => s.write(bytes));
    });
  }
});
