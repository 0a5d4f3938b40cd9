/**
 * A transaction against a rule's application keywords, as Suricata 7 inspects one:
 * rust/src/modbus/detect.rs (`rs_modbus_inspect`: the request, or the response when there is no
 * request; unit, then access, category or function) and rust/src/mqtt/detect.rs with the
 * detect-mqtt-*.c around it (each keyword looks at any message of the transaction; the sticky
 * buffers take the first non-empty value, subscribe and unsubscribe topics each one by one;
 * `mqtt.protocol_version` is the connection's, not the transaction's).
 */
import { modbusAddressRange, modbusFunctionName, modbusWriteValueAt } from '../protocols/modbus.js';
import { ModbusAccess, ModbusCategory, type ModbusMessage, type ModbusTransaction, type MqttMessage, type MqttTransaction } from '../protocols/types.js';
import type { BufferMatch, ContentBuffer, ModbusConstraint, ModbusRange, MqttConstraint, Rule, UintMatch } from '../rules/types.js';
import { contentsMatch } from './content.js';

/** check_match: a value against a signature range. */
export function inRange(r: ModbusRange, value: number): boolean {
  switch (r.op) {
    case 'eq':
      return value === r.value;
    case 'lt':
      return value < r.value;
    case 'gt':
      return value > r.value;
    case 'between':
      return r.min < value && value < r.max;
  }
}

/** check_match_range: a signature range against the request's address range. */
function rangeOverlaps(r: ModbusRange, first: number, last: number): boolean {
  switch (r.op) {
    case 'eq':
      return r.value >= first && r.value <= last;
    case 'lt':
      return r.value > first;
    case 'gt':
      return r.value < last;
    case 'between':
      return r.min < last && first < r.max;
  }
}

function rangeStart(r: ModbusRange): number {
  return r.op === 'eq' ? r.value : r.op === 'lt' ? 0 : r.op === 'gt' ? r.value : r.min;
}

const CATEGORY_BITS: Readonly<Record<string, number>> = {
  public_assigned: ModbusCategory.PUBLIC_ASSIGNED,
  public_unassigned: ModbusCategory.PUBLIC_UNASSIGNED,
  user_defined: ModbusCategory.USER_DEFINED,
  reserved: ModbusCategory.RESERVED,
};
const TABLE_BITS: Readonly<Record<string, number>> = {
  discretes: ModbusAccess.DISCRETES,
  coils: ModbusAccess.COILS,
  input: ModbusAccess.INPUT,
  holding: ModbusAccess.HOLDING,
};

/**
 * Whether a message with this function byte, access type and category could match the constraint
 * (its unit, address and value aside): what the inspector indexes Modbus rules by, so a request
 * costs only the rules for its function.
 */
export function modbusCouldMatch(c: ModbusConstraint, functionRaw: number, accessType: number, category: number, functionCode: string): boolean {
  if (c.access) {
    const rw = c.access.type === 'read' ? ModbusAccess.READ : ModbusAccess.WRITE;
    const table = c.access.table ? TABLE_BITS[c.access.table]! : 0;
    return (accessType & rw) !== 0 && (table === 0 || (accessType & table) !== 0);
  }
  if (c.categories) {
    let bits = 0;
    for (const name of c.categories) bits |= CATEGORY_BITS[name]!;
    return (category & bits) !== 0;
  }
  return c.function === undefined || (functionRaw >= 0 && modbusFunctionName(c.function) === functionCode);
}

let rangeMessage: ModbusMessage | undefined;
let range: { first: number; last: number } | undefined;
/**
 * modbusAddressRange of the message the rules are being matched against: a list of address rules
 * (one per register block) asks for it once per rule, and a message's range never changes.
 */
function addressRangeOf(msg: ModbusMessage): { first: number; last: number } | undefined {
  if (msg !== rangeMessage) {
    range = modbusAddressRange(msg);
    rangeMessage = msg;
  }
  return range;
}

export function modbusMatches(c: ModbusConstraint, tx: ModbusTransaction): boolean {
  const msg: ModbusMessage | undefined = tx.request ?? tx.response;
  if (!msg) return false;
  if (c.unit && !inRange(c.unit, msg.unitId)) return false;
  if (c.access) {
    const rw = c.access.type === 'read' ? ModbusAccess.READ : ModbusAccess.WRITE;
    const table = c.access.table ? TABLE_BITS[c.access.table]! : 0;
    if ((msg.accessType & rw) === 0 || (table !== 0 && (msg.accessType & table) === 0)) return false;
    if (!c.access.address) return true;
    const range = addressRangeOf(msg);
    if (!range || !rangeOverlaps(c.access.address, range.first, range.last)) return false;
    if (!c.access.value) return true;
    const value = modbusWriteValueAt(msg, rangeStart(c.access.address));
    return value !== undefined && inRange(c.access.value, value);
  }
  if (c.categories) {
    let bits = 0;
    for (const name of c.categories) bits |= CATEGORY_BITS[name]!;
    return (msg.category & bits) !== 0;
  }
  if (c.function === undefined) return true;
  // sawp compares FunctionCode values: every code it does not know is the one `Unknown`.
  if (modbusFunctionName(c.function) !== msg.functionCode) return false;
  if (c.subfunction === undefined) return true;
  return msg.data.kind === 'diagnostic' && msg.data.raw === c.subfunction;
}

function uintMatches(m: UintMatch, v: number): boolean {
  switch (m.op) {
    case 'eq':
      return v === m.value;
    case 'ne':
      return v !== m.value;
    case 'lt':
      return v < m.value;
    case 'le':
      return v <= m.value;
    case 'gt':
      return v > m.value;
    case 'ge':
      return v >= m.value;
    case 'range':
      return m.min < v && v < m.max;
  }
}

function flagsHold(conditions: Readonly<Record<string, boolean | undefined>>, actual: Readonly<Record<string, boolean>>): boolean {
  for (const [name, want] of Object.entries(conditions)) if (want !== undefined && actual[name] !== want) return false;
  return true;
}

/** rs_mqtt_tx_get_reason_code, then rs_mqtt_tx_unsuback_has_reason_code when there is none. */
function reasonCodeMatches(code: number, messages: readonly MqttMessage[]): boolean {
  for (const m of messages) {
    const b = m.body;
    switch (b.kind) {
      case 'puback':
      case 'pubrel':
      case 'pubrec':
      case 'pubcomp':
      case 'disconnect':
        if (b.reasonCode !== undefined) return b.reasonCode === code;
        break;
      case 'auth':
        return b.reasonCode === code;
      case 'connack':
        return b.returnCode === code;
      default:
        break;
    }
  }
  for (const m of messages) {
    const b = m.body;
    if (b.kind === 'unsuback' && b.reasonCodes.includes(code)) return true;
    if (b.kind === 'suback' && b.qosGranted.includes(code)) return true;
  }
  return false;
}

export function mqttMatches(c: MqttConstraint, tx: MqttTransaction, protocolVersion: number): boolean {
  const messages = tx.messages;
  if (c.type && !messages.some((m) => m.header.type === c.type!.code)) return false;
  if (c.flags && !messages.some((m) => flagsHold(c.flags!, { dup: m.header.dup, retain: m.header.retain }))) return false;
  if (c.qos !== undefined && !messages.some((m) => m.header.qos === c.qos)) return false;
  if (c.reasonCode !== undefined && !reasonCodeMatches(c.reasonCode, messages)) return false;
  if (c.protocolVersion && !uintMatches(c.protocolVersion, protocolVersion)) return false;
  if (c.connectFlags) {
    const ok = messages.some((m) => {
      const b = m.body;
      if (b.kind !== 'connect') return false;
      return flagsHold(c.connectFlags!, {
        username: b.usernameFlag,
        password: b.passwordFlag,
        will: b.willFlag,
        will_retain: b.willRetain,
        clean_session: b.cleanSession,
      });
    });
    if (!ok) return false;
  }
  if (c.sessionPresent !== undefined) {
    const connack = messages.find((m) => m.body.kind === 'connack');
    if (!connack || (connack.body as { sessionPresent: boolean }).sessionPresent !== c.sessionPresent) return false;
  }
  return true;
}

/** UTF-8 of a string (the parsers keep MQTT strings decoded; rules match their bytes). */
export function utf8(text: string): Uint8Array {
  const out: number[] = [];
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (cp < 0x80) out.push(cp);
    else if (cp < 0x800) out.push(0xc0 | (cp >> 6), 0x80 | (cp & 0x3f));
    else if (cp < 0x10000) out.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
    else out.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
  }
  return Uint8Array.from(out);
}

const encoded = new WeakMap<object, Map<string, Uint8Array>>();
function bytesOf(owner: object, key: string, text: string): Uint8Array {
  let cache = encoded.get(owner);
  if (!cache) {
    cache = new Map();
    encoded.set(owner, cache);
  }
  let bytes = cache.get(key);
  if (!bytes) {
    bytes = utf8(text);
    cache.set(key, bytes);
  }
  return bytes;
}

/** The buffers of one sticky keyword in a transaction: one, none, or one per topic. */
function mqttBuffers(name: ContentBuffer, tx: MqttTransaction): Uint8Array[] {
  for (const m of tx.messages) {
    const b = m.body;
    switch (name) {
      case 'mqtt.connect.clientid':
        if (b.kind === 'connect' && b.clientId !== '') return [bytesOf(b, 'clientid', b.clientId)];
        break;
      case 'mqtt.connect.username':
        if (b.kind === 'connect' && b.username) return [bytesOf(b, 'username', b.username)];
        break;
      case 'mqtt.connect.password':
        if (b.kind === 'connect' && b.password && b.password.length > 0) return [b.password];
        break;
      case 'mqtt.connect.willtopic':
        if (b.kind === 'connect' && b.willTopic) return [bytesOf(b, 'willtopic', b.willTopic)];
        break;
      case 'mqtt.connect.willmessage':
        if (b.kind === 'connect' && b.willMessage && b.willMessage.length > 0) return [b.willMessage];
        break;
      case 'mqtt.publish.topic':
        if (b.kind === 'publish' && b.topic !== '') return [bytesOf(b, 'topic', b.topic)];
        break;
      case 'mqtt.publish.message':
        if (b.kind === 'publish' && b.message.length > 0) return [b.message];
        break;
      default:
        break;
    }
  }
  if (name === 'mqtt.subscribe.topic' || name === 'mqtt.unsubscribe.topic') {
    // rs_mqtt_tx_get_{un,}subscribe_topic: topics of every such message, in order, until an empty one.
    const out: Uint8Array[] = [];
    for (const m of tx.messages) {
      const b = m.body;
      if (name === 'mqtt.subscribe.topic' && b.kind === 'subscribe') {
        for (let i = 0; i < b.topics.length; i++) {
          const t = b.topics[i]!.topic;
          if (t === '') return out;
          out.push(bytesOf(b, `s${i}`, t));
        }
      } else if (name === 'mqtt.unsubscribe.topic' && b.kind === 'unsubscribe') {
        for (let i = 0; i < b.topics.length; i++) {
          const t = b.topics[i]!;
          if (t === '') return out;
          out.push(bytesOf(b, `u${i}`, t));
        }
      }
    }
    return out;
  }
  return [];
}

/** Every sticky-buffer match of the rule (the payload ones are checked on the stream). */
export function stickyBuffersMatch(buffers: readonly BufferMatch[], tx: MqttTransaction): boolean {
  for (const b of buffers) {
    if (b.buffer === 'payload') continue;
    if (!mqttBuffers(b.buffer, tx).some((bytes) => contentsMatch(bytes, b.contents))) return false;
  }
  return true;
}

/** Every payload (stream) content group of the rule against one chunk of the stream. */
export function payloadMatches(buffers: readonly BufferMatch[], payload: Uint8Array): boolean {
  for (const b of buffers) {
    if (b.buffer !== 'payload') continue;
    if (payload.length === 0 || !contentsMatch(payload, b.contents)) return false;
  }
  return true;
}

export function eventsMatch(rule: Rule, events: readonly string[]): boolean {
  for (const e of rule.events) if (!events.includes(e.event)) return false;
  return true;
}
