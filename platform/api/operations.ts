/**
 * The service layer: every operation an admin can perform, with the JSON Schema of its
 * parameters. The control socket dispatches here today and the REST API will map its routes
 * onto the same table, so a rule enforced here holds for every client. Handlers read like
 * sentences; the work is done by the subsystems behind `GatewayServices`.
 */
import { fail } from '../../sdk/errors.js';
import { DOCUMENT_LIMITS } from '../../sdk/limits.js';
import { assertValid, compileSchema } from '../../sdk/schema.js';
import { USER_SETTINGS_DEFAULTS, type UserSettings } from '../accounts/index.js';
import { type AuditEventKey, type AuditFilter, toCsv } from '../audit/index.js';
import { MAX_BACKUP_BYTES, PASSPHRASE } from '../backup/index.js';
import { type ConfigDocument, configDocumentSchema, documentSectionSchema } from '../config/index.js';
import { MAX_TAIL_LINES } from '../logs/index.js';
import { type OverflowPolicy, ROUTE_QUEUE_BYTES } from '../router/index.js';
import { appManifestView } from './app-manifest.js';
import type { GatewayServices, InstalledAppView } from './services.js';

export interface OperationContext {
  /** Streams an intermediate update to the caller (install progress, archive chunks, log lines). */
  progress(update: unknown): void;
  /** Aborted when the caller goes away; a caller without one stays until the operation ends. */
  signal?: AbortSignal;
  /** Bytes sent to the caller and not yet taken by it (0 for a caller without a connection). */
  backlog?(): number;
  /** Resolves once the caller has taken what was sent, or has gone. */
  drained?(): Promise<void>;
  /** Who asked, where the caller is an account of the web interface (the audit names its role); the local admin without. */
  actor?: { role: 'admin' | 'user'; name: string };
}

/**
 * An installed app as the user account sees it (the manual's roles: the list of installed apps,
 * nothing to change). What an app declares (endpoints, egress hosts, its configuration's schema),
 * its signer's details, who pushed it and its last error are the administrator's, as
 * `apps.manifest` is: the list must not hand the user what that route refuses it.
 */
const USER_APP_FIELDS = ['package_id', 'name', 'publisher', 'version', 'type', 'status', 'state', 'launch_rule', 'signature'] as const;
function userAppRow(app: InstalledAppView): Pick<InstalledAppView, (typeof USER_APP_FIELDS)[number]> {
  return Object.fromEntries(USER_APP_FIELDS.map((field) => [field, app[field]])) as Pick<InstalledAppView, (typeof USER_APP_FIELDS)[number]>;
}

/** A follower sends more lines only while the caller has less than this unread; what waits beyond is the follower's own bounded buffer. */
const FOLLOW_BACKLOG_BYTES = 64 * 1024;

export interface Operation {
  summary: string;
  params: Record<string, unknown>;
  /**
   * A request larger than the usual 1 MiB (a control-socket line, a web API body), for an operation
   * that carries a file or a traffic inspector's configuration.
   */
  maxRequestBytes?: number;
  // biome-ignore lint/suspicious/noExplicitAny: params are checked against `params` (the schema) before run, and each run names their shape
  run(services: GatewayServices, params: any, context: OperationContext): Promise<unknown>;
}

const PACKAGE_ID = { type: 'string', minLength: 3, maxLength: 128, pattern: '^[a-z][a-z0-9-]*(\\.[a-z0-9][a-z0-9-]*)+$' };
// The app part may be an id or a name (names have spaces); the endpoint part never has either.
const ROUTE_END = { type: 'string', minLength: 3, maxLength: 200, pattern: '^[^:\\u0000-\\u001f]+:[^:\\s]+$' };
const OVERFLOW = { enum: ['block', 'drop-oldest', 'drop-newest'] };
const QUEUE_BYTES = { type: 'integer', minimum: ROUTE_QUEUE_BYTES.min, maximum: ROUTE_QUEUE_BYTES.max };
const BASE64 = { type: 'string', maxLength: 4 * 1024 * 1024, pattern: '^[A-Za-z0-9+/=\\s]*$' };
const IP_TEXT = { type: 'string', maxLength: 64 };
const DEVELOPER = { type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' };
const PORT = { type: 'integer', minimum: 0, maximum: 65535 };
const REPORT_ID = { type: 'string', pattern: '^[0-9a-f]{16}$' };
const BACKUP_PASSPHRASE = { type: 'string', ...PASSPHRASE };
const FILE_NAME = { type: 'string', minLength: 1, maxLength: 255, pattern: '^[^/\\\\\\u0000-\\u001f]+$' };

function params(properties: Record<string, unknown>, required: string[] = []): Record<string, unknown> {
  return { type: 'object', additionalProperties: false, properties, required };
}

/**
 * `APP:ENDPOINT` on the command line and in the API, where APP is an installed app's id or,
 * where exactly one installed app has it, its name (`routes list` shows both); the manual's
 * route shape inside. An APP that is neither stays as given, so the router says it is not installed.
 */
function routeEnd(services: GatewayServices, text: string): { application_id: string; endpoint: string } {
  const [app, endpoint] = text.split(':') as [string, string];
  const given = app.trim();
  const installed = services.orchestrator.list();
  if (installed.some((candidate) => candidate.packageId === given)) return { application_id: given, endpoint };
  const named = installed.filter((candidate) => candidate.manifest.name.toLowerCase() === given.toLowerCase());
  if (named.length > 1) {
    throw fail('E_ROUTE', `"${given}" names ${named.length} installed apps (${named.map((candidate) => candidate.packageId).join(', ')}): give the app's id`);
  }
  return { application_id: named[0]?.packageId ?? given, endpoint };
}

const SEVERITIES = ['Informational', 'Warning', 'Critical'];
/** The manual's audit tables show the last 1024 events. */
const AUDIT_PAGE = 1024;
const AUDIT_EXPORT_FILTER = {
  log: { enum: ['system', 'firewall'] },
  severity: { type: 'array', items: { enum: SEVERITIES }, maxItems: 3, uniqueItems: true },
  subject: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 64 }, maxItems: 32 },
  from: { type: 'string', format: 'date-time' },
  to: { type: 'string', format: 'date-time' },
};
/** Records hold UTC times (toISOString); a bound given with an offset is compared as the same instant. */
function normalTimes(filter: AuditFilter): AuditFilter {
  return {
    ...filter,
    ...(filter.from ? { from: new Date(filter.from).toISOString() } : {}),
    ...(filter.to ? { to: new Date(filter.to).toISOString() } : {}),
  };
}
const AUDIT_FILTER = {
  ...AUDIT_EXPORT_FILTER,
  before: { type: 'integer', minimum: 1 },
  limit: { type: 'integer', minimum: 1, maximum: 10_000 },
};

/** The manual's events for a change of a connection setting; the others have none. */
const SETTING_EVENTS: readonly [keyof UserSettings, AuditEventKey][] = [
  ['lockout_minutes', 'lockoutMinutesChanged'],
  ['idle_minutes', 'idleMinutesChanged'],
  ['failed_login_attempts', 'failedAttemptsChanged'],
];

/** The CLI and UI say what the manual's web interface says; the document keeps the manual's values. */
const LAUNCH_RULES = { auto: 'auto', manual: 'none', blocked: 'forbidden' } as const;

export const OPERATIONS: Record<string, Operation> = {
  status: {
    summary: 'Gateway status: version, modes, apps by status, store',
    params: params({}),
    run: async (services) => services.status(),
  },
  'apps.available': {
    summary: "The store's apps with the installed version beside each",
    params: params({}),
    run: async ({ orchestrator }) => orchestrator.available(),
  },
  'apps.list': {
    summary:
      "Installed apps with status, launch rule, manifest and signature state (to the web interface's user account: name, version, publisher, state and start rule only)",
    params: params({}),
    run: async (services, _params, context: OperationContext) => {
      const apps = services.installedApps();
      return context.actor?.role === 'user' ? apps.map(userAppRow) : apps;
    },
  },
  'apps.manifest': {
    summary: 'What an installed app declares: endpoints, egress hosts, limits, capabilities, configuration schema, and its signer (or unsigned)',
    params: params({ id: PACKAGE_ID }, ['id']),
    run: async (services, { id }: { id: string }) => {
      services.requireInstalled(id);
      return appManifestView(services.orchestrator.get(id)!);
    },
  },
  'apps.install': {
    summary: 'Download, verify and install an app from the store',
    params: params({ id: PACKAGE_ID, version: { type: 'string', maxLength: 64 } }, ['id']),
    run: async ({ orchestrator }, { id, version }: { id: string; version?: string }, context) => {
      const app = await orchestrator.install(id, { version, onProgress: (progress) => context.progress(progress) });
      return { package_id: app.packageId, name: app.manifest.name, version: app.version };
    },
  },
  'apps.update': {
    summary: 'Update an installed app in place to another version from the store, keeping its storage, certificates, valid configuration and routes',
    params: params({ id: PACKAGE_ID, version: { type: 'string', maxLength: 64 }, allowDowngrade: { type: 'boolean' } }, ['id']),
    run: async ({ orchestrator }, { id, version, allowDowngrade }: { id: string; version?: string; allowDowngrade?: boolean }, context) => {
      const result = await orchestrator.update(id, { version, allowDowngrade, onProgress: (progress) => context.progress(progress) });
      return {
        package_id: result.app.packageId,
        name: result.app.manifest.name,
        version: result.app.version,
        previous_version: result.previousVersion,
        reset_keys: result.resetKeys,
        routes_in_error: result.routesInError,
        started: result.started,
      };
    },
  },
  'apps.uninstall': {
    summary: 'Uninstall an app and everything it owned',
    params: params({ id: PACKAGE_ID }, ['id']),
    run: async ({ orchestrator }, { id }: { id: string }) => {
      await orchestrator.uninstall(id);
      return { package_id: id, uninstalled: true };
    },
  },
  'apps.forget': {
    summary: "Forget the signer an uninstalled app's id is bound to, so that another signer may install that id",
    params: params({ id: PACKAGE_ID }, ['id']),
    run: async ({ orchestrator }, { id }: { id: string }) => {
      const binding = await orchestrator.forgetSigner(id);
      return { package_id: id, forgotten: true, signer: { subject: binding.subject, issuer: binding.issuer, spkiSha256: binding.spkiSha256 } };
    },
  },
  'apps.start': {
    summary: 'Start an installed app',
    params: params({ id: PACKAGE_ID }, ['id']),
    run: async ({ launcher }, { id }: { id: string }) => launcher.start(id),
  },
  'apps.stop': {
    summary: 'Stop a running app, or one in Error (waiting to restart or given up on)',
    params: params({ id: PACKAGE_ID }, ['id']),
    run: async ({ launcher }, { id }: { id: string }) => launcher.stop(id),
  },
  'apps.rule': {
    summary: 'Set the start rule: auto (Autostart), manual (Manual start) or blocked (Block start)',
    params: params({ id: PACKAGE_ID, rule: { enum: Object.keys(LAUNCH_RULES) } }, ['id', 'rule']),
    run: async ({ launcher }, { id, rule }: { id: string; rule: keyof typeof LAUNCH_RULES }) => launcher.setLaunchRule(id, LAUNCH_RULES[rule]),
  },
  'apps.logLevel': {
    summary: 'Set the app log level (0 critical .. 5 all)',
    params: params({ id: PACKAGE_ID, level: { type: 'integer', minimum: 0, maximum: 5 } }, ['id', 'level']),
    run: async ({ launcher }, { id, level }: { id: string; level: 0 | 1 | 2 | 3 | 4 | 5 }) => launcher.setLogLevel(id, level),
  },
  'apps.config.get': {
    summary: "Read an app's configuration",
    params: params({ id: PACKAGE_ID }, ['id']),
    run: async ({ launcher }, { id }: { id: string }) => launcher.getConfiguration(id) ?? null,
  },
  'apps.config.set': {
    summary: "Replace an app's configuration (validated against its manifest's schema)",
    params: params({ id: PACKAGE_ID, value: { type: 'object' } }, ['id', 'value']),
    // A traffic inspector's configuration holds its rule lists (sdk/limits.ts); each app's own bound is checked after.
    maxRequestBytes: DOCUMENT_LIMITS.configurationRequestBytes,
    run: async ({ launcher }, { id, value }: { id: string; value: Record<string, unknown> }) => launcher.setConfiguration(id, value),
  },
  'apps.config.merge': {
    summary: "Change some keys of an app's configuration (an RFC 7396 merge patch: null returns a key to its default)",
    params: params({ id: PACKAGE_ID, patch: { type: 'object' } }, ['id', 'patch']),
    maxRequestBytes: DOCUMENT_LIMITS.configurationRequestBytes,
    run: async ({ launcher }, { id, patch }: { id: string; patch: Record<string, unknown> }) => launcher.mergeConfiguration(id, patch),
  },
  'apps.logs.info': {
    summary: "What an app's log archive holds and its size, before downloading it",
    params: params({ id: PACKAGE_ID }, ['id']),
    run: async (services, { id }: { id: string }) => services.logArchiveInfo(id),
  },
  'apps.logs.archive': {
    summary: "Stream an app's log archive (log_files_<app_id>.tar.gz) as base64 chunks",
    params: params({ id: PACKAGE_ID }, ['id']),
    run: async (services, { id }: { id: string }, context) => {
      const info = await services.logArchiveInfo(id);
      let bytes = 0;
      for await (const chunk of await services.logArchive(id)) {
        bytes += (chunk as Buffer).length;
        context.progress({ data: (chunk as Buffer).toString('base64'), bytes });
      }
      await services.audit.record('logExport', {}, { packageId: id, bytes });
      return { fileName: info.fileName, bytes };
    },
  },
  'apps.logs.lines': {
    summary:
      "An app's log lines, oldest first: the last `tail` (every line without) at `level` or more severe; with `follow`, then each line as it is written, across rotations, until the caller goes. Progress updates carry the lines",
    params: params(
      {
        id: PACKAGE_ID,
        tail: { type: 'integer', minimum: 0, maximum: MAX_TAIL_LINES },
        level: { type: 'integer', minimum: 0, maximum: 5 },
        follow: { type: 'boolean' },
      },
      ['id'],
    ),
    run: async (services, { id, tail, level, follow }: { id: string; tail?: number; level?: 0 | 1 | 2 | 3 | 4 | 5; follow?: boolean }, context) => {
      const follower = await services.followLog(id, {
        ...(tail === undefined ? {} : { tail }),
        ...(level === undefined ? {} : { level }),
        follow: follow === true,
      });
      const stop = (): void => void follower.close();
      context.signal?.addEventListener('abort', stop, { once: true });
      if (context.signal?.aborted) stop();
      let lines = 0;
      try {
        for (let batch = await follower.next(); batch; batch = await follower.next()) {
          lines += batch.length;
          context.progress({ lines: batch });
          // A reader that does not keep up leaves lines in the follower's buffer, which drops past its bound.
          while ((context.backlog?.() ?? 0) > FOLLOW_BACKLOG_BYTES && !context.signal?.aborted) await context.drained!();
        }
      } finally {
        context.signal?.removeEventListener('abort', stop);
        await follower.close();
      }
      return { package_id: id, lines, dropped: follower.dropped() };
    },
  },
  'routes.list': {
    summary: 'Routes with status, ends and counters; searchable and sortable',
    params: params({
      search: { type: 'string', maxLength: 200 },
      sortBy: { enum: ['status', 'source', 'destination'] },
      order: { enum: ['asc', 'desc'] },
    }),
    run: async ({ router }, query: { search?: string; sortBy?: 'status' | 'source' | 'destination'; order?: 'asc' | 'desc' }) => router.list(query),
  },
  'routes.add': {
    summary: 'Route a source endpoint to a destination endpoint (APP:ENDPOINT each); lossless unless overflow says to drop',
    params: params({ source: ROUTE_END, destination: ROUTE_END, overflow: OVERFLOW, queue_bytes: QUEUE_BYTES }, ['source', 'destination']),
    run: async (
      services,
      { source, destination, overflow, queue_bytes }: { source: string; destination: string; overflow?: OverflowPolicy; queue_bytes?: number },
    ) =>
      services.router.add(routeEnd(services, source), routeEnd(services, destination), {
        ...(overflow ? { overflow } : {}),
        ...(queue_bytes ? { queue_bytes } : {}),
      }),
  },
  'routes.update': {
    summary: 'Change a route: its ends, whether it is active, what a full queue does and its bound',
    params: params(
      {
        id: { type: 'string', maxLength: 64 },
        source: ROUTE_END,
        destination: ROUTE_END,
        active: { type: 'boolean' },
        overflow: OVERFLOW,
        queue_bytes: QUEUE_BYTES,
      },
      ['id'],
    ),
    run: async (
      services,
      {
        id,
        source,
        destination,
        active,
        overflow,
        queue_bytes,
      }: { id: string; source?: string; destination?: string; active?: boolean; overflow?: OverflowPolicy; queue_bytes?: number },
    ) =>
      services.router.update(id, {
        ...(source ? { source: routeEnd(services, source) } : {}),
        ...(destination ? { destination: routeEnd(services, destination) } : {}),
        ...(active === undefined ? {} : { active }),
        ...(overflow ? { overflow } : {}),
        ...(queue_bytes === undefined ? {} : { queue_bytes }),
      }),
  },
  'routes.remove': {
    summary: 'Delete a route',
    params: params({ id: { type: 'string', maxLength: 64 } }, ['id']),
    run: async ({ router }, { id }: { id: string }) => {
      await router.remove(id);
      return { id, removed: true };
    },
  },
  'certs.list': {
    summary: "An app's CA and client certificates: file name, subject, issuer, valid until",
    params: params({ id: PACKAGE_ID }, ['id']),
    run: async (services, { id }: { id: string }) => {
      services.requireInstalled(id);
      return services.certificates.list(id);
    },
  },
  'certs.setCa': {
    summary: "Upload or replace an app's CA certificate (PEM or DER)",
    params: params({ id: PACKAGE_ID, fileName: FILE_NAME, content: BASE64 }, ['id', 'fileName', 'content']),
    run: async (services, { id, fileName, content }: { id: string; fileName: string; content: string }) => {
      services.requireInstalled(id);
      return services.certificates.setCa(id, fileName, Buffer.from(content, 'base64'));
    },
  },
  'certs.setClient': {
    summary: "Upload or replace an app's client certificate with its key (only together, only matching)",
    params: params({ id: PACKAGE_ID, certFileName: FILE_NAME, cert: BASE64, keyFileName: FILE_NAME, key: BASE64 }, [
      'id',
      'certFileName',
      'cert',
      'keyFileName',
      'key',
    ]),
    run: async (services, p: { id: string; certFileName: string; cert: string; keyFileName: string; key: string }) => {
      services.requireInstalled(p.id);
      return services.certificates.setClient(p.id, p.certFileName, Buffer.from(p.cert, 'base64'), p.keyFileName, Buffer.from(p.key, 'base64'));
    },
  },
  'certs.delete': {
    summary: "Delete an app's CA or client certificate",
    params: params({ id: PACKAGE_ID, kind: { enum: ['ca', 'client'] } }, ['id', 'kind']),
    run: async (services, { id, kind }: { id: string; kind: 'ca' | 'client' }) => {
      services.requireInstalled(id);
      await services.certificates.delete(id, kind);
      return { package_id: id, kind, deleted: true };
    },
  },
  'debug.start': {
    summary:
      'Start the debug service: the gateway enters developer mode for good (left only by "isogate reset --factory") and the developer NAME gets a token, shown once',
    params: params({ name: DEVELOPER, host: { type: 'string', minLength: 1, maxLength: 255, pattern: '^[A-Za-z0-9.:\\[\\]-]+$' }, port: PORT }),
    run: async ({ debug }, { name, host, port }: { name?: string; host?: string; port?: number }) =>
      debug.start(name ?? 'developer', { ...(host === undefined ? {} : { host }), ...(port === undefined ? {} : { port }) }),
  },
  'debug.tokens.add': {
    summary: "Issue a debug service token to another developer (shown once; apps pushed with it are that developer's)",
    params: params({ name: DEVELOPER }, ['name']),
    run: async ({ debug }, { name }: { name: string }) => debug.addToken(name),
  },
  'debug.tokens.list': {
    summary: 'The developers who hold debug service tokens (never the tokens)',
    params: params({}),
    run: async ({ debug }) => debug.listTokens(),
  },
  'debug.tokens.revoke': {
    summary: "Revoke a developer's debug service token; its DevTools sessions end",
    params: params({ name: DEVELOPER }, ['name']),
    run: async ({ debug }, { name }: { name: string }) => {
      await debug.revokeToken(name);
      return { name, revoked: true };
    },
  },
  'audit.list': {
    summary: 'Audit records, newest first, filtered by log, date range, severity and subject; `before` (a record\'s seq) pages on ("Load more")',
    params: params(AUDIT_FILTER),
    run: async ({ audit }, filter: AuditFilter) => audit.list({ limit: AUDIT_PAGE, ...normalTimes(filter) }),
  },
  'audit.export': {
    summary: "The filtered audit records as the manual's CSV (date and time, event name, event text, subject, severity), newest first",
    params: params(AUDIT_EXPORT_FILTER),
    run: async ({ audit }, filter: AuditFilter, context) => {
      const records = audit.list(normalTimes(filter));
      await audit.record(context.actor?.role === 'user' ? 'userLogExport' : 'logExport', {}, { log: filter.log ?? 'all', rows: records.length });
      return { fileName: `${filter.log ?? 'audit'}_log.csv`, rows: records.length, csv: toCsv(records) };
    },
  },
  'users.settings.get': {
    summary: "The web interface's connection settings (credentials validity, idle period, notices, failed attempts, lockout)",
    params: params({}),
    run: async ({ config }) => ({ ...USER_SETTINGS_DEFAULTS, ...config.read((doc) => doc.USER_SETTINGS ?? {}) }),
  },
  'users.settings.set': {
    summary: "Change some of the web interface's connection settings, each within the manual's range",
    params: { ...documentSectionSchema('USER_SETTINGS'), minProperties: 1 },
    run: async ({ config, audit }, change: Partial<UserSettings>) => {
      const before = config.read((doc) => ({ ...USER_SETTINGS_DEFAULTS, ...doc.USER_SETTINGS }));
      // Audited before it is written (fail closed): a change the trail cannot hold is not made.
      await config.update(
        (doc) => {
          doc.USER_SETTINGS = { ...doc.USER_SETTINGS, ...change };
        },
        {
          audit: async () => {
            for (const [key, event] of SETTING_EVENTS) {
              const value = change[key];
              if (value !== undefined && value !== before[key]) await audit.record(event, { 'new value': value });
            }
          },
        },
      );
      return { ...before, ...change };
    },
  },
  restart: {
    summary: "An admin's restart: leaves emergency support mode and starts the Autostart apps again",
    params: params({}),
    run: async (services) => services.restart(),
  },
  'np.status': {
    summary: 'The traffic gate: its inspector, the protected services and their counters',
    params: params({}),
    run: async ({ gate }) => gate.status(),
  },
  'np.allowlist.list': {
    summary: 'The IP address allowlist (NETWORK.IDS_PROXY.allowList)',
    params: params({}),
    run: async ({ lists }) => lists.allowlist(),
  },
  // The address's own rules (the manual's) are the lists' to check, each with its code.
  'np.allowlist.add': {
    summary: 'Adds an IP address to the allowlist',
    params: params({ ip: IP_TEXT }, ['ip']),
    run: async ({ lists }, { ip }: { ip: string }) => lists.allow(ip),
  },
  'np.allowlist.remove': {
    summary: 'Removes an IP address from the allowlist',
    params: params({ ip: IP_TEXT }, ['ip']),
    run: async ({ lists }, { ip }: { ip: string }) => lists.disallow(ip),
  },
  'np.denylist.list': {
    summary: 'The IP address denylist (NETWORK.IDS_PROXY.blockedList): each address with the signature that blocked it and when',
    params: params({}),
    run: async ({ lists }) => lists.denylist(),
  },
  'np.denylist.remove': {
    summary: 'Removes an IP address from the denylist, so its traffic is inspected again',
    params: params({ ip: IP_TEXT }, ['ip']),
    run: async ({ lists }, { ip }: { ip: string }) => lists.undeny(ip),
  },
  'integrity.check': {
    summary:
      "Check every installed app's files against its install record now; the report is the manual's (integrity.report). A violation found here does not enter emergency support mode",
    params: params({}),
    run: async ({ integrity }) => integrity.manualCheck(),
  },
  'integrity.last': {
    summary: 'The last manual integrity check since the gateway started',
    params: params({}),
    run: async ({ integrity }) => integrity.last(),
  },
  'integrity.report': {
    summary:
      "A manual integrity check's report in the manual's TXT format (header with host ID, time, checksum function and checksum; one |-separated line per file)",
    params: params({ id: REPORT_ID }, ['id']),
    run: async ({ integrity }, { id }: { id: string }) => integrity.report(id),
  },
  'selftest.run': {
    summary: 'Self-test the audit, authentication, traffic blocking and Network Protector, each with its result; an error enters emergency support mode',
    params: params({}),
    run: async (services) => services.selfTest(),
  },
  'settings.get': {
    summary: 'The gateway\'s configuration document with its JSON Schema (the manual\'s "Modifying the configuration manually")',
    params: params({}),
    run: async ({ config }) => ({ document: config.snapshot(), schema: configDocumentSchema() }),
  },
  'settings.set': {
    summary:
      "Replace the configuration document: validated against its schema and every subsystem's rules before it is saved; apps are installed and uninstalled, never written in",
    params: params({ document: { type: 'object' } }, ['document']),
    run: async ({ config }, { document }: { document: ConfigDocument }) => {
      await config.update((draft) => {
        const ids = (doc: ConfigDocument): string =>
          JSON.stringify(
            (Array.isArray(doc.APPLICATIONS?.APPS_CONTROL?.applications) ? doc.APPLICATIONS.APPS_CONTROL.applications : [])
              .map((entry) => entry?.package_id)
              .sort(),
          );
        if (ids(document) !== ids(draft)) {
          throw fail('E_CONFIG', 'APPLICATIONS.APPS_CONTROL.applications must list the installed apps: install or uninstall an app instead of writing it in', {
            installed: JSON.parse(ids(draft)),
          });
        }
        for (const key of Object.keys(draft)) delete draft[key];
        Object.assign(draft, structuredClone(document));
      });
      return { document: config.snapshot() };
    },
  },
  'backup.create': {
    summary:
      'Back up the configuration, encrypted and authenticated with a key the passphrase derives (restores on a replacement gateway of the same version); the file is base64 in `content`',
    params: params({ passphrase: BACKUP_PASSPHRASE }, ['passphrase']),
    run: async ({ backup }, { passphrase }: { passphrase: string }) => {
      const made = await backup.create(passphrase);
      return { fileName: made.fileName, bytes: made.bytes.length, content: made.bytes.toString('base64') };
    },
  },
  'backup.restore': {
    summary: 'Restore the configuration from a backup (base64 in `content`) made with this passphrase by this version; leaves emergency support mode',
    // A backup may be larger than the usual request (up to MAX_BACKUP_BYTES): its base64, the passphrase as JSON (at most 6 bytes a character) and the request around them.
    maxRequestBytes: Math.ceil(MAX_BACKUP_BYTES / 3) * 4 + PASSPHRASE.maxLength * 6 + 4096,
    params: params(
      {
        content: { type: 'string', minLength: 1, maxLength: Math.ceil(MAX_BACKUP_BYTES / 3) * 4, pattern: '^[A-Za-z0-9+/=\\s]*$' },
        passphrase: BACKUP_PASSPHRASE,
      },
      ['content', 'passphrase'],
    ),
    run: async ({ backup }, { content, passphrase }: { content: string; passphrase: string }) => backup.restore(Buffer.from(content, 'base64'), passphrase),
  },
};

/** The control socket's bound for one request line of `op`, where it has its own. */
export function requestBytesFor(op: string): number | undefined {
  return Object.hasOwn(OPERATIONS, op) ? OPERATIONS[op]!.maxRequestBytes : undefined;
}

/** Throws E_BAD_REQUEST unless `name` is an operation and `input` its valid parameters; the one check both doors make. */
export function checkOperation(name: string, input: unknown): Operation {
  const operation = Object.hasOwn(OPERATIONS, name) ? OPERATIONS[name] : undefined;
  if (!operation) throw fail('E_BAD_REQUEST', `Unknown operation "${name}"`, { known: Object.keys(OPERATIONS) });
  assertValid(compileSchema(operation.params), input, 'E_BAD_REQUEST', `Parameters of ${name}`);
  return operation;
}

/** Validates the parameters at the edge, then runs the operation. */
export async function invokeOperation(services: GatewayServices, name: string, input: unknown, context: OperationContext): Promise<unknown> {
  return checkOperation(name, input).run(services, input, context);
}
