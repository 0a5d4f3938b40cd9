/**
 * `isogate-sdk`: the app developer's tool: create a project, build it into a package, make a
 * key, sign, verify and inspect packages. Every failure is `CODE: sentence` and a non-zero exit.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileDurable } from '../../platform/durable/index.js';
import { buildProject } from '../build/project.js';
import { fail } from '../errors.js';
import { readPackage, signPackage } from '../package/index.js';
import { makeDirectories } from '../paths.js';
import { createCertificate, createCsr, generateKeyPair, keyMatchesCertificate, parseCertificates } from '../pki.js';
import { escapeControls, escapeControlsDeep } from '../text.js';
import { SDK_VERSION } from '../version.js';
import * as developer from './developer.js';
import { runCommand, runTests } from './local.js';
import { type CliSpec, type OptionSpecs, type ParsedCommand, printJson, runCli } from './shell.js';
import { FIXTURE_MESSAGES, MAIN_SOURCE, PROJECT_TSCONFIG, projectManifest, projectReadme, TEST_SOURCE } from './templates.js';

const OPTIONS = {
  json: { type: 'boolean', summary: 'machine output (JSON)' },
} as const satisfies OptionSpecs;

type Values = Partial<Record<'id' | 'name' | 'src' | 'output' | 'out' | 'key' | 'cert' | 'chain' | 'trust' | 'gateway' | 'token' | 'tail', string>> &
  Partial<Record<'json' | 'minify' | 'self-signed' | 'follow', boolean>>;
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
  const dir = path.resolve(rest[0]!);
  const name = values.name ?? path.basename(dir);
  const id =
    values.id ??
    `com.example.${
      name
        .toLowerCase()
        .replace(/[^a-z0-9-]+/g, '-')
        .replace(/^[^a-z]+/, '') || 'app'
    }`;
  if (!PACKAGE_ID.test(id)) throw fail('E_USAGE', `"${id}" is not a reverse-DNS package id such as com.example.my-app`);
  const existing = await fs.readdir(dir).catch(() => []);
  if (existing.length > 0) throw fail('E_CONFLICT', `${dir} is not empty; init writes a new project into an empty or new directory`);
  const manifest = projectManifest(id, name);
  await makeDirectories(path.join(dir, 'src'), 'The project directory');
  await makeDirectories(path.join(dir, 'types'), 'The project directory');
  await fs.writeFile(path.join(dir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  await fs.writeFile(path.join(dir, 'src', 'main.ts'), MAIN_SOURCE);
  await makeDirectories(path.join(dir, 'test'), 'The project directory');
  await fs.writeFile(path.join(dir, 'test', 'main.test.ts'), TEST_SOURCE);
  await fs.writeFile(path.join(dir, 'test', 'messages.jsonl'), FIXTURE_MESSAGES);
  await fs.writeFile(path.join(dir, 'tsconfig.json'), PROJECT_TSCONFIG);
  await fs.writeFile(path.join(dir, 'README.md'), projectReadme(id, name));
  await fs.writeFile(path.join(dir, '.gitignore'), 'dist/\nkeys/\n');
  for (const file of ['isogate-sdk.d.ts', 'globals.d.ts']) await fs.copyFile(path.join(TYPES_DIR, file), path.join(dir, 'types', file));
  const relative = escapeControls(path.relative(process.cwd(), dir) || '.');
  return [
    { dir, package_id: id, name },
    (shown) => `Created ${shown.name} (${shown.package_id}) in ${shown.dir}\nNext: cd ${relative} && npx isogate-sdk test`,
  ];
}

async function build(rest: string[], values: Values): Promise<Outcome> {
  const dir = path.resolve(rest[0] ?? '.');
  const built = await buildProject(dir, { ...(values.src ? { source: values.src } : {}), minify: values.minify === true, typeCheck: true });
  const output = path.resolve(values.output ?? path.join(dir, 'dist', `${built.manifest.package_id}-${built.manifest.version}.igp`));
  await makeDirectories(path.dirname(output), "The package's folder");
  await writeFileDurable(output, built.packageBytes);
  // The bundle's map beside the package, for the developer's tools (the bundle carries it inline for DevTools).
  const sourceMap = path.join(path.dirname(output), `${path.basename(built.manifest.entry)}.map`);
  await writeFileDurable(sourceMap, built.sourceMap);
  const info = await readPackage(built.packageBytes, { trust: { inspectOnly: true } });
  return [
    {
      package: output,
      sourceMap,
      package_id: built.manifest.package_id,
      version: built.manifest.version,
      size: info.packageBytes,
      sha256: info.packageSha256,
      signed: false,
      typeChecked: built.typeChecked,
    },
    (shown) =>
      `Built ${shown.package}\n  ${shown.package_id} ${shown.version}, ${shown.size} bytes, sha256 ${shown.sha256}\n  ${shown.typeChecked ? 'type-checked' : 'not type-checked (no tsconfig.json)'}, source map ${shown.sourceMap}\n  unsigned: push it to a gateway in developer mode, or sign it with isogate-sdk sign`,
  ];
}

async function check(rest: string[]): Promise<Outcome> {
  const dir = path.resolve(rest[0] ?? '.');
  // A build without the package: the type-check, then the manifest references (buildProject's own).
  const built = await buildProject(dir, { typeCheck: true });
  return [
    { package_id: built.manifest.package_id, typeChecked: built.typeChecked, sources: built.sources.length },
    (shown) =>
      `OK ${shown.package_id}: ${shown.typeChecked ? 'type-checked' : 'not type-checked (no tsconfig.json)'}, ${shown.sources} source file(s) checked against manifest.json`,
  ];
}

async function keygen(_rest: string[], values: Values): Promise<Outcome> {
  const dir = path.resolve(values.out!);
  const keyPath = path.join(dir, 'key.pem');
  if (
    await fs.stat(keyPath).then(
      () => true,
      () => false,
    )
  )
    throw fail('E_CONFLICT', `${keyPath} exists; keygen never overwrites a key`);
  const commonName = values.name ?? 'isogate app publisher';
  const pair = generateKeyPair();
  await makeDirectories(dir, 'The --out directory');
  await writeFileDurable(keyPath, pair.keyPem, { mode: 0o600 });
  if (values['self-signed']) {
    const certPath = path.join(dir, 'cert.pem');
    await writeFileDurable(
      certPath,
      createCertificate({ subject: { commonName }, publicKeyPem: pair.publicKeyPem, signingKeyPem: pair.keyPem, usage: 'code-signing', days: 365 }),
    );
    return [
      { key: keyPath, cert: certPath },
      (shown) => `key  ${shown.key} (keep it secret)\ncert ${shown.cert} (self-signed: for local use; a gateway trusts only its store's CA)`,
    ];
  }
  const csrPath = path.join(dir, 'csr.pem');
  await writeFileDurable(csrPath, createCsr(pair.keyPem, { commonName }));
  return [
    { key: keyPath, csr: csrPath },
    (shown) => `key ${shown.key} (keep it secret)\ncsr ${shown.csr}: send it to your store operator for a code-signing certificate`,
  ];
}

async function sign(rest: string[], values: Values): Promise<Outcome> {
  const input = path.resolve(rest[0]!);
  const keyPem = await readText(values.key!, 'key');
  const certPem = await readText(values.cert!, 'certificate');
  const chainPem = values.chain ? parseCertificates(await readText(values.chain, 'chain')) : [];
  if (!keyMatchesCertificate(keyPem, certPem)) throw fail('E_CERT_KEY_MISMATCH', `The key ${values.key} does not belong to the certificate ${values.cert}`);
  const signed = await signPackage(await readBytes(input), { keyPem, certPem, chainPem });
  const output = path.resolve(values.output ?? input);
  await writeFileDurable(output, signed);
  const info = await readPackage(signed, { trust: { inspectOnly: true } });
  return [
    { package: output, signer: info.signer?.subject, sha256: info.packageSha256, size: info.packageBytes },
    (shown) => `Signed ${shown.package}\n  signer ${shown.signer}\n  sha256 ${shown.sha256}`,
  ];
}

async function verify(rest: string[], values: Values): Promise<Outcome> {
  const roots = parseCertificates(await readText(values.trust!, 'trust root'));
  const info = await readPackage(await readBytes(rest[0]!), { trust: { trustRootsPem: roots } });
  return [
    {
      ok: true,
      package_id: info.manifest.package_id,
      version: info.manifest.version,
      signer: info.signer?.subject,
      issuer: info.signer?.issuer,
      validTo: info.signer?.validTo,
      files: info.files.length,
    },
    (shown) => `OK ${shown.package_id} ${shown.version}: signed by ${shown.signer} (issuer ${shown.issuer}), ${shown.files} files, every digest matches`,
  ];
}

async function inspect(rest: string[]): Promise<Outcome> {
  const info = await readPackage(await readBytes(rest[0]!), { trust: { inspectOnly: true } });
  const signer = info.signer && {
    subject: info.signer.subject,
    issuer: info.signer.issuer,
    validFrom: info.signer.validFrom,
    validTo: info.signer.validTo,
    fingerprint256: info.signer.fingerprint256,
    chainLength: info.signer.chain.length,
  };
  const files = info.files.map((file) => ({ ...file, sha256: info.digests[file.path] }));
  const machine = { ...info.manifest, files, signer, packageSha256: info.packageSha256, packageBytes: info.packageBytes };
  const human = ({ files, signer, packageBytes, packageSha256, ...m }: typeof machine): string =>
    [
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

/** A command of this CLI: its outcome printed as JSON with --json, else as its sentence. */
function command(run: (rest: string[], values: Values) => Promise<Outcome>): (parsed: ParsedCommand) => Promise<void> {
  return async (parsed) => {
    const [machine, human] = await run(parsed.positionals, parsed.values as Values);
    if (parsed.json) printJson(machine);
    else process.stdout.write(`${human(escapeControlsDeep(machine))}\n`);
  };
}

/** What the local harness brings: named, so that trying one says so instead of "unknown". */
const GATEWAY_OPTIONS = {
  gateway: { type: 'string', value: 'URL', summary: "the debug service's URL (default: $ISOGATE_GATEWAY)" },
  token: { type: 'string', value: 'TOKEN', summary: 'your developer token (default: $ISOGATE_TOKEN)' },
} as const satisfies OptionSpecs;
const APP_ID = { type: 'string', value: 'ID', summary: "the app's package id (default: the one in ./manifest.json)" } as const;

async function pushCommand(rest: string[], values: Values): Promise<Outcome> {
  const target = developer.developerTarget(values);
  const { bytes } = await developer.packageToPush(rest[0]);
  const result = await developer.push(target, bytes);
  return [
    result,
    (shown) =>
      [
        `${shown.updated ? `Updated ${shown.name} from ${shown.previous_version} to` : `Installed ${shown.name}`} ${shown.version} (unsigned, yours): ${shown.status}`,
        ...(shown.start_error ? [`  it did not start: ${shown.start_error.code}: ${shown.start_error.message}`] : []),
        ...((shown.reset_keys as string[]).length ? [`  configuration keys reset to their defaults: ${(shown.reset_keys as string[]).join(', ')}`] : []),
        ...(shown.routes_in_error as { id: string; problem: string }[]).map((route) => `  route ${route.id} kept, in Error: ${route.problem}`),
      ].join('\n'),
  ];
}

async function debugCommand(_rest: string[], values: Values): Promise<Outcome> {
  const target = developer.developerTarget(values);
  const result = await developer.debug(target, await developer.appId(values.id));
  return [
    result,
    (shown) =>
      [
        `${shown.package_id} restarted with its inspector on. Open in Chrome:`,
        `  ${shown.devtoolsUrl}`,
        `(a CDP client: ${shown.webSocketUrl}; one session at a time; closing it resumes the app)`,
      ].join('\n'),
  ];
}

async function logsCommand(parsed: ParsedCommand): Promise<void> {
  const values = parsed.values as Values;
  const tail = values.tail === undefined ? undefined : Number(values.tail);
  if (tail !== undefined && (!/^\d{1,5}$/.test(String(values.tail)) || tail > 10_000)) throw fail('E_USAGE', '--tail is a number of lines from 0 to 10000');
  await developer.logs(developer.developerTarget(values), await developer.appId(values.id), {
    follow: values.follow === true,
    ...(tail === undefined ? { tail: values.follow ? 10 : undefined } : { tail }),
    json: parsed.json,
  } as { follow: boolean; tail?: number; json: boolean });
}

const PKG_OUT = { type: 'string', short: 'o', value: 'PKG', summary: 'where to write the package' } as const;

export const SDK_CLI: CliSpec = {
  name: 'isogate-sdk',
  title: `isogate-sdk ${SDK_VERSION} — make, test, run, build, sign and push isogate apps`,
  common: OPTIONS,
  commands: [
    {
      name: 'init',
      summary: 'Create a new app project (manifest.json, src/main.ts, types) in a new or empty directory.',
      args: ['DIR'],
      options: {
        id: { type: 'string', value: 'ID', summary: 'its reverse-DNS package id (default: com.example.<name>)' },
        name: { type: 'string', value: 'NAME', summary: "its name (default: the directory's name)" },
      },
      run: command(init),
    },
    {
      name: 'build',
      summary:
        'Type-check a project, check its code against its manifest and bundle it (esbuild, with a source map) into an unsigned package, dist/<id>-<version>.igp by default.',
      args: ['[DIR]'],
      options: {
        src: { type: 'string', value: 'FILE', summary: 'the entry source file (default: src/main.ts)' },
        output: { ...PKG_OUT, summary: 'where to write the package (default: DIR/dist/<id>-<version>.igp)' },
        minify: { type: 'boolean', summary: 'minify the bundle' },
      },
      run: command(build),
    },
    {
      name: 'keygen',
      summary: 'Make a publisher key and a certificate signing request for your store (or a self-signed certificate).',
      options: {
        out: { type: 'string', value: 'DIR', summary: 'the directory to write key.pem and csr.pem (or cert.pem) to', required: true },
        name: { type: 'string', value: 'CN', summary: "the certificate's common name" },
        'self-signed': { type: 'boolean', summary: 'a self-signed certificate for local use instead of a request' },
      },
      run: command(keygen),
    },
    {
      name: 'sign',
      summary: 'Sign a package with a publisher key and certificate.',
      args: ['PKG'],
      options: {
        key: { type: 'string', value: 'KEY', summary: "the publisher's private key (PEM)", required: true },
        cert: { type: 'string', value: 'CERT', summary: "the publisher's certificate (PEM)", required: true },
        chain: { type: 'string', value: 'PEM', summary: 'the intermediate certificates up to the root (PEM)' },
        output: { ...PKG_OUT, summary: 'where to write the signed package (default: over PKG)' },
      },
      run: command(sign),
    },
    {
      name: 'verify',
      summary: "Verify a package as a gateway does: its signature chain to ROOT and every file's digest.",
      args: ['PKG'],
      options: {
        trust: { type: 'string', value: 'ROOT', summary: "the root CA certificate (PEM) the signer must chain to: the store's root", required: true },
      },
      run: command(verify),
    },
    {
      name: 'inspect',
      summary: "Show a package's manifest, signer and files without checking them against a root.",
      args: ['PKG'],
      run: command((rest) => inspect(rest)),
    },
    {
      name: 'push',
      summary: "Install or update an app on a gateway in developer mode through its debug service, unsigned, keeping the app's storage and configuration.",
      args: ['[PKG|DIR]'],
      details: 'PKG is a built package; DIR (default: .) is a project, built first.',
      options: GATEWAY_OPTIONS,
      run: command(pushCommand),
    },
    {
      name: 'logs',
      summary: 'Print the log of an app you pushed (-f: then each new line, until Ctrl-C).',
      options: {
        ...GATEWAY_OPTIONS,
        id: APP_ID,
        follow: { type: 'boolean', short: 'f', summary: 'keep printing lines as they are written' },
        tail: { type: 'string', value: 'N', summary: 'the last N lines first (default with -f: 10)' },
      },
      run: logsCommand,
    },
    {
      name: 'debug',
      summary: 'Restart an app you pushed with its inspector on and print the DevTools URL that attaches to it.',
      options: { ...GATEWAY_OPTIONS, id: APP_ID },
      run: command(debugCommand),
    },
    {
      name: 'check',
      summary:
        'Type-check a project with its tsconfig.json and check the endpoints and egress targets its code names against its manifest, without packing it.',
      args: ['[DIR]'],
      run: command(check),
    },
    {
      name: 'test',
      summary:
        "Run the project's tests (test/**/*.test.ts, node:test's describe/it) against the local harness, the app in a real isolate with the gateway's limits.",
      args: ['[FILE...]'],
      details:
        'Tests import { startApp } from "@isogate/sdk/harness": feed messages to endpoints, assert emits, storage, configuration and egress calls served by fixtures.',
      run: async (parsed) => {
        const code = await runTests('.', { files: parsed.positionals });
        if (code !== 0) throw fail('E_TESTS_FAILED', 'Some tests failed (above)');
      },
    },
    {
      name: 'run',
      summary:
        'Run the app on this machine in the harness, restarted on every save, its log and emits in the terminal; messages from a fixture file and stdin (ENDPOINT JSON per line).',
      args: ['[DIR]'],
      options: {
        messages: { type: 'string', value: 'FILE', summary: 'fed after each start: one message a line, ENDPOINT JSON or {"endpoint", "message"}' },
        config: { type: 'string', value: 'FILE', summary: 'configuration keys (JSON) over the manifest defaults' },
      },
      run: async (parsed) => {
        const values = parsed.values as { messages?: string; config?: string };
        return runCommand(parsed.positionals[0] ?? '.', {
          ...(values.messages ? { messages: values.messages } : {}),
          ...(values.config ? { config: values.config } : {}),
        });
      },
    },
  ],
};

export async function main(argv: string[]): Promise<number> {
  return runCli(SDK_CLI, argv);
}
