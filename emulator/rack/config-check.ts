// Cross-checks the schema cannot express, and normalization into a RackConfig:
// unique names, disk counts per RAID level, spares that fit a group, volumes that fit their RAID
// group, LUN maps naming known volumes, portal ports, CHAP secrets that differ, a management
// port on loopback, and the placement (offset) of every volume in its group.
import { isIP } from 'node:net';
import type { ChapSecret, Portal } from '../../target/iscsi/types';
import {
  CacheConfig, ConfigError, DEFAULT_REBUILD_PACE_MS, DEFAULT_SEED, DEFAULT_STRIPE_BYTES, DkcConfig, formatSize,
  ManagementConfig, parsePortal, parseSize, PathSeg, RackConfig, RAID_MIN_DISKS, RawChap, RawRack, RaidGroupConfig, SourceMap,
  SparesConfig, TargetConfig, VolumeConfig, VOLUME_ALIGN_BYTES,
} from './config';
import { CACHE_DEFAULT_BYTES, CACHE_MAX_BYTES, CACHE_MIN_BYTES } from '../../firmware/cache/cache';
import { raidCapacity } from '../../firmware/raid';

const STRIPE_MIN_BYTES = 4096;
const STRIPE_MAX_BYTES = 1024 * 1024;
/** scrub: {} without intervalMinutes. */
const SCRUB_DEFAULT_MINUTES = 60;
const DISK_ALIGN_BYTES = 1024 * 1024;
const LDEVS_PER_DKC_MAX = 0x10000;
/** The allocation bitmap lives in RAM: 2^31 blocks is a 256 MiB bitmap. */
const VOLUME_BLOCKS_MAX = 2 ** 31;

type RawDkc = RawRack['dkcs'][number];

export function crossCheck(raw: RawRack, src: SourceMap, name: string): { config: RackConfig; errors: ConfigError[] } {
  const errors: ConfigError[] = [];
  const err = (segs: PathSeg[], message: string) => errors.push(src.error(segs, message));
  const dkcNames = new Map<string, number>();
  const serials = new Map<number, number>();
  const targetNames = new Map<string, string>();
  const dkcs: DkcConfig[] = [];
  raw.dkcs.forEach((d, i) => {
    firstWins(dkcNames, d.name, i, (j) => err(['dkcs', i, 'name'], `duplicate DKC name ${d.name} (also dkcs[${j}])`));
    firstWins(serials, d.serial, i, (j) => err(['dkcs', i, 'serial'], `duplicate serial ${d.serial} (also dkcs[${j}])`));
    const raidGroups = checkRaidGroups(d, i, err);
    const volumes = checkVolumes(d, i, raidGroups, err);
    const targets = d.targets.map((t, k) => checkTarget(t, ['dkcs', i, 'targets', k], volumes, err));
    targets.forEach((t, k) => {
      const prev = targetNames.get(t.name);
      if (prev) err(['dkcs', i, 'targets', k, 'name'], `duplicate target name ${t.name} (also ${prev})`);
      else targetNames.set(t.name, `dkcs[${i}].targets[${k}]`);
    });
    dkcs.push({
      name: d.name,
      serial: d.serial,
      cache: checkCache(d, i, err),
      raidGroups,
      spares: checkSpares(d, i, raidGroups, err),
      rebuild: { paceMs: d.rebuild?.paceMs ?? DEFAULT_REBUILD_PACE_MS },
      scrub: d.scrub ? { intervalMs: (d.scrub.intervalMinutes ?? SCRUB_DEFAULT_MINUTES) * 60_000 } : null,
      seed: d.seed ?? DEFAULT_SEED,
      volumes,
      targets,
    });
  });
  const discoveryChap = raw.discovery?.chap ? checkChap(raw.discovery.chap, ['discovery', 'chap'], err) : undefined;
  const management = raw.management ? checkManagement(raw.management, dkcs, err) : undefined;
  const config: RackConfig = { file: src.file, name, dkcs, discoveryChap };
  if (management) config.management = management;
  return { config, errors };
}

/** 127.0.0.0/8 or ::1, as an IP address (a name could resolve to anything). */
export function isLoopback(host: string): boolean {
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return new URL(`http://[${host}]/`).hostname === '[::1]';
  return false;
}

function checkManagement(m: NonNullable<RawRack['management']>, dkcs: DkcConfig[], err: (s: PathSeg[], m: string) => void): ManagementConfig {
  const listen = parsePortal(m.listen);
  if (listen.port > 65535) err(['management', 'listen'], 'port must be from 0 to 65535');
  else if (isIP(listen.host) === 0) {
    err(['management', 'listen'], `${listen.host} is a name: give a loopback IP address (127.0.0.1 or [::1]), names can resolve anywhere`);
  } else if (!isLoopback(listen.host)) {
    err(['management', 'listen'], `${listen.host} is not a loopback address: the management API listens on 127.0.0.1 or [::1] only`);
  } else if (listen.port !== 0) {
    const clash = dkcs.flatMap((d) => d.targets).find((t) => t.portals.some((p) => samePort(p, listen)));
    if (clash) err(['management', 'listen'], `${m.listen} is also a portal of target ${clash.name}`);
  }
  return m.token === undefined ? { listen } : { listen, token: m.token };
}

function samePort(a: Portal, b: Portal): boolean {
  const wildcard = (h: string) => h === '0.0.0.0' || h === '::';
  return a.port === b.port && (a.host === b.host || wildcard(a.host) || wildcard(b.host));
}

/** A spare replaces a failed member of a redundant group whose disks are no larger than it. */
function checkSpares(d: RawDkc, i: number, groups: RaidGroupConfig[], err: (s: PathSeg[], m: string) => void): SparesConfig | null {
  if (!d.spares) return null;
  const at: PathSeg[] = ['dkcs', i, 'spares'];
  const sizeBytes = parseSize(d.spares.size);
  if (sizeBytes % DISK_ALIGN_BYTES !== 0) err([...at, 'size'], 'must be a whole number of MiB');
  const redundant = groups.filter((g) => g.level !== 0);
  if (redundant.length === 0) {
    err(at, 'no RAID group with redundancy (level 1, 5, 6 or 10) for a spare to serve');
  } else {
    const smallest = Math.min(...redundant.map((g) => g.diskSizeBytes));
    if (sizeBytes < smallest) {
      err([...at, 'size'], `${d.spares.size} is smaller than the disks of every redundant RAID group (smallest ${formatSize(smallest)}): it could replace none`);
    }
  }
  return { count: d.spares.count, sizeBytes, timing: d.spares.timing ?? 'none' };
}

function checkCache(d: RawDkc, i: number, err: (s: PathSeg[], m: string) => void): CacheConfig {
  const sizeBytes = d.cache?.size === undefined ? CACHE_DEFAULT_BYTES : parseSize(d.cache.size);
  if (sizeBytes < CACHE_MIN_BYTES || sizeBytes > CACHE_MAX_BYTES) {
    err(['dkcs', i, 'cache', 'size'], `must be from ${formatSize(CACHE_MIN_BYTES)} to ${formatSize(CACHE_MAX_BYTES)}`);
  }
  return { sizeBytes, mode: d.cache?.mode ?? 'write-through' };
}

function checkRaidGroups(d: RawDkc, i: number, err: (s: PathSeg[], m: string) => void): RaidGroupConfig[] {
  const names = new Map<string, number>();
  return d.raidGroups.map((g, k) => {
    const at: PathSeg[] = ['dkcs', i, 'raidGroups', k];
    firstWins(names, g.name, k, (j) => err([...at, 'name'], `duplicate RAID group name ${g.name} (also raidGroups[${j}])`));
    const stripeSizeBytes = g.stripeSize === undefined ? DEFAULT_STRIPE_BYTES : parseSize(g.stripeSize);
    if (stripeSizeBytes < STRIPE_MIN_BYTES || stripeSizeBytes > STRIPE_MAX_BYTES || (stripeSizeBytes & (stripeSizeBytes - 1)) !== 0) {
      err([...at, 'stripeSize'], `must be a power of two from ${formatSize(STRIPE_MIN_BYTES)} to ${formatSize(STRIPE_MAX_BYTES)}`);
    }
    const diskSizeBytes = parseSize(g.disks.size);
    if (diskSizeBytes % DISK_ALIGN_BYTES !== 0) err([...at, 'disks', 'size'], 'must be a whole number of MiB');
    const countError = diskCountError(g.level, g.disks.count);
    if (countError) err([...at, 'disks', 'count'], countError);
    const capacityBytes = raidCapacity(g.level, g.disks.count, diskSizeBytes, stripeSizeBytes);
    return {
      name: g.name, level: g.level, stripeSizeBytes, diskCount: g.disks.count, diskSizeBytes, timing: g.disks.timing ?? 'none', capacityBytes,
    };
  });
}

function diskCountError(level: RaidGroupConfig['level'], count: number): string | undefined {
  const min = RAID_MIN_DISKS[level];
  const why = { 0: 'striping', 1: 'a mirror', 5: 'data and one parity per row', 6: 'data and two parities per row', 10: 'mirrored pairs, striped' }[level];
  if (level === 10 && (count < min || count % 2 !== 0)) return `RAID 10 needs an even number of disks, at least 4 (${why}); have ${count}`;
  if (count < min) return `RAID ${level} needs at least ${min} disks (${why}); have ${count}`;
  return undefined;
}

function checkVolumes(d: RawDkc, i: number, groups: RaidGroupConfig[], err: (s: PathSeg[], m: string) => void): VolumeConfig[] {
  const names = new Map<string, number>();
  const used = new Map<string, { bytes: number; names: string[] }>();
  if (d.volumes.length > LDEVS_PER_DKC_MAX) err(['dkcs', i, 'volumes'], `at most ${LDEVS_PER_DKC_MAX} volumes per DKC`);
  return d.volumes.map((v, k) => {
    const at: PathSeg[] = ['dkcs', i, 'volumes', k];
    firstWins(names, v.name, k, (j) => err([...at, 'name'], `duplicate volume name ${v.name} (also volumes[${j}])`));
    const blockSize = v.blockSize ?? 512;
    const physicalBlockSize = v.physicalBlockSize ?? blockSize;
    if (physicalBlockSize < blockSize) err([...at, 'physicalBlockSize'], `must not be smaller than blockSize (${blockSize})`);
    const sizeBytes = parseSize(v.size);
    if (sizeBytes % blockSize !== 0) err([...at, 'size'], `must be a whole number of ${blockSize}-byte blocks`);
    if (sizeBytes / blockSize > VOLUME_BLOCKS_MAX) {
      err([...at, 'size'], `must be at most ${formatSize(VOLUME_BLOCKS_MAX * blockSize)} with ${blockSize}-byte blocks (2^31 blocks)`);
    }
    const group = groups.find((g) => g.name === v.group);
    const u = used.get(v.group) ?? { bytes: 0, names: [] };
    const offsetBytes = alignUp(u.bytes, VOLUME_ALIGN_BYTES);
    if (!group) {
      err([...at, 'group'], `no RAID group named ${v.group} in dkcs[${i}] (have: ${groups.map((g) => g.name).join(', ')})`);
    } else if (offsetBytes + sizeBytes > group.capacityBytes) {
      const already = u.names.length ? `, ${formatSize(offsetBytes)} already used by ${u.names.join(', ')}` : '';
      err([...at, 'size'], `${v.size} does not fit in RAID group ${group.name} (capacity ${formatSize(group.capacityBytes)}${already})`);
    }
    used.set(v.group, { bytes: offsetBytes + sizeBytes, names: [...u.names, v.name] });
    return { name: v.name, ldev: k, group: v.group, sizeBytes, blockSize, physicalBlockSize, blockCount: Math.floor(sizeBytes / blockSize), offsetBytes };
  });
}

function checkTarget(
  t: RawDkc['targets'][number],
  at: PathSeg[],
  volumes: VolumeConfig[],
  err: (s: PathSeg[], m: string) => void,
): TargetConfig {
  const portals = t.portals.map((p, k) => {
    const portal = parsePortal(p);
    if (portal.port > 65535) err([...at, 'portals', k], 'port must be from 0 to 65535');
    return portal;
  });
  const luns = new Map<number, number>();
  const lunConfigs = t.luns.map((l, k) => {
    firstWins(luns, l.lun, k, (j) => err([...at, 'luns', k, 'lun'], `duplicate LUN ${l.lun} (also luns[${j}])`));
    const v = volumes.find((x) => x.name === l.volume);
    if (!v) err([...at, 'luns', k, 'volume'], `no volume named ${l.volume} in this DKC (have: ${volumes.map((x) => x.name).join(', ')})`);
    if (l.commandDevice) {
      for (const key of ['readOnly', 'removable'] as const) {
        if (l[key]) err([...at, 'luns', k, key], 'a command device has no medium: it cannot be read-only or removable');
      }
    }
    return {
      lun: l.lun, volume: l.volume, ldev: v?.ldev ?? -1, readOnly: l.readOnly ?? false, removable: l.removable ?? false,
      commandDevice: l.commandDevice ?? false, vendor: l.vendor, product: l.product, revision: l.revision,
    };
  });
  const chap = t.chap ? checkChap(t.chap, [...at, 'chap'], err) : undefined;
  return { name: t.name, alias: t.alias, portals, acl: t.acl ?? [], chap, nopIn: t.nopIn, luns: lunConfigs };
}

function checkChap(c: RawChap, at: PathSeg[], err: (s: PathSeg[], m: string) => void): ChapSecret {
  // RFC 7143 12.1.3: the secrets for the two directions must differ.
  if (c.mutual && c.mutual.secret === c.secret) err([...at, 'mutual', 'secret'], 'must differ from the initiator secret (RFC 7143 12.1.3)');
  return { user: c.user, secret: c.secret, mutualUser: c.mutual?.user, mutualSecret: c.mutual?.secret };
}

function firstWins<K>(seen: Map<K, number>, key: K, index: number, onDuplicate: (first: number) => void): void {
  const first = seen.get(key);
  if (first === undefined) seen.set(key, index);
  else onDuplicate(first);
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}
