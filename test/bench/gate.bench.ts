/**
 * The traffic gate with the real Network Protector: the app built from sample-apps/, signed with
 * the gateway's platform root and installed from the image (startGateway's platformApps, as the
 * demo gateway does), configured with 100 Suricata rules, started by the launcher and inspecting
 * through the gateway's own gate. 10 Modbus/TCP connections, each keeping 16 read requests in
 * flight, against a local server: frames per second (requests and responses, each inspected),
 * beside the same gate of the same gateway forwarding with inspection off (a host inspector that
 * releases every byte as it comes, through the same queue, verdict path and writes): goal >= 0.5x.
 * And the latency a frame gains through the gate with Network Protector, p50 and p99, from round
 * trips one at a time beside the same round trip straight to the server.
 *
 * The rules are what a plant would load: drop rules for writes and diagnostics, unit and address
 * ranges, raw tcp content rules, Suricata 7's Modbus anomaly rules (8), and three alert rules that
 * every read matches, so alerts cross back with verdicts and the gate records them (within its
 * firewall-log budget) as in production. Of the anomaly rules, only "Modbus Data mismatch" (sid
 * 2250008, an alert) fires: on every answer, as Suricata 7.0.10 itself raises it on a register read
 * answered in full (checked by replaying the bench's request and answer through both).
 */
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { startGateway } from '../../platform/main.js';
import type { AppInspector, InspectItem, TrafficVerdict } from '../../platform/sandbox/bridge.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { waitFor } from '../fixtures/wait.js';
import { type BenchResult, compare, latencyResult, median, percentile } from './harness.js';

const CONNECTIONS = 10;
const IN_FLIGHT = 16;
const ROUND_MS = 2000;
const LATENCY_SAMPLES = 1500;
const REQUEST_BYTES = 12;
const RESPONSE_BYTES = 19;

function request(id: number): Buffer {
  return Buffer.from([(id >> 8) & 255, id & 255, 0, 0, 0, 6, 1, 3, 0, 0, 0, 5]);
}

/** Answers every read holding registers request with 5 registers, frame by frame. */
function modbusServer(): net.Server {
  return net.createServer((socket) => {
    socket.setNoDelay(true);
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      const answers: Buffer[] = [];
      while (pending.length >= REQUEST_BYTES) {
        answers.push(Buffer.from([pending[0]!, pending[1]!, 0, 0, 0, 13, 1, 3, 10, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5]));
        pending = pending.subarray(REQUEST_BYTES);
      }
      if (answers.length) socket.write(Buffer.concat(answers));
    });
    socket.on('error', () => undefined);
  });
}

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

/**
 * Frames per second over ROUND_MS: 10 connections, 16 requests in flight each. The process's CPU
 * per frame (every thread: the gate, the isolate, and the bench's own clients and server, the
 * same on both sides) goes to `cpuPerFrame`, in microseconds: the work, which load does not bend
 * as it bends the rate. The round ends once the gate has closed its side of every connection
 * (`idle`), after the count: the next round switches the inspector, and the gate ends the
 * connections still open at a switch as failing closed, which the notes would count.
 */
async function throughput(port: number, cpuPerFrame: number[], idle: () => boolean): Promise<number> {
  const sockets: net.Socket[] = [];
  let answered = 0;
  let running = true;
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      const socket = net.connect({ port, host: '127.0.0.1' });
      socket.setNoDelay(true);
      sockets.push(socket);
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      });
      let bytes = 0;
      let next = 0;
      socket.on('data', (chunk) => {
        bytes += chunk.byteLength;
        const whole = Math.floor(bytes / RESPONSE_BYTES);
        bytes -= whole * RESPONSE_BYTES;
        answered += whole;
        if (running) socket.write(Buffer.concat(Array.from({ length: whole }, () => request(next++))));
      });
      socket.write(Buffer.concat(Array.from({ length: IN_FLIGHT }, () => request(next++))));
    }),
  );
  const started = performance.now();
  const cpu = process.cpuUsage();
  const before = answered;
  await new Promise((resolve) => setTimeout(resolve, ROUND_MS));
  const frames = (answered - before) * 2;
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  cpuPerFrame.push((used.user + used.system) / Math.max(1, frames));
  running = false;
  for (const socket of sockets) socket.destroy();
  await waitFor(idle, 10_000);
  return frames / seconds;
}

/** Round trips of one request at a time, in milliseconds. */
async function roundTrips(port: number, samples: number): Promise<number[]> {
  const socket = net.connect({ port, host: '127.0.0.1' });
  socket.setNoDelay(true);
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  const times: number[] = [];
  let bytes = 0;
  let sent = 0;
  await new Promise<void>((resolve) => {
    let started = performance.now();
    socket.on('data', (chunk) => {
      bytes += chunk.byteLength;
      if (bytes < RESPONSE_BYTES) return;
      bytes -= RESPONSE_BYTES;
      times.push(performance.now() - started);
      if (times.length === samples) return resolve();
      started = performance.now();
      socket.write(request(sent++));
    });
    socket.write(request(sent++));
  });
  socket.destroy();
  return times;
}

/** The same gate's verdicts without an inspector: every byte released as it comes, on the host. */
function inspectionOff(): AppInspector {
  const seen = new Map<string, number>();
  return {
    packageId: 'inspection-off',
    canBlock: false,
    inspect: async (items: InspectItem[]): Promise<TrafficVerdict[]> =>
      items.flatMap((item) => {
        if (item[0] !== 'data') return [];
        const key = `${item[1]}/${item[2]}`;
        const total = (seen.get(key) ?? 0) + item[3].byteLength;
        seen.set(key, total);
        return [{ release: total }];
      }),
  };
}

const NP = 'dev.isogate.network-protector';

/**
 * 100 rules. The reads the bench sends (function 3, holding registers 0-4, unit 1) and their
 * answers match only the three alert rules at the end and, on each answer, the anomaly list's
 * "Modbus Data mismatch"; every other rule is a candidate for every frame (their headers fit the
 * connection) and is refused by its keywords or content.
 */
export async function benchRules(): Promise<{ commands: string; anomaly: string }> {
  const commands: string[] = [];
  let sid = 1_000_000;
  const add = (text: string): void => {
    sid += 1;
    commands.push(text.replace('SID', String(sid)));
  };
  for (let i = 0; commands.length < 20; i += 1) {
    add(
      `drop modbus any any -> any any (msg:"write holding ${100 + i * 10}"; modbus: access write holding, address ${100 + i * 10}<>${109 + i * 10}; sid:SID; rev:1;)`,
    );
    add(`drop modbus any any -> any any (msg:"write coil ${i}"; modbus: access write coils, address ${i}; sid:SID; rev:1;)`);
  }
  for (let i = 0; commands.length < 40; i += 1) {
    add(`drop modbus any any -> any any (msg:"unit ${10 + i}"; modbus: unit ${10 + i}; sid:SID; rev:1;)`);
    add(
      `drop modbus any any -> any any (msg:"read holding ${1000 + i * 100}"; modbus: access read holding, address ${1000 + i * 100}<>${1099 + i * 100}; sid:SID; rev:1;)`,
    );
  }
  for (const fn of [5, 6, 15, 16, 22, 23, 43, 20, 21, 24])
    add(`drop modbus any any -> any any (msg:"function ${fn}"; modbus: function ${fn}; sid:SID; rev:1;)`);
  for (const sub of [1, 4, 10, 11, 12, 13, 14, 15, 16, 17])
    add(`drop modbus any any -> any any (msg:"diagnostic ${sub}"; modbus: function 8, subfunction ${sub}; sid:SID; rev:1;)`);
  for (const category of ['user', 'reserved', '!assigned'])
    add(`drop modbus any any -> any any (msg:"function ${category}"; modbus: function ${category}; sid:SID; rev:1;)`);
  for (let i = 0; commands.length < 89; i += 1) {
    const bytes = [0xde, 0xad, 0xbe, i].map((b) => b.toString(16).padStart(2, '0')).join(' ');
    add(`drop tcp any any -> any any (msg:"payload ${i}"; flow:to_server; content:"|${bytes}|"; sid:SID; rev:1;)`);
    add(`drop tcp any any -> any any (msg:"banner ${i}"; content:"exploit-${i}"; nocase; sid:SID; rev:1;)`);
  }
  add('alert modbus any any -> any any (msg:"read holding registers"; modbus: access read holding; sid:SID; rev:1;)');
  add('alert modbus any any -> any any (msg:"unit 1 function 3"; modbus: unit 1, function 3; sid:SID; rev:1;)');
  add('alert tcp any any -> any any (msg:"read request bytes"; flow:to_server; content:"|00 06 01 03|"; sid:SID; rev:1;)');
  // The anomaly list: Suricata 7's own modbus-events.rules. Suricata raises its value_mismatch on a
  // register read answered in full, so the bench's answers each carry that alert too.
  const anomaly = await fs.readFile(path.resolve('test/fixtures/suricata-rules/modbus-events.rules'), 'utf8');
  return { commands: `${commands.join('\n')}\n`, anomaly };
}

export default async function gateBench(): Promise<BenchResult[]> {
  const dir = await makeTempDir('isogate-gate-bench-');
  const server = modbusServer();
  const upstreamPort = await listen(server);
  const gateway = await startGateway({ dataDir: path.join(dir, 'data'), platformApps: true });
  const { gate, launcher, config } = gateway.services;
  // The app's inspector as the launcher registers it, so each round can put it back.
  let protector: AppInspector | undefined;
  const register = gate.register.bind(gate);
  gate.register = (inspector: AppInspector): void => {
    if (inspector.packageId === NP) protector = inspector;
    register(inspector);
  };
  const off = inspectionOff();
  const cpu: { through: number[]; off: number[] } = { through: [], off: [] };
  const gateSubject: { through: number[]; off: number[]; direct: number[] } = { through: [], off: [], direct: [] };
  try {
    await config.update((draft) => {
      (draft.NETWORK as Record<string, unknown>).IDS_PROXY = {
        IPSPFlag: true,
        blockedListFlag: true,
        blockedList: [],
        allowList: [],
        services: [{ name: 'plc', protocol: 'modbus', listen: { host: '127.0.0.1', port: 0 }, upstream: { host: '127.0.0.1', port: upstreamPort } }],
      };
    });
    await gate.settled();
    const gatePort = gate.status().services[0]!.listen.port;
    const { commands, anomaly } = await benchRules();
    const b64 = (text: string): string => Buffer.from(text).toString('base64');
    await launcher.setConfiguration(NP, { APP_CONFIGURATION: { industrial_commands_rules: b64(commands), industrial_anomaly_rules: b64(anomaly) } });
    await launcher.start(NP);
    await waitFor(() => gate.status().inspector === NP && protector !== undefined, 60_000);
    const inspecting = protector!;
    const useProtector = (): void => {
      if (gate.inspector === NP) return;
      if (gate.inspector) gate.unregister(gate.inspector);
      gate.register(inspecting);
    };
    const useOff = (): void => {
      if (gate.inspector) gate.unregister(gate.inspector);
      gate.register(off);
    };
    const before = gate.status().alertsRecorded + gate.status().alertsNotRecorded;
    const idle = (): boolean => gate.status().services[0]!.counters.active === 0;

    const frames = await compare({
      name: `traffic gate, ${CONNECTIONS} Modbus/TCP connections x ${IN_FLIGHT} requests in flight, Network Protector with 100 rules`,
      unit: 'frames/s',
      baselineName: 'the same gate, inspection off',
      higherIsBetter: true,
      target: 0.5,
      rounds: 5,
      warmupRounds: 1,
      subject: async () => {
        useProtector();
        return throughput(gatePort, cpu.through, idle);
      },
      baseline: async () => {
        useOff();
        return throughput(gatePort, cpu.off, idle);
      },
      notes: () => {
        const status = gate.status();
        const counters = status.services[0]!.counters;
        return [
          `${status.crossings} crossings carried ${status.inspectedItems} data items; ${counters.dropped} dropped, ${counters.closedFailClosed} closed failing closed`,
          `alerts: ${status.alertsRecorded + status.alertsNotRecorded - before} raised, ${status.alertsRecorded} recorded in the firewall log (its budget), the rest counted`,
          `CPU per frame (the whole process, median of the rounds): ${median(cpu.through).toFixed(2)} us with Network Protector, ${median(cpu.off).toFixed(2)} us with inspection off`,
          `Network Protector ${launcher.status(NP).status}`,
        ];
      },
    });
    if (launcher.status(NP).status !== 'running') throw new Error(`Network Protector is ${launcher.status(NP).status} after the throughput rounds`);

    for (const [use, samples] of [
      [useProtector, gateSubject.through],
      [useOff, gateSubject.off],
    ] as const) {
      use();
      await roundTrips(gatePort, 200);
      samples.length = 0;
    }
    await roundTrips(upstreamPort, 200);
    for (let round = 0; round < 3; round += 1) {
      useProtector();
      gateSubject.through.push(...(await roundTrips(gatePort, LATENCY_SAMPLES / 3)));
      useOff();
      gateSubject.off.push(...(await roundTrips(gatePort, LATENCY_SAMPLES / 3)));
      gateSubject.direct.push(...(await roundTrips(upstreamPort, LATENCY_SAMPLES / 3)));
    }
    const latency = [50, 99].map((p) => {
      const result = latencyResult({
        name: 'traffic gate, one Modbus/TCP round trip (2 frames) through Network Protector',
        baselineName: 'straight to the server',
        p,
        // Informational: the added latency is the figure, not a ratio goal.
        target: 0,
        subject: gateSubject.through,
        baseline: gateSubject.direct,
      });
      const offAt = percentile(gateSubject.off, p);
      // A round trip is two frames, each through the gate once.
      result.notes = [
        `added per frame: ${((result.value - result.baseline) / 2).toFixed(3)} ms (the gate with inspection off: ${((offAt - result.baseline) / 2).toFixed(3)} ms, round trip ${offAt.toFixed(3)} ms)`,
      ];
      result.goal = 'reported: the latency the gate and Network Protector add';
      return result;
    });
    return [frames, ...latency];
  } finally {
    await gateway.close();
    server.close();
    await removeDir(dir);
  }
}
