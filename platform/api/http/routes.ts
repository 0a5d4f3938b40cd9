/**
 * The REST API's routes over the service layer: each names one operation of `OPERATIONS`, the
 * roles that may call it (the manual's roles table: a user sees Status, Events, the lists of
 * installed apps and of their logs, and changes its own credentials; everything else is the
 * administrator's) and how its answer is sent. Parameters come from the path, the query (GET,
 * DELETE) or the JSON body, and are checked against the operation's schema, the one the control
 * socket checks too. The session routes (login, logout, credentials) are in session-routes.ts.
 */
import type { Role } from '../../accounts/index.js';
import { MAX_BACKUP_BYTES } from '../../backup/index.js';
import type { AllowlistEntry, DenylistEntry } from '../../traffic/gate-lists.js';
import { APP_MANIFEST_SCHEMA } from '../app-manifest.js';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface OperationRoute {
  method: HttpMethod;
  /** OpenAPI's template syntax, below /api/v1. */
  path: string;
  operation: string;
  roles: readonly Role[];
  /** Parameters this route sets itself (the log an audit route reads). */
  fixed?: Record<string, unknown>;
  /**
   * How a success is sent: JSON (default), a CSV file, the app's log archive, a text file (the
   * integrity report: `{fileName, text}`) or a binary file (the backup: `{fileName, content}` in base64).
   */
  produces?: 'json' | 'csv' | 'archive' | 'text' | 'binary';
  /**
   * The body is a file, not JSON (a backup to restore): its bytes become the parameter `body`
   * names (base64), and each of `headers` the parameter it names.
   */
  consumes?: { body: string; headers: Record<string, string>; maxBytes: number };
  /** The API's shape of the result, where the pages' contract names fields other than the CLI's (the operation's result). */
  view?: (result: unknown) => unknown;
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

const STRING = { type: 'string' };
const TIME = { type: 'string', format: 'date-time' };
const OBJECT = { type: 'object' };
const APP_STATUS_SCHEMA = {
  type: 'object',
  required: ['packageId', 'name', 'version', 'status', 'state', 'launchRule', 'logLevel', 'configured', 'restarts'],
  properties: {
    packageId: PACKAGE,
    name: STRING,
    version: STRING,
    status: { enum: ['starting', 'running', 'stopping', 'stopped', 'pending', 'error'] },
    state: { type: 'integer' },
    launchRule: { enum: ['auto', 'none', 'forbidden'] },
    logLevel: { type: 'integer', minimum: 0, maximum: 5 },
    configured: { type: 'boolean' },
    restarts: COUNT,
    lastError: { type: 'object', required: ['code', 'message'] },
    deliveryError: { type: 'object', required: ['code', 'message'] },
  },
};
const ROUTE_END_SCHEMA = shape({ application_id: STRING, endpoint: STRING });
const ROUTE_SCHEMA = {
  type: 'object',
  required: ['id', 'active', 'source', 'destination', 'status', 'overflow', 'queue_bytes', 'queued', 'queued_bytes', 'counters'],
  properties: {
    id: STRING,
    active: { type: 'boolean' },
    source: ROUTE_END_SCHEMA,
    destination: ROUTE_END_SCHEMA,
    status: { enum: ['Active', 'Inactive', 'Error'] },
    problem: STRING,
    overflow: { enum: ['block', 'drop-oldest', 'drop-newest'] },
    queue_bytes: COUNT,
    queued: COUNT,
    queued_bytes: COUNT,
    counters: OBJECT,
  },
};
const CERTIFICATE_SCHEMA = {
  type: 'object',
  required: ['kind', 'fileName', 'subject', 'issuer', 'validFrom', 'validTo', 'daysLeft'],
  properties: {
    kind: { enum: ['ca', 'client'] },
    fileName: STRING,
    subject: STRING,
    issuer: STRING,
    validFrom: STRING,
    validTo: STRING,
    daysLeft: { type: 'integer' },
  },
};
const AVAILABLE_SCHEMA = {
  type: 'array',
  items: {
    type: 'object',
    required: ['package_id', 'name', 'title', 'version', 'size', 'categories', 'status', 'installedVersion'],
    properties: {
      package_id: PACKAGE,
      name: STRING,
      title: STRING,
      version: STRING,
      size: COUNT,
      categories: { type: 'array', items: STRING },
      status: { enum: ['available', 'compromised'] },
      installedVersion: { type: ['string', 'null'] },
    },
  },
};
const UPDATED_SCHEMA = {
  type: 'object',
  required: ['package_id', 'name', 'version', 'previous_version', 'reset_keys', 'routes_in_error', 'started'],
  properties: {
    package_id: PACKAGE,
    name: STRING,
    version: STRING,
    previous_version: STRING,
    reset_keys: { type: 'array', items: STRING },
    routes_in_error: { type: 'array' },
    started: { type: 'boolean' },
  },
};
const FORGOTTEN_SCHEMA = shape({
  package_id: PACKAGE,
  forgotten: { const: true },
  signer: shape({ subject: STRING, issuer: STRING, spkiSha256: { type: ['string', 'null'] } }),
});

// The manual's status texts (platform/integrity/check.ts), spelled here so that the document lists them.
const FILE_STATUSES = [
  'File integrity verified successfully',
  'File content changed against reference!',
  "File isn't present in integrity database!",
  'The file under integrity control was deleted or moved!',
  'Package integrity violation!',
];
const CHECKSUM = { type: 'string', pattern: '^[0-9a-f]{64}$' };
const INTEGRITY_RUN_SCHEMA = {
  type: 'object',
  required: ['id', 'startedAt', 'finishedAt', 'ok', 'files', 'summary', 'violations'],
  properties: {
    id: { type: 'string', pattern: '^[0-9a-f]{16}$', description: 'GET /integrity/report/{id} downloads its report' },
    startedAt: TIME,
    finishedAt: TIME,
    ok: { type: 'boolean' },
    files: {
      type: 'array',
      items: shape({ path: STRING, app: STRING, checkedAt: TIME, reference: CHECKSUM, calculated: CHECKSUM, status: { enum: FILE_STATUSES } }),
    },
    summary: shape({ files: COUNT, verified: COUNT, changed: COUNT, unknown: COUNT, missing: COUNT, package: COUNT }),
    violations: { type: 'array', items: shape({ app: STRING, description: STRING }) },
  },
};
const SELF_TEST_SCHEMA = shape({
  startedAt: TIME,
  finishedAt: TIME,
  ok: { type: 'boolean' },
  tests: {
    type: 'array',
    items: {
      type: 'object',
      required: ['name', 'ok', 'message'],
      properties: {
        name: { enum: ['audit', 'authentication', 'traffic-blocking', 'network-protector'] },
        ok: { type: 'boolean' },
        skipped: { type: 'boolean', description: 'Nothing to test now (Network Protector stopped or not installed: transit is blocked anyway)' },
        message: STRING,
      },
    },
  },
});
const RESTORE_SCHEMA = shape({
  restored: { const: true },
  restartRequired: { type: 'boolean', description: 'Running apps whose configuration changed take it at their next start (appsToRestart)' },
  appsToRestart: { type: 'array', items: PACKAGE },
  missingApps: { type: 'array', items: PACKAGE, description: 'Apps the backup configures that are not installed here: install them, then restore again' },
  leftEmergency: { type: 'boolean' },
  backup: shape({ platformVersion: STRING, hostId: STRING, createdAt: TIME }),
});
const IP = { type: 'string' };
const NP_STATUS_SCHEMA = {
  type: 'object',
  required: ['inspector', 'services', 'alertsRecorded', 'alertsNotRecorded', 'recordsFailed', 'crossings', 'inspectedItems'],
  properties: {
    inspector: { type: ['string', 'null'] },
    services: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name', 'protocol', 'listen', 'upstream', 'counters'],
        properties: { name: STRING, protocol: { enum: ['modbus', 'mqtt'] }, listen: OBJECT, upstream: OBJECT, counters: OBJECT },
      },
    },
    alertsRecorded: COUNT,
    alertsNotRecorded: COUNT,
    recordsFailed: COUNT,
    crossings: COUNT,
    inspectedItems: COUNT,
    listenError: STRING,
  },
};
const allowView = (entry: AllowlistEntry): { ip: string } => ({ ip: entry.ipAddrSource });
const denyView = (entry: DenylistEntry): { ip: string; signature: string | null; blockedAt: string | null } => ({
  ip: entry.ipAddrSource,
  signature: entry.signatureName ?? null,
  blockedAt: entry.timestamp === undefined ? null : new Date(entry.timestamp * 1000).toISOString(),
});
const DENY_ENTRY = shape({ ip: IP, signature: { type: ['string', 'null'] }, blockedAt: { type: ['string', 'null'], format: 'date-time' } });

export const OPERATION_ROUTES: readonly OperationRoute[] = [
  { method: 'GET', path: '/status', operation: 'status', roles: EVERYONE, response: STATUS_SCHEMA },

  { method: 'GET', path: '/apps', operation: 'apps.list', roles: EVERYONE, response: { type: 'array', items: APP_ROW_SCHEMA } },
  { method: 'GET', path: '/store/apps', operation: 'apps.available', roles: ADMIN, response: AVAILABLE_SCHEMA },
  { method: 'POST', path: '/apps', operation: 'apps.install', roles: ADMIN, streams: true, response: INSTALLED },
  { method: 'POST', path: '/apps/{id}/update', operation: 'apps.update', roles: ADMIN, streams: true, response: UPDATED_SCHEMA },
  {
    method: 'DELETE',
    path: '/apps/{id}',
    operation: 'apps.uninstall',
    roles: ADMIN,
    response: shape({ package_id: PACKAGE, uninstalled: { const: true } }),
  },
  { method: 'POST', path: '/apps/{id}/forget-signer', operation: 'apps.forget', roles: ADMIN, response: FORGOTTEN_SCHEMA },
  { method: 'GET', path: '/apps/{id}/manifest', operation: 'apps.manifest', roles: ADMIN, response: APP_MANIFEST_SCHEMA },
  { method: 'POST', path: '/apps/{id}/start', operation: 'apps.start', roles: ADMIN, response: APP_STATUS_SCHEMA },
  { method: 'POST', path: '/apps/{id}/stop', operation: 'apps.stop', roles: ADMIN, response: APP_STATUS_SCHEMA },
  { method: 'PUT', path: '/apps/{id}/rule', operation: 'apps.rule', roles: ADMIN, response: APP_STATUS_SCHEMA },
  { method: 'PUT', path: '/apps/{id}/log-level', operation: 'apps.logLevel', roles: ADMIN, response: APP_STATUS_SCHEMA },
  {
    method: 'GET',
    path: '/apps/{id}/config',
    operation: 'apps.config.get',
    roles: ADMIN,
    response: { description: 'The configuration, defaults under what an admin set; null for an app without one', type: ['object', 'null'] },
  },
  { method: 'PUT', path: '/apps/{id}/config', operation: 'apps.config.set', roles: ADMIN, response: APP_STATUS_SCHEMA },
  { method: 'PATCH', path: '/apps/{id}/config', operation: 'apps.config.merge', roles: ADMIN, response: APP_STATUS_SCHEMA },
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

  { method: 'GET', path: '/routes', operation: 'routes.list', roles: ADMIN, response: { type: 'array', items: ROUTE_SCHEMA } },
  { method: 'POST', path: '/routes', operation: 'routes.add', roles: ADMIN, response: ROUTE_SCHEMA },
  { method: 'PATCH', path: '/routes/{id}', operation: 'routes.update', roles: ADMIN, response: ROUTE_SCHEMA },
  { method: 'DELETE', path: '/routes/{id}', operation: 'routes.remove', roles: ADMIN, response: shape({ id: { type: 'string' }, removed: { const: true } }) },

  { method: 'GET', path: '/apps/{id}/certificates', operation: 'certs.list', roles: ADMIN, response: { type: 'array', items: CERTIFICATE_SCHEMA } },
  { method: 'PUT', path: '/apps/{id}/certificates/ca', operation: 'certs.setCa', roles: ADMIN, response: CERTIFICATE_SCHEMA },
  { method: 'PUT', path: '/apps/{id}/certificates/client', operation: 'certs.setClient', roles: ADMIN, response: CERTIFICATE_SCHEMA },
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

  // The manual's Network section (Network Protector's lists) is the administrator's.
  { method: 'GET', path: '/np/status', operation: 'np.status', roles: ADMIN, response: NP_STATUS_SCHEMA },
  {
    method: 'GET',
    path: '/np/allowlist',
    operation: 'np.allowlist.list',
    roles: ADMIN,
    view: (result) => ({ entries: (result as AllowlistEntry[]).map(allowView) }),
    response: shape({ entries: { type: 'array', items: shape({ ip: IP }) } }),
  },
  {
    method: 'POST',
    path: '/np/allowlist',
    operation: 'np.allowlist.add',
    roles: ADMIN,
    view: (result) => ({ ...allowView(result as AllowlistEntry), added: true }),
    response: shape({ ip: IP, added: { const: true } }),
  },
  {
    method: 'DELETE',
    path: '/np/allowlist/{ip}',
    operation: 'np.allowlist.remove',
    roles: ADMIN,
    view: (result) => ({ ...allowView(result as AllowlistEntry), removed: true }),
    response: shape({ ip: IP, removed: { const: true } }),
  },
  {
    method: 'GET',
    path: '/np/denylist',
    operation: 'np.denylist.list',
    roles: ADMIN,
    view: (result) => ({ entries: (result as DenylistEntry[]).map(denyView) }),
    response: shape({ entries: { type: 'array', items: DENY_ENTRY } }),
  },
  {
    method: 'DELETE',
    path: '/np/denylist/{ip}',
    operation: 'np.denylist.remove',
    roles: ADMIN,
    view: (result) => ({ ip: (result as DenylistEntry).ipAddrSource, removed: true }),
    response: shape({ ip: IP, removed: { const: true } }),
  },

  // Self-diagnostics and Settings are the administrator's.
  { method: 'POST', path: '/integrity/check', operation: 'integrity.check', roles: ADMIN, response: INTEGRITY_RUN_SCHEMA },
  { method: 'GET', path: '/integrity/last', operation: 'integrity.last', roles: ADMIN, response: INTEGRITY_RUN_SCHEMA },
  { method: 'GET', path: '/integrity/report/{id}', operation: 'integrity.report', roles: ADMIN, produces: 'text' },
  { method: 'POST', path: '/self-test', operation: 'selftest.run', roles: ADMIN, response: SELF_TEST_SCHEMA },
  { method: 'GET', path: '/settings', operation: 'settings.get', roles: ADMIN, response: shape({ document: OBJECT, schema: OBJECT }) },
  { method: 'PUT', path: '/settings', operation: 'settings.set', roles: ADMIN, response: shape({ document: OBJECT }) },
  { method: 'POST', path: '/backup', operation: 'backup.create', roles: ADMIN, produces: 'binary' },
  {
    method: 'POST',
    path: '/restore',
    operation: 'backup.restore',
    roles: ADMIN,
    consumes: { body: 'content', headers: { passphrase: 'x-backup-passphrase' }, maxBytes: MAX_BACKUP_BYTES },
    response: RESTORE_SCHEMA,
  },
];

/** The names of a template's path parameters, in order. */
export function pathParameters(template: string): string[] {
  return [...template.matchAll(/\{([A-Za-z_]+)\}/g)].map((match) => match[1]!);
}

/** koa-router's syntax for an OpenAPI template. */
export function koaPath(template: string): string {
  return template.replace(/\{([A-Za-z_]+)\}/g, ':$1');
}
