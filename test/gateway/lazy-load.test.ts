/**
 * What the compiled commands load: a client command loads no isolate runtime, and a gateway
 * with an external store loads neither the store nor its bundler. Run against dist/, which
 * `npm test` builds first.
 */
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import path from 'node:path';

const REGISTER = path.resolve('test/fixtures/record-imports/register.mjs');

function modulesLoadedBy(entry: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--no-node-snapshot', '--import', REGISTER, '--input-type=module', '-e', `await import(${JSON.stringify(path.resolve(entry))})`],
      (error, _stdout, stderr) => {
        if (error) return reject(new Error(`${entry} failed to load: ${stderr}`));
        resolve(
          stderr
            .split('\n')
            .filter((line) => line.startsWith('resolved '))
            .map((line) => line.slice('resolved '.length)),
        );
      },
    );
  });
}

const loadsAny = (urls: string[], names: string[]): string[] =>
  urls.filter((url) => names.some((name) => url.includes(`/node_modules/${name}/`) || url.includes(`/dist/${name}/`)));

describe('what the compiled commands load', function () {
  this.timeout(30_000);

  it('the isogate client loads no isolate runtime, worker pool, bundler or store', async () => {
    const urls = await modulesLoadedBy('dist/platform/cli/main.js');
    assert.ok(
      urls.some((url) => url.endsWith('/dist/platform/api/control-socket.js')),
      'the recorder saw the client load',
    );
    assert.deepEqual(loadsAny(urls, ['isolated-vm', 'piscina', 'esbuild', 'koa', 'store-mock', 'tsx']), []);
  });

  it('the gateway loads the embedded store and its bundler only when it runs one', async () => {
    const urls = await modulesLoadedBy('dist/platform/main.js');
    assert.ok(
      urls.some((url) => url.includes('/node_modules/isolated-vm/')),
      'the recorder saw the gateway load',
    );
    assert.deepEqual(loadsAny(urls, ['esbuild', 'koa', 'store-mock', 'tsx']), []);
  });
});
