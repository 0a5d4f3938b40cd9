/**
 * Storage as an app uses it: an app in its sandbox doing put + get of 1 KB values through the
 * `storage` API, each put durable (one synchronous O_DSYNC write) before it resolves, on the
 * gateway's real path (StorageService, as platform/main.ts wires it). Beside it, the same log design without
 * encryption, in plain code here: one append-only file per app, a record written at the end of
 * what is committed, durable per put by the same O_DSYNC write, an in-memory index of where each key's latest
 * record is, the product's own bounded value cache (ValueCache) and write mutex, positional reads
 * on a miss. Same sizes, same sync policy (the app awaits each put, so the product's group commit
 * is one sync per put as well), both warmed up. Target: at least 0.8x; the figure is what
 * encryption, authentication and the sandbox crossing cost an app together. The notes give the
 * process CPU per pair beside it (all threads: the isolate's, the thread pool's), which the
 * disk's sync time, shared with the machine's other work, does not blur as it blurs the rate.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs, constants as fsConstants } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { memoryDeviceKeys } from '../../platform/device/index.js';
import { Mutex } from '../../platform/durable/index.js';
import { createAppSandbox } from '../../platform/sandbox/index.js';
import { StorageService, ValueCache } from '../../platform/storage/index.js';
import type { AppManifest } from '../../sdk/manifest.js';
import { fakeHost, jsonBatch } from '../fixtures/fake-host.js';
import { sampleManifest } from '../fixtures/packages.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { type BenchResult, compare, median } from './harness.js';

const VALUES = 300;
const VALUE_BYTES = 1024;
const QUOTA = 64 * 1024 * 1024;

/** The log design of platform/storage without the cipher: [u32 length][u16 key length][key][value]. */
class PlainLog {
  readonly #index = new Map<string, { offset: number; length: number }>();
  readonly #mutex = new Mutex();
  readonly #cache: ValueCache;
  readonly #scope: ReturnType<ValueCache['scope']>;
  #bytes = 0;

  private constructor(
    readonly handle: FileHandle,
    cache: ValueCache,
  ) {
    this.#cache = cache;
    this.#scope = cache.scope();
  }

  static async open(file: string, cache: ValueCache): Promise<PlainLog> {
    // O_DSYNC as the product's log: one synchronous write per put, the cheaper of the two ways
    // to be durable here (a write then an fdatasync costs a second trip to the thread pool).
    const { O_APPEND, O_CREAT, O_DSYNC, O_RDWR } = fsConstants;
    return new PlainLog(await fs.open(file, O_RDWR | O_CREAT | O_APPEND | O_DSYNC, 0o600), cache);
  }

  async put(key: string, value: Uint8Array): Promise<void> {
    await this.#mutex.run(async () => {
      const keyBytes = Buffer.from(key);
      const header = Buffer.alloc(6);
      header.writeUInt32BE(2 + keyBytes.length + value.byteLength);
      header.writeUInt16BE(keyBytes.length, 4);
      const record = Buffer.concat([header, keyBytes, value]);
      let done = 0;
      while (done < record.length) done += (await this.handle.write(record, done, record.length - done, this.#bytes + done)).bytesWritten;
      this.#index.set(key, { offset: this.#bytes, length: record.length });
      this.#bytes += record.length;
      this.#cache.set(this.#scope, key, Uint8Array.from(value));
    });
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const cached = this.#cache.get(this.#scope, key);
    if (cached !== undefined) return Uint8Array.from(cached as Uint8Array);
    const entry = this.#index.get(key);
    if (!entry) return undefined;
    const record = Buffer.allocUnsafe(entry.length);
    await this.handle.read(record, 0, entry.length, entry.offset);
    return Uint8Array.from(record.subarray(6 + record.readUInt16BE(4)));
  }
}

const manifest = (packageId: string): AppManifest =>
  sampleManifest({
    package_id: packageId,
    publisher: 'bench',
    resources: { memoryMb: 32, cpuMsPerEvent: 10_000, storageMb: QUOTA / 1024 / 1024 },
    endpoints: [{ name: 'go', direction: 'destination', dataType: 'bench.go', format: 'json' }],
  });

const APP = `import { on, storage, log } from 'isogate:sdk';
on('go', () => {
  void (async () => {
    const value = new Uint8Array(${VALUE_BYTES});
    for (let i = 0; i < ${VALUES}; i++) {
      value[0] = i & 255; value[1] = i >> 8;
      await storage.put('reading/' + i, value);
      const back = await storage.get('reading/' + i);
      if (!(back instanceof Uint8Array) || back.byteLength !== ${VALUE_BYTES} || back[0] !== (i & 255)) { log.error('lost'); return; }
    }
    log.info('done');
  })();
});`;

export default async function storageBench(): Promise<BenchResult[]> {
  const dir = await makeTempDir('isogate-bench-');
  const service = new StorageService({ root: path.join(dir, 'storage'), keys: memoryDeviceKeys() });
  const cache = new ValueCache();
  let round = 0;
  /** Process CPU (user + system) per put+get pair, in microseconds, per counted or warm-up round. */
  const cpu = { subject: [] as number[], baseline: [] as number[] };
  const perPair = (since: NodeJS.CpuUsage): number => {
    const used = process.cpuUsage(since);
    return (used.user + used.system) / VALUES;
  };
  try {
    return [
      await compare({
        name: `storage put+get ${VALUE_BYTES / 1024} KB from an app (encrypted, durable)`,
        unit: 'ops/s',
        baselineName: 'the same log design unencrypted, in-process',
        higherIsBetter: true,
        target: 0.8,
        warmupRounds: 1,
        subject: async () => {
          round += 1;
          const packageId = `dev.isogate.bench.storage${round}`;
          const appStorage = () => service.open(packageId, QUOTA);
          const host = {
            ...fakeHost(packageId),
            storage: {
              get: async (key: string) => (await appStorage()).get(key),
              put: async (key: string, value: string | Uint8Array) => (await appStorage()).put(key, value),
              delete: async (key: string) => (await appStorage()).delete(key),
              list: async (prefix: string) => (await appStorage()).list(prefix),
              usage: async () => (await appStorage()).usage(),
            },
          };
          const sandbox = await createAppSandbox({ manifest: manifest(packageId), host, files: new Map([['app/main.js', APP]]) });
          await sandbox.start();
          await appStorage();
          const started = performance.now();
          const cpuStarted = process.cpuUsage();
          await sandbox.deliver('go', jsonBatch({}));
          const line = await host.waitForLog(/^(done|lost)$/, 120_000);
          const seconds = (performance.now() - started) / 1000;
          cpu.subject.push(perPair(cpuStarted));
          sandbox.dispose();
          await service.wipe(packageId);
          if (line !== 'done') throw new Error('storage lost a value');
          return VALUES / seconds;
        },
        baseline: async () => {
          round += 1;
          const file = path.join(dir, `plain-${round}.log`);
          const log = await PlainLog.open(file, cache);
          const value = randomBytes(VALUE_BYTES);
          const started = performance.now();
          const cpuStarted = process.cpuUsage();
          for (let i = 0; i < VALUES; i += 1) {
            value[0] = i & 255;
            await log.put(`reading/${i}`, value);
            const back = await log.get(`reading/${i}`);
            if (!back || back.byteLength !== VALUE_BYTES || back[0] !== (i & 255)) throw new Error('the plain log lost a value');
          }
          const seconds = (performance.now() - started) / 1000;
          cpu.baseline.push(perPair(cpuStarted));
          await log.handle.close();
          await fs.rm(file, { force: true });
          return VALUES / seconds;
        },
        notes: () => [
          `${VALUES} sequential put+get pairs per round; every put is on disk before it resolves on both sides (the product's log is O_DSYNC, the plain log fdatasyncs)`,
          `process CPU per put+get pair (median round): ${median(cpu.subject).toFixed(0)} us through the app, ${median(cpu.baseline).toFixed(0)} us for the plain log (${(median(cpu.subject) / median(cpu.baseline)).toFixed(2)}x)`,
        ],
      }),
    ];
  } finally {
    await service.closeAll();
    await removeDir(dir);
  }
}
