/**
 * One package owns the `isogate-sdk` command: the SDK's (the sdk/ workspace). The repository
 * declared it too, running its own dist/, so that `npx isogate-sdk` in the repository and in an
 * app project could run two different builds of the same command.
 */
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { SDK_BIN } from '../fixtures/sdk-bin.js';

const ROOT = path.resolve(import.meta.dirname, '../..');

async function json(file: string): Promise<Record<string, unknown>> {
  return JSON.parse(await fs.readFile(path.join(ROOT, file), 'utf8')) as Record<string, unknown>;
}

describe('the isogate-sdk command', function () {
  this.timeout(60_000);

  it('is declared by the SDK package only, in package.json and in the lock alike', async () => {
    const root = await json('package.json');
    const sdk = await json('sdk/package.json');
    assert.equal((root.bin as Record<string, string>)['isogate-sdk'], undefined, 'the repository declares no isogate-sdk bin');
    assert.ok((root.workspaces as string[]).includes('sdk'), 'the SDK is a workspace of the repository');
    assert.equal((sdk.bin as Record<string, string>)['isogate-sdk'], 'bin/isogate-sdk.mjs');
    const lock = (await json('package-lock.json')) as { packages: Record<string, { bin?: Record<string, string> }> };
    const owners = Object.entries(lock.packages)
      .filter(([, entry]) => entry.bin?.['isogate-sdk'] !== undefined)
      .map(([where]) => where);
    assert.deepEqual(owners, ['sdk']);
    await assert.rejects(fs.stat(path.join(ROOT, 'bin', 'isogate-sdk.mjs')), { code: 'ENOENT' });
  });

  it("runs from the workspace (its bundle, which npm run build makes) and prints its usage with the SDK's version", async () => {
    const sdk = await json('sdk/package.json');
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, [SDK_BIN, '--help'], { timeout: 30_000 }, (error, out) => (error ? reject(error) : resolve(out)));
    });
    assert.ok(stdout.includes(`isogate-sdk ${String(sdk.version)} `), stdout);
  });
});
