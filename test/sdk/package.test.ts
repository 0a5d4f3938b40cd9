import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { isIsogateError } from '../../sdk/errors.js';
import { buildPackage, readManifestUnverified, readPackage, signPackage } from '../../sdk/package/index.js';
import { buildSignedPackage, HOSTILE_PACKAGES, hostileManifest, SAMPLE_FILES, sampleManifest } from '../fixtures/packages.js';
import { createTestPki, type TestPki } from '../fixtures/pki.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

async function entryNames(pkg: Buffer): Promise<string[]> {
  const extract = tar.extract();
  const names: string[] = [];
  const done = (async () => {
    for await (const entry of extract) {
      names.push(entry.header.name);
      entry.resume();
    }
  })();
  extract.end(gunzipSync(pkg));
  await done;
  return names;
}

describe('package format', function () {
  this.timeout(60_000);
  let pki: TestPki;
  let dir: string;
  before(async () => {
    pki = await createTestPki();
  });
  beforeEach(async () => {
    dir = await makeTempDir();
  });
  afterEach(() => removeDir(dir));

  it('round-trips: build, sign, verify against the root, extract', async () => {
    const pkg = await buildSignedPackage({ signer: pki.publisher });
    const out = path.join(dir, 'out');
    await fs.mkdir(out);
    const verified = await readPackage(pkg, { trust: { trustRootsPem: [pki.root.certPem] }, extractTo: out });
    assert.equal(verified.manifest.package_id, 'com.example.sample');
    assert.equal(verified.signatureChecked, true);
    assert.match(verified.signer!.subject, /CN=Example Publisher/);
    assert.deepEqual(Object.keys(verified.digests).sort(), ['app/lib.js', 'app/main.js', 'manifest.json']);
    assert.equal(await fs.readFile(path.join(out, 'app/lib.js'), 'utf8'), SAMPLE_FILES['app/lib.js']);
    assert.deepEqual(await entryNames(pkg), [
      'manifest.json',
      'app/lib.js',
      'app/main.js',
      'META-INF/DIGESTS.json',
      'META-INF/DIGESTS.sig',
      'META-INF/CHAIN.pem',
    ]);
  });

  it('accepts a signer chained through an intermediate', async () => {
    const pkg = await buildSignedPackage({ signer: pki.intermediatePublisher });
    const verified = await readPackage(pkg, { trust: { trustRootsPem: [pki.root.certPem] } });
    assert.equal(verified.signer!.chain.length, 2);
  });

  it('builds reproducibly: the same sources give the same bytes', async () => {
    const files = new Map(Object.entries(SAMPLE_FILES).map(([k, v]) => [k, Buffer.from(v)]));
    const first = await buildPackage(sampleManifest(), files);
    const second = await buildPackage(sampleManifest(), new Map([...files.entries()].reverse()));
    assert.deepEqual(first, second);
  });

  it('builds the fastest gzip for a push: larger, as reproducible, and the same files verified', async () => {
    const files = new Map(
      Object.entries({ ...SAMPLE_FILES, 'app/big.js': `${'export const x = [1, 2, 3];\n'.repeat(4000)}` }).map(([k, v]) => [k, Buffer.from(v)]),
    );
    const smallest = await buildPackage(sampleManifest(), files);
    const fastest = await buildPackage(sampleManifest(), files, { compression: 'fastest' });
    assert.deepEqual(await buildPackage(sampleManifest(), files, { compression: 'fastest' }), fastest);
    assert.ok(fastest.length > smallest.length, `level 1 (${fastest.length} bytes) is larger than level 9 (${smallest.length})`);
    const trust = { allowUnsigned: true } as const;
    const [a, b] = await Promise.all([readPackage(smallest, { trust }), readPackage(fastest, { trust })]);
    assert.deepEqual(b.digests, a.digests);
  });

  it('reads the manifest of a package without the rest of it, and refuses what has none', async () => {
    const files = new Map([['app/main.js', randomBytes(256 * 1024)]]);
    const pkg = await buildPackage(sampleManifest(), files);
    // Cut inside the incompressible file that follows manifest.json: verification reads to the
    // end and refuses; the manifest alone is there to read.
    const cut = pkg.subarray(0, 64 * 1024);
    assert.equal((await readManifestUnverified(cut)).package_id, 'com.example.sample');
    await assert.rejects(readPackage(cut, { trust: { allowUnsigned: true } }), (error: unknown) => isIsogateError(error) && error.code === 'E_PACKAGE_FORMAT');
    // A package that names no manifest is read to its end and refused, as before.
    const pack = tar.pack();
    pack.entry({ name: 'app/main.js' }, 'x');
    pack.finalize();
    const chunks: Buffer[] = [];
    for await (const chunk of pack) chunks.push(chunk as Buffer);
    await assert.rejects(readManifestUnverified(gzipSync(Buffer.concat(chunks))), (error: unknown) => isIsogateError(error) && error.code === 'E_FILE_SET');
  });

  it('has a signature that openssl verifies by hand, as PACKAGE-FORMAT.md describes', async () => {
    const pkg = await buildSignedPackage({ signer: pki.publisher });
    const out = path.join(dir, 'x');
    await fs.mkdir(out);
    await readPackage(pkg, { trust: { trustRootsPem: [pki.root.certPem] }, extractTo: out });
    await fs.writeFile(path.join(dir, 'pub.pem'), execFileSync('openssl', ['x509', '-pubkey', '-noout', '-in', path.join(out, 'META-INF/CHAIN.pem')]));
    const verdict = execFileSync('openssl', [
      'dgst',
      '-sha256',
      '-verify',
      path.join(dir, 'pub.pem'),
      '-signature',
      path.join(out, 'META-INF/DIGESTS.sig'),
      path.join(out, 'META-INF/DIGESTS.json'),
    ]).toString();
    assert.match(verdict, /Verified OK/);
  });

  it('inspects without trusting: signer details but signatureChecked false', async () => {
    const pkg = await buildSignedPackage({ signer: pki.otherPublisher });
    const inspected = await readPackage(pkg, { trust: { inspectOnly: true } });
    assert.equal(inspected.signatureChecked, false);
    assert.match(inspected.signer!.subject, /Other Publisher/);
  });

  it('accepts an unsigned package only when unsigned packages are allowed', async () => {
    const unsigned = await buildPackage(
      sampleManifest(),
      new Map([
        ['app/main.js', Buffer.from('1')],
        ['app/lib.js', Buffer.from('2')],
      ]),
    );
    await assert.rejects(readPackage(unsigned, { trust: { trustRootsPem: [pki.root.certPem] } }), (error: unknown) => isIsogateError(error, 'E_SIGNATURE'));
    const verified = await readPackage(unsigned, { trust: { allowUnsigned: true } });
    assert.equal(verified.signer, null);
  });

  it('re-signing replaces the old signature', async () => {
    const first = await buildSignedPackage({ signer: pki.otherPublisher });
    const resigned = await signPackage(first, { keyPem: pki.publisher.keyPem, certPem: pki.publisher.certPem });
    const verified = await readPackage(resigned, { trust: { trustRootsPem: [pki.root.certPem] } });
    assert.match(verified.signer!.subject, /Example Publisher/);
  });

  it("refuses to sign with a key that is not the certificate's", async () => {
    const unsigned = await buildPackage(sampleManifest(), new Map([['app/main.js', Buffer.from('1')]]));
    await assert.rejects(signPackage(unsigned, { keyPem: pki.otherPublisher.keyPem, certPem: pki.publisher.certPem }), (error: unknown) =>
      isIsogateError(error, 'E_CERT_KEY_MISMATCH'),
    );
  });

  it('refuses to build with an invalid manifest, naming the pointer', async () => {
    await assert.rejects(
      buildPackage(hostileManifest({ version: 'one' }), new Map([['app/main.js', Buffer.from('1')]])),
      (error: unknown) => isIsogateError(error, 'E_MANIFEST') && /\/version/.test(error.message),
    );
  });

  it(`has at least 30 hostile packages (${HOSTILE_PACKAGES.length})`, () => {
    assert.ok(HOSTILE_PACKAGES.length >= 30);
  });

  for (const hostile of HOSTILE_PACKAGES) {
    it(`refuses ${hostile.name} with ${hostile.expectedCode}, leaving the extraction directory empty`, async () => {
      const bytes = await hostile.make(pki);
      const out = path.join(dir, 'extract');
      await fs.mkdir(out);
      await assert.rejects(readPackage(bytes, { trust: { trustRootsPem: [pki.root.certPem] }, extractTo: out }), (error: unknown) => {
        assert.ok(isIsogateError(error), String(error));
        assert.equal(error.code, hostile.expectedCode, error.message);
        return true;
      });
      assert.deepEqual(await fs.readdir(out), []);
    });
  }
});
