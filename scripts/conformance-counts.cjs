'use strict';
// Counts one iscsi-conformance --json result against scripts/known-failures.txt:
//   node scripts/conformance-counts.cjs RESULT.json KNOWN.txt  ->  "PASS FAIL SKIP XFAIL CUT"
// A FAIL of a listed test is an expected failure (XFAIL), printed with its reason on stderr;
// a listed test that passes is printed as XPASS so that its entry can go.
const fs = require('node:fs');

const [jsonFile, knownFile] = process.argv.slice(2);
const result = JSON.parse(fs.readFileSync(jsonFile, 'utf8'));
const known = new Map();
for (const line of fs.readFileSync(knownFile, 'utf8').split('\n')) {
  const m = /^(\S+)\s+(.*)$/.exec(line.trim());
  if (m && !line.startsWith('#')) known.set(m[1], m[2]);
}
const n = { PASS: 0, FAIL: 0, SKIP: 0, XFAIL: 0 };
for (const r of result.results) {
  if (r.verdict === 'FAIL' && known.has(r.test)) {
    n.XFAIL++;
    process.stderr.write(`XFAIL ${r.test}: ${known.get(r.test)}\n`);
  } else {
    n[r.verdict]++;
    if (r.verdict === 'PASS' && known.has(r.test)) process.stderr.write(`XPASS ${r.test}: listed in ${knownFile}, now passes\n`);
  }
}
console.log(n.PASS, n.FAIL, n.SKIP, n.XFAIL, result.cut_short ? 1 : 0);
