/**
 * One protected service and its connections as the traffic gate keeps them: the settings with
 * their defaults, the counters, and per connection what each direction read, released and holds.
 */
import net from 'node:net';
import { fail } from '../../sdk/errors.js';
import type { TrafficConnection, TrafficDirection } from '../sandbox/bridge.js';
import type { IdsProxySettings, ProtectedServiceSettings } from './gate-lists.js';
import { MQTT_INSPECTION_BOUND_BYTES, MqttFrameBound } from './mqtt-bound.js';

export const GATE_DEFAULTS = {
  verdictDeadlineMs: 2000,
  maxConnections: 256,
  idleTimeoutMs: 60_000,
  maxHeldBytes: 256 * 1024,
  alertsPerSecond: 50,
  /** A denylisted source refused again within this is counted, not audited again. */
  refusalAuditIntervalMs: 60_000,
} as const;

/** Counters of one protected service. */
export interface ServiceCounters {
  accepted: number;
  active: number;
  refusedFailClosed: number;
  refusedDenylisted: number;
  refusedConnectionLimit: number;
  closedIdle: number;
  closedHeldLimit: number;
  closedFailClosed: number;
  dropped: number;
  /** MQTT messages longer than the inspection bound, dropped with their connection (NETWORK.IDS_PROXY.oversizedMqtt). */
  droppedOversized: number;
  upstreamFailed: number;
  bytesToServer: number;
  bytesToClient: number;
}

export interface ServiceStatus {
  name: string;
  protocol: 'modbus' | 'mqtt';
  listen: { host: string; port: number };
  upstream: { host: string; port: number };
  counters: ServiceCounters;
}

export const freshCounters = (): ServiceCounters => ({
  accepted: 0,
  active: 0,
  refusedFailClosed: 0,
  refusedDenylisted: 0,
  refusedConnectionLimit: 0,
  closedIdle: 0,
  closedHeldLimit: 0,
  closedFailClosed: 0,
  dropped: 0,
  droppedOversized: 0,
  upstreamFailed: 0,
  bytesToServer: 0,
  bytesToClient: 0,
});

/** One direction of a connection: what was read, what the inspector released, what waits. */
export interface Stream {
  received: number;
  released: number;
  held: Buffer[];
  /** Data items handed to the inspector whose verdict has not come back yet. */
  awaiting: number;
  /** The sender half-closed this direction (its FIN arrived). */
  ended: boolean;
  /** The FIN was passed on, once every byte before it had its verdict. */
  endForwarded: boolean;
  /** Where the MQTT messages of this direction start, for the inspection bound; none for Modbus. */
  frames: MqttFrameBound | undefined;
  from: net.Socket;
  to: net.Socket;
}

export class ProtectedService {
  readonly counters = freshCounters();
  readonly connections = new Set<GateConnection>();
  server: net.Server | undefined;

  constructor(readonly settings: ProtectedServiceSettings) {}

  get maxConnections(): number {
    return this.settings.maxConnections ?? GATE_DEFAULTS.maxConnections;
  }
  get idleTimeoutMs(): number {
    return this.settings.idleTimeoutMs ?? GATE_DEFAULTS.idleTimeoutMs;
  }
  get maxHeldBytes(): number {
    return this.settings.maxHeldBytes ?? GATE_DEFAULTS.maxHeldBytes;
  }
  address(): { host: string; port: number } {
    const bound = this.server?.address();
    return bound && typeof bound === 'object' ? { host: bound.address, port: bound.port } : this.settings.listen;
  }
}

export class GateConnection {
  closed = false;
  /** Sockets of the connection closed as TCP closes (FIN both ways). */
  socketsClosed = 0;
  readonly streams: Record<TrafficDirection, Stream>;

  constructor(
    readonly info: TrafficConnection,
    readonly service: ProtectedService,
    readonly client: net.Socket,
    readonly upstream: net.Socket,
    /** NETWORK.IDS_PROXY.oversizedMqtt as it was when the connection was accepted. */
    readonly oversizedMqtt: 'drop' | 'pass' = 'drop',
  ) {
    const stream = (from: net.Socket, to: net.Socket): Stream => ({
      received: 0,
      released: 0,
      held: [],
      awaiting: 0,
      ended: false,
      endForwarded: false,
      frames: service.settings.protocol === 'mqtt' ? new MqttFrameBound(MQTT_INSPECTION_BOUND_BYTES) : undefined,
      from,
      to,
    });
    this.streams = { to_server: stream(client, upstream), to_client: stream(upstream, client) };
  }
}

/** Both directions half-closed and passed on: the connection ends as TCP ends, gracefully. */
export function endedBothWays(connection: GateConnection): boolean {
  return connection.streams.to_server.endForwarded && connection.streams.to_client.endForwarded;
}

/** An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d; the lists hold a.b.c.d. */
export function normaliseIp(address: string): string {
  return address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address;
}

/** What the schema cannot say: names unique, upstream ports given. */
export function checkServices(settings: IdsProxySettings): void {
  const names = new Set<string>();
  for (const service of settings.services ?? []) {
    if (names.has(service.name)) throw fail('E_CONFIG', `NETWORK.IDS_PROXY.services names ${service.name} twice`);
    names.add(service.name);
    if (service.upstream.port === 0) throw fail('E_CONFIG', `NETWORK.IDS_PROXY.services: ${service.name} has no upstream port`);
  }
}
