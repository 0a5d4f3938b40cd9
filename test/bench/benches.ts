/** Every benchmark `npm run bench` runs, in the order it runs them (each in its own process: one.ts). */
import type { BenchResult } from './harness.js';

export interface Bench {
  name: string;
  load: () => Promise<{ default: () => Promise<BenchResult[]> }>;
}

export const BENCHES: Bench[] = [
  { name: 'install', load: () => import('./install.bench.js') },
  { name: 'storage', load: () => import('./storage.bench.js') },
  { name: 'cold-start', load: () => import('./cold-start.bench.js') },
  { name: 'memory', load: () => import('./memory.bench.js') },
  { name: 'router', load: () => import('./router.bench.js') },
  { name: 'egress', load: () => import('./egress.bench.js') },
  { name: 'schema', load: () => import('./schema.bench.js') },
  { name: 'cli', load: () => import('./cli.bench.js') },
  { name: 'replay', load: () => import('./replay.bench.js') },
  { name: 'gate', load: () => import('./gate.bench.js') },
  { name: 'devloop', load: () => import('./devloop.bench.js') },
  { name: 'web', load: () => import('./web.bench.js') },
];
