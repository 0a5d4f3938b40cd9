/**
 * Offline replay of a classic pcap through Network Protector's protocol parsers and rule engine:
 * decode, reassemble, detect the application protocol as Suricata does (by server port, confirmed
 * by the protocol's probing parser), collect each flow's transactions and anomaly events in order,
 * and the alerts of the rules, each with the packet that delivered the bytes that matched.
 */
import { compileRule } from '../../sample-apps/network-protector/src/engine/compile.js';
import { type CompiledRule, type CompiledRules, StreamInspector, type Transaction } from '../../sample-apps/network-protector/src/engine/index.js';
import { probeModbus } from '../../sample-apps/network-protector/src/protocols/modbus.js';
import { probeMqtt } from '../../sample-apps/network-protector/src/protocols/mqtt.js';
import type { ModbusTransaction, MqttTransaction } from '../../sample-apps/network-protector/src/protocols/types.js';
import { isHeaderOnly, PacketRules } from './packet-rules.js';
import { decodeTcp, readPcap, TCP } from './pcap.js';
import { type FlowEndpoints, type ReassemblyHandler, type Side, TcpReassembler } from './reassembly.js';

export interface ReplayOptions {
  /** Server ports parsed as Modbus/TCP (Suricata's default: 502). */
  readonly modbusPorts?: readonly number[];
  /** Server ports parsed as MQTT (Suricata's default: 1883). */
  readonly mqttPorts?: readonly number[];
  /** Rules to match; without them the replay only parses. */
  readonly rules?: CompiledRules;
  /** Keep every flow's transactions in the result (default); the alerts hold theirs either way. */
  readonly keepTransactions?: boolean;
  /** Connections tracked at once (default MAX_OPEN_FLOWS); tests set fewer. */
  readonly maxOpenFlows?: number;
}

export interface ReplayAlert {
  readonly rule: CompiledRule;
  /** `protocol`: the flow's application protocol, absent on a packet before it was detected. */
  readonly flow: FlowEndpoints & { readonly protocol?: 'modbus' | 'mqtt' };
  readonly direction: Side;
  readonly tx?: Transaction;
  /** The capture time of the packet that delivered the matching bytes. */
  readonly seconds: number;
  readonly nanos: number;
}

export type ReplayFlow = FlowEndpoints &
  (
    | { readonly protocol: 'modbus'; readonly transactions: ModbusTransaction[]; stopped: boolean; readonly flowEvents: string[] }
    | { readonly protocol: 'mqtt'; readonly transactions: MqttTransaction[]; stopped: boolean; readonly flowEvents: string[] }
  );

export interface ReplayResult {
  readonly flows: ReplayFlow[];
  readonly alerts: ReplayAlert[];
  readonly packets: number;
  /** Frames that carried no decodable TCP segment (other protocols, truncated or garbage). */
  readonly skipped: number;
  /** Connections not inspected because MAX_OPEN_FLOWS were open when they began (reassembly.ts). */
  readonly untrackedFlows: number;
}

/** Suricata's probing parsers look at no more than this many bytes of a direction (`max_depth`). */
const PROBE_DEPTH = 16;

const NO_RULES: CompiledRules = { rules: [] };

interface Detecting {
  readonly protocol: 'modbus' | 'mqtt';
  readonly pending: Record<Side, Uint8Array[]>;
  readonly verdict: Record<Side, 'more' | 'no'>;
  readonly held: Record<Side, number>;
}

/** Bytes kept per direction while the protocol is undecided; past it the flow is not inspected. */
const MAX_HELD = 64 * 1024;

export function replayPcap(file: Uint8Array, options: ReplayOptions = {}, name?: string): ReplayResult {
  const modbusPorts = new Set(options.modbusPorts ?? [502]);
  const mqttPorts = new Set(options.mqttPorts ?? [1883]);
  /** The protocol a flow's server port says it should speak (detection then confirms it). */
  const serviceOf = (server: { readonly port: number }): 'modbus' | 'mqtt' | undefined =>
    modbusPorts.has(server.port) ? 'modbus' : mqttPorts.has(server.port) ? 'mqtt' : undefined;
  const capture = readPcap(file, name);
  const flows = new Map<number, ReplayFlow>();
  const all = options.rules ?? NO_RULES;
  // Header-only rules go packet by packet (packet-rules.ts); the inspector takes the others,
  // numbered again for its own state (a rule's index is its place in the inspector's list).
  const headerOnly: CompiledRule[] = [];
  const inspected: CompiledRule[] = [];
  for (const r of all.rules) (isHeaderOnly(r.rule) ? headerOnly : inspected).push(r);
  const packetRules = new PacketRules(headerOnly);
  const rules: CompiledRules = packetRules.empty ? all : { rules: inspected.map((r, index) => compileRule(r.rule, index)) };
  const keep = options.keepTransactions ?? true;
  const parsers = new Map<number, StreamInspector>();
  const alerts: ReplayAlert[] = [];
  let now = { seconds: 0, nanos: 0 };
  const detecting = new Map<number, Detecting | null>();
  /** Flows a transaction rule's drop ended during the current packet (the packet's own rules still run). */
  const droppedNow = new Set<number>();

  const start = (endpoints: FlowEndpoints, protocol: 'modbus' | 'mqtt'): StreamInspector => {
    const parser = new StreamInspector(rules, {
      id: endpoints.id,
      service: 'replay',
      protocol,
      srcIp: endpoints.client.ip,
      srcPort: endpoints.client.port,
      destIp: endpoints.server.ip,
      destPort: endpoints.server.port,
    });
    flows.set(endpoints.id, { ...endpoints, protocol, transactions: [], stopped: false, flowEvents: [] } as ReplayFlow);
    parsers.set(endpoints.id, parser);
    return parser;
  };

  const feed = (endpoints: FlowEndpoints, side: Side, bytes: Uint8Array): void => {
    const parser = parsers.get(endpoints.id)!;
    const record = flows.get(endpoints.id)!;
    const result = parser.feed(side === 'toserver' ? 'to_server' : 'to_client', bytes, now.seconds * 1000);
    const list = record.transactions as (ModbusTransaction | MqttTransaction)[];
    for (const m of result.matches) {
      alerts.push({ rule: m.rule, flow: record, direction: side, ...(m.tx ? { tx: m.tx } : {}), seconds: now.seconds, nanos: now.nanos });
    }
    // Transaction ids only grow: one past the last listed is new (a linear search would make a long flow quadratic).
    if (keep) for (const tx of result.updated) if (list.length === 0 || tx.txId > list[list.length - 1]!.txId) list.push(tx);
    record.stopped = result.stopped;
    if (result.drop) droppedNow.add(endpoints.id);
  };

  const handler: ReassemblyHandler = {
    data(endpoints, side, bytes) {
      if (parsers.has(endpoints.id)) return feed(endpoints, side, bytes);
      let state = detecting.get(endpoints.id);
      if (state === null) return;
      if (state === undefined) {
        // Every flow the reassembler follows is one of a service (`tracks` below).
        const protocol = serviceOf(endpoints.server)!;
        state = { protocol, pending: { toserver: [], toclient: [] }, verdict: { toserver: 'more', toclient: 'more' }, held: { toserver: 0, toclient: 0 } };
        detecting.set(endpoints.id, state);
      }
      state.pending[side].push(bytes);
      state.held[side] += bytes.length;
      if (state.held[side] > MAX_HELD) return void detecting.set(endpoints.id, null);
      if (state.verdict[side] === 'no') return;
      const seen = concat(state.pending[side]);
      let verdict = state.protocol === 'modbus' ? probeModbus(seen) : probeMqtt(seen);
      if (verdict === 'more' && seen.length > PROBE_DEPTH) verdict = 'no';
      if (verdict === 'yes') {
        start(endpoints, state.protocol);
        detecting.delete(endpoints.id);
        // Suricata keeps what a direction that failed detection sent, and parses it once the other
        // direction decides the protocol, requests first; the flow gets an event for the failure.
        const other: Side = side === 'toserver' ? 'toclient' : 'toserver';
        if (state.verdict[other] === 'no') flows.get(endpoints.id)!.flowEvents.push('APPLAYER_DETECT_PROTOCOL_ONLY_ONE_DIRECTION');
        for (const s of ['toserver', 'toclient'] as const) if (state.pending[s].length > 0) feed(endpoints, s, concat(state.pending[s]));
        return;
      }
      state.verdict[side] = verdict;
      if (verdict === 'no' && state.verdict.toserver === 'no' && state.verdict.toclient === 'no') detecting.set(endpoints.id, null);
    },
    gap(endpoints) {
      const record = flows.get(endpoints.id);
      if (record) record.stopped = true;
      parsers.delete(endpoints.id);
      detecting.set(endpoints.id, null);
    },
    // Only connections to the services the replay parses (the gate protects nothing else): others
    // take no place in the flow table.
    tracks: (server) => serviceOf(server) !== undefined,
    // What the replay keeps per flow goes with it; only the result's record stays.
    forgotten(endpoints) {
      parsers.delete(endpoints.id);
      detecting.delete(endpoints.id);
      packetRules.forget(endpoints);
    },
  };
  const reassembler = new TcpReassembler(handler, options.maxOpenFlows === undefined ? {} : { maxOpenFlows: options.maxOpenFlows });

  let skipped = 0;
  for (const packet of capture.records) {
    now = packet;
    droppedNow.clear();
    const segment = decodeTcp(capture.linkType, packet.data);
    if (!segment) {
      skipped++;
      continue;
    }
    const before = alerts.length;
    const at = reassembler.segment(segment);
    if (!at || packetRules.empty) continue;
    const { flow, side } = at;
    const record = flows.get(flow.id);
    const verdict = packetRules.packet(flow, side, { syn: (segment.flags & TCP.SYN) !== 0, ack: (segment.flags & TCP.ACK) !== 0 }, record?.protocol);
    if (verdict.passed) alerts.length = before;
    const alertFlow = record ?? { id: flow.id, client: flow.client, server: flow.server };
    for (const rule of verdict.alerts) alerts.push({ rule, flow: alertFlow, direction: side, seconds: now.seconds, nanos: now.nanos });
    if (verdict.ended) {
      parsers.delete(flow.id);
      detecting.set(flow.id, null);
      if (record) record.stopped = true;
    }
    // Suricata's quirk: after a drop matched, nothing more of the flow is inspected, packet rules included.
    if (droppedNow.has(flow.id)) packetRules.end(flow);
  }
  reassembler.finish();
  return {
    flows: [...flows.values()].sort((a, b) => a.id - b.id),
    alerts,
    packets: capture.records.length,
    skipped,
    untrackedFlows: reassembler.untrackedFlows,
  };
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
