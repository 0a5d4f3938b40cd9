/**
 * Group commit: writes asked for while a sync is under way go to disk together, one synchronous
 * write for the group (the log is opened O_DSYNC: a write returns once it is on disk, as a write
 * and an fdatasync would), each acknowledged only once that write is done; judged one after
 * another as if each were alone (quota, deletes of keys the group itself wrote); and a group the
 * disk refuses is refused whole, leaving nothing of it after a reopen.
 */
import { strict as assert } from 'node:assert';
import path from 'node:path';
import sinon from 'sinon';
import { memoryDeviceKeys } from '../../platform/device/index.js';
import { openAppStorage } from '../../platform/storage/index.js';
import { isIsogateError } from '../../sdk/errors.js';
import { logWrites } from '../fixtures/log-writes.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

describe('storage group commit', () => {
  let root: string;
  const keys = memoryDeviceKeys();
  const id = 'dev.isogate.group';
  beforeEach(async () => {
    root = await makeTempDir('isogate-storage-group-');
  });
  afterEach(async () => {
    sinon.restore();
    await removeDir(root);
  });
  const open = (quotaBytes = 1024 * 1024) => openAppStorage({ dir: path.join(root, id), packageId: id, key: keys.derive('storage', id), quotaBytes });

  it('makes 100 puts in flight durable with far fewer syncs than puts, every one back after a reopen', async () => {
    const storage = await open();
    const writes = await logWrites(root);
    await Promise.all(Array.from({ length: 100 }, (_, i) => storage.put(`k/${i}`, `value ${i}`)));
    assert.ok(writes.count() >= 1 && writes.count() <= 2, `${writes.count()} synchronous writes for 100 puts asked for at once`);
    assert.ok(await writes.allDsync(), 'every write of the log is synchronous (O_DSYNC)');
    sinon.restore();
    await storage.close();
    const reopened = await open();
    assert.equal((await reopened.list('k/')).length, 100);
    for (let i = 0; i < 100; i += 1) assert.equal(await reopened.get(`k/${i}`), `value ${i}`);
    await reopened.close();
  });

  it('acknowledges no put of a group before its synchronous write is done', async () => {
    const storage = await open();
    await storage.put('first', 'one');
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const writes = await logWrites(root, { before: () => held });
    const acknowledged: string[] = [];
    const puts = ['a', 'b', 'c'].map((key) => storage.put(key, key).then(() => acknowledged.push(key)));
    while (writes.count() === 0) await new Promise((resolve) => setImmediate(resolve));
    // The write has started and is held: nothing is acknowledged however many turns pass.
    for (let turn = 0; turn < 20; turn += 1) await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(acknowledged, []);
    release();
    await Promise.all(puts);
    assert.deepEqual(acknowledged.sort(), ['a', 'b', 'c']);
    assert.equal(writes.count(), 1);
    assert.ok(await writes.allDsync(), 'the write is synchronous (O_DSYNC)');
    await storage.close();
  });

  it('judges each write of a group as if it were alone: quota after the ones before it, a delete of a key the group put', async () => {
    const storage = await open(100);
    const results = await Promise.allSettled([
      storage.put('a', 'x'.repeat(60)),
      storage.put('b', 'y'.repeat(60)),
      storage.delete('a'),
      storage.put('c', 'z'.repeat(60)),
      storage.delete('never'),
    ]);
    assert.equal(results[0].status, 'fulfilled');
    assert.ok(results[1].status === 'rejected' && isIsogateError(results[1].reason, 'E_STORAGE_QUOTA'), String((results[1] as PromiseRejectedResult).reason));
    assert.deepEqual(results[2], { status: 'fulfilled', value: true });
    assert.equal(results[3].status, 'fulfilled');
    assert.deepEqual(results[4], { status: 'fulfilled', value: false });
    assert.deepEqual(await storage.list(''), ['c']);
    assert.deepEqual(await storage.usage(), { used: 61, quota: 100 });
    await storage.close();
    const reopened = await open(100);
    assert.deepEqual(await reopened.list(''), ['c']);
    assert.equal(await reopened.get('c'), 'z'.repeat(60));
    await reopened.close();
  });

  it('refuses a whole group whose sync fails (E_IO), keeps what was acknowledged before, and brings none of it back after a reopen', async () => {
    const storage = await open();
    await storage.put('kept', 'old');
    // The first write from now reaches the file but not the disk, as a failing sync leaves it.
    await logWrites(root, { failAt: 1 });
    const results = await Promise.allSettled([storage.put('kept', 'new'), storage.put('other', 'v'), storage.delete('kept')]);
    for (const result of results) assert.ok(result.status === 'rejected' && isIsogateError(result.reason, 'E_IO'), JSON.stringify(result));
    assert.equal(await storage.get('kept'), 'old');
    assert.deepEqual(await storage.list(''), ['kept']);
    await storage.put('after', 'acknowledged');
    sinon.restore();
    await storage.close();
    const reopened = await open();
    assert.deepEqual(await reopened.list(''), ['after', 'kept']);
    assert.equal(await reopened.get('kept'), 'old');
    await reopened.close();
  });

  it('stores the bytes a put was given when it was asked for, whatever the caller does to them while it waits', async () => {
    const storage = await open();
    const value = new Uint8Array([1, 2, 3]);
    const put = storage.put('bytes', value);
    value[0] = 9;
    await put;
    assert.deepEqual(await storage.get('bytes'), new Uint8Array([1, 2, 3]));
    await storage.close();
    const reopened = await open();
    assert.deepEqual(await reopened.get('bytes'), new Uint8Array([1, 2, 3]));
    await reopened.close();
  });
});
