/**
 * What the isogate CLI decides and shows itself, against a stand-in gateway on the control
 * socket that records every request: path mistakes of `apps logs -o` (issue 13, finding 5)
 * and why an app is in Error in `apps list` and `status` (finding 6).
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { main } from '../../platform/cli/main.js';
import { type FakeGateway, fakeGateway, runMain } from '../fixtures/cli.js';
import { makeTempDir, removeDir, snapshotTree } from '../fixtures/temp.js';

const APP = 'dev.example.failing';

function installedApp(overrides: Record<string, unknown>): Record<string, unknown> {
  return {
    package_id: APP,
    name: 'failing',
    publisher: 'CN=Example',
    publisher_claim: 'Example',
    origin: 'store',
    version: '1.0.0',
    type: 'application',
    status: 'running',
    state: 0,
    launch_rule: 'auto',
    log_level: 3,
    configured: true,
    restarts: 0,
    signature: 'verified',
    signer: null,
    installed_at: '2026-01-01T00:00:00.000Z',
    manifest: {},
    ...overrides,
  };
}

describe('isogate apps logs -o: path mistakes', () => {
  let work: string;
  let data: string;
  let gateway: FakeGateway;
  beforeEach(async () => {
    work = await makeTempDir();
    data = path.join(work, 'data');
    await fs.mkdir(data, { mode: 0o700 });
    gateway = await fakeGateway(data, {
      'apps.logs.info': { fileName: `log_files_${APP}.tar.gz`, files: 1, uncompressedBytes: 10, estimatedBytes: 600 },
      'apps.logs.archive': { bytes: 0 },
    });
  });
  afterEach(async () => {
    await gateway.close();
    await removeDir(work);
  });

  async function refused(argv: string[], pattern: RegExp): Promise<void> {
    const before = await snapshotTree(work);
    const result = await runMain(main, [...argv, '--data', data]);
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, /^E_PATH: /);
    assert.match(result.stderr, pattern);
    assert.deepEqual(await snapshotTree(work), before, 'nothing written');
    assert.deepEqual(gateway.requests, [], 'the gateway is not asked');
  }

  it('-o naming a directory is E_PATH naming it and a file name to use there (was EISDIR as E_INTERNAL)', async () => {
    const folder = path.join(work, 'logs');
    await fs.mkdir(folder);
    await fs.writeFile(path.join(folder, 'keep.txt'), 'kept');
    await refused(
      ['apps', 'logs', APP, '-o', folder],
      new RegExp(`The -o file ${folder} is a directory; give a file name \\(for example ${folder}/log_files_${APP.replaceAll('.', '\\.')}\\.tar\\.gz\\)`),
    );
  });

  it('-o in a folder that does not exist is E_PATH, and the folder is not created (was ENOENT as E_INTERNAL)', async () => {
    const target = path.join(work, 'missing', 'x.tar.gz');
    await refused(['apps', 'logs', APP, '-o', target], /The -o file .*missing\/x\.tar\.gz: a folder on the way does not exist; create it first/);
    await assert.rejects(fs.lstat(path.join(work, 'missing')), { code: 'ENOENT' });
  });

  it('-o below a file is E_PATH saying the folder is a file', async () => {
    await fs.writeFile(path.join(work, 'plain'), 'x');
    await refused(['apps', 'logs', APP, '-o', path.join(work, 'plain', 'x.tar.gz')], /plain is a file, not a folder|a part of the path is a file/);
  });

  it('a good -o saves the archive there (the control case)', async () => {
    const target = path.join(work, 'saved.tar.gz');
    const result = await runMain(main, ['apps', 'logs', APP, '-o', target, '--data', data, '--json']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(JSON.parse(result.stdout).path, target);
    assert.deepEqual(
      gateway.requests.map((request) => request.op),
      ['apps.logs.info', 'apps.logs.archive'],
    );
  });
});

describe('why an app is in Error, in apps list and status', () => {
  let work: string;
  let data: string;
  let gateway: FakeGateway;
  const failing = installedApp({
    status: 'error',
    restarts: 5,
    last_error: { code: 'E_CPU_LIMIT', message: 'The app ran 250 ms on one event \u001b[2J\u202e(limit 200 ms)', at: '2026-01-01T00:00:00.000Z' },
  });
  const healthy = installedApp({ package_id: 'dev.example.fine', name: 'fine' });
  const status = {
    version: '0.1.0',
    sdkVersion: '1.0.0',
    uptimeSeconds: 5,
    dataDir: '/x',
    mode: 'router',
    developerMode: false,
    store: 'http://127.0.0.1:1',
    apps: { installed: 2, limit: 20, byStatus: { error: 1, running: 1 } },
    routes: { active: 0, inactive: 0, error: 0 },
  };
  beforeEach(async () => {
    work = await makeTempDir();
    data = path.join(work, 'data');
    await fs.mkdir(data, { mode: 0o700 });
    gateway = await fakeGateway(data, { 'apps.list': [failing, healthy], status });
  });
  afterEach(async () => {
    await gateway.close();
    await removeDir(work);
  });

  it('apps list shows a REASON column with the code and sentence, escaped; a healthy app has none', async () => {
    const result = await runMain(main, ['apps', 'list', '--data', data]);
    assert.equal(result.code, 0, result.stderr);
    const [header, , ...rows] = result.stdout.trimEnd().split('\n');
    assert.match(header!, /STATUS\s+SIGNATURE\s+REASON$/);
    const failingRow = rows.find((row) => row.startsWith(APP))!;
    assert.match(failingRow, /Error\s+verified\s+E_CPU_LIMIT: The app ran 250 ms on one event \\x1b\[2J\\u\{202e\}\(limit 200 ms\)$/);
    assert.doesNotMatch(result.stdout, /[\u001b\u202e]/, 'no control reaches the terminal');
    assert.match(rows.find((row) => row.startsWith('dev.example.fine'))!, /Running\s+verified$/);
  });

  it('apps list without an app in Error keeps its columns (no empty REASON)', async () => {
    await gateway.close();
    gateway = await fakeGateway(data, { 'apps.list': [healthy] });
    const result = await runMain(main, ['apps', 'list', '--data', data]);
    assert.doesNotMatch(result.stdout, /REASON/);
  });

  it("status names each app in Error with its reason, escaped; --json stays the gateway's status", async () => {
    const result = await runMain(main, ['status', '--data', data]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stdout,
      /^apps: 2 installed of 20; 1 error, 1 running\n {2}in error: failing \(dev\.example\.failing\): E_CPU_LIMIT: The app ran 250 ms on one event \\x1b\[2J\\u\{202e\}\(limit 200 ms\)$/m,
    );
    assert.doesNotMatch(result.stdout, /[\u001b\u202e]/);
    const json = await runMain(main, ['status', '--data', data, '--json']);
    assert.deepEqual(JSON.parse(json.stdout), status);
  });
});
