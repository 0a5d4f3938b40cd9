/**
 * The traffic gate, live: a gateway with the fixture inspector from its image, proxying a
 * pymodbus server and a mosquitto broker, with clients from distinct 127.x addresses. Transit is
 * refused while no inspector runs; a drop verdict closes the connection and denylists only its
 * source; hostile clients (idle, floods, 1-byte segments, oversized frames) are bounded and counted.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { invokeOperation } from '../../platform/api/operations.js';
import type { Gateway } from '../../platform/main.js';
import type { ServiceStatus } from '../../platform/traffic/gate.js';
import { gatewayWithInspector, INSPECTOR_ID, MARKER, startInspector } from '../fixtures/inspector.js';
import { createTestPki, type TestPki } from '../fixtures/pki.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { mqttClient, type Peers, startPeers } from '../fixtures/traffic-peers.js';
import { waitFor } from '../fixtures/wait.js';

/** A guard against hangs, wide enough for a loaded machine: a live test waits on real peers. */
const until = (condition: () => boolean, timeoutMs = 15_000): Promise<void> => waitFor(condition, timeoutMs);

/** A Modbus/TCP read holding registers request (transaction `id`, 5 registers from 0). */
function readRequest(id: number): Buffer {
  return Buffer.from([id >> 8, id & 255, 0, 0, 0, 6, 1, 3, 0, 0, 0, 5]);
}

/** A raw client from `localAddress`: what it received, and whether the gate closed it. */
function rawClient(port: number, localAddress: string) {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress });
  const state = { received: Buffer.alloc(0), closed: false, connected: false, socket };
  socket.on('connect', () => {
    state.connected = true;
  });
  socket.on('data', (chunk) => {
    state.received = Buffer.concat([state.received, chunk]);
  });
  socket.on('error', () => undefined);
  socket.on('close', () => {
    state.closed = true;
  });
  return state;
}

describe('the traffic gate, live against pymodbus and mosquitto', function () {
  this.timeout(120_000);
  let dir: string;
  let pki: TestPki;
  let peers: Peers;
  let gateway: Gateway;
  /** A plain TCP server that counts what reached it: nothing uninspected may. */
  let sink: net.Server;
  let sinkBytes = 0;

  const service = (name: string): ServiceStatus => gateway.services.gate.status().services.find((entry) => entry.name === name)!;
  const port = (name: string): number => service(name).listen.port;
  const op = (name: string, params: Record<string, unknown> = {}) => invokeOperation(gateway.services, name, params, { progress: () => undefined });

  before(async () => {
    dir = await makeTempDir('isogate-gate-');
    pki = await createTestPki();
    peers = await startPeers(dir);
    sink = net.createServer((socket) => socket.on('data', (chunk) => (sinkBytes += chunk.byteLength)));
    await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
    gateway = await gatewayWithInspector(dir, pki, {
      services: [
        { name: 'plc', protocol: 'modbus', listen: { host: '127.0.0.1', port: 0 }, upstream: { host: '127.0.0.1', port: peers.modbusPort } },
        { name: 'broker', protocol: 'mqtt', listen: { host: '127.0.0.1', port: 0 }, upstream: { host: '127.0.0.1', port: peers.mqttPort } },
        {
          name: 'sink',
          protocol: 'modbus',
          listen: { host: '127.0.0.1', port: 0 },
          upstream: { host: '127.0.0.1', port: (sink.address() as net.AddressInfo).port },
          maxConnections: 3,
          idleTimeoutMs: 300,
          maxHeldBytes: 1024,
        },
      ],
    });
    await gateway.services.gate.settled();
  });

  after(async () => {
    await gateway?.close();
    await peers?.stop();
    sink?.close();
    await removeDir(dir);
  });

  it('refuses transit while no inspector runs (fail closed), counted', async () => {
    assert.equal(gateway.services.gate.status().inspector, null);
    const result = await peers.modbus(port('plc'), '127.0.0.2');
    assert.equal(result.ok, false);
    assert.ok(service('plc').counters.refusedFailClosed >= 1);
    assert.equal(service('plc').counters.accepted, 0);
  });

  it('passes Modbus through the inspector, and a drop denylists only its source', async () => {
    await startInspector(gateway, 'frames');
    assert.equal(gateway.services.gate.status().inspector, INSPECTOR_ID);
    assert.deepEqual(await peers.modbus(port('plc'), '127.0.0.2'), { ok: true, registers: [1, 2, 3, 4, 5] });

    const marker = [`${MARKER[0].toString(16)}${MARKER[1].toString(16)}`, `${MARKER[2].toString(16)}${MARKER[3].toString(16)}`];
    const dropped = await peers.modbus(port('plc'), '127.0.0.3', { write: marker });
    assert.equal(dropped.ok, false);
    await until(() => (gateway.services.lists.denylist().length ?? 0) === 1);
    const [entry] = gateway.services.lists.denylist();
    assert.equal(entry!.ipAddrSource, '127.0.0.3');
    assert.equal(entry!.signatureName, 'FIXTURE marker');
    assert.ok(Math.abs(entry!.timestamp! - Date.now() / 1000) < 600);
    await until(() => gateway.services.audit.list({ log: 'firewall' }).some((record) => record.event === 'trafficBlocked'));
    const blocked = gateway.services.audit.list({ log: 'firewall' }).find((record) => record.event === 'trafficBlocked')!;
    assert.equal(blocked.text, 'The traffic from the device 127.0.0.3 is blocked');
    assert.equal(service('plc').counters.dropped, 1);

    // The denylisted source is refused at accept; the others pass.
    const refusedBefore = service('plc').counters.refusedDenylisted;
    assert.equal((await peers.modbus(port('plc'), '127.0.0.3')).ok, false);
    assert.equal(service('plc').counters.refusedDenylisted, refusedBefore + 1);
    assert.deepEqual(await peers.modbus(port('plc'), '127.0.0.2'), { ok: true, registers: [1, 2, 3, 4, 5] });

    // The admin removes it from the denylist: it passes again, inspected.
    await op('np.denylist.remove', { ip: '127.0.0.3' });
    assert.deepEqual(await peers.modbus(port('plc'), '127.0.0.3'), { ok: true, registers: [1, 2, 3, 4, 5] });
  });

  it('passes MQTT between clients, records an alert, and drops a marked publish', async () => {
    const subscriber = await mqttClient(port('broker'), '127.0.0.4', 'sub');
    await subscriber.subscribeAsync('plant/#', { qos: 1 });
    const received: string[] = [];
    subscriber.on('message', (_topic, payload) => received.push(payload.toString('latin1')));
    const publisher = await mqttClient(port('broker'), '127.0.0.5', 'pub');
    await publisher.publishAsync('plant/a', 'hello', { qos: 1 });
    await publisher.publishAsync('plant/a', 'an ALERT word', { qos: 1 });
    await until(() => received.length === 2);
    assert.deepEqual(received, ['hello', 'an ALERT word']);
    await until(() => gateway.services.audit.list({ log: 'firewall' }).some((record) => record.event === 'trafficAlert' && record.details?.sid === 1002));

    const attacker = await mqttClient(port('broker'), '127.0.0.6', 'attacker');
    const closed = new Promise<void>((resolve) => attacker.once('close', () => resolve()));
    attacker.publish('plant/a', Buffer.from([...MARKER]), { qos: 0 });
    await closed;
    await until(() => gateway.services.lists.denylist().some((entry) => entry.ipAddrSource === '127.0.0.6'));
    await publisher.publishAsync('plant/a', 'still here', { qos: 1 });
    await until(() => received.length === 3);
    assert.deepEqual(received, ['hello', 'an ALERT word', 'still here']);
    await publisher.endAsync();
    await subscriber.endAsync();
  });

  it('does not denylist an allowlisted source: its marked frame still closes the connection', async () => {
    await op('np.allowlist.add', { ip: '127.0.0.7' });
    const client = rawClient(port('plc'), '127.0.0.7');
    await until(() => client.connected);
    client.socket.write(Buffer.from([0, 1, 0, 0, 0, 11, 1, 16, 0, 10, 0, 2, 4, ...MARKER.slice(0, 2)]));
    client.socket.write(Buffer.from(MARKER.slice(2)));
    await until(() => client.closed);
    assert.ok(!gateway.services.lists.denylist().some((entry) => entry.ipAddrSource === '127.0.0.7'));
    assert.deepEqual(await peers.modbus(port('plc'), '127.0.0.7'), { ok: true, registers: [1, 2, 3, 4, 5] });
  });

  it('carries a request sent in 1-byte segments, answered whole', async () => {
    const client = rawClient(port('plc'), '127.0.0.8');
    client.socket.setNoDelay(true);
    await until(() => client.connected);
    for (const byte of readRequest(7)) {
      client.socket.write(Buffer.from([byte]));
      await new Promise((resolve) => setImmediate(resolve));
    }
    await until(() => client.received.length >= 19, 15_000);
    assert.deepEqual([...client.received.subarray(0, 2)], [0, 7]);
    assert.equal(client.received[7], 3);
    client.socket.destroy();
  });

  it('bounds hostile clients: idle ones, floods, oversized frames, and forwards nothing uninspected', async () => {
    const counters = () => service('sink').counters;
    // Opens and never sends: closed at the idle timeout.
    const idle = rawClient(port('sink'), '127.0.0.9');
    await until(() => idle.closed, 10_000);
    assert.equal(counters().closedIdle, 1);

    // A flood: past 3 concurrent connections, refused at accept and counted.
    const flood = Array.from({ length: 6 }, () => rawClient(port('sink'), '127.0.0.10'));
    await until(() => counters().refusedConnectionLimit === 3, 10_000);
    await until(() => flood.every((client) => client.closed), 10_000);

    // An MBAP header announcing 65535 bytes, then more than the 1024 the service holds: closed, counted.
    const big = rawClient(port('sink'), '127.0.0.11');
    await until(() => big.connected);
    big.socket.write(Buffer.concat([Buffer.from([0, 1, 0, 0, 0xff, 0xff, 1, 16]), Buffer.alloc(2000, 7)]));
    await until(() => big.closed);
    assert.equal(counters().closedHeldLimit, 1);
    assert.equal(sinkBytes, 0, 'no byte of an unfinished frame reached the server');
  });

  it('fails closed when the inspector stops: active connections end, new ones are refused', async () => {
    const client = rawClient(port('plc'), '127.0.0.12');
    await until(() => client.connected);
    client.socket.write(readRequest(1));
    await until(() => client.received.length >= 19);
    await gateway.services.launcher.stop(INSPECTOR_ID);
    await until(() => client.closed);
    assert.equal(gateway.services.gate.status().inspector, null);
    assert.equal((await peers.modbus(port('plc'), '127.0.0.2')).ok, false);
    assert.equal(gateway.services.modes.active, false, 'a stop is not a crash');
  });
});
