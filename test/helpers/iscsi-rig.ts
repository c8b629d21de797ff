// Test rig: the project's iSCSI target (IscsiServer) over ScsiTargets on MemoryVolumes, listening
// on 127.0.0.1 port 0, with a plain, a CHAP and a mutual-CHAP target. Stops what it starts.
import pino from 'pino';
import { IscsiServer } from '../../target/iscsi/server';
import { IscsiServerOptions, TargetDefinition } from '../../target/iscsi/types';
import { ScsiTarget } from '../../target/scsi/target';
import { LuDefinition } from '../../target/scsi/types';
import { IscsiInitiator, InitiatorOptions, LoginOptions } from '../../target/iscsi/initiator/initiator';
import { MemoryStateStore, MemoryVolume } from './memory-volume';

export const IQN = {
  plain: 'iqn.2026-11.dev.dkc-emu:test.plain',
  chap: 'iqn.2026-11.dev.dkc-emu:test.chap',
  mutual: 'iqn.2026-11.dev.dkc-emu:test.mutual',
  /** A target of its own for a session that must stay healthy while others are abused. */
  healthy: 'iqn.2026-11.dev.dkc-emu:test.healthy',
};
export const CHAP = { user: 'rig-user', secret: 'rig-secret-0123', mutualUser: 'rig-target', mutualSecret: 'rig-target-secret-4567' };

export interface Rig {
  server: IscsiServer;
  host: string;
  port: number;
  /** plain LUN 0, plain LUN 1, chap, mutual, healthy. */
  volumes: MemoryVolume[];
  devices: ScsiTarget[];
  /** Connects and logs in to a target (plain unless told), closing it at rig.stop(). */
  open(opts?: InitiatorOptions, login?: LoginOptions): Promise<IscsiInitiator>;
  /** Every unexpected exception the SCSI targets met; a healthy rig has none. */
  internalErrors(): unknown[];
  stop(): Promise<void>;
}

function lu(lun: number, blockCount: number, blockSize: 512 | 4096, id: string): { def: LuDefinition; volume: MemoryVolume } {
  const volume = new MemoryVolume({ blockCount, blockSize, id });
  return { def: { lun, kind: 'disk', volume, state: new MemoryStateStore() }, volume };
}

export async function startRig(o: Partial<IscsiServerOptions> & { blockCount?: number } = {}): Promise<Rig> {
  const log = pino({ level: process.env.LOG_LEVEL ?? 'silent' });
  const blocks = o.blockCount ?? 8192;
  const portal = { host: '127.0.0.1', port: 0 };
  const l0 = lu(0, blocks, 512, 'rig:plain:0');
  const l1 = lu(1, blocks / 8, 4096, 'rig:plain:1');
  const lc = lu(0, 1024, 512, 'rig:chap:0');
  const lm = lu(0, 1024, 512, 'rig:mutual:0');
  const lh = lu(0, 4096, 512, 'rig:healthy:0');
  const devices = [
    new ScsiTarget({ name: IQN.plain, luns: [l0.def, l1.def], log }),
    new ScsiTarget({ name: IQN.chap, luns: [lc.def], log }),
    new ScsiTarget({ name: IQN.mutual, luns: [lm.def], log }),
    new ScsiTarget({ name: IQN.healthy, luns: [lh.def], log }),
  ];
  const targets: TargetDefinition[] = [
    { name: IQN.plain, tpgt: 1, portals: [portal], device: devices[0] },
    { name: IQN.chap, tpgt: 1, portals: [portal], device: devices[1], chap: { user: CHAP.user, secret: CHAP.secret } },
    { name: IQN.mutual, tpgt: 1, portals: [portal], device: devices[2], chap: CHAP },
    { name: IQN.healthy, tpgt: 1, portals: [portal], device: devices[3] },
  ];
  const server = new IscsiServer({ targets, ...o }, log);
  await server.start();
  const { host, port } = server.addresses()[0];
  const opened: IscsiInitiator[] = [];
  return {
    server, host, port, devices, volumes: [l0.volume, l1.volume, lc.volume, lm.volume, lh.volume],
    async open(opts = {}, login = { targetName: IQN.plain }) {
      const ini = new IscsiInitiator({ commandTimeoutMs: 10000, log, ...opts });
      opened.push(ini);
      await ini.connect(host, port);
      await ini.login(login);
      return ini;
    },
    internalErrors: () => devices.flatMap((d) => d.internalErrors),
    async stop() {
      for (const i of opened) i.close();
      await server.stop();
    },
  };
}
