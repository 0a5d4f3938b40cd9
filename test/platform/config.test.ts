import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { ConfigStore } from '../../platform/config/index.js';
import { isIsogateError } from '../../sdk/errors.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

describe('configuration document', () => {
  let dir: string;
  let file: string;
  beforeEach(async () => {
    dir = await makeTempDir();
    file = path.join(dir, 'config.json');
  });
  afterEach(() => removeDir(dir));

  it('creates the manual-shaped document on first open', async () => {
    const store = await ConfigStore.open(file, 'isogate test');
    const doc = store.snapshot();
    assert.deepEqual(doc.APPLICATIONS, { APPS_CONTROL: { applications: [] }, APPS_ROUTING: { routes: [] } });
    assert.equal(doc.MODE_SWITCH.router_mode, true);
    assert.deepEqual(JSON.parse(await fs.readFile(file, 'utf8')), doc);
    assert.equal((await fs.stat(file)).mode & 0o777, 0o600);
  });

  it('persists an update and reopens it', async () => {
    const store = await ConfigStore.open(file, 'x');
    await store.update((doc) => {
      doc['com.example.app'] = { threshold: 3 };
    });
    const reopened = await ConfigStore.open(file, 'x');
    assert.deepEqual(reopened.snapshot()['com.example.app'], { threshold: 3 });
  });

  it('refuses an update that breaks the schema, naming the pointer, and changes nothing', async () => {
    const store = await ConfigStore.open(file, 'x');
    const before = await fs.readFile(file);
    await assert.rejects(
      store.update((doc) => {
        doc.APPLICATIONS.APPS_CONTROL.applications.push({ package_id: 'com.example.app', execute: true, logLevel: 9 as never, launchRule: 'auto' });
      }),
      (error: unknown) => isIsogateError(error, 'E_CONFIG') && /\/APPLICATIONS\/APPS_CONTROL\/applications\/0\/logLevel/.test(error.message),
    );
    assert.deepEqual(await fs.readFile(file), before);
    assert.equal(store.snapshot().APPLICATIONS.APPS_CONTROL.applications.length, 0);
  });

  it('refuses an unknown launchRule value', async () => {
    const store = await ConfigStore.open(file, 'x');
    await assert.rejects(
      store.update((doc) => {
        doc.APPLICATIONS.APPS_CONTROL.applications.push({ package_id: 'com.example.app', execute: true, logLevel: 3, launchRule: 'sometimes' as never });
      }),
      (error: unknown) => isIsogateError(error, 'E_CONFIG') && /launchRule/.test(error.message),
    );
  });

  it('refuses to open a document that is not JSON', async () => {
    await fs.writeFile(file, '{ nope');
    await assert.rejects(ConfigStore.open(file, 'x'), (error: unknown) => isIsogateError(error, 'E_CONFIG'));
  });

  it('gives copies: changing a snapshot does not change the document', async () => {
    const store = await ConfigStore.open(file, 'x');
    const copy = store.snapshot();
    copy.MODE_SWITCH.router_mode = false;
    assert.equal(store.snapshot().MODE_SWITCH.router_mode, true);
  });

  it('serialises concurrent updates so none is lost', async () => {
    const store = await ConfigStore.open(file, 'x');
    await Promise.all(
      Array.from({ length: 20 }, (_, index) =>
        store.update((doc) => {
          (doc.SETTINGS as Record<string, number>)[`k${index}`] = index;
        }),
      ),
    );
    const reopened = await ConfigStore.open(file, 'x');
    assert.equal(Object.keys(reopened.snapshot().SETTINGS).length, 20);
  });

  it('emits a change with before and after', async () => {
    const store = await ConfigStore.open(file, 'x');
    const seen = new Promise<{ before: unknown; after: { SETTINGS: unknown } }>((resolve) => store.once('change', resolve));
    await store.update((doc) => {
      doc.SETTINGS = { a: 1 };
    });
    const change = await seen;
    assert.deepEqual(change.after.SETTINGS, { a: 1 });
  });
});
