'use strict';
// Mocha reporter for scripts/test.sh: mocha's own "spec" output for people, plus
// the run's counts written as JSON to --reporter-option output=FILE, so that the
// script can add them to its total. Mocha allows only one reporter per run.
//
//   mocha --reporter ./scripts/mocha-counts-reporter.cjs --reporter-option output=FILE
//
// FILE: {"tests":N,"passes":N,"failures":N,"pending":N,"duration":ms}
// "failures" counts failed tests and failed hooks (a failed before() hook is one
// failure, and the tests it prevented are not run), as mocha's own summary does.
const fs = require('node:fs');
const { Spec } = require('mocha/lib/reporters/index.cjs');

class SpecWithCounts extends Spec {
  constructor(runner, options = {}) {
    super(runner, options);
    const opts = options.reporterOption || options.reporterOptions || {};
    const output = opts.output;
    runner.once('end', () => {
      if (!output) return;
      const s = runner.stats || {};
      const counts = {
        tests: s.tests || 0,
        passes: s.passes || 0,
        failures: s.failures || 0,
        pending: s.pending || 0,
        duration: s.duration || 0,
      };
      fs.writeFileSync(output, JSON.stringify(counts) + '\n');
    });
  }
}

module.exports = SpecWithCounts;
