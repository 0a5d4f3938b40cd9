/**
 * The guest SDK: the code that runs inside each app's isolate before the app. It turns the two
 * references the host gives it (one for calls, one for notifications) into the frozen
 * `isogate:sdk` module and the timer and console globals, and implements the host -> guest half
 * of the protocol (`GuestOperations`). It is bundled by esbuild (`../guest-bundle.ts`) and
 * evaluated in a closure, so nothing of it is global but what it defines on purpose.
 *
 * It never runs in Node and may import only pure modules: no Node API exists in the isolate.
 * Whatever it checks (endpoints, timers, formats) it checks for a fast error only, with the
 * host's own code and sentence (`../refusals.ts`); the host checks again, and its check counts.
 */
import { jsonDepth } from '../../../sdk/limits.js';
import { ALERT_TABLE_LIMIT, INSPECT_KIND, INSPECT_WORDS } from '../inspect-wire.js';
import type {
  Args,
  CallAnswer,
  CallOperation,
  DeliveredReport,
  DeliverResult,
  EmitRefusal,
  EmitRun,
  FetchRequest,
  FetchResponse,
  GuestGrants,
  GuestOperations,
  NotifyOperation,
  PackedVerdicts,
  Result,
  TrafficAlert,
  TrafficConnection,
  TrafficVerdict,
} from '../protocol.js';
import { type Refusal, refusals } from '../refusals.js';
import { EMIT_BATCH_BYTES, EMIT_BATCH_MESSAGES, EMIT_WAITING_BYTES, EMIT_WAITING_MESSAGES, TEXT_PIECE_UNITS } from '../wire-limits.js';
import { jsonTextEncoder, LONG_STRING } from './json-text.js';
import { decodeUtf8 } from './utf8.js';

/** An isolated-vm reference to a host function, as the guest sees it. */
interface HostReference {
  applyIgnored(receiver: undefined, args: unknown[], options?: { arguments?: { copy?: boolean } }): void;
}

type CodedError = Error & { code: string };
/** Runs as they cross, their payloads beside the call (protocol.ts resolvePayloads). */
type PlacedTextRun = [endpoint: string, text: number, lengths: number[]];
type PlacedBinaryRun = [endpoint: string, first: number, count: number];
type Handler = (message: unknown) => unknown;

export function bootstrap(sendRef: HostReference, notifyRef: HostReference, grantsJson: string, deliveredRef: HostReference): GuestOperations {
  // Taken before the app runs, so an app that replaces JSON's functions changes only its own code.
  const { stringify, parse } = JSON;
  const join = Function.prototype.call.bind(Array.prototype.join) as (array: unknown[], separator: string) => string;
  const slice = Function.prototype.call.bind(String.prototype.slice) as (text: string, start: number, end: number) => string;
  const grants = parse(grantsJson) as GuestGrants;
  const LEVELS = Object.freeze({ critical: 0, error: 1, warning: 2, info: 3, debug: 4, trace: 5 } as const);
  const sources = new Map(grants.sources);
  const destinations = new Map(grants.destinations);
  const copyArgs = { arguments: { copy: true } };

  const codedError = (code: string, message: string): CodedError => Object.assign(new Error(message), { code });
  const refused = ([code, message]: Refusal): CodedError => codedError(code, message);

  // Every notification's arguments are numbers, strings and booleans: spread as primitives, they
  // cross without isolated-vm's serializer, whose cost per crossing is most of a small one's.
  function notify<Op extends NotifyOperation>(op: Op, args: Args<Op>): void {
    notifyRef.applyIgnored(undefined, [op, ...(args as unknown[])]);
  }

  function show(value: unknown): string {
    if (typeof value === 'string') return value;
    if (value instanceof Error) return value.stack || String(value);
    try {
      const text = stringify(value);
      return text === undefined ? String(value) : text;
    } catch {
      return String(value);
    }
  }

  function writeLog(level: 0 | 1 | 2 | 3 | 4 | 5, values: unknown[]): void {
    let text = join(values.map(show), ' ');
    if (text.length > grants.maxLogLineChars) text = `${slice(text, 0, grants.maxLogLineChars)}...[truncated]`;
    notify('log', [level, text]);
  }

  // Calls to the platform travel in batches, both ways and without waiting on each other: the
  // calls made in one microtask turn cross in one message, and the host answers everything that
  // finished in one turn of its event loop in one message. Small calls cross as JSON text, a
  // third of the cost of a structured copy; calls that carry bytes or large texts (which JSON
  // would escape character by character) cross as a structured copy beside it.
  const waiting = new Map<number, { resolve: (value: unknown) => void; reject: (error: unknown) => void }>();
  let nextCall = 1;
  let outboxText: string[] = [];
  let outboxCopied: [number, string, unknown[]][] = [];
  // Emit payloads, each an argument of its own beside the calls (protocol.ts resolvePayloads).
  let outboxPayloads: (string | Uint8Array)[] = [];
  let outboxScheduled = false;

  function refuseCall(id: number, error: unknown): void {
    const reason = error instanceof Error ? error.message : String(error);
    answerCall(id, {
      error: { code: 'E_BAD_REQUEST', message: `A platform call takes plain data (strings, numbers, objects, arrays, Uint8Array): ${reason}` },
    });
  }

  function flushOutbox(): void {
    outboxScheduled = false;
    if (outboxText.length === 0 && outboxCopied.length === 0) return;
    const texts = outboxText;
    const copied = outboxCopied;
    const payloads = outboxPayloads;
    outboxText = [];
    outboxCopied = [];
    outboxPayloads = [];
    try {
      // Text and string payloads only (a json or text emit): all primitives, no serializer.
      if (copied.length === 0 && payloads.every((payload) => typeof payload === 'string')) {
        sendRef.applyIgnored(undefined, [`[${join(texts, ',')}]`, undefined, ...payloads]);
      } else sendRef.applyIgnored(undefined, [`[${join(texts, ',')}]`, copied, ...payloads], copyArgs);
    } catch {
      // Something in the copied batch cannot be copied: send the others and refuse only the culprits.
      sendRef.applyIgnored(undefined, [`[${join(texts, ',')}]`, []], copyArgs);
      for (const single of copied) {
        try {
          sendRef.applyIgnored(undefined, ['[]', [single], ...(single[1] === 'emit.batch' ? payloads : [])], copyArgs);
        } catch (error) {
          refuseCall(single[0], error);
        }
      }
    }
  }

  const copiedAsIs = (value: unknown): boolean => value instanceof Uint8Array || (typeof value === 'string' && value.length > 1024);

  // { copyAsIs } sends the call as a structured copy; { now } sends the outbox at once instead of
  // at the end of the turn, for a full emit batch that the host can start on while the app runs.
  function call<Op extends CallOperation>(op: Op, args: Args<Op>, { copyAsIs = false, now = false } = {}): Promise<Result<Op>> {
    return new Promise((resolve, reject) => {
      const id = nextCall++;
      waiting.set(id, { resolve: resolve as (value: unknown) => void, reject });
      if (copyAsIs) outboxCopied.push([id, op, args]);
      else {
        try {
          outboxText.push(stringify([id, op, args]));
        } catch (error) {
          refuseCall(id, error);
          return;
        }
      }
      if (now) flushOutbox();
      else if (!outboxScheduled) {
        outboxScheduled = true;
        Promise.resolve().then(flushOutbox);
      }
    });
  }

  function answerCall(id: number, answer: CallAnswer): void {
    const caller = waiting.get(id);
    if (!caller) return;
    waiting.delete(id);
    if ('error' in answer) caller.reject(codedError(answer.error.code, answer.error.message));
    else caller.resolve(answer.value);
  }

  const log = Object.freeze({
    critical: (...values: unknown[]) => writeLog(LEVELS.critical, values),
    error: (...values: unknown[]) => writeLog(LEVELS.error, values),
    warning: (...values: unknown[]) => writeLog(LEVELS.warning, values),
    info: (...values: unknown[]) => writeLog(LEVELS.info, values),
    debug: (...values: unknown[]) => writeLog(LEVELS.debug, values),
    trace: (...values: unknown[]) => writeLog(LEVELS.trace, values),
  });

  const handlers = new Map<string, Handler[]>();
  function on(endpoint: string, handler: Handler): void {
    if (!destinations.has(endpoint)) throw refused(refusals.notADestination(String(endpoint)));
    if (typeof handler !== 'function') throw new TypeError('on(endpoint, handler): the handler is a function');
    const list = handlers.get(endpoint) ?? [];
    list.push(handler);
    handlers.set(endpoint, list);
  }

  const jsonText = jsonTextEncoder();
  /** Source endpoints whose last json message had long strings: the next one is walked (json-text.ts). */
  const walkedEndpoints = new Set<string>();

  function encode(endpoint: string, format: string, message: unknown): string | Uint8Array {
    if (format === 'json') {
      const walk = walkedEndpoints.has(endpoint);
      const text = jsonText.encode(message, walk);
      if (text === undefined) throw codedError('E_MESSAGE', 'A json endpoint carries JSON values; this message has none');
      const walkNext = walk ? jsonText.walkPaidOff : text.length >= 2 * LONG_STRING;
      if (walkNext !== walk) walkNext ? walkedEndpoints.add(endpoint) : walkedEndpoints.delete(endpoint);
      return text;
    }
    if (format === 'text') {
      if (typeof message !== 'string') throw codedError('E_MESSAGE', 'A text endpoint carries strings');
      return message;
    }
    if (!(message instanceof Uint8Array)) throw codedError('E_MESSAGE', 'A binary endpoint carries Uint8Array bytes');
    return message;
  }

  // Emits wait in groups, each what one emit.batch carries: at most EMIT_BATCH_MESSAGES messages
  // and about EMIT_BATCH_BYTES (the first message of a group always fits). A group holds its
  // messages as flat arrays (endpoint, payload, length), and the receipts point at their group
  // while the group points at none of them: an app that drops its receipts, as most do, leaves
  // the SDK holding strings and numbers only, and the receipts die young. The SDK's heap is the
  // app's, with a young generation of a few MiB, and what survives a scavenge is what GC costs:
  // GC was most of a fast source's CPU.
  interface EmitGroup {
    readonly endpoints: string[];
    /** Dropped once the group is sent: the host has them then. */
    payloads: (string | Uint8Array)[] | undefined;
    readonly sizes: number[];
    bytes: number;
    settled: boolean;
    /** By index in the group, once settled; undefined when nothing was refused. */
    refusals: Map<number, CodedError> | undefined;
    /** Receipts awaited before the group settled, by index in the group. */
    observers: Map<number, (error: CodedError | undefined) => void> | undefined;
  }
  const newGroup = (): EmitGroup => ({ endpoints: [], payloads: [], sizes: [], bytes: 0, settled: false, refusals: undefined, observers: undefined });

  // What emit returns: a thenable that makes its promise only when someone awaits it, since most
  // emits are never awaited and a promise per message would cost more than the message.
  class Emitted {
    promise: Promise<void> | undefined = undefined;
    constructor(
      readonly group: EmitGroup,
      readonly index: number,
    ) {}
    observe(): Promise<void> {
      if (!this.promise) {
        const { group, index } = this;
        if (group.settled) {
          const refusal = group.refusals?.get(index);
          this.promise = refusal ? Promise.reject(refusal) : Promise.resolve();
        } else
          this.promise = new Promise((resolve, reject) => {
            group.observers ??= new Map();
            group.observers.set(index, (error) => (error ? reject(error) : resolve()));
          });
      }
      return this.promise;
    }
    // biome-ignore lint/suspicious/noThenProperty: a receipt is awaitable on purpose (and lazy: see above)
    then<A = void, B = never>(onAccepted?: (() => A | PromiseLike<A>) | null, onRefused?: ((error: CodedError) => B | PromiseLike<B>) | null): Promise<A | B> {
      return this.observe().then(onAccepted, onRefused);
    }
    // biome-ignore lint/suspicious/noConfusingVoidType: the same type as Promise<void>.catch in TypeScript's own lib
    catch<B = never>(onRefused?: (error: CodedError) => B | PromiseLike<B>): Promise<void | B> {
      return this.observe().catch(onRefused);
    }
    finally(onSettled?: () => void): Promise<void> {
      return this.observe().finally(onSettled);
    }
  }
  Object.freeze(Emitted.prototype);
  Object.freeze(Emitted);

  /** `refusals` by index, or one error for the whole group. */
  function settleGroup(group: EmitGroup, refusals: Map<number, CodedError> | undefined, whole: CodedError | undefined): void {
    group.settled = true;
    const count = group.endpoints.length;
    if (whole) {
      group.refusals = new Map();
      for (let index = 0; index < count; index += 1) group.refusals.set(index, whole);
    } else group.refusals = refusals;
    const observers = group.observers;
    group.observers = undefined;
    if (observers) for (const [index, settle] of observers) settle(group.refusals?.get(index));
    // An app that does not await its emits still hears about refusals, in its log.
    if (group.refusals) {
      for (const [index, refusal] of group.refusals) {
        if (!observers?.has(index)) writeLog(LEVELS.warning, [`emit on "${group.endpoints[index]}" refused: ${refusal.code}: ${refusal.message}`]);
      }
    }
  }

  // Emits cross to the host in batches of runs (protocol.ts EmitRun): the consecutive emits on
  // one endpoint, a json or text run as one text without separators and its lengths, at most
  // TEXT_PIECE_UNITS of text unless one message is longer (wire-limits.ts says why). One batch
  // is in flight at a time: the next is sent once the host answered the last, which it does when
  // the messages are queued on their routes, so a full route slows the source down here, in its
  // own heap. Past EMIT_WAITING_* (sent and unanswered, or not sent yet) emit refuses at once.
  let unsent: EmitGroup[] = [];
  let waitingMessages = 0;
  let waitingBytes = 0;
  let emitting = false;
  let flushScheduled = false;

  function scheduleEmits(): void {
    if (emitting) return;
    // A group that is no longer the last one is full: send it now, the host can start on it.
    if (unsent.length > 1) flushEmits();
    else if (!flushScheduled) {
      flushScheduled = true;
      Promise.resolve().then(flushEmits);
    }
  }

  function flushEmits(): void {
    flushScheduled = false;
    if (emitting || unsent.length === 0) return;
    const group = unsent[0]!;
    if (unsent.length === 1) unsent = [];
    else unsent.shift();
    const { endpoints, sizes } = group;
    const payloads = group.payloads!;
    group.payloads = undefined;
    const count = endpoints.length;
    const runs: (PlacedTextRun | PlacedBinaryRun)[] = [];
    for (let start = 0; start < count; ) {
      const endpoint = endpoints[start]!;
      let end = start + 1;
      while (end < count && endpoints[end] === endpoint) end += 1;
      // Payloads go beside the call, named by their position (protocol.ts resolvePayloads). The
      // batch is sent at once (`now`), so the positions count from what the outbox holds now.
      if (sources.get(endpoint)!.format === 'binary') {
        const first = outboxPayloads.length;
        for (let index = start; index < end; index += 1) outboxPayloads.push(payloads[index]!);
        runs.push([endpoint, first, end - start] satisfies PlacedBinaryRun);
      } else {
        // A run's text is at most TEXT_PIECE_UNITS (wire-limits.ts) unless its first message is
        // longer: past it the run is cut, and the next messages start a run of their own on the
        // same endpoint (a string that stays small enough not to take fresh pages at each copy).
        let units = sizes[start]!;
        let cut = start + 1;
        while (cut < end && units + sizes[cut]! <= TEXT_PIECE_UNITS) units += sizes[cut++]!;
        end = cut;
        // One join: a flat string, where `+=` would build a chain the crossing must flatten.
        const whole = start === 0 && end === count;
        runs.push([endpoint, outboxPayloads.length, whole ? sizes : sizes.slice(start, end)] satisfies PlacedTextRun);
        outboxPayloads.push(join(whole ? payloads : payloads.slice(start, end), ''));
      }
      start = end;
    }
    emitting = true;
    const done = (): void => {
      emitting = false;
      waitingMessages -= count;
      waitingBytes -= group.bytes;
      if (unsent.length > 0) flushEmits();
    };
    // The runs are endpoints and lengths (the payloads cross beside the call): JSON text, unless
    // bytes cross beside it, which need the serializer anyway.
    const binary = runs.some((run) => typeof run[2] === 'number');
    call('emit.batch', [runs as unknown as EmitRun[]], { copyAsIs: binary, now: true }).then(
      (answer: EmitRefusal[]) => {
        const byIndex = answer.length > 0 ? new Map<number, CodedError>() : undefined;
        for (const [index, code, message] of answer) byIndex!.set(index, codedError(code, message));
        done();
        settleGroup(group, byIndex, undefined);
      },
      (error: CodedError) => {
        done();
        settleGroup(group, undefined, error);
      },
    );
  }

  function emit(endpoint: string, message: unknown): Emitted {
    const declared = sources.get(endpoint);
    if (!declared) throw refused(refusals.notASource(String(endpoint), destinations.has(endpoint)));
    const payload = encode(endpoint, declared.format, message);
    const size = typeof payload === 'string' ? payload.length : payload.byteLength;
    if (waitingMessages > 0 && (waitingMessages >= EMIT_WAITING_MESSAGES || waitingBytes + size > EMIT_WAITING_BYTES)) {
      throw refused(refusals.emitsWaiting(endpoint));
    }
    let group = unsent[unsent.length - 1];
    if (!group || group.endpoints.length >= EMIT_BATCH_MESSAGES || (group.endpoints.length > 0 && group.bytes + size > EMIT_BATCH_BYTES)) {
      group = newGroup();
      unsent.push(group);
    }
    const index = group.endpoints.length;
    group.endpoints.push(endpoint);
    group.payloads!.push(payload);
    group.sizes.push(size);
    group.bytes += size;
    waitingMessages += 1;
    waitingBytes += size;
    scheduleEmits();
    return new Emitted(group, index);
  }

  const stopHandlers: (() => unknown)[] = [];
  function onStop(handler: () => unknown): void {
    if (typeof handler !== 'function') throw new TypeError('onStop(handler): the handler is a function');
    stopHandlers.push(handler);
  }

  function checkValue(value: unknown): string | Uint8Array {
    if (typeof value !== 'string' && !(value instanceof Uint8Array)) {
      throw codedError('E_STORAGE_VALUE', `A stored value is a string or a Uint8Array, not ${value === null ? 'null' : typeof value}`);
    }
    return value;
  }
  // Read-your-writes in the app's own heap: a get of a key this isolate put (or read) costs no
  // crossing. Only this isolate writes its app's storage (the platform stops the app before it
  // erases the storage), so what it was told is stored is what the host holds. A key with a put or
  // delete in flight is read from the host. An answer is kept only when nothing else could have
  // changed the key while it was under way: a put's when no other write of the key overlapped it,
  // a read's when no write of the key was in flight or asked for meanwhile. Nothing here depends
  // on the order the host applies or answers calls in. Bounded in bytes, least recently used out
  // first, and counted against the app's own memory limit like any of its data.
  const STORAGE_CACHE_BYTES = 1024 * 1024;
  const STORAGE_CACHE_VALUE_BYTES = 64 * 1024;
  /** Keys tracked for reads in flight before the oldest of those reads stops being kept. */
  const STORAGE_TRACKED_WRITES = 4096;
  const kept = new Map<string, { value: string | Uint8Array; size: number }>();
  let keptBytes = 0;
  /** Writes asked for so far: the clock that orders writes and reads. */
  let writesAsked = 0;
  /** Key -> writes of it in flight, and whether two of them were ever in flight at once. */
  const writesInFlight = new Map<string, { count: number; overlapped: boolean }>();
  /** While reads are in flight: key -> the number of its last write asked for. */
  const recentWrites = new Map<string, number>();
  let readsInFlight = 0;
  /** Reads asked for before this write number keep nothing (the tracking of recent writes overflowed). */
  let readFloor = 0;
  const sizeOf = (value: string | Uint8Array): number => (typeof value === 'string' ? 2 * value.length : value.byteLength);
  const own = (value: string | Uint8Array): string | Uint8Array => (typeof value === 'string' ? value : value.slice());
  function forget(key: string): void {
    const entry = kept.get(key);
    if (!entry) return;
    kept.delete(key);
    keptBytes -= entry.size;
  }
  function keep(key: string, value: string | Uint8Array): void {
    forget(key);
    const size = sizeOf(value) + 2 * key.length;
    if (size > STORAGE_CACHE_VALUE_BYTES) return;
    kept.set(key, { value, size });
    keptBytes += size;
    for (const [oldest, entry] of kept) {
      if (keptBytes <= STORAGE_CACHE_BYTES) break;
      kept.delete(oldest);
      keptBytes -= entry.size;
    }
  }
  /** A put or delete of `key`; `onStored` runs once it succeeded, if no other write of the key overlapped it. */
  function writing<T>(key: string, send: () => Promise<T>, onStored?: () => void): Promise<T> {
    forget(key);
    writesAsked += 1;
    const mine = writesAsked;
    const inFlight = writesInFlight.get(key) ?? { count: 0, overlapped: false };
    inFlight.count += 1;
    if (inFlight.count > 1) inFlight.overlapped = true;
    writesInFlight.set(key, inFlight);
    if (readsInFlight > 0) {
      recentWrites.set(key, mine);
      if (recentWrites.size > STORAGE_TRACKED_WRITES) {
        recentWrites.clear();
        readFloor = mine;
      }
    }
    const settle = (): boolean => {
      inFlight.count -= 1;
      if (inFlight.count === 0) writesInFlight.delete(key);
      return !inFlight.overlapped;
    };
    return send().then(
      (result) => {
        if (settle()) onStored?.();
        return result;
      },
      (error: unknown) => {
        settle();
        throw error;
      },
    );
  }
  function read(key: string): Promise<string | Uint8Array | undefined> {
    const asked = writesAsked;
    const afterAWrite = writesInFlight.has(key);
    readsInFlight += 1;
    const settle = (): boolean => {
      readsInFlight -= 1;
      const keepIt = !afterAWrite && asked >= readFloor && !writesInFlight.has(key) && (recentWrites.get(key) ?? 0) <= asked;
      if (readsInFlight === 0) recentWrites.clear();
      return keepIt;
    };
    return call('storage.get', [key]).then(
      (value) => {
        if (settle() && value !== undefined) keep(key, own(value));
        return value;
      },
      (error: unknown) => {
        settle();
        throw error;
      },
    );
  }
  const storage = Object.freeze({
    get: (key: string): Promise<string | Uint8Array | undefined> => {
      if (typeof key !== 'string') return call('storage.get', [key]);
      const hit = writesInFlight.has(key) ? undefined : kept.get(key);
      if (!hit) return read(key);
      // Most recently used: to the end of the map's order.
      kept.delete(key);
      kept.set(key, hit);
      return Promise.resolve(own(hit.value));
    },
    put: (key: string, value: string | Uint8Array): Promise<void> => {
      // The value as it is now, in memory of its own: the app may change its bytes while the put is under way.
      const copy = own(checkValue(value));
      if (typeof key !== 'string') return call('storage.put', [key, copy], { copyAsIs: true });
      return writing(
        key,
        () => call('storage.put', [key, copy], { copyAsIs: true }),
        () => keep(key, copy),
      );
    },
    delete: (key: string): Promise<boolean> => (typeof key === 'string' ? writing(key, () => call('storage.delete', [key])) : call('storage.delete', [key])),
    list: (prefix = '') => call('storage.list', [prefix]),
    usage: () => call('storage.usage', []),
  });

  function deepFreeze<T>(value: T): T {
    if (value && typeof value === 'object') {
      for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
      Object.freeze(value);
    }
    return value;
  }
  let configuration = deepFreeze(parse(grants.config) as Record<string, unknown>);
  const configHandlers: ((configuration: Record<string, unknown>) => unknown)[] = [];
  const config = Object.freeze({
    get: () => configuration,
    onChange(handler: (configuration: Record<string, unknown>) => unknown) {
      if (typeof handler !== 'function') throw new TypeError('config.onChange(handler): the handler is a function');
      configHandlers.push(handler);
    },
  });

  // TLS byte streams to the app's tls targets. The platform holds the socket; the app holds a
  // number and this object. A chunk that arrives before the app listens waits, and so does the
  // socket behind it: the host reads no further until the app has taken the chunk.
  interface ConnectionState {
    dataHandlers: ((chunk: Uint8Array) => unknown)[];
    closeHandlers: ((error?: CodedError) => unknown)[];
    waitingForListener: (() => void)[];
    connection: { target: string };
  }
  const connections = new Map<number, ConnectionState>();
  let nextConnection = 1;

  function checkChunk(chunk: unknown): string | Uint8Array {
    if (typeof chunk !== 'string' && !(chunk instanceof Uint8Array)) throw codedError('E_BAD_REQUEST', 'A chunk is a string or a Uint8Array');
    return chunk;
  }

  function openConnection(id: number, target: string): ConnectionState {
    const state: ConnectionState = { dataHandlers: [], closeHandlers: [], waitingForListener: [], connection: { target } };
    state.connection = Object.freeze({
      target,
      on(event: string, handler: (value: never) => unknown) {
        if (typeof handler !== 'function') throw new TypeError('on(event, handler): the handler is a function');
        if (event === 'data') {
          state.dataHandlers.push(handler as (chunk: Uint8Array) => unknown);
          for (const release of state.waitingForListener.splice(0)) release();
        } else if (event === 'close') state.closeHandlers.push(handler as (error?: CodedError) => unknown);
        else throw new TypeError('A connection has "data" and "close" events');
      },
      write: (chunk: string | Uint8Array) => call('egress.write', [id, checkChunk(chunk)], { copyAsIs: true }),
      end: () => call('egress.end', [id]),
    });
    connections.set(id, state);
    return state;
  }

  const connectionEvent: GuestOperations['connectionEvent'] = async (id, kind, payload) => {
    const state = connections.get(id);
    if (!state) return;
    if (kind === 'data') {
      if (state.dataHandlers.length === 0) await new Promise<void>((release) => state.waitingForListener.push(release));
      for (const handler of state.dataHandlers) {
        try {
          const result = handler(payload as Uint8Array) as { then?: unknown } | undefined;
          if (result && typeof result.then === 'function') await result;
        } catch (error) {
          writeLog(LEVELS.error, [`data handler of the connection to "${state.connection.target}" failed:`, error]);
        }
      }
      return;
    }
    connections.delete(id);
    // Data still waiting for a listener is dropped with the connection.
    for (const release of state.waitingForListener.splice(0)) release();
    const closed = payload as { code: string; message: string } | undefined;
    const error = closed ? codedError(closed.code, closed.message) : undefined;
    for (const handler of state.closeHandlers) {
      try {
        handler(error);
      } catch (failure) {
        writeLog(LEVELS.error, [`close handler of the connection to "${state.connection.target}" failed:`, failure]);
      }
    }
  };

  /** A response as the app sees it: bytes as bytes, and their UTF-8 text on request. */
  function response(answer: FetchResponse) {
    const body = answer.body;
    return Object.freeze({ status: answer.status, headers: Object.freeze(answer.headers), body, text: () => decodeUtf8(body) });
  }

  const egress = Object.freeze({
    async connect(target: string) {
      const id = nextConnection++;
      const state = openConnection(id, target);
      try {
        await call('egress.connect', [target, id]);
      } catch (error) {
        connections.delete(id);
        throw error;
      }
      return state.connection;
    },
    async fetch(target: string, request: FetchRequest = {}) {
      const wire: FetchRequest = {};
      for (const name of ['method', 'path', 'headers', 'body', 'timeoutMs'] as const) {
        if (request[name] !== undefined) (wire as Record<string, unknown>)[name] = request[name];
      }
      return response(await call('egress.fetch', [target, wire], { copyAsIs: copiedAsIs(request.body) }));
    },
    publish: (target: string, topic: string, payload: string | Uint8Array, options: { qos?: 0 | 1; retain?: boolean } = {}) => {
      const wire: { qos?: 0 | 1; retain?: boolean } = {};
      if (options.qos !== undefined) wire.qos = options.qos;
      if (options.retain !== undefined) wire.retain = options.retain;
      return call('egress.publish', [target, topic, payload, wire], { copyAsIs: copiedAsIs(payload) });
    },
  });

  const app = Object.freeze({ packageId: grants.packageId, version: grants.version, name: grants.name });

  // Timers run on the host's clock; each firing is an event under the app's CPU limit.
  const timers = new Map<number, { callback: () => unknown; repeat: boolean }>();
  let nextTimer = 1;
  function addTimer(callback: () => unknown, ms: unknown, repeat: boolean): number {
    if (typeof callback !== 'function') throw new TypeError('A timer callback is a function');
    if (timers.size >= grants.maxTimers) throw refused(refusals.timerLimit(grants.maxTimers));
    const id = nextTimer++;
    const delay = Math.max(repeat ? grants.minIntervalMs : 0, Number(ms) > 0 ? Math.min(Math.floor(Number(ms)), 2 ** 31 - 1) : 0);
    timers.set(id, { callback, repeat });
    notify('timer.set', [id, delay, repeat]);
    return id;
  }
  function clearTimer(id: unknown): void {
    if (typeof id === 'number' && timers.delete(id)) notify('timer.clear', [id]);
  }
  const globals = {
    setTimeout: (callback: () => unknown, ms?: number) => addTimer(callback, ms, false),
    setInterval: (callback: () => unknown, ms?: number) => addTimer(callback, ms, true),
    clearTimeout: clearTimer,
    clearInterval: clearTimer,
    queueMicrotask: (callback: () => void) => {
      Promise.resolve().then(callback);
    },
    console: Object.freeze({
      log: log.info,
      info: log.info,
      warn: log.warning,
      error: log.error,
      debug: log.debug,
      trace: log.trace,
    }),
  };
  for (const [name, value] of Object.entries(globals)) {
    Object.defineProperty(globalThis, name, { value: Object.freeze(value), writable: false, configurable: false, enumerable: false });
  }

  async function runAll(list: ((...args: never[]) => unknown)[], args: unknown[], what: string): Promise<void> {
    for (const handler of list) {
      try {
        await (handler as (...a: unknown[]) => unknown)(...args);
      } catch (error) {
        writeLog(LEVELS.error, [`${what} failed:`, error]);
        throw error;
      }
    }
  }

  /** Runs the handlers for one message; false when one of them threw or rejected. */
  /**
   * Runs the handlers on one message: true when none failed. Synchronous while the handlers
   * are: a promise, and its microtask turn, per message would cost more than most messages.
   */
  function handle(endpoint: string, list: Handler[], message: unknown, from = 0): boolean | Promise<boolean> {
    for (let index = from; index < list.length; index += 1) {
      try {
        const result = list[index]!(message) as { then?: unknown } | undefined;
        if (result && typeof result.then === 'function') return finishAsync(endpoint, list, index, result as Promise<unknown>, message);
      } catch (error) {
        return failedThen(endpoint, error, list, index + 1, message);
      }
    }
    return true;
  }

  /** The rest of `handle` once a handler returned a promise: the handlers still run in order. */
  async function finishAsync(endpoint: string, list: Handler[], index: number, pending: Promise<unknown>, message: unknown): Promise<boolean> {
    let ok = true;
    try {
      await pending;
    } catch (error) {
      ok = false;
      writeLog(LEVELS.error, [`handler for "${endpoint}" failed:`, error]);
    }
    const rest = handle(endpoint, list, message, index + 1);
    return (typeof rest === 'boolean' ? rest : await rest) && ok;
  }

  function failedThen(endpoint: string, error: unknown, list: Handler[], next: number, message: unknown): boolean | Promise<boolean> {
    writeLog(LEVELS.error, [`handler for "${endpoint}" failed:`, error]);
    const rest = next < list.length ? handle(endpoint, list, message, next) : true;
    return typeof rest === 'boolean' ? false : rest.then(() => false);
  }

  // The traffic gate's inspector (traffic.inspect, the platform's own apps only). The gate hands
  // it many connections' events in one crossing; that is invisible to the inspector, which sees
  // one call per event. Whatever it throws or answers badly fails the app: the gate fails closed.
  interface Inspector {
    open(connection: unknown): unknown;
    data(connectionId: number, direction: string, bytes: Uint8Array, timestampMs: number): TrafficVerdict;
    close(connectionId: number): unknown;
  }
  const capabilities = new Set(grants.capabilities);
  let inspector: Inspector | undefined;
  const traffic = Object.freeze({
    inspect(candidate: Inspector) {
      if (!capabilities.has('traffic.inspect')) throw refused(refusals.noTrafficInspect());
      if (inspector) throw refused(refusals.inspectorTwice());
      if (!candidate || typeof candidate.open !== 'function' || typeof candidate.data !== 'function' || typeof candidate.close !== 'function') {
        throw new TypeError('traffic.inspect(inspector): the inspector has open, data and close functions');
      }
      inspector = candidate;
      notify('traffic.inspect', []);
    },
  });
  const DIRECTIONS = ['to_server', 'to_client'] as const;
  /**
   * Alerts this isolate has sent the host, by their number in the table both sides keep
   * (protocol.ts PackedVerdicts): the inspector's rules hand out the same alert object each time
   * they match, so an alert crosses once, and later answers name it by number.
   */
  const alertNumbers = new Map<TrafficAlert, number>();
  /**
   * One packed crossing (protocol.ts PackedInspection), its answer packed too (PackedVerdicts).
   * Each frame reaches the inspector as a view into the crossing's one buffer: no copy and no
   * buffer of its own per frame.
   */
  function inspect(control: Float64Array, bytes: Uint8Array, opens: TrafficConnection[]): PackedVerdicts {
    if (!inspector) throw new Error('No traffic inspector is registered');
    const items = control.length / INSPECT_WORDS;
    let dataItems = 0;
    for (let at = 0; at < control.length; at += INSPECT_WORDS) if (control[at] === INSPECT_KIND.data) dataItems += 1;
    const releases = new Float64Array(dataItems);
    const alertEnds = new Uint32Array(dataItems);
    // The alerts each verdict names, and the drops, as objects: numbered once the crossing is done.
    const named: TrafficAlert[] = [];
    const drops: [item: number, alert: TrafficAlert][] = [];
    let offset = 0;
    let data = 0;
    let opened = 0;
    for (let item = 0; item < items; item += 1) {
      const at = item * INSPECT_WORDS;
      const kind = control[at];
      if (kind === INSPECT_KIND.data) {
        const length = control[at + 3]!;
        const view = bytes.subarray(offset, offset + length);
        offset += length;
        const verdict = inspector.data(control[at + 1]!, DIRECTIONS[control[at + 2]!]!, view, control[at + 4]!) as Partial<{
          release: unknown;
          drop: TrafficAlert;
          alerts: unknown;
        }> | null;
        if (!verdict || typeof verdict !== 'object') throw new TypeError('traffic inspector: data() answered no verdict');
        if ('drop' in verdict) {
          if (!verdict.drop || typeof verdict.drop !== 'object') throw new TypeError('traffic inspector: a drop verdict without its alert');
          drops.push([data, verdict.drop]);
        } else {
          // Checked here, as the packed number cannot say what it was: a negative one would read as a drop.
          const release = verdict.release;
          if (typeof release !== 'number' || !Number.isSafeInteger(release) || release < 0) {
            throw new TypeError('traffic inspector: release is not a non-negative integer');
          }
          releases[data] = release;
        }
        if (verdict.alerts !== undefined) {
          if (!Array.isArray(verdict.alerts)) throw new TypeError('traffic inspector: alerts is not a list');
          for (const alert of verdict.alerts as TrafficAlert[]) named.push(alert);
        }
        alertEnds[data] = named.length;
        data += 1;
      } else if (kind === INSPECT_KIND.open) {
        inspector.open(deepFreeze(opens[opened++]));
      } else {
        inspector.close(control[at + 1]!);
      }
    }
    const words = new Float64Array(2 * dataItems + named.length);
    words.set(releases, 0);
    words.set(alertEnds, dataItems);
    let base = alertNumbers.size;
    let fresh: TrafficAlert[] = [];
    const number = (alert: TrafficAlert): number => {
      let known = alertNumbers.get(alert);
      if (known === undefined) {
        known = alertNumbers.size;
        // Named by its number from now on, it must stay what was sent: a change would reach no one.
        // (Network Protector freezes its alerts when it compiles its rules, so nothing changes here.)
        if (!Object.isFrozen(alert)) Object.freeze(alert);
        alertNumbers.set(alert, known);
        fresh.push(alert);
      }
      return known;
    };
    const numberAll = (): void => {
      for (let at = 0; at < named.length; at += 1) words[2 * dataItems + at] = number(named[at]!);
      for (const [item, alert] of drops) words[item] = -1 - number(alert);
    };
    numberAll();
    if (alertNumbers.size > ALERT_TABLE_LIMIT && base > 0) {
      // Past the limit (an inspector making new alert objects): numbered again, this crossing's alone.
      alertNumbers.clear();
      base = 0;
      fresh = [];
      numberAll();
    }
    if (alertNumbers.size > ALERT_TABLE_LIMIT) {
      alertNumbers.clear();
      throw new TypeError(`traffic inspector: one crossing named more than ${ALERT_TABLE_LIMIT} distinct alerts`);
    }
    return fresh.length === 0 ? words : [words, fresh, base];
  }

  const sdk = Object.freeze({ app, log, on, emit, onStop, storage, config, egress, traffic });

  // One batch for a destination endpoint, its handlers in order. Its outcome crosses back by a
  // call of its own (GuestOperations.deliver): a promise handed back by isolated-vm costs the
  // gateway's thread a stack trace, an async resource and a promise per batch.
  async function reportBatch(
    id: number,
    endpoint: string,
    text: string | undefined,
    lengths: number[] | undefined,
    messages: Uint8Array[] | undefined,
    more: string[] | Uint8Array[],
  ): Promise<void> {
    let outcome: Parameters<DeliveredReport>;
    try {
      const { invalid, failed } = await handleBatch(endpoint, text, lengths, messages, more);
      if (invalid.length === 0 && failed.length === 0) {
        deliveredRef.applyIgnored(undefined, [id]);
        return;
      }
      outcome = [id, invalid, failed, undefined];
    } catch (error) {
      outcome = [id, undefined, undefined, show(error)];
    }
    deliveredRef.applyIgnored(undefined, outcome, copyArgs);
  }

  async function handleBatch(
    endpoint: string,
    text: string | undefined,
    lengths: number[] | undefined,
    messages: Uint8Array[] | undefined,
    more: string[] | Uint8Array[],
  ): Promise<DeliverResult> {
    const json = destinations.get(endpoint)?.format === 'json';
    const list = handlers.get(endpoint) ?? [];
    const invalid: number[] = [];
    const failed: number[] = [];
    // Large byte arrays come one argument each, in `more` (protocol.ts GuestOperations).
    if (!messages && text === undefined) messages = more as Uint8Array[];
    if (messages) {
      for (let index = 0; index < messages.length; index += 1) {
        const outcome = handle(endpoint, list, messages[index]);
        if (!(typeof outcome === 'boolean' ? outcome : await outcome)) failed.push(index);
      }
      return { invalid, failed };
    }
    if (text === undefined || lengths === undefined) return { invalid, failed };
    // The text comes in pieces (protocol.ts DeliverBatch); the router cuts them between
    // messages, and a message that runs on into the next piece is put together all the same.
    const pieces = more as string[];
    let current = text;
    let next = 0;
    let offset = 0;
    for (let index = 0; index < lengths.length; index += 1) {
      let length = lengths[index]!;
      let piece = '';
      while (offset + length > current.length && next < pieces.length) {
        piece += slice(current, offset, current.length);
        length -= current.length - offset;
        current = pieces[next++]!;
        offset = 0;
      }
      piece += slice(current, offset, offset + length);
      offset += length;
      let message: unknown = piece;
      if (json) {
        // Each message on its own: one that is not JSON, or nests too deep, is only itself invalid.
        try {
          message = parse(piece);
        } catch {
          invalid.push(index);
          continue;
        }
        if (jsonDepth(message, grants.maxDepth) > grants.maxDepth) {
          invalid.push(index);
          continue;
        }
      }
      const outcome = handle(endpoint, list, message);
      if (!(typeof outcome === 'boolean' ? outcome : await outcome)) failed.push(index);
    }
    return { invalid, failed };
  }

  // What the host calls. The references are held by the host only.
  const guest: GuestOperations = Object.freeze({
    answer(text: string, copied: [number, CallAnswer][] = [], lifted: [number, string, Uint8Array][] = []) {
      const answers = parse(text) as [number, CallAnswer][];
      if (lifted.length > 0) {
        const values = new Map<number, Record<string, unknown>>();
        for (const [id, answer] of answers) if ('value' in answer) values.set(id, answer.value as Record<string, unknown>);
        for (const [id, field, bytes] of lifted) {
          const value = values.get(id);
          if (value) value[field] = bytes;
        }
      }
      for (const [id, answer] of answers) answerCall(id, answer);
      for (const [id, answer] of copied) answerCall(id, answer);
    },
    connectionEvent,
    deliver(
      id: number,
      endpoint: string,
      text: string | undefined,
      lengths: string | undefined,
      messages: Uint8Array[] | undefined,
      ...more: string[] | Uint8Array[]
    ): void {
      void reportBatch(id, endpoint, text, lengths === undefined ? undefined : (parse(lengths) as number[]), messages, more);
    },
    fire(id: number) {
      const timer = timers.get(id);
      if (!timer) return;
      if (!timer.repeat) timers.delete(id);
      try {
        const result = timer.callback() as { then?: unknown } | undefined;
        if (result && typeof result.then === 'function') {
          (result as Promise<unknown>).then(undefined, (error) => writeLog(LEVELS.error, ['timer callback failed:', error]));
        }
      } catch (error) {
        writeLog(LEVELS.error, ['timer callback failed:', error]);
      }
    },
    async configChanged(text: string) {
      configuration = deepFreeze(parse(text) as Record<string, unknown>);
      await runAll(configHandlers, [configuration], 'config.onChange handler').catch(() => undefined);
    },
    async stop() {
      await runAll(stopHandlers, [], 'onStop handler').catch(() => undefined);
    },
    inspect,
  });

  const ready = (): void => notify('ready', []);
  Object.defineProperty(globalThis, '__isogate_sdk__', { value: sdk, configurable: true, enumerable: false, writable: false });
  Object.defineProperty(globalThis, '__isogate_ready__', { value: ready, configurable: true, enumerable: false, writable: false });
  return guest;
}
