/**
 * The one declared protocol across the isolation boundary: every operation that crosses, both
 * ways, with its arguments and result. Guest -> host operations are a table of codecs, and the
 * table is at once the types (inferred from the codecs, no second copy) and the runtime check:
 * `decodeCall` takes apart an app's call, argument by argument, before any handler runs, and a
 * malformed one gets E_BAD_REQUEST naming the operation and the argument. An app controls
 * everything in its own isolate, its copy of the SDK included, so what arrives here is hostile
 * until decoded.
 *
 * Host -> guest operations are declared as types only: the host is the trusted side, and what it
 * sends is built by this module's types.
 *
 * Every message is a copy. isolated-vm copies values across, except a SharedArrayBuffer, which it
 * passes by reference; the bytes codec copies anything backed by one into a fresh ArrayBuffer,
 * so no memory is ever shared between an app and the host or between two apps.
 */
import { type ErrorCode, fail, type IsogateError } from '../../sdk/errors.js';
import type { EndpointDeclaration } from '../../sdk/manifest.js';
import { ALERT_TABLE_LIMIT, INSPECT_KIND, INSPECT_WORDS } from './inspect-wire.js';
import { MAX_EMIT_BATCH } from './wire-limits.js';

// ---------------------------------------------------------------------------------------------
// Codecs

export interface Codec<T> {
  /** What the value is, for the refusal's sentence ("a string", "bytes"...). */
  readonly expected: string;
  /** The checked value (a copy where the input could share memory); throws a Mismatch. */
  decode(value: unknown): T;
}
export type Infer<C> = C extends Codec<infer T> ? T : never;

/** Where inside an argument a value did not fit, and what was expected there. */
class Mismatch extends Error {
  constructor(
    readonly path: string,
    readonly expected: string,
  ) {
    super(expected);
  }
}

const codec = <T>(expected: string, decode: (value: unknown) => T): Codec<T> => ({ expected, decode });
const check = <T>(expected: string, test: (value: unknown) => value is T): Codec<T> =>
  codec(expected, (value) => {
    if (!test(value)) throw new Mismatch('', expected);
    return value;
  });
const within = (path: string, decode: () => unknown): unknown => {
  try {
    return decode();
  } catch (error) {
    if (error instanceof Mismatch) throw new Mismatch(`${path}${error.path}`, error.expected);
    throw error;
  }
};

export const string = check('a string', (value): value is string => typeof value === 'string');
export const boolean = check('a boolean', (value): value is boolean => typeof value === 'boolean');
export const int = check('an integer', (value): value is number => Number.isSafeInteger(value));
export const count = check('a non-negative integer', (value): value is number => Number.isSafeInteger(value) && (value as number) >= 0);
export const unit = check('nothing', (value): value is undefined => value === undefined);

/**
 * Bytes, always in memory of their own: a view of a SharedArrayBuffer (which isolated-vm passes
 * by reference, so its sender could still write to it) is copied into a fresh ArrayBuffer.
 */
export const bytes: Codec<Uint8Array> = codec('bytes (a Uint8Array)', (value) => {
  if (!(value instanceof Uint8Array)) throw new Mismatch('', 'bytes (a Uint8Array)');
  // isolated-vm copies the whole buffer behind a view: a 1-byte view of an 8 MiB buffer would
  // hold 8 MiB on the host while counting 1. Only a view that is its whole buffer is kept.
  const whole = value.buffer instanceof ArrayBuffer && value.byteOffset === 0 && value.byteLength === value.buffer.byteLength;
  return whole ? value : value.slice();
});

export function literal<const T extends readonly (string | number | boolean)[]>(...values: T): Codec<T[number]> {
  const expected = values.map((v) => JSON.stringify(v)).join(' or ');
  return check(expected, (value): value is T[number] => values.includes(value as T[number]));
}

export function optional<T>(inner: Codec<T>): Codec<T | undefined> {
  return codec(`${inner.expected} or nothing`, (value) => (value === undefined ? undefined : inner.decode(value)));
}

export function array<T>(item: Codec<T>, max: number): Codec<T[]> {
  return codec(`a list of at most ${max} of ${item.expected}`, (value) => {
    if (!Array.isArray(value) || value.length > max) throw new Mismatch('', `a list of at most ${max} of ${item.expected}`);
    // Holes survive the copy, and map would skip them: every index is decoded.
    const decoded: T[] = [];
    for (let index = 0; index < value.length; index += 1) {
      if (!(index in value)) throw new Mismatch(`[${index}]`, item.expected);
      decoded.push(within(`[${index}]`, () => item.decode(value[index])) as T);
    }
    return decoded;
  });
}

type Decoded<Cs extends readonly Codec<unknown>[]> = { -readonly [K in keyof Cs]: Infer<Cs[K]> };

export function tuple<const Cs extends readonly Codec<unknown>[]>(...items: Cs): Codec<Decoded<Cs>> {
  const expected = `a list of ${items.length}`;
  return codec(expected, (value) => {
    if (!Array.isArray(value) || value.length > items.length) throw new Mismatch('', expected);
    return items.map((item, index) => within(`[${index}]`, () => item.decode(value[index]))) as Decoded<Cs>;
  });
}

/** A plain object with only the named fields, each optional; copied, so no getter or prototype survives. */
export function fields<Shape extends Record<string, Codec<unknown>>>(shape: Shape): Codec<{ [K in keyof Shape]?: Infer<Shape[K]> }> {
  const names = Object.keys(shape);
  const expected = `an object with at most ${names.join(', ')}`;
  return codec(expected, (value) => {
    if (value === undefined) return {};
    if (!isPlainObject(value)) throw new Mismatch('', expected);
    for (const key of Object.keys(value)) if (!Object.hasOwn(shape, key)) throw new Mismatch(`.${key}`, 'no such field');
    const out: Record<string, unknown> = {};
    for (const name of names) {
      const field = within(`.${name}`, () => (value[name] === undefined ? undefined : shape[name]!.decode(value[name])));
      if (field !== undefined) out[name] = field;
    }
    return out as { [K in keyof Shape]?: Infer<Shape[K]> };
  });
}

/** Names to strings (headers), at most `max` of them, as a fresh object without a prototype chain to poison. */
export function recordOfStrings(max: number): Codec<Record<string, string>> {
  const expected = `an object of at most ${max} string values`;
  return codec(expected, (value) => {
    if (!isPlainObject(value)) throw new Mismatch('', expected);
    const entries = Object.entries(value);
    if (entries.length > max) throw new Mismatch('', expected);
    const out: Record<string, string> = {};
    for (const [key, entry] of entries) {
      if (typeof entry !== 'string') throw new Mismatch(`.${key}`, 'a string');
      Object.defineProperty(out, key, { value: entry, enumerable: true, writable: true, configurable: true });
    }
    return out;
  });
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** A result type, declared: what the host answers is built by typed handlers, not decoded. */
const returns = <T>(): Codec<T> => codec('a result', (value) => value as T);

// ---------------------------------------------------------------------------------------------
// The data plane's wire

export { EMIT_BATCH_BYTES, EMIT_BATCH_MESSAGES, EMIT_WAITING_BYTES, EMIT_WAITING_MESSAGES, MAX_EMIT_BATCH } from './wire-limits.js';

/**
 * Consecutive emits on one endpoint. json and text: the messages' texts concatenated without
 * separators, and their lengths in UTF-16 code units (no join character that could hide a
 * message); binary: the messages' bytes.
 */
export type TextRun = [endpoint: string, text: string, lengths: number[]];
export type BinaryRun = [endpoint: string, messages: Uint8Array[]];
export type EmitRun = TextRun | BinaryRun;

const textRun = tuple(string, string, array(count, MAX_EMIT_BATCH));
const binaryRun = tuple(string, array(bytes, MAX_EMIT_BATCH));
const emitRun: Codec<EmitRun> = codec('[endpoint, text, lengths] or [endpoint, bytes[]]', (value) =>
  Array.isArray(value) && typeof value[1] === 'string' ? textRun.decode(value) : binaryRun.decode(value),
);

/**
 * An emit batch's payloads (a text run's text, a binary run's messages) cross as arguments of
 * their own beside the calls, and a run names its payload by position: `[endpoint, index,
 * lengths]` or `[endpoint, first, count]`. isolated-vm copies a top-level string or Uint8Array
 * once (a large string arrives as an external string, not copied again); nested in the batch it
 * would go through V8's serializer: two copies and a buffer that grows into fresh pages, whose
 * page faults cost more than the copies (measured: the kernel zeroing pages led the profile of
 * 64 KB messages). Resolved before decoding: the codecs check what the run resolved to, and a
 * position that names nothing, the wrong kind, or a payload another run named, fails decoding like
 * any malformed run.
 */
export function resolvePayloads(runs: unknown, payloads: readonly unknown[]): unknown {
  if (!Array.isArray(runs) || payloads.length === 0) return runs;
  // Each payload is one run's (as the SDK places them): a payload named again would turn one
  // crossing's bytes into as many messages' worth as the batch has runs, past the byte bounds.
  const named = new Uint8Array(payloads.length);
  const claim = (first: number, count: number): boolean => {
    for (let at = first; at < first + count; at += 1) if (named[at]) return false;
    named.fill(1, first, first + count);
    return true;
  };
  return runs.map((run: unknown) => {
    if (!Array.isArray(run) || run.length !== 3 || !Number.isSafeInteger(run[1])) return run;
    const [endpoint, first, rest] = run as [unknown, number, unknown];
    const inside = first >= 0 && first < payloads.length;
    if (typeof rest !== 'number') return [endpoint, inside && claim(first, 1) ? payloads[first] : undefined, rest];
    const valid = Number.isSafeInteger(rest) && first >= 0 && rest >= 0 && rest <= MAX_EMIT_BATCH && first + rest <= payloads.length;
    return [endpoint, valid && claim(first, rest) ? payloads.slice(first, first + rest) : undefined];
  });
}

/** A run whose structure the sandbox checked: a declared source endpoint, of its format, lengths that add up. */
export type CheckedRun = { endpoint: EndpointDeclaration; text: string; lengths: number[] } | { endpoint: EndpointDeclaration; messages: Uint8Array[] };
/** A message the host refused: its index across the batch, the code and the sentence. */
export type EmitRefusal = [index: number, code: ErrorCode, message: string];

/**
 * A batch handed to a destination: json and text as texts (the pieces of one text, in order,
 * each about TEXT_PIECE_UNITS at most where the messages allow) and the messages' lengths
 * across them; binary as bytes.
 */
export type DeliverBatch = { texts: string[]; lengths: number[] } | { messages: Uint8Array[] };
/** Indexes in the batch: not JSON or too deep (not handed to the handler), and those whose handler threw. */
export interface DeliverResult {
  invalid: number[];
  failed: number[];
}

// ---------------------------------------------------------------------------------------------
// Guest -> host

/**
 * A stored value, a payload or a chunk: a string or bytes, told apart by its type: trying one
 * codec and then the other would build and throw a Mismatch for every put of bytes first.
 */
const stringOrBytes: Codec<string | Uint8Array> = codec(`${string.expected} or ${bytes.expected}`, (value) => {
  if (typeof value === 'string') return value;
  if (!(value instanceof Uint8Array)) throw new Mismatch('', `${string.expected} or ${bytes.expected}`);
  return bytes.decode(value);
});

const request = fields({
  method: literal('GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'),
  path: string,
  headers: recordOfStrings(256),
  body: stringOrBytes,
  timeoutMs: count,
});
const publishOptions = fields({ qos: literal(0, 1), retain: boolean });

export type FetchRequest = Infer<typeof request>;
export interface FetchResponse {
  status: number;
  headers: Record<string, string>;
  body: Uint8Array;
}

/**
 * Every operation an app may ask of the host. `call`s are answered (the guest awaits them);
 * `notify`s are not (log lines, timers, readiness) and a refused one is dropped.
 */
export const HOST_OPERATIONS = {
  'storage.get': { kind: 'call', args: [string], result: returns<string | Uint8Array | undefined>() },
  'storage.put': { kind: 'call', args: [string, stringOrBytes], result: returns<void>() },
  'storage.delete': { kind: 'call', args: [string], result: returns<boolean>() },
  'storage.list': { kind: 'call', args: [string], result: returns<string[]>() },
  'storage.usage': { kind: 'call', args: [], result: returns<{ used: number; quota: number }>() },
  'emit.batch': { kind: 'call', args: [array(emitRun, MAX_EMIT_BATCH)], result: returns<EmitRefusal[]>() },
  'egress.fetch': { kind: 'call', args: [string, request], result: returns<FetchResponse>() },
  'egress.publish': { kind: 'call', args: [string, string, stringOrBytes, publishOptions], result: returns<void>() },
  /** The guest numbers its connections; events come back with that number. */
  'egress.connect': { kind: 'call', args: [string, count], result: returns<void>() },
  'egress.write': { kind: 'call', args: [count, stringOrBytes], result: returns<void>() },
  'egress.end': { kind: 'call', args: [count], result: returns<void>() },
  log: { kind: 'notify', args: [literal(0, 1, 2, 3, 4, 5), string], result: returns<void>() },
  'timer.set': { kind: 'notify', args: [count, count, boolean], result: returns<void>() },
  'timer.clear': { kind: 'notify', args: [count], result: returns<void>() },
  /** The app's top-level code finished (sent by the readiness module only). */
  ready: { kind: 'notify', args: [], result: returns<void>() },
  /** The app registers its one traffic inspector (`traffic.inspect`): the host checks the capability. */
  'traffic.inspect': { kind: 'notify', args: [], result: returns<void>() },
} as const satisfies Record<string, { kind: 'call' | 'notify'; args: readonly Codec<unknown>[]; result: Codec<unknown> }>;

type Table = typeof HOST_OPERATIONS;
export type HostOperation = keyof Table;
export type CallOperation = { [Op in HostOperation]: Table[Op]['kind'] extends 'call' ? Op : never }[HostOperation];
export type NotifyOperation = Exclude<HostOperation, CallOperation>;
export type Args<Op extends HostOperation> = Decoded<Table[Op]['args']>;
export type Result<Op extends HostOperation> = Infer<Table[Op]['result']>;
/** The host's side of the table: one handler per operation, each starting with its capability check. */
export type HostHandlers = { [Op in HostOperation]: (...args: Args<Op>) => Promise<Result<Op>> };

export function isHostOperation(op: unknown): op is HostOperation {
  return typeof op === 'string' && Object.hasOwn(HOST_OPERATIONS, op);
}

/** Decodes an app's call; E_BAD_REQUEST names the operation and the argument that does not fit. */
export function decodeCall<Op extends HostOperation>(op: Op, args: unknown): Args<Op>;
export function decodeCall(op: unknown, args: unknown): Args<HostOperation>;
export function decodeCall(op: unknown, args: unknown): unknown[] {
  if (!isHostOperation(op)) throw fail('E_BAD_REQUEST', `Unknown platform call ${JSON.stringify(String(op)).slice(0, 80)}`);
  const codecs: readonly Codec<unknown>[] = HOST_OPERATIONS[op].args;
  if (!Array.isArray(args) || args.length > codecs.length)
    throw fail('E_BAD_REQUEST', `${op} takes ${codecs.length} argument${codecs.length === 1 ? '' : 's'}`);
  return codecs.map((item, index) => {
    try {
      return item.decode(args[index]);
    } catch (error) {
      if (!(error instanceof Mismatch)) throw error;
      const where = `argument ${index + 1}${error.path}`;
      throw fail('E_BAD_REQUEST', `${op}: ${where} is not ${error.expected}`, { op, argument: index });
    }
  });
}

/** Decodes and runs one call through the handlers: the only way an app's call reaches the host. */
export async function dispatch(handlers: HostHandlers, op: unknown, args: unknown): Promise<unknown> {
  const decoded = decodeCall(op, args);
  const handler = handlers[op as HostOperation] as (...a: unknown[]) => Promise<unknown>;
  return handler(...decoded);
}

// ---------------------------------------------------------------------------------------------
// Traffic inspection (the traffic gate -> an app holding traffic.inspect)

/** The TCP connection of a protected service, as the inspector sees it (the SDK declares the same: sdk/app/isogate-sdk.d.ts). */
export interface TrafficConnection {
  id: number;
  service: string;
  protocol: 'modbus' | 'mqtt';
  srcIp: string;
  srcPort: number;
  destIp: string;
  destPort: number;
}
export type TrafficDirection = 'to_server' | 'to_client';
/** What the gate hands an inspector in one crossing, in order: many connections' events at once. */
export type InspectItem =
  | [kind: 'open', connection: TrafficConnection]
  | [kind: 'data', connectionId: number, direction: TrafficDirection, bytes: Uint8Array, timestampMs: number]
  | [kind: 'close', connectionId: number];

/** Bounds of an alert's fields: an inspector is an app, and what it answers is hostile until decoded. */
export const TRAFFIC_ALERT_LIMITS = { signatureChars: 1024, categoryChars: 256, alertsPerVerdict: 64 } as const;

const boundedString = (max: number) =>
  check(`a string of at most ${max} characters`, (value): value is string => typeof value === 'string' && value.length <= max);
// Made once: every crossing decodes its alerts with it.
const alertFields = fields({
  sid: count,
  gid: count,
  rev: count,
  signature: boundedString(TRAFFIC_ALERT_LIMITS.signatureChars),
  action: literal('alert', 'drop', 'pass'),
  category: boundedString(TRAFFIC_ALERT_LIMITS.categoryChars),
  severity: count,
});
const alertCodec = codec('an alert', (value) => {
  const decoded = alertFields.decode(value);
  for (const name of ['sid', 'gid', 'rev', 'signature', 'action', 'category', 'severity'] as const) {
    if (decoded[name] === undefined) throw new Mismatch(`.${name}`, 'a required field');
  }
  return decoded as Required<typeof decoded>;
});
export type TrafficAlert = Infer<typeof alertCodec>;
export type TrafficVerdict = { release: number; alerts?: TrafficAlert[] } | { drop: TrafficAlert; alerts?: TrafficAlert[] };

/**
 * One crossing as it travels into the isolate: every item's numbers in one array, every data
 * item's bytes back to back in one buffer, and the connections the open items introduce. Three
 * values cross instead of an array, a tuple and an ArrayBuffer per item: the structured copy's
 * cost is per object, and most crossings carry many small frames.
 */
export interface PackedInspection {
  /** INSPECT_WORDS numbers per item: its kind (INSPECT_KIND), connection id, direction (0 to_server, 1 to_client), byte length, timestamp. */
  control: Float64Array;
  /** The data items' bytes, in item order; each item's offset is the sum of the lengths before it. */
  bytes: Uint8Array;
  /** The connection of each open item, in item order. */
  opens: TrafficConnection[];
}

/** The items of one crossing, packed by the host (the trusted side) for its inspector. */
export function packInspection(items: readonly InspectItem[]): PackedInspection {
  const control = new Float64Array(items.length * INSPECT_WORDS);
  const opens: TrafficConnection[] = [];
  let total = 0;
  for (const item of items) if (item[0] === 'data') total += item[3].byteLength;
  // One copy of each frame, into memory of the crossing's own (never a pool slab shared with other data).
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (let index = 0; index < items.length; index += 1) {
    const item = items[index]!;
    const at = index * INSPECT_WORDS;
    if (item[0] === 'data') {
      control[at] = INSPECT_KIND.data;
      control[at + 1] = item[1];
      control[at + 2] = item[2] === 'to_server' ? 0 : 1;
      control[at + 3] = item[3].byteLength;
      control[at + 4] = item[4];
      bytes.set(item[3], offset);
      offset += item[3].byteLength;
    } else if (item[0] === 'open') {
      control[at] = INSPECT_KIND.open;
      control[at + 1] = item[1].id;
      opens.push(item[1]);
    } else {
      control[at] = INSPECT_KIND.close;
      control[at + 1] = item[1];
    }
  }
  return { control, bytes, opens };
}

/**
 * The answer to one crossing as it travels back, as numbers in one Float64Array (`words`): per
 * data item a release offset (>= 0) or a drop (-1 - the number of its alert), then per data item
 * the end of its alerts among the alert numbers, then the alert numbers. An alert's number is its
 * place in the table the isolate and its host keep from crossing to crossing (the same rules
 * match frame after frame): an answer naming only alerts sent before is `words` alone, a typed
 * array that crosses without the serializer's walk of an object; one with alerts new to the
 * table is `[words, fresh, base]`, `fresh` numbered from `base`, which is the table's length so
 * far, or 0 when the guest started the numbering over (ALERT_TABLE_LIMIT).
 */
export type PackedVerdicts = Float64Array | [words: Float64Array, fresh: TrafficAlert[], base: number];

const forged = (what: string): IsogateError => fail('E_APP_FAILED', `answered the traffic gate with a forged verdict: ${what}`);

/** A whole number at most `below` - 1 (words are doubles: NaN, fractions and -0 are refused alike). */
const index = (word: number, below: number): boolean => Number.isInteger(word) && word >= 0 && word < below && !Object.is(word, -0);

/**
 * A packed answer to one crossing, checked as decodeVerdicts checks the plain one (one verdict
 * per data item, releases non-negative integers, at most alertsPerVerdict alerts each, every
 * alert well formed) and unpacked to the verdicts the gate takes. `table` is the sandbox's alert
 * table: each alert is decoded once, when it is new, and the verdicts that name it share the
 * decoded (frozen) copy. The table takes the fresh alerts only once the whole answer is found
 * well formed: a forged answer changes nothing.
 */
export function decodePackedVerdicts(value: unknown, dataItems: number, table: TrafficAlert[]): TrafficVerdict[] {
  let words: unknown = value;
  const fresh: TrafficAlert[] = [];
  let base = table.length;
  let restart = false;
  if (!(value instanceof Float64Array)) {
    if (!Array.isArray(value) || value.length !== 3 || !Object.hasOwn(value, 0) || !Object.hasOwn(value, 1) || !Object.hasOwn(value, 2)) {
      throw forged('the answer is not words, or [words, alerts, base]');
    }
    const [packed, sent, from] = value as unknown[];
    if (from !== 0 && from !== table.length) throw forged(`.base ${String(from)} is neither 0 nor the ${table.length} alerts numbered so far`);
    base = from;
    restart = from === 0;
    // At most as many new alerts as a full answer could name (every verdict's alerts and its
    // drop), and never a table past its limit, a restart's included: the host keeps what it takes.
    const most = dataItems * (TRAFFIC_ALERT_LIMITS.alertsPerVerdict + 1);
    if (!Array.isArray(sent) || sent.length > most || base + sent.length > ALERT_TABLE_LIMIT) throw forged('.alerts is not a bounded list');
    for (let at = 0; at < sent.length; at += 1) {
      if (!Object.hasOwn(sent, at)) throw forged(`.alerts[${at}] is missing`);
      try {
        fresh.push(Object.freeze(alertCodec.decode(sent[at])));
      } catch (error) {
        if (!(error instanceof Mismatch)) throw error;
        throw forged(`.alerts[${at}]${error.path} is not ${error.expected}`);
      }
    }
    words = packed;
  }
  if (!(words instanceof Float64Array) || words.length < 2 * dataItems) throw forged(`the answer is not ${dataItems} verdicts and their alert ends`);
  const known = base + fresh.length;
  const alert = (number: number): TrafficAlert => (number < base ? table[number]! : fresh[number - base]!);
  const refsFrom = 2 * dataItems;
  const refs = words.length - refsFrom;
  const out: TrafficVerdict[] = new Array(dataItems);
  let start = 0;
  for (let item = 0; item < dataItems; item += 1) {
    const end = words[dataItems + item]!;
    if (!Number.isInteger(end) || end < start || end - start > TRAFFIC_ALERT_LIMITS.alertsPerVerdict || end > refs) {
      throw forged(`[${item}] has not 0 to ${TRAFFIC_ALERT_LIMITS.alertsPerVerdict} alerts`);
    }
    let alerts: TrafficAlert[] | undefined;
    if (end > start) {
      alerts = new Array(end - start);
      for (let ref = start; ref < end; ref += 1) {
        const number = words[refsFrom + ref]!;
        if (!index(number, known)) throw forged(`[${item}] names alert ${number} of ${known}`);
        alerts[ref - start] = alert(number);
      }
    }
    start = end;
    const word = words[item]!;
    if (!Number.isSafeInteger(word)) throw forged(`[${item}] is not a release offset or a drop`);
    if (word >= 0) {
      out[item] = alerts ? { release: word, alerts } : { release: word };
    } else {
      if (!index(-1 - word, known)) throw forged(`[${item}] drops with alert ${-1 - word} of ${known}`);
      const drop = alert(-1 - word);
      out[item] = alerts ? { drop, alerts } : { drop };
    }
  }
  if (start !== refs) throw forged('the answer holds alert numbers no verdict names');
  if (restart) table.length = 0;
  for (const added of fresh) table.push(added);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Host -> guest

export type CallAnswer = { value: unknown } | { error: { code: string; message: string } };
export type ConnectionEventKind = 'data' | 'close';

/**
 * How the guest reports a delivered batch (GuestOperations.deliver): the indexes of its invalid
 * and failed messages, or what went wrong. Checked by the host like every answer of a guest. A
 * batch whose every message was handled is reported by its id alone, a primitive, which crosses
 * without the serializer that two empty lists cost.
 */
export type DeliveredReport = (id: number, invalid?: number[], failed?: number[], error?: string) => void;

/** Everything the host may ask of a running guest; the guest SDK implements exactly this. */
export interface GuestOperations {
  /**
   * Answers to calls, [id, answer]: small ones as one JSON text, bytes or large texts as a copy;
   * `lifted` holds the bytes fields of answers in the text ([id, field, bytes]: a fetch's body).
   * Both are left out (empty) when the text is all there is.
   */
  answer(text: string, copied?: [number, CallAnswer][], lifted?: [id: number, field: string, bytes: Uint8Array][]): void;
  /**
   * A batch for one destination endpoint; handlers run in order. json and text: the text, in
   * pieces that are arguments of their own (`text` and then `more`, see DeliverBatch), and the
   * messages' lengths across them; binary: the messages, as one list (`messages`) or, when they
   * are large, each an argument of its own (`more`). Called without waiting for a result: the
   * guest reports the outcome of batch `id` through the host's DeliveredReport reference once its
   * handlers are done (or failed).
   */
  deliver(
    id: number,
    endpoint: string,
    text: string | undefined,
    /** The messages' lengths, as JSON text (a primitive: no serializer for a text batch). */
    lengths: string | undefined,
    messages: Uint8Array[] | undefined,
    ...more: string[] | Uint8Array[]
  ): void;
  /** A timer the app set is due. */
  fire(id: number): void;
  /** The configuration changed, as JSON text (parsed in the guest: nothing but data crosses). */
  configChanged(json: string): Promise<void>;
  /** Data from, or the end of, a TLS stream; the host reads no further until the promise settles. */
  connectionEvent(id: number, kind: ConnectionEventKind, payload: Uint8Array | { code: string; message: string } | undefined): Promise<void>;
  /** The app is stopping: its onStop handlers run. */
  stop(): Promise<void>;
  /** Traffic for the app's inspector, in order, packed; one verdict per `data` item (synchronous, as the inspector is). */
  inspect(control: Float64Array, bytes: Uint8Array, opens: TrafficConnection[]): PackedVerdicts;
}

/** What the guest is told at start, as JSON: its grants as the guest SDK needs them for early refusals. */
export interface GuestGrants {
  packageId: string;
  version: string;
  name: string;
  sources: [string, { format: EndpointDeclaration['format'] }][];
  destinations: [string, { format: EndpointDeclaration['format'] }][];
  maxTimers: number;
  minIntervalMs: number;
  maxLogLineChars: number;
  maxDepth: number;
  config: string;
  /** The special capabilities the app holds (`traffic.inspect`, `traffic.block`). */
  capabilities: string[];
}
