/**
 * Integrity control, self-testing and backup as an admin meets them on a real gateway and its
 * CLI: a file of an installed app changed while the gateway was down is found by the automatic
 * check at start (the manual's Critical event, emergency support mode, the app not started);
 * `isogate integrity check --report` saves the manual's report naming it; `isogate self-test`
 * reports each test; a backup made with `isogate backup create` restores with
 * `isogate backup restore`, which leaves emergency support mode; a wrong passphrase is refused
 * with its code and changes nothing.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { invokeOperation } from '../../platform/api/operations.js';
import { type Gateway, startGateway } from '../../platform/main.js';
import { buildPackage, signPackage } from '../../sdk/package/index.js';
import { type ServingStore, serveStore } from '../../store-mock/server.js';
import { sampleManifest } from '../fixtures/packages.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

const ID = 'com.example.checked';
const NO_PROGRESS = { progress: () => undefined };

function isogate(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.resolve('bin/isogate.mjs'), ...args], { timeout: 60_000, env: { ...process.env, ...env } }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('integrity control, self-testing and backup on a gateway', function () {
  this.timeout(180_000);
  let dir: string;
  let serving: ServingStore;
  let gateway: Gateway | undefined;

  before(async () => {
    dir = await makeTempDir();
    serving = await serveStore({ dir: path.join(dir, 'store') });
  });
  after(async () => {
    await gateway?.close();
    await serving.close();
    await removeDir(dir);
  });

  it('enters emergency support mode on a changed app file at start, reports it, self-tests, and a restore leaves the mode', async () => {
    const publisher = path.join(dir, 'publisher');
    await serving.store.issuePublisher('Example Ltd', publisher);
    const signer = {
      keyPem: await fs.readFile(path.join(publisher, 'publisher.key.pem'), 'utf8'),
      certPem: await fs.readFile(path.join(publisher, 'publisher.cert.pem'), 'utf8'),
    };
    const manifest = sampleManifest({ package_id: ID, name: 'Checked' });
    await serving.store.publish(await signPackage(await buildPackage(manifest, new Map([['app/main.js', Buffer.from('1;\n')]])), signer));
    const trust = path.join(dir, 'store-root.pem');
    await fs.writeFile(trust, serving.store.rootCertPem);
    const data = path.join(dir, 'data');
    const start = () => startGateway({ dataDir: data, storeUrl: serving.url, trustRootFile: trust });

    gateway = await start();
    await invokeOperation(gateway.services, 'apps.install', { id: ID }, NO_PROGRESS);
    assert.equal(gateway.services.status().emergency, null);
    const passphraseFile = path.join(dir, 'passphrase.txt');
    await fs.writeFile(passphraseFile, 'a long backup passphrase\n', { mode: 0o600 });
    const backupFile = path.join(dir, 'config.igb');
    const made = await isogate(['backup', 'create', '-o', backupFile, '--passphrase-file', passphraseFile, '--data', data]);
    assert.equal(made.code, 0, made.stderr);
    assert.match(made.stdout, /^Saved .*config\.igb/);
    await gateway.close();
    gateway = undefined;

    await fs.appendFile(path.join(data, 'apps', ID, 'package', 'app', 'main.js'), 'stealData();\n');
    gateway = await start();
    const status = gateway.services.status();
    assert.equal(status.emergency?.cause, 'integrity');
    assert.match(status.emergency!.reason, /com\.example\.checked .*File content changed against reference!/);
    const audit = (await fs.readFile(path.join(data, 'audit', 'system.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    const violation = audit.find((entry) => entry.event === 'integrityViolation');
    assert.equal(violation?.severity, 'Critical');
    assert.match(violation.text, /^The app com\.example\.checked integrity violated: /);
    assert.ok(audit.some((entry) => entry.event === 'emergencyMode'));

    const reportFile = path.join(dir, 'report.txt');
    const checked = await isogate(['integrity', 'check', '--report', reportFile, '--data', data]);
    assert.equal(checked.code, 0, checked.stderr);
    assert.match(checked.stdout, /^Integrity check found violations: /);
    const report = await fs.readFile(reportFile, 'utf8');
    assert.match(report, /^Host ID: [0-9a-f]{16}\n/);
    assert.match(
      report,
      new RegExp(
        `^apps/${ID.replace(/\./g, '\\.')}/package/app/main\\.js\\|[^|]+\\|SHA-256\\|[0-9a-f]{64}\\|[0-9a-f]{64}\\|File content changed against reference!$`,
        'm',
      ),
    );

    const tested = await isogate(['self-test', '--json', '--data', data]);
    assert.equal(tested.code, 0, tested.stderr);
    const results = JSON.parse(tested.stdout) as { tests: { name: string; ok: boolean }[] };
    assert.deepEqual(
      results.tests.map((test) => test.name),
      ['audit', 'authentication', 'traffic-blocking', 'network-protector'],
    );

    const wrongFile = path.join(dir, 'wrong.txt');
    await fs.writeFile(wrongFile, 'not the passphrase at all\n', { mode: 0o600 });
    const refused = await isogate(['backup', 'restore', backupFile, '--passphrase-file', wrongFile, '--data', data]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /E_BACKUP_PASSPHRASE/);
    assert.equal(gateway.services.status().emergency?.cause, 'integrity', 'a refused restore changes nothing');

    const restored = await isogate(['backup', 'restore', backupFile, '--json', '--data', data], { ISOGATE_BACKUP_PASSPHRASE: 'a long backup passphrase' });
    assert.equal(restored.code, 0, restored.stderr);
    assert.equal(JSON.parse(restored.stdout).leftEmergency, true);
    assert.equal(gateway.services.status().emergency, null, 'the manual: a restore leaves emergency support mode');
  });
});
