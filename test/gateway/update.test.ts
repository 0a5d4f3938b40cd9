/**
 * `apps.update` end to end: a gateway against a store publishing several versions of one app,
 * signed by the same publisher. The update keeps what the app stored, its certificates, the
 * configuration keys still valid and its routes (one whose endpoint the new version dropped is
 * kept in Error); a new version that cannot start, or fails within the watch window, is rolled
 * back with the previous version running again and its storage intact.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { invokeOperation } from '../../platform/api/operations.js';
import { type Gateway, startGateway } from '../../platform/main.js';
import { isIsogateError } from '../../sdk/errors.js';
import type { AppManifest, EndpointDeclaration } from '../../sdk/manifest.js';
import { buildPackage, signPackage } from '../../sdk/package/index.js';
import { type ServingStore, serveStore } from '../../store-mock/server.js';
import { sampleManifest } from '../fixtures/packages.js';
import { createTestPki } from '../fixtures/pki.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { waitFor, waitForAsync } from '../fixtures/wait.js';

const SENSORS = 'com.acme.sensors';
const PLANT = 'com.acme.plant';
const NO_PROGRESS = { progress: () => undefined };

const reading = (name: string, direction: 'source' | 'destination'): EndpointDeclaration => ({ name, direction, dataType: 'reading', format: 'json' });
const CONFIGURATION = (modes: string[]) => ({
  schema: { type: 'object', additionalProperties: false, properties: { site: { type: 'string' }, mode: { enum: modes } } },
  defaults: { site: 'nowhere', mode: modes[0]! },
});

// Every version logs what it finds in storage and configuration, so the test can see what it was given.
const plantSource = (version: string, extra = ''): string => `
import { log, on, storage, config } from 'isogate:sdk';
const first = await storage.get('first-version');
if (first === undefined) await storage.put('first-version', '${version}');
log.info('plant ${version} started; stored first-version=' + (first ?? 'none') + ' site=' + config.get().site + ' mode=' + config.get().mode);
let seen = false;
on('readings', (message) => {
  if (!seen) log.info('plant ${version} got reading ' + JSON.stringify(message));
  seen = true;
});
${extra}
`;

describe('apps.update through the store', function () {
  this.timeout(180_000);
  let dir: string;
  let serving: ServingStore;
  let gateway: Gateway | undefined;
  let acme: string;

  before(async () => {
    dir = await makeTempDir();
    serving = await serveStore({ dir: path.join(dir, 'store') });
    acme = path.join(dir, 'acme');
    await serving.store.issuePublisher('Acme Corp', acme);
  });
  after(async () => {
    await gateway?.close();
    await serving.close();
    await removeDir(dir);
  });

  async function publish(manifest: AppManifest, main: string): Promise<void> {
    const signer = {
      keyPem: await fs.readFile(path.join(acme, 'publisher.key.pem'), 'utf8'),
      certPem: await fs.readFile(path.join(acme, 'publisher.cert.pem'), 'utf8'),
    };
    const unsigned = await buildPackage(manifest, new Map([['app/main.js', Buffer.from(main)]]));
    await serving.store.publish(await signPackage(unsigned, signer));
  }

  const plant = (version: string, endpoints: EndpointDeclaration[], modes: string[]): AppManifest =>
    sampleManifest({ package_id: PLANT, name: 'Plant', publisher: 'Acme Corp', version, endpoints, configuration: CONFIGURATION(modes) });

  /** The plant's log lines, from every file of its log (app.log and its rotations). */
  async function plantLog(): Promise<string> {
    const logDir = path.join(gateway!.dataDir, 'logs', PLANT);
    const files = (await fs.readdir(logDir).catch(() => [] as string[])).filter((name) => /^app(\.\d+)?\.log$/.test(name));
    return (await Promise.all(files.map((name) => fs.readFile(path.join(logDir, name), 'utf8').catch(() => '')))).join('');
  }

  it('keeps storage, certificates, valid configuration keys and routes; rolls back a version that does not start or fails soon after', async () => {
    await publish(
      sampleManifest({ package_id: SENSORS, name: 'Sensors', publisher: 'Acme Corp', endpoints: [reading('readings', 'source')] }),
      `
import { emit } from 'isogate:sdk';
let n = 0;
setInterval(() => { n += 1; emit('readings', { n }).catch(() => undefined); }, 50);
`,
    );
    await publish(plant('1.0.0', [reading('readings', 'destination'), reading('legacy', 'destination')], ['fast', 'slow']), plantSource('1.0.0'));
    // 2.0.0 drops the "legacy" endpoint and the "slow" mode.
    await publish(plant('2.0.0', [reading('readings', 'destination')], ['fast', 'eco']), plantSource('2.0.0'));
    await publish(plant('3.0.0', [reading('readings', 'destination')], ['fast', 'eco']), `import 'node:fs';\n${plantSource('3.0.0')}`);
    await publish(plant('4.0.0', [reading('readings', 'destination')], ['fast', 'eco']), plantSource('4.0.0', 'setTimeout(() => { for (;;) {} }, 20);'));
    const trust = path.join(dir, 'store-root.pem');
    await fs.writeFile(trust, serving.store.rootCertPem);

    gateway = await startGateway({ dataDir: path.join(dir, 'data'), storeUrl: serving.url, trustRootFile: trust, updateWatchMs: 4000 });
    const services = gateway.services;
    const call = (op: string, params: Record<string, unknown>): Promise<any> => invokeOperation(services, op, params, NO_PROGRESS);
    await call('apps.install', { id: SENSORS });
    await call('apps.install', { id: PLANT, version: '1.0.0' });
    await call('apps.config.set', { id: PLANT, value: { site: 'north', mode: 'slow' } });
    const ca = (await createTestPki()).root.certPem;
    await call('certs.setCa', { id: PLANT, fileName: 'plant-ca.pem', content: Buffer.from(ca).toString('base64') });
    const kept = await call('routes.add', { source: `${SENSORS}:readings`, destination: `${PLANT}:readings` });
    const legacy = await call('routes.add', { source: `${SENSORS}:readings`, destination: `${PLANT}:legacy` });
    await call('apps.rule', { id: PLANT, rule: 'auto' });
    await call('apps.start', { id: SENSORS });
    await call('apps.start', { id: PLANT });
    await waitForAsync(async () => /plant 1\.0\.0 got reading/.test(await plantLog()));
    const certificates = await call('certs.list', { id: PLANT });

    const progress: { phase: string }[] = [];
    const updated = (await invokeOperation(
      services,
      'apps.update',
      { id: PLANT, version: '2.0.0' },
      { progress: (p) => progress.push(p as { phase: string }) },
    )) as any;
    assert.equal(updated.version, '2.0.0');
    assert.equal(updated.previous_version, '1.0.0');
    assert.deepEqual(updated.reset_keys, ['mode']);
    assert.deepEqual(
      updated.routes_in_error.map((route: { id: string }) => route.id),
      [legacy.id],
    );
    assert.match(updated.routes_in_error[0].problem, /declares no endpoint "legacy"/);
    assert.deepEqual([...new Set(progress.map((p) => p.phase))], ['download', 'verify', 'install', 'start', 'done']);

    const view = services.installedApps().find((app) => app.package_id === PLANT)!;
    assert.equal(view.version, '2.0.0');
    assert.equal(view.status, 'running');
    assert.equal(view.launch_rule, 'auto', 'the start rule is kept');
    assert.deepEqual(await call('apps.config.get', { id: PLANT }), { site: 'north', mode: 'fast' });
    assert.deepEqual(await call('certs.list', { id: PLANT }), certificates, 'the certificates are kept');
    // Storage and the valid key are kept.
    await waitForAsync(async () => /plant 2\.0\.0 started; stored first-version=1\.0\.0 site=north mode=fast/.test(await plantLog()));
    await waitForAsync(async () => /plant 2\.0\.0 got reading/.test(await plantLog()));
    const routes = services.router.list();
    assert.equal(routes.find((route) => route.id === kept.id)!.status, 'Active');
    const broken = routes.find((route) => route.id === legacy.id)!;
    assert.equal(broken.status, 'Error', 'a route whose endpoint is gone is kept, in Error');
    assert.match(broken.problem!, /legacy/);
    const auditNames = (await call('audit.list', { limit: 50 })).map((record: { name: string }) => record.name);
    assert.ok(auditNames.includes('Updater: Application update successful'));

    // 3.0.0 cannot start (it imports what an app may not): 2.0.0 is back, running, with everything it had.
    await assert.rejects(call('apps.update', { id: PLANT, version: '3.0.0' }), (error: unknown) => {
      assert.ok(isIsogateError(error, 'E_UPDATE_ROLLED_BACK'), String(error));
      assert.match(error.message, /import of "node:fs"/);
      return true;
    });
    const afterStartFailure = services.installedApps().find((app) => app.package_id === PLANT)!;
    assert.equal(afterStartFailure.version, '2.0.0');
    assert.equal(afterStartFailure.status, 'running');
    assert.deepEqual(await call('apps.config.get', { id: PLANT }), { site: 'north', mode: 'fast' });
    // The old version started again on the same storage (its log line is written behind the start).
    await waitForAsync(async () => (await plantLog()).match(/plant 2\.0\.0 started; stored first-version=1\.0\.0/g)?.length === 2);
    await services.orchestrator.verifyIntegrity(PLANT);

    // 4.0.0 starts, then spins within the watch window: rolled back too.
    await assert.rejects(call('apps.update', { id: PLANT, version: '4.0.0' }), (error: unknown) => {
      assert.ok(isIsogateError(error, 'E_UPDATE_ROLLED_BACK'), String(error));
      assert.match(error.message, /E_CPU_LIMIT/);
      return true;
    });
    await waitFor(() => services.launcher.status(PLANT).status === 'running');
    assert.equal(services.orchestrator.get(PLANT)!.version, '2.0.0');
    await waitForAsync(async () => /plant 4\.0\.0 started; stored first-version=1\.0\.0/.test(await plantLog()));
    await waitForAsync(async () => (await plantLog()).match(/plant 2\.0\.0 started; stored first-version=1\.0\.0/g)?.length === 3);
    assert.equal(services.router.list().find((route) => route.id === kept.id)!.status, 'Active');
    const rolledBack = (await call('audit.list', { limit: 50 })).filter(
      (record: { name: string }) => record.name === 'Updater: Application update rolled back',
    );
    assert.equal(rolledBack.length, 2);

    // The manual's path is unchanged: an install of another version is refused, with its Critical event.
    await assert.rejects(call('apps.install', { id: PLANT, version: '4.0.0' }), (error: unknown) => isIsogateError(error, 'E_NEW_VERSION'));
    await assert.rejects(call('apps.update', { id: PLANT, version: '1.0.0' }), (error: unknown) => isIsogateError(error, 'E_DOWNGRADE'));
    assert.equal(services.orchestrator.get(PLANT)!.version, '2.0.0');
  });
});
