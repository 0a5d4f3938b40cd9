import { strict as assert } from 'node:assert';
import { createCipheriv, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import sinon from 'sinon';
import { memoryDeviceKeys } from '../../platform/device/index.js';
import { DEFAULT_CACHE_BYTES, openAppStorage, StorageService } from '../../platform/storage/index.js';
import { logWrites } from '../fixtures/log-writes.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

/** A log record exactly as 0.1.0 wrote it, by an encoder of its own (not the one under test). */
function recordOf010(key: Buffer, packageId: string, sequence: number, op: number, type: number, name: string, value: Buffer): Buffer {
  const nameBytes = Buffer.from(name);
  const header = Buffer.alloc(4);
  header[0] = op;
  header[1] = type;
  header.writeUInt16BE(nameBytes.length, 2);
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(`isogate-storage-v1\u0000${packageId}\u0000${sequence}`));
  const body = Buffer.concat([cipher.update(Buffer.concat([header, nameBytes, value])), cipher.final()]);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(12 + body.length + 16);
  return Buffer.concat([length, iv, body, cipher.getAuthTag()]);
}

describe('storage on disk: values out of memory, compaction that cannot take a write with it', () => {
  let root: string;
  const keys = memoryDeviceKeys();
  const id = 'dev.isogate.disk';
  beforeEach(async () => {
    root = await makeTempDir('isogate-storage-disk-');
  });
  afterEach(async () => {
    sinon.restore();
    await removeDir(root);
  });

  const open = (quotaBytes = 1024 * 1024, onError?: (error: Error) => void) =>
    openAppStorage({ dir: path.join(root, id), packageId: id, key: keys.derive('storage', id), quotaBytes, ...(onError ? { onError } : {}) });

  it('holds no more decrypted bytes than the cache bound while 64 MB go in and come back, also after reopening', async function () {
    this.timeout(120_000);
    const service = new StorageService({ root, keys });
    const count = 64;
    const valueFor = (i: number): Uint8Array => new Uint8Array(1024 * 1024).fill(i);
    const storage = await service.open(id, 80 * 1024 * 1024);
    assert.equal(typeof storage.cachedBytes, 'number');
    let most = 0;
    const check = (): void => {
      most = Math.max(most, storage.cachedBytes, service.cachedBytes);
      assert.ok(storage.cachedBytes <= DEFAULT_CACHE_BYTES && service.cachedBytes <= DEFAULT_CACHE_BYTES, `${storage.cachedBytes} bytes cached`);
    };
    for (let i = 0; i < count; i += 1) {
      await storage.put(`v/${i}`, valueFor(i));
      check();
    }
    for (let i = 0; i < count; i += 1) {
      assert.deepEqual(await storage.get(`v/${i}`), valueFor(i), `value ${i}`);
      check();
    }
    // The bound was used, not merely never reached: the newest values are held.
    assert.ok(most > DEFAULT_CACHE_BYTES / 2, `at most ${most} bytes were cached`);
    await service.close(id);
    assert.equal(service.cachedBytes, 0, 'a closed store leaves nothing cached');

    const reopened = await service.open(id, 80 * 1024 * 1024);
    assert.equal(reopened.cachedBytes, 0, 'opening reads the index only');
    for (let i = count - 1; i >= 0; i -= 1) {
      assert.deepEqual(await reopened.get(`v/${i}`), valueFor(i), `value ${i} after reopening`);
      assert.ok(reopened.cachedBytes <= DEFAULT_CACHE_BYTES);
    }
    assert.deepEqual(await reopened.usage(), {
      used: count * 1024 * 1024 + (await reopened.list('v/')).reduce((sum, key) => sum + key.length, 0),
      quota: 80 * 1024 * 1024,
    });
    await service.closeAll();
  });

  it('a value changed on disk after the store opened fails authentication when it is read', async () => {
    const service = new StorageService({ root, keys, cacheBytes: 1 });
    const storage = await service.open(id, 64 * 1024);
    await storage.put('a', 'first value');
    await storage.put('b', 'second value');
    const file = path.join(root, id, 'data.log');
    const bytes = await fs.readFile(file);
    bytes[20]! ^= 0x01;
    await fs.writeFile(file, bytes);
    await assert.rejects(storage.get('a'), { code: 'E_STORAGE_CORRUPT' });
    assert.equal(await storage.get('b'), 'second value');
    await service.closeAll();
  });

  it('opens a log written in the 0.1.0 record format unchanged', async () => {
    const key = keys.derive('storage', id);
    await fs.mkdir(path.join(root, id));
    const log = Buffer.concat([
      recordOf010(key, id, 0, 1, 1, 'greeting', Buffer.from('hello')),
      recordOf010(key, id, 1, 1, 2, 'raw', Buffer.from([1, 2, 3])),
      recordOf010(key, id, 2, 1, 1, 'gone', Buffer.from('soon')),
      recordOf010(key, id, 3, 2, 2, 'gone', Buffer.alloc(0)),
    ]);
    await fs.writeFile(path.join(root, id, 'data.log'), log);
    const storage = await open();
    assert.deepEqual(await storage.list(''), ['greeting', 'raw']);
    assert.equal(await storage.get('greeting'), 'hello');
    assert.deepEqual(await storage.get('raw'), new Uint8Array([1, 2, 3]));
    await storage.put('later', 'x');
    await storage.close();
    const bytes = await fs.readFile(path.join(root, id, 'data.log'));
    assert.deepEqual(bytes.subarray(0, log.length), log, 'the old records stay as they were');
  });

  it('acknowledges a committed put when the compaction after it fails, reports it, and compacts later', async () => {
    const realOpen = fs.open.bind(fs);
    const failing = sinon.stub(fs, 'open').callsFake(((file: string, ...rest: unknown[]) => {
      if (String(file).endsWith('.compact')) return Promise.reject(Object.assign(new Error('EIO: injected'), { code: 'EIO' }));
      return (realOpen as (...args: unknown[]) => Promise<unknown>)(file, ...rest);
    }) as typeof fs.open);
    const errors: Error[] = [];
    const storage = await open(1024 * 1024, (error) => errors.push(error));
    for (let i = 0; i < 100; i += 1) await storage.put('counter', 'x'.repeat(1000) + i);
    await storage.usage();
    assert.ok(errors.length >= 1, 'the failed compaction was reported');
    assert.match(errors[0]!.message, /EIO: injected/);
    failing.restore();
    await storage.close();
    const file = path.join(root, id, 'data.log');
    assert.ok((await fs.stat(file)).size > 64 * 1024, 'nothing was compacted while compaction failed');

    const reopened = await open(1024 * 1024, (error) => errors.push(error));
    assert.equal(await reopened.get('counter'), 'x'.repeat(1000) + 99);
    const reported = errors.length;
    for (let i = 100; i < 200; i += 1) await reopened.put('counter', 'x'.repeat(1000) + i);
    await reopened.close();
    assert.equal(errors.length, reported);
    assert.ok((await fs.stat(file)).size < 100 * 1024, 'compacted once it could be');
    const again = await open();
    assert.equal(await again.get('counter'), 'x'.repeat(1000) + 199);
    await again.close();
  });

  it('keeps working on its old log when the compacted one cannot be renamed in', async () => {
    const realRename = fs.rename.bind(fs);
    let refused = 0;
    sinon.stub(fs, 'rename').callsFake(async (from, to) => {
      if (String(from).endsWith('.compact') && refused === 0) {
        refused += 1;
        throw Object.assign(new Error('EXDEV: injected'), { code: 'EXDEV' });
      }
      return realRename(from, to);
    });
    const errors: Error[] = [];
    const storage = await open(1024 * 1024, (error) => errors.push(error));
    for (let i = 0; i < 100; i += 1) await storage.put(`k${i % 3}`, 'y'.repeat(1000) + i);
    assert.equal(refused, 1, 'the rename was refused once');
    assert.match(errors[0]!.message, /EXDEV: injected/);
    // Later writes land, and compaction succeeds on a later try.
    for (let i = 100; i < 300; i += 1) await storage.put(`k${i % 3}`, 'y'.repeat(1000) + i);
    await storage.put('last', 'z');
    assert.equal(await storage.delete('k0'), true);
    await storage.close();
    assert.deepEqual((await fs.readdir(path.join(root, id))).sort(), ['data.log']);
    assert.ok((await fs.stat(path.join(root, id, 'data.log'))).size < 100 * 1024);
    const reopened = await open();
    assert.deepEqual(await reopened.list(''), ['k1', 'k2', 'last']);
    assert.equal(await reopened.get('k1'), 'y'.repeat(1000) + 298);
    assert.equal(await reopened.get('k2'), 'y'.repeat(1000) + 299);
    assert.equal(await reopened.get('last'), 'z');
    await reopened.close();
  });
});

describe('storage: a write that failed leaves nothing behind', () => {
  let root: string;
  const keys = memoryDeviceKeys();
  const id = 'dev.isogate.torn';
  beforeEach(async () => {
    root = await makeTempDir('isogate-storage-torn-');
  });
  afterEach(async () => {
    sinon.restore();
    await removeDir(root);
  });
  const open = () => openAppStorage({ dir: path.join(root, id), packageId: id, key: keys.derive('storage', id), quotaBytes: 1024 * 1024 });

  it('a put whose sync failed is not in the log, and the put after it survives reopening', async () => {
    const storage = await open();
    await storage.put('a', 'first');
    // The next write reaches the file but not the disk, as a failing sync leaves it (the log is O_DSYNC).
    await logWrites(path.join(root, id), { failAt: 1 });
    await assert.rejects(storage.put('b', 'x'.repeat(5000)), /EIO: i\/o error, write \(injected/);
    await storage.put('c', 'acknowledged');
    sinon.restore();
    await storage.close();
    const reopened = await open();
    assert.deepEqual(await reopened.list(''), ['a', 'c']);
    assert.equal(await reopened.get('c'), 'acknowledged');
    await reopened.close();
  });
});
