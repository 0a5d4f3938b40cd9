/**
 * One app in one V8 isolate (isolated-vm). The app sees the `isogate:sdk` module, timers and
 * console, nothing else: no Node API, no host object, no module but its own files and the SDK.
 *
 * Limits are enforced twice. isolated-vm enforces the heap limit and a timeout per call into the
 * isolate; but code that runs after awaiting a host call runs outside any call's timeout, so a
 * watchdog also samples the isolate's CPU time and ends an app that stays busy longer than its
 * per-event budget. A failed app is disposed at once and reported once.
 */
import path from 'node:path';
import v8 from 'node:v8';
import ivm from 'isolated-vm';
import { fail, toIsogateError } from '../../sdk/errors.js';
import { DOCUMENT_LIMITS } from '../../sdk/limits.js';
import type { AppManifest } from '../../sdk/manifest.js';
import type { AppOrigin } from '../integrity/index.js';
import type { AppGuest, AppHost, EgressStream } from './bridge.js';
import { type AppGrants, checkHandler, grantsFor, hostFor, memoryLimitOf, PLATFORM_LIMITS } from './capabilities.js';
import { compileGuest, READY_MODULE, READY_MODULE_SOURCE, readinessModuleSource, SDK_MODULE_SOURCE } from './guest-bundle.js';
import { hotLoop } from './hot-loop.js';
import {
  type CallAnswer,
  type ConnectionEventKind,
  type DeliverBatch,
  type DeliveredReport,
  type DeliverResult,
  decodePackedVerdicts,
  dispatch,
  type GuestGrants,
  type GuestOperations,
  HOST_OPERATIONS,
  type HostHandlers,
  type InspectItem,
  isHostOperation,
  packInspection,
  resolvePayloads,
  type TrafficAlert,
  type TrafficVerdict,
} from './protocol.js';

export type { AppGrants } from './capabilities.js';
export { grantsFor, PLATFORM_LIMITS } from './capabilities.js';

export type SandboxFailureCode = 'E_MEMORY_LIMIT' | 'E_CPU_LIMIT' | 'E_APP_FAILED';

export interface SandboxFailure {
  code: SandboxFailureCode;
  message: string;
}

export interface SandboxLimits {
  startDeadlineMs: number;
  maxTimers: number;
  minIntervalMs: number;
  /** How often the watchdog samples CPU time. */
  watchdogIntervalMs: number;
  /** Wall time a destination may take over one batch, awaiting included, before it counts as failed. */
  deliverDeadlineMs: number;
}

export interface SandboxOptions {
  manifest: AppManifest;
  /** Package path -> contents, as verified against the install record. */
  files: ReadonlyMap<string, string | Uint8Array>;
  host: AppHost;
  /** Where the app was installed from (its install record); reserved capabilities need `image`. Default `store`. */
  origin?: AppOrigin;
  limits?: Partial<SandboxLimits>;
  onFailure?: (failure: SandboxFailure) => void;
  /**
   * The isolate's V8 inspector on (developer mode, pushed apps only: the caller decides). Such
   * an isolate runs without isolated-vm's per-call timeouts and start and delivery deadlines,
   * which count wall time and would end it at a breakpoint; the watchdog skips it while paused.
   */
  inspector?: boolean;
  /** An isolate made ahead (PreparedIsolate); used when its memory limit and inspector are this app's, disposed otherwise. */
  prepared?: PreparedIsolate;
}

/**
 * An isolate and its context made before the app that will run in them is known, while the
 * caller waits for something else (`run`: the debounce of a save, before esbuild rebuilds), so
 * that a start only compiles and runs the app. Nothing runs in it before the app's sandbox
 * takes it: it is the isolate that sandbox would have made, made earlier. One sandbox at most
 * takes it; whoever made it disposes of it if none did.
 */
export class PreparedIsolate {
  readonly memoryMb: number;
  readonly inspector: boolean;
  #isolate: ivm.Isolate | undefined;
  #context: Promise<ivm.Context> | undefined;

  /** For apps of `manifest` (its memory limit, clamped as the sandbox clamps it). */
  constructor(manifest: AppManifest, options: { inspector?: boolean } = {}) {
    this.memoryMb = memoryLimitOf(manifest);
    this.inspector = options.inspector === true;
    this.#isolate = newIsolate(this.memoryMb, this.inspector);
    this.#context = this.#isolate.createContext({ inspector: this.inspector });
    // Disposed before it was taken, its context fails; nobody waits for it then.
    this.#context.catch(() => undefined);
  }

  /** Whether a sandbox may still take it. */
  get available(): boolean {
    return this.#isolate !== undefined && !this.#isolate.isDisposed;
  }

  /** The isolate and its context, once, for a sandbox with this memory limit and inspector setting; else undefined (and disposed). */
  take(memoryMb: number, inspector: boolean): { isolate: ivm.Isolate; context: Promise<ivm.Context> } | undefined {
    const isolate = this.#isolate;
    const context = this.#context;
    this.#isolate = undefined;
    this.#context = undefined;
    if (!isolate || !context || isolate.isDisposed) return undefined;
    if (memoryMb !== this.memoryMb || inspector !== this.inspector) {
      isolate.dispose();
      return undefined;
    }
    return { isolate, context };
  }

  dispose(): void {
    if (this.#isolate && !this.#isolate.isDisposed) this.#isolate.dispose();
    this.#isolate = undefined;
    this.#context = undefined;
  }
}

/**
 * An app file without the source map inlined at its end (esbuild's last line, a comment),
 * for an isolate without an inspector: nothing else reads it, and V8 compiled the 100 KB app of
 * the devloop bench with its 260 KB map comment in 17 ms, without it in 12. A last line that
 * only looks like one (inside a string begun above) is cut all the same, and the app then
 * fails to compile: a suffix cut off cannot give the rest another meaning.
 */
function withoutInlineSourceMap(source: string): string {
  const lastLine = source.lastIndexOf('\n', source.length - 2) + 1;
  return source.startsWith('//# sourceMappingURL=data:', lastLine) ? source.slice(0, lastLine) : source;
}

/** One DevTools session into an inspected isolate (see `AppSandbox.openInspectorSession`). */
export interface InspectorSessionHandle {
  dispatch(message: string): void;
  close(): void;
}

export interface SandboxStats {
  heapUsedBytes: number;
  /** What V8 has committed for the isolate's heap: used plus free pages it keeps. */
  heapTotalBytes: number;
  /** Memory outside the heap that the isolate's objects hold (array buffers, copies). */
  heapExternalBytes: number;
  heapLimitBytes: number;
  cpuTimeMs: number;
  wallTimeMs: number;
  timers: number;
}

export interface AppSandbox extends AppGuest {
  /**
   * Makes the isolate ready (the guest SDK bootstrapped, the app's modules compiled and
   * linked), then runs the app once `before` (if given) has resolved; if it rejects, the
   * sandbox is disposed and the start fails with none of the app's code run.
   */
  start(before?: Promise<unknown>): Promise<void>;
  stop(deadlineMs?: number): Promise<void>;
  dispose(): void;
  readonly disposed: boolean;
  stats(): SandboxStats;
  /**
   * A session into the isolate's inspector (E_STATE unless it was created with `inspector`;
   * E_CONFLICT while one is open). Every message is queued to the isolate's own thread: the
   * gateway's thread never waits on a paused isolate. Closing it resumes a paused isolate.
   */
  openInspectorSession(onMessage: (message: string) => void, onEnd: () => void): InspectorSessionHandle;
}

/** A reference into the guest for each of the protocol's host -> guest operations. */
type GuestReferences = { [Op in keyof GuestOperations]: ivm.Reference<GuestOperations[Op]> };
type HostAnswer = CallAnswer;
type LiftedBytes = NonNullable<Parameters<GuestOperations['answer']>[2]>[number];
const SDK_MODULE = 'isogate:sdk';
/** Ids of the messages a closing inspector session sends, beyond any a DevTools client counts to. */
const CLOSING_RESUME_ID = 2_000_000_001;
const CLOSING_DISABLE_ID = 2_000_000_002;
/** Platform calls one app may have in flight; past this it hears E_CALL_LIMIT instead of queueing more. */
const MAX_PENDING_CALLS = 4096;
/**
 * How long the host keeps polling for an app's next calls after answering it. An app in a
 * call-and-answer loop replies within a few hundred microseconds; one that does not is not
 * waited for again until it does.
 */
const REPLY_WINDOW_MS = 0.5;
/**
 * Calls whose answer starts no such poll. An emit's receipt is flow control, not a conversation:
 * a source sends its next batch when it has one, and one emitting a message at a time replies
 * only with its next message. Measured in the route latency bench, the poll after each emit's
 * answer kept the gateway's thread spinning about 100 us per message (its CPU per message 1.3x
 * the wall time) for no gain in latency.
 */
const UNCONVERSED_OPERATIONS: ReadonlySet<unknown> = new Set(['emit.batch']);

/**
 * How an answer crosses: as JSON text; as a structured copy, when it is bytes or holds a large
 * text (a stored value), which JSON would escape character by character; or, an object whose
 * only bytes are fields of its own (a fetch response's body), as JSON text with those fields
 * lifted out and copied beside it. A structured copy of an object with a record of headers costs
 * several times its JSON text (measured: ~29 us against ~7 us a crossing, ~18 us with the body
 * beside the text), and a fetch answers with one per request.
 */
function crossing(answer: HostAnswer): 'text' | 'copy' | 'lift' {
  if (!('value' in answer)) return 'text';
  const { value } = answer;
  if (value instanceof Uint8Array || (typeof value === 'string' && value.length > 1024)) return 'copy';
  if (typeof value !== 'object' || value === null) return 'text';
  let bytes = false;
  for (const field of Object.values(value)) {
    if (typeof field === 'string' && field.length > 1024) return 'copy';
    if (field instanceof Uint8Array) bytes = true;
  }
  return bytes ? 'lift' : 'text';
}

/** What of an error crosses into the app: its code and sentence, never a host object. */
function codeAndMessage(error: unknown): { code: string; message: string } {
  const coded = toIsogateError(error);
  return { code: coded.code, message: coded.message };
}

class IsolateSandbox implements AppSandbox {
  readonly #grants: AppGrants;
  /** The app's whole host: the protocol's handlers, each with its capability check (capabilities.ts). */
  readonly #handlers: HostHandlers;
  readonly #limits: SandboxLimits;
  readonly #isolate: ivm.Isolate;
  /** The context of a PreparedIsolate taken, made with it. */
  #preparedContext: Promise<ivm.Context> | undefined;
  readonly #timers = new Map<number, { handle: NodeJS.Timeout; repeat: boolean; firing: boolean }>();
  readonly #references: ivm.Reference[] = [];
  #pendingCalls = 0;
  /** The app's open TLS streams, by the number its SDK gave them. */
  readonly #connections = new Map<number, EgressStream>();
  #answers: [number, HostAnswer][] = [];
  /** Whether the answers waiting to cross include one to a call-and-answer operation (see UNCONVERSED_OPERATIONS). */
  #answersConverse = false;
  #answersScheduled = false;
  /** When the last answers crossed, until the app's next calls arrive. */
  #answeredAt: number | undefined;
  /** Whether the app replied to its last answers within the reply window. */
  #conversing = true;
  #guest: GuestReferences | undefined;
  /** Counts slices of app work (events and resumptions after host calls) for the watchdog. */
  #slices = 0;
  #failure: SandboxFailure | undefined;
  /**
   * Batches handed to the guest and not yet reported on (GuestOperations.deliver), by id, in the
   * order they were handed over, with when: the watchdog fails a batch past its deadline.
   */
  readonly #deliveries = new Map<number, { resolve: (result: unknown) => void; reject: (error: unknown) => void; since: number }>();
  #lastDelivery = 0;
  #watchdog: NodeJS.Timeout | undefined;
  #disposed = false;
  #onReady: (() => void) | undefined;
  #onFailed: ((failure: SandboxFailure) => void) | undefined;
  readonly #inspected: boolean;
  /** The alerts the isolate's inspector has sent, by number (protocol.ts PackedVerdicts): its guest SDK keeps the same numbering. */
  readonly #alerts: TrafficAlert[] = [];
  #session: { inspector: ivm.InspectorSession; onEnd: () => void } | undefined;
  /** Ended sessions, kept referenced until the isolate is disposed (see #closeSession). */
  readonly #retiredSessions = new Set<{ inspector: ivm.InspectorSession; disposed: boolean }>();
  /** Stopped at a breakpoint (or a pause) by the session: paused, not hung. */
  #paused = false;

  constructor(private readonly options: SandboxOptions) {
    this.#grants = grantsFor(options.manifest, options.origin ?? 'store');
    this.#limits = {
      startDeadlineMs: PLATFORM_LIMITS.startDeadlineMs,
      maxTimers: PLATFORM_LIMITS.maxTimers,
      minIntervalMs: PLATFORM_LIMITS.minIntervalMs,
      watchdogIntervalMs: 50,
      deliverDeadlineMs: PLATFORM_LIMITS.deliverDeadlineMs,
      ...options.limits,
    };
    this.#inspected = options.inspector === true;
    const prepared = options.prepared?.take(this.#grants.limits.memoryMb, this.#inspected);
    this.#isolate = prepared?.isolate ?? newIsolate(this.#grants.limits.memoryMb, this.#inspected);
    this.#preparedContext = prepared?.context;
    const sandbox = this;
    this.#handlers = hostFor(this.#grants, options.host, {
      log: (level, text) => options.host.log(level, text),
      timer: (action, id, ms, repeat) => this.#timer(action, id, ms, repeat),
      ready: () => this.#onReady?.(),
      get disposed() {
        return sandbox.#disposed;
      },
      connections: this.#connections,
      connectionEvent: (id, kind, payload) => this.#connectionEvent(id, kind, payload),
      inspect: (items) => this.#inspect(items),
    });
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  get #cpuMs(): number {
    return this.#grants.limits.cpuMsPerEvent;
  }

  /** isolated-vm's per-call timeout counts wall time: none for an inspected isolate, which may sit at a breakpoint. */
  #timeout(ms: number): { timeout?: number } {
    return this.#inspected ? {} : { timeout: ms };
  }

  #reference<T>(value: T): ivm.Reference<T> {
    const reference = new ivm.Reference(value);
    this.#references.push(reference);
    return reference;
  }

  async start(before?: Promise<unknown>): Promise<void> {
    const { manifest, files, host } = this.options;
    const context = await (this.#preparedContext ?? this.#isolate.createContext({ inspector: this.#inspected }));
    this.#preparedContext = undefined;
    const guestGrants: GuestGrants = {
      packageId: manifest.package_id,
      version: manifest.version,
      name: manifest.name,
      sources: [...this.#grants.sourceEndpoints].map(([name, e]) => [name, { format: e.format }]),
      destinations: [...this.#grants.destinationEndpoints].map(([name, e]) => [name, { format: e.format }]),
      maxTimers: this.#limits.maxTimers,
      minIntervalMs: this.#limits.minIntervalMs,
      maxLogLineChars: PLATFORM_LIMITS.maxLogLineBytes,
      maxDepth: DOCUMENT_LIMITS.maxDepth,
      config: JSON.stringify(host.config() ?? {}),
      capabilities: [...this.#grants.capabilities],
    };
    const names = new Map<ivm.Module, string>();
    const compiled = new Map<string, Promise<ivm.Module>>();
    const compile = (name: string, source: string): Promise<ivm.Module> => {
      let module = compiled.get(name);
      if (!module) {
        module = this.#isolate.compileModule(source, { filename: name }).then((made) => {
          names.set(made, name);
          return made;
        });
        // Failures are met where the module is linked, below; one compiled ahead may fail first.
        module.catch(() => undefined);
        compiled.set(name, module);
      }
      return module;
    };
    const appSource = (target: string): string | undefined => {
      const content = target.startsWith('app/') ? files.get(target) : undefined;
      if (content === undefined) return undefined;
      const text = typeof content === 'string' ? content : Buffer.from(content).toString('utf8');
      return this.#inspected ? text : withoutInlineSourceMap(text);
    };
    // Compiled now, while the isolate's thread runs the bootstrap below: each compile is a task
    // there and a wait here, which linking would otherwise make one after another. Compiling
    // runs none of the app's code (evaluation waits for the link and the Starting write).
    this.#startWatchdog();
    const entrySource = appSource(manifest.entry);
    if (entrySource !== undefined) compile(manifest.entry, entrySource);
    compile(SDK_MODULE, SDK_MODULE_SOURCE);
    compile(READY_MODULE, READY_MODULE_SOURCE);
    const mainModule = compile('isogate:main', readinessModuleSource(manifest.entry));
    const ready = new Promise<void>((resolve, reject) => {
      this.#onReady = resolve;
      this.#onFailed = (failure) => reject(fail(failure.code, failure.message));
    });
    const script = await compileGuest(this.#isolate);
    const bootstrap = (await script.run(context, { reference: true })) as ivm.Reference;
    script.release();
    const guest = (await bootstrap.apply(
      undefined,
      [
        this.#reference((text: unknown, copied: unknown, ...payloads: unknown[]) => this.#receive(text, copied, payloads)),
        this.#reference((op: unknown, ...args: unknown[]) => this.#notify(op, args)),
        JSON.stringify(guestGrants),
        this.#reference(((id, invalid, failed, error) => this.#delivered(id, invalid, failed, error)) satisfies DeliveredReport),
      ],
      { result: { reference: true } },
    )) as ivm.Reference;
    bootstrap.release();
    // Asked for together: each is a task on the isolate's thread, and one after another each
    // would wait for the answer to the one before.
    const [answer, connectionEvent, deliver, fire, configChanged, stop, inspect] = await Promise.all(
      (['answer', 'connectionEvent', 'deliver', 'fire', 'configChanged', 'stop', 'inspect'] as const).map((name) => guest.get(name, { reference: true })),
    );
    this.#guest = { answer, connectionEvent, deliver, fire, configChanged, stop, inspect } as GuestReferences;

    const resolve = async (specifier: string, referrer: ivm.Module): Promise<ivm.Module> => {
      const from = names.get(referrer) ?? '';
      if (specifier === SDK_MODULE) return compile(SDK_MODULE, SDK_MODULE_SOURCE);
      if (specifier === READY_MODULE && from === 'isogate:main') return compile(READY_MODULE, READY_MODULE_SOURCE);
      const target =
        specifier.startsWith('./') || specifier.startsWith('../')
          ? path.posix.normalize(path.posix.join(path.posix.dirname(from), specifier))
          : from === 'isogate:main'
            ? specifier
            : undefined;
      // Compiled ahead, the entry needs no source again (a key of `compiled` is never looked up twice).
      const source = target?.startsWith('app/') ? (compiled.has(target) ? '' : appSource(target)) : undefined;
      if (target === undefined || source === undefined) {
        throw new Error(`import of "${specifier}" from ${from} is not allowed: an app imports only ${SDK_MODULE} and its own files`);
      }
      return compile(target, source);
    };

    try {
      const main = await mainModule;
      await main.instantiate(context, resolve);
      // Linked, none of it evaluated: the app's code runs from here on.
      await before;
      await main.evaluate(this.#timeout(this.#cpuMs));
      let deadline: NodeJS.Timeout | undefined;
      await Promise.race([
        ready,
        new Promise<never>((_, reject) => {
          if (this.#inspected) return;
          deadline = setTimeout(
            () => reject(fail('E_LAUNCH', `${manifest.package_id} did not finish its start-up within ${this.#limits.startDeadlineMs} ms`)),
            this.#limits.startDeadlineMs,
          );
        }),
      ]).finally(() => clearTimeout(deadline));
    } catch (error) {
      const failure = this.#failure ?? this.#classify(error);
      this.dispose();
      throw fail(failure.code === 'E_APP_FAILED' ? 'E_LAUNCH' : failure.code, `${manifest.package_id} failed to start: ${failure.message}`);
    }
  }

  /**
   * A notification from the app (a log line, a timer, readiness): decoded and handled like a
   * call, but nothing is answered, so a malformed one is dropped.
   */
  #notify(op: unknown, args: unknown): void {
    if (this.#disposed) return;
    if (!isHostOperation(op) || HOST_OPERATIONS[op].kind !== 'notify') return;
    dispatch(this.#handlers, op, args).catch(() => undefined);
  }

  /**
   * A batch of calls from the app, each [id, op, args]: small ones as one JSON text, those with
   * bytes or large texts as a structured copy. They start in the order the app made them.
   */
  #receive(text: unknown, copied: unknown, payloads: unknown[]): void {
    if (this.#disposed) return;
    hotLoop.release(this);
    if (this.#answeredAt !== undefined) {
      this.#conversing = performance.now() - this.#answeredAt <= REPLY_WINDOW_MS;
      this.#answeredAt = undefined;
    }
    let calls: unknown[];
    try {
      const plain: unknown = typeof text === 'string' ? JSON.parse(text) : [];
      calls = [...(Array.isArray(plain) ? plain : []), ...(Array.isArray(copied) ? copied : [])];
    } catch {
      return; // Not the SDK talking: there is no id to answer.
    }
    const ids = calls.map((entry) => (Array.isArray(entry) && Number.isSafeInteger(entry[0]) ? (entry[0] as number) : undefined));
    const order = calls
      .map((_, index) => index)
      .filter((index) => ids[index] !== undefined)
      .sort((a, b) => ids[a]! - ids[b]!);
    for (const index of order) {
      const [id, op, sent] = calls[index] as [number, unknown, unknown];
      const args = op === 'emit.batch' && Array.isArray(sent) ? [resolvePayloads(sent[0], payloads), ...sent.slice(1)] : sent;
      if (this.#pendingCalls >= MAX_PENDING_CALLS) {
        this.#answer(id, { error: { code: 'E_CALL_LIMIT', message: `At most ${MAX_PENDING_CALLS} platform calls may be in flight at once` } });
        continue;
      }
      this.#pendingCalls += 1;
      void this.#hostCall(op, args).then((answer) => {
        this.#pendingCalls -= 1;
        if (!UNCONVERSED_OPERATIONS.has(op)) this.#answersConverse = true;
        this.#answer(id, answer);
      });
    }
  }

  /** Every call from the app lands here; each operation starts with its capability check. */
  async #hostCall(op: unknown, args: unknown): Promise<HostAnswer> {
    try {
      if (isHostOperation(op) && HOST_OPERATIONS[op].kind === 'notify') throw fail('E_BAD_REQUEST', `${op} is a notification, not a call`);
      return { value: await dispatch(this.#handlers, op, args) };
    } catch (error) {
      return { error: codeAndMessage(error) };
    }
  }

  /**
   * Answers that finish in one turn of the event loop cross back together: under load an app
   * with many calls in flight gets them in a few crossings, and an idle one waits no longer
   * than the rest of the current turn.
   */
  #answer(id: number, answer: HostAnswer): void {
    this.#answers.push([id, answer]);
    if (this.#answersScheduled) return;
    this.#answersScheduled = true;
    setImmediate(() => this.#sendAnswers());
  }

  #sendAnswers(): void {
    this.#answersScheduled = false;
    const answers = this.#answers;
    const converse = this.#answersConverse;
    this.#answers = [];
    this.#answersConverse = false;
    if (answers.length === 0 || this.#disposed || !this.#guest) return;
    this.#slices += 1;
    const plain: [number, HostAnswer][] = [];
    const copied: [number, HostAnswer][] = [];
    const lifted: LiftedBytes[] = [];
    for (const entry of answers) {
      const how = crossing(entry[1]);
      if (how === 'text') plain.push(entry);
      else if (how === 'copy') copied.push(entry);
      else {
        const value = (entry[1] as { value: Record<string, unknown> }).value;
        const rest: Record<string, unknown> = {};
        for (const field of Object.keys(value)) {
          const item = value[field];
          if (item instanceof Uint8Array) lifted.push([entry[0], field, item]);
          else rest[field] = item;
        }
        plain.push([entry[0], { value: rest }]);
      }
    }
    // Ignored: nothing crosses back when the app is done with its answers, which would cost the
    // gateway's thread another wake per round trip. The app's continuations are still bounded:
    // the watchdog ends a slice that keeps the isolate busy past its CPU limit, and an isolate
    // that ran out of memory is found disposed.
    try {
      // Most answers are text only (a put's, a read's of a short value): the text alone then,
      // a primitive, which crosses without the serializer that copying two empty lists costs.
      if (copied.length === 0 && lifted.length === 0) this.#guest.answer.applyIgnored(undefined, [JSON.stringify(plain)]);
      else this.#guest.answer.applyIgnored(undefined, [JSON.stringify(plain), copied, lifted], { arguments: { copy: true } });
    } catch (error) {
      // The isolate is gone (its memory limit) or an answer cannot cross: either way the app is done.
      this.#fail(this.#classify(error));
      return;
    }
    // Wait for the app's reply polling rather than asleep: being woken costs more than the wait.
    this.#answeredAt = performance.now();
    if (this.#conversing && converse)
      hotLoop.hold(this, REPLY_WINDOW_MS, () => {
        this.#conversing = false;
      });
  }

  /** Hands a connection's data or close to the app; the socket waits until the app took it. */
  async #connectionEvent(id: number, kind: ConnectionEventKind, payload: Uint8Array | { code: string; message: string } | undefined): Promise<void> {
    if (this.#disposed || !this.#guest) return;
    this.#slices += 1;
    await this.#guest.connectionEvent
      .apply(undefined, [id, kind, payload], {
        ...this.#timeout(this.#cpuMs),
        arguments: { copy: true },
        result: { promise: true },
      })
      .catch((error: unknown) => this.#fail(this.#classify(error)));
  }

  /**
   * One crossing into the app's traffic inspector. Its verdicts are checked like every answer
   * of a guest: a forged or malformed one fails the app (E_APP_FAILED), and so does a crossing
   * that runs past its CPU budget or the app's memory; the gate then fails closed.
   */
  async #inspect(items: InspectItem[]): Promise<TrafficVerdict[]> {
    const guest = this.#live();
    let dataItems = 0;
    for (const item of items) if (item[0] === 'data') dataItems += 1;
    const { control, bytes, opens } = packInspection(items);
    let answer: unknown;
    try {
      // No isolated-vm timeout: it arms a timer per call, about 20 us of process CPU per
      // crossing (an empty call measured alone: 55 us with it, 35 without), and a crossing of the
      // gate bench carries a handful of frames. An inspector that loops is ended by the watchdog
      // (its CPU past the per-event budget with no other crossing begun: #live counts each as a
      // slice), and the gate's verdict deadline fails traffic closed if it never answers.
      answer = await guest.inspect.apply(undefined, [control, bytes, opens], { arguments: { copy: true }, result: { copy: true } });
    } catch (error) {
      if (this.#disposed && !this.#failure) throw fail('E_STATE', `${this.options.manifest.package_id} stopped while inspecting traffic`);
      const failure = this.#classify(error);
      this.#fail(failure);
      throw fail(failure.code, failure.message);
    }
    try {
      return decodePackedVerdicts(answer, dataItems, this.#alerts);
    } catch (error) {
      const coded = toIsogateError(error);
      this.#fail({ code: 'E_APP_FAILED', message: coded.message });
      throw error;
    }
  }

  #timer(action: 'set' | 'clear', id: number, ms = 0, repeat = false): void {
    if (this.#disposed || !Number.isSafeInteger(id)) return;
    if (action === 'clear') {
      const timer = this.#timers.get(id);
      if (timer) (timer.repeat ? clearInterval : clearTimeout)(timer.handle);
      this.#timers.delete(id);
      return;
    }
    // The guest enforces the cap with an error the app sees; this is the host's own bound.
    if (action !== 'set' || this.#timers.size >= this.#limits.maxTimers) return;
    const delay = Math.max(repeat ? this.#limits.minIntervalMs : 0, Math.min(Number(ms) || 0, 2 ** 31 - 1));
    const fire = (): void => {
      const timer = this.#timers.get(id);
      if (!timer || timer.firing || !this.#guest) return;
      if (!timer.repeat) this.#timers.delete(id);
      // An interval whose last run is still going skips a beat instead of piling up.
      timer.firing = true;
      this.#slices += 1;
      this.#guest.fire
        .apply(undefined, [id], this.#timeout(this.#cpuMs))
        .catch((error: unknown) => this.#fail(this.#classify(error)))
        .finally(() => {
          timer.firing = false;
        });
    };
    const handle = repeat ? setInterval(fire, delay) : setTimeout(fire, delay);
    this.#timers.set(id, { handle, repeat, firing: false });
  }

  /** A batch's outcome from the guest (DeliveredReport); an id that is not waiting is ignored. */
  #delivered(id: unknown, invalid: unknown, failed: unknown, error: unknown): void {
    const waiting = typeof id === 'number' ? this.#deliveries.get(id) : undefined;
    if (!waiting) return;
    this.#deliveries.delete(id as number);
    if (error !== undefined) waiting.reject(new Error(String(error)));
    // The id alone: every message handled (DeliveredReport).
    else if (invalid === undefined && failed === undefined) waiting.resolve(ALL_HANDLED);
    else waiting.resolve({ invalid, failed });
  }

  async deliver(endpoint: string, batch: DeliverBatch): Promise<DeliverResult> {
    const guest = this.#live();
    checkHandler(this.#grants, endpoint);
    const count = 'messages' in batch ? batch.messages.length : batch.lengths.length;
    const id = ++this.#lastDelivery;
    try {
      // json and text: each piece of the text as an argument of its own, copied once and handed
      // over as an external string (nested in a value it would be serialised, copied twice:
      // measured 5x the CPU for 4 KB and 64 KB messages); parsed message by message in the guest.
      // Binary: small messages as one list, through the serializer, which measured cheaper than
      // one argument (or one ExternalCopy) per message for 4 KB ones; large ones each an argument
      // of their own, copied once and handed over as their own buffer, where the serializer copies
      // twice (measured ~20% less CPU per MiB for 64 KB messages).
      //
      // Ignored, with the outcome reported by a call back (GuestOperations.deliver): isolated-vm's
      // `apply` captures a stack trace, makes an async resource and a promise on this thread for
      // every call, measured twice the gateway's CPU of the call itself. Without apply's timeout
      // the watchdog bounds the handlers' CPU (a slice past the app's CPU limit ends the app, and
      // every batch waiting is then failed by dispose()), and their waiting too: isolated-vm's
      // timeout counts the isolate's own running time, and a handler awaiting a promise that never
      // settles runs for none, so it would hold its route (and its sources) forever. The watchdog
      // fails a batch still unreported past deliverDeadlineMs (#overdueDeliveries), one timer for
      // all of them rather than one per batch.
      const handled = new Promise<unknown>((resolve, reject) => this.#deliveries.set(id, { resolve, reject, since: performance.now() }));
      if ('messages' in batch) {
        const args: Parameters<GuestOperations['deliver']> = largeMessages(batch.messages)
          ? [id, endpoint, undefined, undefined, undefined, ...batch.messages]
          : [id, endpoint, undefined, undefined, batch.messages];
        guest.deliver.applyIgnored(undefined, args, { arguments: { copy: true } });
      } else {
        // Text and its lengths as JSON text: primitives only, which cross without the serializer.
        const args: [number, string, string, string, undefined, ...string[]] = [
          id,
          endpoint,
          batch.texts[0] ?? '',
          JSON.stringify(batch.lengths),
          undefined,
          ...batch.texts.slice(1),
        ];
        guest.deliver.applyIgnored(undefined, args);
      }
      return checkedDeliverResult(await handled, count);
    } catch (error) {
      // Stopped (or replaced) while it handled the batch: not the batch's fault, and the router
      // puts it back first in line for the next start. Handlers that already ran see it again.
      if (this.#disposed && !this.#failure) throw fail('E_STATE', `${this.options.manifest.package_id} stopped while handling a batch`);
      // The app's failure, where one ended it (its memory, its CPU limit, a batch past its
      // deadline), is what every batch it held hears.
      const failure = this.#failure ?? this.#classify(error);
      this.#fail(failure);
      throw fail(failure.code, failure.message);
    } finally {
      this.#deliveries.delete(id);
    }
  }

  /**
   * Fails the app if its oldest unreported batch is past the deadline (the map keeps the order
   * batches were handed over in). An inspected destination may sit at a breakpoint for as long as
   * its developer looks.
   */
  #overdueDeliveries(now: number): void {
    if (this.#inspected) return;
    for (const [, delivery] of this.#deliveries) {
      if (now - delivery.since <= this.#limits.deliverDeadlineMs) return;
      const message = `did not finish handling a batch within ${this.#limits.deliverDeadlineMs} ms`;
      this.#fail({ code: 'E_APP_FAILED', message });
      return;
    }
  }

  async configChanged(configuration: Record<string, unknown> | undefined): Promise<void> {
    const guest = this.#live();
    await guest.configChanged
      .apply(undefined, [JSON.stringify(configuration ?? {})], {
        ...this.#timeout(this.#cpuMs),
        arguments: { copy: true },
        result: { promise: true },
      })
      .catch((error: unknown) => {
        const failure = this.#classify(error);
        this.#fail(failure);
        throw fail(failure.code, failure.message);
      });
  }

  async stop(deadlineMs = 2000): Promise<void> {
    if (this.#disposed) return;
    // A debugging session ends first, resuming a paused app, so that its stop handler can run.
    this.#closeSession(true);
    this.#clearTimers();
    try {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        this.#guest?.stop.apply(undefined, [], { ...this.#timeout(Math.min(deadlineMs, this.#cpuMs * 10)), result: { promise: true } }),
        new Promise((resolve) => {
          timer = setTimeout(resolve, deadlineMs);
        }),
      ]).finally(() => clearTimeout(timer));
    } catch {
      // An app that fails while stopping is stopped all the same.
    }
    this.dispose();
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#closeSession(true);
    // Every session is disposed before its isolate: isolated-vm cannot disconnect one from an isolate already gone.
    for (const retired of this.#retiredSessions) this.#disposeSession(retired);
    hotLoop.release(this);
    this.#clearTimers();
    if (this.#watchdog) clearInterval(this.#watchdog);
    for (const connection of this.#connections.values()) connection.destroy();
    this.#connections.clear();
    for (const reference of this.#references) reference.release();
    if (!this.#isolate.isDisposed) this.#isolate.dispose();
    // Batches the guest will never report on now: each deliver() tells stopped from failed.
    const waiting = [...this.#deliveries.values()];
    this.#deliveries.clear();
    for (const delivery of waiting) delivery.reject(new Error('the isolate was disposed while it handled a batch'));
  }

  stats(): SandboxStats {
    // A *Sync call waits for the isolate's thread, which a paused isolate never gives up.
    const heap = this.#isolate.isDisposed || this.#inspected ? undefined : this.#isolate.getHeapStatisticsSync();
    return {
      heapUsedBytes: heap?.used_heap_size ?? 0,
      heapTotalBytes: heap?.total_heap_size ?? 0,
      heapExternalBytes: heap?.externally_allocated_size ?? 0,
      heapLimitBytes: this.#grants.limits.memoryMb * 1024 * 1024,
      cpuTimeMs: this.#isolate.isDisposed ? 0 : Number(this.#isolate.cpuTime) / 1e6,
      wallTimeMs: this.#isolate.isDisposed ? 0 : Number(this.#isolate.wallTime) / 1e6,
      timers: this.#timers.size,
    };
  }

  openInspectorSession(onMessage: (message: string) => void, onEnd: () => void): InspectorSessionHandle {
    if (!this.#inspected) throw fail('E_STATE', `${this.options.manifest.package_id} runs without its inspector`);
    if (this.#disposed) throw fail('E_STATE', `${this.options.manifest.package_id} is not running`);
    if (this.#session) throw fail('E_CONFLICT', `${this.options.manifest.package_id} has an inspector session open already`);
    const inspector = this.#isolate.createInspectorSession();
    inspector.onResponse = (_id, message) => onMessage(message);
    inspector.onNotification = (message) => {
      // V8 writes the method first; the rest of a large notification (a script's source) is not parsed.
      const event = /^\{"method":"Debugger\.(paused|resumed)"/.exec(message)?.[1];
      if (event) this.#paused = event === 'paused';
      onMessage(message);
    };
    const session = { inspector, onEnd };
    this.#session = session;
    return {
      dispatch: (message) => {
        if (this.#session !== session) return;
        try {
          inspector.dispatchProtocolMessage(message);
        } catch {
          this.#closeSession(true);
        }
      },
      close: () => {
        if (this.#session === session) this.#closeSession(false);
      },
    };
  }

  /**
   * Ends the session; a paused isolate is resumed first, so nobody's departure leaves the app
   * stopped at a breakpoint. isolated-vm answers a message queued to the isolate through the
   * session's channel even after the session is disposed, and a channel collected by then
   * aborts the process (seen with `Debugger.resume`): so the session object is kept until the
   * isolate is gone, disposed only once the resume was answered (or the isolate is disposed),
   * and always before the isolate is.
   */
  #closeSession(notify: boolean): void {
    const session = this.#session;
    if (!session) return;
    this.#session = undefined;
    this.#paused = false;
    const { inspector } = session;
    const retired = { inspector, disposed: false };
    this.#retiredSessions.add(retired);
    inspector.onNotification = () => undefined;
    if (this.#disposed || this.#isolate.isDisposed) {
      this.#disposeSession(retired);
    } else {
      const finish = setTimeout(() => this.#disposeSession(retired), 2000);
      finish.unref();
      inspector.onResponse = (id) => {
        if (id !== CLOSING_DISABLE_ID) return;
        clearTimeout(finish);
        this.#disposeSession(retired);
      };
      try {
        inspector.dispatchProtocolMessage(JSON.stringify({ id: CLOSING_RESUME_ID, method: 'Debugger.resume' }));
        inspector.dispatchProtocolMessage(JSON.stringify({ id: CLOSING_DISABLE_ID, method: 'Debugger.disable' }));
      } catch {
        clearTimeout(finish);
        this.#disposeSession(retired);
      }
    }
    if (notify) session.onEnd();
  }

  #disposeSession(retired: { inspector: ivm.InspectorSession; disposed: boolean }): void {
    if (retired.disposed) return;
    retired.disposed = true;
    retired.inspector.onResponse = () => undefined;
    try {
      if (!this.#isolate.isDisposed) retired.inspector.dispose();
    } catch {
      // The isolate went first, and its inspector with it.
    }
  }

  #live(): GuestReferences {
    this.#slices += 1;
    if (this.#failure) throw fail('E_APP_FAILED', `${this.options.manifest.package_id} has failed: ${this.#failure.message}`);
    if (this.#disposed || !this.#guest) throw fail('E_STATE', `${this.options.manifest.package_id} is not running`);
    return this.#guest;
  }

  #clearTimers(): void {
    for (const timer of this.#timers.values()) (timer.repeat ? clearInterval : clearTimeout)(timer.handle);
    this.#timers.clear();
  }

  /** isolated-vm disposes an isolate that runs out of memory; the sandbox disposes it otherwise. */
  get #disposedForMemory(): boolean {
    return this.#isolate.isDisposed && !this.#disposed;
  }

  get #memoryExhausted(): SandboxFailure {
    return { code: 'E_MEMORY_LIMIT', message: `exceeded its memory limit of ${this.#grants.limits.memoryMb} MB` };
  }

  #classify(error: unknown): SandboxFailure {
    const message = error instanceof Error ? error.message : String(error);
    if (this.#failure) return this.#failure;
    if (/memory limit/i.test(message) || this.#disposedForMemory) return this.#memoryExhausted;
    if (/timed out/i.test(message)) return { code: 'E_CPU_LIMIT', message: `exceeded its CPU limit of ${this.#cpuMs} ms for one event` };
    return { code: 'E_APP_FAILED', message };
  }

  #fail(failure: SandboxFailure): void {
    if (this.#failure || this.#disposed) return;
    this.#failure = failure;
    this.dispose();
    this.#onFailed?.(failure);
    this.options.onFailure?.(failure);
  }

  /** Ends an app whose isolate stays busy past its per-event budget, wherever that time is spent. */
  #startWatchdog(): void {
    let lastCpu = Number(this.#isolate.cpuTime) / 1e6;
    let lastWall = performance.now();
    let busyMs = 0;
    let slices = this.#slices;
    const budget = this.#cpuMs + 250;
    this.#watchdog = setInterval(() => {
      if (this.#isolate.isDisposed) {
        if (this.#disposedForMemory) this.#fail(this.#memoryExhausted);
        return;
      }
      const cpu = Number(this.#isolate.cpuTime) / 1e6;
      const wall = performance.now();
      this.#overdueDeliveries(wall);
      if (this.#disposed) return;
      if (this.#paused) {
        // At a breakpoint: not running, so not busy, however long the developer looks.
        busyMs = 0;
        lastCpu = cpu;
        lastWall = wall;
        return;
      }
      const used = cpu - lastCpu;
      // Busy across a whole sample with no new event or host answer: one slice is running long.
      const sameSlice = slices === this.#slices;
      busyMs = used >= 0.7 * (wall - lastWall) ? (sameSlice ? busyMs : 0) + used : 0;
      slices = this.#slices;
      lastCpu = cpu;
      lastWall = wall;
      if (busyMs > budget) this.#fail({ code: 'E_CPU_LIMIT', message: `kept running past its CPU limit of ${this.#cpuMs} ms for one event` });
    }, this.#limits.watchdogIntervalMs);
    this.#watchdog.unref();
  }
}

/** Byte arrays that cross best one argument each: from 16 KiB a message on average. */
const LARGE_MESSAGE_BYTES = 16 * 1024;
function largeMessages(messages: readonly Uint8Array[]): boolean {
  let bytes = 0;
  for (const message of messages) bytes += message.byteLength;
  return bytes >= LARGE_MESSAGE_BYTES * messages.length;
}

/** What #delivered resolves with for a batch reported by its id alone (DeliveredReport). */
const ALL_HANDLED = Symbol('every message handled');

/**
 * What a destination says of a batch, checked: it runs the app's own SDK, which the app can
 * change, so its indexes are unique integers within the batch or the answer is not believed.
 */
function checkedDeliverResult(result: unknown, count: number): DeliverResult {
  if (result === ALL_HANDLED) return { invalid: [], failed: [] };
  const indexes = (value: unknown): number[] => {
    if (!Array.isArray(value) || value.length > count) throw new Error('a forged delivery result');
    const seen = new Set<number>();
    for (const index of value) {
      if (!Number.isSafeInteger(index) || index < 0 || index >= count || seen.has(index)) throw new Error('a forged delivery result');
      seen.add(index);
    }
    return [...seen];
  };
  const { invalid, failed } = (result ?? {}) as { invalid?: unknown; failed?: unknown };
  const checked = { invalid: indexes(invalid), failed: indexes(failed) };
  const failedSet = new Set(checked.failed);
  if (checked.invalid.some((index) => failedSet.has(index))) throw new Error('a forged delivery result');
  return checked;
}

/**
 * An app's isolate, with a young generation sized to its memory limit. isolated-vm gives a
 * 128 MiB isolate 2 MiB of young generation (Node gives a worker thread 16 MiB semi-spaces): a
 * source emitting fast keeps its unsent messages alive across every scavenge, each scavenge
 * copies them again, and GC was the largest part of such a source's CPU. Semi-spaces of 1/32 of
 * the limit (4 MiB for 128 MiB) measured 14-18% less CPU per emit, 8 MiB 23-28%; but what a
 * busy isolate may hold beyond its limit is garbage not yet scavenged, up to three semi-spaces,
 * and 8 MiB grew the lossless burst's RSS by 11 MiB (to 19.6 of its 20 MiB bound in one run),
 * 4 MiB by 6 MiB. The memory limit itself is unchanged (isolated-vm counts the used heap of every
 * space), and V8 grows the semi-spaces only for an isolate whose young objects survive. V8 reads
 * the flag when an isolate is made, and the isolate is made here, synchronously: the flag is put
 * back at once so nothing else (a worker thread) gets it.
 */
function newIsolate(memoryMb: number, inspector: boolean): ivm.Isolate {
  const semiSpaceMb = Math.max(1, Math.min(16, Math.floor(memoryMb / 32)));
  v8.setFlagsFromString(`--max-semi-space-size=${semiSpaceMb}`);
  try {
    return new ivm.Isolate({ memoryLimit: memoryMb, inspector });
  } finally {
    v8.setFlagsFromString('--max-semi-space-size=0');
  }
}

export async function createAppSandbox(options: SandboxOptions): Promise<AppSandbox> {
  // The grants refuse a reserved capability claimed by an app not installed from the image.
  return new IsolateSandbox(options);
}
