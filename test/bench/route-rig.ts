/**
 * The product side of the route benchmarks, and all of it: the router, the sandboxes of the
 * source and destination apps, their hosts, and how a source is told to emit, all on the
 * router's defaults (lossless routes, their default byte bound).
 *
 * A source app is told what to emit by a message on its `trigger` endpoint and emits from inside
 * its isolate, as a real app does. It keeps at most EMIT_WINDOW batches unacknowledged by
 * awaiting its receipts, the flow control a lossless route asks of a fast source. A destination
 * counts what its handler really received and reports on its host's log when the last expected
 * message arrived, so every figure counts deliveries, not emits.
 */
import path from 'node:path';
import { MemoryAuditLog } from '../../platform/audit/index.js';
import { ConfigStore } from '../../platform/config/index.js';
import { Router } from '../../platform/router/index.js';
import type { CheckedRun } from '../../platform/sandbox/bridge.js';
import { type AppSandbox, createAppSandbox } from '../../platform/sandbox/index.js';
import { EMIT_WAITING_BYTES } from '../../platform/sandbox/protocol.js';
import type { AppManifest, EndpointDeclaration } from '../../sdk/manifest.js';
import { fakeHost, jsonBatch } from '../fixtures/fake-host.js';
import { sampleManifest } from '../fixtures/packages.js';

export type Format = 'json' | 'binary';

export interface RigOptions {
  dir: string;
  /** Parallel routes, each from its own source app to its own destination app. */
  routes: number;
  format: Format;
  /** JSON Schema on the source endpoint (json only). */
  schema?: Record<string, unknown>;
  /** Busy time the destination's handler spends per message, in microseconds (a slow destination). */
  sinkSpinUs?: number;
}

export interface Rig {
  /** Every source emits `count` messages of about `bytes`; resolves once every destination counted all of its own. */
  send(count: number, bytes: number): Promise<void>;
  /** One message through the first route; resolves when its destination handled it. */
  ping(value: number): Promise<void>;
  /** Every source emits `count` and resolves once they all had their receipts (not deliveries). */
  emitAll(count: number, bytes: number): Promise<void>;
  /** Resolves once the router holds nothing for any route (queued and in flight). */
  drained(timeoutMs?: number): Promise<void>;
  /** Messages each destination's handler has received since the last `send`/`reset`. */
  received(): Promise<number[]>;
  /** CPU time the source and destination isolates have used so far, in ms: where a figure's CPU goes. */
  isolateCpuMs(): { sources: number; destinations: number };
  /** Bytes the first route may hold by its declared bound. */
  declaredBoundBytes(): number;
  close(): Promise<void>;
}

const EMIT_WINDOW = Number(process.env.EMIT_WINDOW ?? 8);
const BATCH = 512;

/** A JSON object of about `bytes` once serialised, with a numeric `value` the source sets per message. */
export function jsonBase(bytes: number): Record<string, unknown> {
  const base = { sensor: 'temperature', unit: 'degC', at: '2026-11-25T00:00:00.000Z', note: '', value: 10_000 };
  base.note = 'x'.repeat(Math.max(0, bytes - JSON.stringify(base).length));
  return base;
}

const manifest = (id: string, endpoints: EndpointDeclaration[]): AppManifest =>
  sampleManifest({
    package_id: id,
    name: id.split('.').at(-1)!,
    publisher: 'bench',
    resources: { memoryMb: 128, cpuMsPerEvent: 10_000, storageMb: 1 },
    endpoints,
  });

const SOURCE_APP = `import { on, emit, log } from 'isogate:sdk';
on('trigger', (t) => {
  if (t.one !== undefined) { emit('out', { ...t.base, value: t.one }); return; }
  void (async () => {
    const data = t.format === 'binary' ? new Uint8Array(t.bytes).fill(7) : undefined;
    const unacknowledged = [];
    // The SDK's batch: up to ${BATCH} messages or about 1 MiB, whichever comes first.
    const per = Math.max(1, Math.min(${BATCH}, Math.floor(1048576 / Math.max(1, t.bytes))));
    let last;
    for (let i = 0; i < t.count; i++) {
      // A fresh array per message: the same one emitted twice would cross once (structured
      // copies keep identity), which no real source gets.
      last = emit('out', data ? data.slice() : { ...t.base, value: i });
      if (i % per === per - 1) {
        unacknowledged.push(last);
        if (unacknowledged.length > ${EMIT_WINDOW}) await unacknowledged.shift();
      }
    }
    await Promise.all([...unacknowledged, last]);
    log.info('sent');
  })();
});`;

const sinkApp = (spinUs: number): string => `import { on, log } from 'isogate:sdk';
let n = 0, expected = -1, each = false, bytes = 0;
// Calibrated once: a Date.now() spin per message would cost a host call each.
let perUs = 0;
if (${spinUs} > 0) { let i = 0; const end = Date.now() + 50; while (Date.now() < end) i++; perUs = i / 50000; }
let sink = 0;
on('control', (c) => {
  if (c.probe) { log.info('count ' + n); return; }
  n = 0; bytes = 0; expected = c.expect; each = c.each === true;
});
on('in', (m) => {
  n += 1;
  bytes += m.byteLength ?? m.note.length;
  for (let i = 0, spin = ${spinUs} * perUs; i < spin; i++) sink += i;
  if (each || n === expected) log.info('done');
});`;

export async function openRig(options: RigOptions): Promise<Rig> {
  const config = await ConfigStore.open(path.join(options.dir, `config-${Math.random()}.json`), 'bench');
  const sandboxes = new Map<string, AppSandbox>();
  const manifests = new Map<string, AppManifest>();
  const router = new Router({
    config,
    audit: new MemoryAuditLog(),
    appLog: () => undefined,
    manifestOf: (id) => manifests.get(id),
    guestOf: (id) => sandboxes.get(id),
  });
  const out: EndpointDeclaration = {
    name: 'out',
    direction: 'source',
    dataType: 'reading',
    format: options.format,
    ...(options.schema ? { schema: options.schema } : {}),
  };
  const sourceSent = new Map<AppSandbox, () => void>();
  const routes: { source: AppSandbox; sink: AppSandbox; sinkLog: { done: () => void; count: (n: number) => void } }[] = [];
  for (let r = 0; r < options.routes; r += 1) {
    const sourceManifest = manifest(`dev.isogate.bench.source${r}`, [out, { name: 'trigger', direction: 'destination', dataType: 'trigger', format: 'json' }]);
    const sinkManifest = manifest(`dev.isogate.bench.sink${r}`, [
      { name: 'in', direction: 'destination', dataType: 'reading', format: options.format },
      { name: 'control', direction: 'destination', dataType: 'control', format: 'json' },
    ]);
    manifests.set(sourceManifest.package_id, sourceManifest);
    manifests.set(sinkManifest.package_id, sinkManifest);
    await router.add({ application_id: sourceManifest.package_id, endpoint: 'out' }, { application_id: sinkManifest.package_id, endpoint: 'in' });
    const sinkLog: { done: () => void; count: (n: number) => void } = { done: () => undefined, count: () => undefined };
    const sink = await createAppSandbox({
      manifest: sinkManifest,
      host: {
        ...fakeHost(sinkManifest.package_id),
        log: (_level, message) => {
          if (message === 'done') sinkLog.done();
          else if (message.startsWith('count ')) sinkLog.count(Number(message.slice(6)));
        },
      },
      files: new Map([['app/main.js', sinkApp(options.sinkSpinUs ?? 0)]]),
    });
    await sink.start();
    sandboxes.set(sinkManifest.package_id, sink);
    const sourceHost = {
      ...fakeHost(sourceManifest.package_id),
      log: (_level: number, message: string) => {
        if (message === 'sent') sourceSent.get(source)?.();
      },
      emitBatch: (runs: CheckedRun[]) => router.emitBatch(sourceManifest.package_id, runs),
    };
    const source = await createAppSandbox({ manifest: sourceManifest, host: sourceHost, files: new Map([['app/main.js', SOURCE_APP]]) });
    await source.start();
    sandboxes.set(sourceManifest.package_id, source);
    routes.push({ source, sink, sinkLog });
  }
  const expect = async (count: number, each = false): Promise<void> => {
    for (const route of routes) await route.sink.deliver('control', jsonBatch({ expect: count, each }));
  };
  const trigger = (count: number, bytes: number): Promise<unknown>[] =>
    routes.map((route) => route.source.deliver('trigger', jsonBatch({ count, bytes, format: options.format, base: jsonBase(bytes) })));
  const base200 = jsonBase(200);
  let pinging = false;

  return {
    async send(count, bytes) {
      pinging = false;
      await expect(count);
      const done = Promise.all(routes.map((route) => new Promise<void>((resolve) => (route.sinkLog.done = resolve))));
      await Promise.all(trigger(count, bytes));
      await done;
    },
    async ping(value) {
      if (!pinging) {
        pinging = true;
        await expect(0, true);
      }
      const route = routes[0]!;
      const done = new Promise<void>((resolve) => (route.sinkLog.done = resolve));
      await route.source.deliver('trigger', jsonBatch({ one: value, base: base200 }));
      await done;
    },
    async emitAll(count, bytes) {
      pinging = false;
      await expect(-1);
      const sent = Promise.all(routes.map((route) => new Promise<void>((resolve) => sourceSent.set(route.source, resolve))));
      await Promise.all(trigger(count, bytes));
      await sent;
    },
    async drained(timeoutMs = 120_000) {
      const started = Date.now();
      while (router.list().some((view) => view.queued_bytes > 0)) {
        if (Date.now() - started > timeoutMs) throw new Error('the routes did not drain in time');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      // A batch taken off the queue may still be in the destination: its handler runs in order,
      // so a probe delivered after it is answered after it (see received()).
    },
    async received() {
      const counts: number[] = [];
      for (const route of routes) {
        const heard = new Promise<number>((resolve) => (route.sinkLog.count = resolve));
        await route.sink.deliver('control', jsonBatch({ probe: true }));
        counts.push(await heard);
      }
      return counts;
    },
    declaredBoundBytes() {
      // What the route lets the process hold for it: its queue (queued and in flight) and what the
      // source's SDK may keep waiting in the source's own heap before emit refuses.
      return router.list()[0]!.queue_bytes + EMIT_WAITING_BYTES;
    },
    isolateCpuMs() {
      let sources = 0;
      let destinations = 0;
      for (const route of routes) {
        sources += route.source.stats().cpuTimeMs;
        destinations += route.sink.stats().cpuTimeMs;
      }
      return { sources, destinations };
    },
    async close() {
      for (const sandbox of sandboxes.values()) sandbox.dispose();
      await router.close();
    },
  };
}
