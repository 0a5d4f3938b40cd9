/**
 * A REST API on loopback HTTPS for the API tests: a PKI made at run time (the gateway's root, its
 * server certificate, the two accounts' client certificates and the hostile ones), the real
 * accounts and authenticator on a clock the test moves, a memory audit log, and a service layer
 * that records every call that reaches it (a refused request must reach none). Every answer is
 * checked against the served OpenAPI document.
 */
import { strict as assert } from 'node:assert';
import { X509Certificate } from 'node:crypto';
import path from 'node:path';
import tls from 'node:tls';
import { Agent, request } from 'undici';
import { AccountStore, Authenticator, USER_SETTINGS_DEFAULTS, type UserSettings } from '../../platform/accounts/index.js';
import { CSRF_HEADER, type HttpApi, type HttpLimits, SESSION_COOKIE, serveHttpApi } from '../../platform/api/http/index.js';
import type { GatewayServices, GatewayStatus } from '../../platform/api/services.js';
import { MemoryAuditLog } from '../../platform/audit/index.js';
import { ConfigStore } from '../../platform/config/index.js';
import { fail } from '../../sdk/errors.js';
import { type CertificateUsage, createCertificate, generateKeyPair } from '../../sdk/pki.js';
import { compileSchema } from '../../sdk/schema.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

export interface Identity {
  certPem: string;
  keyPem: string;
}

function issue(
  name: string,
  usage: CertificateUsage,
  issuer: Identity | undefined,
  extra: { notBefore?: Date; notAfter?: Date; altNames?: string[] } = {},
): Identity {
  const keys = generateKeyPair();
  const certPem = createCertificate({
    subject: { commonName: name, organizationName: 'isogate api tests' },
    publicKeyPem: keys.publicKeyPem,
    ...(issuer ? { issuer } : { signingKeyPem: keys.keyPem }),
    usage,
    ...extra,
  });
  return { certPem, keyPem: keys.keyPem };
}

export interface ApiPki {
  root: Identity;
  server: Identity;
  admin: Identity;
  user: Identity;
  /** Another root, and a certificate it signed. */
  otherRoot: Identity;
  foreign: Identity;
  /** Signed by the root, expired yesterday. */
  expired: Identity;
  /** Signed by the root for server authentication only. */
  serverUsage: Identity;
  /** Signed by the root, valid, bound to no account. */
  unbound: Identity;
}

/** A client certificate of the test root, or of `issuer`. */
export function newClientIdentity(name: string, extra: { notAfter?: Date } = {}, issuer?: Identity): Identity {
  return issue(name, 'client', issuer ?? apiPki().root, extra);
}

let pki: ApiPki | undefined;
export function apiPki(): ApiPki {
  if (pki) return pki;
  const root = issue('api test root', 'ca', undefined);
  const otherRoot = issue('another root', 'ca', undefined);
  const day = 86_400_000;
  pki = {
    root,
    otherRoot,
    server: issue('localhost', 'server', root, { altNames: ['localhost', '127.0.0.1'] }),
    admin: issue('admin', 'client', root),
    user: issue('user', 'client', root),
    foreign: issue('admin', 'client', otherRoot),
    expired: issue('admin', 'client', root, { notBefore: new Date(Date.now() - 10 * day), notAfter: new Date(Date.now() - day) }),
    serverUsage: issue('admin', 'server', root),
    unbound: issue('stranger', 'client', root),
  };
  return pki;
}

export function sha256Of(identity: Identity): string {
  return new X509Certificate(identity.certPem).fingerprint256;
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  bytes: Buffer;
  json: unknown;
}

export interface ApiClient {
  /** The session cookie's value once logged in. */
  cookie: string | undefined;
  csrf: string | undefined;
  call(method: string, pathname: string, options?: { body?: unknown; raw?: string; headers?: Record<string, string>; csrf?: boolean }): Promise<Answer>;
  login(username: string, password: string): Promise<Answer>;
  close(): Promise<void>;
}

export interface Harness {
  api: HttpApi;
  audit: MemoryAuditLog;
  /** What reached the service layer. */
  calls: string[];
  settings: UserSettings;
  authenticator: Authenticator;
  config: ConfigStore;
  now: number;
  advance(ms: number): void;
  client(identity?: Identity): ApiClient;
  /** Asserts `answer` is the error `code` with that code's status, and that it matches the document. */
  close(): Promise<void>;
  dir: string;
}

const STATUS: GatewayStatus = {
  version: '0.1.0',
  sdkVersion: '1.0.0',
  uptimeSeconds: 1,
  dataDir: '/data',
  mode: 'router',
  developerMode: false,
  debugService: null,
  store: 'https://127.0.0.1:1',
  apps: { installed: 0, limit: 20, byStatus: {}, unsigned: 0 },
  routes: { active: 0, inactive: 0, error: 0 },
  emergency: null,
  traffic: { inspector: null, services: [], alertsRecorded: 0, alertsNotRecorded: 0, recordsFailed: 0, crossings: 0, inspectedItems: 0 },
};

/** A subsystem whose every method records its call and finds nothing installed. */
function recording(name: string, calls: string[]): unknown {
  return new Proxy(
    {},
    {
      get: (_target, property) =>
        property === 'then'
          ? undefined
          : (...args: unknown[]) => {
              calls.push(`${name}.${String(property)}`);
              throw fail('E_NOT_INSTALLED', `${String(args[0])} is not installed`);
            },
    },
  );
}

export async function startHarness(limits: Partial<HttpLimits> = {}, overrides: Record<string, unknown> = {}): Promise<Harness> {
  const keys = apiPki();
  const dir = await makeTempDir('isogate-api-');
  const harness = { now: Date.now() } as Harness;
  const clock = (): number => harness.now;
  const audit = new MemoryAuditLog();
  const calls: string[] = [];
  const settings: UserSettings = { ...USER_SETTINGS_DEFAULTS, failed_login_attempts: 3 };
  const config = await ConfigStore.open(path.join(dir, 'config.json'), 'isogate tests');
  const accounts = await AccountStore.open(
    path.join(dir, 'accounts'),
    {
      admin: { name: 'admin', password: 'adminadmin', certificateSha256: sha256Of(keys.admin), certificateValidTo: null },
      user: { name: 'user', password: 'useruser', certificateSha256: sha256Of(keys.user), certificateValidTo: null },
    },
    clock,
  );
  const authenticator = new Authenticator({ accounts, audit, settings: () => settings, clock });
  const services = {
    orchestrator: recording('orchestrator', calls),
    launcher: recording('launcher', calls),
    router: recording('router', calls),
    certificates: recording('certificates', calls),
    audit,
    config,
    status: () => {
      calls.push('status');
      return STATUS;
    },
    installedApps: () => {
      calls.push('installedApps');
      return [];
    },
    logArchiveInfo: (id: string) => (recording('logs', calls) as Record<string, (id: string) => never>).archiveInfo!(id),
    logArchive: (id: string) => (recording('logs', calls) as Record<string, (id: string) => never>).archive!(id),
    followLog: (id: string) => (recording('logs', calls) as Record<string, (id: string) => never>).follow!(id),
    requireInstalled: (id: string) => (recording('apps', calls) as Record<string, (id: string) => never>).requireInstalled!(id),
    ...overrides,
  } as unknown as GatewayServices;
  const api = await serveHttpApi({
    port: 0,
    tls: { keyPem: keys.server.keyPem, certPem: keys.server.certPem, rootCertPem: keys.root.certPem },
    services,
    authenticator,
    audit,
    version: '0.1.0',
    limits: { refusalAuditsPerMinute: 10_000, ...limits },
  });
  const clients: ApiClient[] = [];
  Object.assign(harness, {
    api,
    audit,
    calls,
    settings,
    authenticator,
    config,
    dir,
    advance: (ms: number) => {
      harness.now += ms;
    },
    client: (identity?: Identity) => {
      const made = apiClient(api, identity);
      clients.push(made);
      return made;
    },
    close: async () => {
      for (const made of clients) await made.close();
      await api.close();
      await removeDir(dir);
    },
  });
  return harness;
}

function apiClient(api: HttpApi, identity: Identity | undefined): ApiClient {
  const keys = apiPki();
  const agent = new Agent({
    connect: { ca: keys.root.certPem, ...(identity ? { cert: identity.certPem, key: identity.keyPem } : {}), servername: 'localhost' },
  });
  const client: ApiClient = {
    cookie: undefined,
    csrf: undefined,
    async call(method, pathname, options = {}) {
      const headers: Record<string, string> = { ...options.headers };
      if (client.cookie) headers.cookie = `${SESSION_COOKIE}=${client.cookie}`;
      if (client.csrf && options.csrf !== false) headers[CSRF_HEADER] = client.csrf;
      let body: string | undefined = options.raw;
      if (options.body !== undefined) {
        body = JSON.stringify(options.body);
        headers['content-type'] ??= 'application/json';
      }
      const response = await request(`${api.url}/api/v1${pathname}`, {
        dispatcher: agent,
        method: method as 'GET',
        headers,
        ...(body === undefined ? {} : { body }),
      });
      const bytes = Buffer.from(await response.body.arrayBuffer());
      const text = bytes.toString('utf8');
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      const answer: Answer = { status: response.statusCode, headers: response.headers, text, bytes, json };
      checkAgainstDocument(api.openapi, method, pathname, answer);
      return answer;
    },
    async login(username, password) {
      const answer = await client.call('POST', '/session', { body: { username, password } });
      if (answer.status === 200) {
        const cookies = ([] as string[]).concat(answer.headers['set-cookie'] ?? []);
        const mine = cookies.find((cookie) => cookie.startsWith(`${SESSION_COOKIE}=`));
        assert.ok(mine, 'a login sets the session cookie');
        client.cookie = mine.slice(SESSION_COOKIE.length + 1).split(';')[0];
        client.csrf = (answer.json as { csrfToken: string }).csrfToken;
      }
      return answer;
    },
    close: () => agent.close(),
  };
  return client;
}

/** The document's operation for a concrete path: the template with the fewest parameters that matches it. */
export function documentedOperation(openapi: Record<string, unknown>, method: string, pathname: string): Record<string, unknown> | undefined {
  const paths = openapi.paths as Record<string, Record<string, Record<string, unknown>>>;
  const bare = pathname.split('?')[0]!;
  const candidates = Object.keys(paths)
    .filter((template) => new RegExp(`^${template.replace(/[.]/g, '\\.').replace(/\{\w+\}/g, '[^/]+')}$`).test(bare))
    .sort((a, b) => (a.match(/\{/g)?.length ?? 0) - (b.match(/\{/g)?.length ?? 0));
  for (const template of candidates) {
    const operation = paths[template]![method.toLowerCase()];
    if (operation) return operation;
  }
  return undefined;
}

/** Every answer matches the document: its success schema for 200, the error schema (and the code's status) otherwise. */
export function checkAgainstDocument(openapi: Record<string, unknown>, method: string, pathname: string, answer: Answer): void {
  const operation = documentedOperation(openapi, method, pathname);
  const responses = operation?.responses as Record<string, { content?: Record<string, { schema: object }> }> | undefined;
  if (answer.status === 200) {
    assert.ok(responses, `${method} ${pathname} answered 200 but is not in the document`);
    const content = responses['200']!.content!;
    const type = String(answer.headers['content-type'] ?? '').split(';')[0]!;
    assert.ok(content[type], `${method} ${pathname} answered ${type}, which the document does not list`);
    if (type === 'application/json') {
      const validate = compileSchema(content[type]!.schema);
      assert.ok(validate(answer.json), `${method} ${pathname}: the answer does not match the document: ${JSON.stringify(validate.errors)}`);
    }
    return;
  }
  const error = (openapi.components as { schemas: { Error: object } }).schemas.Error;
  const validate = compileSchema(error);
  assert.ok(validate(answer.json), `${method} ${pathname} ${answer.status}: the error does not match the document: ${answer.text.slice(0, 300)}`);
  const codes = openapi['x-error-codes'] as Record<string, { status: number }>;
  assert.equal(answer.status, codes[(answer.json as { code: string }).code]!.status, "the status is the code's");
}

export function assertError(answer: Answer, code: string, status: number): void {
  assert.equal((answer.json as { code?: string } | undefined)?.code, code, `expected ${code}, got ${answer.status} ${answer.text.slice(0, 300)}`);
  assert.equal(answer.status, status);
}

/** A logged-in client whose password change is done: the state most tests start from. */
export async function readyClient(harness: Harness, role: 'admin' | 'user'): Promise<ApiClient> {
  const keys = apiPki();
  const client = harness.client(role === 'admin' ? keys.admin : keys.user);
  const first = role === 'admin' ? 'adminadmin' : 'useruser';
  const next = role === 'admin' ? 'Admin-pass-2026' : 'User-pass-2026';
  let answer = await client.login(role, first);
  if (answer.status !== 200) answer = await client.login(role, next);
  assert.equal(answer.status, 200, answer.text);
  if ((answer.json as { mustChange: boolean }).mustChange) {
    const changed = await client.call('PUT', `/users/${role}/credentials`, { body: { oldPassword: first, newPassword: next } });
    assert.equal(changed.status, 200, changed.text);
  }
  return client;
}

/** A raw TLS connection with the admin certificate, for what an HTTP client will not send. */
export function rawConnection(api: HttpApi): Promise<tls.TLSSocket> {
  const keys = apiPki();
  return new Promise((resolve, reject) => {
    const socket = tls.connect(
      { host: '127.0.0.1', port: api.port, ca: keys.root.certPem, cert: keys.admin.certPem, key: keys.admin.keyPem, servername: 'localhost' },
      () => resolve(socket),
    );
    socket.once('error', reject);
  });
}

/** Everything the server sends until it closes the connection. */
export function untilClosed(socket: tls.TLSSocket): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
    });
    socket.on('error', () => undefined);
    socket.once('close', () => resolve(text));
  });
}
