/**
 * The gateway as its users meet it: `isogate start` in a child process with the embedded store,
 * and the `isogate` CLI talking to it through the control socket.
 */
import assert from 'node:assert/strict';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

const ISOGATE = path.resolve('bin/isogate.mjs');
const TELEMETRY = 'dev.isogate.samples.telemetry';

interface CliResult { code: number; stdout: string; stderr: string }

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
    gateway.stderr!.on('data', (chunk) => { output += chunk; });
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
  });

  it('prints where its socket, store and demo credentials are, with nothing installed', async () => {
    assert.equal(startInfo.dataDir, dir);
    assert.equal(startInfo.controlSocket, path.join(dir, 'control.sock'));
    assert.match(startInfo.store, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.match(await fs.readFile(startInfo.demo.rootCertFile, 'utf8'), /BEGIN CERTIFICATE/);
    assert.equal(((await fs.stat(startInfo.demo.adminKeyFile)).mode & 0o077), 0, 'the admin key is private to its owner');
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
    assert.ok(await fs.stat(path.join(dir, 'apps', TELEMETRY, 'package', 'manifest.json')));

    const again = await isogate(['apps', 'install', TELEMETRY, '--data', dir]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^E_ALREADY_INSTALLED: /m);

    await json(['apps', 'uninstall', TELEMETRY, '--data', dir]);
    assert.deepEqual(await json(['apps', 'list', '--data', dir]), []);
    await assert.rejects(fs.stat(path.join(dir, 'apps', TELEMETRY)), { code: 'ENOENT' });
    const audit = await json(['audit', '--data', dir]);
    const names = audit.map((record: any) => record.name);
    assert.ok(names.includes('Orchestrator: Successful application installation'));
    assert.ok(names.includes('Orchestrator: Successful application uninstallation'));
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
});
