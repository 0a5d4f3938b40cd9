/**
 * HTTPS requests per second from an app, through its sandbox and the TLS terminator, to a
 * loopback server with keep-alive, beside Node's own https client making the same requests
 * directly with the same TLS settings. Target: at least 0.8x; p50 and p99 per request beside.
 */
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { MemoryAuditLog } from '../../platform/audit/index.js';
import { memoryDeviceKeys } from '../../platform/device/index.js';
import { CertificateStore, EgressService } from '../../platform/egress/index.js';
import { createAppSandbox } from '../../platform/sandbox/index.js';
import type { AppManifest } from '../../sdk/manifest.js';
import { createCertificate, generateKeyPair } from '../../sdk/pki.js';
import { fakeHost } from '../fixtures/fake-host.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { compare, percentile, type BenchResult } from './harness.js';

const REQUESTS = 2000;
/** Requests in flight at once on both sides, as an uplink draining a backlog would have. */
const CONCURRENCY = 8;

export default async function egressBench(): Promise<BenchResult[]> {
  const dir = await makeTempDir('isogate-bench-egress-');
  const caKeys = generateKeyPair();
  const ca = { certPem: createCertificate({ subject: { commonName: 'bench CA' }, publicKeyPem: caKeys.publicKeyPem, signingKeyPem: caKeys.keyPem, usage: 'ca' }), keyPem: caKeys.keyPem };
  const serverKeys = generateKeyPair();
  const serverCert = createCertificate({ subject: { commonName: 'localhost' }, publicKeyPem: serverKeys.publicKeyPem, issuer: ca, usage: 'server', altNames: ['localhost'] });
  const server = https.createServer({ cert: serverCert, key: serverKeys.keyPem, keepAliveTimeout: 30_000 }, (req, res) => {
    req.resume();
    req.on('end', () => res.end('{"ok":true}'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const certificates = new CertificateStore({ root: `${dir}/certs`, keys: memoryDeviceKeys(), audit: new MemoryAuditLog() });
  const packageId = 'dev.isogate.bench.uplink';
  await certificates.setCa(packageId, 'ca.pem', Buffer.from(ca.certPem));
  const manifest: AppManifest = {
    manifestVersion: 1, package_id: packageId, name: 'uplink', title: 'Uplink', version: '1.0.0', publisher: 'bench',
    type: 'service', buildSdkVersion: '1.0.0', entry: 'app/main.js', networkZone: 'wan', resources: { memoryMb: 32, cpuMsPerEvent: 60_000, storageMb: 1 },
    egress: [{ name: 'cloud', host: 'localhost', port, protocol: 'https' }],
    endpoints: [{ name: 'go', direction: 'destination', dataType: 'bench.go', format: 'json' }],
  };
  // One terminator for the whole run, as a gateway has one for its whole life.
  const egress = new EgressService({ certificates, appLog: () => undefined });
  // From the counted rounds only: warm-up rounds are left out of the percentiles.
  const platformLatencies: number[] = [];
  const directLatencies: number[] = [];
  try {
    const throughput = await compare({
      name: `HTTPS requests from an app through the terminator (keep-alive, ${REQUESTS} requests, ${CONCURRENCY} at a time)`, unit: 'req/s',
      baselineName: 'Node https client, directly', higherIsBetter: true, target: 0.8, rounds: 7, warmupRounds: 2,
      subject: async ({ warmup }) => {
        const host = { ...fakeHost(packageId), egress: egress.forApp(packageId, manifest.egress!) };
        const sandbox = await createAppSandbox({ manifest, host, files: new Map([['app/main.js', `import { egress, log, on } from 'isogate:sdk';
          let next = 0; const times = [];
          async function worker() { while (next < ${REQUESTS}) { const i = next++; const t = Date.now(); await egress.fetch('cloud', { method: 'POST', path: '/alerts', body: '{"n":' + i + '}' }); times.push(Date.now() - t); } }
          on('go', () => { Promise.all(Array.from({ length: ${CONCURRENCY} }, worker)).then(() => log.info('done ' + JSON.stringify(times))); });`]]) });
        // Timing starts once the app runs, as the baseline's starts once its agent exists.
        await sandbox.start();
        const started = performance.now();
        await sandbox.deliver('go', [{ message: {}, routeId: 'bench', source: { application_id: 'bench', endpoint: 'bench' } }]);
        const line = await host.waitForLog(/^done /, 120_000);
        const seconds = (performance.now() - started) / 1000;
        if (!warmup) platformLatencies.push(...(JSON.parse(line.slice(5)) as number[]));
        sandbox.dispose();
        await egress.closeApp(packageId);
        return REQUESTS / seconds;
      },
      baseline: async ({ warmup }) => {
        const agent = new https.Agent({ keepAlive: true, maxSockets: CONCURRENCY, ca: [ca.certPem], servername: 'localhost', minVersion: 'TLSv1.2' });
        const started = performance.now();
        let next = 0;
        const worker = async (): Promise<void> => {
          while (next < REQUESTS) {
            const i = next;
            next += 1;
            const t = performance.now();
            await new Promise<void>((resolve, reject) => {
              const request = https.request({ agent, host: 'localhost', port, method: 'POST', path: '/alerts' }, (response) => {
                response.resume();
                response.on('end', resolve);
              });
              request.on('error', reject);
              request.end(`{"n":${i}}`);
            });
            if (!warmup) directLatencies.push(performance.now() - t);
          }
        };
        await Promise.all(Array.from({ length: CONCURRENCY }, worker));
        const seconds = (performance.now() - started) / 1000;
        agent.destroy();
        return REQUESTS / seconds;
      },
      notes: () => [`latency per request p50 ${percentile(platformLatencies, 50)} ms / p99 ${percentile(platformLatencies, 99)} ms through the platform (whole ms, measured in the app), ${percentile(directLatencies, 50).toFixed(2)} ms / ${percentile(directLatencies, 99).toFixed(2)} ms direct`],
    });
    return [throughput];
  } finally {
    await egress.close();
    server.close();
    await removeDir(dir);
  }
}
