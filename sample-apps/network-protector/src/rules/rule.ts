/**
 * One rule, parsed as Suricata 7's detect-parse.c does: the header split into seven fields, the
 * options split at unescaped `;`, each option's name and value trimmed and its quoting checked
 * per keyword, then the keyword's own parser, then the whole-rule checks (a sid, matches in every
 * sticky buffer, one app protocol, no conflicting directions).
 */
import { parseAddresses } from './addresses.js';
import { CLASSIFICATIONS } from './classification.js';
import { applyModifier, type ContentDraft, parseContentBytes } from './content.js';
import { parseModbus } from './modbus.js';
import { MQTT_CONNECT_FLAGS, MQTT_FLAGS, parseFlagList, parseMqttType, parseProtocolVersion, parseQos, parseReasonCode, parseSessionPresent } from './mqtt.js';
import { strtoul32 } from './numbers.js';
import { parsePorts } from './ports.js';
import { fault, type RuleText } from './position.js';
import type {
  AppLayerEvent,
  AppProtocol,
  BufferMatch,
  ContentBuffer,
  FlowConstraint,
  ModbusConstraint,
  ModbusEventName,
  MqttConstraint,
  MqttEventName,
  Rule,
  RuleAction,
  RuleProtocol,
  RuleVariables,
} from './types.js';

const ACTIONS: readonly RuleAction[] = ['alert', 'drop', 'pass', 'reject', 'rejectsrc', 'rejectdst', 'rejectboth'];
const PROTOCOLS: readonly RuleProtocol[] = ['tcp', 'modbus', 'mqtt'];

export const MODBUS_EVENTS: readonly ModbusEventName[] = [
  'unsolicited_response',
  'invalid_function_code',
  'invalid_length',
  'invalid_value',
  'invalid_exception_code',
  'value_mismatch',
  'flooded',
  'invalid_protocol_id',
];
export const MQTT_EVENTS: readonly MqttEventName[] = [
  'missing_connect',
  'missing_publish',
  'missing_subscribe',
  'missing_unsubscribe',
  'double_connect',
  'unintroduced_message',
  'invalid_qos_level',
  'missing_msg_id',
  'unassigned_msg_type',
  'too_many_transactions',
  'malformed_traffic',
];

type Direction = 'to_server' | 'to_client' | 'both';
/** The directions Suricata registers each app-layer keyword's inspection for. */
const STICKY: Readonly<Record<string, Direction>> = {
  'mqtt.connect.clientid': 'to_server',
  'mqtt.connect.username': 'to_server',
  'mqtt.connect.password': 'to_server',
  'mqtt.connect.willtopic': 'to_server',
  'mqtt.connect.willmessage': 'to_server',
  'mqtt.publish.topic': 'both',
  'mqtt.publish.message': 'to_server',
  'mqtt.subscribe.topic': 'both',
  'mqtt.unsubscribe.topic': 'to_server',
};

type Quoting = 'mandatory' | 'none';
interface Keyword {
  /** noopt: takes no value; value: needs one. */
  readonly arity: 'noopt' | 'value';
  readonly quotes: Quoting;
  readonly negation?: boolean;
}
const MODIFIERS = ['nocase', 'depth', 'offset', 'distance', 'within', 'startswith', 'endswith'] as const;
const KEYWORDS: Readonly<Record<string, Keyword>> = {
  msg: { arity: 'value', quotes: 'mandatory' },
  sid: { arity: 'value', quotes: 'none' },
  rev: { arity: 'value', quotes: 'none' },
  gid: { arity: 'value', quotes: 'none' },
  classtype: { arity: 'value', quotes: 'none' },
  priority: { arity: 'value', quotes: 'none' },
  flow: { arity: 'value', quotes: 'none' },
  content: { arity: 'value', quotes: 'mandatory', negation: true },
  nocase: { arity: 'noopt', quotes: 'none' },
  // Accepted for the rules written for Suricata; every content is searched the same way here.
  fast_pattern: { arity: 'noopt', quotes: 'none' },
  startswith: { arity: 'noopt', quotes: 'none' },
  endswith: { arity: 'noopt', quotes: 'none' },
  depth: { arity: 'value', quotes: 'none' },
  offset: { arity: 'value', quotes: 'none' },
  distance: { arity: 'value', quotes: 'none' },
  within: { arity: 'value', quotes: 'none' },
  'app-layer-event': { arity: 'value', quotes: 'none' },
  modbus: { arity: 'value', quotes: 'none' },
  'mqtt.type': { arity: 'value', quotes: 'none' },
  'mqtt.flags': { arity: 'value', quotes: 'none' },
  'mqtt.qos': { arity: 'value', quotes: 'none' },
  'mqtt.reason_code': { arity: 'value', quotes: 'none' },
  'mqtt.connack.return_code': { arity: 'value', quotes: 'none' },
  'mqtt.protocol_version': { arity: 'value', quotes: 'none' },
  'mqtt.connect.flags': { arity: 'value', quotes: 'none' },
  'mqtt.connack.session_present': { arity: 'value', quotes: 'none' },
  ...Object.fromEntries(Object.keys(STICKY).map((name) => [name, { arity: 'noopt', quotes: 'none' } as Keyword])),
};

const isBlank = (c: string | undefined): boolean => c === ' ' || c === '\t';
const isSpace = (c: string | undefined): boolean => c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\v' || c === '\f';

interface Field {
  text: string;
  at: number;
}

/** SigParseToken: skip blanks, then up to the next space, tab, CR or LF. */
function token(text: string, pos: number): { field: Field; next: number | undefined } {
  while (isBlank(text[pos])) pos++;
  let end = pos;
  while (end < text.length && !' \t\n\r'.includes(text[end]!)) end++;
  return { field: { text: text.slice(pos, end), at: pos }, next: end < text.length ? end + 1 : undefined };
}

/** SigParseList: skip blanks, then up to the next space outside brackets; none means the rule ends here. */
function list(text: string, pos: number): { field: Field; next: number | undefined } {
  while (isBlank(text[pos])) pos++;
  let depth = 0;
  for (let i = pos; i < text.length; i++) {
    const c = text[i];
    if (c === '[') depth++;
    else if (c === ']') depth--;
    else if (c === ' ' && depth <= 0) return { field: { text: text.slice(pos, i), at: pos }, next: i + 1 };
  }
  if (depth > 0) fault('E_RULE_BRACKETS', pos, 'a "[" in the header is never closed');
  return { field: { text: '', at: pos }, next: undefined };
}

export function parseRule(rule: RuleText, variables: RuleVariables): Rule {
  const text = rule.text;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if ((code < 0x20 && code !== 0x09 && code !== 0x0a && code !== 0x0d) || code === 0x7f) {
      fault('E_RULE_SYNTAX', i, `the rule contains the control character 0x${code.toString(16).padStart(2, '0')}`);
    }
  }
  // The seven header fields.
  const fields: Field[] = [];
  let pos: number | undefined = 0;
  const splitters = [token, list, list, list, token, list, list];
  for (const split of splitters) {
    if (pos === undefined) {
      fields.push({ text: '', at: text.length });
      continue;
    }
    const { field, next } = split(text, pos);
    fields.push(field);
    pos = next;
  }
  if (pos === undefined)
    fault('E_RULE_SYNTAX', text.length, 'the rule ends before its options: expected "action protocol source port -> destination port (options)"');
  const [actionF, protoF, srcF, spF, dirF, dstF, dpF] = fields as [Field, Field, Field, Field, Field, Field, Field];
  // Options: leading white space and "(" dropped, trailing white space and ")" dropped.
  let optStart = pos;
  while (optStart < text.length && (isSpace(text[optStart]) || text[optStart] === '(')) optStart++;
  let optEnd = text.length;
  while (optEnd > optStart && (isSpace(text[optEnd - 1]) || text[optEnd - 1] === ')')) optEnd--;

  const action = actionF.text.toLowerCase() as RuleAction;
  if (!ACTIONS.includes(action)) fault('E_RULE_SYNTAX', actionF.at, `"${actionF.text}" is not an action (alert, drop, pass, reject)`);
  const protocol = protoF.text.toLowerCase() as RuleProtocol;
  if (!PROTOCOLS.includes(protocol) || (protocol !== 'tcp' && protoF.text !== protocol)) {
    fault('E_RULE_SYNTAX', protoF.at, `"${protoF.text}" is not a protocol the gateway inspects (tcp, modbus, mqtt)`);
  }
  if (dirF.text !== '->' && dirF.text !== '<>') fault('E_RULE_SYNTAX', dirF.at, `"${dirF.text}" is not a direction ("->" or "<>")`);
  const source = parseAddresses(srcF.text, srcF.at, variables.addresses, 'source address');
  const destination = parseAddresses(dstF.text, dstF.at, variables.addresses, 'destination address');
  const sourcePorts = parsePorts(spF.text, spF.at, variables.ports, 'source port');
  const destinationPorts = parsePorts(dpF.text, dpF.at, variables.ports, 'destination port');

  const state = new RuleState(protocol === 'tcp' ? undefined : protocol);
  let p = optStart;
  while (p < optEnd) {
    while (p < optEnd && isBlank(text[p])) p++;
    if (p >= optEnd) break;
    // The end of this option: the next ";" not preceded by a backslash.
    let end = p;
    for (;;) {
      end = text.indexOf(';', end);
      if (end < 0 || end >= optEnd + 1) {
        const quote = text.indexOf('"', p);
        if (quote >= 0 && quote < optEnd) fault('E_RULE_STRING', quote, 'a quoted value is not closed (or its option has no terminating ";")');
        fault('E_RULE_SYNTAX', p, 'the option has no terminating ";"');
      }
      if (end > p && text[end - 1] === '\\') end++;
      else break;
    }
    state.option(text, p, end);
    p = end + 1;
  }
  return state.finish(rule, {
    action,
    protocol,
    source,
    sourcePorts,
    bidirectional: dirF.text === '<>',
    destination,
    destinationPorts,
    text: { source: srcF.text, sourcePorts: spF.text, destination: dstF.text, destinationPorts: dpF.text },
  });
}

class RuleState {
  msg: string | undefined;
  sid: number | undefined;
  rev = 0;
  gid = 1;
  classtype: string | undefined;
  classPriority: number | undefined;
  category = '';
  priority: number | undefined;
  /** Direction flags as Suricata adds them up over flow options (SIG_FLAG_TOSERVER / TOCLIENT). */
  readonly flowDirections = { toServer: false, toClient: false };
  /** The one flow option with more than a direction (Suricata allows only one of those). */
  flowConditions: Omit<FlowConstraint, 'direction'> | undefined;
  readonly buffers: Array<{ buffer: ContentBuffer; contents: ContentDraft[]; at: number }> = [];
  current: { buffer: ContentBuffer; contents: ContentDraft[]; at: number } | undefined;
  lastContent: ContentDraft | undefined;
  readonly modbus: ModbusConstraint[] = [];
  readonly mqtt: { -readonly [K in keyof MqttConstraint]: MqttConstraint[K] } = {};
  readonly events: AppLayerEvent[] = [];
  readonly directions = new Set<'to_server' | 'to_client'>();

  constructor(public appProtocol: AppProtocol | undefined) {}

  setApp(proto: AppProtocol, at: number, keyword: string): void {
    if (this.appProtocol && this.appProtocol !== proto) {
      fault('E_RULE_SYNTAX', at, `${keyword} is an ${proto} keyword, but the rule is already ${this.appProtocol}`);
    }
    this.appProtocol = proto;
  }

  option(text: string, start: number, end: number): void {
    const raw = text.slice(start, end);
    const colon = raw.indexOf(':');
    const name = (colon < 0 ? raw : raw.slice(0, colon)).replace(/[ \t]+$/, '');
    const nameKey = name.toLowerCase();
    let value: string | undefined = colon < 0 ? undefined : raw.slice(colon + 1).replace(/[ \t]+$/, '');
    let valueAt = start + colon + 1;
    const keyword = Object.hasOwn(KEYWORDS, nameKey) ? KEYWORDS[nameKey]! : undefined;
    if (!keyword) fault('E_RULE_KEYWORD', start, `unknown rule keyword "${name}"`);
    if (keyword.arity === 'noopt') {
      if (value) fault('E_RULE_VALUE', valueAt, `${name} takes no value`);
      this.apply(nameKey, undefined, false, start, start);
      return;
    }
    if (!value) fault('E_RULE_VALUE', start, `${name} needs a value`);
    while (isBlank(value[0])) {
      value = value.slice(1);
      valueAt++;
    }
    if (value === '') fault('E_RULE_VALUE', start, `${name} needs a value`);
    let negated = false;
    if (keyword.negation && value[0] === '!') {
      negated = true;
      value = value.slice(1).replace(/^[ \t]+/, (m) => {
        valueAt += m.length;
        return '';
      });
      valueAt++;
      if (value === '') fault('E_RULE_VALUE', start, `${name} needs a value`);
    }
    if (keyword.quotes === 'mandatory') {
      if (value[0] !== '"') fault('E_RULE_STRING', valueAt, `the value of ${name} must be in double quotes`);
      // A lone `"` is Suricata's quirk: it checks that the value ends in a quote, and one quote does.
      if (value === '"') {
        this.apply(nameKey, value, negated, valueAt, start);
        return;
      }
      if (value[value.length - 1] !== '"') fault('E_RULE_STRING', valueAt, `the quoted value of ${name} is not closed (or a ";" inside it is not escaped)`);
      value = value.slice(1, -1);
      valueAt++;
      if (value === '') fault('E_RULE_VALUE', valueAt, `${name} is empty`);
    } else if (value[0] === '"') {
      fault('E_RULE_VALUE', valueAt, `${name} does not take a quoted value`);
    }
    this.apply(nameKey, value, negated, valueAt, start);
  }

  /** `at` is where the value starts, `optionAt` where the option does (for rule-level faults). */
  apply(name: string, value: string | undefined, negated: boolean, at: number, optionAt: number): void {
    const bad = (what: string): never => fault('E_RULE_VALUE', at, `${name}: ${what}`);
    const v = value ?? '';
    switch (name) {
      case 'msg':
        if (this.msg !== undefined) fault('E_RULE_SYNTAX', optionAt, 'msg is given twice');
        // Every backslash escapes the next character (Suricata follows Snort here).
        this.msg = v.replace(/\\(.)/gs, '$1');
        return;
      case 'sid': {
        if (this.sid !== undefined) fault('E_RULE_SYNTAX', at, 'sid is given twice');
        const sid = strtoul32(v);
        if (sid === undefined) strtoul32Shape(v) ? rangeFault(at, 'sid must be 1 to 4294967294') : bad(`"${v}" is not a number`);
        if (sid === 0) rangeFault(at, 'sid 0 is not valid');
        this.sid = sid;
        return;
      }
      case 'rev': {
        if (this.rev !== 0) fault('E_RULE_SYNTAX', at, 'rev is given twice');
        const rev = strtoul32(v);
        if (rev === undefined) strtoul32Shape(v) ? rangeFault(at, 'rev must be 1 to 4294967294') : bad(`"${v}" is not a number`);
        if (rev === 0) rangeFault(at, 'rev 0 is not valid');
        this.rev = rev!;
        return;
      }
      case 'gid': {
        const gid = strtoul32(v);
        if (gid === undefined) strtoul32Shape(v) ? rangeFault(at, 'gid must be below 4294967295') : bad(`"${v}" is not a number`);
        this.gid = gid!;
        return;
      }
      case 'classtype': {
        const m = /^\s*([a-zA-Z][a-zA-Z0-9_-]*)\s*$/.exec(v);
        if (!m || m[1]!.length > 1023) bad(`"${v}" is not a classtype name`);
        const ct = m![1]!.toLowerCase();
        const known = Object.hasOwn(CLASSIFICATIONS, ct) ? CLASSIFICATIONS[ct] : undefined;
        // Suricata accepts an unknown classtype with priority 3 and the description "Unknown Classtype".
        const priority = known?.priority ?? 3;
        if (this.classtype === undefined || priority < (this.classPriority ?? 4)) {
          this.classtype = ct;
          this.classPriority = priority;
          this.category = known?.description ?? 'Unknown Classtype';
        }
        return;
      }
      case 'priority': {
        if (!/^\s*\d+\s*$/.test(v)) bad(`"${v}" is not a number`);
        const prio = Number(v.trim());
        this.priority = this.priority === undefined ? prio : Math.min(this.priority, prio);
        return;
      }
      case 'flow': {
        // detect-flow.c: a flow option with conditions may not follow another one with conditions;
        // a bare direction adds no condition, so any number of those may come first.
        if (this.flowConditions) fault('E_RULE_SYNTAX', optionAt, 'a rule may have only one flow option with more than a direction');
        const { direction, ...conditions } = parseFlow(v, at);
        if (direction !== 'to_client') this.flowDirections.toServer = true;
        if (direction !== 'to_server') this.flowDirections.toClient = true;
        if (Object.keys(conditions).length > 0) this.flowConditions = conditions;
        return;
      }
      case 'content': {
        const bytes = parseContentBytes(v, at);
        const content: ContentDraft = { bytes, negated, nocase: false, startsWith: false, endsWith: false };
        if (!this.current) {
          this.current = { buffer: 'payload', contents: [], at };
          this.buffers.push(this.current);
        }
        this.current.contents.push(content);
        this.lastContent = content;
        return;
      }
      case 'app-layer-event': {
        const event = v.replace(/^\s+/, '');
        const dot = event.indexOf('.');
        const proto = event.slice(0, dot);
        const eventName = event.slice(dot + 1);
        if (dot < 0 || (proto !== 'modbus' && proto !== 'mqtt')) bad(`"${event}" is not a modbus.* or mqtt.* event`);
        const names: readonly string[] = proto === 'modbus' ? MODBUS_EVENTS : MQTT_EVENTS;
        if (!names.includes(eventName)) bad(`"${eventName}" is not an ${proto} event (${names.join(', ')})`);
        this.setApp(proto as AppProtocol, optionAt, name);
        this.events.push({ protocol: proto, event: eventName } as AppLayerEvent);
        return;
      }
      case 'modbus': {
        this.setApp('modbus', optionAt, name);
        const constraint = parseModbus(v);
        if (!constraint) bad(`"${v}" is not a modbus option (function, subfunction, access, address, value, unit)`);
        this.modbus.push(constraint!);
        this.directions.add('to_server');
        return;
      }
      default:
        break;
    }
    if (name === 'fast_pattern') {
      if (!this.lastContent) fault('E_RULE_SYNTAX', optionAt, 'fast_pattern needs a content before it');
      return;
    }
    if ((MODIFIERS as readonly string[]).includes(name)) {
      applyModifier(this.lastContent, name as (typeof MODIFIERS)[number], value, at, optionAt);
      return;
    }
    if (Object.hasOwn(STICKY, name)) {
      this.setApp('mqtt', optionAt, name);
      this.current = { buffer: name as ContentBuffer, contents: [], at };
      this.buffers.push(this.current);
      const direction = STICKY[name]!;
      if (direction !== 'both') this.directions.add(direction);
      return;
    }
    this.setApp('mqtt', optionAt, name);
    const m = this.mqtt;
    switch (name) {
      case 'mqtt.type': {
        const type = parseMqttType(v);
        if (!type) bad(`"${v}" is not an MQTT packet type`);
        m.type = type;
        return;
      }
      case 'mqtt.flags': {
        const flags = parseFlagList(v, MQTT_FLAGS);
        if (!flags) bad(`"${v}" is not a list of dup, retain (each may be negated with !)`);
        m.flags = flags;
        this.directions.add('to_server');
        return;
      }
      case 'mqtt.qos': {
        const qos = parseQos(v);
        if (qos === undefined) rangeFault(at, `mqtt.qos is 0, 1 or 2, not "${v}"`);
        m.qos = qos;
        this.directions.add('to_server');
        return;
      }
      case 'mqtt.reason_code':
      case 'mqtt.connack.return_code': {
        const code = parseReasonCode(v);
        if (code === undefined) bad(`"${v}" is not a reason code (0 to 255)`);
        m.reasonCode = code;
        return;
      }
      case 'mqtt.protocol_version': {
        const version = parseProtocolVersion(v);
        if (!version) bad(`"${v}" is not a protocol version comparison (n, <n, >n, a-b, !n)`);
        m.protocolVersion = version;
        this.directions.add('to_server');
        return;
      }
      case 'mqtt.connect.flags': {
        const flags = parseFlagList(v, MQTT_CONNECT_FLAGS);
        if (!flags) bad(`"${v}" is not a list of ${MQTT_CONNECT_FLAGS.join(', ')} (each may be negated with !)`);
        m.connectFlags = flags;
        this.directions.add('to_server');
        return;
      }
      case 'mqtt.connack.session_present': {
        const present = parseSessionPresent(v);
        if (present === undefined) bad(`"${v}" is not yes, no, true or false`);
        m.sessionPresent = present;
        this.directions.add('to_client');
        return;
      }
    }
  }

  finish(rule: RuleText, header: Rule['header']): Rule {
    if (this.sid === undefined) fault('E_RULE_MISSING_SID', 0, 'the rule has no sid');
    for (const buffer of this.buffers) {
      if (buffer.contents.length === 0) fault('E_RULE_SYNTAX', buffer.at, `${buffer.buffer} is not followed by a content to match in it`);
    }
    // DetectFlowSetupImplicit: keywords inspecting one direction narrow a flow that allows both,
    // and conflict with a flow that allows only the other.
    const hasServer = this.directions.has('to_server');
    const hasClient = this.directions.has('to_client');
    const flags = { ...this.flowDirections };
    const conflict = (): never => fault('E_RULE_SYNTAX', 0, 'the rule mixes keywords with conflicting directions (to_server and to_client)');
    if (hasServer && hasClient) conflict();
    if (hasServer) {
      if (flags.toClient && !flags.toServer) conflict();
      flags.toClient = false;
      flags.toServer = true;
    } else if (hasClient) {
      if (flags.toServer && !flags.toClient) conflict();
      flags.toServer = false;
      flags.toClient = true;
    }
    const direction = flags.toServer && !flags.toClient ? 'to_server' : flags.toClient && !flags.toServer ? 'to_client' : undefined;
    const flow: FlowConstraint | undefined =
      direction || this.flowConditions ? { ...(direction ? { direction } : {}), ...(this.flowConditions ?? {}) } : undefined;
    const impliedDirection = hasServer ? 'to_server' : hasClient ? 'to_client' : undefined;
    return {
      header,
      ...(this.appProtocol ? { appProtocol: this.appProtocol } : {}),
      msg: this.msg ?? '',
      sid: this.sid,
      rev: this.rev,
      gid: this.gid,
      ...(this.classtype ? { classtype: this.classtype } : {}),
      priority: this.priority ?? this.classPriority ?? 3,
      category: this.category,
      ...(flow ? { flow } : {}),
      ...(impliedDirection ? { impliedDirection } : {}),
      buffers: this.buffers.map(({ buffer, contents }): BufferMatch => ({ buffer, contents: contents.map((c) => ({ ...c })) })),
      modbus: this.modbus,
      mqtt: this.mqtt,
      events: this.events,
      source: { line: rule.line, text: rule.text },
    };
  }
}

function strtoul32Shape(v: string): boolean {
  return /^[ \t\n\v\f\r]*[+-]?[0-9]+$/.test(v);
}

function rangeFault(at: number, message: string): never {
  fault('E_RULE_RANGE', at, message);
}

/** detect-flow.c: up to three comma-separated options, each once, none contradicting another. */
function parseFlow(value: string, at: number): FlowConstraint {
  const m = /^\s*([A-z_]+)\s*(?:,\s*([A-z_]+))?\s*(?:,\s*([A-z_]+))?\s*$/.exec(value);
  if (!m) fault('E_RULE_VALUE', at, `flow: "${value}" is not a list of up to three flow options`);
  const flow: { -readonly [K in keyof FlowConstraint]: FlowConstraint[K] } = {};
  const set = <K extends keyof FlowConstraint>(key: K, v: NonNullable<FlowConstraint[K]>): void => {
    if (flow[key] !== undefined) fault('E_RULE_VALUE', at, `flow: "${v}" contradicts or repeats "${flow[key]}"`);
    flow[key] = v;
  };
  for (const option of m.slice(1)) {
    if (option === undefined) continue;
    switch (option.toLowerCase()) {
      case 'established':
      case 'not_established':
      case 'stateless':
        set('state', option.toLowerCase() as 'established');
        break;
      case 'to_client':
      case 'from_server':
        set('direction', 'to_client');
        break;
      case 'to_server':
      case 'from_client':
        set('direction', 'to_server');
        break;
      case 'only_stream':
      case 'no_stream':
        set('stream', option.toLowerCase() as 'only_stream');
        break;
      case 'only_frag':
      case 'no_frag':
        set('frag', option.toLowerCase() as 'only_frag');
        break;
      default:
        fault('E_RULE_VALUE', at, `flow: "${option}" is not a flow option`);
    }
  }
  return flow;
}
