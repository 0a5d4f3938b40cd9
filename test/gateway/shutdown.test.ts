/**
 * How a gateway closes (issue 13, finding 11): the control socket goes before any app stops,
 * the shutdown and each stopped app are audited, a part that fails to close is reported by
 * name while the others still close (the data-directory lock too), and a second close runs
 * nothing again.
 */
import assert from 'node:assert/strict';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { callControl } from '../../platform/api/control-socket.js';
import { invokeOperation } from '../../platform/api/operations.js';
import type { AuditRecord } from '../../platform/audit/index.js';
import type { CloseFailure } from '../../platform/bootstrap/shutdown.js';
import { openDataDirectory } from '../../platform/datadir/index.js';
import { type Gateway, startGateway } from '../../platform/main.js';
import { isIsogateError } from '../../sdk/errors.js';
import { buildPackage, signPackage } from '../../sdk/package/index.js';
import { type ServingStore, serveStore } from '../../store-mock/server.js';
import { sampleManifest } from '../fixtures/packages.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

const APP = 'com.example.shutdown';
const NO_PROGRESS = { progress: () => undefined };

describe('gateway shutdown', function () {
  this.timeout(120_000);
  let dir: string;
  let serving: ServingStore | undefined;
  let gateway: Gateway | undefined;
  let storeCloses: number;

  before(async () => {
    dir = await makeTempDir();
  });
  after(async () => {
    await gateway?.close();
    await serving?.close();
    await removeDir(dir);
  });

  it('closes the control socket before an app stops, audits the shutdown and each app, reports a part that fails to close while the rest close, and closes once', async () => {
    storeCloses = 0;
    gateway = await startGateway({
      dataDir: path.join(dir, 'data'),
      // The embedded store is a part the gateway closes: this one fails to, as a wedged server would.
      embeddedStore: async (storeDir) => {
        serving = await serveStore({ dir: storeDir });
        const publisher = await serving.store.issuePublisher('Example Ltd', path.join(storeDir, 'publisher'));
        const unsigned = await buildPackage(
          sampleManifest({ package_id: APP, name: 'Shutdown' }),
          new Map([['app/main.js', Buffer.from('import { log } from "isogate:sdk";\nlog.info("up");\n')]]),
        );
        await serving.store.publish(
          await signPackage(unsigned, { keyPem: await fs.readFile(publisher.keyPath, 'utf8'), certPem: await fs.readFile(publisher.certPath, 'utf8') }),
        );
        const store = serving;
        return {
          url: store.url,
          rootCertPem: store.store.rootCertPem,
          close: async () => {
            storeCloses += 1;
            throw new Error('the store would not let go of its port');
          },
        };
      },
    });
    const { services, controlSocket, dataDir } = gateway;
    await invokeOperation(services, 'apps.install', { id: APP }, NO_PROGRESS);
    await invokeOperation(services, 'apps.start', { id: APP }, NO_PROGRESS);
    assert.equal(services.launcher.status(APP).status, 'running');
    assert.equal(services.status().apps.limit, 20, "the orchestrator's limit");

    let socketAtStop: boolean | undefined;
    let commandAtStop: Promise<unknown> | undefined;
    services.launcher.on('status', (info) => {
      if (info.packageId !== APP || info.status !== 'stopping' || socketAtStop !== undefined) return;
      socketAtStop = existsSync(controlSocket);
      commandAtStop = callControl(controlSocket, 'apps.start', { id: APP }).then(
        () => 'answered',
        (error: unknown) => error,
      );
    });

    const first = gateway.close();
    const second = gateway.close();
    const [failures, again] = await Promise.all([first, second]);
    const expected: CloseFailure[] = [{ subsystem: 'embedded store', code: 'E_INTERNAL', message: 'the store would not let go of its port' }];
    assert.deepEqual(failures, expected);
    assert.deepEqual(again, expected, 'the second close answers as the first');
    assert.deepEqual(await gateway.close(), expected, 'and so does a later one');
    assert.equal(storeCloses, 1, 'each part is closed once');

    assert.equal(socketAtStop, false, 'the control socket was gone before the app stopped');
    const answer = await commandAtStop;
    assert.ok(isIsogateError(answer, 'E_UNAVAILABLE'), `a command sent while apps stop is refused, not answered: ${String(answer)}`);
    assert.equal(services.launcher.status(APP).status, 'stopped');

    const records = (await fs.readFile(path.join(dataDir, 'audit', 'system.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as AuditRecord);
    const tail = records.slice(records.findIndex((record) => record.event === 'deviceShutdown'));
    assert.deepEqual(
      tail.map((record) => [record.event, record.name, record.text]),
      [
        ['deviceShutdown', 'KscController: Shutting down the device', 'The device is being shut down'],
        ['appStopped', 'Launcher: Stopping an application', 'The application Shutdown was stopped'],
      ],
    );
    assert.deepEqual(tail[1]!.details, { packageId: APP, from: 'gateway shutdown' });

    // The parts after the failing one closed too: the lock is free for the next gateway.
    const next = await openDataDirectory({ dataDir });
    next.lock.release();
  });
});
