/**
 * Differential test on traffic from real clients: mbpoll and a pymodbus client against a pymodbus
 * server, mosquitto_pub / mosquitto_sub (MQTT 3.1, 3.1.1 and 5) and the npm mqtt client against a
 * mosquitto broker, all on loopback and captured with tcpdump on `lo`. The capture goes through
 * Suricata 7 and through our replay; both must see the same transactions and anomaly events.
 * Servers listen on free ports, given to both sides as the protocols' detection ports.
 */
import { strict as assert } from 'node:assert';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import { decodeTcp, readPcap, TCP } from '../../platform/traffic/pcap.js';
import { replayPcap } from '../../platform/traffic/replay.js';
import { compileRules } from '../../sample-apps/network-protector/src/engine/index.js';
import { ALERT_VARIABLES, alertRuleFiles, countBySid, STREAM_CONTENT_SIDS, suricataCounts } from '../fixtures/alerts.js';
import { fromEve, fromReplay, normalized } from '../fixtures/eve-compare.js';
import { suricataEve } from '../fixtures/suricata.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { MODBUS_SERVER_SCRIPT } from '../fixtures/traffic-peers.js';
import { waitFor, waitForAsync } from '../fixtures/wait.js';

const execFileP = promisify(execFile);
const PYTHON = '/usr/bin/python3';

const CLIENT = `
import sys
from pymodbus.client import ModbusTcpClient
c = ModbusTcpClient("127.0.0.1", port=int(sys.argv[1]), source_address=(sys.argv[2], 0))
assert c.connect()
c.read_holding_registers(0, 5, slave=1)
c.read_coils(0, 10, slave=1)
c.write_register(3, 77, slave=1)
c.write_registers(10, [1, 2, 3], slave=1)
c.write_coil(4, True, slave=1)
c.write_coils(0, [True, False, True], slave=1)
c.read_input_registers(0, 3, slave=1)
c.read_discrete_inputs(0, 8, slave=1)
c.readwrite_registers(read_address=0, read_count=2, write_address=20, write_registers=[5, 6], slave=1)
c.mask_write_register(address=1, and_mask=0xf2, or_mask=0x25, slave=1)
c.read_holding_registers(500, 5, slave=1)
c.close()
`;

// pyserial is not installed and pymodbus 3.0 imports it for serial transports these tests never use.
const SERIAL_STUB = 'class SerialException(Exception):\n    pass\nclass Serial:\n    pass\ndef __getattr__(name):\n    return 0\n';
const SERIAL_ASYNCIO_STUB = 'def create_serial_connection(*args, **kwargs):\n    raise NotImplementedError\n';

/** `promise`, or a rejection naming the step that did not finish: a guard against hangs, not a speed check. */
async function step<T>(label: string, promise: Promise<T>, ms = 15_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${label}: not done in ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

const exited = (child: ChildProcess): Promise<unknown> =>
  child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((resolve) => child.once('exit', resolve));

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function connectable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Connections whose FIN both sides sent, in the capture so far (undefined while a record is half written). */
function closedFlows(file: string): number {
  try {
    const capture = readPcap(readFileSync(file));
    const fins = new Map<string, number>();
    for (const record of capture.records) {
      const s = decodeTcp(capture.linkType, record.data);
      if (!s || !(s.flags & (TCP.FIN | TCP.RST))) continue;
      const key = [`${s.src}/${s.sport}`, `${s.dst}/${s.dport}`].sort().join('-');
      fins.set(key, (fins.get(key) ?? 0) | (s.flags & TCP.RST ? 3 : `${s.src}/${s.sport}` < `${s.dst}/${s.dport}` ? 1 : 2));
    }
    return [...fins.values()].filter((v) => v === 3).length;
  } catch {
    return 0;
  }
}

describe('protocol parsers against Suricata 7 (real clients on loopback)', function () {
  this.timeout(60_000);
  let dir: string;
  const children: ChildProcess[] = [];
  let modbusPort: number;
  let mqttPort: number;
  let capture: string;

  const start = (command: string, args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess => {
    const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    return child;
  };

  before(async () => {
    dir = await makeTempDir('isogate-clients-');
    await fs.mkdir(path.join(dir, 'stubs'));
    await fs.writeFile(path.join(dir, 'stubs/serial.py'), SERIAL_STUB);
    await fs.writeFile(path.join(dir, 'stubs/serial_asyncio.py'), SERIAL_ASYNCIO_STUB);
    await fs.writeFile(path.join(dir, 'server.py'), MODBUS_SERVER_SCRIPT);
    await fs.writeFile(path.join(dir, 'client.py'), CLIENT);
    modbusPort = await freePort();
    mqttPort = await freePort();
    await fs.writeFile(path.join(dir, 'mosquitto.conf'), `listener ${mqttPort} 127.0.0.1\nallow_anonymous true\n`);
    capture = path.join(dir, 'clients.pcap');

    const pyEnv = { PYTHONPATH: path.join(dir, 'stubs') };
    start(PYTHON, [path.join(dir, 'server.py'), String(modbusPort)], pyEnv);
    start('mosquitto', ['-c', path.join(dir, 'mosquitto.conf')]);
    await waitForAsync(async () => (await connectable(modbusPort)) && (await connectable(mqttPort)), 15_000, 50);

    // Bounded in time (the test's timeout and our kill) and in count (-c).
    const tcpdump = start('tcpdump', ['-i', 'lo', '-U', '-n', '-c', '20000', '-w', capture, `tcp port ${modbusPort} or tcp port ${mqttPort}`]);
    let listening = false;
    tcpdump.stderr!.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('listening on')) listening = true;
    });
    await waitFor(() => listening, 10_000).catch(() => {
      throw new Error('tcpdump: not listening on lo in 10 s');
    });

    let connections = 0;
    await execFileP(PYTHON, [path.join(dir, 'client.py'), String(modbusPort), '127.0.0.5'], { env: { ...process.env, ...pyEnv }, timeout: 20_000 });
    connections++;
    await execFileP('mbpoll', ['-m', 'tcp', '-a', '1', '-r', '1', '-c', '4', '-t', '4', '-1', '-p', String(modbusPort), '127.0.0.1'], { timeout: 10_000 });
    connections++;
    await execFileP('mbpoll', ['-m', 'tcp', '-a', '1', '-r', '3', '-t', '4', '-p', String(modbusPort), '127.0.0.1', '123', '456'], { timeout: 10_000 });
    connections++;

    const pub = (version: string, qos: string, topic: string, extra: string[] = []) =>
      execFileP('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(mqttPort), '-V', version, '-q', qos, '-t', topic, '-m', `hello ${version}`, ...extra], {
        timeout: 10_000,
      });
    // Line-buffered, so its SUBACK line arrives before it exits.
    const sub = start('stdbuf', [
      '-oL',
      'mosquitto_sub',
      '-h',
      '127.0.0.1',
      '-p',
      String(mqttPort),
      '-V',
      'mqttv311',
      '-q',
      '1',
      '-t',
      'plant/#',
      '-C',
      '2',
      '-d',
    ]);
    let subscribed = false;
    sub.stdout!.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('SUBACK')) subscribed = true;
    });
    await waitFor(() => subscribed, 10_000).catch(() => {
      throw new Error('mosquitto_sub: no SUBACK in 10 s');
    });
    await pub('mqttv311', '1', 'plant/a', ['-i', 'pub-311', '-u', 'operator', '-P', 'secret', '--will-topic', 'plant/will', '--will-payload', 'gone']);
    await pub('mqttv5', '2', 'plant/b', ['-D', 'publish', 'user-property', 'line', '7']);
    await pub('mqttv31', '1', 'plant/c', ['-i', 'pub-31']);
    await step('mosquitto_sub receiving the three messages', exited(sub));
    connections += 4;

    const client = await step(
      'npm mqtt connecting',
      mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, {
        protocolVersion: 5,
        clientId: 'npm-mqtt',
        properties: { sessionExpiryInterval: 10 },
      }),
    );
    await step('npm mqtt subscribeAsync', client.subscribeAsync('cell/+/temp', { qos: 2 }));
    await step('npm mqtt publishAsync', client.publishAsync('cell/1/temp', '21.5', { qos: 2, properties: { contentType: 'text/plain' } }));
    await step('npm mqtt publishAsync', client.publishAsync('cell/1/temp', '21.6', { qos: 1 }));
    await step('npm mqtt publishAsync', client.publishAsync('cell/1/temp', '21.7', { qos: 0 }));
    await step('npm mqtt unsubscribeAsync', client.unsubscribeAsync('cell/+/temp'));
    await step('npm mqtt endAsync', client.endAsync());
    connections++;

    await waitFor(() => closedFlows(capture) >= connections, 10_000).catch((error) => {
      throw new Error(`${closedFlows(capture)} of ${connections} connections closed in the capture: ${error}`);
    });
    tcpdump.kill('SIGTERM');
    await step('tcpdump exiting', exited(tcpdump));
  });

  after(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await removeDir(dir);
  });

  it('gives the same transactions and events as Suricata, flow by flow', async () => {
    const bytes = await fs.readFile(capture);
    const theirs = normalized(fromEve(await suricataEve(capture, dir, { modbus: [modbusPort], mqtt: [mqttPort] }), [modbusPort, mqttPort]));
    const replay = replayPcap(bytes, { modbusPorts: [modbusPort], mqttPorts: [mqttPort] });
    const mine = normalized(fromReplay(replay.flows));
    assert.deepEqual(mine, theirs);

    // What the comparison covered: every client's flow, with its transactions.
    const modbusFlows = replay.flows.filter((f) => f.protocol === 'modbus');
    const mqttFlows = replay.flows.filter((f) => f.protocol === 'mqtt');
    assert.equal(modbusFlows.length, 3);
    assert.ok(modbusFlows.some((f) => f.client.ip === '127.0.0.5' && f.transactions.length === 11));
    assert.ok(mqttFlows.length >= 5);
    const all = Object.values(mine).flatMap((f) => f.transactions);
    for (const expected of [
      'publish(plant/a,',
      'publish(plant/b,',
      'subscribe(',
      'unsubscribe(',
      'connect(npm-mqtt,5)',
      'connect(pub-311,4)',
      'connect(pub-31,3)',
      'publish(plant/c,',
    ])
      assert.ok(
        all.some((t) => t.includes(expected)),
        `no transaction with ${expected}: ${all.join(' ')}`,
      );
  });

  it("Suricata's quirk: a register read answered in full is value_mismatch (sawp compares its length as coils')", async () => {
    const replay = replayPcap(await fs.readFile(capture), { modbusPorts: [modbusPort], mqttPorts: [mqttPort] });
    const pymodbus = replay.flows.find((f) => f.protocol === 'modbus' && f.client.ip === '127.0.0.5')!;
    const read = pymodbus.transactions[0] as { request?: { functionCode: string; data: any }; events: string[] };
    assert.equal(read.request?.functionCode, 'RdHoldRegs');
    assert.deepEqual(read.events, ['value_mismatch']);
  });

  // The alert differential (differential-alerts.test.ts) over this capture, made once here.
  it('raises the same alerts per sid as Suricata with the keyword and anomaly rules', async () => {
    const lists = await alertRuleFiles();
    const rulesFile = path.join(dir, 'alerts.rules');
    await fs.writeFile(rulesFile, lists.map((l) => l.text).join('\n'));
    const ports = { modbus: [modbusPort], mqtt: [mqttPort] };
    const theirs = suricataCounts(await suricataEve(capture, path.join(dir, 'alerts'), ports, rulesFile, { addresses: ALERT_VARIABLES, ports: {} }));
    const replay = replayPcap(await fs.readFile(capture), { modbusPorts: [modbusPort], mqttPorts: [mqttPort], rules: compileRules(lists, ALERT_VARIABLES) });
    const mine = countBySid(replay.alerts.map((a) => ({ signature_id: a.rule.alert.sid })));
    const stream = new Set(STREAM_CONTENT_SIDS.map(String));
    const exact = (counts: Record<string, number>) => Object.fromEntries(Object.entries(counts).filter(([sid]) => !stream.has(sid)));
    assert.deepEqual(exact(mine), exact(theirs));
    assert.ok(Object.keys(exact(theirs)).length >= 10, `few rules fired: ${JSON.stringify(theirs)}`);
  });
});
