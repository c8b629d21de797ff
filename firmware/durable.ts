// Small durable-file helpers shared by the firmware's metadata and the emulator's data directory.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

/** Make a directory's entries (new, renamed or removed names) durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Replace a whole file atomically: after a crash either the old or the new contents are there.
 * Write a temp file, fsync it, rename it over the target, fsync the directory.
 */
export async function writeFileAtomic(file: string, data: string | Buffer): Promise<void> {
  const tmp = `${file}.tmp`;
  const fh = await fs.open(tmp, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fs.rename(tmp, file);
  await fsyncDir(path.dirname(file));
}

/**
 * One small JSON document kept in a file (the DKC's persisted tables): read once at power-on,
 * replaced whole and atomically on every change, the writes one at a time in call order.
 */
export class JsonDocumentFile {
  private chain: Promise<void> = Promise.resolve();

  constructor(readonly file: string) {}

  /** The document, or undefined if the file does not exist; text that is not JSON names the file. */
  async read(): Promise<unknown> {
    let text: string;
    try {
      text = await fs.readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new Error(`${this.file}: not JSON (${(err as Error).message})`);
    }
  }

  /** Resolves when this and every earlier write is durable (doc is serialized now). */
  write(doc: unknown): Promise<void> {
    const text = `${JSON.stringify(doc, null, 1)}\n`;
    this.chain = this.chain.catch(() => undefined).then(() => writeFileAtomic(this.file, text));
    return this.chain;
  }

  /** Resolves when every write so far has ended (or failed). */
  idle(): Promise<void> {
    return this.chain.catch(() => undefined);
  }
}

const TWO_32 = 2 ** 32;

/** A whole number below 2^53 as 8 bytes little-endian (journal and log records). */
export function writeU64(buf: Buffer, n: number, at: number): void {
  buf.writeUInt32LE(n % TWO_32, at);
  buf.writeUInt32LE(Math.floor(n / TWO_32), at + 4);
}

export function readU64(buf: Buffer, at: number): number {
  return buf.readUInt32LE(at) + buf.readUInt32LE(at + 4) * TWO_32;
}
