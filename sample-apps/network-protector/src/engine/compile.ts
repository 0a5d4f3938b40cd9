/**
 * Rule lists to what the matcher runs: each rule parsed (the E_RULE_* refusals, with list, line
 * and column), its alert record made once, and its kind decided once: a transaction rule (it uses
 * an application protocol, by its header or a keyword) is inspected per Modbus/MQTT transaction,
 * a packet rule (`tcp` without application keywords) per inspected stream chunk.
 */
import { parseIpv4, parseIpv6 } from '../rules/addresses.js';
import { parseRuleTexts } from '../rules/rule-list.js';
import type { AddressSet, PortSet, Rule } from '../rules/types.js';
import type { TrafficAlert, TrafficDirection } from './types.js';

export interface CompiledRule {
  readonly rule: Rule;
  readonly alert: TrafficAlert;
  readonly kind: 'tx' | 'packet';
  /** The application protocol a transaction rule needs; a packet rule has none. */
  readonly app: 'modbus' | 'mqtt' | undefined;
  /**
   * The rule's key in a transaction's detection state for the to_server direction (sid * 2;
   * to_client is one more): worked out once, not on every inspection of every transaction.
   */
  readonly detectKey: number;
  /** Directions the rule inspects (its flow direction, or both). */
  readonly directions: readonly TrafficDirection[];
  /** The rule can never match a stream the gateway sees (flow:not_established, only_frag). */
  readonly never: boolean;
  /** Suricata's action order: pass first, then drop and reject, then alert. */
  readonly order: number;
  /**
   * An MQTT rule using a keyword Suricata registers at progress 1 (mqtt.type, flags, qos,
   * reason_code, protocol_version, connect.flags, connack.session_present, subscribe and
   * unsubscribe topics), or content in an MQTT buffer (whose prefilter Suricata registers at
   * progress 1), sees a transaction only once it is complete: a QoS 1 PUBLISH never acknowledged
   * never matches `mqtt.publish.topic`.
   */
  readonly needsComplete: boolean;
  /** The rule has an app-layer-event: a transaction without events cannot match it. */
  readonly needsEvents: boolean;
  /**
   * A Modbus rule with neither app-layer-event nor content: whether it matches a transaction
   * depends only on the message Suricata inspects (the request, or the response without one), so
   * a response added to an inspected request cannot change it.
   */
  readonly settledByMessage: boolean;
  /** The rule's position in its list (after ordering): where an inspector keeps what it worked out for it. */
  readonly index: number;
}

export interface CompiledRules {
  readonly rules: readonly CompiledRule[];
}

const ACTION_ORDER: Readonly<Record<string, number>> = { pass: 0, drop: 1, reject: 1, rejectsrc: 1, rejectdst: 1, rejectboth: 1, alert: 2 };

/**
 * Compiles rule lists (decoded text, one per configuration key or file). `vars` are `$NAME`
 * values; a name serves addresses and ports alike (Suricata keeps two name spaces, a
 * configuration here has one), and a value is only parsed where a rule uses it.
 */
export function compileRules(lists: { text: string; name: string }[], vars: Record<string, string> = {}): CompiledRules {
  const variables = { ...vars };
  const parsed = parseRuleTexts(lists, { addresses: variables, ports: variables });
  const rules = parsed.map((rule) => compileRule(rule));
  // A stable sort: within one action the rules keep their list order.
  const ordered = rules.map((r, i) => ({ r, i })).sort((a, b) => a.r.order - b.r.order || a.i - b.i);
  return { rules: ordered.map(({ r }, index) => withIndex(r, index)) };
}

export function compileRule(rule: Rule, index = 0): CompiledRule {
  const action = rule.header.action === 'alert' ? 'alert' : rule.header.action === 'pass' ? 'pass' : 'drop';
  // Frozen once, here: the SDK freezes an alert it has sent (it names it by number afterwards).
  const alert: TrafficAlert = Object.freeze({
    sid: rule.sid,
    gid: rule.gid,
    rev: rule.rev,
    signature: rule.msg,
    action,
    category: rule.category,
    severity: rule.priority,
  });
  const direction = rule.flow?.direction;
  const app = rule.appProtocol;
  return {
    rule,
    alert,
    kind: app ? 'tx' : 'packet',
    app,
    detectKey: rule.sid * 2,
    directions: direction ? [direction] : ['to_server', 'to_client'],
    never: rule.flow?.state === 'not_established' || rule.flow?.frag === 'only_frag',
    order: ACTION_ORDER[rule.header.action] ?? 2,
    needsComplete: app === 'mqtt' && needsComplete(rule),
    needsEvents: rule.events.length > 0,
    settledByMessage: app === 'modbus' && rule.events.length === 0 && rule.buffers.length === 0,
    index,
  };
}

/**
 * Every compiled rule has one shape, each field written in one order (no spread): the inspector
 * reads a few fields of every candidate rule for every transaction, and a load from objects of one
 * shape stays a single monomorphic access there.
 */
function withIndex(r: CompiledRule, index: number): CompiledRule {
  return {
    rule: r.rule,
    alert: r.alert,
    kind: r.kind,
    app: r.app,
    detectKey: r.detectKey,
    directions: r.directions,
    never: r.never,
    order: r.order,
    needsComplete: r.needsComplete,
    needsEvents: r.needsEvents,
    settledByMessage: r.settledByMessage,
    index,
  };
}

function needsComplete(rule: Rule): boolean {
  const m = rule.mqtt;
  const keyword =
    m.type !== undefined ||
    m.flags !== undefined ||
    m.qos !== undefined ||
    m.reasonCode !== undefined ||
    m.protocolVersion !== undefined ||
    m.connectFlags !== undefined ||
    m.sessionPresent !== undefined;
  return keyword || rule.buffers.some((b) => b.buffer !== 'payload');
}

/** An endpoint's address in the form AddressSet holds it. */
export type Address = { readonly v4: number } | { readonly v6: string };

export function toAddress(ip: string): Address | undefined {
  const v4 = parseIpv4(ip);
  if (v4 !== undefined) return { v4: Number(v4) };
  const mapped = /^::ffff:([0-9.]+)$/i.exec(ip);
  if (mapped) {
    const inner = parseIpv4(mapped[1]!);
    if (inner !== undefined) return { v4: Number(inner) };
  }
  const v6 = parseIpv6(ip);
  return v6 === undefined ? undefined : { v6: v6.toString(16).padStart(32, '0') };
}

export function inAddresses(set: AddressSet, address: Address): boolean {
  if ('v4' in address) {
    for (const [lo, hi] of set.v4) if (address.v4 >= lo && address.v4 <= hi) return true;
    return false;
  }
  for (const [lo, hi] of set.v6) if (address.v6 >= lo && address.v6 <= hi) return true;
  return false;
}

export function inPorts(set: PortSet, port: number): boolean {
  for (const [lo, hi] of set) if (port >= lo && port <= hi) return true;
  return false;
}

export interface Endpoint {
  readonly address: Address;
  readonly port: number;
}

/** The header against a packet going from `src` to `dst`; `<>` also takes it the other way round. */
export function headerMatches(rule: Rule, src: Endpoint, dst: Endpoint): boolean {
  const h = rule.header;
  const forward =
    inAddresses(h.source, src.address) && inPorts(h.sourcePorts, src.port) && inAddresses(h.destination, dst.address) && inPorts(h.destinationPorts, dst.port);
  if (forward || !h.bidirectional) return forward;
  return (
    inAddresses(h.source, dst.address) && inPorts(h.sourcePorts, dst.port) && inAddresses(h.destination, src.address) && inPorts(h.destinationPorts, src.port)
  );
}
