/**
 * Installs of packages with hostile schemas (issue 11, finding 5): a pattern RE2 cannot run is
 * refused at install with nothing installed; the finding's configuration defaults are refused at
 * once without holding the verification workers; a verification that is stuck all the same is
 * ended by its timeout, and the next install goes through.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { MemoryAuditLog } from '../../platform/audit/index.js';
import { ConfigStore } from '../../platform/config/index.js';
import { memoryDeviceKeys } from '../../platform/device/index.js';
import { Orchestrator, WorkerPackageVerifier } from '../../platform/orchestrator/index.js';
import type { AppManifest } from '../../sdk/manifest.js';
import { refusedWith } from '../fixtures/errors.js';
import { buildSignedPackage, sampleManifest, signedWithRawManifest } from '../fixtures/packages.js';
import { createTestPki, type TestPki } from '../fixtures/pki.js';
import { makeTempDir, removeDir, snapshotTree } from '../fixtures/temp.js';
import { MemoryStoreClient } from './memory-store.js';

describe('orchestrator: hostile schemas', function () {
  this.timeout(60_000);
  let pki: TestPki;
  let dir: string;
  let store: MemoryStoreClient;
  let audit: MemoryAuditLog;
  let config: ConfigStore;
  const keys = memoryDeviceKeys();
  const verifiers: WorkerPackageVerifier[] = [];

  before(async () => {
    pki = await createTestPki();
  });
  after(async () => {
    for (const verifier of verifiers) await verifier.close();
  });
  beforeEach(async () => {
    dir = await makeTempDir();
    store = new MemoryStoreClient();
    audit = new MemoryAuditLog();
    config = await ConfigStore.open(path.join(dir, 'config.json'), 'test');
  });
  afterEach(() => removeDir(dir));

  function newVerifier(options: ConstructorParameters<typeof WorkerPackageVerifier>[0] = {}): WorkerPackageVerifier {
    const verifier = new WorkerPackageVerifier(options);
    verifiers.push(verifier);
    return verifier;
  }

  async function open(verifier: WorkerPackageVerifier): Promise<Orchestrator> {
    return Orchestrator.open({ dataDir: dir, store, config, audit, keys, verifier, trustRootsPem: [pki.root.certPem] });
  }

  async function publishRaw(manifest: AppManifest): Promise<void> {
    store.list(await signedWithRawManifest(pki, manifest), { package_id: manifest.package_id, version: manifest.version, name: manifest.name });
  }

  async function publishGood(packageId: string): Promise<void> {
    const manifest = sampleManifest({
      package_id: packageId,
      configuration: { schema: { type: 'object', properties: { s: { type: 'string', pattern: '^a+$' } } }, defaults: { s: 'aaa' } },
    });
    store.list(await buildSignedPackage({ manifest, signer: pki.publisher }), { package_id: packageId, version: manifest.version, name: manifest.name });
  }

  async function diskAndConfig(): Promise<unknown> {
    return {
      apps: [...(await snapshotTree(path.join(dir, 'apps'))).keys()],
      staging: [...(await snapshotTree(path.join(dir, 'staging'))).keys()],
      config: await fs.readFile(path.join(dir, 'config.json'), 'utf8'),
    };
  }

  it('refuses a lookahead pattern in an endpoint schema at install with E_SCHEMA_PATTERN, naming its place, and installs nothing', async () => {
    await publishRaw(
      sampleManifest({
        package_id: 'com.example.hostile',
        endpoints: [
          {
            name: 'out',
            direction: 'source',
            dataType: 'x',
            format: 'json',
            schema: { type: 'object', properties: { user: { type: 'string', pattern: '^(?!root$).+$' } } },
          },
        ],
      }),
    );
    const orchestrator = await open(newVerifier());
    const before = await diskAndConfig();
    await assert.rejects(orchestrator.install('com.example.hostile'), refusedWith('E_SCHEMA_PATTERN', /\/endpoints\/0\/schema\/properties\/user\/pattern/));
    assert.deepEqual(await diskAndConfig(), before);
    assert.equal(orchestrator.list().length, 0);
  });

  it("refuses the finding's configuration defaults on ^(a+)+$ with E_MANIFEST in both workers at once, and a good install follows", async () => {
    // Two at once, as the attack pinned both workers; 34 "a"s would take a backtracking engine hours.
    for (const id of ['com.example.hostile-one', 'com.example.hostile-two']) {
      await publishRaw(
        sampleManifest({
          package_id: id,
          configuration: {
            schema: { type: 'object', properties: { s: { type: 'string', pattern: '^(a+)+$' } } },
            defaults: { s: `${'a'.repeat(34)}!` },
          },
        }),
      );
    }
    await publishGood('com.example.good');
    const orchestrator = await open(newVerifier());
    const before = await diskAndConfig();
    const outcomes = await Promise.allSettled([orchestrator.install('com.example.hostile-one'), orchestrator.install('com.example.hostile-two')]);
    for (const outcome of outcomes) {
      assert.equal(outcome.status, 'rejected');
      refusedWith('E_MANIFEST', /\/configuration\/defaults is not valid: \/s must match pattern/)((outcome as PromiseRejectedResult).reason);
    }
    assert.deepEqual(await diskAndConfig(), before);
    const app = await orchestrator.install('com.example.good');
    assert.equal(app.packageId, 'com.example.good');
  });

  it('ends verifications that outlast the timeout with E_VERIFY_TIMEOUT, both workers at once, and the next install goes through', async () => {
    const verifier = newVerifier({ timeoutMs: 5000, workerUrl: new URL('../fixtures/stuck-verify-worker.ts', import.meta.url).href });
    const stuck = (name: string) =>
      verifier.verify({
        file: path.join(dir, name),
        extractTo: path.join(dir, `${name}-out`),
        trustRootsPem: [pki.root.certPem],
        allowUnsigned: false,
        now: Date.now(),
      });
    const outcomes = await Promise.allSettled([stuck('one.stuck'), stuck('two.stuck')]);
    for (const outcome of outcomes) {
      assert.equal(outcome.status, 'rejected');
      refusedWith('E_VERIFY_TIMEOUT', /was not installed/)((outcome as PromiseRejectedResult).reason);
    }
    await publishGood('com.example.after');
    const orchestrator = await open(verifier);
    const app = await orchestrator.install('com.example.after');
    assert.equal(app.packageId, 'com.example.after');
  });
});
