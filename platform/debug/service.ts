/**
 * The debug service (the manual's Kaspersky Debug Service, "Developer mode"): started by an
 * admin, it switches the gateway into developer mode for good (left only by a factory reset)
 * and serves developers over HTTP: a push of an unsigned package, the log of an app they
 * pushed, and a DevTools session in its isolate. Every request carries a developer's token
 * (`Authorization: Bearer`, or in the inspector's WebSocket path, since DevTools sends no
 * headers); an app pushed with a token is that developer's, and no other token reaches it.
 *
 * It listens on loopback unless the admin names another address: developer mode gives up the
 * gateway's security objectives (the manual), but not to the whole network by default.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream, promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { debuglog } from 'node:util';
import { type ErrorCode, fail, type IsogateError, toIsogateError } from '../../sdk/errors.js';
import type { Audit } from '../audit/index.js';
import { type DataDir, readJsonIfExists, writeJsonDurable } from '../durable/index.js';
import type { FollowOptions, LogFollower } from '../logs/index.js';
import { type Inspectable, InspectorGateway, type InspectorTarget } from './inspector.js';
import { DeveloperTokens } from './tokens.js';

/** What the debug service reaches of the gateway; platform/main.ts builds it. */
export interface DebugHost {
  /** Sets MODE_SWITCH.is_developer_mode and audits "Launcher: Enabling the developer mode" the first time. */
  enableDeveloperMode(): Promise<void>;
  developerMode(): boolean;
  /** Installs or updates a pushed package as `owner`'s, then starts it. */
  push(file: string, owner: string): Promise<Record<string, unknown>>;
  /** The owner of an installed pushed app; null for an app not pushed; undefined when not installed. */
  ownerOf(packageId: string): string | null | undefined;
  /** The pushed apps of one developer. */
  appsOf(owner: string): { package_id: string; name: string; version: string; status: string }[];
  followLog(packageId: string, options: FollowOptions): Promise<LogFollower>;
  /** Restarts a pushed app with its isolate's inspector on (E_STATE when it cannot run). */
  inspect(packageId: string): Promise<void>;
  /** The inspector of a pushed app running with it on, else undefined. */
  inspectable(packageId: string): Inspectable | undefined;
}

export interface DebugServiceOptions {
  /** DATA/debug: the tokens and where the service listened. */
  dir: string;
  data: DataDir;
  audit: Audit;
  host: DebugHost;
  /** Largest package a push may send (bytes). */
  maxPackageBytes: number;
  clock?: () => Date;
}

export interface ListenOptions {
  host?: string;
  port?: number;
}

interface ServiceState {
  host: string;
  port: number;
}

export const DEBUG_DEFAULTS = { host: '127.0.0.1', port: 0 } as const;
const PACKAGE_ID = /^[a-z][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)+$/;
/** Refusals of unknown tokens audited per minute; past it they are counted and the count goes with the next record. */
const AUTH_AUDITS_PER_MINUTE = 10;
/** `NODE_DEBUG=isogate-push`: when a push arrived and when its package was on disk (ms), beside the orchestrator's phases. */
const tracePush = debuglog('isogate-push');

export class DebugService {
  readonly #options: Required<DebugServiceOptions>;
  #tokens: DeveloperTokens | undefined;
  #server: http.Server | undefined;
  #url: string | undefined;
  #inspector: InspectorGateway | undefined;
  /** host:port as a DevTools `ws=` parameter names it. */
  #base = '';
  #authAudits = { windowStart: 0, recorded: 0, suppressed: 0 };

  constructor(options: DebugServiceOptions) {
    if (!Number.isInteger(options.maxPackageBytes) || options.maxPackageBytes < 1)
      throw fail('E_OPTION', 'debug service option maxPackageBytes is a positive integer');
    this.#options = { clock: () => new Date(), ...options };
  }

  /** The service's URL while it listens. */
  get url(): string | undefined {
    return this.#url;
  }

  async #openTokens(): Promise<DeveloperTokens> {
    const { data, dir } = this.#options;
    await data.mkdir(data.relative(dir), 0o700);
    this.#tokens ??= await DeveloperTokens.open(dir, data);
    return this.#tokens;
  }

  /**
   * `isogate debug-service start`: developer mode on (sticky), the service listening, and a
   * token for the developer who started it, shown this once.
   */
  async start(developer: string, listen: ListenOptions = {}): Promise<{ url: string; name: string; token: string }> {
    if (this.#server)
      throw fail('E_CONFLICT', `The debug service is running at ${this.#url}; issue another developer a token with "isogate debug-service token add NAME"`);
    const host = listen.host ?? DEBUG_DEFAULTS.host;
    const port = listen.port ?? DEBUG_DEFAULTS.port;
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw fail('E_OPTION', `--port is a TCP port from 0 to 65535, got ${String(port)}`);
    const tokens = await this.#openTokens();
    // Checked before anything changes: a name refused leaves the gateway as it was.
    if (tokens.list().some((t) => t.name === developer)) throw fail('E_CONFLICT', `The developer ${developer} has a token already`, { name: developer });
    await this.#listen(host, port);
    await this.#options.host.enableDeveloperMode();
    const issued = await this.addToken(developer);
    return { url: this.#url!, ...issued };
  }

  /** At gateway start: the service comes back where it listened, with its tokens, if it ever started. */
  async resume(): Promise<boolean> {
    if (!this.#options.host.developerMode()) return false;
    const state = await readJsonIfExists<ServiceState>(path.join(this.#options.dir, 'service.json'), this.#options.data).catch(() => undefined);
    if (!state || typeof state.host !== 'string' || !Number.isInteger(state.port)) return false;
    await this.#openTokens();
    await this.#listen(state.host, state.port);
    return true;
  }

  async addToken(name: string): Promise<{ name: string; token: string }> {
    if (!this.#options.host.developerMode())
      throw fail('E_STATE', 'The gateway is not in developer mode; start the debug service first ("isogate debug-service start")');
    const issued = await (await this.#openTokens()).add(name, this.#options.clock());
    await this.#options.audit.record('debugTokenIssued', { developer: name }, { developer: name });
    return issued;
  }

  async revokeToken(name: string): Promise<void> {
    await (await this.#openTokens()).revoke(name);
    this.#inspector?.closeSessionsOf(name);
    await this.#options.audit.record('debugTokenRevoked', { developer: name }, { developer: name });
  }

  /** Ends every DevTools session (emergency support mode); the service itself keeps listening. */
  endSessions(reason: string): void {
    this.#inspector?.closeAll(reason);
  }

  async listTokens(): Promise<{ name: string; createdAt: string }[]> {
    return (await this.#openTokens()).list();
  }

  async #listen(host: string, port: number): Promise<void> {
    const server = http.createServer((request, response) => void this.#handle(request, response));
    const inspector = new InspectorGateway({
      authenticate: (token) => this.#tokens?.developerOf(token),
      ownerOf: (id) => this.#options.host.ownerOf(id),
      inspectable: (id) => this.#options.host.inspectable(id),
      developerMode: () => this.#options.host.developerMode(),
      refused: (request, error, developer) => this.#refused(request, error, developer),
      audit: this.#options.audit,
    });
    server.on('upgrade', (request, socket, head) => inspector.upgrade(request, socket, head));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) =>
        reject(fail('E_OPTION', `The debug service cannot listen on ${host}:${port}: ${error.code ?? error.message}`)),
      );
      server.listen(port, host, () => resolve());
    });
    const address = server.address() as AddressInfo;
    this.#server = server;
    this.#inspector = inspector;
    const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    this.#url = `http://${shownHost}:${address.port}`;
    this.#base = `${shownHost}:${address.port}`;
    await writeJsonDurable(path.join(this.#options.dir, 'service.json'), { host, port: address.port } satisfies ServiceState, {
      mode: 0o600,
      root: this.#options.data,
    });
  }

  async #handle(request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
    let developer: string | undefined;
    try {
      const url = new URL(request.url ?? '/', 'http://debug.invalid');
      developer = this.#authenticate(request);
      if (!this.#options.host.developerMode()) throw fail('E_STATE', 'The gateway is not in developer mode');
      const parts = url.pathname.split('/').filter(Boolean);
      if (request.method === 'POST' && url.pathname === '/v1/apps') return this.#json(response, 200, await this.#push(request, developer));
      if (request.method === 'GET' && url.pathname === '/v1/apps') return this.#json(response, 200, this.#options.host.appsOf(developer));
      if (parts.length === 4 && parts[0] === 'v1' && parts[1] === 'apps') {
        const id = this.#ownApp(parts[2]!, developer);
        if (request.method === 'GET' && parts[3] === 'logs') return await this.#logs(request, response, id, url.searchParams);
        if (request.method === 'POST' && parts[3] === 'debug') return this.#json(response, 200, await this.#debug(id, request));
      }
      throw fail('E_NOT_FOUND', `No ${request.method} ${url.pathname} in the debug service`);
    } catch (error) {
      const coded = toIsogateError(error);
      await this.#refused(request, coded, developer);
      if (!response.headersSent) this.#json(response, coded.status, { code: coded.code, message: coded.message });
      else response.destroy();
    } finally {
      // A body the handler did not read (a refusal before it) is drained, not left to stall the socket.
      if (!request.complete) request.resume();
    }
  }

  #authenticate(request: http.IncomingMessage): string {
    const header = request.headers.authorization;
    if (!header) throw fail('E_AUTH', 'The debug service needs a developer token: Authorization: Bearer TOKEN');
    const match = /^Bearer ([A-Za-z0-9_-]{1,200})$/.exec(header);
    const developer = match ? this.#tokens?.developerOf(match[1]) : undefined;
    if (!developer) throw fail('E_AUTH', 'The developer token is not known to this gateway (revoked, mistyped, or from before a factory reset)');
    return developer;
  }

  /** The app, if `developer` pushed it; anything else is refused the same way for an app not pushed and one not theirs. */
  #ownApp(id: string, developer: string): string {
    if (!PACKAGE_ID.test(id)) throw fail('E_BAD_REQUEST', 'Not a package id');
    const owner = this.#options.host.ownerOf(id);
    if (owner === undefined) throw fail('E_NOT_INSTALLED', `${id} is not installed`, { packageId: id });
    if (owner !== developer) throw fail('E_FORBIDDEN', `${id} was not pushed with this token; only its developer's token reaches it`, { packageId: id });
    return id;
  }

  /** Restarts the app with its inspector on; the answer names the WebSocket with the caller's own token in its path. */
  async #debug(id: string, request: http.IncomingMessage): Promise<InspectorTarget> {
    await this.#options.host.inspect(id);
    const token = /^Bearer (.+)$/.exec(request.headers.authorization ?? '')![1]!;
    return this.#inspector!.target(this.#base, id, token);
  }

  /** The body to a file under DATA/debug/incoming (bounded as it streams), then the orchestrator's push. */
  async #push(request: http.IncomingMessage, developer: string): Promise<Record<string, unknown>> {
    const { data, dir, maxPackageBytes } = this.#options;
    const declared = Number(request.headers['content-length'] ?? Number.NaN);
    if (Number.isFinite(declared) && declared > maxPackageBytes) throw fail('E_PACKAGE_LIMIT', `The package is larger than ${maxPackageBytes} bytes`);
    const incoming = path.join(dir, 'incoming');
    await data.mkdir(data.relative(incoming), 0o700);
    tracePush('request - %d', Math.round(performance.now()));
    const file = path.join(incoming, `${randomBytes(8).toString('hex')}.igp`);
    let received = 0;
    const bound = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        received += chunk.length;
        if (received > maxPackageBytes) callback(fail('E_PACKAGE_LIMIT', `The package is larger than ${maxPackageBytes} bytes`));
        else callback(null, chunk);
      },
    });
    try {
      await pipeline(request, bound, createWriteStream(file, { flags: 'wx', mode: 0o600 }));
      if (received === 0) throw fail('E_PACKAGE_FORMAT', 'The push carried no package (an empty body)');
      tracePush('received - %d', Math.round(performance.now()));
      return await this.#options.host.push(file, developer);
    } finally {
      await fs.rm(file, { force: true });
    }
  }

  /** The app's log as JSON lines (`{"line": ...}`), following until the client goes when `follow=1`. */
  async #logs(request: http.IncomingMessage, response: http.ServerResponse, id: string, query: URLSearchParams): Promise<void> {
    const tail = query.has('tail') ? Number(query.get('tail')) : undefined;
    if (tail !== undefined && (!Number.isInteger(tail) || tail < 0 || tail > 10_000)) throw fail('E_BAD_REQUEST', 'tail is a number of lines from 0 to 10000');
    const follow = query.get('follow') === '1';
    const follower = await this.#options.host.followLog(id, { ...(tail === undefined ? {} : { tail }), follow });
    const stop = (): void => void follower.close();
    request.socket.once('close', stop);
    response.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    try {
      for (let batch = await follower.next(); batch; batch = await follower.next()) {
        if (!response.write(batch.map((line) => `${JSON.stringify({ line })}\n`).join(''))) {
          await new Promise<void>((resolve) => {
            response.once('drain', resolve);
            response.once('close', resolve);
          });
        }
        if (response.destroyed) break;
      }
    } finally {
      request.socket.off('close', stop);
      await follower.close();
      response.end();
    }
  }

  #json(response: http.ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
    response.end(text);
  }

  /** Every refusal goes to the audit log; unknown tokens at a bounded rate, so a flood cannot overwrite the log. */
  async #refused(request: http.IncomingMessage, error: IsogateError, developer: string | undefined): Promise<void> {
    const code: ErrorCode = error.code;
    if (code === 'E_AUTH') {
      const now = this.#options.clock().getTime();
      const window = this.#authAudits;
      if (now - window.windowStart >= 60_000) Object.assign(window, { windowStart: now, recorded: 0 });
      if (window.recorded >= AUTH_AUDITS_PER_MINUTE) {
        window.suppressed += 1;
        return;
      }
      window.recorded += 1;
    }
    const suppressed = code === 'E_AUTH' ? this.#authAudits.suppressed : 0;
    if (code === 'E_AUTH') this.#authAudits.suppressed = 0;
    const what = `${request.method ?? '?'} ${(request.url ?? '')
      .split('?')[0]!
      .replace(/\/isgd_[A-Za-z0-9_-]*/g, '/<token>')
      .slice(0, 200)}`;
    await this.#options.audit
      .record(
        'debugRefused',
        { request: what, code },
        {
          code,
          reason: error.message,
          ...(developer ? { developer } : {}),
          remote: request.socket.remoteAddress ?? null,
          ...(suppressed ? { unknownTokensNotRecorded: suppressed } : {}),
        },
      )
      .catch(() => undefined);
  }

  async close(): Promise<void> {
    this.#inspector?.close();
    const server = this.#server;
    this.#server = undefined;
    this.#url = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
