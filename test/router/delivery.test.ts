import { strict as assert } from 'node:assert';
import path from 'node:path';
import { MemoryAuditLog } from '../../platform/audit/index.js';
import { ConfigStore } from '../../platform/config/index.js';
import { Router, type RouterOptions } from '../../platform/router/index.js';
import { OVERHEAD_BYTES } from '../../platform/router/segment.js';
import type { AppGuest, CheckedRun, DeliverBatch, DeliverResult, EmitRefusal } from '../../platform/sandbox/bridge.js';
import { fail } from '../../sdk/errors.js';
import type { AppManifest } from '../../sdk/manifest.js';
import { messagesOf } from '../fixtures/fake-host.js';
import { sampleManifest } from '../fixtures/packages.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { waitFor } from '../fixtures/wait.js';

const apps: Record<string, AppManifest> = {
  'dev.t.source': sampleManifest({
    package_id: 'dev.t.source',
    name: 'source',
    endpoints: [
      { name: 'out', direction: 'source', dataType: 'reading', format: 'json' },
      { name: 'bytes', direction: 'source', dataType: 'frame', format: 'binary', maxMessageBytes: 64 },
      { name: 'text', direction: 'source', dataType: 'line', format: 'text', maxMessageBytes: 12 },
    ],
  }),
  'dev.t.sink': sampleManifest({
    package_id: 'dev.t.sink',
    name: 'sink',
    endpoints: [
      { name: 'in', direction: 'destination', dataType: 'reading', format: 'json' },
      { name: 'frames', direction: 'destination', dataType: 'frame', format: 'binary' },
      { name: 'lines', direction: 'destination', dataType: 'line', format: 'text' },
    ],
  }),
  'dev.t.other': sampleManifest({
    package_id: 'dev.t.other',
    name: 'other',
    endpoints: [{ name: 'in', direction: 'destination', dataType: 'reading', format: 'json' }],
  }),
};

function runOf(packageId: string, endpointName: string, messages: unknown[]): CheckedRun {
  const endpoint = apps[packageId]!.endpoints!.find((e) => e.name === endpointName)!;
  if (endpoint.format === 'binary') return { endpoint, messages: messages as Uint8Array[] };
  const texts = messages.map((message) => (endpoint.format === 'json' ? JSON.stringify(message) : String(message)));
  return { endpoint, text: texts.join(''), lengths: texts.map((text) => text.length) };
}

/** A destination that hands each batch to `handle` and answers when it settles. */
class Destination implements AppGuest {
  received: unknown[] = [];
  batches = 0;
  gate: Promise<void> | undefined;
  handle: (messages: unknown[]) => DeliverResult | Promise<DeliverResult> = () => ({ invalid: [], failed: [] });
  async deliver(endpoint: string, batch: DeliverBatch): Promise<DeliverResult> {
    this.batches += 1;
    if (this.gate) await this.gate;
    const messages = messagesOf(batch, endpoint === 'in');
    const result = await this.handle(messages);
    messages.forEach((message, index) => {
      if (!result.invalid.includes(index) && !result.failed.includes(index)) this.received.push(message);
    });
    return result;
  }
  async configChanged(): Promise<void> {}
}

/** A gate that holds a destination's deliveries until opened. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

describe('router: delivery without loss, bounded in bytes', () => {
  let dir: string;
  let config: ConfigStore;
  let guests: Map<string, AppGuest>;
  let logs: { app: string; message: string }[];
  let router: Router;
  const end = (text: string) => ({ application_id: text.split(':')[0]!, endpoint: text.split(':')[1]! });
  const emit = (endpointName: string, ...messages: unknown[]): Promise<EmitRefusal[]> =>
    router.emitBatch('dev.t.source', [runOf('dev.t.source', endpointName, messages)]);
  const readings = (from: number, count: number) => Array.from({ length: count }, (_, i) => ({ v: from + i }));
  /** The size of one reading as it crosses: {"v":NN} */
  const readingBytes = (v: number) => JSON.stringify({ v }).length;

  async function open(options: Partial<RouterOptions> = {}): Promise<void> {
    router = new Router({
      config,
      audit: new MemoryAuditLog(),
      appLog: (app, _level, message) => logs.push({ app, message }),
      manifestOf: (id) => apps[id],
      guestOf: (id) => guests.get(id),
      ...options,
    });
  }

  beforeEach(async () => {
    dir = await makeTempDir('isogate-delivery-');
    config = await ConfigStore.open(path.join(dir, 'config.json'), 'test');
    guests = new Map();
    logs = [];
  });
  afterEach(async () => {
    await router?.close();
    await removeDir(dir);
  });

  it('a source emitting as fast as it can into a slow destination: every message delivered once, in order, the queue within its bound', async () => {
    await open({ routeQueueBytes: 2000, batchSize: 16 });
    const sink = new Destination();
    let most = 0;
    sink.handle = async () => {
      most = Math.max(most, router.get(route.id).queued_bytes);
      await new Promise((resolve) => setImmediate(resolve));
      return { invalid: [], failed: [] };
    };
    guests.set('dev.t.sink', sink);
    const route = await router.add(end('dev.t.source:out'), end('dev.t.sink:in'));
    const total = 3000;
    let waited = 0;
    // As the SDK does: the next batch only once the previous one's receipt settled.
    for (let from = 0; from < total; from += 100) {
      const receipt = emit('out', ...readings(from, 100));
      let settled = false;
      void receipt.then(() => {
        settled = true;
      });
      await Promise.resolve();
      if (!settled) waited += 1;
      assert.deepEqual(await receipt, []);
    }
    await waitFor(() => sink.received.length === total);
    assert.deepEqual(sink.received, readings(0, total));
    assert.ok(waited > 0, 'the source was slowed down: some receipts waited for room');
    // One run may exceed the bound only when it arrives at an empty queue.
    assert.ok(most <= 2000 + 100 * readingBytes(total), `held ${most} bytes`);
    const view = router.get(route.id);
    assert.equal(view.counters.delivered, total);
    assert.equal(view.counters.dropped, 0);
    assert.equal(view.overflow, 'block');
  });

  it('holds a bounded backlog for a stopped destination, slows the source at the bound, and delivers it all in order on start', async () => {
    await open({ routeQueueBytes: 500 });
    const route = await router.add(end('dev.t.source:out'), end('dev.t.sink:in'));
    assert.deepEqual(await emit('out', ...readings(0, 30)), []);
    assert.equal(router.get(route.id).queued, 30);
    const bytesBefore = router.get(route.id).queued_bytes;
    // The bytes themselves, and what holding them costs beside: per run and per message.
    const payload = readings(0, 30).reduce((sum, r) => sum + JSON.stringify(r).length, 0);
    assert.equal(bytesBefore, payload + OVERHEAD_BYTES.segment + 30 * OVERHEAD_BYTES.textMessage);
    // Past the bound the receipt waits: nothing is dropped.
    const waiting = emit('out', ...readings(30, 50));
    let settled = false;
    void waiting.then(() => {
      settled = true;
    });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(settled, false);
    assert.equal(router.get(route.id).queued, 30);
    assert.ok(logs.some((line) => line.app === 'dev.t.source' && /is full .* emit waits/.test(line.message)));

    const sink = new Destination();
    guests.set('dev.t.sink', sink);
    router.appStarted('dev.t.sink');
    assert.deepEqual(await waiting, []);
    await waitFor(() => sink.received.length === 80);
    assert.deepEqual(sink.received, readings(0, 80));
    assert.equal(router.get(route.id).counters.dropped, 0);
  });

  it('puts a batch back first in line when the destination stopped before taking it', async () => {
    await open();
    const sink = new Destination();
    let stopped = true;
    sink.handle = () => {
      if (stopped) throw fail('E_STATE', 'dev.t.sink is not running');
      return { invalid: [], failed: [] };
    };
    guests.set('dev.t.sink', sink);
    const route = await router.add(end('dev.t.source:out'), end('dev.t.sink:in'));
    await emit('out', ...readings(0, 3));
    await waitFor(() => sink.batches === 1);
    await waitFor(() => router.get(route.id).queued === 3);
    stopped = false;
    await emit('out', ...readings(3, 2));
    await waitFor(() => sink.received.length === 5);
    assert.deepEqual(sink.received, readings(0, 5));
    assert.deepEqual(router.get(route.id).counters, { delivered: 5, dropped: 0, invalid: 0, failed: 0 });
  });

  for (const policy of ['drop-oldest', 'drop-newest'] as const) {
    it(`with overflow "${policy}" never waits, drops the ${policy.slice(5)} messages past the bound, counts every drop and warns once per burst`, async () => {
      await open({ routeQueueBytes: 1000 });
      const route = await router.add(end('dev.t.source:out'), end('dev.t.sink:in'), { overflow: policy });
      const total = 300;
      // Runs of 20 (about 560 bytes with the per-message overhead): one fits, two do not.
      for (let from = 0; from < total; from += 20) assert.deepEqual(await emit('out', ...readings(from, 20)), []);
      const view = router.get(route.id);
      assert.ok(view.queued_bytes <= 1000, `held ${view.queued_bytes}`);
      assert.equal(view.queued + view.counters.dropped, total);
      assert.ok(view.counters.dropped > 0);
      const warnings = logs.filter((line) => /is full .*: dropping/.test(line.message));
      assert.equal(warnings.length, 1, 'one warning for the burst');
      assert.match(warnings[0]!.message, policy === 'drop-oldest' ? /dropping the oldest/ : /dropping the newest/);

      const sink = new Destination();
      guests.set('dev.t.sink', sink);
      router.appStarted('dev.t.sink');
      await waitFor(() => sink.received.length === view.queued);
      const values = sink.received.map((m) => (m as { v: number }).v);
      const kept = view.queued;
      assert.deepEqual(values, policy === 'drop-oldest' ? readings(total - kept, kept).map((r) => r.v) : readings(0, kept).map((r) => r.v));
      await waitFor(() => logs.some((line) => /messages dropped in the last burst/.test(line.message)));
      assert.ok(logs.some((line) => line.message.includes(`${view.counters.dropped} messages dropped in the last burst`)));
    });
  }

  it('bounds what one source app makes the host hold across all its routes, and all routes together', async () => {
    await open({ routeQueueBytes: 10_000, appQueueBytes: () => 600, gatewayQueueBytes: 1_000_000 });
    const toSink = await router.add(end('dev.t.source:out'), end('dev.t.sink:in'), { overflow: 'drop-newest' });
    const toOther = await router.add(end('dev.t.source:out'), end('dev.t.other:in'), { overflow: 'drop-newest' });
    for (let from = 0; from < 200; from += 20) await emit('out', ...readings(from, 20));
    const held = router.get(toSink.id).queued_bytes + router.get(toOther.id).queued_bytes;
    assert.ok(held <= 600, `the app's routes hold ${held} bytes`);
    assert.ok(router.get(toSink.id).counters.dropped > 0);

    await router.close();
    await open({ routeQueueBytes: 10_000, gatewayQueueBytes: 1200 });
    for (let from = 0; from < 200; from += 20) await emit('out', ...readings(from, 20));
    const all = router.list().reduce((sum, view) => sum + view.queued_bytes, 0);
    assert.ok(all <= 1200 && all > 0, `all routes hold ${all} bytes`);
  });

  it('counts messages the destination found invalid or whose handler failed, delivers the rest, and retries none', async () => {
    await open();
    const sink = new Destination();
    sink.handle = (messages) => ({
      invalid: messages.flatMap((m, i) => ((m as { v: number }).v === 1 ? [i] : [])),
      failed: messages.flatMap((m, i) => ((m as { v: number }).v === 3 ? [i] : [])),
    });
    guests.set('dev.t.sink', sink);
    const route = await router.add(end('dev.t.source:out'), end('dev.t.sink:in'));
    await emit('out', ...readings(0, 5));
    await waitFor(() => router.get(route.id).counters.delivered === 3);
    assert.deepEqual(router.get(route.id).counters, { delivered: 3, dropped: 0, invalid: 1, failed: 1 });
    assert.equal(sink.batches, 1, 'nothing was retried');
    assert.ok(logs.some((line) => line.app === 'dev.t.source' && /1 messages were not delivered: not JSON/.test(line.message)));
  });

  it('counts a batch whose destination failed on it as failed, never retried, and carries on with the next', async () => {
    await open({ batchSize: 1 });
    const sink = new Destination();
    sink.handle = (messages) => {
      if (messages.some((m) => (m as { v: number }).v === 2)) throw fail('E_APP_FAILED', 'crashed on a poison message');
      return { invalid: [], failed: [] };
    };
    guests.set('dev.t.sink', sink);
    const route = await router.add(end('dev.t.source:out'), end('dev.t.sink:in'));
    for (let v = 0; v < 5; v += 1) await emit('out', { v });
    await waitFor(() => router.get(route.id).counters.delivered + router.get(route.id).counters.failed === 5);
    const { counters } = router.get(route.id);
    assert.equal(counters.failed, 1);
    assert.equal(counters.lastError?.code, 'E_APP_FAILED');
    assert.deepEqual(sink.received, [{ v: 0 }, { v: 1 }, { v: 3 }, { v: 4 }]);
  });

  it('moves text and bytes as they crossed: sizes checked per message, lone surrogates refused, the rest delivered', async () => {
    await open();
    const sink = new Destination();
    guests.set('dev.t.sink', sink);
    await router.add(end('dev.t.source:text'), end('dev.t.sink:lines'));
    await router.add(end('dev.t.source:bytes'), end('dev.t.sink:frames'));
    const refusedText = await emit('text', 'one', 'x'.repeat(13), 'bad \ud800', 'é'.repeat(6), 'é'.repeat(7), 'two');
    assert.deepEqual(
      refusedText.map(([index, code]) => [index, code]),
      [
        [1, 'E_MESSAGE_SIZE'],
        [2, 'E_MESSAGE'],
        [4, 'E_MESSAGE_SIZE'],
      ],
    );
    const frame = new Uint8Array([0, 1, 2, 255]);
    const refusedBytes = await emit('bytes', frame, new Uint8Array(65), frame);
    assert.deepEqual(
      refusedBytes.map(([index, code]) => [index, code]),
      [[1, 'E_MESSAGE_SIZE']],
    );
    await waitFor(() => sink.received.length === 5);
    assert.deepEqual(sink.received.slice(0, 3), ['one', 'é'.repeat(6), 'two']);
    assert.deepEqual(sink.received.slice(3), [frame, frame]);
  });

  it('refuses a route option out of range with E_ROUTE naming the field, and changes nothing', async () => {
    await open();
    const route = await router.add(end('dev.t.source:out'), end('dev.t.sink:in'));
    const before = config.read((doc) => JSON.stringify(doc.APPLICATIONS.APPS_ROUTING));
    await assert.rejects(router.update(route.id, { overflow: 'drop-all' as 'drop-oldest' }), { code: 'E_ROUTE', details: { field: 'overflow' } });
    await assert.rejects(router.update(route.id, { queue_bytes: 10 }), { code: 'E_ROUTE', details: { field: 'queue_bytes' } });
    await assert.rejects(router.add(end('dev.t.source:out'), end('dev.t.other:in'), { queue_bytes: 1.5 }), {
      code: 'E_ROUTE',
      details: { field: 'queue_bytes' },
    });
    assert.equal(
      config.read((doc) => JSON.stringify(doc.APPLICATIONS.APPS_ROUTING)),
      before,
    );
    const changed = await router.update(route.id, { overflow: 'drop-oldest', queue_bytes: 65_536 });
    assert.equal(changed.overflow, 'drop-oldest');
    assert.equal(changed.queue_bytes, 65_536);
  });

  it('lets a waiting source go when its route is removed, counting what it held as dropped', async () => {
    await open({ routeQueueBytes: 100 });
    const route = await router.add(end('dev.t.source:out'), end('dev.t.sink:in'));
    await emit('out', ...readings(0, 20));
    const waiting = emit('out', ...readings(20, 5));
    await router.remove(route.id);
    assert.deepEqual(await waiting, []);
  });

  it('gates nothing on another route: a full lossless route to one destination does not stop deliveries to another source app', async () => {
    await open({ routeQueueBytes: 200 });
    const held = gate();
    const sink = new Destination();
    sink.gate = held.promise;
    guests.set('dev.t.sink', sink);
    const other = new Destination();
    guests.set('dev.t.other', other);
    await router.add(end('dev.t.source:out'), end('dev.t.sink:in'));
    const stuck = emit('out', ...readings(0, 100)).then(() => emit('out', ...readings(100, 10)));
    // Another app's batch on its own route is delivered meanwhile.
    apps['dev.t.second'] = sampleManifest({
      package_id: 'dev.t.second',
      name: 'second',
      endpoints: [{ name: 'out', direction: 'source', dataType: 'reading', format: 'json' }],
    });
    try {
      await router.add(end('dev.t.second:out'), end('dev.t.other:in'));
      await router.emitBatch('dev.t.second', [runOf('dev.t.second', 'out', readings(0, 3))]);
      await waitFor(() => other.received.length === 3);
      held.open();
      await stuck;
      await waitFor(() => sink.received.length === 110);
    } finally {
      delete apps['dev.t.second'];
    }
  });
});
