/**
 * What a hostile store or publisher can put in front of an operator: a catalog entry whose name
 * clears the screen, recolours it, reorders text (bidi override) and carries a newline followed
 * by a forged audit line, shown through the real `isogate` commands of a gateway started
 * against that store; and a signer whose certificate subject does the same in `isogate-sdk
 * inspect`. Nothing may reach the terminal raw, and the audit file must keep one record a line.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { buildPackage, signPackage } from '../../sdk/package/index.js';
import { type ServingStore, serveStore } from '../../store-mock/server.js';
import { SAMPLE_FILES, sampleManifest } from '../fixtures/packages.js';
import { SDK_BIN } from '../fixtures/sdk-bin.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

const ISOGATE = path.resolve('bin/isogate.mjs');
const ISOGATE_SDK = SDK_BIN;
const APP_ID = 'com.example.hostile-name';
const FORGED = '2026-01-01T00:00:00.000Z  Informational  System: Orchestrator  Orchestrator: Successful application installation  forged line';
const HOSTILE_NAME = `Evil\u001b[2J\u001b[31m\n${FORGED}\u009b31m\u0085\u202egnp.exe`;

// Every character the gateway must never print raw; a newline is allowed only between lines it
// writes itself, so human output is checked line by line against this.
// eslint-disable-next-line no-control-regex
const RAW = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/;
// eslint-disable-next-line no-control-regex
const RAW_OR_NEWLINE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/;
/** Every line break some reader honours: a record split by any of them is a forged record. */
const ANY_LINE_BREAK = /\r\n|[\n\r\u000b\u000c\u001c-\u001e\u0085\u2028\u2029]/;

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(bin: string, args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

function assertNoRawControls(output: string, what: string): void {
  const match = RAW.exec(output);
  assert.equal(match, null, `${what} holds U+${match?.[0].charCodeAt(0).toString(16).padStart(4, '0')}: ${JSON.stringify(output)}`);
}

describe("hostile text from a store and a publisher on the operator's terminal", function () {
  this.timeout(120_000);
  let dir: string;
  let store: ServingStore;
  let gateway: ChildProcess;
  let data: string;

  before(async () => {
    dir = await makeTempDir();
    data = path.join(dir, 'gateway');
    store = await serveStore({ dir: path.join(dir, 'store'), port: 0 });
    const publisher = await store.store.issuePublisher('Example Ltd', path.join(dir, 'publisher'));
    const unsigned = await buildPackage(sampleManifest({ package_id: APP_ID }), new Map(Object.entries(SAMPLE_FILES).map(([k, v]) => [k, Buffer.from(v)])));
    await store.store.publish(
      await signPackage(unsigned, {
        keyPem: await fs.readFile(publisher.keyPath, 'utf8'),
        certPem: await fs.readFile(publisher.certPath, 'utf8'),
      }),
    );
    // The compromised store renames its listing; the signed package stays as it was.
    const catalog = JSON.parse(await fs.readFile(store.store.catalogFile, 'utf8')) as { package_id: string; name: string }[];
    for (const entry of catalog) if (entry.package_id === APP_ID) entry.name = HOSTILE_NAME;
    await fs.writeFile(store.store.catalogFile, JSON.stringify(catalog));

    gateway = spawn(
      process.execPath,
      [ISOGATE, 'start', '--data', data, '--store', store.url, '--trust', path.join(store.store.dir, 'ca', 'root.cert.pem'), '--json'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    gateway.stderr!.on('data', (chunk) => {
      output += chunk;
    });
    await new Promise<void>((resolve, reject) => {
      readline.createInterface({ input: gateway.stdout! }).on('line', (line) => {
        output += `${line}\n`;
        if (line.startsWith('{"dataDir"')) resolve();
      });
      gateway.once('exit', (code) => reject(new Error(`isogate start exited with ${code}: ${output}`)));
    });
  });

  after(async () => {
    if (gateway?.exitCode === null) {
      const exited = new Promise((resolve) => gateway.once('exit', resolve));
      gateway.kill('SIGINT');
      await exited;
    }
    await store?.close();
    await removeDir(dir);
  });

  const isogate = (args: string[]) => run(ISOGATE, [...args, '--data', data]);

  it('apps available shows the hostile name escaped, one table row, and --json keeps it exactly', async () => {
    const human = await isogate(['apps', 'available']);
    assert.equal(human.code, 0, human.stderr);
    assertNoRawControls(human.stdout, 'apps available');
    const lines = human.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 3, 'header, rule and one row');
    assert.ok(lines[2]!.includes('Evil\\x1b[2J\\x1b[31m\\n2026-01-01T00:00:00.000Z'), lines[2]);
    assert.ok(lines[2]!.includes('\\u{9b}31m\\u{85}\\u{202e}gnp.exe'), lines[2]);

    const json = await isogate(['apps', 'available', '--json']);
    assert.equal(json.code, 0, json.stderr);
    assert.equal(RAW_OR_NEWLINE.exec(json.stdout.replace(/\n/g, '')), null, 'JSON output escapes C1 and bidi controls too');
    assert.equal(JSON.parse(json.stdout)[0].name, HOSTILE_NAME, 'and still says exactly what the store said');
  });

  it('an install audits the hostile name escaped: one record a line in the file, no forged row in isogate audit', async () => {
    const auditFile = path.join(data, 'audit', 'system.jsonl');
    const recordsBefore = (await fs.readFile(auditFile, 'utf8')).split('\n').filter(Boolean).length;

    const install = await isogate(['apps', 'install', APP_ID]);
    assert.equal(install.code, 0, install.stderr);
    assertNoRawControls(install.stdout, 'apps install');
    assertNoRawControls(install.stderr, 'apps install progress');

    const text = await fs.readFile(auditFile, 'utf8');
    assert.equal(RAW_OR_NEWLINE.exec(text.replace(/\n/g, '')), null, 'the audit file holds no raw control');
    const lines = text.split(ANY_LINE_BREAK).filter(Boolean);
    // downloadStarted, downloadSucceeded, installSucceeded: three records, three lines.
    assert.equal(lines.length, recordsBefore + 3);
    const records = lines.map((line) => JSON.parse(line) as { event: string; text: string });
    assert.deepEqual(
      records.slice(-3).map((r) => r.event),
      ['downloadStarted', 'downloadSucceeded', 'installSucceeded'],
    );
    assert.ok(records.at(-1)!.text.startsWith('The application Evil\\x1b[2J\\x1b[31m\\n2026-01-01'), records.at(-1)!.text);

    const shown = await isogate(['audit', '--log', 'system', '--limit', '1000']);
    assert.equal(shown.code, 0, shown.stderr);
    assertNoRawControls(shown.stdout, 'isogate audit');
    assert.equal(shown.stdout.trimEnd().split('\n').length, lines.length + 2, 'header, rule and one row a record');
    assert.ok(!shown.stdout.split('\n').some((line) => line.startsWith('2026-01-01T00:00:00.000Z')), 'no row begins with the forged time');

    const json = await isogate(['audit', '--log', 'system', '--limit', '1000', '--json']);
    assert.equal(RAW_OR_NEWLINE.exec(json.stdout.replace(/\n/g, '')), null);
    assert.equal(JSON.parse(json.stdout).length, lines.length);
  });

  it('isogate-sdk inspect shows a signer subject carrying ESC, C1 and a bidi override escaped', async () => {
    // openssl writes the subject as UTF-8 as given; node-forge cannot encode a C1 or bidi character.
    const keyFile = path.join(dir, 'hostile-signer.key.pem');
    const certFile = path.join(dir, 'hostile-signer.cert.pem');
    await new Promise<void>((resolve, reject) =>
      execFile(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'rsa:2048',
          '-nodes',
          '-keyout',
          keyFile,
          '-out',
          certFile,
          '-days',
          '30',
          '-utf8',
          '-subj',
          '/CN=Acme\u001b]0;pwned\u0007\u009b2J\u202eCorp',
          '-addext',
          'keyUsage=critical,digitalSignature',
          '-addext',
          'extendedKeyUsage=codeSigning',
        ],
        (error) => (error ? reject(error) : resolve()),
      ),
    );
    const keyPem = await fs.readFile(keyFile, 'utf8');
    const certPem = await fs.readFile(certFile, 'utf8');
    const unsigned = await buildPackage(sampleManifest(), new Map(Object.entries(SAMPLE_FILES).map(([k, v]) => [k, Buffer.from(v)])));
    const file = path.join(dir, 'hostile-signer.igp');
    await fs.writeFile(file, await signPackage(unsigned, { keyPem, certPem }));
    const result = await run(ISOGATE_SDK, ['inspect', file]);
    assert.equal(result.code, 0, result.stderr);
    assertNoRawControls(result.stdout, 'isogate-sdk inspect');
    // Node's X509Certificate escapes C0 controls in a subject itself (as \1B) but leaves C1 and bidi raw.
    assert.match(result.stdout, /signer: .*Acme.*pwned.*\\u\{9b\}2J\\u\{202e\}Corp/);
  });
});
