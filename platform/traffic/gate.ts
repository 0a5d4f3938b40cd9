/**
 * The traffic gate: inline TCP proxies for the protected services of NETWORK.IDS_PROXY.services.
 * Every byte from either side goes to the inspecting app (Network Protector) before it is
 * forwarded, and only the bytes it released are: nothing passes uninspected. The manual's
 * "Procedure for processing network traffic" orders the checks at accept: while no inspector
 * runs (or in emergency support mode) the connection is refused (fail closed); then the
 * allowlist, then the denylist. A drop verdict closes the connection and denylists its source
 * (with traffic.block), with the manual's firewall event.
 *
 * Hostile clients are bounded: connections per service, bytes held per direction, an idle
 * timeout; each refusal is counted.
 */
import net from 'node:net';
import { fail, type IsogateError } from '../../sdk/errors.js';
import type { Audit } from '../audit/index.js';
import type { ConfigStore } from '../config/index.js';
import type { AppInspector, TrafficAlert, TrafficConnection, TrafficDirection, TrafficVerdict } from '../sandbox/bridge.js';
import {
  checkServices,
  endedBothWays,
  GATE_DEFAULTS,
  GateConnection,
  normaliseIp,
  ProtectedService,
  type ServiceStatus,
  type Stream,
} from './gate-connection.js';
import { InspectionQueue } from './gate-inspection.js';
import { type IdsProxySettings, type IpLists, idsProxyOf, type ProtectedServiceSettings } from './gate-lists.js';
import { MQTT_INSPECTION_BOUND_BYTES } from './mqtt-bound.js';
import { RESERVED_SID, selfTestConnection, selfTestFrame, wrongSelfTestVerdict } from './self-test-frame.js';

export { GATE_DEFAULTS, type ServiceCounters, type ServiceStatus } from './gate-connection.js';

/** The sid Network Protector reserves for the gateway's own verdicts (its rules may not use it). */
export const OVERSIZED_SID = RESERVED_SID;

export interface TrafficGateOptions {
  config: ConfigStore;
  audit: Audit;
  lists: IpLists;
  /** Whether transit is blocked whatever the inspector (emergency support mode). */
  blocked(): boolean;
  /** The inspector failed: crashed, answered a forged verdict, or did not answer in time. */
  onInspectorFailure(packageId: string, error: IsogateError): void;
  /** How long one crossing may take before the inspector counts as not answering (default 2000 ms; the configuration's verdictDeadlineMs wins). */
  verdictDeadlineMs?: number;
  /** Alerts recorded in the firewall log per second at most; the rest are counted. */
  alertsPerSecond?: number;
}

export interface GateStatus {
  inspector: string | null;
  services: ServiceStatus[];
  alertsRecorded: number;
  alertsNotRecorded: number;
  /** Denylist entries and audit records the gate could not write (the disk), counted. */
  recordsFailed: number;
  crossings: number;
  inspectedItems: number;
  /** Why the last change of the protected services could not listen, if it could not. */
  listenError?: string;
}

export class TrafficGate {
  readonly #options: TrafficGateOptions;
  #services: ProtectedService[] = [];
  #servicesKey = '';
  #queue: InspectionQueue | undefined;
  #nextConnection = 1;
  #closing = false;
  #alertBudget: { second: number; used: number } = { second: 0, used: 0 };
  #alertsRecorded = 0;
  #alertsNotRecorded = 0;
  #crossings = 0;
  #items = 0;
  readonly #lastRefusalAudit = new Map<string, number>();
  #reconfiguring: Promise<void> = Promise.resolve();
  #listenError: string | undefined;
  #recordsFailed = 0;

  constructor(options: TrafficGateOptions) {
    if (options.verdictDeadlineMs !== undefined && (!Number.isSafeInteger(options.verdictDeadlineMs) || options.verdictDeadlineMs < 1)) {
      throw fail('E_OPTION', 'verdictDeadlineMs is a positive number of milliseconds');
    }
    if (options.alertsPerSecond !== undefined && (!Number.isSafeInteger(options.alertsPerSecond) || options.alertsPerSecond < 0)) {
      throw fail('E_OPTION', 'alertsPerSecond is a non-negative integer');
    }
    this.#options = options;
    options.config.addCheck((doc) => checkServices(idsProxyOf(doc)));
    options.config.on('change', ({ after }) => {
      this.#reconfiguring = this.#reconfiguring
        .then(() => this.#configure(idsProxyOf(after)))
        .catch((error: unknown) => {
          // The document is valid; a port taken by someone else is the host's problem, said here and in the status.
          this.#listenError = (error as Error).message;
        });
    });
  }

  /** Settles once the last configuration change is applied (the services listen as it says). */
  settled(): Promise<void> {
    return this.#reconfiguring;
  }

  /** Listens on every protected service of the configuration; a change re-listens. */
  async start(): Promise<void> {
    await this.#configure(this.#options.config.read(idsProxyOf));
  }

  get #deadlineMs(): number {
    return this.#options.config.read(idsProxyOf).verdictDeadlineMs ?? this.#options.verdictDeadlineMs ?? GATE_DEFAULTS.verdictDeadlineMs;
  }

  /** The one inspector: a second app is refused while the first is registered. */
  register(inspector: AppInspector): void {
    if (this.#queue && !this.#queue.stopped && this.#queue.inspector.packageId !== inspector.packageId) {
      throw fail('E_CONFLICT', `${this.#queue.inspector.packageId} inspects the traffic already`);
    }
    if (this.#queue) {
      // A new inspector never saw the open connections: they end rather than pass half inspected.
      this.#queue.stop();
      this.#crossingsOf(this.#queue);
      this.closeAll();
    }
    const queue: InspectionQueue = new InspectionQueue({
      inspector,
      deadlineMs: this.#deadlineMs,
      onFailure: (error) => {
        if (this.#queue !== queue) return;
        this.#crossingsOf(queue);
        this.#queue = undefined;
        this.closeAll();
        // A stop racing a crossing is not a failure: the app stopped, the gate fails closed.
        if (error.code !== 'E_STATE') this.#options.onInspectorFailure(inspector.packageId, error);
      },
    });
    this.#queue = queue;
  }

  /** The inspecting app stopped: transit is refused until it runs again, and its connections end. */
  unregister(packageId: string): void {
    if (this.#queue?.inspector.packageId !== packageId) return;
    this.#queue.stop();
    this.#crossingsOf(this.#queue);
    this.#queue = undefined;
    this.closeAll();
  }

  get inspector(): string | undefined {
    return this.#queue?.inspector.packageId;
  }

  #crossingsOf(queue: InspectionQueue | undefined): void {
    if (!queue) return;
    this.#crossings += queue.crossings;
    this.#items += queue.items;
    queue.crossings = 0;
    queue.items = 0;
  }

  /**
   * The self-test's hook: the crafted frame (self-test-frame.ts) through the inspector on a
   * connection of its own, in the same queue and crossings as the traffic, and its verdict
   * checked. Nothing of it is forwarded, recorded or denylisted. Rejects when nothing inspects,
   * when the verdict is wrong, or when none comes within timeoutMs (an inspector that stops
   * answering has failed the gate's own deadline too, which is reported as ever).
   */
  async inspectSelfTestFrame(timeoutMs: number = this.#deadlineMs): Promise<string> {
    const queue = this.#queue;
    if (!queue || queue.stopped) throw fail('E_STATE', 'nothing inspects the traffic');
    const connection = selfTestConnection(this.#nextConnection++);
    const frame = selfTestFrame();
    let timer: NodeJS.Timeout | undefined;
    try {
      const verdict = await new Promise<TrafficVerdict>((resolve, reject) => {
        timer = setTimeout(
          () => reject(fail('E_APP_FAILED', `${queue.inspector.packageId} gave no verdict on the self-test frame within ${timeoutMs} ms`)),
          timeoutMs,
        );
        queue.push(['open', connection]);
        queue.push(['data', connection.id, 'to_server', frame, Date.now()], resolve);
        queue.push(['close', connection.id]);
      });
      const wrong = wrongSelfTestVerdict(verdict);
      if (wrong) throw fail('E_APP_FAILED', `${queue.inspector.packageId} answered the self-test frame wrongly: ${wrong}`);
      return `${queue.inspector.packageId} dropped the self-test frame (${frame.byteLength} bytes) under sid ${'drop' in verdict ? verdict.drop.sid : ''}`;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Ends every proxied connection now (the inspector is gone, or emergency support mode). */
  closeAll(): void {
    for (const service of this.#services) {
      for (const connection of [...service.connections]) {
        service.counters.closedFailClosed += 1;
        this.#end(connection, true);
      }
    }
  }

  status(): GateStatus {
    return {
      inspector: this.#queue?.inspector.packageId ?? null,
      services: this.#services.map((service) => ({
        name: service.settings.name,
        protocol: service.settings.protocol,
        listen: service.address(),
        upstream: service.settings.upstream,
        counters: { ...service.counters, active: service.connections.size },
      })),
      alertsRecorded: this.#alertsRecorded,
      alertsNotRecorded: this.#alertsNotRecorded,
      recordsFailed: this.#recordsFailed,
      ...(this.#listenError ? { listenError: this.#listenError } : {}),
      crossings: this.#crossings + (this.#queue?.crossings ?? 0),
      inspectedItems: this.#items + (this.#queue?.items ?? 0),
    };
  }

  async close(): Promise<void> {
    this.#closing = true;
    this.#queue?.stop();
    this.#queue = undefined;
    await this.#reconfiguring;
    await this.#listen([]);
  }

  async #configure(settings: IdsProxySettings): Promise<void> {
    if (this.#closing) return;
    const wanted = settings.services ?? [];
    const key = JSON.stringify(wanted);
    if (key === this.#servicesKey) return;
    this.#servicesKey = key;
    this.#listenError = undefined;
    await this.#listen(wanted);
  }

  async #listen(wanted: ProtectedServiceSettings[]): Promise<void> {
    const old = this.#services;
    this.#services = [];
    for (const service of old) {
      for (const connection of [...service.connections]) this.#end(connection, true);
      await new Promise<void>((resolve) => (service.server ? service.server.close(() => resolve()) : resolve()));
    }
    for (const settings of wanted) {
      const service = new ProtectedService(settings);
      // Half-open allowed: a client's FIN is passed on as a FIN, and the server may still answer.
      const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (socket) => this.#accept(service, socket));
      service.server = server;
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: settings.listen.host, port: settings.listen.port }, () => {
          server.off('error', reject);
          // Past listening an error (out of file descriptors at accept) is said in the status, never thrown.
          server.on('error', (error) => {
            this.#listenError = `${settings.name}: ${error.message}`;
          });
          resolve();
        });
      }).catch((error: NodeJS.ErrnoException) => {
        throw fail(
          'E_UNAVAILABLE',
          `The protected service ${settings.name} cannot listen on ${settings.listen.host}:${settings.listen.port}: ${error.message}`,
        );
      });
      this.#services.push(service);
    }
  }

  #accept(service: ProtectedService, client: net.Socket): void {
    const srcIp = normaliseIp(client.remoteAddress ?? '');
    const queue = this.#queue;
    // Fail closed: no inspector running, or emergency support mode, and nothing gets through.
    if (!queue || queue.stopped || this.#options.blocked()) {
      service.counters.refusedFailClosed += 1;
      client.destroy();
      return;
    }
    if (this.#options.lists.verdictAtAccept(srcIp) === 'denied') {
      service.counters.refusedDenylisted += 1;
      client.destroy();
      this.#auditRefusal(srcIp);
      return;
    }
    if (service.connections.size >= service.maxConnections) {
      service.counters.refusedConnectionLimit += 1;
      client.destroy();
      return;
    }
    service.counters.accepted += 1;
    const upstream = net.connect({ host: service.settings.upstream.host, port: service.settings.upstream.port, allowHalfOpen: true });
    const info: TrafficConnection = Object.freeze({
      id: this.#nextConnection++,
      service: service.settings.name,
      protocol: service.settings.protocol,
      srcIp,
      srcPort: client.remotePort ?? 0,
      destIp: service.settings.upstream.host,
      destPort: service.settings.upstream.port,
    });
    const connection = new GateConnection(info, service, client, upstream, this.#options.config.read(idsProxyOf).oversizedMqtt ?? 'drop');
    service.connections.add(connection);
    queue.push(['open', info]);

    client.setNoDelay(true);
    upstream.setNoDelay(true);
    client.setTimeout(service.idleTimeoutMs, () => {
      service.counters.closedIdle += 1;
      this.#end(connection, true);
    });
    // 'on', not 'once': a second error with no listener would be thrown on the gateway's process.
    upstream.on('error', () => {
      if (upstream.connecting || connection.streams.to_client.received === 0) service.counters.upstreamFailed += 1;
      this.#end(connection, true);
    });
    client.on('error', () => this.#end(connection, true));
    // A FIN is a half-close, passed on once every byte before it has its verdict: the other side
    // may still send (a client that sent its last request and waits for the answer).
    client.once('end', () => this.#halfClosed(connection, 'to_server'));
    upstream.once('end', () => this.#halfClosed(connection, 'to_client'));
    client.once('close', (hadError) => this.#socketClosed(connection, 'to_server', 'to_client', hadError));
    upstream.once('close', (hadError) => this.#socketClosed(connection, 'to_client', 'to_server', hadError));
    for (const direction of ['to_server', 'to_client'] as const) {
      const stream = connection.streams[direction];
      stream.from.on('data', (chunk: Buffer) => this.#received(connection, direction, chunk));
      stream.to.on('drain', () => stream.from.resume());
    }
    client.resume();
  }

  #received(connection: GateConnection, direction: TrafficDirection, chunk: Buffer): void {
    const queue = this.#queue;
    if (connection.closed) return;
    if (!queue || queue.stopped) {
      connection.service.counters.closedFailClosed += 1;
      this.#end(connection, true);
      return;
    }
    const stream = connection.streams[direction];
    stream.received += chunk.byteLength;
    stream.held.push(chunk);
    if (stream.received - stream.released > connection.service.maxHeldBytes) {
      connection.service.counters.closedHeldLimit += 1;
      this.#end(connection, true);
      return;
    }
    if (stream.frames && connection.oversizedMqtt === 'drop' && stream.frames.feed(chunk).oversized) {
      this.#dropOversized(connection);
      return;
    }
    const upTo = stream.received;
    stream.awaiting += 1;
    queue.push(['data', connection.info.id, direction, chunk, Date.now()], (verdict) => {
      stream.awaiting -= 1;
      this.#verdict(connection, direction, upTo, verdict, queue);
      this.#forwardEnd(connection, stream);
    });
  }

  /**
   * A socket closed as TCP closes, its FIN in and ours out, leaves the other side to finish:
   * bytes toward that side may still wait for their verdicts. Any other close (a reset, an
   * error, a destroy) ends the connection at once.
   */
  #socketClosed(connection: GateConnection, from: TrafficDirection, to: TrafficDirection, hadError: boolean): void {
    const graceful = !hadError && connection.streams[from].ended && connection.streams[to].endForwarded;
    if (!graceful) {
      this.#end(connection, true);
      return;
    }
    connection.socketsClosed += 1;
    if (connection.socketsClosed === 2 || endedBothWays(connection)) this.#end(connection, false);
  }

  #halfClosed(connection: GateConnection, direction: TrafficDirection): void {
    const stream = connection.streams[direction];
    stream.ended = true;
    this.#forwardEnd(connection, stream);
  }

  /**
   * Passes a FIN on once nothing before it waits for a verdict. What is still held then is the
   * start of a message that will never be whole: it is dropped, never forwarded uninspected.
   */
  #forwardEnd(connection: GateConnection, stream: Stream): void {
    if (connection.closed || !stream.ended || stream.endForwarded || stream.awaiting > 0) return;
    stream.endForwarded = true;
    stream.held = [];
    stream.to.end();
  }

  /**
   * An MQTT message longer than what the inspector can inspect whole: the connection is closed
   * before any byte of it is forwarded, and the drop is recorded under the gateway's own sid.
   */
  #dropOversized(connection: GateConnection): void {
    connection.service.counters.droppedOversized += 1;
    this.#recordAlert(connection, {
      sid: OVERSIZED_SID,
      gid: 1,
      rev: 1,
      signature: `isogate: MQTT message longer than the ${MQTT_INSPECTION_BOUND_BYTES / 1024 / 1024} MiB inspection bound`,
      action: 'drop',
      category: 'Oversized message, not inspected',
      severity: 1,
    });
    this.#end(connection, true);
  }

  #verdict(connection: GateConnection, direction: TrafficDirection, upTo: number, verdict: TrafficVerdict, queue: InspectionQueue): void {
    if (verdict.alerts) this.#recordAlerts(connection, verdict.alerts);
    if (connection.closed) return;
    if ('drop' in verdict) {
      this.#recordAlert(connection, verdict.drop);
      connection.service.counters.dropped += 1;
      this.#end(connection, true);
      void this.#block(connection, verdict.drop, queue.inspector.canBlock);
      return;
    }
    const stream = connection.streams[direction];
    // Cumulative and within what the inspector was given: anything else is a forged verdict.
    if (verdict.release < stream.released || verdict.release > upTo) {
      queue.stop();
      if (this.#queue === queue) this.#queue = undefined;
      this.closeAll();
      this.#options.onInspectorFailure(
        queue.inspector.packageId,
        fail('E_APP_FAILED', `released bytes ${verdict.release} of a stream it had inspected ${stream.released} to ${upTo} of`),
      );
      return;
    }
    let release = verdict.release - stream.released;
    if (release === 0) return;
    stream.released = verdict.release;
    const counters = connection.service.counters;
    if (direction === 'to_server') counters.bytesToServer += release;
    else counters.bytesToClient += release;
    const parts: Buffer[] = [];
    while (release > 0) {
      const head = stream.held[0]!;
      const part = head.byteLength <= release ? head : head.subarray(0, release);
      if (part === head) stream.held.shift();
      else stream.held[0] = head.subarray(release);
      release -= part.byteLength;
      parts.push(part);
    }
    // One write per verdict: a frame that came in 1-byte segments leaves whole (servers with a
    // naive framer choke on the segments, and every write is a syscall).
    if (!stream.to.write(parts.length === 1 ? parts[0]! : Buffer.concat(parts))) stream.from.pause();
  }

  async #block(connection: GateConnection, alert: TrafficAlert, canBlock: boolean): Promise<void> {
    const ip = connection.info.srcIp;
    if (!canBlock || !this.#options.lists.mayDenylist(ip)) return;
    // The connection is closed whatever happens here; a denylist entry or event that cannot be
    // written is counted in the status rather than lost without a trace.
    await this.#options.lists.deny(ip, alert.signature).catch(() => {
      this.#recordsFailed += 1;
    });
  }

  #recordAlert(connection: GateConnection, alert: TrafficAlert): void {
    this.#recordAlerts(connection, [alert]);
  }

  /**
   * Alerts come at the rate of the traffic: the firewall log takes a bounded share a second, the
   * rest is counted. A verdict's alerts are budgeted together (a chunk of many transactions
   * carries dozens, mostly past the budget).
   */
  #recordAlerts(connection: GateConnection, alerts: readonly TrafficAlert[]): void {
    const second = Math.floor(Date.now() / 1000);
    if (this.#alertBudget.second !== second) this.#alertBudget = { second, used: 0 };
    const budget = this.#options.alertsPerSecond ?? GATE_DEFAULTS.alertsPerSecond;
    const recorded = Math.min(alerts.length, Math.max(0, budget - this.#alertBudget.used));
    this.#alertsNotRecorded += alerts.length - recorded;
    for (let index = 0; index < recorded; index += 1) this.#auditAlert(connection, alerts[index]!);
  }

  #auditAlert(connection: GateConnection, alert: TrafficAlert): void {
    this.#alertBudget.used += 1;
    this.#alertsRecorded += 1;
    void this.#options.audit
      .record(
        'trafficAlert',
        { sid: alert.sid, signature: alert.signature, 'IP address': connection.info.srcIp },
        { ...alert, service: connection.info.service, srcIp: connection.info.srcIp, srcPort: connection.info.srcPort, connection: connection.info.id },
      )
      .catch(() => {
        this.#recordsFailed += 1;
      });
  }

  #auditRefusal(ip: string): void {
    const now = Date.now();
    const last = this.#lastRefusalAudit.get(ip);
    if (last !== undefined && now - last < GATE_DEFAULTS.refusalAuditIntervalMs) return;
    if (this.#lastRefusalAudit.size > 4096) this.#lastRefusalAudit.clear();
    this.#lastRefusalAudit.set(ip, now);
    void this.#options.audit.record('trafficBlocked', { 'IP address': ip }, { address: ip, at: 'accept' }).catch(() => {
      this.#recordsFailed += 1;
    });
  }

  #end(connection: GateConnection, now: boolean): void {
    if (connection.closed) return;
    connection.closed = true;
    connection.service.connections.delete(connection);
    for (const stream of Object.values(connection.streams)) stream.held = [];
    this.#queue?.push(['close', connection.info.id]);
    if (now) {
      connection.client.destroy();
      connection.upstream.destroy();
    } else {
      connection.client.end();
      connection.upstream.end();
      // What was released is flushed by end(); a peer that never reads is not waited for long.
      setTimeout(() => {
        connection.client.destroy();
        connection.upstream.destroy();
      }, 2000).unref();
    }
  }
}
