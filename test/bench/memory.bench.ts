/**
 * Resident memory of 20 small apps running, beside the same process with none. Target: at
 * most 40 MB more (reported as the ratio of the added megabytes to the 40 MB budget).
 */
import { type AppSandbox, createAppSandbox } from '../../platform/sandbox/index.js';
import type { AppManifest } from '../../sdk/manifest.js';
import { fakeHost } from '../fixtures/fake-host.js';
import type { BenchResult } from './harness.js';

const BUDGET_MB = 40;

export default async function memoryBench(): Promise<BenchResult[]> {
  const settle = async (): Promise<number> => {
    for (let i = 0; i < 3; i += 1) {
      (globalThis as { gc?: () => void }).gc?.();
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    return process.memoryUsage().rss / 1024 / 1024;
  };
  const before = await settle();
  const apps: AppSandbox[] = [];
  for (let i = 0; i < 20; i += 1) {
    const manifest: AppManifest = {
      manifestVersion: 1,
      package_id: `dev.isogate.bench.small${i}`,
      name: `small${i}`,
      title: 'Small',
      version: '1.0.0',
      publisher: 'bench',
      type: 'service',
      buildSdkVersion: '1.0.0',
      entry: 'app/main.js',
      networkZone: 'lan',
      resources: { memoryMb: 16, cpuMsPerEvent: 100, storageMb: 1 },
    };
    const sandbox = await createAppSandbox({
      manifest,
      host: fakeHost(manifest.package_id),
      files: new Map([['app/main.js', `import { log } from 'isogate:sdk'; setInterval(() => {}, 1000); log.info('up');`]]),
    });
    await sandbox.start();
    apps.push(sandbox);
  }
  const after = await settle();
  for (const app of apps) app.dispose();
  const added = after - before;
  return [
    {
      name: '20 small apps running: added resident memory',
      unit: 'MB',
      value: Math.round(added * 10) / 10,
      baselineName: `budget ${BUDGET_MB} MB over the gateway with none (${Math.round(before)} MB)`,
      baseline: BUDGET_MB,
      ratio: BUDGET_MB / Math.max(added, 0.1),
      target: 1,
      pass: added <= BUDGET_MB,
    },
  ];
}
