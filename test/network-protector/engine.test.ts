/** The rule engine: compileRules' refusals, StreamInspector's release offsets, alerts and drop verdicts. */
import { strict as assert } from 'node:assert';
import { promises as fs } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { contentsMatch } from '../../sample-apps/network-protector/src/engine/content.js';
import {
  type CompiledRules,
  compileRules,
  StreamInspector,
  type TrafficConnection,
  type TrafficVerdict,
} from '../../sample-apps/network-protector/src/engine/index.js';
import { ALERTS_PER_VERDICT } from '../../sample-apps/network-protector/src/engine/inspector.js';
import { RULE_LIMITS } from '../../sample-apps/network-protector/src/rules/index.js';
import type { ContentMatch } from '../../sample-apps/network-protector/src/rules/types.js';
import { isIsogateError } from '../../sdk/errors.js';
import { refusedWith } from '../fixtures/errors.js';
import { mbap, mqttPacket, mqttString } from '../fixtures/frames.js';

const MODBUS: TrafficConnection = { id: 1, service: 'plc', protocol: 'modbus', srcIp: '127.0.0.5', srcPort: 40000, destIp: '127.0.0.1', destPort: 502 };
const MQTT: TrafficConnection = { id: 2, service: 'broker', protocol: 'mqtt', srcIp: '127.0.0.6', srcPort: 40001, destIp: '127.0.0.1', destPort: 1883 };

const rules = (text: string, vars?: Record<string, string>): CompiledRules => compileRules([{ name: 'industrial_commands_rules', text }], vars);
const sids = (v: TrafficVerdict): number[] => (v.alerts ?? []).map((a) => a.sid);
const read = (id: number, unit = 1, address = 0, count = 2): Buffer => mbap(id, unit, [3, address >> 8, address & 0xff, 0, count]);
const write = (id: number, address: number, value: number): Buffer => mbap(id, 1, [6, address >> 8, address & 0xff, value >> 8, value & 0xff]);

describe('rule engine: isolate-safe', () => {
  it('imports only Network Protector code and uses no Node or web globals an isolate lacks', async () => {
    const dir = fileURLToPath(new URL('../../sample-apps/network-protector/src/engine/', import.meta.url));
    const files = (await fs.readdir(dir)).filter((f) => f.endsWith('.ts'));
    assert.ok(files.length >= 6);
    for (const file of files) {
      const code = (await fs.readFile(dir + file, 'utf8')).replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
      for (const match of code.matchAll(/from '([^']+)'/g))
        assert.match(match[1]!, /^\.\.?\/(?:(?:rules|protocols)\/)?[\w-]+\.js$/, `${file} imports ${match[1]}`);
      for (const name of ['Buffer', 'process', 'require', 'TextDecoder', 'TextEncoder', 'setTimeout', 'globalThis'])
        assert.ok(!new RegExp(`(^|[^\\w#.])${name}\\b`).test(code), `${file} uses ${name}`);
    }
  });
});

describe('rule engine: compileRules', () => {
  it('refuses sid 90000001 (the gateway reserves it) with its own code', () => {
    assert.throws(
      () => rules('alert modbus any any -> any any (msg:"x"; sid:90000001;)\n'),
      refusedWith('E_RULE_RESERVED_SID', /line 1: sid 90000001 is reserved/),
    );
  });

  it('refuses a duplicate sid, across lists, naming both places', () => {
    const a = { name: 'industrial_commands_rules', text: 'alert modbus any any -> any any (msg:"a"; sid:7;)\n' };
    const b = { name: 'industrial_anomaly_rules', text: '# comment\nalert mqtt any any -> any any (msg:"b"; sid:7;)\n' };
    assert.throws(
      () => compileRules([a, b]),
      refusedWith('E_RULE_DUPLICATE_SID', /industrial_anomaly_rules line 2: sid 7 is used already \(industrial_commands_rules line 1\)/),
    );
  });

  it('names the list, line and column of a rule it cannot parse', () => {
    const text = 'alert modbus any any -> any any (msg:"ok"; sid:1;)\nalert modbus any any -> any any (msg:"bad"; modbus: function 3; frobnicate; sid:2;)\n';
    try {
      rules(text);
      assert.fail('accepted');
    } catch (error) {
      assert.ok(isIsogateError(error, 'E_RULE_KEYWORD'));
      assert.deepEqual([error.details.list, error.details.line, error.details.column], ['industrial_commands_rules', 2, 65]);
    }
  });

  it('100k rules: refused by count at the limit, so loading is bounded whatever the list holds', () => {
    const rule = (i: number) => `alert modbus any any -> any any (msg:"r${i}"; modbus: function 3; sid:${i + 1};)`;
    const text = Array.from({ length: 100_000 }, (_, i) => rule(i)).join('\n');
    // The refusal names the first rule past the limit: no rule after it was parsed.
    assert.throws(() => rules(text), refusedWith('E_RULE_LIMIT', new RegExp(`line ${RULE_LIMITS.rules + 1}: more than ${RULE_LIMITS.rules} rules`)));
    const atLimit = rules(Array.from({ length: RULE_LIMITS.rules }, (_, i) => rule(i)).join('\n'));
    assert.equal(atLimit.rules.length, RULE_LIMITS.rules);
  });

  it('orders rules as Suricata acts on them: pass, then drop, then alert, each in list order', () => {
    const compiled = rules(
      [
        'alert modbus any any -> any any (msg:"a"; sid:1;)',
        'drop modbus any any -> any any (msg:"d1"; sid:2;)',
        'pass modbus any any -> any any (msg:"p"; sid:3;)',
        'drop modbus any any -> any any (msg:"d2"; sid:4;)',
      ].join('\n'),
    );
    assert.deepEqual(
      compiled.rules.map((r) => r.rule.sid),
      [3, 2, 4, 1],
    );
  });

  it('accepts fast_pattern after a content and refuses it before one', () => {
    assert.equal(rules('alert tcp any any -> any 502 (msg:"x"; content:"ab"; fast_pattern; sid:1;)').rules.length, 1);
    assert.throws(
      () => rules('alert tcp any any -> any 502 (msg:"x"; fast_pattern; content:"ab"; sid:1;)'),
      refusedWith('E_RULE_SYNTAX', /fast_pattern needs a content/),
    );
  });
});

describe('rule engine: content', () => {
  const bytes = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'latin1'));
  const c = (text: string, extra: Partial<ContentMatch> = {}): ContentMatch => ({
    bytes: bytes(text),
    negated: false,
    nocase: false,
    startsWith: false,
    endsWith: false,
    ...extra,
  });

  it('offset and depth bound the match, depth counted from offset', () => {
    const buf = bytes('xxabcxxabc');
    assert.ok(contentsMatch(buf, [c('abc', { offset: 2, depth: 3 })]));
    assert.ok(!contentsMatch(buf, [c('abc', { offset: 3, depth: 3 })]));
    assert.ok(contentsMatch(buf, [c('abc', { offset: 3 })]));
    assert.ok(!contentsMatch(buf, [c('abc', { depth: 4 })]));
  });

  it('distance and within count from the previous match, and a failed relative match backtracks', () => {
    const buf = bytes('a1--a2b');
    assert.ok(contentsMatch(buf, [c('a'), c('b', { distance: 1, within: 1 })]));
    assert.ok(!contentsMatch(buf, [c('a'), c('b', { distance: 0, within: 1 })]));
    assert.ok(contentsMatch(buf, [c('a'), c('2', { within: 1 })]), 'the second "a" is tried when the first fails');
  });

  it('startswith, endswith, nocase and negation', () => {
    const buf = bytes('Plant/T1');
    assert.ok(contentsMatch(buf, [c('Plant', { startsWith: true })]));
    assert.ok(!contentsMatch(buf, [c('lant', { startsWith: true })]));
    assert.ok(contentsMatch(buf, [c('t1', { endsWith: true, nocase: true })]));
    assert.ok(!contentsMatch(buf, [c('t1', { endsWith: true })]));
    assert.ok(contentsMatch(buf, [c('plant/', { nocase: true }), c('T2', { negated: true })]));
    assert.ok(!contentsMatch(buf, [c('plant/', { nocase: true }), c('T1', { negated: true, distance: 0 })]));
  });

  it('a hostile buffer of near-matches costs a bounded number of steps, not exponential time', () => {
    const buf = new Uint8Array(20_000).fill(0x61);
    const contents = Array.from({ length: 10 }, (_, i) => c('a'.repeat(2), i === 0 ? {} : { distance: 0 })).concat([c('b', { distance: 0 })]);
    assert.equal(contentsMatch(buf, contents), false);
  });
});

describe('rule engine: StreamInspector', () => {
  it('releases only whole PDUs: a frame split at every offset is held until it is complete', () => {
    const compiled = rules('alert modbus any any -> any any (msg:"read"; modbus: function 3; sid:1;)');
    const frame = read(1);
    for (let cut = 1; cut < frame.length; cut++) {
      const inspector = new StreamInspector(compiled, MODBUS);
      assert.deepEqual(inspector.data('to_server', frame.subarray(0, cut), 0), { release: 0 }, `cut at ${cut}`);
      assert.deepEqual(inspector.data('to_server', frame.subarray(cut), 0), { release: frame.length, alerts: [compiled.rules[0]!.alert] });
    }
  });

  it('1-byte segments and several PDUs in one chunk: release stops at the last PDU boundary', () => {
    const inspector = new StreamInspector(rules('alert modbus any any -> any any (msg:"read"; modbus: function 3; sid:1;)'), MODBUS);
    const two = Buffer.concat([read(1), read(2), read(3).subarray(0, 4)]);
    const v = inspector.data('to_server', two, 0);
    assert.deepEqual([('release' in v && v.release) as number, sids(v)], [24, [1, 1]]);
    const rest = read(3).subarray(4);
    let last: TrafficVerdict = { release: 0 };
    for (const b of rest) last = inspector.data('to_server', Uint8Array.of(b), 0);
    assert.deepEqual(last, { release: 36, alerts: [{ sid: 1, gid: 1, rev: 0, signature: 'read', action: 'alert', category: '', severity: 3 }] });
    // The other direction counts its own bytes.
    assert.deepEqual(inspector.data('to_client', mbap(1, 1, [3, 4, 0, 1, 0, 2]), 0), { release: 13 });
  });

  it('the first matching drop rule gives the verdict, with the alerts; the connection stays dropped', () => {
    const compiled = rules(
      [
        'alert modbus any any -> any any (msg:"any write"; modbus: access write; classtype:attempted-admin; sid:10; rev:2;)',
        'drop modbus any any -> any any (msg:"write 100 high"; modbus: access write holding, address 100, value >1000; sid:11;)',
        'drop modbus any any -> any any (msg:"write 100"; modbus: access write holding, address 100; sid:12;)',
      ].join('\n'),
    );
    const inspector = new StreamInspector(compiled, MODBUS);
    assert.deepEqual(sids(inspector.data('to_server', write(1, 99, 5), 0)), [12, 10], 'address 100 is sawp-1-based register 99');
    const fresh = new StreamInspector(compiled, MODBUS);
    assert.deepEqual(fresh.data('to_server', write(1, 98, 5), 0), {
      release: 12,
      alerts: [{ sid: 10, gid: 1, rev: 2, signature: 'any write', action: 'alert', category: 'Attempted Administrator Privilege Gain', severity: 1 }],
    });
    const v = fresh.data('to_server', write(2, 99, 4096), 0);
    assert.ok('drop' in v);
    assert.equal(v.drop.sid, 11);
    assert.equal(v.drop.action, 'drop');
    assert.deepEqual(sids(v), [11, 12, 10]);
    assert.deepEqual(fresh.data('to_server', read(3), 0), { drop: v.drop }, 'nothing more is released');
  });

  it('Modbus: a connection polling the same and then new requests meets on each the rules a fresh connection would, past the contents it keeps lists for', () => {
    const compiled = rules(
      [
        'drop modbus any any -> any any (msg:"write 100 high"; modbus: access write holding, address 100, value >1000; sid:1;)',
        'alert modbus any any -> any any (msg:"holding 10-20"; modbus: access read holding, address 10<>20; sid:2;)',
        'alert modbus any any -> any any (msg:"holding 15"; modbus: access read holding, address 15; sid:3;)',
        'alert modbus any any -> any any (msg:"unit 2"; modbus: unit 2; sid:4;)',
        'alert modbus any any -> any any (msg:"unit 1 reads"; modbus: unit 1, function 3; sid:5;)',
        'alert modbus any any -> any any (msg:"write coil 0"; modbus: access write coils, address 0; sid:6;)',
        'alert modbus any any -> any any (msg:"mismatch"; app-layer-event:modbus.value_mismatch; sid:7;)',
      ].join('\n'),
    );
    const answer = (request: Buffer): Buffer => {
      const count = request[11]!;
      return mbap(request.readUInt16BE(0), request[6]!, [3, count * 2, ...new Array<number>(count * 2).fill(0)]);
    };
    const polled = new StreamInspector(compiled, MODBUS);
    // Repeats first, then more distinct contents than the inspector keeps narrowed lists for (1024).
    const requests: Buffer[] = [];
    for (let round = 0; round < 3; round++) for (let address = 8; address < 24; address++) requests.push(read(0, 1 + (address % 2), address, 1 + (round % 2)));
    for (let address = 0; address < 1100; address++) requests.push(read(0, 1, address, 1));
    for (let address = 0; address < 1100; address += 250) requests.push(read(0, 1, address, 1));
    requests.push(mbap(0, 1, [5, 0, 0, 0xff, 0]), mbap(0, 1, [5, 0, 0, 0xff, 0]), mbap(0, 1, [5, 0, 1, 0xff, 0]));
    requests.forEach((request, id) => {
      request.writeUInt16BE(id & 0xffff, 0);
      const fresh = new StreamInspector(compiled, MODBUS);
      const label = `request ${id}: ${request.toString('hex')}`;
      assert.deepEqual(sids(polled.data('to_server', request, 0)), sids(fresh.data('to_server', request, 0)), label);
      if (request[7] === 3)
        assert.deepEqual(sids(polled.data('to_client', answer(request), 0)), sids(fresh.data('to_client', answer(request), 0)), `${label}, answered`);
    });
    const unit2 = new StreamInspector(compiled, MODBUS);
    assert.deepEqual(
      sids(unit2.data('to_server', read(1, 2, 14, 1), 0)),
      [2, 3, 4],
      'register 14 is address 15 (sawp counts from 1); the assertions above compare verdicts that have alerts',
    );
  });

  it('a matching pass rule silences the rules after it for that chunk', () => {
    const compiled = rules(
      [
        'drop modbus any any -> any any (msg:"all reads"; modbus: function 3; sid:1;)',
        'pass modbus 127.0.0.5 any -> any any (msg:"trusted"; modbus: function 3; sid:2;)',
      ].join('\n'),
    );
    const trusted = new StreamInspector(compiled, MODBUS);
    assert.deepEqual(sids(trusted.data('to_server', read(1), 0)), [2]);
    const other = new StreamInspector(compiled, { ...MODBUS, srcIp: '127.0.0.9' });
    assert.ok('drop' in other.data('to_server', read(1), 0));
  });

  it('Modbus: an answer re-inspects the rules its message can change, and those a pass rule kept from the request', () => {
    const compiled = rules(
      [
        'pass modbus any any -> any any (msg:"count 2"; modbus: function 3; content:"|00 00 00 02|"; sid:2;)',
        'alert modbus any any -> any any (msg:"reads"; modbus: function 3; sid:3;)',
        'alert modbus any any -> any any (msg:"answer length"; modbus: function 3; content:"|00 07|"; sid:4;)',
        'alert modbus any any -> any any (msg:"mismatch"; app-layer-event:modbus.value_mismatch; sid:5;)',
      ].join('\n'),
    );
    const answer = mbap(1, 1, [3, 4, 0, 1, 0, 2]);
    const passed = new StreamInspector(compiled, MODBUS);
    assert.deepEqual(sids(passed.data('to_server', read(1, 1, 0, 2), 0)), [2], 'the pass rule silences the rest for the request');
    // The answer lacks the pass rule's content: the rules it silenced are inspected now (and a
    // register read answered in full is value_mismatch, Suricata's quirk, both ways).
    assert.deepEqual(sids(passed.data('to_client', answer, 0)), [3, 4, 5, 5]);
    const plain = new StreamInspector(compiled, MODBUS);
    assert.deepEqual(sids(plain.data('to_server', read(1, 1, 0, 3), 0)), [3]);
    // "reads" matched the request already; the content and the event come with the answer.
    assert.deepEqual(sids(plain.data('to_client', answer, 0)), [4, 5, 5]);
  });

  it('header: variables, negation, CIDR lists, port ranges, IPv6, direction', () => {
    const compiled = rules(
      [
        'alert modbus $PLANT any -> $PLC 502 (msg:"vars"; modbus: function 3; sid:1;)',
        'alert modbus ![127.0.0.0/30,127.0.0.5] any -> any any (msg:"negated"; modbus: function 3; sid:2;)',
        'alert modbus any 40000:40010 -> any [1:501,503:] (msg:"ports"; modbus: function 3; sid:3;)',
        'alert modbus ::1 any -> any any (msg:"v6"; modbus: function 3; sid:4;)',
        'alert modbus any 502 -> any any (msg:"from the server"; sid:5;)',
        'alert modbus any any <> 127.0.0.5 any (msg:"both ways"; modbus: function 3; sid:6;)',
      ].join('\n'),
      { PLANT: '[127.0.0.0/24,!127.0.0.1]', PLC: '127.0.0.1' },
    );
    // sid 5 too: Suricata inspects a Modbus transaction both ways, so the request is seen from the server's side.
    assert.deepEqual(sids(new StreamInspector(compiled, MODBUS).data('to_server', read(1), 0)), [1, 6, 5]);
    assert.deepEqual(sids(new StreamInspector(compiled, { ...MODBUS, srcIp: '127.0.0.9' }).data('to_server', read(1), 0)), [1, 2, 5]);
    assert.deepEqual(sids(new StreamInspector(compiled, { ...MODBUS, destPort: 1502 }).data('to_server', read(1), 0)), [3, 6]);
    assert.deepEqual(sids(new StreamInspector(compiled, { ...MODBUS, srcIp: '::1', destIp: '::1' }).data('to_server', read(1), 0)), [2, 4, 5]);
    const answered = new StreamInspector(compiled, MODBUS);
    answered.data('to_server', read(1), 0);
    assert.deepEqual(sids(answered.data('to_client', mbap(1, 1, [3, 4, 0, 1, 0, 2]), 0)), [], 'no rule alerts twice in one direction on one transaction');
  });

  it('a transaction that many rules alert on keeps each of them from alerting twice, past the short list of its detection state', () => {
    // 12 rules alerting on one transaction: more keys than the list a transaction keeps before a Set.
    const all = Array.from({ length: 12 }, (_, i) => i + 1);
    const compiled = rules(
      all.map((sid) => `alert modbus any any -> any any (msg:"reads ${sid}"; modbus: function 3; content:"|00|"; sid:${sid};)`).join('\n'),
    );
    const inspector = new StreamInspector(compiled, MODBUS);
    assert.deepEqual(sids(inspector.data('to_server', read(1), 0)), all);
    // The answer changes the transaction and its content matches again: no rule alerts a second time.
    assert.deepEqual(sids(inspector.data('to_client', mbap(1, 1, [3, 4, 0, 1, 0, 2]), 0)), []);
    // A transaction of its own alerts them all again.
    assert.deepEqual(sids(inspector.data('to_server', read(2), 0)), all);
  });

  it('Modbus: an anomaly rule alerts once per direction on a transaction, as Suricata does', () => {
    const compiled = rules('alert modbus any any -> any any (msg:"mismatch"; app-layer-event:modbus.value_mismatch; sid:1;)');
    const inspector = new StreamInspector(compiled, MODBUS);
    inspector.data('to_server', read(1, 1, 0, 2), 0);
    // Two registers asked, one answered.
    const v = inspector.data('to_client', mbap(1, 1, [3, 2, 0, 1]), 0);
    assert.deepEqual(sids(v), [1, 1]);
  });

  it('MQTT: keywords see a transaction once complete; sticky buffers with content; a partial packet is held', () => {
    const compiled = rules(
      [
        'drop mqtt any any -> any any (msg:"secret topic"; mqtt.publish.topic; content:"secret/"; startswith; sid:1;)',
        'alert mqtt any any -> any any (msg:"qos1 publish"; mqtt.type:PUBLISH; mqtt.qos:1; sid:2;)',
        'alert mqtt any any -> any any (msg:"client"; mqtt.connect.clientid; content:"plc"; nocase; sid:3;)',
      ].join('\n'),
    );
    const inspector = new StreamInspector(compiled, MQTT);
    const connect = mqttPacket(1, 0, [...mqttString('MQTT'), 4, 2, 0, 60, ...mqttString('PLC-7')]);
    assert.deepEqual(inspector.data('to_server', connect.subarray(0, 10), 0), { release: 0 });
    assert.deepEqual(sids(inspector.data('to_server', connect.subarray(10), 0)), [], 'CONNECT waits for its CONNACK');
    assert.deepEqual(sids(inspector.data('to_client', mqttPacket(2, 0, [0, 0]), 0)), [3]);
    const publish = mqttPacket(3, 2, [...mqttString('plant/a'), 0, 5, 0x31]);
    assert.deepEqual(inspector.data('to_server', publish, 0), { release: connect.length + publish.length }, 'QoS 1: not complete before PUBACK');
    assert.deepEqual(sids(inspector.data('to_client', mqttPacket(4, 0, [0, 5]), 0)), [2]);
    const secret = mqttPacket(3, 0, [...mqttString('secret/x'), 0x31]);
    const v = inspector.data('to_server', secret, 0);
    assert.ok('drop' in v && v.drop.sid === 1);
  });

  it('MQTT: malformed traffic stops the parser; the anomaly rule drops it', () => {
    const compiled = rules('drop mqtt any any -> any any (msg:"malformed"; app-layer-event:mqtt.malformed_traffic; sid:1;)');
    const inspector = new StreamInspector(compiled, MQTT);
    const v = inspector.data('to_server', Uint8Array.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x7f]), 0);
    assert.ok('drop' in v && v.drop.sid === 1);
  });

  it('a tcp rule inspects the released stream chunk; flow:not_established never matches a stream', () => {
    const compiled = rules(
      [
        'alert tcp any any -> any 502 (msg:"payload"; flow:to_server,established; content:"|00 06 01 03|"; offset:4; depth:4; sid:1;)',
        'alert tcp any any -> any any (msg:"never"; flow:not_established; content:"|03|"; sid:2;)',
        'alert tcp any any -> any any (msg:"to client"; flow:to_client; content:"|03|"; sid:3;)',
      ].join('\n'),
    );
    const inspector = new StreamInspector(compiled, MODBUS);
    assert.deepEqual(sids(inspector.data('to_server', read(1), 0)), [1]);
    assert.deepEqual(sids(inspector.data('to_client', mbap(1, 1, [3, 2, 0, 1]), 0)), [3]);
  });

  it('the packet-rule prefilter keeps every rule that matches, in list order: nocase, negated-only, no content, relative contents', () => {
    const compiled = rules(
      [
        'alert tcp any any -> any any (msg:"nocase"; content:"EXPLOIT"; nocase; sid:1;)',
        'alert tcp any any -> any any (msg:"negated only"; content:!"|ff ff|"; sid:2;)',
        'alert tcp any any -> any any (msg:"no content"; flow:to_server; sid:3;)',
        'alert tcp any any -> any any (msg:"longest is fast"; content:"|00|"; content:"xploi"; distance:0; sid:4;)',
        'alert tcp any any -> any any (msg:"absent"; content:"|de ad be ef|"; sid:5;)',
        'drop tcp any any -> any any (msg:"last byte"; content:"t!"; sid:6;)',
        'alert tcp any any -> any any (msg:"case matters"; content:"EXPLOIT"; sid:7;)',
      ].join('\n'),
    );
    const inspector = new StreamInspector(compiled, MODBUS);
    const chunk = Uint8Array.from([0, ...Buffer.from('exploit!')]);
    // Drop rules come first in Suricata's action order; the rest in list order.
    assert.deepEqual(sids(inspector.data('to_server', chunk, 0)), [6, 1, 2, 3, 4]);
    // Each rule is decided again on every chunk: none carries over from the last.
    const other = new StreamInspector(compiled, MODBUS);
    assert.deepEqual(sids(other.data('to_server', Uint8Array.from([0xff, 0xff, 0x45]), 0)), [3]);
    assert.deepEqual(sids(other.data('to_server', Buffer.from('an EXPLOIT'), 0)), [1, 2, 3, 7]);
  });

  it('Modbus rules for one unit are candidates only for that unit, the others still for every unit', () => {
    const compiled = rules(
      [
        'alert modbus any any -> any any (msg:"unit 7"; modbus: unit 7, function 3; sid:1;)',
        'alert modbus any any -> any any (msg:"any unit"; modbus: function 3; sid:2;)',
        'alert modbus any any -> any any (msg:"units above 5"; modbus: unit >5; sid:3;)',
      ].join('\n'),
    );
    const inspector = new StreamInspector(compiled, MODBUS);
    // A rule with the modbus keyword is inspected to the server only, as Suricata registers it.
    assert.deepEqual(sids(inspector.data('to_server', read(1, 1), 0)), [2]);
    assert.deepEqual(sids(inspector.data('to_server', read(2, 7), 0)), [1, 2, 3]);
    assert.deepEqual(sids(inspector.data('to_server', read(3, 1), 0)), [2]);
    assert.deepEqual(sids(inspector.data('to_server', read(4, 9), 0)), [2, 3]);
  });

  it('a verdict carries at most 64 alerts (the traffic contract: more would fail the app), the first ones', () => {
    const compiled = rules('alert modbus any any -> any any (msg:"every read"; modbus: function 3; sid:1;)');
    const inspector = new StreamInspector(compiled, MODBUS);
    const chunk = Buffer.concat(Array.from({ length: 100 }, (_, id) => read(id)));
    const v = inspector.data('to_server', chunk, 0);
    assert.ok('release' in v && v.release === chunk.length);
    assert.equal(v.alerts?.length, ALERTS_PER_VERDICT);
  });

  it('rules for the other protocol are not candidates; a hostile address matches nothing', () => {
    const compiled = rules(
      ['alert mqtt any any -> any any (msg:"m"; mqtt.type:CONNECT; sid:1;)', 'alert modbus any any -> any any (msg:"x"; sid:2;)'].join('\n'),
    );
    // A rule without a direction alerts on a Modbus transaction once each way, as Suricata does.
    assert.deepEqual(sids(new StreamInspector(compiled, MODBUS).data('to_server', read(1), 0)), [2, 2]);
    assert.deepEqual(new StreamInspector(compiled, { ...MODBUS, srcIp: 'not-an-ip' }).data('to_server', read(1), 0), { release: 12 });
  });

  it('hostile Modbus: a length field that lies is invalid_length, what it swallowed is released, not held', () => {
    const compiled = rules('drop modbus any any -> any any (msg:"bad length"; app-layer-event:modbus.invalid_length; sid:1;)');
    const inspector = new StreamInspector(compiled, MODBUS);
    // MBAP length 2000: outside 2..254, so the frame is refused whatever follows.
    const lying = Uint8Array.from([0, 1, 0, 0, 0x07, 0xd0, 1, 3, 0, 0, 0, 1]);
    const v = inspector.data('to_server', lying, 0);
    assert.ok('drop' in v && v.drop.sid === 1);
  });

  it('hostile Modbus: a flood of unanswered requests is flooded, then inspection of the connection stops', () => {
    const compiled = rules('drop modbus any any -> any any (msg:"flood"; flow:to_server; app-layer-event:modbus.flooded; sid:1;)');
    const inspector = new StreamInspector(compiled, MODBUS);
    let v: TrafficVerdict = { release: 0 };
    for (let id = 0; id < 600 && !('drop' in v); id++) v = inspector.data('to_server', read(id & 0xffff), 0);
    assert.ok('drop' in v && v.drop.sid === 1, 'the 501st unanswered request is flooded');
  });

  it("Suricata's quirk: an MQTT message over 1 MiB is truncated, its bytes pass as they come, uninspected", () => {
    const compiled = rules('drop mqtt any any -> any any (msg:"topic"; mqtt.publish.topic; content:"secret"; sid:1;)');
    const inspector = new StreamInspector(compiled, MQTT);
    const length = 2 * 1024 * 1024;
    // PUBLISH, remaining length 2 MiB as a varint, then the topic.
    const header = Uint8Array.from([0x30, 0x80, 0x80, 0x80, 0x01, ...mqttString('secret/x')]);
    let fed = header.length;
    assert.deepEqual(inspector.data('to_server', header, 0), { release: fed });
    const chunk = new Uint8Array(64 * 1024);
    for (; fed < length; fed += chunk.length) assert.deepEqual(inspector.data('to_server', chunk, 0), { release: fed + chunk.length });
    assert.ok(length < fed + 64 * 1024);
  });
});
