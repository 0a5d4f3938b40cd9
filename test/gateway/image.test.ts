/**
 * The gateway's own image: `startGateway({ imageDir, platformTrustRootFile })` installs the
 * image's packages verified against the platform root only; one signed by anyone else is
 * refused and audited, and the gateway still starts.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { type Gateway, startGateway } from '../../platform/main.js';
import { buildSignedPackage, sampleManifest } from '../fixtures/packages.js';
import { createTestPki } from '../fixtures/pki.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

describe('pre-installed packages from the gateway image', function () {
  this.timeout(120_000);
  let dir: string;
  let gateway: Gateway | undefined;

  before(async () => {
    dir = await makeTempDir();
  });
  after(async () => {
    await gateway?.close();
    await removeDir(dir);
  });

  it('installs the platform-signed package with origin image and refuses one a store publisher signed', async () => {
    const pki = await createTestPki();
    const image = path.join(dir, 'image');
    await fs.mkdir(image);
    const files = { 'app/main.js': 'export {};\n' };
    const protector = sampleManifest({
      package_id: 'dev.isogate.network-protector',
      name: 'Network Protector',
      type: 'security',
      capabilities: ['traffic.inspect', 'traffic.block'],
    });
    await fs.writeFile(path.join(image, 'a-protector.igp'), await buildSignedPackage({ manifest: protector, signer: pki.platformSigner, files }));
    const impostor = sampleManifest({ package_id: 'com.example.impostor', name: 'Impostor', capabilities: ['traffic.inspect'] });
    await fs.writeFile(path.join(image, 'b-impostor.igp'), await buildSignedPackage({ manifest: impostor, signer: pki.publisher, files }));
    const platformRoot = path.join(dir, 'platform-root.pem');
    await fs.writeFile(platformRoot, pki.platformRoot.certPem);

    gateway = await startGateway({ dataDir: path.join(dir, 'data'), imageDir: image, platformTrustRootFile: platformRoot });
    const apps = gateway.services.installedApps();
    assert.deepEqual(
      apps.map((app) => [app.package_id, app.origin, app.publisher]),
      [['dev.isogate.network-protector', 'image', 'CN=isogate platform, O=isogate tests']],
    );
    const refused = (await gateway.services.audit.list({ limit: 50 })).find((record) => record.event === 'signatureError');
    assert.ok(refused, 'the impostor is audited');
    assert.equal(refused.details?.packageId, 'com.example.impostor');
    assert.equal(refused.details?.code, 'E_CERTIFICATE');
    await assert.rejects(fs.stat(path.join(dir, 'data', 'apps', 'com.example.impostor')), { code: 'ENOENT' });
  });
});
