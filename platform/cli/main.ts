/**
 * `isogate`: runs a gateway (`start`) and talks to a running one through its control socket.
 * Every command exits non-zero with `CODE: sentence` on failure; `--json` prints machine output.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { type CliSpec, type OptionSpecs, type ParsedCommand, printJson, runCli } from '../../sdk/cli/shell.js';
import { fail } from '../../sdk/errors.js';
import { checkOutputFile, pathError } from '../../sdk/paths.js';
import { escapeControls, escapeControlsDeep, safeJson } from '../../sdk/text.js';
import type { AppManifestView } from '../api/app-manifest.js';
import { callControl } from '../api/control-socket.js';
import { MAX_BACKUP_BYTES } from '../backup/format.js';
import { patchForKey } from '../config/merge-patch.js';
import { formatBytes, ProgressLine, table } from './format.js';
import { NP_REPLAY_COMMAND } from './np.js';

type Values = Record<string, string | boolean | string[] | undefined>;

interface Invocation {
  positionals: string[];
  values: Values;
  json: boolean;
  socket: string;
  dataDir: string;
}

const COMMON_OPTIONS = {
  data: { type: 'string', value: 'DIR', summary: "the gateway's data directory (default: $ISOGATE_DATA, else ./.isogate-demo)" },
  json: { type: 'boolean', summary: 'machine output (JSON)' },
} as const satisfies OptionSpecs;

function invocation(command: ParsedCommand): Invocation {
  const { values } = command;
  const dataDir = path.resolve(String(values.data ?? process.env.ISOGATE_DATA ?? '.isogate-demo'));
  return { positionals: command.positionals, values, json: command.json, dataDir, socket: path.join(dataDir, 'control.sock') };
}

/**
 * Human output is built from a copy of the value with every string escaped (sdk/text.ts): a
 * line built from it takes the copy as its argument, under the value's own name, so the raw
 * value is out of its reach (tables escape every cell themselves). --json prints the value
 * itself, as JSON with C1 and bidi controls escaped too.
 */
function print<T>(invocation: Invocation, value: T, human: (shown: T) => string): void {
  if (invocation.json) printJson(value);
  else process.stdout.write(`${human(escapeControlsDeep(value))}\n`);
}

async function call(invocation: Invocation, op: string, params: Record<string, unknown> = {}, onProgress?: (update: unknown) => void): Promise<any> {
  return callControl(invocation.socket, op, params, onProgress);
}

/** A client command: the arguments are checked against its description before this runs. */
function client(run: (inv: Invocation, args: string[]) => Promise<void>): (command: ParsedCommand) => Promise<void> {
  return (command) => {
    const inv = invocation(command);
    return run(inv, inv.positionals);
  };
}

function capitalised(status: string): string {
  return status[0]!.toUpperCase() + status.slice(1);
}

/** Why an app is in Error, in one line: its last failure's code and sentence. */
function reason(app: { status: string; last_error?: { code: string; message: string } }): string {
  return app.status === 'error' && app.last_error ? `${app.last_error.code}: ${app.last_error.message}` : '';
}

async function appsList(inv: Invocation): Promise<void> {
  const list = await call(inv, 'apps.list');
  print(inv, list, (shown) =>
    [
      table(
        shown.map((app: any) => ({ ...app, status: capitalised(app.status), reason: reason(app) })),
        [
          ['package_id', 'ID'],
          ['name', 'NAME'],
          ['publisher', 'ISSUER'],
          ['version', 'VERSION'],
          ['type', 'TYPE'],
          ['launch_rule', 'START RULE'],
          ['status', 'STATUS'],
          ['signature', 'SIGNATURE'],
          ...(shown.some((app: any) => app.owner !== undefined) ? [['owner', 'PUSHED BY'] as [string, string]] : []),
          // Only when some app is in Error, so a healthy list stays as wide as before.
          ...(shown.some((app: any) => reason(app) !== '') ? [['reason', 'REASON'] as [string, string]] : []),
        ],
      ),
      // A quarantined app's reason is a sentence, too long for a column.
      ...shown
        .filter((app: any) => app.status === 'quarantined')
        .map(
          (app: any) =>
            `${app.package_id} is quarantined (never started, its files kept; "isogate apps uninstall ${app.package_id}" removes it): ${app.reason}`,
        ),
      ...shown.filter((app: any) => app.status === 'uninstalling').map((app: any) => `${app.package_id} is being uninstalled: ${app.reason}`),
    ].join('\n'),
  );
}

async function appsInstall(inv: Invocation, [id]: string[]): Promise<void> {
  const bar = inv.json ? undefined : new ProgressLine(process.stderr, `Installing ${id}`);
  const result = await call(inv, 'apps.install', { id, ...(inv.values.version ? { version: inv.values.version } : {}) }, (update: any) => {
    bar?.update(update.percent, update.phase === 'download' ? `${formatBytes(update.received)} of ${formatBytes(update.total)}` : update.phase);
  });
  bar?.done();
  print(inv, result, (result) => `Installed ${result.name} ${result.version}`);
}

async function appsUpdate(inv: Invocation, [id]: string[]): Promise<void> {
  const bar = inv.json ? undefined : new ProgressLine(process.stderr, `Updating ${id}`);
  const result = await call(
    inv,
    'apps.update',
    {
      id,
      ...(inv.values.version ? { version: inv.values.version } : {}),
      ...(inv.values['allow-downgrade'] ? { allowDowngrade: true } : {}),
    },
    (update: any) => {
      bar?.update(update.percent, update.phase === 'download' ? `${formatBytes(update.received)} of ${formatBytes(update.total)}` : update.phase);
    },
  );
  bar?.done();
  print(inv, result, (result) =>
    [
      `Updated ${result.name} from ${result.previous_version} to ${result.version}${result.started ? ', running' : ''}`,
      ...(result.reset_keys.length ? [`  configuration keys reset to their defaults: ${result.reset_keys.join(', ')}`] : []),
      ...result.routes_in_error.map((route: { id: string; problem: string }) => `  route ${route.id} kept, in Error: ${route.problem}`),
    ].join('\n'),
  );
}

async function appsStartStop(inv: Invocation, [id]: string[], op: 'start' | 'stop'): Promise<void> {
  const result = await call(inv, `apps.${op}`, { id });
  print(inv, result, (result) => `${result.name ?? escapeControls(id!)}: ${result.status}`);
}

async function appsLogs(inv: Invocation, [id]: string[]): Promise<void> {
  if (inv.values.follow || inv.values.tail !== undefined || inv.values.level !== undefined) return logLines(inv, id!);
  // A path mistake is found before the gateway is asked for anything, and nothing is written.
  const chosen = inv.values.output === undefined ? undefined : await checkOutputFile(String(inv.values.output), 'The -o file', `log_files_${id}.tar.gz`);
  const info = await call(inv, 'apps.logs.info', { id });
  const target = chosen ?? (await checkOutputFile(info.fileName, 'The archive'));
  const handle = await fs.open(target, 'w', 0o600).catch((error: unknown) => {
    throw pathError(error, target, 'The archive');
  });
  const bar = inv.json ? undefined : new ProgressLine(process.stderr, `Downloading ${info.fileName} (about ${formatBytes(info.estimatedBytes)})`);
  try {
    let pending = Promise.resolve();
    const result = await call(inv, 'apps.logs.archive', { id }, (update: any) => {
      const chunk = Buffer.from(update.data, 'base64');
      pending = pending.then(async () => {
        await handle.write(chunk);
      });
      bar?.update(Math.min(99, (update.bytes / Math.max(info.estimatedBytes, 1)) * 100), formatBytes(update.bytes));
    });
    await pending;
    bar?.update(100, formatBytes(result.bytes));
    bar?.done();
    print(inv, { ...result, path: target }, (saved) => `Saved ${saved.path} (${formatBytes(saved.bytes)})`);
  } finally {
    await handle.close();
  }
}

/**
 * The log's lines on stdout, escaped like every output (--json: one JSON string a line). With
 * -f it runs until interrupted; the gateway ends its follower when the connection closes.
 */
async function logLines(inv: Invocation, id: string): Promise<void> {
  if (inv.values.output !== undefined)
    throw fail('E_USAGE', '-o FILE downloads the log archive; -f, --tail and --level print lines instead: give one or the other');
  const number = (name: string, text: string | boolean | string[] | undefined, max: number, what: string): number | undefined => {
    if (text === undefined) return undefined;
    if (typeof text !== 'string' || !/^\d{1,6}$/.test(text) || Number(text) > max)
      throw fail('E_USAGE', `--${name} is ${what}, not "${escapeControls(String(text))}"`);
    return Number(text);
  };
  const follow = inv.values.follow === true;
  const tail = number('tail', inv.values.tail, 10_000, 'a number of lines from 0 to 10000') ?? (follow ? 10 : undefined);
  const level = number('level', inv.values.level, 5, 'a log level from 0 (critical) to 5 (all)');
  await call(inv, 'apps.logs.lines', { id, follow, ...(tail === undefined ? {} : { tail }), ...(level === undefined ? {} : { level }) }, (update: any) => {
    const lines = Array.isArray(update?.lines) ? update.lines.map(String) : [];
    process.stdout.write(lines.map((line: string) => `${inv.json ? safeJson(line) : escapeControls(line)}\n`).join(''));
  });
}

async function appsConfig(inv: Invocation, [id, key, value]: string[]): Promise<void> {
  // --set replaces the whole configuration; --merge and KEY VALUE change only what they name.
  if ((key !== undefined && value === undefined) || [inv.values.set, inv.values.merge, key].filter((given) => given !== undefined).length > 1) {
    throw fail('E_USAGE', 'Expected config ID, config ID --set FILE, config ID --merge FILE or config ID KEY VALUE');
  }
  const save = async (op: string, params: Record<string, unknown>): Promise<void> => {
    const result = await call(inv, op, params);
    print(
      inv,
      result,
      (shown) =>
        `${shown.name ?? escapeControls(id!)}: configuration saved (${shown.status})` +
        (shown.deliveryError ? `; the running app failed while taking it: ${shown.deliveryError.code}: ${escapeControls(shown.deliveryError.message)}` : ''),
    );
  };
  if (inv.values.set) return save('apps.config.set', { id, value: await readJsonFile(String(inv.values.set)) });
  if (inv.values.merge) return save('apps.config.merge', { id, patch: await readJsonFile(String(inv.values.merge)) });
  if (key !== undefined) {
    let patch: Record<string, unknown>;
    try {
      patch = patchForKey(key, value!);
    } catch (error) {
      throw fail('E_USAGE', (error as Error).message);
    }
    return save('apps.config.merge', { id, patch });
  }
  const config = await call(inv, 'apps.config.get', { id });
  // Shown as JSON, which escapes every control in it without changing a value.
  print(inv, config, () => safeJson(config, 2));
}

function routeRows(routes: any[]): string {
  return table(
    routes.map((route) => ({
      ...route,
      // The name is what an admin recognises, the id what `routes add` and scripts take.
      source_app: appLabel(route.sourceName, route.source.application_id),
      source_ep: route.source.endpoint,
      destination_app: appLabel(route.destinationName, route.destination.application_id),
      destination_ep: route.destination.endpoint,
      counts: `${route.counters.delivered}/${route.counters.dropped}/${route.counters.invalid}/${route.counters.failed}`,
    })),
    [
      ['id', 'ID'],
      ['status', 'STATUS'],
      ['source_app', 'SOURCE APP'],
      ['source_ep', 'SOURCE POINT'],
      ['destination_app', 'DESTINATION APP'],
      ['destination_ep', 'DESTINATION POINT'],
      ['queued', 'QUEUED'],
      ['overflow', 'FULL'],
      ['counts', 'DELIVERED/DROPPED/INVALID/FAILED'],
    ],
  );
}

const ROUTE_DELIVERY_OPTIONS = {
  overflow: { type: 'string', value: 'block|drop-oldest|drop-newest', summary: 'what a full queue does (default block: the source waits, nothing is lost)' },
  'queue-bytes': { type: 'string', value: 'BYTES', summary: 'what the route may hold, queued and in flight (default 4194304)' },
} as const;

function routeDelivery(inv: Invocation): { overflow?: string; queue_bytes?: number } {
  const { overflow, 'queue-bytes': bytes } = inv.values as { overflow?: string; 'queue-bytes'?: string };
  return { ...(overflow ? { overflow } : {}), ...(bytes === undefined ? {} : { queue_bytes: Number(bytes) }) };
}

function appLabel(name: string | undefined, id: string): string {
  return name ? `${name} (${id})` : id;
}

async function routesList(inv: Invocation): Promise<void> {
  const query = {
    ...(inv.values.search ? { search: inv.values.search } : {}),
    ...(inv.values.sort ? { sortBy: inv.values.sort } : {}),
    ...(inv.values.desc ? { order: 'desc' } : {}),
  };
  const list = await call(inv, 'routes.list', query);
  print(inv, list, () => routeRows(list));
}

async function routesEnable(inv: Invocation, [id]: string[], active: boolean): Promise<void> {
  const route = await call(inv, 'routes.update', { id, active });
  print(inv, route, (route) => `Route ${escapeControls(id!)}: ${route.status}`);
}

async function readJsonFile(file: string): Promise<unknown> {
  try {
    return JSON.parse(await fs.readFile(file, 'utf8'));
  } catch (error) {
    throw fail('E_CONFIG', `${file} is not a readable JSON file: ${(error as Error).message}`);
  }
}

async function readBase64(file: string): Promise<string> {
  try {
    return (await fs.readFile(file)).toString('base64');
  } catch (error) {
    throw fail('E_CERT_FILE', `${file} cannot be read: ${(error as Error).message}`);
  }
}

/** An uploaded certificate in one line, with its expiry warning when it has one. */
function validity(info: { subject: string; validTo: string; warning?: string }): string {
  return `${info.subject}, valid until ${info.validTo}${info.warning ? ` (${info.warning})` : ''}`;
}

async function certsList(inv: Invocation, [id]: string[]): Promise<void> {
  const list = await call(inv, 'certs.list', { id });
  print(inv, list, () =>
    table(
      list.map((c: any) => ({ ...c, validTo: c.validTo.slice(0, 10) })),
      [
        ['kind', 'KIND'],
        ['fileName', 'FILE'],
        ['subject', 'SUBJECT'],
        ['issuer', 'ISSUER'],
        ['validTo', 'VALID UNTIL'],
        ['daysLeft', 'DAYS LEFT'],
        ['warning', 'WARNING'],
      ],
    ),
  );
}

async function certsSetCa(inv: Invocation, [id, file]: string[]): Promise<void> {
  const info = await call(inv, 'certs.setCa', { id, fileName: path.basename(file!), content: await readBase64(file!) });
  print(inv, info, (info) => `CA certificate for ${escapeControls(id!)}: ${validity(info)}`);
}

async function certsSetClient(inv: Invocation, [id, cert, key]: string[]): Promise<void> {
  const info = await call(inv, 'certs.setClient', {
    id,
    certFileName: path.basename(cert!),
    cert: await readBase64(cert!),
    keyFileName: path.basename(key!),
    key: await readBase64(key!),
  });
  print(inv, info, (info) => `Client certificate for ${escapeControls(id!)}: ${validity(info)}`);
}

async function certsDelete(inv: Invocation, [id, kind]: string[]): Promise<void> {
  if (kind !== 'ca' && kind !== 'client') throw fail('E_USAGE', 'Say which certificate to delete: ca or client');
  print(inv, await call(inv, 'certs.delete', { id, kind }), () => `Deleted the ${kind} certificate of ${escapeControls(id!)}`);
}

async function status(inv: Invocation): Promise<void> {
  const result = await call(inv, 'status');
  // The apps in Error, each with why: asked for only when there are any.
  const failing =
    (result.apps.byStatus.error ?? 0) > 0
      ? (await call(inv, 'apps.list'))
          .filter((app: any) => app.status === 'error')
          .map((app: any) => ({ package_id: app.package_id, name: app.name, reason: reason(app) }))
      : [];
  const shown = inv.json ? result : { ...result, failing };
  print(inv, shown, (shown) =>
    [
      `isogate ${shown.version} (SDK ${shown.sdkVersion}), up ${Math.round(shown.uptimeSeconds)} s, data ${shown.dataDir}`,
      `mode: ${shown.mode}${shown.developerMode ? ', developer mode' : ''}`,
      ...(shown.debugService ? [`debug service: ${shown.debugService}`] : []),
      `store: ${shown.store}`,
      `apps: ${shown.apps.installed} installed of ${shown.apps.limit}${shown.apps.unsigned ? ` (${shown.apps.unsigned} unsigned)` : ''}; ${
        Object.entries(shown.apps.byStatus)
          .map(([s, n]) => `${n} ${s}`)
          .join(', ') || 'none running'
      }`,
      ...shown.failing.map((app: any) => `  in error: ${app.name} (${app.package_id}): ${app.reason || 'no reason recorded'}`),
      `routes: ${shown.routes.active} active, ${shown.routes.inactive} inactive, ${shown.routes.error} in error`,
      ...(shown.emergency
        ? [`EMERGENCY SUPPORT MODE since ${shown.emergency.since}: ${shown.emergency.reason} (apps stopped, transit blocked; "isogate restart" leaves it)`]
        : []),
      // A gateway without the traffic gate (an older one) answers without it.
      ...(shown.traffic
        ? [`traffic: ${shown.traffic.services.length} protected service(s), inspector ${shown.traffic.inspector ?? 'none (transit refused)'}`]
        : []),
    ].join('\n'),
  );
}

async function npStatus(inv: Invocation): Promise<void> {
  const result = await call(inv, 'np.status');
  print(inv, result, (shown) =>
    [
      `inspector: ${shown.inspector ?? 'none: transit is refused (fail closed)'}`,
      table(
        shown.services.map((service: any) => ({
          ...service,
          listen: `${service.listen.host}:${service.listen.port}`,
          upstream: `${service.upstream.host}:${service.upstream.port}`,
          active: service.counters.active,
          accepted: service.counters.accepted,
          refused: service.counters.refusedFailClosed + service.counters.refusedDenylisted + service.counters.refusedConnectionLimit,
          dropped: service.counters.dropped,
        })),
        [
          ['name', 'SERVICE'],
          ['protocol', 'PROTOCOL'],
          ['listen', 'LISTEN'],
          ['upstream', 'UPSTREAM'],
          ['active', 'ACTIVE'],
          ['accepted', 'ACCEPTED'],
          ['refused', 'REFUSED'],
          ['dropped', 'DROPPED'],
        ],
      ),
      `alerts recorded: ${shown.alertsRecorded}, not recorded (past the rate bound): ${shown.alertsNotRecorded}`,
    ].join('\n'),
  );
}

async function npList(inv: Invocation, which: 'allowlist' | 'denylist'): Promise<void> {
  const list = await call(inv, `np.${which}.list`);
  print(inv, list, (shown) =>
    which === 'allowlist'
      ? table(shown, [['ipAddrSource', 'IP ADDRESS (SOURCE)']])
      : table(
          shown.map((entry: any) => ({ ...entry, time: entry.timestamp === undefined ? '' : new Date(entry.timestamp * 1000).toISOString() })),
          [
            ['ipAddrSource', 'IP ADDRESS (SOURCE)'],
            ['signatureName', 'SIGNATURE'],
            ['time', 'BLOCKED AT'],
          ],
        ),
  );
}

async function audit(inv: Invocation): Promise<void> {
  const limit = inv.values.limit === undefined ? 50 : Number(inv.values.limit);
  const records = await call(inv, 'audit.list', { ...(inv.values.log ? { log: inv.values.log } : {}), limit });
  print(inv, records, () =>
    table(records, [
      ['time', 'DATE AND TIME'],
      ['severity', 'SEVERITY'],
      ['subject', 'SUBJECT'],
      ['name', 'EVENT'],
      ['text', 'TEXT'],
    ]),
  );
}

async function integrityCheck(inv: Invocation): Promise<void> {
  // A path mistake is found before the check runs, and nothing is written.
  const target = inv.values.report === undefined ? undefined : await checkOutputFile(String(inv.values.report), 'The --report file');
  const run = await call(inv, 'integrity.check');
  if (target) {
    const report = await call(inv, 'integrity.report', { id: run.id });
    await fs.writeFile(target, report.text, { mode: 0o600 }).catch((error: unknown) => {
      throw pathError(error, target, 'The report');
    });
  }
  print(inv, { ...run, ...(target ? { report: target } : {}) }, (shown) =>
    [
      `Integrity check ${shown.ok ? 'passed' : 'found violations'}: ${shown.summary.verified} of ${shown.summary.files} file(s) verified successfully`,
      ...shown.violations.map((violation: { app: string; description: string }) => `  ${violation.app}: ${violation.description}`),
      ...(shown.report ? [`Report saved as ${shown.report}`] : []),
    ].join('\n'),
  );
}

async function selfTest(inv: Invocation): Promise<void> {
  const report = await call(inv, 'selftest.run');
  print(inv, report, (shown) =>
    [
      `Self-testing ${shown.ok ? 'completed successfully' : 'detected errors: the gateway is in emergency support mode ("isogate restart" leaves it)'}`,
      table(
        shown.tests.map((test: { name: string; ok: boolean; skipped?: boolean; message: string }) => ({
          ...test,
          result: test.ok ? (test.skipped ? 'skipped' : 'passed') : 'FAILED',
        })),
        [
          ['name', 'TEST'],
          ['result', 'RESULT'],
          ['message', 'DETAILS'],
        ],
      ),
    ].join('\n'),
  );
}

/** Never a command-line argument (other users see those): a file's first line, or the environment. */
async function backupPassphrase(inv: Invocation): Promise<string> {
  if (inv.values['passphrase-file'] !== undefined) {
    const file = String(inv.values['passphrase-file']);
    const text = await fs.readFile(file, 'utf8').catch((error: unknown) => {
      throw pathError(error, file, 'The passphrase file');
    });
    return text.split(/\r?\n/)[0]!;
  }
  const fromEnvironment = process.env.ISOGATE_BACKUP_PASSPHRASE;
  if (!fromEnvironment) throw fail('E_USAGE', 'Give the backup passphrase: --passphrase-file FILE (its first line), or ISOGATE_BACKUP_PASSPHRASE');
  return fromEnvironment;
}

async function backupCreate(inv: Invocation): Promise<void> {
  const chosen = inv.values.output === undefined ? undefined : await checkOutputFile(String(inv.values.output), 'The -o file');
  const made = await call(inv, 'backup.create', { passphrase: await backupPassphrase(inv) });
  const target = chosen ?? (await checkOutputFile(made.fileName, 'The backup'));
  await fs.writeFile(target, Buffer.from(made.content, 'base64'), { mode: 0o600 }).catch((error: unknown) => {
    throw pathError(error, target, 'The backup');
  });
  print(inv, { fileName: made.fileName, bytes: made.bytes, path: target }, (shown) => `Saved ${shown.path} (${formatBytes(shown.bytes)})`);
}

async function backupRestore(inv: Invocation, [file]: string[]): Promise<void> {
  const passphrase = await backupPassphrase(inv);
  const size = (
    await fs.stat(file!).catch((error: unknown) => {
      throw pathError(error, file!, 'The backup');
    })
  ).size;
  // Refused before it is read or sent: the gateway would refuse it anyway, after the whole file crossed.
  if (size > MAX_BACKUP_BYTES) {
    throw fail('E_DOCUMENT_LIMIT', `${file} is ${formatBytes(size)}; a backup is at most ${formatBytes(MAX_BACKUP_BYTES)}: is it a backup file?`, {
      bytes: size,
      maxBytes: MAX_BACKUP_BYTES,
    });
  }
  const bytes = await fs.readFile(file!).catch((error: unknown) => {
    throw pathError(error, file!, 'The backup');
  });
  const result = await call(inv, 'backup.restore', { content: bytes.toString('base64'), passphrase });
  print(inv, result, (shown) =>
    [
      `Configuration restored from the backup of ${shown.backup.hostId} made ${shown.backup.createdAt}${shown.leftEmergency ? '; left emergency support mode' : ''}`,
      ...(shown.missingApps.length ? [`Not installed here (install them, then restore again): ${shown.missingApps.join(', ')}`] : []),
      ...(shown.restartRequired ? [`Restart these apps to apply their restored configuration: ${shown.appsToRestart.join(', ')}`] : []),
    ].join('\n'),
  );
}

/** The manifest view as lines a person reads; every value from the package escaped, since a manifest is the publisher's text. */
function manifestText(view: AppManifestView): string {
  const e = (value: unknown): string => escapeControls(String(value));
  const lines = [
    `${e(view.title)} ${e(view.version)} (${e(view.package_id)}, ${e(view.type)}, ${e(view.networkZone)} zone)`,
    view.signer
      ? `Signed by ${e(view.signer.subject)}, issued by ${e(view.signer.issuer)}, valid to ${e(view.signer.validTo)}`
      : 'Unsigned (pushed in developer mode): nobody vouches for it',
    `Publisher (the manifest's claim): ${e(view.publisher_claim)}`,
    `Limits: ${view.limits.memoryMb} MiB memory, ${view.limits.cpuMsPerEvent} ms CPU per event, ${view.limits.storageMb} MiB storage`,
    `Endpoints: ${view.endpoints.length ? view.endpoints.map((point) => `${e(point.name)} (${point.direction}, ${e(point.dataType)}, ${point.format}${point.schema ? ', schema' : ''})`).join('; ') : 'none'}`,
    `Egress: ${view.egress.length ? view.egress.map((target) => `${e(target.name)} ${target.protocol}://${e(target.host)}:${target.port}`).join('; ') : 'none'}`,
    `Reserved capabilities: ${view.capabilities.length ? view.capabilities.map(e).join(', ') : 'none'}`,
    `Configuration: ${view.configuration ? `schema with ${Object.keys((view.configuration.schema.properties as object | undefined) ?? {}).length} keys${view.configuration.required ? ', required' : ''}` : 'none'}`,
  ];
  return lines.join('\n');
}

async function debugServiceStart(inv: Invocation): Promise<void> {
  const port = inv.values.port === undefined ? undefined : Number(inv.values.port);
  if (port !== undefined && (!/^\d{1,5}$/.test(String(inv.values.port)) || port > 65535)) throw fail('E_USAGE', '--port is a TCP port number');
  const result = await call(inv, 'debug.start', {
    ...(inv.values.name ? { name: inv.values.name } : {}),
    ...(inv.values.host ? { host: inv.values.host } : {}),
    ...(port === undefined ? {} : { port }),
  });
  print(inv, result, (shown) =>
    [
      `The debug service listens at ${shown.url}; the gateway is in developer mode until "isogate reset --factory".`,
      `Token of ${shown.name} (shown only now): ${shown.token}`,
      `  isogate-sdk push --gateway ${shown.url} --token TOKEN`,
    ].join('\n'),
  );
}

/** `reset --factory`: asks before it erases, unless told --yes; without a terminal to ask on, --yes is needed. */
async function reset(command: ParsedCommand): Promise<void> {
  const inv = invocation(command);
  if (inv.values.factory !== true) throw fail('E_USAGE', 'reset needs --factory: it erases the whole data directory');
  if (inv.values.yes !== true) {
    if (!process.stdin.isTTY) throw fail('E_USAGE', `reset --factory erases everything in ${inv.dataDir}; add --yes to confirm without a terminal`);
    const { createInterface } = await import('node:readline/promises');
    const prompt = createInterface({ input: process.stdin, output: process.stderr });
    const answer = await prompt.question(
      `This erases everything in ${inv.dataDir} (apps, storage, logs, audit, keys, developer tokens). Type "reset" to go on: `,
    );
    prompt.close();
    if (answer.trim() !== 'reset') throw fail('E_USAGE', 'Not confirmed; nothing was erased');
  }
  const { factoryReset } = await import('../datadir/reset.js');
  const result = await factoryReset(inv.dataDir);
  print(inv, result, (shown) => `Erased ${shown.dataDir} (${shown.removed.length} entries); the next start is a new gateway, not in developer mode.`);
}

async function start(command: ParsedCommand, demo: boolean): Promise<void> {
  const inv = invocation(command);
  if (Boolean(inv.values.store) !== Boolean(inv.values.trust)) throw fail('E_USAGE', '--store and --trust go together');
  if (inv.values.store && inv.values['store-data'])
    throw fail('E_USAGE', "--store-data is the embedded store's directory; with --store no embedded store runs");
  // The demo serves the REST API on the demo port unless told another; `start` only when told.
  const port = inv.values.port === undefined ? (demo || inv.values.demo === true ? DEMO_PORT : undefined) : Number(inv.values.port);
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) throw fail('E_USAGE', '--port is a TCP port number');
  const { runGateway } = await import('../main.js');
  // Set by the supervisor that restarted this gateway after a crash (platform/supervisor): what
  // the restarted gateway audits. Only its text is used, bounded and escaped.
  const restartReason = process.env.ISOGATE_RESTART_REASON;
  await runGateway({
    dataDir: inv.dataDir,
    ...(restartReason ? { restartedAfter: escapeControls(restartReason.slice(0, 500)) } : {}),
    ...(port === undefined ? {} : { port }),
    ...(inv.values.store ? { storeUrl: String(inv.values.store), trustRootFile: String(inv.values.trust) } : {}),
    ...(inv.values['store-data'] ? { storeDataDir: String(inv.values['store-data']) } : {}),
    ...(inv.values['platform-trust'] ? { platformTrustRootFile: String(inv.values['platform-trust']) } : {}),
    ...(inv.values.image ? { imageDir: path.resolve(String(inv.values.image)) } : {}),
    // Set by the supervisor after a crash loop: the gateway starts in emergency support mode.
    ...(process.env.ISOGATE_EMERGENCY_REASON ? { emergencyReason: process.env.ISOGATE_EMERGENCY_REASON } : {}),
    demo: demo || inv.values.demo === true,
    json: inv.json,
  });
}

const DEMO_PORT = 8443;

const START_OPTIONS = {
  port: { type: 'string', value: 'N', summary: `serve the REST API over HTTPS on 127.0.0.1:N (the demo: ${DEMO_PORT} unless given)` },
  store: { type: 'string', value: 'URL', summary: 'an external app store instead of the embedded one (with --trust)' },
  trust: { type: 'string', value: 'ROOT', summary: "the external store's root CA certificate (PEM), which every package must chain to" },
  'store-data': { type: 'string', value: 'DIR', summary: 'the embedded store\'s directory (default: the data directory\'s name + "-store", beside it)' },
  'platform-trust': { type: 'string', value: 'ROOT', summary: "the platform root the image's packages must chain to" },
  image: { type: 'string', value: 'DIR', summary: "install the *.igp packages of the gateway's own image from DIR" },
  demo: { type: 'boolean', summary: 'install, wire and start the sample apps' },
  'no-supervisor': { type: 'boolean', summary: 'run the gateway without the supervisor that restarts it after a crash (under systemd, which restarts it)' },
  'crash-limit': {
    type: 'string',
    value: 'N',
    summary: 'crashes within the window that start the gateway in emergency support mode (default 5; ISOGATE_CRASH_LIMIT)',
  },
  'crash-window': { type: 'string', value: 'SECONDS', summary: 'the window crashes are counted in (default 600; ISOGATE_CRASH_WINDOW)' },
} as const satisfies OptionSpecs;

// `isogate demo` is start --demo already: its usage offering --demo again read as a second switch.
const { demo: _demo, ...DEMO_OPTIONS } = START_OPTIONS;

const ID = 'ID';

export const ISOGATE_CLI: CliSpec = {
  name: 'isogate',
  title: "isogate — the gateway's application platform",
  common: COMMON_OPTIONS,
  commands: [
    {
      name: 'start',
      summary: 'Run a gateway on the data directory, with an embedded store unless --store is given, until Ctrl-C.',
      options: START_OPTIONS,
      run: (command) => start(command, false),
    },
    { name: 'demo', summary: 'Run a demo gateway: start --demo (what npm start runs).', options: DEMO_OPTIONS, run: (command) => start(command, true) },
    {
      name: 'status',
      summary: 'Version, mode, store, apps by status (and why any is in Error), routes, emergency support mode, traffic gate.',
      run: client(status),
    },
    {
      name: 'restart',
      summary: "An admin's restart: leaves emergency support mode and starts the Autostart apps again (the cause may bring the mode back).",
      run: client(async (inv) => {
        const result = await call(inv, 'restart');
        print(inv, result, (shown) =>
          shown.left ? `Left emergency support mode (${shown.left.reason}); Autostart apps started` : 'Not in emergency support mode; Autostart apps started',
        );
      }),
    },
    {
      name: 'np',
      summary: "Network Protector: the traffic gate's protected services, the IP address allowlist and denylist, and offline replay.",
      commands: [
        NP_REPLAY_COMMAND,
        { name: 'status', summary: 'The inspector, each protected service with its connections, refusals and drops.', run: client(npStatus) },
        {
          name: 'allowlist',
          summary: 'The IP address allowlist: sources never refused by the denylist nor put on it (their traffic is still inspected).',
          commands: [
            { name: 'list', summary: 'The allowed source addresses.', run: client((inv) => npList(inv, 'allowlist')) },
            {
              name: 'add',
              summary: 'Allow a source address: four numbers from 0 to 255, not starting with 0, not 255.255.255.255.',
              args: ['IP'],
              run: client(async (inv, [ip]) => {
                const entry = await call(inv, 'np.allowlist.add', { ip });
                print(inv, entry, (shown) => `${shown.ipAddrSource} added to the allowlist`);
              }),
            },
            {
              name: 'remove',
              summary: 'Remove a source address from the allowlist.',
              args: ['IP'],
              run: client(async (inv, [ip]) => {
                const entry = await call(inv, 'np.allowlist.remove', { ip });
                print(inv, entry, (shown) => `${shown.ipAddrSource} removed from the allowlist`);
              }),
            },
          ],
        },
        {
          name: 'denylist',
          summary: 'The IP address denylist, filled by drop rules: a listed source is refused at connect.',
          commands: [
            { name: 'list', summary: 'Denied source addresses with the signature that blocked each and when.', run: client((inv) => npList(inv, 'denylist')) },
            {
              name: 'remove',
              summary: 'Remove a source address from the denylist: its traffic passes the gate again (inspected).',
              args: ['IP'],
              run: client(async (inv, [ip]) => {
                const entry = await call(inv, 'np.denylist.remove', { ip });
                print(inv, entry, (shown) => `${shown.ipAddrSource} removed from the denylist`);
              }),
            },
          ],
        },
      ],
    },
    {
      name: 'debug-service',
      summary: "The debug service for app developers: developer mode, the developers' tokens.",
      commands: [
        {
          name: 'start',
          summary: 'Start it: the gateway enters developer mode until a factory reset; prints its URL and a token for the developer NAME.',
          options: {
            name: { type: 'string', value: 'NAME', summary: 'the developer the first token is for (default: developer)' },
            host: { type: 'string', value: 'ADDR', summary: 'the address to listen on (default: 127.0.0.1, loopback only)' },
            port: { type: 'string', value: 'N', summary: 'the port to listen on (default: any free one)' },
          },
          run: client(debugServiceStart),
        },
        {
          name: 'token',
          summary: "Developers' tokens: each developer's own, shown once; apps pushed with one are that developer's.",
          commands: [
            {
              name: 'add',
              summary: 'Issue a token to the developer NAME.',
              args: ['NAME'],
              run: client(async (inv, [name]) => {
                const result = await call(inv, 'debug.tokens.add', { name });
                print(inv, result, (shown) => `Token of ${shown.name} (shown only now): ${shown.token}`);
              }),
            },
            {
              name: 'list',
              summary: 'The developers holding tokens (never the tokens).',
              run: client(async (inv) => {
                const list = await call(inv, 'debug.tokens.list');
                print(inv, list, () =>
                  table(list, [
                    ['name', 'DEVELOPER'],
                    ['createdAt', 'ISSUED'],
                  ]),
                );
              }),
            },
            {
              name: 'revoke',
              summary: "Revoke a developer's token; its DevTools sessions end.",
              args: ['NAME'],
              run: client(async (inv, [name]) => {
                print(inv, await call(inv, 'debug.tokens.revoke', { name }), () => `Revoked the token of ${escapeControls(name!)}`);
              }),
            },
          ],
        },
      ],
    },
    {
      name: 'reset',
      summary: "With --factory: erase the stopped gateway's data directory, the only way out of developer mode.",
      options: {
        factory: { type: 'boolean', summary: 'erase everything in the data directory' },
        yes: { type: 'boolean', summary: 'do not ask for confirmation' },
      },
      run: reset,
    },
    {
      name: 'apps',
      summary: 'Install, start, stop, configure and inspect apps.',
      commands: [
        {
          name: 'available',
          summary: "The store's catalog: name, title, version, size, category, status.",
          run: client(async (inv) => {
            const list = await call(inv, 'apps.available');
            print(inv, list, () =>
              table(
                list.map((app: any) => ({
                  ...app,
                  size: formatBytes(app.size),
                  categories: app.categories.join(', '),
                  published_at: app.published_at.slice(0, 10),
                  installed: app.installedVersion ?? '',
                })),
                [
                  ['package_id', 'ID'],
                  ['name', 'NAME'],
                  ['title', 'TITLE'],
                  ['version', 'VERSION'],
                  ['size', 'SIZE'],
                  ['categories', 'CATEGORY'],
                  ['published_at', 'PUBLISHED'],
                  ['status', 'STATUS'],
                  ['installed', 'INSTALLED'],
                ],
              ),
            );
          }),
        },
        { name: 'list', summary: 'Installed apps: status (with the reason of an Error), start rule, signature.', run: client(appsList) },
        {
          name: 'install',
          summary: 'Download, verify and install an app from the store.',
          args: [ID],
          options: { version: { type: 'string', value: 'V', summary: 'the version to install (default: the newest offered)' } },
          run: client(appsInstall),
        },
        {
          name: 'update',
          summary:
            'Update an installed app in place: storage, certificates, valid configuration keys and routes are kept; the old version comes back if the new one fails to start.',
          args: [ID],
          options: {
            version: { type: 'string', value: 'V', summary: 'the version to update to (default: the newest offered)' },
            'allow-downgrade': { type: 'boolean', summary: 'allow a version lower than the installed one' },
          },
          run: client(appsUpdate),
        },
        {
          name: 'uninstall',
          summary: 'Stop and remove an app with its storage, configuration and routes.',
          args: [ID],
          run: client(async (inv, [id]) => {
            const result = await call(inv, 'apps.uninstall', { id });
            print(inv, result, () => `Uninstalled ${escapeControls(id!)}`);
          }),
        },
        {
          name: 'forget',
          summary: "Forget the signer an uninstalled app's id is bound to, so the next install binds a new one.",
          args: [ID],
          run: client(async (inv, [id]) => {
            const result = await call(inv, 'apps.forget', { id });
            print(inv, result, () => `Forgot the signer of ${id} (${result.signer.subject}); the next installation of ${id} binds its signer`);
          }),
        },
        { name: 'start', summary: 'Start an app.', args: [ID], run: client((inv, args) => appsStartStop(inv, args, 'start')) },
        { name: 'stop', summary: 'Stop an app.', args: [ID], run: client((inv, args) => appsStartStop(inv, args, 'stop')) },
        {
          name: 'rule',
          summary: 'Set the start rule: Autostart (auto), Manual start (manual), Block start (blocked).',
          args: [ID, 'auto|manual|blocked'],
          run: client(async (inv, [id, rule]) => {
            const result = await call(inv, 'apps.rule', { id, rule });
            print(inv, result, (result) => `${result.name ?? escapeControls(id!)}: start rule ${escapeControls(rule!)}`);
          }),
        },
        {
          name: 'manifest',
          summary: 'What an installed app declares: signer (or unsigned), limits, endpoints, egress hosts, reserved capabilities.',
          args: [ID],
          run: client(async (inv, [id]) => {
            const result = (await call(inv, 'apps.manifest', { id })) as AppManifestView;
            print(inv, result, manifestText);
          }),
        },
        {
          name: 'log-level',
          summary: "Set an app's log level, 0 (critical) to 5 (all).",
          args: [ID, '0-5'],
          run: client(async (inv, [id, level]) => {
            if (!/^[0-5]$/.test(level!)) throw fail('E_USAGE', 'The log level is a number from 0 (critical) to 5 (all)');
            const result = await call(inv, 'apps.logLevel', { id, level: Number(level) });
            print(inv, result, (result) => `${result.name ?? escapeControls(id!)}: log level ${level}`);
          }),
        },
        {
          name: 'logs',
          summary: "Download an app's logs as log_files_<app_id>.tar.gz, or print its lines (-f follows them as they are written).",
          args: [ID],
          options: {
            output: {
              type: 'string',
              short: 'o',
              value: 'FILE',
              summary: 'the file to save the archive as, in an existing folder (default: its own name, here)',
            },
            follow: { type: 'boolean', short: 'f', summary: 'print the last lines, then new ones as they are written, until Ctrl-C' },
            tail: { type: 'string', value: 'N', summary: 'print the last N lines (with -f, default 10)' },
            level: { type: 'string', value: 'L', summary: 'only lines at level L or more severe, 0 (critical) to 5 (all)' },
          },
          run: client(appsLogs),
        },
        {
          name: 'config',
          summary: "Show an app's configuration (defaults under what an admin set), or change it.",
          args: [ID, '[KEY]', '[VALUE]'],
          details:
            'KEY VALUE changes one key (dotted for nested keys: limits.temperature.warning; VALUE is JSON, else a string).\n--merge FILE changes the keys a JSON merge patch names (null puts a key back to its default).\n--set FILE replaces the whole configuration: keys it leaves out go back to their defaults.',
          options: {
            set: { type: 'string', value: 'FILE', summary: 'replace the whole configuration with the JSON document in FILE' },
            merge: { type: 'string', value: 'FILE', summary: 'apply the JSON merge patch in FILE' },
          },
          run: client(appsConfig),
        },
      ],
    },
    {
      name: 'routes',
      summary: 'Wire app endpoints together and see what flows.',
      commands: [
        {
          name: 'list',
          summary: 'Routes with their status, endpoints, queued messages and delivered/dropped/invalid counters.',
          options: {
            search: { type: 'string', value: 'TEXT', summary: 'only routes whose apps or endpoints contain TEXT' },
            sort: { type: 'string', value: 'status|source|destination', summary: 'sort by this column' },
            desc: { type: 'boolean', summary: 'sort in descending order' },
          },
          run: client(routesList),
        },
        {
          name: 'add',
          summary: "Route an app's output endpoint to another app's input endpoint. Lossless: a full route slows its source down.",
          args: ['APP:ENDPOINT', 'APP:ENDPOINT'],
          options: ROUTE_DELIVERY_OPTIONS,
          run: client(async (inv, [source, destination]) => {
            const route = await call(inv, 'routes.add', { source, destination, ...routeDelivery(inv) });
            print(inv, route, (route) => `Route ${route.id} added (${route.status})`);
          }),
        },
        {
          name: 'remove',
          summary: 'Remove a route.',
          args: ['ROUTE'],
          run: client(async (inv, [id]) => {
            print(inv, await call(inv, 'routes.remove', { id }), () => `Route ${escapeControls(id!)} removed`);
          }),
        },
        { name: 'enable', summary: 'Enable a route.', args: ['ROUTE'], run: client((inv, args) => routesEnable(inv, args, true)) },
        {
          name: 'set',
          summary: 'Change what a full route does (wait, or drop the oldest or newest messages) and its bound in bytes.',
          args: ['ROUTE'],
          options: ROUTE_DELIVERY_OPTIONS,
          run: client(async (inv, [id]) => {
            const route = await call(inv, 'routes.update', { id, ...routeDelivery(inv) });
            print(inv, route, (route) => `Route ${escapeControls(id!)}: overflow ${route.overflow}, ${route.queue_bytes} bytes`);
          }),
        },
        {
          name: 'disable',
          summary: 'Disable a route: nothing is delivered on it until it is enabled.',
          args: ['ROUTE'],
          run: client((inv, args) => routesEnable(inv, args, false)),
        },
      ],
    },
    {
      name: 'certs',
      summary: "An app's certificates for reaching its servers.",
      commands: [
        { name: 'list', summary: "An app's CA and client certificates with their expiry.", args: [ID], run: client(certsList) },
        {
          name: 'set-ca',
          summary: "Upload the CA certificate (PEM) that issued the app's servers' certificates, e.g. the plant cloud's CA.",
          args: [ID, 'FILE'],
          run: client(certsSetCa),
        },
        {
          name: 'set-client',
          summary: "Upload the app's client certificate and its key (PEM), only together.",
          args: [ID, 'CERT', 'KEY'],
          run: client(certsSetClient),
        },
        { name: 'delete', summary: "Delete an app's CA or client certificate.", args: [ID, 'ca|client'], run: client(certsDelete) },
      ],
    },
    {
      name: 'integrity',
      summary: "Integrity control: every installed app's files against its install record.",
      commands: [
        {
          name: 'check',
          summary: "Check now; --report saves the report in the manual's format (a violation found here does not enter emergency support mode).",
          options: { report: { type: 'string', value: 'FILE', summary: 'save the report (TXT) as FILE, in an existing folder' } },
          run: client(integrityCheck),
        },
      ],
    },
    {
      name: 'self-test',
      summary: 'Self-test the audit, authentication, traffic blocking and Network Protector; an error enters emergency support mode.',
      run: client(selfTest),
    },
    {
      name: 'backup',
      summary: 'Back up the configuration, encrypted with a passphrase (--passphrase-file FILE or ISOGATE_BACKUP_PASSPHRASE), or restore it.',
      commands: [
        {
          name: 'create',
          summary: 'Save the configuration as an encrypted, authenticated backup file (.igb) that restores on a gateway of the same version.',
          options: {
            output: { type: 'string', short: 'o', value: 'FILE', summary: 'the file to save, in an existing folder (default: its own name, here)' },
            'passphrase-file': { type: 'string', value: 'FILE', summary: 'the passphrase is the first line of FILE' },
          },
          run: client(backupCreate),
        },
        {
          name: 'restore',
          summary: 'Restore the configuration from FILE, made with the same passphrase and version; leaves emergency support mode.',
          args: ['FILE'],
          options: { 'passphrase-file': { type: 'string', value: 'FILE', summary: 'the passphrase is the first line of FILE' } },
          run: client(backupRestore),
        },
      ],
    },
    {
      name: 'audit',
      summary: 'The system and firewall audit logs, newest first.',
      options: {
        log: { type: 'string', value: 'system|firewall', summary: 'which audit log (default: system)' },
        limit: { type: 'string', value: 'N', summary: 'at most N records (default: 50)' },
      },
      run: client(audit),
    },
  ],
};

export async function main(argv: string[]): Promise<number> {
  return runCli(ISOGATE_CLI, argv);
}
