/**
 * The store's data: its root CA, the published packages and the catalog. It stands in for the
 * vendor's app centre; the CLI edits it while a server is serving it (the server re-reads
 * catalog.json when it changes), so every command acts at once.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import semver from 'semver';
import { readJsonIfExists, writeFileDurable, writeJsonDurable } from '../platform/durable/index.js';
import type { CatalogEntry } from '../platform/orchestrator/store-client.js';
import { fail, isIsogateError } from '../sdk/errors.js';
import type { AppManifest } from '../sdk/manifest.js';
import { readManifestUnverified, readPackage } from '../sdk/package/index.js';
import { makeDirectories } from '../sdk/paths.js';
import { createCertificate, generateKeyPair } from '../sdk/pki.js';

export type { CatalogEntry };

const CATALOG_FILE = 'catalog.json';
const PACKAGE_ID = /^[a-z][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)+$/;

export interface PublishOptions {
  /** Lists anything: stands for a compromised store or a hostile channel. */
  unchecked?: boolean;
  /** With unchecked, the listing's id and version for bytes that carry no readable manifest. */
  packageId?: string;
  version?: string;
  now?: Date;
}

export interface PublisherFiles {
  keyPath: string;
  certPath: string;
  chainPath: string;
}

export class StoreData {
  private constructor(
    readonly dir: string,
    readonly rootCertPem: string,
    private readonly rootKeyPem: string,
  ) {}

  /** The store's root CA certificate: what publishers chain to, so what a gateway or `isogate-sdk verify` trusts. */
  static rootCertFile(dir: string): string {
    return path.join(path.resolve(dir), 'ca', 'root.cert.pem');
  }

  get rootCertFile(): string {
    return StoreData.rootCertFile(this.dir);
  }

  /** Opens a store directory, creating it and its root CA on first use. */
  static async open(dir: string): Promise<StoreData> {
    const root = path.resolve(dir);
    const caDir = path.join(root, 'ca');
    await makeDirectories(path.join(root, 'packages'), "The store's directory");
    await makeDirectories(caDir, "The store's directory", 0o700);
    const certFile = StoreData.rootCertFile(root);
    const keyFile = path.join(caDir, 'root.key.pem');
    let certPem = await fs.readFile(certFile, 'utf8').catch(() => undefined);
    let keyPem = await fs.readFile(keyFile, 'utf8').catch(() => undefined);
    if (!certPem || !keyPem) {
      const pair = generateKeyPair();
      keyPem = pair.keyPem;
      certPem = createCertificate({
        subject: { commonName: 'isogate store-mock root CA', organizationName: 'isogate store-mock' },
        publicKeyPem: pair.publicKeyPem,
        signingKeyPem: pair.keyPem,
        usage: 'ca',
        days: 3650,
      });
      await writeFileDurable(keyFile, keyPem, { mode: 0o600 });
      await writeFileDurable(certFile, certPem);
    }
    return new StoreData(root, certPem, keyPem);
  }

  get catalogFile(): string {
    return path.join(this.dir, CATALOG_FILE);
  }

  async catalog(): Promise<CatalogEntry[]> {
    const entries = (await readJsonIfExists<CatalogEntry[]>(this.catalogFile)) ?? [];
    return sortCatalog(entries);
  }

  /** A code-signing certificate issued by the store CA, as an app centre issues to a publisher. */
  async issuePublisher(name: string, outDir: string, days = 365): Promise<PublisherFiles> {
    if (!name.trim() || name.length > 64) throw fail('E_USAGE', 'A publisher name is 1 to 64 characters');
    await makeDirectories(outDir, "The publisher's key directory");
    const pair = generateKeyPair();
    const certPem = createCertificate({
      subject: { commonName: name, organizationName: name },
      publicKeyPem: pair.publicKeyPem,
      issuer: { certPem: this.rootCertPem, keyPem: this.rootKeyPem },
      usage: 'code-signing',
      days,
    });
    const files = {
      keyPath: path.join(outDir, 'publisher.key.pem'),
      certPath: path.join(outDir, 'publisher.cert.pem'),
      chainPath: path.join(outDir, 'chain.pem'),
    };
    await writeFileDurable(files.keyPath, pair.keyPem, { mode: 0o600 });
    await writeFileDurable(files.certPath, certPem);
    await writeFileDurable(files.chainPath, this.rootCertPem);
    return files;
  }

  /**
   * Checks (unless unchecked) and lists a package. A published version never changes: the same
   * bytes again are a no-op, other bytes under a listed id and version are refused. Only
   * `unchecked`, standing for a compromised store, can swap what a listed version is.
   */
  async publish(source: Uint8Array | string, options: PublishOptions = {}): Promise<CatalogEntry> {
    const bytes =
      typeof source === 'string'
        ? await fs.readFile(source).catch((error: Error) => {
            throw fail('E_NOT_FOUND', `The package ${source} cannot be read: ${error.message}`);
          })
        : Buffer.from(source);
    let manifest: Partial<AppManifest>;
    if (options.unchecked) {
      // Even a package whose digests no longer match still names itself in its manifest.
      manifest = await readManifestUnverified(bytes).catch(() => ({}));
      manifest = { ...manifest, ...(options.packageId ? { package_id: options.packageId } : {}), ...(options.version ? { version: options.version } : {}) };
      if (typeof manifest.package_id !== 'string' || typeof manifest.version !== 'string') {
        throw fail('E_USAGE', 'These bytes carry no readable manifest: give the listing a package id and a version');
      }
    } else {
      try {
        manifest = (await readPackage(bytes, { trust: { trustRootsPem: [this.rootCertPem] }, now: options.now })).manifest;
      } catch (error) {
        if (isIsogateError(error)) throw fail(error.code, `The store refuses this package: ${error.message}`, error.details);
        throw error;
      }
    }
    const id = manifest.package_id!;
    const version = manifest.version!;
    if (!PACKAGE_ID.test(id) || !/^[0-9A-Za-z.+-]{1,64}$/.test(version)) throw fail('E_USAGE', `"${id}" "${version}" cannot name a file in the store`);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const listed = (await this.catalog()).find((e) => e.package_id === id && e.version === version);
    if (listed && !options.unchecked) {
      if (listed.sha256 === sha256) return listed;
      throw fail('E_VERSION_EXISTS', `${id} ${version} is already published with other content; a published version never changes: publish a new version`, {
        packageId: id,
        version,
      });
    }
    const file = path.join(this.dir, 'packages', id, `${version}.igp`);
    await fs.mkdir(path.dirname(file), { recursive: true });
    await writeFileDurable(file, bytes);
    const entry: CatalogEntry = {
      package_id: id,
      name: str(manifest.name, id),
      title: str(manifest.title, id),
      ...(manifest.description ? { description: manifest.description } : {}),
      version,
      size: bytes.length,
      sha256,
      categories: Array.isArray(manifest.categories) ? manifest.categories : [],
      published_at: (options.now ?? new Date()).toISOString(),
      status: 'available',
      ...(manifest.developer ? { developer: manifest.developer } : {}),
      ...(manifest.privacyPolicy ? { privacy_policy: manifest.privacyPolicy } : {}),
      ...(manifest.license ? { license: manifest.license } : {}),
      ...(manifest.publisher ? { publisher: manifest.publisher } : {}),
      ...(manifest.type ? { type: manifest.type } : {}),
      ...(manifest.buildSdkVersion ? { buildSdkVersion: manifest.buildSdkVersion } : {}),
    };
    const entries = (await this.catalog()).filter((e) => !(e.package_id === id && e.version === version));
    await this.writeCatalog([...entries, entry]);
    return entry;
  }

  /** Removes a version from the listing and deletes its file: it cannot be installed again. */
  async delist(id: string, version: string): Promise<void> {
    const entries = await this.catalog();
    if (!entries.some((e) => e.package_id === id && e.version === version)) throw fail('E_NOT_FOUND', `${id} ${version} is not listed`);
    await this.writeCatalog(entries.filter((e) => !(e.package_id === id && e.version === version)));
    const file = this.packageFileUnchecked(id, version);
    if (file) await fs.rm(file, { force: true });
  }

  /** Marks a version compromised: still listed, so gateways can see and refuse it. */
  async compromise(id: string, version: string): Promise<CatalogEntry> {
    const entries = await this.catalog();
    const entry = entries.find((e) => e.package_id === id && e.version === version);
    if (!entry) throw fail('E_NOT_FOUND', `${id} ${version} is not listed`);
    entry.status = 'compromised';
    await this.writeCatalog(entries);
    return entry;
  }

  /** The file of a listed version, if it is listed and present. */
  async packageFile(id: string, version: string): Promise<string | undefined> {
    const listed = (await this.catalog()).some((e) => e.package_id === id && e.version === version);
    return listed ? this.packageFileUnchecked(id, version) : undefined;
  }

  private packageFileUnchecked(id: string, version: string): string | undefined {
    if (!PACKAGE_ID.test(id) || !/^[0-9A-Za-z.+-]{1,64}$/.test(version)) return undefined;
    return path.join(this.dir, 'packages', id, `${version}.igp`);
  }

  private async writeCatalog(entries: CatalogEntry[]): Promise<void> {
    await writeJsonDurable(this.catalogFile, sortCatalog(entries));
  }
}

function str(value: unknown, fallback: string): string {
  return typeof value === 'string' && value ? value : fallback;
}

/**
 * Every version of every app, by name, id, then semver order. An unchecked listing's version
 * that is no semver sorts after the versions (mixed, the text order made the sort inconsistent).
 */
function sortCatalog(entries: CatalogEntry[]): CatalogEntry[] {
  const version = (a: string, b: string): number => {
    const validA = semver.valid(a) !== null;
    const validB = semver.valid(b) !== null;
    if (validA && validB) return semver.compare(a, b);
    if (validA !== validB) return validA ? -1 : 1;
    return a.localeCompare(b);
  };
  return [...entries].sort((a, b) => a.name.localeCompare(b.name) || a.package_id.localeCompare(b.package_id) || version(a.version, b.version));
}
