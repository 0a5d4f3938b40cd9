import { strict as assert } from 'node:assert';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import sinon from 'sinon';
import { MemoryAuditLog } from '../../platform/audit/index.js';
import { APP_STATE, ConfigStore } from '../../platform/config/index.js';
import { type LaunchableApp, type LaunchedSandbox, Launcher, type LaunchFailure } from '../../platform/launcher/index.js';
import { fail } from '../../sdk/errors.js';
import { sampleManifest } from '../fixtures/packages.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { waitFor } from '../fixtures/wait.js';

interface FakeSandbox extends LaunchedSandbox {
  failWith(failure: LaunchFailure): void;
  configs: unknown[];
  stopped: boolean;
  /** The app's code ran (as the real sandbox, only once the start's `before` resolved). */
  ran: boolean;
  disposed: boolean;
}

describe('launcher', () => {
  let dir: string;
  let config: ConfigStore;
  let audit: MemoryAuditLog;
  let apps: Map<string, LaunchableApp>;
  let sandboxes: FakeSandbox[];
  let integrityOk: boolean;
  let startError: Error | undefined;
  let configError: Error | undefined;
  let appLogs: { packageId: string; level: number; message: string }[];
  let integrityChecks = 0;
  let launchedFiles: Map<string, Buffer> | undefined;
  const id = sampleManifest().package_id;

  async function install(manifest = sampleManifest()): Promise<void> {
    apps.set(manifest.package_id, { packageId: manifest.package_id, version: manifest.version, manifest });
    await config.update((doc) => {
      doc.APPLICATIONS.APPS_CONTROL.applications.push({
        package_id: manifest.package_id,
        name: manifest.name,
        version: manifest.version,
        execute: false,
        state: 4,
        launchRule: 'none',
        logLevel: 3,
        configured: !manifest.configuration?.required,
        restart_on_failure: true,
      });
    });
  }

  /** Shut down after each test, so that a restart one of them left due cannot start a sandbox in the next. */
  const made: Launcher[] = [];
  function launcher(restart = { initialBackoffMs: 10, maxBackoffMs: 40, multiplier: 2, maxRestarts: 2, windowMs: 60_000 }): Launcher {
    const l = new Launcher({
      config,
      audit,
      restart,
      apps: { list: () => [...apps.values()], get: (packageId) => apps.get(packageId) },
      platformSdkVersion: '1.0.0',
      appLog: (packageId, level, message) => {
        appLogs.push({ packageId, level, message });
      },
      verifyIntegrity: async () => {
        integrityChecks += 1;
        if (!integrityOk) throw fail('E_INTEGRITY', 'app/main.js differs from the install record');
        return new Map([['app/main.js', Buffer.from('')]]);
      },
      createSandbox: async (_app, files, onFailure) => {
        launchedFiles = files;
        const sandbox: FakeSandbox = {
          configs: [],
          stopped: false,
          ran: false,
          disposed: false,
          start: async (before) => {
            await before;
            if (startError) throw startError;
            sandbox.ran = true;
          },
          stop: async () => {
            sandbox.stopped = true;
          },
          dispose: () => {
            sandbox.disposed = true;
          },
          deliver: async () => ({ invalid: [], failed: [] }),
          configChanged: async (value) => {
            // As the real sandbox does: a handler over its limits fails the app, then the call rejects.
            if (configError) {
              onFailure({ code: 'E_CPU_LIMIT', message: configError.message });
              throw fail('E_CPU_LIMIT', configError.message);
            }
            sandbox.configs.push(value);
          },
          failWith: (failure) => onFailure(failure),
        };
        sandboxes.push(sandbox);
        return sandbox;
      },
    });
    made.push(l);
    return l;
  }

  beforeEach(async () => {
    dir = await makeTempDir('isogate-launcher-');
    config = await ConfigStore.open(path.join(dir, 'config.json'), 'test');
    audit = new MemoryAuditLog();
    apps = new Map();
    sandboxes = [];
    integrityOk = true;
    startError = undefined;
    configError = undefined;
    appLogs = [];
    await install();
  });
  afterEach(async () => {
    sinon.restore();
    await Promise.all(made.splice(0).map((l) => l.shutdown()));
    await removeDir(dir);
  });

  const logged = (pattern: RegExp): boolean => appLogs.some((line) => pattern.test(line.message));

  /** The audit refuses the named events, as a full or failing disk would. */
  function failAudit(...events: string[]): void {
    const record = audit.record.bind(audit);
    sinon.stub(audit, 'record').callsFake(async (event, values, details) => {
      if (events.includes(event)) throw Object.assign(new Error(`ENOSPC: no space left on device, write (${event})`), { code: 'ENOSPC' });
      return record(event, values, details);
    });
  }

  /** The next `count` writes of the configuration document fail. */
  function failConfigWrites(count: number): void {
    const update = config.update.bind(config);
    let left = count;
    sinon.stub(config, 'update').callsFake(async (change, options) => {
      if (left > 0) {
        left -= 1;
        throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
      }
      return update(change, options);
    });
  }

  it('holds an app for an update: stopped, no start, restart or configuration change until released; a failure in the watch window rejects', async () => {
    const configured = sampleManifest({ package_id: 'com.example.configured', configuration: { schema: { type: 'object' }, defaults: { a: 1 } } });
    await install(configured);
    const l = launcher();
    await l.start(configured.package_id);
    assert.equal(await l.hold(configured.package_id), true, 'it was running');
    assert.equal(sandboxes[0]!.stopped, true);
    assert.equal(l.status(configured.package_id).status, 'stopped');
    const document = await fs.readFile(path.join(dir, 'config.json'), 'utf8');
    await assert.rejects(l.start(configured.package_id), { code: 'E_BUSY' });
    await assert.rejects(l.setConfiguration(configured.package_id, { a: 2 }), { code: 'E_BUSY' });
    await assert.rejects(l.hold(configured.package_id), { code: 'E_BUSY' });
    assert.equal(await fs.readFile(path.join(dir, 'config.json'), 'utf8'), document, 'nothing changed');
    assert.equal(sandboxes.length, 1, 'nothing started');

    // Fails within the window: rejected, left stopped, no restart scheduled while held.
    const watched = l.runHeld(configured.package_id, 60_000);
    await waitFor(() => sandboxes.length === 2 && l.status(configured.package_id).status === 'running');
    sandboxes[1]!.failWith({ code: 'E_CPU_LIMIT', message: 'spun' });
    await assert.rejects(watched, (error: Error & { code: string }) => error.code === 'E_APP_FAILED' && /E_CPU_LIMIT: spun/.test(error.message));
    await l.haltHeld(configured.package_id);
    assert.equal(l.status(configured.package_id).status, 'stopped');
    // A start that fails is the start's own error.
    startError = fail('E_LAUNCH', 'no');
    await assert.rejects(l.runHeld(configured.package_id, 0), { code: 'E_LAUNCH' });
    startError = undefined;
    await l.runHeld(configured.package_id, 0);
    assert.equal(l.status(configured.package_id).status, 'running');
    l.release(configured.package_id);
    await l.stop(configured.package_id);
    await l.start(configured.package_id);
    assert.equal(sandboxes.length, 5, 'no restart ran while it was held');
  });

  it("starts a held app with the files of the caller's integrity check, making none of its own; that check's refusal is the start's (E_INTEGRITY, audited, Error)", async () => {
    const l = launcher();
    await l.start(id);
    assert.equal(await l.hold(id), true);
    const checks = integrityChecks;
    const staged = new Map([['app/main.js', Buffer.from('log.info("new")')]]);
    await l.runHeld(id, 0, { checked: Promise.resolve(staged) });
    assert.equal(launchedFiles, staged);
    assert.equal(integrityChecks, checks, 'no second check');
    await l.haltHeld(id);
    await assert.rejects(l.runHeld(id, 0, { checked: Promise.reject(fail('E_INTEGRITY', 'app/main.js differs from the staged record')) }), {
      code: 'E_INTEGRITY',
    });
    assert.equal(l.status(id).status, 'error');
    assert.ok(audit.events().includes('launchUntrusted'));
    assert.equal(sandboxes.length, 2, 'no sandbox for the refused start');
    l.release(id);
    // Released in Error, its restart rule applies: stopped, so that nothing of it outlives the test.
    await l.stop(id);
  });

  it("starts a held app whose Starting state the update's entry write recorded without writing it again, announcing it all the same", async () => {
    const l = launcher();
    await l.start(id);
    assert.equal(await l.hold(id), true);
    const written: number[] = [];
    const update = config.update.bind(config);
    sinon.stub(config, 'update').callsFake(async (change, options) => {
      const result = await update(change, options);
      written.push(config.read((doc) => doc.APPLICATIONS.APPS_CONTROL.applications.find((e) => e.package_id === id)!.state!));
      return result;
    });
    const announced: string[] = [];
    l.on('status', (info) => info.packageId === id && announced.push(info.status));
    await l.runHeld(id, 0, { startingRecorded: true });
    assert.deepEqual(written, [APP_STATE.running]);
    assert.deepEqual(announced, ['starting', 'running']);
    await l.haltHeld(id);
    written.length = 0;
    await l.runHeld(id, 0);
    assert.deepEqual(written, [APP_STATE.starting, APP_STATE.running], 'unless told, the start writes its Starting state');
    l.release(id);
    await l.stop(id);
  });

  // A hold that failed partway used to keep the app held: stopped, never started again, every admin command E_BUSY.
  it('a hold that fails leaves the app as it was: its audit or the closing step refused, the app runs again and is not held', async () => {
    const l = launcher();
    await l.start(id);
    failAudit('appStopped');
    await assert.rejects(l.hold(id), { code: 'E_STORAGE_FULL' });
    assert.equal(l.status(id).status, 'running', 'started again');
    assert.equal(sandboxes.length, 2);
    assert.ok(sandboxes[0]!.stopped && sandboxes[1]!.ran);
    assert.ok(logged(/^The update could not hold the app, so it was not updated: E_STORAGE_FULL/));
    sinon.restore();

    await assert.rejects(
      l.hold(id, async () => {
        throw fail('E_IO', 'the storage log could not be closed');
      }),
      { code: 'E_IO', message: 'the storage log could not be closed' },
    );
    assert.equal(l.status(id).status, 'running');
    assert.equal(sandboxes.length, 3);
    assert.equal(audit.events().filter((event) => event === 'launchStarted').length, 3, 'each start again audited');
    // Not held: an admin command is the admin's again, and a hold works.
    assert.equal((await l.stop(id)).status, 'stopped');
    assert.equal(await l.hold(id), false);
    l.release(id);
  });

  it('a hold that fails on an app waiting in restart backoff leaves it in Error with its restart still due', async () => {
    // A backoff the failed hold comes well within: at 10 ms a loaded machine ran the restart first.
    const l = launcher({ initialBackoffMs: 500, maxBackoffMs: 500, multiplier: 2, maxRestarts: 2, windowMs: 60_000 });
    await l.start(id);
    sandboxes[0]!.failWith({ code: 'E_CPU_LIMIT', message: 'busy' });
    await waitFor(() => l.status(id).status === 'error' && logged(/^Restarting in/));
    failConfigWrites(1);
    await assert.rejects(l.hold(id), { code: 'E_IO' });
    sinon.restore();
    assert.equal(l.status(id).status, 'error');
    await waitFor(() => sandboxes.length === 2 && l.status(id).status === 'running');
    await l.stop(id);
  });

  // A push is confirmed by the ready signal (no watch window): a version that fails right after
  // it, while the update still holds the app (writing its success record), was left in Error for good.
  it('applies the restart rule on release to an app that failed after its watch but while still held (audited, restarted once)', async () => {
    const l = launcher();
    await l.start(id);
    assert.equal(await l.hold(id), true);
    await l.runHeld(id, 0);
    // The Error state is announced once written; the failure's handling ends in the same turn.
    const announced = new Promise<void>((resolve) => l.on('status', (info) => info.packageId === id && info.status === 'error' && resolve()));
    sandboxes.at(-1)!.failWith({ code: 'E_APP_FAILED', message: 'threw right after ready' });
    await announced;
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(audit.events().includes('appFailed'), 'the failure is audited');
    assert.equal(l.status(id).status, 'error');
    const launched = sandboxes.length;
    l.release(id);
    await waitFor(() => sandboxes.length === launched + 1 && l.status(id).status === 'running');
    assert.ok(logged(/Restarting in \d+ ms \(failure 1 of at most 2\)/));
    await l.stop(id);
  });

  it("starts and stops with the manual's state codes and audit events", async () => {
    const l = launcher();
    const seen: string[] = [];
    l.on('status', (info) => seen.push(info.status));
    assert.equal(l.status(id).status, 'stopped');
    const started = await l.start(id);
    assert.equal(started.status, 'running');
    assert.equal(
      config.read((doc) => doc.APPLICATIONS.APPS_CONTROL.applications[0]!.state),
      1,
    );
    await assert.rejects(l.start(id), { code: 'E_STATE' });
    const stopped = await l.stop(id);
    assert.equal(stopped.state, 4);
    assert.deepEqual(seen, ['starting', 'running', 'stopping', 'stopped']);
    assert.deepEqual(audit.events(), ['launchStarted', 'appStopped']);
    assert.equal(audit.records[0]!.text, `The application ${sampleManifest().name} was started`);
    await assert.rejects(l.stop(id), { code: 'E_STATE' });
  });

  it('refuses a blocked app, an incompatible SDK and a failed integrity check, each audited', async () => {
    const l = launcher();
    await l.setLaunchRule(id, 'forbidden');
    await assert.rejects(l.start(id), { code: 'E_BLOCKED' });
    await l.setLaunchRule(id, 'none');
    integrityOk = false;
    await assert.rejects(l.start(id), { code: 'E_INTEGRITY' });
    assert.equal(l.status(id).status, 'error');
    const untrusted = audit.records.find((r) => r.event === 'launchUntrusted')!;
    assert.equal(untrusted.severity, 'Critical');
    await install(sampleManifest({ package_id: 'dev.isogate.tests.newer', buildSdkVersion: '2.0.0' }));
    await assert.rejects(launcher().start('dev.isogate.tests.newer'), { code: 'E_INCOMPATIBLE' });
    assert.deepEqual(
      audit.events().filter((e) => e.startsWith('launch')),
      ['launchBlocked', 'launchUntrusted', 'launchIncompatible'],
    );
    assert.equal(sandboxes.length, 0, 'no sandbox was made for a refused launch');
  });

  it('refuses a configuration nested 2000 deep or larger than 64 KB with E_DOCUMENT_LIMIT; config.json stays byte for byte and later writes work', async () => {
    const manifest = sampleManifest({ package_id: 'dev.isogate.tests.open', configuration: { schema: { type: 'object' } } });
    await install(manifest);
    const l = launcher();
    let deep: Record<string, unknown> = { text: 'x'.repeat(4096) };
    for (let i = 0; i < 2000; i += 1) deep = { nested: deep };
    const before = await fs.readFile(path.join(dir, 'config.json'));
    await assert.rejects(
      l.setConfiguration(manifest.package_id, deep),
      (error: { code: string; message: string }) => error.code === 'E_DOCUMENT_LIMIT' && /deeper than 32 levels/.test(error.message),
    );
    await assert.rejects(
      l.setConfiguration(manifest.package_id, { blob: 'x'.repeat(65 * 1024) }),
      (error: { code: string; message: string }) => error.code === 'E_DOCUMENT_LIMIT' && /bytes as JSON/.test(error.message),
    );
    assert.deepEqual(await fs.readFile(path.join(dir, 'config.json')), before);
    await l.setConfiguration(manifest.package_id, { nested: { ok: true } });
    assert.deepEqual(l.getConfiguration(manifest.package_id), { nested: { ok: true } });
  });

  it('keeps an app with required configuration Pending until it is configured, validating it', async () => {
    const manifest = sampleManifest({
      package_id: 'dev.isogate.tests.configured',
      configuration: {
        schema: { type: 'object', required: ['rate'], additionalProperties: false, properties: { rate: { type: 'integer', minimum: 1 } } },
        required: true,
      },
    });
    await install(manifest);
    const l = launcher();
    assert.equal(l.status(manifest.package_id).status, 'pending');
    await assert.rejects(l.start(manifest.package_id), { code: 'E_PENDING' });
    const before = await fs.readFile(path.join(dir, 'config.json'));
    await assert.rejects(l.setConfiguration(manifest.package_id, { rate: 0 }), { code: 'E_CONFIG' });
    await assert.rejects(l.setConfiguration(manifest.package_id, JSON.parse('{"rate": 1, "__proto__": {"x": 1}}')), { code: 'E_CONFIG' });
    assert.deepEqual(await fs.readFile(path.join(dir, 'config.json')), before);
    assert.equal(({} as Record<string, unknown>).x, undefined);
    await l.setConfiguration(manifest.package_id, { rate: 5 });
    assert.equal(l.status(manifest.package_id).status, 'stopped');
    await l.start(manifest.package_id);
    await l.setConfiguration(manifest.package_id, { rate: 6 });
    assert.deepEqual(sandboxes[0]!.configs, [{ rate: 6 }]);
    assert.deepEqual(l.getConfiguration(manifest.package_id), { rate: 6 });
  });

  it('makes no configuration or start rule change whose audit record cannot be written (fail closed): refused with E_STORAGE_FULL, config.json unchanged', async () => {
    const manifest = sampleManifest({
      package_id: 'dev.isogate.tests.audited',
      configuration: { schema: { type: 'object', properties: { rate: { type: 'integer' } } }, defaults: { rate: 1 } },
    });
    await install(manifest);
    const l = launcher();
    await l.setConfiguration(manifest.package_id, { rate: 2 });
    const before = await fs.readFile(path.join(dir, 'config.json'));
    failAudit('appConfigChanged', 'autorunChanged');
    await assert.rejects(l.setConfiguration(manifest.package_id, { rate: 3 }), { code: 'E_STORAGE_FULL' });
    await assert.rejects(l.mergeConfiguration(manifest.package_id, { rate: 4 }), { code: 'E_STORAGE_FULL' });
    await assert.rejects(l.setLaunchRule(manifest.package_id, 'auto'), { code: 'E_STORAGE_FULL' });
    assert.deepEqual(await fs.readFile(path.join(dir, 'config.json')), before);
    assert.deepEqual(l.getConfiguration(manifest.package_id), { rate: 2 });
    assert.deepEqual(audit.events().slice(-2), ['appConfigChangeError', 'appConfigChangeError'], 'the refusals are audited where the trail takes them');
    sinon.restore();
    await l.setLaunchRule(manifest.package_id, 'auto');
    assert.equal(audit.events().at(-1), 'autorunChanged');
  });

  it('restarts a failed app with backoff, then gives up after the cap', async () => {
    const l = launcher();
    await l.start(id);
    sandboxes[0]!.failWith({ code: 'E_CPU_LIMIT', message: 'busy' });
    await waitFor(() => sandboxes.length === 2 && l.status(id).status === 'running');
    assert.equal(l.status(id).restarts, 1);
    sandboxes[1]!.failWith({ code: 'E_CPU_LIMIT', message: 'busy' });
    await waitFor(() => sandboxes.length === 3 && l.status(id).status === 'running');
    sandboxes[2]!.failWith({ code: 'E_MEMORY_LIMIT', message: 'big' });
    // Error is where the launcher decides not to restart again: no third restart then.
    await waitFor(() => l.status(id).status === 'error');
    assert.equal(sandboxes.length, 3, 'no third restart within the window');
    assert.equal(l.status(id).lastError?.code, 'E_MEMORY_LIMIT');
    assert.equal(audit.events().filter((e) => e === 'appFailed').length, 3);
  });

  it('a rule changed to Block start while running lets it run, and blocks its restart', async () => {
    const l = launcher();
    await l.start(id);
    await l.setLaunchRule(id, 'forbidden');
    assert.equal(l.status(id).status, 'running');
    sandboxes[0]!.failWith({ code: 'E_APP_FAILED', message: 'x' });
    await waitFor(() => audit.events().includes('launchBlocked'));
    assert.equal(sandboxes.length, 1);
    assert.notEqual(l.status(id).status, 'running');
  });

  it('an admin’s restart starts the Autostart apps again and leaves a running one as it is, with no error in its log', async () => {
    const l = launcher();
    await l.setLaunchRule(id, 'auto');
    await l.startAutostartApps();
    assert.equal(l.status(id).status, 'running');
    // `isogate restart` and a restore run this again with the app running: it logged "Not started at gateway start: E_STATE".
    await l.startAutostartApps();
    assert.equal(l.status(id).status, 'running');
    assert.equal(sandboxes.length, 1, 'the running app was not started again');
    assert.deepEqual(
      appLogs.filter((line) => line.level <= 1),
      [],
    );
    await l.stop(id);
    await l.startAutostartApps();
    assert.equal(l.status(id).status, 'running', 'a stopped Autostart app is started');
    assert.equal(sandboxes.length, 2);
  });

  it('starts Autostart apps when the gateway starts again, and a failing start is audited', async () => {
    const first = launcher();
    await first.setLaunchRule(id, 'auto');
    await first.start(id);
    await first.shutdown();
    const second = launcher();
    await second.startAutostartApps();
    assert.equal(second.status(id).status, 'running');
    await second.stop(id);
    startError = new Error('boom');
    await assert.rejects(second.start(id), { code: 'E_LAUNCH' });
    assert.ok(audit.events().includes('launchError'));
  });

  it('stops an app waiting in restart backoff: Stopped, the restart cancelled, the stop audited', async () => {
    const l = launcher({ initialBackoffMs: 60_000, maxBackoffMs: 60_000, multiplier: 1, maxRestarts: 2, windowMs: 60_000 });
    await l.start(id);
    sandboxes[0]!.failWith({ code: 'E_CPU_LIMIT', message: 'busy' });
    await waitFor(() => logged(/Restarting in 60000 ms/));
    const stopped = await l.stop(id);
    assert.equal(stopped.status, 'stopped');
    assert.equal(stopped.state, 4);
    assert.equal(
      config.read((doc) => doc.APPLICATIONS.APPS_CONTROL.applications[0]!.execute),
      false,
    );
    const record = audit.records.at(-1)!;
    assert.equal(record.event, 'appStopped');
    assert.deepEqual(record.details, { packageId: id, from: 'restart backoff' });
    assert.equal(sandboxes.length, 1, 'no restart');
    await assert.rejects(l.stop(id), { code: 'E_STATE' });
  });

  it('stops an app in Error after its last restart attempt (it was E_STATE): Stopped, audited, and it starts again by hand', async () => {
    const l = launcher({ initialBackoffMs: 1, maxBackoffMs: 1, multiplier: 1, maxRestarts: 1, windowMs: 60_000 });
    await l.start(id);
    sandboxes[0]!.failWith({ code: 'E_CPU_LIMIT', message: 'busy' });
    await waitFor(() => sandboxes.length === 2 && l.status(id).status === 'running');
    sandboxes[1]!.failWith({ code: 'E_MEMORY_LIMIT', message: 'big' });
    await waitFor(() => logged(/Not restarting/));
    assert.equal(l.status(id).status, 'error');
    const stopped = await l.stop(id);
    assert.equal(stopped.status, 'stopped');
    assert.equal(stopped.lastError?.code, 'E_MEMORY_LIMIT', 'why it had stopped stays visible');
    const record = audit.records.at(-1)!;
    assert.equal(record.event, 'appStopped');
    assert.equal(record.text, `The application ${sampleManifest().name} was stopped`);
    assert.deepEqual(record.details, { packageId: id, from: 'error' });
    assert.equal((await l.start(id)).status, 'running');
  });

  it('audits a configuration change with the keys it changed (never their values), and a refused one', async () => {
    const manifest = sampleManifest({
      package_id: 'dev.isogate.tests.audited',
      configuration: { schema: { type: 'object', properties: { rate: { type: 'integer', minimum: 1 }, secret: { type: 'string' } } }, defaults: { rate: 1 } },
    });
    await install(manifest);
    const l = launcher();
    await l.setConfiguration(manifest.package_id, { rate: 5, secret: 'hunter2' });
    await l.mergeConfiguration(manifest.package_id, { rate: 6 });
    const before = await fs.readFile(path.join(dir, 'config.json'));
    await assert.rejects(l.mergeConfiguration(manifest.package_id, { rate: 0 }), { code: 'E_CONFIG' });
    assert.deepEqual(await fs.readFile(path.join(dir, 'config.json')), before, 'a refused change changes nothing');
    assert.deepEqual(audit.events(), ['appConfigChanged', 'appConfigChanged', 'appConfigChangeError']);
    const [set, merge, refused] = audit.records;
    assert.equal(set!.name, 'KscController: Changing the application configuration');
    assert.equal(set!.text, `The configuration of the application ${manifest.name} is changed`);
    assert.equal(set!.subject, 'System: KscController');
    assert.deepEqual(set!.details, { packageId: manifest.package_id, how: 'set', keys: ['rate', 'secret'], keyCount: 2 });
    assert.deepEqual(merge!.details, { packageId: manifest.package_id, how: 'merge', keys: ['rate'], keyCount: 1 });
    assert.equal(refused!.severity, 'Warning');
    assert.equal(refused!.details?.code, 'E_CONFIG');
    assert.ok(!JSON.stringify(audit.records).includes('hunter2'), 'no configuration value is in the audit');
  });

  it('tells the caller and the app log when the running app fails while taking a new configuration, which stays saved', async () => {
    const manifest = sampleManifest({ package_id: 'dev.isogate.tests.taking', configuration: { schema: { type: 'object' } } });
    await install(manifest);
    const l = launcher();
    await l.start(manifest.package_id);
    configError = new Error('the onChange handler ran out of CPU time');
    const change = await l.setConfiguration(manifest.package_id, { mode: 'fast' });
    assert.deepEqual(change.deliveryError, { code: 'E_CPU_LIMIT', message: 'the onChange handler ran out of CPU time' });
    assert.deepEqual(l.getConfiguration(manifest.package_id), { mode: 'fast' });
    assert.ok(
      appLogs.some(
        (line) =>
          line.packageId === manifest.package_id &&
          line.level === 1 &&
          line.message === 'The new configuration is saved, but the app failed while taking it: E_CPU_LIMIT: the onChange handler ran out of CPU time',
      ),
    );
    // And the failure itself is handled as any other: audited, then restarted with the saved configuration.
    configError = undefined;
    await waitFor(() => sandboxes.length === 2 && l.status(manifest.package_id).status === 'running');
    assert.ok(audit.events().includes('appFailed'));
    assert.equal((await l.setConfiguration(manifest.package_id, { mode: 'slow' })).deliveryError, undefined);
  });

  it('restarts a failed app even when its failure cannot be audited or its Error state written, and says so in its log', async () => {
    const l = launcher();
    await l.start(id);
    failAudit('appFailed');
    failConfigWrites(1);
    sandboxes[0]!.failWith({ code: 'E_CPU_LIMIT', message: 'busy' });
    await waitFor(() => sandboxes.length === 2 && l.status(id).status === 'running');
    assert.ok(logged(/^Could not audit the failure: E_STORAGE_FULL: ENOSPC: no space left on device/), JSON.stringify(appLogs));
    assert.ok(logged(/^Could not record the Error state: E_IO: EIO/), JSON.stringify(appLogs));
    assert.equal(l.status(id).restarts, 1);
  });

  it('makes the sandbox while the Starting state is written, but runs none of the app before the write: a failed write is thrown, the sandbox disposed, the app in Error', async () => {
    const l = launcher();
    failConfigWrites(1);
    await assert.rejects(l.start(id), { code: 'EIO' });
    assert.equal(sandboxes.length, 1);
    assert.equal(sandboxes[0]!.ran, false, 'the app did not run');
    assert.equal(sandboxes[0]!.disposed, true);
    assert.equal(l.status(id).status, 'error');
    assert.ok(!audit.events().includes('launchError'), 'the refusal is the write, not a failed start');
    assert.ok(!logged(/^Start failed/));
    assert.equal((await l.start(id)).status, 'running');
  });

  it("stops a held app without a write, even when writes fail: the update's write of its entry records it stopped", async () => {
    const l = launcher();
    await l.start(id);
    failConfigWrites(1);
    assert.equal(await l.hold(id), true);
    assert.equal(l.status(id).status, 'stopped');
    assert.ok(sandboxes[0]!.stopped);
    assert.equal((config.update as sinon.SinonStub).callCount, 0);
    sinon.restore();
    // The Running the entry says: start-up goes by its Execute flag, as it would for Stopping.
    assert.equal(
      config.read((doc) => doc.APPLICATIONS.APPS_CONTROL.applications[0]!.state),
      1,
    );
    l.release(id);
  });

  it('does not leave an app Starting when a restart cannot write its state: it is in Error, the attempt logged, and it stops', async () => {
    const l = launcher({ initialBackoffMs: 1, maxBackoffMs: 1, multiplier: 1, maxRestarts: 1, windowMs: 60_000 });
    await l.start(id);
    failConfigWrites(100);
    sandboxes[0]!.failWith({ code: 'E_CPU_LIMIT', message: 'busy' });
    await waitFor(() => logged(/^Restart 1 did not start the app: E_IO: EIO/));
    assert.equal(l.status(id).status, 'error');
    // The sandbox is made while the Starting state is written; the app's code waits for the write, so it never ran.
    assert.equal(sandboxes.filter((sandbox) => sandbox.ran).length, 1, 'no app code ran without its state written');
    assert.ok(sandboxes.slice(1).every((sandbox) => sandbox.disposed && !sandbox.ran));
    sinon.restore();
    assert.equal((await l.stop(id)).status, 'stopped');
  });

  it('logs why an Autostart app did not start at gateway start when nothing else would (a Pending app)', async () => {
    const manifest = sampleManifest({ package_id: 'dev.isogate.tests.pending', configuration: { schema: { type: 'object' }, required: true } });
    await install(manifest);
    await config.update((doc) => {
      for (const entry of doc.APPLICATIONS.APPS_CONTROL.applications) entry.launchRule = 'auto';
    });
    const l = launcher();
    await l.startAutostartApps();
    assert.equal(l.status(id).status, 'running', 'the other app starts');
    assert.ok(
      appLogs.some((line) => line.packageId === manifest.package_id && /^Not started at gateway start: E_PENDING: /.test(line.message)),
      JSON.stringify(appLogs),
    );
  });

  it('audits each app stopped by a gateway shutdown; one that cannot be stopped cleanly is reported and the others still stop', async () => {
    const other = sampleManifest({ package_id: 'dev.isogate.tests.other', name: 'Other' });
    await install(other);
    const l = launcher();
    await l.start(id);
    await l.start(other.package_id);
    failConfigWrites(1);
    await assert.rejects(l.shutdown(), (error: { code: string; message: string }) => {
      assert.equal(error.code, 'E_SHUTDOWN');
      assert.match(error.message, /^1 app\(s\) did not stop cleanly: /);
      return true;
    });
    assert.ok(
      sandboxes.every((sandbox) => sandbox.stopped),
      'both sandboxes stopped',
    );
    assert.deepEqual(
      l.list().map((info) => info.status),
      ['stopped', 'stopped'],
    );
    const stops = audit.records.filter((record) => record.event === 'appStopped');
    assert.deepEqual(
      stops.map((record) => record.details),
      [
        { packageId: id, from: 'gateway shutdown' },
        { packageId: other.package_id, from: 'gateway shutdown' },
      ],
    );
    assert.equal(
      config.read((doc) => doc.APPLICATIONS.APPS_CONTROL.applications.find((e) => e.package_id === other.package_id)!.execute),
      true,
      'an Autostart app comes back',
    );
    assert.ok(logged(/^Stopping at gateway shutdown failed: E_IO: EIO/));
  });

  it('starts nothing once shutdown has begun (a command or restart queued behind it would outlive it): E_UNAVAILABLE, no sandbox', async () => {
    const l = launcher();
    await l.shutdown();
    await assert.rejects(l.start(id), (error: { code: string; message: string }) => error.code === 'E_UNAVAILABLE' && /shutting down/.test(error.message));
    assert.equal(sandboxes.length, 0);
    assert.equal(l.status(id).status, 'stopped');
  });
});
