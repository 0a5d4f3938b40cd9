/**
 * The non-buffer `mqtt.*` keywords, parsed as Suricata 7's detect-mqtt-*.c do. The sticky buffers
 * (mqtt.connect.clientid, mqtt.publish.topic, ...) take no value and are handled with content.
 */
import { parseUint8, strictUnsigned } from './numbers.js';
import type { MqttPacketType, UintMatch } from './types.js';

export const MQTT_TYPES: Readonly<Record<MqttPacketType, number>> = {
  CONNECT: 1,
  CONNACK: 2,
  PUBLISH: 3,
  PUBACK: 4,
  PUBREC: 5,
  PUBREL: 6,
  PUBCOMP: 7,
  SUBSCRIBE: 8,
  SUBACK: 9,
  UNSUBSCRIBE: 10,
  UNSUBACK: 11,
  PINGREQ: 12,
  PINGRESP: 13,
  DISCONNECT: 14,
  AUTH: 15,
};

/** mqtt.type: a packet type's name in any case. */
export function parseMqttType(value: string): { name: MqttPacketType; code: number } | undefined {
  const name = value.toUpperCase() as MqttPacketType;
  return Object.hasOwn(MQTT_TYPES, name) ? { name, code: MQTT_TYPES[name] } : undefined;
}

/**
 * mqtt.flags and mqtt.connect.flags: a regular expression that must match somewhere (Suricata's
 * is not anchored), then comma-separated names, each optionally `!`-negated, each at most once.
 */
export function parseFlagList<N extends string>(value: string, names: readonly N[]): Partial<Record<N, boolean>> | undefined {
  const probe = new RegExp(`(?: *,?!?(?:${names.join('|')}))+`);
  if (!probe.test(value)) return undefined;
  const out: Partial<Record<N, boolean>> = {};
  for (const raw of value.split(',')) {
    if (raw === '') continue; // strtok_r skips empty tokens
    const token = raw.replace(/^[ \t]+/, '');
    if (token.length < 2) return undefined;
    const negated = token.startsWith('!');
    const name = (negated ? token.slice(1) : token) as N;
    if (!names.includes(name) || Object.hasOwn(out, name)) return undefined;
    out[name] = !negated;
  }
  return out;
}

export const MQTT_FLAGS = ['dup', 'retain'] as const;
export const MQTT_CONNECT_FLAGS = ['username', 'password', 'will', 'will_retain', 'clean_session'] as const;

export function parseQos(value: string): 0 | 1 | 2 | undefined {
  const n = strictUnsigned(value);
  return n === 0 || n === 1 || n === 2 ? n : undefined;
}

export function parseReasonCode(value: string): number | undefined {
  if (!/^\s*\d+\s*$/.test(value)) return undefined;
  const n = strictUnsigned(value.trim());
  return n !== undefined && n <= 255 ? n : undefined;
}

export function parseProtocolVersion(value: string): UintMatch | undefined {
  return parseUint8(value);
}

export function parseSessionPresent(value: string): boolean | undefined {
  if (value === 'yes' || value === 'true') return true;
  if (value === 'no' || value === 'false') return false;
  return undefined;
}
