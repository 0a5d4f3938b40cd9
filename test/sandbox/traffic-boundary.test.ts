/**
 * traffic.inspect across the isolation boundary: the capability checked on both sides, the gate's
 * batched crossing (open, data, close in one call, one verdict per data item), and the host's
 * check of every verdict: a forged or malformed one fails the app, with its own outcome each.
 */
import { strict as assert } from 'node:assert';
import type { AppInspector } from '../../platform/sandbox/bridge.js';
import { grantsFor, hostFor, type SandboxSide } from '../../platform/sandbox/capabilities.js';
import { type AppSandbox, createAppSandbox, type SandboxFailure } from '../../platform/sandbox/index.js';
import { decodePackedVerdicts, dispatch, type InspectItem, type TrafficConnection } from '../../platform/sandbox/protocol.js';
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
    // A packed answer as the guest SDK builds it, then bent one way per case.
    const packed = (verdicts: number[], alertEnds: number[], alertRefs: number[], alerts: unknown[]): Record<string, unknown> => ({
      verdicts: Float64Array.from(verdicts),
      alertEnds: Uint32Array.from(alertEnds),
      alertRefs: Uint32Array.from(alertRefs),
      alerts,
    });
    const FORGED: [string, unknown, number][] = [
      ['not an answer', [{ release: 1 }], 1],
      ['an unknown field', { ...packed([1], [0], [], []), extra: true }, 1],
      ['one verdict short', packed([], [], [], []), 1],
      ['one verdict too many', packed([1, 2], [0, 0], [], []), 1],
      ['verdicts as a plain list', { ...packed([1], [0], [], []), verdicts: [1] }, 1],
      ['a fractional release', packed([1.5], [0], [], []), 1],
      ['a release past a safe integer', packed([2 ** 53], [0], [], []), 1],
      ['a drop naming no alert', packed([-1], [0], [], []), 1],
      ['a drop that is no alert', packed([-1], [0], [], ['sig']), 1],
      ['an alert without its sid', packed([-1], [0], [], [{ ...ALERT, sid: undefined }]), 1],
      ['an alert of an unknown action', packed([-1], [0], [], [{ ...ALERT, action: 'reject' }]), 1],
      ['a signature past 1024 characters', packed([-1], [0], [], [{ ...ALERT, signature: 'x'.repeat(1025) }]), 1],
      [
        'more than 64 alerts',
        packed(
          [1],
          [65],
          Array.from({ length: 65 }, () => 0),
          [ALERT],
        ),
        1,
      ],
      ['alert offsets that go back', packed([1, 1], [1, 0], [0], [ALERT]), 2],
      ['an alert index past the alerts', packed([1], [1], [1], [ALERT]), 1],
      ['alert indices no verdict names', packed([1], [0], [0], [ALERT]), 1],
      [
        'more alerts than the verdicts could name',
        packed(
          [1],
          [0],
          [],
          Array.from({ length: 66 }, () => ALERT),
        ),
        1,
      ],
      // biome-ignore lint/suspicious/noSparseArray: the hole is the attack
      ['an alert list with a hole', packed([-2], [0], [], [, ALERT]), 1],
    ];
    for (const [what, value, items] of FORGED) {
      it(`refuses ${what} as a forged verdict (E_APP_FAILED)`, () => {
        assert.throws(() => decodePackedVerdicts(value, items), refusedWith('E_APP_FAILED', /forged verdict/));
      });
    }
    it('takes well-formed verdicts, each distinct alert decoded once and shared', () => {
      const verdicts = decodePackedVerdicts(packed([0, -1, 9], [0, 2, 2], [0, 0], [ALERT]), 3);
      assert.deepEqual(verdicts, [{ release: 0 }, { drop: ALERT, alerts: [ALERT, ALERT] }, { release: 9 }]);
      const drop = verdicts[1] as { drop: object; alerts: object[] };
      assert.equal(drop.alerts[0], drop.drop);
      assert.ok(Object.isFrozen(drop.drop));
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
      ['answers a release as text', "return { release: '4' };", 'E_APP_FAILED'],
      ['answers no verdict', 'return undefined;', 'E_APP_FAILED'],
      ['answers alerts that are no list', 'return { release: 4, alerts: 1 };', 'E_APP_FAILED'],
      ['answers an alert that is no alert', "return { release: 4, alerts: ['x'] };", 'E_APP_FAILED'],
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
