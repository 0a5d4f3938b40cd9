/**
 * In-place updates in the orchestrator, with the launcher's and router's part played by a
 * recording stand-in: the version rules, the signer rule, what happens to the configuration, the
 * rollback when the new version does not start, and a crash at every step of the swap resolving
 * to the old or the new version at the next open.
 */
import assert from 'node:assert/strict';
import { promises as fs, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { MemoryAuditLog } from '../../platform/audit/index.js';
import { APP_STATE, ConfigStore } from '../../platform/config/index.js';
import { memoryDeviceKeys } from '../../platform/device/index.js';
import type { HeldLaunch } from '../../platform/launcher/index.js';
import { Orchestrator, type UpdateHooks, type UpdateStep, WorkerPackageVerifier } from '../../platform/orchestrator/index.js';
import { fail, isIsogateError } from '../../sdk/errors.js';
import type { AppManifest } from '../../sdk/manifest.js';
import { buildPackage, signPackage } from '../../sdk/package/index.js';
import { sampleManifest } from '../fixtures/packages.js';
import { createTestPki, type TestIdentity, type TestPki } from '../fixtures/pki.js';
import { makeTempDir, removeDir, snapshotTree } from '../fixtures/temp.js';
import { MemoryStoreClient } from './memory-store.js';

const ID = 'com.example.sample';

/** The launcher and router as an update sees them: records what it is asked, fails a start on demand. */
class FakeRunner implements UpdateHooks {
  running = true;
  held = false;
  calls: string[] = [];
  /** Versions whose start fails, and how. */
  failing = new Map<string, Error>();
  brokenRoutes: { id: string; problem: string }[] = [];
  constructor(readonly versionOf: () => string | undefined) {}
  async hold(id: string): Promise<boolean> {
    this.calls.push(`hold ${id}`);
    this.held = true;
    const was = this.running;
    this.running = false;
    return was;
  }
  /** The files of the last start, as the launch check the update made gave them. */
  checkedFiles: Map<string, Buffer> | undefined;
  /** What the last start was told the update had done for it. */
  lastHeld: HeldLaunch | undefined;
  async run(id: string, _watchMs: number, held?: HeldLaunch): Promise<void> {
    const version = this.versionOf();
    this.calls.push(`run ${id} ${version}`);
    this.lastHeld = held;
    // As the launcher: the check's refusal is the start's.
    this.checkedFiles = held?.checked && (await held.checked);
    const failure = this.failing.get(version ?? '');
    if (failure) throw failure;
    this.running = true;
  }
  async halt(id: string): Promise<void> {
    this.calls.push(`halt ${id}`);
    this.running = false;
  }
  release(id: string): void {
    this.calls.push(`release ${id}`);
    this.held = false;
  }
  replaced(id: string): { id: string; problem?: string }[] {
    this.calls.push(`replaced ${id}`);
    return this.brokenRoutes;
  }
}

const V1_CONFIG = {
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: { intervalMs: { type: 'integer', minimum: 10 }, mode: { enum: ['fast', 'slow'] }, label: { type: 'string' } },
  },
  defaults: { intervalMs: 1000, mode: 'fast' },
};
// intervalMs keeps its meaning, "slow" is gone from mode, label is gone, retries is new.
const V2_CONFIG = {
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['retries'],
    properties: { intervalMs: { type: 'integer', minimum: 100 }, mode: { enum: ['fast', 'eco'] }, retries: { type: 'integer' } },
  },
  defaults: { intervalMs: 2000, mode: 'eco', retries: 3 },
};

describe('orchestrator: in-place update', function () {
  this.timeout(60_000);
  let pki: TestPki;
  let dir: string;
  let store: MemoryStoreClient;
  let audit: MemoryAuditLog;
  let config: ConfigStore;
  let runner: FakeRunner;
  let current: Orchestrator | undefined;
  const keys = memoryDeviceKeys();
  const verifier = new WorkerPackageVerifier();

  before(async () => {
    pki = await createTestPki();
  });
  after(() => verifier.close());

  beforeEach(async () => {
    dir = await makeTempDir();
    store = new MemoryStoreClient();
    audit = new MemoryAuditLog();
    config = await ConfigStore.open(path.join(dir, 'config.json'), 'test');
    runner = new FakeRunner(() => current?.get(ID)?.version);
  });
  afterEach(async () => {
    current = undefined;
    await removeDir(dir);
  });

  async function open(onUpdateStep?: (step: UpdateStep) => void | Promise<void>): Promise<Orchestrator> {
    current = await Orchestrator.open({
      dataDir: dir,
      store,
      config,
      audit,
      keys,
      verifier,
      trustRootsPem: [pki.root.certPem],
      updateHooks: runner,
      updateWatchMs: 0,
      ...(onUpdateStep ? { onUpdateStep } : {}),
    });
    return current;
  }

  /**
   * Version 1 installed with a configuration, by an orchestrator whose process dies after `crashAt`
   * of an update; the function returned publishes version 2 and returns once its update is there.
   */
  async function v1CrashingAt(crashAt: UpdateStep): Promise<() => Promise<void>> {
    await publish({ version: '1.0.0', configuration: V1_CONFIG });
    let crashed!: () => void;
    const reached = new Promise<void>((resolve) => {
      crashed = resolve;
    });
    const first = await open(async (step) => {
      if (step !== crashAt) return;
      crashed();
      await new Promise(() => undefined); // the process is gone: nothing after this step runs
    });
    await first.install(ID);
    await config.update((doc) => {
      doc[ID] = { intervalMs: 500, mode: 'slow', label: 'north' };
    });
    return async () => {
      await publish({ version: '2.0.0', configuration: V2_CONFIG });
      void first.update(ID);
      await reached;
    };
  }

  async function publish(
    overrides: Partial<AppManifest>,
    signer: TestIdentity = pki.publisher,
    main = 'import { log } from "isogate:sdk";\nlog.info("v");\n',
  ): Promise<AppManifest> {
    const manifest = sampleManifest(overrides);
    const unsigned = await buildPackage(manifest, new Map([['app/main.js', Buffer.from(`${main}// ${manifest.version}\n`)]]));
    const signed = await signPackage(unsigned, { keyPem: signer.keyPem, certPem: signer.certPem, chainPem: signer.chainPem ?? [] });
    store.list(signed, { package_id: manifest.package_id, version: manifest.version, name: manifest.name });
    return manifest;
  }

  /** v1 installed and configured by the admin: intervalMs 500, mode slow, label "north". */
  async function installedV1(): Promise<Orchestrator> {
    await publish({ version: '1.0.0', configuration: V1_CONFIG });
    const orchestrator = await open();
    await orchestrator.install(ID);
    await config.update((doc) => {
      doc[ID] = { intervalMs: 500, mode: 'slow', label: 'north' };
    });
    return orchestrator;
  }

  async function state(): Promise<unknown> {
    return {
      apps: await snapshotTree(path.join(dir, 'apps')),
      updates: await snapshotTree(path.join(dir, 'updates')),
      staging: await snapshotTree(path.join(dir, 'staging')),
      config: await fs.readFile(path.join(dir, 'config.json'), 'utf8'),
      bindings: await fs.readFile(path.join(dir, 'signer-bindings.json'), 'utf8'),
    };
  }

  const entryOf = (store: ConfigStore) => store.read((doc) => doc.APPLICATIONS.APPS_CONTROL.applications.find((e) => e.package_id === ID));

  it('updates in place: new files and record, the start rule kept, valid keys kept, the others reset and named, the app started again', async () => {
    const orchestrator = await installedV1();
    await config.update((doc) => {
      doc.APPLICATIONS.APPS_CONTROL.applications.find((e) => e.package_id === ID)!.launchRule = 'auto';
    });
    await publish({ version: '2.0.0', configuration: V2_CONFIG });
    runner.brokenRoutes = [{ id: 'r1', problem: 'com.example.sample declares no endpoint "old"' }];

    const result = await orchestrator.update(ID);

    assert.equal(result.app.version, '2.0.0');
    assert.equal(result.previousVersion, '1.0.0');
    assert.deepEqual(result.resetKeys, ['label', 'mode']);
    assert.deepEqual(result.routesInError, runner.brokenRoutes);
    assert.equal(result.started, true);
    assert.equal(orchestrator.get(ID)!.version, '2.0.0');
    await orchestrator.verifyIntegrity(ID);
    assert.match(await fs.readFile(path.join(dir, 'apps', ID, 'package', 'app', 'main.js'), 'utf8'), /\/\/ 2\.0\.0/);
    assert.deepEqual(
      config.read((doc) => doc[ID]),
      { intervalMs: 500, mode: 'eco', retries: 3 },
    );
    const entry = entryOf(config)!;
    assert.equal(entry.version, '2.0.0');
    assert.equal(entry.launchRule, 'auto');
    assert.equal(JSON.parse(entry.manifest!).version, '2.0.0');
    assert.deepEqual(runner.calls, [`hold ${ID}`, `replaced ${ID}`, `run ${ID} 2.0.0`, `release ${ID}`]);
    assert.deepEqual(await fs.readdir(path.join(dir, 'updates')), []);
    const names = audit.records.map((r) => r.name);
    assert.ok(names.indexOf('Updater: Application update') < names.indexOf('Updater: Application update successful'));
    const done = audit.records.find((r) => r.event === 'updateSucceeded')!;
    assert.equal(done.text, 'The application Sample was successfully updated to version 2.0.0');
    assert.deepEqual(done.details?.resetKeys, ['label', 'mode']);
    assert.ok(!names.includes('Launcher: Attempting to download a new version of the application'), 'an update is not the refused install');
  });

  /** 1.0.0 installed, `beforeUpdate` run, then the update to 2.0.0: the entry its write made, as the step `configured` finds it. */
  async function entryWrittenByUpdate(beforeUpdate: () => Promise<void>): Promise<NonNullable<ReturnType<typeof entryOf>>> {
    await publish({ version: '1.0.0', configuration: V1_CONFIG });
    let atConfigured: ReturnType<typeof entryOf>;
    const orchestrator = await open((step) => {
      if (step === 'configured') atConfigured = entryOf(config);
    });
    await orchestrator.install(ID);
    await beforeUpdate();
    await publish({ version: '2.0.0', configuration: V2_CONFIG });
    await orchestrator.update(ID);
    assert.equal(atConfigured!.version, '2.0.0');
    return atConfigured!;
  }

  // The launcher's hold writes no state: the Stopped one is this write's.
  it('writes the new entry of an app that did not run recorded stopped, whatever state the entry read before the hold had', async () => {
    const entry = await entryWrittenByUpdate(async () => {
      await config.update((doc) => {
        doc.APPLICATIONS.APPS_CONTROL.applications.find((e) => e.package_id === ID)!.state = 1;
      });
      runner.running = false;
    });
    assert.equal(entry.state, APP_STATE.stopped);
  });

  // The launch's own Starting write was a durable write in front of the new version's first line.
  it('writes the new entry of an app that ran recorded Starting, and tells the start it need not write that state', async () => {
    const entry = await entryWrittenByUpdate(async () => {
      runner.running = true;
    });
    assert.equal(entry.state, APP_STATE.starting);
    assert.equal(runner.lastHeld?.startingRecorded, true);
  });

  it('carries the configuration saved while the app was being held, not the one before it, and journals that one', async () => {
    await installedV1();
    await publish({ version: '2.0.0', configuration: V2_CONFIG });
    // hold() waits for the app's lock in the launcher, which a configuration save holds: the save
    // lands while the update waits there (it used to have read the configuration before).
    const hold = runner.hold.bind(runner);
    let journalled: unknown;
    runner.hold = async (id) => {
      await config.update((doc) => {
        doc[ID] = { intervalMs: 700, mode: 'fast', label: 'south' };
      });
      return hold(id);
    };
    // The same data directory opened again, watching the steps: the journal is read at `configured`.
    const watched = await open(async (step) => {
      if (step !== 'configured') return;
      journalled = JSON.parse(await fs.readFile(path.join(dir, 'updates', ID, 'journal.json'), 'utf8')).configuration;
    });
    await watched.update(ID);
    assert.deepEqual(journalled, { intervalMs: 700, mode: 'fast', label: 'south' }, 'a rollback would put back the save');
    assert.deepEqual(
      config.read((doc) => doc[ID]),
      { intervalMs: 700, mode: 'fast', retries: 3 },
    );
  });

  it('does not start an app that was stopped before the update', async () => {
    const orchestrator = await installedV1();
    await publish({ version: '1.1.0', configuration: V1_CONFIG });
    runner.running = false;
    const result = await orchestrator.update(ID);
    assert.equal(result.started, false);
    assert.deepEqual(result.resetKeys, []);
    assert.deepEqual(
      config.read((doc) => doc[ID]),
      { intervalMs: 500, mode: 'slow', label: 'north' },
    );
    assert.ok(!runner.calls.some((call) => call.startsWith('run')));
  });

  it('refuses the same version with E_ALREADY_INSTALLED and changes nothing', async () => {
    const orchestrator = await installedV1();
    const before = await state();
    await assert.rejects(orchestrator.update(ID, { version: '1.0.0' }), (error: unknown) => isIsogateError(error, 'E_ALREADY_INSTALLED'));
    await assert.rejects(orchestrator.update(ID), (error: unknown) => isIsogateError(error, 'E_ALREADY_INSTALLED') && /newest version/.test(error.message));
    assert.deepEqual(await state(), before);
    assert.deepEqual(runner.calls, []);
  });

  it('refuses a downgrade with E_DOWNGRADE unless it is allowed', async () => {
    await publish({ version: '0.9.0', configuration: V1_CONFIG });
    const orchestrator = await installedV1();
    const before = await state();
    await assert.rejects(
      orchestrator.update(ID, { version: '0.9.0' }),
      (error: unknown) => isIsogateError(error, 'E_DOWNGRADE') && /--allow-downgrade/.test(error.message),
    );
    assert.deepEqual(await state(), before);
    assert.equal(store.downloads, 1, 'nothing was downloaded');
    assert.deepEqual(runner.calls, []);

    const result = await orchestrator.update(ID, { version: '0.9.0', allowDowngrade: true });
    assert.equal(result.app.version, '0.9.0');
    assert.deepEqual(
      config.read((doc) => doc[ID]),
      { intervalMs: 500, mode: 'slow', label: 'north' },
    );
  });

  it('refuses a version signed by another signer with E_SIGNER_MISMATCH: nothing changed, the app never stopped', async () => {
    const orchestrator = await installedV1();
    // Same subject, same store root, another issuing CA: another signer.
    await publish({ version: '2.0.0', configuration: V1_CONFIG }, pki.publisherSubjectOtherCa);
    const before = await state();
    await assert.rejects(orchestrator.update(ID), (error: unknown) => isIsogateError(error, 'E_SIGNER_MISMATCH'));
    assert.deepEqual(await state(), before);
    assert.equal(orchestrator.get(ID)!.version, '1.0.0');
    assert.deepEqual(runner.calls, [], 'the app was not stopped');
    assert.ok(audit.records.some((r) => r.event === 'signatureError' && r.severity === 'Critical'));
    assert.equal(audit.records.at(-1)!.event, 'updateError');
  });

  it('refuses a version claiming a reserved capability with E_RESERVED_CAPABILITY and changes nothing', async () => {
    const orchestrator = await installedV1();
    await publish({ version: '2.0.0', configuration: V1_CONFIG, capabilities: ['traffic.inspect'] } as Partial<AppManifest>);
    const before = await state();
    await assert.rejects(orchestrator.update(ID), (error: unknown) => isIsogateError(error, 'E_RESERVED_CAPABILITY'));
    assert.deepEqual(await state(), before);
    assert.deepEqual(runner.calls, []);
  });

  it('refuses an app that is not installed with E_NOT_INSTALLED', async () => {
    await publish({ version: '2.0.0' });
    const orchestrator = await open();
    await assert.rejects(orchestrator.update(ID), (error: unknown) => isIsogateError(error, 'E_NOT_INSTALLED'));
    assert.deepEqual(await fs.readdir(path.join(dir, 'apps')), []);
  });

  it('rolls back when the new version fails to start: old files, record, entry and configuration back, the old version started again', async () => {
    const orchestrator = await installedV1();
    await publish({ version: '2.0.0', configuration: V2_CONFIG });
    const before = await state();
    runner.failing.set('2.0.0', fail('E_APP_FAILED', 'boom at start'));

    await assert.rejects(orchestrator.update(ID), (error: unknown) => {
      assert.ok(isIsogateError(error, 'E_UPDATE_ROLLED_BACK'), String(error));
      assert.match(error.message, /E_APP_FAILED: boom at start/);
      assert.equal(error.details.restarted, true);
      return true;
    });
    assert.deepEqual(await state(), before);
    assert.equal(orchestrator.get(ID)!.version, '1.0.0');
    await orchestrator.verifyIntegrity(ID);
    assert.deepEqual(runner.calls, [`hold ${ID}`, `replaced ${ID}`, `run ${ID} 2.0.0`, `halt ${ID}`, `replaced ${ID}`, `run ${ID} 1.0.0`, `release ${ID}`]);
    assert.equal(runner.running, true);
    const rolledBack = audit.records.at(-1)!;
    assert.equal(rolledBack.name, 'Updater: Application update rolled back');
    assert.equal(rolledBack.text, 'Error E_APP_FAILED occurred during the update of the application Sample; version 1.0.0 is restored');
  });

  it('starts the new version with the files its launch check read where they were staged, while the old version was held', async () => {
    const orchestrator = await installedV1();
    await publish({ version: '2.0.0', configuration: V2_CONFIG });
    await orchestrator.update(ID);
    assert.match(runner.checkedFiles?.get('app/main.js')?.toString() ?? '', /\/\/ 2\.0\.0\n$/);
    await orchestrator.verifyIntegrity(ID);
  });

  it('a staged file changed before the launch check read it: the start refused (E_INTEGRITY), rolled back (E_UPDATE_ROLLED_BACK), 1.0.0 as it was and running', async () => {
    const orchestrator = await installedV1();
    await publish({ version: '2.0.0', configuration: V2_CONFIG });
    const before = await state();
    const hold = runner.hold.bind(runner);
    runner.hold = (id) => {
      // Called while the check reads the record: none of the package's files is open yet.
      const [work] = readdirSync(path.join(dir, 'staging'));
      writeFileSync(path.join(dir, 'staging', work!, 'package', 'app', 'main.js'), 'globalThis.tampered = true;\n');
      return hold(id);
    };

    await assert.rejects(orchestrator.update(ID), (error: unknown) => {
      assert.ok(isIsogateError(error, 'E_UPDATE_ROLLED_BACK'), String(error));
      assert.equal((error.details.failure as { code: string }).code, 'E_INTEGRITY');
      assert.equal(error.details.restarted, true);
      return true;
    });
    assert.deepEqual(await state(), before);
    assert.equal(orchestrator.get(ID)!.version, '1.0.0');
    assert.equal(runner.running, true);
    assert.equal(runner.checkedFiles, undefined, 'the old version started with its own launch check');
  });

  // The hold's contract (UpdateHooks.hold): one that rejects has left the app as it was, so the update calls nothing else.
  it('refuses the update with the code of a hold that fails, audited; nothing changed, the staging erased, nothing else asked of the launcher', async () => {
    const orchestrator = await installedV1();
    await publish({ version: '2.0.0', configuration: V2_CONFIG });
    const before = await state();
    runner.hold = async (id) => {
      runner.calls.push(`hold ${id}`);
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    };

    await assert.rejects(orchestrator.update(ID), (error: unknown) => {
      assert.ok(isIsogateError(error, 'E_STORAGE_FULL'), String(error));
      assert.match(error.message, /^Sample was not updated: it could not be stopped and held for the update \(.*no space left.*\); 1\.0\.0 is as it was$/);
      assert.deepEqual({ from: error.details.from, to: error.details.to }, { from: '1.0.0', to: '2.0.0' });
      return true;
    });
    assert.deepEqual(await state(), before);
    assert.equal(orchestrator.get(ID)!.version, '1.0.0');
    assert.deepEqual(runner.calls, [`hold ${ID}`]);
    assert.equal(runner.running, true);
    const refusal = audit.records.at(-1)!;
    assert.equal(refusal.event, 'updateError');
    assert.equal(refusal.details?.code, 'E_STORAGE_FULL');
  });

  /** A new gateway process (the configuration and the orchestrator read again from disk) finds the old version as it was. */
  async function reopensAtTheOldVersion(configBefore: string, filesBefore: unknown): Promise<void> {
    config = await ConfigStore.open(path.join(dir, 'config.json'), 'test');
    const reopened = await open();
    assert.equal(reopened.get(ID)!.version, '1.0.0');
    await reopened.verifyIntegrity(ID);
    assert.deepEqual(await snapshotTree(path.join(dir, 'apps')), filesBefore);
    assert.equal(await fs.readFile(path.join(dir, 'config.json'), 'utf8'), configBefore);
    assert.deepEqual(await fs.readdir(path.join(dir, 'updates')), []);
  }

  for (const crashAt of ['staged', 'old-moved', 'new-moved', 'configured', 'started'] as const) {
    it(`a crash after step "${crashAt}" leaves the old version at the next open, with its entry and configuration`, async () => {
      const updateUntilCrash = await v1CrashingAt(crashAt);
      const configBefore = await fs.readFile(path.join(dir, 'config.json'), 'utf8');
      const filesBefore = await snapshotTree(path.join(dir, 'apps'));
      await updateUntilCrash();

      await reopensAtTheOldVersion(configBefore, filesBefore);
      const rolledBack = audit.records.at(-1)!;
      assert.equal(rolledBack.event, 'updateRolledBack');
      assert.match(rolledBack.text, /the gateway stopped/);
    });
  }

  // The new version's move into updates/<id>/new and the journal are written side by side: a
  // crash may leave either without the other.
  for (const left of ['journal.json', 'new'] as const) {
    it(`a crash that left only ${left} of the staging leaves the old version at the next open, with its entry and configuration`, async () => {
      const updateUntilCrash = await v1CrashingAt('staged');
      const configBefore = await fs.readFile(path.join(dir, 'config.json'), 'utf8');
      const filesBefore = await snapshotTree(path.join(dir, 'apps'));
      await updateUntilCrash();
      await fs.rm(path.join(dir, 'updates', ID, left === 'new' ? 'journal.json' : 'new'), { recursive: true });
      assert.deepEqual(await fs.readdir(path.join(dir, 'updates', ID)), [left]);

      await reopensAtTheOldVersion(configBefore, filesBefore);
      assert.equal(
        audit.records.some((record) => record.event === 'integrityViolation'),
        false,
      );
    });
  }

  it('a crash after the commit point leaves the new version at the next open, and the old files go', async () => {
    await (await v1CrashingAt('committed'))();
    assert.ok((await fs.readdir(path.join(dir, 'updates', ID))).includes('old'), 'the old version is still on disk at the crash');

    config = await ConfigStore.open(path.join(dir, 'config.json'), 'test');
    const reopened = await open();
    assert.equal(reopened.get(ID)!.version, '2.0.0');
    await reopened.verifyIntegrity(ID);
    assert.equal(entryOf(config)!.version, '2.0.0');
    assert.deepEqual(
      config.read((doc) => doc[ID]),
      { intervalMs: 500, mode: 'eco', retries: 3 },
    );
    assert.deepEqual(await fs.readdir(path.join(dir, 'updates')), []);
    assert.equal(audit.records.at(-1)!.event, 'updateSucceeded');
  });

  it('the committed journal is the last of the update to go: a crash while the old files are erased keeps the new version, with no violation', async () => {
    // The crash harness (seed 1775760123) once cut this erasure after the journal, which went
    // first in readdir order: the next start took the half-erased old version for an update without a journal.
    await (await v1CrashingAt('old-erased'))();
    assert.deepEqual(await fs.readdir(path.join(dir, 'updates', ID)), ['journal.json'], 'the old files are gone, the committed journal is not');

    config = await ConfigStore.open(path.join(dir, 'config.json'), 'test');
    const reopened = await open();
    assert.equal(reopened.get(ID)!.version, '2.0.0');
    await reopened.verifyIntegrity(ID);
    assert.deepEqual(
      config.read((doc) => doc[ID]),
      { intervalMs: 500, mode: 'eco', retries: 3 },
    );
    assert.deepEqual(await fs.readdir(path.join(dir, 'updates')), []);
    assert.equal(
      audit.records.some((record) => record.event === 'integrityViolation'),
      false,
    );
    assert.equal(audit.records.at(-1)!.event, 'updateSucceeded');
  });

  it('a forged update journal is not followed: the old files are put back and the forgery audited', async () => {
    await publish({ version: '1.0.0', configuration: V1_CONFIG });
    let crashed!: () => void;
    const reached = new Promise<void>((resolve) => {
      crashed = resolve;
    });
    const first = await open(async (step) => {
      if (step !== 'new-moved') return;
      crashed();
      await new Promise(() => undefined);
    });
    await first.install(ID);
    await publish({ version: '2.0.0', configuration: V1_CONFIG });
    void first.update(ID);
    await reached;
    // Someone with access to the data directory marks the update committed without the device key.
    const journalFile = path.join(dir, 'updates', ID, 'journal.json');
    const journal = JSON.parse(await fs.readFile(journalFile, 'utf8')) as Record<string, unknown>;
    await fs.writeFile(journalFile, JSON.stringify({ ...journal, phase: 'committed' }));

    config = await ConfigStore.open(path.join(dir, 'config.json'), 'test');
    const reopened = await open();
    assert.equal(reopened.get(ID)!.version, '1.0.0');
    await reopened.verifyIntegrity(ID);
    assert.equal(audit.records.at(-1)!.event, 'integrityViolation');
    assert.deepEqual(await fs.readdir(path.join(dir, 'updates')), []);
  });
});
