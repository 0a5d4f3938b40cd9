/**
 * An app's reads of what it wrote: answered in its own isolate without a crossing, always what
 * the host holds. A key with a write in flight is read from the host; a refused write keeps
 * nothing; an answer that comes back after a later write of its key is not kept; values are the
 * app's own copies both ways.
 */
import { strict as assert } from 'node:assert';
import { type AppSandbox, createAppSandbox } from '../../platform/sandbox/index.js';
import { fakeHost, jsonBatch } from '../fixtures/fake-host.js';
import { sampleManifest } from '../fixtures/packages.js';

const ID = 'dev.isogate.tests.reads';

/** An app that runs `body` on a delivery to 'go' and logs `done <JSON of its result>` or `failed <code>`. */
function app(body: string): string {
  return `import { on, storage, log } from 'isogate:sdk';
    on('go', async () => {
      try { const result = await (async () => { ${body} })(); log.info('done ' + JSON.stringify(result)); }
      catch (error) { log.info('failed ' + error.code); }
    });`;
}

describe('storage reads in the app', function () {
  this.timeout(20_000);
  const running: AppSandbox[] = [];
  afterEach(() => {
    for (const sandbox of running.splice(0)) sandbox.dispose();
  });

  /** Runs `body` in an app over an in-memory store whose calls are counted; `hold` delays puts of a value. */
  async function run(body: string, options: { quotaBytes?: number; holdPut?: (value: string | Uint8Array) => Promise<void> | undefined } = {}) {
    const host = fakeHost(ID, options.quotaBytes ?? 4096);
    const calls: string[] = [];
    const storage = host.storage;
    host.storage = {
      get: (key) => {
        calls.push(`get ${key}`);
        return storage.get(key);
      },
      put: async (key, value) => {
        calls.push(`put ${key}`);
        await options.holdPut?.(value);
        return storage.put(key, value);
      },
      delete: (key) => {
        calls.push(`delete ${key}`);
        return storage.delete(key);
      },
      list: (prefix) => storage.list(prefix),
      usage: () => storage.usage(),
    };
    const sandbox = await createAppSandbox({
      manifest: sampleManifest({
        package_id: ID,
        resources: { memoryMb: 16, cpuMsPerEvent: 1000, storageMb: 1 },
        endpoints: [{ name: 'go', direction: 'destination', dataType: 'tests.go', format: 'json' }],
      }),
      host,
      files: new Map([['app/main.js', app(body)]]),
    });
    running.push(sandbox);
    await sandbox.start();
    await sandbox.deliver('go', jsonBatch({}));
    const line = await host.waitForLog(/^(done|failed) /);
    return { line, calls, host };
  }

  it('answers a get of a key it put without asking the host, with a copy the app may change', async () => {
    const { line, calls } = await run(`
      await storage.put('k', new Uint8Array([1, 2, 3]));
      const first = await storage.get('k');
      first[0] = 9;
      const second = await storage.get('k');
      await storage.put('s', 'text');
      return [Array.from(second), await storage.get('s')];`);
    assert.equal(line, 'done [[1,2,3],"text"]');
    assert.deepEqual(calls, ['put k', 'put s']);
  });

  it('stores the bytes as they were when put was called, whatever the app does to them before it is answered', async () => {
    const { line, host } = await run(`
      const value = new Uint8Array([1, 2, 3]);
      const put = storage.put('k', value);
      value[0] = 9;
      await put;
      return Array.from(await storage.get('k'));`);
    assert.equal(line, 'done [1,2,3]');
    assert.deepEqual(host.store.get('k'), new Uint8Array([1, 2, 3]));
  });

  it('keeps the old value after a refused put (E_STORAGE_QUOTA) and reads the key from the host', async () => {
    const { line, calls } = await run(
      `
      await storage.put('k', 'old');
      const refused = await storage.put('k', 'x'.repeat(200)).then(() => 'stored', (error) => error.code);
      return [refused, await storage.get('k')];`,
      { quotaBytes: 100 },
    );
    assert.equal(line, 'done ["E_STORAGE_QUOTA","old"]');
    assert.deepEqual(calls, ['put k', 'put k', 'get k']);
  });

  it('reads a key with a write in flight from the host (what it holds until the write is durable), and forgets a deleted key', async () => {
    const { line, calls } = await run(`
      await storage.put('k', 'one');
      const put = storage.put('k', 'two');
      const during = await storage.get('k');
      await put;
      await storage.delete('k');
      return [during, await storage.get('k')];`);
    assert.equal(line, 'done ["one",null]');
    assert.deepEqual(calls, ['put k', 'put k', 'get k', 'delete k', 'get k']);
  });

  it('keeps nothing of puts of one key that overlapped, whatever order the host applied them in', async () => {
    let releaseFirst!: () => void;
    const firstHeld = new Promise<void>((resolve) => {
      releaseFirst = resolve;
    });
    const { line } = await run(
      `
      const first = storage.put('k', 'first');
      const second = storage.put('k', 'second');
      await second;
      await first;
      const read = await storage.get('k');
      return [read, await storage.get('k')];`,
      {
        // The host answers the second put first: the first is held until the second is stored.
        holdPut: (value) => {
          if (value === 'first') return firstHeld;
          setImmediate(releaseFirst);
          return undefined;
        },
      },
    );
    // The fake host stores in the order the puts finish: 'first' last. What the app reads must be
    // what the host holds, not the value of the put it asked for last; the read's answer is kept.
    assert.equal(line, 'done ["first","first"]');
  });
});
