/**
 * Issue 13's integrity violation: an installed app whose record fails its MAC, cannot be parsed,
 * or whose manifest no longer validates is quarantined in place (never started, its files kept,
 * a Critical "Object integrity violation" per detection), not moved to trash and erased unseen.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { MemoryAuditLog } from '../../platform/audit/index.js';
import { ConfigStore } from '../../platform/config/index.js';
import { memoryDeviceKeys } from '../../platform/device/index.js';
import { type IntegrityRecord, sealRecord } from '../../platform/integrity/index.js';
import { Launcher } from '../../platform/launcher/index.js';
import { Orchestrator, WorkerPackageVerifier } from '../../platform/orchestrator/index.js';
import type { AppManifest } from '../../sdk/manifest.js';
import { buildPackage, signPackage } from '../../sdk/package/index.js';
import { SDK_VERSION } from '../../sdk/version.js';
import { sampleManifest } from '../fixtures/packages.js';
import { createTestPki, type TestPki } from '../fixtures/pki.js';
import { makeTempDir, removeDir, snapshotTree } from '../fixtures/temp.js';
import { MemoryStoreClient } from './memory-store.js';

const id = 'com.example.sample';

describe('an installed app that fails its check at start is quarantined', function () {
  this.timeout(60_000);
  let pki: TestPki;
  let dir: string;
  let store: MemoryStoreClient;
  let audit: MemoryAuditLog;
  let config: ConfigStore;
  const keys = memoryDeviceKeys();
  const verifier = new WorkerPackageVerifier();

  before(async () => {
    pki = await createTestPki();
  });
  after(() => verifier.close());

  beforeEach(async () => {
    dir = await makeTempDir('isogate-quarantine-');
    store = new MemoryStoreClient();
    audit = new MemoryAuditLog();
    config = await ConfigStore.open(path.join(dir, 'config.json'), 'test');
  });
  afterEach(() => removeDir(dir));

  const open = (): Promise<Orchestrator> => Orchestrator.open({ dataDir: dir, store, config, audit, keys, verifier, trustRootsPem: [pki.root.certPem] });
  const appDir = (): string => path.join(dir, 'apps', id);
  const recordFile = (): string => path.join(appDir(), 'record.json');

  async function installSample(manifest: AppManifest = sampleManifest()): Promise<void> {
    const unsigned = await buildPackage(manifest, new Map([['app/main.js', Buffer.from('import { log } from "isogate:sdk";\nlog.info("hi");\n')]]));
    store.list(await signPackage(unsigned, { keyPem: pki.publisher.keyPem, certPem: pki.publisher.certPem, chainPem: pki.publisher.chainPem ?? [] }), {
      package_id: manifest.package_id,
      version: manifest.version,
      name: manifest.name,
      status: 'available',
    });
    await (await open()).install(manifest.package_id);
    // Autostart, so that a quarantined app's refusal to start at gateway start is seen too.
    await config.update((doc) => {
      doc.APPLICATIONS.APPS_CONTROL.applications[0]!.launchRule = 'auto';
    });
  }

  function launcherFor(orchestrator: Orchestrator, sandboxes: string[]): Launcher {
    return new Launcher({
      config,
      audit,
      apps: orchestrator,
      platformSdkVersion: SDK_VERSION,
      appLog: () => undefined,
      verifyIntegrity: (app) => orchestrator.verifyIntegrity(app.packageId),
      createSandbox: async (app) => {
        sandboxes.push(app.packageId);
        throw new Error('a quarantined app must never reach its sandbox');
      },
    });
  }

  /** The shared assertions: quarantined with `reason`, audited once per open, files kept, never started, uninstallable. */
  async function assertQuarantined(reason: RegExp): Promise<void> {
    const files = await snapshotTree(appDir());
    const configuredBefore = config.snapshot().APPLICATIONS.APPS_CONTROL.applications.map((entry) => entry.package_id);
    assert.deepEqual(configuredBefore, [id]);

    for (const round of [1, 2]) {
      const orchestrator = await open();
      assert.deepEqual(orchestrator.list(), [], 'not an installed, launchable app');
      const [quarantined, ...others] = orchestrator.quarantined();
      assert.deepEqual(others, []);
      assert.equal(quarantined!.packageId, id);
      assert.equal(quarantined!.name, 'Sample', 'named as its configuration entry, written at install, says');
      assert.match(quarantined!.reason, reason);

      const violations = audit.records.filter((record) => record.event === 'integrityViolation');
      assert.equal(violations.length, round, 'one Critical record per detection');
      const violation = violations.at(-1)!;
      assert.equal(violation.severity, 'Critical');
      assert.equal(violation.name, 'IntegrityService: Object integrity violation');
      assert.match(violation.text, new RegExp(`^The app ${id.replace(/\./g, '\\.')} integrity violated: `));
      assert.match(violation.text, reason);
      assert.match(violation.text, /quarantined/);
      assert.equal(violation.details?.packageId, id);

      assert.deepEqual(await snapshotTree(appDir()), files, 'its files are kept as they were, for the integrity report');
      assert.deepEqual(await fs.readdir(path.join(dir, 'trash')), []);
      assert.deepEqual(
        config.snapshot().APPLICATIONS.APPS_CONTROL.applications.map((entry) => entry.package_id),
        [id],
        'its entry is kept',
      );

      const sandboxes: string[] = [];
      const launcher = launcherFor(orchestrator, sandboxes);
      await launcher.startAutostartApps();
      await assert.rejects(
        launcher.start(id),
        (error: { code?: string; message?: string }) =>
          error.code === 'E_INTEGRITY' && /quarantined/.test(error.message ?? '') && reason.test(error.message ?? ''),
      );
      await assert.rejects(launcher.setConfiguration(id, {}), { code: 'E_INTEGRITY' });
      assert.deepEqual(sandboxes, []);
      const untrusted = audit.records.filter((record) => record.event === 'launchUntrusted');
      assert.equal(untrusted.length, round, 'the refused start is audited');
      await assert.rejects(orchestrator.install(id), { code: 'E_ALREADY_INSTALLED', message: /quarantined/ });
      await assert.rejects(orchestrator.update(id), { code: 'E_INTEGRITY', message: /quarantined/ });
      assert.deepEqual(await snapshotTree(appDir()), files);
    }

    const orchestrator = await open();
    await orchestrator.uninstall(id);
    assert.deepEqual(orchestrator.quarantined(), []);
    assert.deepEqual(await fs.readdir(path.join(dir, 'apps')), []);
    assert.deepEqual(await fs.readdir(path.join(dir, 'trash')), []);
    assert.deepEqual(config.snapshot().APPLICATIONS.APPS_CONTROL.applications, []);
    assert.deepEqual(audit.events().slice(-2), ['uninstallStarted', 'uninstallSucceeded']);
    await assert.rejects(orchestrator.uninstall(id), { code: 'E_NOT_INSTALLED' });
    // Gone for good: the next start finds nothing to quarantine, and the id installs again.
    assert.deepEqual((await open()).quarantined(), []);
    await orchestrator.install(id);
    assert.equal(orchestrator.get(id)?.packageId, id);
  }

  it('a record with one byte of its MAC flipped', async () => {
    await installSample();
    const record = JSON.parse(await fs.readFile(recordFile(), 'utf8')) as IntegrityRecord;
    const flipped = (Number.parseInt(record.mac[0]!, 16) ^ 1).toString(16);
    await fs.writeFile(recordFile(), JSON.stringify({ ...record, mac: flipped + record.mac.slice(1) }, null, 2));
    await assertQuarantined(/integrity record is not authentic: it fails its MAC check/);
  });

  it('a truncated record', async () => {
    await installSample();
    const text = await fs.readFile(recordFile(), 'utf8');
    await fs.writeFile(recordFile(), text.slice(0, Math.floor(text.length / 2)));
    await assertQuarantined(/integrity record is not JSON \(.+\): it is truncated/);
  });

  it('a record that is not JSON', async () => {
    await installSample();
    await fs.writeFile(recordFile(), 'not json at all\n');
    await assertQuarantined(/integrity record is not JSON/);
  });

  it('a record that is JSON but no install record', async () => {
    await installSample();
    await fs.writeFile(recordFile(), 'null\n');
    await assertQuarantined(/integrity record is not an install record/);
  });

  it('a missing record', async () => {
    await installSample();
    await fs.rm(recordFile());
    await assertQuarantined(/integrity record \(record\.json\) is missing/);
  });

  it('a manifest changed after the install, under a record that still passes its MAC', async () => {
    await installSample();
    const manifestFile = path.join(appDir(), 'package', 'manifest.json');
    const manifest = JSON.parse(await fs.readFile(manifestFile, 'utf8')) as AppManifest;
    await fs.writeFile(manifestFile, JSON.stringify({ ...manifest, networkZone: 'wan' }));
    await assertQuarantined(/manifest \(package\/manifest\.json\) was changed after the install/);
  });

  it('a manifest that no longer validates: a 0.1.0 app whose schema uses a lookahead RE2 refuses', async () => {
    await installSample();
    // What 0.1.0 accepted and recorded: the manifest as installed then, sealed by this device.
    const manifestFile = path.join(appDir(), 'package', 'manifest.json');
    const manifest = JSON.parse(await fs.readFile(manifestFile, 'utf8')) as AppManifest;
    const old = JSON.stringify(
      { ...manifest, configuration: { schema: { type: 'object', properties: { user: { type: 'string', pattern: '^(?!root$).+$' } } } } },
      null,
      2,
    );
    await fs.writeFile(manifestFile, old);
    const { mac: _mac, ...record } = JSON.parse(await fs.readFile(recordFile(), 'utf8')) as IntegrityRecord;
    record.digests['manifest.json'] = createHash('sha256').update(old).digest('hex');
    await fs.writeFile(recordFile(), JSON.stringify(sealRecord(record, keys), null, 2));
    await assertQuarantined(/manifest no longer validates under this gateway's rules \(E_SCHEMA_PATTERN: .*\/configuration\/schema\/properties\/user\/pattern/);
  });

  it('counts a quarantined app against the app limit until it is uninstalled', async () => {
    await installSample();
    await fs.writeFile(recordFile(), '{');
    const other = sampleManifest({ package_id: 'com.example.other', name: 'Other' });
    const unsigned = await buildPackage(other, new Map([['app/main.js', Buffer.from('1;\n')]]));
    store.list(await signPackage(unsigned, { keyPem: pki.publisher.keyPem, certPem: pki.publisher.certPem, chainPem: pki.publisher.chainPem ?? [] }), {
      package_id: other.package_id,
      version: other.version,
      name: other.name,
      status: 'available',
    });
    const orchestrator = await Orchestrator.open({ dataDir: dir, store, config, audit, keys, verifier, trustRootsPem: [pki.root.certPem], maxApps: 1 });
    await assert.rejects(orchestrator.install(other.package_id), { code: 'E_APP_LIMIT' });
    assert.deepEqual(await fs.readdir(path.join(dir, 'apps')), [id]);
    await orchestrator.uninstall(id);
    await orchestrator.install(other.package_id);
  });

  it('refuses a link or a directory in place of the record (E_UNSAFE_PATH) rather than act on it', async () => {
    await installSample();
    const outside = await makeTempDir('isogate-outside-');
    try {
      const target = path.join(outside, 'record.json');
      await fs.copyFile(recordFile(), target);
      await fs.rm(recordFile());
      await fs.symlink(target, recordFile());
      await assert.rejects(open(), { code: 'E_UNSAFE_PATH', message: /record\.json is a symbolic link/ });
      assert.equal((await fs.lstat(recordFile())).isSymbolicLink(), true, 'left for the admin to look at');
      await fs.rm(recordFile());
      await fs.mkdir(recordFile());
      await assert.rejects(open(), { code: 'E_UNSAFE_PATH', message: /record\.json is not a regular file/ });
    } finally {
      await removeDir(outside);
    }
  });
});
