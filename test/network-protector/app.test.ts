/**
 * Network Protector end to end: the real app, built with the SDK, signed with the platform's key
 * and pre-installed from the gateway's image, configured with real Suricata rules, inspecting
 * live traffic through the gate between clients from distinct 127.x addresses and a pymodbus
 * server and a mosquitto broker.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Gateway } from '../../platform/main.js';
import { startGateway } from '../../platform/main.js';
import type { ServiceStatus } from '../../platform/traffic/gate.js';
import { buildProject } from '../../sdk/build/project.js';
import { DOCUMENT_LIMITS } from '../../sdk/limits.js';
import { signPackage } from '../../sdk/package/index.js';
import { createTestPki, type TestPki } from '../fixtures/pki.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { mqttClient, type Peers, startPeers } from '../fixtures/traffic-peers.js';
import { waitFor } from '../fixtures/wait.js';

const NP = 'dev.isogate.network-protector';
const PROJECT = fileURLToPath(new URL('../../sample-apps/network-protector/', import.meta.url));
const RULES_DIR = fileURLToPath(new URL('../fixtures/suricata-rules/', import.meta.url));
const until = (condition: () => boolean, timeoutMs = 20_000): Promise<void> => waitFor(condition, timeoutMs);
const b64 = (text: string): string => Buffer.from(text).toString('base64');

const COMMANDS = [
  'drop modbus any any -> any any (msg:"NP write to holding registers"; modbus: access write holding; sid:1000001; rev:1;)',
  'alert mqtt any any -> any any (msg:"NP publish to plant/alarm"; mqtt.publish.topic; content:"plant/alarm"; sid:1000002; rev:1;)',
  'drop mqtt any any -> any any (msg:"NP malformed MQTT"; app-layer-event:mqtt.malformed_traffic; sid:1000003; rev:1;)',
].join('\n');

async function gatewayWithProtector(dir: string, pki: TestPki, services: unknown[]): Promise<Gateway> {
  const image = path.join(dir, 'image');
  await fs.mkdir(image, { recursive: true });
  const built = await buildProject(PROJECT);
  const signed = await signPackage(built.packageBytes, { keyPem: pki.platformSigner.keyPem, certPem: pki.platformSigner.certPem, chainPem: [] });
  await fs.writeFile(path.join(image, 'network-protector.igp'), signed);
  const platformRoot = path.join(dir, 'platform-root.pem');
  await fs.writeFile(platformRoot, pki.platformRoot.certPem);
  const gateway = await startGateway({ dataDir: path.join(dir, 'data'), imageDir: image, platformTrustRootFile: platformRoot });
  await gateway.services.config.update((draft) => {
    (draft.NETWORK as Record<string, unknown>).IDS_PROXY = { IPSPFlag: true, blockedListFlag: true, blockedList: [], allowList: [], services };
  });
  await gateway.services.gate.settled();
  return gateway;
}

async function appLogText(dir: string): Promise<string> {
  const root = path.join(dir, 'data', 'logs');
  const texts: string[] = [];
  const walk = async (at: string): Promise<void> => {
    for (const entry of await fs.readdir(at, { withFileTypes: true }).catch(() => [])) {
      const full = path.join(at, entry.name);
      if (entry.isDirectory()) await walk(full);
      else texts.push(await fs.readFile(full, 'latin1'));
    }
  };
  await walk(root);
  return texts.join('\n');
}

describe('Network Protector, the app, live through the gate', function () {
  this.timeout(180_000);
  let dir: string;
  let pki: TestPki;
  let peers: Peers;
  let gateway: Gateway;
  const service = (name: string): ServiceStatus => gateway.services.gate.status().services.find((entry) => entry.name === name)!;
  const port = (name: string): number => service(name).listen.port;

  before(async () => {
    dir = await makeTempDir('isogate-np-app-');
    pki = await createTestPki();
    peers = await startPeers(dir);
    gateway = await gatewayWithProtector(dir, pki, [
      { name: 'plc', protocol: 'modbus', listen: { host: '127.0.0.1', port: 0 }, upstream: { host: '127.0.0.1', port: peers.modbusPort } },
      { name: 'broker', protocol: 'mqtt', listen: { host: '127.0.0.1', port: 0 }, upstream: { host: '127.0.0.1', port: peers.mqttPort } },
    ]);
  });

  after(async () => {
    await gateway?.close();
    await peers?.stop();
    await removeDir(dir);
  });

  it('is pre-installed from the image, not started, and transit is blocked while it is stopped', async () => {
    assert.ok(gateway.services.orchestrator.get(NP));
    assert.notEqual(gateway.services.launcher.status(NP).status, 'running');
    assert.equal((await peers.modbus(port('plc'), '127.0.0.2')).ok, false);
    assert.ok(service('plc').counters.refusedFailClosed >= 1);
  });

  it('drops a Modbus write by its drop rule: connection closed, source denylisted with the signature, the others pass', async () => {
    const anomaly = await fs.readFile(path.join(RULES_DIR, 'modbus-events.rules'), 'utf8');
    await gateway.services.launcher.setConfiguration(NP, {
      APP_CONFIGURATION: { industrial_commands_rules: b64(COMMANDS), industrial_anomaly_rules: b64(anomaly) },
    });
    await gateway.services.launcher.start(NP);
    await until(() => gateway.services.gate.status().inspector === NP);
    assert.deepEqual(await peers.modbus(port('plc'), '127.0.0.2'), { ok: true, registers: [1, 2, 3, 4, 5] });

    const dropped = await peers.modbus(port('plc'), '127.0.0.3', { write: ['0001', '0002'] });
    assert.equal(dropped.ok, false);
    await until(() => gateway.services.lists.denylist().length === 1);
    const [entry] = gateway.services.lists.denylist();
    assert.equal(entry!.ipAddrSource, '127.0.0.3');
    assert.equal(entry!.signatureName, 'NP write to holding registers');
    await until(() => gateway.services.audit.list({ log: 'firewall' }).some((record) => record.event === 'trafficBlocked'));
    const blocked = gateway.services.audit.list({ log: 'firewall' }).find((record) => record.event === 'trafficBlocked')!;
    assert.equal(blocked.text, 'The traffic from the device 127.0.0.3 is blocked');
    assert.equal((await peers.modbus(port('plc'), '127.0.0.3')).ok, false);
    assert.deepEqual(await peers.modbus(port('plc'), '127.0.0.2'), { ok: true, registers: [1, 2, 3, 4, 5] });
  });

  it('only records an alert rule: the MQTT publish to the watched topic is delivered', async () => {
    const subscriber = await mqttClient(port('broker'), '127.0.0.4', 'sub');
    await subscriber.subscribeAsync('plant/#', { qos: 0 });
    const received: string[] = [];
    subscriber.on('message', (topic, payload) => received.push(`${topic} ${payload.toString()}`));
    const publisher = await mqttClient(port('broker'), '127.0.0.5', 'pub');
    await publisher.publishAsync('plant/alarm', 'hot', { qos: 0 });
    await until(() => received.length === 1);
    assert.deepEqual(received, ['plant/alarm hot']);
    await until(() => gateway.services.audit.list({ log: 'firewall' }).some((record) => record.event === 'trafficAlert' && record.details?.sid === 1000002));
    assert.ok(!gateway.services.lists.denylist().some((e) => e.ipAddrSource === '127.0.0.5'));
    await publisher.endAsync();
    await subscriber.endAsync();
  });

  it('drops an MQTT remaining length past 4 bytes by its anomaly rule (mqtt.malformed_traffic): closed, denylisted under its signature', async () => {
    const client = net.connect({ port: port('broker'), host: '127.0.0.1', localAddress: '127.0.0.9' });
    client.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    let answered = 0;
    client.on('data', (chunk: Buffer) => (answered += chunk.byteLength));
    await new Promise<void>((resolve) => client.once('connect', () => resolve()));
    // A PUBLISH whose remaining length runs into a fifth varint byte: no MQTT length can be that long.
    client.write(Buffer.from([0x30, 0x80, 0x80, 0x80, 0x80, 0x01, 0x00]));
    await closed;
    assert.equal(answered, 0);
    await until(() => gateway.services.lists.denylist().some((entry) => entry.ipAddrSource === '127.0.0.9'));
    assert.equal(gateway.services.lists.denylist().find((entry) => entry.ipAddrSource === '127.0.0.9')!.signatureName, 'NP malformed MQTT');
    await until(() => gateway.services.audit.list({ log: 'firewall' }).some((record) => record.event === 'trafficAlert' && record.details?.sid === 1000003));
  });

  it("passes the self-test: the gate's crafted frame is dropped under the reserved sid by the built-in rule, nothing denylisted or recorded as an attack", async () => {
    const denylisted = gateway.services.lists.denylist().length;
    const report = await gateway.services.selfTest();
    const np = report.tests.find((test) => test.name === 'network-protector')!;
    assert.equal(report.ok, true, JSON.stringify(report.tests));
    assert.equal(np.skipped, undefined);
    assert.match(np.message, /dropped the self-test frame \(33 bytes\) under sid 90000001/);
    assert.equal(gateway.services.lists.denylist().length, denylisted);
    const firewall = gateway.services.audit.list({ log: 'firewall', limit: 1000 });
    assert.ok(!firewall.some((record) => record.details?.sid === 90000001 || JSON.stringify(record).includes('192.0.2.')));
    assert.equal(gateway.services.modes.active, false);
    assert.equal(service('plc').counters.dropped, 1, 'the probe is no dropped transit frame');
  });

  it('refuses a change that empties a rule list once added (E_RULE_LIST_REMOVED), changing nothing', async () => {
    const before = gateway.services.launcher.getConfiguration(NP);
    await assert.rejects(
      gateway.services.launcher.setConfiguration(NP, { APP_CONFIGURATION: { industrial_commands_rules: '', industrial_anomaly_rules: b64('') } }),
      (error: { code?: string }) => error.code === 'E_RULE_LIST_REMOVED',
    );
    await assert.rejects(
      gateway.services.launcher.mergeConfiguration(NP, { APP_CONFIGURATION: { industrial_anomaly_rules: null } }),
      (error: { code?: string }) => error.code === 'E_RULE_LIST_REMOVED',
    );
    assert.deepEqual(gateway.services.launcher.getConfiguration(NP), before);
  });

  it('blocks transit again once stopped', async () => {
    await gateway.services.launcher.stop(NP);
    assert.equal(gateway.services.gate.status().inspector, null);
    assert.equal((await peers.modbus(port('plc'), '127.0.0.2')).ok, false);
    assert.equal(gateway.services.modes.active, false);
  });
});

describe('Network Protector, the app, failing its self-check', function () {
  this.timeout(120_000);
  let dir: string;
  let gateway: Gateway | undefined;
  const services = [{ name: 'plc', protocol: 'modbus', listen: { host: '127.0.0.1', port: 0 }, upstream: { host: '127.0.0.1', port: 1 } }];

  beforeEach(async () => {
    dir = await makeTempDir('isogate-np-self-');
  });
  afterEach(async () => {
    // Entering the mode ends with its audit records and the apps stopped: close only after that.
    if (gateway) await until(() => gateway!.services.audit.list({ log: 'system' }).some((record) => record.event === 'emergencyLimits'));
    if (gateway) await until(() => !['running', 'starting', 'stopping'].includes(gateway!.services.launcher.status(NP).status));
    await gateway?.close();
    gateway = undefined;
    await removeDir(dir);
  });

  it('started without rules, puts the gateway in emergency support mode', async () => {
    gateway = await gatewayWithProtector(dir, await createTestPki(), services);
    await gateway.services.launcher.start(NP).catch(() => undefined);
    await until(() => gateway!.services.modes.active);
    assert.match(gateway.services.modes.state()!.reason, /without traffic filtering rules/);
  });

  it('with 3000 rules, more than any store app may carry in its configuration, takes them and inspects with all of them', async () => {
    gateway = await gatewayWithProtector(dir, await createTestPki(), services);
    const many = Array.from({ length: 3000 }, (_, i) => `alert modbus any any -> any 502 (msg:"r${i}"; modbus: function ${(i % 100) + 1}; sid:${i + 1};)`).join(
      '\n',
    );
    const value = { APP_CONFIGURATION: { industrial_commands_rules: b64(many), industrial_anomaly_rules: '' } };
    assert.ok(Buffer.byteLength(JSON.stringify(value)) > DOCUMENT_LIMITS.appConfigurationBytes);
    await gateway.services.launcher.setConfiguration(NP, value);
    await gateway.services.launcher.start(NP);
    await until(() => gateway!.services.gate.status().inspector !== null);
    assert.match(await appLogText(dir), /Inspecting with 3000 rules/);
    assert.equal(gateway.services.modes.active, false);
    await gateway.close();
    gateway = undefined;
  });

  it('with 100k rules, refuses the configuration at the edge by its size (E_DOCUMENT_LIMIT), changing nothing and starting nothing', async () => {
    gateway = await gatewayWithProtector(dir, await createTestPki(), services);
    const before = gateway.services.launcher.getConfiguration(NP);
    const many = Array.from({ length: 100_000 }, (_, i) => `alert modbus any any -> any 502 (msg:"r${i}"; modbus: function 1; sid:${i + 1};)`).join('\n');
    await assert.rejects(
      gateway.services.launcher.setConfiguration(NP, { APP_CONFIGURATION: { industrial_commands_rules: b64(many), industrial_anomaly_rules: '' } }),
      (error: { code?: string; message?: string }) =>
        error.code === 'E_DOCUMENT_LIMIT' && new RegExp(`the limit is ${DOCUMENT_LIMITS.inspectorConfigurationBytes}`).test(error.message ?? ''),
    );
    assert.deepEqual(gateway.services.launcher.getConfiguration(NP), before);
    assert.notEqual(gateway.services.launcher.status(NP).status, 'running');
    assert.equal(gateway.services.modes.active, false);
    // Nothing to wait for in afterEach: the mode was never entered.
    await gateway.close();
    gateway = undefined;
  });

  it('with a rule it cannot compile, logs the list, line and column and enters emergency support mode', async () => {
    gateway = await gatewayWithProtector(dir, await createTestPki(), services);
    const bad = 'alert modbus any any -> any any (msg:"ok"; sid:1;)\nalert modbus any any -> any any (msg:"bad"; frobnicate; sid:2;)';
    await gateway.services.launcher.setConfiguration(NP, { APP_CONFIGURATION: { industrial_commands_rules: b64(bad), industrial_anomaly_rules: '' } });
    await gateway.services.launcher.start(NP).catch(() => undefined);
    await until(() => gateway!.services.modes.active);
    const log = await appLogText(dir);
    assert.match(log, /E_RULE_KEYWORD/);
    assert.match(log, /industrial_commands_rules/);
    assert.match(log, /line 2/);
  });
});
