/**
 * Answers that are not one JSON document: an app's log archive as a download, and operations that
 * report progress (install, log lines) as NDJSON lines when asked, or as one answer once done.
 */
import { strict as assert } from 'node:assert';
import { Readable } from 'node:stream';
import { fail } from '../../sdk/errors.js';
import { type ApiClient, assertError, type Harness, readyClient, startHarness } from './harness.js';

const APP = 'com.example.app';
const ARCHIVE = Buffer.from(Array.from({ length: 200_000 }, (_, index) => index % 251));

describe('REST API downloads and progress', function () {
  this.timeout(60_000);
  let harness: Harness;
  let admin: ApiClient;
  const installs: string[] = [];

  before(async () => {
    const logsOf = (id: string): void => {
      if (id !== APP) throw fail('E_NOT_INSTALLED', `${id} is not installed`);
    };
    harness = await startHarness(
      {},
      {
        logArchiveInfo: async (id: string) => {
          logsOf(id);
          return { fileName: `log_files_${id}.tar.gz`, files: 2, uncompressedBytes: 1, estimatedBytes: 1 };
        },
        logArchive: async (id: string) => {
          logsOf(id);
          return Readable.from([ARCHIVE.subarray(0, 65_536), ARCHIVE.subarray(65_536)]);
        },
        followLog: async (id: string) => {
          logsOf(id);
          const batches = [['one', 'two'], ['three']];
          return { next: async () => batches.shift(), close: async () => undefined, dropped: () => 0 };
        },
        orchestrator: {
          install: async (id: string, options: { onProgress: (progress: unknown) => void }) => {
            installs.push(id);
            options.onProgress({ phase: 'download', bytes: 10, total: 20 });
            options.onProgress({ phase: 'download', bytes: 20, total: 20 });
            if (id === 'com.example.broken') throw fail('E_SIGNATURE', 'The signature does not verify');
            return { packageId: id, version: '1.0.0', manifest: { name: 'Example' } };
          },
        },
      },
    );
    admin = await readyClient(harness, 'admin');
  });
  after(async () => {
    await harness.close();
  });

  it("sends an app's log archive as a named gzip download, audited as a log export", async () => {
    const answer = await admin.call('GET', `/apps/${APP}/logs/archive`);
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['content-type'], 'application/gzip');
    assert.equal(answer.headers['content-disposition'], `attachment; filename="log_files_${APP}.tar.gz"`);
    assert.ok(answer.bytes.equals(ARCHIVE), 'the archive arrives byte for byte');
    assert.ok(harness.audit.events().includes('logExport'));
    assertError(await admin.call('GET', '/apps/com.example.other/logs/archive'), 'E_NOT_INSTALLED', 404);
  });

  it('streams install progress as NDJSON lines ending with the result or the error', async () => {
    const answer = await admin.call('POST', '/apps', { body: { id: APP }, headers: { accept: 'application/x-ndjson' } });
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['content-type'], 'application/x-ndjson');
    assert.deepEqual(
      answer.text
        .trimEnd()
        .split('\n')
        .map((line) => JSON.parse(line)),
      [
        { progress: { phase: 'download', bytes: 10, total: 20 } },
        { progress: { phase: 'download', bytes: 20, total: 20 } },
        { result: { package_id: APP, name: 'Example', version: '1.0.0' } },
      ],
    );
    const broken = await admin.call('POST', '/apps', { body: { id: 'com.example.broken' }, headers: { accept: 'application/x-ndjson' } });
    assert.deepEqual(JSON.parse(broken.text.trimEnd().split('\n').at(-1)!), {
      error: { code: 'E_SIGNATURE', message: 'The signature does not verify', details: {} },
    });
    // Without asking for the stream, the answer comes once the work is done, with the error's own status.
    const once = await admin.call('POST', '/apps', { body: { id: APP } });
    assert.deepEqual(once.json, { package_id: APP, name: 'Example', version: '1.0.0' });
    assertError(await admin.call('POST', '/apps', { body: { id: 'com.example.broken' } }), 'E_SIGNATURE', 422);
    assert.deepEqual(installs, [APP, 'com.example.broken', APP, 'com.example.broken']);
  });

  it('answers log lines at once, and follows only as a stream', async () => {
    const answer = await admin.call('GET', `/apps/${APP}/logs/lines?tail=10`);
    assert.deepEqual(answer.json, { package_id: APP, lines: ['one', 'two', 'three'], dropped: 0 });
    assertError(await admin.call('GET', `/apps/${APP}/logs/lines?follow=true`), 'E_BAD_REQUEST', 400);
  });
});
