/**
 * The soak's gateway, in a process of its own so that what is sampled is the gateway's memory
 * and event loop, not the driver's. Options come as JSON in ISOGATE_SOAK_GATEWAY; it prints
 * {"controlSocket"} once started. A line "sample" on stdin starts sampling every intervalMs;
 * each sample is one JSON line {"sample": {...}} (analysis.ts's Sample). "stop" closes the
 * gateway and exits.
 *
 * Sampled inside the process: RSS after a full collection of the main heap (run with
 * --expose-gc, so the fitted line follows retained memory rather than garbage waiting for a
 * collection; the apps' isolates keep their own collectors), event-loop delay since the last
 * sample (monitorEventLoopDelay at 10 ms resolution, reset per sample), and the router's
 * counters summed over every route.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { startGateway } from '../../platform/main.js';
import type { AppSandbox } from '../../platform/sandbox/index.js';
import type { Sample } from './analysis.js';

interface ChildOptions {
  dataDir: string;
  storeUrl: string;
  trustRootFile: string;
  intervalMs: number;
}

const options = JSON.parse(process.env.ISOGATE_SOAK_GATEWAY ?? '{}') as ChildOptions;
const gateway = await startGateway({ dataDir: options.dataDir, storeUrl: options.storeUrl, trustRootFile: options.trustRootFile });
process.stdout.write(`${JSON.stringify({ controlSocket: gateway.controlSocket })}\n`);

const mb = (bytes: number): number => Math.round((bytes / 1024 / 1024) * 100) / 100;
const delay = monitorEventLoopDelay({ resolution: 10 });
let timer: NodeJS.Timeout | undefined;

function sample(startedAt: number): Sample {
  (globalThis as { gc?: () => void }).gc?.();
  const memory = process.memoryUsage();
  const totals = { delivered: 0, dropped: 0, failed: 0, invalid: 0, queued: 0 };
  for (const route of gateway.services.router.list()) {
    totals.delivered += route.counters.delivered;
    totals.dropped += route.counters.dropped;
    totals.failed += route.counters.failed;
    totals.invalid += route.counters.invalid;
    totals.queued += route.queued;
  }
  // The launcher hands out its running apps as the router's guests; each is an AppSandbox.
  let isolatesHeap = 0;
  let isolatesHeapTotal = 0;
  let isolatesExternal = 0;
  for (const app of gateway.services.installedApps()) {
    const guest = gateway.services.launcher.guest(app.package_id) as AppSandbox | undefined;
    if (guest && typeof guest.stats === 'function') {
      const stats = guest.stats();
      isolatesHeap += stats.heapUsedBytes;
      isolatesHeapTotal += stats.heapTotalBytes;
      isolatesExternal += stats.heapExternalBytes;
    }
  }
  const ms = (ns: number): number => Math.round((ns / 1e6) * 100) / 100;
  const out: Sample = {
    t: Math.round((Date.now() - startedAt) / 100) / 10,
    rssMb: mb(memory.rss),
    heapUsedMb: mb(memory.heapUsed),
    isolatesHeapMb: mb(isolatesHeap),
    isolatesHeapTotalMb: mb(isolatesHeapTotal),
    isolatesExternalMb: mb(isolatesExternal),
    externalMb: mb(memory.external),
    arrayBuffersMb: mb(memory.arrayBuffers),
    eldP50Ms: ms(delay.percentile(50)),
    eldP99Ms: ms(delay.percentile(99)),
    eldMaxMs: ms(delay.max),
    ...totals,
  };
  delay.reset();
  return out;
}

const stop = (): void => {
  if (timer) clearInterval(timer);
  delay.disable();
  void gateway.close().then(() => process.exit(0));
};
createInterface({ input: process.stdin }).on('line', (line) => {
  if (line === 'sample' && !timer) {
    const startedAt = Date.now();
    delay.enable();
    process.stdout.write(`${JSON.stringify({ sample: sample(startedAt) })}\n`);
    timer = setInterval(() => process.stdout.write(`${JSON.stringify({ sample: sample(startedAt) })}\n`), options.intervalMs);
  } else if (line === 'stop') stop();
});
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
