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
import { isIsogateError } from '../../sdk/errors.js';
import type { AppManifest } from '../../sdk/manifest.js';
import type { Signer } from '../../sdk/package/index.js';
import { sampleManifest } from '../fixtures/packages.js';
import { useStoreGateway } from '../fixtures/store-gateway.js';

const PLANT = 'com.acme.plant';
const SENSORS = 'com.acme.sensors';
const NO_PROGRESS = { progress: () => undefined };

describe('package id takeover through the store', function () {
  this.timeout(120_000);
  const rig = useStoreGateway();

  const publishAs = (signer: Signer, manifest: AppManifest): Promise<void> => rig.publish(manifest, signer, 'import { on } from "isogate:sdk";\n');

  it('refuses the impostor with E_SIGNER_MISMATCH, installs nothing, leaves the routes; apps forget then allows it', async () => {
    const { dir } = rig;
    const acme = await rig.issuePublisher('Acme Corp', 'acme');
    const mallory = await rig.issuePublisher('Mallory Ltd', 'mallory');
    const endpoint = (direction: 'source' | 'destination') => [{ name: 'readings', direction, dataType: 'reading', format: 'json' as const }];
    await publishAs(acme, sampleManifest({ package_id: SENSORS, name: 'Sensors', publisher: 'Acme Corp', endpoints: endpoint('source') }));
    await publishAs(acme, sampleManifest({ package_id: PLANT, name: 'Plant', publisher: 'Acme Corp', version: '1.0.0', endpoints: endpoint('destination') }));

    const gateway = await rig.start();
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
