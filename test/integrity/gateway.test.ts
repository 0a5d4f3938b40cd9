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
import { sampleManifest } from '../fixtures/packages.js';
import { useStoreGateway } from '../fixtures/store-gateway.js';

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
  const rig = useStoreGateway();

  it('enters emergency support mode on a changed app file at start, reports it, self-tests, and a restore leaves the mode', async () => {
    const { dir, data } = rig;
    await rig.publish(sampleManifest({ package_id: ID, name: 'Checked' }), await rig.issuePublisher('Example Ltd', 'publisher'));

    let gateway = await rig.start();
    await invokeOperation(gateway.services, 'apps.install', { id: ID }, NO_PROGRESS);
    assert.equal(gateway.services.status().emergency, null);
    const passphraseFile = path.join(dir, 'passphrase.txt');
    await fs.writeFile(passphraseFile, 'a long backup passphrase\n', { mode: 0o600 });
    const backupFile = path.join(dir, 'config.igb');
    const made = await isogate(['backup', 'create', '-o', backupFile, '--passphrase-file', passphraseFile, '--data', data]);
    assert.equal(made.code, 0, made.stderr);
    assert.match(made.stdout, /^Saved .*config\.igb/);
    await gateway.close();

    await fs.appendFile(path.join(data, 'apps', ID, 'package', 'app', 'main.js'), 'stealData();\n');
    gateway = await rig.start();
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
