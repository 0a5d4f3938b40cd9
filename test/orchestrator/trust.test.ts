/**
 * Who signed what: package ids bound to their first signer (id takeover), publisher
 * certificate rotation, bindings seeded from records written before bindings existed, and
 * reserved capabilities decided by origin.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { MemoryAuditLog } from '../../platform/audit/index.js';
import { ConfigStore } from '../../platform/config/index.js';
import { memoryDeviceKeys } from '../../platform/device/index.js';
import { type IntegrityRecord, sealRecord } from '../../platform/integrity/index.js';
import { Orchestrator, WorkerPackageVerifier } from '../../platform/orchestrator/index.js';
import { SIGNER_BINDINGS_FILE } from '../../platform/orchestrator/signer-bindings.js';
import { grantsFor } from '../../platform/sandbox/capabilities.js';
import { createAppSandbox } from '../../platform/sandbox/index.js';
import { isIsogateError } from '../../sdk/errors.js';
import type { AppManifest } from '../../sdk/manifest.js';
import { buildSignedPackage, sampleManifest } from '../fixtures/packages.js';
import { createTestPki, type TestIdentity, type TestPki } from '../fixtures/pki.js';
import { makeTempDir, removeDir, snapshotTree } from '../fixtures/temp.js';
import { createOpensslChains, type OpensslChains } from '../fixtures/x509-chains.js';
import { MemoryStoreClient } from './memory-store.js';

const PLANT_APP = 'com.acme.plant';
const MAIN_JS = 'import { log } from "isogate:sdk";\nlog.info("hello");\n';

describe('orchestrator trust: who signed what', function () {
  this.timeout(60_000);
  let pki: TestPki;
  let chains: OpensslChains;
  let dir: string;
  let store: MemoryStoreClient;
  let audit: MemoryAuditLog;
  let config: ConfigStore;
  const keys = memoryDeviceKeys();
  const verifier = new WorkerPackageVerifier();

  before(async () => {
    pki = await createTestPki();
    chains = createOpensslChains(pki);
  });
  after(() => verifier.close());

  beforeEach(async () => {
    dir = await makeTempDir();
    store = new MemoryStoreClient();
    audit = new MemoryAuditLog();
    config = await ConfigStore.open(path.join(dir, 'config.json'), 'test');
  });
  afterEach(() => removeDir(dir));

  function open(extra: Partial<Parameters<typeof Orchestrator.open>[0]> = {}): Promise<Orchestrator> {
    return Orchestrator.open({
      dataDir: dir,
      store,
      config,
      audit,
      keys,
      verifier,
      trustRootsPem: [pki.root.certPem],
      platformTrustRootsPem: [pki.platformRoot.certPem],
      ...extra,
    });
  }

  async function publish(signer: TestIdentity, overrides: Partial<AppManifest>): Promise<AppManifest> {
    const manifest = sampleManifest({ package_id: PLANT_APP, name: 'Plant', publisher: 'Acme Corp', ...overrides });
    store.list(await buildSignedPackage({ manifest, signer, files: { 'app/main.js': MAIN_JS } }), {
      package_id: manifest.package_id,
      version: manifest.version,
      name: manifest.name,
    });
    return manifest;
  }

  /** Everything an install could change: app files, staging, configuration (routes too), bindings. */
  async function state(): Promise<unknown> {
    return {
      apps: [...(await snapshotTree(path.join(dir, 'apps'))).entries()],
      staging: await fs.readdir(path.join(dir, 'staging')),
      config: await fs.readFile(path.join(dir, 'config.json'), 'utf8'),
      bindings: await fs.readFile(path.join(dir, SIGNER_BINDINGS_FILE), 'utf8').catch(() => null),
    };
  }

  async function routePlantToUplink(): Promise<void> {
    await config.update((doc) => {
      doc.APPLICATIONS.APPS_ROUTING.routes.push({
        id: 'r1',
        active: true,
        source: { application_id: 'com.acme.sensors', endpoint: 'readings' },
        destination: { application_id: PLANT_APP, endpoint: 'readings' },
      } as never);
    });
  }

  describe('package id takeover', () => {
    it('refuses a second publisher of the same root for an uninstalled id (E_SIGNER_MISMATCH), changing nothing, until the admin forgets the binding', async () => {
      await publish(pki.publisher, { version: '1.0.0' });
      const orchestrator = await open();
      const first = await orchestrator.install(PLANT_APP);
      await routePlantToUplink();
      await orchestrator.uninstall(PLANT_APP);
      const uninstalled = audit.records.at(-1)!;
      assert.equal(uninstalled.event, 'uninstallSucceeded');
      assert.deepEqual(uninstalled.details!.signer, {
        subject: first.record.signer!.subject,
        issuer: first.record.signer!.issuer,
        spkiSha256: first.record.signer!.spkiSha256,
      });

      // The attacker: a valid certificate from the same store root, a higher version, the victim's publisher text.
      await publish(chains.secondPublisher, { version: '2.0.0' });
      const before = await state();
      await assert.rejects(orchestrator.install(PLANT_APP), (error: unknown) => {
        assert.ok(isIsogateError(error, 'E_SIGNER_MISMATCH'), String(error));
        assert.match(error.message, /CN=Example Publisher/);
        assert.match(error.message, /CN=Second Publisher/);
        assert.match(error.message, /isogate apps forget com\.acme\.plant/);
        return true;
      });
      assert.deepEqual(await state(), before, 'nothing installed, routes and bindings as they were');
      assert.equal(orchestrator.get(PLANT_APP), undefined);
      const refused = audit.records.at(-1)!;
      assert.equal(refused.event, 'signatureError');
      assert.equal(refused.severity, 'Critical');
      assert.equal(refused.details!.code, 'E_SIGNER_MISMATCH');
      assert.equal(orchestrator.signerBinding(PLANT_APP)!.spkiSha256, first.record.signer!.spkiSha256);

      // The binding holds across a restart too.
      const reopened = await open();
      await assert.rejects(reopened.install(PLANT_APP), (error: unknown) => isIsogateError(error, 'E_SIGNER_MISMATCH'));

      const forgotten = await reopened.forgetSigner(PLANT_APP);
      assert.match(forgotten.subject, /CN=Example Publisher/);
      const forgetRecord = audit.records.at(-1)!;
      assert.equal(forgetRecord.name, 'admin: Forgetting the application publisher');
      assert.equal(forgetRecord.subject, 'Administrator');
      const taken = await reopened.install(PLANT_APP);
      assert.equal(taken.version, '2.0.0');
      assert.match(taken.record.signer!.subject, /CN=Second Publisher/);
      assert.match(reopened.signerBinding(PLANT_APP)!.subject, /CN=Second Publisher/);
      const installedRecord = audit.records.at(-1)!;
      assert.equal(installedRecord.event, 'installSucceeded');
      assert.match(JSON.stringify(installedRecord.details!.signer), /CN=Second Publisher/);
      assert.doesNotMatch(JSON.stringify(installedRecord.details), /Acme Corp/, 'audit shows the verified signer, not the manifest text');
    });

    it('refuses to forget the signer of an installed app, and an id nothing is bound to', async () => {
      await publish(pki.publisher, { version: '1.0.0' });
      const orchestrator = await open();
      await orchestrator.install(PLANT_APP);
      const before = await state();
      await assert.rejects(orchestrator.forgetSigner(PLANT_APP), (error: unknown) => isIsogateError(error, 'E_CONFLICT'));
      await assert.rejects(orchestrator.forgetSigner('com.example.never'), (error: unknown) => isIsogateError(error, 'E_NOT_FOUND'));
      assert.deepEqual(await state(), before);
    });

    it('refuses an unsigned push (developer mode) to a bound id', async () => {
      await publish(pki.publisher, { version: '1.0.0' });
      const orchestrator = await open();
      await orchestrator.install(PLANT_APP);
      await orchestrator.uninstall(PLANT_APP);
      const { buildPackage } = await import('../../sdk/package/index.js');
      const manifest = sampleManifest({ package_id: PLANT_APP, version: '2.0.0' });
      const pushed = path.join(await makeTempDir(), 'pushed.igp');
      await fs.writeFile(pushed, await buildPackage(manifest, new Map([['app/main.js', Buffer.from(MAIN_JS)]])));
      const before = await state();
      await assert.rejects(orchestrator.push(pushed, 'alice'), (error: unknown) => isIsogateError(error, 'E_SIGNER_MISMATCH'));
      assert.deepEqual(await state(), before);
      await removeDir(path.dirname(pushed));
    });
  });

  describe('publisher certificate rotation', () => {
    it('continues the binding for a renewed certificate: same subject, same issuing CA, new key and serial', async () => {
      await publish(chains.ecPublisher, { version: '1.0.0' });
      await publish(chains.ecPublisherRenewed, { version: '1.1.0' });
      const orchestrator = await open();
      const first = await orchestrator.install(PLANT_APP, { version: '1.0.0' });
      await orchestrator.uninstall(PLANT_APP);
      const renewed = await orchestrator.install(PLANT_APP, { version: '1.1.0' });
      assert.notEqual(renewed.record.signer!.spkiSha256, first.record.signer!.spkiSha256, 'a new key');
      assert.notEqual(renewed.record.signer!.serialNumber, first.record.signer!.serialNumber, 'a new serial');
      const binding = orchestrator.signerBinding(PLANT_APP)!;
      assert.equal(binding.spkiSha256, renewed.record.signer!.spkiSha256);
      assert.equal(binding.issuerSpkiSha256, first.record.signer!.issuerSpkiSha256);
      assert.ok(binding.renewedAt);
    });

    it('does not continue it for the same subject from another issuing CA', async () => {
      await publish(pki.publisher, { version: '1.0.0' });
      await publish(pki.publisherSubjectOtherCa, { version: '1.1.0' });
      const orchestrator = await open();
      const first = await orchestrator.install(PLANT_APP, { version: '1.0.0' });
      await orchestrator.uninstall(PLANT_APP);
      const before = await state();
      await assert.rejects(
        orchestrator.install(PLANT_APP, { version: '1.1.0' }),
        (error: unknown) => isIsogateError(error, 'E_SIGNER_MISMATCH') && /isogate test intermediate/.test(error.message),
      );
      assert.deepEqual(await state(), before);
      assert.equal(orchestrator.signerBinding(PLANT_APP)!.fingerprint256, first.record.signer!.fingerprint256);
    });
  });

  describe('data directories written before bindings existed', () => {
    /** Rewrites an installed app's record as 0.1.0 wrote it (no keys, no origin) and removes the bindings. */
    async function makeOld(): Promise<void> {
      const recordFile = path.join(dir, 'apps', PLANT_APP, 'record.json');
      const { mac: _mac, origin: _origin, ...record } = JSON.parse(await fs.readFile(recordFile, 'utf8')) as IntegrityRecord;
      const { spkiSha256: _key, issuerSpkiSha256: _issuerKey, ...signer } = record.signer!;
      await fs.writeFile(recordFile, JSON.stringify(sealRecord({ ...record, signer }, keys)));
      await fs.rm(path.join(dir, SIGNER_BINDINGS_FILE));
    }

    it('seeds the bindings from the install records on opening, so an old directory keeps its protection', async () => {
      await publish(pki.publisher, { version: '1.0.0' });
      const first = await (await open()).install(PLANT_APP);
      await makeOld();

      const reopened = await open();
      const seeded = reopened.signerBinding(PLANT_APP)!;
      assert.equal(seeded.subject, first.record.signer!.subject);
      assert.equal(seeded.spkiSha256, first.record.signer!.spkiSha256, 'the key is read from the installed, digest-checked CHAIN.pem');
      assert.equal(seeded.issuerSpkiSha256, first.record.signer!.issuerSpkiSha256, 'the issuing CA is found among the trusted roots');
      const written = JSON.parse(await fs.readFile(path.join(dir, SIGNER_BINDINGS_FILE), 'utf8'));
      assert.deepEqual(Object.keys(written.bindings), [PLANT_APP]);
      assert.equal((await fs.stat(path.join(dir, SIGNER_BINDINGS_FILE))).mode & 0o077, 0);

      await reopened.uninstall(PLANT_APP);
      await publish(chains.secondPublisher, { version: '2.0.0' });
      await assert.rejects(reopened.install(PLANT_APP), (error: unknown) => isIsogateError(error, 'E_SIGNER_MISMATCH'));
    });

    it('refuses to open with a bindings file that was edited (E_INTEGRITY)', async () => {
      await publish(pki.publisher, { version: '1.0.0' });
      const orchestrator = await open();
      await orchestrator.install(PLANT_APP);
      await orchestrator.uninstall(PLANT_APP);
      const file = path.join(dir, SIGNER_BINDINGS_FILE);
      const edited = JSON.parse(await fs.readFile(file, 'utf8'));
      edited.bindings[PLANT_APP].subject = 'CN=Second Publisher, O=isogate tests';
      await fs.writeFile(file, JSON.stringify(edited));
      await assert.rejects(open(), (error: unknown) => isIsogateError(error, 'E_INTEGRITY') && /signer-bindings\.json/.test(error.message));
    });
  });

  describe('reserved capabilities', () => {
    const networkProtector = (overrides: Partial<AppManifest> = {}): AppManifest =>
      sampleManifest({
        package_id: 'com.othervendor.np',
        name: 'Network Protector',
        publisher: 'isogate',
        type: 'security',
        capabilities: ['traffic.inspect'],
        version: '1.0.0',
        ...overrides,
      });

    it('refuses a store package claiming traffic.inspect (E_RESERVED_CAPABILITY), whatever it calls itself, changing nothing', async () => {
      const manifest = networkProtector();
      store.list(await buildSignedPackage({ manifest, signer: pki.publisher, files: { 'app/main.js': MAIN_JS } }), {
        package_id: manifest.package_id,
        version: manifest.version,
        name: manifest.name,
      });
      const orchestrator = await open();
      const before = await state();
      await assert.rejects(
        orchestrator.install(manifest.package_id),
        (error: unknown) => isIsogateError(error, 'E_RESERVED_CAPABILITY') && /traffic\.inspect/.test(error.message),
      );
      assert.deepEqual(await state(), before);
      assert.equal(orchestrator.list().length, 0);
      assert.equal(audit.records.at(-1)!.details!.code, 'E_RESERVED_CAPABILITY');
    });

    it('refuses a store package signed by the platform signer: the store trusts only its own roots', async () => {
      const manifest = sampleManifest({ package_id: 'com.example.plain' });
      store.list(await buildSignedPackage({ manifest, signer: pki.platformSigner, files: { 'app/main.js': MAIN_JS } }), {
        package_id: manifest.package_id,
        version: manifest.version,
      });
      const orchestrator = await open();
      await assert.rejects(orchestrator.install(manifest.package_id), (error: unknown) => isIsogateError(error, 'E_CERTIFICATE'));
    });

    it('installs an image package signed by the platform root with origin image, and refuses one signed by a store publisher', async () => {
      const image = path.join(dir, 'image');
      await fs.mkdir(image);
      const own = path.join(image, 'np.igp');
      await fs.writeFile(
        own,
        await buildSignedPackage({
          manifest: networkProtector({ package_id: 'dev.isogate.network-protector' }),
          signer: pki.platformSigner,
          files: { 'app/main.js': MAIN_JS },
        }),
      );
      const forged = path.join(image, 'forged.igp');
      await fs.writeFile(forged, await buildSignedPackage({ manifest: networkProtector(), signer: pki.publisher, files: { 'app/main.js': MAIN_JS } }));
      const orchestrator = await open();

      const before = await state();
      await assert.rejects(
        orchestrator.installFromImage(forged),
        (error: unknown) => isIsogateError(error, 'E_CERTIFICATE') && error.details.reason === 'untrusted-root',
      );
      assert.deepEqual(await state(), before);

      const app = await orchestrator.installFromImage(own);
      assert.equal(app.record.origin, 'image');
      assert.deepEqual([...grantsFor(app.manifest, app.record.origin).capabilities], ['traffic.inspect']);
      const reopened = await open();
      assert.equal(reopened.get('dev.isogate.network-protector')!.record.origin, 'image', 'the origin is in the MAC-sealed record');
    });

    it('never grants a reserved capability to an app whose origin is not image (sandbox side)', async () => {
      const manifest = networkProtector();
      // The grants that build its host refuse it outright, rather than run it with less than it claims.
      assert.throws(
        () => grantsFor(manifest, 'store'),
        (error: unknown) => isIsogateError(error, 'E_RESERVED_CAPABILITY'),
      );
      assert.throws(
        () => grantsFor(manifest),
        (error: unknown) => isIsogateError(error, 'E_RESERVED_CAPABILITY'),
      );
      await assert.rejects(createAppSandbox({ manifest, files: new Map([['app/main.js', MAIN_JS]]), host: {} as never, origin: 'store' }), (error: unknown) =>
        isIsogateError(error, 'E_RESERVED_CAPABILITY'),
      );
      await assert.rejects(createAppSandbox({ manifest, files: new Map([['app/main.js', MAIN_JS]]), host: {} as never }), (error: unknown) =>
        isIsogateError(error, 'E_RESERVED_CAPABILITY'),
      );
    });

    it('refuses platform roots that repeat a store root', async () => {
      await assert.rejects(open({ platformTrustRootsPem: [pki.root.certPem] }), (error: unknown) => isIsogateError(error, 'E_OPTION'));
    });
  });
});
