import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { ROOT } from '../emulator/helpers';

// STYLE.md: no Date.now, setTimeout or Math.random in firmware/ or emulator/: time moves only by
// the (injectable) clock, randomness only from the seeded generator.
const FORBIDDEN = /\b(Date\.now|new Date\(|setTimeout|setInterval|setImmediate|Math\.random|performance\.now|process\.hrtime)\b/;

function sources(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : [],
  );
}

describe('firmware and emulator take no time or randomness from the host', () => {
  for (const dir of ['firmware', 'emulator']) {
    it(`${dir}/ uses no Date.now, timers or Math.random`, () => {
      const files = sources(dir);
      assert.ok(files.length > 0);
      for (const f of files) {
        readFileSync(path.join(ROOT, f), 'utf8')
          .split('\n')
          .forEach((line, i) => {
            if (/^\s*(\/\/|\*)/.test(line)) return;
            assert.doesNotMatch(line, FORBIDDEN, `${f}:${i + 1}`);
          });
      }
    });
  }
});
