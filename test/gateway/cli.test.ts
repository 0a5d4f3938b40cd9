/**
 * The gateway as its users meet it: `isogate start` in a child process with the embedded store,
 * and the `isogate` CLI talking to it through the control socket.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { createCertificate, generateKeyPair } from '../../sdk/pki.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { waitForAsync } from '../fixtures/wait.js';

const ISOGATE = path.resolve('bin/isogate.mjs');
const TELEMETRY = 'dev.isogate.samples.telemetry';

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

function isogate(args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [ISOGATE, ...args], { timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

async function json(args: string[]): Promise<any> {
  const result = await isogate([...args, '--json']);
  assert.equal(result.code, 0, `isogate ${args.join(' ')} failed: ${result.stderr}${result.stdout}`);
  return JSON.parse(result.stdout);
}

describe('isogate start and the CLI', function () {
  this.timeout(120_000);
  let dir: string;
  let gateway: ChildProcess;
  let startInfo: any;

  before(async () => {
    dir = await makeTempDir();
    gateway = spawn(process.execPath, [ISOGATE, 'start', '--data', dir, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    gateway.stderr!.on('data', (chunk) => {
      output += chunk;
    });
    const lines = readline.createInterface({ input: gateway.stdout! });
    startInfo = await new Promise((resolve, reject) => {
      lines.on('line', (line) => {
        output += `${line}\n`;
        if (line.startsWith('{"dataDir"')) resolve(JSON.parse(line));
      });
      gateway.once('exit', (code) => reject(new Error(`isogate start exited with ${code}: ${output}`)));
    });
  });

  after(async () => {
    if (gateway.exitCode === null) {
      const exited = new Promise((resolve) => gateway.once('exit', resolve));
      gateway.kill('SIGINT');
      await exited;
    }
    await removeDir(dir);
    await removeDir(`${dir}-store`); // the embedded store's own directory, beside the data directory
  });

  it('prints where its socket, store and demo credentials are, with nothing installed', async () => {
    assert.equal(startInfo.dataDir, dir);
    assert.equal(startInfo.controlSocket, path.join(dir, 'control.sock'));
    assert.match(startInfo.store, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(startInfo.storeDir, `${dir}-store`, 'the embedded store keeps its keys outside the data directory');
    assert.match(await fs.readFile(startInfo.demo.rootCertFile, 'utf8'), /BEGIN CERTIFICATE/);
    // The root `isogate-sdk verify --trust` needs for the store's packages is the store's, in its own directory.
    assert.equal(startInfo.storeRootCert, path.join(`${dir}-store`, 'ca', 'root.cert.pem'));
    const storeRoot = new X509Certificate(await fs.readFile(startInfo.storeRootCert));
    assert.ok(storeRoot.ca && storeRoot.subject.includes('CN=isogate store-mock root CA'), storeRoot.subject);
    assert.equal((await fs.stat(startInfo.demo.adminKeyFile)).mode & 0o077, 0, 'the admin key is private to its owner');
    assert.deepEqual(await json(['apps', 'list', '--data', dir]), []);
  });

  it('lists the sample apps the embedded store publishes', async () => {
    const available = await json(['apps', 'available', '--data', dir]);
    const ids = available.map((app: any) => app.package_id);
    for (const id of [TELEMETRY, 'dev.isogate.samples.threshold', 'dev.isogate.samples.uplink']) assert.ok(ids.includes(id), `${id} is listed`);
    const telemetry = available.find((app: any) => app.package_id === TELEMETRY);
    assert.equal(telemetry.status, 'available');
    assert.ok(telemetry.size > 0);
  });

  it('installs an app from the store, lists it with its signer, and uninstalls it', async () => {
    const installed = await json(['apps', 'install', TELEMETRY, '--data', dir]);
    assert.equal(installed.package_id, TELEMETRY);
    const list = await json(['apps', 'list', '--data', dir]);
    assert.equal(list.length, 1);
    assert.equal(list[0].package_id, TELEMETRY);
    assert.equal(list[0].signature, 'verified');
    assert.equal(list[0].manifest.package_id, TELEMETRY);
    // ISSUER is the verified signer; the manifest's free text is only a labelled claim.
    assert.equal(list[0].publisher, 'CN=isogate samples, O=isogate samples');
    assert.equal(list[0].publisher_claim, 'isogate samples');
    assert.equal(list[0].origin, 'store');
    assert.match(list[0].signer.spkiSha256, /^[0-9a-f]{64}$/);
    const table = await isogate(['apps', 'list', '--data', dir]);
    assert.match(table.stdout, /^ID\s+NAME\s+ISSUER\s/m);
    assert.match(table.stdout, new RegExp(`^${TELEMETRY.replace(/\./g, '\\.')}\\s+\\S+\\s+CN=isogate samples, O=isogate samples\\s`, 'm'));
    const early = await isogate(['apps', 'forget', TELEMETRY, '--data', dir]);
    assert.equal(early.code, 1);
    assert.match(early.stderr, /^E_CONFLICT: .*uninstall it/m);
    assert.ok(await fs.stat(path.join(dir, 'apps', TELEMETRY, 'package', 'manifest.json')));

    const again = await isogate(['apps', 'install', TELEMETRY, '--data', dir]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^E_ALREADY_INSTALLED: /m);

    await json(['apps', 'uninstall', TELEMETRY, '--data', dir]);
    assert.deepEqual(await json(['apps', 'list', '--data', dir]), []);
    await assert.rejects(fs.stat(path.join(dir, 'apps', TELEMETRY)), { code: 'ENOENT' });
    const forgotten = await isogate(['apps', 'forget', TELEMETRY, '--data', dir]);
    assert.equal(forgotten.code, 0, forgotten.stderr);
    assert.match(forgotten.stdout, /Forgot the signer of dev\.isogate\.samples\.telemetry \(CN=isogate samples, O=isogate samples\)/);
    const again2 = await isogate(['apps', 'forget', TELEMETRY, '--data', dir]);
    assert.match(again2.stderr, /^E_NOT_FOUND: /m);
    const audit = await json(['audit', '--data', dir]);
    const names = audit.map((record: any) => record.name);
    assert.ok(names.includes('Orchestrator: Successful application installation'));
    assert.ok(names.includes('Orchestrator: Successful application uninstallation'));
    assert.ok(names.includes('admin: Forgetting the application publisher'));
  });

  it('answers an unknown app with E_NOT_FOUND and changes nothing', async () => {
    const result = await isogate(['apps', 'install', 'com.example.nothing', '--data', dir]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^E_NOT_FOUND: /m);
    assert.deepEqual(await json(['apps', 'list', '--data', dir]), []);
  });

  it('exits 2 with E_USAGE on bad usage, and 1 with E_UNAVAILABLE when no gateway runs', async () => {
    const usage = await isogate(['apps', 'install', '--data', dir]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /^E_USAGE: /m);
    const unknownFlag = await isogate(['apps', 'list', '--bogus']);
    assert.equal(unknownFlag.code, 2);
    const elsewhere = await makeTempDir();
    try {
      const result = await isogate(['apps', 'list', '--data', elsewhere, '--json']);
      assert.equal(result.code, 1);
      assert.equal(JSON.parse(result.stdout).error.code, 'E_UNAVAILABLE');
    } finally {
      await removeDir(elsewhere);
    }
  });

  it('runs the sample pipeline: installs, wires, starts, and data flows through both routes', async () => {
    const THRESHOLD = 'dev.isogate.samples.threshold';
    const UPLINK = 'dev.isogate.samples.uplink';
    for (const id of [TELEMETRY, THRESHOLD, UPLINK]) await json(['apps', 'install', id, '--data', dir]);
    const settings = path.join(dir, 'telemetry.json');
    await fs.writeFile(settings, JSON.stringify({ intervalMs: 50, sensors: ['temperature'] }));
    await json(['apps', 'config', TELEMETRY, '--set', settings, '--data', dir]);
    // One key changes, the others keep what was set; null returns a key to its default.
    await json(['apps', 'config', TELEMETRY, 'intervalMs', '60', '--data', dir]);
    assert.deepEqual(await json(['apps', 'config', TELEMETRY, '--data', dir]), { intervalMs: 60, sensors: ['temperature'] });
    const refused = await isogate(['apps', 'config', TELEMETRY, 'intervalMs', '10', '--data', dir, '--json']);
    assert.equal(JSON.parse(refused.stdout).error.code, 'E_CONFIG');
    assert.deepEqual(await json(['apps', 'config', TELEMETRY, '--data', dir]), { intervalMs: 60, sensors: ['temperature'] });
    const patch = path.join(dir, 'patch.json');
    await fs.writeFile(patch, JSON.stringify({ intervalMs: 50, sensors: null }));
    await json(['apps', 'config', TELEMETRY, '--merge', patch, '--data', dir]);
    assert.deepEqual(await json(['apps', 'config', TELEMETRY, '--data', dir]), { intervalMs: 50, sensors: ['temperature', 'pressure', 'vibration'] });
    await json(['apps', 'config', TELEMETRY, '--set', settings, '--data', dir]);
    const limits = path.join(dir, 'limits.json');
    await fs.writeFile(limits, JSON.stringify({ limits: { temperature: { warning: -1000, critical: 1000 } } }));
    await json(['apps', 'config', THRESHOLD, '--set', limits, '--data', dir]);
    const wrong = await isogate(['routes', 'add', `${TELEMETRY}:readings`, `${UPLINK}:alerts`, '--data', dir, '--json']);
    assert.equal(JSON.parse(wrong.stdout).error.code, 'E_ROUTE');
    await json(['routes', 'add', `${TELEMETRY}:readings`, `${THRESHOLD}:readings`, '--data', dir]);
    // By name, as `routes list` shows them, where the name is unambiguous.
    const byName = await json(['routes', 'add', 'threshold-filter:alerts', `${UPLINK}:alerts`, '--data', dir]);
    assert.equal(byName.source.application_id, THRESHOLD);
    assert.equal(byName.overflow, 'block', 'a route is lossless unless told otherwise');
    // What a full route does: refused out of range with its code, changing nothing; then set.
    for (const bad of [
      ['--overflow', 'drop-everything'],
      ['--queue-bytes', '10'],
    ]) {
      const refused = await isogate(['routes', 'set', byName.id, ...bad, '--data', dir, '--json']);
      assert.equal(JSON.parse(refused.stdout).error.code, 'E_BAD_REQUEST', refused.stdout);
    }
    const unchanged = (await json(['routes', 'list', '--data', dir])).find((route: any) => route.id === byName.id);
    assert.deepEqual([unchanged.overflow, unchanged.queue_bytes], ['block', 4 * 1024 * 1024]);
    const dropping = await json(['routes', 'set', byName.id, '--overflow', 'drop-oldest', '--queue-bytes', '1048576', '--data', dir]);
    assert.deepEqual([dropping.overflow, dropping.queue_bytes], ['drop-oldest', 1048576]);
    for (const id of [UPLINK, THRESHOLD, TELEMETRY]) assert.equal((await json(['apps', 'start', id, '--data', dir])).status, 'running');

    let routes: any[] = [];
    await waitForAsync(async () => {
      routes = await json(['routes', 'list', '--data', dir]);
      return routes.every((route) => route.counters.delivered > 0);
    });
    assert.ok(
      routes.every((route) => route.status === 'Active' && route.counters.delivered > 0),
      JSON.stringify(routes),
    );

    // Live logs of a running app: the last line, then the ones written after the follow started.
    const lastOne = await isogate(['apps', 'logs', TELEMETRY, '--tail', '1', '--data', dir]);
    assert.equal(lastOne.code, 0, lastOne.stderr);
    assert.equal(lastOne.stdout.trimEnd().split('\n').length, 1, lastOne.stdout);
    const follow = spawn(process.execPath, [ISOGATE, 'apps', 'logs', TELEMETRY, '-f', '--tail', '1', '--level', '3', '--data', dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let followed = '';
    follow.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      followed += chunk;
    });
    const followEnded = new Promise((resolve) => follow.once('exit', resolve));
    await waitForAsync(async () => followed.includes('\n') || follow.exitCode !== null);
    assert.equal(followed, lastOne.stdout);
    await json(['apps', 'stop', TELEMETRY, '--data', dir]);
    await json(['apps', 'start', TELEMETRY, '--data', dir]);
    await waitForAsync(async () => /INFO +\[app\] emitting temperature every 50 ms\n/.test(followed.slice(lastOne.stdout.length)) || follow.exitCode !== null);
    assert.equal(follow.exitCode, null);
    follow.kill('SIGINT');
    await followEnded;
    assert.doesNotMatch(followed, /DEBUG|TRACE/);

    const disabled = await isogate(['routes', 'disable', byName.id, '--data', dir]);
    assert.equal(disabled.stdout.trim(), `Route ${byName.id}: Inactive`);
    assert.deepEqual((await json(['status', '--data', dir])).routes, { active: 1, inactive: 1, error: 0 });
    const table = (await isogate(['routes', 'list', '--data', dir])).stdout;
    assert.match(table, /QUEUED/);
    assert.match(table, new RegExp(`threshold-filter \\(${THRESHOLD.replaceAll('.', '\\.')}\\)`));
    await json(['routes', 'enable', byName.id, '--data', dir]);

    const listed = await json(['apps', 'list', '--data', dir]);
    assert.deepEqual(
      listed.map((app: any) => app.status),
      ['running', 'running', 'running'],
    );
    await json(['apps', 'stop', TELEMETRY, '--data', dir]);
    const archive = path.join(dir, 'telemetry-logs.tar.gz');
    const saved = await json(['apps', 'logs', TELEMETRY, '-o', archive, '--data', dir]);
    assert.equal(saved.fileName, `log_files_${TELEMETRY}.tar.gz`);
    assert.ok((await fs.stat(archive)).size > 0);

    await json(['apps', 'uninstall', THRESHOLD, '--data', dir]);
    const after = await json(['routes', 'list', '--data', dir]);
    assert.deepEqual(
      after.map((route: any) => route.status),
      ['Error', 'Error'],
    );
    await assert.rejects(fs.stat(path.join(dir, 'storage', THRESHOLD)), { code: 'ENOENT' });
  });

  it("manages an app's certificates: uploads show their details, a mismatched key changes nothing, deletion, audit", async () => {
    const THRESHOLD = 'dev.isogate.samples.threshold';
    await json(['apps', 'install', THRESHOLD, '--data', dir]);
    try {
      const caKeys = generateKeyPair();
      const ca = {
        certPem: createCertificate({ subject: { commonName: 'Plant cloud CA' }, publicKeyPem: caKeys.publicKeyPem, signingKeyPem: caKeys.keyPem, usage: 'ca' }),
        keyPem: caKeys.keyPem,
      };
      const clientKeys = generateKeyPair();
      const clientPem = createCertificate({ subject: { commonName: 'gateway-7' }, publicKeyPem: clientKeys.publicKeyPem, issuer: ca, usage: 'client' });
      const caFile = path.join(dir, 'cloud-ca.pem');
      const certFile = path.join(dir, 'gateway-7.cer');
      const keyFile = path.join(dir, 'gateway-7.key');
      const strangerFile = path.join(dir, 'stranger.key');
      await fs.writeFile(caFile, ca.certPem);
      await fs.writeFile(certFile, new X509Certificate(clientPem).raw);
      await fs.writeFile(keyFile, clientKeys.keyPem);
      await fs.writeFile(strangerFile, generateKeyPair().keyPem);

      // A CA about to expire is accepted with a warning, then replaced.
      const expiringKeys = generateKeyPair();
      const expiringFile = path.join(dir, 'expiring-ca.pem');
      await fs.writeFile(
        expiringFile,
        createCertificate({
          subject: { commonName: 'Old plant CA' },
          publicKeyPem: expiringKeys.publicKeyPem,
          signingKeyPem: expiringKeys.keyPem,
          usage: 'ca',
          notAfter: new Date(Date.now() + 10.5 * 86_400_000),
        }),
      );
      const expiring = await isogate(['certs', 'set-ca', THRESHOLD, expiringFile, '--data', dir]);
      assert.match(expiring.stdout, /Old plant CA.*\(expires in 10 days\)/);
      const warned = await isogate(['certs', 'list', THRESHOLD, '--data', dir]);
      assert.match(warned.stdout, /^ca\s+expiring-ca\.pem\s.*\s10\s+expires in 10 days$/m);
      assert.equal((await json(['certs', 'set-ca', THRESHOLD, caFile, '--data', dir])).subject, 'CN=Plant cloud CA');
      const client = await json(['certs', 'set-client', THRESHOLD, certFile, keyFile, '--data', dir]);
      assert.deepEqual([client.subject, client.issuer], ['CN=gateway-7', 'CN=Plant cloud CA']);
      const listed = await json(['certs', 'list', THRESHOLD, '--data', dir]);
      assert.deepEqual(
        listed.map((c: any) => [c.kind, c.fileName, c.subject, c.issuer]),
        [
          ['ca', 'cloud-ca.pem', 'CN=Plant cloud CA', 'CN=Plant cloud CA'],
          ['client', 'gateway-7.cer', 'CN=gateway-7', 'CN=Plant cloud CA'],
        ],
      );
      assert.ok(listed.every((c: any) => c.daysLeft > 30 && c.warning === undefined));
      assert.ok((await fs.readdir(path.join(dir, 'certs', THRESHOLD))).length > 0, 'kept (encrypted) under the data directory');
      const table = await isogate(['certs', 'list', THRESHOLD, '--data', dir]);
      assert.match(table.stdout, /VALID UNTIL/);
      assert.match(table.stdout, /gateway-7\.cer/);

      const mismatched = await isogate(['certs', 'set-client', THRESHOLD, certFile, strangerFile, '--data', dir]);
      assert.equal(mismatched.code, 1);
      assert.match(mismatched.stderr, /^E_CERT_KEY_MISMATCH: /m);
      const missing = await isogate(['certs', 'set-ca', THRESHOLD, path.join(dir, 'nowhere.pem'), '--data', dir]);
      assert.match(missing.stderr, /^E_CERT_FILE: /m);
      const badKind = await isogate(['certs', 'delete', THRESHOLD, 'server', '--data', dir]);
      assert.equal(badKind.code, 2);
      assert.deepEqual(await json(['certs', 'list', THRESHOLD, '--data', dir]), listed);

      await json(['certs', 'delete', THRESHOLD, 'client', '--data', dir]);
      assert.deepEqual(
        (await json(['certs', 'list', THRESHOLD, '--data', dir])).map((c: any) => c.kind),
        ['ca'],
      );
      const names = (await json(['audit', '--data', dir])).map((record: any) => record.name);
      assert.ok(names.includes('KscController: Uploading the application certificate'));
    } finally {
      await json(['apps', 'uninstall', THRESHOLD, '--data', dir]);
    }
    // The app's certificates go with it.
    await assert.rejects(fs.stat(path.join(dir, 'certs', THRESHOLD)), { code: 'ENOENT' });
  });
});
