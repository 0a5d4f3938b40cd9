/**
 * `npm run bench`: every benchmark beside its baseline, as ratios. `npm run bench -- storage`
 * runs only the benchmarks whose name contains "storage".
 */
import { type BenchResult, report } from './harness.js';

type Bench = { name: string; run: () => Promise<BenchResult[]> };

const BENCHES: Bench[] = [
  { name: 'install', run: async () => (await import('./install.bench.js')).default() },
  { name: 'storage', run: async () => (await import('./storage.bench.js')).default() },
  { name: 'cold-start', run: async () => (await import('./cold-start.bench.js')).default() },
  { name: 'memory', run: async () => (await import('./memory.bench.js')).default() },
  { name: 'router', run: async () => (await import('./router.bench.js')).default() },
  { name: 'egress', run: async () => (await import('./egress.bench.js')).default() },
  { name: 'schema', run: async () => (await import('./schema.bench.js')).default() },
  { name: 'cli', run: async () => (await import('./cli.bench.js')).default() },
];

const filter = process.argv[2];
const results: BenchResult[] = [];
for (const bench of BENCHES.filter((b) => !filter || b.name.includes(filter))) {
  process.stderr.write(`running ${bench.name}...\n`);
  try {
    results.push(...(await bench.run()));
  } catch (error) {
    process.stderr.write(`  ${bench.name} failed: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 1;
  }
}
process.stdout.write(`${report(results)}\n`);
if (results.some((r) => !r.pass)) process.exitCode = 1;
