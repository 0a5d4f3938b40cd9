/**
 * Runs the fuzz targets (test/fuzz/targets/*.fuzz.ts) under jazzer.js, coverage-guided, one after
 * the other, each from its committed seed corpus (test/fuzz/corpus/<target>/, read only: what
 * the fuzzer finds new goes to a scratch corpus, or to --corpus-out).
 *
 *   npm run fuzz                          every target, 15 s each (the CI run, under 4 minutes)
 *   npm run fuzz -- --minutes 10          every target, 10 minutes each
 *   npm run fuzz -- --target rules --seconds 60
 *
 * A crash (anything a target throws that is not a coded refusal, see refusal.ts) or a hang (one
 * input running past --timeout-ms) fails the run; the input is kept under the artifacts folder
 * printed, and it belongs in test/fuzz/regressions/<target>/ with the fix, where replay.test.ts
 * runs it in every `npm test`.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FUZZ_TARGETS, type FuzzTargetName } from './targets.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const jazzer = createRequire(import.meta.url).resolve('@jazzer.js/core/dist/cli.js');

interface Options {
  seconds: number;
  targets: FuzzTargetName[];
  timeoutMs: number;
  corpusOut: string | undefined;
  artifacts: string;
}

function usage(message: string): never {
  console.error(`${message}\nusage: npm run fuzz -- [--seconds N | --minutes N] [--target NAME]... [--timeout-ms N] [--corpus-out DIR] [--artifacts DIR]`);
  console.error(`targets: ${Object.keys(FUZZ_TARGETS).join(', ')}`);
  process.exit(2);
}

function parseOptions(argv: string[]): Options {
  const options: Options = { seconds: 15, targets: [], timeoutMs: 10_000, corpusOut: undefined, artifacts: path.join(os.tmpdir(), 'isogate-fuzz-artifacts') };
  for (let i = 0; i < argv.length; i += 1) {
    const flag = argv[i]!;
    const value = argv[i + 1];
    const number = (): number => {
      const n = Number(value);
      if (!Number.isFinite(n) || n <= 0) usage(`${flag} takes a positive number, not ${String(value)}`);
      i += 1;
      return n;
    };
    if (flag === '--seconds') options.seconds = number();
    else if (flag === '--minutes') options.seconds = number() * 60;
    else if (flag === '--timeout-ms') options.timeoutMs = number();
    else if (flag === '--target') {
      if (!value || !Object.hasOwn(FUZZ_TARGETS, value)) usage(`unknown target ${String(value)}`);
      options.targets.push(value as FuzzTargetName);
      i += 1;
    } else if (flag === '--corpus-out' || flag === '--artifacts') {
      if (!value) usage(`${flag} takes a directory`);
      if (flag === '--corpus-out') options.corpusOut = path.resolve(value);
      else options.artifacts = path.resolve(value);
      i += 1;
    } else usage(`unknown option ${flag}`);
  }
  if (options.targets.length === 0) options.targets = Object.keys(FUZZ_TARGETS) as FuzzTargetName[];
  return options;
}

interface Outcome {
  target: FuzzTargetName;
  ok: boolean;
  runs: number | undefined;
  coverage: number | undefined;
  seconds: number;
  artifacts: string[];
}

function fuzzOne(target: FuzzTargetName, options: Options): Promise<Outcome> {
  const spec = FUZZ_TARGETS[target];
  const scratch = mkdtempSync(path.join(os.tmpdir(), `isogate-fuzz-${target}-`));
  const corpus = options.corpusOut ? path.join(options.corpusOut, target) : scratch;
  mkdirSync(corpus, { recursive: true });
  const artifacts = path.join(options.artifacts, target);
  mkdirSync(artifacts, { recursive: true });
  const args = [
    '--no-node-snapshot',
    '--import',
    'tsx',
    jazzer,
    path.join(here, 'jazzer-entry.mjs'),
    corpus,
    path.join(here, 'corpus', target),
    ...(spec.sync ? ['--sync'] : []),
    ...('disable' in spec ? ['--disableBugDetectors', ...spec.disable] : []),
    `--timeout=${options.timeoutMs}`,
    '--',
    `-max_total_time=${Math.round(options.seconds)}`,
    `-max_len=${spec.maxLen}`,
    `-artifact_prefix=${artifacts}${path.sep}`,
    '-print_final_stats=1',
  ];
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, {
      env: { ...process.env, ISOGATE_FUZZ_TARGET: path.join(here, 'targets', `${target}.fuzz.ts`) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    // The recommended dictionary (stdout) can follow the final stats (stderr) and be long.
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString('utf8')).slice(-4_000_000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('close', (code) => {
      // The final stats when they came through, else libFuzzer's last progress line (#N ...).
      const runs = /stat::number_of_executed_units:\s*(\d+)/.exec(output)?.[1] ?? [...output.matchAll(/^#(\d+)\s/gm)].at(-1)?.[1];
      const coverage = [...output.matchAll(/\bcov: (\d+)/g)].at(-1)?.[1];
      const found = readdirSync(artifacts).map((name) => path.join(artifacts, name));
      if (code !== 0) console.error(output.slice(-6000));
      if (!options.corpusOut) rmSync(scratch, { recursive: true, force: true });
      resolve({
        target,
        ok: code === 0 && found.length === 0,
        runs: runs === undefined ? undefined : Number(runs),
        coverage: coverage === undefined ? undefined : Number(coverage),
        seconds: (Date.now() - started) / 1000,
        artifacts: found,
      });
    });
  });
}

const options = parseOptions(process.argv.slice(2));
rmSync(options.artifacts, { recursive: true, force: true });
console.log(`fuzzing ${options.targets.length} target(s), ${options.seconds} s each, under jazzer.js; artifacts in ${options.artifacts}`);
const outcomes: Outcome[] = [];
for (const target of options.targets) {
  const outcome = await fuzzOne(target, options);
  outcomes.push(outcome);
  console.log(
    `${outcome.ok ? 'ok    ' : 'FOUND '} ${target.padEnd(14)} ${String(outcome.runs ?? '?').padStart(9)} runs  cov ${String(outcome.coverage ?? '?').padStart(5)}  ${outcome.seconds.toFixed(0)} s${outcome.artifacts.map((file) => `\n       ${file}`).join('')}`,
  );
}
const failed = outcomes.filter((outcome) => !outcome.ok);
if (failed.length > 0) {
  console.error(
    `\n${failed.length} target(s) found a crash or a hang. Reproduce one with\n  ISOGATE_FUZZ_TARGET=$PWD/test/fuzz/targets/<target>.fuzz.ts node --import tsx ${path.relative(process.cwd(), jazzer)} test/fuzz/jazzer-entry.mjs <artifact>\nthen fix it and put the input in test/fuzz/regressions/<target>/ (replay.test.ts runs it).`,
  );
  process.exit(1);
}
