import { strict as assert } from 'node:assert';
import { type AppSandbox, createAppSandbox, PreparedIsolate, type SandboxFailure } from '../../platform/sandbox/index.js';
import type { AppManifest } from '../../sdk/manifest.js';
import { type FakeHost, fakeHost, jsonBatch } from '../fixtures/fake-host.js';
import { waitFor } from '../fixtures/wait.js';

function manifest(overrides: Partial<AppManifest> = {}): AppManifest {
  return {
    manifestVersion: 1,
    package_id: 'dev.isogate.test.app',
    name: 'test',
    title: 'Test',
    version: '1.0.0',
    publisher: 'tests',
    type: 'service',
    buildSdkVersion: '1.0.0',
    entry: 'app/main.js',
    networkZone: 'lan',
    resources: { memoryMb: 16, cpuMsPerEvent: 100, storageMb: 1 },
    endpoints: [
      { name: 'in', direction: 'destination', dataType: 't', format: 'json' },
      { name: 'out', direction: 'source', dataType: 't', format: 'json', maxMessageBytes: 1024 },
    ],
    egress: [{ name: 'cloud', host: 'localhost', port: 8443, protocol: 'https' }],
    ...overrides,
  };
}

interface Running {
  sandbox: AppSandbox;
  host: FakeHost;
  failures: SandboxFailure[];
}

const running: AppSandbox[] = [];

async function run(
  source: string,
  options: { files?: Record<string, string>; manifest?: Partial<AppManifest>; config?: Record<string, unknown> } = {},
): Promise<Running> {
  const host = fakeHost();
  host.configuration = options.config;
  const failures: SandboxFailure[] = [];
  const files = new Map(Object.entries({ 'app/main.js': source, ...options.files }));
  const sandbox = await createAppSandbox({
    manifest: manifest(options.manifest),
    files,
    host,
    onFailure: (f) => failures.push(f),
    limits: { startDeadlineMs: 3000 },
  });
  running.push(sandbox);
  await sandbox.start();
  return { sandbox, host, failures };
}

const ECHO = `import { on, emit } from 'isogate:sdk'; on('in', (m) => emit('out', m));`;

async function assertNeighbourWorks(): Promise<void> {
  const neighbour = await run(ECHO);
  await neighbour.sandbox.deliver('in', jsonBatch({ ok: 1 }));
  await waitFor(() => neighbour.host.emitted.length === 1);
  assert.deepEqual(neighbour.host.emitted[0], { endpoint: 'out', message: { ok: 1 } });
}

describe('sandbox', function () {
  this.timeout(20_000);
  afterEach(() => {
    for (const sandbox of running.splice(0)) sandbox.dispose();
  });

  describe('what an app can do', () => {
    it('imports its own files and the SDK, logs, and emits copies on its source endpoint', async () => {
      const { host } = await run(
        `import { log, emit } from 'isogate:sdk'; import { double } from './lib/math.js';
        log.info('started', { n: double(21) }); console.warn('from console'); await emit('out', { v: double(2) });`,
        { files: { 'app/lib/math.js': 'export const double = (x) => x * 2;' } },
      );
      assert.ok(host.logs.some((l) => l.level === 3 && l.message === 'started {"n":42}'));
      assert.ok(host.logs.some((l) => l.level === 2 && l.message === 'from console'));
      assert.deepEqual(host.emitted, [{ endpoint: 'out', message: { v: 4 } }]);
    });

    it('waits for top-level await before counting the app started', async () => {
      const { host } = await run(
        `import { storage, log } from 'isogate:sdk'; await storage.put('k', 'v'); const v = await storage.get('k'); log.info('read ' + v);`,
      );
      assert.ok(host.logs.some((l) => l.message === 'read v'));
    });

    it('delivers messages to handlers in order and keeps strings and bytes apart in storage', async () => {
      const { sandbox, host } = await run(`import { on, emit, storage } from 'isogate:sdk';
        on('in', async (m) => { await storage.put('bytes', new Uint8Array([1, 2, m.n])); emit('out', { n: m.n, kind: (await storage.get('bytes')) instanceof Uint8Array }); });`);
      await sandbox.deliver('in', jsonBatch({ n: 1 }, { n: 2 }, { n: 3 }));
      await waitFor(() => host.emitted.length === 3);
      assert.deepEqual(
        host.emitted.map((e) => e.message),
        [
          { n: 1, kind: true },
          { n: 2, kind: true },
          { n: 3, kind: true },
        ],
      );
      assert.deepEqual([...(host.store.get('bytes') as Uint8Array)], [1, 2, 3]);
    });

    it('reads its configuration, frozen, and hears when it changes', async () => {
      const { sandbox, host } = await run(
        `import { config, log } from 'isogate:sdk';
        log.info('rate ' + config.get().rate + ' frozen ' + Object.isFrozen(config.get()));
        config.onChange((c) => log.info('now ' + c.rate));`,
        { config: { rate: 5 } },
      );
      assert.ok(host.logs.some((l) => l.message === 'rate 5 frozen true'));
      await sandbox.configChanged({ rate: 7 });
      await host.waitForLog(/^now 7$/);
    });

    it('runs timers and intervals and clears them on stop, running onStop handlers', async () => {
      const { sandbox, host } = await run(`import { log, onStop } from 'isogate:sdk';
        let ticks = 0; setTimeout(() => log.info('timeout fired'), 5); const i = setInterval(() => { ticks += 1; if (ticks === 3) log.info('three ticks'); }, 10);
        onStop(() => log.info('stopping after ' + (ticks >= 3)));`);
      await host.waitForLog(/timeout fired/);
      await host.waitForLog(/three ticks/);
      assert.ok(sandbox.stats().timers >= 1);
      await sandbox.stop();
      assert.ok(host.logs.some((l) => l.message === 'stopping after true'));
      assert.equal(sandbox.disposed, true);
      assert.equal(sandbox.stats().timers, 0);
    });
    it('keeps the order of emits across endpoints; an awaited emit hears of a refusal, also when awaited after it was answered; an unawaited one is logged', async () => {
      const host = fakeHost();
      host.emit = (endpoint, message) => {
        if ((message as { refuse?: boolean }).refuse) throw Object.assign(new Error('fails the schema'), { code: 'E_MESSAGE' });
        host.emitted.push({ endpoint, message });
      };
      const sandbox = await createAppSandbox({
        manifest: manifest({
          endpoints: [
            { name: 'out', direction: 'source', dataType: 't', format: 'json' },
            { name: 'note', direction: 'source', dataType: 'n', format: 'text' },
          ],
        }),
        host,
        files: new Map([
          [
            'app/main.js',
            `import { emit, log } from 'isogate:sdk';
          for (let i = 0; i < 1200; i++) emit(i % 100 === 0 ? 'note' : 'out', i % 100 === 0 ? 'note ' + i : { i });
          emit('out', { refuse: true, unawaited: true });
          try { await emit('out', { refuse: true }); log.info('accepted'); } catch (e) { log.info('refused ' + e.code); }
          const late = emit('out', { refuse: true, late: true });
          await emit('out', { last: true }).then(() => log.info('then works'));
          await late.then(() => log.info('late accepted'), (e) => log.info('late refused ' + e.code));
          emit('out', { last: 2 }).catch(() => {}).finally(() => log.info('finally works'));`,
          ],
        ]),
      });
      running.push(sandbox);
      await sandbox.start();
      await host.waitForLog(/^finally works$/);
      assert.ok(host.logs.some((l) => l.message === 'refused E_MESSAGE'));
      assert.ok(host.logs.some((l) => l.message === 'then works'));
      assert.ok(
        host.logs.some((l) => l.message === 'late refused E_MESSAGE'),
        'a receipt awaited after its batch was answered',
      );
      assert.ok(
        host.logs.some((l) => l.level === 2 && /emit on "out" refused: E_MESSAGE: fails the schema/.test(l.message)),
        'the unawaited refusal is in the log',
      );
      const expected = Array.from({ length: 1200 }, (_, i) =>
        i % 100 === 0 ? { endpoint: 'note', message: `note ${i}` } : { endpoint: 'out', message: { i } },
      );
      assert.deepEqual(host.emitted.slice(0, 1200), expected);
      assert.deepEqual(host.emitted.slice(1200), [
        { endpoint: 'out', message: { last: true } },
        { endpoint: 'out', message: { last: 2 } },
      ]);
    });
  });

  describe('an isolate made ahead', () => {
    const start = async (prepared: PreparedIsolate, overrides: Partial<AppManifest> = {}, inspector = false): Promise<FakeHost> => {
      const host = fakeHost();
      const sandbox = await createAppSandbox({ manifest: manifest(overrides), files: new Map([['app/main.js', ECHO]]), host, prepared, inspector });
      running.push(sandbox);
      await sandbox.start();
      await sandbox.deliver('in', jsonBatch({ n: 1 }));
      await waitFor(() => host.emitted.length === 1);
      return host;
    };

    it('is taken by the sandbox of an app with its memory limit, once', async () => {
      const prepared = new PreparedIsolate(manifest());
      await start(prepared);
      assert.equal(prepared.available, false);
      assert.equal(prepared.take(16, false), undefined);
    });

    it('is disposed, not handed over, for another memory limit or inspector setting; the app then runs in its own', async () => {
      const larger = manifest({ resources: { memoryMb: 64, cpuMsPerEvent: 100, storageMb: 1 } });
      assert.equal(new PreparedIsolate(larger).take(16, false), undefined);
      assert.equal(new PreparedIsolate(manifest()).take(16, true), undefined);
      const matching = new PreparedIsolate(manifest());
      const taken = matching.take(16, false);
      assert.ok(taken);
      taken.isolate.dispose();
      const other = new PreparedIsolate(larger);
      await start(other);
      assert.equal(other.available, false);
      const plain = new PreparedIsolate(manifest());
      await start(plain, {}, true);
      assert.equal(plain.available, false);
    });
  });

  describe('hostile apps', () => {
    it('finds no Node API, host object or bridge reference on the global object', async () => {
      const { host } = await run(`import { log } from 'isogate:sdk';
        const probe = { process: typeof process, require: typeof require, module: typeof module, Buffer: typeof Buffer, global: typeof global,
          sdk: typeof globalThis.__isogate_sdk__, ready: typeof globalThis.__isogate_ready__,
          viaFunction: typeof Function('return this')().process, viaConstructor: typeof this?.constructor?.constructor('return process')(),
          names: Object.getOwnPropertyNames(globalThis).filter((n) => !/^[A-Z]/.test(n) && !['globalThis','eval','isFinite','isNaN','parseFloat','parseInt','decodeURI','decodeURIComponent','encodeURI','encodeURIComponent','escape','unescape','undefined','NaN','Infinity','console','setTimeout','setInterval','clearTimeout','clearInterval','queueMicrotask'].includes(n)) };
        log.info(JSON.stringify(probe));`);
      const probe = JSON.parse(host.logs[0]!.message) as Record<string, unknown>;
      assert.deepEqual(probe, {
        process: 'undefined',
        require: 'undefined',
        module: 'undefined',
        Buffer: 'undefined',
        global: 'undefined',
        sdk: 'undefined',
        ready: 'undefined',
        viaFunction: 'undefined',
        viaConstructor: 'undefined',
        names: [],
      });
      await assertNeighbourWorks();
    });

    it('cannot import a Node module statically or dynamically', async () => {
      await assert.rejects(
        run(`import fs from 'fs'; fs.readFileSync('/etc/passwd');`),
        (error: { code: string; message: string }) => error.code === 'E_LAUNCH' && /import of "fs"/.test(error.message),
      );
      await assert.rejects(run(`import { readFileSync } from 'node:fs';`), { code: 'E_LAUNCH' });
      const { host } = await run(
        `import { log } from 'isogate:sdk'; try { await import('node:child_process'); log.info('imported'); } catch (e) { log.info('refused'); }`,
      );
      assert.ok(host.logs.some((l) => l.message === 'refused'));
      await assertNeighbourWorks();
    });

    it('ends an infinite loop at start-up with E_CPU_LIMIT', async () => {
      await assert.rejects(run('for (;;) {}'), { code: 'E_CPU_LIMIT' });
      await assertNeighbourWorks();
    });

    it('ends an infinite loop in a handler, and one after an awaited host call, with E_CPU_LIMIT', async () => {
      const first = await run(`import { on } from 'isogate:sdk'; on('in', () => { for (;;) {} });`);
      await assert.rejects(first.sandbox.deliver('in', jsonBatch({})), { code: 'E_CPU_LIMIT' });
      assert.deepEqual(
        first.failures.map((f) => f.code),
        ['E_CPU_LIMIT'],
      );
      await assert.rejects(first.sandbox.deliver('in', jsonBatch({})), { code: 'E_APP_FAILED' });

      const second = await run(`import { storage } from 'isogate:sdk'; setTimeout(async () => { await storage.get('x'); for (;;) {} }, 1);`);
      await waitFor(() => second.failures.length > 0);
      assert.equal(second.failures[0]!.code, 'E_CPU_LIMIT');
      assert.equal(second.sandbox.disposed, true);
      await assertNeighbourWorks();
    });

    it('ends allocation past the memory limit with E_MEMORY_LIMIT and the process lives on', async () => {
      const { sandbox, failures } = await run(
        `import { on } from 'isogate:sdk'; const keep = []; on('in', () => { for (;;) keep.push(new Array(100000).fill(1.5)); });`,
        { manifest: { resources: { memoryMb: 16, cpuMsPerEvent: 10000, storageMb: 1 } } },
      );
      await assert.rejects(sandbox.deliver('in', jsonBatch({})), { code: 'E_MEMORY_LIMIT' });
      assert.deepEqual(
        failures.map((f) => f.code),
        ['E_MEMORY_LIMIT'],
      );
      await assertNeighbourWorks();
    });

    it('ends allocation past the memory limit after an awaited host call with E_MEMORY_LIMIT', async () => {
      const { sandbox, failures } = await run(
        `import { storage } from 'isogate:sdk';
        setTimeout(async () => { await storage.get('x'); const keep = []; for (;;) keep.push(new Array(100000).fill(1.5)); }, 1);`,
        { manifest: { resources: { memoryMb: 16, cpuMsPerEvent: 10000, storageMb: 1 } } },
      );
      await waitFor(() => failures.length > 0);
      assert.deepEqual(
        failures.map((f) => f.code),
        ['E_MEMORY_LIMIT'],
      );
      assert.equal(sandbox.disposed, true);
      await assertNeighbourWorks();
    });

    it('bounds a timer storm with E_TIMER_LIMIT inside the app and leaves no timer behind', async () => {
      const { sandbox, host } = await run(`import { log } from 'isogate:sdk';
        try { for (let i = 0; i < 100000; i++) setInterval(() => {}, 0); } catch (e) { log.info(e.code); }`);
      assert.ok(host.logs.some((l) => l.message === 'E_TIMER_LIMIT'));
      assert.ok(sandbox.stats().timers <= 256);
      sandbox.dispose();
      assert.equal(sandbox.stats().timers, 0);
    });

    it('keeps prototype pollution through messages and configuration inside the app', async () => {
      const { sandbox, host } = await run(
        `import { on, log, config } from 'isogate:sdk';
        on('in', (m) => { Object.assign({}, m); log.info('own ' + Object.hasOwn(m, '__proto__') + ' polluted ' + ({}).polluted); });
        log.info('config polluted ' + ({}).polluted + ' ' + Object.hasOwn(config.get(), '__proto__'));`,
        { config: JSON.parse('{"__proto__": {"polluted": "yes"}}') as Record<string, unknown> },
      );
      await sandbox.deliver('in', jsonBatch(JSON.parse('{"__proto__": {"polluted": "yes"}}')));
      assert.ok(host.logs.some((l) => l.message === 'config polluted undefined true'));
      assert.ok(host.logs.some((l) => l.message === 'own true polluted undefined'));
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
    });

    it('refuses undeclared endpoints and egress targets, bad storage keys and quota, each with its code', async () => {
      const { host } = await run(`import { emit, on, storage, egress, log } from 'isogate:sdk';
        const codes = [];
        for (const attempt of [() => emit('nowhere', {}), () => emit('in', {}), () => on('out', () => {})]) { try { attempt(); } catch (e) { codes.push(e.code); } }
        for (const attempt of [() => storage.put('../etc/passwd', 'x'), () => storage.put('a\\u0000b', 'x'), () => storage.put('big', 'x'.repeat(5000)), () => storage.put('ok', 42), () => egress.fetch('elsewhere'), () => egress.publish('cloud', 't', 'p')]) {
          try { await attempt(); } catch (e) { codes.push(e.code); } }
        try { await emit('out', { big: 'x'.repeat(2000) }); } catch (e) { codes.push(e.code); }
        log.info(codes.join(','));`);
      assert.equal(
        host.logs.find((l) => l.message.startsWith('E_'))?.message,
        'E_CAPABILITY,E_CAPABILITY,E_CAPABILITY,E_STORAGE_KEY,E_STORAGE_KEY,E_STORAGE_QUOTA,E_STORAGE_VALUE,E_CAPABILITY,E_EGRESS_PROTOCOL,E_MESSAGE_SIZE',
      );
      assert.deepEqual(host.emitted, []);
      assert.equal(host.store.size, 0);
    });

    it('bounds every log line from a flood', async () => {
      const { host } = await run(`import { log } from 'isogate:sdk'; for (let i = 0; i < 500; i++) log.info('x'.repeat(20000));`, {
        manifest: { resources: { memoryMb: 32, cpuMsPerEvent: 5000, storageMb: 1 } },
      });
      await waitFor(() => host.logs.length === 500);
      assert.ok(host.logs.every((l) => l.message.length <= 8 * 1024));
    });

    it('changes nothing in its SDK by replacing JSON or the array and string methods it would use', async () => {
      const { host } = await run(`import { emit, log } from 'isogate:sdk';
        JSON.stringify = () => '{not json';
        JSON.parse = () => ({ forged: true });
        Array.prototype.join = () => '["x"';
        String.prototype.slice = () => '{';
        await emit('out', { a: 1 });
        await emit('out', { a: 2 });
        log.info('done');`);
      await host.waitForLog(/^done$/);
      assert.deepEqual(host.emitted, [
        { endpoint: 'out', message: { a: 1 } },
        { endpoint: 'out', message: { a: 2 } },
      ]);
    });

    it('bounds the platform calls one app has in flight with E_CALL_LIMIT, and answers the rest', async () => {
      const { host } = await run(
        `import { storage, log } from 'isogate:sdk';
        const results = await Promise.allSettled(Array.from({ length: 5000 }, () => storage.usage()));
        const refused = results.filter((r) => r.status === 'rejected');
        log.info('answered ' + results.length + ' refused ' + refused.length + ' ' + [...new Set(refused.map((r) => r.reason.code))].join(','));`,
        { manifest: { resources: { memoryMb: 32, cpuMsPerEvent: 2000, storageMb: 1 } } },
      );
      const line = await host.waitForLog(/^answered /);
      const [, answered, refused, codes] = /^answered (\d+) refused (\d+) (.*)$/.exec(line)!;
      assert.equal(answered, '5000');
      assert.ok(Number(refused) >= 5000 - 4096 && Number(refused) < 5000, line);
      assert.equal(codes, 'E_CALL_LIMIT');
    });

    it('counts a handler that throws and keeps running', async () => {
      const { sandbox, host, failures } = await run(
        `import { on, emit } from 'isogate:sdk'; on('in', (m) => { if (m.bad) throw new Error('bad message'); emit('out', m); });`,
      );
      await sandbox.deliver('in', jsonBatch({ bad: true }, { n: 1 }));
      await waitFor(() => host.emitted.length === 1);
      assert.ok(host.logs.some((l) => l.level === 1 && /bad message/.test(l.message)));
      assert.deepEqual(failures, []);
    });
  });
});
