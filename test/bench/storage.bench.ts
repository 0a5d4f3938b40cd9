/**
 * Encrypted storage: put + get of 1 KB values, each put durable before it is acknowledged,
 * beside plain `fs` doing the same durable work unencrypted (write + fsync + read of one file
 * per value, the way an app would without a store). Target: at least 0.8x the baseline's rate.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { memoryDeviceKeys } from '../../platform/device/index.js';
import { StorageService } from '../../platform/storage/index.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { type BenchResult, compare } from './harness.js';

const VALUES = 300;
const VALUE_BYTES = 1024;

export default async function storageBench(): Promise<BenchResult[]> {
  const dir = await makeTempDir('isogate-bench-');
  const values = Array.from({ length: VALUES }, () => randomBytes(VALUE_BYTES));
  const service = new StorageService({ root: path.join(dir, 'storage'), keys: memoryDeviceKeys() });
  let round = 0;
  try {
    const results = [
      await compare({
        name: 'encrypted storage put+get 1 KB',
        unit: 'ops/s',
        baselineName: 'fs write+fsync+read',
        higherIsBetter: true,
        target: 0.8,
        subject: async () => {
          round += 1;
          const packageId = `dev.isogate.bench.storage${round}`;
          const storage = await service.open(packageId, 64 * 1024 * 1024);
          const started = performance.now();
          for (let i = 0; i < VALUES; i += 1) {
            await storage.put(`reading/${i}`, values[i]!);
            const back = await storage.get(`reading/${i}`);
            if (!(back instanceof Uint8Array) || back.byteLength !== VALUE_BYTES) throw new Error('storage lost a value');
          }
          const seconds = (performance.now() - started) / 1000;
          await service.wipe(packageId);
          return VALUES / seconds;
        },
        baseline: async () => {
          round += 1;
          const work = path.join(dir, `plain-${round}`);
          await fs.mkdir(work);
          const started = performance.now();
          for (let i = 0; i < VALUES; i += 1) {
            const file = path.join(work, `reading-${i}`);
            const handle = await fs.open(file, 'w');
            await handle.writeFile(values[i]!);
            await handle.sync();
            await handle.close();
            const back = await fs.readFile(file);
            if (back.length !== VALUE_BYTES) throw new Error('fs lost a value');
          }
          const seconds = (performance.now() - started) / 1000;
          await fs.rm(work, { recursive: true, force: true });
          return VALUES / seconds;
        },
        notes: () => [`${VALUES} sequential put+get pairs per round; every put is fsync'ed before it resolves on both sides`],
      }),
    ];
    return results;
  } finally {
    await service.closeAll();
    await removeDir(dir);
  }
}
