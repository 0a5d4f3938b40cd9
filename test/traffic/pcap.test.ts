import { strict as assert } from 'node:assert';
import { decodeTcp, LINKTYPE, readPcap } from '../../platform/traffic/pcap.js';
import { TcpReassembler } from '../../platform/traffic/reassembly.js';
import { replayPcap } from '../../platform/traffic/replay.js';
import { refusedWith } from '../fixtures/errors.js';
import { mbap, mqttPacket, mqttString } from '../fixtures/frames.js';
import { PcapBuilder } from '../fixtures/pcap.js';

function modbusCapture(options?: ConstructorParameters<typeof PcapBuilder>[0], ip?: string): Uint8Array {
  const cap = new PcapBuilder(options);
  cap
    .connection({ port: 502, ...(ip && { ip }) })
    .handshake()
    .send('toserver', mbap(1, 1, [3, 0, 0, 0, 1]))
    .send('toclient', mbap(1, 1, [3, 2, 0, 5]))
    .close();
  return cap.bytes();
}

/** The same capture with each Ethernet header replaced by a Linux cooked (SLL) one. */
function asSll(file: Uint8Array): Uint8Array {
  const capture = readPcap(file);
  const parts: Buffer[] = [];
  const header = Buffer.from(file.subarray(0, 24));
  header.writeUInt32LE(LINKTYPE.LINUX_SLL, 20);
  parts.push(header);
  for (const r of capture.records) {
    const sll = Buffer.alloc(16);
    sll.writeUInt16BE(772, 2);
    Buffer.from(r.data.subarray(12, 14)).copy(sll, 14);
    const frame = Buffer.concat([sll, r.data.subarray(14)]);
    const rec = Buffer.alloc(16);
    rec.writeUInt32LE(r.seconds, 0);
    rec.writeUInt32LE(r.nanos / 1000, 4);
    rec.writeUInt32LE(frame.length, 8);
    rec.writeUInt32LE(frame.length, 12);
    parts.push(rec, frame);
  }
  return Buffer.concat(parts);
}

const summary = (file: Uint8Array) =>
  replayPcap(file).flows.map((f) => ({
    protocol: f.protocol,
    client: f.client,
    server: f.server,
    txs: f.transactions.length,
    events: f.transactions.flatMap((t) => t.events),
  }));

describe('pcap reader and replay', () => {
  it('reads both byte orders and both timestamp precisions alike', () => {
    const base = summary(modbusCapture());
    // value_mismatch: Suricata checks a register read's byte count with the coil formula.
    assert.deepEqual(base, [
      { protocol: 'modbus', client: { ip: '127.0.0.1', port: 40000 }, server: { ip: '127.0.0.1', port: 502 }, txs: 1, events: ['value_mismatch'] },
    ]);
    assert.deepEqual(summary(modbusCapture({ littleEndian: false })), base);
    assert.deepEqual(summary(modbusCapture({ nanoseconds: true })), base);
    const big = readPcap(modbusCapture({ littleEndian: false, nanoseconds: true }));
    const little = readPcap(modbusCapture());
    assert.equal(big.records[0]!.nanos, little.records[0]!.nanos);
    assert.equal(big.records[0]!.seconds, little.records[0]!.seconds);
  });

  it('decodes IPv6 and Linux cooked captures', () => {
    const v6 = summary(modbusCapture({}, '::1'));
    assert.deepEqual(v6[0]!.server, { ip: '::1', port: 502 });
    assert.equal(v6[0]!.txs, 1);
    assert.deepEqual(summary(asSll(modbusCapture())), summary(modbusCapture()));
  });

  it('skips frames that do not decode and goes on', () => {
    const cap = new PcapBuilder();
    cap.frame(new Uint8Array(0));
    cap.frame(Uint8Array.from([1, 2, 3]));
    cap.frame(Uint8Array.from({ length: 60 }, (_, i) => (i * 37) & 0xff));
    const ip = Buffer.alloc(34);
    ip.writeUInt16BE(0x0800, 12);
    ip[14] = 0x4f; // header length 60 in a 20-byte packet
    cap.frame(ip);
    const c = cap.connection({ port: 1883 }).handshake();
    c.send('toserver', mqttPacket(1, 0, [...mqttString('MQTT'), 4, 2, 0, 60, ...mqttString('c')]))
      .send('toclient', mqttPacket(2, 0, [0, 0]))
      .close();
    const result = replayPcap(cap.bytes());
    assert.equal(result.skipped, 4);
    assert.equal(result.flows.length, 1);
    assert.equal(result.flows[0]!.transactions.length, 1);
  });

  it('refuses files that are not classic pcap with E_PCAP', () => {
    const good = modbusCapture();
    assert.throws(() => readPcap(good.subarray(0, 10), 'x.pcap'), refusedWith('E_PCAP', /x\.pcap is 10 bytes/));
    const bad = Buffer.from(good);
    bad.writeUInt32BE(0x12345678, 0);
    assert.throws(() => readPcap(bad), refusedWith('E_PCAP', /magic/));
    const ng = Buffer.from(good);
    ng.writeUInt32BE(0x0a0d0d0a, 0);
    assert.throws(() => readPcap(ng), refusedWith('E_PCAP', /pcapng/));
    const version = Buffer.from(good);
    version.writeUInt16LE(3, 4);
    assert.throws(() => readPcap(version), refusedWith('E_PCAP', /version 3/));
    const link = Buffer.from(good);
    link.writeUInt32LE(147, 20);
    assert.throws(() => readPcap(link), refusedWith('E_PCAP', /link type 147/));
    assert.throws(() => readPcap(good.subarray(0, 30)), refusedWith('E_PCAP', /truncated header/));
    assert.throws(() => readPcap(good.subarray(0, good.length - 1)), refusedWith('E_PCAP', /past the end/));
    const huge = Buffer.from(good);
    huge.writeUInt32LE(0x7fffffff, 24 + 8);
    assert.throws(() => readPcap(huge), refusedWith('E_PCAP', /claims 2147483647 bytes/));
  });

  it('reassembles out-of-order and retransmitted segments, first data winning on overlap', () => {
    const frames = Buffer.concat([mbap(1, 1, [3, 0, 0, 0, 1]), mbap(2, 1, [6, 0, 1, 0, 5])]);
    const cap = new PcapBuilder();
    const c = cap.connection({ port: 502 }).handshake();
    c.sendAt('toserver', 12, frames.subarray(12));
    c.sendAt('toserver', 0, frames.subarray(0, 12));
    // A retransmission of the second frame with another value: the first copy stands.
    const forged = Buffer.from(frames.subarray(12));
    forged[forged.length - 1] = 9;
    c.sendAt('toserver', 12, forged);
    c.ack('toclient').close();
    const [flow] = replayPcap(cap.bytes()).flows;
    const txs = flow!.transactions as any[];
    assert.equal(txs.length, 2);
    assert.deepEqual(txs[1].request.data, { kind: 'write', write: { kind: 'other', address: 1, data: 5 } });
  });

  it('stops the parser of a flow with a gap the peer acknowledged', () => {
    const frames = Buffer.concat([mbap(1, 1, [3, 0, 0, 0, 1]), mbap(2, 1, [3, 0, 0, 0, 1]), mbap(3, 1, [3, 0, 0, 0, 1])]);
    const cap = new PcapBuilder();
    const c = cap.connection({ port: 502 }).handshake();
    c.sendAt('toserver', 0, frames.subarray(0, 12));
    c.sendAt('toserver', 24, frames.subarray(24));
    c.ack('toclient').close();
    const [flow] = replayPcap(cap.bytes()).flows;
    assert.equal(flow!.transactions.length, 1);
    assert.equal(flow!.stopped, true);
  });

  it('inspects no flow whose SYN was not captured, and no port it was not told of', () => {
    const cap = new PcapBuilder();
    cap
      .connection({ port: 502 })
      .send('toserver', mbap(1, 1, [3, 0, 0, 0, 1]))
      .close();
    cap
      .connection({ port: 5020 })
      .handshake()
      .send('toserver', mbap(1, 1, [3, 0, 0, 0, 1]))
      .close();
    assert.deepEqual(replayPcap(cap.bytes()).flows, []);
    const configured = replayPcap(cap.bytes(), { modbusPorts: [5020] }).flows;
    assert.equal(configured.length, 1);
    assert.equal(configured[0]!.server.port, 5020);
  });

  it('does not parse a flow whose first bytes are not the protocol of its port', () => {
    const cap = new PcapBuilder();
    cap
      .connection({ port: 502 })
      .handshake()
      .send('toserver', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))
      .send('toserver', mbap(1, 1, [3, 0, 0, 0, 1]))
      .close();
    assert.deepEqual(replayPcap(cap.bytes()).flows, []);
  });

  it('decodes a TCP segment with options', () => {
    const file = readPcap(modbusCapture());
    const frame = Buffer.from(file.records[3]!.data);
    const withOptions = Buffer.concat([frame.subarray(0, 54), Buffer.from([1, 1, 1, 1]), frame.subarray(54)]);
    withOptions[14 + 20 + 12] = 6 << 4;
    withOptions.writeUInt16BE(withOptions.length - 14, 16);
    const s = decodeTcp(LINKTYPE.ETHERNET, withOptions)!;
    assert.deepEqual([...s.payload], [...decodeTcp(LINKTYPE.ETHERNET, frame)!.payload]);
  });

  it('forgets connections once both sides closed or one reset, and keeps open ones', () => {
    const cap = new PcapBuilder();
    for (let i = 0; i < 50; i++)
      cap
        .connection({ port: 502 })
        .handshake()
        .send('toserver', mbap(1, 1, [3, 0, 0, 0, 1]))
        .close();
    for (let i = 0; i < 5; i++)
      cap
        .connection({ port: 502 })
        .handshake()
        .send('toserver', mbap(1, 1, [3, 0, 0, 0, 1]))
        .reset('toclient');
    cap
      .connection({ port: 502 })
      .handshake()
      .send('toserver', mbap(1, 1, [3, 0, 0, 0, 1]));
    const file = readPcap(cap.bytes());
    let delivered = 0;
    const reassembler = new TcpReassembler({
      data: (_f, _s, bytes) => {
        delivered += bytes.length;
      },
      gap: () => assert.fail('no gap here'),
    });
    for (const r of file.records) reassembler.segment(decodeTcp(file.linkType, r.data)!);
    assert.equal(reassembler.flowCount, 1);
    assert.equal(delivered, 56 * 12);
  });

  it('bounds out-of-order bytes waiting for a hole: past 4 MiB the flow is a gap and stops', () => {
    const cap = new PcapBuilder();
    const c = cap
      .connection({ port: 502 })
      .handshake()
      .send('toserver', mbap(1, 1, [3, 0, 0, 0, 1]))
      .send('toclient', mbap(1, 1, [3, 2, 0, 1]));
    const chunk = Buffer.alloc(60_000, 1);
    // Never acknowledged, so only the bound can make this a gap.
    for (let i = 0; i < 75; i++) c.sendAt('toserver', 12 + 100 + i * chunk.length, chunk);
    const [flow] = replayPcap(cap.bytes()).flows;
    assert.equal(flow!.transactions.length, 1);
    assert.equal(flow!.stopped, true);
  });

  it('bounds the flow table: a connection begun while the most are open is not inspected, and counted; one begun after a close is', () => {
    const cap = new PcapBuilder();
    const request = (c: ReturnType<PcapBuilder['connection']>, id: number) =>
      c.send('toserver', mbap(id, 1, [3, 0, 0, 0, 1])).send('toclient', mbap(id, 1, [3, 2, 0, 1]));
    const first = request(cap.connection({ port: 502 }).handshake(), 1);
    request(cap.connection({ port: 502 }).handshake(), 2);
    // A third while two are open: not followed, its request not parsed.
    request(cap.connection({ port: 502 }).handshake(), 3);
    first.close();
    request(cap.connection({ port: 502 }).handshake(), 4);
    const result = replayPcap(cap.bytes(), { maxOpenFlows: 2 });
    assert.equal(result.untrackedFlows, 1);
    assert.deepEqual(
      result.flows.map((f) => [f.client.port, f.transactions.length]),
      [
        [40000, 1],
        [40001, 1],
        [40003, 1],
      ],
    );
    // Connections to a port the replay parses nothing on take no place in the table.
    const mixed = new PcapBuilder();
    mixed.connection({ port: 80 }).handshake().send('toserver', Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    request(mixed.connection({ port: 502 }).handshake(), 1);
    const parsed = replayPcap(mixed.bytes(), { maxOpenFlows: 1 });
    assert.equal(parsed.untrackedFlows, 0);
    assert.deepEqual(
      parsed.flows.map((f) => [f.server.port, f.transactions.length]),
      [[502, 1]],
    );
  });

  it('forgets a closed flow once past the closed flows it keeps, or when its ports start a new connection, and says so once', () => {
    const cap = new PcapBuilder();
    // 4097 closed connections: one more than the closed flows kept for their last packets.
    for (let i = 0; i < 4097; i++)
      cap
        .connection({ port: 502 }, { port: 20000 + i })
        .handshake()
        .close();
    // The last one's ports again: a new connection, and the closed one is forgotten.
    cap.connection({ port: 502 }, { port: 20000 + 4096 }).handshake();
    const file = readPcap(cap.bytes());
    const forgotten: number[] = [];
    const reassembler = new TcpReassembler({ data: () => undefined, gap: () => assert.fail('no gap here'), forgotten: (flow) => forgotten.push(flow.id) });
    for (const r of file.records) reassembler.segment(decodeTcp(file.linkType, r.data)!);
    assert.deepEqual(forgotten, [1, 4097]);
    assert.equal(reassembler.flowCount, 1);
  });

  it('decodes random frames of every link type without throwing', () => {
    let seed = 99;
    const next = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    const sample = readPcap(modbusCapture()).records[3]!.data;
    for (const link of Object.values(LINKTYPE)) {
      for (let i = 0; i < 500; i++) {
        const frame = i % 2 ? Uint8Array.from({ length: next() % 120 }, () => next() & 0xff) : Buffer.from(sample.subarray(0, next() % sample.length));
        if (i % 2 === 0 && frame.length > 0) frame[next() % frame.length] = next() & 0xff;
        decodeTcp(link, frame);
      }
    }
  });
});
