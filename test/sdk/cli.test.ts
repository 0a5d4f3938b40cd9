import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { SDK_BIN } from '../fixtures/sdk-bin.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

const ROOT = path.resolve(import.meta.dirname, '../..');

function run(bin: 'isogate-sdk' | 'isogate-store', args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    // isogate-sdk is the SDK workspace's bin; isogate-store the repository's.
    const command = bin === 'isogate-sdk' ? SDK_BIN : path.join(ROOT, 'bin', `${bin}.mjs`);
    const child = spawn(process.execPath, [command, ...args], { cwd });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

describe('isogate-sdk and isogate-store command lines', function () {
  this.timeout(60_000);
  let dir: string;
  before(async () => {
    dir = await makeTempDir('isogate-cli-');
  });
  after(() => removeDir(dir));

  it('init, build, sign with a store-issued certificate, verify, inspect, publish: the tour', async () => {
    const init = await run('isogate-sdk', ['init', 'my-app', '--id', 'com.example.my-app', '--json'], dir);
    assert.equal(init.code, 0, init.stderr);
    assert.equal(JSON.parse(init.stdout).package_id, 'com.example.my-app');
    assert.equal((await run('isogate-sdk', ['init', 'my-app'], dir)).code, 1, 'init refuses a non-empty directory');

    const build = await run('isogate-sdk', ['build', 'my-app', '--json'], dir);
    assert.equal(build.code, 0, build.stderr);
    const pkg = JSON.parse(build.stdout).package as string;
    assert.equal(path.basename(pkg), 'com.example.my-app-0.1.0.igp');

    const issued = await run('isogate-store', ['issue-publisher', '--data', 'store', '--name', 'Example', '--out', 'keys', '--json'], dir);
    assert.equal(issued.code, 0, issued.stderr);
    assert.equal((await fs.stat(path.join(dir, 'keys', 'publisher.key.pem'))).mode & 0o777, 0o600);

    const unsignedPublish = await run('isogate-store', ['publish', pkg, '--data', 'store', '--json'], dir);
    assert.equal(unsignedPublish.code, 1);
    assert.equal(JSON.parse(unsignedPublish.stdout).error.code, 'E_SIGNATURE');

    const sign = await run(
      'isogate-sdk',
      ['sign', pkg, '--key', 'keys/publisher.key.pem', '--cert', 'keys/publisher.cert.pem', '--chain', 'keys/chain.pem'],
      dir,
    );
    assert.equal(sign.code, 0, sign.stderr);
    const verify = await run('isogate-sdk', ['verify', pkg, '--trust', 'store/ca/root.cert.pem', '--json'], dir);
    assert.equal(verify.code, 0, verify.stderr);
    assert.equal(JSON.parse(verify.stdout).ok, true);

    const inspect = JSON.parse((await run('isogate-sdk', ['inspect', pkg, '--json'], dir)).stdout) as {
      package_id: string;
      files: { path: string; sha256: string }[];
      signer: { subject: string };
    };
    assert.equal(inspect.package_id, 'com.example.my-app');
    assert.deepEqual(
      inspect.files.map((f) => f.path),
      ['app/main.js', 'manifest.json'],
    );
    assert.match(inspect.signer.subject, /CN=Example/);

    const publish = await run('isogate-store', ['publish', pkg, '--data', 'store', '--json'], dir);
    assert.equal(publish.code, 0, publish.stderr);
    const catalog = JSON.parse((await run('isogate-store', ['catalog', '--data', 'store', '--json'], dir)).stdout) as { apps: { package_id: string }[] };
    assert.deepEqual(
      catalog.apps.map((a) => a.package_id),
      ['com.example.my-app'],
    );
  });

  it("refuses a key that is not the certificate's, and a package signed under another root", async () => {
    await run('isogate-sdk', ['keygen', '--out', 'other', '--self-signed'], dir);
    const pkg = path.join(dir, 'my-app', 'dist', 'com.example.my-app-0.1.0.igp');
    const mismatch = await run('isogate-sdk', ['sign', pkg, '--key', 'other/key.pem', '--cert', 'keys/publisher.cert.pem', '--json'], dir);
    assert.equal(JSON.parse(mismatch.stdout).error.code, 'E_CERT_KEY_MISMATCH');
    await run('isogate-sdk', ['sign', pkg, '--key', 'other/key.pem', '--cert', 'other/cert.pem', '-o', 'self.igp'], dir);
    const verify = await run('isogate-sdk', ['verify', 'self.igp', '--trust', 'store/ca/root.cert.pem', '--json'], dir);
    assert.equal(verify.code, 1);
    assert.equal(JSON.parse(verify.stdout).error.code, 'E_CERTIFICATE');
  });

  it('refuses an app that imports a Node API at build time', async () => {
    await fs.writeFile(path.join(dir, 'my-app', 'src', 'main.ts'), "import { readFileSync } from 'node:fs';\nreadFileSync('/etc/passwd');\n");
    const build = await run('isogate-sdk', ['build', 'my-app', '--json'], dir);
    assert.equal(build.code, 1);
    const error = JSON.parse(build.stdout).error as { code: string; message: string };
    assert.equal(error.code, 'E_BUILD');
    assert.match(error.message, /node:fs.*Node API/);
  });

  it('exits 2 with E_USAGE on bad usage', async () => {
    for (const args of [['frobnicate'], ['sign', 'x.igp'], ['build', '--nope'], ['run', 'a', 'b'], ['debug']]) {
      const result = await run('isogate-sdk', args, dir);
      assert.equal(result.code, 2, args.join(' '));
      assert.match(result.stderr, /^E_USAGE: /);
    }
    const test = await run('isogate-sdk', ['test', '--json'], dir);
    assert.equal(test.code, 1);
    assert.equal(JSON.parse(test.stdout).error.code, 'E_BUILD', 'test outside a project: no manifest.json');
    assert.match((await run('isogate-sdk', ['debug'], dir)).stderr, /--gateway URL/);
    assert.equal((await run('isogate-store', ['publish', 'x.igp'], dir)).code, 2);
  });
});
