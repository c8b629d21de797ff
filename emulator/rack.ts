// A rack built from a validated configuration: per DKC its disks (sparse files), RAID groups and
// firmware; per target a SCSI target device; one iSCSI server for all targets.
import type pino from 'pino';
import type { Dkc } from '../firmware/dkc';
import { DirStateStore } from '../firmware/state-store';
import { IscsiServer } from '../target/iscsi/server';
import type { Portal, TargetDefinition } from '../target/iscsi/types';
import { ScsiTarget } from '../target/scsi/target';
import type { LuDefinition } from '../target/scsi/types';
import type { DkcConfig, RackConfig } from './config';
import { openDkc } from './build';
import { lockDataDir, luStateDir, prepareDataDir } from './layout';

export interface RackOptions {
  dataDir: string;
  /** Overrides every target's portals. */
  listen?: Portal;
  log: pino.Logger;
}

export class Rack {
  private server: IscsiServer | null = null;
  private started = false;

  private constructor(
    readonly config: RackConfig,
    readonly dataDir: string,
    readonly dkcs: Dkc[],
    readonly targets: (TargetDefinition & { device: ScsiTarget })[],
    private readonly log: pino.Logger,
    private readonly unlock: () => Promise<void>,
  ) {}

  /** Lock and check the data directory, open every DKC, build the targets (not yet listening). */
  static async open(config: RackConfig, opts: RackOptions): Promise<Rack> {
    const log = opts.log.child({ rack: config.name });
    const unlock = await lockDataDir(opts.dataDir);
    const dkcs: Dkc[] = [];
    try {
      const fresh = await prepareDataDir(opts.dataDir, config);
      log.info({ dataDir: opts.dataDir, fresh }, fresh ? 'data directory created' : 'data directory reopened');
      for (const d of config.dkcs) dkcs.push(await openDkc(d, opts.dataDir, log));
      const targets = config.dkcs.flatMap((d, i) => d.targets.map((t) => buildTarget(d, dkcs[i], t, opts, log)));
      return new Rack(config, opts.dataDir, dkcs, targets, log, unlock);
    } catch (err) {
      await Promise.all(dkcs.map((d) => d.close()));
      await unlock();
      throw err;
    }
  }

  async start(): Promise<void> {
    if (this.started) return;
    // Persisted LU state (mode pages, APTPL reservations) is read now, so a bad file stops the start.
    await Promise.all(this.targets.map((t) => t.device.load()));
    this.server = new IscsiServer({ targets: this.targets, discoveryChap: this.config.discoveryChap }, this.log);
    await this.server.start();
    this.started = true;
  }

  addresses(): Portal[] {
    return this.server ? this.server.addresses() : [];
  }

  dkc(name: string): Dkc {
    const d = this.dkcs.find((x) => x.name === name);
    if (!d) throw new Error(`no DKC ${name}`);
    return d;
  }

  /** Stop accepting, close sessions, flush every DKC (data, then maps), release the directory. */
  async stop(): Promise<void> {
    if (this.server) {
      await this.server.stop();
      this.server = null;
    }
    this.started = false;
    await Promise.all(this.dkcs.map((d) => d.close()));
    await this.unlock();
    this.log.info('rack stopped');
  }
}

function buildTarget(
  d: DkcConfig, dkc: Dkc, t: DkcConfig['targets'][number], opts: RackOptions, log: pino.Logger,
): TargetDefinition & { device: ScsiTarget } {
  const luns: LuDefinition[] = t.luns.map((l) => {
    const volume = dkc.hostInterface.volume(t.name, l.lun);
    if (!volume) throw new Error(`${d.name}: LU table has no entry for ${t.name} LUN ${l.lun}`);
    return {
      lun: l.lun,
      kind: 'disk',
      volume,
      state: new DirStateStore(luStateDir(opts.dataDir, d.name, t.name, l.ldev)),
      readOnly: l.readOnly,
      removable: l.removable,
      physicalBlockSize: d.volumes.find((v) => v.ldev === l.ldev)?.physicalBlockSize,
      vendor: l.vendor,
      product: l.product,
      revision: l.revision,
    };
  });
  const device = new ScsiTarget({ name: t.name, luns, log });
  return {
    name: t.name,
    alias: t.alias,
    tpgt: 1,
    portals: opts.listen ? [opts.listen] : t.portals,
    acl: t.acl,
    chap: t.chap,
    device,
  };
}
