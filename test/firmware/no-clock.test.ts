import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { ROOT } from '../helpers/common';

// STYLE.md: no Date.now, setTimeout or Math.random in firmware/ or emulator/: time moves only by
// the kernel's clock, randomness only from its seeded generator. The one file that may touch the
// host's time and timers is the kernel's clock itself.
const FORBIDDEN =
  /\b(Date\.now|new Date\(|setTimeout|setInterval|setImmediate|queueMicrotask|Math\.random|performance\.now|process\.hrtime|randomBytes|randomUUID|randomInt|getRandomValues)\b/;
/** Files allowed to touch the host, each for its reason. */
const EXEMPT = new Set([
  path.join('firmware', 'kernel', 'clock.ts'), // the kernel's clock: the one door to real time
  path.join('emulator', 'rack', 'mgmt.ts'), // the management API token is a credential: crypto randomness, never the seeded generator
]);

function sources(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : [],
  );
}

describe('firmware and emulator take no time or randomness from the host', () => {
  for (const dir of ['firmware', 'emulator']) {
    it(`${dir}/ uses no Date.now, timers or Math.random`, () => {
      const files = sources(dir).filter((f) => !EXEMPT.has(f));
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
