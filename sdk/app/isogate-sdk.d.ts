/**
 * What an isogate app can call. The platform provides the module `isogate:sdk` inside the app's
 * isolate; nothing else is importable, and there is no Node API. Values crossing into or out of
 * the app are copied (structured clone), never shared.
 */
declare module 'isogate:sdk' {
  export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

  /** The running app's identity, from its manifest. */
  export const app: { readonly packageId: string; readonly version: string; readonly name: string };

  /** The app log; levels as in the gateway's settings (0 critical .. 5 all). `console.*` lands here too. */
  export const log: {
    critical(...values: unknown[]): void;
    error(...values: unknown[]): void;
    warning(...values: unknown[]): void;
    info(...values: unknown[]): void;
    debug(...values: unknown[]): void;
    trace(...values: unknown[]): void;
  };

  /** Handles messages arriving at a `destination` endpoint declared in the manifest. */
  export function on(endpoint: string, handler: (message: unknown) => void | Promise<void>): void;

  /**
   * Sends a message from a `source` endpoint declared in the manifest to every route from it.
   * Throws at once E_CAPABILITY for an endpoint that is not one of the app's sources and
   * E_MESSAGE for a value the endpoint's format cannot carry. Emits cross to the platform in
   * batches; await the result to learn whether the message was accepted (it rejects with
   * E_MESSAGE or E_MESSAGE_SIZE when it breaks the endpoint's schema or size, E_DOCUMENT_LIMIT
   * when it nests deeper than 32 levels). A refusal that nobody awaits is written to the app's
   * log as a warning.
   *
   * Backpressure: the result settles once the message is queued on its routes, which waits while
   * a route is full, so a source that awaits its emits is slowed down to what its destinations
   * take. Messages not yet answered wait in the app's own memory; past 8192 of them or 16 MiB,
   * `emit` throws at once E_BACKPRESSURE ("the routes from "X" are full; await emit's result to
   * be slowed down instead") rather than grow without bound. Inside a handler, awaiting an emit
   * whose route leads back (directly or not) to this app can wait on itself while both routes are
   * full: emit there without awaiting, or await outside the handler.
   */
  export function emit(endpoint: string, message: unknown): Emitted;

  /** What `emit` returns: awaitable, and cheap when it is not awaited. */
  export interface Emitted extends PromiseLike<void> {
    // biome-ignore lint/suspicious/noConfusingVoidType: the same type as Promise<void>.catch in TypeScript's own lib
    catch<T = never>(onRefused: (error: Error & { code: string }) => T | PromiseLike<T>): Promise<void | T>;
    finally(onSettled: () => void): Promise<void>;
  }

  /** Called once when the platform stops the app; finish quickly. */
  export function onStop(handler: () => void | Promise<void>): void;

  /**
   * The app's encrypted key-value storage, within the manifest's quota. Keys and strings are
   * stored as UTF-8: one with a lone surrogate is refused (E_STORAGE_KEY, E_STORAGE_VALUE).
   */
  export const storage: {
    get(key: string): Promise<string | Uint8Array | undefined>;
    put(key: string, value: string | Uint8Array): Promise<void>;
    delete(key: string): Promise<boolean>;
    list(prefix?: string): Promise<string[]>;
    usage(): Promise<{ used: number; quota: number }>;
  };

  /** The app's configuration as the admin set it, validated against the manifest's schema. */
  export const config: {
    get(): { [key: string]: JsonValue };
    onChange(handler: (configuration: { [key: string]: JsonValue }) => void): void;
  };

  export interface EgressRequest {
    method?: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
    path?: string;
    headers?: Record<string, string>;
    body?: string | Uint8Array;
    /** How long to wait for the answer, in milliseconds (the platform bounds it). */
    timeoutMs?: number;
  }
  export interface EgressResponse {
    status: number;
    headers: Record<string, string>;
    /** The body's bytes as the server sent them. */
    body: Uint8Array;
    /** The body decoded as UTF-8; an ill-formed sequence becomes U+FFFD. */
    text(): string;
  }

  /**
   * The only way out of the gateway: through the platform's TLS terminator, to targets the
   * manifest declares. A call rejects with E_CAPABILITY for a target the manifest does not
   * declare, E_EGRESS_UNREACHABLE when no connection came about (the same sentence whatever the
   * cause: no DNS answer, an address on the gateway's own side that the admin has not allowed,
   * a closed, resetting or silent port; the cause is in the app's log), E_EGRESS_TLS when the server
   * is not trusted or refuses the handshake, E_EGRESS_TIMEOUT when a connected server does not
   * answer in time.
   */
  export const egress: {
    /** An HTTPS request to an `https` target; the platform verifies the server and may present the app's client certificate. */
    fetch(target: string, request?: EgressRequest): Promise<EgressResponse>;
    /** An MQTT publish over TLS to an `mqtts` target (QoS 1 unless told). */
    publish(target: string, topic: string, payload: string | Uint8Array, options?: { qos?: 0 | 1; retain?: boolean }): Promise<void>;
    /** A TLS byte stream to a `tls` target; resolves once the handshake succeeded. */
    connect(target: string): Promise<EgressConnection>;
  };

  /**
   * A TLS stream the platform holds for the app. Chunks that arrive before a `data` handler is
   * set wait for it, and the platform reads no further from the server until the app took them.
   */
  export interface EgressConnection {
    readonly target: string;
    on(event: 'data', handler: (chunk: Uint8Array) => void | Promise<void>): void;
    /** Once: without an error when the server ended the stream, with one when it failed. */
    on(event: 'close', handler: (error?: Error & { code: string }) => void): void;
    /** Rejects with E_EGRESS_CLOSED once the stream is closed, E_EGRESS_LIMIT past 1 MiB. */
    write(chunk: string | Uint8Array): Promise<void>;
    /** Ends the app's side; the server may still send until it closes. */
    end(): Promise<void>;
  }

  /** A TCP connection of a protected service, as the traffic gate sees it. */
  export interface TrafficConnection {
    /** Unique per gateway run. */
    id: number;
    /** The protected service's name in the configuration (NETWORK.IDS_PROXY.services). */
    service: string;
    protocol: 'modbus' | 'mqtt';
    /** The plant-side client. */
    srcIp: string;
    srcPort: number;
    /** The upstream server. */
    destIp: string;
    destPort: number;
  }
  export type TrafficDirection = 'to_server' | 'to_client';
  export interface TrafficAlert {
    sid: number;
    gid: number;
    rev: number;
    signature: string;
    action: 'alert' | 'drop' | 'pass';
    category: string;
    severity: number;
  }
  /** What the inspector answers for one `data()` call; the bounds are TrafficInspector's. */
  export type TrafficVerdict =
    /**
     * How many bytes of this direction's stream, counted from the connection's start
     * (cumulative), have been inspected and may be forwarded. Bytes beyond it are held by the gate.
     */
    | { release: number; alerts?: TrafficAlert[] }
    /**
     * The connection is closed and nothing more of it forwarded; with traffic.block the gate also
     * puts srcIp on the denylist with `drop.signature` and writes the firewall audit event.
     */
    | { drop: TrafficAlert; alerts?: TrafficAlert[] };
  /**
   * The bounds the gate holds an inspector to. Breaking one is a forged answer or a failure:
   * the app fails, the gate fails closed and the gateway enters emergency support mode.
   *
   * - **Alerts:** at most 64 per verdict (`alerts` and the drop's alert apart); a signature of
   *   at most 1024 characters, a category of at most 256; every field of TrafficAlert present.
   * - **release:** a non-negative integer, cumulative per direction, never below the last
   *   release and never past the bytes handed over so far.
   * - **Bytes:** `data()` gets what one socket read delivered, any size from 1 byte; the gate
   *   holds what is not released yet, at most the service's `maxHeldBytes` per direction
   *   (default 256 KiB), past which it closes the connection. An MQTT message longer than 1 MiB
   *   is not handed over whole: the gate drops it (sid 90000001) unless the admin chose `pass`
   *   (NETWORK.IDS_PROXY.oversizedMqtt). `bytes` is a view into memory the gate's crossing shares
   *   between frames: copy what is kept past the call (`bytes.slice()`), or it keeps the rest alive.
   * - **Time:** one crossing carries up to 1024 items (4 MiB) of many connections, and must
   *   answer within the verdict deadline (NETWORK.IDS_PROXY.verdictDeadlineMs, default 2000 ms)
   *   and within the manifest's `cpuMsPerEvent` per 64 items; memory within `memoryMb`.
   * - **The self-test:** the gateway's self-test opens a connection of the service
   *   `isogate:self-test` (no protected service can take that name) from 192.0.2.1 to
   *   192.0.2.2:502 and sends one Modbus Diagnostics "Return Query Data" request (function 8,
   *   subfunction 0) carrying `isogate self-test frame`. The inspector must answer it with a drop
   *   under the reserved sid 90000001; any other verdict, or none within the deadline, fails the
   *   self-test and enters emergency support mode. Nothing of it is forwarded, denylisted or logged.
   */
  export interface TrafficInspector {
    open(connection: TrafficConnection): void;
    data(connectionId: number, direction: TrafficDirection, bytes: Uint8Array, timestampMs: number): TrafficVerdict;
    close(connectionId: number): void;
  }

  /**
   * The traffic gate, for the platform's own apps only (the reserved capability traffic.inspect).
   * While no inspector is registered and running, the gate refuses all transit traffic; an
   * inspector that throws, answers a forged verdict, runs past its CPU limit or does not answer
   * within the verdict deadline puts the gateway in emergency support mode.
   */
  export const traffic: {
    /** Registers the app's one inspector; throws E_CAPABILITY without traffic.inspect, E_CONFLICT the second time. */
    inspect(inspector: TrafficInspector): void;
  };
}
