/**
 * Install of a 5 MB package from the local store (download + verify + extract) beside the same
 * work done by standard tools: curl, openssl (chain and signature), jq + sha256sum (every
 * digest), tar and sync of the extracted files. Target: within 1.5x of the tools. Neither side
 * pays for starting Node: isogate installs inside the running gateway, and the tools are native.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { MemoryAuditLog } from '../../platform/audit/index.js';
import { ConfigStore } from '../../platform/config/index.js';
import { memoryDeviceKeys } from '../../platform/device/index.js';
import { HttpStoreClient, Orchestrator } from '../../platform/orchestrator/index.js';
import { buildPackage, signPackage } from '../../sdk/package/index.js';
import { serveStore } from '../../store-mock/server.js';
import { StoreData } from '../../store-mock/store.js';
import { sampleManifest } from '../fixtures/packages.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { type BenchResult, compare } from './harness.js';

const run = promisify(execFile);
const PACKAGE_ID = 'dev.isogate.bench.large';
const PAYLOAD_BYTES = 5 * 1024 * 1024;

export default async function installBench(): Promise<BenchResult[]> {
  const dir = await makeTempDir('isogate-bench-');
  try {
    const store = await StoreData.open(path.join(dir, 'store'));
    const publisher = await store.issuePublisher('Bench Publisher', path.join(dir, 'publisher'));
    // Random bytes do not compress: the package is really 5 MB on the wire and on disk.
    const files = new Map<string, Uint8Array>([
      ['app/main.js', Buffer.from('import { log } from "isogate:sdk";\nlog.info("large");\n')],
      ['app/assets/model.bin', randomBytes(PAYLOAD_BYTES)],
    ]);
    const unsigned = await buildPackage(sampleManifest({ package_id: PACKAGE_ID, name: 'large' }), files);
    const signed = await signPackage(unsigned, {
      keyPem: await fs.readFile(publisher.keyPath, 'utf8'),
      certPem: await fs.readFile(publisher.certPath, 'utf8'),
    });
    const entry = await store.publish(signed);
    const server = await serveStore({ dir: path.join(dir, 'store'), port: 0 });
    const packageUrl = `${server.url}/api/v1/apps/${PACKAGE_ID}/${entry.version}/package`;
    const rootFile = path.join(dir, 'root.pem');
    await fs.writeFile(rootFile, store.rootCertPem);

    await fs.mkdir(path.join(dir, 'gateway'), { recursive: true });
    const config = await ConfigStore.open(path.join(dir, 'gateway', 'config.json'), 'bench');
    const orchestrator = await Orchestrator.open({
      dataDir: path.join(dir, 'gateway'),
      config,
      audit: new MemoryAuditLog(),
      keys: memoryDeviceKeys(),
      trustRootsPem: [store.rootCertPem],
      store: new HttpStoreClient({ url: server.url, maxPackageBytes: 64 * 1024 * 1024 }),
    });

    const baselineScript = [
      'set -e',
      `cd "$1"`,
      `curl -sf -o app.igp "${packageUrl}"`,
      'mkdir x && tar xzf app.igp -C x',
      `openssl verify -purpose any -CAfile "${rootFile}" x/META-INF/CHAIN.pem > /dev/null`,
      'openssl x509 -in x/META-INF/CHAIN.pem -pubkey -noout > signer.pub',
      'openssl dgst -sha256 -verify signer.pub -signature x/META-INF/DIGESTS.sig x/META-INF/DIGESTS.json > /dev/null',
      // The digest list is JSON; jq turns it into sha256sum's format to check every file (a
      // native tool: a `node -e` here paid a whole Node start the gateway does not pay).
      `cd x && jq -r '.files | to_entries[] | "\\(.value)  \\(.key)"' META-INF/DIGESTS.json | sha256sum --quiet -c -`,
      // Flushes the files it wrote, as isogate fsyncs its own (a bare `sync` flushes the machine).
      'find . -type f -exec sync -- {} +',
    ].join('\n');

    let round = 0;
    const results = [
      await compare({
        name: 'install 5 MB package',
        unit: 'ms',
        baselineName: 'curl + tar + openssl + jq + sha256sum + sync',
        higherIsBetter: false,
        target: 1 / 1.5,
        rounds: 7,
        subject: async () => {
          const started = performance.now();
          await orchestrator.install(PACKAGE_ID);
          const elapsed = performance.now() - started;
          await orchestrator.uninstall(PACKAGE_ID);
          return elapsed;
        },
        baseline: async () => {
          round += 1;
          const work = path.join(dir, `baseline-${round}`);
          await fs.mkdir(work);
          const started = performance.now();
          await run('sh', ['-c', baselineScript, 'baseline', work]);
          const elapsed = performance.now() - started;
          await fs.rm(work, { recursive: true, force: true });
          return elapsed;
        },
        notes: () => [`package ${(signed.length / 1024 / 1024).toFixed(1)} MiB; isogate also fsyncs, writes its integrity record and audits`],
      }),
    ];
    await orchestrator.close();
    await server.close();
    return results;
  } finally {
    await removeDir(dir);
  }
}
