/**
 * Issue 11's package id takeover, end to end: a gateway against a store, the plant's app wired
 * to a sensor app, a routine uninstall, then a second publisher of the same store root listing
 * a higher version of the same id whose manifest says "Acme Corp". The install is refused
 * with E_SIGNER_MISMATCH, nothing is installed, the routes are as they were; after
 * `apps forget` the admin may install it.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { invokeOperation } from '../../platform/api/operations.js';
import { type Gateway, startGateway } from '../../platform/main.js';
import { isIsogateError } from '../../sdk/errors.js';
import type { AppManifest } from '../../sdk/manifest.js';
import { buildPackage, signPackage } from '../../sdk/package/index.js';
import { type ServingStore, serveStore } from '../../store-mock/server.js';
import { sampleManifest } from '../fixtures/packages.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

const PLANT = 'com.acme.plant';
const SENSORS = 'com.acme.sensors';
const NO_PROGRESS = { progress: () => undefined };

describe('package id takeover through the store', function () {
  this.timeout(120_000);
  let dir: string;
  let serving: ServingStore;
  let gateway: Gateway | undefined;

  before(async () => {
    dir = await makeTempDir();
    serving = await serveStore({ dir: path.join(dir, 'store') });
  });
  after(async () => {
    await gateway?.close();
    await serving.close();
    await removeDir(dir);
  });

  async function publishAs(publisherDir: string, manifest: AppManifest): Promise<void> {
    const signer = {
      keyPem: await fs.readFile(path.join(publisherDir, 'publisher.key.pem'), 'utf8'),
      certPem: await fs.readFile(path.join(publisherDir, 'publisher.cert.pem'), 'utf8'),
    };
    const unsigned = await buildPackage(manifest, new Map([['app/main.js', Buffer.from('import { on } from "isogate:sdk";\n')]]));
    await serving.store.publish(await signPackage(unsigned, signer));
  }

  it('refuses the impostor with E_SIGNER_MISMATCH, installs nothing, leaves the routes; apps forget then allows it', async () => {
    const acme = path.join(dir, 'acme');
    const mallory = path.join(dir, 'mallory');
    await serving.store.issuePublisher('Acme Corp', acme);
    await serving.store.issuePublisher('Mallory Ltd', mallory);
    const endpoint = (direction: 'source' | 'destination') => [{ name: 'readings', direction, dataType: 'reading', format: 'json' as const }];
    await publishAs(acme, sampleManifest({ package_id: SENSORS, name: 'Sensors', publisher: 'Acme Corp', endpoints: endpoint('source') }));
    await publishAs(acme, sampleManifest({ package_id: PLANT, name: 'Plant', publisher: 'Acme Corp', version: '1.0.0', endpoints: endpoint('destination') }));
    const trust = path.join(dir, 'store-root.pem');
    await fs.writeFile(trust, serving.store.rootCertPem);

    gateway = await startGateway({ dataDir: path.join(dir, 'data'), storeUrl: serving.url, trustRootFile: trust });
    const services = gateway.services;
    const call = (op: string, params: Record<string, unknown>) => invokeOperation(services, op, params, NO_PROGRESS);
    await call('apps.install', { id: SENSORS });
    await call('apps.install', { id: PLANT });
    await call('routes.add', { source: `${SENSORS}:readings`, destination: `${PLANT}:readings` });
    await call('apps.uninstall', { id: PLANT });

    await publishAs(
      mallory,
      sampleManifest({ package_id: PLANT, name: 'Plant', publisher: 'Acme Corp', version: '2.0.0', endpoints: endpoint('destination') }),
    );
    const routes = services.router.list();
    const config = await fs.readFile(path.join(dir, 'data', 'config.json'), 'utf8');
    await assert.rejects(call('apps.install', { id: PLANT }), (error: unknown) => {
      assert.ok(isIsogateError(error, 'E_SIGNER_MISMATCH'), String(error));
      assert.match(error.message, /CN=Acme Corp, O=Acme Corp/);
      assert.match(error.message, /CN=Mallory Ltd, O=Mallory Ltd/);
      return true;
    });
    assert.deepEqual(
      services.installedApps().map((app) => app.package_id),
      [SENSORS],
    );
    assert.deepEqual(services.router.list(), routes, 'the routes are as they were');
    assert.equal(await fs.readFile(path.join(dir, 'data', 'config.json'), 'utf8'), config);
    await assert.rejects(fs.stat(path.join(dir, 'data', 'apps', PLANT)), { code: 'ENOENT' });

    await call('apps.forget', { id: PLANT });
    await call('apps.install', { id: PLANT });
    const plant = services.installedApps().find((app) => app.package_id === PLANT)!;
    assert.equal(plant.version, '2.0.0');
    assert.equal(plant.publisher, 'CN=Mallory Ltd, O=Mallory Ltd', 'ISSUER is the verified signer');
    assert.equal(plant.publisher_claim, 'Acme Corp');
  });
});
