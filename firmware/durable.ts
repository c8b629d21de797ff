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
