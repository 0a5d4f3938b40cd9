/**
 * The demo's uplink talks to servers on this machine, which a gateway refuses by default: the
 * demo allows loopback once, and leaves an admin's own EGRESS alone.
 */
import { strict as assert } from 'node:assert';
import path from 'node:path';
import type { GatewayServices } from '../../platform/api/services.js';
import { DEMO_ALLOWED_RANGES, DEMO_ROUTES, setUpDemo } from '../../platform/bootstrap/demo.js';
import { ConfigStore } from '../../platform/config/index.js';
import { AddressPolicy } from '../../platform/egress/index.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

describe('demo egress ranges', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await makeTempDir('isogate-demo-ranges-');
  });
  afterEach(() => removeDir(dir));

  /** A gateway where the demo's apps and routes exist already, so only its configuration step acts. */
  const services = (config: ConfigStore): GatewayServices =>
    ({
      config,
      orchestrator: { get: () => ({}) },
      router: { list: () => DEMO_ROUTES },
      launcher: { status: () => ({ launchRule: 'auto', status: 'running' }) },
    }) as unknown as GatewayServices;

  it("allows loopback when the document has no EGRESS, and the sample uplink's localhost passes the policy", async () => {
    const config = await ConfigStore.open(path.join(dir, 'config.json'), 'test');
    assert.equal(
      config.read((doc) => doc.EGRESS),
      undefined,
    );
    const lines: string[] = [];
    await setUpDemo(services(config), (line) => lines.push(line));
    assert.deepEqual(
      config.read((doc) => doc.EGRESS),
      { allowed_ranges: [...DEMO_ALLOWED_RANGES] },
    );
    assert.ok(lines.some((line) => /EGRESS\.allowed_ranges/.test(line)));
    const policy = AddressPolicy.fromRanges(config.read((doc) => doc.EGRESS?.allowed_ranges));
    assert.equal((await policy.addresses('localhost', 'demo')).length > 0, true);
  });

  it("leaves an admin's EGRESS as it is on a later start", async () => {
    const config = await ConfigStore.open(path.join(dir, 'config.json'), 'test');
    await config.update((doc) => {
      doc.EGRESS = { allowed_ranges: [] };
    });
    await setUpDemo(services(config), () => undefined);
    assert.deepEqual(
      config.read((doc) => doc.EGRESS),
      { allowed_ranges: [] },
    );
  });
});
