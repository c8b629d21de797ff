import assert from 'node:assert/strict';
import { chapResponse as targetChapResponse } from '../../../../target/iscsi/chap';
import { chapResponse, decodeBinaryValue, parseChapIdentifier } from '../../../../target/iscsi/initiator/chap';
import { DEFAULT_PROPOSAL, Negotiation, NegotiationError } from '../../../../target/iscsi/initiator/negotiation';
import { parseSense } from '../../../../target/iscsi/initiator/scsi';
import { InitiatorError, IscsiInitiator, parseSendTargets, ScsiStatusError } from '../../../../target/iscsi/initiator/initiator';
import { DataIn, encodeLun, Opcode, Pdu, R2t, RejectReason } from '../../../../target/iscsi/pdu';
import { BhsBuilder } from '../../../helpers/bhs-builder';
import { CHAP, IQN, Rig, startRig } from '../../../helpers/iscsi-rig';

const read16Cdb = (lba: number, blocks: number): Buffer => {
  const b = Buffer.alloc(16);
  b[0] = 0x88;
  b.writeBigUInt64BE(BigInt(lba), 2);
  b.writeUInt32BE(blocks, 10);
  return b;
};

const pattern = (n: number, seed: number): Buffer => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7 + (i >> 9)) & 0xff;
  return b;
};

/** Clears the power-on unit attention so later commands see GOOD. */
async function settle(ini: IscsiInitiator, lun = 0): Promise<void> {
  for (let i = 0; i < 4; i++) {
    const r = await ini.command({ lun, cdb: Buffer.alloc(6) });
    if (r.status === 0) return;
  }
}

const rejectsWith = async (p: Promise<unknown>, code: string): Promise<InitiatorError> => {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof InitiatorError, `not an InitiatorError: ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return e;
  }
  assert.fail(`expected ${code}`);
};

describe('iSCSI initiator', () => {
  describe('pieces', () => {
    it('CHAP MD5 response equals the target side computation (two implementations)', () => {
      const challenge = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
      for (const id of [0, 1, 77, 255]) {
        assert.deepStrictEqual(chapResponse(5, id, 'a-secret-12345', challenge), targetChapResponse(id, 'a-secret-12345', challenge));
      }
    });

    it('CHAP values: hex and base64 decode, garbage and out-of-range identifiers refused', () => {
      assert.deepStrictEqual(decodeBinaryValue('0xABcd'), Buffer.from([0xab, 0xcd]));
      assert.deepStrictEqual(decodeBinaryValue('0bq80='), Buffer.from([0xab, 0xcd]));
      assert.throws(() => decodeBinaryValue('abcd'));
      assert.throws(() => decodeBinaryValue('0x'));
      assert.equal(parseChapIdentifier('255'), 255);
      assert.equal(parseChapIdentifier('0x1f'), 31);
      assert.throws(() => parseChapIdentifier('256'));
      assert.throws(() => parseChapIdentifier('-1'));
    });

    it('negotiation: answers within the offer are taken; answers breaking the rule are refused', () => {
      const n = new Negotiation({ ...DEFAULT_PROPOSAL }, false);
      n.offer();
      n.absorb([['HeaderDigest', 'CRC32C'], ['MaxBurstLength', '65536'], ['InitialR2T', 'Yes'], ['ImmediateData', 'No'], ['MaxRecvDataSegmentLength', '4096'], ['DefaultTime2Wait', '5']]);
      const p = n.result();
      assert.equal(p.headerDigest, true);
      assert.equal(p.maxBurstLength, 65536);
      assert.equal(p.firstBurstLength, 65536);
      assert.equal(p.initialR2T, true);
      assert.equal(p.immediateData, false);
      assert.equal(p.targetMaxRecvDataSegmentLength, 4096);
      assert.equal(p.defaultTime2Wait, 5);
      const bad: Array<[string, string]> = [
        ['MaxBurstLength', '999999'], ['HeaderDigest', 'MD5'], ['DefaultTime2Wait', '1'], ['MaxRecvDataSegmentLength', '100'], ['ErrorRecoveryLevel', 'x'],
      ];
      for (const pair of bad) {
        const m = new Negotiation({ ...DEFAULT_PROPOSAL, initialR2T: true }, false);
        m.offer();
        assert.throws(() => m.absorb([pair]), NegotiationError, pair.join('='));
      }
      const or = new Negotiation({ ...DEFAULT_PROPOSAL, initialR2T: true }, false);
      or.offer();
      assert.throws(() => or.absorb([['InitialR2T', 'No']]), NegotiationError, 'OR: Yes cannot come back No');
    });

    it('negotiation: a key the target offers first is answered by the merge rule; unknown keys NotUnderstood', () => {
      const n = new Negotiation({ ...DEFAULT_PROPOSAL }, false);
      n.absorb([['MaxBurstLength', '1048576'], ['X-vendor-thing', 'on']]);
      assert.deepStrictEqual(n.takeOwed(), [['MaxBurstLength', String(DEFAULT_PROPOSAL.maxBurstLength)], ['X-vendor-thing', 'NotUnderstood']]);
      assert.deepStrictEqual(n.takeOwed(), [], 'owed answers are handed out once');
      const u = new Negotiation({ ...DEFAULT_PROPOSAL }, false);
      u.absorb([['FancyKey', 'on']]);
      assert.deepStrictEqual(u.takeOwed(), [['FancyKey', 'NotUnderstood']]);
    });

    it('SendTargets answers parse with IPv4, IPv6 and default port', () => {
      assert.deepStrictEqual(parseSendTargets([
        ['TargetName', 'iqn.a'], ['TargetAddress', '10.0.0.1:3261,2'], ['TargetAddress', '[fe80::1]:3260,1'],
        ['TargetName', 'iqn.b'], ['TargetAddress', 'host.example'],
      ]), [
        { name: 'iqn.a', addresses: [{ host: '10.0.0.1', port: 3261, tpgt: 2 }, { host: 'fe80::1', port: 3260, tpgt: 1 }] },
        { name: 'iqn.b', addresses: [{ host: 'host.example', port: 3260, tpgt: 1 }] },
      ]);
    });

    it('sense parsing: fixed with INFORMATION, descriptor with an information descriptor', () => {
      const fixed = Buffer.from([0xf0, 0, 0x05, 0, 0, 0x10, 0, 0, 10, 0, 0, 0, 0x21, 0, 0, 0, 0, 0]);
      assert.deepStrictEqual(parseSense(fixed), { responseCode: 0x70, key: 5, asc: 0x21, ascq: 0, information: 0x1000n });
      const desc = Buffer.from([0x72, 0x03, 0x11, 0x00, 0, 0, 0, 12, 0x00, 0x0a, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0x42]);
      assert.deepStrictEqual(parseSense(desc), { responseCode: 0x72, key: 3, asc: 0x11, ascq: 0, information: 0x42n });
      assert.equal(parseSense(Buffer.from([0x00, 0x00])), null);
    });
  });

  describe('against the project target', function () {
    this.timeout(30000);
    let rig: Rig;
    beforeEach(async () => { rig = await startRig(); });
    afterEach(async () => {
      await rig.stop();
      assert.deepStrictEqual(rig.internalErrors(), [], 'the SCSI target met no internal error');
    });

    describe('login and negotiation', () => {
      it('discovery session: SendTargets lists every target at the bound portal', async () => {
        const d = await rig.open({}, { sessionType: 'Discovery' });
        const targets = await d.sendTargets();
        assert.deepStrictEqual(targets.map((t) => t.name).sort(), Object.values(IQN).sort());
        for (const t of targets) assert.deepStrictEqual(t.addresses, [{ host: rig.host, port: rig.port, tpgt: 1 }]);
        const out = await d.logout();
        assert.equal(out.response, 0);
      });

      it('a discovery session cannot carry SCSI commands', async () => {
        const d = await rig.open({}, { sessionType: 'Discovery' });
        const r = d.command({ lun: 0, cdb: Buffer.alloc(6) }).catch((e: Error) => e);
        const closed = d.closed();
        const e = await r;
        // RFC 7143 13.3: only text, logout and NOP in discovery: rejected, or the connection dropped.
        assert.ok(e instanceof InitiatorError && (e.code === 'REJECTED' || e.code === 'CONNECTION_CLOSED'), String(e));
        if (e instanceof InitiatorError && e.code === 'CONNECTION_CLOSED') await closed;
      });

      it('normal session with CRC32C digests offered alone: both digests in force', async () => {
        const ini = await rig.open({ proposal: { headerDigest: ['CRC32C'], dataDigest: ['CRC32C'] } });
        const p = ini.session.params!;
        assert.equal(p.headerDigest, true);
        assert.equal(p.dataDigest, true);
        assert.ok(ini.session.tsih !== 0);
        await settle(ini);
        const data = pattern(64 * 1024, 1);
        await ini.write16(0, 10, data);
        assert.deepStrictEqual(await ini.read16(0, 10, 128), data);
      });

      it('digests None offered alone: none in force', async () => {
        const ini = await rig.open({ proposal: { headerDigest: ['None'], dataDigest: ['None'] } });
        assert.equal(ini.session.params!.headerDigest, false);
        assert.equal(ini.session.params!.dataDigest, false);
      });

      it('the min/max rules hold for what the target answered', async () => {
        const ini = await rig.open({ proposal: { maxBurstLength: 16384, firstBurstLength: 8192, defaultTime2Wait: 0, defaultTime2Retain: 0 } });
        const p = ini.session.params!;
        assert.ok(p.maxBurstLength <= 16384);
        assert.ok(p.firstBurstLength <= 8192);
        assert.ok(p.firstBurstLength <= p.maxBurstLength);
        assert.ok(p.targetMaxRecvDataSegmentLength >= 512);
      });

      it('CHAP one-way with the right secret logs in', async () => {
        const ini = await rig.open({ chap: { user: CHAP.user, secret: CHAP.secret } }, { targetName: IQN.chap });
        await settle(ini);
        await ini.testUnitReady(0);
      });

      it('CHAP with a wrong secret -> authentication failure (status 0201)', async () => {
        const e = await rejectsWith(rig.open({ chap: { user: CHAP.user, secret: 'wrong-secret-000' } }, { targetName: IQN.chap }), 'AUTHENTICATION');
        assert.equal(e.detail.statusClass, 2);
        assert.equal(e.detail.statusDetail, 1);
      });

      it('a CHAP target refuses an initiator without credentials', async () => {
        const e = await rig.open({}, { targetName: IQN.chap }).catch((x: unknown) => x);
        assert.ok(e instanceof InitiatorError && (e.code === 'AUTHENTICATION' || e.code === 'LOGIN_FAILED'), String(e));
      });

      it('mutual CHAP: the target proves itself', async () => {
        const ini = await rig.open({ chap: CHAP }, { targetName: IQN.mutual });
        await settle(ini);
        await ini.testUnitReady(0);
      });

      it('mutual CHAP: a target answering with another secret is refused by the initiator', async () => {
        await rejectsWith(rig.open({ chap: { ...CHAP, mutualSecret: 'not-the-target-secret' } }, { targetName: IQN.mutual }), 'AUTHENTICATION');
      });

      it('mutual CHAP: a target naming itself otherwise is refused', async () => {
        await rejectsWith(rig.open({ chap: { ...CHAP, mutualUser: 'someone-else' } }, { targetName: IQN.mutual }), 'AUTHENTICATION');
      });

      it('a second login with the same ISID and TSIH 0 reinstates the session: the old connection is closed (RFC 7143 6.3.5)', async () => {
        const isid = Buffer.from([0x80, 0x12, 0x34, 0x56, 0, 0]);
        const old = await rig.open({ isid });
        const oldClosed = old.closed();
        const fresh = await rig.open({ isid });
        const e = await Promise.race([oldClosed, new Promise((r) => setTimeout(() => r('still open'), 3000))]);
        assert.ok(e instanceof InitiatorError && e.code === 'CONNECTION_CLOSED', String(e));
        await fresh.ping();
      });

      it('an unknown target name -> login failure, not found (0203)', async () => {
        const e = await rejectsWith(rig.open({}, { targetName: 'iqn.2026-11.dev.dkc-emu:nope' }), 'LOGIN_FAILED');
        assert.equal(e.detail.statusClass, 2);
        assert.equal(e.detail.statusDetail, 3);
      });
    });

    describe('SCSI commands', () => {
      it('the first command sees the power-on unit attention as CHECK CONDITION with sense', async () => {
        const ini = await rig.open();
        const r = await ini.command({ lun: 0, cdb: Buffer.alloc(6) });
        assert.equal(r.status, 2);
        assert.equal(r.senseInfo?.key, 6);
        assert.equal(r.senseInfo?.asc, 0x29);
        assert.equal((await ini.command({ lun: 0, cdb: Buffer.alloc(6) })).status, 0);
      });

      it('typed layer: INQUIRY, READ CAPACITY(16), REPORT LUNS', async () => {
        const ini = await rig.open();
        await settle(ini);
        const inq = await ini.inquiry(0);
        assert.equal(inq.peripheralDeviceType, 0);
        assert.equal(inq.peripheralQualifier, 0);
        const cap = await ini.readCapacity16(0);
        assert.equal(cap.blockLength, 512);
        assert.equal(cap.blocks, BigInt(rig.volumes[0].blockCount));
        await settle(ini, 1);
        assert.equal((await ini.readCapacity16(1)).blockLength, 4096);
        assert.deepStrictEqual(await ini.reportLuns(), [0, 1]);
      });

      it('READ beyond the end of the LU -> ScsiStatusError with LBA OUT OF RANGE', async () => {
        const ini = await rig.open();
        await settle(ini);
        const last = BigInt(rig.volumes[0].blockCount);
        const e = await ini.read16(0, last, 1).catch((x: unknown) => x);
        assert.ok(e instanceof ScsiStatusError);
        assert.deepStrictEqual([e.result.status, e.result.senseInfo?.key, e.result.senseInfo?.asc], [2, 5, 0x21]);
      });

      it('write then read back 1 MiB with FUA: immediate data, unsolicited Data-Out and R2Ts', async () => {
        const ini = await rig.open({ proposal: { maxBurstLength: 65536, firstBurstLength: 16384 } });
        await settle(ini);
        const data = pattern(1 << 20, 2);
        const w = await ini.write16(0, 0, data, { fua: true });
        assert.ok(w.r2ts >= Math.floor(((1 << 20) - ini.session.params!.firstBurstLength) / ini.session.params!.maxBurstLength), `r2ts ${w.r2ts}`);
        assert.deepStrictEqual(await ini.read16(0, 0, 2048), data);
        assert.ok(rig.volumes[0].stats.fuaWrites >= 1);
      });

      it('typed layer: a transfer over MAXIMUM TRANSFER LENGTH (Block Limits VPD) is split and still round-trips', async () => {
        await rig.stop();
        rig = await startRig({ blockCount: 65536 });
        const ini = await rig.open();
        await settle(ini);
        const limits = await ini.blockLimits(0);
        await ini.readCapacity16(0);
        assert.ok(limits.maximumTransferLength > 0, 'the project target states a limit');
        const blocks = limits.maximumTransferLength * 2 + 3;
        assert.ok(blocks <= rig.volumes[0].blockCount, `${blocks} blocks fit the LU`);
        const data = pattern(blocks * 512, 8);
        const commands: number[] = [];
        ini.on('pdu', (p: Pdu) => { if (p.opcode === Opcode.ScsiResponse || (p.opcode === Opcode.DataIn && p.hasStatus)) commands.push(p.itt); });
        await ini.write16(0, 0, data);
        assert.deepStrictEqual(await ini.read16(0, 0, blocks), data);
        const expected = 2 * Math.ceil(blocks / limits.maximumTransferLength);
        assert.equal(commands.length, expected, 'one command per piece, each way');
      });

      for (const initialR2T of [false, true]) {
        for (const immediateData of [false, true]) {
          it(`InitialR2T=${initialR2T ? 'Yes' : 'No'} ImmediateData=${immediateData ? 'Yes' : 'No'}: unsolicited data up to FirstBurstLength, R2Ts for the rest`, async () => {
            const ini = await rig.open({ proposal: { initialR2T, immediateData, firstBurstLength: 8192, maxBurstLength: 16384, maxRecvDataSegmentLength: 4096 } });
            await settle(ini);
            const p = ini.session.params!;
            assert.equal(p.initialR2T, initialR2T, 'InitialR2T is OR: the project target keeps ours');
            assert.equal(p.immediateData, immediateData, 'ImmediateData is AND: the project target keeps ours');
            for (const blocks of [1, 4, 16, 17, 64, 100]) {
              const len = blocks * 512;
              const data = pattern(len, blocks);
              const r = await ini.write16(0, 2000 + blocks, data);
              const immediate = immediateData ? Math.min(p.firstBurstLength, len, p.targetMaxRecvDataSegmentLength) : 0;
              const unsolicited = initialR2T ? immediate : Math.min(p.firstBurstLength, len);
              const least = Math.ceil((len - unsolicited) / p.maxBurstLength);
              assert.ok(r.r2ts >= least, `${len} bytes: ${r.r2ts} R2Ts, at least ${least}`);
              if (unsolicited === len) assert.equal(r.r2ts, 0, `${len} bytes all unsolicited: no R2T`);
              assert.deepStrictEqual(await ini.read16(0, 2000 + blocks, blocks), data);
            }
          });
        }
      }

      it('InitialR2T=Yes and ImmediateData=No: every byte goes by R2T', async () => {
        const ini = await rig.open({ proposal: { initialR2T: true, immediateData: false, maxBurstLength: 32768 } });
        assert.equal(ini.session.params!.initialR2T, true);
        assert.equal(ini.session.params!.immediateData, false);
        await settle(ini);
        const data = pattern(256 * 1024, 3);
        const w = await ini.write16(0, 100, data);
        assert.ok(w.r2ts >= 8, `r2ts ${w.r2ts}`);
        assert.deepStrictEqual(await ini.read16(0, 100, 512), data);
      });

      it('a small MaxRecvDataSegmentLength: Data-In arrives in pieces no larger, reassembled in order', async () => {
        const ini = await rig.open({ proposal: { maxRecvDataSegmentLength: 512 } });
        await settle(ini);
        const data = pattern(32 * 1024, 4);
        await ini.write16(0, 300, data);
        const sizes: number[] = [];
        ini.on('pdu', (p: Pdu) => { if (p.opcode === Opcode.DataIn) sizes.push(p.data.length); });
        assert.deepStrictEqual(await ini.read16(0, 300, 64), data);
        assert.ok(sizes.length >= 64, `${sizes.length} Data-In PDUs`);
        assert.ok(sizes.every((n) => n <= 512));
      });

      it('residual underflow: INQUIRY shorter than the allocation length', async () => {
        const ini = await rig.open();
        await settle(ini);
        const r = await ini.command({ lun: 0, cdb: Buffer.from([0x12, 0, 0, 0x01, 0x00, 0]), expectedLength: 256 });
        assert.equal(r.status, 0);
        assert.equal(r.residualUnderflow, true);
        assert.equal(r.residualCount, 256 - r.data.length);
        assert.ok(r.data.length >= 36 && r.data.length < 256);
      });

      it('residual overflow: READ of 2 blocks with an EDTL of one block', async () => {
        const ini = await rig.open();
        await settle(ini);
        await ini.write16(0, 50, pattern(1024, 5));
        const r = await ini.command({ lun: 0, cdb: Buffer.from([0x88, 0, 0, 0, 0, 0, 0, 0, 0, 50, 0, 0, 0, 2, 0, 0]), expectedLength: 512 });
        assert.equal(r.residualOverflow, true);
        assert.equal(r.residualCount, 512);
        assert.deepStrictEqual(r.data, pattern(1024, 5).subarray(0, 512));
      });

      it('command window: 400 commands at once, never sent beyond MaxCmdSN, all complete', async () => {
        const ini = await rig.open();
        await settle(ini);
        const data = pattern(512 * 400, 6);
        await ini.write16(0, 1000, data);
        let beyond = 0;
        ini.on('pdu', () => {
          const s = ini.session;
          // CmdSN is the next to send; it may be at most MaxCmdSN + 1.
          if (((s.cmdSn - s.maxCmdSn - 1) | 0) > 0) beyond++;
        });
        // command() numbers and sends synchronously, so the queue is visible at once.
        const reads = Array.from({ length: 400 }, (_, i) => ini.command({ lun: 0, cdb: read16Cdb(1000 + i, 1), expectedLength: 512 }).then((r) => r.data));
        const queued = ini.session.queued;
        const out = await Promise.all(reads);
        assert.ok(queued > 0, 'some commands waited for the window');
        assert.equal(beyond, 0);
        out.forEach((b, i) => assert.deepStrictEqual(b, data.subarray(i * 512, (i + 1) * 512)));
        assert.equal(ini.session.queued, 0);
      });

      it('a 32-byte CDB travels in an Extended CDB AHS: the target answers with a status, not a Reject', async () => {
        const ini = await rig.open();
        await settle(ini);
        const cdb = Buffer.alloc(32);
        cdb[0] = 0x7f; // VARIABLE LENGTH CDB
        cdb[7] = 24; // ADDITIONAL CDB LENGTH
        const r = await ini.command({ lun: 0, cdb });
        assert.equal(r.status, 2);
        assert.equal(r.senseInfo?.key, 5, 'ILLEGAL REQUEST');
      });

      it('NOP-Out ping echoes its data', async () => {
        const ini = await rig.open();
        const r = await ini.ping(Buffer.from('are you there?'));
        assert.deepStrictEqual(r.data, Buffer.from('are you there?'));
      });

      it('a command held by the device times out, is aborted, and the session goes on', async () => {
        const ini = await rig.open();
        await settle(ini);
        let release!: () => void;
        const held = new Promise<void>((r) => { release = r; });
        rig.volumes[0].hooks.beforeRead = () => held;
        await rejectsWith(ini.read16(0, 0, 1, { timeoutMs: 200 }), 'TIMEOUT');
        release();
        rig.volumes[0].hooks.beforeRead = undefined;
        await ini.ping();
        assert.equal((await ini.read16(0, 0, 1)).length, 512);
      });

      it('ABORT TASK on a command in flight: FUNCTION COMPLETE and the command fails ABORTED', async () => {
        const ini = await rig.open();
        await settle(ini);
        let release!: () => void;
        const held = new Promise<void>((r) => { release = r; });
        let entered!: () => void;
        const inDevice = new Promise<void>((r) => { entered = r; });
        rig.volumes[0].hooks.beforeRead = () => { entered(); return held; };
        const read = ini.read16(0, 7, 1);
        await inDevice;
        const [task] = ini.outstandingTasks();
        const tmf = ini.abortTask(task.itt);
        setTimeout(release, 50);
        assert.equal(await tmf, 0);
        await rejectsWith(read, 'ABORTED');
        rig.volumes[0].hooks.beforeRead = undefined;
        assert.equal((await ini.read16(0, 7, 1)).length, 512);
      });

      it('ABORT TASK for a tag never used -> TASK DOES NOT EXIST (or complete)', async () => {
        const ini = await rig.open();
        const r = await ini.taskManagement(1, { lun: 0, referencedTaskTag: 0x7777, refCmdSn: ini.numbers.cmdSn });
        assert.ok(r === 1 || r === 0, `response ${r}`);
      });

      it('LOGICAL UNIT RESET completes; another nexus then sees BUS DEVICE RESET (29h/03h)', async () => {
        const a = await rig.open();
        const b = await rig.open({ isid: Buffer.from([0x80, 0, 0, 0x42, 0, 1]) });
        await settle(a);
        await settle(b);
        assert.equal(await a.taskManagement(5, { lun: 0 }), 0);
        const r = await b.command({ lun: 0, cdb: Buffer.alloc(6) });
        assert.equal(r.status, 2);
        assert.deepStrictEqual([r.senseInfo?.key, r.senseInfo?.asc, r.senseInfo?.ascq], [6, 0x29, 0x03]);
        assert.equal((await b.command({ lun: 0, cdb: Buffer.alloc(6) })).status, 0, 'the unit attention is reported once');
      });

      it('logout closes the session; later commands are refused', async () => {
        const ini = await rig.open();
        const out = await ini.logout();
        assert.equal(out.response, 0);
        assert.equal(await ini.closed(), null);
        await rejectsWith(ini.command({ lun: 0, cdb: Buffer.alloc(6) }), 'WRONG_STATE');
      });
    });

    describe('raw traffic and the target speaking first', () => {
      it('an unknown opcode sent raw -> Reject (command not supported) carrying our header', async () => {
        const ini = await rig.open();
        const rejected = new Promise<Pdu>((r) => ini.once('reject', r));
        const bhs = new BhsBuilder(0x1c).itt(0x4242).u32(24, ini.numbers.cmdSn).u32(28, ini.numbers.expStatSn).build();
        ini.sendRaw(bhs);
        const rej = await rejected;
        assert.ok(rej.opcode === Opcode.Reject);
        assert.equal(rej.reason, RejectReason.CommandNotSupported);
        assert.equal(rej.data.length, 48);
        assert.equal(rej.data.readUInt32BE(16), 0x4242);
        await ini.ping();
      });

      it('sendPdu: a Data-Out for no task -> Reject (protocol error) carrying our header; the target stays up', async () => {
        const ini = await rig.open();
        const events: Pdu[] = [];
        ini.on('reject', (p: Pdu) => events.push(p));
        ini.sendPdu({
          opcode: Opcode.DataOut, immediate: false, final: true, ahs: Buffer.alloc(0), data: Buffer.alloc(512), itt: 0x31337,
          lun: encodeLun(0), ttt: 0x1234, expStatSn: ini.numbers.expStatSn, dataSn: 0, bufferOffset: 0,
        });
        // ERL 0 leaves the target free to go on or to drop the connection after the Reject.
        const outcome = await ini.ping(Buffer.alloc(0), 3000).then(() => 'alive', (e: InitiatorError) => e.code);
        assert.ok(outcome === 'alive' || outcome === 'CONNECTION_CLOSED', outcome);
        assert.equal(events.length, 1);
        assert.ok(events[0].opcode === Opcode.Reject);
        assert.equal(events[0].reason, RejectReason.ProtocolError);
        assert.equal(events[0].data.readUInt32BE(16), 0x31337, 'the Reject carries our header');
        const other = await rig.open();
        await other.ping();
      });

      it("the target's NOP-In pings are answered and the idle session stays up", async () => {
        await rig.stop();
        rig = await startRig({ nopIn: { intervalMs: 100, timeoutMs: 300 } });
        const ini = await rig.open();
        let pings = 0;
        ini.on('nop-in', () => pings++);
        await new Promise((r) => setTimeout(r, 1000));
        assert.ok(pings >= 2, `${pings} pings answered`);
        assert.equal(ini.connected, true);
        await ini.ping();
      });

      it('target stop: AsyncEvent 1 (logout requested) and the initiator logs out', async () => {
        const ini = await rig.open();
        const asyncs: Pdu[] = [];
        ini.on('async', (p: Pdu) => asyncs.push(p));
        const started = Date.now();
        // Bounded: a stop that waits for the initiator to go away first would never return.
        const stopped = await Promise.race([rig.server.stop().then(() => true), new Promise((r) => setTimeout(() => r(false), 8000))]);
        assert.equal(stopped, true, 'IscsiServer.stop() returned');
        assert.equal(asyncs.length, 1);
        assert.ok(asyncs[0].opcode === Opcode.AsyncMessage && asyncs[0].asyncEvent === 1);
        assert.equal(await ini.closed(), null, 'closed by a clean logout');
        assert.ok(Date.now() - started < 4000, 'the stop did not have to wait out its drain timeout');
      });
    });
  });

  describe('against a scripted peer (behaviour the project target does not show)', () => {
    it('Data-In with a DataSN gap fails the command (ERL 0), other commands go on', async () => {
      const { ScriptedTarget } = await import('../../../helpers/initiator-peer');
      const peer = await ScriptedTarget.start();
      try {
        const ini = new IscsiInitiator({ commandTimeoutMs: 5000 });
        await ini.connect(peer.host, peer.port);
        await ini.login({ targetName: 'iqn.peer' });
        peer.onCommand = (cmd, send) => {
          const base = { itt: cmd.itt, lun: cmd.lun };
          send(peer.dataIn({ ...base, dataSn: 0, bufferOffset: 0, data: Buffer.alloc(4, 1) }));
          send(peer.dataIn({ ...base, dataSn: 2, bufferOffset: 4, data: Buffer.alloc(4, 2), status: 0 }));
        };
        await rejectsWith(ini.command({ lun: 0, cdb: Buffer.from([0x28]), expectedLength: 8 }), 'PROTOCOL');
        peer.onCommand = (cmd, send) => send(peer.dataIn({ itt: cmd.itt, lun: cmd.lun, dataSn: 0, bufferOffset: 0, data: Buffer.alloc(8, 3), status: 0 }));
        const r = await ini.command({ lun: 0, cdb: Buffer.from([0x28]), expectedLength: 8 });
        assert.deepStrictEqual(r.data, Buffer.alloc(8, 3));
        ini.close();
      } finally {
        await peer.stop();
      }
    });

    it('MaxCmdSN: nothing beyond the window is sent; responses opening it release the queue in order', async () => {
      const { ScriptedTarget } = await import('../../../helpers/initiator-peer');
      const peer = await ScriptedTarget.start({ window: 2 });
      try {
        const ini = new IscsiInitiator({ commandTimeoutMs: 5000 });
        await ini.connect(peer.host, peer.port);
        await ini.login({ targetName: 'iqn.peer' });
        const seen: number[] = [];
        const held: Array<() => void> = [];
        peer.onCommand = (cmd, send) => {
          seen.push(cmd.cmdSn);
          held.push(() => send(peer.response(cmd.itt, 0)));
        };
        const all = Promise.all(Array.from({ length: 5 }, () => ini.command({ lun: 0, cdb: Buffer.alloc(6) })));
        await new Promise((r) => setTimeout(r, 100));
        assert.equal(seen.length, 2, 'only the window is sent');
        assert.equal(ini.session.queued, 3);
        peer.window = 10;
        peer.onCommand = (cmd, send) => {
          seen.push(cmd.cmdSn);
          send(peer.response(cmd.itt, 0));
        };
        held.splice(0).forEach((f) => f());
        await all;
        assert.equal(seen.length, 5);
        assert.deepStrictEqual(seen, [...seen].sort((a, b) => a - b), 'CmdSN in send order');
        ini.close();
      } finally {
        await peer.stop();
      }
    });

    it('a 32-byte CDB: 16 bytes in the BHS, 16 in an Extended CDB AHS (RFC 7143 11.2.2)', async () => {
      const { ScriptedTarget } = await import('../../../helpers/initiator-peer');
      const peer = await ScriptedTarget.start();
      try {
        const ini = new IscsiInitiator({ commandTimeoutMs: 5000 });
        await ini.connect(peer.host, peer.port);
        await ini.login({ targetName: 'iqn.peer' });
        const cdb = Buffer.from(Array.from({ length: 32 }, (_, i) => (i === 0 ? 0x7f : i)));
        let seen: { cdb: Buffer; ahs: Buffer } | null = null;
        peer.onCommand = (cmd, send) => {
          seen = { cdb: cmd.cdb, ahs: cmd.ahs };
          send(peer.response(cmd.itt, 0));
        };
        await ini.command({ lun: 0, cdb });
        assert.ok(seen !== null);
        const s = seen as { cdb: Buffer; ahs: Buffer };
        assert.deepStrictEqual(s.cdb, cdb.subarray(0, 16));
        // AHSLength 17 (16 CDB bytes + the reserved byte), AHSType 1, reserved, bytes 16..31, padding.
        assert.deepStrictEqual(s.ahs, Buffer.concat([Buffer.from([0, 17, 1, 0]), cdb.subarray(16)]));
        ini.close();
      } finally {
        await peer.stop();
      }
    });

    it('IscsiInitiator.open follows a login redirection (0101) to the new TargetAddress', async () => {
      const { ScriptedTarget } = await import('../../../helpers/initiator-peer');
      const real = await ScriptedTarget.start();
      const mover = await ScriptedTarget.start({ redirectTo: `${real.host}:${real.port},1` });
      try {
        const ini = await IscsiInitiator.open(mover.host, mover.port, { targetName: 'iqn.peer' }, { commandTimeoutMs: 5000 });
        assert.equal(mover.logins, 1);
        assert.ok(real.logins >= 1);
        await ini.ping();
        ini.close();
      } finally {
        await mover.stop();
        await real.stop();
      }
    });

    it('IscsiInitiator.open gives up after redirectsMax redirections', async () => {
      const { ScriptedTarget } = await import('../../../helpers/initiator-peer');
      const { redirectsMax } = await import('../../../../target/iscsi/initiator/initiator');
      const peers: Array<Awaited<ReturnType<typeof ScriptedTarget.start>>> = [];
      try {
        // A chain longer than the bound: each peer redirects to the next one.
        let next = await ScriptedTarget.start();
        peers.push(next);
        for (let i = 0; i <= redirectsMax; i++) {
          next = await ScriptedTarget.start({ redirectTo: `${next.host}:${next.port},1` });
          peers.push(next);
        }
        const e = await IscsiInitiator.open(next.host, next.port, { targetName: 'iqn.peer' }).catch((x: unknown) => x);
        assert.ok(e instanceof InitiatorError && e.code === 'LOGIN_FAILED' && e.detail.statusClass === 1, String(e));
        assert.equal(peers[0].logins, 0, 'the end of the chain was never reached');
      } finally {
        for (const p of peers) await p.stop();
      }
    });

    it('Text Response with F=0: the initiator continues with the TTT and joins the pieces (RFC 7143 11.11.2)', async () => {
      const { ScriptedTarget } = await import('../../../helpers/initiator-peer');
      const peer = await ScriptedTarget.start();
      try {
        const ini = new IscsiInitiator({ commandTimeoutMs: 5000 });
        await ini.connect(peer.host, peer.port);
        await ini.login({ targetName: 'iqn.peer' });
        const asked: Array<{ ttt: number; data: number; itt: number }> = [];
        peer.onText = (t, send) => {
          asked.push({ ttt: t.ttt, data: t.data.length, itt: t.itt });
          if (asked.length === 1) send(peer.text(t.itt, [['TargetName', 'iqn.a'], ['TargetAddress', '10.0.0.1:3260,1']], { ttt: 0x88 }));
          else send(peer.text(t.itt, [['TargetName', 'iqn.b']], null));
        };
        const targets = await ini.sendTargets();
        assert.deepStrictEqual(targets.map((t) => t.name), ['iqn.a', 'iqn.b']);
        assert.equal(asked.length, 2);
        assert.deepStrictEqual([asked[1].ttt, asked[1].data, asked[1].itt], [0x88, 0, asked[0].itt], 'empty request with the TTT, same ITT');
        ini.close();
      } finally {
        await peer.stop();
      }
    });

    it('a Reject naming an outstanding command fails that command (REJECTED) and only that one', async () => {
      const { ScriptedTarget } = await import('../../../helpers/initiator-peer');
      const { encodeBhs } = await import('../../../../target/iscsi/pdu');
      const peer = await ScriptedTarget.start();
      try {
        const ini = new IscsiInitiator({ commandTimeoutMs: 5000 });
        await ini.connect(peer.host, peer.port);
        await ini.login({ targetName: 'iqn.peer' });
        let first = true;
        peer.onCommand = (cmd, send) => {
          if (first) send(peer.reject(encodeBhs(cmd), RejectReason.InvalidPduField));
          else send(peer.response(cmd.itt, 0));
          first = false;
        };
        const e = await rejectsWith(ini.command({ lun: 0, cdb: Buffer.alloc(6) }), 'REJECTED');
        assert.equal(e.detail.reason, RejectReason.InvalidPduField);
        assert.equal((await ini.command({ lun: 0, cdb: Buffer.alloc(6) })).status, 0);
        ini.close();
      } finally {
        await peer.stop();
      }
    });

    it("the target's ping (NOP-In, TTT set) is answered with its TTT and data; AsyncEvent 0 is reported; AsyncEvent 2 drops", async () => {
      const { ScriptedTarget } = await import('../../../helpers/initiator-peer');
      const peer = await ScriptedTarget.start();
      try {
        const ini = new IscsiInitiator({ commandTimeoutMs: 5000 });
        await ini.connect(peer.host, peer.port);
        await ini.login({ targetName: 'iqn.peer' });
        const asyncs: number[] = [];
        ini.on('async', (p: Pdu) => { if (p.opcode === Opcode.AsyncMessage) asyncs.push(p.asyncEvent); });
        peer.send(peer.ping(0xabc, Buffer.from('target ping')));
        peer.send(peer.asyncMessage(0, Buffer.from([0, 18, 0x70, 0, 6, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x3f, 0x0e, 0, 0, 0, 0])));
        await ini.ping();
        assert.equal(peer.pingAnswers.length, 1);
        assert.deepStrictEqual([peer.pingAnswers[0].ttt, peer.pingAnswers[0].data.toString(), peer.pingAnswers[0].immediate], [0xabc, 'target ping', true]);
        assert.deepStrictEqual(asyncs, [0]);
        const closed = ini.closed();
        peer.send(peer.asyncMessage(2));
        const e = await closed;
        assert.ok(e instanceof InitiatorError && e.code === 'CONNECTION_CLOSED');
        assert.deepStrictEqual(asyncs, [0, 2]);
      } finally {
        await peer.stop();
      }
    });

    it('R2T beyond the command data fails the command; R2T within it gets exact Data-Out', async () => {
      const { ScriptedTarget } = await import('../../../helpers/initiator-peer');
      const peer = await ScriptedTarget.start({ maxRecvDataSegmentLength: 1024, initialR2T: true, immediateData: false });
      try {
        const ini = new IscsiInitiator({ commandTimeoutMs: 5000 });
        await ini.connect(peer.host, peer.port);
        await ini.login({ targetName: 'iqn.peer' });
        const got: Array<{ ttt: number; offset: number; length: number; dataSn: number; final: boolean }> = [];
        peer.onDataOut = (d) => {
          got.push({ ttt: d.ttt, offset: d.bufferOffset, length: d.data.length, dataSn: d.dataSn, final: d.final });
          if (d.final && d.bufferOffset + d.data.length === 3000) peer.send(peer.response(d.itt, 0));
        };
        peer.onCommand = (cmd, send) => {
          send(peer.r2t(cmd.itt, 0x51, 0, 1000, 0));
          send(peer.r2t(cmd.itt, 0x52, 1000, 2000, 1));
        };
        const r = await ini.command({ lun: 0, cdb: Buffer.from([0x2a]), dataOut: Buffer.alloc(3000, 9) });
        assert.equal(r.r2ts, 2);
        assert.deepStrictEqual(got, [
          { ttt: 0x51, offset: 0, length: 1000, dataSn: 0, final: true },
          { ttt: 0x52, offset: 1000, length: 1024, dataSn: 0, final: false },
          { ttt: 0x52, offset: 2024, length: 976, dataSn: 1, final: true },
        ]);
        peer.onCommand = (cmd, send) => send(peer.r2t(cmd.itt, 0x53, 2000, 2000, 0));
        await rejectsWith(ini.command({ lun: 0, cdb: Buffer.from([0x2a]), dataOut: Buffer.alloc(3000) }), 'PROTOCOL');
        ini.close();
      } finally {
        await peer.stop();
      }
    });
  });
});

// Keep the type imports used (R2t, DataIn appear in the scripted peer's signatures).
export type { R2t, DataIn };
