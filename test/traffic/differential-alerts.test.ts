/**
 * Differential tests of the rule engine: the same rules (every modbus: form, every mqtt.* keyword,
 * content with its modifiers, flow, and Suricata's own modbus-events.rules / mqtt-events.rules)
 * over the same captures through real Suricata 7.0.10 and through `replayPcap`: the same number of
 * alerts per sid.
 */
import { strict as assert } from 'node:assert';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { alertEve } from '../../platform/traffic/eve-alert.js';
import { replayPcap } from '../../platform/traffic/replay.js';
import { compileRules } from '../../sample-apps/network-protector/src/engine/index.js';
import { ALERT_VARIABLES, alertRuleFiles, countBySid, modbusCapture, mqttCapture, STREAM_CONTENT_SIDS, suricataCounts } from '../fixtures/alerts.js';
import { mbap } from '../fixtures/frames.js';
import { PcapBuilder } from '../fixtures/pcap.js';
import { suricataEve } from '../fixtures/suricata.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

describe('rule engine against Suricata 7 (alerts per sid)', function () {
  this.timeout(120_000);
  let dir: string;
  before(async () => {
    dir = await makeTempDir('isogate-alerts-');
  });
  after(async () => removeDir(dir));

  async function compare(name: string, cap: PcapBuilder): Promise<Record<string, number>> {
    const file = path.join(dir, `${name}.pcap`);
    const bytes = cap.bytes();
    await fs.writeFile(file, bytes);
    const lists = await alertRuleFiles();
    const rulesFile = path.join(dir, `${name}.rules`);
    await fs.writeFile(rulesFile, lists.map((l) => l.text).join('\n'));
    const theirs = suricataCounts(await suricataEve(file, dir, {}, rulesFile, { addresses: ALERT_VARIABLES, ports: {} }));
    const replay = replayPcap(bytes, { rules: compileRules(lists, ALERT_VARIABLES) });
    const mine = countBySid(replay.alerts.map((a) => alertEve(a).alert as { signature_id: number }));
    if (process.env.SHOW) console.log(name, JSON.stringify({ theirs, mine }));
    // Suricata's quirk for content outside a sticky buffer (stream content): it inspects the
    // reassembled stream in chunks its stream engine cuts (a short flow is one chunk, at its end),
    // alerting once per chunk; the engine inspects each chunk of PDUs it releases. The same rules
    // fire, not as many times.
    const stream = new Set(STREAM_CONTENT_SIDS.map(String));
    const exact = (counts: Record<string, number>) => Object.fromEntries(Object.entries(counts).filter(([sid]) => !stream.has(sid)));
    assert.deepEqual(exact(mine), exact(theirs));
    const fired = (counts: Record<string, number>) => Object.keys(counts).filter((sid) => stream.has(sid));
    assert.deepEqual(fired(mine), fired(theirs));
    return theirs;
  }

  it('Modbus: every modbus: form, flow, header variables, payload content and the anomaly events', async () => {
    const cap = new PcapBuilder();
    modbusCapture(cap);
    const counts = await compare('modbus', cap);
    assert.ok(Object.keys(counts).length >= 15, 'most rules fire');
  });

  it('MQTT: every mqtt.* keyword, sticky buffers with content modifiers and the anomaly events', async () => {
    const cap = new PcapBuilder();
    mqttCapture(cap);
    const counts = await compare('mqtt', cap);
    assert.ok(Object.keys(counts).length >= 20, 'most rules fire');
  });

  it("Suricata's quirk: after a drop rule matched, nothing more of the flow is inspected, even offline", async () => {
    const cap = new PcapBuilder();
    const c = cap.connection({ port: 502 }).handshake();
    c.send('toserver', mbap(1, 1, [6, 0, 1, 0, 5])).send('toclient', mbap(1, 1, [6, 0, 1, 0, 5]));
    c.send('toserver', mbap(2, 1, [3, 0, 0, 0, 1])).send('toclient', mbap(2, 1, [3, 2, 0, 1]));
    c.close();
    const text = [
      'drop modbus any any -> any any (msg:"write"; modbus: function 6; sid:1; rev:1;)',
      'alert modbus any any -> any any (msg:"read"; modbus: function 3; sid:2; rev:1;)',
      '',
    ].join('\n');
    const file = path.join(dir, 'drop.pcap');
    await fs.writeFile(file, cap.bytes());
    const rulesFile = path.join(dir, 'drop.rules');
    await fs.writeFile(rulesFile, text);
    const eve = await suricataEve(file, dir, {}, rulesFile);
    const replay = replayPcap(cap.bytes(), { rules: compileRules([{ name: 'drop.rules', text }]) });
    const mine = replay.alerts.map((a) => alertEve(a));
    assert.deepEqual(countBySid(mine.map((e) => e.alert as { signature_id: number })), { 1: 1 });
    assert.deepEqual(suricataCounts(eve), { 1: 1 });
    // In IDS mode Suricata reports the drop rule's alert as allowed, and so does the replay.
    const theirs = eve.find((e) => e.event_type === 'alert')!;
    assert.equal(theirs.alert.action, (mine[0]!.alert as { action: string }).action);
  });

  /** The capture time of each alert of `sid`, and whether it named the application protocol, on both sides. */
  async function alertTimes(name: string, cap: PcapBuilder, rules: string[]): Promise<{ theirs: Record<string, string[]>; mine: Record<string, string[]> }> {
    const file = path.join(dir, `${name}.pcap`);
    await fs.writeFile(file, cap.bytes());
    const rulesFile = path.join(dir, `${name}.rules`);
    await fs.writeFile(rulesFile, `${rules.join('\n')}\n`);
    const by = (records: { alert?: unknown; timestamp?: unknown; app_proto?: unknown }[]): Record<string, string[]> => {
      const out: Record<string, string[]> = {};
      for (const e of records) {
        if (!e.alert) continue;
        const sid = String((e.alert as { signature_id: number }).signature_id);
        const times = out[sid] ?? [];
        times.push(`${String(e.timestamp).slice(11, 26)}${e.app_proto ? '' : ' before detection'}`);
        out[sid] = times;
      }
      return out;
    };
    const eve = await suricataEve(file, dir, {}, rulesFile);
    const replay = replayPcap(cap.bytes(), { rules: compileRules([{ name: `${name}.rules`, text: rules.join('\n') }]) });
    return { theirs: by(eve.filter((e) => e.event_type === 'alert')), mine: by(replay.alerts.map((a) => alertEve(a))) };
  }

  /** Two Modbus reads, each segment ACKed on its own or (`acks: false`) by the answer, then both FINs and the last ACK. */
  function twoReads(acks: boolean): PcapBuilder {
    const cap = new PcapBuilder();
    const c = cap.connection({ port: 502 }).handshake();
    for (let id = 1; id <= 2; id++)
      c.send('toserver', mbap(id, 1, [3, 0, 0, 0, 2]), { ack: acks }).send('toclient', mbap(id, 1, [3, 4, 0, 1, 0, 2]), { ack: acks });
    c.close();
    return cap;
  }

  // Header-only rules (packet-rules.ts): per packet, on the same packets as Suricata's.
  for (const acks of [true, false]) {
    it(`header-only rules alert on the packets Suricata's do: IP-only, flow options, the protocol's (${acks ? 'every segment ACKed' : 'ACKed by the answer'})`, async () => {
      const { theirs, mine } = await alertTimes(`header-only-${acks}`, twoReads(acks), [
        'alert modbus any any -> any any (msg:"every modbus packet"; sid:1;)',
        'alert modbus any any -> any 502 (msg:"modbus to the server"; sid:2;)',
        'alert modbus any any -> any any (msg:"established to client"; flow:established,to_client; sid:3;)',
        'alert modbus 127.0.0.2 any -> any any (msg:"another address"; sid:4;)',
        'alert tcp any any -> any any (msg:"ip-only"; sid:5;)',
        'alert tcp any any -> any 502 (msg:"ip-only, one way"; sid:6;)',
        'alert tcp any any <> any 502 (msg:"ip-only, both ways"; sid:7;)',
        'alert tcp any any -> any any (msg:"to server"; flow:to_server; sid:8;)',
        'alert tcp any any -> any any (msg:"established"; flow:established; sid:9;)',
        'alert tcp any any -> any any (msg:"not established"; flow:not_established; sid:10;)',
        'alert tcp any any -> any any (msg:"stateless"; flow:stateless; sid:11;)',
        'alert tcp any any -> any any (msg:"only stream"; flow:only_stream; sid:12;)',
      ]);
      assert.deepEqual(mine, theirs);
      assert.equal(theirs['1']?.length, acks ? 10 : 6, 'every packet from the one that detected the protocol');
    });
  }

  it("a header-only pass silences the flow, the packet it matched included; a header-only drop alerts beside the packet's other alerts, then ends the flow", async () => {
    const passed = await alertTimes('header-only-pass', twoReads(false), [
      'pass modbus any any -> any any (msg:"pass to client"; flow:to_client; sid:1;)',
      'alert modbus any any -> any any (msg:"every modbus packet"; sid:2;)',
      'alert tcp any any -> any any (msg:"ip-only"; sid:3;)',
    ]);
    assert.deepEqual(passed.mine, passed.theirs);
    assert.deepEqual(Object.keys(passed.theirs), ['3'], 'only the handshake, before the pass');
    const dropped = await alertTimes('header-only-drop', twoReads(true), [
      'drop modbus any any -> any any (msg:"drop modbus"; sid:1;)',
      'alert modbus any any -> any any (msg:"every modbus packet"; sid:2;)',
      'alert tcp any any -> any any (msg:"to client"; flow:to_client; sid:3;)',
    ]);
    assert.deepEqual(dropped.mine, dropped.theirs);
    assert.equal(dropped.theirs['2']?.length, 1, 'the drop packet alerts, nothing after it');
  });
});
