/**
 * The shapes the traffic gate and the engine exchange (TRAFFIC-CONTRACT: the same as `isogate:sdk`'s
 * traffic types, spelled here so the engine compiles on its own and runs in the isolate as it is).
 */
export interface TrafficConnection {
  readonly id: number;
  readonly service: string;
  readonly protocol: 'modbus' | 'mqtt';
  /** The plant-side client. */
  readonly srcIp: string;
  readonly srcPort: number;
  /** The upstream server. */
  readonly destIp: string;
  readonly destPort: number;
}

export type TrafficDirection = 'to_server' | 'to_client';

export interface TrafficAlert {
  readonly sid: number;
  readonly gid: number;
  readonly rev: number;
  readonly signature: string;
  readonly action: 'alert' | 'drop' | 'pass';
  readonly category: string;
  readonly severity: number;
}

export type TrafficVerdict = { release: number; alerts?: TrafficAlert[] } | { drop: TrafficAlert; alerts?: TrafficAlert[] };
