/** An in-memory StoreClient: the orchestrator's tests need a store, not HTTP. */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import type { CatalogEntry, DownloadProgress, StoreClient } from '../../platform/orchestrator/index.js';
import { fail } from '../../sdk/errors.js';

export class MemoryStoreClient implements StoreClient {
  readonly url = 'memory://store';
  readonly entries: CatalogEntry[] = [];
  readonly #bytes = new Map<string, Buffer>();
  downloads = 0;

  /** Lists `pkg` under the given id and version (whatever the package itself says). */
  list(pkg: Buffer, entry: { package_id: string; version: string; name?: string; status?: 'available' | 'compromised' }): CatalogEntry {
    const listed: CatalogEntry = {
      package_id: entry.package_id,
      name: entry.name ?? entry.package_id,
      title: 'test app',
      version: entry.version,
      size: pkg.length,
      sha256: createHash('sha256').update(pkg).digest('hex'),
      categories: ['test'],
      published_at: new Date().toISOString(),
      status: entry.status ?? 'available',
    };
    this.entries.push(listed);
    this.#bytes.set(`${entry.package_id}@${entry.version}`, pkg);
    return listed;
  }

  delist(packageId: string, version: string): void {
    const index = this.entries.findIndex((e) => e.package_id === packageId && e.version === version);
    if (index >= 0) this.entries.splice(index, 1);
    this.#bytes.delete(`${packageId}@${version}`);
  }

  async catalog(): Promise<CatalogEntry[]> {
    return structuredClone(this.entries);
  }

  async download(entry: CatalogEntry, file: string, onProgress?: (progress: DownloadProgress) => void): Promise<void> {
    const bytes = this.#bytes.get(`${entry.package_id}@${entry.version}`);
    if (!bytes) throw fail('E_DELISTED', 'gone');
    this.downloads += 1;
    onProgress?.({ received: bytes.length, total: bytes.length });
    await fs.writeFile(file, bytes, { flag: 'wx' });
  }
}
