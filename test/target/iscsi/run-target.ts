// Test-only runner: one iSCSI target with a MemoryVolume disk LU behind ScsiTarget, for real
// initiators (iscsi-ls, iscsi-inq, iscsi-test-cu, the Linux initiator harness).
//   node dist/test/target/iscsi/run-target.js [--port N] [--host H] [--blocks N] [--block-size 512|4096]
//     [--chap user:secret[:mutualUser:mutualSecret]] [--iqn IQN] [--log-level info]
// Prints "LISTENING host:port iqn" once the portal is up; stops on SIGINT/SIGTERM.
import pino from 'pino';
import { ScsiTarget } from '../../../target/scsi/target';
import { IscsiServer } from '../../../target/iscsi/server';
import type { ChapSecret } from '../../../target/iscsi/types';
import { MemoryStateStore, MemoryVolume } from '../../helpers/memory-volume';
import type { LbaExtent, Volume, WriteOptions } from '../../../firmware/volume';

/** --null: a volume that keeps nothing, to time the transport and SCSI layers alone. */
class NullVolume implements Volume {
  readonly naa = Buffer.from('60000000000000000000000000000001', 'hex');
  readonly serial = 'NULL0001';
  private readonly zeros: Buffer;
  constructor(readonly id: string, readonly blockSize: 512 | 4096, readonly blockCount: number) {
    this.zeros = Buffer.alloc(16 * 1024 * 1024);
  }
  async read(_lba: number, blocks: number): Promise<Buffer> { return this.zeros.subarray(0, blocks * this.blockSize); }
  async write(_lba: number, _data: Buffer, _o: WriteOptions): Promise<void> { return; }
  async flush(): Promise<void> { return; }
  async unmap(): Promise<void> { return; }
  extent(_lba: number, maxBlocks: number): LbaExtent { return { mapped: true, blocks: maxBlocks }; }
}

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

async function main(): Promise<void> {
  const log = pino({ level: arg('log-level', 'warn') }, pino.destination(2));
  const iqn = arg('iqn', 'iqn.2026-11.dev.dkc-emu:test');
  const blockSize = Number(arg('block-size', '512')) as 512 | 4096;
  const blocks = Number(arg('blocks', String((256 * 1024 * 1024) / blockSize)));
  const chapArg = arg('chap', '');
  let chap: ChapSecret | undefined;
  if (chapArg !== '') {
    const [user, secret, mutualUser, mutualSecret] = chapArg.split(':');
    chap = { user, secret, mutualUser, mutualSecret };
  }
  const luns = Number(arg('luns', '1'));
  const device = new ScsiTarget({
    name: iqn, log,
    luns: Array.from({ length: luns }, (_, lun) => ({
      lun, kind: 'disk' as const,
      volume: process.argv.includes('--null') ? new NullVolume(`null:ldev:${lun}`, blockSize, blocks)
        : new MemoryVolume({ blockCount: blocks, blockSize, id: `mem:ldev:${lun}` }),
      state: new MemoryStateStore(),
    })),
  });
  const server = new IscsiServer({
    targets: [{ name: iqn, tpgt: 1, portals: [{ host: arg('host', '127.0.0.1'), port: Number(arg('port', '3260')) }], chap, device }],
    nopIn: { intervalMs: Number(arg('nop-interval-ms', '5000')) },
  }, log);
  await server.start();
  const a = server.addresses()[0];
  process.stdout.write(`LISTENING ${a.host}:${a.port} ${iqn}\n`);
  const stop = () => { void server.stop().then(() => process.exit(0)); };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

void main();
