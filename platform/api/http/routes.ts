/**
 * The REST API's routes over the service layer: each names one operation of `OPERATIONS`, the
 * roles that may call it (the manual's roles table: a user sees Status, Events, the lists of
 * installed apps and of their logs, and changes its own credentials; everything else is the
 * administrator's) and how its answer is sent. Parameters come from the path, the query (GET,
 * DELETE) or the JSON body, and are checked against the operation's schema, the one the control
 * socket checks too. The session routes (login, logout, credentials) are in session-routes.ts.
 */
import type { Role } from '../../accounts/index.js';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface OperationRoute {
  method: HttpMethod;
  /** OpenAPI's template syntax, below /api/v1. */
  path: string;
  operation: string;
  roles: readonly Role[];
  /** Parameters this route sets itself (the log an audit route reads). */
  fixed?: Record<string, unknown>;
  /** How a success is sent: JSON (default), a CSV file or the app's log archive. */
  produces?: 'json' | 'csv' | 'archive';
  /** The operation reports progress: with `Accept: application/x-ndjson` each update is a line, then the result. */
  streams?: boolean;
  /** The JSON Schema of a success's body, where the operation's answer has a fixed shape. */
  response?: Record<string, unknown>;
}

const ADMIN: readonly Role[] = ['admin'];
const EVERYONE: readonly Role[] = ['admin', 'user'];

export const AUDIT_RECORD_SCHEMA = {
  type: 'object',
  required: ['seq', 'time', 'log', 'event', 'name', 'text', 'severity', 'subject'],
  properties: {
    seq: { type: 'integer', minimum: 1 },
    time: { type: 'string', format: 'date-time' },
    log: { enum: ['system', 'firewall'] },
    event: { type: 'string' },
    name: { type: 'string' },
    text: { type: 'string' },
    severity: { enum: ['Informational', 'Warning', 'Critical'] },
    subject: { type: 'string' },
    details: { type: 'object' },
  },
};

const AUDIT_PAGE_SCHEMA = {
  description: 'Newest first; pass the last record\'s seq as `before` for the next page ("Load more")',
  type: 'array',
  items: AUDIT_RECORD_SCHEMA,
};

const STATUS_SCHEMA = {
  type: 'object',
  required: ['version', 'sdkVersion', 'uptimeSeconds', 'mode', 'developerMode', 'apps', 'routes', 'emergency', 'traffic'],
  properties: {
    version: { type: 'string' },
    sdkVersion: { type: 'string' },
    uptimeSeconds: { type: 'number', minimum: 0 },
    mode: { enum: ['router', 'unidirectional gateway'] },
    developerMode: { type: 'boolean' },
    apps: { type: 'object', required: ['installed', 'limit', 'byStatus'] },
    routes: { type: 'object', required: ['active', 'inactive', 'error'] },
    emergency: {
      oneOf: [{ type: 'null' }, { type: 'object', required: ['since', 'reason'], properties: { since: { type: 'string' }, reason: { type: 'string' } } }],
    },
    traffic: { type: 'object', required: ['inspector', 'services'], properties: { services: { type: 'array' } } },
  },
};

const APP_ROW_SCHEMA = {
  type: 'object',
  required: ['package_id', 'name', 'version', 'status', 'state', 'launch_rule', 'signature'],
  properties: {
    package_id: { type: 'string' },
    name: { type: 'string' },
    version: { type: 'string' },
    status: { type: 'string' },
    state: { type: 'integer' },
    launch_rule: { enum: ['auto', 'manual', 'blocked'] },
    signature: { enum: ['verified', 'unsigned', 'untrusted'] },
  },
};

function shape(properties: Record<string, unknown>): Record<string, unknown> {
  return { type: 'object', required: Object.keys(properties), properties };
}
const PACKAGE = { type: 'string' };
const INSTALLED = shape({ package_id: PACKAGE, name: { type: 'string' }, version: { type: 'string' } });
const COUNT = { type: 'integer', minimum: 0 };
const USER_SETTINGS_SCHEMA = shape(
  Object.fromEntries(
    [
      'credentials_validity_days',
      'idle_minutes',
      'credentials_expiry_notice_days',
      'certificate_expiry_notice_days',
      'failed_login_attempts',
      'lockout_minutes',
    ].map((key) => [key, { type: 'integer', minimum: 1 }]),
  ),
);

export const OPERATION_ROUTES: readonly OperationRoute[] = [
  { method: 'GET', path: '/status', operation: 'status', roles: EVERYONE, response: STATUS_SCHEMA },

  { method: 'GET', path: '/apps', operation: 'apps.list', roles: EVERYONE, response: { type: 'array', items: APP_ROW_SCHEMA } },
  { method: 'GET', path: '/store/apps', operation: 'apps.available', roles: ADMIN },
  { method: 'POST', path: '/apps', operation: 'apps.install', roles: ADMIN, streams: true, response: INSTALLED },
  { method: 'POST', path: '/apps/{id}/update', operation: 'apps.update', roles: ADMIN, streams: true },
  {
    method: 'DELETE',
    path: '/apps/{id}',
    operation: 'apps.uninstall',
    roles: ADMIN,
    response: shape({ package_id: PACKAGE, uninstalled: { const: true } }),
  },
  { method: 'POST', path: '/apps/{id}/forget-signer', operation: 'apps.forget', roles: ADMIN },
  { method: 'POST', path: '/apps/{id}/start', operation: 'apps.start', roles: ADMIN },
  { method: 'POST', path: '/apps/{id}/stop', operation: 'apps.stop', roles: ADMIN },
  { method: 'PUT', path: '/apps/{id}/rule', operation: 'apps.rule', roles: ADMIN },
  { method: 'PUT', path: '/apps/{id}/log-level', operation: 'apps.logLevel', roles: ADMIN },
  { method: 'GET', path: '/apps/{id}/config', operation: 'apps.config.get', roles: ADMIN },
  { method: 'PUT', path: '/apps/{id}/config', operation: 'apps.config.set', roles: ADMIN },
  { method: 'PATCH', path: '/apps/{id}/config', operation: 'apps.config.merge', roles: ADMIN },
  {
    method: 'GET',
    path: '/apps/{id}/logs',
    operation: 'apps.logs.info',
    roles: EVERYONE,
    response: shape({ fileName: { type: 'string' }, files: COUNT, uncompressedBytes: COUNT, estimatedBytes: COUNT }),
  },
  { method: 'GET', path: '/apps/{id}/logs/archive', operation: 'apps.logs.archive', roles: ADMIN, produces: 'archive' },
  {
    method: 'GET',
    path: '/apps/{id}/logs/lines',
    operation: 'apps.logs.lines',
    roles: ADMIN,
    streams: true,
    response: shape({ package_id: PACKAGE, lines: { type: 'array' }, dropped: COUNT }),
  },

  { method: 'GET', path: '/routes', operation: 'routes.list', roles: ADMIN },
  { method: 'POST', path: '/routes', operation: 'routes.add', roles: ADMIN },
  { method: 'PATCH', path: '/routes/{id}', operation: 'routes.update', roles: ADMIN },
  { method: 'DELETE', path: '/routes/{id}', operation: 'routes.remove', roles: ADMIN, response: shape({ id: { type: 'string' }, removed: { const: true } }) },

  { method: 'GET', path: '/apps/{id}/certificates', operation: 'certs.list', roles: ADMIN },
  { method: 'PUT', path: '/apps/{id}/certificates/ca', operation: 'certs.setCa', roles: ADMIN },
  { method: 'PUT', path: '/apps/{id}/certificates/client', operation: 'certs.setClient', roles: ADMIN },
  {
    method: 'DELETE',
    path: '/apps/{id}/certificates/{kind}',
    operation: 'certs.delete',
    roles: ADMIN,
    response: shape({ package_id: PACKAGE, kind: { enum: ['ca', 'client'] }, deleted: { const: true } }),
  },

  // The manual's Audit section (system log) is the administrator's; Events (firewall log) the user's too.
  { method: 'GET', path: '/audit/system', operation: 'audit.list', roles: ADMIN, fixed: { log: 'system' }, response: AUDIT_PAGE_SCHEMA },
  { method: 'GET', path: '/audit/firewall', operation: 'audit.list', roles: EVERYONE, fixed: { log: 'firewall' }, response: AUDIT_PAGE_SCHEMA },
  { method: 'GET', path: '/audit/system/export', operation: 'audit.export', roles: ADMIN, fixed: { log: 'system' }, produces: 'csv' },
  { method: 'GET', path: '/audit/firewall/export', operation: 'audit.export', roles: EVERYONE, fixed: { log: 'firewall' }, produces: 'csv' },

  { method: 'GET', path: '/users/settings', operation: 'users.settings.get', roles: ADMIN, response: USER_SETTINGS_SCHEMA },
  { method: 'PUT', path: '/users/settings', operation: 'users.settings.set', roles: ADMIN, response: USER_SETTINGS_SCHEMA },
];

/** The names of a template's path parameters, in order. */
export function pathParameters(template: string): string[] {
  return [...template.matchAll(/\{([A-Za-z_]+)\}/g)].map((match) => match[1]!);
}

/** koa-router's syntax for an OpenAPI template. */
export function koaPath(template: string): string {
  return template.replace(/\{([A-Za-z_]+)\}/g, ':$1');
}
