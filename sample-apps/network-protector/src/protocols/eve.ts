/**
 * The `modbus` and `mqtt` objects of Suricata 7's eve.json for one transaction (its
 * `rust/src/modbus/log.rs` and `rust/src/mqtt/logger.rs`), so an alert printed by the replay or
 * the gate carries the same object as Suricata's. Byte strings follow Suricata's JsonBuilder:
 * valid UTF-8 as is, otherwise ASCII bytes as characters and the others as `\xNN`.
 */
import {
  ModbusAccess,
  ModbusCategory,
  ModbusErrorFlag,
  type ModbusMessage,
  type ModbusRead,
  type ModbusTransaction,
  type ModbusWrite,
  type MqttProperty,
  type MqttTransaction,
} from './types.js';

type Json = Record<string, unknown>;

function validUtf8(b: Uint8Array): boolean {
  let i = 0;
  while (i < b.length) {
    const c = b[i]!;
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (c < 0x80) need = 0;
    else if (c >= 0xc2 && c <= 0xdf) need = 1;
    else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      if (c === 0xe0) lo = 0xa0;
      if (c === 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      if (c === 0xf0) lo = 0x90;
      if (c === 0xf4) hi = 0x8f;
    } else return false;
    for (let k = 1; k <= need; k++) {
      const d = b[i + k];
      if (d === undefined || d < lo || d > hi) return false;
      lo = 0x80;
      hi = 0xbf;
    }
    i += need + 1;
  }
  return true;
}

/** Suricata's `set_string_from_bytes`. */
export function eveBytes(b: Uint8Array): string {
  if (validUtf8(b)) {
    let s = '';
    for (let i = 0; i < b.length; ) {
      const c = b[i]!;
      const n = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
      let cp = n === 1 ? c : c & (0xff >> (n + 1));
      for (let k = 1; k < n; k++) cp = (cp << 6) | (b[i + k]! & 0x3f);
      s += String.fromCodePoint(cp);
      i += n;
    }
    return s;
  }
  let s = '';
  for (const c of b) s += c < 128 ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`;
  return s;
}

/** sawp-flags' Display: every declared item (composites too) whose bits are all set, " | "-joined; NONE when empty. */
function flagNames(bits: number, items: readonly (readonly [string, number])[]): string {
  if (bits === 0) return 'NONE';
  return items
    .filter(([, v]) => (bits & v) === v)
    .map(([k]) => k)
    .join(' | ');
}

const ACCESS_ITEMS = [...Object.entries(ModbusAccess), ['WRITE_SINGLE', 0x42], ['WRITE_MULTIPLE', 0x82]] as const;
const ACCESS_ORDER = [
  'READ',
  'WRITE',
  'DISCRETES',
  'COILS',
  'INPUT',
  'HOLDING',
  'SINGLE',
  'MULTIPLE',
  'BIT_ACCESS_MASK',
  'FUNC_MASK',
  'WRITE_SINGLE',
  'WRITE_MULTIPLE',
];
const ACCESS = ACCESS_ORDER.map((name) => ACCESS_ITEMS.find(([k]) => k === name)!) as readonly (readonly [string, number])[];
const CATEGORY = Object.entries(ModbusCategory) as readonly (readonly [string, number])[];
const ERRORS = Object.entries(ModbusErrorFlag) as readonly (readonly [string, number])[];

function read(r: ModbusRead): Json {
  return r.kind === 'request' ? { address: r.address, quantity: r.quantity } : { data: eveBytes(r.data) };
}

function write(w: ModbusWrite): Json {
  if (w.kind === 'multiple') return { address: w.address, quantity: w.quantity, data: eveBytes(w.data) };
  if (w.kind === 'mask') return { address: w.address, and_mask: w.andMask, or_mask: w.orMask };
  return { address: w.address, data: w.data };
}

function modbusMessage(m: ModbusMessage): Json {
  const out: Json = {
    transaction_id: m.transactionId,
    protocol_id: m.protocolId,
    unit_id: m.unitId,
    function_raw: m.functionRaw,
    function_code: m.functionCode,
    access_type: flagNames(m.accessType, ACCESS),
    category: flagNames(m.category, CATEGORY),
    error_flags: flagNames(m.errorFlags, ERRORS),
  };
  const d = m.data;
  switch (d.kind) {
    case 'exception':
      out.exception = { raw: d.raw, code: d.code };
      break;
    case 'diagnostic':
      out.diagnostic = { raw: d.raw, code: d.code, data: eveBytes(d.data) };
      break;
    case 'mei':
      out.mei = { raw: d.raw, code: d.code, data: eveBytes(d.data) };
      break;
    case 'read':
      out.read = read(d.read);
      break;
    case 'write':
      out.write = write(d.write);
      break;
    case 'readwrite':
      out.read = read(d.read);
      out.write = write(d.write);
      break;
    case 'bytes':
      out.data = eveBytes(d.data);
      break;
    case 'empty':
      break;
  }
  return out;
}

/** The eve.json `modbus` object of a transaction. */
export function modbusEve(tx: ModbusTransaction): Json {
  const out: Json = { id: tx.txId + 1 };
  if (tx.request) out.request = modbusMessage(tx.request);
  if (tx.response) out.response = modbusMessage(tx.response);
  return out;
}

function properties(list: readonly MqttProperty[]): Json {
  const out: Json = {};
  for (const p of list) {
    if (p.value === undefined) continue;
    if (p.name === 'user_property') {
      const [k, v] = p.value as readonly [string, string];
      out[k] = v;
    } else out[p.name] = p.value instanceof Uint8Array ? eveBytes(p.value) : p.value;
  }
  return out;
}

/** The eve.json `mqtt` object of a transaction; passwords only when asked (Suricata's `passwords: yes`). */
export function mqttEve(tx: MqttTransaction, options: { passwords?: boolean } = {}): Json {
  const out: Json = {};
  for (const m of tx.messages) {
    const h = m.header;
    const o: Json = { qos: h.qos, retain: h.retain, dup: h.dup };
    const b = m.body;
    const props = 'properties' in b && b.properties ? { properties: properties(b.properties) } : {};
    switch (b.kind) {
      case 'connect': {
        Object.assign(o, {
          protocol_string: b.protocolString,
          protocol_version: b.protocolVersion,
          client_id: b.clientId,
          flags: { username: b.usernameFlag, password: b.passwordFlag, will_retain: b.willRetain, will: b.willFlag, clean_session: b.cleanSession },
        });
        if (b.username !== undefined) o.username = b.username;
        if (options.passwords && b.password) o.password = eveBytes(b.password);
        if (b.willFlag) {
          const will: Json = {};
          if (b.willTopic !== undefined) will.topic = b.willTopic;
          if (b.willMessage) will.message = eveBytes(b.willMessage);
          if (b.willProperties) will.properties = properties(b.willProperties);
          o.will = will;
        }
        Object.assign(o, props);
        break;
      }
      case 'connack':
        Object.assign(o, { session_present: b.sessionPresent, return_code: b.returnCode }, props);
        break;
      case 'publish':
        o.topic = b.topic;
        if (b.messageId !== undefined) o.message_id = b.messageId;
        o.message = eveBytes(b.message);
        Object.assign(o, props);
        break;
      case 'puback':
      case 'pubrec':
      case 'pubrel':
      case 'pubcomp':
        o.message_id = b.messageId;
        if (b.reasonCode !== undefined) o.reason_code = b.reasonCode;
        Object.assign(o, props);
        break;
      case 'subscribe':
        Object.assign(o, { message_id: b.messageId, topics: b.topics.map((t) => ({ topic: t.topic, qos: t.qos })) }, props);
        break;
      case 'suback':
        Object.assign(o, { message_id: b.messageId, qos_granted: [...b.qosGranted] });
        break;
      case 'unsubscribe':
        Object.assign(o, { message_id: b.messageId, topics: [...b.topics] });
        break;
      case 'unsuback':
        o.message_id = b.messageId;
        if (b.reasonCodes.length > 0) o.reason_codes = [...b.reasonCodes];
        break;
      case 'auth':
        Object.assign(o, { reason_code: b.reasonCode }, props);
        break;
      case 'disconnect':
        if (b.reasonCode !== undefined) o.reason_code = b.reasonCode;
        Object.assign(o, props);
        break;
      case 'truncated':
        Object.assign(o, { truncated: true, skipped_length: b.skippedLength });
        out[b.originalType] = o;
        continue;
      case 'unassigned':
        continue;
      default:
        break;
    }
    out[b.kind] = o;
  }
  return out;
}
