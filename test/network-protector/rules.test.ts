/** The rule parser's AST for representative rules, and every refusal with its own code and place. */
import { strict as assert } from 'node:assert';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { decodeRuleList, parseRuleLists, RULE_LIMITS } from '../../sample-apps/network-protector/src/rules/index.js';
import type { Rule, RuleVariables } from '../../sample-apps/network-protector/src/rules/types.js';
import { isIsogateError } from '../../sdk/errors.js';
import { refusedWith } from '../fixtures/errors.js';

const VARS: RuleVariables = {
  addresses: { HOME_NET: '[127.0.0.0/8,::1]', EXTERNAL_NET: '!$HOME_NET', PLC: '127.0.10.5', LOOP_A: '$LOOP_B', LOOP_B: '$LOOP_A' },
  ports: { MODBUS_PORTS: '[502,1502]' },
};

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');
const parse = (text: string, name = 'industrial_commands_rules'): Rule[] => parseRuleLists([{ name, base64: b64(text) }], VARS);
const one = (text: string): Rule => {
  const rules = parse(text);
  assert.equal(rules.length, 1);
  return rules[0]!;
};

/** The refusal, its code, and the line and column it names (in the message and in details). */
function refused(text: string, code: Parameters<typeof refusedWith>[0], line: number, column?: number): void {
  assert.throws(() => parse(text), refusedWith(code, new RegExp(`^industrial_commands_rules line ${line}${column ? `, column ${column}:` : '[,:]'}`)));
  try {
    parse(text);
  } catch (error) {
    assert.ok(isIsogateError(error));
    assert.equal(error.details.line, line);
    if (column) assert.equal(error.details.column, column);
  }
}

describe('rule parser: the AST', () => {
  it('a Modbus drop rule: header sets from variables, the modbus constraint, classtype defaults', () => {
    const rule = one(
      'drop modbus $EXTERNAL_NET any -> $PLC $MODBUS_PORTS (msg:"write to holding 500 \\"high\\""; modbus: unit 1, access write holding, address 500, value >200; flow:to_server,established; classtype:attempted-admin; sid:1000001; rev:2;)',
    );
    assert.equal(rule.header.action, 'drop');
    assert.equal(rule.header.protocol, 'modbus');
    assert.equal(rule.appProtocol, 'modbus');
    // !$HOME_NET: everything but 127/8 and ::1
    assert.deepEqual(rule.header.source.v4, [
      [0, 0x7effffff],
      [0x80000000, 0xffffffff],
    ]);
    assert.deepEqual(rule.header.source.v6, [
      ['0'.repeat(32), `${'0'.repeat(31)}0`],
      [`${'0'.repeat(31)}2`, 'f'.repeat(32)],
    ]);
    assert.deepEqual(rule.header.destination, { v4: [[0x7f000a05, 0x7f000a05]], v6: [] });
    assert.deepEqual(rule.header.sourcePorts, [[0, 65535]]);
    assert.deepEqual(rule.header.destinationPorts, [
      [502, 502],
      [1502, 1502],
    ]);
    assert.equal(rule.msg, 'write to holding 500 "high"');
    assert.deepEqual(rule.modbus, [
      { unit: { op: 'eq', value: 1 }, access: { type: 'write', table: 'holding', address: { op: 'eq', value: 500 }, value: { op: 'gt', value: 200 } } },
    ]);
    assert.deepEqual(rule.flow, { direction: 'to_server', state: 'established' });
    assert.equal(rule.impliedDirection, 'to_server');
    assert.equal(rule.sid, 1000001);
    assert.equal(rule.rev, 2);
    assert.equal(rule.gid, 1);
    assert.equal(rule.classtype, 'attempted-admin');
    assert.equal(rule.priority, 1, "attempted-admin's priority in classification.config");
    assert.equal(rule.category, 'Attempted Administrator Privilege Gain');
    assert.equal(rule.source.line, 1);
  });

  it('Modbus function forms: number with subfunction, categories with negation applied', () => {
    const [a, b, c] = parse(
      [
        'alert modbus any any -> any 502 (msg:"diag"; modbus: function 8, subfunction 4; sid:1;)',
        'alert modbus any any -> any 502 (msg:"not reserved"; modbus: function !reserved; sid:2;)',
        'alert modbus any any -> any 502 (msg:"read"; modbus: unit 10<>20, access read discretes, address <100; priority:2; sid:3;)',
      ].join('\n'),
    );
    assert.deepEqual(a!.modbus, [{ function: 8, subfunction: 4 }]);
    assert.deepEqual(b!.modbus, [{ categories: ['public_assigned', 'public_unassigned', 'user_defined'] }]);
    assert.deepEqual(c!.modbus, [
      { unit: { op: 'between', min: 10, max: 20 }, access: { type: 'read', table: 'discretes', address: { op: 'lt', value: 100 } } },
    ]);
    assert.equal(c!.priority, 2);
    assert.equal(a!.priority, 3, 'no classtype, no priority: Suricata 3');
  });

  it('an MQTT rule: sticky buffers with their content and modifiers, the mqtt.* constraint', () => {
    const rule = one(
      'alert mqtt any any -> any 1883 (msg:"cmd"; mqtt.type:PUBLISH; mqtt.flags:retain,!dup; mqtt.qos:1; mqtt.protocol_version:>=4; mqtt.publish.topic; content:"plant/"; startswith; mqtt.publish.message; content:"|00 ff|stop"; nocase; content:"now"; distance:1; within:5; sid:7;)',
    );
    assert.equal(rule.appProtocol, 'mqtt');
    assert.deepEqual(rule.mqtt, { type: { name: 'PUBLISH', code: 3 }, flags: { retain: true, dup: false }, qos: 1, protocolVersion: { op: 'ge', value: 4 } });
    assert.equal(rule.buffers.length, 2);
    assert.equal(rule.buffers[0]!.buffer, 'mqtt.publish.topic');
    assert.deepEqual(rule.buffers[0]!.contents, [
      { bytes: Uint8Array.from(Buffer.from('plant/')), negated: false, nocase: false, startsWith: true, endsWith: false, depth: 6 },
    ]);
    assert.equal(rule.buffers[1]!.buffer, 'mqtt.publish.message');
    assert.deepEqual(rule.buffers[1]!.contents, [
      { bytes: Uint8Array.from([0, 0xff, ...Buffer.from('stop')]), negated: false, nocase: true, startsWith: false, endsWith: false },
      { bytes: Uint8Array.from(Buffer.from('now')), negated: false, nocase: false, startsWith: false, endsWith: false, distance: 1, within: 5 },
    ]);
    assert.equal(rule.impliedDirection, 'to_server', 'mqtt.flags, qos, protocol_version and publish.message inspect client to server');
  });

  it('connect and connack keywords; content on the stream in a tcp rule; a negated content', () => {
    const [a, b, c] = parse(
      [
        'alert mqtt any any -> any any (msg:"c"; mqtt.connect.flags:username,!password; mqtt.connect.clientid; content:"plc"; sid:1;)',
        'alert mqtt any any -> any any (msg:"ack"; mqtt.connack.session_present:yes; mqtt.connack.return_code:5; sid:2;)',
        'alert tcp any any <> any 502 (msg:"raw"; content:!"|00 00|"; offset:2; depth:4; sid:3;)',
      ].join('\n'),
    );
    assert.deepEqual(a!.mqtt, { connectFlags: { username: true, password: false } });
    assert.equal(a!.buffers[0]!.buffer, 'mqtt.connect.clientid');
    assert.deepEqual(b!.mqtt, { sessionPresent: true, reasonCode: 5 });
    assert.equal(b!.impliedDirection, 'to_client');
    assert.equal(c!.appProtocol, undefined);
    assert.equal(c!.header.bidirectional, true);
    assert.deepEqual(c!.buffers, [
      {
        buffer: 'payload',
        contents: [{ bytes: Uint8Array.from([0, 0]), negated: true, nocase: false, startsWith: false, endsWith: false, offset: 2, depth: 4 }],
      },
    ]);
  });

  it("Suricata's own anomaly rules (modbus-events.rules, mqtt-events.rules) parse into events", () => {
    const rules = parse(
      [
        '# Modbus Protocol version field is incorrect (Modbus version = 0)',
        'alert modbus any any -> any any (msg:"SURICATA Modbus invalid Protocol version"; app-layer-event:modbus.invalid_protocol_id; classtype:protocol-command-decode; sid:2250001; rev:2;)',
        'alert modbus any any -> any any (msg:"SURICATA Modbus Exception code invalid"; flow:to_client; app-layer-event:modbus.invalid_exception_code; classtype:protocol-command-decode; sid:2250007; rev:2;)',
        'alert modbus any any -> any any (msg:"SURICATA Modbus Request flood detected"; flow:to_server; app-layer-event:modbus.flooded; classtype:protocol-command-decode; sid:2250009; rev:2;)',
        '',
        'alert mqtt any any -> any any (msg:"SURICATA MQTT CONNECT not seen before CONNACK"; app-layer-event:mqtt.missing_connect; classtype:protocol-command-decode; sid:2229000; rev:1;)',
        'alert mqtt any any -> any any (msg:"SURICATA MQTT malformed traffic"; app-layer-event:mqtt.malformed_traffic; classtype:protocol-command-decode; sid:2229010; rev:1;)',
      ].join('\n'),
      'industrial_anomaly_rules',
    );
    assert.deepEqual(
      rules.map((r) => [r.sid, r.events, r.priority, r.category, r.source.line]),
      [
        [2250001, [{ protocol: 'modbus', event: 'invalid_protocol_id' }], 3, 'Generic Protocol Command Decode', 2],
        [2250007, [{ protocol: 'modbus', event: 'invalid_exception_code' }], 3, 'Generic Protocol Command Decode', 3],
        [2250009, [{ protocol: 'modbus', event: 'flooded' }], 3, 'Generic Protocol Command Decode', 4],
        [2229000, [{ protocol: 'mqtt', event: 'missing_connect' }], 3, 'Generic Protocol Command Decode', 6],
        [2229010, [{ protocol: 'mqtt', event: 'malformed_traffic' }], 3, 'Generic Protocol Command Decode', 7],
      ],
    );
  });

  it('a rule continued over lines with "\\" is one rule, reported at its first line', () => {
    const rules = parse(
      '# comment\n  indented lines are comments too, as in Suricata\nalert modbus any any -> any 502 (msg:"a"; \\\n  modbus: function 1; \\\n  sid:5;)\r\n',
    );
    assert.equal(rules.length, 1);
    assert.equal(rules[0]!.source.line, 3);
    assert.deepEqual(rules[0]!.modbus, [{ function: 1 }]);
  });

  it('content outside |hex| is the UTF-8 of the decoded text, as Suricata reads the rules file', () => {
    const rule = one('alert mqtt any any -> any any (msg:"ü"; mqtt.publish.message; content:"ünï 𝄞|0a|"; sid:9;)');
    assert.equal(rule.msg, 'ü');
    assert.deepEqual(rule.buffers[0]!.contents[0]!.bytes, Uint8Array.from(Buffer.from('ünï 𝄞\n')));
  });

  it('takes both lists with sids unique across them; an empty list is allowed', () => {
    const rules = parseRuleLists(
      [
        { name: 'industrial_commands_rules', base64: b64('alert modbus any any -> any any (msg:"a"; modbus: function 5; sid:1;)') },
        { name: 'industrial_anomaly_rules', base64: '' },
      ],
      VARS,
    );
    assert.equal(rules.length, 1);
  });
});

describe('rule parser: refusals, each with its code, line and column', () => {
  it('E_RULE_ENCODING: not Base64, or not UTF-8', () => {
    assert.throws(() => decodeRuleList('YWxlcnQ*', 'industrial_commands_rules'), refusedWith('E_RULE_ENCODING', /not valid Base64: "\*" at position 8/));
    assert.throws(() => decodeRuleList('QUJDRA=', 'x'), refusedWith('E_RULE_ENCODING', /length/));
    assert.throws(
      () => decodeRuleList(Buffer.from([0x61, 0x0a, 0x62, 0xc3, 0x28]).toString('base64'), 'industrial_commands_rules'),
      refusedWith('E_RULE_ENCODING', /line 2: the text is not valid UTF-8/),
    );
  });

  it('E_RULE_SYNTAX: a bad action, protocol, direction, missing options, conflicting protocols or directions', () => {
    refused('alert modbus any any -> any any (sid:1;)\nblock tcp any any -> any any (sid:2;)', 'E_RULE_SYNTAX', 2, 1);
    refused('alert udp any any -> any any (sid:1;)', 'E_RULE_SYNTAX', 1, 7);
    refused('alert tcp any any => any any (sid:1;)', 'E_RULE_SYNTAX', 1, 19);
    refused('alert tcp any any -> any any', 'E_RULE_SYNTAX', 1);
    refused('alert modbus any any -> any any (msg:"x"; mqtt.type:connect; sid:1;)', 'E_RULE_SYNTAX', 1, 43);
    refused('alert mqtt any any -> any any (mqtt.connect.clientid; content:"a"; flow:to_client; sid:1;)', 'E_RULE_SYNTAX', 1);
    refused('alert mqtt any any -> any any (mqtt.publish.topic; sid:1;)', 'E_RULE_SYNTAX', 1, 32);
    refused('alert tcp any any -> any any (msg:"x"; depth:3; sid:1;)', 'E_RULE_SYNTAX', 1, 40);
  });

  it('E_RULE_STRING: an unterminated or unquoted string', () => {
    refused('alert tcp any any -> any any (msg:"never closed; sid:1;)', 'E_RULE_STRING', 1, 35);
    refused('alert tcp any any -> any any (msg:plain; sid:1;)', 'E_RULE_STRING', 1, 35);
    refused('alert tcp any any -> any any (content:"a"b"; sid:1;)', 'E_RULE_STRING', 1, 41);
  });

  it('E_RULE_BRACKETS: unbalanced brackets in addresses and ports', () => {
    refused('alert tcp [127.0.0.1,[127.0.0.2] any -> any any (sid:1;)', 'E_RULE_BRACKETS', 1, 11);
    refused('alert tcp any any -> any 502] (sid:1;)', 'E_RULE_BRACKETS', 1, 29);
  });

  it('E_RULE_KEYWORD: an unknown keyword, named', () => {
    refused('alert tcp any any -> any any (msg:"x"; mqtt.retain:1; sid:1;)', 'E_RULE_KEYWORD', 1, 40);
    assert.throws(() => parse('alert tcp any any -> any any (foo:bar; sid:1;)'), refusedWith('E_RULE_KEYWORD', /unknown rule keyword "foo"/));
  });

  it("E_RULE_VALUE: a keyword's value Suricata refuses", () => {
    refused('alert modbus any any -> any any (modbus: function 0; sid:1;)', 'E_RULE_VALUE', 1, 42);
    refused('alert modbus any any -> any any (modbus: access write discretes; sid:1;)', 'E_RULE_VALUE', 1);
    refused('alert mqtt any any -> any any (mqtt.flags:dup,dup; sid:1;)', 'E_RULE_VALUE', 1, 43);
    refused('alert mqtt any any -> any any (mqtt.type:conn; sid:1;)', 'E_RULE_VALUE', 1);
    refused('alert mqtt any any -> any any (app-layer-event:mqtt.nosuch; sid:1;)', 'E_RULE_VALUE', 1);
    refused('alert tcp 127.0.0.256 any -> any any (sid:1;)', 'E_RULE_VALUE', 1, 11);
    refused('alert tcp any any -> any any (content:"|0|"; sid:1;)', 'E_RULE_VALUE', 1);
  });

  it('E_RULE_RANGE: bad ranges and numbers out of bounds', () => {
    refused('alert tcp any any -> any 1024:1 (sid:1;)', 'E_RULE_RANGE', 1, 26);
    refused('alert tcp any any -> any 70000 (sid:1;)', 'E_RULE_RANGE', 1, 26);
    refused('alert tcp 127.0.0.9-127.0.0.1 any -> any any (sid:1;)', 'E_RULE_RANGE', 1, 11);
    refused('alert tcp !any any -> any any (sid:1;)', 'E_RULE_RANGE', 1, 11);
    refused('alert mqtt any any -> any any (mqtt.qos:3; sid:1;)', 'E_RULE_RANGE', 1, 41);
    refused('alert tcp any any -> any any (content:"abcd"; depth:3; sid:1;)', 'E_RULE_RANGE', 1);
    refused('alert tcp any any -> any any (sid:4294967295;)', 'E_RULE_RANGE', 1, 35);
    refused('alert tcp any any -> any any (sid:0;)', 'E_RULE_RANGE', 1, 35);
  });

  it('E_RULE_VARIABLE: undefined and self-referencing variables', () => {
    refused('alert tcp $NOPE_NET any -> any any (sid:1;)', 'E_RULE_VARIABLE', 1, 11);
    refused('alert tcp any any -> any $NOPE_PORTS (sid:1;)', 'E_RULE_VARIABLE', 1, 26);
    refused('alert tcp $LOOP_A any -> any any (sid:1;)', 'E_RULE_VARIABLE', 1, 11);
    // Address and port variables are separate name spaces, as in Suricata.
    refused('alert tcp any any -> any $HOME_NET (sid:1;)', 'E_RULE_VARIABLE', 1, 26);
  });

  it('variables that refer to others twice over, 15 deep, are resolved once each, not 2^15 times per rule', () => {
    const addresses: Record<string, string> = { V15: '127.0.0.1' };
    for (let level = 14; level >= 0; level--) addresses[`V${level}`] = `[$V${level + 1},$V${level + 1}]`;
    const text = Array.from({ length: 200 }, (_, i) => `alert tcp $V0 any -> any any (sid:${i + 1};)`).join('\n');
    const rules = parseRuleLists([{ name: 'industrial_commands_rules', base64: b64(text) }], { addresses, ports: {} });
    assert.equal(rules.length, 200);
    assert.deepEqual(rules[199]!.header.source, { v4: [[0x7f000001, 0x7f000001]], v6: [] });
  });

  it('E_RULE_MISSING_SID, E_RULE_DUPLICATE_SID (within and across lists), E_RULE_RESERVED_SID', () => {
    refused('alert tcp any any -> any any (msg:"no sid";)', 'E_RULE_MISSING_SID', 1);
    refused('alert tcp any any -> any any (sid:5;)\n\nalert tcp any any -> any any (sid:5;)', 'E_RULE_DUPLICATE_SID', 3);
    assert.throws(
      () =>
        parseRuleLists(
          [
            { name: 'industrial_commands_rules', base64: b64('alert tcp any any -> any any (sid:5;)') },
            { name: 'industrial_anomaly_rules', base64: b64('# x\nalert tcp any any -> any any (sid:5;)') },
          ],
          VARS,
        ),
      refusedWith('E_RULE_DUPLICATE_SID', /^industrial_anomaly_rules line 2: sid 5 is used already \(industrial_commands_rules line 1\)/),
    );
    refused('alert tcp any any -> any any (msg:"mine"; sid:90000001;)', 'E_RULE_RESERVED_SID', 1);
  });

  it('E_RULE_LIMIT: 100k rules are refused before any is parsed; so is a rule past 8191 characters', () => {
    const many = Array.from({ length: 100_000 }, (_, i) => `alert modbus any any -> any 502 (msg:"r"; modbus: function 1; sid:${i + 1};)`).join('\n');
    assert.throws(() => parse(many), refusedWith('E_RULE_LIMIT', /larger than/));
    const justOver = Array.from({ length: RULE_LIMITS.rules + 1 }, (_, i) => `alert tcp any any -> any any (sid:${i + 1};)`).join('\n');
    assert.throws(() => parse(justOver), refusedWith('E_RULE_LIMIT', new RegExp(`line ${RULE_LIMITS.rules + 1}: more than ${RULE_LIMITS.rules} rules`)));
    refused(`alert tcp any any -> any any (msg:"${'x'.repeat(9000)}"; sid:1;)`, 'E_RULE_LIMIT', 1);
  });

  it('a refused list yields no rules at all: the first bad rule refuses the whole list', () => {
    let result: Rule[] | undefined;
    assert.throws(() => {
      result = parse('alert tcp any any -> any any (sid:1;)\nalert tcp any any -> any any (sid:2; bogus;)');
    }, refusedWith('E_RULE_KEYWORD'));
    assert.equal(result, undefined);
  });
});

describe('rule parser: runs inside an isolate', () => {
  it('imports nothing but its own modules and the SDK error registry, and uses no Node global', () => {
    const dir = path.join(import.meta.dirname, '../../sample-apps/network-protector/src/rules');
    const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));
    assert.ok(files.length >= 10);
    for (const file of files) {
      const source = readFileSync(path.join(dir, file), 'utf8');
      for (const [, specifier] of source.matchAll(/\bfrom '([^']+)'/g)) {
        assert.ok(/^\.\/[a-z-]+\.js$/.test(specifier!) || specifier === '../../../../sdk/errors.js', `${file} imports ${specifier}`);
      }
      assert.doesNotMatch(source, /\b(Buffer|process|require|TextEncoder|TextDecoder|atob|btoa)\b[.(]/, file);
    }
  });
});
