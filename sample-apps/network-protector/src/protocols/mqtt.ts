/**
 * MQTT 3.1, 3.1.1 and 5.0 as Suricata 7 sees it: a port of `rust/src/mqtt/parser.rs`,
 * `mqtt_property.rs` and the transaction logic of `mqtt.rs`. Its quirks are kept on purpose so rules
 * fire as in Suricata:
 *  - the protocol version that decides whether properties are parsed is the connection's, set by the
 *    last CONNECT seen in either direction (0 before one: parsed as 3.1.1);
 *  - a remaining length longer than 4 bytes, or a message whose fields overrun it, is
 *    `malformed_traffic` and stops the parser for the flow;
 *  - a message longer than the maximum (1 MiB) is kept as "truncated" and its bytes skipped;
 *  - a 5.0 DISCONNECT with exactly one byte reports reason code 0 whatever the byte says;
 *  - an AUTH with no reason code byte is malformed (5.0 allows it; Suricata 7 does not).
 */
import { lossyUtf8, Reader, Short, StreamBuffer } from './bytes.js';
import type {
  Direction,
  FeedResult,
  MqttBody,
  MqttConnect,
  MqttEventName,
  MqttFixedHeader,
  MqttMessage,
  MqttProperty,
  MqttTransaction,
  MqttTypeName,
} from './types.js';

export const MQTT_MAX_MSG_LEN = 1_048_576;
export const MQTT_MAX_TX = 1024;
const CONNECT_PKT_ID = 0xffffffff;

const TYPE_NAMES: readonly MqttTypeName[] = [
  'unassigned',
  'connect',
  'connack',
  'publish',
  'puback',
  'pubrec',
  'pubrel',
  'pubcomp',
  'subscribe',
  'suback',
  'unsubscribe',
  'unsuback',
  'pingreq',
  'pingresp',
  'disconnect',
  'auth',
];

/** A parse that cannot succeed (Suricata's nom `Err::Error`): malformed traffic. */
class Malformed {}

type Kind = 'u8' | 'u16' | 'u32' | 'varint' | 'string' | 'binary' | 'pair';
const PROPERTIES: Record<number, readonly [string, Kind]> = {
  1: ['payload_format_indicator', 'u8'],
  2: ['message_expiry_interval', 'u32'],
  3: ['content_type', 'string'],
  8: ['response_topic', 'string'],
  9: ['correlation_data', 'binary'],
  11: ['subscription_identifier', 'varint'],
  17: ['session_expiry_interval', 'u32'],
  18: ['assigned_client_identifier', 'string'],
  19: ['server_keep_alive', 'u16'],
  21: ['authentication_method', 'string'],
  22: ['authentication_data', 'binary'],
  23: ['request_problem_information', 'u8'],
  24: ['will_delay_interval', 'u32'],
  25: ['request_response_information', 'u8'],
  26: ['response_information', 'string'],
  28: ['server_reference', 'string'],
  31: ['reason_string', 'string'],
  33: ['receive_maximum', 'u16'],
  34: ['topic_alias_maximum', 'u16'],
  35: ['topic_alias', 'u16'],
  36: ['maximum_qos', 'u8'],
  37: ['retain_available', 'u8'],
  38: ['user_property', 'pair'],
  39: ['maximum_packet_size', 'u32'],
  40: ['wildcard_subscription_available', 'u8'],
  41: ['subscription_identifier_available', 'u8'],
  42: ['shared_subscription_available', 'u8'],
};

/**
 * The remaining-length varint: up to three continuation bytes and a last one. `undefined` when
 * more bytes are needed; throws Malformed when a fourth byte still has the continuation bit.
 */
function varint(r: Reader): number | undefined {
  let value = 0;
  let multiplier = 1;
  for (let i = 0; i < 4; i++) {
    if (r.left === 0) return undefined;
    const b = r.u8();
    if (i === 3 && b & 0x80) throw new Malformed();
    value += (b & 0x7f) * multiplier;
    multiplier *= 128;
    if (!(b & 0x80)) return value;
  }
  return value;
}

function varintInside(r: Reader): number {
  const v = varint(r);
  if (v === undefined) throw new Short(1);
  return v;
}

const str = (r: Reader): string => lossyUtf8(r.take(r.u16()));
const bin = (r: Reader): Uint8Array => r.take(r.u16());

function property(r: Reader): MqttProperty {
  const id = varintInside(r);
  const spec = PROPERTIES[id];
  if (!spec) return { id, name: 'unknown', value: undefined };
  const [name, kind] = spec;
  switch (kind) {
    case 'u8':
      return { id, name, value: r.u8() };
    case 'u16':
      return { id, name, value: r.u16() };
    case 'u32':
      return { id, name, value: r.u32() };
    case 'varint':
      return { id, name, value: varintInside(r) };
    case 'string':
      return { id, name, value: str(r) };
    case 'binary':
      return { id, name, value: bin(r) };
    case 'pair':
      return { id, name, value: [str(r), str(r)] as const };
  }
}

function properties(r: Reader, wanted: boolean): MqttProperty[] | undefined {
  if (!wanted) return undefined;
  const length = varintInside(r);
  if (length === 0) return undefined;
  if (r.left < length) throw new Malformed();
  const inner = new Reader(r.bytes, r.pos + length);
  inner.pos = r.pos;
  const out: MqttProperty[] = [];
  while (inner.left > 0) out.push(property(inner));
  r.pos += length;
  return out;
}

function connect(r: Reader): MqttConnect {
  const protocolString = str(r);
  const protocolVersion = r.u8();
  const flags = r.u8();
  const keepalive = r.u16();
  const v5 = protocolVersion === 5;
  const will = (flags & 0x04) !== 0;
  const props = properties(r, v5);
  const clientId = str(r);
  const willProperties = properties(r, v5 && will);
  const willTopic = will ? str(r) : undefined;
  const willMessage = will ? bin(r) : undefined;
  const username = flags & 0x80 ? str(r) : undefined;
  const password = flags & 0x40 ? bin(r) : undefined;
  return {
    kind: 'connect',
    protocolString,
    protocolVersion,
    connectFlags: flags,
    usernameFlag: (flags & 0x80) !== 0,
    passwordFlag: (flags & 0x40) !== 0,
    willRetain: (flags & 0x20) !== 0,
    willQos: (flags >> 3) & 3,
    willFlag: will,
    cleanSession: (flags & 0x02) !== 0,
    keepalive,
    clientId,
    ...(willTopic !== undefined && { willTopic }),
    ...(willMessage !== undefined && { willMessage }),
    ...(username !== undefined && { username }),
    ...(password !== undefined && { password }),
    ...(props && { properties: props }),
    ...(willProperties && { willProperties }),
  };
}

const withProps = <T extends object>(body: T, props: MqttProperty[] | undefined): T => (props ? { ...body, properties: props } : body);

function body(type: MqttTypeName, header: MqttFixedHeader, r: Reader, version: number): MqttBody {
  const v5 = version === 5;
  switch (type) {
    case 'connect':
      return connect(r);
    case 'connack': {
      const ack = r.u8();
      const returnCode = r.u8();
      return withProps({ kind: 'connack' as const, sessionPresent: (ack & 1) !== 0, returnCode }, properties(r, v5));
    }
    case 'publish': {
      const topic = str(r);
      const messageId = header.qos > 0 ? r.u16() : undefined;
      const props = properties(r, v5);
      const message = r.take(r.left);
      return withProps({ kind: 'publish' as const, topic, ...(messageId !== undefined && { messageId }), message }, props);
    }
    case 'puback':
    case 'pubrec':
    case 'pubrel':
    case 'pubcomp': {
      const total = r.left;
      const messageId = r.u16();
      if (!v5) return { kind: type, messageId };
      if (total === 2) return { kind: type, messageId, reasonCode: 0 };
      const reasonCode = r.u8();
      if (total === 3) return { kind: type, messageId, reasonCode };
      return withProps({ kind: type, messageId, reasonCode }, properties(r, true));
    }
    case 'subscribe': {
      const messageId = r.u16();
      const props = properties(r, v5);
      const topics: { topic: string; qos: number }[] = [];
      for (;;) {
        const start = r.pos;
        try {
          const topic = str(r);
          topics.push({ topic, qos: r.u8() });
        } catch (error) {
          if (!(error instanceof Short)) throw error;
          r.pos = start;
          break;
        }
      }
      if (topics.length === 0) throw new Malformed();
      return withProps({ kind: 'subscribe' as const, messageId, topics }, props);
    }
    case 'suback': {
      const messageId = r.u16();
      const props = properties(r, v5);
      return withProps({ kind: 'suback' as const, messageId, qosGranted: r.take(r.left) }, props);
    }
    case 'unsubscribe': {
      const messageId = r.u16();
      const props = properties(r, v5);
      const topics: string[] = [];
      for (;;) {
        const start = r.pos;
        try {
          topics.push(str(r));
        } catch (error) {
          if (!(error instanceof Short)) throw error;
          r.pos = start;
          break;
        }
      }
      return withProps({ kind: 'unsubscribe' as const, messageId, topics }, props);
    }
    case 'unsuback': {
      const messageId = r.u16();
      const props = properties(r, v5);
      return withProps({ kind: 'unsuback' as const, messageId, reasonCodes: r.take(r.left) }, props);
    }
    case 'pingreq':
    case 'pingresp':
    case 'unassigned':
      return { kind: type };
    case 'disconnect': {
      if (version < 5) return { kind: 'disconnect' };
      const total = r.left;
      if (total === 0) return { kind: 'disconnect', reasonCode: 0 };
      const reasonCode = r.u8();
      if (total === 1) return { kind: 'disconnect', reasonCode: 0 };
      return withProps({ kind: 'disconnect' as const, reasonCode }, properties(r, true));
    }
    case 'auth': {
      const reasonCode = r.u8();
      return withProps({ kind: 'auth' as const, reasonCode }, properties(r, true));
    }
  }
}

export type MqttParse =
  | { readonly message: MqttMessage; readonly consumed: number; readonly skip?: number }
  | { readonly more: true }
  | { readonly malformed: true };

/**
 * One MQTT control packet from the front of `input`. A truncated (too long) packet comes back with
 * `consumed: 0` and `skip`, the bytes to drop (header included), as Suricata's parser returns it.
 */
export function parseMqttMessage(input: Uint8Array, direction: Direction, protocolVersion: number, maxMsgLen = MQTT_MAX_MSG_LEN): MqttParse {
  const r = new Reader(input);
  if (input.length === 0) return { more: true };
  const first = r.u8();
  let remainingLength: number | undefined;
  try {
    remainingLength = varint(r);
  } catch {
    return { malformed: true };
  }
  if (remainingLength === undefined) return { more: true };
  const type = first >> 4;
  const typeName = TYPE_NAMES[type]!;
  const header: MqttFixedHeader = {
    type,
    typeName,
    flags: first & 0x0f,
    dup: (first & 0x08) !== 0,
    qos: (first >> 1) & 3,
    retain: (first & 1) !== 0,
    remainingLength,
  };
  const headerLength = r.pos;
  if (remainingLength > maxMsgLen) {
    const skip = remainingLength + headerLength;
    return { message: { direction, header, body: { kind: 'truncated', originalType: typeName, skippedLength: skip } }, consumed: 0, skip };
  }
  if (input.length - headerLength < remainingLength) return { more: true };
  const inner = new Reader(input, headerLength + remainingLength);
  inner.pos = headerLength;
  try {
    return { message: { direction, header, body: body(typeName, header, inner, protocolVersion) }, consumed: headerLength + remainingLength };
  } catch (error) {
    if (error instanceof Short || error instanceof Malformed) return { malformed: true };
    throw error;
  }
}

/** Suricata's MQTT probing parser: a fixed header with an assigned type and a QoS up to 2. */
export function probeMqtt(input: Uint8Array): 'yes' | 'no' | 'more' {
  if (input.length === 0) return 'more';
  const r = new Reader(input);
  const first = r.u8();
  try {
    if (varint(r) === undefined) return 'more';
  } catch {
    return 'no';
  }
  return first >> 4 === 0 || ((first >> 1) & 3) > 2 ? 'no' : 'yes';
}

export interface MqttFlowOptions {
  /** Suricata's `app-layer.protocols.mqtt.max-msg-length` (1 MiB): longer messages are truncated, bounding the buffer. */
  readonly maxMsgLen?: number;
  /** Suricata's `app-layer.protocols.mqtt.max-tx` (1024). */
  readonly maxTx?: number;
}

interface Tx extends MqttTransaction {
  pktId: number | undefined;
}

/** One TCP connection's MQTT state; `feed` takes one direction's bytes in stream order, in any segmentation. */
export class MqttFlow {
  readonly #maxMsgLen: number;
  readonly #maxTx: number;
  readonly #buffers: Record<Direction, StreamBuffer> = { toserver: new StreamBuffer(), toclient: new StreamBuffer() };
  readonly #skip: Record<Direction, number> = { toserver: 0, toclient: 0 };
  #live: Tx[] = [];
  #txCount = 0;
  #indexCompleted = 0;
  #connected = false;
  #protocolVersion = 0;
  #stopped = false;

  constructor(options: MqttFlowOptions = {}) {
    this.#maxMsgLen = options.maxMsgLen ?? MQTT_MAX_MSG_LEN;
    this.#maxTx = options.maxTx ?? MQTT_MAX_TX;
  }

  get protocolVersion(): number {
    return this.#protocolVersion;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** Bytes of a direction held for a message not complete yet: all before them are parsed. */
  buffered(direction: Direction): number {
    return this.#buffers[direction].length;
  }

  get outstanding(): number {
    return this.#live.length;
  }

  feed(direction: Direction, chunk: Uint8Array): FeedResult<MqttTransaction> {
    const updated: MqttTransaction[] = [];
    if (this.#stopped || chunk.length === 0) return { updated, stopped: this.#stopped };
    let data = chunk;
    const skip = this.#skip[direction];
    if (skip > 0) {
      if (data.length <= skip) {
        this.#skip[direction] = skip - data.length;
        return { updated, stopped: false };
      }
      data = data.subarray(skip);
      this.#skip[direction] = 0;
    }
    const buffer = this.#buffers[direction];
    buffer.append(data);
    this.#parse(direction, buffer, updated);
    this.#release();
    return { updated, stopped: this.#stopped };
  }

  #parse(direction: Direction, buffer: StreamBuffer, updated: MqttTransaction[]): void {
    const bytes = buffer.view();
    let offset = 0;
    while (offset < bytes.length) {
      const current = bytes.subarray(offset);
      const parsed = parseMqttMessage(current, direction, this.#protocolVersion, this.#maxMsgLen);
      if ('more' in parsed) break;
      if ('malformed' in parsed) {
        updated.push(this.#eventTx(direction, 'malformed_traffic'));
        this.#stop();
        return;
      }
      if (parsed.skip !== undefined) {
        // Suricata files a truncated message to the client whichever way it went.
        this.#handle(parsed.message, 'toclient', updated);
        if (parsed.skip >= current.length) {
          this.#skip[direction] = parsed.skip - current.length;
          offset = bytes.length;
          break;
        }
        offset += parsed.skip;
        continue;
      }
      this.#handle(parsed.message, direction, updated);
      offset += parsed.consumed;
    }
    buffer.consume(offset);
  }

  #newTx(msg: MqttMessage, direction: Direction, updated: MqttTransaction[]): Tx {
    this.#txCount++;
    const tx: Tx = {
      txId: this.#txCount - 1,
      direction,
      messages: [msg],
      protocolVersion: this.#protocolVersion,
      events: [],
      complete: false,
      pktId: undefined,
    };
    if (this.#live.length > this.#maxTx) {
      let index = this.#indexCompleted;
      for (let i = this.#indexCompleted; i < this.#live.length; i++) {
        index++;
        const old = this.#live[i]!;
        if (!old.complete) {
          old.complete = true;
          event(old, 'too_many_transactions');
          if (!updated.includes(old)) updated.push(old);
          break;
        }
      }
      this.#indexCompleted = index;
    }
    return tx;
  }

  #byPktId(id: number): Tx | undefined {
    for (let i = this.#indexCompleted; i < this.#live.length; i++) {
      const tx = this.#live[i]!;
      if (!tx.complete && tx.pktId === id) return tx;
    }
    return undefined;
  }

  #push(tx: Tx, updated: MqttTransaction[]): void {
    this.#live.push(tx);
    updated.push(tx);
  }

  #attach(tx: Tx, msg: MqttMessage, updated: MqttTransaction[]): void {
    tx.messages.push(msg);
    if (!updated.includes(tx)) updated.push(tx);
  }

  #handle(msg: MqttMessage, direction: Direction, updated: MqttTransaction[]): void {
    const b = msg.body;
    const qos = msg.header.qos;
    switch (b.kind) {
      case 'connect': {
        this.#protocolVersion = b.protocolVersion;
        const tx = this.#newTx(msg, direction, updated);
        (tx as { protocolVersion: number }).protocolVersion = b.protocolVersion;
        tx.pktId = CONNECT_PKT_ID;
        if (this.#connected) event(tx, 'double_connect');
        this.#push(tx, updated);
        return;
      }
      case 'publish':
      case 'subscribe':
      case 'unsubscribe': {
        const tx = this.#newTx(msg, direction, updated);
        if (qos === 0) tx.complete = true;
        else if (qos <= 2) {
          if (b.kind !== 'publish') tx.pktId = b.messageId;
          else if (b.messageId !== undefined) tx.pktId = b.messageId;
          else event(tx, 'missing_msg_id');
        } else event(tx, 'invalid_qos_level');
        if (!this.#connected) event(tx, 'unintroduced_message');
        this.#push(tx, updated);
        return;
      }
      case 'connack': {
        const tx = this.#byPktId(CONNECT_PKT_ID);
        if (tx) {
          this.#attach(tx, msg, updated);
          tx.complete = true;
          tx.pktId = undefined;
          this.#connected = true;
          return;
        }
        const fresh = this.#newTx(msg, direction, updated);
        event(fresh, 'missing_connect');
        fresh.complete = true;
        this.#push(fresh, updated);
        return;
      }
      case 'pubrec':
      case 'pubrel':
      case 'puback':
      case 'pubcomp':
      case 'suback':
      case 'unsuback': {
        const tx = this.#byPktId(b.messageId);
        if (tx) {
          this.#attach(tx, msg, updated);
          if (b.kind !== 'pubrec' && b.kind !== 'pubrel') {
            tx.complete = true;
            tx.pktId = undefined;
          }
          return;
        }
        const fresh = this.#newTx(msg, direction, updated);
        event(fresh, b.kind === 'suback' ? 'missing_subscribe' : b.kind === 'unsuback' ? 'missing_unsubscribe' : 'missing_publish');
        if (!this.#connected) event(fresh, 'unintroduced_message');
        fresh.complete = true;
        this.#push(fresh, updated);
        return;
      }
      case 'unassigned': {
        const tx = this.#newTx(msg, direction, updated);
        tx.complete = true;
        event(tx, 'unassigned_msg_type');
        this.#push(tx, updated);
        return;
      }
      case 'truncated': {
        const tx = this.#newTx(msg, direction, updated);
        tx.complete = true;
        this.#push(tx, updated);
        return;
      }
      default: {
        // AUTH, DISCONNECT, PINGREQ, PINGRESP
        const tx = this.#newTx(msg, direction, updated);
        tx.complete = true;
        if (!this.#connected) event(tx, 'unintroduced_message');
        this.#push(tx, updated);
        return;
      }
    }
  }

  #eventTx(direction: Direction, name: MqttEventName): MqttTransaction {
    this.#txCount++;
    const tx: Tx = {
      txId: this.#txCount - 1,
      direction,
      messages: [],
      protocolVersion: this.#protocolVersion,
      events: [name],
      complete: true,
      pktId: undefined,
    };
    this.#live.push(tx);
    return tx;
  }

  /** Suricata frees a transaction once complete; resetting the completed index as its `free_tx` does. */
  #release(): void {
    if (!this.#live.some((tx) => tx.complete)) return;
    this.#live = this.#live.filter((tx) => !tx.complete);
    this.#indexCompleted = 0;
  }

  #stop(): void {
    this.#stopped = true;
    this.#live = [];
    this.#buffers.toserver.clear();
    this.#buffers.toclient.clear();
  }
}

function event(tx: MqttTransaction, name: MqttEventName): void {
  if (!tx.events.includes(name)) tx.events.push(name);
}
