/**
 * Reading and verifying a package. One streaming pass: gunzip and untar with every bound
 * counted as bytes arrive (a gzip bomb is stopped after maxTotalBytes, not after it filled the
 * memory or the disk), each file hashed while it streams and, when asked, written under
 * `extractTo`. Then the checks, in order: the signature over DIGESTS.json and the signer's
 * chain, exactly the signed set of files, every digest, the manifest. Any failure removes
 * whatever was extracted: the caller's directory ends as empty as it started.
 */
import { createHash, verify as verifySignature, X509Certificate } from 'node:crypto';
import { closeSync, createReadStream, promises as fs, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { fail, isIsogateError } from '../errors.js';
import { type AppManifest, parseManifest } from '../manifest.js';
import { type CertificateDetails, certificateDetails, parseCertificates, verifyCertificateChain } from '../pki.js';
import { assertValid, compileSchema } from '../schema.js';
import { CHAIN_PATH, checkEntryPath, DIGESTS_PATH, MANIFEST_PATH, META_PATHS, type PackageLimits, resolveLimits, SIGNATURE_PATH } from './format.js';

export interface SignerInfo extends CertificateDetails {
  chain: string[];
  /** The CA that issued the signer certificate on the validated path (absent when only inspected). */
  issuingCa?: { subject: string; spkiSha256: string };
}

export interface VerifiedPackage {
  manifest: AppManifest;
  manifestBytes: Buffer;
  /** package path -> SHA-256 hex: the signed list. */
  digests: Record<string, string>;
  digestsBytes: Buffer;
  signer: SignerInfo | null;
  signatureChecked: boolean;
  /** META-INF path -> SHA-256 hex of the files the signed list cannot name (itself, its signature, the chain). */
  metaDigests: Record<string, string>;
  packageSha256: string;
  packageBytes: number;
  files: { path: string; size: number }[];
}

export type TrustPolicy = { trustRootsPem: string[] } | { allowUnsigned: true; trustRootsPem?: string[] } | { inspectOnly: true };

export interface ReadPackageOptions {
  trust: TrustPolicy;
  /** An empty directory to extract the verified files into. */
  extractTo?: string;
  limits?: Partial<PackageLimits>;
  now?: Date;
}

interface Unpacked {
  files: Map<string, { size: number; sha256: string; bytes?: Buffer }>;
  meta: Map<string, Buffer>;
  metaDigests: Map<string, string>;
  packageSha256: string;
  packageBytes: number;
}

const DIGESTS_SCHEMA_PATH = fileURLToPath(new URL('../../manifests/package-digests.schema.json', import.meta.url));
let digestsSchema: object | undefined;

/** Counts bytes through a stream and fails the moment a bound is passed. */
function byteCounter(limit: number, onExceeded: () => Error, onChunk?: (chunk: Buffer) => void): Transform & { total: number } {
  const counter = new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      counter.total += chunk.length;
      if (counter.total > limit) {
        callback(onExceeded());
        return;
      }
      onChunk?.(chunk);
      callback(null, chunk);
    },
  }) as Transform & { total: number };
  counter.total = 0;
  return counter;
}

/**
 * Writes one entry under `root`. Synchronous on purpose: only the verify worker extracts, off the
 * gateway's event loop, and a write per chunk through the thread pool (shared with every app's
 * I/O) costs more in hops than in writing.
 */
async function writeExtracted(
  root: string,
  relative: string,
  content: AsyncIterable<Buffer> | Iterable<Buffer>,
  onChunk: (chunk: Buffer) => void,
): Promise<void> {
  const target = path.join(root, relative);
  mkdirSync(path.dirname(target), { recursive: true, mode: 0o755 });
  // O_EXCL: a second entry for the same path (or a pre-existing file) can never be overwritten.
  const fd = openSync(target, 'wx', 0o644);
  try {
    for await (const chunk of content) {
      onChunk(chunk);
      for (let written = 0; written < chunk.length; ) written += writeSync(fd, chunk, written);
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * `until`: the one entry wanted; the pass ends as soon as it has been read (the entries before
 * it checked as always), without inflating or hashing the rest. Only a reader that trusts the
 * result for nothing (readManifestUnverified) asks for it: the package hash and sizes it
 * returns then cover the part read.
 */
async function unpack(source: Uint8Array | string, limits: PackageLimits, extractTo: string | undefined, collect: boolean, until?: string): Promise<Unpacked> {
  const packageHash = createHash('sha256');
  const input = typeof source === 'string' ? createReadStream(source) : Readable.from([Buffer.from(source)]);
  const compressed = byteCounter(
    limits.maxPackageBytes,
    () => fail('E_PACKAGE_LIMIT', `The package is larger than ${limits.maxPackageBytes} bytes`),
    (chunk) => packageHash.update(chunk),
  );
  // tar headers and padding add at most 1.5 KiB per entry on top of the file bytes.
  const uncompressedLimit = limits.maxTotalBytes + limits.maxEntries * 1536 + 1024 * 1024;
  const uncompressed = byteCounter(uncompressedLimit, () =>
    fail('E_PACKAGE_LIMIT', `The package unpacks to more than ${limits.maxTotalBytes} bytes (a compression bomb?)`),
  );
  const gunzip = createGunzip({ chunkSize: 128 * 1024 });
  const extract = tar.extract();
  const flowing = pipeline(input, compressed, gunzip, uncompressed, extract).catch((error: unknown) => {
    throw isIsogateError(error) ? error : fail('E_PACKAGE_FORMAT', `The package is not a well-formed gzip'd tar: ${(error as Error).message}`);
  });
  // The loop below may stop early; the pipeline's own rejection is reported from there.
  flowing.catch(() => undefined);

  const files: Unpacked['files'] = new Map();
  const meta: Unpacked['meta'] = new Map();
  const metaDigests: Unpacked['metaDigests'] = new Map();
  const seenFolded = new Set<string>();
  let entries = 0;
  let total = 0;
  try {
    for await (const entry of extract) {
      const header = entry.header;
      entries += 1;
      if (entries > limits.maxEntries) throw fail('E_PACKAGE_LIMIT', `The package has more than ${limits.maxEntries} entries`);
      if (header.type === 'directory') {
        checkEntryPath(header.name, limits, true);
        entry.resume();
        continue;
      }
      if (header.type !== 'file') {
        throw fail(
          'E_PACKAGE_PATH',
          `Entry ${JSON.stringify(header.name.slice(0, 300))} is a ${header.type ?? 'special'} entry; packages hold regular files only`,
          { entry: header.name.slice(0, 300), reason: header.type },
        );
      }
      const name = checkEntryPath(header.name, limits);
      const folded = name.toLowerCase();
      if (seenFolded.has(folded))
        throw fail('E_PACKAGE_PATH', `Entry ${JSON.stringify(name)} appears twice (names are compared case-insensitively)`, {
          entry: name,
          reason: 'duplicate',
        });
      seenFolded.add(folded);
      const size = header.size ?? 0;
      if (size > limits.maxFileBytes) throw fail('E_PACKAGE_LIMIT', `Entry ${name} is ${size} bytes; the limit is ${limits.maxFileBytes}`);
      total += size;
      if (total > limits.maxTotalBytes) throw fail('E_PACKAGE_LIMIT', `The package unpacks to more than ${limits.maxTotalBytes} bytes`);

      const hash = createHash('sha256');
      const isMeta = name === MANIFEST_PATH || META_PATHS.has(name);
      if (isMeta && size > limits.maxMetaBytes) throw fail('E_PACKAGE_LIMIT', `${name} is larger than ${limits.maxMetaBytes} bytes`);
      if (isMeta || collect || !extractTo) {
        const chunks: Buffer[] = [];
        for await (const chunk of entry as AsyncIterable<Buffer>) {
          hash.update(chunk);
          if (isMeta || collect) chunks.push(chunk);
        }
        const bytes = Buffer.concat(chunks);
        if (isMeta) meta.set(name, bytes);
        if (name !== MANIFEST_PATH && META_PATHS.has(name)) {
          metaDigests.set(name, hash.digest('hex'));
          if (extractTo) await writeExtracted(extractTo, name, [bytes], () => undefined);
          continue;
        }
        if (extractTo && name === MANIFEST_PATH) await writeExtracted(extractTo, name, [bytes], () => undefined);
        files.set(name, { size, sha256: hash.digest('hex'), ...(collect ? { bytes } : {}) });
        if (name === until) break;
      } else {
        await writeExtracted(extractTo, name, entry as AsyncIterable<Buffer>, (chunk) => hash.update(chunk));
        files.set(name, { size, sha256: hash.digest('hex') });
      }
    }
    if (until !== undefined && meta.has(until)) {
      // Leaving the loop ended the extractor; the rest of the file is not read.
      input.destroy();
      gunzip.destroy();
    } else await flowing;
  } catch (error) {
    input.destroy();
    gunzip.destroy();
    extract.destroy();
    throw isIsogateError(error) ? error : fail('E_PACKAGE_FORMAT', `The package is not a well-formed gzip'd tar: ${(error as Error).message}`);
  }
  if (entries === 0) throw fail('E_PACKAGE_FORMAT', 'The package is empty');
  return { files, meta, metaDigests, packageSha256: packageHash.digest('hex'), packageBytes: compressed.total };
}

function parseDigests(bytes: Buffer | undefined): Record<string, string> {
  if (!bytes) throw fail('E_FILE_SET', `The package has no ${DIGESTS_PATH}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw fail('E_PACKAGE_FORMAT', `${DIGESTS_PATH} is not UTF-8 JSON`);
  }
  digestsSchema ??= JSON.parse(readFileSync(DIGESTS_SCHEMA_PATH, 'utf8')) as object;
  assertValid(compileSchema(digestsSchema, 'E_INTERNAL'), parsed, 'E_PACKAGE_FORMAT', DIGESTS_PATH);
  return (parsed as { files: Record<string, string> }).files;
}

async function checkSignature(unpacked: Unpacked, trust: TrustPolicy, now: Date): Promise<{ signer: SignerInfo | null; checked: boolean }> {
  const signature = unpacked.meta.get(SIGNATURE_PATH);
  const chainBytes = unpacked.meta.get(CHAIN_PATH);
  const digestsBytes = unpacked.meta.get(DIGESTS_PATH)!;
  if (!signature && !chainBytes) {
    if ('inspectOnly' in trust || 'allowUnsigned' in trust) return { signer: null, checked: false };
    throw fail('E_SIGNATURE', 'The package is not signed');
  }
  if (!signature || !chainBytes) throw fail('E_SIGNATURE', `A signed package needs both ${SIGNATURE_PATH} and ${CHAIN_PATH}`);
  let chain: string[];
  try {
    chain = parseCertificates(chainBytes.toString('utf8'));
  } catch {
    throw fail('E_SIGNATURE', `${CHAIN_PATH} holds no readable certificate`);
  }
  if ('inspectOnly' in trust) return { signer: { ...certificateDetails(chain[0]!), chain }, checked: false };
  const roots = trust.trustRootsPem ?? [];
  if (roots.length === 0) throw fail('E_SIGNATURE', 'No trusted root is configured to check the signature against');
  const details = await verifyCertificateChain(chain, roots, 'code-signing', now);
  const publicKey = new X509Certificate(chain[0]!).publicKey;
  if (!verifySignature('sha256', digestsBytes, publicKey, signature)) {
    throw fail('E_SIGNATURE', `The signature does not match ${DIGESTS_PATH} for signer ${details.subject}`);
  }
  return { signer: { ...details, chain }, checked: true };
}

function checkFileSet(unpacked: Unpacked, digests: Record<string, string>): void {
  const signed = new Set(Object.keys(digests));
  const present = [...unpacked.files.keys()];
  const extra = present.filter((file) => !signed.has(file));
  const missing = [...signed].filter((file) => !unpacked.files.has(file));
  if (extra.length || missing.length) {
    const parts = [
      extra.length ? `not signed: ${extra.slice(0, 5).join(', ')}` : '',
      missing.length ? `signed but missing: ${missing.slice(0, 5).join(', ')}` : '',
    ];
    throw fail('E_FILE_SET', `The package files differ from the signed list (${parts.filter(Boolean).join('; ')})`, { extra, missing });
  }
  for (const [file, expected] of Object.entries(digests)) {
    if (unpacked.files.get(file)!.sha256 !== expected) throw fail('E_DIGEST', `${file} does not match its signed digest`, { path: file });
  }
}

async function emptyDirectory(dir: string): Promise<void> {
  for (const entry of await fs.readdir(dir).catch(() => [] as string[])) await fs.rm(path.join(dir, entry), { recursive: true, force: true });
}

async function verifyUnpacked(unpacked: Unpacked, options: ReadPackageOptions): Promise<VerifiedPackage> {
  const digests = parseDigests(unpacked.meta.get(DIGESTS_PATH));
  const { signer, checked } = await checkSignature(unpacked, options.trust, options.now ?? new Date());
  checkFileSet(unpacked, digests);
  const manifestBytes = unpacked.meta.get(MANIFEST_PATH);
  if (!manifestBytes) throw fail('E_MANIFEST', `The package has no ${MANIFEST_PATH}`);
  const manifest = parseManifest(manifestBytes);
  if (!unpacked.files.has(manifest.entry))
    throw fail('E_MANIFEST', `The manifest's entry ${manifest.entry} is not in the package`, {
      violations: [{ pointer: '/entry', rule: 'exists', message: 'is not a file of the package' }],
    });
  return {
    manifest,
    manifestBytes,
    digests,
    digestsBytes: unpacked.meta.get(DIGESTS_PATH)!,
    signer,
    signatureChecked: checked,
    metaDigests: Object.fromEntries(unpacked.metaDigests),
    packageSha256: unpacked.packageSha256,
    packageBytes: unpacked.packageBytes,
    files: [...unpacked.files.entries()].map(([file, info]) => ({ path: file, size: info.size })).sort((a, b) => (a.path < b.path ? -1 : 1)),
  };
}

/** Reads and verifies a package (see the module comment for the order of checks). */
export async function readPackage(source: Uint8Array | string, options: ReadPackageOptions): Promise<VerifiedPackage> {
  const limits = resolveLimits(options.limits);
  try {
    return await verifyUnpacked(await unpack(source, limits, options.extractTo, false), options);
  } catch (error) {
    if (options.extractTo) await emptyDirectory(options.extractTo);
    throw error;
  }
}

/** Reads a package into memory, verified per `trust` (used to re-sign a package). */
export async function readPackageFiles(
  source: Uint8Array | string,
  options: ReadPackageOptions,
): Promise<{ verified: VerifiedPackage; contents: Map<string, Buffer> }> {
  const unpacked = await unpack(source, resolveLimits(options.limits), undefined, true);
  const verified = await verifyUnpacked(unpacked, options);
  const contents = new Map<string, Buffer>();
  for (const [file, info] of unpacked.files) contents.set(file, file === MANIFEST_PATH ? verified.manifestBytes : info.bytes!);
  return { verified, contents };
}

/**
 * The manifest of a package whose signature or digests may be broken, read within the same
 * bounds as any package and trusted for nothing: an unchecked store listing needs its id.
 */
export async function readManifestUnverified(source: Uint8Array | string): Promise<AppManifest> {
  // Packages put manifest.json first (build.ts), so this is one small read of a large package:
  // the verification that follows reads all of it, in the worker.
  const manifest = (await unpack(source, resolveLimits(), undefined, false, MANIFEST_PATH)).meta.get(MANIFEST_PATH);
  if (!manifest) throw fail('E_FILE_SET', 'The package has no manifest.json');
  return parseManifest(manifest);
}
