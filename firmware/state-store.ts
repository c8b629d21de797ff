// Per-LU state documents (e.g. APTPL persistent reservations) kept in one directory.
// save() is atomic: write a temp file, fsync it, rename it over the old one, fsync the directory.
// Saves of the same name are serialized so two temp files never race for one name.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from './durable';
import type { StateStore } from './volume';

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export class DirStateStore implements StateStore {
  private readonly chains = new Map<string, Promise<void>>();

  constructor(readonly dir: string) {}

  async load(name: string): Promise<string | undefined> {
    try {
      return await fs.readFile(this.file(name), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  save(name: string, text: string): Promise<void> {
    const file = this.file(name);
    const prev = this.chains.get(name) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(() => this.writeAtomic(file, text));
    this.chains.set(name, next);
    const cleanup = () => {
      if (this.chains.get(name) === next) this.chains.delete(name);
    };
    next.then(cleanup, cleanup);
    return next;
  }

  private async writeAtomic(file: string, text: string): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true });
    await writeFileAtomic(file, text);
  }

  // Names come from target/ code, not from users: anything else is a bug.
  private file(name: string): string {
    if (!NAME_RE.test(name) || name.endsWith('.tmp')) throw new Error(`state store: bad document name ${JSON.stringify(name)}`);
    return path.join(this.dir, name);
  }
}
