import assert from 'assert';
import net from 'net';
import pino from 'pino';
import { IscsiServer } from '../../../target/iscsi/server';
import { FakeDevice } from './fake-device';
import { INITIATOR, IQN, RawClient, startServer } from './harness';

describe('IscsiServer', () => {
  it('listens on every distinct portal; addresses() resolves port 0', async () => {
    const device = new FakeDevice();
    const server = new IscsiServer({
      targets: [
        { name: IQN, tpgt: 1, portals: [{ host: '127.0.0.1', port: 0 }], device },
        { name: `${IQN}-b`, tpgt: 2, portals: [{ host: '127.0.0.1', port: 0 }], device },
      ],
    }, pino({ level: 'silent' }));
    await server.start();
    try {
      const a = server.addresses();
      assert.strictEqual(a.length, 1, 'the same portal is bound once');
      assert.strictEqual(a[0].host, '127.0.0.1');
      assert.ok(a[0].port > 0);
    } finally {
      await server.stop();
    }
  });

  it('a portal that cannot be bound fails start() and leaves nothing listening', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const busy = (blocker.address() as net.AddressInfo).port;
    const device = new FakeDevice();
    const server = new IscsiServer({
      targets: [{ name: IQN, tpgt: 1, portals: [{ host: '127.0.0.1', port: 0 }, { host: '127.0.0.1', port: busy }], device }],
    }, pino({ level: 'silent' }));
    try {
      await assert.rejects(server.start(), /EADDRINUSE/);
      assert.deepStrictEqual(server.addresses(), []);
    } finally {
      await new Promise<void>((r) => blocker.close(() => r()));
    }
  });

  it('a target defined twice is refused', () => {
    const device = new FakeDevice();
    const t = { name: IQN, tpgt: 1, portals: [{ host: '127.0.0.1', port: 0 }], device };
    assert.throws(() => new IscsiServer({ targets: [t, t] }, pino({ level: 'silent' })), /defined twice/);
  });

  it('stop() asks normal sessions to log out (AsyncEvent 1), then closes them and removes the nexus', async function () {
    this.timeout(10_000);
    const s = await startServer();
    const c = await RawClient.connect(s.port);
    await c.loginNormal({}, INITIATOR);
    const stopped = s.server.stop();
    const a = await c.expect();
    assert.strictEqual(a.opcode, 0x32);
    assert.strictEqual(a.u8(36), 1, 'AsyncEvent 1: logout requested');
    await stopped;
    assert.ok(await c.waitClosed());
    assert.strictEqual(s.device.removed.length, 1);
  });
});
