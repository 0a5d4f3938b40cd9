/**
 * The local harness behind `isogate-sdk test` and `isogate-sdk run`: the app, built as `build`
 * builds it, runs in a real V8 isolate through the gateway's own sandbox (the same limits from the
 * manifest: memory, CPU per event, timers, message sizes and schemas), and everything the
 * gateway would give it comes from the developer instead: messages fed to its destination
 * endpoints, its emits recorded, storage in memory (within the manifest's quota), configuration
 * from the manifest's defaults under what the test sets (checked against the schema), and egress
 * calls answered by fixtures. Nothing leaves the machine.
 */
import path from 'node:path';
import { admit } from '../../platform/router/admission.js';
import type { AppHost } from '../../platform/sandbox/bridge.js';
import { type AppSandbox, createAppSandbox, type PreparedIsolate, type SandboxFailure } from '../../platform/sandbox/index.js';
import type { CheckedRun, EmitRefusal } from '../../platform/sandbox/protocol.js';
import { buildProject } from '../build/project.js';
import { fail } from '../errors.js';
import type { AppManifest } from '../manifest.js';
import { assertValid, compileUntrustedSchema } from '../schema.js';

export type LogLevel = 'critical' | 'error' | 'warning' | 'info' | 'debug' | 'trace';
const LEVEL_NAMES: readonly LogLevel[] = ['critical', 'error', 'warning', 'info', 'debug', 'trace'];

export interface HarnessEgressRequest {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
}
export interface HarnessEgressResponse {
  status?: number;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
}

/** What an egress target answers: a fixed response, or a function of the request. */
export type EgressFixture = HarnessEgressResponse | ((request: HarnessEgressRequest) => HarnessEgressResponse | Promise<HarnessEgressResponse>);

export interface EgressCall {
  target: string;
  kind: 'fetch' | 'publish' | 'connect';
  request?: HarnessEgressRequest;
  topic?: string;
  payload?: string | Uint8Array;
}

export interface HarnessOptions {
  /** The app project (its manifest.json and src/); default the current directory. */
  project?: string;
  /** Configuration keys over the manifest's defaults, validated against its schema. */
  config?: Record<string, unknown>;
  /** Storage the app finds at start, key -> value; a Map is used as it is (the app's writes land in it, as `run` keeps them across restarts). */
  storage?: Record<string, string | Uint8Array> | Map<string, string | Uint8Array>;
  /** Egress targets (manifest names) and their answers; a call to a target without one is E_EGRESS_UNREACHABLE. */
  egress?: Record<string, EgressFixture>;
  /** Every log line as it is written (default: kept in `logs` only). */
  onLog?: (level: LogLevel, message: string) => void;
  /** Every emit accepted, as it is emitted. */
  onEmit?: (endpoint: string, message: unknown) => void;
  /** Runs the isolate with its inspector (for a debugger attached to `run`). */
  inspector?: boolean;
  /** An isolate made ahead for this app (`run` makes one while it waits for a save's events to end). */
  prepared?: PreparedIsolate;
  /** A build already made (`run` rebuilds itself); default: built from `project`. */
  built?: { manifest: AppManifest; files: ReadonlyMap<string, Uint8Array> };
}

export interface HarnessApp {
  readonly manifest: AppManifest;
  /** Hands `message` to the destination endpoint's handlers; rejects with the handler's failure or E_MESSAGE for an invalid message. */
  send(endpoint: string, message: unknown): Promise<void>;
  /** Messages the app emitted on a source endpoint (all of them without one), oldest first. */
  emitted(endpoint?: string): unknown[];
  /** Emits refused (schema, size), with their code. */
  readonly refusedEmits: { endpoint: string; code: string; message: string }[];
  /** Resolves with the next emit on `endpoint` (or one already made since the last `clear`), within `timeoutMs`. */
  nextEmit(endpoint: string, timeoutMs?: number): Promise<unknown>;
  /** Every egress call the app made, in order. */
  readonly egressCalls: EgressCall[];
  readonly logs: { level: LogLevel; message: string }[];
  /** The app's storage as it is now. */
  readonly storage: Map<string, string | Uint8Array>;
  /** Sets configuration keys (over the defaults, validated) and tells the app, as an admin's change would. */
  setConfig(config: Record<string, unknown>): Promise<void>;
  /** Forgets recorded emits, egress calls and log lines. */
  clear(): void;
  /** Why the sandbox ended the app (E_CPU_LIMIT, E_MEMORY_LIMIT, E_APP_FAILED), if it did. */
  readonly failure: SandboxFailure | undefined;
  /** The sandbox itself (run's inspector). */
  readonly sandbox: AppSandbox;
  /** Runs the app's onStop handlers and disposes of its isolate. */
  stop(): Promise<void>;
}

function decodeRun(segment: ReturnType<typeof admit>['segment'], format: string): unknown[] {
  if ('messages' in segment) return segment.messages.map((bytes) => new Uint8Array(bytes));
  const out: unknown[] = [];
  let offset = 0;
  for (const length of segment.lengths) {
    const text = segment.text.slice(offset, offset + length);
    offset += length;
    out.push(format === 'json' ? JSON.parse(text) : text);
  }
  return out;
}

function utf8(body: string | Uint8Array | undefined): Uint8Array {
  if (body === undefined) return new Uint8Array();
  return typeof body === 'string' ? new TextEncoder().encode(body) : body;
}

function bytesOf(value: string | Uint8Array): number {
  return typeof value === 'string' ? Buffer.byteLength(value) : value.byteLength;
}

/** The configuration the app would see: the defaults under `given`, checked against the schema like an admin's. */
function configurationOf(manifest: AppManifest, given: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  const declared = manifest.configuration;
  if (!declared) {
    if (given && Object.keys(given).length) throw fail('E_CONFIG', `${manifest.package_id} declares no configuration; the harness was given some`);
    return undefined;
  }
  const merged = { ...structuredClone(declared.defaults ?? {}), ...structuredClone(given ?? {}) };
  assertValid(compileUntrustedSchema(declared.schema, '/configuration/schema'), merged, 'E_CONFIG', 'The configuration');
  return merged;
}

/** Starts the app of `options.project` in an isolate with a local host; resolves once its start-up finished. */
export async function startApp(options: HarnessOptions = {}): Promise<HarnessApp> {
  const project = path.resolve(options.project ?? '.');
  const built = options.built ?? (await buildProject(project));
  const { manifest } = built;
  const endpoints = new Map((manifest.endpoints ?? []).map((endpoint) => [endpoint.name, endpoint]));
  const targets = new Map((manifest.egress ?? []).map((target) => [target.name, target]));
  for (const name of Object.keys(options.egress ?? {})) {
    if (!targets.has(name)) throw fail('E_USAGE', `The egress fixture "${name}" names no egress target of ${manifest.package_id}'s manifest`);
  }
  let configuration = configurationOf(manifest, options.config);
  const storage = options.storage instanceof Map ? options.storage : new Map<string, string | Uint8Array>(Object.entries(options.storage ?? {}));
  const quota = manifest.resources.storageMb * 1024 * 1024;
  const used = (): number => [...storage].reduce((sum, [key, value]) => sum + Buffer.byteLength(key) + bytesOf(value), 0);
  const emits: { endpoint: string; message: unknown }[] = [];
  const waiting: { endpoint: string; resolve: (message: unknown) => void }[] = [];
  const refusedEmits: { endpoint: string; code: string; message: string }[] = [];
  const egressCalls: EgressCall[] = [];
  const logs: { level: LogLevel; message: string }[] = [];
  let failure: SandboxFailure | undefined;

  const answer = async (target: string, request: HarnessEgressRequest): Promise<HarnessEgressResponse> => {
    const fixture = options.egress?.[target];
    if (!fixture) throw fail('E_EGRESS_UNREACHABLE', `${target} is unreachable (the harness has no fixture for it)`);
    return typeof fixture === 'function' ? fixture(request) : fixture;
  };

  const host: AppHost = {
    packageId: manifest.package_id,
    log(level, message) {
      const name = LEVEL_NAMES[level] ?? 'info';
      logs.push({ level: name, message });
      options.onLog?.(name, message);
    },
    storage: {
      get: async (key) => storage.get(key),
      async put(key, value) {
        const previous = storage.get(key);
        const after = used() - (previous === undefined ? 0 : Buffer.byteLength(key) + bytesOf(previous)) + Buffer.byteLength(key) + bytesOf(value);
        if (after > quota) throw fail('E_STORAGE_QUOTA', `The storage quota of ${manifest.resources.storageMb} MB would be exceeded`);
        storage.set(key, typeof value === 'string' ? value : new Uint8Array(value));
      },
      delete: async (key) => storage.delete(key),
      list: async (prefix) => [...storage.keys()].filter((key) => key.startsWith(prefix)).sort(),
      usage: async () => ({ used: used(), quota }),
    },
    config: () => (configuration === undefined ? undefined : structuredClone(configuration)),
    async emitBatch(runs: CheckedRun[]): Promise<EmitRefusal[]> {
      const refusals: EmitRefusal[] = [];
      let first = 0;
      for (const run of runs) {
        const admitted = admit(run, first);
        for (const [, code, message] of admitted.refusals) refusedEmits.push({ endpoint: run.endpoint.name, code, message });
        refusals.push(...admitted.refusals);
        for (const message of decodeRun(admitted.segment, run.endpoint.format)) {
          emits.push({ endpoint: run.endpoint.name, message });
          options.onEmit?.(run.endpoint.name, message);
          const at = waiting.findIndex((wait) => wait.endpoint === run.endpoint.name);
          if (at >= 0) waiting.splice(at, 1)[0]!.resolve(message);
        }
        first += 'messages' in run ? run.messages.length : run.lengths.length;
      }
      return refusals;
    },
    egress: {
      async fetch(target, request) {
        egressCalls.push({ target, kind: 'fetch', request: structuredClone(request) });
        const response = await answer(target, request);
        return { status: response.status ?? 200, headers: response.headers ?? {}, body: utf8(response.body) };
      },
      async publish(target, topic, payload) {
        egressCalls.push({ target, kind: 'publish', topic, payload });
        await answer(target, { path: topic, body: payload });
      },
      async connect(target, events) {
        egressCalls.push({ target, kind: 'connect' });
        const response = await answer(target, {});
        // A TLS stream served by a fixture: its body arrives as one chunk, then the stream ends.
        queueMicrotask(async () => {
          if (response.body !== undefined) await events.data(utf8(response.body));
          events.close();
        });
        return { write: async () => undefined, end: async () => undefined, destroy: () => undefined };
      },
    },
  };

  const sandbox = await createAppSandbox({
    manifest,
    files: built.files,
    host,
    origin: 'debug',
    inspector: options.inspector === true,
    ...(options.prepared ? { prepared: options.prepared } : {}),
    onFailure: (ended: SandboxFailure) => {
      failure = ended;
      host.log(0, `${ended.code}: ${ended.message}`);
    },
  });
  await sandbox.start();

  return {
    manifest,
    refusedEmits,
    egressCalls,
    logs,
    storage,
    sandbox,
    get failure() {
      return failure;
    },
    async send(endpoint, message) {
      const declared = endpoints.get(endpoint);
      if (declared?.direction !== 'destination') throw fail('E_CAPABILITY', `"${endpoint}" is not a destination endpoint of ${manifest.package_id}`);
      if (failure) throw fail(failure.code, `The app has ended: ${failure.message}`);
      let batch: { texts: string[]; lengths: number[] } | { messages: Uint8Array[] };
      if (declared.format === 'binary') batch = { messages: [utf8(message as string | Uint8Array)] };
      else {
        const text = declared.format === 'json' ? JSON.stringify(message) : String(message);
        if (declared.format === 'json' && declared.schema) {
          assertValid(compileUntrustedSchema(declared.schema, `/endpoints/${endpoint}/schema`), message, 'E_MESSAGE', `A message to "${endpoint}"`);
        }
        batch = { texts: [text], lengths: [text.length] };
      }
      const result = await sandbox.deliver(endpoint, batch);
      const ended = failure as SandboxFailure | undefined;
      if (ended) throw fail(ended.code, `The app has ended: ${ended.message}`);
      if (result.invalid.length) throw fail('E_MESSAGE', `The app refused the message to "${endpoint}" as invalid`);
      if (result.failed.length) {
        const last = [...logs].reverse().find((line) => line.level === 'error' || line.level === 'critical');
        throw fail('E_APP_FAILED', `The handler of "${endpoint}" failed${last ? `: ${last.message}` : ''}`);
      }
    },
    emitted: (endpoint) => emits.filter((emit) => endpoint === undefined || emit.endpoint === endpoint).map((emit) => emit.message),
    nextEmit(endpoint, timeoutMs = 5000) {
      const made = emits.find((emit) => emit.endpoint === endpoint);
      if (made) return Promise.resolve(made.message);
      return new Promise((resolve, reject) => {
        const entry = {
          endpoint,
          resolve: (message: unknown) => {
            clearTimeout(timer);
            resolve(message);
          },
        };
        const timer = setTimeout(() => {
          waiting.splice(waiting.indexOf(entry), 1);
          reject(fail('E_HARNESS_TIMEOUT', `No emit on "${endpoint}" within ${timeoutMs} ms`));
        }, timeoutMs);
        waiting.push(entry);
      });
    },
    async setConfig(config) {
      configuration = configurationOf(manifest, config);
      await sandbox.configChanged(configuration);
    },
    clear() {
      emits.length = 0;
      refusedEmits.length = 0;
      egressCalls.length = 0;
      logs.length = 0;
    },
    async stop() {
      if (!sandbox.disposed) await sandbox.stop();
      sandbox.dispose();
    },
  };
}
