/**
 * The local harness (`@isogate/sdk/harness`) for an app's tests, which `isogate-sdk test` runs
 * with node's test runner (`describe`/`it` from `node:test`). `startApp` builds the project as
 * `isogate-sdk build` does and runs it in a real V8 isolate with the gateway's limits from its
 * manifest; what the gateway would give the app comes from the test instead.
 */

/** An egress request as the app made it. */
export interface HarnessEgressRequest {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
}

/** What a fixture answers; status 200, no headers and an empty body unless given. */
export interface HarnessEgressResponse {
  status?: number;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
}

/** An egress target's fixture: a fixed answer, or one computed from the request. */
export type EgressFixture = HarnessEgressResponse | ((request: HarnessEgressRequest) => HarnessEgressResponse | Promise<HarnessEgressResponse>);

/** One egress call the app made: `fetch` (https), `publish` (mqtts, topic and payload) or `connect` (tls). */
export interface EgressCall {
  target: string;
  kind: 'fetch' | 'publish' | 'connect';
  request?: HarnessEgressRequest;
  topic?: string;
  payload?: string | Uint8Array;
}

export type LogLevel = 'critical' | 'error' | 'warning' | 'info' | 'debug' | 'trace';

export interface HarnessOptions {
  /** The app project (its manifest.json and src/); default the current directory. */
  project?: string;
  /** Configuration keys over the manifest's defaults, validated against its schema (E_CONFIG). */
  config?: Record<string, unknown>;
  /** Storage the app finds at start; a Map is used as it is (the app's writes land in it). */
  storage?: Record<string, string | Uint8Array> | Map<string, string | Uint8Array>;
  /** Answers per egress target (manifest names); a target without one is E_EGRESS_UNREACHABLE. */
  egress?: Record<string, EgressFixture>;
  /** Every log line as it is written. */
  onLog?: (level: LogLevel, message: string) => void;
  /** Every emit accepted, as it is emitted. */
  onEmit?: (endpoint: string, message: unknown) => void;
}

export interface HarnessApp {
  /** The app's manifest. */
  readonly manifest: { package_id: string; version: string; [key: string]: unknown };
  /**
   * Hands `message` to the handlers of a destination endpoint; resolves once they finished.
   * Rejects with E_CAPABILITY for an endpoint that is not one of the app's destinations,
   * E_MESSAGE for a message its schema refuses, E_APP_FAILED when the handler threw, and the
   * sandbox's code (E_CPU_LIMIT, E_MEMORY_LIMIT) when the app was ended.
   */
  send(endpoint: string, message: unknown): Promise<void>;
  /** Messages the app emitted on a source endpoint (on all of them without one), oldest first. */
  emitted(endpoint?: string): unknown[];
  /** The first emit on `endpoint` since the last `clear` (waiting for it up to `timeoutMs`, default 5000: E_HARNESS_TIMEOUT). */
  nextEmit(endpoint: string, timeoutMs?: number): Promise<unknown>;
  /** Emits the gateway would refuse (schema, size), with their code. */
  readonly refusedEmits: { endpoint: string; code: string; message: string }[];
  /** Every egress call the app made, in order. */
  readonly egressCalls: EgressCall[];
  /** Every log line, `console.*` included. */
  readonly logs: { level: LogLevel; message: string }[];
  /** The app's storage as it is now. */
  readonly storage: Map<string, string | Uint8Array>;
  /** Sets configuration keys over the defaults (validated) and runs the app's `config.onChange` handlers. */
  setConfig(config: Record<string, unknown>): Promise<void>;
  /** Forgets recorded emits, egress calls and log lines. */
  clear(): void;
  /** Why the sandbox ended the app, if it did. */
  readonly failure: { code: 'E_MEMORY_LIMIT' | 'E_CPU_LIMIT' | 'E_APP_FAILED'; message: string } | undefined;
  /** Runs the app's onStop handlers and disposes of its isolate. */
  stop(): Promise<void>;
}

/** Builds the project and starts its app in an isolate; resolves once its start-up finished. */
export function startApp(options?: HarnessOptions): Promise<HarnessApp>;
