/**
 * `isogate-sdk`: the app developer's tool: create a project, build it into a package, make a
 * key, sign, verify and inspect packages. Every failure is `CODE: sentence` and a non-zero exit.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ParseArgsConfig } from 'node:util';
import { fail } from '../errors.js';
import { buildProject } from '../build/project.js';
import { readPackage, signPackage } from '../package/index.js';
import { createCertificate, createCsr, generateKeyPair, keyMatchesCertificate, parseCertificates } from '../pki.js';
import { SDK_VERSION } from '../version.js';
import { writeFileDurable } from '../../platform/durable/index.js';
import { escapeControls, escapeControlsDeep } from '../text.js';
import { parseCommandLine, printJson, reportFailure } from './shell.js';
import { MAIN_SOURCE, PROJECT_TSCONFIG, projectManifest, projectReadme } from './templates.js';

const USAGE = `isogate-sdk ${SDK_VERSION} — build and sign isogate apps

  isogate-sdk init DIR [--id com.example.app] [--name NAME]
  isogate-sdk build [DIR] [--src FILE] [-o PKG] [--minify]
  isogate-sdk keygen --out DIR [--name CN] [--self-signed]
  isogate-sdk sign PKG --key KEY --cert CERT [--chain PEM] [-o OUT]
  isogate-sdk verify PKG --trust ROOT
  isogate-sdk inspect PKG

Coming with developer mode: test, run, push, logs, debug.
Every command takes --json.`;

const OPTIONS = {
  json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  id: { type: 'string' }, name: { type: 'string' }, src: { type: 'string' }, output: { type: 'string', short: 'o' },
  minify: { type: 'boolean' }, out: { type: 'string' }, 'self-signed': { type: 'boolean' },
  key: { type: 'string' }, cert: { type: 'string' }, chain: { type: 'string' }, trust: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

type Values = { [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K]['type'] extends 'boolean' ? boolean : string };
const PACKAGE_ID = /^[a-z][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)+$/;
const TYPES_DIR = fileURLToPath(new URL('../app/', import.meta.url));

/**
 * A command's machine output and how to say it to a person. The sentence is built from a copy
 * of the machine output with every string escaped (sdk/text.ts): a package being inspected or
 * verified may come from anyone, and its manifest and certificates must not reach the terminal
 * raw.
 */
type Outcome<T = any> = [machine: T, human: (shown: T) => string];

async function readText(file: string, what: string): Promise<string> {
  return fs.readFile(path.resolve(file), 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw fail('E_NOT_FOUND', `The ${what} ${file} cannot be read (${error.code ?? error.message})`);
  });
}

async function readBytes(file: string): Promise<Buffer> {
  return fs.readFile(path.resolve(file)).catch((error: NodeJS.ErrnoException) => {
    throw fail('E_NOT_FOUND', `The package ${file} cannot be read (${error.code ?? error.message})`);
  });
}

async function init(rest: string[], values: Values): Promise<Outcome> {
  if (rest.length !== 1) throw fail('E_USAGE', 'init expects the new project directory');
  const dir = path.resolve(rest[0]!);
  const name = values.name ?? path.basename(dir);
  const id = values.id ?? `com.example.${name.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^[^a-z]+/, '') || 'app'}`;
  if (!PACKAGE_ID.test(id)) throw fail('E_USAGE', `"${id}" is not a reverse-DNS package id such as com.example.my-app`);
  const existing = await fs.readdir(dir).catch(() => []);
  if (existing.length > 0) throw fail('E_CONFLICT', `${dir} is not empty; init writes a new project into an empty or new directory`);
  const manifest = projectManifest(id, name);
  await fs.mkdir(path.join(dir, 'src'), { recursive: true });
  await fs.mkdir(path.join(dir, 'types'), { recursive: true });
  await fs.writeFile(path.join(dir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  await fs.writeFile(path.join(dir, 'src', 'main.ts'), MAIN_SOURCE);
  await fs.writeFile(path.join(dir, 'tsconfig.json'), PROJECT_TSCONFIG);
  await fs.writeFile(path.join(dir, 'README.md'), projectReadme(id, name));
  await fs.writeFile(path.join(dir, '.gitignore'), 'dist/\nkeys/\n');
  for (const file of ['isogate-sdk.d.ts', 'globals.d.ts']) await fs.copyFile(path.join(TYPES_DIR, file), path.join(dir, 'types', file));
  const relative = escapeControls(path.relative(process.cwd(), dir) || '.');
  return [{ dir, package_id: id, name }, (shown) => `Created ${shown.name} (${shown.package_id}) in ${shown.dir}\nNext: cd ${relative} && npx isogate-sdk build`];
}

async function build(rest: string[], values: Values): Promise<Outcome> {
  if (rest.length > 1) throw fail('E_USAGE', 'build expects at most the project directory');
  const dir = path.resolve(rest[0] ?? '.');
  const built = await buildProject(dir, { ...(values.src ? { source: values.src } : {}), minify: values.minify === true });
  const output = path.resolve(values.output ?? path.join(dir, 'dist', `${built.manifest.package_id}-${built.manifest.version}.igp`));
  await fs.mkdir(path.dirname(output), { recursive: true });
  await writeFileDurable(output, built.packageBytes);
  const info = await readPackage(built.packageBytes, { trust: { inspectOnly: true } });
  return [{ package: output, package_id: built.manifest.package_id, version: built.manifest.version, size: info.packageBytes, sha256: info.packageSha256, signed: false },
    (shown) => `Built ${shown.package}\n  ${shown.package_id} ${shown.version}, ${shown.size} bytes, sha256 ${shown.sha256}\n  unsigned: sign it with isogate-sdk sign`];
}

async function keygen(rest: string[], values: Values): Promise<Outcome> {
  if (rest.length !== 0 || !values.out) throw fail('E_USAGE', 'keygen expects --out DIR');
  const dir = path.resolve(values.out);
  const keyPath = path.join(dir, 'key.pem');
  if (await fs.stat(keyPath).then(() => true, () => false)) throw fail('E_CONFLICT', `${keyPath} exists; keygen never overwrites a key`);
  const commonName = values.name ?? 'isogate app publisher';
  const pair = generateKeyPair();
  await fs.mkdir(dir, { recursive: true });
  await writeFileDurable(keyPath, pair.keyPem, { mode: 0o600 });
  if (values['self-signed']) {
    const certPath = path.join(dir, 'cert.pem');
    await writeFileDurable(certPath, createCertificate({ subject: { commonName }, publicKeyPem: pair.publicKeyPem, signingKeyPem: pair.keyPem, usage: 'code-signing', days: 365 }));
    return [{ key: keyPath, cert: certPath }, (shown) => `key  ${shown.key} (keep it secret)\ncert ${shown.cert} (self-signed: for local use; a gateway trusts only its store's CA)`];
  }
  const csrPath = path.join(dir, 'csr.pem');
  await writeFileDurable(csrPath, createCsr(pair.keyPem, { commonName }));
  return [{ key: keyPath, csr: csrPath }, (shown) => `key ${shown.key} (keep it secret)\ncsr ${shown.csr}: send it to your store operator for a code-signing certificate`];
}

async function sign(rest: string[], values: Values): Promise<Outcome> {
  if (rest.length !== 1 || !values.key || !values.cert) throw fail('E_USAGE', 'sign expects PKG --key KEY --cert CERT');
  const input = path.resolve(rest[0]!);
  const keyPem = await readText(values.key, 'key');
  const certPem = await readText(values.cert, 'certificate');
  const chainPem = values.chain ? parseCertificates(await readText(values.chain, 'chain')) : [];
  if (!keyMatchesCertificate(keyPem, certPem)) throw fail('E_CERT_KEY_MISMATCH', `The key ${values.key} does not belong to the certificate ${values.cert}`);
  const signed = await signPackage(await readBytes(input), { keyPem, certPem, chainPem });
  const output = path.resolve(values.output ?? input);
  await writeFileDurable(output, signed);
  const info = await readPackage(signed, { trust: { inspectOnly: true } });
  return [{ package: output, signer: info.signer?.subject, sha256: info.packageSha256, size: info.packageBytes },
    (shown) => `Signed ${shown.package}\n  signer ${shown.signer}\n  sha256 ${shown.sha256}`];
}

async function verify(rest: string[], values: Values): Promise<Outcome> {
  if (rest.length !== 1 || !values.trust) throw fail('E_USAGE', 'verify expects PKG --trust ROOT');
  const roots = parseCertificates(await readText(values.trust, 'trust root'));
  const info = await readPackage(await readBytes(rest[0]!), { trust: { trustRootsPem: roots } });
  return [{ ok: true, package_id: info.manifest.package_id, version: info.manifest.version, signer: info.signer?.subject, issuer: info.signer?.issuer, validTo: info.signer?.validTo, files: info.files.length },
    (shown) => `OK ${shown.package_id} ${shown.version}: signed by ${shown.signer} (issuer ${shown.issuer}), ${shown.files} files, every digest matches`];
}

async function inspect(rest: string[]): Promise<Outcome> {
  if (rest.length !== 1) throw fail('E_USAGE', 'inspect expects PKG');
  const info = await readPackage(await readBytes(rest[0]!), { trust: { inspectOnly: true } });
  const signer = info.signer && { subject: info.signer.subject, issuer: info.signer.issuer, validFrom: info.signer.validFrom, validTo: info.signer.validTo, fingerprint256: info.signer.fingerprint256, chainLength: info.signer.chain.length };
  const files = info.files.map((file) => ({ ...file, sha256: info.digests[file.path] }));
  const machine = { ...info.manifest, files, signer, packageSha256: info.packageSha256, packageBytes: info.packageBytes };
  const human = ({ files, signer, packageBytes, packageSha256, ...m }: typeof machine): string => [
    `${m.title} (${m.package_id} ${m.version}) by ${m.publisher}`,
    `  type ${m.type}, zone ${m.networkZone}, SDK ${m.buildSdkVersion}, entry ${m.entry}`,
    `  resources: ${m.resources.memoryMb} MB memory, ${m.resources.cpuMsPerEvent} ms CPU per event, ${m.resources.storageMb} MB storage`,
    `  endpoints: ${(m.endpoints ?? []).map((e) => `${e.name} (${e.direction}, ${e.dataType}, ${e.format})`).join(', ') || 'none'}`,
    `  egress: ${(m.egress ?? []).map((e) => `${e.name} ${e.protocol}://${e.host}:${e.port}`).join(', ') || 'none'}`,
    `  signer: ${signer ? `${signer.subject} (issuer ${signer.issuer}, valid to ${signer.validTo}); not checked against a trust root, use verify` : 'UNSIGNED'}`,
    `  package: ${packageBytes} bytes, sha256 ${packageSha256}`,
    '  files:',
    ...files.map((file) => `    ${file.path}  ${file.size} bytes  ${file.sha256 ?? '(unlisted)'}`),
  ].join('\n');
  return [machine, human];
}

export async function main(argv: string[]): Promise<number> {
  const json = argv.includes('--json');
  try {
    const parsed = parseCommandLine(argv, OPTIONS);
    const [command, ...rest] = parsed.positionals;
    const values = parsed.values as Values;
    if (command === undefined || command === 'help' || values.help) {
      process.stdout.write(`${USAGE}\n`);
      return command === undefined && !values.help ? 2 : 0;
    }
    const commands: Record<string, () => Promise<Outcome>> = {
      init: () => init(rest, values),
      build: () => build(rest, values),
      keygen: () => keygen(rest, values),
      sign: () => sign(rest, values),
      verify: () => verify(rest, values),
      inspect: () => inspect(rest),
    };
    if (['test', 'run', 'push', 'logs', 'debug'].includes(command)) throw fail('E_USAGE', `'${command}' arrives with developer mode`);
    const run = Object.hasOwn(commands, command) ? commands[command] : undefined;
    if (!run) throw fail('E_USAGE', `Unknown command "${command}"`);
    const [machine, human] = await run();
    if (json) printJson(machine);
    else process.stdout.write(`${human(escapeControlsDeep(machine))}\n`);
    return 0;
  } catch (error) {
    return reportFailure(error, json, USAGE);
  }
}
