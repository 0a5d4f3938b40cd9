/**
 * Differential tests on crafted captures: the same pcap through real Suricata 7 and through our
 * replay gives the same transactions and the same Modbus/MQTT anomaly events, flow by flow.
 */
import { strict as assert } from 'node:assert';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { replayPcap } from '../../platform/traffic/replay.js';
import { type FlowSummary, fromEve, fromReplay, normalized } from '../fixtures/eve-compare.js';
import { mbap, mqttPacket, mqttString } from '../fixtures/frames.js';
import { PcapBuilder } from '../fixtures/pcap.js';
import { suricataEve } from '../fixtures/suricata.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

const SERVER_PORTS = [502, 1883];

describe('protocol parsers against Suricata 7 (crafted captures)', function () {
  this.timeout(60_000);
  let dir: string;
  before(async () => {
    dir = await makeTempDir('isogate-diff-');
  });
  after(async () => removeDir(dir));

  async function same(name: string, capture: PcapBuilder): Promise<Record<string, FlowSummary>> {
    const file = path.join(dir, `${name}.pcap`);
    const bytes = capture.bytes();
    await fs.writeFile(file, bytes);
    const theirs = normalized(fromEve(await suricataEve(file, dir), SERVER_PORTS));
    const mine = normalized(fromReplay(replayPcap(bytes).flows));
    assert.deepEqual(mine, theirs);
    if (process.env.SHOW) console.log(JSON.stringify(theirs, null, 1));
    return theirs;
  }

  it('Modbus: every public function code, request and response', async () => {
    const cap = new PcapBuilder();
    const c = cap.connection({ port: 502 }).handshake();
    const pairs: [number[], number[]][] = [
      [
        [1, 0, 0, 0, 10],
        [1, 2, 0xff, 3],
      ],
      [
        [2, 0, 0, 0, 8],
        [2, 1, 0x55],
      ],
      [
        [3, 0, 0, 0, 2],
        [3, 4, 0, 1, 0, 2],
      ],
      [
        [4, 0, 0, 0, 1],
        [4, 2, 0, 9],
      ],
      [
        [5, 0, 4, 0xff, 0],
        [5, 0, 4, 0xff, 0],
      ],
      [
        [6, 0, 3, 0, 77],
        [6, 0, 3, 0, 77],
      ],
      [[7], [7, 0x6d]],
      [
        [8, 0, 0, 0xa5, 0x37],
        [8, 0, 0, 0xa5, 0x37],
      ],
      [
        [8, 0, 1, 0xff, 0],
        [8, 0, 1, 0xff, 0],
      ],
      [
        [8, 0, 0x0a, 0, 0],
        [8, 0, 0x0a, 0, 0],
      ],
      [
        [8, 0, 0x30, 0, 0],
        [8, 0, 0x30, 0, 0],
      ],
      [[11], [11, 0, 0, 0, 3]],
      [[12], [12, 8, 0, 0, 0, 1, 0, 0x21, 0, 0]],
      [
        [15, 0, 0x13, 0, 10, 2, 0xcd, 1],
        [15, 0, 0x13, 0, 10],
      ],
      [
        [16, 0, 1, 0, 2, 4, 0, 10, 1, 2],
        [16, 0, 1, 0, 2],
      ],
      [[17], [17, 2, 1, 0xff]],
      [
        [20, 14, 6, 0, 4, 0, 1, 0, 2],
        [20, 12, 5, 6, 0x0d, 0xfe, 0, 0x20, 5, 6, 0x33, 0xcd, 0, 0x40],
      ],
      [
        [21, 13, 6, 0, 4, 0, 7, 0, 3, 6, 0xaf, 4, 0xbe, 0x10, 0x0d],
        [21, 13, 6, 0, 4, 0, 7, 0, 3, 6, 0xaf, 4, 0xbe, 0x10, 0x0d],
      ],
      [
        [22, 0, 4, 0, 0xf2, 0, 0x25],
        [22, 0, 4, 0, 0xf2, 0, 0x25],
      ],
      [
        [23, 0, 3, 0, 2, 0, 14, 0, 1, 2, 0, 0xff],
        [23, 4, 0, 0xfe, 0, 0xed],
      ],
      [
        [24, 4, 0xde],
        [24, 0, 6, 0, 2, 1, 0xb8, 0x12, 0x84],
      ],
      [
        [43, 14, 1, 0],
        [43, 14, 1, 1, 0, 0, 1, 0, 3, 0x41, 0x42, 0x43],
      ],
      [
        [43, 13, 0, 0],
        [43, 13, 0, 0],
      ],
      [
        [43, 0x20, 0, 0],
        [43, 0x20, 0, 0],
      ],
    ];
    pairs.forEach(([req, resp], i) => {
      c.send('toserver', mbap(i + 1, 1, req)).send('toclient', mbap(i + 1, 1, resp));
    });
    c.close();
    const result = await same('modbus-functions', cap);
    assert.equal(Object.values(result)[0]!.transactions.length, pairs.length);
  });

  it('Modbus: exceptions, unknown and user-defined codes, lengths that lie, unsolicited responses', async () => {
    const cap = new PcapBuilder();
    const c = cap.connection({ port: 502 }).handshake();
    c.send('toserver', mbap(1, 1, [3, 0, 0, 0, 1])).send('toclient', mbap(1, 1, [0x83, 2]));
    c.send('toserver', mbap(2, 1, [7])).send('toclient', mbap(2, 1, [0x87, 3]));
    c.send('toserver', mbap(3, 1, [1, 0, 0, 0, 1])).send('toclient', mbap(3, 1, [0x81, 0x0c]));
    c.send('toserver', mbap(4, 1, [65, 1, 2, 3])).send('toclient', mbap(4, 1, [65, 1]));
    c.send('toserver', mbap(5, 1, [100])).send('toclient', mbap(5, 1, [0xe4, 1]));
    c.send('toserver', mbap(6, 1, [0x0d, 1]));
    c.send('toserver', mbap(7, 1, [3, 0, 0, 0, 0]));
    c.send('toserver', mbap(8, 1, [3, 0, 0, 0, 200]));
    c.send('toserver', mbap(9, 1, [5, 0, 1, 0x12, 0x34]));
    c.send('toserver', mbap(10, 1, [16, 0, 1, 0, 2, 3, 0, 10, 1]));
    c.send('toserver', mbap(11, 1, [3, 0, 0, 0, 1, 9, 9]));
    c.send('toserver', mbap(12, 1, [3, 0, 0]));
    c.send('toclient', mbap(99, 1, [3, 2, 0, 1]));
    c.send('toserver', mbap(13, 1, [3, 0, 0, 0, 2])).send('toclient', mbap(13, 1, [3, 2, 0, 1]));
    c.send('toserver', Buffer.from([0, 14, 0, 0, 0, 1, 1]));
    c.send('toserver', mbap(15, 7, [6, 0, 1, 0, 1])).send('toclient', mbap(15, 7, [6, 0, 1, 0, 2]));
    c.close();
    await same('modbus-anomalies', cap);
  });

  it('Modbus: the same frames in 1-byte segments, all in one segment, and out of order', async () => {
    const cap = new PcapBuilder();
    const frames = Buffer.concat([mbap(1, 1, [3, 0, 0, 0, 2]), mbap(2, 1, [16, 0, 1, 0, 2, 4, 0, 10, 1, 2]), mbap(3, 1, [8, 0, 0, 1, 2])]);
    const answers = Buffer.concat([mbap(1, 1, [3, 4, 0, 1, 0, 2]), mbap(2, 1, [16, 0, 1, 0, 2]), mbap(3, 1, [8, 0, 0, 1, 2])]);
    cap.connection({ port: 502 }).handshake().send('toserver', frames, { segment: 1 }).send('toclient', answers, { segment: 1 }).close();
    cap.connection({ port: 502 }).handshake().send('toserver', frames).send('toclient', answers).close();
    const c = cap.connection({ port: 502 }).handshake();
    c.sendAt('toserver', 12, frames.subarray(12, 30)).sendAt('toserver', 0, frames.subarray(0, 12)).sendAt('toserver', 0, frames.subarray(0, 20));
    c.sendAt('toserver', 30, frames.subarray(30)).ack('toclient').send('toclient', answers, { segment: 5 }).close();
    const result = await same('modbus-segments', cap);
    const flows = Object.values(result);
    assert.equal(flows.length, 3);
    assert.deepEqual(flows[0], flows[1]);
    assert.deepEqual(flows[1], flows[2]);
  });

  it('Modbus: a forged retransmission, an acknowledged gap, IPv6, and HTTP on port 502', async () => {
    const frames = Buffer.concat([mbap(1, 1, [3, 0, 0, 0, 1]), mbap(2, 1, [6, 0, 1, 0, 5]), mbap(3, 1, [6, 0, 2, 0, 6])]);
    const cap = new PcapBuilder();
    const a = cap.connection({ port: 502 }).handshake();
    a.sendAt('toserver', 12, frames.subarray(12, 24)).sendAt('toserver', 0, frames.subarray(0, 12));
    const forged = Buffer.from(frames.subarray(12, 24));
    forged[11] = 9;
    a.sendAt('toserver', 12, forged).sendAt('toserver', 24, frames.subarray(24)).ack('toclient');
    a.send('toclient', Buffer.concat([mbap(1, 1, [3, 2, 0, 1]), mbap(2, 1, [6, 0, 1, 0, 5]), mbap(3, 1, [6, 0, 2, 0, 6])])).close();
    const b = cap.connection({ port: 502 }).handshake();
    b.sendAt('toserver', 0, frames.subarray(0, 12)).sendAt('toserver', 24, frames.subarray(24)).ack('toclient').close();
    cap
      .connection({ port: 502, ip: '::1' })
      .handshake()
      .send('toserver', frames)
      .send('toclient', mbap(2, 1, [6, 0, 1, 0, 5]))
      .close();
    cap.connection({ port: 502 }).handshake().send('toserver', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')).send('toserver', frames).close();
    await same('modbus-stream', cap);
  });

  it("Suricata's quirk: a first Modbus request over 16 bytes in small pieces is detected from the response only", async () => {
    // Detection of a direction gives up once more than 16 bytes are buffered without a whole frame
    // (the probe's max_depth); the response decides the protocol, the request is parsed after all,
    // and the flow carries APPLAYER_DETECT_PROTOCOL_ONLY_ONE_DIRECTION.
    const first = mbap(1, 1, [16, 0, 1, 0, 4, 8, 0, 1, 0, 2, 0, 3, 0, 4]);
    assert.ok(first.length > 16);
    const cap = new PcapBuilder();
    cap
      .connection({ port: 502 })
      .handshake()
      .send('toserver', first, { segment: 1 })
      .send('toclient', mbap(1, 1, [16, 0, 1, 0, 4]))
      .close();
    cap
      .connection({ port: 502 })
      .handshake()
      .send('toserver', first)
      .send('toclient', mbap(1, 1, [16, 0, 1, 0, 4]))
      .close();
    const flows = await same('modbus-detection-depth', cap);
    assert.deepEqual(flows['127.0.0.1/40000']!.anomalies, ['modbus.APPLAYER_DETECT_PROTOCOL_ONLY_ONE_DIRECTION@undefined']);
    assert.deepEqual(flows['127.0.0.1/40000']!.transactions, flows['127.0.0.1/40001']!.transactions);
  });

  it('Modbus: a flood of unanswered requests is flagged once and then stops the parser, as in Suricata', async () => {
    const cap = new PcapBuilder();
    const c = cap.connection({ port: 502 }).handshake();
    const many: Buffer[] = [];
    for (let i = 0; i < 505; i++) many.push(mbap(i & 0xffff, 1, [3, 0, 0, 0, 1]));
    c.send('toserver', Buffer.concat(many), { segment: 1200 }).close();
    const result = await same('modbus-flood', cap);
    const flow = Object.values(result)[0]!;
    assert.ok(flow.anomalies.includes('modbus.flooded@500'));
    assert.equal(flow.transactions.length, 501);
  });

  it('MQTT 3.1.1: connect, publish at each QoS, subscribe, unsubscribe, ping, disconnect', async () => {
    const cap = new PcapBuilder();
    const c = cap.connection({ port: 1883 }).handshake();
    c.send('toserver', mqttPacket(1, 0, [...mqttString('MQTT'), 4, 0xc2, 0, 60, ...mqttString('client-1'), ...mqttString('user'), ...mqttString('pw')]));
    c.send('toclient', mqttPacket(2, 0, [0, 0]));
    c.send('toserver', mqttPacket(3, 0, [...mqttString('plant/t1'), 0x31, 0x32]));
    c.send('toserver', mqttPacket(3, 2, [...mqttString('plant/t2'), 0, 7, 0x33])).send('toclient', mqttPacket(4, 0, [0, 7]));
    c.send('toserver', mqttPacket(3, 4, [...mqttString('plant/t3'), 0, 8, 0x34])).send('toclient', mqttPacket(5, 0, [0, 8]));
    c.send('toserver', mqttPacket(6, 2, [0, 8])).send('toclient', mqttPacket(7, 0, [0, 8]));
    c.send('toserver', mqttPacket(8, 2, [0, 9, ...mqttString('plant/#'), 1, ...mqttString('x/+'), 0])).send('toclient', mqttPacket(9, 0, [0, 9, 1, 0]));
    c.send('toserver', mqttPacket(10, 2, [0, 10, ...mqttString('plant/#')])).send('toclient', mqttPacket(11, 0, [0, 10]));
    c.send('toserver', mqttPacket(12, 0, [])).send('toclient', mqttPacket(13, 0, []));
    c.send('toserver', mqttPacket(14, 0, [])).close();
    await same('mqtt-311', cap);
  });

  it('MQTT 5: properties, reason codes, auth, and the events of a confused session', async () => {
    const cap = new PcapBuilder();
    const c = cap.connection({ port: 1883 }).handshake();
    const props = [17, 0, 0, 0, 30, 33, 0, 10, 38, ...mqttString('k'), ...mqttString('v')];
    const will = [5, 24, 0, 0, 0, 5];
    c.send(
      'toserver',
      mqttPacket(1, 0, [
        ...mqttString('MQTT'),
        5,
        0x2e,
        0,
        30,
        props.length,
        ...props,
        ...mqttString('c5'),
        ...will,
        ...mqttString('will/t'),
        ...mqttString('bye'),
      ]),
    );
    c.send('toclient', mqttPacket(2, 0, [1, 0, 4, 36, 1, 37, 1]));
    c.send('toserver', mqttPacket(3, 2, [...mqttString('t5'), 0, 1, 2, 1, 1, 0x61])).send('toclient', mqttPacket(4, 0, [0, 1, 0x10]));
    c.send('toserver', mqttPacket(3, 2, [...mqttString('t5'), 0, 2, 0, 0x62])).send('toclient', mqttPacket(4, 0, [0, 2, 0x87, 0]));
    c.send('toserver', mqttPacket(3, 6, [...mqttString('t5'), 0, 3, 0]));
    c.send('toserver', mqttPacket(3, 2, [...mqttString('t5'), 0, 4, 0, 0x63]));
    c.send('toclient', mqttPacket(4, 0, [0, 77]));
    c.send('toclient', mqttPacket(9, 0, [0, 78, 0, 0]));
    c.send('toclient', mqttPacket(11, 0, [0, 79, 0]));
    c.send('toserver', mqttPacket(15, 0, [0x18, 0]));
    c.send('toserver', mqttPacket(1, 0, [...mqttString('MQTT'), 5, 0x02, 0, 30, 0, ...mqttString('again')]));
    c.send('toserver', mqttPacket(0, 0, []));
    c.send('toserver', mqttPacket(14, 0, [0x8e, 0])).close();
    await same('mqtt-5', cap);
  });

  it('MQTT: messages before CONNECT, a CONNACK without one, a remaining length past 4 bytes', async () => {
    const cap = new PcapBuilder();
    const a = cap.connection({ port: 1883 }).handshake();
    a.send('toserver', mqttPacket(3, 0, [...mqttString('early'), 1])).send('toclient', mqttPacket(2, 0, [0, 0]));
    a.send('toserver', mqttPacket(12, 0, [])).close();
    const b = cap.connection({ port: 1883 }).handshake();
    b.send('toserver', mqttPacket(12, 0, []))
      .send('toserver', Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0]))
      .close();
    const d = cap.connection({ port: 1883 }).handshake();
    d.send('toserver', mqttPacket(1, 0, [...mqttString('MQTT'), 4, 0x02, 0, 60, 0, 40, 0x61])).close();
    await same('mqtt-malformed', cap);
  });

  it('MQTT: a message past the 1 MiB limit is truncated and skipped; over 1024 open transactions are closed', async () => {
    const cap = new PcapBuilder();
    const a = cap.connection({ port: 1883 }).handshake();
    a.send('toserver', mqttPacket(1, 0, [...mqttString('MQTT'), 4, 2, 0, 60, ...mqttString('big')])).send('toclient', mqttPacket(2, 0, [0, 0]));
    a.send('toserver', mqttPacket(3, 0, Buffer.concat([Buffer.from(mqttString('huge')), Buffer.alloc(1_048_600, 0x5a)])), { segment: 60_000 });
    a.send('toserver', mqttPacket(12, 0, [])).close();
    const b = cap.connection({ port: 1883 }).handshake();
    b.send('toserver', mqttPacket(1, 0, [...mqttString('MQTT'), 4, 2, 0, 60, ...mqttString('many')])).send('toclient', mqttPacket(2, 0, [0, 0]));
    const publishes = Array.from({ length: 1030 }, (_, i) => mqttPacket(3, 2, [...mqttString('q'), (i + 1) >> 8, (i + 1) & 0xff]));
    b.send('toserver', Buffer.concat(publishes), { segment: 1000 }).close();
    const flows = await same('mqtt-limits', cap);
    assert.ok(Object.values(flows)[0]!.transactions.includes('publish(truncated)'));
    assert.ok(Object.values(flows)[1]!.anomalies.includes('mqtt.too_many_transactions@1'));
  });

  it('MQTT: split at every offset and in 1-byte segments parses as one segment does', async () => {
    const cap = new PcapBuilder();
    const connect = mqttPacket(1, 0, [...mqttString('MQTT'), 4, 0x02, 0, 60, ...mqttString('seg')]);
    const publish = mqttPacket(3, 2, [...mqttString('a/b'), 0, 5, ...Buffer.alloc(300, 0x41)]);
    for (const segment of [1, 3, 1400]) {
      const c = cap.connection({ port: 1883 }).handshake();
      c.send('toserver', connect, { segment }).send('toclient', mqttPacket(2, 0, [0, 0]), { segment });
      c.send('toserver', publish, { segment })
        .send('toclient', mqttPacket(4, 0, [0, 5]), { segment })
        .close();
    }
    const flows = Object.values(await same('mqtt-segments', cap));
    assert.equal(flows.length, 3);
    assert.deepEqual(flows[0], flows[2]);
  });
});
