/**
 * The local control socket: how `isogate` commands reach a running gateway. It lives in the
 * data directory with mode 0600, so file permissions are its authentication (the same
 * principle as the Docker socket). The protocol is one JSON object per line:
 *   -> {"id":1,"op":"apps.install","params":{...}}
 *   <- {"id":1,"progress":{...}}*  then  {"id":1,"result":...} or {"id":1,"error":{code,message,details}}
 */
import { setMaxListeners } from 'node:events';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fail, toIsogateError } from '../../sdk/errors.js';
import { assertDocumentBounds, DOCUMENT_LIMITS } from '../../sdk/limits.js';
import { checkAncestors, currentUid } from '../datadir/checks.js';
import { DataDir } from '../durable/index.js';

export const MAX_REQUEST_LINE_BYTES = DOCUMENT_LIMITS.controlRequestBytes;

/**
 * The socket's bounds on its clients. File permissions make a client the gateway's owner, but
 * not a careful one: a stuck script or a loop must not make the gateway hold connections, lines
 * or answers without end. `isogate` opens one connection per command with one request on it.
 */
export const CONTROL_SOCKET_LIMITS = Object.freeze({
  /** Connections served at once; one more is answered E_CONNECTION_LIMIT and closed. */
  maxConnections: 64,
  /**
   * How long the gateway waits on a client while nothing of it is being answered: for its next
   * request, for the rest of a line it began, or for it to read the answers it was sent. Then
   * E_REQUEST_TIMEOUT and the connection ends. A request being answered (an install, a log
   * follow) keeps its connection however long it takes.
   */
  idleMs: 30_000,
  /** Requests of one connection dispatched and not yet answered; the next line is read once one is answered. */
  maxInFlight: 16,
  /**
   * Bytes written to one client and not yet read by it, past which its next line is read once
   * they drain (at least Node's own high-water mark: below it no drain is signalled).
   */
  unreadReplyBytes: 1024 * 1024,
});

export type ControlSocketLimits = { -readonly [K in keyof typeof CONTROL_SOCKET_LIMITS]: number };
/**
 * How to get a gateway to talk to, both ways the README gives: a gateway of one's own, or the
 * demo (`npm start` in a checkout), whose data directory is the CLI's default.
 */
const START_HINT = 'start one with "isogate start --data DIR", or the demo with "npm start" (its data directory: ./.isogate-demo)';

/** sun_path is 108 bytes on Linux, including the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 107;

export interface ControlRequestContext {
  progress(update: unknown): void;
  /** Aborted when the client's connection closes: a streaming operation ends then. */
  signal: AbortSignal;
  /** Bytes sent to the client that it has not read yet. */
  backlog(): number;
  /** Resolves once the client has read what was sent, or has gone. */
  drained(): Promise<void>;
}

export type ControlDispatch = (op: string, params: unknown, context: ControlRequestContext) => Promise<unknown>;

export interface ControlServer {
  readonly path: string;
  close(): Promise<void>;
}

function send(socket: net.Socket, message: unknown): void {
  // An answer that comes after its connection was refused and ended has no one to go to.
  if (!socket.destroyed && !socket.writableEnded) socket.write(`${JSON.stringify(message)}\n`);
}

/** One request line as the socket reads it from a local client (exported for the fuzz target). */
export function parseControlRequest(line: string): { id: unknown; op: string; params: unknown } {
  let request: unknown;
  try {
    request = JSON.parse(line);
  } catch {
    throw fail('E_BAD_REQUEST', 'The request is not JSON');
  }
  if (!request || typeof request !== 'object' || Array.isArray(request)) throw fail('E_BAD_REQUEST', 'The request must be a JSON object');
  assertDocumentBounds(request, { maxDepth: DOCUMENT_LIMITS.controlRequestDepth }, 'The request');
  const { id, op, params } = request as Record<string, unknown>;
  if (typeof op !== 'string' || op.length > 64) throw fail('E_BAD_REQUEST', 'The request needs an "op" string');
  return { id, op, params: params ?? {} };
}

export interface ControlSocketOptions {
  /**
   * A larger bound for the request line of an operation that carries a file (a backup to
   * restore), by operation; every other line keeps MAX_REQUEST_LINE_BYTES. Such a line must
   * name its operation first (`{"op":"backup.restore",...`), so that the bound is known before
   * the line is whole; callControl writes every request so.
   */
  requestBytes?: (op: string) => number | undefined;
  /** CONTROL_SOCKET_LIMITS, some of them changed (tests). */
  limits?: Partial<ControlSocketLimits>;
}

/** Pieces of a line kept before they are joined into one: bounds their count, not their bytes. */
const PIECES_JOINED = 1024;

/**
 * A line as the pieces that came, each searched once for its newline, so a large line costs its
 * length and not its length times its chunks. The latest pieces are joined into one every
 * PIECES_JOINED of them: a client that sends a line a byte at a time would otherwise make the
 * gateway hold an object per byte, tens of times the line's bound in memory.
 */
export class LinePieces {
  #joined: string[] = [];
  #latest: string[] = [];
  /** The line's UTF-8 bytes so far. */
  bytes = 0;

  add(piece: string): void {
    this.#latest.push(piece);
    this.bytes += Buffer.byteLength(piece);
    if (this.#latest.length >= PIECES_JOINED) {
      this.#joined.push(this.#latest.join(''));
      this.#latest = [];
    }
  }

  /** The strings held for the line: at most about its bytes / PIECES_JOINED + PIECES_JOINED. */
  get count(): number {
    return this.#joined.length + this.#latest.length;
  }

  text(): string {
    return this.#joined.join('') + this.#latest.join('');
  }

  clear(): void {
    this.#joined = [];
    this.#latest = [];
    this.bytes = 0;
  }
}

/** The operation a request line names at its very start, where callControl puts it. */
const LEADING_OP = /^\s*\{\s*"op"\s*:\s*"([A-Za-z0-9._-]{1,64})"/;

/**
 * The larger bound is the gateway's, not each connection's: one line at a time holds it, from
 * the moment it passes the usual bound until its answer is sent (or it is refused, or its
 * connection closes). Otherwise every connection, and every line pipelined on one, could make
 * the gateway hold a restore's worth of text at once.
 */
interface LargeLineSlot {
  holder: object | undefined;
}

/**
 * Every line is bounded, complete or not: a line past its bound is refused and the connection
 * ended before the line is parsed (or kept growing), whether or not its newline came with it.
 * A line is kept as LinePieces. Reading stops (back-pressure, nothing buffered past the chunk
 * read last) while the connection has its most requests in flight or its client has not read
 * what it was sent, and resumes as answers are sent and read.
 */
function handleConnection(
  socket: net.Socket,
  dispatch: ControlDispatch,
  options: ControlSocketOptions,
  slot: LargeLineSlot,
  limits: ControlSocketLimits,
): void {
  const pieces = new LinePieces();
  let bound = MAX_REQUEST_LINE_BYTES;
  /** The operation whose larger bound the current line has, once it passed the usual one. */
  let largeOp: string | undefined;
  /** This line's claim on the slot while it holds it. */
  let claim: object | undefined;
  let refused = false;
  let inFlight = 0;
  /** The last chunk read, from `offset` on: what is left of it while reading is stopped. */
  let unread = '';
  let offset = 0;
  let waiting: NodeJS.Timeout | undefined;
  let backstop: NodeJS.Timeout | undefined;
  const release = (held: object | undefined): void => {
    if (held !== undefined && slot.holder === held) slot.holder = undefined;
  };
  // One signal for every request of the connection: a listener each on the socket would gather with the requests in flight.
  const closed = new AbortController();
  // A streaming request listens on it while it is answered (and stops when answered): at most one per request in flight.
  setMaxListeners(limits.maxInFlight + 10, closed.signal);
  socket.setEncoding('utf8');
  socket.on('error', () => socket.destroy());
  socket.once('close', () => {
    closed.abort();
    release(claim);
    clearTimeout(waiting);
    clearTimeout(backstop);
  });
  const refuse = (error = fail('E_DOCUMENT_LIMIT', `A request line may be at most ${bound} bytes; send a smaller request`, { maxBytes: bound })): void => {
    refused = true;
    pieces.clear();
    unread = '';
    release(claim);
    clearTimeout(waiting);
    send(socket, { id: null, error: error.toJSON() });
    socket.end();
    socket.resume();
    // Ended, the connection closes once the client ends its side; one that never does is not kept for it.
    backstop = setTimeout(() => socket.destroy(), limits.idleMs);
    backstop.unref();
  };
  /** Called once a line passes the usual bound: the larger one its leading operation has, if any and if free. */
  const widen = (): void => {
    const op = LEADING_OP.exec(pieces.text().slice(0, 256))?.[1];
    const larger = op === undefined ? undefined : options.requestBytes?.(op);
    if (op === undefined || larger === undefined || larger <= MAX_REQUEST_LINE_BYTES) return;
    if (slot.holder !== undefined) {
      const message = `Another ${op} request larger than ${MAX_REQUEST_LINE_BYTES} bytes is being received or answered; send this one once it is answered`;
      refuse(fail('E_CONFLICT', message, { maxBytes: MAX_REQUEST_LINE_BYTES }));
      return;
    }
    claim = {};
    slot.holder = claim;
    largeOp = op;
    bound = larger;
  };
  const blocked = (): boolean => inFlight >= limits.maxInFlight || (socket.writableNeedDrain && socket.writableLength > limits.unreadReplyBytes);
  /**
   * The idle clock runs while the gateway waits on the client: for a request, for the rest of a
   * line, or for it to read its answers when none is owed. It stops while a request is answered
   * (unless the client left a line unfinished that the gateway is reading), and it keeps the
   * deadline it was started with until it stops, so trickling bytes does not extend it.
   */
  const watch = (): void => {
    if (refused || (inFlight > 0 && (pieces.bytes === 0 || blocked()))) {
      clearTimeout(waiting);
      waiting = undefined;
      return;
    }
    waiting ??= setTimeout(() => {
      const what = pieces.bytes > 0 ? 'The request line was not finished' : socket.writableLength > 0 ? 'The answers sent were not read' : 'No request arrived';
      refuse(
        fail(
          'E_REQUEST_TIMEOUT',
          `${what} within ${limits.idleMs} ms; the connection is closed. Send each request as one line ending in a newline and read its answer`,
          {
            timeoutMs: limits.idleMs,
          },
        ),
      );
    }, limits.idleMs);
  };
  const pump = (): void => {
    while (!refused && offset < unread.length && !blocked()) {
      const newline = unread.indexOf('\n', offset);
      const piece = newline < 0 ? unread.slice(offset) : unread.slice(offset, newline);
      offset = newline < 0 ? unread.length : newline + 1;
      if (piece.length > 0) pieces.add(piece);
      if (pieces.bytes > bound && largeOp === undefined) widen();
      if (refused) return;
      if (pieces.bytes > bound) {
        refuse();
        return;
      }
      if (newline < 0) break;
      const line = pieces.text();
      const op = largeOp;
      const held = claim;
      pieces.clear();
      bound = MAX_REQUEST_LINE_BYTES;
      largeOp = undefined;
      claim = undefined;
      if (!line.trim()) {
        release(held);
        continue;
      }
      inFlight += 1;
      // The slot stays held while the large line is parsed and answered, then is free again.
      void answer(socket, closed.signal, line, dispatch, op).finally(() => {
        release(held);
        inFlight -= 1;
        pump();
      });
    }
    if (refused) return;
    if (offset >= unread.length) {
      unread = '';
      offset = 0;
    }
    if (unread.length > 0 || blocked()) socket.pause();
    else socket.resume();
    watch();
  };
  socket.on('data', (chunk: string) => {
    if (refused) return;
    unread = offset < unread.length ? unread.slice(offset) + chunk : chunk;
    offset = 0;
    pump();
  });
  // Answers the client read: reading may go on.
  socket.on('drain', pump);
  watch();
}

async function answer(socket: net.Socket, closed: AbortSignal, line: string, dispatch: ControlDispatch, largeOp: string | undefined): Promise<void> {
  let id: unknown = null;
  try {
    const request = parseControlRequest(line);
    id = request.id;
    // JSON takes the last of two "op" keys: a line let through for one operation serves no other.
    if (largeOp !== undefined && request.op !== largeOp) {
      throw fail('E_DOCUMENT_LIMIT', `A request line may be at most ${MAX_REQUEST_LINE_BYTES} bytes for ${request.op}; send a smaller request`);
    }
    const result = await dispatch(request.op, request.params, {
      progress: (update) => send(socket, { id, progress: update }),
      signal: closed,
      backlog: () => socket.writableLength,
      drained: () =>
        new Promise<void>((resolve) => {
          if (socket.destroyed || socket.writableLength === 0) return resolve();
          const done = (): void => {
            socket.off('drain', done);
            socket.off('close', done);
            resolve();
          };
          socket.on('drain', done);
          socket.on('close', done);
        }),
    });
    send(socket, { id, result: result ?? null });
  } catch (error) {
    send(socket, { id, error: toIsogateError(error).toJSON() });
  }
}

/** One connection past the limit: told why, then closed (what it sent is read and dropped meanwhile, so its write does not fail first). */
function refuseConnection(socket: net.Socket, limits: ControlSocketLimits): void {
  const error = fail(
    'E_CONNECTION_LIMIT',
    `The control socket serves at most ${limits.maxConnections} connections at once and that many are open; try again once one has finished`,
    { maxConnections: limits.maxConnections },
  );
  socket.on('error', () => socket.destroy());
  socket.resume();
  socket.end(`${JSON.stringify({ id: null, error: error.toJSON() })}\n`);
  // Not held for a client that never closes its side: it does not count, and neither may it linger.
  const backstop = setTimeout(() => socket.destroy(), Math.min(limits.idleMs, 1000));
  backstop.unref();
  socket.once('close', () => clearTimeout(backstop));
}

async function socketInUse(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect(socketPath);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

/**
 * Removes what a gateway that stopped without closing left at the socket's path: only a
 * socket. A link, a file or a directory there is not the gateway's and is refused
 * (E_UNSAFE_PATH), not removed; checked from the data directory down, so a linked parent is too.
 */
async function removeStaleSocket(socketPath: string): Promise<void> {
  const full = path.resolve(socketPath);
  const dir = new DataDir(path.dirname(full));
  const stats = await dir.lstat(path.basename(full));
  if (!stats) return;
  if (!stats.isSocket()) {
    throw fail(
      'E_UNSAFE_PATH',
      `${full} is ${stats.isSymbolicLink() ? 'a symbolic link' : stats.isDirectory() ? 'a directory' : 'not a socket'}, not a control socket a gateway left; the gateway does not follow links or act on unexpected files in its data directory. Find out who put it there, remove it and try again`,
      { path: full },
    );
  }
  await fs.unlink(full).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  });
}

export async function serveControlSocket(socketPath: string, dispatch: ControlDispatch, options: ControlSocketOptions = {}): Promise<ControlServer> {
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH_BYTES) {
    throw fail('E_OPTION', `The control socket path ${socketPath} is longer than ${MAX_SOCKET_PATH_BYTES} bytes; use a shorter data directory`);
  }
  const limits: ControlSocketLimits = { ...CONTROL_SOCKET_LIMITS, ...options.limits };
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isInteger(value) || value < (name === 'unreadReplyBytes' ? 0 : 1)) {
      throw fail(
        'E_OPTION',
        `Control socket limit ${name} must be a ${name === 'unreadReplyBytes' ? 'non-negative' : 'positive'} integer, got ${String(value)}`,
      );
    }
  }
  if (await socketInUse(socketPath)) {
    throw fail('E_CONFLICT', `A gateway is already running with this data directory (${socketPath} answers)`);
  }
  await removeStaleSocket(socketPath);
  let serving = false;
  // Nothing is served before the socket's mode is confirmed below.
  const slot: LargeLineSlot = { holder: undefined };
  const sockets = new Set<net.Socket>();
  let served = 0;
  const server = net.createServer((socket) => {
    if (!serving) return socket.destroy();
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    if (served >= limits.maxConnections) return refuseConnection(socket, limits);
    served += 1;
    socket.once('close', () => {
      served -= 1;
    });
    handleConnection(socket, dispatch, options, slot, limits);
  });
  const listening = new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.once('listening', () => resolve());
  });
  // The socket file takes its mode from the umask when it is bound, and for a path in the main
  // process Node binds inside listen() itself. The mask is process-wide: it is set and restored
  // around that one call, in one synchronous step, never across an await, so no other file the
  // gateway creates meanwhile (on the thread pool, too) is made under it.
  const previousMask = process.umask(0o177);
  try {
    server.listen(socketPath);
  } finally {
    process.umask(previousMask);
  }
  await listening;
  const stat = await fs.lstat(socketPath);
  if (!stat.isSocket() || (stat.mode & 0o077) !== 0) {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await fs.rm(socketPath, { force: true });
    throw fail('E_INTERNAL', `The control socket ${socketPath} was not created private to its owner (mode ${octal(stat.mode)}); nothing was served`);
  }
  serving = true;
  return {
    path: socketPath,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await removeStaleSocket(socketPath);
    },
  };
}

function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

/**
 * Before a client sends anything (later requests carry private keys): the socket must be the
 * one its gateway made. Its data directory must belong to the invoking user or root and be
 * writable by its owner alone, with the directories above it safe by the data directory's rule
 * (platform/datadir/checks.ts); the socket itself must be a socket, not a link, owned by the
 * data directory's owner and open to that owner alone (0600, as the gateway binds it). Anyone
 * else who could plant a socket there could answer in the gateway's place.
 */
export async function checkControlSocket(socketPath: string, uid = currentUid()): Promise<void> {
  const dir = path.dirname(path.resolve(socketPath));
  const dirStat = await fs.stat(dir).catch(() => undefined);
  if (!dirStat) throw fail('E_UNAVAILABLE', `No gateway is running with control socket ${socketPath}: ${dir} does not exist; ${START_HINT}`);
  await checkAncestors(dir, 'the data directory', uid);
  if (dirStat.uid !== uid && dirStat.uid !== 0) {
    throw fail(
      'E_CONTROL_SOCKET_UNSAFE',
      `The data directory ${dir} belongs to uid ${dirStat.uid}, neither you (uid ${uid}) nor root, so its control socket may answer for someone else; nothing was sent. Use your own gateway's --data`,
      { path: dir, uid: dirStat.uid },
    );
  }
  if ((dirStat.mode & 0o022) !== 0) {
    throw fail(
      'E_CONTROL_SOCKET_UNSAFE',
      `The data directory ${dir} is writable by group or others (mode ${octal(dirStat.mode)}), so anyone could have replaced its control socket; nothing was sent. Its gateway refuses such a directory too: "chmod 700 ${dir}" and restart it`,
      { path: dir, mode: octal(dirStat.mode) },
    );
  }
  const stat = await fs.lstat(socketPath).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') throw fail('E_UNAVAILABLE', `No gateway is running with control socket ${socketPath}; ${START_HINT}`);
    throw fail('E_UNAVAILABLE', `The control socket ${socketPath} cannot be examined: ${error.message}`);
  });
  if (!stat.isSocket()) {
    throw fail(
      'E_CONTROL_SOCKET_UNSAFE',
      `${socketPath} is ${stat.isSymbolicLink() ? 'a symbolic link' : 'not a socket'}, not a gateway's control socket; nothing was sent`,
      { path: socketPath },
    );
  }
  if (stat.uid !== dirStat.uid) {
    throw fail(
      'E_CONTROL_SOCKET_UNSAFE',
      `The control socket ${socketPath} belongs to uid ${stat.uid}, not to its data directory's owner (uid ${dirStat.uid}): someone else put it there; nothing was sent. Stop whatever serves it and restart the gateway`,
      { path: socketPath, uid: stat.uid },
    );
  }
  if ((stat.mode & 0o077) !== 0) {
    throw fail(
      'E_CONTROL_SOCKET_UNSAFE',
      `The control socket ${socketPath} is open to group or others (mode ${octal(stat.mode)}), not as a gateway makes it (0600); nothing was sent`,
      { path: socketPath, mode: octal(stat.mode) },
    );
  }
}

/** One request over the control socket. Progress updates go to `onProgress`. */
export async function callControl(socketPath: string, op: string, params: unknown = {}, onProgress?: (update: unknown) => void): Promise<unknown> {
  await checkControlSocket(socketPath);
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    let buffered = '';
    let settled = false;
    const settle = (action: () => void): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      action();
    };
    socket.setEncoding('utf8');
    socket.once('error', (error: NodeJS.ErrnoException) => {
      const missing = error.code === 'ENOENT' || error.code === 'ECONNREFUSED';
      settle(() =>
        reject(
          missing
            ? fail('E_UNAVAILABLE', `No gateway is running with control socket ${socketPath}; ${START_HINT}`)
            : fail('E_UNAVAILABLE', `The control socket ${socketPath} failed: ${error.message}`),
        ),
      );
    });
    // The operation first: the gateway reads a larger bound for a file-carrying operation from the line's start.
    socket.once('connect', () => socket.write(`${JSON.stringify({ op, id: 1, params })}\n`));
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      for (let newline = buffered.indexOf('\n'); newline >= 0; newline = buffered.indexOf('\n')) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        let message: { progress?: unknown; result?: unknown; error?: unknown };
        try {
          message = JSON.parse(line) as typeof message;
        } catch {
          settle(() => reject(fail('E_INTERNAL', 'The gateway answered with something that is not JSON')));
          return;
        }
        if ('progress' in message) onProgress?.(message.progress);
        else if ('error' in message) settle(() => reject(toIsogateError(message.error)));
        else if ('result' in message) settle(() => resolve(message.result));
      }
    });
    socket.once('close', () => settle(() => reject(fail('E_UNAVAILABLE', 'The gateway closed the control connection before answering'))));
  });
}
