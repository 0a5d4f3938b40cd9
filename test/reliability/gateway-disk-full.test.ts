/**
 * The whole gateway on a 32 MiB tmpfs: the demo installed and running, then the disk filled.
 * Admin operations are refused with E_STORAGE_FULL and change nothing, the apps keep running,
 * and once space returns the same operations succeed without a restart; a restart afterwards
 * finds everything as acknowledged. Skipped, with the reason, where no tmpfs can be mounted.
 */
import { strict as assert } from 'node:assert';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { DEMO_APPS, setUpDemo } from '../../platform/bootstrap/demo.js';
import { startGateway } from '../../platform/main.js';
import { mountSmallDisk, type SmallDisk } from './disk.js';

describe('reliability: the gateway on a full disk (tmpfs)', function () {
  this.timeout(180_000);
  let disk: SmallDisk | undefined;

  before(async function () {
    const mounted = await mountSmallDisk(32 * 1024 * 1024);
    if ('reason' in mounted) {
      console.log(`      skipped: ${mounted.reason}; io-errors.test.ts still runs`);
      this.skip();
    }
    disk = mounted as SmallDisk;
  });
  after(async () => {
    // The embedded store's folder (DATA-store) is on the tmpfs too: it goes with the unmount.
    await disk?.unmount();
  });

  it('refuses route and start-rule changes while the disk is full, keeps the apps running, and takes them once space returns', async () => {
    const dataDir = path.join(disk!.dir, 'data');
    const [, threshold] = DEMO_APPS;
    let gateway = await startGateway({ dataDir });
    let routeId: string;
    try {
      await setUpDemo(gateway.services, () => undefined);
      const { router, launcher } = gateway.services;
      routeId = router.list()[0]!.id;
      const document = await fs.readFile(path.join(dataDir, 'config.json'), 'utf8');

      await disk!.fill();
      await assert.rejects(router.remove(routeId), { code: 'E_STORAGE_FULL' });
      await assert.rejects(launcher.setLaunchRule(threshold, 'none'), { code: 'E_STORAGE_FULL' });
      assert.ok(router.list().some((route) => route.id === routeId));
      assert.equal(launcher.status(threshold).launchRule, 'auto');
      assert.equal(await fs.readFile(path.join(dataDir, 'config.json'), 'utf8'), document);
      assert.deepEqual(
        DEMO_APPS.map((id) => launcher.status(id).status),
        ['running', 'running', 'running'],
        'a full disk stops no app',
      );

      await disk!.free();
      await router.remove(routeId);
      await launcher.setLaunchRule(threshold, 'none');
    } finally {
      await gateway.close();
    }

    gateway = await startGateway({ dataDir });
    try {
      assert.ok(!gateway.services.router.list().some((route) => route.id === routeId));
      assert.equal(gateway.services.launcher.status(threshold).launchRule, 'none');
      const audited = gateway.services.audit.list().filter((record) => record.event === 'routesChanged' && record.details?.id === routeId);
      assert.ok(audited.length >= 1, 'the removal made after space returned is in the trail');
    } finally {
      await gateway.close();
    }
  });
});
