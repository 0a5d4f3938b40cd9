/**
 * Self-testing (the manual's "Self-testing"): the audit, the identification and authentication
 * tool, the network traffic blocking tool and Network Protector, each tested where it works
 * and reported on its own. An error in any is the manual's cause of emergency support mode; a
 * failing Network Protector is that app failing its self-check (issue 14), and enters the mode
 * with Network Protector as the cause, so the firewall log records it too.
 */

import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { toIsogateError } from '../../sdk/errors.js';
import { hashPassword, verifyPassword } from '../accounts/credentials.js';
import type { Audit } from '../audit/index.js';
import type { EmergencyCause } from '../modes/index.js';

export const SELF_TESTS = ['audit', 'authentication', 'traffic-blocking', 'network-protector'] as const;
export type SelfTestName = (typeof SELF_TESTS)[number];

export interface SelfTestResult {
  name: SelfTestName;
  ok: boolean;
  /** Nothing to test now (Network Protector stopped or not installed: transit is blocked anyway); counts as passed. */
  skipped?: boolean;
  message: string;
}

export interface SelfTestReport {
  startedAt: string;
  finishedAt: string;
  ok: boolean;
  tests: SelfTestResult[];
}

/** What the tests reach: the gateway's own subsystems (platform/main.ts), or stand-ins in a test. */
export interface SelfTestTargets {
  audit: Audit;
  /** Reads both accounts, as a login would (throws if the account store cannot be read). */
  readAccounts(): void;
  /** The traffic gate's state: whether it has an inspector, its listening services, its lists' verdict at accept. */
  gate: {
    inspector(): string | undefined;
    listenError(): string | undefined;
    services(): { name: string; listen: { host: string; port: number }; refusedFailClosed: number }[];
    denylisted(): string[];
    allowlisted(): string[];
    verdictAtAccept(ip: string): string;
    /** Emergency support mode: transit is blocked whatever the inspector. */
    blocked(): boolean;
    /** The gate's crafted frame through the inspector (platform/traffic/self-test-frame.ts): says the verdict, rejects a wrong or missing one. */
    inspectSelfTestFrame(): Promise<string>;
  };
  /** Network Protector: undefined when it is not installed. */
  networkProtector(): { id: string; name: string; status: string; hasRules: boolean } | undefined;
  enterEmergency(reason: string, cause: EmergencyCause): Promise<void>;
  clock?: () => Date;
}

const PROBE_TIMEOUT_MS = 2000;

async function auditTest(targets: SelfTestTargets, start: { seq: number }): Promise<string> {
  const found = targets.audit.list({ log: 'system', limit: 200 }).some((record) => record.seq === start.seq && record.event === 'selfTestStart');
  if (!found) throw new Error(`the start record (seq ${start.seq}) was written but cannot be read back`);
  return `the start record (seq ${start.seq}) was written and read back`;
}

async function authenticationTest(targets: SelfTestTargets): Promise<string> {
  const secret = randomBytes(12).toString('base64');
  const hash = await hashPassword(secret);
  if (!(await verifyPassword(secret, hash))) throw new Error('a password does not verify against its own hash');
  if (await verifyPassword(`${secret}x`, hash)) throw new Error('a wrong password verifies');
  targets.readAccounts();
  return 'a fresh password verifies against its scrypt hash, a wrong one does not, and both accounts are readable';
}

/** Connects to a protected service with no inspector running: the gate must close it at accept, and count it. */
function failClosedProbe(service: { listen: { host: string; port: number } }): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: service.listen.host === '0.0.0.0' ? '127.0.0.1' : service.listen.host, port: service.listen.port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the connection to ${service.listen.host}:${service.listen.port} was not closed within ${PROBE_TIMEOUT_MS} ms`));
    }, PROBE_TIMEOUT_MS);
    socket.on('data', () => {
      clearTimeout(timer);
      socket.destroy();
      reject(new Error(`${service.listen.host}:${service.listen.port} answered without an inspector`));
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

async function trafficBlockingTest(targets: SelfTestTargets): Promise<string> {
  const { gate } = targets;
  const listenError = gate.listenError();
  if (listenError) throw new Error(`a protected service does not listen: ${listenError}`);
  const allowed = new Set(gate.allowlisted());
  const denied = gate.denylisted().filter((ip) => !allowed.has(ip));
  for (const ip of denied) {
    const verdict = gate.verdictAtAccept(ip);
    if (verdict !== 'denied') throw new Error(`${ip} is on the denylist but the gate's verdict at accept is "${verdict}"`);
  }
  const services = gate.services();
  const said = [`${denied.length} denylisted address(es) refused at accept`];
  if (!gate.inspector() || gate.blocked()) {
    for (const service of services) {
      const before = service.refusedFailClosed;
      await failClosedProbe(service);
      const after = gate.services().find((candidate) => candidate.name === service.name)?.refusedFailClosed ?? before;
      if (after <= before) throw new Error(`the connection to ${service.name} was closed, but not by the gate's fail-closed refusal`);
    }
    said.push(`${services.length} protected service(s) refuse a connection while nothing inspects (fail closed)`);
  } else {
    said.push(`${services.length} protected service(s) inspected by ${gate.inspector()}`);
  }
  return said.join('; ');
}

async function networkProtectorTest(targets: SelfTestTargets): Promise<{ message: string; skipped?: boolean }> {
  const np = targets.networkProtector();
  if (!np) return { skipped: true, message: 'not installed: transit traffic is blocked (fail closed)' };
  if (np.status === 'stopped') return { skipped: true, message: `${np.name} is stopped: transit traffic is blocked (fail closed)` };
  if (np.status !== 'running') throw new Error(`${np.name} is ${np.status}`);
  if (!np.hasRules) throw new Error(`${np.name} runs without traffic filtering rules`);
  const inspector = targets.gate.inspector();
  if (inspector !== np.id) throw new Error(`${np.name} runs but does not inspect the traffic (${inspector ? `${inspector} does` : 'nothing does'})`);
  // A real frame through the real inspection path: an inspector that runs but answers wrongly, or
  // not in time, fails here rather than on the plant's traffic.
  const answered = await targets.gate.inspectSelfTestFrame();
  return { message: `${np.name} runs with its rules and inspects the protected services; ${answered}` };
}

/**
 * Runs every test, each whatever the others found; records the manual's events (start, an error
 * per failed test, the result) and, on any error, enters emergency support mode.
 */
export async function runSelfTest(targets: SelfTestTargets): Promise<SelfTestReport> {
  const clock = targets.clock ?? (() => new Date());
  const startedAt = clock().toISOString();
  const tests: SelfTestResult[] = [];
  let start: { seq: number } | undefined;
  try {
    start = await targets.audit.record('selfTestStart');
  } catch (error) {
    tests.push({ name: 'audit', ok: false, message: `the start record cannot be written: ${toIsogateError(error).message}` });
  }
  const run = async (name: SelfTestName, test: () => Promise<string | { message: string; skipped?: boolean }>): Promise<void> => {
    try {
      const outcome = await test();
      tests.push(typeof outcome === 'string' ? { name, ok: true, message: outcome } : { name, ok: true, ...outcome });
    } catch (error) {
      tests.push({ name, ok: false, message: (error as Error).message });
    }
  };
  if (start) await run('audit', () => auditTest(targets, start));
  await run('authentication', () => authenticationTest(targets));
  await run('traffic-blocking', () => trafficBlockingTest(targets));
  await run('network-protector', () => networkProtectorTest(targets));
  const failed = tests.filter((test) => !test.ok);
  // The audit's own failure is said on stderr by the caller's audit; the other events still try.
  const attempt = (step: () => Promise<unknown>): Promise<unknown> => step().catch(() => undefined);
  for (const test of failed) await attempt(() => targets.audit.record('selfTestError', { description: `${test.name}: ${test.message}` }, { test: test.name }));
  await attempt(() => targets.audit.record(failed.length ? 'selfTestFailed' : 'selfTestPassed', {}, { failed: failed.map((test) => test.name) }));
  if (failed.length > 0) {
    const np = failed.find((test) => test.name === 'network-protector');
    await targets.enterEmergency(
      np
        ? `Network Protector failed its self-check: ${np.message}`
        : `self-testing detected errors: ${failed.map((test) => `${test.name}: ${test.message}`).join('; ')}`,
      np ? 'network-protector' : 'self-test',
    );
  }
  return { startedAt, finishedAt: clock().toISOString(), ok: failed.length === 0, tests };
}
