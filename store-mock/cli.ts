/**
 * `isogate-store`: the store operator's tool. Every command edits the data directory, which a
 * serving store re-reads, so publish, delist and compromise act at once.
 */
import path from 'node:path';
import type { ParseArgsConfig } from 'node:util';
import { parseCommandLine, printJson, reportFailure } from '../sdk/cli/shell.js';
import { fail } from '../sdk/errors.js';
import { escapeControlsDeep } from '../sdk/text.js';
import { formatBytes, table } from '../platform/cli/format.js';
import { serveStore } from './server.js';
import { StoreData } from './store.js';

const USAGE = `isogate-store — the app store stand-in

  isogate-store serve --data DIR [--port N] [--host H]
  isogate-store issue-publisher --data DIR --name NAME --out DIR
  isogate-store publish PKG --data DIR [--unchecked [--id ID --version V]]
  isogate-store delist ID VERSION --data DIR
  isogate-store compromise ID VERSION --data DIR
  isogate-store catalog --data DIR

Every command takes --json.`;

const OPTIONS = {
  data: { type: 'string' }, json: { type: 'boolean' }, port: { type: 'string' }, host: { type: 'string' },
  name: { type: 'string' }, out: { type: 'string' }, unchecked: { type: 'boolean' }, id: { type: 'string' }, version: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

export async function main(argv: string[]): Promise<number> {
  const json = argv.includes('--json');
  // Human lines are built from a copy with every string escaped (sdk/text.ts): a listing made
  // with --unchecked may carry any text a compromised publisher chose.
  const output = <T>(value: T, human: (shown: T) => string): void => {
    if (json) printJson(value);
    else process.stdout.write(`${human(escapeControlsDeep(value))}\n`);
  };
  try {
    const parsed = parseCommandLine(argv, OPTIONS);
    const [command, ...rest] = parsed.positionals;
    const values = parsed.values;
    const expect = (count: number, what: string): string[] => {
      if (rest.length !== count) throw fail('E_USAGE', `${command} expects ${what}`);
      return rest;
    };
    if (command === undefined || command === 'help') {
      process.stdout.write(`${USAGE}\n`);
      return command === undefined ? 2 : 0;
    }
    if (!values.data) throw fail('E_USAGE', `${command} needs --data DIR, the store's directory`);
    const dir = path.resolve(values.data);
    switch (command) {
      case 'serve': {
        expect(0, 'no arguments');
        const port = values.port === undefined ? 8470 : Number(values.port);
        if (!Number.isInteger(port) || port < 0 || port > 65535) throw fail('E_USAGE', '--port is a TCP port number');
        const serving = await serveStore({ dir, port, host: values.host ?? '127.0.0.1' });
        output({ url: serving.url, rootCert: path.join(dir, 'ca', 'root.cert.pem') }, (shown) => `store serving ${shown.url}\nroot CA ${shown.rootCert}\nPress Ctrl-C to stop.`);
        await new Promise<void>((resolve) => {
          process.once('SIGINT', resolve);
          process.once('SIGTERM', resolve);
        });
        await serving.close();
        return 0;
      }
      case 'issue-publisher': {
        expect(0, 'no arguments');
        if (!values.name || !values.out) throw fail('E_USAGE', 'issue-publisher needs --name NAME and --out DIR');
        const files = await (await StoreData.open(dir)).issuePublisher(values.name, path.resolve(values.out));
        output(files, (files) => `key    ${files.keyPath}\ncert   ${files.certPath}\nchain  ${files.chainPath}`);
        return 0;
      }
      case 'publish': {
        const [pkg] = expect(1, 'the package file');
        if ((values.id || values.version) && !values.unchecked) throw fail('E_USAGE', '--id and --version only name an --unchecked listing');
        const entry = await (await StoreData.open(dir)).publish(path.resolve(pkg!), {
          unchecked: values.unchecked === true,
          ...(values.id ? { packageId: values.id } : {}),
          ...(values.version ? { version: values.version } : {}),
        });
        output(entry, (entry) => `published ${entry.package_id} ${entry.version} (${formatBytes(entry.size)})${values.unchecked ? ' UNCHECKED' : ''}`);
        return 0;
      }
      case 'delist': {
        const [id, version] = expect(2, 'ID VERSION');
        await (await StoreData.open(dir)).delist(id!, version!);
        output({ package_id: id, version, delisted: true }, (shown) => `delisted ${shown.package_id} ${shown.version}`);
        return 0;
      }
      case 'compromise': {
        const [id, version] = expect(2, 'ID VERSION');
        const entry = await (await StoreData.open(dir)).compromise(id!, version!);
        output(entry, (entry) => `${entry.package_id} ${entry.version} is marked compromised`);
        return 0;
      }
      case 'catalog': {
        expect(0, 'no arguments');
        const entries = await (await StoreData.open(dir)).catalog();
        output({ apps: entries }, () => table(entries.map((e) => ({ ...e, size: formatBytes(e.size), categories: e.categories.join(', '), published_at: e.published_at.slice(0, 10) })),
          [['name', 'NAME'], ['title', 'TITLE'], ['version', 'VERSION'], ['size', 'SIZE'], ['categories', 'CATEGORY'], ['published_at', 'PUBLISHED'], ['status', 'STATUS']]));
        return 0;
      }
      default:
        throw fail('E_USAGE', `Unknown command "${command}"`);
    }
  } catch (error) {
    return reportFailure(error, json, USAGE);
  }
}
