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
});
