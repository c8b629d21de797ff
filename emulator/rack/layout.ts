// The data directory of a rack and its layout manifest (rack.json).
//
//   <data-dir>/rack.json                       what the disks and maps were made for
//   <data-dir>/lock                            pid of the process using the directory
//   <data-dir>/<dkc>/disks/<group>-<i>.img     sparse disk files
//   <data-dir>/<dkc>/ldev/ldev-<hex>.map       allocation maps (firmware/allocation-map.ts)
//   <data-dir>/<dkc>/ldev/parity-log           RAID 5/6 rows written while degraded (firmware/raid/parity-log.ts)
//   <data-dir>/<dkc>/state/<target>/ldev-<hex>/ per-LU state documents (firmware/state-store.ts)
//
// A configuration may append DKCs, RAID groups and volumes to an existing directory; anything
// that would move or resize existing data (geometry, serial, a volume's group, size, block size
// or place) is refused with the first difference named.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../../firmware/durable';
import { ldevHex } from '../../firmware/identity';
import type { RackConfig } from './config';

const FORMAT = 'dkc-emu-layout/1';
/** Take the lock, or take over a dead process's lock and try once more. */
const LOCK_ATTEMPTS_MAX = 2;

interface Layout {
  format: string;
  dkcs: {
    name: string;
    serial: number;
    raidGroups: { name: string; level: number; stripeSizeBytes: number; diskCount: number; diskSizeBytes: number }[];
    volumes: { name: string; ldev: number; group: string; offsetBytes: number; sizeBytes: number; blockSize: number }[];
  }[];
}

export function layoutOf(config: RackConfig): Layout {
  return {
    format: FORMAT,
    dkcs: config.dkcs.map((d) => ({
      name: d.name,
      serial: d.serial,
      raidGroups: d.raidGroups.map(({ name, level, stripeSizeBytes, diskCount, diskSizeBytes }) => ({
        name, level, stripeSizeBytes, diskCount, diskSizeBytes,
      })),
      volumes: d.volumes.map(({ name, ldev, group, offsetBytes, sizeBytes, blockSize }) => ({
        name, ldev, group, offsetBytes, sizeBytes, blockSize,
      })),
    })),
  };
}

export function diskPath(dataDir: string, dkc: string, group: string, index: number): string {
  return path.join(dataDir, dkc, 'disks', `${group}-${index}.img`);
}

export function ldevDir(dataDir: string, dkc: string): string {
  return path.join(dataDir, dkc, 'ldev');
}

/**
 * Per-LU state directory. Keyed by target and LDEV, not LUN: the state (reservations) belongs to
 * the device the host identifies by its NAA, so renumbering LUNs keeps it with its volume. The
 * target name is escaped so any iSCSI name is one safe path segment.
 */
export function luStateDir(dataDir: string, dkc: string, target: string, ldev: number): string {
  const safe = target.replace(/[^A-Za-z0-9.-]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return path.join(dataDir, dkc, 'state', safe, `ldev-${ldevHex(ldev)}`);
}

/**
 * Check the data directory against the configuration and record the (possibly extended) layout.
 * Returns true when the directory was new.
 */
export async function prepareDataDir(dataDir: string, config: RackConfig): Promise<boolean> {
  const manifest = path.join(dataDir, 'rack.json');
  const want = layoutOf(config);
  let text: string | undefined;
  try {
    text = await fs.readFile(manifest, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (text === undefined) {
    const entries = await fs.readdir(dataDir).catch(() => [] as string[]);
    if (entries.some((e) => e !== 'lock')) {
      throw new Error(`data directory ${dataDir} is not empty and has no rack.json: not a dkc-emu data directory`);
    }
  } else {
    let have: Layout;
    try {
      have = JSON.parse(text) as Layout;
    } catch {
      throw new Error(`${manifest}: not valid JSON`);
    }
    if (have.format !== FORMAT) throw new Error(`${manifest}: layout format ${have.format} is not ${FORMAT}`);
    const diff = compareLayouts(have, want, config.file);
    if (diff) throw new Error(`data directory ${dataDir} does not match ${config.file}: ${diff}; use another --data-dir, or remove this one to start empty`);
  }
  await fs.mkdir(dataDir, { recursive: true });
  await writeFileAtomic(manifest, JSON.stringify(want, null, 2) + '\n');
  return text === undefined;
}

/** First difference that would move or lose existing data, or undefined. */
export function compareLayouts(have: Layout, want: Layout, file: string): string | undefined {
  for (const hd of have.dkcs) {
    const wd = want.dkcs.find((d) => d.name === hd.name);
    if (!wd) return `DKC ${hd.name} is missing from ${file}`;
    if (wd.serial !== hd.serial) return `DKC ${hd.name} has serial ${hd.serial} there, ${wd.serial} in ${file}`;
    for (const hg of hd.raidGroups) {
      const wg = wd.raidGroups.find((g) => g.name === hg.name);
      if (!wg) return `${hd.name} RAID group ${hg.name} is missing from ${file}`;
      for (const key of ['level', 'stripeSizeBytes', 'diskCount', 'diskSizeBytes'] as const) {
        if (wg[key] !== hg[key]) return `${hd.name} RAID group ${hg.name} has ${key} ${hg[key]} there, ${wg[key]} in ${file}`;
      }
    }
    for (const hv of hd.volumes) {
      const wv = wd.volumes.find((v) => v.ldev === hv.ldev);
      const what = `${hd.name} volume ${hv.name} (LDEV ${hv.ldev})`;
      if (!wv) return `${what} is missing from ${file} (volumes can only be appended)`;
      for (const key of ['name', 'group', 'sizeBytes', 'blockSize', 'offsetBytes'] as const) {
        if (wv[key] !== hv[key]) return `${what} has ${key} ${hv[key]} there, ${wv[key]} in ${file} (volumes can only be appended)`;
      }
    }
  }
  return undefined;
}

/** Take the directory's lock; a lock left by a dead process (kill -9) is taken over. */
export async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  await fs.mkdir(dataDir, { recursive: true });
  const file = path.join(dataDir, 'lock');
  for (let attempt = 0; attempt < LOCK_ATTEMPTS_MAX; attempt++) {
    try {
      await fs.writeFile(file, `${process.pid}\n`, { flag: 'wx' });
      return async () => {
        await fs.rm(file, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number((await fs.readFile(file, 'utf8').catch(() => '')).trim());
      if (pid > 0 && (pid === process.pid || isAlive(pid))) throw new Error(`data directory ${dataDir} is in use by process ${pid}`);
      await fs.rm(file, { force: true });
    }
  }
  throw new Error(`data directory ${dataDir}: cannot take the lock`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
