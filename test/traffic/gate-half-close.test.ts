/**
 * The traffic gate and TCP's half-close, and MQTT messages past the inspection bound, live: a
 * gateway with the fixture inspector from its image, real TCP peers behind it. A client's FIN is
 * passed on as a FIN and the server may still answer (and the other way round); bytes of a frame
 * that never completed stay behind. An MQTT message longer than 1 MiB closes its connection before
 * any byte of it is forwarded, recorded under the gateway's sid, unless NETWORK.IDS_PROXY says pass.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import type { Gateway } from '../../platform/main.js';
import { OVERSIZED_SID, type ServiceStatus } from '../../platform/traffic/gate.js';
import { gatewayWithInspector, INSPECTOR_ID, startInspector } from '../fixtures/inspector.js';
import { createTestPki } from '../fixtures/pki.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { waitFor } from '../fixtures/wait.js';

const until = (condition: () => boolean, timeoutMs = 15_000): Promise<void> => waitFor(condition, timeoutMs);

const request = (id: number): Buffer => Buffer.from([id >> 8, id & 255, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1]);
const response = (id: number): Buffer => Buffer.from([id >> 8, id & 255, 0, 0, 0, 5, 1, 3, 2, 0, 42]);

/** A real TCP server with half-open sockets: what each connection received, and when its client's FIN came. */
function peer(onConnection?: (socket: net.Socket, state: PeerConnection) => void) {
  const connections: PeerConnection[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    const state = track(socket);
    connections.push(state);
    onConnection?.(socket, state);
  });
  return { server, connections };
}
interface PeerConnection {
  received: Buffer;
  ended: boolean;
  closed: boolean;
  socket: net.Socket;
}

/** What a socket received and whether its peer's FIN, and then its close, came. */
function track(socket: net.Socket): PeerConnection {
  const state: PeerConnection = { received: Buffer.alloc(0), ended: false, closed: false, socket };
  socket.on('data', (chunk: Buffer) => {
    state.received = Buffer.concat([state.received, chunk]);
  });
  socket.on('end', () => {
    state.ended = true;
  });
  socket.on('close', () => {
    state.closed = true;
  });
  socket.on('error', () => undefined);
  return state;
}

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

/** A client with a half-open socket through the gate. */
async function client(port: number, localAddress: string) {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress, allowHalfOpen: true });
  const state = track(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return state;
}

describe('the traffic gate: half-close and MQTT messages past the inspection bound', function () {
  this.timeout(120_000);
  let dir: string;
  let gateway: Gateway;
  // Answers every request once its client has half-closed, then closes its side.
  const answersAtEnd = peer((socket, state) =>
    socket.on('end', () => {
      for (let at = 0; at + 12 <= state.received.length; at += 12) socket.write(response(state.received.readUInt16BE(at)));
      socket.end();
    }),
  );
  // Answers at once and half-closes its side at once: the client may still send.
  const closesFirst = peer((socket) => {
    socket.write(response(7));
    socket.end();
  });
  const mqttSink = peer();
  const service = (name: string): ServiceStatus => gateway.services.gate.status().services.find((entry) => entry.name === name)!;
  const port = (name: string): number => service(name).listen.port;

  before(async () => {
    dir = await makeTempDir('isogate-gate-half-');
    const pki = await createTestPki();
    const upstream = (name: string, protocol: string, upstreamPort: number) => ({
      name,
      protocol,
      listen: { host: '127.0.0.1', port: 0 },
      upstream: { host: '127.0.0.1', port: upstreamPort },
    });
    gateway = await gatewayWithInspector(dir, pki, {
      services: [
        upstream('answers', 'modbus', await listen(answersAtEnd.server)),
        upstream('closes', 'modbus', await listen(closesFirst.server)),
        { ...upstream('broker', 'mqtt', await listen(mqttSink.server)), maxHeldBytes: 4 * 1024 * 1024 },
      ],
    });
    await gateway.services.gate.settled();
  });

  after(async () => {
    await gateway?.close();
    for (const { server } of [answersAtEnd, closesFirst, mqttSink]) server.close();
    await removeDir(dir);
  });

  it("passes a client's FIN on as a FIN: the server answers after it, and the connection then ends", async () => {
    await startInspector(gateway, 'frames');
    await until(() => gateway.services.gate.status().inspector === INSPECTOR_ID);
    const c = await client(port('answers'), '127.0.0.21');
    c.socket.write(Buffer.concat([request(1), request(2)]));
    c.socket.end();
    await until(() => c.ended);
    assert.deepEqual(c.received, Buffer.concat([response(1), response(2)]));
    const server = answersAtEnd.connections.at(-1)!;
    assert.equal(server.ended, true);
    assert.deepEqual(server.received, Buffer.concat([request(1), request(2)]));
    await until(() => c.closed && server.closed);
    assert.equal(service('answers').counters.closedFailClosed, 0);
  });

  it('drops the bytes of a frame that never completed before a FIN, and still passes the FIN', async () => {
    const c = await client(port('answers'), '127.0.0.22');
    // A whole request, then the first 5 bytes of one that never completes.
    c.socket.write(Buffer.concat([request(3), request(4).subarray(0, 5)]));
    c.socket.end();
    await until(() => c.ended);
    const server = answersAtEnd.connections.at(-1)!;
    assert.deepEqual(server.received, request(3), 'the unfinished frame was not forwarded uninspected');
    assert.deepEqual(c.received, response(3));
  });

  it("passes the server's FIN on to the client, which may still send and be heard", async () => {
    const c = await client(port('closes'), '127.0.0.23');
    await until(() => c.ended);
    assert.deepEqual(c.received, response(7));
    c.socket.write(request(8));
    const server = closesFirst.connections.at(-1)!;
    await until(() => server.received.length === 12);
    assert.deepEqual(server.received, request(8));
    c.socket.end();
    await until(() => server.ended && c.closed);
  });

  it('closes a connection whose MQTT message is longer than the 1 MiB bound before any byte of it passes, recorded', async () => {
    const before = mqttSink.connections.length;
    const c = await client(port('broker'), '127.0.0.24');
    // A whole PINGREQ, then a PUBLISH announcing 2 MiB (remaining length as a 4-byte varint).
    c.socket.write(Buffer.from([0xc0, 0x00]));
    await until(() => mqttSink.connections.length > before && mqttSink.connections.at(-1)!.received.length === 2);
    c.socket.write(Buffer.concat([Buffer.from([0x30, 0x80, 0x80, 0x80, 0x01, 0, 1, 0x74]), Buffer.alloc(64 * 1024, 0x61)]));
    await until(() => c.closed);
    assert.equal(service('broker').counters.droppedOversized, 1);
    const sink = mqttSink.connections.at(-1)!;
    await until(() => sink.ended || sink.closed);
    assert.deepEqual(sink.received, Buffer.from([0xc0, 0x00]), 'nothing of the oversized message reached the broker');
    await until(() => gateway.services.audit.list({ log: 'firewall' }).some((record) => record.event === 'trafficAlert'));
    const record = gateway.services.audit.list({ log: 'firewall' }).find((entry) => entry.event === 'trafficAlert')!;
    assert.match(
      record.text,
      new RegExp(`Rule ${OVERSIZED_SID} "isogate: MQTT message longer than the 1 MiB inspection bound" triggered on traffic from the device 127.0.0.24`),
    );
    // Not denylisted: the gateway's own drop closes the connection only.
    assert.equal(gateway.services.lists.denylist().length, 0);
  });

  it('a message at the bound is not oversized, and NETWORK.IDS_PROXY.oversizedMqtt "pass" lets a longer one through uninspected', async () => {
    // The fixture releasing every chunk as it comes, as Network Protector does with a truncated message.
    await gateway.services.launcher.stop(INSPECTOR_ID);
    await startInspector(gateway, 'chunk');
    await until(() => gateway.services.gate.status().inspector === INSPECTOR_ID);
    // 1 MiB exactly: remaining length 0x100000 = [0x80, 0x80, 0x40].
    const atBound = await client(port('broker'), '127.0.0.25');
    atBound.socket.write(Buffer.concat([Buffer.from([0x30, 0x80, 0x80, 0x40]), Buffer.alloc(1024 * 1024, 0x62)]));
    await until(() => mqttSink.connections.at(-1)!.received.length === 4 + 1024 * 1024, 30_000);
    assert.equal(service('broker').counters.droppedOversized, 1);
    atBound.socket.destroy();

    await assert.rejects(
      gateway.services.config.update((draft) => {
        (draft.NETWORK as { IDS_PROXY: Record<string, unknown> }).IDS_PROXY.oversizedMqtt = 'sometimes';
      }),
      { code: 'E_CONFIG' },
    );
    await gateway.services.config.update((draft) => {
      (draft.NETWORK as { IDS_PROXY: Record<string, unknown> }).IDS_PROXY.oversizedMqtt = 'pass';
    });
    const passes = await client(port('broker'), '127.0.0.26');
    const message = Buffer.concat([Buffer.from([0x30, 0x80, 0x80, 0x80, 0x01]), Buffer.alloc(2 * 1024 * 1024, 0x63)]);
    passes.socket.write(message);
    await until(() => mqttSink.connections.at(-1)!.received.length === message.length, 30_000);
    assert.equal(service('broker').counters.droppedOversized, 1);
    assert.equal(passes.closed, false);
    passes.socket.destroy();
  });
});
