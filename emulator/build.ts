// From a validated DKC configuration to a running DKC: disks (sparse files), RAID groups, and
// the firmware with its tables loaded. Knows nothing of targets, so tools and tests can open a
// DKC's data without the iSCSI stack.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type pino from 'pino';
import { Dkc, DkcDefinition } from '../firmware/dkc';
import type { RaidGroupDevice } from '../firmware/drive';
import type { DkcConfig } from './config';
import { FileDisk } from './disk';
import { diskPath, ldevDir } from './layout';
import { createRaidGroup } from './raid';

/** Open (or create) one DKC's disks and RAID groups and load its firmware tables. */
export async function openDkc(d: DkcConfig, dataDir: string, log: pino.Logger): Promise<Dkc> {
  const groups: RaidGroupDevice[] = [];
  await fs.mkdir(path.dirname(diskPath(dataDir, d.name, 'x', 0)), { recursive: true });
  try {
    for (const g of d.raidGroups) {
      const disks: FileDisk[] = [];
      try {
        for (let i = 0; i < g.diskCount; i++) {
          disks.push(await FileDisk.open(diskPath(dataDir, d.name, g.name, i), g.diskSizeBytes, { create: true }));
        }
      } catch (err) {
        await Promise.all(disks.map((x) => x.close()));
        throw err;
      }
      groups.push(createRaidGroup(g.name, g.level, g.stripeSizeBytes, disks));
    }
    return await Dkc.open(dkcDefinition(d), groups, ldevDir(dataDir, d.name), log);
  } catch (err) {
    await Promise.all(groups.map((g) => g.close()));
    throw err;
  }
}

export function dkcDefinition(d: DkcConfig): DkcDefinition {
  return {
    name: d.name,
    serial: d.serial,
    cache: d.cache,
    raidGroups: d.raidGroups.map((g) => ({
      name: g.name,
      level: g.level,
      stripeSizeBytes: g.stripeSizeBytes,
      disks: Array.from({ length: g.diskCount }, (_x, i) => `${g.name}-${i}`),
      diskSizeBytes: g.diskSizeBytes,
      sizeBytes: g.capacityBytes,
    })),
    ldevs: d.volumes.map((v) => ({
      number: v.ldev, name: v.name, group: v.group, offsetBytes: v.offsetBytes, blockSize: v.blockSize, blockCount: v.blockCount,
    })),
    lus: d.targets.flatMap((t) => t.luns.map((l) => ({ port: t.name, lun: l.lun, ldev: l.ldev }))),
  };
}
