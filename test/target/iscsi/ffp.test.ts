import assert from 'assert';
import { TaskAttribute } from '../../../target/scsi/types';
import { BLOCK } from './fake-device';
import { INITIATOR, IQN, Op, RawClient, RawPdu, read10, startServer, Started, write10 } from './harness';

/** Reads every PDU of one command up to its status (Data-In with S, or SCSI Response). */
async function untilStatus(c: RawClient): Promise<RawPdu[]> {
  const out: RawPdu[] = [];
  for (;;) {
    const p = await c.expect();
    out.push(p);
    if (p.opcode === Op.SCSI_RESPONSE || (p.opcode === Op.DATA_IN && (p.flags & 0x01) !== 0)) return out;
  }
}

describe('iSCSI full feature phase', () => {
  let s: Started;
  let c: RawClient;
  const open = async (keys: Record<string, string> = {}, opts: Parameters<typeof startServer>[1] = {}, target: Parameters<typeof startServer>[0] = {}) => {
    s = await startServer(target, opts);
    c = await RawClient.connect(s.port);
    await c.loginNormal(keys);
  };
  afterEach(async () => {
    c?.close();
    await s?.server.stop();
  });

  describe('command window (RFC 7143 3.2.2.1)', () => {
    it('a command with CmdSN beyond MaxCmdSN is dropped silently; the next in-window one works', async () => {
      await open();
      c.scsi({ cdb: [0], edtl: 0 });
      const first = await c.expect();
      c.scsi({ cdb: [0], edtl: 0, cmdSn: (first.maxCmdSn + 1) >>> 0 });
      assert.strictEqual(await c.next(300), undefined);
      c.scsi({ cdb: [0], edtl: 0 });
      const r = await c.expect();
      assert.strictEqual(r.opcode, Op.SCSI_RESPONSE);
    });

    it('a duplicate (already received) CmdSN is dropped silently', async () => {
      await open();
      const sn = c.cmdSn;
      c.scsi({ cdb: [0], edtl: 0 });
      await c.expect();
      c.scsi({ cdb: [0], edtl: 0, cmdSn: sn });
      assert.strictEqual(await c.next(300), undefined);
    });

    it('commands are delivered in CmdSN order even when they arrive out of order', async () => {
      await open();
      const sn = c.cmdSn;
      c.scsi({ cdb: [0x12, 0, 0, 0, 10, 0], read: true, edtl: 10, cmdSn: sn + 1, itt: 0x51 });
      c.scsi({ cdb: [0], edtl: 0, cmdSn: sn, itt: 0x50 });
      const a = await c.expect();
      const b = await c.expect();
      assert.deepStrictEqual([a.itt, b.itt], [0x50, 0x51]);
      assert.deepStrictEqual(s.device.commands.map((x) => x.taskTag), [0x50, 0x51]);
      assert.strictEqual(b.expCmdSn, sn + 2);
    });

    it('ATTR maps to SAM task attributes (RFC 7143 11.3.1.2)', async () => {
      await open();
      for (const attr of [0, 1, 2, 3, 4]) {
        c.scsi({ cdb: [0], edtl: 0, attr });
        await c.expect();
      }
      assert.deepStrictEqual(s.device.commands.map((x) => x.attribute),
        [TaskAttribute.Simple, TaskAttribute.Simple, TaskAttribute.Ordered, TaskAttribute.HeadOfQueue, TaskAttribute.Aca]);
    });

    it('immediate commands do not advance ExpCmdSN', async () => {
      await open();
      const sn = c.cmdSn;
      c.scsi({ cdb: [0], edtl: 0, immediate: true });
      const r = await c.expect();
      assert.strictEqual(r.expCmdSn, sn);
    });

    it('the window is cmdWindowMax wide', async () => {
      await open();
      c.scsi({ cdb: [0], edtl: 0 });
      const r = await c.expect();
      assert.strictEqual((r.maxCmdSn - r.expCmdSn + 1) >>> 0, 128);
    });
  });

  describe('Data-In (RFC 7143 11.7)', () => {
    it('split at the initiator MaxRecvDataSegmentLength, F at MaxBurstLength, status in the last PDU', async () => {
      await open({ MaxRecvDataSegmentLength: '1024', MaxBurstLength: '2048' });
      const itt = c.scsi({ cdb: read10(0, 10), read: true, edtl: 10 * BLOCK });
      const pdus = await untilStatus(c);
      assert.strictEqual(pdus.length, 5);
      pdus.forEach((p, i) => {
        assert.strictEqual(p.opcode, Op.DATA_IN);
        assert.strictEqual(p.itt, itt);
        assert.strictEqual(p.data.length, 1024);
        assert.strictEqual(p.u32(36), i, 'DataSN');
        assert.strictEqual(p.u32(40), i * 1024, 'Buffer Offset');
        assert.strictEqual(p.flags & 0x80, i % 2 === 1 || i === 4 ? 0x80 : 0, `F bit of PDU ${i}`);
      });
      const last = pdus[4];
      assert.strictEqual(last.flags & 0x01, 1, 'S bit');
      assert.strictEqual(last.u8(3), 0, 'status GOOD');
      assert.strictEqual(last.data[1023], 9);
      assert.strictEqual(pdus[0].data[0], 0);
    });

    it('residual underflow: EDTL larger than the data', async () => {
      await open();
      c.scsi({ cdb: [0x12, 0, 0, 0, 36, 0], read: true, edtl: 100 });
      const [p] = await untilStatus(c);
      assert.strictEqual(p.data.length, 36);
      assert.strictEqual(p.flags & 0x02, 0x02, 'U bit');
      assert.strictEqual(p.u32(44), 64, 'residual count');
    });

    it('residual overflow: the command has more data than EDTL', async () => {
      await open();
      c.scsi({ cdb: read10(0, 2), read: true, edtl: BLOCK });
      const [p] = await untilStatus(c);
      assert.strictEqual(p.data.length, BLOCK);
      assert.strictEqual(p.flags & 0x04, 0x04, 'O bit');
      assert.strictEqual(p.u32(44), BLOCK);
    });

    it('CHECK CONDITION comes in a SCSI Response with SenseLength and sense data', async () => {
      await open();
      c.scsi({ cdb: [0xff, 0, 0, 0, 0, 0], edtl: 0 });
      const r = await c.expect();
      assert.strictEqual(r.opcode, Op.SCSI_RESPONSE);
      assert.strictEqual(r.u8(3), 0x02);
      assert.strictEqual(r.data.readUInt16BE(0), 18);
      assert.strictEqual(r.data[2 + 2] & 0x0f, 0x05);
    });
  });

  describe('writes: immediate data, unsolicited data, R2T (RFC 7143 4.2.5, 11.8)', () => {
    it('immediate data covering EDTL: no R2T', async () => {
      await open();
      c.scsi({ cdb: write10(5, 1), write: true, edtl: BLOCK, data: Buffer.alloc(BLOCK, 0xaa) });
      const r = await c.expect();
      assert.strictEqual(r.opcode, Op.SCSI_RESPONSE);
      assert.strictEqual(r.u8(3), 0);
      assert.deepStrictEqual(s.device.blocks.get(5), Buffer.alloc(BLOCK, 0xaa));
    });

    it('InitialR2T=Yes: R2Ts of at most MaxBurstLength, MaxOutstandingR2T at a time, then status', async () => {
      await open({ InitialR2T: 'Yes', ImmediateData: 'No', MaxBurstLength: '1024', MaxOutstandingR2T: '2' });
      const itt = c.scsi({ cdb: write10(10, 6), write: true, edtl: 6 * BLOCK });
      const r1 = await c.expect();
      const r2 = await c.expect();
      assert.strictEqual(await c.next(200), undefined, 'no third R2T while two are outstanding');
      for (const [i, r] of [r1, r2].entries()) {
        assert.strictEqual(r.opcode, Op.R2T);
        assert.strictEqual(r.itt, itt);
        assert.strictEqual(r.u32(36), i, 'R2TSN');
        assert.strictEqual(r.u32(40), i * 1024, 'Buffer Offset');
        assert.strictEqual(r.u32(44), 1024, 'Desired Data Transfer Length');
      }
      c.dataOut({ itt, ttt: r1.u32(20), dataSn: 0, offset: 0, data: Buffer.alloc(512, 1), final: false });
      c.dataOut({ itt, ttt: r1.u32(20), dataSn: 1, offset: 512, data: Buffer.alloc(512, 2), final: true });
      const r3 = await c.expect();
      assert.strictEqual(r3.opcode, Op.R2T);
      assert.strictEqual(r3.u32(40), 2048);
      c.dataOut({ itt, ttt: r2.u32(20), dataSn: 0, offset: 1024, data: Buffer.alloc(1024, 3), final: true });
      c.dataOut({ itt, ttt: r3.u32(20), dataSn: 0, offset: 2048, data: Buffer.alloc(1024, 4), final: true });
      const done = await c.expect();
      assert.strictEqual(done.opcode, Op.SCSI_RESPONSE);
      assert.strictEqual(done.u8(3), 0);
      assert.deepStrictEqual(s.device.blocks.get(11), Buffer.alloc(512, 2));
      assert.deepStrictEqual(s.device.blocks.get(15), Buffer.alloc(512, 4));
    });

    it('InitialR2T=No: unsolicited Data-Out up to FirstBurstLength, then R2T for the rest', async () => {
      await open({ InitialR2T: 'No', ImmediateData: 'Yes', FirstBurstLength: '1024', MaxBurstLength: '4096' });
      const itt = c.scsi({ cdb: write10(20, 4), write: true, edtl: 4 * BLOCK, final: false, data: Buffer.alloc(512, 7) });
      c.dataOut({ itt, ttt: 0xffffffff, dataSn: 0, offset: 512, data: Buffer.alloc(512, 8), final: true });
      const r = await c.expect();
      assert.strictEqual(r.opcode, Op.R2T);
      assert.strictEqual(r.u32(40), 1024);
      assert.strictEqual(r.u32(44), 1024);
      c.dataOut({ itt, ttt: r.u32(20), dataSn: 0, offset: 1024, data: Buffer.alloc(1024, 9), final: true });
      const done = await c.expect();
      assert.strictEqual(done.opcode, Op.SCSI_RESPONSE);
      assert.deepStrictEqual(s.device.blocks.get(21), Buffer.alloc(512, 8));
      assert.deepStrictEqual(s.device.blocks.get(23), Buffer.alloc(512, 9));
    });

    it('write residuals against what the command wanted (dataOutWanted)', async () => {
      await open();
      c.scsi({ cdb: write10(30, 1), write: true, edtl: 0 });
      const over = await c.expect();
      assert.strictEqual(over.flags & 0x04, 0x04, 'overflow');
      assert.strictEqual(over.u32(44), BLOCK);
      c.scsi({ cdb: write10(30, 1), write: true, edtl: 2 * BLOCK, data: Buffer.alloc(2 * BLOCK) });
      const under = await c.expect();
      assert.strictEqual(under.flags & 0x02, 0x02, 'underflow');
      assert.strictEqual(under.u32(44), BLOCK);
    });

    it('wrong DataSN -> Reject (protocol error) and CHECK CONDITION; the session goes on', async () => {
      await open({ InitialR2T: 'Yes', ImmediateData: 'No' });
      const itt = c.scsi({ cdb: write10(40, 2), write: true, edtl: 2 * BLOCK });
      const r = await c.expect();
      c.dataOut({ itt, ttt: r.u32(20), dataSn: 1, offset: 0, data: Buffer.alloc(512), final: false });
      c.dataOut({ itt, ttt: r.u32(20), dataSn: 0, offset: 512, data: Buffer.alloc(512), final: true });
      const rej = await c.expect();
      assert.strictEqual(rej.opcode, Op.REJECT);
      assert.strictEqual(rej.u8(2), 0x04);
      assert.strictEqual(rej.data.length, 48);
      assert.strictEqual(rej.data.readUInt32BE(16), itt, 'the rejected header comes back');
      const resp = await c.expect();
      assert.strictEqual(resp.opcode, Op.SCSI_RESPONSE);
      assert.strictEqual(resp.u8(3), 0x02);
      assert.strictEqual(resp.data[2 + 2] & 0x0f, 0x0b, 'ABORTED COMMAND');
      assert.strictEqual(await c.next(200), undefined, 'the late Data-Out is dropped quietly');
      c.scsi({ cdb: [0], edtl: 0 });
      assert.strictEqual((await c.expect()).u8(3), 0);
    });

    it('more data than EDTL -> Reject', async () => {
      await open({ InitialR2T: 'No', FirstBurstLength: '4096' });
      const itt = c.scsi({ cdb: write10(40, 1), write: true, edtl: BLOCK, final: false });
      c.dataOut({ itt, ttt: 0xffffffff, dataSn: 0, offset: 0, data: Buffer.alloc(1024), final: true });
      const rej = await c.expect();
      assert.strictEqual(rej.opcode, Op.REJECT);
      assert.strictEqual(rej.u8(2), 0x04);
    });

    it('immediate data with ImmediateData=No -> Reject', async () => {
      await open({ ImmediateData: 'No' });
      c.scsi({ cdb: write10(1, 1), write: true, edtl: BLOCK, data: Buffer.alloc(BLOCK) });
      const rej = await c.expect();
      assert.strictEqual(rej.opcode, Op.REJECT);
      assert.strictEqual(rej.u8(2), 0x04);
    });

    it('an EDTL beyond taskWriteBytesMax gets CHECK CONDITION without buffering', async () => {
      await open();
      c.scsi({ cdb: write10(0, 0xffff), write: true, edtl: 0x7fffffff });
      const r = await c.expect();
      assert.strictEqual(r.opcode, Op.SCSI_RESPONSE);
      assert.strictEqual(r.u8(3), 0x02);
      assert.strictEqual(s.device.commands.length, 0);
    });
  });

  describe('NOP (RFC 7143 11.18, 11.19)', () => {
    it('NOP-Out with an ITT -> NOP-In echoing the ping data', async () => {
      await open();
      c.nopOut({ itt: 0x77, data: Buffer.from('ping!') });
      const r = await c.expect();
      assert.strictEqual(r.opcode, Op.NOP_IN);
      assert.strictEqual(r.itt, 0x77);
      assert.strictEqual(r.u32(20), 0xffffffff);
      assert.deepStrictEqual(r.data, Buffer.from('ping!'));
    });

    it('the target pings an idle initiator; an answered ping keeps the connection', async () => {
      await open({}, { nopIn: { intervalMs: 100, timeoutMs: 300 } });
      const ping = await c.expect(1000);
      assert.strictEqual(ping.opcode, Op.NOP_IN);
      assert.strictEqual(ping.itt, 0xffffffff);
      assert.notStrictEqual(ping.u32(20), 0xffffffff);
      c.nopOut({ itt: 0xffffffff, ttt: ping.u32(20), immediate: true });
      const again = await c.expect(1000);
      assert.strictEqual(again.opcode, Op.NOP_IN);
      assert.strictEqual(c.closed, false);
    });

    it('an unanswered ping drops the connection after nopIn.timeoutMs', async () => {
      await open({}, { nopIn: { intervalMs: 50, timeoutMs: 200 } });
      assert.ok(await c.waitClosed(2000));
      assert.strictEqual(s.device.removed.length, 1, 'the nexus is removed with the session');
    });

    it("a target's own nopIn timeout overrides the server's", async () => {
      await open({}, { nopIn: { intervalMs: 50, timeoutMs: 100 } }, { nopIn: { intervalMs: 50, timeoutMs: 1000 } });
      assert.strictEqual((await c.expect(1000)).opcode, Op.NOP_IN);
      assert.strictEqual(await c.waitClosed(500), false, 'still open past the server-wide 100 ms timeout');
      assert.ok(await c.waitClosed(2000));
    });

    it('nopIn intervalMs 0: the target never pings', async () => {
      await open({}, { nopIn: { intervalMs: 50, timeoutMs: 100 } }, { nopIn: { intervalMs: 0 } });
      assert.strictEqual(await c.next(500), undefined);
      assert.strictEqual(c.closed, false);
    });
  });

  describe('digests (RFC 7143 13.1: CRC32C, least significant byte first)', () => {
    it('HeaderDigest and DataDigest CRC32C: checked on receive, sent on every PDU', async () => {
      await open({ HeaderDigest: 'CRC32C', DataDigest: 'CRC32C' });
      c.headerDigest = true;
      c.dataDigest = true;
      c.nopOut({ itt: 0x42, data: Buffer.from('digest me') });
      const r = await c.expect();
      assert.strictEqual(r.opcode, Op.NOP_IN);
      assert.deepStrictEqual(r.data, Buffer.from('digest me'));
      c.scsi({ cdb: read10(0, 3), read: true, edtl: 3 * BLOCK });
      const pdus = await untilStatus(c);
      assert.strictEqual(pdus[0].data.length, 3 * BLOCK);
      assert.strictEqual(c.digestErrors, 0);
    });

    it('a data digest error on a NOP-Out -> Reject (data digest error), the session goes on', async () => {
      await open({ HeaderDigest: 'None', DataDigest: 'CRC32C' });
      c.dataDigest = true;
      const bhs = Buffer.alloc(48);
      bhs[0] = 0x40; bhs[1] = 0x80; bhs[7] = 4; bhs.writeUInt32BE(0x43, 16); bhs.writeUInt32BE(0xffffffff, 20); bhs.writeUInt32BE(c.cmdSn, 24);
      c.socket.write(Buffer.concat([bhs, Buffer.from('abcd'), Buffer.alloc(4, 0xee)]));
      const r = await c.expect();
      assert.strictEqual(r.opcode, Op.REJECT);
      assert.strictEqual(r.u8(2), 0x02);
      c.nopOut({ itt: 0x44 });
      assert.strictEqual((await c.expect()).opcode, Op.NOP_IN);
    });
  });

  describe('Reject (RFC 7143 11.17)', () => {
    it('SNACK at ERL0 -> Reject protocol error', async () => {
      await open();
      const b = Buffer.alloc(48);
      b[0] = 0x10; b[1] = 0x80; b.writeUInt32BE(0xffffffff, 16);
      c.send(b);
      const r = await c.expect();
      assert.strictEqual(r.opcode, Op.REJECT);
      assert.strictEqual(r.u8(2), 0x04);
    });

    it('unknown opcode -> Reject command not supported; target opcode -> protocol error', async () => {
      await open();
      const b = Buffer.alloc(48);
      b[0] = 0x1c; b[1] = 0x80;
      c.send(b);
      const r = await c.expect();
      assert.strictEqual(r.u8(2), 0x05);
      const t = Buffer.alloc(48);
      t[0] = 0x21; t[1] = 0x80;
      c.send(t);
      assert.strictEqual((await c.expect()).u8(2), 0x04);
    });

    it('a Login Request in full feature phase -> Reject', async () => {
      await open();
      c.send(c.loginPdu({ csg: 1, nsg: 3, transit: true }));
      const r = await c.expect();
      assert.strictEqual(r.opcode, Op.REJECT);
    });
  });

  describe('task management (RFC 7143 11.5, 11.6)', () => {
    it('ABORT TASK of a running task -> no response for the task, function complete', async () => {
      await open();
      s.device.hold();
      const itt = c.scsi({ cdb: [0], edtl: 0 });
      const sn = c.cmdSn - 1;
      await new Promise((r) => setTimeout(r, 50));
      const t = c.tmf({ fn: 1, ref: itt, refCmdSn: sn });
      setTimeout(() => s.device.release(), 50);
      const r = await c.expect();
      assert.strictEqual(r.opcode, Op.TMF_RESPONSE);
      assert.strictEqual(r.itt, t);
      assert.strictEqual(r.u8(2), 0, 'function complete');
      assert.strictEqual(await c.next(200), undefined, 'no response for the aborted task');
    });

    it('ABORT TASK signals ScsiCommand.abort: a command that ends on it is answered at once, without status', async () => {
      await open();
      const itt = c.scsi({ cdb: [0x48, 0, 0, 0, 0, 0, 0, 0, 0, 0], edtl: 0 }); // never ends unless aborted
      const sn = c.cmdSn - 1;
      assert.strictEqual(await c.next(100), undefined, 'the command runs');
      assert.strictEqual(s.device.abortSeen.length, 0);
      const t = c.tmf({ fn: 1, ref: itt, refCmdSn: sn });
      const r = await c.expect();
      assert.strictEqual(r.opcode, Op.TMF_RESPONSE);
      assert.strictEqual(r.itt, t);
      assert.strictEqual(r.u8(2), 0, 'function complete');
      assert.strictEqual(s.device.abortSeen.length, 1);
      assert.strictEqual(await c.next(200), undefined, 'no response for the aborted task');
      c.scsi({ cdb: [0], edtl: 0 });
      assert.strictEqual((await c.expect()).opcode, Op.SCSI_RESPONSE, 'the session goes on');
    });

    for (const [fn, name] of [[2, 'ABORT TASK SET'], [4, 'CLEAR TASK SET'], [5, 'LOGICAL UNIT RESET'], [6, 'TARGET WARM RESET']] as const) {
      it(`${name} signals ScsiCommand.abort of the running tasks and answers without waiting for them to finish`, async () => {
        await open();
        c.scsi({ cdb: [0x48, 0, 0, 0, 0, 0, 0, 0, 0, 0], edtl: 0 });
        assert.strictEqual(await c.next(100), undefined);
        c.tmf({ fn, lun: 0 });
        const r = await c.expect();
        assert.strictEqual(r.opcode, Op.TMF_RESPONSE);
        assert.strictEqual(r.u8(2), 0);
        assert.strictEqual(s.device.abortSeen.length, 1);
        assert.strictEqual(await c.next(150), undefined, 'no response for the aborted task');
      });
    }

    it('a connection that goes away signals ScsiCommand.abort of its running tasks', async () => {
      await open();
      c.scsi({ cdb: [0x48, 0, 0, 0, 0, 0, 0, 0, 0, 0], edtl: 0 });
      assert.strictEqual(await c.next(100), undefined);
      c.close();
      for (let i = 0; i < 100 && s.device.abortSeen.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      assert.strictEqual(s.device.abortSeen.length, 1);
    });

    it('ABORT TASK of a finished task -> task does not exist', async () => {
      await open();
      const itt = c.scsi({ cdb: [0], edtl: 0 });
      await c.expect();
      c.tmf({ fn: 1, ref: itt, refCmdSn: c.cmdSn - 1 });
      assert.strictEqual((await c.expect()).u8(2), 1);
    });

    it('ABORT TASK of a command not yet received, RefCmdSN in the window -> function complete; the command is dropped when it comes', async () => {
      await open();
      const sn = c.cmdSn;
      c.cmdSn++; // the command with CmdSN sn is "in flight"; the immediate TMF carries sn + 1
      c.tmf({ fn: 1, ref: 0x999, refCmdSn: sn, immediate: true });
      const r = await c.expect();
      assert.strictEqual(r.u8(2), 0, 'function complete');
      c.scsi({ cdb: [0], edtl: 0, cmdSn: sn, itt: 0x999 });
      assert.strictEqual(await c.next(200), undefined, 'the late command is treated as received and dropped');
      c.scsi({ cdb: [0], edtl: 0 });
      assert.strictEqual((await c.expect()).opcode, Op.SCSI_RESPONSE, 'the window moved on');
    });

    it('ABORT TASK with RefCmdSN outside the window -> task does not exist', async () => {
      await open();
      c.tmf({ fn: 1, ref: 0x999, refCmdSn: (c.cmdSn + 1000) >>> 0, immediate: true });
      assert.strictEqual((await c.expect()).u8(2), 1);
    });

    it('a write waiting for Data-Out is aborted at once', async () => {
      await open({ InitialR2T: 'Yes', ImmediateData: 'No' });
      const itt = c.scsi({ cdb: write10(0, 1), write: true, edtl: BLOCK });
      const r2t = await c.expect();
      assert.strictEqual(r2t.opcode, Op.R2T);
      c.tmf({ fn: 1, ref: itt, refCmdSn: c.cmdSn - 1 });
      assert.strictEqual((await c.expect()).u8(2), 0);
      c.dataOut({ itt, ttt: r2t.u32(20), dataSn: 0, offset: 0, data: Buffer.alloc(BLOCK), final: true });
      assert.strictEqual(await c.next(200), undefined, 'late data for the aborted task is dropped');
      assert.strictEqual(s.device.commands.length, 0);
    });

    it('LOGICAL UNIT RESET reaches the device; unknown LUN -> LUN does not exist', async () => {
      await open();
      c.tmf({ fn: 5, lun: 0 });
      assert.strictEqual((await c.expect()).u8(2), 0);
      assert.deepStrictEqual(s.device.tmfs, [{ fn: 5, lun: 0 }]);
      c.tmf({ fn: 5, lun: 9 });
      assert.strictEqual((await c.expect()).u8(2), 2);
    });

    it('ABORT TASK SET aborts this session\'s tasks only; CLEAR TASK SET those of every session', async () => {
      await open();
      const other = await RawClient.connect(s.port);
      try {
        other.isid = Buffer.from([0x80, 0, 0, 0, 0, 0x99]);
        await other.loginNormal({}, 'iqn.2026-11.dev.dkc-emu:host2');
        s.device.hold();
        c.scsi({ cdb: [0], edtl: 0 });
        other.scsi({ cdb: [0], edtl: 0 });
        await new Promise((r) => setTimeout(r, 50));
        c.tmf({ fn: 2 });
        setTimeout(() => s.device.release(), 50);
        assert.strictEqual((await c.expect()).opcode, Op.TMF_RESPONSE);
        assert.strictEqual(await c.next(150), undefined, 'own task aborted');
        assert.strictEqual((await other.expect()).opcode, Op.SCSI_RESPONSE, 'the other session\'s task completes');
        s.device.hold();
        c.scsi({ cdb: [0], edtl: 0 });
        other.scsi({ cdb: [0], edtl: 0 });
        await new Promise((r) => setTimeout(r, 50));
        c.tmf({ fn: 4 });
        setTimeout(() => s.device.release(), 50);
        assert.strictEqual((await c.expect()).u8(2), 0);
        assert.strictEqual(await c.next(150), undefined);
        assert.strictEqual(await other.next(150), undefined, 'CLEAR TASK SET aborts the other session\'s task too');
      } finally {
        other.close();
      }
    });

    it('session reinstatement aborts the old session\'s tasks without responses', async () => {
      await open();
      s.device.hold();
      c.scsi({ cdb: [0], edtl: 0 });
      await new Promise((r) => setTimeout(r, 50));
      const again = await RawClient.connect(s.port);
      try {
        await again.loginNormal();
        s.device.release();
        assert.ok(await c.waitClosed());
        again.scsi({ cdb: [0], edtl: 0 });
        const r = await again.expect();
        assert.strictEqual(r.opcode, Op.SCSI_RESPONSE);
      } finally {
        again.close();
      }
    });

    it('CLEAR ACA -> not supported; TASK REASSIGN -> reassignment not supported', async () => {
      await open();
      c.tmf({ fn: 3 });
      assert.strictEqual((await c.expect()).u8(2), 5);
      c.tmf({ fn: 8, ref: 1 });
      assert.strictEqual((await c.expect()).u8(2), 4);
    });

    it('TARGET COLD RESET: response, then the connection is closed', async () => {
      await open();
      c.tmf({ fn: 7 });
      const r = await c.expect();
      assert.strictEqual(r.opcode, Op.TMF_RESPONSE);
      assert.strictEqual(r.u8(2), 0);
      assert.ok(await c.waitClosed());
    });
  });

  describe('text and discovery (RFC 7143 11.10, Appendix C)', () => {
    it('SendTargets=All in a discovery session lists allowed targets with every portal', async () => {
      s = await startServer();
      c = await RawClient.connect(s.port);
      const r = await c.login({ InitiatorName: INITIATOR, SessionType: 'Discovery' }, { csg: 1, nsg: 3, transit: true });
      assert.strictEqual(r.u16(36), 0);
      c.cmdSn = r.expCmdSn;
      c.textReq([['SendTargets', 'All']]);
      const t = await c.expect();
      assert.strictEqual(t.opcode, Op.TEXT_RESPONSE);
      assert.strictEqual(t.flags & 0x80, 0x80);
      assert.strictEqual(t.u32(20), 0xffffffff);
      assert.deepStrictEqual(t.textList, [['TargetName', IQN], ['TargetAddress', `127.0.0.1:${s.port},1`]]);
    });

    it('a target whose ACL excludes the initiator is not listed', async () => {
      s = await startServer({ acl: ['iqn.2026-11.dev.dkc-emu:someone-else'] });
      c = await RawClient.connect(s.port);
      const r = await c.login({ InitiatorName: INITIATOR, SessionType: 'Discovery' }, { csg: 1, nsg: 3, transit: true });
      c.cmdSn = r.expCmdSn;
      c.textReq([['SendTargets', 'All']]);
      assert.strictEqual((await c.expect()).data.length, 0);
    });

    it('a long answer is split at MaxRecvDataSegmentLength with C bit and TTT', async () => {
      s = await startServer({ alias: 'x', portals: Array.from({ length: 1 }, () => ({ host: '127.0.0.1', port: 0 })) });
      c = await RawClient.connect(s.port);
      const r = await c.login({ InitiatorName: INITIATOR, SessionType: 'Discovery', MaxRecvDataSegmentLength: '512' }, { csg: 1, nsg: 3, transit: true });
      c.cmdSn = r.expCmdSn;
      const keys: Array<[string, string]> = Array.from({ length: 40 }, (_, i) => [`X-unknown-key-${i}`, 'v']);
      const itt = c.textReq(keys);
      const first = await c.expect();
      assert.strictEqual(first.data.length, 512);
      assert.strictEqual(first.flags & 0xc0, 0x40, 'C=1 F=0');
      const ttt = first.u32(20);
      assert.notStrictEqual(ttt, 0xffffffff);
      const pieces = [first];
      for (let i = 0; i < 10 && (pieces[pieces.length - 1].flags & 0x80) === 0; i++) {
        c.textReq([], { itt, ttt });
        pieces.push(await c.expect());
      }
      const last = pieces[pieces.length - 1];
      assert.strictEqual(last.flags & 0xc0, 0x80, 'F=1 C=0 on the last piece');
      assert.strictEqual(last.u32(20), 0xffffffff);
      assert.ok(pieces.length >= 2);
      const all = Buffer.concat(pieces.map((p) => p.data)).toString().split('\0').filter((x) => x);
      assert.strictEqual(all.length, 40);
      assert.ok(all.every((kv) => kv.endsWith('=NotUnderstood')));
      // Continuations took CmdSNs: the window must have moved past them.
      c.nopOut({ itt: 0x71, immediate: false });
      assert.strictEqual((await c.expect()).opcode, Op.NOP_IN);
    });

    it('SendTargets in a normal session reports its own target', async () => {
      await open();
      c.textReq([['SendTargets', 'All']]);
      const t = await c.expect();
      assert.deepStrictEqual(t.textList[0], ['TargetName', IQN]);
    });
  });

  describe('logout (RFC 7143 11.14, 11.15)', () => {
    it('close the session: response 0, then the connection closes and the nexus goes', async () => {
      await open();
      const itt = c.logout(0);
      const r = await c.expect();
      assert.strictEqual(r.opcode, Op.LOGOUT_RESPONSE);
      assert.strictEqual(r.itt, itt);
      assert.strictEqual(r.u8(2), 0);
      assert.ok(await c.waitClosed());
      assert.strictEqual(s.device.removed.length, 1);
    });

    it('remove the connection for recovery -> response 2 (not supported at ERL0)', async () => {
      await open();
      c.logout(2);
      assert.strictEqual((await c.expect()).u8(2), 2);
    });

    it('close a connection that does not exist -> response 1 (CID not found)', async () => {
      await open();
      c.logout(1, 9);
      assert.strictEqual((await c.expect()).u8(2), 1);
    });
  });
});
