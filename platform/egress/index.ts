/**
 * The TLS terminator: the only way out for apps. An app names a target from its manifest; the
 * platform connects to the declared host and port with TLS 1.2 or later, verifies the server
 * against the app's CA certificate (the system roots when none is uploaded) and the declared
 * host name, and presents the app's client certificate when it has one. There is no option to
 * skip verification, to reach another host or to speak plain TCP: the code has no such path.
 */
import type tls from 'node:tls';
import mqtt from 'mqtt';
import { type Dispatcher, Pool } from 'undici';
import { fail, type IsogateError, isIsogateError } from '../../sdk/errors.js';
import type { EgressProtocol, EgressTarget } from '../../sdk/manifest.js';
import type { EgressHost, EgressRequest, EgressResponse, EgressStream, EgressStreamEvents, LogLevelCode } from '../sandbox/bridge.js';
import { refusals } from '../sandbox/refusals.js';
import { AddressPolicy, PolicyInForce } from './address-policy.js';
import type { CertificateStore, TlsCredentials } from './certificates.js';
import { causeOf, checkTargetHost, egressError, openTls, unreachable } from './connector.js';

export { AddressPolicy } from './address-policy.js';
export type { CertificateInfo, CertificateKind, TlsCredentials } from './certificates.js';
export { CertificateStore } from './certificates.js';

export interface EgressLimits {
  timeoutMs: number;
  /** For a new connection: DNS, TCP and the TLS handshake together. */
  connectTimeoutMs: number;
  maxResponseBytes: number;
  maxRequestBytes: number;
  /** Concurrent connections one app may hold, over all its targets. */
  maxConnections: number;
}

export const DEFAULT_EGRESS_LIMITS: Readonly<EgressLimits> = Object.freeze({
  timeoutMs: 10_000,
  connectTimeoutMs: 10_000,
  maxResponseBytes: 1024 * 1024,
  maxRequestBytes: 1024 * 1024,
  maxConnections: 8,
});

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']);
const PATH_REFUSED = /[^\x21-\x7e]/;
/** Headers the platform owns: the app cannot redirect the request or smuggle a second one. */
const RESERVED_HEADERS = new Set([
  'host',
  'connection',
  'content-length',
  'transfer-encoding',
  'upgrade',
  'proxy-authorization',
  'te',
  'trailer',
  'keep-alive',
]);

/** Trust, client certificate and versions; where to connect is the connector's. */
function tlsOptions(credentials: TlsCredentials): tls.ConnectionOptions {
  return {
    minVersion: 'TLSv1.2',
    rejectUnauthorized: true,
    ...(credentials.ca ? { ca: credentials.ca } : {}),
    ...(credentials.cert && credentials.key ? { cert: credentials.cert, key: credentials.key } : {}),
  };
}

/** One kept connection (pool or broker client) per target name, host and port. */
const connectionKey = (target: EgressTarget): string => `${target.name}|${target.host}|${target.port}`;

interface KeptPool {
  version: string;
  /** The store's promise of the credentials the pool was made with (or last found current). */
  credentials: Promise<TlsCredentials>;
  pool: Pool;
  presentsClientCertificate: boolean;
}

interface AppConnections {
  pools: Map<string, KeptPool>;
  brokers: Map<string, { version: string; client: Promise<mqtt.MqttClient> }>;
  streams: Set<tls.TLSSocket>;
  /** Streams still connecting: closing the app aborts them, so none outlives it unsettled. */
  connecting: Set<AbortController>;
  /** Set by closeApp: a stream whose credentials were being read when the app closed never opens. */
  closed: boolean;
  open: number;
}

/**
 * One request's exchange with undici: gathers the response within its size limit and settles
 * once, on whichever comes first of the answer, a refusal and the deadline. One object per
 * request rather than a closure per callback: this runs for every request an app makes.
 */
class Exchange implements Dispatcher.DispatchHandler {
  readonly response: Promise<EgressResponse>;
  #resolve!: (response: EgressResponse) => void;
  #reject!: (error: Error) => void;
  #settled = false;
  #controller: Dispatcher.DispatchController | undefined;
  #refusal: Error | undefined;
  #status = 0;
  #headers: Record<string, string> = {};
  #chunks: Buffer[] = [];
  #size = 0;
  readonly #timer: NodeJS.Timeout;

  constructor(
    private readonly target: EgressTarget,
    private readonly timeoutMs: number,
    private readonly maxResponseBytes: number,
    private readonly presentsClientCertificate: boolean,
    private readonly release: () => void,
  ) {
    this.response = new Promise<EgressResponse>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.#timer = setTimeout(expireExchange, timeoutMs, this);
  }

  /**
   * undici starts a request only on a connection whose TLS is up: before that, no answer in time
   * is an unreachable target like any other, so the request's deadline tells the app nothing
   * about the port.
   */
  expire(): void {
    const { target } = this;
    this.#refuse(
      this.#controller
        ? fail('E_EGRESS_TIMEOUT', `${target.name} (${target.host}:${target.port}) did not answer within ${this.timeoutMs} ms`)
        : unreachable(target, `no connection within the request's ${this.timeoutMs} ms`),
    );
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#refusal) controller.abort(this.#refusal);
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, incomingHeaders: Record<string, string | string[] | undefined>): void {
    // Called again after a 1xx informational response: only the final one counts.
    this.#status = statusCode;
    const headers: Record<string, string> = {};
    for (const name in incomingHeaders) {
      const value = incomingHeaders[name];
      if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
    }
    this.#headers = headers;
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#size += chunk.length;
    if (this.#size > this.maxResponseBytes)
      this.#refuse(fail('E_EGRESS_LIMIT', `The response from ${this.target.name} is over ${this.maxResponseBytes} bytes`));
    else this.#chunks.push(chunk);
  }

  onResponseEnd(): void {
    const chunks = this.#chunks;
    this.#finish(undefined, { status: this.#status, headers: this.#headers, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) });
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.#finish(this.#refusal ?? egressError(this.target, error, this.#controller !== undefined, this.presentsClientCertificate));
  }

  /**
   * The app hears of a refusal at once; its connection slot frees only when undici has let go
   * of the request, so the cap counts what is really open.
   */
  #refuse(error: Error): void {
    this.#refusal ??= error;
    this.#controller?.abort(error);
    this.#settle(error);
  }

  #finish(error: Error | undefined, response?: EgressResponse): void {
    this.release();
    this.#settle(error, response);
  }

  #settle(error: Error | undefined, response?: EgressResponse): void {
    if (this.#settled) return;
    this.#settled = true;
    clearTimeout(this.#timer);
    if (error) this.#reject(error);
    else this.#resolve(response!);
  }
}

function expireExchange(exchange: Exchange): void {
  exchange.expire();
}

export class EgressService {
  readonly #apps = new Map<string, AppConnections>();
  readonly #limits: EgressLimits;
  readonly #policy: PolicyInForce;

  constructor(
    private readonly options: {
      certificates: Pick<CertificateStore, 'credentials'>;
      appLog(packageId: string, level: LogLevelCode, message: string): void;
      limits?: Partial<EgressLimits>;
      /** The configuration's EGRESS.allowed_ranges: internal ranges the admin lets apps reach. */
      allowedRanges?: readonly string[];
    },
  ) {
    this.#limits = { ...DEFAULT_EGRESS_LIMITS, ...options.limits };
    this.#policy = new PolicyInForce(AddressPolicy.fromRanges(options.allowedRanges));
  }

  /**
   * Applies a changed EGRESS.allowed_ranges (E_CONFIG for a range that is not CIDR, changing
   * nothing). Kept connections were checked against the old list: they close, and the next
   * request connects under the new one; one still opening is judged by the new list when its
   * handshake is done (the connector asks the policy in force).
   */
  setAllowedRanges(ranges: readonly string[] | undefined): void {
    const policy = AddressPolicy.fromRanges(ranges);
    if (JSON.stringify(policy.ranges) === JSON.stringify(this.#policy.current.ranges)) return;
    this.#policy.set(policy);
    for (const connections of this.#apps.values()) {
      for (const { pool } of connections.pools.values()) void pool.destroy().catch(() => undefined);
      connections.pools.clear();
      for (const { client } of connections.brokers.values())
        void client.then(
          (c) => c.end(true),
          () => undefined,
        );
      connections.brokers.clear();
      for (const socket of connections.streams) {
        if (policy.refusal(socket.remoteAddress ?? '')) socket.destroy();
      }
    }
  }

  #connections(packageId: string): AppConnections {
    let connections = this.#apps.get(packageId);
    if (!connections) {
      connections = { pools: new Map(), brokers: new Map(), streams: new Set(), connecting: new Set(), closed: false, open: 0 };
      this.#apps.set(packageId, connections);
    }
    return connections;
  }

  /** The egress an app's sandbox gets: only its declared targets exist. */
  forApp(packageId: string, targets: readonly EgressTarget[]): EgressHost {
    const declared = new Map(targets.map((t) => [t.name, t]));
    const resolve = (name: string, protocol: EgressProtocol): EgressTarget => {
      const target = declared.get(name);
      // The sandbox refused these already (capabilities.ts); the same refusal, for a host calling directly.
      if (!target) throw fail(...refusals.noEgressTarget(name));
      if (target.protocol !== protocol) throw fail(...refusals.egressProtocol(name, target.protocol, protocol));
      return target;
    };
    // Every refusal reaches the app as an error and its log as a line, whether the work throws
    // before it starts or fails later.
    const refused = (name: string, error: unknown): Error => {
      const target = declared.get(name);
      const coded = isIsogateError(error) ? error : target ? (egressError(target, error, false) as IsogateError) : fail('E_INTERNAL', 'Egress failed');
      const cause = causeOf(coded);
      this.options.appLog(packageId, 1, `Egress to "${name}" refused: ${coded.code}: ${coded.message}${cause ? ` (${cause})` : ''}`);
      return coded;
    };
    const logged = <T>(name: string, work: () => Promise<T>): Promise<T> => {
      try {
        return work().catch((error: unknown) => {
          throw refused(name, error);
        });
      } catch (error) {
        return Promise.reject(refused(name, error));
      }
    };
    return {
      fetch: (name, request) => logged(name, () => this.#fetch(packageId, resolve(name, 'https'), request)),
      publish: (name, topic, payload, options) => logged(name, () => this.#publish(packageId, resolve(name, 'mqtts'), topic, payload, options)),
      connect: (name, events) => logged(name, () => this.#connect(packageId, resolve(name, 'tls'), events)),
    };
  }

  #acquire(packageId: string): () => void {
    const connections = this.#connections(packageId);
    if (connections.open >= this.#limits.maxConnections) {
      throw fail('E_EGRESS_LIMIT', `${packageId} has ${connections.open} egress requests open, its limit`);
    }
    connections.open += 1;
    let released = false;
    return () => {
      if (!released) connections.open -= 1;
      released = true;
    };
  }

  /**
   * The app's connection pool for a target, rebuilt when its certificates change so the next
   * request presents the new ones. undici rather than Node's https client: the same TLS, with
   * about a third less CPU per request, which is most of what the terminator adds to a request.
   */
  async #pool(packageId: string, target: EgressTarget): Promise<KeptPool> {
    checkTargetHost(target);
    const pending = this.options.certificates.credentials(packageId);
    const credentials = await pending;
    const connections = this.#connections(packageId);
    const key = connectionKey(target);
    const existing = connections.pools.get(key);
    if (existing?.version === credentials.version) {
      existing.credentials = pending;
      return existing;
    }
    void existing?.pool.close().catch(() => undefined);
    const origin = `https://${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`;
    const options = { ...tlsOptions(credentials), ALPNProtocols: ['http/1.1'] };
    // New connections resume the last TLS session, as undici's own connector would.
    const sessions: { session?: Buffer } = {};
    const pool = new Pool(origin, {
      connections: this.#limits.maxConnections,
      connect: (_where, callback) => {
        openTls({ target, policy: this.#policy, tls: options, timeoutMs: this.#limits.connectTimeoutMs, sessions }).then(
          (socket) => {
            socket.setKeepAlive(true, 60_000);
            callback(null, socket);
          },
          (error: Error) => callback(error, null),
        );
      },
    });
    const kept = { version: credentials.version, credentials: pending, pool, presentsClientCertificate: Boolean(credentials.cert && credentials.key) };
    connections.pools.set(key, kept);
    return kept;
  }

  /**
   * The kept pool when the app's credentials are still the ones it was made with, without a
   * turn of the event loop: the store hands out the same promise until the credentials change.
   */
  #currentPool(packageId: string, target: EgressTarget): KeptPool | undefined {
    const kept = this.#apps.get(packageId)?.pools.get(connectionKey(target));
    return kept && kept.credentials === this.options.certificates.credentials(packageId) ? kept : undefined;
  }

  #fetch(packageId: string, target: EgressTarget, request: EgressRequest): Promise<EgressResponse> {
    const method = (request.method ?? 'GET').toUpperCase();
    if (!METHODS.has(method)) throw fail('E_BAD_REQUEST', `The method ${method} is not allowed`);
    const requestPath = request.path ?? '/';
    // Printable ASCII only, as on the wire: an invisible or look-alike character (U+200B, U+FEFF,
    // full-width forms) is not something a server and the app's author would read alike.
    if (!requestPath.startsWith('/') || PATH_REFUSED.test(requestPath) || requestPath.length > 2048)
      throw fail(
        'E_BAD_REQUEST',
        'A request path starts with / and has only printable ASCII: no spaces, control, invisible or non-ASCII characters (percent-encode them)',
      );
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(request.headers ?? {})) {
      if (RESERVED_HEADERS.has(name.toLowerCase())) throw fail('E_BAD_REQUEST', `The header ${name} is set by the platform`);
      if (typeof value !== 'string' || /[\r\n\u0000]/.test(value) || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name))
        throw fail('E_BAD_REQUEST', `The header ${name} is not valid`);
      headers[name] = value;
    }
    const body = request.body;
    const bodyBytes = body === undefined ? 0 : typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;
    if (bodyBytes > this.#limits.maxRequestBytes) throw fail('E_EGRESS_LIMIT', `A request body is at most ${this.#limits.maxRequestBytes} bytes`);
    const timeoutMs = request.timeoutMs !== undefined && request.timeoutMs > 0 ? Math.min(request.timeoutMs, this.#limits.timeoutMs) : this.#limits.timeoutMs;
    const release = this.#acquire(packageId);
    const outgoing = { method, path: requestPath, headers, body };
    const current = this.#currentPool(packageId, target);
    if (current) return this.#send(current, target, outgoing, timeoutMs, release);
    return this.#pool(packageId, target).then(
      (kept) => this.#send(kept, target, outgoing, timeoutMs, release),
      (error: unknown) => {
        release();
        throw error;
      },
    );
  }

  #send(kept: KeptPool, target: EgressTarget, request: Dispatcher.DispatchOptions, timeoutMs: number, release: () => void): Promise<EgressResponse> {
    const exchange = new Exchange(target, timeoutMs, this.#limits.maxResponseBytes, kept.presentsClientCertificate, release);
    kept.pool.dispatch(request, exchange);
    return exchange.response;
  }

  async #broker(packageId: string, target: EgressTarget): Promise<mqtt.MqttClient> {
    const credentials = await this.options.certificates.credentials(packageId);
    const connections = this.#connections(packageId);
    const key = connectionKey(target);
    const existing = connections.brokers.get(key);
    if (existing?.version === credentials.version) {
      const client = await existing.client.catch(() => undefined);
      if (client?.connected) return client;
    }
    connections.brokers.delete(key);
    void existing?.client.then(
      (client) => client.end(true),
      () => undefined,
    );
    const client = openTls({ target, policy: this.#policy, tls: tlsOptions(credentials), timeoutMs: this.#limits.connectTimeoutMs }).then(
      (socket) =>
        new Promise<mqtt.MqttClient>((resolve, reject) => {
          // The client gets the connection the connector checked, never a host to dial itself; with
          // no reconnects it asks for a stream once.
          const connecting = new mqtt.MqttClient(() => socket, {
            clientId: `isogate-${packageId}-${target.name}`.slice(0, 64),
            connectTimeout: this.#limits.timeoutMs,
            reconnectPeriod: 0,
          });
          const timer = setTimeout(() => {
            connecting.end(true);
            reject(fail('E_EGRESS_TIMEOUT', `The broker ${target.name} did not accept the connection in time`));
          }, this.#limits.timeoutMs);
          connecting.once('connect', () => {
            clearTimeout(timer);
            resolve(connecting);
          });
          connecting.once('error', (error) => {
            clearTimeout(timer);
            connecting.end(true);
            reject(egressError(target, error, true));
          });
          connecting.once('close', () => {
            clearTimeout(timer);
            reject(
              fail('E_EGRESS_TLS', `The broker ${target.name} closed the connection during the handshake (a client certificate it requires may be missing)`),
            );
          });
        }),
    );
    connections.brokers.set(key, { version: credentials.version, client });
    client.catch(() => connections.brokers.delete(key));
    return client;
  }

  async #publish(
    packageId: string,
    target: EgressTarget,
    topic: string,
    payload: string | Uint8Array,
    options: { qos?: 0 | 1; retain?: boolean } = {},
  ): Promise<void> {
    if (typeof topic !== 'string' || topic.length === 0 || topic.length > 1024 || /[#+\u0000]/.test(topic))
      throw fail('E_BAD_REQUEST', 'A topic is 1 to 1024 characters without wildcards or NUL');
    const bytes = Buffer.from(payload);
    if (bytes.length > this.#limits.maxRequestBytes) throw fail('E_EGRESS_LIMIT', `A payload is at most ${this.#limits.maxRequestBytes} bytes`);
    const release = this.#acquire(packageId);
    try {
      const client = await this.#broker(packageId, target);
      await client.publishAsync(topic, bytes, { qos: options.qos ?? 1, retain: options.retain ?? false });
    } catch (error) {
      throw egressError(target, error, true);
    } finally {
      release();
    }
  }

  async #connect(packageId: string, target: EgressTarget, events: EgressStreamEvents): Promise<EgressStream> {
    const release = this.#acquire(packageId);
    const connections = this.#connections(packageId);
    const closedError = (): IsogateError => fail('E_EGRESS_CLOSED', `${packageId} was closed before the connection to ${target.name} was made`);
    const connecting = new AbortController();
    connections.connecting.add(connecting);
    let socket: tls.TLSSocket;
    try {
      const credentials = await this.options.certificates.credentials(packageId);
      if (connections.closed) throw closedError();
      socket = await openTls({
        target,
        policy: this.#policy,
        tls: tlsOptions(credentials),
        timeoutMs: this.#limits.connectTimeoutMs,
        signal: connecting.signal,
      });
      if (connections.closed) {
        socket.destroy();
        throw closedError();
      }
    } catch (error) {
      release();
      throw connecting.signal.aborted ? closedError() : error;
    } finally {
      connections.connecting.delete(connecting);
    }
    return new Promise<EgressStream>((resolve) => {
      socket.setTimeout(this.#limits.timeoutMs, () => socket.destroy(fail('E_EGRESS_TIMEOUT', `${target.name} was idle too long`)));
      connections.streams.add(socket);
      let closed = false;
      const close = (error?: { code: string; message: string }): void => {
        if (closed) return;
        closed = true;
        events.close(error);
      };
      resolve({
        write: (chunk) => {
          if (chunk.byteLength > this.#limits.maxRequestBytes)
            return Promise.reject(fail('E_EGRESS_LIMIT', `A chunk is at most ${this.#limits.maxRequestBytes} bytes`));
          if (socket.destroyed || socket.writableEnded) return Promise.reject(fail('E_EGRESS_CLOSED', `The connection to ${target.name} is closed`));
          return new Promise<void>((done, failWrite) => socket.write(chunk, (error) => (error ? failWrite(egressError(target, error, true)) : done())));
        },
        end: () => new Promise<void>((done) => socket.end(done)),
        destroy: () => socket.destroy(),
      });
      socket.on('data', (chunk: Buffer) => {
        const taken = events.data(new Uint8Array(chunk));
        if (!taken) return;
        // Backpressure: the server's bytes wait in the socket until the app took this chunk.
        socket.pause();
        void taken.finally(() => socket.resume());
      });
      socket.once('close', () => {
        connections.streams.delete(socket);
        release();
        close();
      });
      socket.once('error', (error: NodeJS.ErrnoException) => {
        const coded = egressError(target, error, true) as IsogateError;
        close({ code: coded.code, message: coded.message });
      });
    });
  }

  /** Closes an app's connections (it stopped or was removed). */
  async closeApp(packageId: string): Promise<void> {
    const connections = this.#apps.get(packageId);
    if (!connections) return;
    this.#apps.delete(packageId);
    connections.closed = true;
    for (const connecting of connections.connecting) connecting.abort();
    for (const { pool } of connections.pools.values()) void pool.destroy().catch(() => undefined);
    for (const socket of connections.streams) socket.destroy();
    await Promise.all(
      [...connections.brokers.values()].map(({ client }) =>
        client.then(
          (c) => c.endAsync(true),
          () => undefined,
        ),
      ),
    );
  }

  async close(): Promise<void> {
    for (const packageId of [...this.#apps.keys()]) await this.closeApp(packageId);
  }
}
