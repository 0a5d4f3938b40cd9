/**
 * Bounds of the configuration document (issue 11, finding 6): a value nested past the bound is
 * refused leaving config.json as it was, and a config.json written by 0.1.0 with such a value
 * opens (that app's configuration removed and reported) instead of failing every later write.
 */
import { strict as assert } from 'node:assert';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { ConfigStore, defaultDocument } from '../../platform/config/index.js';
import { isIsogateError } from '../../sdk/errors.js';
import { DOCUMENT_LIMITS } from '../../sdk/limits.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

/** The finding's value: 4 KB of text nested 2000 deep under a {"type": "object"} schema. */
function deepValue(): Record<string, unknown> {
  let value: Record<string, unknown> = { text: 'x'.repeat(4096) };
  for (let i = 0; i < 2000; i += 1) value = { nested: value };
  return value;
}

describe('configuration document bounds', () => {
  let dir: string;
  let file: string;
  beforeEach(async () => {
    dir = await makeTempDir();
    file = path.join(dir, 'config.json');
  });
  afterEach(() => removeDir(dir));

  it('refuses an update nested past the bound with E_DOCUMENT_LIMIT; config.json is unchanged and later writes work', async () => {
    const store = await ConfigStore.open(file, 'x');
    const before = await fs.readFile(file);
    await assert.rejects(
      store.update((doc) => {
        doc['com.example.app'] = deepValue();
      }),
      (error: unknown) => isIsogateError(error, 'E_DOCUMENT_LIMIT'),
    );
    assert.deepEqual(await fs.readFile(file), before);
    assert.equal(store.snapshot()['com.example.app'], undefined);
    await store.update((doc) => {
      doc.SETTINGS.ok = true;
    });
    assert.equal((JSON.parse(await fs.readFile(file, 'utf8')) as { SETTINGS: { ok: boolean } }).SETTINGS.ok, true);
  });

  it('refuses a document larger than the bound with E_DOCUMENT_LIMIT', async () => {
    const store = await ConfigStore.open(file, 'x');
    const before = await fs.readFile(file);
    await assert.rejects(
      store.update((doc) => {
        doc.SETTINGS.blob = 'x'.repeat(DOCUMENT_LIMITS.configDocumentBytes);
      }),
      (error: unknown) => isIsogateError(error, 'E_DOCUMENT_LIMIT') && /bytes as JSON/.test(error.message),
    );
    assert.deepEqual(await fs.readFile(file), before);
  });

  it('opens a 0.1.0 config.json holding an app configuration nested 2000 deep: removes it, marks the app unconfigured, reports it, and writes again', async () => {
    // What 0.1.0 wrote after accepting the value: pretty-printed, about 8 MB.
    const old = defaultDocument('isogate 0.1.0');
    old.APPLICATIONS.APPS_CONTROL.applications.push({ package_id: 'com.example.victim', execute: false, launchRule: 'none', logLevel: 3, configured: true });
    old['com.example.victim'] = deepValue();
    old['com.example.fine'] = { rate: 5 };
    await fs.writeFile(file, `${JSON.stringify(old, null, 2)}\n`, { mode: 0o600 });

    const store = await ConfigStore.open(file, 'x');
    assert.deepEqual(
      store.repairs.map((r) => r.packageId),
      ['com.example.victim'],
    );
    assert.match(store.repairs[0]!.reason, /deeper than 32 levels/);
    const doc = store.snapshot();
    assert.equal(doc['com.example.victim'], undefined);
    assert.deepEqual(doc['com.example.fine'], { rate: 5 });
    assert.equal(doc.APPLICATIONS.APPS_CONTROL.applications[0]!.configured, false);
    assert.ok((await fs.stat(file)).size < 64 * 1024, 'the repaired document is on disk');

    await store.update((draft) => {
      draft.MODE_SWITCH.router_mode = false;
    });
    const reopened = await ConfigStore.open(file, 'x');
    assert.deepEqual(reopened.repairs, []);
    assert.equal(reopened.snapshot().MODE_SWITCH.router_mode, false);
  });

  it('refuses to open a document nested past the bound outside any app configuration with E_DOCUMENT_LIMIT, saying what to do, and leaves it as it was', async () => {
    const old = defaultDocument('isogate 0.1.0');
    old.NETWORK = deepValue();
    await fs.writeFile(file, JSON.stringify(old));
    const before = await fs.readFile(file);
    await assert.rejects(
      ConfigStore.open(file, 'x'),
      (error: unknown) => isIsogateError(error, 'E_DOCUMENT_LIMIT') && /move config\.json aside/.test(error.message),
    );
    assert.deepEqual(await fs.readFile(file), before);
  });
});

describe('gateway start on a 0.1.0 config.json with an app configuration past the bounds', function () {
  this.timeout(60_000);
  let dir: string | undefined;
  afterEach(() => removeDir(dir));

  it('starts, and audits the removed configuration as an object integrity violation naming the app and what to do', async () => {
    const { startGateway } = await import('../../platform/main.js');
    dir = await makeTempDir();
    const old = defaultDocument('isogate 0.1.0');
    old['com.example.victim'] = deepValue();
    await fs.writeFile(path.join(dir, 'config.json'), `${JSON.stringify(old, null, 2)}\n`, { mode: 0o600 });
    const gateway = await startGateway({ dataDir: dir });
    try {
      const records = gateway.services.audit.list().filter((record) => record.event === 'integrityViolation');
      assert.equal(records.length, 1);
      assert.match(
        records[0]!.text,
        /The configuration of com\.example\.victim integrity violated: .*deeper than 32 levels.*isogate apps config com\.example\.victim --set FILE/,
      );
      assert.equal(gateway.services.config.snapshot()['com.example.victim'], undefined);
    } finally {
      await gateway.close();
    }
  });
});
