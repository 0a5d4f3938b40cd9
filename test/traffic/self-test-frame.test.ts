/**
 * The gate's self-test hook: the crafted frame through the real inspection path (the queue, the
 * crossing, the inspector in its isolate), on a connection no socket carries, its verdict checked.
 * An inspector that answers it wrongly or not at all fails; nothing of the probe is forwarded,
 * denylisted or recorded. (Network Protector answering it rightly: test/network-protector/app.test.ts.)
 */
import assert from 'node:assert/strict';
import type { Gateway } from '../../platform/main.js';
import { RESERVED_SID, SELF_TEST_SERVICE, selfTestFrame, wrongSelfTestVerdict } from '../../platform/traffic/self-test-frame.js';
import { refusedWith } from '../fixtures/errors.js';
import { gatewayWithInspector, INSPECTOR_ID, type InspectorMode, startInspector } from '../fixtures/inspector.js';
import { createTestPki, type TestPki } from '../fixtures/pki.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { waitFor } from '../fixtures/wait.js';

const ALERT = { gid: 1, rev: 1, signature: 's', category: 'c', severity: 1 } as const;

describe('the self-test frame', () => {
  it('is a Modbus Diagnostics "Return Query Data" request whose MBAP length covers it exactly', () => {
    const frame = selfTestFrame();
    assert.equal(frame.readUInt16BE(4), frame.byteLength - 6);
    assert.deepEqual([frame[7], frame.readUInt16BE(8)], [8, 0]);
    assert.match(frame.subarray(10).toString('ascii'), /self-test/);
    assert.ok(!/^[A-Za-z0-9_-]{1,64}$/.test(SELF_TEST_SERVICE), 'no protected service can take its name');
  });

  it('takes only a drop under the reserved sid as the right verdict', () => {
    assert.equal(wrongSelfTestVerdict({ drop: { ...ALERT, sid: RESERVED_SID, action: 'drop' } }), undefined);
    assert.match(wrongSelfTestVerdict({ release: 33 })!, /released 33 bytes/);
    assert.match(wrongSelfTestVerdict({ drop: { ...ALERT, sid: 5, action: 'drop' } })!, /under sid 5/);
    assert.match(wrongSelfTestVerdict({ drop: { ...ALERT, sid: RESERVED_SID, action: 'alert' } })!, /\(alert\)/);
  });
});

describe('the gate pushing the self-test frame through its inspector', function () {
  this.timeout(120_000);
  let dir: string;
  let pki: TestPki;
  let gateway: Gateway | undefined;

  before(async () => {
    pki = await createTestPki();
  });
  beforeEach(async () => {
    dir = await makeTempDir('isogate-self-test-frame-');
  });
  afterEach(async () => {
    await gateway?.close();
    gateway = undefined;
    await removeDir(dir);
  });

  async function inspecting(mode: InspectorMode): Promise<Gateway> {
    gateway = await gatewayWithInspector(dir, pki, { verdictDeadlineMs: 1500, cpuMsPerEvent: 100 });
    await startInspector(gateway, mode);
    await waitFor(() => gateway!.services.gate.inspector === INSPECTOR_ID, 20_000);
    return gateway;
  }

  it('refuses with E_STATE while nothing inspects', async () => {
    gateway = await gatewayWithInspector(dir, pki);
    await assert.rejects(gateway.services.gate.inspectSelfTestFrame(), refusedWith('E_STATE', /nothing inspects/));
  });

  it('fails an inspector that releases the frame (E_APP_FAILED), denylisting and recording nothing', async () => {
    const { gate, lists, audit, modes } = (await inspecting('frames')).services;
    const crossings = gate.status().crossings;
    await assert.rejects(gate.inspectSelfTestFrame(), refusedWith('E_APP_FAILED', /answered the self-test frame wrongly: it released 33 bytes/));
    // It went through the real path: a crossing, the frame one inspected item.
    assert.ok(gate.status().crossings > crossings);
    assert.deepEqual(lists.denylist(), []);
    assert.ok(!audit.list({ log: 'firewall', limit: 1000 }).some((record) => record.event === 'trafficAlert' || record.event === 'trafficBlocked'));
    // The wrong answer is the self-test's to judge (it enters the mode); the gate's inspector stays.
    assert.equal(gate.inspector, INSPECTOR_ID);
    assert.equal(modes.active, false);
  });

  it('fails an inspector that does not answer in time (E_APP_FAILED), and the gate fails closed into emergency support mode', async () => {
    const { gate, modes } = (await inspecting('loop')).services;
    await assert.rejects(gate.inspectSelfTestFrame(1000), refusedWith('E_APP_FAILED', /gave no verdict on the self-test frame within 1000 ms/));
    await waitFor(() => modes.active, 20_000);
    assert.equal(modes.state()!.cause, 'network-protector');
    assert.equal(gate.inspector, undefined);
    // Entering the mode ends with its audit records and the apps stopped: close only after that.
    await waitFor(() => gateway!.services.audit.list({ log: 'system' }).some((record) => record.event === 'emergencyLimits'), 20_000);
    await waitFor(() => !['running', 'starting', 'stopping'].includes(gateway!.services.launcher.status(INSPECTOR_ID).status), 20_000);
  });
});
