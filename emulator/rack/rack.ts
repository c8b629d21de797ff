// A rack built from a validated configuration: per DKC its disks (sparse files), RAID groups and
// firmware; per target a SCSI target device; one iSCSI server for all targets.
import type pino from 'pino';
import type { Dkc } from '../../firmware/dkc';
import { DirStateStore } from '../../firmware/state-store';
import { IscsiServer } from '../../target/iscsi/server';
import type { Portal, TargetDefinition } from '../../target/iscsi/types';
import { ScsiTarget } from '../../target/scsi/target';
import type { LuDefinition } from '../../target/scsi/types';
import type { EmulatedBays } from '../hardware/bays';
import type { DkcConfig, RackConfig } from './config';
import { ControlError, DiskAction, RackControl, RackStatus } from './control';
import { openDkc } from './build';
import { ManagementServer, managementToken } from './mgmt';
import { lockDataDir, luStateDir, prepareDataDir } from './layout';

export interface RackOptions {
  dataDir: string;
  /** Overrides every target's portals. */
  listen?: Portal;
  log: pino.Logger;
}

export class Rack implements RackControl {
  private server: IscsiServer | null = null;
  /** The management API (config `management:`), once started. */
  mgmt: ManagementServer | null = null;
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
    const m = this.config.management;
    if (m) {
      const token = await managementToken(m, this.dataDir);
      this.mgmt = new ManagementServer({ listen: m.listen, token, control: this, log: this.log });
      await this.mgmt.start();
    }
  }

  addresses(): Portal[] {
    return this.server ? this.server.addresses() : [];
  }

  dkc(name: string): Dkc {
    const d = this.dkcs.find((x) => x.name === name);
    if (!d) throw new Error(`no DKC ${name}`);
    return d;
  }

  status(): RackStatus {
    return { rack: this.config.name, dkcs: this.dkcs.map((d) => d.status()) };
  }

  /** The operator's hands on a drive bay (dkc disk ...); the DKC hears of it as from its enclosure. */
  async disk(dkcName: string, driveName: string, a: DiskAction): Promise<void> {
    const dkc = this.dkcs.find((x) => x.name === dkcName);
    if (!dkc) throw new ControlError(404, `no DKC ${dkcName}`);
    const bay = (dkc.bays as EmulatedBays).bay(driveName);
    if (!bay) throw new ControlError(404, `${dkcName} has no drive ${driveName}`);
    const health = bay.faults.health;
    switch (a.action) {
      case 'fail':
      case 'pull':
        if (health !== 'ok') throw new ControlError(409, `${driveName} is already ${health}`);
        if (a.action === 'fail') bay.faults.fail();
        else bay.faults.pull();
        await dkc.driveChanged(driveName, a.action === 'fail' ? 'failed' : 'pulled');
        return;
      case 'insert':
        if (health !== 'pulled') throw new ControlError(409, `${driveName} is not pulled out (it is ${health})`);
        bay.faults.insert();
        await dkc.driveChanged(driveName, 'inserted');
        return;
      case 'replace': {
        const where = dkc.raidTable.locate(driveName);
        const slot = where && where !== 'spare' ? dkc.raidTable.slots(where.group)[where.slot] : undefined;
        const inUse = where === 'spare' || (slot !== undefined && slot.state !== 'failed');
        if (health === 'ok' && inUse) throw new ControlError(409, `${driveName} is healthy and in use: fail or pull it first`);
        await bay.replace();
        await dkc.driveChanged(driveName, 'replaced');
        return;
      }
      case 'slow':
        if (!(Number.isFinite(a.latencyMs) && a.latencyMs >= 0 && a.latencyMs <= 60_000)) {
          throw new ControlError(400, `latencyMs must be 0..60000, not ${a.latencyMs}`);
        }
        bay.faults.slow(a.latencyMs);
        return;
      case 'media-error': {
        const sectors = bay.sizeBytes / 512;
        if (!(Number.isSafeInteger(a.sector) && Number.isSafeInteger(a.count) && a.sector >= 0 && a.count >= 1 && a.sector + a.count <= sectors)) {
          throw new ControlError(400, `sectors [${a.sector}, +${a.count}) are not on ${driveName} (${sectors} sectors)`);
        }
        bay.faults.mediaError(a.sector, a.count);
        return;
      }
    }
  }

  /** Stop accepting, close sessions, flush every DKC (data, then maps), release the directory. */
  async stop(): Promise<void> {
    await this.mgmt?.stop();
    this.mgmt = null;
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
      kind: l.commandDevice ? 'command-device' : 'disk',
      volume,
      ldev: l.ldev,
      state: new DirStateStore(luStateDir(opts.dataDir, d.name, t.name, l.ldev)),
      readOnly: l.readOnly,
      removable: l.removable,
      physicalBlockSize: d.volumes.find((v) => v.ldev === l.ldev)?.physicalBlockSize,
      vendor: l.vendor,
      product: l.product,
      revision: l.revision,
    };
  });
  const device = new ScsiTarget({ name: t.name, luns, log, pairs: dkc.pairs });
  return {
    name: t.name,
    alias: t.alias,
    tpgt: 1,
    portals: opts.listen ? [opts.listen] : t.portals,
    acl: t.acl,
    chap: t.chap,
    nopIn: t.nopIn,
    device,
  };
}
