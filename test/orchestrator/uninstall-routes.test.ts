/**
 * The routes of an uninstalled app, decided by the manual ("The routes configured ... and
 * associated with the removed application stop working (their status changes to Error). It is
 * recommended to reconfigure the routes"): kept, in Error, naming the missing app, across a
 * restart; the uninstall's record names them; the admin deletes or edits them as any route.
 */
import { strict as assert } from 'node:assert';
import type { EndpointDeclaration } from '../../sdk/manifest.js';
import { sampleManifest } from '../fixtures/packages.js';
import { useStoreGateway } from '../fixtures/store-gateway.js';

const SENSORS = 'com.acme.sensors';
const PLANT = 'com.acme.plant';
const OTHER = 'com.acme.other';
const reading = (direction: 'source' | 'destination'): EndpointDeclaration[] => [{ name: 'readings', direction, dataType: 'reading', format: 'json' }];

describe('routes of an uninstalled app', function () {
  this.timeout(120_000);
  const env = useStoreGateway();

  before(async () => {
    const signer = await env.issuePublisher('Acme Corp', 'acme');
    await env.publish(sampleManifest({ package_id: SENSORS, name: 'Sensors', publisher: 'Acme Corp', endpoints: reading('source') }), signer);
    await env.publish(sampleManifest({ package_id: PLANT, name: 'Plant', publisher: 'Acme Corp', endpoints: reading('destination') }), signer);
    await env.publish(sampleManifest({ package_id: OTHER, name: 'Other', publisher: 'Acme Corp', endpoints: reading('destination') }), signer);
  });

  it('stay, in Error naming the removed app, after the uninstall and a restart; the record names them; they are deleted as any route', async () => {
    let gateway = await env.start();
    const { orchestrator, router } = gateway.services;
    for (const id of [SENSORS, PLANT, OTHER]) await orchestrator.install(id);
    const toPlant = await router.add({ application_id: SENSORS, endpoint: 'readings' }, { application_id: PLANT, endpoint: 'readings' });
    const toOther = await router.add({ application_id: SENSORS, endpoint: 'readings' }, { application_id: OTHER, endpoint: 'readings' });
    assert.equal(router.get(toPlant.id).status, 'Active');

    await orchestrator.uninstall(PLANT);
    const dangling = router.get(toPlant.id);
    assert.equal(dangling.status, 'Error');
    assert.equal(dangling.problem, `${PLANT} is not installed`);
    assert.equal(router.get(toOther.id).status, 'Active', 'a route between the apps that stay is untouched');
    const record = gateway.services.audit.list().find((candidate) => candidate.event === 'uninstallSucceeded' && candidate.details?.packageId === PLANT);
    assert.deepEqual(record?.details?.routesInError, [toPlant.id]);
    await gateway.close();

    gateway = await env.start();
    assert.deepEqual(
      gateway.services.router
        .list()
        .map((route) => [route.id, route.status, route.problem])
        .sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
      [
        [toPlant.id, 'Error', `${PLANT} is not installed`],
        [toOther.id, 'Active', undefined],
      ].sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
    );
    await gateway.services.router.remove(toPlant.id);
    assert.deepEqual(
      gateway.services.router.list().map((route) => route.id),
      [toOther.id],
    );
    await gateway.close();
  });
});
