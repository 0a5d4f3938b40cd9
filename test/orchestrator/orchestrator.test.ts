import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { MemoryAuditLog } from '../../platform/audit/index.js';
import { ConfigStore } from '../../platform/config/index.js';
import { memoryDeviceKeys } from '../../platform/device/index.js';
import { HttpStoreClient, type InstallProgress, Orchestrator, WorkerPackageVerifier } from '../../platform/orchestrator/index.js';
import { isIsogateError } from '../../sdk/errors.js';
import type { AppManifest } from '../../sdk/manifest.js';
import { buildPackage, signPackage } from '../../sdk/package/index.js';
import { serveStore } from '../../store-mock/server.js';
import { HOSTILE_PACKAGES, sampleManifest } from '../fixtures/packages.js';
import { createTestPki, type TestPki } from '../fixtures/pki.js';
import { makeTempDir, removeDir, snapshotTree } from '../fixtures/temp.js';
import { MemoryStoreClient } from './memory-store.js';

const MAIN_JS = 'import { log } from "isogate:sdk";\nlog.info("hello");\n';

describe('orchestrator', function () {
  this.timeout(60_000);
  let pki: TestPki;
  let dir: string;
  let store: MemoryStoreClient;
  let audit: MemoryAuditLog;
  let config: ConfigStore;
  const keys = memoryDeviceKeys();
  const verifier = new WorkerPackageVerifier();
  const opened: Orchestrator[] = [];

  before(async () => {
    pki = await createTestPki();
  });
  after(() => verifier.close());

  beforeEach(async () => {
    dir = await makeTempDir();
    store = new MemoryStoreClient();
    audit = new MemoryAuditLog();
    config = await ConfigStore.open(path.join(dir, 'config.json'), 'test');
  });
  afterEach(async () => {
    opened.length = 0;
    await removeDir(dir);
  });

  async function open(extra: Partial<Parameters<typeof Orchestrator.open>[0]> = {}): Promise<Orchestrator> {
    const orchestrator = await Orchestrator.open({
      dataDir: dir,
      store,
      config,
      audit,
      keys,
      verifier,
      trustRootsPem: [pki.root.certPem],
      ...extra,
    });
    opened.push(orchestrator);
    return orchestrator;
  }

  async function signed(manifest: AppManifest, files: Record<string, string> = { 'app/main.js': MAIN_JS }): Promise<Buffer> {
    const unsigned = await buildPackage(manifest, new Map(Object.entries(files).map(([p, text]) => [p, Buffer.from(text)])));
    return signPackage(unsigned, { keyPem: pki.publisher.keyPem, certPem: pki.publisher.certPem, chainPem: pki.publisher.chainPem ?? [] });
  }

  async function publish(overrides: Partial<AppManifest> = {}, status: 'available' | 'compromised' = 'available'): Promise<AppManifest> {
    const manifest = sampleManifest(overrides);
    store.list(await signed(manifest), { package_id: manifest.package_id, version: manifest.version, name: manifest.name, status });
    return manifest;
  }

  async function diskAndConfig(): Promise<unknown> {
    return {
      apps: [...(await snapshotTree(path.join(dir, 'apps'))).keys()],
      staging: [...(await snapshotTree(path.join(dir, 'staging'))).keys()],
      config: await fs.readFile(path.join(dir, 'config.json'), 'utf8'),
    };
  }

  it('installs a signed app: files, integrity record, configuration entry and audit trail', async () => {
    const manifest = await publish();
    const orchestrator = await open();
    const progress: InstallProgress[] = [];
    const app = await orchestrator.install(manifest.package_id, { onProgress: (p) => progress.push(p) });

    assert.equal(app.version, manifest.version);
    assert.equal(await fs.readFile(path.join(app.dir, 'app/main.js'), 'utf8'), MAIN_JS);
    assert.deepEqual(JSON.parse(await fs.readFile(path.join(app.dir, 'manifest.json'), 'utf8')), manifest);
    const entry = config.snapshot().APPLICATIONS.APPS_CONTROL.applications[0]!;
    assert.equal(entry.package_id, manifest.package_id);
    assert.equal(entry.launchRule, 'none', 'the manual: manual start is the rule after install');
    assert.equal(entry.state, 4);
    assert.deepEqual(JSON.parse(entry.manifest!), manifest);
    assert.deepEqual(audit.events(), ['downloadStarted', 'downloadSucceeded', 'installSucceeded']);
    assert.equal(audit.records[2]!.text, `The application ${manifest.name} was successfully installed`);
    assert.deepEqual(
      progress.map((p) => p.phase).filter((p, i, all) => all.indexOf(p) === i),
      ['download', 'verify', 'install', 'done'],
    );
    assert.deepEqual(
      progress.map((p) => p.percent),
      [...progress.map((p) => p.percent)].sort((a, b) => a - b),
    );
    assert.deepEqual(await fs.readdir(path.join(dir, 'staging')), []);
  });

  it('lists the catalog with the installed version beside each app', async () => {
    const first = await publish({ package_id: 'com.example.one', name: 'One' });
    await publish({ package_id: 'com.example.two', name: 'Two' });
    const orchestrator = await open();
    await orchestrator.install(first.package_id);
    const available = await orchestrator.available();
    assert.deepEqual(
      available.map((a) => [a.package_id, a.installedVersion]),
      [
        ['com.example.one', first.version],
        ['com.example.two', null],
      ],
    );
  });

  describe('hostile packages from the store, end to end', () => {
    let storeDir: string;
    before(async () => {
      storeDir = await makeTempDir('isogate-store-');
    });
    after(() => removeDir(storeDir));

    for (const hostile of HOSTILE_PACKAGES) {
      it(`refuses a hostile package (${hostile.name}) with ${hostile.expectedCode} and changes nothing`, async () => {
        const bytes = await hostile.make(pki);
        // Listed as what its manifest names, with the catalog entry made from these very bytes: what
        // the gateway finds is the package's own defect, never a mismatch with the catalog.
        const served = await serveStore({ dir: storeDir });
        try {
          await served.store.publish(bytes, { unchecked: true, packageId: 'com.example.hostile', version: '1.0.0' });
          const orchestrator = await open({ store: new HttpStoreClient({ url: served.url, maxPackageBytes: 64 * 1024 * 1024 }) });
          const before = await diskAndConfig();
          await assert.rejects(orchestrator.install('com.example.hostile'), (error: unknown) => {
            assert.ok(isIsogateError(error, hostile.expectedCode), `${String((error as { code?: unknown }).code)}: ${(error as Error).message}`);
            return true;
          });
          assert.deepEqual(await diskAndConfig(), before);
          assert.equal(orchestrator.list().length, 0);
          const refusal = audit.records.find((r) => r.event === 'signatureError' || r.event === 'installError');
          assert.equal(refusal?.details?.code, hostile.expectedCode, audit.events().join());
        } finally {
          await served.close();
        }
      });
    }
  });

  it('audits an authenticity failure as a Critical signature verification error', async () => {
    const manifest = sampleManifest();
    const other = await buildPackage(manifest, new Map([['app/main.js', Buffer.from(MAIN_JS)]]));
    const foreign = await signPackage(other, { keyPem: pki.otherRoot.keyPem, certPem: pki.otherRoot.certPem });
    store.list(foreign, { package_id: manifest.package_id, version: manifest.version, name: manifest.name });
    const orchestrator = await open();
    await assert.rejects(
      orchestrator.install(manifest.package_id),
      (error: unknown) => isIsogateError(error) && ['E_CERTIFICATE', 'E_SIGNATURE'].includes(error.code),
    );
    const record = audit.records.find((r) => r.event === 'signatureError')!;
    assert.equal(record.severity, 'Critical');
    assert.equal(record.text, `Failed to verify authenticity of the ${manifest.name} application signature`);
  });

  it('refuses a compromised app without downloading it', async () => {
    const manifest = await publish({}, 'compromised');
    const orchestrator = await open();
    await assert.rejects(orchestrator.install(manifest.package_id), (error: unknown) => isIsogateError(error, 'E_COMPROMISED'));
    assert.equal(store.downloads, 0);
    assert.deepEqual(audit.events(), ['installError']);
  });

  it("refuses the 21st app with the manual's limit event", async () => {
    for (let i = 0; i < 21; i += 1) await publish({ package_id: `com.example.app${i}`, name: `App ${String(i).padStart(2, '0')}` });
    const orchestrator = await open();
    for (let i = 0; i < 20; i += 1) await orchestrator.install(`com.example.app${i}`);
    const before = await diskAndConfig();
    await assert.rejects(orchestrator.install('com.example.app20'), (error: unknown) => isIsogateError(error, 'E_APP_LIMIT'));
    assert.deepEqual(await diskAndConfig(), before);
    const limit = audit.records.at(-1)!;
    assert.equal(limit.name, 'Orchestrator: Application installation error');
    assert.match(limit.text, /You have reached the limit on the number of applications/);
  });

  it('refuses a second version of an installed app until it is uninstalled (Critical event)', async () => {
    const v1 = await publish({ version: '1.0.0' });
    await publish({ version: '1.1.0' });
    const orchestrator = await open();
    await orchestrator.install(v1.package_id, { version: '1.0.0' });
    await assert.rejects(orchestrator.install(v1.package_id, { version: '1.1.0' }), (error: unknown) => isIsogateError(error, 'E_NEW_VERSION'));
    const attempt = audit.records.at(-1)!;
    assert.equal(attempt.name, 'Launcher: Attempting to download a new version of the application');
    assert.equal(attempt.severity, 'Critical');
    await assert.rejects(orchestrator.install(v1.package_id), (error: unknown) => isIsogateError(error, 'E_ALREADY_INSTALLED'));
    await orchestrator.uninstall(v1.package_id);
    assert.equal((await orchestrator.install(v1.package_id, { version: '1.1.0' })).version, '1.1.0');
  });

  it('picks the newest available version when none is named', async () => {
    const manifest = await publish({ version: '1.2.0' });
    await publish({ version: '1.10.0' });
    await publish({ version: '2.0.0' }, 'compromised');
    const orchestrator = await open();
    assert.equal((await orchestrator.install(manifest.package_id)).version, '1.10.0');
  });

  it('cannot install a delisted version again', async () => {
    const manifest = await publish({ version: '1.0.0' });
    await publish({ version: '2.0.0' });
    store.delist(manifest.package_id, '1.0.0');
    const orchestrator = await open();
    await assert.rejects(orchestrator.install(manifest.package_id, { version: '1.0.0' }), (error: unknown) => isIsogateError(error, 'E_DELISTED'));
  });

  it('refuses a validly signed package that is not the one the catalog offered', async () => {
    const real = sampleManifest({ package_id: 'com.example.real' });
    store.list(await signed(real), { package_id: 'com.example.victim', version: real.version, name: 'Victim' });
    const orchestrator = await open();
    await assert.rejects(orchestrator.install('com.example.victim'), (error: unknown) => isIsogateError(error, 'E_CATALOG_MISMATCH'));
    assert.deepEqual(await fs.readdir(path.join(dir, 'apps')), []);
  });

  it('refuses an unsigned package from the store (unsigned ones come only through the debug service)', async () => {
    const manifest = sampleManifest();
    const unsigned = await buildPackage(manifest, new Map([['app/main.js', Buffer.from(MAIN_JS)]]));
    store.list(unsigned, { package_id: manifest.package_id, version: manifest.version });
    const orchestrator = await open();
    await assert.rejects(orchestrator.install(manifest.package_id), (error: unknown) => isIsogateError(error, 'E_SIGNATURE'));
  });

  it('refuses a concurrent second install of the same app', async () => {
    const manifest = await publish();
    const orchestrator = await open();
    const first = orchestrator.install(manifest.package_id);
    await assert.rejects(orchestrator.install(manifest.package_id), (error: unknown) => isIsogateError(error, 'E_BUSY'));
    await first;
  });

  it('uninstalls: hooks in order, files, configuration entry and app configuration gone, routes left to the router', async () => {
    const manifest = await publish();
    const calls: string[] = [];
    const orchestrator = await open({
      beforeUninstall: [
        async (id) => {
          calls.push(`stop ${id}`);
        },
        async (id) => {
          calls.push(`wipe ${id}`);
        },
      ],
    });
    const app = await orchestrator.install(manifest.package_id);
    await config.update((doc) => {
      doc[manifest.package_id] = { threshold: 1 };
    });
    await orchestrator.uninstall(manifest.package_id);
    assert.deepEqual(calls, [`stop ${manifest.package_id}`, `wipe ${manifest.package_id}`]);
    await assert.rejects(fs.stat(app.dir), { code: 'ENOENT' });
    assert.deepEqual(await fs.readdir(path.join(dir, 'trash')), []);
    const doc = config.snapshot();
    assert.equal(doc.APPLICATIONS.APPS_CONTROL.applications.length, 0);
    assert.equal(doc[manifest.package_id], undefined);
    assert.deepEqual(audit.events().slice(-2), ['uninstallStarted', 'uninstallSucceeded']);
    assert.equal(audit.records.at(-1)!.text, `${manifest.name} was successfully uninstalled`);
  });

  it('at close: an install under way is abandoned at its commit and rolled back, a new one is refused, and close waits for it', async () => {
    const manifest = await publish();
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let verifying!: () => void;
    const started = new Promise<void>((resolve) => {
      verifying = resolve;
    });
    const orchestrator = await open({
      verifier: {
        verify: async (task) => {
          verifying();
          await held;
          return verifier.verify(task);
        },
        close: async () => undefined,
      },
    });
    const install = orchestrator.install(manifest.package_id);
    await started;
    let closed = false;
    const closing = orchestrator.close().then(() => {
      closed = true;
    });
    await assert.rejects(orchestrator.install('com.example.other'), (error: unknown) => isIsogateError(error, 'E_UNAVAILABLE'));
    assert.equal(closed, false, 'close waits for the install under way');
    release();
    await assert.rejects(install, (error: unknown) => isIsogateError(error, 'E_UNAVAILABLE') && /rolled back/.test(error.message));
    await closing;
    assert.equal(orchestrator.get(manifest.package_id), undefined);
    assert.deepEqual(await fs.readdir(path.join(dir, 'staging')), []);
    assert.deepEqual(await fs.readdir(path.join(dir, 'apps')), []);
    assert.equal(config.snapshot().APPLICATIONS.APPS_CONTROL.applications.length, 0);
  });

  it('refuses to uninstall an app that is not installed', async () => {
    const orchestrator = await open();
    await assert.rejects(orchestrator.uninstall('com.example.none'), (error: unknown) => isIsogateError(error, 'E_NOT_INSTALLED'));
  });

  it('when an uninstall hook fails past the commit point: audits the error, keeps the record, refuses a reinstall, and finishes on the next uninstall', async () => {
    const manifest = await publish();
    let failing = true;
    const orchestrator = await open({
      beforeUninstall: [
        async () => {
          if (failing) throw new Error('disk on fire');
        },
      ],
    });
    await orchestrator.install(manifest.package_id);
    await assert.rejects(orchestrator.uninstall(manifest.package_id), (error: unknown) => isIsogateError(error, 'E_UNINSTALL'));
    assert.equal(audit.events().at(-1), 'uninstallError');
    // Some of it may be erased already: the app is never offered to start again.
    assert.equal(orchestrator.get(manifest.package_id), undefined);
    assert.deepEqual(await fs.readdir(path.join(dir, 'uninstalls')), [`${manifest.package_id}.json`]);
    await assert.rejects(orchestrator.install(manifest.package_id), (error: unknown) => isIsogateError(error, 'E_BUSY') && /uninstall/.test(error.message));
    failing = false;
    await orchestrator.uninstall(manifest.package_id);
    assert.deepEqual(await fs.readdir(path.join(dir, 'uninstalls')), []);
    assert.equal(config.snapshot().APPLICATIONS.APPS_CONTROL.applications.length, 0);
    assert.equal(audit.events().at(-1), 'uninstallSucceeded');
  });

  it('keeps the real origin of an unfinished uninstall (a pushed app is "debug", not "store"), in memory and in its record across a restart', async () => {
    const pushed = sampleManifest({ package_id: 'com.example.pushed', name: 'Pushed' });
    const file = path.join(dir, 'pushed.igp');
    await fs.writeFile(file, await buildPackage(pushed, new Map([['app/main.js', Buffer.from(MAIN_JS)]])));
    const stored = await publish();
    const failing = { beforeUninstall: [async () => Promise.reject(new Error('disk on fire'))] };
    const orchestrator = await open({ ...failing, updateHooks: undefined });
    await orchestrator.push(file, 'dev-1');
    await orchestrator.install(stored.package_id);
    await assert.rejects(orchestrator.uninstall(pushed.package_id), (error: unknown) => isIsogateError(error, 'E_UNINSTALL'));
    await assert.rejects(orchestrator.uninstall(stored.package_id), (error: unknown) => isIsogateError(error, 'E_UNINSTALL'));
    const origins = (o: Orchestrator) => o.unfinishedUninstalls().map((app) => [app.packageId, app.origin]);
    const expected = [
      [stored.package_id, 'store'],
      [pushed.package_id, 'debug'],
    ].sort((a, b) => a[0]!.localeCompare(b[0]!));
    assert.deepEqual(
      origins(orchestrator).sort((a, b) => a[0]!.localeCompare(b[0]!)),
      expected,
    );
    const reopened = await open(failing);
    assert.deepEqual(
      origins(reopened).sort((a, b) => a[0]!.localeCompare(b[0]!)),
      expected,
      'read back from the sealed record',
    );
    const resumed = audit.records.filter((record) => record.event === 'uninstallError' && record.details?.resumed === true);
    assert.equal(resumed.length, 2);
    const finished = await open();
    assert.deepEqual(finished.unfinishedUninstalls(), []);
    assert.deepEqual(
      audit.records
        .filter((record) => record.event === 'uninstallSucceeded' && record.details?.resumed === true)
        .map((record) => [record.details?.packageId, record.details?.origin])
        .sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
      expected,
    );
  });

  it('finishes at open an uninstall whose record a crash left, before anything reads the app, and drops a forged record naming another app', async () => {
    const manifest = await publish();
    const other = await publish({ package_id: 'com.example.other', name: 'Other' });
    const first = await open();
    await first.install(manifest.package_id);
    await first.install(other.package_id);
    await config.update((doc) => {
      doc[manifest.package_id] = { threshold: 1 };
    });
    // A crash right after the commit point: the record is there, nothing is erased yet.
    const killed = await open({
      onUninstallStep: (step) => {
        if (step === 'recorded') throw new Error('crash');
      },
    });
    await assert.rejects(killed.uninstall(manifest.package_id));
    await fs.writeFile(
      path.join(dir, 'uninstalls', `${other.package_id}.json`),
      JSON.stringify({ removing: other.package_id, name: 'Other', startedAt: new Date().toISOString(), mac: '00'.repeat(32) }),
    );
    const wiped: string[] = [];
    const reopened = await open({ beforeUninstall: [async (id) => void wiped.push(id)] });
    assert.deepEqual(wiped, [manifest.package_id]);
    assert.equal(reopened.get(manifest.package_id), undefined);
    assert.ok(reopened.get(other.package_id), 'a forged record uninstalls nothing');
    assert.equal(await fs.stat(path.join(dir, 'apps', manifest.package_id)).catch(() => undefined), undefined);
    assert.equal(config.snapshot()[manifest.package_id], undefined);
    assert.deepEqual(await fs.readdir(path.join(dir, 'uninstalls')), []);
    assert.ok(audit.records.some((record) => record.event === 'integrityViolation' && /uninstall record/.test(record.text)));
    assert.ok(audit.records.some((record) => record.event === 'uninstallSucceeded' && record.details?.resumed === true));
  });

  describe('integrity before launch', () => {
    it('returns the verified contents of every file', async () => {
      const manifest = await publish();
      const orchestrator = await open();
      await orchestrator.install(manifest.package_id);
      const files = await orchestrator.verifyIntegrity(manifest.package_id);
      assert.equal(files.get('app/main.js')!.toString(), MAIN_JS);
    });

    it('fails when a file changed on disk after install', async () => {
      const manifest = await publish();
      const orchestrator = await open();
      const app = await orchestrator.install(manifest.package_id);
      await fs.appendFile(path.join(app.dir, 'app/main.js'), 'globalThis.evil = 1;');
      await assert.rejects(
        orchestrator.verifyIntegrity(manifest.package_id),
        (error: unknown) => isIsogateError(error, 'E_INTEGRITY') && /app\/main\.js modified/.test(error.message),
      );
    });

    it('fails when a file was added beside the installed ones', async () => {
      const manifest = await publish();
      const orchestrator = await open();
      const app = await orchestrator.install(manifest.package_id);
      await fs.writeFile(path.join(app.dir, 'app/extra.js'), '1');
      await assert.rejects(
        orchestrator.verifyIntegrity(manifest.package_id),
        (error: unknown) => isIsogateError(error, 'E_INTEGRITY') && /unexpected/.test(error.message),
      );
    });

    it('fails when the integrity record was edited to match a tampered file', async () => {
      const manifest = await publish();
      const orchestrator = await open();
      const app = await orchestrator.install(manifest.package_id);
      const recordFile = path.join(path.dirname(app.dir), 'record.json');
      const record = JSON.parse(await fs.readFile(recordFile, 'utf8'));
      record.digests['app/main.js'] = '0'.repeat(64);
      await fs.writeFile(recordFile, JSON.stringify(record));
      await assert.rejects(
        orchestrator.verifyIntegrity(manifest.package_id),
        (error: unknown) => isIsogateError(error, 'E_INTEGRITY') && /not authentic/.test(error.message),
      );
    });
  });

  describe('after a crash', () => {
    it('erases half-done work in staging and trash', async () => {
      await fs.mkdir(path.join(dir, 'staging', 'abc', 'package'), { recursive: true });
      await fs.writeFile(path.join(dir, 'staging', 'abc', 'package.igp'), 'partial');
      await fs.mkdir(path.join(dir, 'trash', 'old'), { recursive: true });
      await open();
      assert.deepEqual(await fs.readdir(path.join(dir, 'staging')), []);
      assert.deepEqual(await fs.readdir(path.join(dir, 'trash')), []);
    });

    it('finishes an install whose configuration entry was not yet written', async () => {
      const manifest = await publish();
      await (await open()).install(manifest.package_id);
      await config.update((doc) => {
        doc.APPLICATIONS.APPS_CONTROL.applications = [];
      });
      const reopened = await open();
      assert.ok(reopened.get(manifest.package_id));
      assert.deepEqual(
        config.snapshot().APPLICATIONS.APPS_CONTROL.applications.map((a) => a.package_id),
        [manifest.package_id],
      );
    });

    it('drops a configuration entry whose files are gone', async () => {
      const manifest = await publish();
      const app = await (await open()).install(manifest.package_id);
      await fs.rm(path.dirname(app.dir), { recursive: true });
      const reopened = await open();
      assert.equal(reopened.get(manifest.package_id), undefined);
      assert.deepEqual(config.snapshot().APPLICATIONS.APPS_CONTROL.applications, []);
    });

    it('quarantines in place an app directory whose record is not authentic (test/orchestrator/quarantine.test.ts has the rest)', async () => {
      const manifest = await publish();
      const app = await (await open()).install(manifest.package_id);
      const recordFile = path.join(path.dirname(app.dir), 'record.json');
      const record = JSON.parse(await fs.readFile(recordFile, 'utf8'));
      record.version = '9.9.9';
      await fs.writeFile(recordFile, JSON.stringify(record));
      const reopened = await open();
      assert.equal(reopened.list().length, 0);
      assert.deepEqual(
        reopened.quarantined().map((quarantined) => quarantined.packageId),
        [manifest.package_id],
      );
      assert.deepEqual(await fs.readdir(path.join(dir, 'apps')), [manifest.package_id]);
      assert.deepEqual(
        audit.events().filter((event) => event === 'integrityViolation'),
        ['integrityViolation'],
      );
    });
  });

  it('refuses options out of range', async () => {
    await assert.rejects(open({ maxApps: 21 }), (error: unknown) => isIsogateError(error, 'E_OPTION') && /maxApps/.test(error.message));
    await assert.rejects(open({ trustRootsPem: [] }), (error: unknown) => isIsogateError(error, 'E_OPTION') && /trustRootsPem/.test(error.message));
  });
});
