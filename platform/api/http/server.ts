/**
 * The REST API over HTTPS: koa with @koa/router under /api/v1, on the service layer the control
 * socket uses. TLS asks every client for a certificate and verifies it against the gateway's
 * root; a connection without one is still answered, so that the refusal has a code and is
 * audited. Handlers only gather parameters and call an operation; every refusal and failure
 * becomes `{code, message, details}` with its code's status, in one place (`sendError`).
 */
import { timingSafeEqual } from 'node:crypto';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import Router, { type RouterContext } from '@koa/router';
import Koa from 'koa';
import { ERROR_CODES, type ErrorCode, fail, type IsogateError, toIsogateError } from '../../../sdk/errors.js';
import { DOCUMENT_LIMITS } from '../../../sdk/limits.js';
import { assertValid, compileSchema } from '../../../sdk/schema.js';
import { LANG_COOKIE } from '../../../web/menu.js';
import type { Authenticator, Role, Session } from '../../accounts/index.js';
import type { Audit } from '../../audit/index.js';
import type { WebFrontEnd } from '../../web/assets.js';
import { checkOperation, OPERATIONS, type OperationContext } from '../operations.js';
import type { GatewayServices } from '../services.js';
import { readFileBody, readJsonBody } from './body.js';
import { buildOpenApi } from './openapi.js';
import { headerText, queryParams, takesBody } from './params.js';
import { AUDITED, REFUSALS, type Refusal, RefusalAudit } from './refusals.js';
import { koaPath, OPERATION_ROUTES, type OperationRoute, pathParameters } from './routes.js';
import { type SessionRoute, sessionRoutes } from './session-routes.js';

export const SESSION_COOKIE = '__Host-isogate-session';
export const CSRF_HEADER = 'x-csrf-token';
/** `1` on a request a page makes by itself (a periodic refresh): it does not count as activity for the idle period. */
export const BACKGROUND_HEADER = 'x-isogate-background';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

export interface HttpApiOptions {
  /** Loopback by default: the web interface is for the admin's own machine unless told otherwise. */
  host?: string;
  port: number;
  tls: { keyPem: string; certPem: string; rootCertPem: string };
  services: GatewayServices;
  authenticator: Authenticator;
  audit: Audit;
  version: string;
  /** Origins besides https://<host>:<port> (and localhost's names for loopback) allowed to send requests. */
  origins?: string[];
  limits?: Partial<HttpLimits>;
  /** The web interface under `/` (platform/web), served to the same certificates as the API. */
  web?: WebFrontEnd;
  /** The pages' Content-Security-Policy. */
  webCsp?: string;
}

export interface HttpLimits {
  /** A JSON body's bound, but for an operation with one of its own (setting an app's configuration). */
  bodyBytes: number;
  bodyTimeoutMs: number;
  headersTimeoutMs: number;
  /** The whole request, headers and body: Node's own bound, behind the body deadline. */
  requestTimeoutMs: number;
  handshakeTimeoutMs: number;
  headerBytes: number;
  /** Refusals audited per minute at most; more are counted and said in the next one recorded. */
  refusalAuditsPerMinute: number;
}

export const HTTP_DEFAULTS: Readonly<HttpLimits> = Object.freeze({
  bodyBytes: DOCUMENT_LIMITS.controlRequestBytes,
  bodyTimeoutMs: 15_000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  handshakeTimeoutMs: 10_000,
  headerBytes: 16 * 1024,
  refusalAuditsPerMinute: 120,
});

export interface HttpApi {
  readonly url: string;
  readonly port: number;
  readonly openapi: Record<string, unknown>;
  /** The methods and paths the router serves, for the test that holds them against the document. */
  readonly routes: readonly { method: string; path: string }[];
  close(): Promise<void>;
}

export function validateHttpOptions(options: HttpApiOptions): HttpLimits {
  if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) {
    throw fail('E_OPTION', `The API's port must be an integer from 0 to 65535, got ${String(options.port)}`);
  }
  const limits = { ...HTTP_DEFAULTS, ...options.limits };
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isInteger(value) || value < 1) throw fail('E_OPTION', `HTTP limit ${name} must be a positive integer, got ${String(value)}`);
  }
  return limits;
}

interface ApiState {
  certificateSha256: string;
}
type ApiContext = RouterContext<ApiState>;

export async function serveHttpApi(options: HttpApiOptions): Promise<HttpApi> {
  const limits = validateHttpOptions(options);
  const host = options.host ?? '127.0.0.1';
  const auth = options.authenticator;
  const refusals = new RefusalAudit(options.audit, limits.refusalAuditsPerMinute);
  const accountRoutes = sessionRoutes({ rootCertPem: options.tls.rootCertPem });
  const openapi = buildOpenApi(OPERATION_ROUTES, accountRoutes, options.version);
  const origins = new Set<string>(options.origins ?? []);

  const app = new Koa<ApiState>();
  app.silent = true;
  const router = new Router<ApiState>({ prefix: '/api/v1' });

  const refuse = async (ctx: { method: string; path: string }, error: Refusal): Promise<never> => {
    if (!error[AUDITED]) {
      error[AUDITED] = true;
      await refusals.record(`${ctx.method} ${ctx.path.slice(0, 200)}: ${error.code} ${error.message.slice(0, 200)}`);
    }
    throw error;
  };

  app.use(async (ctx, next) => {
    ctx.set({
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
      'X-Frame-Options': 'DENY',
      'Referrer-Policy': 'no-referrer',
      'Strict-Transport-Security': 'max-age=31536000',
      'Content-Security-Policy': "default-src 'none'; frame-ancestors 'none'",
    });
    try {
      await next();
      if (ctx.body === undefined && ctx.status === 404) {
        const matched = router.match(ctx.path, ctx.method);
        throw matched.path.length > 0
          ? fail('E_METHOD', `${ctx.method} is not a method of ${ctx.path}`, { allowed: [...new Set(matched.path.flatMap((layer) => layer.methods))] })
          : fail('E_NOT_FOUND', `No such resource: ${ctx.path.slice(0, 200)}`);
      }
    } catch (error) {
      let coded = toIsogateError(error) as Refusal;
      if (REFUSALS.has(coded.code) && !coded[AUDITED]) {
        try {
          await refuse(ctx, coded);
        } catch (marked) {
          coded = marked as Refusal;
        }
      }
      sendError(ctx, coded);
    }
  });

  // The first factor: a certificate the root vouches for (TLS verified it), for client authentication.
  app.use(async (ctx, next) => {
    const socket = ctx.req.socket as TLSSocket;
    const peer = socket.getPeerCertificate();
    const name = peer?.subject?.CN ? String(peer.subject.CN).slice(0, 64) : 'unknown';
    const usage = (peer as { ext_key_usage?: string[] } | undefined)?.ext_key_usage;
    if (!socket.authorized || !peer?.fingerprint256 || (usage && !usage.includes(CLIENT_AUTH))) {
      // Bounded like the other refusals: this one needs no credential at all to cause.
      await refusals.recordEvent('authInvalidCertificate', (more) => ({ 'user name': `${name}${more}` }), {
        reason: String(socket.authorizationError ?? 'no client certificate'),
      });
      const error = fail('E_CERTIFICATE_REQUIRED', "Connect with your account's client certificate, signed by the gateway's root") as Refusal;
      error[AUDITED] = true;
      throw error;
    }
    ctx.state.certificateSha256 = peer.fingerprint256;
    // Cross-site requests are refused whatever they carry: the browser says where they come from.
    const origin = ctx.get('Origin');
    const site = ctx.get('Sec-Fetch-Site');
    if ((origin && !origins.has(origin)) || (site && site !== 'same-origin' && site !== 'none')) {
      await refuse(ctx, fail('E_CSRF', `Requests from ${origin || site} are not accepted`));
    }
    await next();
  });

  // The pages: only behind the certificate check above, and never under the API's prefix.
  app.use(async (ctx, next) => {
    const web = options.web;
    if (!web || (ctx.method !== 'GET' && ctx.method !== 'HEAD') || ctx.path.startsWith('/api/')) return next();
    const answer = await web.respond({
      path: ctx.path,
      acceptEncoding: ctx.get('Accept-Encoding'),
      lang: ctx.cookies.get(LANG_COOKIE),
      // The page's chrome follows the session's role; reading it is not the person's activity.
      viewer: () =>
        auth.authenticate(ctx.cookies.get(SESSION_COOKIE), ctx.state.certificateSha256, { activity: false }).then(
          (current) => ({ role: current.role, name: current.name, mustChange: current.mustChange }),
          (error: unknown) => {
            // No live session is the login's chrome; the API's own call says why, with its code.
            if (['E_SESSION', 'E_CREDENTIALS_EXPIRED'].includes(toIsogateError(error).code)) return undefined;
            throw error;
          },
        ),
    });
    if (!answer) return next();
    ctx.status = 200;
    ctx.set(answer.headers);
    if (options.webCsp) ctx.set('Content-Security-Policy', options.webCsp);
    ctx.body = answer.body;
  });

  const session = async (ctx: ApiContext, needs: 'any' | 'ready', roles: readonly Role[], probe = false): Promise<Readonly<Session>> => {
    const token = ctx.cookies.get(SESSION_COOKIE);
    const current = await auth.authenticate(token, ctx.state.certificateSha256, { activity: ctx.get(BACKGROUND_HEADER) !== '1' }).catch((error: unknown) => {
      const coded = toIsogateError(error) as Refusal;
      if (probe && token === undefined && coded.code === 'E_SESSION') coded[AUDITED] = true;
      throw coded;
    });
    if (needs === 'ready' && current.mustChange) {
      await refuse(ctx, fail('E_PASSWORD_CHANGE', 'Change the password first: PUT /api/v1/users/{role}/credentials', { role: current.role }));
    }
    if (!roles.includes(current.role)) await refuse(ctx, fail('E_FORBIDDEN', `The ${current.role} account may not do this`, { role: current.role }));
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      const token = ctx.get(CSRF_HEADER);
      if (!token || !safeEqual(token, current.csrfToken)) await refuse(ctx, fail('E_CSRF', `The request lacks the session's ${CSRF_HEADER} header`));
    }
    return current;
  };

  const parameters = async (
    ctx: ApiContext,
    template: string,
    schema: Record<string, unknown>,
    fixed: Record<string, unknown> = {},
    consumes?: OperationRoute['consumes'],
    bodyBytes = limits.bodyBytes,
  ): Promise<Record<string, unknown>> => {
    const given = takesBody(ctx.method) ? await bodyParams(ctx, consumes, bodyBytes) : queryParams(ctx.req, ctx.query, schema);
    const own = [...pathParameters(template), ...Object.keys(fixed)];
    for (const key of own) if (Object.hasOwn(given, key)) throw fail('E_BAD_REQUEST', `"${key}" is set by the path; leave it out of the request`);
    return { ...given, ...Object.fromEntries(pathParameters(template).map((name) => [name, ctx.params[name]])), ...fixed };
  };
  const bodyParams = async (ctx: ApiContext, consumes: OperationRoute['consumes'] | undefined, bodyBytes: number): Promise<Record<string, unknown>> => {
    if (Object.keys(ctx.query).length > 0) throw fail('E_BAD_REQUEST', `${ctx.method} takes its parameters in the JSON body, not the query`);
    if (consumes) {
      // A file, not JSON: its bytes and the headers named are the parameters, checked by the operation's schema like any.
      const file = await readFileBody(ctx.req, { maxBytes: consumes.maxBytes, timeoutMs: limits.bodyTimeoutMs }).catch((error: unknown) => {
        ctx.set('Connection', 'close');
        throw error;
      });
      const given: Record<string, unknown> = { [consumes.body]: file.toString('base64') };
      for (const [name, header] of Object.entries(consumes.headers)) {
        const value = ctx.get(header);
        if (value) given[name] = headerText(value, header);
      }
      return given;
    }
    return readJsonBody(ctx.req, { maxBytes: bodyBytes, timeoutMs: limits.bodyTimeoutMs }).catch((error: unknown) => {
      // What the client still sends is not read: the connection closes after the refusal.
      ctx.set('Connection', 'close');
      throw error;
    });
  };

  for (const route of accountRoutes) {
    router.register(koaPath(route.path), [route.method], async (ctx) => {
      const current = route.session === 'none' ? undefined : await session(ctx, route.session, route.roles, route.probe === true);
      const params = await parameters(ctx, route.path, route.params);
      checkSchema(route, params);
      const result = await route.run(auth, {
        params,
        session: current,
        certificateSha256: ctx.state.certificateSha256,
        setSessionCookie: (token) =>
          ctx.append('Set-Cookie', `${SESSION_COOKIE}=${token ?? ''}; Path=/; Secure; HttpOnly; SameSite=Strict${token ? '' : '; Max-Age=0'}`),
      });
      sendJson(ctx, result);
    });
  }

  for (const route of OPERATION_ROUTES) {
    router.register(koaPath(route.path), [route.method], async (ctx) => {
      const current = await session(ctx, 'ready', route.roles);
      const operation = OPERATIONS[route.operation]!;
      const params = await parameters(ctx, route.path, operation.params, route.fixed, route.consumes, operation.maxRequestBytes);
      await runOperation(ctx, route, params, current);
    });
  }

  router.get('/openapi.json', (ctx) => sendJson(ctx, openapi));

  const runOperation = async (ctx: ApiContext, route: OperationRoute, params: Record<string, unknown>, current: Readonly<Session>): Promise<void> => {
    const operation = checkOperation(route.operation, params);
    const closed = new AbortController();
    // The response's close, not the socket's: a kept-alive socket would gather one listener a request.
    ctx.res.once('close', () => {
      if (!ctx.res.writableFinished) closed.abort();
    });
    const base: OperationContext = { progress: () => undefined, signal: closed.signal, actor: { role: current.role, name: current.name } };
    if (route.produces === 'archive') {
      const info = (await checkOperation('apps.logs.info', { id: params.id }).run(options.services, { id: params.id }, base)) as { fileName: string };
      const stream = new PassThrough();
      ctx.type = 'application/gzip';
      ctx.attachment(/^[A-Za-z0-9._-]{1,255}$/.test(info.fileName) ? info.fileName : 'log_files.tar.gz');
      ctx.body = stream;
      void operation
        .run(options.services, params, {
          ...base,
          progress: (update) => stream.write(Buffer.from((update as { data: string }).data, 'base64')),
          backlog: () => stream.writableLength,
          drained: () => new Promise((resolve) => (stream.writableLength === 0 ? resolve() : stream.once('drain', resolve))),
        })
        .then(
          () => stream.end(),
          (error: unknown) => stream.destroy(toIsogateError(error)),
        );
      return;
    }
    if (route.streams && (ctx.get('Accept') ?? '').includes('application/x-ndjson')) {
      const stream = new PassThrough();
      const line = (value: unknown): string => `${JSON.stringify(value)}\n`;
      ctx.type = 'application/x-ndjson';
      ctx.body = stream;
      void operation
        .run(options.services, params, {
          ...base,
          progress: (update) => stream.write(line({ progress: update })),
          backlog: () => stream.writableLength,
          drained: () => new Promise((resolve) => (stream.writableLength === 0 ? resolve() : stream.once('drain', resolve))),
        })
        .then(
          (result) => stream.end(line({ result: result ?? null })),
          (error: unknown) => stream.end(line({ error: toIsogateError(error).toJSON() })),
        );
      return;
    }
    if (params.follow === true) throw fail('E_BAD_REQUEST', 'follow streams: ask with Accept: application/x-ndjson');
    const updates: unknown[] = [];
    const result = await operation.run(options.services, params, { ...base, progress: (update) => updates.push(update) });
    if (route.produces === 'csv') {
      const { fileName, csv } = result as { fileName: string; csv: string };
      ctx.type = 'text/csv; charset=utf-8';
      ctx.attachment(fileName);
      ctx.body = csv;
      return;
    }
    if (route.produces === 'text') {
      const { fileName, text } = result as { fileName: string; text: string };
      ctx.type = 'text/plain; charset=utf-8';
      ctx.attachment(fileName);
      ctx.body = text;
      return;
    }
    if (route.produces === 'binary') {
      const { fileName, content } = result as { fileName: string; content: string };
      ctx.type = 'application/octet-stream';
      ctx.attachment(fileName);
      ctx.body = Buffer.from(content, 'base64');
      return;
    }
    // Log lines come as progress on the control socket; here they are the answer.
    if (route.operation === 'apps.logs.lines') {
      sendJson(ctx, { ...(result as object), lines: updates.flatMap((update) => (update as { lines: unknown[] }).lines) });
      return;
    }
    sendJson(ctx, route.view ? route.view(result) : (result ?? null));
  };

  app.use(router.routes());

  const server = https.createServer(
    {
      key: options.tls.keyPem,
      cert: options.tls.certPem,
      ca: options.tls.rootCertPem,
      requestCert: true,
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
      handshakeTimeout: limits.handshakeTimeoutMs,
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      maxHeaderSize: limits.headerBytes,
      // Node checks the two timeouts this often (30 s by default, longer than the timeouts themselves).
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(limits.headersTimeoutMs / 4))),
    },
    app.callback(),
  );
  server.keepAliveTimeout = 5_000;
  // A long operation (an install) may be silent for a while; slow senders are bound by the timeouts above.
  server.timeout = 0;
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    const code: ErrorCode | undefined =
      error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? 'E_REQUEST_TIMEOUT'
        : error.code === 'HPE_HEADER_OVERFLOW'
          ? 'E_DOCUMENT_LIMIT'
          : error.code === 'ECONNRESET'
            ? undefined
            : 'E_BAD_REQUEST';
    if (!code || !socket.writable) return void socket.destroy();
    const sentence = code === 'E_REQUEST_TIMEOUT' ? 'The request did not arrive in time' : `The request is not well-formed HTTP (${String(error.code)})`;
    void refusals.record(`${code} ${sentence}`);
    const body = JSON.stringify({ code, message: sentence, details: {} });
    socket.end(
      `HTTP/1.1 ${ERROR_CODES[code].status} ${code}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
    setTimeout(() => socket.destroy(), 1000).unref();
  });
  server.on('tlsClientError', (error: NodeJS.ErrnoException) => void refusals.record(`TLS handshake refused: ${String(error.code ?? error.message)}`));

  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(fail('E_OPTION', `The API cannot listen on ${host}:${options.port}: ${error.code ?? error.message}`, { host, port: options.port })),
    );
    server.listen(options.port, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const shown = host.includes(':') ? `[${host}]` : host;
  origins.add(`https://${shown}:${port}`);
  if (host === '127.0.0.1' || host === '::1' || host === 'localhost') {
    for (const name of ['127.0.0.1', 'localhost', '[::1]']) origins.add(`https://${name}:${port}`);
  }

  const routes = router.stack.flatMap((layer) =>
    layer.methods
      .filter((method) => method !== 'HEAD')
      .map((method) => ({
        method,
        path: String(layer.path)
          .replace(/^\/api\/v1/, '')
          .replace(/:(\w+)/g, '{$1}'),
      })),
  );
  return {
    url: `https://${shown}:${port}`,
    port,
    openapi,
    routes,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function checkSchema(route: SessionRoute, params: Record<string, unknown>): void {
  // The session routes' schemas are the platform's own, compiled once.
  assertValid(compileSchema(route.params), params, 'E_BAD_REQUEST', `Parameters of ${route.method} ${route.path}`);
}

function safeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

function sendJson(ctx: Koa.Context, value: unknown): void {
  ctx.status = 200;
  ctx.type = 'application/json';
  ctx.body = JSON.stringify(value ?? null);
}

function sendError(ctx: Koa.Context, error: IsogateError): void {
  ctx.status = error.status;
  ctx.type = 'application/json';
  ctx.remove('Content-Disposition');
  if (error.code === 'E_LOCKED' && typeof error.details.retryAfterSeconds === 'number') ctx.set('Retry-After', String(error.details.retryAfterSeconds));
  ctx.body = JSON.stringify(error.toJSON());
}
