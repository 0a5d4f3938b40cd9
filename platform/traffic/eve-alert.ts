/**
 * An alert of the offline replay as one eve.json line, in the fields and order Suricata 7 writes
 * them (output-json-alert.c): the packet's endpoints, the transaction id, the alert object, the
 * application protocol and its transaction object. Suricata replays in IDS mode, so a drop rule's
 * alert says `"action":"allowed"` there too.
 */
import { modbusEve, mqttEve } from '../../sample-apps/network-protector/src/protocols/eve.js';
import type { ModbusTransaction, MqttTransaction } from '../../sample-apps/network-protector/src/protocols/types.js';
import { suricataIp } from './pcap.js';
import type { ReplayAlert } from './replay.js';

/** Suricata's timestamp: local time with microseconds and the offset; the replay prints UTC. */
export function eveTimestamp(seconds: number, nanos: number): string {
  const iso = new Date(seconds * 1000).toISOString().slice(0, 19);
  return `${iso}.${String(Math.floor(nanos / 1000)).padStart(6, '0')}+0000`;
}

/** A stable 52-bit id per flow (Suricata's is a hash of the flow; only equality matters to readers). */
export function eveFlowId(id: number): number {
  return ((id * 2654435761) % 0x7fffffff) * 0x200000 + id;
}

export function alertEve(a: ReplayAlert): Record<string, unknown> {
  const toServer = a.direction === 'toserver';
  const src = toServer ? a.flow.client : a.flow.server;
  const dst = toServer ? a.flow.server : a.flow.client;
  const r = a.rule.alert;
  const out: Record<string, unknown> = {
    timestamp: eveTimestamp(a.seconds, a.nanos),
    flow_id: eveFlowId(a.flow.id),
    event_type: 'alert',
    src_ip: suricataIp(src.ip),
    src_port: src.port,
    dest_ip: suricataIp(dst.ip),
    dest_port: dst.port,
    proto: 'TCP',
  };
  if (a.tx) out.tx_id = a.tx.txId;
  out.alert = { action: 'allowed', gid: r.gid, signature_id: r.sid, rev: r.rev, signature: r.signature, category: r.category, severity: r.severity };
  // Absent, as in Suricata's, on a packet before the flow's protocol was detected.
  if (a.flow.protocol) out.app_proto = a.flow.protocol;
  if (a.tx && a.flow.protocol) out[a.flow.protocol] = a.flow.protocol === 'modbus' ? modbusEve(a.tx as ModbusTransaction) : mqttEve(a.tx as MqttTransaction);
  return out;
}
