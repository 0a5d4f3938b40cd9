/**
 * Run by memory.bench.ts in a fresh process: starts a gateway with no apps, measures its
 * settled RSS, then runs 20 small apps beside it and measures again. Prints both as JSON.
 */
import { startGateway } from '../../platform/main.js';
import { type AppSandbox, createAppSandbox } from '../../platform/sandbox/index.js';
import { fakeHost } from '../fixtures/fake-host.js';
import { sampleManifest } from '../fixtures/packages.js';

const APPS = 20;

async function settledRss(): Promise<number> {
  for (let i = 0; i < 3; i += 1) {
    (globalThis as { gc?: () => void }).gc?.();
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return process.memoryUsage().rss;
}

const gateway = await startGateway({ dataDir: process.argv[2]! });
const empty = await settledRss();
const apps: AppSandbox[] = [];
for (let i = 0; i < APPS; i += 1) {
  const manifest = sampleManifest({
    package_id: `dev.isogate.bench.small${i}`,
    name: `small${i}`,
    publisher: 'bench',
    resources: { memoryMb: 16, cpuMsPerEvent: 100, storageMb: 1 },
  });
  const sandbox = await createAppSandbox({
    manifest,
    host: fakeHost(manifest.package_id),
    files: new Map([['app/main.js', `import { log } from 'isogate:sdk'; setInterval(() => {}, 1000); log.info('up');`]]),
  });
  await sandbox.start();
  apps.push(sandbox);
}
const withApps = await settledRss();
for (const app of apps) app.dispose();
await gateway.close();
process.stdout.write(`${JSON.stringify({ empty, withApps, apps: APPS })}\n`);
