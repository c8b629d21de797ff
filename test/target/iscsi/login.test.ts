import assert from 'assert';
import { chapResponse } from '../../../target/iscsi/chap';
import { INITIATOR, IQN, Op, RawClient, RawPdu, startServer, Started } from './harness';

/** Status class and detail of a Login Response: bytes 36..37 (RFC 7143 11.13). */
function status(r: RawPdu): number {
  return r.u16(36);
}

const CHAP = { user: 'alice', secret: 'alice-secret-12', mutualUser: 'tgt', mutualSecret: 'target-secret-34' };

describe('iSCSI login (RFC 7143 6, 11.12, 11.13)', () => {
  let s: Started;
  let c: RawClient;
  const open = async (over: Parameters<typeof startServer>[0] = {}, opts: Parameters<typeof startServer>[1] = {}) => {
    s = await startServer(over, opts);
    c = await RawClient.connect(s.port);
  };
  afterEach(async () => {
    c?.close();
    await s?.server.stop();
  });

  describe('normal session', () => {
    it('one PDU to full feature phase: TSIH, TPGT, T bit, versions, window', async () => {
      await open({ alias: 'disk one' });
      c.cmdSn = 77;
      const r = await c.login({ InitiatorName: INITIATOR, TargetName: IQN, MaxRecvDataSegmentLength: '65536' }, { csg: 1, nsg: 3, transit: true });
      assert.strictEqual(r.opcode, Op.LOGIN_RESPONSE);
      assert.strictEqual(status(r), 0);
      assert.strictEqual(r.flags, 0x80 | (1 << 2) | 3, 'T=1 CSG=1 NSG=3');
      assert.strictEqual(r.u8(2), 0, 'VersionMax');
      assert.strictEqual(r.u8(3), 0, 'VersionActive');
      assert.notStrictEqual(r.u16(14), 0, 'TSIH');
      assert.strictEqual(r.expCmdSn, 77);
      assert.ok(r.maxCmdSn >= 77);
      const p = r.pairs;
      assert.strictEqual(p.get('TargetPortalGroupTag'), '1');
      assert.strictEqual(p.get('TargetAlias'), 'disk one');
      assert.ok(p.has('MaxRecvDataSegmentLength'));
      assert.strictEqual(s.device.added.length, 1);
      assert.strictEqual(s.device.added[0].initiatorPort, `${INITIATOR},i,0x801234560001`);
      assert.strictEqual(s.device.added[0].targetPort, `${IQN},t,0x0001`);
    });

    it('security then operational stage, StatSN increments per response', async () => {
      await open();
      const r1 = await c.login({ InitiatorName: INITIATOR, TargetName: IQN, AuthMethod: 'None' }, { csg: 0, nsg: 1, transit: true });
      assert.strictEqual(status(r1), 0);
      assert.strictEqual(r1.pairs.get('AuthMethod'), 'None');
      assert.strictEqual(r1.flags & 0x80, 0x80);
      const r2 = await c.login({ HeaderDigest: 'None', ImmediateData: 'Yes' }, { csg: 1, nsg: 3, transit: true });
      assert.strictEqual(status(r2), 0);
      assert.strictEqual(r2.statSn, r1.statSn + 1);
      assert.strictEqual(r2.pairs.get('ImmediateData'), 'Yes');
    });

    it('C bit: keys split over PDUs are answered with an empty response, then together', async () => {
      await open();
      const all = Buffer.from(`InitiatorName=${INITIATOR}\0TargetName=${IQN}\0`);
      c.send(c.loginPdu({ csg: 1, nsg: 3, transit: false, cont: true }), all.subarray(0, 10));
      const r1 = await c.expect();
      assert.strictEqual(status(r1), 0);
      assert.strictEqual(r1.data.length, 0);
      c.send(c.loginPdu({ csg: 1, nsg: 3, transit: true }), all.subarray(10));
      const r2 = await c.expect();
      assert.strictEqual(status(r2), 0);
      assert.notStrictEqual(r2.u16(14), 0);
    });

    it('a long response continues with the C bit; the initiator asks on with empty requests', async () => {
      await open();
      const keys = Array.from({ length: 450 }, (_, i) => `X-k-${String(i).padStart(4, '0')}=v\0`).join('');
      const all = Buffer.from(`InitiatorName=${INITIATOR}\0TargetName=${IQN}\0${keys}`);
      c.send(c.loginPdu({ csg: 1, nsg: 3, transit: false, cont: true }), all.subarray(0, 4000));
      assert.strictEqual((await c.expect()).data.length, 0);
      c.send(c.loginPdu({ csg: 1, nsg: 3, transit: true }), all.subarray(4000));
      const r1 = await c.expect();
      assert.strictEqual(status(r1), 0);
      assert.strictEqual(r1.data.length, 8192);
      assert.strictEqual(r1.flags & 0xc0, 0x40, 'C=1, T=0');
      c.send(c.loginPdu({ csg: 1, nsg: 3, transit: true }));
      const r2 = await c.expect();
      assert.strictEqual(r2.flags & 0xc0, 0x80, 'C=0, T=1');
      const text = Buffer.concat([r1.data, r2.data]).toString();
      assert.strictEqual(text.split('\0').filter((x) => x.endsWith('=NotUnderstood')).length, 450);
      assert.notStrictEqual(r2.u16(14), 0, 'TSIH on the final response');
    });

    it('a failure inside the target during login -> 0x0300 target error', async () => {
      await open();
      s.device.nexusAdded = () => { throw new Error('device refused'); };
      const r = await c.login({ InitiatorName: INITIATOR, TargetName: IQN }, { csg: 1, nsg: 3, transit: true });
      assert.strictEqual(status(r), 0x0300);
    });

    it('unknown target -> 0x0203', async () => {
      await open();
      const r = await c.login({ InitiatorName: INITIATOR, TargetName: 'iqn.2026-11.nowhere:x' }, { csg: 1, nsg: 3, transit: true });
      assert.strictEqual(status(r), 0x0203);
      assert.ok(await c.waitClosed());
    });

    it('missing InitiatorName or TargetName -> 0x0207', async () => {
      await open();
      assert.strictEqual(status(await c.login({ TargetName: IQN }, { csg: 1, nsg: 3, transit: true })), 0x0207);
      c.close();
      c = await RawClient.connect(s.port);
      assert.strictEqual(status(await c.login({ InitiatorName: INITIATOR }, { csg: 1, nsg: 3, transit: true })), 0x0207);
    });

    it('ACL: initiator not listed -> 0x0202; listed -> success', async () => {
      await open({ acl: ['iqn.2026-11.dev.dkc-emu:other'] });
      assert.strictEqual(status(await c.login({ InitiatorName: INITIATOR, TargetName: IQN }, { csg: 1, nsg: 3, transit: true })), 0x0202);
      c.close();
      c = await RawClient.connect(s.port);
      assert.strictEqual(status(await c.login({ InitiatorName: 'iqn.2026-11.dev.dkc-emu:other', TargetName: IQN }, { csg: 1, nsg: 3, transit: true })), 0);
    });

    it('unsupported version -> 0x0205', async () => {
      await open();
      assert.strictEqual(status(await c.login({ InitiatorName: INITIATOR, TargetName: IQN }, { csg: 1, nsg: 3, transit: true, versionMin: 1 })), 0x0205);
    });

    it('unknown SessionType -> 0x0209', async () => {
      await open();
      assert.strictEqual(status(await c.login({ InitiatorName: INITIATOR, SessionType: 'Weird' }, { csg: 1, nsg: 3, transit: true })), 0x0209);
    });

    it('nonzero TSIH of no session -> 0x020a', async () => {
      await open();
      assert.strictEqual(status(await c.login({ InitiatorName: INITIATOR, TargetName: IQN }, { csg: 1, nsg: 3, transit: true, tsih: 0x1234 })), 0x020a);
    });

    it('a second connection with another CID -> 0x0206 (MaxConnections=1)', async () => {
      await open();
      await c.loginNormal();
      const c2 = await RawClient.connect(s.port);
      try {
        const r = await c2.login({ InitiatorName: INITIATOR, TargetName: IQN }, { csg: 1, nsg: 3, transit: true, tsih: c.tsih, cid: 5 });
        assert.strictEqual(status(r), 0x0206);
      } finally {
        c2.close();
      }
    });

    it('a SCSI command during login -> 0x020b and the connection closes', async () => {
      await open();
      c.scsi({ cdb: [0], edtl: 0 });
      const r = await c.expect();
      assert.strictEqual(r.opcode, Op.LOGIN_RESPONSE);
      assert.strictEqual(status(r), 0x020b);
      assert.ok(await c.waitClosed());
    });

    it('a key repeated in one login -> initiator error 0x0200', async () => {
      await open();
      const r1 = await c.login({ InitiatorName: INITIATOR, TargetName: IQN, MaxBurstLength: '8192' }, { csg: 1, nsg: 3, transit: false });
      assert.strictEqual(status(r1), 0);
      const r2 = await c.login({ MaxBurstLength: '8192' }, { csg: 1, nsg: 3, transit: true });
      assert.strictEqual(status(r2), 0x0200);
    });

    it('bad stage transitions -> 0x0200', async () => {
      await open();
      assert.strictEqual(status(await c.login({ InitiatorName: INITIATOR, TargetName: IQN }, { csg: 1, nsg: 1, transit: true })), 0x0200);
      c.close();
      c = await RawClient.connect(s.port);
      assert.strictEqual(status(await c.login({ InitiatorName: INITIATOR, TargetName: IQN }, { csg: 0, nsg: 2, transit: true })), 0x0200);
      c.close();
      c = await RawClient.connect(s.port);
      assert.strictEqual(status(await c.login({ InitiatorName: INITIATOR, TargetName: IQN }, { csg: 1, nsg: 3, transit: true, cont: true })), 0x0200);
    });

    it('operational keys in the security stage -> 0x0200', async () => {
      await open();
      const r = await c.login({ InitiatorName: INITIATOR, TargetName: IQN, AuthMethod: 'None', MaxBurstLength: '8192' }, { csg: 0, nsg: 1, transit: true });
      assert.strictEqual(status(r), 0x0200);
    });

    it('unknown, out-of-range and malformed keys in a successful login', async () => {
      await open();
      const r = await c.login({
        InitiatorName: INITIATOR, TargetName: IQN, 'X-com.example.Thing': '1', MaxBurstLength: '100', ImmediateData: 'maybe',
        FirstBurstLength: '0x1000', HeaderDigest: 'CRC32C,None', DataDigest: 'None',
      }, { csg: 1, nsg: 3, transit: true });
      assert.strictEqual(status(r), 0);
      const p = r.pairs;
      assert.strictEqual(p.get('X-com.example.Thing'), 'NotUnderstood');
      assert.strictEqual(p.get('MaxBurstLength'), 'Reject');
      assert.strictEqual(p.get('ImmediateData'), 'Reject');
      assert.strictEqual(p.get('FirstBurstLength'), '4096');
      assert.strictEqual(p.get('HeaderDigest'), 'CRC32C');
    });

    it('session reinstatement: same ISID and initiator -> the old session is closed', async () => {
      await open();
      await c.loginNormal();
      const c2 = await RawClient.connect(s.port);
      try {
        const r = await c2.login({ InitiatorName: INITIATOR, TargetName: IQN }, { csg: 1, nsg: 3, transit: true });
        assert.strictEqual(status(r), 0);
        assert.ok(await c.waitClosed(), 'old connection closed');
        assert.strictEqual(s.device.removed.length, 1);
        assert.strictEqual(s.device.added.length, 2);
      } finally {
        c2.close();
      }
    });
  });

  describe('discovery session', () => {
    it('no TargetName needed; session keys are Irrelevant', async () => {
      await open();
      const r = await c.login({ InitiatorName: INITIATOR, SessionType: 'Discovery', MaxBurstLength: '8192', InitialR2T: 'No', ErrorRecoveryLevel: '0' },
        { csg: 1, nsg: 3, transit: true });
      assert.strictEqual(status(r), 0);
      assert.strictEqual(r.pairs.get('MaxBurstLength'), 'Irrelevant');
      assert.strictEqual(r.pairs.get('InitialR2T'), 'Irrelevant');
      assert.strictEqual(r.pairs.get('ErrorRecoveryLevel'), '0');
      assert.strictEqual(r.pairs.has('TargetPortalGroupTag'), false);
    });

    it('discovery CHAP: the discovery credentials log in, the target\'s do not', async () => {
      await open({ chap: { user: 'tuser', secret: 'target-only-123' } }, { discoveryChap: CHAP });
      const step = async (cl: RawClient, user: string, secret: string) => {
        const r1 = await cl.login({ InitiatorName: INITIATOR, SessionType: 'Discovery', AuthMethod: 'CHAP' }, { csg: 0, nsg: 1, transit: false });
        assert.strictEqual(r1.pairs.get('AuthMethod'), 'CHAP');
        const r2 = await cl.login({ CHAP_A: '5' }, { csg: 0, nsg: 1, transit: false });
        const resp = chapResponse(Number(r2.pairs.get('CHAP_I')), secret, Buffer.from(r2.pairs.get('CHAP_C')!.slice(2), 'hex'));
        return cl.login({ CHAP_N: user, CHAP_R: `0x${resp.toString('hex')}` }, { csg: 0, nsg: 3, transit: true });
      };
      assert.strictEqual(status(await step(c, CHAP.user, CHAP.secret)), 0);
      c.close();
      c = await RawClient.connect(s.port);
      assert.strictEqual(status(await step(c, 'tuser', 'target-only-123')), 0x0201);
    });

    it('discovery CHAP: AuthMethod=None is refused -> 0x0201', async () => {
      await open({}, { discoveryChap: CHAP });
      const r = await c.login({ InitiatorName: INITIATOR, SessionType: 'Discovery', AuthMethod: 'None' }, { csg: 0, nsg: 1, transit: true });
      assert.strictEqual(status(r), 0x0201);
    });
  });

  describe('CHAP', () => {
    async function chapLogin(cl: RawClient, user: string, secret: string, mutual?: { id: number; challenge: Buffer }): Promise<RawPdu> {
      const r1 = await cl.login({ InitiatorName: INITIATOR, TargetName: IQN, AuthMethod: 'CHAP,None' }, { csg: 0, nsg: 1, transit: false });
      assert.strictEqual(status(r1), 0);
      assert.strictEqual(r1.pairs.get('AuthMethod'), 'CHAP');
      assert.strictEqual(r1.pairs.get('TargetPortalGroupTag'), '1');
      const r2 = await cl.login({ CHAP_A: '5' }, { csg: 0, nsg: 1, transit: false });
      assert.strictEqual(r2.pairs.get('CHAP_A'), '5');
      const id = Number(r2.pairs.get('CHAP_I'));
      const challenge = Buffer.from(r2.pairs.get('CHAP_C')!.slice(2), 'hex');
      assert.ok(challenge.length >= 16, 'challenge of at least 16 bytes');
      const resp = chapResponse(id, secret, challenge);
      const keys: Record<string, string> = { CHAP_N: user, CHAP_R: `0x${resp.toString('hex')}` };
      if (mutual) {
        keys.CHAP_I = String(mutual.id);
        keys.CHAP_C = `0x${mutual.challenge.toString('hex')}`;
      }
      return cl.login(keys, { csg: 0, nsg: 1, transit: true });
    }

    it('a target with CHAP refuses AuthMethod=None -> 0x0201', async () => {
      await open({ chap: CHAP });
      const r = await c.login({ InitiatorName: INITIATOR, TargetName: IQN, AuthMethod: 'None' }, { csg: 0, nsg: 1, transit: true });
      assert.strictEqual(status(r), 0x0201);
    });

    it('a target with CHAP refuses a login starting in the operational stage -> 0x0201', async () => {
      await open({ chap: CHAP });
      const r = await c.login({ InitiatorName: INITIATOR, TargetName: IQN }, { csg: 1, nsg: 3, transit: true });
      assert.strictEqual(status(r), 0x0201);
    });

    it('one-way: the right response logs in', async () => {
      await open({ chap: CHAP });
      const r = await chapLogin(c, CHAP.user, CHAP.secret);
      assert.strictEqual(status(r), 0);
      assert.strictEqual(r.flags & 0x80, 0x80, 'T=1 after authentication');
      const r2 = await c.login({ ImmediateData: 'Yes' }, { csg: 1, nsg: 3, transit: true });
      assert.strictEqual(status(r2), 0);
    });

    it('one-way: a wrong secret -> 0x0201', async () => {
      await open({ chap: CHAP });
      assert.strictEqual(status(await chapLogin(c, CHAP.user, 'not-the-secret')), 0x0201);
    });

    it('mutual: the target proves itself', async () => {
      await open({ chap: CHAP });
      const challenge = Buffer.alloc(16, 0x5a);
      const r = await chapLogin(c, CHAP.user, CHAP.secret, { id: 33, challenge });
      assert.strictEqual(status(r), 0);
      assert.strictEqual(r.pairs.get('CHAP_N'), CHAP.mutualUser);
      assert.strictEqual(r.pairs.get('CHAP_R'), `0x${chapResponse(33, CHAP.mutualSecret, challenge).toString('hex')}`);
    });

    it('mutual: no target secret configured -> 0x0201', async () => {
      await open({ chap: { user: CHAP.user, secret: CHAP.secret } });
      assert.strictEqual(status(await chapLogin(c, CHAP.user, CHAP.secret, { id: 1, challenge: Buffer.alloc(16, 1) })), 0x0201);
    });
  });
});
