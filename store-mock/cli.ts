/**
 * `isogate-store`: the store operator's tool. Every command edits the data directory, which a
 * serving store re-reads, so publish, delist and compromise act at once.
 */
import path from 'node:path';
import { formatBytes, table } from '../platform/cli/format.js';
import { type CliSpec, type OptionSpecs, type ParsedCommand, printJson, runCli } from '../sdk/cli/shell.js';
import { fail } from '../sdk/errors.js';
import { escapeControlsDeep } from '../sdk/text.js';
import { serveStore } from './server.js';
import { StoreData } from './store.js';

const DATA = { type: 'string', value: 'DIR', summary: "the store's directory (its catalog, packages, CA and publisher keys)", required: true } as const;

const OPTIONS = {
  json: { type: 'boolean', summary: 'machine output (JSON)' },
} as const satisfies OptionSpecs;

// Human lines are built from a copy with every string escaped (sdk/text.ts): a listing made
// with --unchecked may carry any text a compromised publisher chose.
function output<T>(json: boolean, value: T, human: (shown: T) => string): void {
  if (json) printJson(value);
  else process.stdout.write(`${human(escapeControlsDeep(value))}\n`);
}

function storeDir(command: ParsedCommand): string {
  return path.resolve(String(command.values.data));
}

async function serve(command: ParsedCommand): Promise<void> {
  const { values } = command;
  const dir = storeDir(command);
  const port = values.port === undefined ? 8470 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw fail('E_USAGE', '--port is a TCP port number');
  const serving = await serveStore({ dir, port, host: String(values.host ?? '127.0.0.1') });
  output(
    command.json,
    { url: serving.url, rootCert: serving.store.rootCertFile },
    (shown) => `store serving ${shown.url}\nroot CA ${shown.rootCert}\nPress Ctrl-C to stop.`,
  );
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await serving.close();
}

async function issuePublisher(command: ParsedCommand): Promise<void> {
  const { name, out } = command.values as { name: string; out: string };
  const files = await (await StoreData.open(storeDir(command))).issuePublisher(name, path.resolve(out));
  output(command.json, files, (files) => `key    ${files.keyPath}\ncert   ${files.certPath}\nchain  ${files.chainPath}`);
}

async function publish(command: ParsedCommand): Promise<void> {
  const values = command.values as { unchecked?: boolean; id?: string; version?: string };
  const [pkg] = command.positionals;
  if ((values.id || values.version) && !values.unchecked) throw fail('E_USAGE', '--id and --version only name an --unchecked listing');
  const entry = await (await StoreData.open(storeDir(command))).publish(path.resolve(pkg!), {
    unchecked: values.unchecked === true,
    ...(values.id ? { packageId: values.id } : {}),
    ...(values.version ? { version: values.version } : {}),
  });
  output(command.json, entry, (entry) => `published ${entry.package_id} ${entry.version} (${formatBytes(entry.size)})${values.unchecked ? ' UNCHECKED' : ''}`);
}

async function delist(command: ParsedCommand): Promise<void> {
  const [id, version] = command.positionals;
  await (await StoreData.open(storeDir(command))).delist(id!, version!);
  output(command.json, { package_id: id, version, delisted: true }, (shown) => `delisted ${shown.package_id} ${shown.version}`);
}

async function compromise(command: ParsedCommand): Promise<void> {
  const [id, version] = command.positionals;
  const entry = await (await StoreData.open(storeDir(command))).compromise(id!, version!);
  output(command.json, entry, (entry) => `${entry.package_id} ${entry.version} is marked compromised`);
}

async function catalog(command: ParsedCommand): Promise<void> {
  const entries = await (await StoreData.open(storeDir(command))).catalog();
  output(command.json, { apps: entries }, () =>
    table(
      entries.map((e) => ({ ...e, size: formatBytes(e.size), categories: e.categories.join(', '), published_at: e.published_at.slice(0, 10) })),
      [
        ['name', 'NAME'],
        ['title', 'TITLE'],
        ['version', 'VERSION'],
        ['size', 'SIZE'],
        ['categories', 'CATEGORY'],
        ['published_at', 'PUBLISHED'],
        ['status', 'STATUS'],
      ],
    ),
  );
}

export const STORE_CLI: CliSpec = {
  name: 'isogate-store',
  title: 'isogate-store — the app store stand-in',
  common: OPTIONS,
  commands: [
    {
      name: 'serve',
      summary: 'Serve the catalog and packages over HTTP until Ctrl-C; prints its URL and root CA.',
      options: {
        data: DATA,
        port: { type: 'string', value: 'N', summary: 'TCP port (default: 8470; 0 for any free port)' },
        host: { type: 'string', value: 'H', summary: 'address to listen on (default: 127.0.0.1)' },
      },
      run: serve,
    },
    {
      name: 'issue-publisher',
      summary: "Issue a publisher a code-signing key and certificate from the store's CA.",
      options: {
        data: DATA,
        name: { type: 'string', value: 'NAME', summary: "the publisher's name (1 to 64 characters)", required: true },
        out: {
          type: 'string',
          value: 'DIR',
          summary: 'where to write publisher.key.pem, publisher.cert.pem and chain.pem: keep it out of any repository',
          required: true,
        },
      },
      run: issuePublisher,
    },
    {
      name: 'publish',
      summary: 'List a signed package in the catalog, after the checks a gateway makes.',
      args: ['PKG'],
      options: {
        data: DATA,
        unchecked: { type: 'boolean', summary: 'list it without any check (stands in for a compromised store)' },
        id: { type: 'string', value: 'ID', summary: 'the package id of an --unchecked listing' },
        version: { type: 'string', value: 'V', summary: 'the version of an --unchecked listing' },
      },
      run: publish,
    },
    { name: 'delist', summary: 'Stop offering a version.', args: ['ID', 'VERSION'], options: { data: DATA }, run: delist },
    {
      name: 'compromise',
      summary: 'Mark a version compromised: gateways refuse to install it.',
      args: ['ID', 'VERSION'],
      options: { data: DATA },
      run: compromise,
    },
    { name: 'catalog', summary: 'The catalog as a gateway sees it.', options: { data: DATA }, run: catalog },
  ],
};

export async function main(argv: string[]): Promise<number> {
  return runCli(STORE_CLI, argv);
}
