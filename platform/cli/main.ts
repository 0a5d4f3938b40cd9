/**
 * `isogate`: runs a gateway (`start`) and talks to a running one through its control socket.
 * Every command exits non-zero with `CODE: sentence` on failure; `--json` prints machine output.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { ParseArgsConfig } from 'node:util';
import { parseCommandLine, printJson, reportFailure } from '../../sdk/cli/shell.js';
import { fail } from '../../sdk/errors.js';
import { escapeControls, escapeControlsDeep, safeJson } from '../../sdk/text.js';
import { callControl } from '../api/control-socket.js';
import { patchForKey } from '../config/merge-patch.js';
import { formatBytes, ProgressLine, table } from './format.js';

const USAGE = `isogate — the gateway's application platform

  isogate start [--data DIR] [--port N] [--store URL --trust ROOT | --store-data DIR] [--platform-trust ROOT] [--image DIR] [--demo]
  isogate status
  isogate apps available | list
  isogate apps install ID [--version V] | uninstall ID | forget ID | start ID | stop ID
  isogate apps rule ID auto|manual|blocked | log-level ID 0-5
  isogate apps logs ID [-o FILE]
  isogate apps config ID [--set FILE | --merge FILE | KEY VALUE]
  isogate routes list [--search TEXT] [--sort status|source|destination] [--desc]
  isogate routes add APP:ENDPOINT APP:ENDPOINT | remove ROUTE | enable ROUTE | disable ROUTE
  isogate certs list ID | set-ca ID FILE | set-client ID CERT KEY | delete ID ca|client
  isogate audit [--log system|firewall] [--limit N]

Every command takes --data DIR (default: $ISOGATE_DATA, else ./.isogate-demo) and --json.
The embedded store keeps its data in --store-data DIR (default: the data directory's name + "-store").`;

type Values = Record<string, string | boolean | undefined>;

interface Invocation {
  positionals: string[];
  values: Values;
  json: boolean;
  socket: string;
  dataDir: string;
}

const COMMON_OPTIONS = {
  data: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

function parse(args: string[], options: ParseArgsConfig['options'] = {}): Invocation {
  const parsed = parseCommandLine(args, { ...COMMON_OPTIONS, ...options });
  const values = parsed.values as Values;
  const dataDir = path.resolve(String(values.data ?? process.env.ISOGATE_DATA ?? '.isogate-demo'));
  return { positionals: parsed.positionals, values, json: values.json === true, dataDir, socket: path.join(dataDir, 'control.sock') };
}

function need(invocation: Invocation, count: number, what: string): string[] {
  const rest = invocation.positionals;
  if (rest.length !== count) throw fail('E_USAGE', `Expected ${what}`);
  return rest;
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

async function apps(args: string[]): Promise<void> {
  const [sub, ...rest] = args;
  const inv = parse(rest, { version: { type: 'string' }, output: { type: 'string', short: 'o' }, set: { type: 'string' }, merge: { type: 'string' } });
  switch (sub) {
    case 'available': {
      need(inv, 0, 'no arguments');
      const list = await call(inv, 'apps.available');
      return print(inv, list, () => table(list.map((app: any) => ({ ...app, size: formatBytes(app.size), categories: app.categories.join(', '), published_at: app.published_at.slice(0, 10), installed: app.installedVersion ?? '' })),
        [['package_id', 'ID'], ['name', 'NAME'], ['title', 'TITLE'], ['version', 'VERSION'], ['size', 'SIZE'], ['categories', 'CATEGORY'], ['published_at', 'PUBLISHED'], ['status', 'STATUS'], ['installed', 'INSTALLED']]));
    }
    case 'list': {
      need(inv, 0, 'no arguments');
      const list = await call(inv, 'apps.list');
      return print(inv, list, (shown) => [table(shown.map((app: any) => ({ ...app, status: app.status[0].toUpperCase() + app.status.slice(1) })),
        [['package_id', 'ID'], ['name', 'NAME'], ['publisher', 'ISSUER'], ['version', 'VERSION'], ['type', 'TYPE'], ['launch_rule', 'START RULE'], ['status', 'STATUS'], ['signature', 'SIGNATURE']]),
      // A quarantined app's reason is a sentence, too long for a column.
      ...shown.filter((app: any) => app.status === 'quarantined').map((app: any) => `${app.package_id} is quarantined (never started, its files kept; "isogate apps uninstall ${app.package_id}" removes it): ${app.reason}`),
      ].join('\n'));
    }
    case 'install': {
      const [id] = need(inv, 1, 'install ID [--version V]');
      const bar = inv.json ? undefined : new ProgressLine(process.stderr, `Installing ${id}`);
      const result = await call(inv, 'apps.install', { id, ...(inv.values.version ? { version: inv.values.version } : {}) }, (update: any) => {
        bar?.update(update.percent, update.phase === 'download' ? `${formatBytes(update.received)} of ${formatBytes(update.total)}` : update.phase);
      });
      bar?.done();
      return print(inv, result, (result) => `Installed ${result.name} ${result.version}`);
    }
    case 'uninstall': {
      const [id] = need(inv, 1, 'uninstall ID');
      const result = await call(inv, 'apps.uninstall', { id });
      return print(inv, result, () => `Uninstalled ${escapeControls(id!)}`);
    }
    case 'forget': {
      const [id] = need(inv, 1, 'forget ID');
      const result = await call(inv, 'apps.forget', { id });
      return print(inv, result, () => `Forgot the signer of ${id} (${result.signer.subject}); the next installation of ${id} binds its signer`);
    }
    case 'start':
    case 'stop': {
      const [id] = need(inv, 1, `${sub} ID`);
      const result = await call(inv, `apps.${sub}`, { id });
      return print(inv, result, (result) => `${result.name ?? escapeControls(id!)}: ${result.status}`);
    }
    case 'rule': {
      const [id, rule] = need(inv, 2, 'rule ID auto|manual|blocked');
      const result = await call(inv, 'apps.rule', { id, rule });
      return print(inv, result, (result) => `${result.name ?? escapeControls(id!)}: start rule ${escapeControls(rule!)}`);
    }
    case 'log-level': {
      const [id, level] = need(inv, 2, 'log-level ID 0-5');
      if (!/^[0-5]$/.test(level!)) throw fail('E_USAGE', 'The log level is a number from 0 (critical) to 5 (all)');
      const result = await call(inv, 'apps.logLevel', { id, level: Number(level) });
      return print(inv, result, (result) => `${result.name ?? escapeControls(id!)}: log level ${level}`);
    }
    case 'logs': {
      const [id] = need(inv, 1, 'logs ID [-o FILE]');
      const info = await call(inv, 'apps.logs.info', { id });
      const target = path.resolve(String(inv.values.output ?? info.fileName));
      const handle = await fs.open(target, 'w', 0o600);
      const bar = inv.json ? undefined : new ProgressLine(process.stderr, `Downloading ${info.fileName} (about ${formatBytes(info.estimatedBytes)})`);
      try {
        let pending = Promise.resolve();
        const result = await call(inv, 'apps.logs.archive', { id }, (update: any) => {
          const chunk = Buffer.from(update.data, 'base64');
          pending = pending.then(async () => { await handle.write(chunk); });
          bar?.update(Math.min(99, (update.bytes / Math.max(info.estimatedBytes, 1)) * 100), formatBytes(update.bytes));
        });
        await pending;
        bar?.update(100, formatBytes(result.bytes));
        bar?.done();
        return print(inv, { ...result, path: target }, (saved) => `Saved ${saved.path} (${formatBytes(saved.bytes)})`);
      } finally {
        await handle.close();
      }
    }
    case 'config': {
      // --set replaces the whole configuration; --merge and KEY VALUE change only what they name.
      const [id, key, value] = inv.positionals;
      if (!id || (key !== undefined && value === undefined) || inv.positionals.length > 3
        || [inv.values.set, inv.values.merge, key].filter((given) => given !== undefined).length > 1) {
        throw fail('E_USAGE', 'Expected config ID, config ID --set FILE, config ID --merge FILE or config ID KEY VALUE');
      }
      const save = async (op: string, params: Record<string, unknown>): Promise<void> => {
        const result = await call(inv, op, params);
        print(inv, result, (shown) => `${shown.name ?? escapeControls(id)}: configuration saved (${shown.status})`);
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
      return print(inv, config, () => safeJson(config, 2));
    }
    default:
      throw fail('E_USAGE', `Unknown apps command "${sub ?? ''}"`);
  }
}

function routeRows(routes: any[]): string {
  return table(routes.map((route) => ({
    ...route,
    // The name is what an admin recognises, the id what `routes add` and scripts take.
    source_app: appLabel(route.sourceName, route.source.application_id),
    source_ep: route.source.endpoint,
    destination_app: appLabel(route.destinationName, route.destination.application_id),
    destination_ep: route.destination.endpoint,
    counts: `${route.counters.delivered}/${route.counters.dropped}/${route.counters.invalid}`,
  })), [['id', 'ID'], ['status', 'STATUS'], ['source_app', 'SOURCE APP'], ['source_ep', 'SOURCE POINT'], ['destination_app', 'DESTINATION APP'], ['destination_ep', 'DESTINATION POINT'], ['queued', 'QUEUED'], ['counts', 'DELIVERED/DROPPED/INVALID']]);
}

function appLabel(name: string | undefined, id: string): string {
  return name ? `${name} (${id})` : id;
}

async function routes(args: string[]): Promise<void> {
  const [sub, ...rest] = args;
  const inv = parse(rest, { search: { type: 'string' }, sort: { type: 'string' }, desc: { type: 'boolean' } });
  switch (sub) {
    case 'list': {
      need(inv, 0, 'no arguments');
      const query = {
        ...(inv.values.search ? { search: inv.values.search } : {}),
        ...(inv.values.sort ? { sortBy: inv.values.sort } : {}),
        ...(inv.values.desc ? { order: 'desc' } : {}),
      };
      const list = await call(inv, 'routes.list', query);
      return print(inv, list, () => routeRows(list));
    }
    case 'add': {
      const [source, destination] = need(inv, 2, 'add APP:ENDPOINT APP:ENDPOINT');
      const route = await call(inv, 'routes.add', { source, destination });
      return print(inv, route, (route) => `Route ${route.id} added (${route.status})`);
    }
    case 'remove': {
      const [id] = need(inv, 1, 'remove ROUTE');
      return print(inv, await call(inv, 'routes.remove', { id }), () => `Route ${escapeControls(id!)} removed`);
    }
    case 'enable':
    case 'disable': {
      const [id] = need(inv, 1, `${sub} ROUTE`);
      const route = await call(inv, 'routes.update', { id, active: sub === 'enable' });
      return print(inv, route, (route) => `Route ${escapeControls(id!)}: ${route.status}`);
    }
    default:
      throw fail('E_USAGE', `Unknown routes command "${sub ?? ''}"`);
  }
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

async function certs(args: string[]): Promise<void> {
  const [sub, ...rest] = args;
  const inv = parse(rest);
  switch (sub) {
    case 'list': {
      const [id] = need(inv, 1, 'list ID');
      const list = await call(inv, 'certs.list', { id });
      return print(inv, list, () => table(list.map((c: any) => ({ ...c, validTo: c.validTo.slice(0, 10) })),
        [['kind', 'KIND'], ['fileName', 'FILE'], ['subject', 'SUBJECT'], ['issuer', 'ISSUER'], ['validTo', 'VALID UNTIL'], ['daysLeft', 'DAYS LEFT'], ['warning', 'WARNING']]));
    }
    case 'set-ca': {
      const [id, file] = need(inv, 2, 'set-ca ID FILE');
      const info = await call(inv, 'certs.setCa', { id, fileName: path.basename(file!), content: await readBase64(file!) });
      return print(inv, info, (info) => `CA certificate for ${escapeControls(id!)}: ${validity(info)}`);
    }
    case 'set-client': {
      const [id, cert, key] = need(inv, 3, 'set-client ID CERT KEY');
      const info = await call(inv, 'certs.setClient', {
        id, certFileName: path.basename(cert!), cert: await readBase64(cert!), keyFileName: path.basename(key!), key: await readBase64(key!),
      });
      return print(inv, info, (info) => `Client certificate for ${escapeControls(id!)}: ${validity(info)}`);
    }
    case 'delete': {
      const [id, kind] = need(inv, 2, 'delete ID ca|client');
      if (kind !== 'ca' && kind !== 'client') throw fail('E_USAGE', 'Say which certificate to delete: ca or client');
      return print(inv, await call(inv, 'certs.delete', { id, kind }), () => `Deleted the ${kind} certificate of ${escapeControls(id!)}`);
    }
    default:
      throw fail('E_USAGE', `Unknown certs command "${sub ?? ''}"`);
  }
}

async function status(args: string[]): Promise<void> {
  const inv = parse(args);
  need(inv, 0, 'no arguments');
  const result = await call(inv, 'status');
  print(inv, result, (result) => [
    `isogate ${result.version} (SDK ${result.sdkVersion}), up ${Math.round(result.uptimeSeconds)} s, data ${result.dataDir}`,
    `mode: ${result.mode}${result.developerMode ? ', developer mode' : ''}`,
    `store: ${result.store}`,
    `apps: ${result.apps.installed} installed of ${result.apps.limit}; ${Object.entries(result.apps.byStatus).map(([s, n]) => `${n} ${s}`).join(', ') || 'none running'}`,
    `routes: ${result.routes.active} active, ${result.routes.inactive} inactive, ${result.routes.error} in error`,
  ].join('\n'));
}

async function audit(args: string[]): Promise<void> {
  const inv = parse(args, { log: { type: 'string' }, limit: { type: 'string' } });
  need(inv, 0, 'no arguments');
  const limit = inv.values.limit === undefined ? 50 : Number(inv.values.limit);
  const records = await call(inv, 'audit.list', { ...(inv.values.log ? { log: inv.values.log } : {}), limit });
  print(inv, records, () => table(records, [['time', 'DATE AND TIME'], ['severity', 'SEVERITY'], ['subject', 'SUBJECT'], ['name', 'EVENT'], ['text', 'TEXT']]));
}

async function start(args: string[], demo: boolean): Promise<void> {
  const inv = parse(args, { port: { type: 'string' }, store: { type: 'string' }, trust: { type: 'string' }, 'store-data': { type: 'string' }, demo: { type: 'boolean' }, host: { type: 'string' },
    'platform-trust': { type: 'string' }, image: { type: 'string' } });
  need(inv, 0, 'no positional arguments');
  if (Boolean(inv.values.store) !== Boolean(inv.values.trust)) throw fail('E_USAGE', '--store and --trust go together');
  if (inv.values.store && inv.values['store-data']) throw fail('E_USAGE', '--store-data is the embedded store\'s directory; with --store no embedded store runs');
  const port = inv.values.port === undefined ? undefined : Number(inv.values.port);
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) throw fail('E_USAGE', '--port is a TCP port number');
  const { runGateway } = await import('../main.js');
  await runGateway({
    dataDir: inv.dataDir,
    ...(port === undefined ? {} : { port }),
    ...(inv.values.store ? { storeUrl: String(inv.values.store), trustRootFile: String(inv.values.trust) } : {}),
    ...(inv.values['store-data'] ? { storeDataDir: String(inv.values['store-data']) } : {}),
    ...(inv.values['platform-trust'] ? { platformTrustRootFile: String(inv.values['platform-trust']) } : {}),
    ...(inv.values.image ? { imageDir: path.resolve(String(inv.values.image)) } : {}),
    demo: demo || inv.values.demo === true,
    json: inv.json,
  });
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const json = argv.includes('--json');
  try {
    switch (command) {
      case 'start': await start(rest, false); break;
      case 'demo': await start(rest, true); break;
      case 'status': await status(rest); break;
      case 'apps': await apps(rest); break;
      case 'routes': await routes(rest); break;
      case 'certs': await certs(rest); break;
      case 'audit': await audit(rest); break;
      case undefined: case 'help': case '--help': case '-h':
        process.stdout.write(`${USAGE}\n`);
        return command === undefined ? 2 : 0;
      default:
        throw fail('E_USAGE', `Unknown command "${command}"`);
    }
    return 0;
  } catch (error) {
    return reportFailure(error, json, USAGE);
  }
}
