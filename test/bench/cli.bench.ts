/**
 * A client command against a running gateway, process start to exit, beside `node -e 0` (the
 * floor any Node command pays), both started the same way from this process. Target: within 3x.
 * The commands run the compiled build in dist/, as an installed isogate does.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { startGateway } from '../../platform/main.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { type BenchResult, compare } from './harness.js';

const ISOGATE = path.resolve('bin/isogate.mjs');
const RUNS_PER_ROUND = 8;

function timeCommand(args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] });
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(performance.now() - started) : reject(new Error(`${args.join(' ')} exited with ${code}`))));
  });
}

async function meanOf(args: string[]): Promise<number> {
  let total = 0;
  for (let run = 0; run < RUNS_PER_ROUND; run += 1) total += await timeCommand(args);
  return total / RUNS_PER_ROUND;
}

export default async function cliBench(): Promise<BenchResult[]> {
  const dir = await makeTempDir('isogate-bench-cli-');
  const gateway = await startGateway({ dataDir: dir });
  try {
    return [
      await compare({
        name: '`isogate status --json` against a running gateway, start to exit',
        unit: 'ms',
        baselineName: 'node -e 0',
        higherIsBetter: false,
        target: 1 / 3,
        rounds: 5,
        warmupRounds: 1,
        subject: () => meanOf([ISOGATE, 'status', '--json', '--data', dir]),
        baseline: () => meanOf(['-e', '0']),
      }),
    ];
  } finally {
    await gateway.close();
    await removeDir(dir);
  }
}
