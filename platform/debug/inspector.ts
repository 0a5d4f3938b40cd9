/**
 * The debug service's DevTools endpoint: a WebSocket speaking the Chrome DevTools protocol,
 * relayed to and from the V8 inspector of one pushed app's isolate.
 *
 * The developer's token is in the WebSocket's path (`/v1/inspector/<app id>/<token>`): DevTools
 * opens the socket itself from the `ws=` parameter of its URL and sends no headers, and a
 * path, unlike a query, passes through that parameter unchanged. One session per app at a
 * time; a second is refused while the first is open. Closing the socket ends the session,
 * and the sandbox resumes an isolate left paused, so a forgotten DevTools window cannot hold
 * an app at a breakpoint.
 */
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';
import { fail, type IsogateError, toIsogateError } from '../../sdk/errors.js';
import type { Audit } from '../audit/index.js';

/** A way into an isolate's inspector: the sandbox of an app started with it on. */
export interface Inspectable {
  /** One session; `onMessage` gets every response and notification, `onEnd` when the app stops. */
  openSession(onMessage: (message: string) => void, onEnd: () => void): { dispatch(message: string): void; close(): void };
}

export interface InspectorTarget {
  package_id: string;
  webSocketUrl: string;
  devtoolsUrl: string;
}

export interface InspectorGatewayOptions {
  authenticate(token: string): string | undefined;
  ownerOf(packageId: string): string | null | undefined;
  inspectable(packageId: string): Inspectable | undefined;
  developerMode(): boolean;
  refused(request: http.IncomingMessage, error: IsogateError, developer: string | undefined): Promise<void>;
  audit: Audit;
  /** How often an open session's peer is pinged; one that has not answered the last ping is cut (ms, default 15000). */
  heartbeatMs?: number;
}

/** A CDP message from a client larger than this is refused: DevTools' own stay far below it. */
const MAX_CLIENT_MESSAGE_BYTES = 1024 * 1024;
const DEFAULT_HEARTBEAT_MS = 15_000;
const PATH = /^\/v1\/inspector\/([a-z][a-z0-9-]*(?:\.[a-z0-9][a-z0-9-]*)+)\/([A-Za-z0-9_-]{1,200})$/;

export function inspectorPath(packageId: string, token: string): string {
  return `/v1/inspector/${packageId}/${token}`;
}

export class InspectorGateway {
  readonly #options: InspectorGatewayOptions & { heartbeatMs: number };
  readonly #server = new WebSocketServer({ noServer: true, maxPayload: MAX_CLIENT_MESSAGE_BYTES });
  /** The open session of each app, with its developer. */
  readonly #sessions = new Map<string, { developer: string; socket: WebSocket }>();

  constructor(options: InspectorGatewayOptions) {
    const heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    if (!Number.isInteger(heartbeatMs) || heartbeatMs < 10 || heartbeatMs > 600_000) {
      throw fail('E_OPTION', `inspector option heartbeatMs must be an integer from 10 to 600000 (ms), got ${String(heartbeatMs)}`);
    }
    this.#options = { ...options, heartbeatMs };
  }

  /** Where `packageId` is inspected with `token`, as a WebSocket URL and as the DevTools URL that opens it. */
  target(base: string, packageId: string, token: string): InspectorTarget {
    const where = `${base}${inspectorPath(packageId, token)}`;
    return { package_id: packageId, webSocketUrl: `ws://${where}`, devtoolsUrl: `devtools://devtools/bundled/inspector.html?ws=${where}` };
  }

  upgrade(request: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    let developer: string | undefined;
    try {
      const match = PATH.exec(new URL(request.url ?? '/', 'http://debug.invalid').pathname);
      if (!match) throw fail('E_NOT_FOUND', 'No such inspector endpoint; ask for one with "isogate-sdk debug"');
      const [, packageId, token] = match as unknown as [string, string, string];
      // A web page may open a WebSocket to loopback whatever its origin; DevTools' own origin is devtools://, a CDP client sends none.
      const origin = request.headers.origin;
      if (origin !== undefined && !origin.startsWith('devtools://'))
        throw fail('E_FORBIDDEN', `A DevTools session is not opened from a web page (${origin.slice(0, 100)})`);
      developer = this.#options.authenticate(token);
      if (!developer) throw fail('E_AUTH', 'The developer token is not known to this gateway (revoked, mistyped, or from before a factory reset)');
      if (!this.#options.developerMode()) throw fail('E_STATE', 'The gateway is not in developer mode');
      const owner = this.#options.ownerOf(packageId);
      if (owner === undefined) throw fail('E_NOT_INSTALLED', `${packageId} is not installed`);
      if (owner !== developer) throw fail('E_FORBIDDEN', `${packageId} was not pushed with this token; only its developer's token reaches it`);
      if (this.#sessions.has(packageId)) throw fail('E_CONFLICT', `${packageId} has a DevTools session open already; close it first`);
      const inspectable = this.#options.inspectable(packageId);
      if (!inspectable) throw fail('E_STATE', `${packageId} is not running with its inspector on; run "isogate-sdk debug" first`);
      const who = developer;
      this.#server.handleUpgrade(request, socket, head, (ws) => this.#relay(packageId, who, ws, inspectable));
    } catch (error) {
      const coded = toIsogateError(error);
      void this.#options.refused(request, coded, developer);
      const body = JSON.stringify({ code: coded.code, message: coded.message });
      socket.end(
        `HTTP/1.1 ${coded.status} ${coded.code}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    }
  }

  #relay(packageId: string, developer: string, ws: WebSocket, inspectable: Inspectable): void {
    let session: { dispatch(message: string): void; close(): void };
    try {
      session = inspectable.openSession(
        (message) => {
          if (ws.readyState === ws.OPEN) ws.send(message);
        },
        () => ws.close(1001, 'the app stopped'),
      );
    } catch (error) {
      ws.close(1011, toIsogateError(error).code);
      return;
    }
    this.#sessions.set(packageId, { developer, socket: ws });
    void this.#options.audit.record('inspectorAttached', { 'application name': packageId }, { packageId, developer }).catch(() => undefined);
    ws.on('message', (data, isBinary) => {
      if (isBinary) {
        ws.close(1003, 'CDP messages are text');
        return;
      }
      session.dispatch(String(data));
    });
    const end = (): void => {
      if (this.#sessions.get(packageId)?.socket !== ws) return;
      this.#sessions.delete(packageId);
      session.close();
    };
    // A peer gone without a close (a laptop shut, a cable pulled) would hold the app at a
    // breakpoint forever: one that misses a ping is cut, which ends the session and resumes the app.
    let answered = true;
    ws.on('pong', () => {
      answered = true;
    });
    const heartbeat = setInterval(() => {
      if (!answered) {
        ws.terminate();
        return;
      }
      answered = false;
      ws.ping();
    }, this.#options.heartbeatMs);
    heartbeat.unref();
    ws.on('close', () => clearInterval(heartbeat));
    ws.on('close', end);
    ws.on('error', end);
  }

  /** A revoked token's sessions end with it. */
  closeSessionsOf(developer: string): void {
    for (const { developer: owner, socket } of this.#sessions.values()) if (owner === developer) socket.close(1008, 'the token was revoked');
  }

  /** Emergency support mode ends every active session, DevTools ones too. */
  closeAll(reason: string): void {
    for (const { socket } of this.#sessions.values()) socket.close(1001, reason.slice(0, 120));
  }

  close(): void {
    for (const { socket } of this.#sessions.values()) socket.terminate();
    this.#sessions.clear();
    this.#server.close();
  }
}
