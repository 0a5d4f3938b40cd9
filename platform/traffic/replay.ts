/**
 * Offline replay of a classic pcap through Network Protector's protocol parsers: decode, reassemble,
 * detect the application protocol as Suricata does (by server port, confirmed by the protocol's
 * probing parser) and collect each flow's transactions and anomaly events in order.
 */
import { ModbusFlow, probeModbus } from '../../sample-apps/network-protector/src/protocols/modbus.js';
import { MqttFlow, probeMqtt } from '../../sample-apps/network-protector/src/protocols/mqtt.js';
import type { ModbusTransaction, MqttTransaction } from '../../sample-apps/network-protector/src/protocols/types.js';
import { decodeTcp, readPcap } from './pcap.js';
import { type FlowEndpoints, type Side, TcpReassembler } from './reassembly.js';

export interface ReplayOptions {
  /** Server ports parsed as Modbus/TCP (Suricata's default: 502). */
  readonly modbusPorts?: readonly number[];
  /** Server ports parsed as MQTT (Suricata's default: 1883). */
  readonly mqttPorts?: readonly number[];
}

export type ReplayFlow = FlowEndpoints &
  (
    | { readonly protocol: 'modbus'; readonly transactions: ModbusTransaction[]; stopped: boolean; readonly flowEvents: string[] }
    | { readonly protocol: 'mqtt'; readonly transactions: MqttTransaction[]; stopped: boolean; readonly flowEvents: string[] }
  );

export interface ReplayResult {
  readonly flows: ReplayFlow[];
  readonly packets: number;
  /** Frames that carried no decodable TCP segment (other protocols, truncated or garbage). */
  readonly skipped: number;
}

/** Suricata's probing parsers look at no more than this many bytes of a direction (`max_depth`). */
const PROBE_DEPTH = 16;

type Parser = { kind: 'modbus'; flow: ModbusFlow } | { kind: 'mqtt'; flow: MqttFlow };

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
  const capture = readPcap(file, name);
  const flows = new Map<number, ReplayFlow>();
  const parsers = new Map<number, Parser>();
  const detecting = new Map<number, Detecting | null>();

  const start = (endpoints: FlowEndpoints, protocol: 'modbus' | 'mqtt'): Parser => {
    const parser: Parser = protocol === 'modbus' ? { kind: 'modbus', flow: new ModbusFlow() } : { kind: 'mqtt', flow: new MqttFlow() };
    flows.set(endpoints.id, { ...endpoints, protocol, transactions: [], stopped: false, flowEvents: [] } as ReplayFlow);
    parsers.set(endpoints.id, parser);
    return parser;
  };

  const feed = (endpoints: FlowEndpoints, side: Side, bytes: Uint8Array): void => {
    const parser = parsers.get(endpoints.id)!;
    const record = flows.get(endpoints.id)!;
    const result = parser.kind === 'modbus' ? parser.flow.feed(side, bytes) : parser.flow.feed(side, bytes);
    const list = record.transactions as (ModbusTransaction | MqttTransaction)[];
    // Transaction ids only grow: one past the last listed is new (a linear search would make a long flow quadratic).
    for (const tx of result.updated) if (list.length === 0 || tx.txId > list[list.length - 1]!.txId) list.push(tx);
    record.stopped = result.stopped;
  };

  const reassembler = new TcpReassembler({
    data(endpoints, side, bytes) {
      if (parsers.has(endpoints.id)) return feed(endpoints, side, bytes);
      let state = detecting.get(endpoints.id);
      if (state === null) return;
      if (state === undefined) {
        const port = endpoints.server.port;
        const protocol = modbusPorts.has(port) ? 'modbus' : mqttPorts.has(port) ? 'mqtt' : undefined;
        if (!protocol) return void detecting.set(endpoints.id, null);
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
  });

  let skipped = 0;
  for (const record of capture.records) {
    const segment = decodeTcp(capture.linkType, record.data);
    if (!segment) {
      skipped++;
      continue;
    }
    reassembler.segment(segment);
  }
  reassembler.finish();
  return { flows: [...flows.values()].sort((a, b) => a.id - b.id), packets: capture.records.length, skipped };
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
