/**
 * `npm start` on a data directory it set up before: the admin's start rules and stopped apps
 * stay as the admin left them.
 */
import { strict as assert } from 'node:assert';
import { DEMO_APPS, setUpDemo } from '../../platform/bootstrap/demo.js';
import { startGateway } from '../../platform/main.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

describe('the demo on a data directory it set up before', function () {
  this.timeout(120_000);
  let dir: string;
  before(async () => {
    dir = await makeTempDir('isogate-demo-');
  });
  after(() => removeDir(dir));

  it("keeps the admin's Block start and Manual start rules and a stopped app stopped", async () => {
    const [telemetry, threshold, uplink] = DEMO_APPS;
    const first = await startGateway({ dataDir: dir });
    try {
      const said: string[] = [];
      await setUpDemo(first.services, (line) => said.push(line));
      assert.match(said.at(-1)!, /^Data is flowing: telemetry -> threshold -> uplink\./);
      assert.deepEqual(
        DEMO_APPS.map((id) => first.services.launcher.status(id).status),
        ['running', 'running', 'running'],
      );
      await first.services.launcher.stop(threshold);
      await first.services.launcher.setLaunchRule(threshold, 'none');
      await first.services.launcher.stop(uplink);
      await first.services.launcher.setLaunchRule(uplink, 'forbidden');
    } finally {
      await first.close();
    }

    const second = await startGateway({ dataDir: dir });
    try {
      const auditedBefore = second.services.audit.list().length;
      const said: string[] = [];
      await setUpDemo(second.services, (line) => said.push(line));
      // It said "Data is flowing" with two of the three stopped.
      assert.deepEqual(said, [
        `Not all of the sample pipeline runs: ${threshold} stopped (start rule manual), ${uplink} stopped (start rule blocked); \`npx isogate apps list\` shows them, \`npx isogate apps rule ID auto\` and \`npx isogate apps start ID\` run one again.`,
      ]);
      const { launcher } = second.services;
      assert.deepEqual(
        [telemetry, threshold, uplink].map((id) => [launcher.status(id).launchRule, launcher.status(id).status]),
        [
          ['auto', 'running'],
          ['none', 'stopped'],
          ['forbidden', 'stopped'],
        ],
      );
      assert.deepEqual(
        second.services.audit
          .list()
          .slice(0, second.services.audit.list().length - auditedBefore)
          .filter((record) => /autorun|launch/i.test(record.event)),
        [],
      );
    } finally {
      await second.close();
    }
  });

  it('pre-installs Network Protector from its own image, signed by the platform root, not started', async () => {
    const gateway = await startGateway({ dataDir: `${dir}-np`, platformApps: true });
    try {
      const np = 'dev.isogate.network-protector';
      assert.ok(gateway.services.orchestrator.get(np));
      assert.deepEqual([gateway.services.launcher.status(np).launchRule, gateway.services.launcher.status(np).status], ['none', 'stopped']);
      assert.equal(gateway.services.modes.active, false);
    } finally {
      await gateway.close();
      await removeDir(`${dir}-np`);
      await removeDir(`${dir}-np-store`);
    }
  });
});
