/**
 * Self-testing (issue 16, part 4; issue 14, part 5): each of the manual's four functions tested
 * and reported on its own, the manual's events in the system log, and an error entering
 * emergency support mode, with Network Protector as the cause when it failed its self-check.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { MemoryAuditLog } from '../../platform/audit/index.js';
import { runSelfTest, type SelfTestTargets } from '../../platform/integrity/self-test.js';
import type { EmergencyCause } from '../../platform/modes/index.js';

interface Harness {
  targets: SelfTestTargets;
  audit: MemoryAuditLog;
  entered: { reason: string; cause: EmergencyCause }[];
  np: { id: string; name: string; status: string; hasRules: boolean } | undefined;
  inspector: string | undefined;
  denied: string[];
  verdict: (ip: string) => string;
  services: { name: string; listen: { host: string; port: number }; refusedFailClosed: number }[];
  /** What the gate's self-test frame gets from the inspector. */
  probe: () => Promise<string>;
}

function harness(): Harness {
  const audit = new MemoryAuditLog();
  const h: Harness = {
    audit,
    entered: [],
    np: { id: 'dev.isogate.network-protector', name: 'Network Protector', status: 'running', hasRules: true },
    inspector: 'dev.isogate.network-protector',
    denied: ['192.0.2.7'],
    verdict: () => 'denied',
    services: [],
    probe: async () => 'dropped the self-test frame under sid 90000001',
    targets: undefined as unknown as SelfTestTargets,
  };
  h.targets = {
    audit,
    readAccounts: () => undefined,
    gate: {
      inspector: () => h.inspector,
      listenError: () => undefined,
      services: () => h.services.map((service) => ({ ...service })),
      denylisted: () => h.denied,
      allowlisted: () => [],
      verdictAtAccept: (ip) => h.verdict(ip),
      blocked: () => false,
      inspectSelfTestFrame: () => h.probe(),
    },
    networkProtector: () => h.np,
    enterEmergency: async (reason, cause) => {
      h.entered.push({ reason, cause });
    },
  };
  return h;
}

describe('self-testing', () => {
  it("passes each of the four tests on a sound gateway, with the manual's start and result events", async () => {
    const h = harness();
    const report = await runSelfTest(h.targets);
    assert.equal(report.ok, true, JSON.stringify(report.tests));
    assert.deepEqual(
      report.tests.map((test) => [test.name, test.ok]),
      [
        ['audit', true],
        ['authentication', true],
        ['traffic-blocking', true],
        ['network-protector', true],
      ],
    );
    assert.deepEqual(
      h.audit.records.map((record) => [record.name, record.text]),
      [
        ['admin: Operating system self-testing start', 'Operating system self-testing started'],
        ['SelfTestManager: Operating system self-testing result', 'Operating system self-testing result: completed successfully'],
      ],
    );
    assert.deepEqual(h.entered, []);
  });

  it('enters emergency support mode with Network Protector as the cause when it fails its self-check', async () => {
    const h = harness();
    h.inspector = undefined;
    const report = await runSelfTest(h.targets);
    assert.equal(report.ok, false);
    const np = report.tests.find((test) => test.name === 'network-protector')!;
    assert.equal(np.ok, false);
    assert.match(np.message, /does not inspect the traffic \(nothing does\)/);
    assert.equal(h.entered.length, 1);
    assert.equal(h.entered[0]!.cause, 'network-protector');
    assert.match(h.entered[0]!.reason, /^Network Protector failed its self-check/);
    const error = h.audit.records.find((record) => record.event === 'selfTestError')!;
    assert.equal(error.severity, 'Critical');
    assert.match(error.text, /^Operating system error during self-testing detected: network-protector: /);
    assert.equal(h.audit.records.at(-1)!.text, 'Operating system self-testing result: errors detected');

    const unconfigured = harness();
    unconfigured.np!.hasRules = false;
    assert.equal((await runSelfTest(unconfigured.targets)).ok, false);
    assert.equal(unconfigured.entered[0]!.cause, 'network-protector');
  });

  it("fails Network Protector's self-check when its self-test frame gets the wrong verdict, entering the mode for it", async () => {
    const h = harness();
    h.probe = async () => {
      throw new Error('it released 33 bytes of the self-test frame instead of dropping it');
    };
    const report = await runSelfTest(h.targets);
    const np = report.tests.find((test) => test.name === 'network-protector')!;
    assert.equal(np.ok, false);
    assert.match(np.message, /released 33 bytes of the self-test frame/);
    assert.deepEqual(
      h.entered.map((entry) => entry.cause),
      ['network-protector'],
    );
  });

  it('skips Network Protector when it is stopped or not installed (transit is blocked), and says so', async () => {
    const h = harness();
    h.np!.status = 'stopped';
    h.inspector = undefined;
    const report = await runSelfTest(h.targets);
    const np = report.tests.find((test) => test.name === 'network-protector')!;
    assert.deepEqual([np.ok, np.skipped], [true, true]);
    assert.match(np.message, /stopped: transit traffic is blocked/);
    h.np = undefined;
    assert.match((await runSelfTest(h.targets)).tests.find((test) => test.name === 'network-protector')!.message, /not installed/);
  });

  it('fails the traffic blocking test when a denylisted address would pass, entering the mode for the self-test', async () => {
    const h = harness();
    h.verdict = () => 'inspect';
    const report = await runSelfTest(h.targets);
    const blocking = report.tests.find((test) => test.name === 'traffic-blocking')!;
    assert.equal(blocking.ok, false);
    assert.match(blocking.message, /192\.0\.2\.7 is on the denylist but the gate's verdict at accept is "inspect"/);
    assert.deepEqual(
      h.entered.map((entry) => entry.cause),
      ['self-test'],
    );
  });

  it('probes a protected service while nothing inspects: closed at accept by the gate passes, an answer fails', async () => {
    const h = harness();
    h.np!.status = 'stopped';
    h.inspector = undefined;
    let answers = false;
    const server = net.createServer((socket) => {
      if (answers) socket.end('hello');
      else {
        h.services[0]!.refusedFailClosed += 1;
        socket.destroy();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      h.services = [{ name: 'plc', listen: { host: '127.0.0.1', port: (server.address() as net.AddressInfo).port }, refusedFailClosed: 0 }];
      const closed = await runSelfTest(h.targets);
      assert.equal(closed.tests.find((test) => test.name === 'traffic-blocking')!.ok, true, JSON.stringify(closed.tests));
      answers = true;
      const open = await runSelfTest(h.targets);
      const blocking = open.tests.find((test) => test.name === 'traffic-blocking')!;
      assert.equal(blocking.ok, false);
      assert.match(blocking.message, /answered without an inspector/);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('reports an audit that cannot be written as the audit test failing, and still tests the rest', async () => {
    const h = harness();
    h.targets.audit = {
      record: async () => {
        throw new Error('disk full');
      },
      list: () => [],
    };
    const report = await runSelfTest(h.targets);
    assert.deepEqual(
      report.tests.map((test) => [test.name, test.ok]),
      [
        ['audit', false],
        ['authentication', true],
        ['traffic-blocking', true],
        ['network-protector', true],
      ],
    );
    assert.deepEqual(
      h.entered.map((entry) => entry.cause),
      ['self-test'],
    );
  });
});
