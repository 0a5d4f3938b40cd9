/** The package format's names, limits and path rules (sdk/PACKAGE-FORMAT.md describes them). */
import { fail } from '../errors.js';

export const MANIFEST_PATH = 'manifest.json';
export const DIGESTS_PATH = 'META-INF/DIGESTS.json';
export const SIGNATURE_PATH = 'META-INF/DIGESTS.sig';
export const CHAIN_PATH = 'META-INF/CHAIN.pem';
export const META_PATHS: ReadonlySet<string> = new Set([DIGESTS_PATH, SIGNATURE_PATH, CHAIN_PATH]);

export interface PackageLimits {
  /** Compressed size of the .igp file. */
  maxPackageBytes: number;
  maxEntries: number;
  maxFileBytes: number;
  /** Uncompressed size of all entries together: the gzip-bomb bound. */
  maxTotalBytes: number;
  maxPathBytes: number;
  maxDepth: number;
  /** manifest.json and META-INF files are held in memory; they are small. */
  maxMetaBytes: number;
}

export const PACKAGE_LIMITS: Readonly<PackageLimits> = Object.freeze({
  maxPackageBytes: 64 * 1024 * 1024,
  maxEntries: 10_000,
  maxFileBytes: 32 * 1024 * 1024,
  maxTotalBytes: 128 * 1024 * 1024,
  maxPathBytes: 240,
  maxDepth: 16,
  maxMetaBytes: 1024 * 1024,
});

/**
 * A package path must be a plain relative path: no absolute or drive paths, no backslashes
 * (a Windows extractor would treat them as separators), no `.`/`..`/empty segments, no control
 * characters, bounded length and depth. Returns the path without a directory's trailing slash.
 */
export function checkEntryPath(name: string, limits: PackageLimits, isDirectory = false): string {
  const path = isDirectory ? name.replace(/\/+$/, '') : name;
  const problem = (reason: string): never => {
    throw fail('E_PACKAGE_PATH', `Unsafe entry ${JSON.stringify(name.slice(0, 300))}: ${reason}`, { entry: name.slice(0, 300), reason });
  };
  if (!path) problem('empty name');
  if (Buffer.byteLength(path) > limits.maxPathBytes) problem(`longer than ${limits.maxPathBytes} bytes`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(path)) problem('control character in the name');
  if (path.includes('\\')) problem('backslash in the name');
  if (path.startsWith('/') || /^[A-Za-z]:/.test(path)) problem('absolute path');
  const segments = path.split('/');
  if (segments.some((segment) => segment === '' || segment === '.' || segment === '..')) problem('empty, "." or ".." path segment');
  if (segments.length > limits.maxDepth) problem(`deeper than ${limits.maxDepth} levels`);
  if (!isDirectory && path !== MANIFEST_PATH && !META_PATHS.has(path) && segments[0] !== 'app') problem('outside manifest.json, app/ and META-INF/');
  if (isDirectory && segments[0] !== 'app' && path !== 'META-INF') problem('directory outside app/ and META-INF/');
  return path;
}

export function resolveLimits(overrides: Partial<PackageLimits> = {}): PackageLimits {
  const limits = { ...PACKAGE_LIMITS, ...overrides };
  for (const [key, value] of Object.entries(limits)) {
    if (!Number.isInteger(value) || value <= 0) throw fail('E_OPTION', `package limit ${key} must be a positive integer, got ${String(value)}`);
  }
  return limits;
}
