/**
 * The data plane against what a reviewer attacking it found: memory a source could make the
 * host hold uncharged, batches lost or stuck when a destination stops or hangs, and answers or
 * lists forged from inside an isolate. Each case asserts its own outcome and that nothing else
 * was affected.
 */
import { strict as assert } from 'node:assert';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import ivm from 'isolated-vm';
import { MemoryAuditLog } from '../../platform/audit/index.js';
import { ConfigStore } from '../../platform/config/index.js';
import { Router } from '../../platform/router/index.js';
import { ByteBudget, Lane } from '../../platform/router/lane.js';
import { textSegment } from '../../platform/router/segment.js';
import type { AppGuest, CheckedRun, DeliverBatch, DeliverResult } from '../../platform/sandbox/bridge.js';
import { createAppSandbox } from '../../platform/sandbox/index.js';
import { decodeCall } from '../../platform/sandbox/protocol.js';
import type { AppManifest, EndpointDeclaration } from '../../sdk/manifest.js';
import { refusedWith } from '../fixtures/errors.js';
import { fakeHost, messagesOf } from '../fixtures/fake-host.js';
import { sampleManifest } from '../fixtures/packages.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { waitFor } from '../fixtures/wait.js';

const OUT: EndpointDeclaration = { name: 'out', direction: 'source', dataType: 'reading', format: 'json' };
const TEXT: EndpointDeclaration = { name: 'text', direction: 'source', dataType: 'line', format: 'text' };
const RAW: EndpointDeclaration = { name: 'raw', direction: 'source', dataType: 'frame', format: 'binary', maxMessageBytes: 16 };
const IN: EndpointDeclaration = { name: 'in', direction: 'destination', dataType: 'reading', format: 'json' };
const LINES: EndpointDeclaration = { name: 'lines', direction: 'destination', dataType: 'line', format: 'text' };

const apps: Record<string, AppManifest> = {
  'dev.t.source': sampleManifest({ package_id: 'dev.t.source', name: 'source', endpoints: [OUT, TEXT, RAW] }),
  'dev.t.sink': sampleManifest({ package_id: 'dev.t.sink', name: 'sink', endpoints: [IN, LINES] }),
  'dev.t.other': sampleManifest({ package_id: 'dev.t.other', name: 'other', endpoints: [IN] }),
};

const jsonRun = (endpoint: EndpointDeclaration, messages: unknown[]): CheckedRun => {
  const texts = messages.map((message) => JSON.stringify(message));
  return { endpoint, text: texts.join(''), lengths: texts.map((text) => text.length) };
};

class Destination implements AppGuest {
  received: unknown[] = [];
  async deliver(endpoint: string, batch: DeliverBatch): Promise<DeliverResult> {
    this.received.push(...messagesOf(batch, endpoint === 'in'));
    return { invalid: [], failed: [] };
  }
  async configChanged(): Promise<void> {}
}

describe('router: the data plane against a hostile source or destination', () => {
  let dir: string;
  let config: ConfigStore;
  let guests: Map<string, AppGuest>;
  let router: Router;
  const end = (text: string) => ({ application_id: text.split(':')[0]!, endpoint: text.split(':')[1]! });

  beforeEach(async () => {
    dir = await makeTempDir('isogate-dataplane-');
    config = await ConfigStore.open(path.join(dir, 'config.json'), 'test');
    guests = new Map();
    router = new Router({
      config,
      audit: new MemoryAuditLog(),
      appLog: () => undefined,
      routeQueueBytes: 64 * 1024,
      manifestOf: (id) => apps[id],
      guestOf: (id) => guests.get(id),
    });
  });
  afterEach(async () => {
    await router.close();
    await removeDir(dir);
  });

  it('charges empty messages: a flood of zero-byte messages toward a stopped destination waits at the bound', async () => {
    const route = await router.add(end('dev.t.source:text'), end('dev.t.sink:lines'));
    const empties: CheckedRun = { endpoint: TEXT, text: '', lengths: Array(4096).fill(0) };
    let settled = 0;
    for (let i = 0; i < 50; i += 1) void router.emitBatch('dev.t.source', [empties]).then(() => (settled += 1));
    await new Promise((resolve) => setImmediate(resolve));
    const view = router.get(route.id);
    assert.ok(view.queued_bytes <= 64 * 1024 + 4096 * 16 + 64, `held ${view.queued_bytes}`);
    assert.ok(view.queued < 50 * 4096, `queued ${view.queued} of ${50 * 4096}: the rest waits`);
    assert.ok(settled < 50, 'the source was slowed down');
  });

  it('keeps only what a drop policy kept: a run cut by drop-newest does not hold the rest of its text', async () => {
    // gc for this test alone: a process-wide --expose-gc would give every app isolate a `gc` global.
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    v8.setFlagsFromString('--no-expose-gc');
    const lane = new Lane('drop-newest', [new ByteBudget(64 * 1024), new ByteBudget(1 << 30), new ByteBudget(1 << 30)], {
      released() {},
      dropped() {},
      dropping() {},
      burstEnded() {},
    });
    lane.offer(textSegment('y'.repeat(60 * 1024), [60 * 1024]));
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 100; i += 1) {
      const text = `${String.fromCharCode(97 + (i % 26)).repeat(10)}${`${i}`.padEnd(1024 * 1024, 'z')}`;
      lane.offer(textSegment(text, [10, text.length - 10]));
    }
    gc();
    assert.ok(lane.heldBytes <= 64 * 1024, `charged ${lane.heldBytes}`);
    assert.ok(lane.counters.dropped >= 100);
    // Without the copy, each kept 10-character head held its 1 MiB run: 100 MiB.
    assert.ok(process.memoryUsage().heapUsed - before < 20 * 1024 * 1024, `heap grew by ${process.memoryUsage().heapUsed - before}`);
  });

  it('refuses a surrogate pair split between two messages of a well-formed run with E_MESSAGE', async () => {
    const sink = new Destination();
    guests.set('dev.t.sink', sink);
    await router.add(end('dev.t.source:text'), end('dev.t.sink:lines'));
    const refusals = await router.emitBatch('dev.t.source', [{ endpoint: TEXT, text: 'a\ud83d\ude00bok', lengths: [2, 2, 2] }]);
    assert.deepEqual(
      refusals.map(([index, code]) => [index, code]),
      [
        [0, 'E_MESSAGE'],
        [1, 'E_MESSAGE'],
      ],
    );
    await waitFor(() => sink.received.length === 1);
    assert.deepEqual(sink.received, ['ok']);
  });

  it("does not hold a source's healthy route back behind its full one", async () => {
    const healthy = new Destination();
    guests.set('dev.t.other', healthy);
    await router.add(end('dev.t.source:out'), end('dev.t.sink:in'));
    await router.add(end('dev.t.source:out'), end('dev.t.other:in'));
    const big = Array.from({ length: 100 }, (_, v) => ({ v, pad: 'x'.repeat(1000) }));
    let blocked = false;
    for (let round = 0; round < 5 && !blocked; round += 1) {
      const receipt = router.emitBatch('dev.t.source', [jsonRun(OUT, big)]);
      blocked = await Promise.race([receipt.then(() => false), new Promise<boolean>((resolve) => setImmediate(() => resolve(true)))]);
    }
    assert.ok(blocked, 'the route to the stopped sink is full and the source waits');
    const got = healthy.received.length;
    await waitFor(() => healthy.received.length === got && got > 0);
    assert.equal(healthy.received.length % 100, 0, 'the healthy route had every batch offered to it');
  });

  it('lets a source waiting on a full route go when the admin disables the route, or the source stops; the messages are counted dropped', async () => {
    const route = await router.add(end('dev.t.source:out'), end('dev.t.sink:in'));
    const run = jsonRun(
      OUT,
      Array.from({ length: 100 }, (_, v) => ({ v, pad: 'x'.repeat(1000) })),
    );
    await router.emitBatch('dev.t.source', [run]);
    const waiting = router.emitBatch('dev.t.source', [run]);
    await router.update(route.id, { active: false });
    assert.deepEqual(await waiting, []);
    assert.equal(router.get(route.id).counters.dropped, 100);
    assert.equal(router.endpointCounters()['dev.t.sink:in']?.dropped, 100, 'the destination endpoint counts the drop too');

    await router.update(route.id, { active: true });
    const again = router.emitBatch('dev.t.source', [run]);
    router.appStopped('dev.t.source');
    assert.deepEqual(await again, []);
    assert.equal(router.get(route.id).counters.dropped, 200);
  });
});

describe('sandbox: the data plane against a hostile isolate', function () {
  this.timeout(20_000);
  const source = sampleManifest({ package_id: 'dev.t.views', endpoints: [RAW], resources: { memoryMb: 64, cpuMsPerEvent: 2000, storageMb: 1 } });
  const sink = (id: string): AppManifest => sampleManifest({ package_id: id, endpoints: [IN], resources: { memoryMb: 32, cpuMsPerEvent: 2000, storageMb: 1 } });
  const text = (messages: string[]): DeliverBatch => ({ texts: [messages.join('')], lengths: messages.map((m) => m.length) });

  it('copies a small view of a large buffer: the host holds the view, not the 8 MiB behind it', async () => {
    const host = fakeHost(source.package_id);
    const sandbox = await createAppSandbox({
      manifest: source,
      host,
      files: new Map([
        ['app/main.js', "import { emit } from 'isogate:sdk';\nconst big = new Uint8Array(8 * 1024 * 1024); big[0] = 7; emit('raw', big.subarray(0, 1));"],
      ]),
    });
    try {
      await sandbox.start();
      await waitFor(() => host.emitted.length === 1);
      const message = host.emitted[0]!.message as Uint8Array;
      assert.deepEqual([message.byteLength, message.buffer.byteLength, message[0]], [1, 1, 7]);
    } finally {
      sandbox.dispose();
    }
  });

  it('refuses a holey list of bytes at the boundary with E_BAD_REQUEST before the router sees it', async () => {
    const isolate = new ivm.Isolate({ memoryLimit: 16 });
    const copied = await (await isolate.createContext()).eval("const a = [new Uint8Array(1)]; a.length = 3; a[2] = new Uint8Array(1); [['raw', a]]", {
      copy: true,
    });
    isolate.dispose();
    assert.throws(() => decodeCall('emit.batch', [copied]), refusedWith('E_BAD_REQUEST', /\[0\]\[1\]\[1\]/));
  });

  it('answers E_STATE for a batch in flight when the destination is stopped, so the router puts it back', async () => {
    const sandbox = await createAppSandbox({
      manifest: sink('dev.t.slow'),
      host: fakeHost('dev.t.slow'),
      files: new Map([['app/main.js', "import { on } from 'isogate:sdk';\non('in', () => new Promise((resolve) => setTimeout(resolve, 200)));"]]),
    });
    await sandbox.start();
    const inFlight = sandbox.deliver('in', text(['{"i":0}', '{"i":1}']));
    const stopped = sandbox.stop(50);
    await assert.rejects(inFlight, { code: 'E_STATE' });
    await stopped;
  });

  it('ends a destination whose handler never settles after the delivery deadline, with E_APP_FAILED', async () => {
    const failures: string[] = [];
    const sandbox = await createAppSandbox({
      manifest: sink('dev.t.hung'),
      host: fakeHost('dev.t.hung'),
      limits: { deliverDeadlineMs: 200 },
      onFailure: (failure) => failures.push(failure.code),
      files: new Map([['app/main.js', "import { on } from 'isogate:sdk';\non('in', () => new Promise(() => {}));"]]),
    });
    await sandbox.start();
    await assert.rejects(sandbox.deliver('in', text(['{"i":0}'])), { code: 'E_APP_FAILED', message: /within 200 ms/ });
    assert.deepEqual(failures, ['E_APP_FAILED']);
    assert.equal(sandbox.disposed, true);
  });

  it('does not believe a forged delivery result: the destination that lied is failed, and no count goes negative', async () => {
    const sandbox = await createAppSandbox({
      manifest: sink('dev.t.liar'),
      host: fakeHost('dev.t.liar'),
      files: new Map([
        [
          'app/main.js',
          "import { on } from 'isogate:sdk';\nconst push = Array.prototype.push;\nArray.prototype.push = function (...a) { const r = push.apply(this, a); if (typeof a[0] === 'number') this.length = 100000; return r; };\non('in', () => { throw new Error('x'); });",
        ],
      ]),
    });
    await sandbox.start();
    await assert.rejects(sandbox.deliver('in', text(['{"a":1}'])), { code: 'E_APP_FAILED' });
    assert.equal(sandbox.disposed, true);
  });
});
