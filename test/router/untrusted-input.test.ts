/**
 * Messages against publishers' schemas (issue 11, findings 5 and 6): the finding's pattern and
 * emit are refused while the gateway's thread keeps answering, and a message nested past the
 * bound is refused before anything serialises or delivers it.
 */
import { strict as assert } from 'node:assert';
import path from 'node:path';
import { type ControlServer, callControl, serveControlSocket } from '../../platform/api/control-socket.js';
import { MemoryAuditLog } from '../../platform/audit/index.js';
import { ConfigStore } from '../../platform/config/index.js';
import { Router } from '../../platform/router/index.js';
import type { AppGuest, DeliverBatch, EmitRefusal } from '../../platform/sandbox/bridge.js';
import type { AppManifest } from '../../sdk/manifest.js';
import { messagesOf } from '../fixtures/fake-host.js';
import { sampleManifest } from '../fixtures/packages.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { waitFor } from '../fixtures/wait.js';

const apps: Record<string, AppManifest> = {
  'dev.t.hostile': sampleManifest({
    package_id: 'dev.t.hostile',
    name: 'hostile',
    endpoints: [
      { name: 'out', direction: 'source', dataType: 'word', format: 'json', schema: { type: 'string', pattern: '^(a+)+$' } },
      { name: 'free', direction: 'source', dataType: 'any', format: 'json', schema: { type: 'array' } },
    ],
  }),
  'dev.t.sink': sampleManifest({
    package_id: 'dev.t.sink',
    name: 'sink',
    endpoints: [
      { name: 'in', direction: 'destination', dataType: 'word', format: 'json' },
      { name: 'any', direction: 'destination', dataType: 'any', format: 'json' },
    ],
  }),
};

describe('router: messages from a hostile publisher', () => {
  let dir: string;
  let config: ConfigStore;
  let router: Router;
  let received: unknown[];
  let control: ControlServer | undefined;
  /** One message as its JSON text, as the sandbox hands a checked run to the router. */
  const emit = (endpointName: string, text: string): Promise<EmitRefusal[]> =>
    router.emitBatch('dev.t.hostile', [{ endpoint: apps['dev.t.hostile']!.endpoints!.find((e) => e.name === endpointName)!, text, lengths: [text.length] }]);
  const refusedWith = async (refusals: Promise<EmitRefusal[]>): Promise<string | undefined> => (await refusals)[0]?.[1];

  beforeEach(async () => {
    dir = await makeTempDir('isogate-router-');
    config = await ConfigStore.open(path.join(dir, 'config.json'), 'test');
    received = [];
    const sink: AppGuest = {
      deliver: async (_endpoint: string, batch: DeliverBatch) => {
        received.push(...messagesOf(batch));
        return { invalid: [], failed: [] };
      },
      configChanged: async () => undefined,
    };
    router = new Router({
      config,
      audit: new MemoryAuditLog(),
      appLog: () => undefined,
      manifestOf: (id) => apps[id],
      guestOf: (id) => (id === 'dev.t.sink' ? sink : undefined),
    });
    await router.add({ application_id: 'dev.t.hostile', endpoint: 'out' }, { application_id: 'dev.t.sink', endpoint: 'in' });
    await router.add({ application_id: 'dev.t.hostile', endpoint: 'free' }, { application_id: 'dev.t.sink', endpoint: 'any' });
  });
  afterEach(async () => {
    await control?.close();
    control = undefined;
    await router.close();
    await removeDir(dir);
  });

  it("refuses the finding's 29-character emit on ^(a+)+$ with E_MESSAGE while the control socket and a timer keep answering", async () => {
    control = await serveControlSocket(path.join(dir, 'control.sock'), async () => 'up');
    const hostile = `${'a'.repeat(28)}!`;
    const codes: string[] = [];
    let ticks = 0;
    const timer = setInterval(() => {
      ticks += 1;
    }, 1);
    try {
      // One emit per turn of the event loop, as emits arrive from an app: with a backtracking
      // engine each one held the thread for seconds, and twenty of them outlast the test's timeout.
      const emits = (async () => {
        for (let i = 0; i < 20; i += 1) {
          await new Promise((resolve) => setImmediate(resolve));
          codes.push(String(await refusedWith(emit('out', JSON.stringify(hostile)))));
        }
      })();
      assert.equal(await callControl(control.path, 'status'), 'up');
      await emits;
      await waitFor(() => ticks >= 2);
    } finally {
      clearInterval(timer);
    }
    assert.deepEqual(codes, Array(20).fill('E_MESSAGE'));
    assert.equal(await refusedWith(emit('out', '"aaaa"')), undefined);
    await waitFor(() => received.length === 1);
    assert.deepEqual(received, ['aaaa']);
    assert.equal(router.endpointCounters()['dev.t.hostile:out']?.invalid, 20);
  });

  it('refuses a message nested past the bound with E_DOCUMENT_LIMIT and delivers nothing', async () => {
    // As an app sends it: JSON text, parsed by the router (JSON.parse does not recurse), depth-checked before validation.
    const text = '['.repeat(2001) + ']'.repeat(2001);
    const [[, code, message]] = (await emit('free', text)) as [EmitRefusal];
    assert.equal(code, 'E_DOCUMENT_LIMIT');
    assert.match(message, /32 levels/);
    // A deep value inside an object, and one just past the bound.
    assert.equal(await refusedWith(emit('free', `[{"a":${'['.repeat(40)}${']'.repeat(40)}}]`)), 'E_DOCUMENT_LIMIT');
    assert.equal(await refusedWith(emit('free', '['.repeat(33) + ']'.repeat(33))), 'E_DOCUMENT_LIMIT');
    assert.equal(await refusedWith(emit('free', '[[1]]')), undefined);
    await waitFor(() => received.length === 1);
    assert.deepEqual(received, [[[1]]]);
    assert.equal(router.endpointCounters()['dev.t.hostile:free']?.invalid, 3);
  });
});
