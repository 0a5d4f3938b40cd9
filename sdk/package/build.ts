/**
 * Writing packages. Output is deterministic (fixed order, times, owners and modes; zlib writes
 * no timestamp), so the same sources give the same bytes and a build can be reproduced.
 */
import { createHash, createPrivateKey, sign as signBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { fail } from '../errors.js';
import { type AppManifest, validateManifest } from '../manifest.js';
import { keyMatchesCertificate, parseCertificates } from '../pki.js';
import { CHAIN_PATH, checkEntryPath, DIGESTS_PATH, MANIFEST_PATH, PACKAGE_LIMITS, SIGNATURE_PATH } from './format.js';
import { readPackageFiles } from './read.js';

const FIXED_MTIME = new Date('2000-01-01T00:00:00Z');

/**
 * How hard gzip works. `smallest` (level 9) for a package that is published and downloaded;
 * `fastest` (level 1) for one pushed over the developer's own network, where a few KB more
 * (about 15% for a bundle with its source map) cost less than the 6 to 8 ms that level 9
 * spends on 400 KB.
 */
export type Compression = 'smallest' | 'fastest';
const GZIP_LEVEL: Readonly<Record<Compression, number>> = { smallest: 9, fastest: 1 };

export interface PackageOptions {
  /** Default `smallest`. */
  compression?: Compression;
}

async function writeTar(entries: [string, Buffer][], compression: Compression = 'smallest'): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (chunk: unknown) => {
    chunks.push(chunk as Buffer);
  });
  const done = new Promise<void>((resolve, reject) => {
    pack.on('end', () => resolve());
    pack.on('error', reject);
  });
  for (const [name, data] of entries) {
    await new Promise<void>((resolve, reject) => {
      pack.entry({ name, size: data.length, mode: 0o644, mtime: FIXED_MTIME, uid: 0, gid: 0, uname: '', gname: '', type: 'file' }, data, (error) =>
        error ? reject(error) : resolve(),
      );
    });
  }
  pack.finalize();
  await done;
  return gzipSync(Buffer.concat(chunks), { level: GZIP_LEVEL[compression] });
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The exact DIGESTS.json bytes for a set of files (keys sorted, so the bytes are canonical). */
export function digestList(files: Map<string, Buffer>): Buffer {
  const sorted = [...files.keys()].sort();
  const digests = Object.fromEntries(sorted.map((file) => [file, sha256(files.get(file)!)]));
  return Buffer.from(`${JSON.stringify({ version: 1, algorithm: 'sha256', files: digests }, null, 2)}\n`);
}

/** An unsigned package of `manifest` and the app's files (package paths under app/). */
export async function buildPackage(manifest: AppManifest, appFiles: Map<string, Uint8Array>, options: PackageOptions = {}): Promise<Buffer> {
  validateManifest(manifest);
  const files = new Map<string, Buffer>([[MANIFEST_PATH, Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`)]]);
  for (const [file, data] of [...appFiles.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
    checkEntryPath(file, PACKAGE_LIMITS);
    if (!file.startsWith('app/')) throw fail('E_PACKAGE_PATH', `App files live under app/, got ${file}`);
    files.set(file, Buffer.from(data));
  }
  if (!files.has(manifest.entry)) throw fail('E_MANIFEST', `The manifest's entry ${manifest.entry} is not among the app files`);
  return writeTar([...files.entries(), [DIGESTS_PATH, digestList(files)]], options.compression);
}

export interface Signer {
  keyPem: string;
  certPem: string;
  /** Intermediates up to (not including) the root. */
  chainPem?: string[];
}

/**
 * Signs a package: the digests must verify first (a signer never vouches for files that do not
 * match their list), then DIGESTS.sig and CHAIN.pem are added or replaced.
 */
export async function signPackage(pkg: Uint8Array, signer: Signer): Promise<Buffer> {
  const { contents } = await readPackageFiles(pkg, { trust: { inspectOnly: true } });
  try {
    createPrivateKey(signer.keyPem);
  } catch {
    throw fail('E_CERT_FILE', 'The signing key is not a readable private key (PEM, unencrypted)');
  }
  const leaf = parseCertificates(signer.certPem)[0]!;
  if (!keyMatchesCertificate(signer.keyPem, leaf)) throw fail('E_CERT_KEY_MISMATCH', 'The signing key does not belong to the signing certificate');
  const chain = [leaf, ...(signer.chainPem ?? []).flatMap((pem) => parseCertificates(pem))];
  const entries = [...contents.entries()].filter(([file]) => file !== DIGESTS_PATH);
  const digests = digestList(contents);
  const signature = signBytes('sha256', digests, signer.keyPem);
  return writeTar([...entries, [DIGESTS_PATH, digests], [SIGNATURE_PATH, signature], [CHAIN_PATH, Buffer.from(chain.join(''))]]);
}
