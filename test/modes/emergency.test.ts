/**
 * Fail closed and emergency support mode (the manual's "Emergency support mode"): the inspector
 * crashing, looping, exhausting its memory, forging a verdict, not answering within the verdict
 * deadline, or started without rules puts the gateway in the mode: the manual's events in both
 * audit logs, proxied connections ended, apps stopped, transit blocked, nothing passing
 * uninspected; the mode persists across a restart of the process and is left by an admin's restart.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { invokeOperation } from '../../platform/api/operations.js';
import type { Gateway } from '../../platform/main.js';
import type { EmergencyState } from '../../platform/modes/index.js';
import { refusedWith } from '../fixtures/errors.js';
import { gatewayWithInspector, INSPECTOR_ID, type InspectorMode, startInspector } from '../fixtures/inspector.js';
import { createTestPki, type TestPki } from '../fixtures/pki.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { waitFor } from '../fixtures/wait.js';

/** A guard against hangs, wide enough for a loaded machine: a live test waits on real peers. */
const until = (condition: () => boolean, timeoutMs = 15_000): Promise<void> => waitFor(condition, timeoutMs);

/** A Modbus/TCP read holding registers request. */
const REQUEST = Buffer.from([0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 5]);

describe('fail closed and emergency support mode', function () {
  this.timeout(120_000);
  let pki: TestPki;
  let dir: string;
  let gateway: Gateway | undefined;
  /** The upstream: echoes every byte (a whole frame back is a whole frame) and counts them. */
  let upstream: net.Server;
  let upstreamBytes = 0;

  before(async () => {
    pki = await createTestPki();
    upstream = net.createServer((socket) =>
      socket.on('data', (chunk) => {
        upstreamBytes += chunk.byteLength;
        socket.write(chunk);
      }),
    );
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  });
  after(() => upstream.close());
  beforeEach(async () => {
    dir = await makeTempDir('isogate-emergency-');
    upstreamBytes = 0;
  });
  afterEach(async () => {
    await gateway?.close();
    gateway = undefined;
    await removeDir(dir);
  });

  const services = () => [
    {
      name: 'plc',
      protocol: 'modbus',
      listen: { host: '127.0.0.1', port: 0 },
      upstream: { host: '127.0.0.1', port: (upstream.address() as net.AddressInfo).port },
    },
  ];
  const start = async (options: Parameters<typeof gatewayWithInspector>[2] = {}): Promise<Gateway> => {
    gateway = await gatewayWithInspector(dir, pki, { services: services(), ...options });
    await gateway.services.gate.settled();
    return gateway;
  };
  const gatePort = (g: Gateway): number => g.services.gate.status().services[0]!.listen.port;
  const firewall = (g: Gateway) => g.services.audit.list({ log: 'firewall' }).map((record) => record.event);
  const system = (g: Gateway) => g.services.audit.list({ log: 'system' }).map((record) => record.event);

  /** A client from 127.0.0.2: resolves with what came back before the gate closed it. */
  async function exchange(g: Gateway, request = REQUEST): Promise<{ answer: Buffer; closed: boolean }> {
    const socket = net.connect({ port: gatePort(g), host: '127.0.0.1', localAddress: '127.0.0.2' });
    let answer = Buffer.alloc(0);
    let closed = false;
    socket.on('data', (chunk) => {
      answer = Buffer.concat([answer, chunk]);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      closed = true;
    });
    socket.write(request);
    await until(() => closed || answer.length >= request.length, 15_000);
    socket.destroy();
    return { answer, closed };
  }

  async function expectEmergency(g: Gateway, reason: RegExp): Promise<EmergencyState> {
    await until(() => g.services.modes.active, 15_000);
    const state = g.services.modes.state()!;
    assert.match(state.reason, reason);
    await until(() => system(g).includes('emergencyLimits'), 15_000);
    assert.ok(system(g).includes('emergencyMode'));
    const enabled = g.services.audit.list({ log: 'system' }).find((record) => record.event === 'emergencyMode')!;
    assert.equal(enabled.text, `A critical operating system error is detected. Emergency support mode is enabled: ${state.reason}`);
    assert.equal(enabled.severity, 'Critical');
    // All apps stop; transit is refused at accept, counted.
    await until(() => g.services.launcher.status(INSPECTOR_ID).status !== 'running' && g.services.launcher.status(INSPECTOR_ID).status !== 'error', 15_000);
    const refused = g.services.gate.status().services[0]!.counters.refusedFailClosed;
    const after = await exchange(g);
    assert.equal(after.answer.length, 0);
    assert.equal(g.services.gate.status().services[0]!.counters.refusedFailClosed, refused + 1);
    assert.deepEqual(g.services.status().emergency, state);
    return state;
  }

  for (const [what, mode, reason, options] of [
    ['forges a verdict', 'forge', /forged verdict|released bytes/, {}],
    ['throws', 'throw', /a bug in the inspector/, {}],
    ['loops past its CPU limit', 'loop', /E_CPU_LIMIT/, {}],
    ['exhausts its memory', 'memory', /E_MEMORY_LIMIT/, { memoryMb: 16 }],
    ['does not answer within the verdict deadline', 'loop', /did not answer the traffic gate within 300 ms/, { cpuMsPerEvent: 10_000, verdictDeadlineMs: 300 }],
  ] as [string, InspectorMode, RegExp, Parameters<typeof gatewayWithInspector>[2]][]) {
    it(`enters emergency support mode when the inspector ${what}, and nothing passes uninspected`, async () => {
      const g = await start(options);
      await startInspector(g, mode);
      const { answer } = await exchange(g);
      assert.equal(answer.length, 0, 'no answer: the request was never released');
      assert.equal(upstreamBytes, 0, 'the server saw nothing');
      await expectEmergency(g, reason);
      await until(() => firewall(g).includes('npEmergencyMode'));
      const np = g.services.audit.list({ log: 'firewall' }).find((record) => record.event === 'npEmergencyMode')!;
      assert.equal(np.text, 'Emergency mode activated for Kaspersky IoT Secure Gateway Network Protector application');
      assert.equal(g.services.gate.status().services[0]!.counters.active, 0);
    });
  }

  it('enters the mode when the inspector starts without traffic filtering rules', async () => {
    const g = await start();
    await startInspector(g, 'frames', false);
    await expectEmergency(g, /started without traffic filtering rules/);
    assert.equal(g.services.gate.status().inspector, null);
  });

  it('ends proxied sessions and runs the onEmergency hooks; persists the mode until an admin restart', async () => {
    let g = await start();
    const hooked: EmergencyState[] = [];
    g.onEmergency((state) => {
      hooked.push(state);
    });
    await g.services.launcher.setLaunchRule(INSPECTOR_ID, 'auto');
    await startInspector(g, 'frames');
    // A live session through the gate, answered.
    const socket = net.connect({ port: gatePort(g), host: '127.0.0.1', localAddress: '127.0.0.3' });
    let closed = false;
    let answered = 0;
    socket.on('data', (chunk) => (answered += chunk.byteLength));
    socket.on('error', () => undefined);
    socket.on('close', () => (closed = true));
    socket.write(REQUEST);
    await until(() => answered === REQUEST.length);

    // The inspector crashes (a forged verdict): the session ends at once.
    await g.services.launcher.setConfiguration(INSPECTOR_ID, { fixture_mode: 'forge', APP_CONFIGURATION: { industrial_commands_rules: 'eA==' } });
    await g.services.launcher.stop(INSPECTOR_ID);
    await g.services.launcher.start(INSPECTOR_ID);
    await exchange(g);
    const state = await expectEmergency(g, /forged verdict|released bytes/);
    assert.ok(closed);
    assert.deepEqual(hooked, [state]);
    await assert.rejects(g.services.launcher.start(INSPECTOR_ID), refusedWith('E_EMERGENCY'));
    const record = JSON.parse(await fs.readFile(path.join(dir, 'data', 'emergency.json'), 'utf8'));
    assert.deepEqual(record, state);

    // A restart of the process comes back in the mode: the Autostart inspector is not started.
    await g.close();
    gateway = undefined;
    g = await start();
    assert.deepEqual(g.services.status().emergency, state);
    assert.equal(g.services.launcher.status(INSPECTOR_ID).status, 'stopped');
    assert.equal((await exchange(g)).answer.length, 0);

    // The admin's restart leaves it; the inspector (fixed) starts by its Autostart rule, traffic passes.
    await g.services.launcher.setConfiguration(INSPECTOR_ID, { fixture_mode: 'frames', APP_CONFIGURATION: { industrial_commands_rules: 'eA==' } });
    const restarted = (await invokeOperation(g.services, 'restart', {}, { progress: () => undefined })) as { left: EmergencyState | null };
    assert.deepEqual(restarted.left, state);
    assert.equal(g.services.modes.active, false);
    await fs.access(path.join(dir, 'data', 'emergency.json')).then(
      () => assert.fail('the record is gone'),
      () => undefined,
    );
    assert.equal(g.services.launcher.status(INSPECTOR_ID).status, 'running');
    assert.deepEqual((await exchange(g)).answer, REQUEST);
  });

  it('starts in the mode with a reason from the supervisor (GatewayOptions.emergencyReason)', async () => {
    const g = await start({ emergencyReason: 'the gateway crashed 5 times within 60 s' });
    const state = g.services.modes.state()!;
    assert.equal(state.cause, 'supervisor');
    assert.equal(state.reason, 'the gateway crashed 5 times within 60 s');
    assert.ok(system(g).includes('emergencyMode') && system(g).includes('emergencyLimits'));
    assert.ok(!firewall(g).includes('npEmergencyMode'), 'Network Protector is not the cause');
    await assert.rejects(startInspector(g, 'frames'), refusedWith('E_EMERGENCY'));
  });
});
