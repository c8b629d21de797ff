// Rack configuration: YAML -> schema check (ajv) -> cross-checks -> a normalized RackConfig.
// Every error names file:line and the key path, e.g.
//   configs/x.yaml:12: dkcs[0].volumes[1].size: must be a size like 10GiB
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import Ajv, { ErrorObject } from 'ajv';
import { isMap, isNode, isPair, isScalar, isSeq, LineCounter, parseDocument, Document } from 'yaml';
import type { RaidLevel } from '../../firmware/drive';
import type { ChapSecret, NopInOptions, Portal } from '../../target/iscsi/types';
import { crossCheck } from './config-check';
import { PORTAL_RE, rackSchema, SIZE_RE } from './schema';

/** How a drive's I/O takes time: none (as fast as the host file), or a model of a hard disk or SSD. */
export type DiskTiming = 'none' | 'hdd' | 'ssd';

export interface RaidGroupConfig {
  name: string;
  level: RaidLevel;
  stripeSizeBytes: number;
  diskCount: number;
  diskSizeBytes: number;
  timing: DiskTiming;
  capacityBytes: number;
}

/** Drives in the DKC's spare pool; one takes the place of a failed member it is big enough for. */
export interface SparesConfig {
  count: number;
  sizeBytes: number;
  timing: DiskTiming;
}

export interface VolumeConfig {
  name: string;
  /** LDEV number: the volume's index in its DKC's list (so append-only keeps numbers stable). */
  ldev: number;
  group: string;
  sizeBytes: number;
  blockSize: 512 | 4096;
  /** Physical block size reported to hosts (READ CAPACITY(16)); 4096 with blockSize 512 is 512e. */
  physicalBlockSize: 512 | 4096;
  blockCount: number;
  /** Placement in the RAID group: volumes follow each other in list order, 1 MiB aligned. */
  offsetBytes: number;
}

export interface LunConfig {
  lun: number;
  volume: string;
  ldev: number;
  readOnly: boolean;
  removable: boolean;
  /** A command device (peripheral type 0Ch) that takes the pair commands (docs/pairs.md). */
  commandDevice: boolean;
  vendor?: string;
  product?: string;
  revision?: string;
}

export interface TargetConfig {
  name: string;
  alias?: string;
  portals: Portal[];
  acl: string[];
  chap?: ChapSecret;
  nopIn?: NopInOptions;
  luns: LunConfig[];
}

export interface CacheConfig {
  sizeBytes: number;
  mode: 'write-back' | 'write-through' | 'off';
}

export interface RebuildConfig {
  /** Pause of the rebuild task between rows, on the kernel's clock; 0: no pause. */
  paceMs: number;
}

export interface ScrubConfig {
  /** A scrub pass over every redundant group starts this long after the previous one began. */
  intervalMs: number;
}

/** The management HTTP API (emulator/rack/mgmt.ts); absent: none. */
export interface ManagementConfig {
  /** A loopback address (127.0.0.0/8 or ::1); port 0: any free port. */
  listen: Portal;
  /** Bearer token; absent: the rack keeps one in <data-dir>/management.token (managementToken()). */
  token?: string;
}

export interface DkcConfig {
  name: string;
  serial: number;
  /** The DKC cache in RAM (firmware/cache/cache.ts). */
  cache: CacheConfig;
  raidGroups: RaidGroupConfig[];
  /** null: no spare pool. */
  spares: SparesConfig | null;
  rebuild: RebuildConfig;
  /** null: no scrubbing. */
  scrub: ScrubConfig | null;
  /** The DKC kernel's random seed (firmware/kernel/prng.ts). */
  seed: number;
  volumes: VolumeConfig[];
  targets: TargetConfig[];
}

export interface RackConfig {
  file: string;
  /** Rack name: the config file's base name (default data dir ./data/<name>). */
  name: string;
  dkcs: DkcConfig[];
  discoveryChap?: ChapSecret;
  management?: ManagementConfig;
}

export const DEFAULT_STRIPE_BYTES = 64 * 1024;
export const DEFAULT_SEED = 1;
export const DEFAULT_REBUILD_PACE_MS = 0;
export const VOLUME_ALIGN_BYTES = 1024 * 1024;

/** Fewest member disks per RAID level (RAID 10 also needs an even count). */
export const RAID_MIN_DISKS: Record<RaidLevel, number> = { 0: 2, 1: 2, 5: 3, 6: 4, 10: 4 };

export class ConfigError {
  constructor(readonly file: string, readonly line: number, readonly path: string, readonly message: string) {}
  toString(): string {
    return `${this.file}:${this.line}: ${this.path ? `${this.path}: ` : ''}${this.message}`;
  }
}

export type ConfigResult = { ok: true; config: RackConfig } | { ok: false; errors: ConfigError[] };

export type PathSeg = string | number;

/** Maps key paths of the parsed document to 1-based line numbers. */
export class SourceMap {
  constructor(private readonly doc: Document, private readonly lines: LineCounter, readonly file: string) {}

  /** Line of the node at segs, or of its nearest existing ancestor. */
  line(segs: PathSeg[], key?: boolean): number {
    for (let n = segs.length; n >= 0; n--) {
      const offset = this.offsetOf(segs.slice(0, n), key === true && n === segs.length);
      if (offset !== undefined) return this.lines.linePos(offset).line;
    }
    return 1;
  }

  error(segs: PathSeg[], message: string, key?: boolean): ConfigError {
    return new ConfigError(this.file, this.line(segs, key), formatPath(segs), message);
  }

  private offsetOf(segs: PathSeg[], key: boolean): number | undefined {
    if (segs.length === 0) return this.doc.contents?.range?.[0];
    const parent = segs.length === 1 ? this.doc.contents : this.doc.getIn(segs.slice(0, -1), true);
    const last = segs[segs.length - 1];
    if (isMap(parent)) {
      const pair = parent.items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === last);
      const node = key ? pair?.key : pair?.value ?? pair?.key;
      return isNode(node) ? node.range?.[0] : undefined;
    }
    if (isSeq(parent) && typeof last === 'number') {
      const node = parent.items[last];
      return isNode(node) ? node.range?.[0] : undefined;
    }
    return undefined;
  }
}

export function formatPath(segs: PathSeg[]): string {
  let out = '';
  for (const s of segs) out += typeof s === 'number' ? `[${s}]` : out ? `.${s}` : s;
  return out;
}

export function parseSize(text: string): number {
  const m = SIZE_RE.exec(text);
  if (!m) throw new Error(`not a size: ${text}`);
  const unit = { B: 1, KiB: 2 ** 10, MiB: 2 ** 20, GiB: 2 ** 30, TiB: 2 ** 40 }[m[2] as 'B'];
  return Number(m[1]) * unit;
}

export function formatSize(bytes: number): string {
  for (const [unit, n] of [['TiB', 2 ** 40], ['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]] as const) {
    if (bytes >= n && bytes % n === 0) return `${bytes / n}${unit}`;
  }
  return `${bytes}B`;
}

export function parsePortal(text: string): Portal {
  const m = PORTAL_RE.exec(text);
  if (!m) throw new Error(`not a portal: ${text}`);
  const host = m[1].startsWith('[') ? m[1].slice(1, -1) : m[1];
  return { host, port: Number(m[2]) };
}

const ajv = new Ajv({ allErrors: true, verbose: true, strict: true });
ajv.addKeyword({ keyword: 'x-message', schemaType: 'string' });
const validateSchema = ajv.compile(rackSchema);

export async function loadConfig(file: string): Promise<ConfigResult> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    return { ok: false, errors: [new ConfigError(file, 0, '', `cannot read: ${(err as Error).message}`)] };
  }
  return parseConfig(text, file);
}

export function parseConfig(text: string, file: string): ConfigResult {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      errors: doc.errors.map((e) => new ConfigError(file, lines.linePos(e.pos[0]).line, '', `YAML: ${e.message.split('\n')[0]}`)),
    };
  }
  const src = new SourceMap(doc, lines, file);
  const data: unknown = doc.toJS({ maxAliasCount: 100 });
  if (!validateSchema(data)) {
    return { ok: false, errors: sortErrors(dedupe((validateSchema.errors ?? []).map((e) => schemaError(e, src)))) };
  }
  const name = path.basename(file).replace(/\.ya?ml$/i, '');
  const result = crossCheck(data as unknown as RawRack, src, name);
  return result.errors.length > 0 ? { ok: false, errors: sortErrors(result.errors) } : { ok: true, config: result.config };
}

function schemaError(e: ErrorObject, src: SourceMap): ConfigError {
  const segs: PathSeg[] = e.instancePath
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^[0-9]+$/.test(s) ? Number(s) : s));
  if (e.keyword === 'additionalProperties') {
    const key = (e.params as { additionalProperty: string }).additionalProperty;
    const known = Object.keys((e.parentSchema as { properties?: object })?.properties ?? {});
    const near = known.find((k) => editDistance(k.toLowerCase(), key.toLowerCase()) <= 2);
    const hint = near ? `did you mean ${near}?` : `expected one of: ${known.join(', ')}`;
    return src.error([...segs, key], `unknown key (${hint})`, true);
  }
  if (e.keyword === 'required') {
    const key = (e.params as { missingProperty: string }).missingProperty;
    // Point at the parent's key ("chap:"), not at its first child: that is where the key belongs.
    return new ConfigError(src.file, src.line(segs, true), formatPath([...segs, key]), 'is required');
  }
  const custom = (e.parentSchema as Record<string, unknown> | undefined)?.['x-message'];
  if (e.keyword === 'type' && (e.params as { type: string }).type === 'object' && !custom) {
    return src.error(segs, 'must be a mapping (key: value)');
  }
  if (e.keyword === 'type' && (e.params as { type: string }).type === 'array') return src.error(segs, 'must be a list');
  if (e.keyword === 'minItems') {
    const n = (e.params as { limit: number }).limit;
    return src.error(segs, `must list at least ${n} ${n === 1 ? 'entry' : 'entries'}`);
  }
  return src.error(segs, typeof custom === 'string' ? custom : e.message ?? 'is invalid');
}

/** Levenshtein distance, for "did you mean" on short key names. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_x, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

function dedupe(errors: ConfigError[]): ConfigError[] {
  const seen = new Set<string>();
  return errors.filter((e) => {
    const k = e.toString();
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function sortErrors(errors: ConfigError[]): ConfigError[] {
  return errors.sort((a, b) => a.line - b.line);
}

// The document as the schema guarantees it (before normalization).
export interface RawChap {
  user: string;
  secret: string;
  mutual?: { user: string; secret: string };
}
export interface RawRack {
  dkcs: {
    name: string;
    serial: number;
    cache?: { size?: string; mode?: CacheConfig['mode'] };
    raidGroups: { name: string; level: RaidLevel; stripeSize?: string; disks: RawDisks }[];
    spares?: RawDisks;
    rebuild?: { paceMs?: number };
    scrub?: { intervalMinutes?: number };
    seed?: number;
    volumes: { name: string; group: string; size: string; blockSize?: 512 | 4096; physicalBlockSize?: 512 | 4096 }[];
    targets: {
      name: string;
      alias?: string;
      portals: string[];
      acl?: string[];
      chap?: RawChap;
      nopIn?: NopInOptions;
      luns: { lun: number; volume: string; readOnly?: boolean; removable?: boolean; commandDevice?: boolean; vendor?: string; product?: string; revision?: string }[];
    }[];
  }[];
  discovery?: { chap?: RawChap };
  management?: { listen: string; token?: string };
}
export interface RawDisks {
  count: number;
  size: string;
  timing?: DiskTiming;
}
