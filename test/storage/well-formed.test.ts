/**
 * Keys and string values are stored as UTF-8, which has no lone surrogate: written, one would
 * come back as U+FFFD after a restart, so two keys the app told apart became one (the first
 * acknowledged put lost) and a string read back was not the one put. Refused at the put instead.
 */
import { strict as assert } from 'node:assert';
import path from 'node:path';
import { memoryDeviceKeys } from '../../platform/device/index.js';
import { openAppStorage } from '../../platform/storage/index.js';
import { refusedWith } from '../fixtures/errors.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

describe('storage: keys and strings that UTF-8 cannot hold', () => {
  let root: string;
  const keys = memoryDeviceKeys();
  const id = 'dev.isogate.wellformed';
  beforeEach(async () => {
    root = await makeTempDir('isogate-storage-wf-');
  });
  afterEach(() => removeDir(root));
  const open = () => openAppStorage({ dir: path.join(root, id), packageId: id, key: keys.derive('storage', id), quotaBytes: 1024 * 1024 });

  it('refuses a key with a lone surrogate (E_STORAGE_KEY) and a string value with one (E_STORAGE_VALUE), storing nothing', async () => {
    const storage = await open();
    await storage.put('kept', 'a value');
    const before = await storage.usage();
    await assert.rejects(storage.put('k\uD800', 'first'), refusedWith('E_STORAGE_KEY', /surrogate/));
    await assert.rejects(storage.put('k\uDC01x', 'second'), refusedWith('E_STORAGE_KEY', /surrogate/));
    await assert.rejects(storage.put('plain', 'half of \uD83D'), refusedWith('E_STORAGE_VALUE', /surrogate/));
    await assert.rejects(storage.get('k\uD800'), refusedWith('E_STORAGE_KEY', /surrogate/));
    await assert.rejects(storage.delete('k\uD800'), refusedWith('E_STORAGE_KEY', /surrogate/));
    assert.deepEqual(await storage.usage(), before);
    assert.deepEqual(await storage.list(''), ['kept']);
    // A surrogate pair is text like any other and survives a restart as it was put.
    await storage.put('emoji \uD83D\uDE00', 'value \uD83D\uDE00');
    await storage.close();
    const reopened = await open();
    assert.deepEqual(await reopened.list(''), ['emoji \uD83D\uDE00', 'kept']);
    assert.equal(await reopened.get('emoji \uD83D\uDE00'), 'value \uD83D\uDE00');
    await reopened.close();
  });
});
