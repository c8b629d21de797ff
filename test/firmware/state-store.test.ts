import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { DirStateStore } from '../../firmware/state-store';
import { tmpDirs } from '../helpers/common';

describe('StateStore (per-LU documents)', () => {
  const tmp = tmpDirs();

  it('load of a missing document is undefined; save then load returns the text', async () => {
    const s = new DirStateStore(path.join(tmp.make(), 'lun-0'));
    assert.equal(await s.load('pr'), undefined);
    await s.save('pr', 'key=1\n');
    assert.equal(await s.load('pr'), 'key=1\n');
  });

  it('concurrent saves of one name end with the last one, and leave no temp file', async () => {
    const dir = path.join(tmp.make(), 'lun-1');
    const s = new DirStateStore(dir);
    await Promise.all(Array.from({ length: 20 }, (_x, i) => s.save('pr', `gen ${i}`)));
    assert.equal(await s.load('pr'), 'gen 19');
    assert.deepEqual(await fs.readdir(dir), ['pr']);
    assert.equal(await new DirStateStore(dir).load('pr'), 'gen 19', 'another instance (a restart) reads it');
  });

  it('names that could escape the directory are refused', async () => {
    const s = new DirStateStore(tmp.make());
    await assert.rejects(async () => s.save('../x', 'y'), /bad document name/);
    await assert.rejects(async () => s.load('a/b'), /bad document name/);
  });
});
