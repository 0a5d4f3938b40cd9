/**
 * Path mistakes when a data directory is opened or made (issue 13, finding 5): a file where the
 * directory belongs, a file on the way, a place where no directory can be made. Each is E_PATH
 * naming the path, at once (Node's recursive mkdir loops for ever below /proc), and leaves
 * nothing behind.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import sinon from 'sinon';
import { ensureOwnDirectory } from '../../platform/datadir/index.js';
import { startGateway } from '../../platform/main.js';
import { main as sdkMain } from '../../sdk/cli/main.js';
import { makeDirectories } from '../../sdk/paths.js';
import { main as storeMain } from '../../store-mock/cli.js';
import { runMain } from '../fixtures/cli.js';
import { refusedWith } from '../fixtures/errors.js';
import { makeTempDir, removeDir, snapshotTree } from '../fixtures/temp.js';

async function absent(target: string): Promise<boolean> {
  return fs.lstat(target).then(
    () => false,
    (error: NodeJS.ErrnoException) => error.code === 'ENOENT',
  );
}

describe('data directory path mistakes', () => {
  let work: string;
  beforeEach(async () => {
    work = await makeTempDir();
  });
  afterEach(async () => {
    sinon.restore();
    await removeDir(work);
  });

  it('a data directory that is a file: E_PATH naming it, the file and its folder unchanged, no store directory made', async () => {
    const file = path.join(work, 'notes.txt');
    await fs.writeFile(file, 'not a data directory\n');
    const before = await snapshotTree(work);
    await assert.rejects(
      startGateway({ dataDir: file }),
      refusedWith('E_PATH', new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is a file, not a directory`)),
    );
    assert.deepEqual(await snapshotTree(work), before);
    assert.ok(await absent(`${file}-store`));
  });

  it('a data directory below a file: E_PATH saying a part of the path is a file, nothing created', async () => {
    const file = path.join(work, 'notes.txt');
    await fs.writeFile(file, 'x');
    await assert.rejects(
      ensureOwnDirectory(path.join(file, 'data'), 'the data directory'),
      refusedWith('E_PATH', /notes\.txt\/data: a part of this path is a file/),
    );
    assert.deepEqual([...(await snapshotTree(work)).keys()], ['notes.txt']);
  });

  it('a data directory below /proc, where mkdir can never succeed: E_PATH at once instead of a silent endless loop', async () => {
    const target = `/proc/isogate-nope-${process.pid}/data`;
    await assert.rejects(
      ensureOwnDirectory(target, 'the data directory'),
      refusedWith('E_PATH', /the data directory \/proc\/isogate-nope-\d+\/data cannot be created: making \/proc\/isogate-nope-\d+ failed .*ENOENT/),
    );
  });

  it('the store and SDK CLIs make their directories the same way: below /proc, E_PATH at once', async () => {
    const store = await runMain(storeMain, ['catalog', '--data', `/proc/isogate-nope-${process.pid}`]);
    assert.equal(store.code, 1);
    assert.match(store.stderr, /^E_PATH: The store's directory \/proc\/isogate-nope-\d+\/packages cannot be created/);
    const sdk = await runMain(sdkMain, ['init', `/proc/isogate-nope-${process.pid}/app`]);
    assert.equal(sdk.code, 1);
    assert.match(sdk.stderr, /^E_PATH: The project directory .* cannot be created/);
  });

  it('a level that cannot be made removes the levels made before it', async () => {
    const real = fs.mkdir.bind(fs);
    let calls = 0;
    sinon.stub(fs, 'mkdir').callsFake(async (...args: Parameters<typeof fs.mkdir>) => {
      calls += 1;
      if (calls === 2) throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
      return real(...args);
    });
    const target = path.join(work, 'a', 'b', 'c');
    await assert.rejects(makeDirectories(target, 'The test directory'), refusedWith('E_PATH', /making .*\/a\/b failed \(permission denied, EACCES\)/));
    sinon.restore();
    assert.deepEqual(await fs.readdir(work), [], 'a, made before b failed, is removed again');
  });

  it('makes every missing level of a new data directory 0700 (the control case)', async () => {
    const target = path.join(work, 'x', 'y');
    assert.equal(await ensureOwnDirectory(target, 'the data directory'), target);
    for (const level of [path.join(work, 'x'), target]) assert.equal((await fs.stat(level)).mode & 0o777, 0o700);
  });
});
