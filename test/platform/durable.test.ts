import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import sinon from 'sinon';
import { eraseFile, eraseTree, Mutex, readJsonIfExists, removeStaleTemporaries, writeFileDurable } from '../../platform/durable/index.js';
import { DataDir } from '../../platform/durable/safe-path.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

describe('durable writes', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await makeTempDir();
  });
  afterEach(() => removeDir(dir));

  it('replaces a file whole and leaves no temporary file behind', async () => {
    const target = path.join(dir, 'doc.json');
    await writeFileDurable(target, 'old');
    await writeFileDurable(target, 'new', { mode: 0o600 });
    assert.equal(await fs.readFile(target, 'utf8'), 'new');
    assert.deepEqual(await fs.readdir(dir), ['doc.json']);
  });

  it('removes the temporaries interrupted writes left, below the root only, never through a link nor in a skipped tree', async () => {
    const root = path.join(dir, 'data');
    const outside = path.join(dir, 'outside');
    for (const folder of [root, path.join(root, 'certs', 'com.example.a'), path.join(root, 'apps', 'com.example.a'), outside])
      await fs.mkdir(folder, { recursive: true });
    const stale = ['.config.json.0123456789ab.tmp', 'certs/com.example.a/.ca.pem.abcdef012345.tmp'];
    for (const file of stale) await fs.writeFile(path.join(root, file), 'half');
    // Not a temporary of this gateway's: another name, an app's own file, a file behind a link.
    const kept = ['config.json', '.config.json.tmp', 'notes.0123456789ab.tmp', 'apps/com.example.a/.x.0123456789ab.tmp'];
    for (const file of kept) await fs.writeFile(path.join(root, file), 'keep');
    await fs.writeFile(path.join(outside, '.victim.0123456789ab.tmp'), 'keep');
    await fs.symlink(outside, path.join(root, 'linked'));
    await fs.symlink(path.join(outside, '.victim.0123456789ab.tmp'), path.join(root, '.link.0123456789ab.tmp'));

    const removed = await removeStaleTemporaries(new DataDir(root), ['apps']);
    assert.deepEqual(removed.sort(), [...stale].sort());
    for (const file of stale) await assert.rejects(fs.lstat(path.join(root, file)), { code: 'ENOENT' });
    for (const file of kept) assert.equal(await fs.readFile(path.join(root, file), 'utf8'), 'keep');
    assert.equal(await fs.readFile(path.join(outside, '.victim.0123456789ab.tmp'), 'utf8'), 'keep');
    assert.ok((await fs.lstat(path.join(root, '.link.0123456789ab.tmp'))).isSymbolicLink(), 'a link is not removed as a temporary');
  });

  describe('a failing write of the same file', () => {
    afterEach(() => sinon.restore());

    it('keeps the old content and no temporary file when the disk fills mid-write', async () => {
      const target = path.join(dir, 'doc.json');
      await writeFileDurable(target, 'old');
      const open = DataDir.prototype.open;
      // The temporary file gets half the bytes, then the disk is full.
      sinon.stub(DataDir.prototype, 'open').callsFake(async function (this: DataDir, ...args: Parameters<DataDir['open']>) {
        const handle = await open.apply(this, args);
        sinon.stub(handle, 'writeFile').callsFake(async (data: unknown) => {
          await handle.write(Buffer.from(String(data)).subarray(0, 3));
          throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
        });
        return handle;
      });
      await assert.rejects(writeFileDurable(target, 'new content'), { code: 'ENOSPC' });
      assert.equal(await fs.readFile(target, 'utf8'), 'old');
      assert.deepEqual(await fs.readdir(dir), ['doc.json']);
    });

    it('keeps the old content and no temporary file when the rename into place fails', async () => {
      const target = path.join(dir, 'doc.json');
      await writeFileDurable(target, 'old');
      sinon.stub(DataDir.prototype, 'rename').rejects(Object.assign(new Error('EIO: i/o error, rename'), { code: 'EIO' }));
      await assert.rejects(writeFileDurable(target, 'new content'), { code: 'EIO' });
      assert.equal(await fs.readFile(target, 'utf8'), 'old');
      assert.deepEqual(await fs.readdir(dir), ['doc.json']);
    });
  });

  it('overwrites a file before unlinking it', async () => {
    const target = path.join(dir, 'secret');
    await fs.writeFile(target, 'top secret value');
    const handle = await fs.open(target, 'r');
    await eraseFile(target);
    const { bytesRead, buffer } = await handle.read(Buffer.alloc(16), 0, 16, 0);
    await handle.close();
    // The descriptor opened before the erase still sees the inode: it must hold zeros now.
    assert.equal(bytesRead, 16);
    assert.deepEqual(buffer, Buffer.alloc(16, 0));
    await assert.rejects(fs.stat(target), { code: 'ENOENT' });
  });

  it('erases a whole tree', async () => {
    await fs.mkdir(path.join(dir, 'a', 'b'), { recursive: true });
    await fs.writeFile(path.join(dir, 'a', 'b', 'f'), 'x');
    await eraseTree(path.join(dir, 'a'));
    assert.deepEqual(await fs.readdir(dir), []);
  });

  it('refuses to write over, erase or read through a link, leaving what it names as it was', async () => {
    const outside = await makeTempDir('isogate-outside-');
    try {
      await fs.writeFile(path.join(outside, 'target'), 'theirs');
      await fs.symlink(path.join(outside, 'target'), path.join(dir, 'doc.json'));
      await fs.symlink(outside, path.join(dir, 'tree'));
      await assert.rejects(writeFileDurable(path.join(dir, 'doc.json'), 'ours'), { code: 'E_UNSAFE_PATH' });
      await assert.rejects(eraseFile(path.join(dir, 'doc.json')), { code: 'E_UNSAFE_PATH' });
      await assert.rejects(eraseTree(path.join(dir, 'tree')), { code: 'E_UNSAFE_PATH' });
      await assert.rejects(readJsonIfExists(path.join(dir, 'doc.json')), { code: 'E_UNSAFE_PATH' });
      assert.equal(await fs.readFile(path.join(outside, 'target'), 'utf8'), 'theirs');
      assert.deepEqual(await fs.readdir(outside), ['target']);
      assert.deepEqual((await fs.readdir(dir)).sort(), ['doc.json', 'tree']);
    } finally {
      await removeDir(outside);
    }
  });

  it('runs critical sections one at a time, even after a failure', async () => {
    const mutex = new Mutex();
    const order: string[] = [];
    const first = mutex.run(async () => {
      order.push('a-start');
      await new Promise((resolve) => setImmediate(resolve));
      order.push('a-end');
      throw new Error('boom');
    });
    const second = mutex.run(async () => {
      order.push('b');
    });
    await assert.rejects(first);
    await second;
    assert.deepEqual(order, ['a-start', 'a-end', 'b']);
  });
});
