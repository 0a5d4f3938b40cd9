/**
 * traffic.inspect across the isolation boundary: the capability checked on both sides, the gate's
 * batched crossing (open, data, close in one call, one verdict per data item), and the host's
 * check of every verdict: a forged or malformed one fails the app, with its own outcome each.
 */
import { strict as assert } from 'node:assert';
import type { AppInspector } from '../../platform/sandbox/bridge.js';
import { grantsFor, hostFor, type SandboxSide } from '../../platform/sandbox/capabilities.js';
import { type AppSandbox, createAppSandbox, type SandboxFailure } from '../../platform/sandbox/index.js';
import { decodeVerdicts, dispatch, type InspectItem, type TrafficConnection } from '../../platform/sandbox/protocol.js';
import type { AppManifest } from '../../sdk/manifest.js';
import { refusedWith } from '../fixtures/errors.js';
import { fakeHost } from '../fixtures/fake-host.js';
import { sampleManifest } from '../fixtures/packages.js';
import { waitFor } from '../fixtures/wait.js';

const ALERT = { sid: 1, gid: 1, rev: 1, signature: 'sig', action: 'drop', category: 'c', severity: 1 };
const CONNECTION: TrafficConnection = { id: 1, service: 'plc', protocol: 'modbus', srcIp: '127.0.0.2', srcPort: 40000, destIp: '127.0.0.1', destPort: 502 };
const inspecting = (overrides: Partial<AppManifest> = {}): AppManifest =>
  sampleManifest({ package_id: 'dev.isogate.inspector', capabilities: ['traffic.inspect', 'traffic.block'], ...overrides });

describe('traffic.inspect across the boundary', function () {
  this.timeout(30_000);

  describe('verdicts, decoded on the host', () => {
    const FORGED: [string, unknown, number][] = [
      ['not a list', { release: 1 }, 1],
      ['one verdict short', [], 1],
      ['one verdict too many', [{ release: 1 }, { release: 2 }], 1],
      ['a negative release', [{ release: -1 }], 1],
      ['a fractional release', [{ release: 1.5 }], 1],
      ['a release as text', [{ release: '12' }], 1],
      ['neither release nor drop', [{}], 1],
      ['an unknown field', [{ release: 1, extra: true }], 1],
      ['a drop that is no alert', [{ drop: 'sig' }], 1],
      ['an alert without its sid', [{ drop: { ...ALERT, sid: undefined } }], 1],
      ['an alert of an unknown action', [{ drop: { ...ALERT, action: 'reject' } }], 1],
      ['a signature past 1024 characters', [{ drop: { ...ALERT, signature: 'x'.repeat(1025) } }], 1],
      ['more than 64 alerts', [{ release: 1, alerts: Array.from({ length: 65 }, () => ALERT) }], 1],
      // biome-ignore lint/suspicious/noSparseArray: the hole is the attack
      ['a list with a hole', [, { release: 1 }], 2],
    ];
    for (const [what, value, items] of FORGED) {
      it(`refuses ${what} as a forged verdict (E_APP_FAILED)`, () => {
        assert.throws(() => decodeVerdicts(value, items), refusedWith('E_APP_FAILED', /forged verdict/));
      });
    }
    it('takes well-formed verdicts, dropping nothing the contract allows', () => {
      assert.deepEqual(decodeVerdicts([{ release: 0 }, { drop: ALERT, alerts: [ALERT] }, { release: 9, alerts: [] }], 3), [
        { release: 0 },
        { drop: ALERT, alerts: [ALERT] },
        { release: 9, alerts: [] },
      ]);
    });
  });

  describe('the capability', () => {
    const side = (): SandboxSide => ({
      log: () => undefined,
      timer: () => undefined,
      ready: () => undefined,
      disposed: false,
      connections: new Map(),
      connectionEvent: async () => undefined,
      inspect: async () => [],
    });

    it('refuses a forged traffic.inspect from an app without the capability, registering nothing', async () => {
      const registered: AppInspector[] = [];
      const host = { ...fakeHost(), traffic: { register: (inspector: AppInspector) => registered.push(inspector) } };
      const handlers = hostFor(grantsFor(sampleManifest()), host, side());
      await assert.rejects(dispatch(handlers, 'traffic.inspect', []), refusedWith('E_CAPABILITY', /traffic\.inspect/));
      // An app from the image with the capability but no gate given to it is refused too.
      const ungated = hostFor(grantsFor(inspecting(), 'image'), fakeHost(), side());
      await assert.rejects(dispatch(ungated, 'traffic.inspect', []), refusedWith('E_CAPABILITY'));
      assert.equal(registered.length, 0);
      const gated = hostFor(grantsFor(inspecting(), 'image'), host, side());
      await dispatch(gated, 'traffic.inspect', []);
      assert.equal(registered.length, 1);
      assert.equal(registered[0]!.canBlock, true);
    });
  });

  describe('through an isolate', () => {
    const running: AppSandbox[] = [];
    afterEach(() => {
      for (const sandbox of running.splice(0)) sandbox.dispose();
    });

    async function start(source: string, manifest: AppManifest, origin: 'store' | 'image') {
      const registered: AppInspector[] = [];
      const failures: SandboxFailure[] = [];
      const host = { ...fakeHost(manifest.package_id), traffic: { register: (inspector: AppInspector) => registered.push(inspector) } };
      const sandbox = await createAppSandbox({
        manifest,
        files: new Map([['app/main.js', source]]),
        host,
        origin,
        limits: { startDeadlineMs: 5000 },
        onFailure: (failure) => failures.push(failure),
      });
      running.push(sandbox);
      await sandbox.start();
      return { host, registered, failures, sandbox };
    }

    it("refuses traffic.inspect in the guest without the capability, with the host's code", async () => {
      const { host, registered } = await start(
        `import { traffic, log } from 'isogate:sdk';
        try { traffic.inspect({ open() {}, data() { return { release: 0 }; }, close() {} }); } catch (e) { log.info(e.code); }`,
        sampleManifest(),
        'store',
      );
      assert.equal(await host.waitForLog(/^E_/), 'E_CAPABILITY');
      assert.equal(registered.length, 0);
    });

    it("hands many connections' events over in one crossing and gets one verdict per data item, in order", async () => {
      const { registered, host } = await start(
        `import { traffic, log } from 'isogate:sdk';
        const seen = [];
        traffic.inspect({
          open(c) { seen.push('open ' + c.id + ' ' + c.srcIp + ' ' + Object.isFrozen(c)); },
          data(id, direction, bytes, ts) { seen.push(direction + ' ' + bytes.length); return { release: bytes.length }; },
          close(id) { seen.push('close ' + id); log.info(JSON.stringify(seen)); },
        });
        try { traffic.inspect({ open() {}, data() {}, close() {} }); } catch (e) { log.info(e.code); }`,
        inspecting(),
        'image',
      );
      assert.equal(await host.waitForLog(/^E_/), 'E_CONFLICT');
      await waitFor(() => registered.length === 1);
      const items: InspectItem[] = [
        ['open', CONNECTION],
        ['data', 1, 'to_server', new Uint8Array(12), 1],
        ['data', 1, 'to_client', Buffer.alloc(3), 2],
        ['close', 1],
      ];
      assert.deepEqual(await registered[0]!.inspect(items), [{ release: 12 }, { release: 3 }]);
      assert.deepEqual(JSON.parse(await host.waitForLog(/^\["open/)), ['open 1 127.0.0.2 true', 'to_server 12', 'to_client 3', 'close 1']);
    });

    for (const [what, body, code] of [
      ['answers a forged verdict', 'return { release: -5 };', 'E_APP_FAILED'],
      ['answers something that cannot be copied', 'return { release: 1, alerts: [() => 1] };', 'E_APP_FAILED'],
      ['throws', "throw new Error('bug');", 'E_APP_FAILED'],
      ['loops', 'for (;;) {}', 'E_CPU_LIMIT'],
    ] as const) {
      it(`fails the app that ${what} (${code}), and its inspector answers no more`, async () => {
        const { registered, failures } = await start(
          `import { traffic } from 'isogate:sdk';
          traffic.inspect({ open() {}, data() { ${body} }, close() {} });`,
          inspecting({ resources: { memoryMb: 32, cpuMsPerEvent: 100, storageMb: 1 } }),
          'image',
        );
        await waitFor(() => registered.length === 1);
        await assert.rejects(registered[0]!.inspect([['data', 1, 'to_server', new Uint8Array(4), 1]]), refusedWith(code));
        assert.equal(failures[0]?.code, code);
        await assert.rejects(registered[0]!.inspect([['close', 1]]), (error: { code: string }) => ['E_APP_FAILED', 'E_STATE'].includes(error.code));
      });
    }
  });
});
