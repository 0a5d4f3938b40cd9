/**
 * `npm run bench`: every benchmark beside its baseline, as ratios. `npm run bench -- storage`
 * runs only the benchmarks whose name contains "storage".
 *
 * Every run writes its figures to `bench-results.json` at the project root (generated, not
 * committed), replacing the entries of the figures it measured and keeping the others, and the
 * table shows each figure beside the one the file held before, so a run can be compared with the
 * last one.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { type BenchResult, type ResultEntry, report, toEntry } from './harness.js';

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
  { name: 'replay', run: async () => (await import('./replay.bench.js')).default() },
  { name: 'gate', run: async () => (await import('./gate.bench.js')).default() },
  { name: 'web', run: async () => (await import('./web.bench.js')).default() },
];

const RESULTS_FILE = path.resolve('bench-results.json');

async function previousRun(): Promise<ResultEntry[] | undefined> {
  try {
    const entries: unknown = JSON.parse(await fs.readFile(RESULTS_FILE, 'utf8'));
    return Array.isArray(entries) ? (entries as ResultEntry[]).filter((e) => e && typeof e.name === 'string') : undefined;
  } catch {
    return undefined;
  }
}

const filter = process.argv[2];
const previous = await previousRun();
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
process.stdout.write(`${report(results, previous && new Map(previous.map((e) => [e.name, e])))}\n`);
const measured = results.map(toEntry);
const kept = (previous ?? []).filter((e) => !measured.some((m) => m.name === e.name));
await fs.writeFile(RESULTS_FILE, `${JSON.stringify([...kept, ...measured], null, 2)}\n`);
process.stdout.write(`figures written to ${RESULTS_FILE}\n`);
if (results.some((r) => !r.pass)) process.exitCode = 1;
