/**
 * `isogate np ...`, `isogate restart` and the emergency line of `isogate status`, against a
 * stand-in gateway: each command asks for its one operation with the parameters it names, and
 * prints what the gateway answered, escaped.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { main } from '../../platform/cli/main.js';
import { type FakeGateway, fakeGateway, runMain } from '../fixtures/cli.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

describe('isogate np, restart, and status in emergency support mode', () => {
  let work: string;
  let data: string;
  let gateway: FakeGateway;
  const emergency = { reason: 'Network Protector failed: E_CPU_LIMIT \u001b[2J', cause: 'network-protector', since: '2026-12-02T07:00:00.000Z' };
  const traffic = {
    inspector: null,
    services: [
      {
        name: 'plc',
        protocol: 'modbus',
        listen: { host: '0.0.0.0', port: 502 },
        upstream: { host: '10.0.0.5', port: 502 },
        counters: { active: 0, accepted: 4, refusedFailClosed: 2, refusedDenylisted: 1, refusedConnectionLimit: 0, dropped: 1 },
      },
    ],
    alertsRecorded: 3,
    alertsNotRecorded: 0,
    recordsFailed: 0,
    crossings: 9,
    inspectedItems: 20,
  };
  const status = {
    version: '0.1.0',
    sdkVersion: '1.0.0',
    uptimeSeconds: 5,
    dataDir: '/x',
    mode: 'router',
    developerMode: false,
    store: 'http://127.0.0.1:1',
    apps: { installed: 1, limit: 20, byStatus: { stopped: 1 } },
    routes: { active: 0, inactive: 0, error: 0 },
    emergency,
    traffic,
  };

  beforeEach(async () => {
    work = await makeTempDir();
    data = path.join(work, 'data');
    await fs.mkdir(data, { mode: 0o700 });
    gateway = await fakeGateway(data, {
      status,
      restart: { left: emergency, status: { ...status, emergency: null } },
      'np.status': traffic,
      'np.allowlist.list': [{ ipAddrSource: '10.0.0.7' }],
      'np.allowlist.add': { ipAddrSource: '10.0.0.8' },
      'np.allowlist.remove': { ipAddrSource: '10.0.0.8' },
      'np.denylist.list': [{ ipAddrSource: '10.0.0.9', timestamp: 1_764_658_800, signatureName: 'MODBUS write \u202e' }],
      'np.denylist.remove': { ipAddrSource: '10.0.0.9' },
    });
  });
  afterEach(async () => {
    await gateway.close();
    await removeDir(work);
  });

  it('status shows emergency support mode with its reason, escaped, and the traffic gate', async () => {
    const result = await runMain(main, ['status', '--data', data]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^EMERGENCY SUPPORT MODE since 2026-12-02T07:00:00.000Z: Network Protector failed: E_CPU_LIMIT \\x1b\[2J/m);
    assert.match(result.stdout, /^traffic: 1 protected service\(s\), inspector none \(transit refused\)$/m);
    assert.doesNotMatch(result.stdout, /\u001b/);
  });

  it('restart asks the gateway to leave the mode and says so', async () => {
    const result = await runMain(main, ['restart', '--data', data]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^Left emergency support mode/);
    assert.deepEqual(gateway.requests.at(-1), { op: 'restart', params: {} });
  });

  it('np status, allowlist and denylist ask for their operations and print tables', async () => {
    const shown = await runMain(main, ['np', 'status', '--data', data]);
    assert.match(shown.stdout, /plc\s+modbus\s+0\.0\.0\.0:502\s+10\.0\.0\.5:502\s+0\s+4\s+3\s+1/);
    await runMain(main, ['np', 'allowlist', 'add', '10.0.0.8', '--data', data]);
    await runMain(main, ['np', 'allowlist', 'remove', '10.0.0.8', '--data', data]);
    const denied = await runMain(main, ['np', 'denylist', 'list', '--data', data]);
    assert.match(denied.stdout, /10\.0\.0\.9\s+MODBUS write \\u\{202e\}\s+2025-12-02T07:00:00\.000Z/);
    await runMain(main, ['np', 'denylist', 'remove', '10.0.0.9', '--data', data]);
    assert.deepEqual(
      gateway.requests.map((request) => [request.op, request.params]),
      [
        ['np.status', {}],
        ['np.allowlist.add', { ip: '10.0.0.8' }],
        ['np.allowlist.remove', { ip: '10.0.0.8' }],
        ['np.denylist.list', {}],
        ['np.denylist.remove', { ip: '10.0.0.9' }],
      ],
    );
  });

  it('np allowlist add without an address is a usage error, and nothing is asked', async () => {
    const result = await runMain(main, ['np', 'allowlist', 'add', '--data', data]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /E_USAGE/);
    assert.deepEqual(gateway.requests, []);
  });
});
