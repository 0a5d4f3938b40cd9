import { strict as assert } from 'node:assert';
import path from 'node:path';
import { MemoryAuditLog } from '../../platform/audit/index.js';
import { ConfigStore } from '../../platform/config/index.js';
import { Router } from '../../platform/router/index.js';
import type { AppGuest, CheckedRun, DeliverBatch, DeliverResult, EmitRefusal } from '../../platform/sandbox/bridge.js';
import type { AppManifest } from '../../sdk/manifest.js';
import { messagesOf } from '../fixtures/fake-host.js';
import { sampleManifest } from '../fixtures/packages.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { waitFor } from '../fixtures/wait.js';

const READING = { type: 'object', required: ['v'], additionalProperties: false, properties: { v: { type: 'number' } } };

const apps: Record<string, AppManifest> = {
  'dev.t.source': sampleManifest({
    package_id: 'dev.t.source',
    name: 'source',
    networkZone: 'lan',
    endpoints: [
      { name: 'out', direction: 'source', dataType: 'reading', format: 'json', schema: READING, maxMessageBytes: 200 },
      { name: 'text', direction: 'source', dataType: 'line', format: 'text' },
      { name: 'in', direction: 'destination', dataType: 'reading', format: 'json' },
    ],
  }),
  'dev.t.sink': sampleManifest({
    package_id: 'dev.t.sink',
    name: 'sink',
    networkZone: 'wan',
    endpoints: [
      { name: 'in', direction: 'destination', dataType: 'reading', format: 'json' },
      { name: 'out', direction: 'source', dataType: 'reading', format: 'json' },
    ],
  }),
  'dev.t.other': sampleManifest({
    package_id: 'dev.t.other',
    name: 'other',
    networkZone: 'lan',
    endpoints: [
      { name: 'in', direction: 'destination', dataType: 'reading', format: 'json' },
      { name: 'wrongtype', direction: 'destination', dataType: 'alert', format: 'json' },
    ],
  }),
};

/** A run as the sandbox hands it to the router: the endpoint's declaration, the texts concatenated. */
function runOf(packageId: string, endpointName: string, messages: unknown[]): CheckedRun {
  const endpoint = apps[packageId]!.endpoints!.find((e) => e.name === endpointName)!;
  if (endpoint.format === 'binary') return { endpoint, messages: messages as Uint8Array[] };
  const texts = messages.map((message) => (endpoint.format === 'json' ? JSON.stringify(message) : String(message)));
  return { endpoint, text: texts.join(''), lengths: texts.map((text) => text.length) };
}

class RecordingGuest implements AppGuest {
  received: unknown[] = [];
  constructor(private readonly behaviour: 'ok' | 'throw' | 'slow' = 'ok') {}
  async deliver(_endpoint: string, batch: DeliverBatch): Promise<DeliverResult> {
    if (this.behaviour === 'throw') throw Object.assign(new Error('crashed'), { code: 'E_APP_FAILED' });
    if (this.behaviour === 'slow') await new Promise((resolve) => setTimeout(resolve, 50));
    this.received.push(...messagesOf(batch));
    return { invalid: [], failed: [] };
  }
  async configChanged(): Promise<void> {}
}

describe('router', () => {
  let dir: string;
  let config: ConfigStore;
  let audit: MemoryAuditLog;
  let guests: Map<string, AppGuest>;
  let installed: Set<string>;
  let logs: string[];
  let router: Router;

  beforeEach(async () => {
    dir = await makeTempDir('isogate-router-');
    config = await ConfigStore.open(path.join(dir, 'config.json'), 'test');
    audit = new MemoryAuditLog();
    guests = new Map();
    installed = new Set(Object.keys(apps));
    logs = [];
    router = new Router({
      config,
      audit,
      routeQueueBytes: 100,
      appLog: (_id, _level, message) => logs.push(message),
      manifestOf: (id) => (installed.has(id) ? apps[id] : undefined),
      guestOf: (id) => guests.get(id),
    });
  });
  afterEach(() => removeDir(dir));

  const end = (text: string) => ({ application_id: text.split(':')[0]!, endpoint: text.split(':')[1]! });
  const emit = (packageId: string, endpointName: string, ...messages: unknown[]): Promise<EmitRefusal[]> =>
    router.emitBatch(packageId, [runOf(packageId, endpointName, messages)]);
  const codes = (refusals: EmitRefusal[]) => refusals.map(([index, code]) => [index, code]);

  it('keeps a route whose endpoint an update dropped or changed in Error, carrying nothing, and carries it again when the endpoint is back', async () => {
    const sink = new RecordingGuest();
    guests.set('dev.t.sink', sink);
    const route = await router.add(end('dev.t.source:out'), end('dev.t.sink:in'));
    const original = apps['dev.t.sink']!;
    try {
      // The sink's new version has no "in" any more.
      apps['dev.t.sink'] = { ...original, version: '2.0.0', endpoints: original.endpoints!.filter((e) => e.name !== 'in') };
      const broken = router.appReplaced('dev.t.sink');
      assert.deepEqual(
        broken.map((view) => view.id),
        [route.id],
      );
      assert.equal(router.get(route.id).status, 'Error');
      assert.match(router.get(route.id).problem!, /declares no endpoint "in"/);
      await emit('dev.t.source', 'out', { v: 1 });
      assert.equal(router.get(route.id).queued, 0, 'nothing is queued for an endpoint that is not there');
      // A version whose "in" takes another data type: still Error.
      apps['dev.t.sink'] = { ...original, version: '3.0.0', endpoints: original.endpoints!.map((e) => (e.name === 'in' ? { ...e, dataType: 'alert' } : e)) };
      router.appReplaced('dev.t.sink');
      assert.match(router.get(route.id).problem!, /disagree on dataType/);

      apps['dev.t.sink'] = original;
      assert.deepEqual(router.appReplaced('dev.t.sink'), []);
      assert.equal(router.get(route.id).status, 'Active');
      await emit('dev.t.source', 'out', { v: 2 });
      await waitFor(() => sink.received.length === 1);
      assert.deepEqual(sink.received, [{ v: 2 }]);
    } finally {
      apps['dev.t.sink'] = original;
    }
  });

  it('refuses invalid routes with the field that is wrong, and changes nothing', async () => {
    const cases: [string, string, string, RegExp][] = [
      ['dev.t.nobody:out', 'dev.t.sink:in', 'E_ROUTE', /No app dev\.t\.nobody/],
      ['dev.t.source:nothing', 'dev.t.sink:in', 'E_ROUTE', /no endpoint "nothing"/],
      ['dev.t.sink:in', 'dev.t.source:in', 'E_ROUTE', /destination endpoint; a route goes from a source/],
      ['dev.t.source:out', 'dev.t.other:wrongtype', 'E_ROUTE', /disagree on dataType/],
      ['dev.t.source:text', 'dev.t.sink:in', 'E_ROUTE', /disagree on dataType/],
      ['dev.t.source:out', 'dev.t.source:in', 'E_ROUTE', /to itself/],
    ];
    for (const [source, destination, code, message] of cases) {
      await assert.rejects(
        router.add(end(source), end(destination)),
        (error: { code: string; message: string }) => error.code === code && message.test(error.message),
        `${source} -> ${destination}`,
      );
    }
    await router.add(end('dev.t.source:out'), end('dev.t.sink:in'));
    await assert.rejects(router.add(end('dev.t.source:out'), end('dev.t.sink:in')), { code: 'E_ROUTE_DUPLICATE' });
    assert.equal(
      config.read((doc) => doc.APPLICATIONS.APPS_ROUTING.routes.length),
      1,
    );
    assert.deepEqual(audit.events(), ['routesChanged']);
  });

  it('refuses invalid options with E_OPTION before attaching anything to the configuration store', () => {
    const listeners = config.listenerCount('change');
    for (const bad of [{ routeQueueBytes: 0 }, { gatewayQueueBytes: 2.5 }, { batchBytes: 0 }, { batchSize: 1.5 }, { maxRoutes: -1 }]) {
      assert.throws(
        () => new Router({ config, audit, appLog: () => undefined, manifestOf: () => undefined, guestOf: () => undefined, ...bad }),
        (error: { code: string; message: string }) =>
          error.code === 'E_OPTION' && new RegExp(`^${Object.keys(bad)[0]} is a positive integer$`).test(error.message),
      );
    }
    assert.equal(config.listenerCount('change'), listeners, 'no listener left behind by a refused router');
  });

  it('in unidirectional gateway mode carries data only from lan to wan', async () => {
    await config.update((doc) => {
      doc.MODE_SWITCH.router_mode = false;
    });
    await assert.rejects(router.add(end('dev.t.sink:out'), end('dev.t.other:in')), { code: 'E_ROUTE_DIRECTION' });
    await router.add(end('dev.t.source:out'), end('dev.t.sink:in'));
  });

  it('delivers in order, fans out, validates against the schema and counts', async () => {
    const sink = new RecordingGuest();
    const other = new RecordingGuest();
    guests.set('dev.t.sink', sink);
    guests.set('dev.t.other', other);
    const toSink = await router.add(end('dev.t.source:out'), end('dev.t.sink:in'));
    await router.add(end('dev.t.source:out'), end('dev.t.other:in'));
    const refusals = await emit(
      'dev.t.source',
      'out',
      { v: 0 },
      { v: 'not a number' },
      { v: 1 },
      JSON.parse('{"v": 1, "__proto__": {"x": 1}}'),
      { v: 2 },
      { v: 1, pad: 'x'.repeat(300) },
      { v: 3 },
      { v: 4 },
    );
    assert.deepEqual(codes(refusals), [
      [1, 'E_MESSAGE'],
      [3, 'E_MESSAGE'],
      [5, 'E_MESSAGE_SIZE'],
    ]);
    await waitFor(() => sink.received.length === 5 && other.received.length === 5);
    assert.deepEqual(
      sink.received,
      [0, 1, 2, 3, 4].map((v) => ({ v })),
    );
    const view = router.get(toSink.id);
    assert.equal(view.counters.delivered, 5);
    assert.equal(router.endpointCounters()['dev.t.source:out']!.invalid, 3);
    assert.equal(router.endpointCounters()['dev.t.source:out']!.emitted, 5);
  });

  it('shows Error for a route whose app was removed, holds messages for a stopped destination', async () => {
    const route = await router.add(end('dev.t.source:out'), end('dev.t.sink:in'));
    await emit('dev.t.source', 'out', { v: 1 });
    assert.equal(router.get(route.id).queued, 1);
    const sink = new RecordingGuest();
    guests.set('dev.t.sink', sink);
    router.appStarted('dev.t.sink');
    await waitFor(() => sink.received.length === 1);
    installed.delete('dev.t.sink');
    router.appRemoved('dev.t.sink');
    assert.equal(router.get(route.id).status, 'Error');
    assert.deepEqual(
      router.list({ search: 'error' }).map((r) => r.id),
      [route.id],
    );
    await router.remove(route.id);
    assert.deepEqual(router.list(), []);
  });

  it('reads Inactive while disabled, carries nothing then, and Active again once enabled', async () => {
    const sink = new RecordingGuest();
    guests.set('dev.t.sink', sink);
    router.appStarted('dev.t.sink');
    const route = await router.add(end('dev.t.source:out'), end('dev.t.sink:in'));
    assert.equal((await router.update(route.id, { active: false })).status, 'Inactive');
    assert.deepEqual(
      router.list({ search: 'inactive' }).map((r) => r.id),
      [route.id],
    );
    await emit('dev.t.source', 'out', { v: 1 });
    assert.equal(router.get(route.id).queued, 0);
    assert.equal((await router.update(route.id, { active: true })).status, 'Active');
    await emit('dev.t.source', 'out', { v: 2 });
    await waitFor(() => sink.received.length === 1);
    assert.deepEqual(sink.received, [{ v: 2 }]);
  });
});
