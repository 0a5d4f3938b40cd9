/**
 * Integrity records and checks. At install the orchestrator records the signed digest of
 * every file, MAC'd with a device-derived key so the record itself cannot be edited to match
 * tampered files. Before every launch the launcher re-hashes the installed files against it
 * and runs exactly the bytes it checked (no time-of-check/time-of-use gap).
 */
import { createHash } from 'node:crypto';
import { fail, isIsogateError } from '../../sdk/errors.js';
import type { DeviceKeys } from '../device/index.js';
import type { DataDir } from '../durable/index.js';

export interface SignerSummary {
  subject: string;
  issuer: string;
  serialNumber: string;
  fingerprint256: string;
  validTo: string;
  /** The signer's and its issuing CA's public keys (SHA-256 of DER SPKI); absent in 0.1.0 records. */
  spkiSha256?: string;
  issuerSpkiSha256?: string;
}

/**
 * Where an installed package came from: the store, the gateway's own image (signed by a
 * platform root store publishers do not have), or a developer's push through the debug
 * service (`debug`, never signature-verified, owned by the developer who pushed it). Only
 * `image` apps may hold reserved capabilities. Records written by 0.1.0 have no origin and are `store`.
 */
export type AppOrigin = 'store' | 'image' | 'debug';

export function originOf(record: Pick<IntegrityRecord, 'origin'>): AppOrigin {
  return record.origin === 'image' || record.origin === 'debug' ? record.origin : 'store';
}

export interface IntegrityRecord {
  package_id: string;
  version: string;
  installedAt: string;
  packageSha256: string;
  /** package path -> SHA-256 hex: exactly the signed set. */
  digests: Record<string, string>;
  signer: SignerSummary | null;
  origin?: AppOrigin;
  /** The developer whose debug-service token pushed it (origin `debug` only): the only one who may push, tail or debug it. */
  owner?: string;
  mac: string;
}

export type UnsignedRecord = Omit<IntegrityRecord, 'mac'>;

/** Canonical bytes the MAC covers: keys sorted at every level, so the JSON layout cannot matter. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export function sealRecord(record: UnsignedRecord, keys: DeviceKeys): IntegrityRecord {
  return { ...record, mac: keys.mac('integrity', record.package_id, canonicalJson(record)) };
}

export function recordIsAuthentic(record: IntegrityRecord, keys: DeviceKeys): boolean {
  const { mac, ...rest } = record;
  return typeof mac === 'string' && keys.verifyMac('integrity', record.package_id, canonicalJson(rest), mac);
}

export interface IntegrityViolation {
  path: string;
  problem: 'modified' | 'missing' | 'unexpected' | 'not-a-regular-file' | 'record';
}

/** Every entry under `root` but directories, depth first, `regular` false for anything not a plain file. */
export async function listFiles(root: DataDir, prefix = ''): Promise<{ path: string; regular: boolean }[]> {
  // The folders are listed side by side (each listing walks its safe path's checks), in order.
  const listed = await Promise.all(
    (await root.readdir(prefix)).map(async (entry) => {
      const relative = prefix ? `${prefix}/${entry.name}` : entry.name;
      return entry.isDirectory() ? listFiles(root, relative) : [{ path: relative, regular: entry.isFile() }];
    }),
  );
  return listed.flat();
}

/**
 * Checks every file under `packageDir` against `record` and returns the verified contents.
 * Throws E_INTEGRITY listing what is wrong (details.violations) when anything differs. The
 * files are read through DataDir: the package directory, or a file in it, swapped for a link
 * after the listing is refused with E_UNSAFE_PATH, never read (a root gateway would otherwise
 * hash, and run, whatever it pointed at).
 */
export async function verifyInstalledFiles(packageDir: DataDir, record: IntegrityRecord, keys: DeviceKeys): Promise<Map<string, Buffer>> {
  if (!recordIsAuthentic(record, keys)) {
    throw fail('E_INTEGRITY', `The integrity record of ${record.package_id} is not authentic`, {
      violations: [{ path: 'record.json', problem: 'record' }],
    });
  }
  const violations: IntegrityViolation[] = [];
  const contents = new Map<string, Buffer>();
  let present: { path: string; regular: boolean }[];
  try {
    present = await listFiles(packageDir);
  } catch (error) {
    if (isIsogateError(error, 'E_UNSAFE_PATH')) throw error;
    throw fail('E_INTEGRITY', `The files of ${record.package_id} cannot be read: ${(error as Error).message}`);
  }
  const expected = new Set(Object.keys(record.digests));
  const toRead: string[] = [];
  for (const file of present) {
    if (!expected.has(file.path)) {
      violations.push({ path: file.path, problem: 'unexpected' });
      continue;
    }
    expected.delete(file.path);
    if (!file.regular) {
      violations.push({ path: file.path, problem: 'not-a-regular-file' });
      continue;
    }
    toRead.push(file.path);
  }
  // Read side by side: each read is a dozen small steps (its safe path's checks, the open, the
  // checks again), each waiting for the one before; one file after another they added up to
  // most of the check. Each file is hashed as its bytes arrive.
  const outcomes = await Promise.allSettled(
    toRead.map(async (file) => {
      const bytes = await packageDir.readFile(file);
      if (bytes === undefined) return 'missing' as const;
      if (createHash('sha256').update(bytes).digest('hex') !== record.digests[file]) return 'modified' as const;
      return bytes;
    }),
  );
  const unsafe = outcomes.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
  if (unsafe) throw unsafe.reason;
  toRead.forEach((file, index) => {
    const read = (outcomes[index] as PromiseFulfilledResult<Buffer | 'missing' | 'modified'>).value;
    if (typeof read === 'string') violations.push({ path: file, problem: read });
    else contents.set(file, read);
  });
  for (const missing of expected) violations.push({ path: missing, problem: 'missing' });
  if (violations.length) {
    const summary = violations
      .slice(0, 5)
      .map((v) => `${v.path} ${v.problem}`)
      .join(', ');
    throw fail('E_INTEGRITY', `Integrity check of ${record.package_id} failed: ${summary}${violations.length > 5 ? ', ...' : ''}`, { violations });
  }
  return contents;
}
