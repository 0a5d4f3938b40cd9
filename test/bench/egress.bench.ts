/**
 * HTTPS requests per second from an app, through its sandbox and the TLS terminator, to a
 * loopback server with keep-alive, beside undici (what the terminator uses) making the same
 * requests directly with the same pool, keep-alive and TLS settings, so the figure is what the
 * sandbox and the terminator add. Target: at least 0.8x. Then the latency one request adds,
 * at p50 and p99, from requests made one at a time on both sides. The notes give the process CPU
 * per request on both sides (every thread: the app's isolate, the server in this process): on a
 * loaded machine the sandbox's reply polling keeps the gateway's thread from being descheduled,
 * which can favour the rate, and the CPU shows what that costs.
 */
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { MemoryAuditLog } from '../../platform/audit/index.js';
import { memoryDeviceKeys } from '../../platform/device/index.js';
import { CertificateStore, DEFAULT_EGRESS_LIMITS, EgressService } from '../../platform/egress/index.js';
import { createAppSandbox } from '../../platform/sandbox/index.js';
import type { AppManifest } from '../../sdk/manifest.js';
import { createCertificate, generateKeyPair } from '../../sdk/pki.js';
import { fakeHost, jsonBatch } from '../fixtures/fake-host.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { type BenchResult, compare, latencyResult, median } from './harness.js';

const REQUESTS = 2000;
/** Requests in flight at once on both sides, as an uplink draining a backlog would have. */
const CONCURRENCY = 8;
/** One-at-a-time requests per latency round, after as many again not counted, on both sides. */
const LATENCY_SAMPLES = 1000;
const LATENCY_ROUNDS = 3;
/**
 * The issue sets no latency target, only asks for the figure. These guard against regressions:
 * a request through the platform crosses into the app's isolate and out again, two thread hops
 * of tens of microseconds each that the direct client, at under 0.1 ms a request on loopback,
 * does not make; the p99 catches a collection in the isolate or the host.
 */
const LATENCY_TARGETS: Record<number, number> = { 50: 0.25, 99: 0.1 };

export default async function egressBench(): Promise<BenchResult[]> {
  const dir = await makeTempDir('isogate-bench-egress-');
  const caKeys = generateKeyPair();
  const ca = {
    certPem: createCertificate({ subject: { commonName: 'bench CA' }, publicKeyPem: caKeys.publicKeyPem, signingKeyPem: caKeys.keyPem, usage: 'ca' }),
    keyPem: caKeys.keyPem,
  };
  const serverKeys = generateKeyPair();
  const serverCert = createCertificate({
    subject: { commonName: 'localhost' },
    publicKeyPem: serverKeys.publicKeyPem,
    issuer: ca,
    usage: 'server',
    altNames: ['localhost'],
  });
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
    manifestVersion: 1,
    package_id: packageId,
    name: 'uplink',
    title: 'Uplink',
    version: '1.0.0',
    publisher: 'bench',
    type: 'service',
    buildSdkVersion: '1.0.0',
    entry: 'app/main.js',
    networkZone: 'wan',
    resources: { memoryMb: 32, cpuMsPerEvent: 60_000, storageMb: 1 },
    egress: [{ name: 'cloud', host: 'localhost', port, protocol: 'https' }],
    endpoints: [{ name: 'go', direction: 'destination', dataType: 'bench.go', format: 'json' }],
  };
  // One terminator for the whole run, as a gateway has one for its whole life.
  const egress = new EgressService({ certificates, appLog: () => undefined, allowedRanges: ['127.0.0.0/8', '::1/128'] });

  /** Process CPU (user + system) per request, in microseconds, over each timed round of each side. */
  const cpu = { subject: [] as number[], baseline: [] as number[] };
  const cpuPerRequest = (since: NodeJS.CpuUsage, count: number): number => {
    const used = process.cpuUsage(since);
    return (used.user + used.system) / count;
  };

  /**
   * `count` requests from an app, `concurrency` at a time; returns requests per second.
   * `arrived` hears of each request as it reaches the terminator; `cpuInto` gets the CPU per request.
   */
  const throughThePlatform = async (count: number, concurrency: number, arrived?: () => void, cpuInto?: number[]): Promise<number> => {
    const forApp = egress.forApp(packageId, manifest.egress!);
    const fetch: typeof forApp.fetch = (name, request) => {
      arrived?.();
      return forApp.fetch(name, request);
    };
    const host = { ...fakeHost(packageId), egress: { ...forApp, fetch } };
    const sandbox = await createAppSandbox({
      manifest,
      host,
      files: new Map([
        [
          'app/main.js',
          `import { egress, log, on } from 'isogate:sdk';
      let next = 0;
      async function worker() { while (next < ${count}) { const i = next++; await egress.fetch('cloud', { method: 'POST', path: '/alerts', body: '{"n":' + i + '}' }); } }
      on('go', () => { Promise.all(Array.from({ length: ${concurrency} }, worker)).then(() => log.info('done')); });`,
        ],
      ]),
    });
    try {
      // Timing starts once the app runs, as the baseline's starts once its agent exists.
      await sandbox.start();
      const started = performance.now();
      const cpuStarted = process.cpuUsage();
      await sandbox.deliver('go', jsonBatch({}));
      await host.waitForLog(/^done$/, 120_000);
      const rate = count / ((performance.now() - started) / 1000);
      cpuInto?.push(cpuPerRequest(cpuStarted, count));
      return rate;
    } finally {
      sandbox.dispose();
      await egress.closeApp(packageId);
    }
  };

  /**
   * The same requests from undici directly, as the terminator makes them: one Pool per target
   * with the terminator's connection limit, keep-alive, TLS 1.2 or later, http/1.1, the response
   * body read whole. `took` hears each one's milliseconds.
   */
  const directly = async (count: number, concurrency: number, took?: (ms: number) => void, cpuInto?: number[]): Promise<number> => {
    const pool = new Pool(`https://localhost:${port}`, {
      connections: DEFAULT_EGRESS_LIMITS.maxConnections,
      connect: { ca: [ca.certPem], servername: 'localhost', minVersion: 'TLSv1.2', rejectUnauthorized: true, ALPNProtocols: ['http/1.1'] },
    });
    const started = performance.now();
    const cpuStarted = process.cpuUsage();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < count) {
        const i = next;
        next += 1;
        const t = performance.now();
        const response = await pool.request({ method: 'POST', path: '/alerts', body: `{"n":${i}}` });
        await response.body.arrayBuffer();
        took?.(performance.now() - t);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    const seconds = (performance.now() - started) / 1000;
    cpuInto?.push(cpuPerRequest(cpuStarted, count));
    await pool.close();
    return count / seconds;
  };

  try {
    const throughput = await compare({
      name: `HTTPS requests from an app through the terminator (keep-alive, ${REQUESTS} requests, ${CONCURRENCY} at a time)`,
      unit: 'req/s',
      baselineName: 'undici Pool directly (as the terminator)',
      higherIsBetter: true,
      target: 0.8,
      rounds: 7,
      warmupRounds: 2,
      subject: () => throughThePlatform(REQUESTS, CONCURRENCY, undefined, cpu.subject),
      baseline: () => directly(REQUESTS, CONCURRENCY, undefined, cpu.baseline),
      notes: () => [
        `process CPU per request (median round, client and server): ${median(cpu.subject).toFixed(0)} us through the platform, ${median(cpu.baseline).toFixed(0)} us directly (${(median(cpu.subject) / median(cpu.baseline)).toFixed(2)}x)`,
      ],
    });

    // One at a time, a request reaches the terminator only once the app has its previous answer:
    // the time between two arrivals is what one request costs the app, timed on the host's
    // clock, where the app's own clock has whole milliseconds only.
    const platformLatencies: number[] = [];
    const directLatencies: number[] = [];
    for (let round = 0; round < LATENCY_ROUNDS; round += 1) {
      let arrivals = 0;
      let last = 0;
      await throughThePlatform(2 * LATENCY_SAMPLES, 1, () => {
        const now = performance.now();
        arrivals += 1;
        if (arrivals > LATENCY_SAMPLES + 1) platformLatencies.push(now - last);
        last = now;
      });
      let requests = 0;
      await directly(2 * LATENCY_SAMPLES, 1, (ms) => {
        requests += 1;
        if (requests > LATENCY_SAMPLES) directLatencies.push(ms);
      });
    }
    const latency = (p: number): BenchResult =>
      latencyResult({
        name: 'HTTPS request latency, one at a time',
        baselineName: 'undici Pool directly (as the terminator)',
        p,
        target: LATENCY_TARGETS[p]!,
        subject: platformLatencies,
        baseline: directLatencies,
      });
    const [p50, p99] = [latency(50), latency(99)];
    const addedUs = (result: BenchResult): string => ((result.value - result.baseline) * 1000).toFixed(0);
    p50.notes = [`added per request by the platform: ${addedUs(p50)} us at p50, ${addedUs(p99)} us at p99`];
    return [throughput, p50, p99];
  } finally {
    await egress.close();
    server.close();
    await removeDir(dir);
  }
}
