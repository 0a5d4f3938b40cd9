/**
 * An uninstall cut by a crash after each of its steps (issue 17: a crash after the storage was
 * wiped left the app installed, autostarted with empty storage; a crash later left its
 * configuration for the next install). The gateway runs in a child process that SIGKILLs itself
 * right after the named step; a gateway started again on the same data directory must show the
 * app either fully installed (killed before the commit point) or fully uninstalled, with no
 * storage, log, certificate, configuration or uninstall record left, and a reinstall of the
 * same id must start afresh.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { callControl } from '../../platform/api/control-socket.js';
import { invokeOperation } from '../../platform/api/operations.js';
import type { AuditRecord } from '../../platform/audit/index.js';
import { type Gateway, startGateway } from '../../platform/main.js';
import { UNINSTALL_STEPS_AFTER_HOOKS, type UninstallStep } from '../../platform/orchestrator/index.js';
import type { AppManifest, EndpointDeclaration } from '../../sdk/manifest.js';
import { buildPackage, signPackage } from '../../sdk/package/index.js';
import { type ServingStore, serveStore } from '../../store-mock/server.js';
import { sampleManifest } from '../fixtures/packages.js';
import { createTestPki } from '../fixtures/pki.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { waitForAsync } from '../fixtures/wait.js';

const SENSORS = 'com.acme.sensors';
const PLANT = 'com.acme.plant';
const NO_PROGRESS = { progress: () => undefined };
const CHILD = fileURLToPath(new URL('../fixtures/gateway-child.ts', import.meta.url));
/** The gateway's six beforeUninstall hooks (platform/main.ts): stop, egress, storage, logs, certificates, routes. */
const HOOKS = 6;
const STEPS: UninstallStep[] = ['started', 'recorded', ...Array.from({ length: HOOKS }, (_, i) => `hook ${i + 1}` as const), ...UNINSTALL_STEPS_AFTER_HOOKS];

const reading = (direction: 'source' | 'destination'): EndpointDeclaration[] => [{ name: 'readings', direction, dataType: 'reading', format: 'json' }];
const PLANT_SOURCE = `
import { log, storage, config } from 'isogate:sdk';
const first = await storage.get('first');
if (first === undefined) await storage.put('first', 'written by the first start');
log.info('plant started; stored=' + (first ?? 'none') + ' site=' + config.get().site);
`;

describe('an uninstall killed after each step', function () {
  this.timeout(600_000);
  let dir: string;
  let serving: ServingStore;
  let trust: string;
  let template: string;
  let gateway: Gateway | undefined;

  before(async () => {
    dir = await makeTempDir();
    serving = await serveStore({ dir: path.join(dir, 'store') });
    const acme = path.join(dir, 'acme');
    await serving.store.issuePublisher('Acme Corp', acme);
    const signer = {
      keyPem: await fs.readFile(path.join(acme, 'publisher.key.pem'), 'utf8'),
      certPem: await fs.readFile(path.join(acme, 'publisher.cert.pem'), 'utf8'),
    };
    const publish = async (manifest: AppManifest, main: string): Promise<void> => {
      const unsigned = await buildPackage(manifest, new Map([['app/main.js', Buffer.from(main)]]));
      await serving.store.publish(await signPackage(unsigned, signer));
    };
    await publish(sampleManifest({ package_id: SENSORS, name: 'Sensors', publisher: 'Acme Corp', endpoints: reading('source') }), 'export {};\n');
    await publish(
      sampleManifest({
        package_id: PLANT,
        name: 'Plant',
        publisher: 'Acme Corp',
        endpoints: reading('destination'),
        configuration: { schema: { type: 'object', properties: { site: { type: 'string' } } }, defaults: { site: 'nowhere' } },
      }),
      PLANT_SOURCE,
    );
    trust = path.join(dir, 'store-root.pem');
    await fs.writeFile(trust, serving.store.rootCertPem);

    // One data directory with the plant installed, configured, wired, holding a certificate,
    // stored data and a log, on Autostart; each step's run starts from a copy of it.
    template = path.join(dir, 'template');
    const first = await startGateway({ dataDir: template, storeUrl: serving.url, trustRootFile: trust });
    const call = (op: string, params: Record<string, unknown>): Promise<unknown> => invokeOperation(first.services, op, params, NO_PROGRESS);
    await call('apps.install', { id: SENSORS });
    await call('apps.install', { id: PLANT });
    await call('apps.config.set', { id: PLANT, value: { site: 'north' } });
    await call('certs.setCa', { id: PLANT, fileName: 'plant-ca.pem', content: Buffer.from((await createTestPki()).root.certPem).toString('base64') });
    await call('routes.add', { source: `${SENSORS}:readings`, destination: `${PLANT}:readings` });
    await call('apps.rule', { id: PLANT, rule: 'auto' });
    await call('apps.start', { id: PLANT });
    await waitForAsync(async () => (await plantLog(template)).includes('stored=none site=north'));
    assert.deepEqual(await first.close(), []);
  });
  after(async () => {
    await gateway?.close();
    await serving.close();
    await removeDir(dir);
  });
  afterEach(async () => {
    await gateway?.close();
    gateway = undefined;
  });

  async function plantLog(dataDir: string): Promise<string> {
    const logDir = path.join(dataDir, 'logs', PLANT);
    const files = (await fs.readdir(logDir).catch(() => [] as string[])).filter((name) => /^app(\.\d+)?\.log$/.test(name));
    return (await Promise.all(files.map((name) => fs.readFile(path.join(logDir, name), 'utf8')))).join('');
  }

  /** Starts a gateway child on `dataDir`, asks it to uninstall the plant, and waits for it to die of SIGKILL. */
  async function uninstallKilledAt(dataDir: string, step: UninstallStep): Promise<void> {
    const child = spawn(process.execPath, ['--no-node-snapshot', '--import', 'tsx', CHILD], {
      env: { ...process.env, ISOGATE_TEST_GATEWAY: JSON.stringify({ dataDir, storeUrl: serving.url, trustRootFile: trust, killAtUninstallStep: step }) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    const socket = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const line = out.split('\n').find((candidate) => candidate.startsWith('{'));
        if (line && out.includes('\n')) resolve((JSON.parse(line) as { controlSocket: string }).controlSocket);
      });
      child.on('exit', () => reject(new Error(`the gateway child exited before it started: ${out}`)));
    });
    // The answer never comes: the process dies within the operation.
    await assert.rejects(callControl(socket, 'apps.uninstall', { id: PLANT }));
    assert.equal(await exited, 'SIGKILL', `the child died at ${step}`);
  }

  const exists = (file: string): Promise<boolean> =>
    fs.lstat(file).then(
      () => true,
      () => false,
    );

  it('an uninstall that cannot finish at the start is audited and keeps the app out, and the gateway starts; an uninstall again finishes it', async () => {
    const dataDir = path.join(dir, 'resume-fails');
    await fs.cp(template, dataDir, { recursive: true });
    await uninstallKilledAt(dataDir, 'recorded');
    // The storage wipe meets a link planted where the app's storage was: it is refused, never followed.
    const elsewhere = path.join(dir, 'elsewhere');
    await fs.mkdir(elsewhere, { recursive: true });
    await fs.writeFile(path.join(elsewhere, 'keep'), "not the gateway's");
    await fs.rm(path.join(dataDir, 'storage', PLANT), { recursive: true });
    await fs.symlink(elsewhere, path.join(dataDir, 'storage', PLANT));

    gateway = await startGateway({ dataDir, storeUrl: serving.url, trustRootFile: trust });
    const services = gateway.services;
    const call = (op: string, params: Record<string, unknown>): Promise<any> => invokeOperation(services, op, params, NO_PROGRESS);
    const records = (await call('audit.list', { log: 'system' })) as AuditRecord[];
    const failed = records.find((record) => record.event === 'uninstallError' && (record.details as { resumed?: boolean }).resumed);
    assert.ok(failed, 'the failed resume is audited');
    assert.equal((failed.details as { code?: string }).code, 'E_UNSAFE_PATH');
    assert.equal(
      records.some((record) => record.event === 'uninstallSucceeded'),
      false,
    );

    const shown = services.installedApps().find((app) => app.package_id === PLANT);
    assert.equal(shown?.status, 'uninstalling', 'the app is listed as being uninstalled');
    assert.equal(shown?.last_error?.code, 'E_UNSAFE_PATH');
    assert.equal(services.installedApps().find((app) => app.package_id === SENSORS)?.status, 'stopped', 'the other app is as it was');
    await assert.rejects(call('apps.start', { id: PLANT }), (error: { code?: string }) => error.code === 'E_NOT_INSTALLED');
    await assert.rejects(call('apps.install', { id: PLANT }), (error: { code?: string }) => error.code === 'E_BUSY');
    assert.equal(services.launcher.guest(PLANT), undefined, 'the app was not launched');
    assert.equal(await fs.readFile(path.join(elsewhere, 'keep'), 'utf8'), "not the gateway's", 'nothing behind the link was touched');
    assert.ok(await exists(path.join(dataDir, 'uninstalls', `${PLANT}.json`)), 'the record stays until the uninstall finishes');

    await fs.unlink(path.join(dataDir, 'storage', PLANT));
    await call('apps.uninstall', { id: PLANT });
    assert.equal(
      services.installedApps().some((app) => app.package_id === PLANT),
      false,
    );
    const config = JSON.parse(await fs.readFile(path.join(dataDir, 'config.json'), 'utf8'));
    assert.equal(PLANT in config, false);
    assert.deepEqual(await fs.readdir(path.join(dataDir, 'uninstalls')), []);
    for (const part of ['apps', 'storage', 'logs', 'certs']) assert.equal(await exists(path.join(dataDir, part, PLANT)), false, `${part}/${PLANT} is gone`);
  });

  for (const step of STEPS) {
    it(`after "${step}": the restarted gateway shows the app ${step === 'started' ? 'installed as it was' : 'uninstalled, every trace gone'}, and a reinstall starts afresh`, async () => {
      const dataDir = path.join(dir, `after-${step.replace(' ', '-')}`);
      await fs.cp(template, dataDir, { recursive: true });
      await uninstallKilledAt(dataDir, step);

      gateway = await startGateway({ dataDir, storeUrl: serving.url, trustRootFile: trust });
      const services = gateway.services;
      const call = (op: string, params: Record<string, unknown>): Promise<any> => invokeOperation(services, op, params, NO_PROGRESS);
      const config = JSON.parse(await fs.readFile(path.join(dataDir, 'config.json'), 'utf8'));
      assert.deepEqual(await fs.readdir(path.join(dataDir, 'uninstalls')).catch(() => []), [], 'no uninstall record is left');

      if (step === 'started') {
        // Before the commit point nothing was erased: the app is as it was, and autostarts with its data.
        await waitForAsync(async () => (await plantLog(dataDir)).includes('stored=written by the first start site=north'));
        assert.equal(services.installedApps().find((app) => app.package_id === PLANT)?.status, 'running');
        assert.deepEqual(config[PLANT], { site: 'north' });
        assert.equal((await call('certs.list', { id: PLANT })).length > 0, true);
        return;
      }

      assert.equal(
        services.installedApps().some((app) => app.package_id === PLANT),
        false,
        'the app is not installed',
      );
      assert.equal(
        config.APPLICATIONS.APPS_CONTROL.applications.some((entry: { package_id: string }) => entry.package_id === PLANT),
        false,
      );
      assert.equal(PLANT in config, false, 'its configuration is gone');
      for (const part of ['apps', 'storage', 'logs', 'certs']) assert.equal(await exists(path.join(dataDir, part, PLANT)), false, `${part}/${PLANT} is gone`);
      assert.deepEqual(await fs.readdir(path.join(dataDir, 'trash')), []);
      if (step !== 'done') {
        const records = (await call('audit.list', { log: 'system' })) as AuditRecord[];
        assert.ok(
          records.some((record) => record.name === 'Orchestrator: Successful application uninstallation' && (record.details as { resumed?: boolean })?.resumed),
          'the finished uninstall is audited as resumed',
        );
      }

      await call('apps.install', { id: PLANT });
      await call('apps.start', { id: PLANT });
      await waitForAsync(async () => (await plantLog(dataDir)).includes('plant started'));
      assert.match(await plantLog(dataDir), /stored=none site=nowhere/, 'the reinstalled app has neither the old storage nor the old configuration');
    });
  }
});
