/**
 * The code that runs inside each app's isolate before the app: it turns the raw bridge
 * references into the frozen `isogate:sdk` module and the timer and console globals, then
 * removes every trace of the references from the global object, so the app holds only the
 * shims. It is plain JavaScript kept as a string because it never runs in Node.
 *
 * Data crosses only as copies: JSON messages and configuration cross as strings and are parsed
 * on the other side (no prototype, getter or function can cross), bytes as copied Uint8Arrays.
 */

/** Run with `context.evalClosure`: $0 log, $1 send calls, $2 timer, $3 ready; $4 the grants as JSON. */
export const GUEST_BOOTSTRAP = String.raw`
'use strict';
const logRef = $0, sendRef = $1, timerRef = $2, readyRef = $3;
// Taken before the app runs, so an app that replaces JSON's functions changes only its own code.
const { stringify, parse } = JSON;
const grants = parse($4);
const LEVELS = Object.freeze({ critical: 0, error: 1, warning: 2, info: 3, debug: 4, trace: 5 });
const sources = new Map(grants.sources);
const destinations = new Map(grants.destinations);
const copyArgs = { arguments: { copy: true } };

function codedError(code, message) {
  const error = new Error(message);
  error.code = code;
  return error;
}

function show(value) {
  if (typeof value === 'string') return value;
  if (value instanceof Error) return value.stack || String(value);
  try {
    const text = stringify(value);
    return text === undefined ? String(value) : text;
  } catch {
    return String(value);
  }
}

function writeLog(level, values) {
  let text = values.map(show).join(' ');
  if (text.length > grants.maxLogLineChars) text = text.slice(0, grants.maxLogLineChars) + '...[truncated]';
  logRef.applyIgnored(undefined, [level, text], copyArgs);
}

// Calls to the platform travel in batches, both ways and without waiting on each other: the
// calls made in one microtask turn cross in one message, and the host answers everything that
// finished in one turn of its event loop in one message. A crossing costs tens of microseconds,
// far more than most calls, so an app with many calls in flight pays for a few crossings only.
// Small calls cross as JSON text, a third of the cost of a structured copy; calls that carry
// bytes or large texts (which JSON would escape character by character) cross as a structured
// copy beside it.
const waiting = new Map();
let nextCall = 1;
let outboxText = [];
let outboxCopied = [];
let outboxScheduled = false;

function refuseCall(id, error) {
  answerCall(id, { error: { code: 'E_BAD_REQUEST', message: 'A platform call takes plain data (strings, numbers, objects, arrays, Uint8Array): ' + error.message } });
}

function flushOutbox() {
  outboxScheduled = false;
  if (outboxText.length === 0 && outboxCopied.length === 0) return;
  const texts = outboxText;
  const copied = outboxCopied;
  outboxText = [];
  outboxCopied = [];
  try {
    sendRef.applyIgnored(undefined, ['[' + texts.join(',') + ']', copied], copyArgs);
  } catch {
    // Something in the copied batch cannot be copied: send the others and refuse only the culprits.
    sendRef.applyIgnored(undefined, ['[' + texts.join(',') + ']', []], copyArgs);
    for (const single of copied) {
      try {
        sendRef.applyIgnored(undefined, ['[]', [single]], copyArgs);
      } catch (error) {
        refuseCall(single[0], error);
      }
    }
  }
}

// What JSON cannot carry or would escape character by character.
const copiedAsIs = (value) => value instanceof Uint8Array || (typeof value === 'string' && value.length > 1024);

// { copyAsIs } sends the call as a structured copy; { now } sends the outbox at once instead of
// at the end of the turn, for a full emit batch that the host can start on while the app runs.
function call(op, args, { copyAsIs = false, now = false } = {}) {
  return new Promise((resolve, reject) => {
    const id = nextCall++;
    waiting.set(id, { resolve, reject });
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

function answerCall(id, answer) {
  const caller = waiting.get(id);
  if (!caller) return;
  waiting.delete(id);
  if (answer.error) caller.reject(codedError(answer.error.code, answer.error.message));
  else caller.resolve(answer.value);
}

const log = Object.freeze({
  critical: (...values) => writeLog(LEVELS.critical, values),
  error: (...values) => writeLog(LEVELS.error, values),
  warning: (...values) => writeLog(LEVELS.warning, values),
  info: (...values) => writeLog(LEVELS.info, values),
  debug: (...values) => writeLog(LEVELS.debug, values),
  trace: (...values) => writeLog(LEVELS.trace, values),
});

const handlers = new Map();
function on(endpoint, handler) {
  if (!destinations.has(endpoint)) throw codedError('E_CAPABILITY', 'The manifest declares no destination endpoint "' + String(endpoint) + '" to handle');
  if (typeof handler !== 'function') throw new TypeError('on(endpoint, handler): the handler is a function');
  const list = handlers.get(endpoint) || [];
  list.push(handler);
  handlers.set(endpoint, list);
}

function encode(format, message) {
  if (format === 'json') {
    const text = stringify(message);
    if (text === undefined) throw codedError('E_MESSAGE', 'A json endpoint carries JSON values; this message has none');
    return text;
  }
  if (format === 'text') {
    if (typeof message !== 'string') throw codedError('E_MESSAGE', 'A text endpoint carries strings');
    return message;
  }
  if (!(message instanceof Uint8Array)) throw codedError('E_MESSAGE', 'A binary endpoint carries Uint8Array bytes');
  return message;
}

// Emits cross to the host in batches: one crossing per microtask turn or per EMIT_BATCH
// messages. A batch is a list of runs, each the consecutive emits on one endpoint; a json run
// crosses as one text, its messages joined by newlines (JSON.stringify never writes a raw
// newline), which costs one string copy instead of one per message. Order and per-message
// refusals are kept; the per-message cost is not.
const EMIT_BATCH = 512;
let pendingEndpoints = [];
let pendingPayloads = [];
let pendingReceipts = [];
let flushScheduled = false;

// What emit returns: a thenable that makes its promise only when someone awaits it, since most
// emits are never awaited and a promise per message would cost more than the message.
class Emitted {
  constructor(endpoint) {
    this.endpoint = endpoint;
    this.refusal = undefined;
    this.settled = false;
    this.promise = undefined;
    this.settle = undefined;
  }
  observe() {
    if (!this.promise) {
      if (this.settled) this.promise = this.refusal ? Promise.reject(this.refusal) : Promise.resolve();
      else this.promise = new Promise((resolve, reject) => { this.settle = (error) => (error ? reject(error) : resolve()); });
    }
    return this.promise;
  }
  then(onAccepted, onRefused) { return this.observe().then(onAccepted, onRefused); }
  catch(onRefused) { return this.observe().catch(onRefused); }
  finally(onSettled) { return this.observe().finally(onSettled); }
}
Object.freeze(Emitted.prototype);
Object.freeze(Emitted);

function settleEmit(receipt, refusal) {
  receipt.settled = true;
  receipt.refusal = refusal;
  if (receipt.settle) receipt.settle(refusal);
  // An app that does not await its emits still hears about refusals, in its log.
  else if (refusal) writeLog(LEVELS.warning, ['emit on "' + receipt.endpoint + '" refused: ' + refusal.code + ': ' + refusal.message]);
}

function flushEmits() {
  flushScheduled = false;
  const endpoints = pendingEndpoints;
  const payloads = pendingPayloads;
  const receipts = pendingReceipts;
  if (endpoints.length === 0) return;
  pendingEndpoints = [];
  pendingPayloads = [];
  pendingReceipts = [];
  const runs = [];
  for (let start = 0, end = 1; end <= endpoints.length; end += 1) {
    if (end < endpoints.length && endpoints[end] === endpoints[start]) continue;
    const run = payloads.slice(start, end);
    runs.push([endpoints[start], sources.get(endpoints[start]).format === 'json' ? run.join('\n') : run]);
    start = end;
  }
  call('emit.batch', [runs], { copyAsIs: true, now: true }).then((refusals) => {
    const refused = new Map();
    for (const [index, code, message] of refusals) refused.set(index, codedError(code, message));
    for (let index = 0; index < receipts.length; index += 1) settleEmit(receipts[index], refused.get(index));
  }, (error) => receipts.forEach((receipt) => settleEmit(receipt, error)));
}

function emit(endpoint, message) {
  const declared = sources.get(endpoint);
  if (!declared) {
    throw codedError('E_CAPABILITY', destinations.has(endpoint)
      ? '"' + endpoint + '" is a destination endpoint: an app emits only on its source endpoints'
      : 'The manifest declares no source endpoint "' + String(endpoint) + '"');
  }
  const payload = encode(declared.format, message);
  const receipt = new Emitted(endpoint);
  pendingEndpoints.push(endpoint);
  pendingPayloads.push(payload);
  pendingReceipts.push(receipt);
  if (pendingEndpoints.length >= EMIT_BATCH) flushEmits();
  else if (!flushScheduled) {
    flushScheduled = true;
    Promise.resolve().then(flushEmits);
  }
  return receipt;
}

const stopHandlers = [];
function onStop(handler) {
  if (typeof handler !== 'function') throw new TypeError('onStop(handler): the handler is a function');
  stopHandlers.push(handler);
}

function checkValue(value) {
  if (typeof value !== 'string' && !(value instanceof Uint8Array)) throw codedError('E_STORAGE_VALUE', 'A stored value is a string or a Uint8Array, not ' + (value === null ? 'null' : typeof value));
  return value;
}
const storage = Object.freeze({
  get: (key) => call('storage.get', [key]),
  put: (key, value) => call('storage.put', [key, checkValue(value)], { copyAsIs: true }),
  delete: (key) => call('storage.delete', [key]),
  list: (prefix = '') => call('storage.list', [prefix]),
  usage: () => call('storage.usage', []),
});

function deepFreeze(value) {
  if (value && typeof value === 'object') {
    for (const key of Object.keys(value)) deepFreeze(value[key]);
    Object.freeze(value);
  }
  return value;
}
let configuration = deepFreeze(parse(grants.config));
const configHandlers = [];
const config = Object.freeze({
  get: () => configuration,
  onChange(handler) {
    if (typeof handler !== 'function') throw new TypeError('config.onChange(handler): the handler is a function');
    configHandlers.push(handler);
  },
});

// TLS byte streams to the app's tls targets. The platform holds the socket; the app holds a
// number and this object. A chunk that arrives before the app listens waits, and so does the
// socket behind it: the host reads no further until the app has taken the chunk.
const connections = new Map();
let nextConnection = 1;

function checkChunk(chunk) {
  if (typeof chunk !== 'string' && !(chunk instanceof Uint8Array)) throw codedError('E_BAD_REQUEST', 'A chunk is a string or a Uint8Array');
  return chunk;
}

function openConnection(id, target) {
  const state = { dataHandlers: [], closeHandlers: [], waitingForListener: [] };
  connections.set(id, state);
  const connection = Object.freeze({
    target,
    on(event, handler) {
      if (typeof handler !== 'function') throw new TypeError('on(event, handler): the handler is a function');
      if (event === 'data') {
        state.dataHandlers.push(handler);
        for (const release of state.waitingForListener.splice(0)) release();
      } else if (event === 'close') state.closeHandlers.push(handler);
      else throw new TypeError('A connection has "data" and "close" events');
    },
    write: (chunk) => call('egress.write', [id, checkChunk(chunk)], { copyAsIs: true }),
    end: () => call('egress.end', [id]),
  });
  state.connection = connection;
  return state;
}

async function connectionEvent(id, kind, payload) {
  const state = connections.get(id);
  if (!state) return;
  if (kind === 'data') {
    if (state.dataHandlers.length === 0) await new Promise((release) => state.waitingForListener.push(release));
    for (const handler of state.dataHandlers) {
      try {
        const result = handler(payload);
        if (result && typeof result.then === 'function') await result;
      } catch (error) {
        writeLog(LEVELS.error, ['data handler of the connection to "' + state.connection.target + '" failed:', error]);
      }
    }
    return;
  }
  connections.delete(id);
  // Data still waiting for a listener is dropped with the connection.
  for (const release of state.waitingForListener.splice(0)) release();
  const error = payload ? codedError(payload.code, payload.message) : undefined;
  for (const handler of state.closeHandlers) {
    try {
      handler(error);
    } catch (failure) {
      writeLog(LEVELS.error, ['close handler of the connection to "' + state.connection.target + '" failed:', failure]);
    }
  }
}

const egress = Object.freeze({
  async connect(target) {
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
  async fetch(target, request = {}) {
    const response = await call('egress.fetch', [target, {
      method: request.method, path: request.path, headers: request.headers, body: request.body,
    }], { copyAsIs: copiedAsIs(request.body) });
    return Object.freeze({ status: response.status, headers: Object.freeze(response.headers), body: response.body });
  },
  publish: (target, topic, payload, options = {}) => call('egress.publish', [target, topic, payload, { qos: options.qos, retain: options.retain }], { copyAsIs: copiedAsIs(payload) }),
});

const app = Object.freeze({ packageId: grants.packageId, version: grants.version, name: grants.name });

// Timers run on the host's clock; each firing is an event under the app's CPU limit.
const timers = new Map();
let nextTimer = 1;
function addTimer(callback, ms, repeat) {
  if (typeof callback !== 'function') throw new TypeError('A timer callback is a function');
  if (timers.size >= grants.maxTimers) throw codedError('E_TIMER_LIMIT', 'At most ' + grants.maxTimers + ' timers may be pending at once');
  const id = nextTimer++;
  const delay = Math.max(repeat ? grants.minIntervalMs : 0, Number(ms) > 0 ? Math.floor(Number(ms)) : 0);
  timers.set(id, { callback, repeat });
  timerRef.applyIgnored(undefined, ['set', id, delay, repeat], copyArgs);
  return id;
}
function clearTimer(id) {
  if (timers.delete(id)) timerRef.applyIgnored(undefined, ['clear', id], copyArgs);
}
const globals = {
  setTimeout: (callback, ms) => addTimer(callback, ms, false),
  setInterval: (callback, ms) => addTimer(callback, ms, true),
  clearTimeout: clearTimer,
  clearInterval: clearTimer,
  queueMicrotask: (callback) => { Promise.resolve().then(callback); },
  console: Object.freeze({
    log: log.info, info: log.info, warn: log.warning, error: log.error, debug: log.debug, trace: log.trace,
  }),
};
for (const [name, value] of Object.entries(globals)) {
  Object.defineProperty(globalThis, name, { value: Object.freeze(value), writable: false, configurable: false, enumerable: false });
}

async function runAll(list, args, what) {
  for (const handler of list) {
    try {
      await handler(...args);
    } catch (error) {
      writeLog(LEVELS.error, [what + ' failed:', error]);
      throw error;
    }
  }
}

const sdk = Object.freeze({ app, log, on, emit, onStop, storage, config, egress });

// What the host calls. The references are held by the host only.
const guest = Object.freeze({
  answer(text, copied) {
    for (const [id, answer] of parse(text)) answerCall(id, answer);
    for (const [id, answer] of copied) answerCall(id, answer);
  },
  connectionEvent,
  async deliver(endpoint, payloads) {
    const declared = destinations.get(endpoint);
    const list = handlers.get(endpoint) || [];
    let failed = 0;
    const batch = declared && declared.format === 'json' ? parse(payloads) : payloads;
    for (const message of batch) {
      for (const handler of list) {
        try {
          // A handler that returns no promise costs no microtask turn.
          const result = handler(message);
          if (result && typeof result.then === 'function') await result;
        } catch (error) {
          failed += 1;
          writeLog(LEVELS.error, ['handler for "' + endpoint + '" failed:', error]);
        }
      }
    }
    return { handled: list.length > 0 ? batch.length : 0, failed };
  },
  fire(id) {
    const timer = timers.get(id);
    if (!timer) return;
    if (!timer.repeat) timers.delete(id);
    try {
      const result = timer.callback();
      if (result && typeof result.then === 'function') {
        result.then(undefined, (error) => writeLog(LEVELS.error, ['timer callback failed:', error]));
      }
    } catch (error) {
      writeLog(LEVELS.error, ['timer callback failed:', error]);
    }
  },
  async configChanged(json) {
    configuration = deepFreeze(parse(json));
    await runAll(configHandlers, [configuration], 'config.onChange handler').catch(() => undefined);
  },
  async stop() {
    await runAll(stopHandlers, [], 'onStop handler').catch(() => undefined);
  },
  ready() {
    readyRef.applyIgnored(undefined, [], copyArgs);
  },
});

Object.defineProperty(globalThis, '__isogate_sdk__', { value: sdk, configurable: true, enumerable: false, writable: false });
Object.defineProperty(globalThis, '__isogate_ready__', { value: guest.ready, configurable: true, enumerable: false, writable: false });
return guest;
`;

/** The `isogate:sdk` module: takes the frozen SDK and removes its only global trace. */
export const SDK_MODULE_SOURCE = `
const sdk = globalThis.__isogate_sdk__;
delete globalThis.__isogate_sdk__;
export const { app, log, on, emit, onStop, storage, config, egress } = sdk;
export default sdk;
`;

export const READY_MODULE = 'isogate:ready';

/** Only the readiness module may import it; it too removes its global before app code runs. */
export const READY_MODULE_SOURCE = `
const ready = globalThis.__isogate_ready__;
delete globalThis.__isogate_ready__;
export default ready;
`;

/**
 * The module the platform evaluates. isolated-vm 5.0.4 does not wait for a module's top-level
 * await, but a module body runs only after its imports finished theirs: so the app has started
 * when this body runs.
 */
export function readinessModuleSource(entry: string): string {
  return `import ready from '${READY_MODULE}';\nimport 'isogate:sdk';\nimport ${JSON.stringify(entry)};\nready();\n`;
}
