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
import { type FileHandle, open } from 'node:fs/promises';
import { fail, type IsogateError, isIsogateError } from '../../sdk/errors.js';
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
      type: 'array',
      maxItems: 10_000,
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
            type: 'object',
            maxProperties: 8,
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
  /**
   * How long the store may send nothing (no answer, no byte of a body) before the request is
   * given up. Idleness, not a total: a large package over a slow but steady link must arrive.
   */
  idleTimeoutMs?: number;
  /** How many times one download is resumed (or restarted) after it was interrupted. */
  maxResumes?: number;
}

/**
 * Aborts a request when the store has sent nothing for `ms`. Every byte that arrives resets it,
 * so it bounds silence, never the length of a transfer.
 */
class IdleWatch {
  readonly signal: AbortSignal;
  readonly #controller = new AbortController();
  #timer: NodeJS.Timeout | undefined;

  constructor(
    readonly ms: number,
    outer?: AbortSignal,
  ) {
    this.signal = outer ? AbortSignal.any([outer, this.#controller.signal]) : this.#controller.signal;
    this.touch();
  }

  get expired(): boolean {
    return this.#controller.signal.aborted;
  }

  touch(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#controller.abort(), this.ms);
  }

  stop(): void {
    clearTimeout(this.#timer);
  }
}

function idleError(what: string, ms: number): IsogateError {
  return fail('E_STORE_TIMEOUT', `The store sent nothing for ${ms / 1000} s during ${what}; check the gateway's connection to the store and try again`, {
    idleTimeoutMs: ms,
  });
}

async function readBounded(response: Response, limit: number, idle: IdleWatch): Promise<Buffer> {
  // A declared length past the bound is refused before a byte of the body is read.
  if (Number(response.headers.get('content-length') ?? 0) > limit) {
    await response.body?.cancel().catch(() => undefined);
    throw fail('E_STORE', `The store's answer is larger than ${limit} bytes`);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of response.body ?? []) {
    idle.touch();
    total += chunk.byteLength;
    if (total > limit) throw fail('E_STORE', `The store's answer is larger than ${limit} bytes`);
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

/**
 * The validator a resumed download is bound to: a strong ETag, and only from a store that says
 * it serves byte ranges. A weak ETag may name other bytes (RFC 9110 13.1.5), so none is used.
 */
function resumeValidator(response: Response): string | undefined {
  const etag = response.headers.get('etag');
  const ranges = response.headers.get('accept-ranges');
  if (!etag || etag.startsWith('W/') || !ranges || !/(^|,)\s*bytes\s*(,|$)/i.test(ranges)) return undefined;
  return etag;
}

/** Progress at most every 64 KiB or every second: a fast link does not flood a slow UI, a slow one still moves. */
const PROGRESS_BYTES = 65_536;
const PROGRESS_MS = 1000;

/**
 * One download into one file: the bytes received so far, their running digest and the ETag they
 * came under. Restarting drops all three together, so bytes of two versions never meet.
 */
class PackageFile {
  received = 0;
  etag: string | undefined;
  #hash = createHash('sha256');
  #reported = 0;
  #reportedAt = 0;

  constructor(
    readonly handle: FileHandle,
    readonly size: number,
    readonly onProgress: ((progress: DownloadProgress) => void) | undefined,
  ) {}

  async append(chunk: Uint8Array): Promise<void> {
    if (this.received + chunk.byteLength > this.size) throw fail('E_CATALOG_MISMATCH', `The package is larger than the catalog's ${this.size} bytes`);
    this.#hash.update(chunk);
    await this.handle.write(chunk, 0, chunk.byteLength, this.received);
    this.received += chunk.byteLength;
    const now = Date.now();
    if (this.received - this.#reported >= PROGRESS_BYTES || now - this.#reportedAt >= PROGRESS_MS || this.received === this.size) this.report(now);
  }

  async restart(): Promise<void> {
    if (this.received === 0 && this.etag === undefined) return;
    await this.handle.truncate(0);
    this.received = 0;
    this.etag = undefined;
    this.#hash = createHash('sha256');
    this.report(Date.now());
  }

  report(now: number): void {
    this.#reported = this.received;
    this.#reportedAt = now;
    this.onProgress?.({ received: this.received, total: this.size });
  }

  digest(): string {
    return this.#hash.digest('hex');
  }
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
    this.#options = { maxCatalogBytes: 16 * 1024 * 1024, idleTimeoutMs: 30_000, maxResumes: 5, ...options, url: this.url };
  }

  /**
   * Every request the client makes goes through here, so none can follow a redirect. A store
   * that does not answer within the idle time fails with E_STORE_TIMEOUT.
   */
  async #get(path: string, what: string, idle: IdleWatch, headers: Record<string, string> = {}): Promise<Response> {
    let response: Response;
    try {
      // 'manual': Node's fetch (undici) then hands back the 3xx itself, Location readable.
      response = await fetch(`${this.url}${path}`, { headers, redirect: 'manual', signal: idle.signal });
    } catch (error) {
      if (idle.expired) throw idleError(what, idle.ms);
      throw fail('E_STORE', `The store at ${this.url} is not reachable: ${(error as Error).message}`);
    }
    idle.touch();
    if (response.status >= 300 && response.status < 400) {
      const location = response.headers.get('location');
      await response.body?.cancel().catch(() => undefined);
      throw fail(
        'E_STORE_REDIRECT',
        `The store answered ${response.status} for ${what}, redirecting to ${describeLocation(location)}; the gateway follows no redirects from the store. If the store has moved, configure its new URL`,
        { status: response.status, location: location === null ? null : escapeControls(location.slice(0, MAX_LOCATION_SHOWN)) },
      );
    }
    return response;
  }

  async catalog(): Promise<CatalogEntry[]> {
    const idle = new IdleWatch(this.#options.idleTimeoutMs);
    let parsed: unknown;
    try {
      const response = await this.#get('/api/v1/apps', 'its catalog', idle);
      if (!response.ok) throw fail('E_STORE', `The store answered ${response.status} for its catalog`);
      parsed = JSON.parse((await readBounded(response, this.#options.maxCatalogBytes, idle)).toString('utf8'));
    } catch (error) {
      if (isIsogateError(error)) throw error;
      if (idle.expired) throw idleError('its catalog', idle.ms);
      throw fail('E_STORE', `The store's catalog is not JSON: ${(error as Error).message}`);
    } finally {
      idle.stop();
    }
    assertValid(compileSchema(CATALOG_SCHEMA), parsed, 'E_STORE', "The store's catalog");
    return (parsed as { apps: CatalogEntry[] }).apps.map(knownFields);
  }

  /**
   * Downloads a package, resuming after an interruption (a dropped connection, a store silent
   * for the idle time) with a Range request bound by If-Range to the ETag the first bytes came
   * under, at most `maxResumes` times. Whatever the store answers a resume with, only a 206 for
   * exactly the missing bytes under the same ETag is appended; anything else starts the package
   * over, and the whole package's digest is checked against the catalog at the end.
   */
  async download(entry: CatalogEntry, file: string, onProgress?: (progress: DownloadProgress) => void, signal?: AbortSignal): Promise<void> {
    if (entry.size > this.#options.maxPackageBytes) {
      throw fail('E_PACKAGE_LIMIT', `The package is ${entry.size} bytes; the gateway accepts at most ${this.#options.maxPackageBytes}`);
    }
    const name = `${entry.package_id} ${entry.version}`;
    const handle = await open(file, 'wx', 0o600);
    const target = new PackageFile(handle, entry.size, onProgress);
    try {
      let resumes = 0;
      for (;;) {
        const interruption = await this.#attempt(entry, target, signal);
        if (interruption === undefined) break;
        if (signal?.aborted) throw fail('E_DOWNLOAD', `The download of ${name} was cancelled after ${target.received} of ${entry.size} bytes`);
        if (resumes >= this.#options.maxResumes) {
          const where = `the download of ${name} stopped at ${target.received} of ${entry.size} bytes and was resumed ${resumes} times`;
          if (interruption.code === 'E_STORE_TIMEOUT') throw fail('E_STORE_TIMEOUT', `${interruption.message} (${where})`, interruption.details);
          throw fail('E_DOWNLOAD', `${where[0]!.toUpperCase()}${where.slice(1)}: ${interruption.message}`);
        }
        resumes += 1;
        // A store that answered without a validator gets no Range request: the package starts over.
        if (target.etag === undefined) await target.restart();
      }
    } finally {
      await handle.close();
    }
    // The digest of every byte written, across resumes, against the catalog's.
    if (target.digest() !== entry.sha256) throw fail('E_CATALOG_MISMATCH', 'The package digest differs from the catalog entry');
  }

  /**
   * One request of a download. Resolves with nothing when the package is complete, with the
   * interruption when it may be resumed; coded refusals (delisted, too large, redirect) throw.
   */
  async #attempt(entry: CatalogEntry, target: PackageFile, signal: AbortSignal | undefined): Promise<IsogateError | undefined> {
    const path = `/api/v1/apps/${encodeURIComponent(entry.package_id)}/${encodeURIComponent(entry.version)}/package`;
    const what = `the package ${entry.package_id} ${entry.version}`;
    const resuming = target.received > 0 && target.etag !== undefined;
    const idle = new IdleWatch(this.#options.idleTimeoutMs, signal);
    try {
      let response: Response;
      try {
        // identity: byte offsets of a resume count the package's own bytes, not a compressed form.
        const headers: Record<string, string> = { 'accept-encoding': 'identity' };
        if (resuming) Object.assign(headers, { range: `bytes=${target.received}-`, 'if-range': target.etag! });
        response = await this.#get(path, what, idle, headers);
      } catch (error) {
        if (isIsogateError(error, 'E_STORE_TIMEOUT') || isIsogateError(error, 'E_STORE')) return error;
        throw error;
      }
      if (response.status === 404 || response.status === 410) {
        await response.body?.cancel().catch(() => undefined);
        throw fail('E_DELISTED', `Version ${entry.version} of ${entry.package_id} is no longer offered by the store`);
      }
      if (resuming && response.status === 206) {
        const expected = `bytes ${target.received}-${entry.size - 1}/${entry.size}`;
        if (response.headers.get('etag') !== target.etag || response.headers.get('content-range') !== expected) {
          // Not the missing bytes of the version begun: drop what was received and start over.
          await response.body?.cancel().catch(() => undefined);
          await target.restart();
          return fail(
            'E_DOWNLOAD',
            `The store answered the resume with other bytes (ETag ${escapeControls(String(response.headers.get('etag')).slice(0, 80))}, ${escapeControls(String(response.headers.get('content-range')).slice(0, 80))}); the download starts over`,
          );
        }
      } else if (response.status === 200) {
        // A whole package: the store ignored the range or has other bytes now. Start over with these.
        await target.restart();
        const declared = Number(response.headers.get('content-length') ?? entry.size);
        if (declared !== entry.size) {
          await response.body?.cancel().catch(() => undefined);
          throw fail('E_CATALOG_MISMATCH', `The package is ${declared} bytes but the catalog says ${entry.size}`);
        }
        target.etag = resumeValidator(response);
      } else {
        await response.body?.cancel().catch(() => undefined);
        throw fail('E_DOWNLOAD', `The store answered ${response.status} for the package`);
      }
      try {
        for await (const chunk of response.body ?? []) {
          idle.touch();
          await target.append(chunk);
        }
      } catch (error) {
        if (isIsogateError(error)) throw error;
        if (idle.expired) return idleError(what, idle.ms);
        return fail('E_DOWNLOAD', `the connection failed: ${(error as Error).message}`);
      }
      if (target.received < entry.size) return fail('E_DOWNLOAD', `the store ended the answer after ${target.received} of ${entry.size} bytes`);
      return undefined;
    } finally {
      idle.stop();
    }
  }
}
