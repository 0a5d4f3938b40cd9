import { strict as assert } from 'node:assert';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { memoryDeviceKeys } from '../../platform/device/index.js';
import { openAppStorage, StorageService } from '../../platform/storage/index.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

describe('encrypted storage', () => {
  let root: string;
  const keys = memoryDeviceKeys();
  beforeEach(async () => {
    root = await makeTempDir('isogate-storage-');
  });
  afterEach(() => removeDir(root));

  const open = (packageId = 'dev.isogate.a', quotaBytes = 64 * 1024, dir = path.join(root, packageId)) =>
    openAppStorage({ dir, packageId, key: keys.derive('storage', packageId), quotaBytes });

  it('keeps strings and bytes apart, lists by prefix in order, deletes, and survives reopening', async () => {
    const storage = await open();
    await storage.put('b/2', 'two');
    await storage.put('b/1', new Uint8Array([1, 2, 3]));
    await storage.put('a', 'x');
    await storage.put('a', 'overwritten');
    assert.equal(await storage.delete('missing'), false);
    assert.equal(await storage.delete('a'), true);
    await storage.close();
    const again = await open();
    assert.deepEqual(await again.list('b/'), ['b/1', 'b/2']);
    assert.equal(await again.get('b/2'), 'two');
    assert.deepEqual(await again.get('b/1'), new Uint8Array([1, 2, 3]));
    assert.equal(await again.get('a'), undefined);
    assert.deepEqual(await again.usage(), { used: 3 + 3 + 3 + 3, quota: 64 * 1024 });
    await again.close();
  });

  it('writes nothing in plaintext', async () => {
    const storage = await open();
    await storage.put('secret-key', 'secret value');
    await storage.close();
    const bytes = await fs.readFile(path.join(root, 'dev.isogate.a', 'data.log'));
    assert.equal(bytes.includes('secret'), false);
  });

  it('refuses hostile keys and writes over the quota, changing nothing', async () => {
    const storage = await open('dev.isogate.a', 100);
    await storage.put('ok', 'v');
    const file = path.join(root, 'dev.isogate.a', 'data.log');
    const size = (await fs.stat(file)).size;
    for (const key of ['../etc/passwd', 'a/../b', '/abs', 'nul\u0000byte', 'line\nbreak', '', 'back\\slash', 'x'.repeat(600)]) {
      await assert.rejects(storage.put(key, 'v'), { code: 'E_STORAGE_KEY' }, JSON.stringify(key));
    }
    await assert.rejects(storage.put('big', 'x'.repeat(200)), { code: 'E_STORAGE_QUOTA' });
    // A bad value under a good key is the value's fault, not the key's.
    for (const value of [42, null, undefined, { a: 1 }, ['v'], true]) {
      await assert.rejects(storage.put('ok', value as unknown as string), { code: 'E_STORAGE_VALUE' }, JSON.stringify(value));
    }
    assert.equal((await fs.stat(file)).size, size);
    assert.equal(await storage.get('big'), undefined);
    assert.equal(await storage.get('ok'), 'v');
    await storage.close();
  });

  it('cuts off a torn last record: the old value stays', async () => {
    const storage = await open();
    await storage.put('k', 'old');
    await storage.close();
    const file = path.join(root, 'dev.isogate.a', 'data.log');
    const good = await fs.readFile(file);
    await fs.appendFile(file, Buffer.from([0, 0, 0, 80, 1, 2, 3, 4, 5]));
    const reopened = await open();
    assert.equal(await reopened.get('k'), 'old');
    assert.equal((await fs.stat(file)).size, good.length);
    await reopened.put('k', 'new');
    await reopened.close();
    const again = await open();
    assert.equal(await again.get('k'), 'new');
    await again.close();
  });

  for (const [what, fill] of [
    ['ones (the first pass of an erasure)', 0xff],
    ['zeros (the second pass)', 0x00],
  ] as const) {
    it(`refuses a log whose first bytes were overwritten with ${what} with E_STORAGE_CORRUPT, never cutting it as a torn tail`, async () => {
      const storage = await open();
      await storage.put('a', 'first');
      await storage.put('b', 'second');
      await storage.close();
      const file = path.join(root, 'dev.isogate.a', 'data.log');
      const bytes = await fs.readFile(file);
      bytes.fill(fill, 0, 16);
      await fs.writeFile(file, bytes);
      await assert.rejects(open(), { code: 'E_STORAGE_CORRUPT' });
      assert.deepEqual(await fs.readFile(file), bytes, 'the log is left as found');
    });
  }

  it('detects a record altered in the middle', async () => {
    const storage = await open();
    await storage.put('a', 'first');
    await storage.put('b', 'second');
    await storage.close();
    const file = path.join(root, 'dev.isogate.a', 'data.log');
    const bytes = await fs.readFile(file);
    bytes[20]! ^= 0x01;
    await fs.writeFile(file, bytes);
    await assert.rejects(open(), { code: 'E_STORAGE_CORRUPT' });
  });

  it('fails authentication for a log moved to another app', async () => {
    const storage = await open('dev.isogate.a');
    await storage.put('a', 'first');
    await storage.put('b', 'second');
    await storage.close();
    await fs.mkdir(path.join(root, 'dev.isogate.b'));
    await fs.copyFile(path.join(root, 'dev.isogate.a', 'data.log'), path.join(root, 'dev.isogate.b', 'data.log'));
    await assert.rejects(open('dev.isogate.b'), { code: 'E_STORAGE_CORRUPT' });
  });

  it('compacts a log of mostly dead records and keeps the live values', async () => {
    const storage = await open('dev.isogate.a', 1024 * 1024);
    for (let i = 0; i < 200; i += 1) await storage.put('counter', 'x'.repeat(1000) + i);
    const size = (await fs.stat(path.join(root, 'dev.isogate.a', 'data.log'))).size;
    assert.ok(size < 100 * 1024, `log is ${size} bytes after compaction`);
    await storage.close();
    const reopened = await open('dev.isogate.a', 1024 * 1024);
    assert.equal(await reopened.get('counter'), 'x'.repeat(1000) + 199);
    await reopened.close();
  });

  it('opens ahead only the storage of an app that stored something before (no empty store for the others), and the app then finds its values', async () => {
    const service = new StorageService({ root, keys });
    await service.openIfStored('dev.isogate.none', 1024);
    await assert.rejects(fs.stat(path.join(root, 'dev.isogate.none')), { code: 'ENOENT' });
    await (await service.open('dev.isogate.d', 1024)).put('k', 'v');
    await service.close('dev.isogate.d');
    await service.openIfStored('dev.isogate.d', 1024);
    assert.equal(await (await service.open('dev.isogate.d', 1024)).get('k'), 'v');
    await service.closeAll();
  });

  it("wipes an app's storage on uninstall, leaving nothing", async () => {
    const service = new StorageService({ root, keys });
    const storage = await service.open('dev.isogate.c', 1024);
    await storage.put('k', 'v');
    await service.wipe('dev.isogate.c');
    await assert.rejects(fs.stat(path.join(root, 'dev.isogate.c')), { code: 'ENOENT' });
    assert.equal(await (await service.open('dev.isogate.c', 1024)).get('k'), undefined);
    await service.closeAll();
  });
});
