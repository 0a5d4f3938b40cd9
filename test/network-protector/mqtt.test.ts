import { strict as assert } from 'node:assert';
import { MqttFlow, parseMqttMessage, probeMqtt } from '../../sample-apps/network-protector/src/protocols/mqtt.js';
import type { Direction, MqttMessage, MqttTransaction } from '../../sample-apps/network-protector/src/protocols/types.js';
import { mqttPacket, mqttString } from '../fixtures/frames.js';

function parse(bytes: Uint8Array, version = 4, direction: Direction = 'toserver'): MqttMessage {
  const parsed = parseMqttMessage(bytes, direction, version);
  assert.ok('message' in parsed, `not parsed: ${JSON.stringify(parsed)}`);
  return parsed.message;
}

const connect311 = mqttPacket(1, 0, [
  ...mqttString('MQTT'),
  4,
  0xee,
  0,
  60,
  ...mqttString('dev-1'),
  ...mqttString('will/t'),
  ...mqttString('bye'),
  ...mqttString('user'),
  ...mqttString('pw'),
]);
const connect5 = mqttPacket(1, 0, [...mqttString('MQTT'), 5, 0x02, 0, 30, 5, 17, 0, 0, 0, 60, ...mqttString('dev-5')]);

const view = (txs: MqttTransaction[]) => txs.map((t) => ({ id: t.txId, dir: t.direction, types: t.messages.map((m) => m.body.kind), events: [...t.events] }));

function run(chunks: [Direction, Uint8Array][], flow = new MqttFlow()): MqttTransaction[] {
  const all: MqttTransaction[] = [];
  for (const [d, b] of chunks) for (const tx of flow.feed(d, b).updated) if (!all.includes(tx)) all.push(tx);
  return all;
}

describe('MQTT parser', () => {
  it('reads CONNECT with will, username, password and flags (3.1.1)', () => {
    const m = parse(connect311);
    assert.equal(m.header.typeName, 'connect');
    const b = m.body;
    assert.ok(b.kind === 'connect');
    assert.equal(b.protocolVersion, 4);
    assert.equal(b.connectFlags, 0xee);
    assert.deepEqual([b.usernameFlag, b.passwordFlag, b.willRetain, b.willQos, b.willFlag, b.cleanSession], [true, true, true, 1, true, true]);
    assert.equal(b.clientId, 'dev-1');
    assert.equal(b.willTopic, 'will/t');
    assert.deepEqual([...b.willMessage!], [...Buffer.from('bye')]);
    assert.equal(b.username, 'user');
    assert.deepEqual([...b.password!], [...Buffer.from('pw')]);
  });

  it('reads MQTT 5 properties where the connection is 5, and only there', () => {
    const c = parse(connect5);
    assert.ok(c.body.kind === 'connect');
    assert.deepEqual(c.body.properties, [{ id: 17, name: 'session_expiry_interval', value: 60 }]);
    const publish = mqttPacket(3, 2, [...mqttString('t'), 0, 9, 3, 1, 1, 99, 0x41]);
    const v5 = parse(publish, 5).body;
    assert.ok(v5.kind === 'publish');
    assert.deepEqual(v5.properties, [
      { id: 1, name: 'payload_format_indicator', value: 1 },
      { id: 99, name: 'unknown', value: undefined },
    ]);
    assert.deepEqual([...v5.message], [0x41]);
    const v3 = parse(publish, 4).body;
    assert.ok(v3.kind === 'publish' && v3.properties === undefined && v3.message.length === 5);
  });

  it('reads every other packet type', () => {
    const cases: [Buffer, number, string, Record<string, unknown>][] = [
      [mqttPacket(2, 0, [1, 5]), 4, 'connack', { sessionPresent: true, returnCode: 5 }],
      [mqttPacket(3, 0x0b, [...mqttString('a/b'), 0, 3, 0x31]), 4, 'publish', { topic: 'a/b', messageId: 3 }],
      [mqttPacket(4, 0, [0, 3]), 4, 'puback', { messageId: 3 }],
      [mqttPacket(5, 0, [0, 3, 0x10]), 5, 'pubrec', { messageId: 3, reasonCode: 0x10 }],
      [mqttPacket(6, 2, [0, 3]), 5, 'pubrel', { messageId: 3, reasonCode: 0 }],
      [mqttPacket(7, 0, [0, 3, 0x92, 0]), 5, 'pubcomp', { messageId: 3, reasonCode: 0x92 }],
      [mqttPacket(8, 2, [0, 4, ...mqttString('x/#'), 2]), 4, 'subscribe', { messageId: 4 }],
      [mqttPacket(9, 0, [0, 4, 2, 0x80]), 4, 'suback', { messageId: 4 }],
      [mqttPacket(10, 2, [0, 5, ...mqttString('x/#'), ...mqttString('y')]), 4, 'unsubscribe', { messageId: 5, topics: ['x/#', 'y'] }],
      [mqttPacket(11, 0, [0, 5, 0, 0, 0x11]), 5, 'unsuback', { messageId: 5 }],
      [mqttPacket(12, 0, []), 4, 'pingreq', {}],
      [mqttPacket(13, 0, []), 4, 'pingresp', {}],
      [mqttPacket(14, 0, []), 4, 'disconnect', {}],
      [mqttPacket(14, 0, [0x8e, 0]), 5, 'disconnect', { reasonCode: 0x8e }],
      [mqttPacket(14, 0, [0x8e]), 5, 'disconnect', { reasonCode: 0 }],
      [mqttPacket(15, 0, [0x18, 0]), 5, 'auth', { reasonCode: 0x18 }],
      [mqttPacket(0, 0, [1, 2]), 4, 'unassigned', {}],
    ];
    for (const [bytes, version, kind, fields] of cases) {
      const m = parse(bytes, version);
      assert.equal(m.body.kind, kind);
      for (const [k, v] of Object.entries(fields)) assert.deepEqual((m.body as any)[k], v, `${kind}.${k}`);
    }
    const pub = parse(mqttPacket(3, 0x0b, [...mqttString('a/b'), 0, 3, 0x31]));
    assert.deepEqual([pub.header.dup, pub.header.qos, pub.header.retain, pub.header.flags], [true, 1, true, 0x0b]);
    const sub = parse(mqttPacket(8, 2, [0, 4, ...mqttString('x/#'), 2]));
    assert.ok(sub.body.kind === 'subscribe');
    assert.deepEqual(sub.body.topics, [{ topic: 'x/#', qos: 2 }]);
  });

  it('takes a remaining length of up to 4 bytes and calls a fifth one malformed', () => {
    assert.deepEqual(parseMqttMessage(Buffer.from([0x30, 0xff, 0xff, 0xff]), 'toserver', 4), { more: true });
    const max = parseMqttMessage(Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]), 'toserver', 4);
    assert.ok('message' in max && max.message.body.kind === 'truncated' && max.skip === 268435455 + 5);
    assert.deepEqual(parseMqttMessage(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]), 'toserver', 4), { malformed: true });
    const flow = new MqttFlow();
    const r = flow.feed('toserver', Buffer.from([0x30, 0x80, 0x80, 0x80, 0x80, 0x01]));
    assert.equal(r.stopped, true);
    assert.deepEqual(r.updated[0]!.events, ['malformed_traffic']);
    assert.deepEqual(flow.feed('toserver', connect311).updated, [], 'a stopped flow parses nothing more');
  });

  it('calls fields that overrun the remaining length malformed', () => {
    assert.deepEqual(parseMqttMessage(mqttPacket(1, 0, [...mqttString('MQTT'), 4, 0x02, 0, 60, 0, 40, 0x61]), 'toserver', 4), { malformed: true });
    assert.deepEqual(parseMqttMessage(mqttPacket(8, 2, [0, 4]), 'toserver', 4), { malformed: true }, 'SUBSCRIBE without a topic');
    assert.deepEqual(parseMqttMessage(mqttPacket(15, 0, []), 'toserver', 5), { malformed: true }, 'AUTH without a reason code (Suricata 7)');
    assert.deepEqual(parseMqttMessage(mqttPacket(3, 2, [...mqttString('t'), 0, 9, 4, 2, 0]), 'toserver', 5), { malformed: true });
    assert.deepEqual(parseMqttMessage(mqttPacket(4, 0, [0]), 'toserver', 4), { malformed: true });
  });

  it('probes as Suricata does', () => {
    assert.equal(probeMqtt(connect311), 'yes');
    assert.equal(probeMqtt(Buffer.from([0x10])), 'more');
    assert.equal(probeMqtt(Buffer.from([0x00, 0])), 'no');
    assert.equal(probeMqtt(Buffer.from([0x36, 0])), 'no');
    assert.equal(probeMqtt(Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff])), 'no');
  });

  it('forms transactions as Suricata: CONNECT+CONNACK, PUBLISH with its acks, SUBSCRIBE+SUBACK', () => {
    const txs = run([
      ['toserver', connect311],
      ['toclient', mqttPacket(2, 0, [0, 0])],
      ['toserver', mqttPacket(3, 4, [...mqttString('a'), 0, 1, 1])],
      ['toclient', mqttPacket(5, 0, [0, 1])],
      ['toserver', mqttPacket(6, 2, [0, 1])],
      ['toclient', mqttPacket(7, 0, [0, 1])],
      ['toserver', mqttPacket(3, 0, [...mqttString('b'), 1])],
      ['toserver', mqttPacket(8, 2, [0, 2, ...mqttString('x'), 1])],
      ['toclient', mqttPacket(9, 0, [0, 2, 1])],
    ]);
    assert.deepEqual(view(txs), [
      { id: 0, dir: 'toserver', types: ['connect', 'connack'], events: [] },
      { id: 1, dir: 'toserver', types: ['publish', 'pubrec', 'pubrel', 'pubcomp'], events: [] },
      { id: 2, dir: 'toserver', types: ['publish'], events: [] },
      { id: 3, dir: 'toserver', types: ['subscribe', 'suback'], events: [] },
    ]);
    assert.ok(txs.every((t) => t.complete));
  });

  it('raises the events for messages out of place', () => {
    const txs = run([
      ['toserver', mqttPacket(12, 0, [])],
      ['toclient', mqttPacket(2, 0, [0, 0])],
      ['toserver', connect311],
      ['toserver', mqttPacket(3, 6, [...mqttString('a'), 0, 1])],
      ['toclient', mqttPacket(4, 0, [0, 9])],
      ['toclient', mqttPacket(9, 0, [0, 9, 0])],
      ['toclient', mqttPacket(11, 0, [0, 9])],
      ['toclient', mqttPacket(2, 0, [0, 0])],
      ['toserver', connect311],
      ['toserver', mqttPacket(0, 0, [])],
    ]);
    assert.deepEqual(
      view(txs).map((t) => t.events),
      [
        ['unintroduced_message'],
        ['missing_connect'],
        [],
        ['invalid_qos_level', 'unintroduced_message'],
        ['missing_publish', 'unintroduced_message'],
        ['missing_subscribe', 'unintroduced_message'],
        ['missing_unsubscribe', 'unintroduced_message'],
        ['double_connect'],
        ['unassigned_msg_type'],
      ],
    );
    // The late CONNACK completes the CONNECT; the second CONNECT is the double one.
  });

  it('tracks the protocol version from CONNECT for the rest of the connection', () => {
    const flow = new MqttFlow();
    const publish = mqttPacket(3, 0, [...mqttString('t'), 0, 0x41]);
    const before = run([['toserver', publish]], flow)[0]!.messages[0]!.body;
    assert.ok(before.kind === 'publish' && before.message.length === 2);
    run([['toserver', connect5]], flow);
    assert.equal(flow.protocolVersion, 5);
    const after = run([['toserver', publish]], flow)[0]!.messages[0]!.body;
    assert.ok(after.kind === 'publish' && after.message.length === 1);
  });

  it('gives the same transactions for a stream split at every offset and in 1-byte segments', () => {
    const toServer = Buffer.concat([
      connect5,
      mqttPacket(3, 2, [...mqttString('a/b'), 0, 7, 0, ...Buffer.alloc(200, 0x42)]),
      mqttPacket(8, 2, [0, 8, 0, ...mqttString('s'), 1]),
    ]);
    const toClient = Buffer.concat([mqttPacket(2, 0, [0, 0, 0]), mqttPacket(4, 0, [0, 7]), mqttPacket(9, 0, [0, 8, 0, 1])]);
    const whole = view(
      run([
        ['toserver', toServer],
        ['toclient', toClient],
      ]),
    );
    assert.equal(whole.length, 3);
    for (let i = 1; i < toServer.length; i++) {
      const j = Math.min(i, toClient.length - 1);
      const split = view(
        run([
          ['toserver', toServer.subarray(0, i)],
          ['toserver', toServer.subarray(i)],
          ['toclient', toClient.subarray(0, j)],
          ['toclient', toClient.subarray(j)],
        ]),
      );
      assert.deepEqual(split, whole, `split at ${i}`);
    }
    const ones: [Direction, Uint8Array][] = [...toServer].map((b) => ['toserver', Uint8Array.of(b)]);
    const back: [Direction, Uint8Array][] = [...toClient].map((b) => ['toclient', Uint8Array.of(b)]);
    assert.deepEqual(view(run([...ones, ...back])), whole);
  });

  it('keeps a message longer than the limit as truncated and skips its bytes across segments', () => {
    const flow = new MqttFlow({ maxMsgLen: 100 });
    const big = mqttPacket(3, 0, [...mqttString('big'), ...Buffer.alloc(500, 1)]);
    const txs = run(
      [
        ['toserver', big.subarray(0, 10)],
        ['toserver', big.subarray(10, 300)],
        ['toserver', Buffer.concat([big.subarray(300), mqttPacket(12, 0, [])])],
      ],
      flow,
    );
    assert.deepEqual(
      view(txs).map((t) => [t.dir, t.types]),
      [
        ['toclient', ['truncated']],
        ['toserver', ['pingreq']],
      ],
      'Suricata files a truncated request to the client',
    );
  });

  it('marks the oldest open transaction when there are too many', () => {
    const flow = new MqttFlow({ maxTx: 5 });
    const txs = run(
      Array.from({ length: 7 }, (_, i): [Direction, Uint8Array] => ['toserver', mqttPacket(3, 2, [...mqttString('q'), 0, i + 1])]),
      flow,
    );
    assert.deepEqual(txs[0]!.events, ['unintroduced_message', 'too_many_transactions']);
    assert.ok(txs[0]!.complete);
    assert.deepEqual(txs[1]!.events, ['unintroduced_message']);
    assert.ok(flow.outstanding <= 7);
  });

  it('survives random bytes without throwing', () => {
    let seed = 7;
    const next = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    for (let i = 0; i < 300; i++) {
      const flow = new MqttFlow({ maxMsgLen: 4096 });
      if (i % 2) flow.feed('toserver', connect5);
      for (let c = 0; c < 10; c++)
        flow.feed(
          next() & 1 ? 'toserver' : 'toclient',
          Uint8Array.from({ length: next() % 40 }, () => next() & 0xff),
        );
    }
  });
});
