/**
 * The store client against a hostile store on loopback: redirects (catalog and download) to a
 * second loopback server standing in for a service on the gateway's own side, and catalogs
 * with absurd fields. Nothing may reach the internal service and nothing may be installed.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
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
import { createStoreServer } from '../../store-mock/server.js';
import { StoreData } from '../../store-mock/store.js';
import { buildSignedPackage, sampleManifest } from '../fixtures/packages.js';
import { createTestPki, type TestPki } from '../fixtures/pki.js';
import { makeTempDir, removeDir, snapshotTree } from '../fixtures/temp.js';

type Handler = (request: http.IncomingMessage, response: http.ServerResponse) => void;

interface Served {
  url: string;
  requests: string[];
  close(): Promise<void>;
}

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
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
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
    internal = await serve((_request, response) => {
      response.end('rebooting');
    });
  });
  after(async () => {
    await verifier.close();
    await internal.close();
  });
  beforeEach(async () => {
    dir = await makeTempDir();
  });
  afterEach(() => removeDir(dir));

  const entry = () => ({
    package_id: manifest.package_id,
    name: manifest.name,
    title: manifest.title,
    version: manifest.version,
    size: pkg.length,
    sha256: createHash('sha256').update(pkg).digest('hex'),
    categories: ['Testing'],
    published_at: '2026-01-01T00:00:00.000Z',
    status: 'available',
  });

  async function orchestratorOn(storeUrl: string): Promise<{ orchestrator: Orchestrator; config: ConfigStore; audit: MemoryAuditLog }> {
    const config = await ConfigStore.open(path.join(dir, 'config.json'), 'test');
    const audit = new MemoryAuditLog();
    const orchestrator = await Orchestrator.open({
      dataDir: dir,
      store: new HttpStoreClient({ url: storeUrl, maxPackageBytes: 1024 * 1024 }),
      config,
      audit,
      keys: memoryDeviceKeys(),
      verifier,
      trustRootsPem: [pki.root.certPem],
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
      const store = await serve((_request, response) => {
        response.writeHead(status, { location: reboot });
        response.end();
      });
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
        assert.deepEqual(
          audit.records.map((r) => [r.event, r.details?.code]),
          [
            ['downloadStarted', undefined],
            ['downloadError', 'E_STORE_REDIRECT'],
          ],
        );
      } finally {
        await store.close();
      }
    });
  }

  it("names a redirect's Location escaped: a C1 control in it does not reach the message raw", async () => {
    // Node sends U+009B as the Latin-1 byte 0x9b, which a fetch reads back as U+009B.
    const store = await serve((_request, response) => {
      response.writeHead(302, { location: '/x\u009b2J' });
      response.end();
    });
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
      const store = await serve((_request, response) => {
        response.end(JSON.stringify({ apps: [{ ...entry(), ...fields }] }));
      });
      try {
        await assert.rejects(
          new HttpStoreClient({ url: store.url, maxPackageBytes: 1024 }).catalog(),
          (error: unknown) => isIsogateError(error, 'E_STORE'),
          JSON.stringify(fields).slice(0, 80),
        );
      } finally {
        await store.close();
      }
    }
    const big = await serve((_request, response) => {
      response.writeHead(200, { 'content-length': String(2 * 1024 * 1024) });
      response.write('{"apps":[');
    });
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

/**
 * Downloads over a slow or broken link, against loopback stores that trickle, stall, drop the
 * connection or answer a resume with other bytes. What the store saw is asserted request by
 * request; a resumed package is only ever the bytes of one version.
 */
describe('store client downloads over a slow or broken link', function () {
  this.timeout(60_000);
  const SIZE = 200 * 1024;
  const CUT = 72 * 1024;
  const v1 = randomBytes(SIZE);
  const v2 = randomBytes(SIZE);
  const digest = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');
  const etagOf = (bytes: Buffer): string => `"${digest(bytes)}"`;
  let dir: string;

  beforeEach(async () => {
    dir = await makeTempDir();
  });
  afterEach(() => removeDir(dir));

  const entryFor = (bytes: Buffer) => ({
    package_id: 'com.example.slow',
    name: 'Slow',
    title: 'Slow',
    version: '1.0.0',
    size: bytes.length,
    sha256: digest(bytes),
    categories: [],
    published_at: '2026-01-01T00:00:00.000Z',
    status: 'available' as const,
  });

  interface Seen {
    range: string | undefined;
    ifRange: string | undefined;
  }
  /** A store whose n-th package request (from 0) is answered by `answers[n]`; what it saw is kept. */
  async function store(answers: ((response: http.ServerResponse) => void)[]): Promise<Served & { seen: Seen[] }> {
    const seen: Seen[] = [];
    const served = await serve((request, response) => {
      seen.push({ range: request.headers.range, ifRange: request.headers['if-range'] as string | undefined });
      const answer = answers[seen.length - 1];
      if (answer) answer(response);
      else {
        response.writeHead(500);
        response.end();
      }
    });
    return { ...served, seen };
  }
  const headers = (bytes: Buffer, length: number) => ({ 'content-length': String(length), etag: etagOf(bytes), 'accept-ranges': 'bytes' });
  const whole = (bytes: Buffer) => (response: http.ServerResponse) => {
    response.writeHead(200, headers(bytes, bytes.length));
    response.end(bytes);
  };
  const from =
    (bytes: Buffer, start: number, etagBytes = bytes) =>
    (response: http.ServerResponse) => {
      response.writeHead(206, { ...headers(etagBytes, bytes.length - start), 'content-range': `bytes ${start}-${bytes.length - 1}/${bytes.length}` });
      response.end(bytes.subarray(start));
    };
  /** The first CUT bytes of a 200, then the connection is gone. */
  const dropAfterCut = (bytes: Buffer) => (response: http.ServerResponse) => {
    response.writeHead(200, headers(bytes, bytes.length));
    response.write(bytes.subarray(0, CUT), () => response.socket?.destroy());
  };
  const fresh = { range: undefined, ifRange: undefined };
  /**
   * What a resume after the drop looks like: the rest from where the client stopped, bound to
   * the first answer's ETag. Where exactly is the kernel's business (a reset may discard what
   * the client had not read yet), so any point after the start and up to the cut.
   */
  function assertResumed(seen: Seen | undefined): void {
    const start = Number(/^bytes=(\d+)-$/.exec(seen?.range ?? '')?.[1]);
    assert.ok(start > 0 && start <= CUT, `range ${seen?.range}`);
    assert.equal(seen?.ifRange, etagOf(v1));
  }

  it('completes a download that trickles for longer than the idle timeout, reporting progress throughout', async () => {
    const chunk = 8 * 1024;
    const trickle = await store([
      (response) => {
        response.writeHead(200, headers(v1, v1.length));
        let sent = 0;
        const timer = setInterval(() => {
          response.write(v1.subarray(sent, sent + chunk));
          sent += chunk;
          if (sent >= v1.length) {
            clearInterval(timer);
            response.end();
          }
        }, 40);
        response.on('close', () => clearInterval(timer));
      },
    ]);
    try {
      // 25 chunks 40 ms apart take about 1 s, more than twice the idle timeout: only silence may end a download.
      const client = new HttpStoreClient({ url: trickle.url, maxPackageBytes: SIZE, idleTimeoutMs: 400 });
      const progress: number[] = [];
      await client.download(entryFor(v1), path.join(dir, 'p.igp'), ({ received }) => progress.push(received));
      assert.deepEqual(await fs.readFile(path.join(dir, 'p.igp')), v1);
      assert.deepEqual(trickle.seen, [fresh]);
      assert.ok(progress.length >= 3, `progress ${progress.join()}`);
      assert.deepEqual(
        progress,
        [...progress].sort((a, b) => a - b),
      );
      assert.equal(progress.at(-1), SIZE);
    } finally {
      await trickle.close();
    }
  });

  it('gives up on a store that stalls with E_STORE_TIMEOUT, each resume stalling too, after its bounded resumes', async () => {
    const stall = (status: 200 | 206) => (response: http.ServerResponse) => {
      if (status === 200) {
        response.writeHead(200, headers(v1, v1.length));
        response.write(v1.subarray(0, CUT));
      } else {
        response.writeHead(206, { ...headers(v1, SIZE - CUT), 'content-range': `bytes ${CUT}-${SIZE - 1}/${SIZE}` });
        response.flushHeaders();
      }
      // ... and then nothing, the connection held open.
    };
    const stalled = await store([stall(200), stall(206), stall(206)]);
    try {
      const client = new HttpStoreClient({ url: stalled.url, maxPackageBytes: SIZE, idleTimeoutMs: 300, maxResumes: 2 });
      await assert.rejects(client.download(entryFor(v1), path.join(dir, 'p.igp')), (error: unknown) => {
        assert.ok(isIsogateError(error, 'E_STORE_TIMEOUT'), String(error));
        assert.match(error.message, /sent nothing for 0\.3 s .*stopped at 73728 of 204800 bytes and was resumed 2 times/);
        return true;
      });
      const resumedAtCut = { range: `bytes=${CUT}-`, ifRange: etagOf(v1) };
      assert.deepEqual(stalled.seen, [fresh, resumedAtCut, resumedAtCut]);
    } finally {
      await stalled.close();
    }
  });

  it('resumes a dropped download from the real store with Range and If-Range, and installs it', async () => {
    const pki = await createTestPki();
    const verifier = new WorkerPackageVerifier();
    // Random text makes the package large and incompressible, so the drop lands mid-body.
    const manifest = sampleManifest({ package_id: 'com.example.resumed' });
    const pkg = await buildSignedPackage({
      manifest,
      signer: pki.publisher,
      files: { 'app/main.js': `export const noise = "${randomBytes(150 * 1024).toString('hex')}";\n` },
    });
    const storeDir = await makeTempDir('isogate-store-');
    const data = await StoreData.open(storeDir);
    await data.publish(pkg, { unchecked: true });
    const koa = createStoreServer(data).callback();
    const cut = Math.floor(pkg.length / 3);
    const seen: Seen[] = [];
    const real = await serve((request, response) => {
      if (request.url?.endsWith('/package')) {
        seen.push({ range: request.headers.range, ifRange: request.headers['if-range'] as string | undefined });
        if (seen.length === 1) {
          // The first answer loses its connection after `cut` bytes of the body.
          let sent = 0;
          const write = response.write.bind(response) as (chunk: Buffer, done?: () => void) => boolean;
          response.write = ((chunk: Buffer) => {
            if (sent >= cut) return false;
            const part = chunk.subarray(0, cut - sent);
            sent += part.length;
            return write(part, sent >= cut ? () => response.socket?.destroy() : undefined);
          }) as typeof response.write;
        }
      }
      void koa(request, response);
    });
    try {
      const config = await ConfigStore.open(path.join(dir, 'config.json'), 'test');
      const orchestrator = await Orchestrator.open({
        dataDir: dir,
        store: new HttpStoreClient({ url: real.url, maxPackageBytes: 1024 * 1024 }),
        config,
        audit: new MemoryAuditLog(),
        keys: memoryDeviceKeys(),
        verifier,
        trustRootsPem: [pki.root.certPem],
      });
      const progress: number[] = [];
      const app = await orchestrator.install(manifest.package_id, {
        onProgress: (p) => {
          if (p.phase === 'download') progress.push(p.received);
        },
      });
      assert.equal(app.version, manifest.version);
      assert.equal(seen.length, 2);
      assert.deepEqual(seen[0], fresh);
      const start = Number(/^bytes=(\d+)-$/.exec(seen[1]?.range ?? '')?.[1]);
      assert.ok(start > 0 && start <= cut, `range ${seen[1]?.range}`);
      assert.equal(seen[1]?.ifRange, `"${digest(pkg)}"`);
      // Resumed, not restarted: the count never goes back, and the bytes before the drop count.
      assert.deepEqual(
        progress,
        [...progress].sort((a, b) => a - b),
        `progress ${progress.join()}`,
      );
      assert.equal(progress.at(-1), pkg.length);
    } finally {
      await real.close();
      await verifier.close();
      await removeDir(storeDir);
    }
  });

  it('starts over when a resume is answered with 200: the whole package, never appended to the first bytes', async () => {
    const restarting = await store([dropAfterCut(v1), whole(v1)]);
    try {
      const client = new HttpStoreClient({ url: restarting.url, maxPackageBytes: SIZE });
      const progress: number[] = [];
      await client.download(entryFor(v1), path.join(dir, 'p.igp'), ({ received }) => progress.push(received));
      assert.deepEqual(await fs.readFile(path.join(dir, 'p.igp')), v1);
      assert.deepEqual(restarting.seen.length, 2);
      assert.deepEqual(restarting.seen[0], fresh);
      assertResumed(restarting.seen[1]);
      assert.ok(progress.includes(0), `progress ${progress.join()}: the restart shows`);
    } finally {
      await restarting.close();
    }
  });

  it('starts over when a resume is answered with 206 under another ETag, never splicing two versions', async () => {
    const swapped = await store([dropAfterCut(v1), from(v2, CUT), whole(v1)]);
    try {
      const client = new HttpStoreClient({ url: swapped.url, maxPackageBytes: SIZE });
      await client.download(entryFor(v1), path.join(dir, 'p.igp'));
      assert.deepEqual(await fs.readFile(path.join(dir, 'p.igp')), v1);
      assert.equal(swapped.seen.length, 3);
      assert.deepEqual([swapped.seen[0], swapped.seen[2]], [fresh, fresh]);
      assertResumed(swapped.seen[1]);
    } finally {
      await swapped.close();
    }
  });

  it('fails with E_CATALOG_MISMATCH when the store now serves other bytes whole, holding only those', async () => {
    const changed = await store([dropAfterCut(v1), whole(v2)]);
    try {
      const client = new HttpStoreClient({ url: changed.url, maxPackageBytes: SIZE });
      await assert.rejects(client.download(entryFor(v1), path.join(dir, 'p.igp')), (error: unknown) => isIsogateError(error, 'E_CATALOG_MISMATCH'));
      assert.deepEqual(await fs.readFile(path.join(dir, 'p.igp')), v2);
      assert.deepEqual(changed.seen.length, 2);
      assert.deepEqual(changed.seen[0], fresh);
      assertResumed(changed.seen[1]);
    } finally {
      await changed.close();
    }
  });

  it('still refuses a redirect answering a resume, with E_STORE_REDIRECT', async () => {
    const redirecting = await store([
      dropAfterCut(v1),
      (response) => {
        response.writeHead(307, { location: 'http://127.0.0.1:1/elsewhere' });
        response.end();
      },
    ]);
    try {
      const client = new HttpStoreClient({ url: redirecting.url, maxPackageBytes: SIZE });
      await assert.rejects(client.download(entryFor(v1), path.join(dir, 'p.igp')), (error: unknown) => isIsogateError(error, 'E_STORE_REDIRECT'));
      assert.deepEqual(redirecting.seen.length, 2);
      assert.deepEqual(redirecting.seen[0], fresh);
      assertResumed(redirecting.seen[1]);
    } finally {
      await redirecting.close();
    }
  });
});
