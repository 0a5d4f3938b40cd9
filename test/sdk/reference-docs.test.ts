import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const root = path.resolve(import.meta.dirname, '../..');

// `npm run docs:sdk` (typedoc over the SDK's typings), written elsewhere so the test leaves sdk/docs alone.
describe('the SDK reference (typedoc)', function () {
  this.timeout(120_000);
  it('builds from the typings without a warning and documents the app API and the harness', async () => {
    const out = await mkdtemp(path.join(tmpdir(), 'isogate-docs-'));
    try {
      const typedoc = path.join(root, 'node_modules', 'typedoc', 'bin', 'typedoc');
      await promisify(execFile)(process.execPath, [typedoc, '--options', path.join(root, 'sdk', 'typedoc.json'), '--out', out], { cwd: root });
      const emit = await readFile(path.join(out, 'functions', 'isogate-sdk.emit.html'), 'utf8');
      assert.match(emit, /E_BACKPRESSURE/);
      const startApp = await readFile(path.join(out, 'functions', 'harness.startApp.html'), 'utf8');
      assert.match(startApp, /HarnessOptions/);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});
