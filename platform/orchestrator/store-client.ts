/**
 * The gateway's client of the app store. The store and the channel to it are untrusted
 * (the manual's security objective: authentic updates "even when using untrusted data
 * channels"), so every answer is validated and bounded here; authenticity comes later from
 * the package signature, never from the store's word.
 *
 * No redirect is followed, not even to the same origin: a store that answers any request (the
 * catalog, a package download) with a 3xx is refused with E_STORE_REDIRECT, naming the status
 * and where it pointed. A followed redirect would let whoever controls the store's answers make
 * the gateway send requests to any address it can reach, its own side included (an internal
 * service's `GET /api/reboot?confirm=1`). A store that moved is configured at its new URL.
 *
 * Catalog entries keep only the fields the gateway knows, each of bounded size, so an entry
 * with an absurd or deeply nested extra field is dropped at the door instead of travelling on
 * to the control socket and the CLI. Text in entries (names, titles) is shown escaped by the
 * CLI (sdk/text.ts), never refused here: one odd entry must not hide the rest of a catalog.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { fail, isIsogateError } from '../../sdk/errors.js';
import { assertValid, compileSchema } from '../../sdk/schema.js';
import { escapeControls } from '../../sdk/text.js';

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
  developer?: Record<string, string>;
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

const TEXT = (maxLength: number) => ({ type: 'string', maxLength }) as const;

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
          package_id: { type: 'string', maxLength: 128, pattern: '^[a-z][a-z0-9-]*(\\.[a-z0-9][a-z0-9-]*)+$' },
          name: TEXT(256),
          title: TEXT(512),
          description: TEXT(4096),
          // The store names its package files after the version, so no separators or controls.
          version: { type: 'string', pattern: '^[0-9A-Za-z.+-]{1,64}$' },
          size: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
          sha256: { type: 'string', pattern: '^[0-9a-f]{64}$' },
          categories: { type: 'array', maxItems: 16, items: TEXT(64) },
          published_at: TEXT(64),
          status: { enum: ['available', 'compromised'] },
          developer: {
            type: 'object', maxProperties: 8,
            additionalProperties: TEXT(512),
          },
          privacy_policy: TEXT(65_536),
          license: TEXT(65_536),
          publisher: TEXT(256),
          type: TEXT(32),
          buildSdkVersion: TEXT(64),
        },
      },
    },
  },
} as const;

const ENTRY_FIELDS = Object.keys(CATALOG_SCHEMA.properties.apps.items.properties) as (keyof CatalogEntry)[];

/** An entry with the known fields only: whatever else a store sends goes no further. */
function knownFields(entry: CatalogEntry): CatalogEntry {
  const kept: Record<string, unknown> = {};
  for (const field of ENTRY_FIELDS) if (entry[field] !== undefined) kept[field] = entry[field];
  return { ...(kept as unknown as CatalogEntry), categories: entry.categories ?? [] };
}

/** The longest Location quoted in an error: enough to recognise, not enough to flood a log. */
const MAX_LOCATION_SHOWN = 256;

function describeLocation(location: string | null): string {
  if (location === null) return 'no Location';
  const shown = location.length > MAX_LOCATION_SHOWN ? `${location.slice(0, MAX_LOCATION_SHOWN)}...` : location;
  return `Location "${escapeControls(shown)}"`;
}

export interface HttpStoreClientOptions {
  url: string;
  /** Largest package the gateway downloads at all. */
  maxPackageBytes: number;
  maxCatalogBytes?: number;
  timeoutMs?: number;
}

async function readBounded(response: Response, limit: number): Promise<Buffer> {
  // A declared length past the bound is refused before a byte of the body is read.
  if (Number(response.headers.get('content-length') ?? 0) > limit) {
    await response.body?.cancel().catch(() => undefined);
    throw fail('E_STORE', `The store's answer is larger than ${limit} bytes`);
  }
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

  /** Every request the client makes goes through here, so none can follow a redirect. */
  async #get(path: string, what: string, signal?: AbortSignal, headers: Record<string, string> = {}): Promise<Response> {
    const timeout = AbortSignal.timeout(this.#options.timeoutMs);
    let response: Response;
    try {
      // 'manual': Node's fetch (undici) then hands back the 3xx itself, Location readable.
      response = await fetch(`${this.url}${path}`, { headers, redirect: 'manual', signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
    } catch (error) {
      throw fail('E_STORE', `The store at ${this.url} is not reachable: ${(error as Error).message}`);
    }
    if (response.status >= 300 && response.status < 400) {
      const location = response.headers.get('location');
      await response.body?.cancel().catch(() => undefined);
      throw fail('E_STORE_REDIRECT',
        `The store answered ${response.status} for ${what}, redirecting to ${describeLocation(location)}; the gateway follows no redirects from the store. If the store has moved, configure its new URL`,
        { status: response.status, location: location === null ? null : escapeControls(location.slice(0, MAX_LOCATION_SHOWN)) });
    }
    return response;
  }

  async catalog(): Promise<CatalogEntry[]> {
    const response = await this.#get('/api/v1/apps', 'its catalog');
    if (!response.ok) throw fail('E_STORE', `The store answered ${response.status} for its catalog`);
    let parsed: unknown;
    try {
      parsed = JSON.parse((await readBounded(response, this.#options.maxCatalogBytes)).toString('utf8'));
    } catch (error) {
      if (isIsogateError(error)) throw error;
      throw fail('E_STORE', `The store's catalog is not JSON: ${(error as Error).message}`);
    }
    assertValid(compileSchema(CATALOG_SCHEMA), parsed, 'E_STORE', "The store's catalog");
    return (parsed as { apps: CatalogEntry[] }).apps.map(knownFields);
  }

  async download(entry: CatalogEntry, file: string, onProgress?: (progress: DownloadProgress) => void, signal?: AbortSignal): Promise<void> {
    if (entry.size > this.#options.maxPackageBytes) {
      throw fail('E_PACKAGE_LIMIT', `The package is ${entry.size} bytes; the gateway accepts at most ${this.#options.maxPackageBytes}`);
    }
    const path = `/api/v1/apps/${encodeURIComponent(entry.package_id)}/${encodeURIComponent(entry.version)}/package`;
    const response = await this.#get(path, `the package ${entry.package_id} ${entry.version}`, signal);
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
