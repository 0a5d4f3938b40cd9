/**
 * The router: routes from one app's source endpoint to another app's destination endpoint,
 * kept in the configuration document's APPS_ROUTING.routes[] in the manual's shape.
 *
 * Delivery: a message is checked once against the source endpoint (format, size, JSON Schema),
 * then queued on every active route from that endpoint. Each route has its own bounded queue
 * and a single drainer that hands messages to the destination in batches, so order holds per
 * route and a slow or failed destination only fills its own queues.
 *
 * Overflow policy: when a route's queue is full the newest message is dropped (tail drop), the
 * route's `dropped` counter grows, and the source app's log gets a warning at most every ten
 * seconds. Messages wait in the queue while the destination is stopped, within the same bound.
 */
import { randomUUID } from 'node:crypto';
import { fail, toIsogateError } from '../../sdk/errors.js';
import { DOCUMENT_LIMITS, jsonDepth } from '../../sdk/limits.js';
import type { AppManifest, EndpointDeclaration } from '../../sdk/manifest.js';
import { assertValid, compileUntrustedSchema } from '../../sdk/schema.js';
import type { Audit } from '../audit/index.js';
import type { ConfigStore, RouteEnd, RouteEntry } from '../config/index.js';
import type { AppGuest, DeliverBatch, DeliveredMessage, LogLevelCode } from '../sandbox/bridge.js';
import { maxMessageBytes } from '../sandbox/capabilities.js';

export interface RouterOptions {
  config: ConfigStore;
  audit: Audit;
  appLog(packageId: string, level: LogLevelCode, message: string): void;
  manifestOf(packageId: string): AppManifest | undefined;
  guestOf(packageId: string): AppGuest | undefined;
  /** Messages a route holds before it drops; default 1000. */
  queueLimit?: number;
  /** Messages handed to a destination in one crossing; default 512. */
  batchSize?: number;
  maxRoutes?: number;
}

export interface Counters {
  delivered: number;
  dropped: number;
  invalid: number;
  /** Messages whose destination handler threw or rejected: counted, not retried. */
  failed?: number;
  lastError?: { code: string; message: string; at: string };
}

export interface RouteView extends RouteEntry {
  /** The manual's states; `Inactive` is a route an admin disabled (`active: false`). */
  status: 'Active' | 'Inactive' | 'Error';
  /** Why the route is in Error, or would be once enabled. */
  problem?: string;
  sourceName?: string;
  destinationName?: string;
  queued: number;
  counters: Counters;
}

export interface RouteQuery {
  search?: string;
  sortBy?: 'status' | 'source' | 'destination';
  order?: 'asc' | 'desc';
}

interface Lane {
  queue: DeliveredMessage[];
  draining: boolean;
  counters: Counters;
  lastWarning: number;
}

const endKey = (end: RouteEnd): string => `${end.application_id}:${end.endpoint}`;
const sameEnd = (a: RouteEnd, b: RouteEnd): boolean => a.application_id === b.application_id && a.endpoint === b.endpoint;

export class Router {
  readonly #options: Required<Pick<RouterOptions, 'queueLimit' | 'batchSize' | 'maxRoutes'>> & RouterOptions;
  readonly #lanes = new Map<string, Lane>();
  readonly #endpointCounters = new Map<string, Counters & { emitted: number }>();
  #closed = false;
  /** Routes by source end, rebuilt when the configuration changes: emit is the hot path. */
  #bySource: Map<string, RouteEntry[]> | undefined;
  readonly #invalidate = (): void => {
    this.#bySource = undefined;
  };

  constructor(options: RouterOptions) {
    this.#options = { queueLimit: 1000, batchSize: 512, maxRoutes: 400, ...options };
    for (const name of ['queueLimit', 'batchSize', 'maxRoutes'] as const) {
      if (!Number.isInteger(this.#options[name]) || this.#options[name] < 1) throw fail('E_OPTION', `${name} is a positive integer`);
    }
    // Only once the options hold: a router refused here must leave nothing attached to the store.
    this.#options.config.on('change', this.#invalidate);
  }

  #routes(): RouteEntry[] {
    return this.#options.config.read((doc) => doc.APPLICATIONS.APPS_ROUTING.routes);
  }

  #routesFrom(source: RouteEnd): RouteEntry[] {
    if (!this.#bySource) {
      this.#bySource = new Map();
      for (const route of this.#routes()) {
        // A route whose ends no longer fit (an update dropped or changed an endpoint) carries nothing.
        if (this.#endpointProblem(route)) continue;
        const key = endKey(route.source);
        this.#bySource.set(key, [...(this.#bySource.get(key) ?? []), route]);
      }
    }
    return this.#bySource.get(endKey(source)) ?? [];
  }

  #lane(routeId: string): Lane {
    let lane = this.#lanes.get(routeId);
    if (!lane) {
      lane = { queue: [], draining: false, counters: { delivered: 0, dropped: 0, invalid: 0 }, lastWarning: 0 };
      this.#lanes.set(routeId, lane);
    }
    return lane;
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

  /**
   * Why the installed apps' endpoints no longer carry the route: after an in-place update an
   * endpoint may be gone or changed. Undefined while both ends fit, or while an app is not
   * installed (that route waits in Error for its app, as before).
   */
  #endpointProblem(route: RouteEntry): string | undefined {
    if (!this.#options.manifestOf(route.source.application_id) || !this.#options.manifestOf(route.destination.application_id)) return undefined;
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
    let problem: string | undefined;
    if (!sourceApp) problem = `${route.source.application_id} is not installed`;
    else if (!destinationApp) problem = `${route.destination.application_id} is not installed`;
    else problem = this.#endpointProblem(route);
    const lane = this.#lanes.get(route.id);
    return {
      ...route,
      status: !route.active ? 'Inactive' : problem ? 'Error' : 'Active',
      ...(problem ? { problem } : {}),
      ...(sourceApp ? { sourceName: sourceApp.name } : {}),
      ...(destinationApp ? { destinationName: destinationApp.name } : {}),
      queued: lane?.queue.length ?? 0,
      counters: { ...(lane?.counters ?? { delivered: 0, dropped: 0, invalid: 0 }) },
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

  async add(source: RouteEnd, destination: RouteEnd): Promise<RouteView> {
    this.#check(source, destination);
    if (this.#routes().length >= this.#options.maxRoutes) throw fail('E_ROUTE', `At most ${this.#options.maxRoutes} routes`);
    const route: RouteEntry = { id: randomUUID().slice(0, 8), active: true, source: { ...source }, destination: { ...destination } };
    await this.#options.config.update((doc) => {
      doc.APPLICATIONS.APPS_ROUTING.routes.push(route);
    });
    await this.#options.audit.record('routesChanged', {}, { action: 'add', route });
    return this.get(route.id);
  }

  async update(id: string, change: { source?: RouteEnd; destination?: RouteEnd; active?: boolean }): Promise<RouteView> {
    const current = this.get(id);
    const source = change.source ?? current.source;
    const destination = change.destination ?? current.destination;
    if (change.source || change.destination) this.#check(source, destination, id);
    await this.#options.config.update((doc) => {
      const route = doc.APPLICATIONS.APPS_ROUTING.routes.find((r) => r.id === id);
      if (!route) throw fail('E_NOT_FOUND', `No route ${id}`);
      route.source = { ...source };
      route.destination = { ...destination };
      if (change.active !== undefined) route.active = change.active;
    });
    // A route whose ends changed starts afresh: queued messages were meant for the old destination.
    if (change.source || change.destination) this.#lanes.delete(id);
    await this.#options.audit.record('routesChanged', {}, { action: 'update', id, change });
    return this.get(id);
  }

  async remove(id: string): Promise<void> {
    this.get(id);
    await this.#options.config.update((doc) => {
      doc.APPLICATIONS.APPS_ROUTING.routes = doc.APPLICATIONS.APPS_ROUTING.routes.filter((r) => r.id !== id);
    });
    this.#lanes.delete(id);
    await this.#options.audit.record('routesChanged', {}, { action: 'remove', id });
  }

  #counters(key: string): Counters & { emitted: number } {
    let counters = this.#endpointCounters.get(key);
    if (!counters) {
      counters = { emitted: 0, delivered: 0, dropped: 0, invalid: 0 };
      this.#endpointCounters.set(key, counters);
    }
    return counters;
  }

  /** Per-endpoint counters, keyed APP:ENDPOINT. */
  endpointCounters(): Record<string, Counters & { emitted: number }> {
    return Object.fromEntries([...this.#endpointCounters].map(([key, counters]) => [key, { ...counters }]));
  }

  /** Checks the message against its source endpoint, then queues it on every active route. */
  emit(packageId: string, endpointName: string, message: unknown, json?: string): void {
    const source = { application_id: packageId, endpoint: endpointName };
    const endpoint = this.#endpoint(source, 'source');
    const counters = this.#counters(endKey(source));
    try {
      checkMessage(endpoint, message, json);
    } catch (error) {
      const coded = toIsogateError(error);
      counters.invalid += 1;
      counters.lastError = { code: coded.code, message: coded.message, at: new Date().toISOString() };
      for (const route of this.#routesFrom(source)) this.#lane(route.id).counters.invalid += 1;
      throw error;
    }
    counters.emitted += 1;
    for (const route of this.#routesFrom(source)) {
      if (!route.active) continue;
      const lane = this.#lane(route.id);
      if (lane.queue.length >= this.#options.queueLimit) {
        lane.counters.dropped += 1;
        this.#counters(endKey(route.destination)).dropped += 1;
        const now = Date.now();
        if (now - lane.lastWarning > 10_000) {
          lane.lastWarning = now;
          this.#options.appLog(
            packageId,
            2,
            `Route ${route.id} to ${endKey(route.destination)} is full (${this.#options.queueLimit} messages): dropping the newest (${lane.counters.dropped} dropped so far)`,
          );
        }
        continue;
      }
      lane.queue.push({ message, ...(json === undefined ? {} : { json }), routeId: route.id, source });
      this.#drain(route);
    }
  }

  #drain(route: RouteEntry): void {
    const lane = this.#lane(route.id);
    if (lane.draining || this.#closed) return;
    const guest = this.#options.guestOf(route.destination.application_id);
    if (!guest) return;
    lane.draining = true;
    void (async () => {
      try {
        while (lane.queue.length > 0 && !this.#closed && this.#lanes.get(route.id) === lane) {
          const target = this.#options.guestOf(route.destination.application_id);
          if (!target) break;
          const batch = lane.queue.splice(0, this.#options.batchSize);
          const counters = this.#counters(endKey(route.destination));
          try {
            const { invalid, failed } = await target.deliver(
              route.destination.endpoint,
              deliverBatch(this.#endpoint(route.destination, 'destination').format, batch),
            );
            const delivered = batch.length - invalid.length - failed.length;
            lane.counters.delivered += delivered;
            counters.delivered += delivered;
            lane.counters.invalid += invalid.length;
            counters.invalid += invalid.length;
            lane.counters.failed = (lane.counters.failed ?? 0) + failed.length;
            counters.failed = (counters.failed ?? 0) + failed.length;
          } catch (error) {
            const coded = toIsogateError(error);
            lane.counters.dropped += batch.length;
            counters.dropped += batch.length;
            lane.counters.lastError = { code: coded.code, message: coded.message, at: new Date().toISOString() };
          }
        }
      } finally {
        lane.draining = false;
      }
    })();
  }

  /** A destination that starts receives what waited for it. */
  appStarted(packageId: string): void {
    for (const route of this.#routes()) if (route.destination.application_id === packageId) this.#drain(route);
  }

  appStopped(_packageId: string): void {
    // Queued messages wait, within the bound, for the destination to come back.
  }

  /**
   * An app was replaced by another version of itself (an update, or its rollback). Its routes
   * are kept, all of them: those whose endpoints still fit carry on, those whose endpoint is gone
   * or changed stay in Error (with the reason) until the admin edits or deletes them, as the
   * routes of a removed app do, and work again should a later version bring the endpoint back.
   * Their queues are emptied: the messages were meant for an endpoint that is not there.
   * Returns the app's routes now in Error.
   */
  appReplaced(packageId: string): RouteView[] {
    this.#invalidate();
    const broken: RouteView[] = [];
    for (const route of this.#routes()) {
      if (route.destination.application_id !== packageId && route.source.application_id !== packageId) continue;
      const view = this.#view(route);
      if (view.problem) {
        this.#lanes.get(route.id)?.queue.splice(0);
        broken.push(view);
      }
    }
    return broken;
  }

  /** Routes of a removed app stay, in Error, until the admin edits or deletes them (the manual). */
  appRemoved(packageId: string): void {
    for (const route of this.#routes()) {
      if (route.destination.application_id === packageId || route.source.application_id === packageId) this.#lanes.get(route.id)?.queue.splice(0);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#options.config.off('change', this.#invalidate);
  }
}

/**
 * A batch for the destination as the protocol carries it: json and text as one text and the
 * messages' lengths (one join, no separator), binary as the bytes.
 */
function deliverBatch(format: EndpointDeclaration['format'], queued: DeliveredMessage[]): DeliverBatch {
  if (format === 'binary') return { messages: queued.map(({ message }) => message as Uint8Array) };
  const texts = queued.map(({ message, json }) => (format === 'text' ? (message as string) : (json ?? JSON.stringify(message))));
  return { text: texts.join(''), lengths: texts.map((text) => text.length) };
}

/**
 * The source endpoint's contract: format, size and, for json, nesting and its JSON Schema (the
 * publisher's, compiled once per manifest on the linear-time engine). Depth is checked before
 * anything serialises, validates or copies the message to its destination: those recurse.
 */
export function checkMessage(endpoint: EndpointDeclaration, message: unknown, json?: string): void {
  const limit = maxMessageBytes(endpoint);
  if (endpoint.format === 'json') {
    if (jsonDepth(message, DOCUMENT_LIMITS.maxDepth) > DOCUMENT_LIMITS.maxDepth) {
      throw fail('E_DOCUMENT_LIMIT', `A message on "${endpoint.name}" nests deeper than ${DOCUMENT_LIMITS.maxDepth} levels; flatten it`);
    }
    const text = json ?? JSON.stringify(message);
    if (text === undefined) throw fail('E_MESSAGE', `A message on "${endpoint.name}" is a JSON value`);
    if (Buffer.byteLength(text) > limit) throw fail('E_MESSAGE_SIZE', `A message on "${endpoint.name}" is at most ${limit} bytes`);
    if (endpoint.schema)
      assertValid(compileUntrustedSchema(endpoint.schema, `schema of endpoint "${endpoint.name}"`), message, 'E_MESSAGE', `The message on "${endpoint.name}"`);
  } else if (endpoint.format === 'text') {
    if (typeof message !== 'string') throw fail('E_MESSAGE', `A message on "${endpoint.name}" is text`);
    if (Buffer.byteLength(message) > limit) throw fail('E_MESSAGE_SIZE', `A message on "${endpoint.name}" is at most ${limit} bytes`);
  } else {
    if (!(message instanceof Uint8Array)) throw fail('E_MESSAGE', `A message on "${endpoint.name}" is bytes`);
    if (message.byteLength > limit) throw fail('E_MESSAGE_SIZE', `A message on "${endpoint.name}" is at most ${limit} bytes`);
  }
}
