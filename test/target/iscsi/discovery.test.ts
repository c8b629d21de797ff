import assert from 'assert';
import { advertised } from '../../../target/iscsi/discovery';
import { INITIATOR, IQN, Op, RawClient, startServer, Started } from './harness';

describe('SendTargets (RFC 7143 Appendix C)', () => {
  describe('TargetAddress', () => {
    const bound = (host: string, port: number) => ({ boundPortal: () => ({ host, port }) });

    it('a portal on a specific address is advertised as bound (port 0 resolved)', () => {
      assert.deepStrictEqual(advertised(bound('192.0.2.7', 3260), { host: '192.0.2.7', port: 0 }, { host: '10.0.0.1', port: 3260 }),
        { host: '192.0.2.7', port: 3260 });
    });

    it('a wildcard portal advertises the address the connection arrived on', () => {
      assert.deepStrictEqual(advertised(bound('0.0.0.0', 3260), { host: '0.0.0.0', port: 3260 }, { host: '::ffff:10.1.2.3', port: 3260 }),
        { host: '10.1.2.3', port: 3260 });
    });

    it('IPv6 addresses are bracketed', () => {
      assert.deepStrictEqual(advertised(bound('::', 3260), { host: '::', port: 3260 }, { host: 'fe80::1', port: 3260 }),
        { host: '[fe80::1]', port: 3260 });
    });
  });

  describe('over a discovery session', () => {
    let s: Started;
    let c: RawClient;
    afterEach(async () => {
      c?.close();
      await s?.server.stop();
    });

    async function discover(): Promise<void> {
      c = await RawClient.connect(s.port);
      const r = await c.login({ InitiatorName: INITIATOR, SessionType: 'Discovery' }, { csg: 1, nsg: 3, transit: true });
      assert.strictEqual(r.u16(36), 0);
      c.cmdSn = r.expCmdSn;
    }

    it('SendTargets=<name> lists that target; an unknown name lists nothing', async () => {
      s = await startServer();
      await discover();
      c.textReq([['SendTargets', IQN]]);
      const t = await c.expect();
      assert.strictEqual(t.opcode, Op.TEXT_RESPONSE);
      assert.deepStrictEqual(t.textList, [['TargetName', IQN], ['TargetAddress', `127.0.0.1:${s.port},1`]]);
      c.textReq([['SendTargets', 'iqn.2026-11.nowhere:x']]);
      assert.strictEqual((await c.expect()).data.length, 0);
    });

    it('a target that needs CHAP is still listed (the login checks the secret)', async () => {
      s = await startServer({ chap: { user: 'u', secret: 'secret-secret-1' } });
      await discover();
      c.textReq([['SendTargets', 'All']]);
      assert.deepStrictEqual((await c.expect()).textList[0], ['TargetName', IQN]);
    });

    it('a SCSI command in a discovery session -> Reject', async () => {
      s = await startServer();
      await discover();
      c.scsi({ cdb: [0], edtl: 0 });
      const r = await c.expect();
      assert.strictEqual(r.opcode, Op.REJECT);
    });
  });
});
