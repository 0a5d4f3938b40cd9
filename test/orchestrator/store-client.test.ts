/**
 * The store client against a hostile store on loopback: redirects (catalog and download) to a
 * second loopback server standing in for a service on the gateway's own side, and catalogs
 * with absurd fields. Nothing may reach the internal service and nothing may be installed.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { MemoryAuditLog } from '../../platform/audit/index.js';
import { ConfigStore } from '../../platform/config/index.js';
import { memoryDeviceKeys } from '../../platform/device/index.js';
import { HttpStoreClient, Orchestrator, WorkerPackageVerifier } from '../../platform/orchestrator/index.js';
import { isIsogateError } from '../../sdk/errors.js';
import { hasControls } from '../../sdk/text.js';
import { buildSignedPackage, sampleManifest } from '../fixtures/packages.js';
import { createTestPki, type TestPki } from '../fixtures/pki.js';
import { makeTempDir, removeDir, snapshotTree } from '../fixtures/temp.js';

type Handler = (request: http.IncomingMessage, response: http.ServerResponse) => void;

interface Served { url: string; requests: string[]; close(): Promise<void> }

async function serve(handler: Handler): Promise<Served> {
  const requests: string[] = [];
  const server = http.createServer((request, response) => {
    requests.push(`${request.method} ${request.url}`);
    handler(request, response);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

const REDIRECTS = [301, 302, 303, 307, 308] as const;

describe('store client against a hostile store', function () {
  this.timeout(60_000);
  let pki: TestPki;
  let dir: string;
  let internal: Served;
  let pkg: Buffer;
  const manifest = sampleManifest({ package_id: 'com.example.redirected' });
  const verifier = new WorkerPackageVerifier();

  before(async () => {
    pki = await createTestPki();
    pkg = await buildSignedPackage({ manifest, signer: pki.publisher });
    // The "internal service": any request it sees is a request the gateway was made to send.
    internal = await serve((_request, response) => { response.end('rebooting'); });
  });
  after(async () => {
    await verifier.close();
    await internal.close();
  });
  beforeEach(async () => { dir = await makeTempDir(); });
  afterEach(() => removeDir(dir));

  const entry = () => ({
    package_id: manifest.package_id, name: manifest.name, title: manifest.title, version: manifest.version,
    size: pkg.length, sha256: createHash('sha256').update(pkg).digest('hex'), categories: ['Testing'],
    published_at: '2026-01-01T00:00:00.000Z', status: 'available',
  });

  async function orchestratorOn(storeUrl: string): Promise<{ orchestrator: Orchestrator; config: ConfigStore; audit: MemoryAuditLog }> {
    const config = await ConfigStore.open(path.join(dir, 'config.json'), 'test');
    const audit = new MemoryAuditLog();
    const orchestrator = await Orchestrator.open({
      dataDir: dir, store: new HttpStoreClient({ url: storeUrl, maxPackageBytes: 1024 * 1024 }), config, audit,
      keys: memoryDeviceKeys(), verifier, trustRootsPem: [pki.root.certPem],
    });
    return { orchestrator, config, audit };
  }

  async function diskAndConfig(): Promise<unknown> {
    return {
      apps: [...(await snapshotTree(path.join(dir, 'apps'))).keys()],
      staging: [...(await snapshotTree(path.join(dir, 'staging'))).keys()],
      config: await fs.readFile(path.join(dir, 'config.json'), 'utf8'),
    };
  }

  for (const status of REDIRECTS) {
    it(`refuses a catalog answered with ${status} to an internal service: E_STORE_REDIRECT, no request there, nothing installed`, async () => {
      const reboot = `${internal.url}/api/reboot?confirm=1`;
      const store = await serve((_request, response) => { response.writeHead(status, { location: reboot }); response.end(); });
      try {
        const { orchestrator } = await orchestratorOn(store.url);
        const before = await diskAndConfig();
        const seen = internal.requests.length;
        await assert.rejects(orchestrator.available(), (error: unknown) => {
          assert.ok(isIsogateError(error, 'E_STORE_REDIRECT'), String(error));
          assert.match(error.message, new RegExp(`answered ${status} for its catalog, redirecting to Location "${reboot.replace(/[?.]/g, '\\$&')}"`));
          return true;
        });
        await assert.rejects(orchestrator.install(manifest.package_id), (error: unknown) => isIsogateError(error, 'E_STORE_REDIRECT'));
        assert.equal(internal.requests.length, seen, `the internal service saw ${internal.requests.slice(seen).join(', ')}`);
        assert.deepEqual(store.requests, ['GET /api/v1/apps', 'GET /api/v1/apps']);
        assert.deepEqual(orchestrator.list(), []);
        assert.deepEqual(await diskAndConfig(), before);
      } finally {
        await store.close();
      }
    });
  }

  for (const status of [302, 307] as const) {
    it(`refuses a package download answered with ${status} to an internal service: E_STORE_REDIRECT, nothing installed`, async () => {
      const store = await serve((request, response) => {
        if (request.url === '/api/v1/apps') {
          response.setHeader('content-type', 'application/json');
          response.end(JSON.stringify({ apps: [entry()] }));
        } else {
          response.writeHead(status, { location: `${internal.url}/api/reboot?confirm=1` });
          response.end();
        }
      });
      try {
        const { orchestrator, audit } = await orchestratorOn(store.url);
        const before = await diskAndConfig();
        const seen = internal.requests.length;
        await assert.rejects(orchestrator.install(manifest.package_id), (error: unknown) => {
          assert.ok(isIsogateError(error, 'E_STORE_REDIRECT'), String(error));
          assert.match(error.message, new RegExp(`answered ${status} for the package ${manifest.package_id} 1\\.0\\.0, redirecting`));
          return true;
        });
        assert.equal(internal.requests.length, seen, `the internal service saw ${internal.requests.slice(seen).join(', ')}`);
        assert.equal(store.requests.filter((r) => r.endsWith('/package')).length, 1);
        assert.deepEqual(orchestrator.list(), []);
        assert.deepEqual(await diskAndConfig(), before);
        assert.deepEqual(audit.records.map((r) => [r.event, r.details?.code]), [['downloadStarted', undefined], ['downloadError', 'E_STORE_REDIRECT']]);
      } finally {
        await store.close();
      }
    });
  }

  it('names a redirect\'s Location escaped: a C1 control in it does not reach the message raw', async () => {
    // Node sends U+009B as the Latin-1 byte 0x9b, which a fetch reads back as U+009B.
    const store = await serve((_request, response) => { response.writeHead(302, { location: '/x\u009b2J' }); response.end(); });
    try {
      const client = new HttpStoreClient({ url: store.url, maxPackageBytes: 1024 });
      await assert.rejects(client.catalog(), (error: unknown) => {
        assert.ok(isIsogateError(error, 'E_STORE_REDIRECT'), String(error));
        assert.ok(!hasControls(error.message), JSON.stringify(error.message));
        assert.match(error.message, /Location "\/x\\u\{9b\}2J"/);
        return true;
      });
    } finally {
      await store.close();
    }
  });

  it('keeps only the known, bounded fields of a catalog entry: a deeply nested extra never leaves the client', async () => {
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    const store = await serve((_request, response) => {
      response.end(`{"apps":[${JSON.stringify({ ...entry(), developer: { name: 'Dev' } }).slice(0, -1)},"extra":${deep}}]}`);
    });
    try {
      const [listed] = await new HttpStoreClient({ url: store.url, maxPackageBytes: 1024 }).catalog();
      assert.ok(listed);
      assert.equal(Object.hasOwn(listed, 'extra'), false);
      assert.deepEqual(listed.developer, { name: 'Dev' });
      // What the control socket does with every answer: it must not overflow the stack.
      assert.doesNotThrow(() => JSON.stringify(listed));
    } finally {
      await store.close();
    }
  });

  it('refuses catalog entries with absurd fields and a catalog declared larger than its bound', async () => {
    const absurd = [
      { developer: { name: { nested: [[['deep']]] } } },
      { categories: Array.from({ length: 1000 }, (_, i) => `c${i}`) },
      { size: 1e300 },
      { version: '../../etc' },
      { package_id: 'com.example.x/../../y' },
    ];
    for (const fields of absurd) {
      const store = await serve((_request, response) => { response.end(JSON.stringify({ apps: [{ ...entry(), ...fields }] })); });
      try {
        await assert.rejects(new HttpStoreClient({ url: store.url, maxPackageBytes: 1024 }).catalog(),
          (error: unknown) => isIsogateError(error, 'E_STORE'), JSON.stringify(fields).slice(0, 80));
      } finally {
        await store.close();
      }
    }
    const big = await serve((_request, response) => { response.writeHead(200, { 'content-length': String(2 * 1024 * 1024) }); response.write('{"apps":['); });
    try {
      await assert.rejects(new HttpStoreClient({ url: big.url, maxPackageBytes: 1024, maxCatalogBytes: 1024 * 1024 }).catalog(), (error: unknown) => {
        assert.ok(isIsogateError(error, 'E_STORE'), String(error));
        assert.match(error.message, /larger than 1048576 bytes/);
        return true;
      });
    } finally {
      await big.close();
    }
  });
});
