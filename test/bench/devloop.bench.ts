/**
 * The developer's loop, edit to running, for an app of about 100 KB of TypeScript, beside a plain
 * esbuild build of the same source after the same edit (what any bundler-based loop pays at
 * least), both warm in this process. Target: within 3x.
 *
 * - `run` reload: a save, then `isogate-sdk run`'s watcher, the rebuild (its esbuild context
 *   kept across saves) and the app started again in a new isolate, until the edited code (its
 *   log line names the edit) has handled a message and emitted. The type-check starts once the
 *   app runs, in its own process (`isogate-sdk check`), as `run` does; it is waited for after
 *   the round, uncounted, so that it does not slow the next baseline.
 * - `push`: a save, then the build `push` makes of the directory (a fresh esbuild build, as the
 *   one-shot command makes it), the upload to the debug service of a gateway (in this process, a
 *   store beside it), and the in-place update, until the new version's first log line is on the
 *   gateway and the launcher has it running (its start-up done, its handlers registered). The
 *   push's answer comes a little later, once the old version's files are erased; that is in the
 *   notes. Phase times: NODE_DEBUG=isogate-push.
 *   Both conditions are watched, not polled: the app's log is followed as `logs -f` follows it (a
 *   follower is handed each line once it is appended to app.log, what a re-read of the file would
 *   find), and the launcher's status is looked at again on each line and on each status event.
 *   The launcher marks the app running in the same turn as it logs "Started", so that line's
 *   delivery re-checks the status no later than the state changed plus one append. A re-read of
 *   app.log every 2 ms on the gateway's thread would cost the gateway the time it measures.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import * as esbuild from 'esbuild';
import { invokeOperation } from '../../platform/api/operations.js';
import { startGateway } from '../../platform/main.js';
import * as developer from '../../sdk/cli/developer.js';
import { MAIN_SOURCE, PROJECT_TSCONFIG, projectManifest } from '../../sdk/cli/templates.js';
import { startDevLoop } from '../../sdk/harness/dev-loop.js';
import type { HarnessApp } from '../../sdk/harness/index.js';
import { serveStore } from '../../store-mock/server.js';
import { SDK_BIN } from '../fixtures/sdk-bin.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { type BenchResult, type Comparison, compare, median } from './harness.js';

const APP = 'com.example.devloop';
const NO_PROGRESS = { progress: () => undefined };

/** About 100 KB of TypeScript the app really uses (nothing for the bundler to drop). */
function largeModule(): string {
  const lines = ['export interface Row { id: number; name: string; weight: number }'];
  for (let i = 0; i < 1400; i += 1) lines.push(`export function scale${i}(value: number): number { return value * ${i + 1} + ${i % 7}; }`);
  lines.push(`export const table: ((value: number) => number)[] = [${Array.from({ length: 1400 }, (_, i) => `scale${i}`).join(', ')}];`);
  return `${lines.join('\n')}\n`;
}

async function makeProject(dir: string): Promise<{ main: string; edit: (marker: number) => Promise<void> }> {
  await fs.mkdir(path.join(dir, 'src'), { recursive: true });
  await fs.mkdir(path.join(dir, 'types'), { recursive: true });
  const manifest = projectManifest(APP, 'devloop');
  await fs.writeFile(path.join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2));
  await fs.writeFile(path.join(dir, 'tsconfig.json'), PROJECT_TSCONFIG);
  for (const file of ['isogate-sdk.d.ts', 'globals.d.ts']) await fs.copyFile(path.resolve('sdk/app', file), path.join(dir, 'types', file));
  await fs.writeFile(path.join(dir, 'src', 'table.ts'), largeModule());
  const main = path.join(dir, 'src', 'main.ts');
  const edit = async (marker: number): Promise<void> => {
    const source = MAIN_SOURCE.replace(
      "import { config, emit, log, on, storage } from 'isogate:sdk';",
      `import { config, emit, log, on, storage } from 'isogate:sdk';\nimport { table } from './table.js';\nlog.info('generation ${marker}', table.length);`,
    );
    await fs.writeFile(main, source);
  };
  await edit(0);
  return { main, edit };
}

export default async function devloopBench(): Promise<BenchResult[]> {
  const dir = await makeTempDir('isogate-bench-devloop-');
  const project = path.join(dir, 'app');
  const { main, edit } = await makeProject(project);
  // The baseline edits its own copy: an edit of the watched project would restart the app
  // during the baseline's round and slow it.
  const plain = await makeProject(path.join(dir, 'plain'));
  const bytes = (await fs.stat(path.join(project, 'src', 'table.ts'))).size + (await fs.stat(main)).size;
  let marker = 1;

  const plainBuild = async (): Promise<number> => {
    const started = performance.now();
    await plain.edit(marker++);
    await esbuild.build({
      entryPoints: [plain.main],
      bundle: true,
      format: 'esm',
      platform: 'neutral',
      target: 'es2022',
      outfile: path.join(dir, 'plain', 'dist', 'main.js'),
      external: ['isogate:sdk'],
      sourcemap: 'both',
      logLevel: 'silent',
    });
    return performance.now() - started;
  };

  // Both loops are judged against the same plain build, by the same target.
  const againstBuild = {
    unit: 'ms',
    baselineName: 'esbuild build of the same source',
    higherIsBetter: false,
    target: 1 / 3,
    warmupRounds: 1,
    rounds: 7,
    baseline: plainBuild,
  } satisfies Partial<Comparison>;

  const results: BenchResult[] = [];
  // `run`: the dev loop with the type-check beside it, as the CLI starts it.
  {
    /** The generation whose first log line the running app wrote, and the app once it runs. */
    let wanted = -1;
    let seen = false;
    let running: ((app: HarnessApp) => void) | undefined;
    let checks = 0;
    let restarts = 0;
    let edits = 0;
    let checking: Promise<void> = Promise.resolve();
    const loop = await startDevLoop({
      project,
      debounceMs: 10,
      onRestarted: () => {
        checks += 1;
        const child = spawn(process.execPath, [SDK_BIN, 'check', project, '--json'], { stdio: 'ignore' });
        checking = new Promise((resolve) => child.once('exit', () => resolve()));
      },
      onEvent: (event) => {
        if (event.kind === 'log' && event.message.startsWith(`generation ${wanted} `)) seen = true;
        if (event.kind === 'running') {
          restarts += 1;
          // Only the restart that runs the edited code ends the round (an earlier one, from an
          // event before the write finished, would not count).
          if (seen) running?.(loop.current!);
        }
        if (event.kind === 'failed') throw new Error(`${event.code}: ${event.message}`);
      },
    });
    try {
      results.push(
        await compare({
          ...againstBuild,
          name: 'run: edit to the new code handling a message (100 KB app)',
          subject: async () => {
            const started = performance.now();
            wanted = marker++;
            edits += 1;
            seen = false;
            const restarted = new Promise<HarnessApp>((resolve) => {
              running = resolve;
            });
            await edit(wanted);
            const app = await restarted;
            await app.send('input', { value: 1 });
            await app.nextEmit('output');
            const ms = performance.now() - started;
            // Not counted: the type-check finishing, so that it does not slow the next baseline.
            await checking;
            return ms;
          },
          notes: () => [
            `${Math.round(bytes / 1024)} KB of TypeScript; ${restarts} restarts (the first start included) and ${checks} type-checks started beside them, for ${edits} edits of the app`,
          ],
        }),
      );
    } finally {
      await loop.close();
    }
  }

  // `push`: to a gateway's debug service, an in-place update each time.
  {
    const serving = await serveStore({ dir: path.join(dir, 'store') });
    const trust = path.join(dir, 'store-root.pem');
    await fs.writeFile(trust, serving.store.rootCertPem);
    const gateway = await startGateway({ dataDir: path.join(dir, 'data'), storeUrl: serving.url, trustRootFile: trust });
    const answered: number[] = [];
    try {
      const { url, token } = (await invokeOperation(gateway.services, 'debug.start', { name: 'bench' }, NO_PROGRESS)) as { url: string; token: string };
      const target = { gateway: url, token };
      const push = async (): Promise<void> => {
        await developer.push(target, (await developer.packageToPush(project)).bytes);
      };
      await push();
      // The round's generation, whether its first line was written, and the round's end.
      let wanted = -1;
      let seen = false;
      let reached: (() => void) | undefined;
      const check = (): void => {
        if (seen && gateway.services.launcher.status(APP).status === 'running') reached?.();
      };
      const follower = await gateway.services.followLog(APP, { tail: 0, follow: true });
      const following = (async () => {
        for (let lines = await follower.next(); lines; lines = await follower.next()) {
          if (lines.some((line) => line.includes(`generation ${wanted} `))) seen = true;
          check();
        }
      })();
      const onStatus = (info: { packageId: string }): void => {
        if (info.packageId === APP) check();
      };
      gateway.services.launcher.on('status', onStatus);
      try {
        results.push(
          await compare({
            ...againstBuild,
            name: 'push: edit to the new version running on the gateway (100 KB app)',
            subject: async () => {
              const mine = marker++;
              const started = performance.now();
              wanted = mine;
              seen = false;
              // The new version's first line, as `logs -f` shows it, then the launcher has it running
              // (its start-up finished, its handlers registered): it handles the next message.
              const running = new Promise<void>((resolve) => {
                reached = resolve;
              });
              await edit(mine);
              const pushed = push().then(() => answered.push(performance.now() - started));
              await running;
              reached = undefined;
              const ms = performance.now() - started;
              await pushed;
              return ms;
            },
            notes: () => [`the push's answer (after the old version's files are erased): median ${Math.round(median(answered))} ms`],
          }),
        );
      } finally {
        gateway.services.launcher.off('status', onStatus);
        await follower.close();
        await following;
      }
    } finally {
      await gateway.close();
      await serving.close();
    }
  }
  await removeDir(dir);
  return results;
}
