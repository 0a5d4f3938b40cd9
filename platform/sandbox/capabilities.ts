/**
 * The whole reach of one app, in one module: `grantsFor` computes from its manifest (and where it
 * was installed from) which endpoints it may emit on or handle, which egress targets it may reach
 * and with what protocol, its storage quota and its limits (bounded by the platform); `hostFor`
 * builds from those grants the app's whole host, one handler per operation of the protocol
 * (`protocol.ts`), each starting with its capability check. Nothing else decides what an app may
 * reach: the guest SDK refuses early with the same code and sentence (`refusals.ts`) for a fast
 * error, but it runs in the app's isolate and can be bypassed; these checks cannot, since every
 * call the app makes is decoded and handed to one of these handlers and nothing else.
 */
import { fail } from '../../sdk/errors.js';
import {
  type AppManifest,
  type Capability,
  type EgressProtocol,
  type EgressTarget,
  type EndpointDeclaration,
  reservedCapabilitiesOf,
} from '../../sdk/manifest.js';
import type { AppHost, EgressStream, LogLevelCode } from './bridge.js';
import { type CheckedRun, type ConnectionEventKind, type HostHandlers, type InspectItem, MAX_EMIT_BATCH, type TrafficVerdict } from './protocol.js';
import { refusals } from './refusals.js';

export const PLATFORM_LIMITS = Object.freeze({
  minMemoryMb: 8,
  maxMemoryMb: 512,
  minCpuMsPerEvent: 1,
  maxCpuMsPerEvent: 10_000,
  maxTimers: 256,
  minIntervalMs: 10,
  maxLogLineBytes: 8 * 1024,
  defaultMaxMessageBytes: 256 * 1024,
  /** How long top-level code may take, host calls included, before the launch counts as failed. */
  startDeadlineMs: 10_000,
  /** Wall time a destination may take over one batch of messages, awaiting included. */
  deliverDeadlineMs: 30_000,
});

export interface AppGrants {
  packageId: string;
  sourceEndpoints: ReadonlyMap<string, EndpointDeclaration>;
  destinationEndpoints: ReadonlyMap<string, EndpointDeclaration>;
  egressTargets: ReadonlyMap<string, EgressTarget>;
  storageQuotaBytes: number;
  limits: { memoryMb: number; cpuMsPerEvent: number };
  /** Special capabilities held: a reserved one only for an app installed from the gateway's image. */
  capabilities: ReadonlySet<Capability>;
}

const clamp = (value: number, min: number, max: number): number => Math.min(max, Math.max(min, value));

/** The heap limit an app's isolate gets: its manifest's, within the platform's bounds. */
export function memoryLimitOf(manifest: AppManifest): number {
  return clamp(manifest.resources.memoryMb, PLATFORM_LIMITS.minMemoryMb, PLATFORM_LIMITS.maxMemoryMb);
}

/**
 * An app's grants. An app that claims a reserved capability but was not installed from the
 * gateway's image is refused here (defence in depth behind the orchestrator's install check),
 * rather than run with less than its manifest says.
 */
export function grantsFor(manifest: AppManifest, origin: 'store' | 'image' | 'debug' = 'store'): AppGrants {
  const reserved = reservedCapabilitiesOf(manifest);
  if (reserved.length && origin !== 'image') {
    throw fail(
      'E_RESERVED_CAPABILITY',
      `${manifest.package_id} claims ${reserved.join(', ')} but was not installed from the gateway's image; it is not started`,
      { packageId: manifest.package_id, capabilities: reserved },
    );
  }
  const endpoints = manifest.endpoints ?? [];
  return Object.freeze({
    packageId: manifest.package_id,
    sourceEndpoints: new Map(endpoints.filter((e) => e.direction === 'source').map((e) => [e.name, e])),
    destinationEndpoints: new Map(endpoints.filter((e) => e.direction === 'destination').map((e) => [e.name, e])),
    egressTargets: new Map((manifest.egress ?? []).map((t) => [t.name, t])),
    storageQuotaBytes: manifest.resources.storageMb * 1024 * 1024,
    limits: {
      memoryMb: memoryLimitOf(manifest),
      cpuMsPerEvent: clamp(manifest.resources.cpuMsPerEvent, PLATFORM_LIMITS.minCpuMsPerEvent, PLATFORM_LIMITS.maxCpuMsPerEvent),
    },
    capabilities: new Set(manifest.capabilities ?? []),
  });
}

export function checkEmit(grants: AppGrants, endpoint: string): EndpointDeclaration {
  const declared = grants.sourceEndpoints.get(endpoint);
  if (!declared) throw fail(...refusals.notASource(endpoint, grants.destinationEndpoints.has(endpoint)));
  return declared;
}

export function checkHandler(grants: AppGrants, endpoint: string): EndpointDeclaration {
  const declared = grants.destinationEndpoints.get(endpoint);
  if (!declared) throw fail(...refusals.notADestination(endpoint));
  return declared;
}

export function checkEgress(grants: AppGrants, target: string, protocol: EgressProtocol): EgressTarget {
  const declared = grants.egressTargets.get(target);
  if (!declared) throw fail(...refusals.noEgressTarget(target));
  if (declared.protocol !== protocol) throw fail(...refusals.egressProtocol(declared.name, declared.protocol, protocol));
  return declared;
}

export function maxMessageBytes(endpoint: EndpointDeclaration): number {
  return endpoint.maxMessageBytes ?? PLATFORM_LIMITS.defaultMaxMessageBytes;
}

/** What the sandbox keeps for the app's host: its clock, its log and its open streams. */
export interface SandboxSide {
  log(level: LogLevelCode, text: string): void;
  timer(action: 'set' | 'clear', id: number, ms?: number, repeat?: boolean): void;
  ready(): void;
  readonly disposed: boolean;
  /** The app's open TLS streams, by the number its SDK gave them. */
  readonly connections: Map<number, EgressStream>;
  connectionEvent(id: number, kind: ConnectionEventKind, payload: Uint8Array | { code: string; message: string } | undefined): Promise<void>;
  /** One crossing into the app's inspector, its verdicts decoded (the sandbox fails the app on a forged one). */
  inspect(items: InspectItem[]): Promise<TrafficVerdict[]>;
}

/**
 * Bytes that cross into an isolate in memory of their own: a structured copy copies a view's
 * whole ArrayBuffer, and a Node Buffer is often a slice of a pool holding other data.
 */
export function ownBytes(value: Uint8Array): Uint8Array {
  return value.byteOffset === 0 && value.byteLength === value.buffer.byteLength && value.buffer instanceof ArrayBuffer ? value : new Uint8Array(value);
}

/**
 * The app's whole host: every operation of the protocol, each starting with its capability
 * check. Arguments arrive decoded (`protocol.ts` decodeCall), so a handler sees only the types
 * the table declares.
 */
export function hostFor(grants: AppGrants, host: AppHost, side: SandboxSide): HostHandlers {
  const connection = (id: number): EgressStream => {
    const open = side.connections.get(id);
    if (!open) throw fail('E_EGRESS_CLOSED', 'The connection is closed');
    return open;
  };
  let emitting = false;
  return {
    // Storage: every app has its own, within its quota (the storage service scopes and bounds it).
    'storage.get': async (key) => {
      const value = await host.storage.get(key);
      return value instanceof Uint8Array ? ownBytes(value) : value;
    },
    'storage.put': (key, value) => host.storage.put(key, value),
    'storage.delete': (key) => host.storage.delete(key),
    'storage.list': (prefix) => host.storage.list(prefix),
    'storage.usage': () => host.storage.usage(),

    /**
     * Structure only: each run on a declared source endpoint of its format, lengths that add up
     * to the text exactly (so no message can hide another), at most MAX_EMIT_BATCH messages, one
     * batch in flight. Content (size, UTF-8, schema) is the router's to check; the whole batch is
     * refused when its structure is wrong, since the SDK never sends such a batch.
     */
    'emit.batch': async (runs) => {
      const checked: CheckedRun[] = [];
      let total = 0;
      for (const [index, run] of runs.entries()) {
        const endpoint = checkEmit(grants, run[0]);
        const isText = typeof run[1] === 'string';
        if (isText !== (endpoint.format !== 'binary')) {
          throw fail('E_BAD_REQUEST', `emit.batch: run ${index} carries ${isText ? 'text' : 'bytes'} to the ${endpoint.format} endpoint "${endpoint.name}"`);
        }
        if (run.length === 3) {
          const [, text, lengths] = run;
          let sum = 0;
          for (const length of lengths) sum += length;
          if (sum !== text.length) throw fail('E_BAD_REQUEST', `emit.batch: the lengths of run ${index} add up to ${sum}; its text has ${text.length}`);
          total += lengths.length;
          checked.push({ endpoint, text, lengths });
        } else {
          total += run[1].length;
          checked.push({ endpoint, messages: run[1] });
        }
      }
      if (total > MAX_EMIT_BATCH) throw fail('E_BAD_REQUEST', `At most ${MAX_EMIT_BATCH} messages cross in one emit batch; this one has ${total}`);
      // The SDK sends the next batch only once this one is answered: a second one is forged.
      if (emitting) throw fail(...refusals.emitInFlight());
      emitting = true;
      try {
        return await host.emitBatch(checked);
      } finally {
        emitting = false;
      }
    },

    'egress.fetch': async (target, request) => {
      const declared = checkEgress(grants, target, 'https');
      const response = await host.egress.fetch(declared.name, request);
      return { status: response.status, headers: { ...response.headers }, body: ownBytes(response.body) };
    },
    'egress.publish': async (target, topic, payload, options) => {
      const declared = checkEgress(grants, target, 'mqtts');
      await host.egress.publish(declared.name, topic, payload, options);
    },
    'egress.connect': async (target, id) => {
      const declared = checkEgress(grants, target, 'tls');
      if (side.connections.has(id)) throw fail('E_BAD_REQUEST', `egress.connect: connection ${id} is open already`);
      const stream = await host.egress.connect(declared.name, {
        data: (chunk) => side.connectionEvent(id, 'data', ownBytes(chunk)),
        close: (error) => {
          side.connections.delete(id);
          void side.connectionEvent(id, 'close', error);
        },
      });
      if (side.disposed) stream.destroy();
      else side.connections.set(id, stream);
    },
    // A stream's number is the capability: only a connect to a declared target made one.
    'egress.write': (id, chunk) => connection(id).write(typeof chunk === 'string' ? Buffer.from(chunk) : chunk),
    'egress.end': (id) => connection(id).end(),

    // Every app may log, set timers and say it is ready; the sandbox bounds each.
    log: async (level, text) => side.log(level, text.slice(0, PLATFORM_LIMITS.maxLogLineBytes)),
    'timer.set': async (id, ms, repeat) => side.timer('set', id, ms, repeat),
    'timer.clear': async (id) => side.timer('clear', id),
    ready: async () => side.ready(),

    // Reserved: only an app installed from the image holds it (grantsFor refuses it otherwise),
    // and the platform gives the traffic gate only to such an app.
    'traffic.inspect': async () => {
      if (!grants.capabilities.has('traffic.inspect') || !host.traffic) throw fail(...refusals.noTrafficInspect());
      host.traffic.register({ packageId: grants.packageId, canBlock: grants.capabilities.has('traffic.block'), inspect: (items) => side.inspect(items) });
    },
  };
}
