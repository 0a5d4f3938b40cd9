import { strict as assert } from 'node:assert';
import { promises as fs } from 'node:fs';
import path from 'node:path';
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

  it('answers unknown paths with a JSON error, never a stack trace', async () => {
    const response = await get('/api/v1/nothing');
    assert.equal(response.status, 404);
    assert.deepEqual(Object.keys(((await response.json()) as { error: object }).error), ['code', 'message']);
  });
});
