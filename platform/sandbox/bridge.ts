/**
 * The platform's services for one app (`AppHost`, each already scoped to that app) and what the
 * platform may ask of a running app (`AppGuest`). What crosses the isolation boundary itself, and
 * how it is checked, is `protocol.ts`; `capabilities.ts` builds the protocol's handlers on an
 * AppHost from the app's grants. Data crosses only as copies: strings, plain JSON values and byte
 * arrays, never a host object.
 */
import type { CheckedRun, DeliverBatch, DeliverResult, EmitRefusal, InspectItem, TrafficVerdict } from './protocol.js';

export type {
  CheckedRun,
  DeliverBatch,
  DeliverResult,
  EmitRefusal,
  InspectItem,
  TrafficAlert,
  TrafficConnection,
  TrafficDirection,
  TrafficVerdict,
} from './protocol.js';

/** The manual's application log levels: each level includes the ones before it. */
export const LOG_LEVELS = { critical: 0, error: 1, warning: 2, info: 3, debug: 4, trace: 5 } as const;
export type LogLevelName = keyof typeof LOG_LEVELS;
export type LogLevelCode = (typeof LOG_LEVELS)[LogLevelName];

/** A message on an endpoint: a JSON value (json), a string (text) or bytes (binary). */
export type EndpointMessage = unknown;

export interface StorageHost {
  get(key: string): Promise<string | Uint8Array | undefined>;
  put(key: string, value: string | Uint8Array): Promise<void>;
  delete(key: string): Promise<boolean>;
  list(prefix: string): Promise<string[]>;
  /** Bytes used and the quota, both in bytes. */
  usage(): Promise<{ used: number; quota: number }>;
}

export interface EgressRequest {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  timeoutMs?: number;
}

export interface EgressResponse {
  status: number;
  headers: Record<string, string>;
  body: Uint8Array;
}

export interface EgressStreamEvents {
  /** A chunk from the server; the stream reads no further until the promise settles. */
  data(chunk: Uint8Array): void | Promise<void>;
  /** Once, when the stream ends, with the error that ended it if any. */
  close(error?: { code: string; message: string }): void;
}

export interface EgressStream {
  write(chunk: Uint8Array): Promise<void>;
  /** Ends the app's side; the server's side may still send until it closes. */
  end(): Promise<void>;
  /** Closes at once (the app stopped). */
  destroy(): void;
}

export interface EgressHost {
  /** HTTPS request to an `https` target named in the manifest. */
  fetch(target: string, request: EgressRequest): Promise<EgressResponse>;
  /** MQTT publish over TLS to an `mqtts` target named in the manifest. */
  publish(target: string, topic: string, payload: string | Uint8Array, options?: { qos?: 0 | 1; retain?: boolean }): Promise<void>;
  /** A TLS byte stream to a `tls` target named in the manifest. */
  connect(target: string, events: EgressStreamEvents): Promise<EgressStream>;
}

/**
 * An app's registered traffic inspector, as the traffic gate holds it: one crossing per call,
 * verdicts decoded and checked by the sandbox. It rejects when the app failed (the failure's
 * code: E_CPU_LIMIT, E_MEMORY_LIMIT, E_APP_FAILED for a forged answer) or stopped (E_STATE).
 */
export interface AppInspector {
  readonly packageId: string;
  /** Whether the app holds traffic.block: a drop verdict then denylists the source. */
  readonly canBlock: boolean;
  inspect(items: InspectItem[]): Promise<TrafficVerdict[]>;
}

/** The traffic gate, for an app holding traffic.inspect. */
export interface TrafficHost {
  register(inspector: AppInspector): void;
}

/** Everything one app may ask of the platform. Capability checks happen before any of these. */
export interface AppHost {
  readonly packageId: string;
  log(level: LogLevelCode, message: string): void;
  storage: StorageHost;
  /** The app's current configuration object (a copy), or undefined when it has none. */
  config(): Record<string, unknown> | undefined;
  /**
   * Hands a batch from the app's source endpoints to the router, its structure checked by the
   * sandbox; resolves, with the refused messages, once every accepted one is queued (it may
   * wait: that is how a source is slowed down).
   */
  emitBatch(runs: CheckedRun[]): Promise<EmitRefusal[]>;
  egress: EgressHost;
  /** Given only to an app holding traffic.inspect (the platform's own, from the image). */
  traffic?: TrafficHost;
}

/** A message as the router queues it today, with where it came from. */
export interface DeliveredMessage {
  message: EndpointMessage;
  /** A json message's text as the source emitted it, so it is not serialised again per destination. */
  json?: string;
  routeId: string;
  source: { application_id: string; endpoint: string };
}

/** Everything the platform may ask of a running app. */
export interface AppGuest {
  /**
   * Runs the app's handlers for a batch on one destination endpoint, in order; resolves with the
   * messages that were invalid (not JSON, too deep: not handed over) and those whose handler failed.
   */
  deliver(endpoint: string, batch: DeliverBatch): Promise<DeliverResult>;
  /** Tells the app its configuration changed (its `config.onChange` handlers run). */
  configChanged(config: Record<string, unknown> | undefined): Promise<void>;
}
