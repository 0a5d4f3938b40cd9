/**
 * Signals in a real gateway process (issue 17): a SIGTERM during start-up stops it in order
 * once start-up is done, exit 0; a second SIGTERM during shutdown is reported and does not cut
 * it; a graceful stop stops the apps within their deadline, keeps every storage write the app
 * was told had succeeded, audits the stop, and exits 0; an install under way at the SIGTERM is
 * rolled back (nothing of it left, audited) and the gateway still exits 0.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { callControl } from '../../platform/api/control-socket.js';
import { FileDeviceKeyProvider } from '../../platform/device/index.js';
import { StorageService } from '../../platform/storage/index.js';
import { buildPackage, signPackage } from '../../sdk/package/index.js';
import { type ServingStore, serveStore } from '../../store-mock/server.js';
import { spawnGateway } from '../fixtures/gateway-process.js';
import { sampleManifest } from '../fixtures/packages.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { waitForAsync } from '../fixtures/wait.js';

const WRITER = 'com.acme.writer';
// Writes one key after another, logging each once its put was acknowledged; its stop handler
// never settles, so stopping it takes the launcher's whole stop deadline.
const WRITER_SOURCE = `
import { log, storage, onStop } from 'isogate:sdk';
let n = 0;
const next = async () => {
  await storage.put('k' + n, 'v' + n);
  log.info('acknowledged k' + n);
  n += 1;
  setTimeout(next, 2);
};
next();
onStop(() => new Promise(() => undefined));
`;

/**
 * The store behind a door the test holds: a package download sends its headers and its first
 * bytes, then waits until `release`, so that an install is surely under way when the signal lands.
 */
async function stallingStore(upstream: string): Promise<{ url: string; downloading: Promise<void>; release: () => void; close: () => Promise<void> }> {
  let release!: () => void;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  let downloading!: () => void;
  const started = new Promise<void>((resolve) => {
    downloading = resolve;
  });
  const server = http.createServer((request, response) => {
    const forwarded = http.request(`${upstream}${request.url}`, { method: request.method, headers: request.headers }, async (answer) => {
      response.writeHead(answer.statusCode ?? 502, answer.headers);
      if (!/\/package$/.test(request.url ?? '')) {
        answer.pipe(response);
        return;
      }
      const body: Buffer[] = [];
      for await (const chunk of answer) body.push(chunk as Buffer);
      const bytes = Buffer.concat(body);
      response.write(bytes.subarray(0, 512));
      downloading();
      await released;
      response.end(bytes.subarray(512));
    });
    request.pipe(forwarded);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    downloading: started,
    release,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function auditNames(dataDir: string): Promise<string[]> {
  const text = await fs.readFile(path.join(dataDir, 'audit', 'system.jsonl'), 'utf8');
  return text
    .trim()
    .split('\n')
    .map((line) => (JSON.parse(line) as { name: string }).name);
}

describe('signals in the gateway process', function () {
  this.timeout(180_000);
  let dir: string;
  let serving: ServingStore;
  let trust: string;

  before(async () => {
    dir = await makeTempDir();
    serving = await serveStore({ dir: path.join(dir, 'store') });
    const acme = path.join(dir, 'acme');
    await serving.store.issuePublisher('Acme Corp', acme);
    const unsigned = await buildPackage(
      sampleManifest({ package_id: WRITER, name: 'Writer', publisher: 'Acme Corp' }),
      new Map([['app/main.js', Buffer.from(WRITER_SOURCE)]]),
    );
    await serving.store.publish(
      await signPackage(unsigned, {
        keyPem: await fs.readFile(path.join(acme, 'publisher.key.pem'), 'utf8'),
        certPem: await fs.readFile(path.join(acme, 'publisher.cert.pem'), 'utf8'),
      }),
    );
    trust = path.join(dir, 'store-root.pem');
    await fs.writeFile(trust, serving.store.rootCertPem);
  });
  after(async () => {
    await serving.close();
    await removeDir(dir);
  });

  const start = (dataDir: string, storeUrl = serving.url) =>
    spawnGateway(['start', '--no-supervisor', '--data', dataDir, '--store', storeUrl, '--trust', trust, '--json']);

  it('a SIGTERM with an install under way rolls the install back: nothing of it is left, it is audited, and the gateway exits 0', async () => {
    const dataDir = path.join(dir, 'installing');
    const store = await stallingStore(serving.url);
    try {
      const gateway = start(dataDir, store.url);
      const socket = (await gateway.line((line) => typeof line.controlSocket === 'string')).controlSocket as string;
      const install = callControl(socket, 'apps.install', { id: WRITER });
      const answered = install.then(
        () => 'installed',
        (error: { code?: string }) => error.code,
      );
      await store.downloading;
      gateway.child.kill('SIGTERM');
      await gateway.line((line) => line.stopping === 'SIGTERM');
      // The rest of the package arrives while the gateway stops: the install reaches its commit and is abandoned there.
      store.release();
      assert.deepEqual(await gateway.exited, { code: 0, signal: null }, gateway.stderr());
      assert.equal(await answered, 'E_UNAVAILABLE', 'the admin is told the install did not happen');

      for (const folder of ['apps', 'staging']) assert.deepEqual(await fs.readdir(path.join(dataDir, folder)), [], `${folder}/ is empty`);
      const config = JSON.parse(await fs.readFile(path.join(dataDir, 'config.json'), 'utf8'));
      assert.deepEqual(config.APPLICATIONS.APPS_CONTROL.applications, []);
      const records = (await fs.readFile(path.join(dataDir, 'audit', 'system.jsonl'), 'utf8'))
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { event: string; details?: { packageId?: string; code?: string } });
      const abandoned = records.find((record) => record.event === 'installError' && record.details?.packageId === WRITER);
      assert.equal(abandoned?.details?.code, 'E_UNAVAILABLE', 'the abandoned install is audited');
      assert.equal(
        records.some((record) => record.event === 'installSucceeded'),
        false,
      );
      assert.ok(
        records.some((record) => record.event === 'deviceShutdown'),
        'the stop is audited',
      );
    } finally {
      store.release();
      await store.close();
    }
  });

  it('Ctrl-C under the supervisor (a SIGINT to the whole process group) stops the gateway in order, exit 0, without calling it a second signal', async () => {
    const dataDir = path.join(dir, 'ctrl-c');
    const gateway = spawnGateway(['start', '--data', dataDir, '--store', serving.url, '--trust', trust, '--json'], { group: true });
    try {
      await gateway.line((line) => typeof line.controlSocket === 'string');
      // The terminal signals the supervisor and the gateway alike; the supervisor passes its own on too.
      process.kill(-gateway.child.pid!, 'SIGINT');
      assert.deepEqual(await gateway.exited, { code: 0, signal: null }, gateway.stderr());
      assert.ok(gateway.lines.some((line) => line.stopping === 'SIGINT'));
      assert.doesNotMatch(gateway.stderr(), /while stopping/);
      assert.equal((await auditNames(dataDir)).at(-1), 'KscController: Shutting down the device');
    } finally {
      if (gateway.child.exitCode === null && gateway.child.signalCode === null) process.kill(-gateway.child.pid!, 'SIGKILL');
    }
  });

  it('a SIGTERM during start-up: start-up reaches its end, then the gateway stops in order and exits 0', async () => {
    const dataDir = path.join(dir, 'early');
    const gateway = start(dataDir);
    // The lock is taken first thing in start-up: the signal lands while the rest opens.
    await waitForAsync(async () => (await fs.stat(path.join(dataDir, 'gateway.lock')).catch(() => undefined)) !== undefined, 60_000, 5);
    gateway.child.kill('SIGTERM');
    assert.deepEqual(await gateway.exited, { code: 0, signal: null }, gateway.stderr());
    assert.ok(gateway.lines.some((line) => line.stopping === 'SIGTERM'));
    assert.equal((await auditNames(dataDir)).at(-1), 'KscController: Shutting down the device');
  });

  it('a graceful stop keeps every acknowledged write, stops the app within its deadline, ignores a second SIGTERM, audits the stop and exits 0', async () => {
    const dataDir = path.join(dir, 'graceful');
    const gateway = start(dataDir);
    const info = await gateway.line((line) => typeof line.controlSocket === 'string');
    const socket = info.controlSocket as string;
    await callControl(socket, 'apps.install', { id: WRITER });
    await callControl(socket, 'apps.start', { id: WRITER });
    const log = path.join(dataDir, 'logs', WRITER, 'app.log');
    await waitForAsync(async () => /acknowledged k20\b/.test(await fs.readFile(log, 'utf8').catch(() => '')));

    gateway.child.kill('SIGTERM');
    await gateway.line((line) => line.stopping === 'SIGTERM');
    // The app's stop handler never settles: the shutdown is under way for its whole stop deadline.
    gateway.child.kill('SIGTERM');
    assert.deepEqual(await gateway.exited, { code: 0, signal: null }, gateway.stderr());
    assert.match(gateway.stderr(), /SIGTERM while stopping: ignored/);
    const names = await auditNames(dataDir);
    // The shutdown is recorded first, then each app as it stops (SHUTDOWN_ORDER).
    assert.deepEqual(names.slice(-2), ['KscController: Shutting down the device', 'Launcher: Stopping an application']);

    const acknowledged = [...(await fs.readFile(log, 'utf8')).matchAll(/acknowledged (k\d+)/g)].map((match) => match[1]!);
    assert.ok(acknowledged.length > 20);
    const keys = await new FileDeviceKeyProvider(path.join(dataDir, 'device')).open();
    const storage = new StorageService({ root: path.join(dataDir, 'storage'), keys });
    const app = await storage.open(WRITER, 1024 * 1024);
    for (const key of acknowledged) assert.equal(await app.get(key), `v${key.slice(1)}`, `${key} was acknowledged`);
    await storage.closeAll();
  });
});
