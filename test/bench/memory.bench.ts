/**
 * Resident memory 20 small apps add to a gateway, measured in a fresh process (this one has run
 * other benchmarks and holds what they left): the gateway is started there with no apps and
 * measured, then the apps run beside it and it is measured again. Goal: the README's, at most
 * 40 MB added for 20 small apps.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import type { BenchResult } from './harness.js';

const run = promisify(execFile);
const BUDGET_MB = 40;
const CHILD = path.resolve('test/bench/memory-child.ts');

export default async function memoryBench(): Promise<BenchResult[]> {
  const dir = await makeTempDir('isogate-bench-memory-');
  try {
    const { stdout } = await run(process.execPath, ['--no-node-snapshot', '--expose-gc', '--import', 'tsx', CHILD, path.join(dir, 'data')], {
      maxBuffer: 1024 * 1024,
    });
    const { empty, withApps, apps } = JSON.parse(stdout.trim().split('\n').at(-1)!) as { empty: number; withApps: number; apps: number };
    const mb = (bytes: number): number => Math.round((bytes / 1024 / 1024) * 10) / 10;
    const added = mb(withApps - empty);
    return [
      {
        name: `${apps} small apps: RSS added over an empty gateway (fresh process)`,
        unit: 'MB',
        value: added,
        baselineName: 'the same gateway with no apps, RSS',
        baseline: mb(empty),
        ratio: BUDGET_MB / Math.max(added, 0.1),
        target: 1,
        pass: added <= BUDGET_MB,
        goal: `at most ${BUDGET_MB} MB added (README)`,
        notes: [`gateway RSS ${mb(empty)} MB with no apps, ${mb(withApps)} MB with ${apps}`],
      },
    ];
  } finally {
    await removeDir(dir);
  }
}
