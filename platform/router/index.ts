/**
 * The router: routes from one app's source endpoint to another app's destination endpoint,
 * kept in the configuration document's APPS_ROUTING.routes[] in the manual's shape.
 *
 * Delivery: a run of messages from a source is checked once on its way in (`admission.ts`),
 * then queued as it crossed, shared, on every active route from that endpoint. Each route has
 * its own queue bounded in bytes (`lane.ts`) and a single drainer that hands runs to the
 * destination in crossings of up to 512 messages, so order holds per route and a slow or
 * failed destination only fills its own queues.
 *
 * Nothing is lost silently. A route is lossless by default: when its queue is full, the source's
 * emit waits (its receipt settles when its messages are queued), which slows the source app and
 * never the gateway. A route can opt into `overflow: "drop-oldest" | "drop-newest"`; every drop
 * is counted and the source's log warned once per burst. A stopped destination's backlog waits
 * within the same bounds and is delivered when it starts again. Queues are in memory: a crash of
 * the gateway loses what was queued.
 */
import { randomUUID } from 'node:crypto';
import { fail, toIsogateError } from '../../sdk/errors.js';
import type { AppManifest, EndpointDeclaration } from '../../sdk/manifest.js';
import type { Audit } from '../audit/index.js';
import type { ConfigStore, RouteEnd, RouteEntry } from '../config/index.js';
import type { AppGuest, LogLevelCode } from '../sandbox/bridge.js';
import type { CheckedRun, EmitRefusal } from '../sandbox/protocol.js';
import { admit } from './admission.js';
import { ByteBudget, Lane, type OverflowPolicy } from './lane.js';
import { deliverBatchOf, messageCount, type Segment } from './segment.js';

export type { OverflowPolicy } from './lane.js';

export interface RouterOptions {
  config: ConfigStore;
  audit: Audit;
  appLog(packageId: string, level: LogLevelCode, message: string): void;
  manifestOf(packageId: string): AppManifest | undefined;
  guestOf(packageId: string): AppGuest | undefined;
  /** Bytes one route holds (queued and in flight) unless the route sets `queue_bytes`; default 4 MiB. */
  routeQueueBytes?: number;
  /** Bytes all routes together hold; default 256 MiB. */
  gatewayQueueBytes?: number;
  /** Bytes a source app may make the host hold across its routes; default its memory limit. */
  appQueueBytes?(packageId: string): number;
  /** Messages handed to a destination in one crossing; default 512. */
  batchSize?: number;
  /** Bytes handed to a destination in one crossing (at least one run); default 1 MiB. */
  batchBytes?: number;
  maxRoutes?: number;
}

export interface Counters {
  delivered: number;
  dropped: number;
  invalid: number;
  /** Messages whose destination handler threw or rejected, or that were in flight when it failed: counted, not retried. */
  failed: number;
  lastError?: { code: string; message: string; at: string };
}

export interface RouteView extends RouteEntry {
  /** The manual's states; `Inactive` is a route an admin disabled (`active: false`). */
  status: 'Active' | 'Inactive' | 'Error';
  /** Why the route is in Error, or would be once enabled. */
  problem?: string;
  sourceName?: string;
  destinationName?: string;
  overflow: OverflowPolicy;
  /** The route's bound in bytes, queued and in flight. */
  queue_bytes: number;
  queued: number;
  queued_bytes: number;
  counters: Counters;
}

export interface RouteQuery {
  search?: string;
  sortBy?: 'status' | 'source' | 'destination';
  order?: 'asc' | 'desc';
}

export interface RouteChange {
  source?: RouteEnd;
  destination?: RouteEnd;
  active?: boolean;
  overflow?: OverflowPolicy;
  queue_bytes?: number;
}

export const ROUTE_QUEUE_BYTES = Object.freeze({ default: 4 * 1024 * 1024, min: 64 * 1024, max: 64 * 1024 * 1024 });
const WARNING_INTERVAL_MS = 10_000;

export interface EndpointCounters extends Counters {
  emitted: number;
}

interface RouteLane {
  lane: Lane;
  draining: boolean;
  lastBlockedWarning: number;
  lastInvalidWarning: number;
}

const endKey = (end: RouteEnd): string => `${end.application_id}:${end.endpoint}`;
const sameEnd = (a: RouteEnd, b: RouteEnd): boolean => a.application_id === b.application_id && a.endpoint === b.endpoint;

export class Router {
  readonly #options: Required<Pick<RouterOptions, 'routeQueueBytes' | 'gatewayQueueBytes' | 'batchSize' | 'batchBytes' | 'maxRoutes'>> & RouterOptions;
  readonly #lanes = new Map<string, RouteLane>();
  readonly #appBudgets = new Map<string, ByteBudget>();
  readonly #gatewayBudget: ByteBudget;
  readonly #endpointCounters = new Map<string, EndpointCounters>();
  #closed = false;
  /** Routes that carry messages, by source end, rebuilt when the configuration changes: emit is the hot path. */
  #bySource: Map<string, RouteEntry[]> | undefined;
  readonly #invalidate = (): void => {
    this.#bySource = undefined;
  };

  constructor(options: RouterOptions) {
    this.#options = {
      routeQueueBytes: ROUTE_QUEUE_BYTES.default,
      gatewayQueueBytes: 256 * 1024 * 1024,
      batchSize: 512,
      batchBytes: 1024 * 1024,
      maxRoutes: 400,
      ...options,
    };
    for (const name of ['routeQueueBytes', 'gatewayQueueBytes', 'batchSize', 'batchBytes', 'maxRoutes'] as const) {
      if (!Number.isInteger(this.#options[name]) || this.#options[name] < 1) throw fail('E_OPTION', `${name} is a positive integer`);
    }
    this.#gatewayBudget = new ByteBudget(this.#options.gatewayQueueBytes);
    // Only once the options hold: a router refused here must leave nothing attached to the store.
    this.#options.config.on('change', this.#invalidate);
  }

  #routes(): RouteEntry[] {
    return this.#options.config.read((doc) => doc.APPLICATIONS.APPS_ROUTING.routes);
  }

  /** The active routes from a source end whose two apps are installed and whose endpoints fit. */
  #routesFrom(source: RouteEnd): RouteEntry[] {
    if (!this.#bySource) {
      this.#bySource = new Map();
      for (const route of this.#routes()) {
        // A route in Error carries nothing: an app not installed, or an endpoint an update dropped or changed.
        if (!route.active || this.#problem(route)) continue;
        const key = endKey(route.source);
        this.#bySource.set(key, [...(this.#bySource.get(key) ?? []), route]);
      }
    }
    return this.#bySource.get(endKey(source)) ?? [];
  }

  #routeLane(route: RouteEntry): RouteLane {
    let entry = this.#lanes.get(route.id);
    if (!entry) {
      const app = route.source.application_id;
      let appBudget = this.#appBudgets.get(app);
      if (!appBudget) {
        const memoryMb = this.#options.manifestOf(app)?.resources.memoryMb ?? 64;
        appBudget = new ByteBudget(this.#options.appQueueBytes?.(app) ?? memoryMb * 1024 * 1024);
        this.#appBudgets.set(app, appBudget);
      }
      const destination = endKey(route.destination);
      const lane: Lane = new Lane(
        route.overflow ?? 'block',
        [new ByteBudget(route.queue_bytes ?? this.#options.routeQueueBytes), appBudget, this.#gatewayBudget],
        {
          released: () => this.#pumpWaiting(),
          dropped: (count) => {
            this.#counters(destination).dropped += count;
          },
          dropping: (policy: OverflowPolicy, dropped: number): void =>
            this.#options.appLog(
              app,
              2,
              `Route ${route.id} to ${endKey(route.destination)} is full (${lane.bound} bytes): dropping the ${policy === 'drop-oldest' ? 'oldest' : 'newest'} messages (${dropped} so far in this burst)`,
            ),
          burstEnded: (dropped) =>
            this.#options.appLog(app, 2, `Route ${route.id} to ${endKey(route.destination)}: ${dropped} messages dropped in the last burst`),
        },
      );
      entry = { lane, draining: false, lastBlockedWarning: 0, lastInvalidWarning: 0 };
      this.#lanes.set(route.id, entry);
    }
    return entry;
  }

  /** A lane released bytes of a budget it shares: offers waiting in other lanes may fit now. */
  #pumpWaiting(): void {
    for (const { lane } of this.#lanes.values()) if (lane.waiting) lane.pump();
  }

  #closeLane(id: string): void {
    const entry = this.#lanes.get(id);
    if (!entry) return;
    this.#lanes.delete(id);
    entry.lane.close();
  }

  #endpoint(end: RouteEnd, direction: 'source' | 'destination'): EndpointDeclaration {
    const manifest = this.#options.manifestOf(end.application_id);
    if (!manifest) throw fail('E_ROUTE', `No app ${end.application_id} is installed`, { field: `${direction}.application_id` });
    const endpoint = manifest.endpoints?.find((e) => e.name === end.endpoint);
    if (!endpoint) throw fail('E_ROUTE', `${end.application_id} declares no endpoint "${end.endpoint}"`, { field: `${direction}.endpoint` });
    if (endpoint.direction !== direction) {
      throw fail('E_ROUTE', `${endKey(end)} is a ${endpoint.direction} endpoint; a route goes from a source endpoint to a destination endpoint`, {
        field: `${direction}.endpoint`,
      });
    }
    return endpoint;
  }

  /** Every rule a route must satisfy; throws naming the rule and the field. */
  #check(source: RouteEnd, destination: RouteEnd, ignoreId?: string): void {
    const from = this.#endpoint(source, 'source');
    const to = this.#endpoint(destination, 'destination');
    if (source.application_id === destination.application_id) throw fail('E_ROUTE', 'A route connects two different apps; this one goes from an app to itself');
    for (const field of ['dataType', 'format'] as const) {
      if (from[field] !== to[field]) {
        throw fail('E_ROUTE', `The endpoints disagree on ${field}: ${endKey(source)} has "${from[field]}", ${endKey(destination)} has "${to[field]}"`, {
          field,
        });
      }
    }
    if (this.#routes().some((r) => r.id !== ignoreId && sameEnd(r.source, source) && sameEnd(r.destination, destination))) {
      throw fail('E_ROUTE_DUPLICATE', `A route from ${endKey(source)} to ${endKey(destination)} exists already`);
    }
    const unidirectional = this.#options.config.read((doc) => doc.MODE_SWITCH.router_mode === false);
    if (unidirectional) {
      const fromZone = this.#options.manifestOf(source.application_id)!.networkZone;
      const toZone = this.#options.manifestOf(destination.application_id)!.networkZone;
      if (fromZone !== 'lan' || toZone !== 'wan') {
        throw fail(
          'E_ROUTE_DIRECTION',
          `In unidirectional gateway mode data goes only from lan apps to wan apps; this route goes from ${fromZone} to ${toZone}`,
        );
      }
    }
  }

  #checkDelivery(change: RouteChange): void {
    if (change.overflow !== undefined && !['block', 'drop-oldest', 'drop-newest'].includes(change.overflow)) {
      throw fail('E_ROUTE', `overflow is "block", "drop-oldest" or "drop-newest", not ${JSON.stringify(change.overflow)}`, { field: 'overflow' });
    }
    const bytes = change.queue_bytes;
    if (bytes !== undefined && (!Number.isInteger(bytes) || bytes < ROUTE_QUEUE_BYTES.min || bytes > ROUTE_QUEUE_BYTES.max)) {
      throw fail('E_ROUTE', `queue_bytes is an integer from ${ROUTE_QUEUE_BYTES.min} to ${ROUTE_QUEUE_BYTES.max}`, { field: 'queue_bytes' });
    }
  }

  /** Why a route carries nothing now: an app that is not installed, or ends that no longer fit. */
  #problem(route: RouteEntry): string | undefined {
    if (!this.#options.manifestOf(route.source.application_id)) return `${route.source.application_id} is not installed`;
    if (!this.#options.manifestOf(route.destination.application_id)) return `${route.destination.application_id} is not installed`;
    try {
      const from = this.#endpoint(route.source, 'source');
      const to = this.#endpoint(route.destination, 'destination');
      for (const field of ['dataType', 'format'] as const) {
        if (from[field] !== to[field])
          return `the endpoints disagree on ${field}: ${endKey(route.source)} has "${from[field]}", ${endKey(route.destination)} has "${to[field]}"`;
      }
      return undefined;
    } catch (error) {
      return toIsogateError(error).message;
    }
  }

  #view(route: RouteEntry): RouteView {
    const sourceApp = this.#options.manifestOf(route.source.application_id);
    const destinationApp = this.#options.manifestOf(route.destination.application_id);
    const problem = this.#problem(route);
    const lane = this.#lanes.get(route.id)?.lane;
    return {
      ...route,
      status: !route.active ? 'Inactive' : problem ? 'Error' : 'Active',
      ...(problem ? { problem } : {}),
      ...(sourceApp ? { sourceName: sourceApp.name } : {}),
      ...(destinationApp ? { destinationName: destinationApp.name } : {}),
      overflow: route.overflow ?? 'block',
      queue_bytes: route.queue_bytes ?? this.#options.routeQueueBytes,
      queued: lane?.queued ?? 0,
      queued_bytes: lane?.heldBytes ?? 0,
      counters: { ...(lane?.counters ?? { delivered: 0, dropped: 0, invalid: 0, failed: 0 }) },
    };
  }

  list(query: RouteQuery = {}): RouteView[] {
    const needle = query.search?.toLowerCase();
    const views = this.#routes()
      .map((route) => this.#view(route))
      .filter(
        (view) =>
          !needle ||
          [view.id, view.status, endKey(view.source), endKey(view.destination), view.sourceName, view.destinationName].some((text) =>
            text?.toLowerCase().includes(needle),
          ),
      );
    const sortKey = (view: RouteView): string =>
      query.sortBy === 'status'
        ? view.status
        : query.sortBy === 'destination'
          ? `${view.destinationName ?? view.destination.application_id}:${view.destination.endpoint}`
          : `${view.sourceName ?? view.source.application_id}:${view.source.endpoint}`;
    views.sort((a, b) => sortKey(a).localeCompare(sortKey(b)) * (query.order === 'desc' ? -1 : 1));
    return views;
  }

  get(id: string): RouteView {
    const route = this.#routes().find((r) => r.id === id);
    if (!route) throw fail('E_NOT_FOUND', `No route ${id}`);
    return this.#view(route);
  }

  async add(source: RouteEnd, destination: RouteEnd, delivery: Pick<RouteChange, 'overflow' | 'queue_bytes'> = {}): Promise<RouteView> {
    this.#check(source, destination);
    this.#checkDelivery(delivery);
    if (this.#routes().length >= this.#options.maxRoutes) throw fail('E_ROUTE', `At most ${this.#options.maxRoutes} routes`);
    const route: RouteEntry = {
      id: randomUUID().slice(0, 8),
      active: true,
      source: { ...source },
      destination: { ...destination },
      ...(delivery.overflow ? { overflow: delivery.overflow } : {}),
      ...(delivery.queue_bytes ? { queue_bytes: delivery.queue_bytes } : {}),
    };
    // Audited before it is written: a route change the trail cannot hold is not made.
    await this.#options.config.update(
      (doc) => {
        doc.APPLICATIONS.APPS_ROUTING.routes.push(route);
      },
      { audit: () => this.#options.audit.record('routesChanged', {}, { action: 'add', route }) },
    );
    return this.get(route.id);
  }

  async update(id: string, change: RouteChange): Promise<RouteView> {
    const current = this.get(id);
    const source = change.source ?? current.source;
    const destination = change.destination ?? current.destination;
    if (change.source || change.destination) this.#check(source, destination, id);
    this.#checkDelivery(change);
    await this.#options.config.update(
      (doc) => {
        const route = doc.APPLICATIONS.APPS_ROUTING.routes.find((r) => r.id === id);
        if (!route) throw fail('E_NOT_FOUND', `No route ${id}`);
        route.source = { ...source };
        route.destination = { ...destination };
        if (change.active !== undefined) route.active = change.active;
        if (change.overflow !== undefined) route.overflow = change.overflow;
        if (change.queue_bytes !== undefined) route.queue_bytes = change.queue_bytes;
      },
      { audit: () => this.#options.audit.record('routesChanged', {}, { action: 'update', id, change }) },
    );
    // A route whose ends changed starts afresh: queued messages were meant for the old destination.
    if (change.source || change.destination) this.#closeLane(id);
    else {
      const updated = this.#routes().find((r) => r.id === id)!;
      const lane = this.#lanes.get(id)?.lane;
      lane?.reconfigure(updated.overflow ?? 'block', updated.queue_bytes ?? this.#options.routeQueueBytes);
      // A disabled route carries nothing new: sources waiting on it go on (their messages dropped, counted).
      if (!updated.active) lane?.dropWaiting();
    }
    return this.get(id);
  }

  async remove(id: string): Promise<void> {
    this.get(id);
    await this.#options.config.update(
      (doc) => {
        doc.APPLICATIONS.APPS_ROUTING.routes = doc.APPLICATIONS.APPS_ROUTING.routes.filter((r) => r.id !== id);
      },
      { audit: () => this.#options.audit.record('routesChanged', {}, { action: 'remove', id }) },
    );
    this.#closeLane(id);
  }

  #counters(key: string): EndpointCounters {
    let counters = this.#endpointCounters.get(key);
    if (!counters) {
      counters = { emitted: 0, delivered: 0, dropped: 0, invalid: 0, failed: 0 };
      this.#endpointCounters.set(key, counters);
    }
    return counters;
  }

  /** Per-endpoint counters, keyed APP:ENDPOINT. */
  endpointCounters(): Record<string, EndpointCounters> {
    return Object.fromEntries([...this.#endpointCounters].map(([key, counters]) => [key, { ...counters }]));
  }

  /**
   * A batch from a source app, its structure checked by the sandbox: each run's messages are
   * checked (`admission.ts`), then queued on every route from its endpoint. Resolves with the
   * refused messages once every accepted one is queued on every route; under a full lossless
   * route that waits, and the app, whose SDK sends its next batch only then, is slowed down.
   * Runs are queued one after another, so order holds per route.
   */
  async emitBatch(packageId: string, runs: CheckedRun[]): Promise<EmitRefusal[]> {
    const refusals: EmitRefusal[] = [];
    let first = 0;
    for (const run of runs) {
      const source = { application_id: packageId, endpoint: run.endpoint.name };
      const counters = this.#counters(endKey(source));
      const { segment, refusals: refused } = admit(run, first);
      first += 'messages' in run ? run.messages.length : run.lengths.length;
      if (refused.length > 0) {
        const [, code, message] = refused.at(-1)!;
        counters.invalid += refused.length;
        counters.lastError = { code, message, at: new Date().toISOString() };
        for (const refusal of refused) refusals.push(refusal);
      }
      counters.emitted += messageCount(segment);
      if (messageCount(segment) === 0) continue;
      // Offered to every route at once: a full route slows the source, but does not keep the
      // source's other routes waiting for it.
      const waits: Promise<void>[] = [];
      for (const route of this.#routesFrom(source)) {
        const entry = this.#routeLane(route);
        const queued = entry.lane.offer(segment);
        this.#drain(route, entry);
        if (!queued) continue;
        this.#warnBlocked(route, entry);
        waits.push(queued.then(() => this.#drain(route, entry)));
      }
      if (waits.length > 0) await Promise.all(waits);
    }
    return refusals;
  }

  #warnBlocked(route: RouteEntry, entry: RouteLane): void {
    const now = Date.now();
    if (now - entry.lastBlockedWarning < WARNING_INTERVAL_MS) return;
    entry.lastBlockedWarning = now;
    this.#options.appLog(
      route.source.application_id,
      3,
      `Route ${route.id} to ${endKey(route.destination)} is full (${entry.lane.heldBytes} of ${entry.lane.bound} bytes): emit waits until the destination catches up`,
    );
  }

  /** The one drainer of a route: hands its queue to the destination, a crossing at a time. */
  #drain(route: RouteEntry, entry: RouteLane): void {
    if (entry.draining || this.#closed || entry.lane.queued === 0) return;
    if (!this.#options.guestOf(route.destination.application_id)) return;
    entry.draining = true;
    void (async () => {
      const { lane } = entry;
      try {
        while (lane.queued > 0 && !this.#closed && this.#lanes.get(route.id) === entry) {
          const target = this.#options.guestOf(route.destination.application_id);
          if (!target) break;
          const segments = lane.take(this.#options.batchSize, this.#options.batchBytes);
          if (!(await this.#deliver(route, entry, target, segments))) break;
        }
      } finally {
        entry.draining = false;
      }
    })();
  }

  /** One crossing; false when the destination was not running, and the batch is first in line again. */
  async #deliver(route: RouteEntry, entry: RouteLane, target: AppGuest, segments: Segment[]): Promise<boolean> {
    const { lane } = entry;
    const count = segments.reduce((sum, segment) => sum + messageCount(segment), 0);
    const counters = this.#counters(endKey(route.destination));
    try {
      const { invalid, failed } = await target.deliver(route.destination.endpoint, deliverBatchOf(segments));
      const delivered = count - invalid.length - failed.length;
      lane.counters.delivered += delivered;
      counters.delivered += delivered;
      lane.counters.invalid += invalid.length;
      counters.invalid += invalid.length;
      lane.counters.failed += failed.length;
      counters.failed += failed.length;
      if (invalid.length > 0) this.#warnInvalid(route, entry, invalid.length);
      lane.done(segments);
      return true;
    } catch (error) {
      const coded = toIsogateError(error);
      if (coded.code === 'E_STATE') {
        // Stopped before it took the batch: it is the backlog's head when the app starts again.
        lane.putBack(segments);
        return false;
      }
      // The destination failed on this batch (its isolate ended): counted, never retried, so a
      // message that crashes its destination cannot do so forever.
      lane.counters.failed += count;
      counters.failed += count;
      lane.counters.lastError = { code: coded.code, message: coded.message, at: new Date().toISOString() };
      lane.done(segments);
      return true;
    }
  }

  #warnInvalid(route: RouteEntry, entry: RouteLane, count: number): void {
    const now = Date.now();
    if (now - entry.lastInvalidWarning < WARNING_INTERVAL_MS) return;
    entry.lastInvalidWarning = now;
    this.#options.appLog(
      route.source.application_id,
      2,
      `Route ${route.id} to ${endKey(route.destination)}: ${count} messages were not delivered: not JSON, or nested deeper than 32 levels`,
    );
  }

  /** A destination that starts receives what waited for it. */
  appStarted(packageId: string): void {
    this.#invalidate();
    for (const route of this.#routes()) {
      if (route.destination.application_id !== packageId) continue;
      const entry = this.#lanes.get(route.id);
      if (entry) this.#drain(route, entry);
    }
  }

  /**
   * Queued messages wait, within the bounds, for a stopped destination to come back. A stopped
   * source's offers still waiting for room are let go: nobody awaits them any more, and a
   * restarted source must not add its new batches to the old ones (their messages are counted
   * as dropped: they were never acknowledged).
   */
  appStopped(packageId: string): void {
    for (const route of this.#routes()) {
      if (route.source.application_id === packageId) this.#lanes.get(route.id)?.lane.dropWaiting();
    }
  }

  /**
   * An app was replaced by another version of itself (an update, or its rollback). Its routes
   * are kept, all of them: those whose endpoints still fit carry on, those whose endpoint is gone
   * or changed stay in Error (with the reason) until the admin edits or deletes them, as the
   * routes of a removed app do, and work again should a later version bring the endpoint back.
   * Their queues are emptied (and the messages counted as dropped): they were meant for an
   * endpoint that is not there. Returns the app's routes now in Error.
   */
  appReplaced(packageId: string): RouteView[] {
    this.#invalidate();
    const broken: RouteView[] = [];
    for (const route of this.#routes()) {
      if (route.destination.application_id !== packageId && route.source.application_id !== packageId) continue;
      const view = this.#view(route);
      if (view.problem) {
        this.#lanes.get(route.id)?.lane.clear();
        broken.push(this.#view(route));
      }
    }
    return broken;
  }

  /** Routes of a removed app stay, in Error, until the admin edits or deletes them (the manual). */
  appRemoved(packageId: string): void {
    this.#invalidate();
    for (const route of this.#routes()) {
      if (route.destination.application_id === packageId || route.source.application_id === packageId) this.#lanes.get(route.id)?.lane.clear();
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#options.config.off('change', this.#invalidate);
    for (const id of [...this.#lanes.keys()]) this.#closeLane(id);
  }
}
