// Runs every benchmark suite in turn and prints one line per case (npm run bench).
// Benchmarks never run inside the test suite; results go to bench/RESULTS.md by hand.
// `run.js pairs` runs the pair scenario (bench/pairs.bench.ts) instead: minutes and ~2.5 GiB of
// disk writes, so a plain `npm run bench` leaves it out. `run.js degraded` times 4 KiB random
// writes on a healthy and a degraded RAID-5 group (bench/degraded-write.bench.ts).
import Benchmark from 'benchmark';
import { bitmapSuite } from './bitmap.bench';
import { cacheSuite, prepareCache } from './cache.bench';
import { cdbSuite } from './cdb.bench';
import { degradedWriteBench } from './degraded-write.bench';
import { pairsBench } from './pairs.bench';
import { paritySuite } from './parity.bench';
import { pduSuite } from './pdu.bench';

const suites: Array<() => Benchmark.Suite> = [pduSuite, cdbSuite, cacheSuite, bitmapSuite, paritySuite];

function run(suite: Benchmark.Suite): Promise<void> {
  return new Promise((resolve) => {
    suite
      .on('cycle', (e: Benchmark.Event) => {
        const b = e.target as unknown as Benchmark;
        const ops = (b.hz ?? 0).toLocaleString('en-US', { maximumFractionDigits: 0 });
        const ns = ((b.stats?.mean ?? 0) * 1e9).toFixed(0);
        console.log(`| ${suite.name} | ${b.name} | ${ops} | ${ns} | ±${(b.stats?.rme ?? 0).toFixed(2)}% | ${b.stats?.sample.length ?? 0} |`);
      })
      .on('complete', () => resolve())
      .run({ async: false });
  });
}

async function main(): Promise<void> {
  const only = process.argv[2];
  if (only === 'pairs') return pairsBench();
  if (only === 'degraded') return degradedWriteBench();
  console.log(`node ${process.version}, ${process.platform}/${process.arch}`);
  console.log('| suite | case | ops/s | ns/op | rme | samples |');
  console.log('| --- | --- | ---: | ---: | ---: | ---: |');
  await prepareCache();
  for (const make of suites) {
    const s = make();
    if (only === undefined || s.name === only) await run(s);
  }
}

void main();
