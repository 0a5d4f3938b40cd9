/**
 * The routes of the web interface's accounts: login (`POST /session` with name and password over
 * the client-certificate connection), the session, logout, credentials and certificates. The
 * work is the Authenticator's; these say which parameters each takes and what it answers.
 */
import { X509Certificate } from 'node:crypto';
import { fail } from '../../../sdk/errors.js';
import { parseCertificates } from '../../../sdk/pki.js';
import { type Authenticator, ROLES, type Role, type Session } from '../../accounts/index.js';
import type { HttpMethod } from './routes.js';

export interface SessionRequest {
  params: Record<string, unknown>;
  session: Readonly<Session> | undefined;
  certificateSha256: string;
  /** Sets (a token) or clears (undefined) the session cookie. */
  setSessionCookie(token: string | undefined): void;
}

export interface SessionRoute {
  method: HttpMethod;
  path: string;
  summary: string;
  roles: readonly Role[];
  /** `none`: no session needed (login); `any`: also while a password change is due; otherwise a session past it. */
  session: 'none' | 'any' | 'ready';
  /**
   * A page asking whether it is logged in: asked without any session cookie, its E_SESSION is the
   * expected answer on every page load, not a refused attempt, and is not audited. A cookie that
   * is stale, replayed or someone else's is still refused and audited.
   */
  probe?: true;
  params: Record<string, unknown>;
  response: Record<string, unknown>;
  run(auth: Authenticator, request: SessionRequest): Promise<unknown>;
}

export interface SessionRouteOptions {
  /** The root an account's certificate must chain to (the one TLS verifies clients against). */
  rootCertPem: string;
}

const STRING = (maxLength: number) => ({ type: 'string', minLength: 1, maxLength });
const SESSION_VIEW = {
  type: 'object',
  additionalProperties: false,
  required: ['role', 'name', 'csrfToken', 'mustChange', 'idleMinutes', 'warnings'],
  properties: {
    role: { enum: ROLES },
    name: { type: 'string' },
    csrfToken: { type: 'string', description: 'Send it as X-CSRF-Token with every request that changes something' },
    mustChange: { type: 'boolean', description: 'The password must be changed (PUT /users/{role}/credentials) before anything else' },
    idleMinutes: { type: 'integer' },
    warnings: {
      type: 'array',
      items: {
        type: 'object',
        required: ['code', 'days', 'message'],
        properties: { code: { enum: ['credentials_expiry', 'certificate_expiry'] }, days: { type: 'integer' }, message: { type: 'string' } },
      },
    },
  },
};
const ACCOUNT_VIEW = {
  type: 'object',
  additionalProperties: false,
  required: ['role', 'name', 'credentialsExpire', 'mustChange', 'certificateSha256', 'certificateValidTo'],
  properties: {
    role: { enum: ROLES },
    name: { type: 'string' },
    credentialsExpire: { type: 'string', format: 'date-time' },
    mustChange: { type: 'boolean' },
    certificateSha256: { type: ['string', 'null'] },
    certificateValidTo: { type: ['string', 'null'] },
  },
};
/** The Users table (the pages' contract): lockout now, password expiry, last login since the gateway started. */
const USER_ROW = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'role', 'blocked', 'passwordExpiresAt', 'certificateSha256', 'lastLoginAt'],
  properties: {
    name: { type: 'string' },
    role: { enum: ROLES },
    blocked: { type: 'boolean' },
    passwordExpiresAt: { type: 'string', format: 'date-time' },
    certificateSha256: { type: ['string', 'null'] },
    lastLoginAt: { type: ['string', 'null'], format: 'date-time' },
  },
};
const ROLE_PARAM = { enum: ROLES };

function object(properties: Record<string, unknown>, required: string[] = []): Record<string, unknown> {
  return { type: 'object', additionalProperties: false, properties, required };
}

function view(session: Readonly<Session>, auth: Authenticator, warnings: unknown[] = []): unknown {
  return {
    role: session.role,
    name: session.name,
    csrfToken: session.csrfToken,
    mustChange: session.mustChange,
    idleMinutes: auth.settings().idle_minutes,
    warnings,
  };
}

export function sessionRoutes(options: SessionRouteOptions): SessionRoute[] {
  const root = new X509Certificate(options.rootCertPem);
  return [
    {
      method: 'POST',
      path: '/session',
      summary: 'Log in: name and password, over a connection with the account certificate',
      roles: ROLES,
      session: 'none',
      params: object({ username: STRING(64), password: STRING(256) }, ['username', 'password']),
      response: SESSION_VIEW,
      run: async (auth, request) => {
        const { username, password } = request.params as { username: string; password: string };
        const result = await auth.login(request.certificateSha256, username, password);
        request.setSessionCookie(result.token);
        return view(result.session, auth, result.warnings);
      },
    },
    {
      method: 'GET',
      path: '/session',
      summary: 'The current session: who, its CSRF token, whether a password change is due',
      roles: ROLES,
      session: 'any',
      probe: true,
      params: object({}),
      response: SESSION_VIEW,
      run: async (auth, request) => view(request.session!, auth),
    },
    {
      method: 'DELETE',
      path: '/session',
      summary: 'Log out: the session ends and its cookie is refused from now on',
      roles: ROLES,
      session: 'any',
      params: object({}),
      response: object({ loggedOut: { const: true } }, ['loggedOut']),
      run: async (auth, request) => {
        await auth.logout(request.session!);
        request.setSessionCookie(undefined);
        return { loggedOut: true };
      },
    },
    {
      method: 'GET',
      path: '/users',
      summary: 'Both accounts (name, credentials expiry, certificate) and the root certificate',
      roles: ['admin'],
      session: 'ready',
      params: object({}),
      response: object(
        {
          accounts: { type: 'array', items: ACCOUNT_VIEW },
          users: { type: 'array', items: USER_ROW },
          root: object({ subject: { type: 'string' }, validTo: { type: 'string' } }, ['subject', 'validTo']),
        },
        ['accounts', 'users', 'root'],
      ),
      run: async (auth) => ({
        accounts: ROLES.map((role) => auth.describe(role)),
        users: ROLES.map((role) => auth.overview(role)),
        root: { subject: root.subject, validTo: root.validTo },
      }),
    },
    {
      method: 'PUT',
      path: '/users/{role}/credentials',
      summary: "Update an account's name and password (the old password is required; the user may update only its own)",
      roles: ROLES,
      session: 'any',
      params: object({ role: ROLE_PARAM, oldPassword: STRING(256), newPassword: STRING(256), name: STRING(64) }, ['role', 'oldPassword', 'newPassword']),
      response: ACCOUNT_VIEW,
      run: async (auth, request) => {
        const { role, oldPassword, newPassword, name } = request.params as { role: Role; oldPassword: string; newPassword: string; name?: string };
        await auth.changeCredentials(request.session!, role, { oldPassword, newPassword, ...(name === undefined ? {} : { name }) });
        return auth.describe(role);
      },
    },
    {
      method: 'PUT',
      path: '/users/{role}/certificate',
      summary: "Bind an account to another certificate (PEM or DER, base64), signed by the gateway's root",
      roles: ['admin'],
      session: 'ready',
      params: object({ role: ROLE_PARAM, certificate: { type: 'string', minLength: 1, maxLength: 64 * 1024, pattern: '^[A-Za-z0-9+/=\\s]*$' } }, [
        'role',
        'certificate',
      ]),
      response: ACCOUNT_VIEW,
      run: async (auth, request) => {
        const { role, certificate } = request.params as { role: Role; certificate: string };
        const cert = accountCertificate(Buffer.from(certificate, 'base64'), root);
        await auth.bindCertificate(request.session!, role, cert.fingerprint256, new Date(cert.validTo).toISOString());
        return auth.describe(role);
      },
    },
  ];
}

const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

/** The manual: only a certificate signed with the root uploaded to the gateway, for client authentication, valid now. */
function accountCertificate(bytes: Buffer, root: X509Certificate): X509Certificate {
  let cert: X509Certificate;
  try {
    const pems = parseCertificates(bytes);
    if (pems.length !== 1) throw new Error(`${pems.length} certificates`);
    cert = new X509Certificate(pems[0]!);
  } catch (error) {
    throw fail('E_CERT_FILE', `The file is not one certificate in PEM or DER: ${(error as Error).message}`);
  }
  if (!cert.checkIssued(root) || !cert.verify(root.publicKey)) throw fail('E_CERTIFICATE', "The certificate is not signed by the gateway's root certificate");
  const now = Date.now();
  if (Date.parse(cert.validFrom) > now || Date.parse(cert.validTo) < now) throw fail('E_CERTIFICATE', 'The certificate is not valid now');
  if (cert.ca) throw fail('E_CERTIFICATE', 'A CA certificate cannot be an account certificate');
  if (cert.keyUsage && !cert.keyUsage.includes(CLIENT_AUTH)) throw fail('E_CERTIFICATE', 'The certificate is not for client authentication');
  return cert;
}
