import { strict as assert } from 'node:assert';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { MemoryAuditLog } from '../../platform/audit/index.js';
import { ConfigStore } from '../../platform/config/index.js';
import { memoryDeviceKeys } from '../../platform/device/index.js';
import { HttpStoreClient, Orchestrator } from '../../platform/orchestrator/index.js';
import { buildPackage, signPackage } from '../../sdk/package/index.js';
import { type ServingStore, serveStore } from '../../store-mock/server.js';
import { packageEntries, rawPackage, replace, SAMPLE_FILES, sampleManifest } from '../fixtures/packages.js';
import { createTestPki } from '../fixtures/pki.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

const files = () => new Map(Object.entries(SAMPLE_FILES).map(([k, v]) => [k, Buffer.from(v)]));

describe('store-mock', () => {
  let dir: string;
  let serving: ServingStore;
  let signed: Buffer;
  let signer: { keyPem: string; certPem: string };

  before(async () => {
    dir = await makeTempDir('isogate-store-');
    serving = await serveStore({ dir: path.join(dir, 'store'), port: 0 });
    const publisher = await serving.store.issuePublisher('Test publisher', path.join(dir, 'publisher'));
    signer = { keyPem: await fs.readFile(publisher.keyPath, 'utf8'), certPem: await fs.readFile(publisher.certPath, 'utf8') };
    signed = await signPackage(await buildPackage(sampleManifest(), files()), signer);
  });
  after(async () => {
    await serving.close();
    await removeDir(dir);
  });

  const get = (url: string, headers: Record<string, string> = {}) => fetch(`${serving.url}${url}`, { headers });

  it('publishes a package signed by its own publisher and serves catalog and bytes', async () => {
    const entry = await serving.store.publish(signed);
    const catalog = (await (await get('/api/v1/apps')).json()) as { apps: { package_id: string; size: number; status: string; sha256: string }[] };
    assert.deepEqual(
      catalog.apps.map((a) => [a.package_id, a.size, a.status]),
      [[entry.package_id, signed.length, 'available']],
    );
    const response = await get(`/api/v1/apps/${entry.package_id}/${entry.version}/package`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-length'), String(signed.length));
    assert.equal(response.headers.get('etag'), `"${entry.sha256}"`);
    assert.deepEqual(Buffer.from(await response.arrayBuffer()), signed);
  });

  it('answers single Range requests with 206 and an unsatisfiable one with 416', async () => {
    const [entry] = await serving.store.catalog();
    const url = `/api/v1/apps/${entry!.package_id}/${entry!.version}/package`;
    const partial = await get(url, { Range: 'bytes=10-19' });
    assert.equal(partial.status, 206);
    assert.equal(partial.headers.get('content-range'), `bytes 10-19/${signed.length}`);
    assert.deepEqual(Buffer.from(await partial.arrayBuffer()), signed.subarray(10, 20));
    const suffix = await get(url, { Range: 'bytes=-5' });
    assert.deepEqual(Buffer.from(await suffix.arrayBuffer()), signed.subarray(signed.length - 5));
    const unsatisfiable = await get(url, { Range: `bytes=${signed.length}-` });
    assert.equal(unsatisfiable.status, 416);
    assert.equal(((await unsatisfiable.json()) as { error: { code: string } }).error.code, 'E_RANGE');
  });

  it('never changes a published version: the same bytes again are a no-op, other bytes are refused', async () => {
    const [entry] = (await serving.store.catalog()).filter((e) => e.package_id === sampleManifest().package_id);
    const catalogBefore = await fs.readFile(serving.store.catalogFile, 'utf8');
    assert.deepEqual(await serving.store.publish(signed), entry);
    const other = await signPackage(await buildPackage(sampleManifest(), new Map([...files(), ['app/extra.js', Buffer.from('// other content')]])), signer);
    await assert.rejects(serving.store.publish(other), { code: 'E_VERSION_EXISTS' });
    assert.equal(await fs.readFile(serving.store.catalogFile, 'utf8'), catalogBefore);
    const served = await get(`/api/v1/apps/${entry!.package_id}/${entry!.version}/package`);
    assert.deepEqual(Buffer.from(await served.arrayBuffer()), signed);
  });

  it('refuses, unchanged, a package signed under another root or tampered; --unchecked lists it', async () => {
    const pki = await createTestPki();
    const foreign = await signPackage(await buildPackage(sampleManifest({ package_id: 'dev.isogate.tests.foreign' }), files()), pki.otherPublisher);
    const before = await fs.readFile(serving.store.catalogFile, 'utf8');
    await assert.rejects(serving.store.publish(foreign), { code: 'E_CERTIFICATE' });
    const tampered = await rawPackage(replace(await packageEntries(signed), 'app/main.js', Buffer.from('globalThis.evil = true;')));
    await assert.rejects(serving.store.publish(tampered), { code: 'E_DIGEST' });
    assert.equal(await fs.readFile(serving.store.catalogFile, 'utf8'), before);
    const listed = await serving.store.publish(foreign, { unchecked: true });
    assert.equal(listed.package_id, 'dev.isogate.tests.foreign');
    const garbage = await serving.store.publish(Buffer.from('not a package'), { unchecked: true, packageId: 'dev.isogate.tests.garbage', version: '1.0.0' });
    assert.equal(garbage.size, 13);
  });

  it('acts at once on a serving store: compromise shows, delist removes listing and file', async () => {
    const [entry] = (await serving.store.catalog()).filter((e) => e.package_id === sampleManifest().package_id);
    await serving.store.compromise(entry!.package_id, entry!.version);
    const catalog = (await (await get('/api/v1/apps')).json()) as { apps: { package_id: string; status: string }[] };
    assert.equal(catalog.apps.find((a) => a.package_id === entry!.package_id)?.status, 'compromised');
    await serving.store.delist(entry!.package_id, entry!.version);
    const gone = await get(`/api/v1/apps/${entry!.package_id}/${entry!.version}/package`);
    assert.equal(gone.status, 404);
    assert.equal(((await gone.json()) as { error: { code: string } }).error.code, 'E_NOT_FOUND');
    await assert.rejects(fs.stat(path.join(serving.store.dir, 'packages', entry!.package_id, `${entry!.version}.igp`)), { code: 'ENOENT' });
    await assert.rejects(serving.store.delist(entry!.package_id, entry!.version), { code: 'E_NOT_FOUND' });
  });

  it('lists every version it has of an app, in semver order, and a gateway installs the one asked for or the newest', async function () {
    this.timeout(120_000);
    const id = 'dev.isogate.tests.versions';
    const versions = ['1.10.0', '1.2.0', '1.9.0'];
    for (const version of versions) {
      await serving.store.publish(await signPackage(await buildPackage(sampleManifest({ package_id: id, name: 'Versions', version }), files()), signer));
    }
    // A compromised store may list what is no version: it sorts last and hides nothing.
    await serving.store.publish(Buffer.from('not a package'), { unchecked: true, packageId: id, version: 'latest' });
    const listed = async (url: string) =>
      ((await (await get(url)).json()) as { apps: { package_id: string; version: string }[] }).apps.filter((a) => a.package_id === id).map((a) => a.version);
    // The unchecked listing has no manifest name, so it is listed under its id, apart from the named ones.
    const expected = ['1.2.0', '1.9.0', '1.10.0'];
    const semverOnes = (list: string[]) => list.filter((version) => version !== 'latest');
    for (const url of ['/api/v1/apps', `/api/v1/apps/${id}`]) {
      const all = await listed(url);
      assert.deepEqual(semverOnes(all), expected, url);
      assert.equal(all.length, 4, url);
    }

    const gatewayDir = path.join(dir, 'gateway');
    await fs.mkdir(gatewayDir, { mode: 0o700 });
    const orchestrator = await Orchestrator.open({
      dataDir: gatewayDir,
      store: new HttpStoreClient({ url: serving.url, maxPackageBytes: 16 * 1024 * 1024 }),
      config: await ConfigStore.open(path.join(gatewayDir, 'config.json'), 'test'),
      audit: new MemoryAuditLog(),
      keys: memoryDeviceKeys(),
      trustRootsPem: [serving.store.rootCertPem],
    });
    try {
      const available = (await orchestrator.available()).filter((a) => a.package_id === id).map((a) => a.version);
      assert.deepEqual(semverOnes(available), expected);
      assert.equal(available.length, 4);
      assert.equal((await orchestrator.install(id, { version: '1.2.0' })).version, '1.2.0');
      await orchestrator.uninstall(id);
      await assert.rejects(orchestrator.install(id, { version: 'latest' }), { code: 'E_STORE' });
      // The newest by semver (1.10.0, not 1.9.0 by text), never the entry that is no version.
      assert.equal((await orchestrator.install(id)).version, '1.10.0');
    } finally {
      await orchestrator.close();
    }
  });

  it('answers unknown paths with a JSON error, never a stack trace', async () => {
    const response = await get('/api/v1/nothing');
    assert.equal(response.status, 404);
    assert.deepEqual(Object.keys(((await response.json()) as { error: object }).error), ['code', 'message']);
  });
});
