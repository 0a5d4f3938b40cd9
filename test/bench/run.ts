/**
 * `npm run bench`: every benchmark beside its baseline, as ratios, each benchmark in a process of
 * its own (one.ts). `npm run bench -- storage` runs only the benchmarks whose name contains "storage".
 *
 *   --repeat N      runs of the whole suite (default 2 for a full run, 1 for a filtered one);
 *                   each figure is the median run's, with the spread between runs stored beside it
 *   --compare FILE  compares with an earlier bench-results.json: a ratio that fell by more than
 *                   its spread is reported as a regression (regression.ts) and the exit code is 1
 *
 * Every run writes its figures to `bench-results.json` at the project root (generated, not
 * committed), replacing the entries of the figures it measured and keeping the others, and the
 * table shows each figure beside the one the file held before. It also writes bench-report.md
 * and bench-report.svg (generated) and, for a full run, docs/benchmarks.md and
 * docs/benchmarks.svg: the latest table, committed, with the machine it came from.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { BENCHES, type Bench } from './benches.js';
import { type BenchResult, type ResultEntry, report } from './harness.js';
import { chart, markdown, thisMachine } from './markdown.js';
import { compareResults, parseResults } from './regression.js';
import { FULL_RUN_REPEATS, foldRuns } from './runs.js';

/** Runs `bench` in a process of its own (one.ts says why), with this process's Node flags and environment. */
async function runAlone(bench: Bench, dir: string): Promise<BenchResult[]> {
  const out = path.join(dir, `${bench.name}.json`);
  const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(new URL('./one.ts', import.meta.url)), bench.name, out], { stdio: 'inherit' });
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  if (code !== 0) throw new Error(`its process ended with ${signal ?? `exit code ${code}`}`);
  return JSON.parse(await fs.readFile(out, 'utf8')) as BenchResult[];
}

const RESULTS_FILE = path.resolve('bench-results.json');
const REPORT_FILE = path.resolve('bench-report.md');
const DOCS_FILE = path.resolve('docs/benchmarks.md');

async function previousRun(): Promise<ResultEntry[] | undefined> {
  try {
    const entries: unknown = JSON.parse(await fs.readFile(RESULTS_FILE, 'utf8'));
    return Array.isArray(entries) ? (entries as ResultEntry[]).filter((e) => e && typeof e.name === 'string') : undefined;
  } catch {
    return undefined;
  }
}

function options(): { filter?: string; repeat: number; compare?: string } {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { repeat: { type: 'string' }, compare: { type: 'string' } } });
  if (positionals.length > 1) throw new Error(`bench: one name filter at most, got ${positionals.join(' ')}`);
  const filter = positionals[0];
  const repeat = values.repeat === undefined ? (filter ? 1 : FULL_RUN_REPEATS) : Number(values.repeat);
  if (!Number.isInteger(repeat) || repeat < 1 || repeat > 20) throw new Error(`bench: --repeat ${values.repeat} is not a whole number from 1 to 20`);
  if (filter && !BENCHES.some((b) => b.name.includes(filter)))
    throw new Error(`bench: no benchmark's name contains "${filter}" (${BENCHES.map((b) => b.name).join(', ')})`);
  return { ...(filter ? { filter } : {}), repeat, ...(values.compare ? { compare: path.resolve(values.compare) } : {}) };
}

const opts = options();
// Read before anything runs: a file that cannot be compared with is known before 15 minutes of benchmarks.
const comparedWith = opts.compare ? parseResults(await fs.readFile(opts.compare, 'utf8'), opts.compare) : undefined;
const previous = await previousRun();
const started = Date.now();
const machine = thisMachine();
const runs: BenchResult[][] = [];
const resultsDir = await fs.mkdtemp(path.join(os.tmpdir(), 'isogate-bench-'));
for (let run = 1; run <= opts.repeat; run += 1) {
  const results: BenchResult[] = [];
  for (const bench of BENCHES.filter((b) => !opts.filter || b.name.includes(opts.filter))) {
    process.stderr.write(`running ${bench.name}${opts.repeat > 1 ? ` (run ${run} of ${opts.repeat})` : ''}...\n`);
    try {
      results.push(...(await runAlone(bench, resultsDir)));
    } catch (error) {
      process.stderr.write(`  ${bench.name} failed: ${(error as Error).stack ?? String(error)}\n`);
      process.exitCode = 1;
    }
  }
  process.stdout.write(
    `${opts.repeat > 1 ? `run ${run} of ${opts.repeat}\n` : ''}${report(results, previous && new Map(previous.map((e) => [e.name, e])))}\n\n`,
  );
  runs.push(results);
}
await fs.rm(resultsDir, { recursive: true, force: true });
const durationS = (Date.now() - started) / 1000;
const measured = foldRuns(runs);
const kept = (previous ?? []).filter((e) => !measured.some((m) => m.name === e.name));
await fs.writeFile(RESULTS_FILE, `${JSON.stringify([...kept, ...measured], null, 2)}\n`);
const changes = comparedWith ? compareResults(comparedWith, measured).filter((c) => !opts.filter || c.change !== 'gone') : undefined;
// The docs page is the latest table by itself; a comparison with some local file is this run's news only.
const page = (chartFile: string, withChanges: boolean): string =>
  markdown({
    entries: measured,
    machine,
    runs: opts.repeat,
    durationS,
    chartFile,
    ...(changes && withChanges ? { changes, comparedWith: opts.compare! } : {}),
  });
await fs.writeFile(REPORT_FILE, page('bench-report.svg', true));
await fs.writeFile(REPORT_FILE.replace(/\.md$/, '.svg'), chart(measured));
const written = [RESULTS_FILE, REPORT_FILE];
if (!opts.filter) {
  await fs.writeFile(DOCS_FILE, page('benchmarks.svg', false));
  await fs.writeFile(DOCS_FILE.replace(/\.md$/, '.svg'), chart(measured));
  written.push(DOCS_FILE);
}
process.stdout.write(`${measured.length} figures from ${opts.repeat} run(s) in ${Math.round(durationS)} s, written to ${written.join(', ')}\n`);
for (const change of changes ?? []) {
  if (change.change === 'regressed')
    process.stdout.write(
      `REGRESSED ${change.name}: ratio ${change.before!.ratio.toFixed(2)}x -> ${change.after!.ratio.toFixed(2)}x (${(change.relative! * 100).toFixed(0)}%, beyond its ${(change.allowed! * 100).toFixed(0)}% spread)\n`,
    );
}
if (measured.some((r) => !r.pass) || changes?.some((c) => c.change === 'regressed')) process.exitCode = 1;
