import { strict as assert } from 'node:assert';
import { HotLoop, hotLoop } from '../../platform/sandbox/hot-loop.js';
import { type AppSandbox, createAppSandbox } from '../../platform/sandbox/index.js';
import type { AppManifest } from '../../sdk/manifest.js';
import { fakeHost, jsonBatch } from '../fixtures/fake-host.js';
import { waitFor } from '../fixtures/wait.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('hot loop', () => {
  it('holds until released or until its time runs out, and says which', async () => {
    const loop = new HotLoop();
    const expired: string[] = [];
    const released = {};
    const forgotten = {};
    loop.hold(released, 50, () => expired.push('released'));
    loop.hold(forgotten, 1, () => expired.push('forgotten'));
    assert.equal(loop.holding, 2);
    loop.release(released);
    await waitFor(() => loop.holding === 0, 1000);
    assert.deepEqual(expired, ['forgotten']);
  });

  it('keeps running every other callback while it holds', async () => {
    const loop = new HotLoop();
    const key = {};
    loop.hold(key, 10_000);
    let fired = false;
    setTimeout(() => {
      fired = true;
    }, 5);
    await waitFor(() => fired, 2000);
    loop.release(key);
    await waitFor(() => loop.holding === 0, 1000);
  });

  describe('for an app answered by the platform', () => {
    const manifest: AppManifest = {
      manifestVersion: 1,
      package_id: 'dev.isogate.test.hot',
      name: 'hot',
      title: 'Hot',
      version: '1.0.0',
      publisher: 'tests',
      type: 'service',
      buildSdkVersion: '1.0.0',
      entry: 'app/main.js',
      networkZone: 'lan',
      resources: { memoryMb: 16, cpuMsPerEvent: 1000, storageMb: 1 },
      endpoints: [{ name: 'in', direction: 'destination', dataType: 't', format: 'json' }],
    };
    let sandbox: AppSandbox | undefined;
    afterEach(() => sandbox?.dispose());

    it('holds no longer than its reply window once the app goes quiet', async () => {
      const host = fakeHost(manifest.package_id, 1024 * 1024);
      sandbox = await createAppSandbox({
        manifest,
        host,
        files: new Map([
          [
            'app/main.js',
            `import { storage, log, on } from 'isogate:sdk';
        on('in', async () => {
          for (let i = 0; i < 50; i += 1) await storage.put('k', String(i));
          log.info('looped');
        });`,
          ],
        ]),
      });
      await sandbox.start();
      await sandbox.deliver('in', jsonBatch({}));
      await host.waitForLog(/^looped$/, 5000);
      // The last answer gets no reply: its hold runs out and the loop goes back to sleeping.
      await waitFor(() => hotLoop.holding === 0, 1000);
      await sleep(20);
      assert.equal(hotLoop.holding, 0);
    });

    it('lets go at once when the app is disposed', async () => {
      const host = fakeHost(manifest.package_id, 1024 * 1024);
      sandbox = await createAppSandbox({
        manifest,
        host,
        files: new Map([
          [
            'app/main.js',
            `import { storage, on } from 'isogate:sdk';
        on('in', async () => { for (;;) await storage.put('k', 'v'); });`,
          ],
        ]),
      });
      await sandbox.start();
      // The handler never ends, so its delivery is not awaited.
      sandbox.deliver('in', jsonBatch({})).catch(() => undefined);
      await waitFor(() => hotLoop.holding === 1, 2000);
      sandbox.dispose();
      assert.equal(hotLoop.holding, 0);
    });
  });
});
