// Test helpers shared by test/firmware and test/emulator: temporary data dirs, a silent logger.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';

export const silentLog = pino({ level: 'silent' });

/** Project root (tests run from dist/test/...). */
export const ROOT = path.resolve(__dirname, '..', '..', '..');

/** A fresh directory under os.tmpdir(), removed after the current describe block. */
export function tmpDirs(): { make(tag?: string): string } {
  const made: string[] = [];
  after(() => {
    for (const d of made) rmSync(d, { recursive: true, force: true });
  });
  return {
    make(tag = 'dkc') {
      const d = mkdtempSync(path.join(os.tmpdir(), `${tag}-`));
      made.push(d);
      return d;
    },
  };
}

/** A block whose bytes say which LBA and generation wrote it. */
export function pattern(blockSize: number, lba: number, blocks: number, gen: number): Buffer {
  const buf = Buffer.alloc(blockSize * blocks);
  for (let i = 0; i < blocks; i++) {
    const off = i * blockSize;
    buf.fill((lba + i + gen) & 0xff | 1, off, off + blockSize);
    buf.writeUInt32LE(lba + i, off);
    buf.writeUInt32LE(gen, off + 4);
  }
  return buf;
}

/** Small deterministic PRNG for tests (mulberry32). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const BROKEN_DIR = path.join(ROOT, 'test', 'emulator', 'rack', 'configs', 'broken');

/** The errors a broken config must produce, from its `# expect: LINE: KEY: message` header lines. */
export function expectedErrors(file: string): string[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('# expect: '))
    .map((l) => `${file}:${l.slice('# expect: '.length)}`);
}
