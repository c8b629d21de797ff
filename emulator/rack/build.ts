// From a validated DKC configuration to a running DKC: drive bays (sparse files behind fault and
// timing decorators), and the firmware, which assembles its RAID groups from them and loads its
// tables. Knows nothing of targets, so tools and tests can open a DKC's data without the iSCSI
// stack.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type pino from 'pino';
import { Dkc, DkcDefinition } from '../../firmware/dkc';
import type { Clock } from '../../firmware/kernel/clock';
import { Kernel } from '../../firmware/kernel/kernel';
import { BaySpec, EmulatedBays } from '../hardware/bays';
import type { DkcConfig } from './config';
import { diskPath, ldevDir } from './layout';

export interface OpenDkcOptions {
  /** The kernel's clock (default: real time); tests pass a VirtualClock. */
  clock?: Clock;
}

/** The drive bays a DKC configuration describes: each group's members, then the spares. */
export function baySpecs(d: DkcConfig, dataDir: string): BaySpec[] {
  const members = d.raidGroups.flatMap((g) =>
    Array.from({ length: g.diskCount }, (_x, i) => ({
      name: `${g.name}-${i}`,
      file: diskPath(dataDir, d.name, g.name, i),
      sizeBytes: g.diskSizeBytes,
      timing: g.timing,
    })),
  );
  const spares = Array.from({ length: d.spares?.count ?? 0 }, (_x, i) => ({
    name: `spare-${i}`,
    file: diskPath(dataDir, d.name, 'spare', i),
    sizeBytes: d.spares!.sizeBytes,
    timing: d.spares!.timing,
  }));
  return [...members, ...spares];
}

/** Open (or create) one DKC's drives and power the DKC on. */
export async function openDkc(d: DkcConfig, dataDir: string, log: pino.Logger, opts: OpenDkcOptions = {}): Promise<Dkc> {
  const kernel = new Kernel({ clock: opts.clock, seed: d.seed, log: log.child({ dkc: d.name }) });
  const specs = baySpecs(d, dataDir);
  await fs.mkdir(path.dirname(diskPath(dataDir, d.name, 'x', 0)), { recursive: true });
  const bays = await EmulatedBays.open(specs, { clock: kernel.clock, random: kernel.random.fork('drives') });
  try {
    return await Dkc.open(dkcDefinition(d), bays, ldevDir(dataDir, d.name), log, { kernel });
  } catch (err) {
    await bays.close();
    throw err;
  }
}

export function dkcDefinition(d: DkcConfig): DkcDefinition {
  return {
    name: d.name,
    serial: d.serial,
    seed: d.seed,
    cache: d.cache,
    rebuild: d.rebuild,
    scrub: d.scrub ?? undefined,
    raidGroups: d.raidGroups.map((g) => ({
      name: g.name,
      level: g.level,
      stripeSizeBytes: g.stripeSizeBytes,
      disks: Array.from({ length: g.diskCount }, (_x, i) => `${g.name}-${i}`),
      diskSizeBytes: g.diskSizeBytes,
      sizeBytes: g.capacityBytes,
    })),
    spares: Array.from({ length: d.spares?.count ?? 0 }, (_x, i) => `spare-${i}`),
    ldevs: d.volumes.map((v) => ({
      number: v.ldev, name: v.name, group: v.group, offsetBytes: v.offsetBytes, blockSize: v.blockSize, blockCount: v.blockCount,
    })),
    lus: d.targets.flatMap((t) => t.luns.map((l) => ({ port: t.name, lun: l.lun, ldev: l.ldev }))),
  };
}
