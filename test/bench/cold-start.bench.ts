/**
 * Cold start of an app with a 100 KB bundle, launch to first handled event, beside a bare
 * isolated-vm isolate + context + compile + evaluate of the same code. Target: within 1.5x.
 */
import ivm from 'isolated-vm';
import { createAppSandbox } from '../../platform/sandbox/index.js';
import type { AppManifest } from '../../sdk/manifest.js';
import { fakeHost, jsonBatch } from '../fixtures/fake-host.js';
import { sampleManifest } from '../fixtures/packages.js';
import { type BenchResult, compare } from './harness.js';

const FILLER = Array.from({ length: 2100 }, (_, i) => `export function f${i}(x) { return x * ${i} + ${i % 7}; }`).join('\n');
const APP = `import { on, emit } from 'isogate:sdk';\n${FILLER}\non('in', (m) => emit('out', m));\n`;
const BARE = `${FILLER}\nglobalThis.handle = (m) => m;\n`;

const MANIFEST: AppManifest = sampleManifest({
  package_id: 'dev.isogate.bench.cold',
  publisher: 'bench',
  resources: { memoryMb: 64, cpuMsPerEvent: 1000, storageMb: 1 },
  endpoints: [
    { name: 'in', direction: 'destination', dataType: 't', format: 'json' },
    { name: 'out', direction: 'source', dataType: 't', format: 'json' },
  ],
});

export default async function coldStartBench(): Promise<BenchResult[]> {
  return [
    await compare({
      name: `cold start, ${Math.round(APP.length / 1024)} KB bundle, to first handled event`,
      unit: 'ms',
      baselineName: 'bare isolate+context+compile+run',
      higherIsBetter: false,
      target: 1 / 1.5,
      rounds: 9,
      subject: async () => {
        const host = fakeHost(MANIFEST.package_id);
        const started = performance.now();
        const sandbox = await createAppSandbox({ manifest: MANIFEST, files: new Map([['app/main.js', APP]]), host });
        await sandbox.start();
        await sandbox.deliver('in', jsonBatch({ n: 1 }));
        while (host.emitted.length === 0) await new Promise((resolve) => setImmediate(resolve));
        const elapsed = performance.now() - started;
        sandbox.dispose();
        return elapsed;
      },
      baseline: async () => {
        const started = performance.now();
        const isolate = new ivm.Isolate({ memoryLimit: 64 });
        const context = await isolate.createContext();
        const module = await isolate.compileModule(BARE, { filename: 'app/main.js' });
        await module.instantiate(context, () => {
          throw new Error('no imports');
        });
        await module.evaluate({ timeout: 1000 });
        const handle = await context.global.get('handle', { reference: true });
        await handle.apply(undefined, [1], { arguments: { copy: true } });
        const elapsed = performance.now() - started;
        isolate.dispose();
        return elapsed;
      },
    }),
  ];
}
