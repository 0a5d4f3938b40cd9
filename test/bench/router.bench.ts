/**
 * Routes beside worker_threads doing the same work (issue 12, "Benchmarks"). The product side
 * (router, sandboxes, how a source emits) is all in route-rig.ts; this file holds the baselines
 * and the figures.
 *
 * Fairness, on both sides: apps and threads are started before any clock and reused across
 * rounds (a gateway routes for months), both get the same uncounted warm-up rounds, the rounds
 * alternate which side goes first, and the median round counts. The clock runs from the main
 * thread telling the source to start to the main thread hearing from the destination that its
 * last message arrived. A json destination thread receives objects (structured clone, what
 * postMessage pays where the product pays JSON.parse); binary bytes are copied, not transferred.
 * CPU is the process's (`process.cpuUsage`, all threads: Node 20 has no per-thread figure).
 */
import { Worker } from 'node:worker_threads';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { type BenchResult, median, percentile } from './harness.js';
import { type Format, jsonBase, openRig } from './route-rig.js';

const COUNT = 20_000;
const TEN_ROUTES = 10;
const PER_ROUTE_OF_TEN = 10_000;
const ROUNDS = 3;
const WARMUP = 1;
const LATENCY_SAMPLES = 6000;
const LATENCY_ROUNDS = 2;
const BURST = 100_000;
/** Bytes per round of the large-message figures. */
const LARGE_ROUND_BYTES = 32 * 1024 * 1024;

const SCHEMA = {
  type: 'object',
  required: ['sensor', 'unit', 'at', 'value'],
  additionalProperties: false,
  properties: {
    sensor: { type: 'string', maxLength: 64 },
    unit: { type: 'string', maxLength: 16 },
    at: { type: 'string', maxLength: 32 },
    note: { type: 'string', maxLength: 200 },
    value: { type: 'number' },
  },
};

/** The baseline threads: `pairs` source threads, each posting to its own destination thread. */
interface Threads {
  send(count: number, bytes: number, batch: number): Promise<void>;
  ping(value: number): Promise<void>;
  close(): Promise<void>;
}

const SOURCE_THREAD = `const { parentPort } = require('node:worker_threads');
let out;
parentPort.on('message', (m) => {
  if (m.out) { out = m.out; return; }
  if (m.one !== undefined) { out.postMessage({ ...m.base, value: m.one }); return; }
  const data = m.format === 'binary' ? new Uint8Array(m.bytes).fill(7) : undefined;
  let batch = [];
  for (let i = 0; i < m.count; i++) {
    const message = data ? data.slice() : { ...m.base, value: i };
    if (m.batch === 1) { out.postMessage(message); continue; }
    batch.push(message);
    if (batch.length === m.batch) { out.postMessage(batch); batch = []; }
  }
  if (batch.length) out.postMessage(batch);
});`;

const SINK_THREAD = `const { parentPort } = require('node:worker_threads');
let n = 0, expected = -1, each = false, bytes = 0;
const take = (m) => { n += 1; bytes += m.byteLength ?? m.note.length; };
parentPort.on('message', (m) => {
  if (m.in) {
    m.in.on('message', (data) => {
      if (Array.isArray(data)) for (const one of data) take(one); else take(data);
      if (each || n === expected) parentPort.postMessage('done');
    });
    return;
  }
  n = 0; bytes = 0; expected = m.expect; each = m.each;
  parentPort.postMessage('ready');
});`;

async function openThreads(pairs: number, format: Format): Promise<Threads> {
  const sources: Worker[] = [];
  const sinks: Worker[] = [];
  for (let p = 0; p < pairs; p += 1) {
    const channel = new MessageChannel();
    const source = new Worker(SOURCE_THREAD, { eval: true });
    const sink = new Worker(SINK_THREAD, { eval: true });
    source.postMessage({ out: channel.port1 }, [channel.port1 as never]);
    sink.postMessage({ in: channel.port2 }, [channel.port2 as never]);
    sources.push(source);
    sinks.push(sink);
  }
  const next = (worker: Worker): Promise<unknown> => new Promise((resolve) => worker.once('message', resolve));
  const expect = async (count: number, each: boolean): Promise<void> => {
    await Promise.all(
      sinks.map((sink) => {
        const ready = next(sink);
        sink.postMessage({ expect: count, each });
        return ready;
      }),
    );
  };
  const base200 = jsonBase(200);
  let pinging = false;
  return {
    async send(count, bytes, batch) {
      pinging = false;
      await expect(count, false);
      const done = Promise.all(sinks.map(next));
      for (const source of sources) source.postMessage({ count, bytes, batch, format, base: jsonBase(bytes) });
      await done;
    },
    async ping(value) {
      if (!pinging) {
        pinging = true;
        await expect(0, true);
      }
      const done = next(sinks[0]!);
      sources[0]!.postMessage({ one: value, base: base200 });
      await done;
    },
    async close() {
      await Promise.all([...sources, ...sinks].map((worker) => worker.terminate()));
    },
  };
}

interface Measured {
  perSecond: number;
  cpuUsPerMessage: number;
}

async function measure(messages: number, run: () => Promise<void>): Promise<Measured> {
  const cpu = process.cpuUsage();
  const started = performance.now();
  await run();
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  return { perSecond: messages / seconds, cpuUsPerMessage: (used.user + used.system) / messages };
}

/** Warm-up rounds, then ROUNDS counted rounds of every side in turn (the first side rotating); medians. */
async function rounds(sides: (() => Promise<Measured>)[]): Promise<Measured[]> {
  for (let w = 0; w < WARMUP; w += 1) for (const side of sides) await side();
  const all: Measured[][] = sides.map(() => []);
  for (let round = 0; round < ROUNDS; round += 1) {
    for (let k = 0; k < sides.length; k += 1) {
      const i = (k + round) % sides.length;
      all[i]!.push(await sides[i]!());
    }
  }
  return all.map((list) => ({ perSecond: median(list.map((m) => m.perSecond)), cpuUsPerMessage: median(list.map((m) => m.cpuUsPerMessage)) }));
}

const result = (r: Omit<BenchResult, 'pass'>): BenchResult => ({ ...r, pass: r.ratio >= r.target });
const cpuNote = (label: string, m: Measured): string => `${label}: ${m.cpuUsPerMessage.toFixed(1)} us CPU per message`;

export default async function routerBench(): Promise<BenchResult[]> {
  const dir = await makeTempDir('isogate-bench-router-');
  const results: BenchResult[] = [];
  const opened: { close(): Promise<void> }[] = [];
  const keep = <T extends { close(): Promise<void> }>(thing: T): T => {
    opened.push(thing);
    return thing;
  };
  try {
    // One route, 200 B JSON with a schema on the source endpoint.
    const one = keep(await openRig({ dir, routes: 1, format: 'json', schema: SCHEMA }));
    const pair = keep(await openThreads(1, 'json'));
    const [route, single, batched] = await rounds([
      () => measure(COUNT, () => one.send(COUNT, 200)),
      () => measure(COUNT, () => pair.send(COUNT, 200, 1)),
      () => measure(COUNT, () => pair.send(COUNT, 200, 512)),
    ]);
    const name = `one route, ${COUNT} x 200 B json with a schema`;
    const notes = [cpuNote('route', route!), cpuNote('postMessage one per call', single!), cpuNote('postMessage batches of 512', batched!)];
    results.push(
      result({
        name: `${name}, vs one message per postMessage`,
        unit: 'msg/s',
        value: route!.perSecond,
        baselineName: 'postMessage, one message per call, all in flight',
        baseline: single!.perSecond,
        ratio: route!.perSecond / single!.perSecond,
        target: 1.5,
        notes,
      }),
      result({
        name: `${name}, vs postMessage batches of 512`,
        unit: 'msg/s',
        value: route!.perSecond,
        baselineName: 'postMessage, batches of 512',
        baseline: batched!.perSecond,
        ratio: route!.perSecond / batched!.perSecond,
        target: 0.7,
      }),
    );

    // Ten parallel routes, twenty apps, against the one route above.
    const ten = keep(await openRig({ dir, routes: TEN_ROUTES, format: 'json', schema: SCHEMA }));
    const [tenRoutes, oneRoute] = await rounds([
      () => measure(TEN_ROUTES * PER_ROUTE_OF_TEN, () => ten.send(PER_ROUTE_OF_TEN, 200)),
      () => measure(COUNT, () => one.send(COUNT, 200)),
    ]);
    await ten.close();
    results.push(
      result({
        name: `${TEN_ROUTES} parallel routes (${2 * TEN_ROUTES} apps), aggregate`,
        unit: 'msg/s',
        value: tenRoutes!.perSecond,
        baselineName: 'one route',
        baseline: oneRoute!.perSecond,
        ratio: tenRoutes!.perSecond / oneRoute!.perSecond,
        target: 0.9,
      }),
      result({
        name: `${TEN_ROUTES} parallel routes, process CPU per message`,
        unit: 'us',
        value: tenRoutes!.cpuUsPerMessage,
        baselineName: 'one route',
        baseline: oneRoute!.cpuUsPerMessage,
        ratio: oneRoute!.cpuUsPerMessage / tenRoutes!.cpuUsPerMessage,
        target: 1 / 1.1,
      }),
    );

    // Large messages, json and binary, against postMessage of the same bytes.
    for (const format of ['json', 'binary'] as const) {
      for (const bytes of [4096, 65_536]) {
        const count = Math.round(LARGE_ROUND_BYTES / bytes);
        const rig = await openRig({ dir, routes: 1, format });
        const threads = await openThreads(1, format);
        const [routed, posted] = await rounds([() => measure(count, () => rig.send(count, bytes)), () => measure(count, () => threads.send(count, bytes, 1))]);
        await rig.close();
        await threads.close();
        const mb = (m: Measured): number => (m.perSecond * bytes) / 1024 / 1024;
        results.push(
          result({
            name: `${bytes / 1024} KB ${format} messages, one route`,
            unit: 'MB/s',
            value: mb(routed!),
            baselineName: `postMessage of the same ${format === 'json' ? 'objects' : 'bytes (copied)'}`,
            baseline: mb(posted!),
            ratio: routed!.perSecond / posted!.perSecond,
            target: 0.5,
            notes: [`${count} messages per round`, cpuNote('route', routed!), cpuNote('postMessage', posted!)],
          }),
        );
      }
    }

    // Latency, one message at a time, with the CPU it costs.
    const routeSamples: number[] = [];
    const threadSamples: number[] = [];
    const cpu = { route: 0, threads: 0 };
    const timeOne = async (ping: (i: number) => Promise<void>, into: number[] | undefined): Promise<number> => {
      const before = process.cpuUsage();
      for (let i = 0; i < LATENCY_SAMPLES; i += 1) {
        const started = performance.now();
        await ping(i);
        into?.push(performance.now() - started);
      }
      const used = process.cpuUsage(before);
      return used.user + used.system;
    };
    await timeOne((i) => one.ping(i), undefined);
    await timeOne((i) => pair.ping(i), undefined);
    for (let round = 0; round < LATENCY_ROUNDS; round += 1) {
      if (round % 2 === 0) {
        cpu.route += await timeOne((i) => one.ping(i), routeSamples);
        cpu.threads += await timeOne((i) => pair.ping(i), threadSamples);
      } else {
        cpu.threads += await timeOne((i) => pair.ping(i), threadSamples);
        cpu.route += await timeOne((i) => one.ping(i), routeSamples);
      }
    }
    for (const [p, target] of [
      [50, 1 / 2],
      [99, 1 / 5],
    ] as const) {
      const value = percentile(routeSamples, p);
      const baseline = percentile(threadSamples, p);
      results.push(
        result({
          name: `route latency, one message at a time, p${p}`,
          unit: 'ms',
          value,
          baselineName: 'postMessage main -> thread -> thread -> main',
          baseline,
          ratio: baseline / value,
          target,
        }),
      );
    }
    const samples = LATENCY_ROUNDS * LATENCY_SAMPLES;
    results.push(
      result({
        name: `route latency, process CPU per message (${samples} messages)`,
        unit: 'us',
        value: cpu.route / samples,
        baselineName: 'the two-thread baseline',
        baseline: cpu.threads / samples,
        ratio: cpu.threads / cpu.route,
        target: 1 / 2,
      }),
    );
    await pair.close();
    await one.close();

    // Lossless burst: BURST messages into a destination ten times slower than the source, on the
    // router's defaults. The destination's slowness is set from the one-route rate above.
    const spinUs = (10 * 1e6) / route!.perSecond;
    const burst = keep(await openRig({ dir, routes: 1, format: 'json', schema: SCHEMA, sinkSpinUs: spinUs }));
    (globalThis as { gc?: () => void }).gc?.();
    const rssBefore = process.memoryUsage().rss;
    let rssPeak = rssBefore;
    const sampler = setInterval(() => {
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
    }, 10);
    const burstStarted = performance.now();
    await burst.emitAll(BURST, 200);
    const emitSeconds = (performance.now() - burstStarted) / 1000;
    await burst.drained(600_000);
    const [received] = await burst.received();
    clearInterval(sampler);
    const lost = BURST - received!;
    const bound = burst.declaredBoundBytes();
    const growth = rssPeak - rssBefore;
    const burstNotes = [
      `destination spins ${spinUs.toFixed(0)} us per message; the source emitted for ${emitSeconds.toFixed(1)} s; ${received} of ${BURST} delivered`,
      `declared bound: ${(bound / 1024 / 1024).toFixed(0)} MiB (the route's queue_bytes and what the source's SDK may hold waiting in the source's own heap)`,
    ];
    results.push(
      result({
        name: `lossless burst, ${BURST} messages into a 10x slower destination: lost`,
        unit: 'msgs',
        value: lost,
        baselineName: 'nothing lost',
        baseline: 0,
        ratio: lost === 0 ? 1 : 0,
        target: 1,
        notes: burstNotes,
      }),
      result({
        name: 'lossless burst: RSS growth',
        unit: 'MiB',
        value: growth / 1024 / 1024,
        baselineName: "the route's declared bound",
        baseline: bound / 1024 / 1024,
        // Below a MiB, growth is noise in RSS: the ratio is capped there.
        ratio: bound / Math.max(growth, 1024 * 1024),
        target: 1,
      }),
    );
    return results;
  } finally {
    for (const thing of opened) await thing.close().catch(() => undefined);
    await removeDir(dir);
  }
}
