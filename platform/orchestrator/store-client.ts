/**
 * The gateway's client of the app store. The store and the channel to it are untrusted
 * (the manual's security objective: authentic updates "even when using untrusted data
 * channels"), so every answer is validated and bounded here; authenticity comes later from
 * the package signature, never from the store's word.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { fail, isIsogateError } from '../../sdk/errors.js';
import { assertValid, compileSchema } from '../../sdk/schema.js';

export interface CatalogEntry {
  package_id: string;
  name: string;
  title: string;
  description?: string;
  version: string;
  size: number;
  sha256: string;
  categories: string[];
  published_at: string;
  status: 'available' | 'compromised';
  developer?: unknown;
  privacy_policy?: string;
  license?: string;
  publisher?: string;
  type?: string;
  buildSdkVersion?: string;
}

export interface DownloadProgress {
  received: number;
  total: number;
}

export interface StoreClient {
  readonly url: string;
  catalog(): Promise<CatalogEntry[]>;
  /** Downloads one package to `file`, checking its size and SHA-256 against the catalog entry. */
  download(entry: CatalogEntry, file: string, onProgress?: (progress: DownloadProgress) => void, signal?: AbortSignal): Promise<void>;
}

const CATALOG_SCHEMA = {
  type: 'object',
  required: ['apps'],
  properties: {
    apps: {
      type: 'array', maxItems: 10_000,
      items: {
        type: 'object',
        required: ['package_id', 'name', 'title', 'version', 'size', 'sha256', 'published_at', 'status'],
        properties: {
          package_id: { type: 'string', maxLength: 128 },
          name: { type: 'string', maxLength: 256 },
          title: { type: 'string', maxLength: 512 },
          version: { type: 'string', maxLength: 64 },
          size: { type: 'integer', minimum: 0 },
          sha256: { type: 'string', pattern: '^[0-9a-f]{64}$' },
          categories: { type: 'array', items: { type: 'string' } },
          published_at: { type: 'string', maxLength: 64 },
          status: { enum: ['available', 'compromised'] },
        },
      },
    },
  },
} as const;

export interface HttpStoreClientOptions {
  url: string;
  /** Largest package the gateway downloads at all. */
  maxPackageBytes: number;
  maxCatalogBytes?: number;
  timeoutMs?: number;
}

async function readBounded(response: Response, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of response.body ?? []) {
    total += chunk.byteLength;
    if (total > limit) throw fail('E_STORE', `The store's answer is larger than ${limit} bytes`);
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

export class HttpStoreClient implements StoreClient {
  readonly url: string;
  readonly #options: Required<HttpStoreClientOptions>;

  constructor(options: HttpStoreClientOptions) {
    let parsed: URL;
    try {
      parsed = new URL(options.url);
    } catch {
      throw fail('E_OPTION', `store url "${options.url}" is not a URL`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw fail('E_OPTION', `store url must be http(s), got ${parsed.protocol}`);
    }
    this.url = parsed.href.replace(/\/$/, '');
    this.#options = { maxCatalogBytes: 16 * 1024 * 1024, timeoutMs: 30_000, ...options, url: this.url };
  }

  async #get(path: string, signal?: AbortSignal, headers: Record<string, string> = {}): Promise<Response> {
    const timeout = AbortSignal.timeout(this.#options.timeoutMs);
    try {
      return await fetch(`${this.url}${path}`, { headers, signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
    } catch (error) {
      throw fail('E_STORE', `The store at ${this.url} is not reachable: ${(error as Error).message}`);
    }
  }

  async catalog(): Promise<CatalogEntry[]> {
    const response = await this.#get('/api/v1/apps');
    if (!response.ok) throw fail('E_STORE', `The store answered ${response.status} for its catalog`);
    let parsed: unknown;
    try {
      parsed = JSON.parse((await readBounded(response, this.#options.maxCatalogBytes)).toString('utf8'));
    } catch (error) {
      if (isIsogateError(error)) throw error;
      throw fail('E_STORE', `The store's catalog is not JSON: ${(error as Error).message}`);
    }
    assertValid(compileSchema(CATALOG_SCHEMA), parsed, 'E_STORE', "The store's catalog");
    return (parsed as { apps: CatalogEntry[] }).apps.map((entry) => ({ ...entry, categories: entry.categories ?? [] }));
  }

  async download(entry: CatalogEntry, file: string, onProgress?: (progress: DownloadProgress) => void, signal?: AbortSignal): Promise<void> {
    if (entry.size > this.#options.maxPackageBytes) {
      throw fail('E_PACKAGE_LIMIT', `The package is ${entry.size} bytes; the gateway accepts at most ${this.#options.maxPackageBytes}`);
    }
    const path = `/api/v1/apps/${encodeURIComponent(entry.package_id)}/${encodeURIComponent(entry.version)}/package`;
    const response = await this.#get(path, signal);
    if (response.status === 404 || response.status === 410) {
      throw fail('E_DELISTED', `Version ${entry.version} of ${entry.package_id} is no longer offered by the store`);
    }
    if (!response.ok) throw fail('E_DOWNLOAD', `The store answered ${response.status} for the package`);
    const declared = Number(response.headers.get('content-length') ?? entry.size);
    if (declared !== entry.size) {
      throw fail('E_CATALOG_MISMATCH', `The package is ${declared} bytes but the catalog says ${entry.size}`);
    }
    const hash = createHash('sha256');
    const out = createWriteStream(file, { flags: 'wx', mode: 0o600 });
    let received = 0;
    let lastReport = 0;
    try {
      for await (const chunk of response.body ?? []) {
        received += chunk.byteLength;
        if (received > entry.size) throw fail('E_CATALOG_MISMATCH', `The package is larger than the catalog's ${entry.size} bytes`);
        hash.update(chunk);
        if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
        // Progress at most every 64 KiB keeps a slow UI from being flooded on a fast link.
        if (onProgress && (received - lastReport >= 65_536 || received === entry.size)) {
          lastReport = received;
          onProgress({ received, total: entry.size });
        }
      }
    } catch (error) {
      out.destroy();
      if (isIsogateError(error)) throw error;
      throw fail('E_DOWNLOAD', `The download of ${entry.package_id} ${entry.version} failed: ${(error as Error).message}`);
    }
    await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));
    if (received !== entry.size) throw fail('E_DOWNLOAD', `The download stopped after ${received} of ${entry.size} bytes`);
    if (hash.digest('hex') !== entry.sha256) throw fail('E_CATALOG_MISMATCH', 'The package digest differs from the catalog entry');
  }
}
