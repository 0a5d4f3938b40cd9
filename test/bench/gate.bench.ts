/**
 * The traffic gate: 10 Modbus/TCP connections, each keeping 16 read requests in flight, against
 * a local server. Frames per second (requests and responses, each inspected) with the fixture
 * inspector in its isolate (releasing whole MBAP frames), beside the same gate with inspection
 * off (verdicts made on the host, releasing every byte at once): goal >= 0.5x. And the latency a
 * frame's round trip gains through the gate with the inspector, p50 and p99, beside the same
 * round trip straight to the server.
 */
import net from 'node:net';
import path from 'node:path';
import { MemoryAuditLog } from '../../platform/audit/index.js';
import { ConfigStore } from '../../platform/config/index.js';
import type { AppInspector, InspectItem, TrafficVerdict } from '../../platform/sandbox/bridge.js';
import { createAppSandbox } from '../../platform/sandbox/index.js';
import { TrafficGate } from '../../platform/traffic/gate.js';
import { IpLists } from '../../platform/traffic/gate-lists.js';
import { fakeHost } from '../fixtures/fake-host.js';
import { INSPECTOR_ID, INSPECTOR_SOURCE } from '../fixtures/inspector.js';
import { sampleManifest } from '../fixtures/packages.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { type BenchResult, compare, latencyResult } from './harness.js';

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

/** Frames per second over ROUND_MS: 10 connections, 16 requests in flight each. */
async function throughput(port: number): Promise<number> {
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
  const before = answered;
  await new Promise((resolve) => setTimeout(resolve, ROUND_MS));
  const frames = (answered - before) * 2;
  const seconds = (performance.now() - started) / 1000;
  running = false;
  for (const socket of sockets) socket.destroy();
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

export default async function gateBench(): Promise<BenchResult[]> {
  const dir = await makeTempDir('isogate-gate-bench-');
  const server = modbusServer();
  const upstreamPort = await listen(server);
  const config = await ConfigStore.open(path.join(dir, 'config.json'), 'bench');
  const audit = new MemoryAuditLog();
  const failures: string[] = [];
  const gate = new TrafficGate({
    config,
    audit,
    lists: new IpLists(config, audit),
    blocked: () => false,
    onInspectorFailure: (id, error) => failures.push(`${id}: ${error.code}: ${error.message}`),
  });
  await gate.start();
  await config.update((draft) => {
    (draft.NETWORK as Record<string, unknown>).IDS_PROXY = {
      services: [{ name: 'plc', protocol: 'modbus', listen: { host: '127.0.0.1', port: 0 }, upstream: { host: '127.0.0.1', port: upstreamPort } }],
    };
  });
  await gate.settled();
  const gatePort = gate.status().services[0]!.listen.port;

  let inspector: AppInspector | undefined;
  const host = {
    ...fakeHost(INSPECTOR_ID),
    traffic: {
      register: (registered: AppInspector) => {
        inspector = registered;
      },
    },
  };
  host.configuration = { fixture_mode: 'frames' };
  const sandbox = await createAppSandbox({
    manifest: sampleManifest({
      package_id: INSPECTOR_ID,
      capabilities: ['traffic.inspect', 'traffic.block'],
      resources: { memoryMb: 64, cpuMsPerEvent: 1000, storageMb: 1 },
    }),
    files: new Map([['app/main.js', INSPECTOR_SOURCE]]),
    host,
    origin: 'image',
  });
  await sandbox.start();
  while (!inspector) await new Promise((resolve) => setImmediate(resolve));
  const inspecting = inspector;
  const off = inspectionOff();

  const gateSubject: { through: number[]; direct: number[] } = { through: [], direct: [] };
  try {
    const frames = await compare({
      name: `traffic gate, ${CONNECTIONS} Modbus/TCP connections x ${IN_FLIGHT} requests in flight, inspected in the isolate`,
      unit: 'frames/s',
      baselineName: 'the same gate, inspection off',
      higherIsBetter: true,
      target: 0.5,
      rounds: 3,
      warmupRounds: 1,
      subject: async () => {
        gate.register(inspecting);
        return throughput(gatePort);
      },
      baseline: async () => {
        gate.unregister(inspecting.packageId);
        gate.register(off);
        const figure = await throughput(gatePort);
        gate.unregister(off.packageId);
        return figure;
      },
      notes: () => [
        `${gate.status().crossings} crossings carried ${gate.status().inspectedItems} data items`,
        ...(failures.length ? [`inspector failures: ${failures.join('; ')}`] : []),
      ],
    });
    gate.register(inspecting);
    await roundTrips(gatePort, 200);
    await roundTrips(upstreamPort, 200);
    for (let round = 0; round < 3; round += 1) {
      gateSubject.through.push(...(await roundTrips(gatePort, LATENCY_SAMPLES / 3)));
      gateSubject.direct.push(...(await roundTrips(upstreamPort, LATENCY_SAMPLES / 3)));
    }
    const latency = [50, 99].map((p) =>
      latencyResult({
        name: 'traffic gate, one Modbus/TCP round trip through the inspector',
        baselineName: 'straight to the server',
        p,
        // Informational: the added latency is the figure (subject minus baseline), not a ratio goal.
        target: 0,
        subject: gateSubject.through,
        baseline: gateSubject.direct,
      }),
    );
    for (const result of latency) {
      result.notes = [`added per round trip: ${(result.value - result.baseline).toFixed(3)} ms`];
      result.goal = 'reported: the latency the gate adds';
    }
    return [frames, ...latency];
  } finally {
    sandbox.dispose();
    await gate.close();
    server.close();
    await removeDir(dir);
  }
}
