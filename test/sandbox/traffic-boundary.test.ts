/**
 * traffic.inspect across the isolation boundary: the capability checked on both sides, the gate's
 * batched crossing (open, data, close in one call, one verdict per data item), and the host's
 * check of every verdict: a forged or malformed one fails the app, with its own outcome each.
 */
import { strict as assert } from 'node:assert';
import type { AppInspector } from '../../platform/sandbox/bridge.js';
import { grantsFor, hostFor, type SandboxSide } from '../../platform/sandbox/capabilities.js';
import { type AppSandbox, createAppSandbox, type SandboxFailure } from '../../platform/sandbox/index.js';
import { ALERT_TABLE_LIMIT } from '../../platform/sandbox/inspect-wire.js';
import { decodePackedVerdicts, dispatch, type InspectItem, type TrafficAlert, type TrafficConnection } from '../../platform/sandbox/protocol.js';
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
    // A packed answer as the guest SDK builds it, then bent one way per case: its words alone
    // when it names only alerts numbered before, else [words, fresh alerts, base].
    const words = (verdicts: number[], alertEnds: number[], alertRefs: number[]): Float64Array => Float64Array.from([...verdicts, ...alertEnds, ...alertRefs]);
    const packed = (verdicts: number[], alertEnds: number[], alertRefs: number[], alerts?: unknown[], base = 0): unknown =>
      alerts === undefined ? words(verdicts, alertEnds, alertRefs) : [words(verdicts, alertEnds, alertRefs), alerts, base];
    const FORGED: [string, unknown, number][] = [
      ['not an answer', [{ release: 1 }], 1],
      ['an answer of the object shape', { verdicts: Float64Array.of(1), alertEnds: Uint32Array.of(0), alertRefs: new Uint32Array(0), alerts: [] }, 1],
      ['a fourth part', [words([1], [0], []), [], 0, true], 1],
      ['one verdict short', packed([], [], []), 1],
      ['a verdict naming alert numbers past the words', packed([1, 2], [0, 3], []), 2],
      ['words as a plain list', [[1, 0], [], 0], 1],
      ['a fractional release', packed([1.5], [0], []), 1],
      ['a release past a safe integer', packed([2 ** 53], [0], []), 1],
      ['a drop naming no alert', packed([-1], [0], []), 1],
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
      ['a fractional alert offset', packed([1, 1], [0.5, 1], [0], [ALERT]), 2],
      ['an alert number past the alerts', packed([1], [1], [1], [ALERT]), 1],
      ['a fractional alert number', packed([1], [1], [0.5], [ALERT]), 1],
      ['alert number -0', packed([1], [1], [-0], [ALERT]), 1],
      ['alert number NaN', packed([1], [1], [Number.NaN], [ALERT]), 1],
      ['alert numbers no verdict names', packed([1], [0], [0], [ALERT]), 1],
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
      ['new alerts numbered from past the table', packed([-1], [0], [], [ALERT], 3), 1],
    ];
    for (const [what, value, items] of FORGED) {
      it(`refuses ${what} as a forged verdict (E_APP_FAILED)`, () => {
        assert.throws(() => decodePackedVerdicts(value, items, []), refusedWith('E_APP_FAILED', /forged verdict/));
      });
    }
    it('takes well-formed verdicts, each distinct alert decoded once and shared', () => {
      const verdicts = decodePackedVerdicts(packed([0, -1, 9], [0, 2, 2], [0, 0], [ALERT]), 3, []);
      assert.deepEqual(verdicts, [{ release: 0 }, { drop: ALERT, alerts: [ALERT, ALERT] }, { release: 9 }]);
      const drop = verdicts[1] as { drop: object; alerts: object[] };
      assert.equal(drop.alerts[0], drop.drop);
      assert.ok(Object.isFrozen(drop.drop));
    });
    it('numbers alerts from crossing to crossing: later answers name them alone, new ones follow, base 0 starts over', () => {
      const table: TrafficAlert[] = [];
      const first = decodePackedVerdicts(packed([5], [1], [0], [ALERT]), 1, table);
      const again = decodePackedVerdicts(packed([6, -1], [1, 1], [0]), 2, table);
      assert.deepEqual(again, [{ release: 6, alerts: [ALERT] }, { drop: ALERT }]);
      assert.equal(
        (again[0] as { alerts: object[] }).alerts[0],
        (first[0] as { alerts: object[] }).alerts[0],
        'the decoded alert is the one of the first answer',
      );
      const other = { ...ALERT, sid: 2 };
      assert.deepEqual(decodePackedVerdicts(packed([7], [2], [1, 0], [other], 1), 1, table), [{ release: 7, alerts: [other, ALERT] }]);
      assert.equal(table.length, 2);
      assert.deepEqual(decodePackedVerdicts(packed([8], [1], [0], [other], 0), 1, table), [{ release: 8, alerts: [other] }]);
      assert.deepEqual(table, [other], 'started over');
      assert.throws(() => decodePackedVerdicts(packed([8], [1], [1]), 1, table), refusedWith('E_APP_FAILED', /names alert 1 of 1/));
    });
    it('a forged answer changes nothing: its new alerts are not numbered, a forged restart clears nothing, a table at its limit takes none more', () => {
      const table: TrafficAlert[] = [Object.freeze({ ...ALERT })] as TrafficAlert[];
      assert.throws(() => decodePackedVerdicts(packed([1.5], [0], [], [ALERT], 1), 1, table), refusedWith('E_APP_FAILED', /forged verdict/));
      assert.throws(() => decodePackedVerdicts(packed([2 ** 53], [0], [], [ALERT], 0), 1, table), refusedWith('E_APP_FAILED', /forged verdict/));
      assert.equal(table.length, 1);
      const full = Array.from({ length: ALERT_TABLE_LIMIT }, (_, sid) => Object.freeze({ ...ALERT, sid })) as TrafficAlert[];
      assert.throws(
        () => decodePackedVerdicts(packed([1], [1], [ALERT_TABLE_LIMIT], [ALERT], ALERT_TABLE_LIMIT), 1, full),
        refusedWith('E_APP_FAILED', /not a bounded list/),
      );
      assert.equal(full.length, ALERT_TABLE_LIMIT);
      // A restart (base 0) is bounded too: the host keeps what it takes.
      const items = 300;
      const many = Array.from({ length: ALERT_TABLE_LIMIT + 1 }, (_, sid) => ({ ...ALERT, sid }));
      const restart = packed(new Array<number>(items).fill(0), new Array<number>(items).fill(0), [], many, 0);
      assert.throws(() => decodePackedVerdicts(restart, items, full), refusedWith('E_APP_FAILED', /not a bounded list/));
      assert.equal(full.length, ALERT_TABLE_LIMIT);
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

    /** An inspector of the platform's origin, once its app has registered it. */
    async function startInspector(source: string, manifest = inspecting()) {
      const { registered, failures } = await start(source, manifest, 'image');
      await waitFor(() => registered.length === 1);
      return { inspector: registered[0]!, failures };
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

    it('numbers its alerts across crossings: the same alert object crosses once, new objects past the table limit start it over, every verdict keeps its own alerts', async () => {
      const { inspector, failures } = await startInspector(
        `import { traffic } from 'isogate:sdk';
        const same = { sid: 7, gid: 1, rev: 1, signature: 'every frame', action: 'alert', category: '', severity: 3 };
        traffic.inspect({
          open() {},
          // A new alert object per frame, as a careless inspector makes them, beside one it reuses.
          data(id, direction, bytes) { return { release: bytes[0] * 256 + bytes[1], alerts: [same, { ...same, sid: 1000 + bytes[0] * 256 + bytes[1] }] }; },
          close() {},
        });`,
      );
      const alertOf = (sid: number) => ({ sid, gid: 1, rev: 1, signature: 'every frame', action: 'alert', category: '', severity: 3 });
      assert.deepEqual(await inspector.inspect([['open', CONNECTION]]), []);
      // Past ALERT_TABLE_LIMIT distinct alerts over crossings of 500 frames, some with two in flight.
      for (let first = 0; first < ALERT_TABLE_LIMIT + 1500; first += 1000) {
        const crossing = (from: number): InspectItem[] =>
          Array.from({ length: 500 }, (_, k): InspectItem => ['data', 1, 'to_server', Uint8Array.of((from + k) >> 8, (from + k) & 255), from + k]);
        const answers = await Promise.all([inspector.inspect(crossing(first)), inspector.inspect(crossing(first + 500))]);
        answers.flat().forEach((verdict, k) => {
          const frame = first + k;
          assert.deepEqual(verdict, { release: frame, alerts: [alertOf(7), alertOf(1000 + frame)] }, `frame ${frame}`);
        });
      }
      assert.deepEqual(failures, []);
    });

    it('fails the app whose inspector changes an alert it sent already (frozen once numbered), instead of reporting what it said first', async () => {
      const { inspector, failures } = await startInspector(
        `import { traffic } from 'isogate:sdk';
        const reused = { sid: 101, gid: 1, rev: 1, signature: 'frame 1', action: 'alert', category: '', severity: 3 };
        let frames = 0;
        traffic.inspect({
          open() {},
          data(id, direction, bytes) {
            frames += 1;
            if (frames > 1) { reused.sid = 100 + frames; reused.signature = 'frame ' + frames; }
            return { release: bytes.length, alerts: [reused] };
          },
          close() {},
        });`,
      );
      const frame: InspectItem = ['data', 1, 'to_server', new Uint8Array(4), 1];
      assert.deepEqual(await inspector.inspect([['open', CONNECTION], frame]), [
        { release: 4, alerts: [{ sid: 101, gid: 1, rev: 1, signature: 'frame 1', action: 'alert', category: '', severity: 3 }] },
      ]);
      await assert.rejects(inspector.inspect([frame]), refusedWith('E_APP_FAILED'));
      await waitFor(() => failures.length === 1);
      assert.equal(failures[0]!.code, 'E_APP_FAILED');
    });

    // Each crossing answered is an event done: a busy inspector is not one event running long.
    it('keeps an inspector busy with back-to-back crossings past its per-event budget running (no E_CPU_LIMIT)', async () => {
      const { inspector, failures } = await startInspector(
        `import { traffic } from 'isogate:sdk';
        traffic.inspect({ open() {}, data(_c, _d, bytes) { const until = Date.now() + 20; while (Date.now() < until) {} return { release: bytes.length }; }, close() {} });`,
        inspecting({ resources: { memoryMb: 32, cpuMsPerEvent: 100, storageMb: 1 } }),
      );
      await inspector.inspect([['open', CONNECTION]]);
      // Two crossings in flight at all times, as the gate keeps them, for 1.5 s: over four times
      // the watchdog's budget for one event (100 ms + 250 ms) of the isolate's CPU without a pause.
      const started = performance.now();
      let offset = 0;
      const keepBusy = async (): Promise<void> => {
        while (performance.now() - started < 1500) {
          offset += 4;
          const verdicts = await inspector.inspect([['data', 1, 'to_server', new Uint8Array(4), offset]]);
          assert.equal(verdicts.length, 1);
        }
      };
      await Promise.all([keepBusy(), keepBusy()]);
      assert.deepEqual(failures, []);
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
        const { inspector, failures } = await startInspector(
          `import { traffic } from 'isogate:sdk';
          traffic.inspect({ open() {}, data() { ${body} }, close() {} });`,
          inspecting({ resources: { memoryMb: 32, cpuMsPerEvent: 100, storageMb: 1 } }),
        );
        await assert.rejects(inspector.inspect([['data', 1, 'to_server', new Uint8Array(4), 1]]), refusedWith(code));
        assert.equal(failures[0]?.code, code);
        await assert.rejects(inspector.inspect([['close', 1]]), (error: { code: string }) => ['E_APP_FAILED', 'E_STATE'].includes(error.code));
      });
    }
  });
});
