'use strict';
// Reads a rack YAML (configs/test.yaml) and prints, as shell assignments that keep any value
// already set in the environment, the targets and LUNs the system part of scripts/test.sh uses
// (the layout in scripts/README.md):
//
//   node scripts/test-layout.cjs configs/test.yaml
//   [ -n "${TEST_IQN:-}" ] || TEST_IQN='iqn...'   (one line per value)
//
// main target: the first target without CHAP; in it, the 512-byte disk (neither removable nor
// read-only, 512-byte physical blocks), the 4096-byte disk, the removable LU, the read-only LU,
// the 512e disk (512-byte blocks, physicalBlockSize 4096) and the sanitize LU (a plain disk whose
// volume name contains "sanitize": libiscsi's SANITIZE tests erase it, so no other pick takes it).
// CHAP target: the first with chap and without chap.mutual; mutual target: the first with chap.mutual.
// Prints only what it finds; exits 1 if the file cannot be read or parsed.
const fs = require('node:fs');
const YAML = require('yaml');

function shq(s) {
  return "'" + String(s).replace(/'/g, "'\\''") + "'";
}

function main(file) {
  const rack = YAML.parse(fs.readFileSync(file, 'utf8')) || {};
  const out = [];
  const set = (name, value) => {
    if (value !== undefined && value !== null) out.push(`[ -n "\${${name}:-}" ] || ${name}=${shq(value)}`);
  };
  const targets = [];
  for (const dkc of rack.dkcs || []) {
    const levels = new Map((dkc.raidGroups || []).map((g) => [g.name, g.level]));
    const volumes = new Map((dkc.volumes || []).map((v) => [v.name, { ...v, level: levels.get(v.group) }]));
    for (const t of dkc.targets || []) targets.push({ t, volumes });
  }
  const lunOf = (entry, pred) => {
    for (const l of entry.t.luns || []) {
      const v = entry.volumes.get(l.volume) || {};
      if (pred(l, v)) return l.lun;
    }
    return undefined;
  };
  const main = targets.find((e) => !e.t.chap);
  if (main) {
    set('TEST_IQN', main.t.name);
    const sanitizeVol = (l) => /sanitize/i.test(String(l.volume));
    const plain = (l) => !l.removable && !l.readOnly && !sanitizeVol(l);
    const bs = (v) => v.blockSize ?? 512;
    const pbs = (v) => v.physicalBlockSize ?? bs(v);
    set('TEST_LUN_512', lunOf(main, (l, v) => plain(l) && bs(v) === 512 && pbs(v) === 512));
    set('TEST_LUN_4K', lunOf(main, (l, v) => plain(l) && bs(v) === 4096));
    set('TEST_LUN_REMOVABLE', lunOf(main, (l) => l.removable === true && !sanitizeVol(l)));
    set('TEST_LUN_READONLY', lunOf(main, (l) => l.readOnly === true && !sanitizeVol(l)));
    set('TEST_LUN_512E', lunOf(main, (l, v) => plain(l) && bs(v) === 512 && pbs(v) === 4096));
    set('TEST_LUN_SANITIZE', lunOf(main, (l) => sanitizeVol(l) && !l.removable && !l.readOnly));
    set('TEST_LUN_RAID5', lunOf(main, (l, v) => plain(l) && v.level === 5));
  }
  const chap = targets.find((e) => e.t.chap && !e.t.chap.mutual);
  if (chap) {
    set('TEST_CHAP_IQN', chap.t.name);
    set('TEST_CHAP_LUN', lunOf(chap, () => true));
    set('TEST_CHAP_USER', chap.t.chap.user);
    set('TEST_CHAP_SECRET', chap.t.chap.secret);
  }
  const mutual = targets.find((e) => e.t.chap && e.t.chap.mutual);
  if (mutual) {
    set('TEST_MUTUAL_IQN', mutual.t.name);
    set('TEST_MUTUAL_LUN', lunOf(mutual, () => true));
    set('TEST_MUTUAL_USER', mutual.t.chap.user);
    set('TEST_MUTUAL_SECRET', mutual.t.chap.secret);
    set('TEST_MUTUAL_TARGET_USER', mutual.t.chap.mutual.user);
    set('TEST_MUTUAL_TARGET_SECRET', mutual.t.chap.mutual.secret);
  }
  process.stdout.write(out.join('\n') + '\n');
}

try {
  main(process.argv[2] || 'configs/test.yaml');
} catch (err) {
  process.stderr.write(`test-layout: ${err.message}\n`);
  process.exit(1);
}
