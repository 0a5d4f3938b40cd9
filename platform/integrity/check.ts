/**
 * Integrity control (the manual's "Self-testing and integrity control"): every installed app's
 * files hashed against the reference checksums of its install record, read again from disk
 * and authenticated with the device key, so that neither the files nor the record can be
 * edited to match. The same check runs at start-up (a violation is the manual's Critical event
 * and emergency support mode: platform/main.ts) and on the administrator's request, whose
 * report is the manual's TXT file (`formatReport`).
 */
import { createHash } from 'node:crypto';
import { isIsogateError } from '../../sdk/errors.js';
import type { DeviceKeys } from '../device/index.js';
import type { DataDir } from '../durable/index.js';
import { type IntegrityRecord, listFiles, recordIsAuthentic } from './index.js';

/** The manual's status texts, word for word: the report and the API carry exactly these. */
export const FILE_STATUS = {
  verified: 'File integrity verified successfully',
  changed: 'File content changed against reference!',
  unknown: "File isn't present in integrity database!",
  missing: 'The file under integrity control was deleted or moved!',
  package: 'Package integrity violation!',
} as const;
export type FileStatus = (typeof FILE_STATUS)[keyof typeof FILE_STATUS];

export const CHECKSUM_FUNCTION = 'SHA-256';
/** The manual fills the checksum that does not exist (an unknown file's reference, a missing file's calculated) with zeros. */
export const ZERO_CHECKSUM = '0'.repeat(64);
export const REPORT_SEPARATOR = '-'.repeat(80);

export interface FileCheck {
  /** Below the data directory: apps/<id>/package/<file> (apps/<id>/record.json for the record). */
  path: string;
  app: string;
  checkedAt: string;
  reference: string;
  calculated: string;
  status: FileStatus;
}

export interface IntegrityCheck {
  startedAt: string;
  finishedAt: string;
  ok: boolean;
  files: FileCheck[];
  summary: { files: number; verified: number; changed: number; unknown: number; missing: number; package: number };
  /** Apps with at least one file not verified, with the first problem found. */
  violations: { app: string; description: string }[];
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The record when it is there, JSON, shaped like one, authentic and of this app; otherwise undefined. */
function authenticRecord(bytes: Buffer | undefined, app: string, keys: DeviceKeys): IntegrityRecord | undefined {
  if (bytes === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
  const record = parsed as IntegrityRecord;
  if (!record || typeof record !== 'object' || typeof record.digests !== 'object' || record.digests === null) return undefined;
  if (record.package_id !== app || !recordIsAuthentic(record, keys)) return undefined;
  return Object.values(record.digests).every((digest) => typeof digest === 'string') ? record : undefined;
}

async function checkApp(apps: DataDir, app: string, keys: DeviceKeys, clock: () => Date): Promise<FileCheck[]> {
  const at = (): string => clock().toISOString();
  const base = `apps/${app}`;
  const recordBytes = await apps.readFile(`${app}/record.json`).catch((error: unknown) => {
    if (isIsogateError(error, 'E_UNSAFE_PATH')) return undefined;
    throw error;
  });
  const record = authenticRecord(recordBytes, app, keys);
  // Sorted, so the report lists an app's files in the same order every time.
  const present = (await listFiles(apps.sub(`${app}/package`)).catch(() => [] as { path: string; regular: boolean }[])).sort((a, b) =>
    a.path < b.path ? -1 : a.path > b.path ? 1 : 0,
  );
  const checks: FileCheck[] = [];
  if (!record) {
    // Without reference checksums no file can be verified: the record's line says why, and each file is reported unverified.
    checks.push({
      path: `${base}/record.json`,
      app,
      checkedAt: at(),
      reference: ZERO_CHECKSUM,
      calculated: recordBytes ? sha256(recordBytes) : ZERO_CHECKSUM,
      status: FILE_STATUS.package,
    });
    for (const file of present) {
      const bytes = file.regular ? await apps.readFile(`${app}/package/${file.path}`).catch(() => undefined) : undefined;
      checks.push({
        path: `${base}/package/${file.path}`,
        app,
        checkedAt: at(),
        reference: ZERO_CHECKSUM,
        calculated: bytes ? sha256(bytes) : ZERO_CHECKSUM,
        status: FILE_STATUS.package,
      });
    }
    return checks;
  }
  const expected = new Map(Object.entries(record.digests));
  for (const file of present) {
    const reference = expected.get(file.path);
    expected.delete(file.path);
    const bytes = file.regular ? await apps.readFile(`${app}/package/${file.path}`).catch(() => undefined) : undefined;
    const calculated = bytes ? sha256(bytes) : ZERO_CHECKSUM;
    const status =
      reference === undefined ? FILE_STATUS.unknown : !bytes ? FILE_STATUS.missing : calculated === reference ? FILE_STATUS.verified : FILE_STATUS.changed;
    checks.push({ path: `${base}/package/${file.path}`, app, checkedAt: at(), reference: reference ?? ZERO_CHECKSUM, calculated, status });
  }
  for (const [missing, reference] of [...expected].sort(([a], [b]) => (a < b ? -1 : 1))) {
    checks.push({ path: `${base}/package/${missing}`, app, checkedAt: at(), reference, calculated: ZERO_CHECKSUM, status: FILE_STATUS.missing });
  }
  checks.push({
    path: `${base}/record.json`,
    app,
    checkedAt: at(),
    reference: sha256(recordBytes!),
    calculated: sha256(recordBytes!),
    status: FILE_STATUS.verified,
  });
  return checks;
}

/**
 * Checks every app under `apps` (DATA/apps: one directory per installed app, quarantined ones
 * included). A file the check cannot read is a finding, never an exception: the report is the
 * administrator's evidence and must list everything.
 */
export async function checkInstalledApps(apps: DataDir, keys: DeviceKeys, clock: () => Date = () => new Date()): Promise<IntegrityCheck> {
  const startedAt = clock().toISOString();
  const files: FileCheck[] = [];
  const names = (await apps.readdir()).filter((entry) => entry.isDirectory()).map((entry) => entry.name);
  for (const app of names.sort()) files.push(...(await checkApp(apps, app, keys, clock)));
  const count = (status: FileStatus): number => files.filter((file) => file.status === status).length;
  const violations: IntegrityCheck['violations'] = [];
  for (const app of names) {
    const bad = files.filter((file) => file.app === app && file.status !== FILE_STATUS.verified);
    if (bad.length > 0) violations.push({ app, description: `${bad.length} file(s) not verified, first ${bad[0]!.path}: ${bad[0]!.status}` });
  }
  return {
    startedAt,
    finishedAt: clock().toISOString(),
    ok: violations.length === 0,
    files,
    summary: {
      files: files.length,
      verified: count(FILE_STATUS.verified),
      changed: count(FILE_STATUS.changed),
      unknown: count(FILE_STATUS.unknown),
      missing: count(FILE_STATUS.missing),
      package: count(FILE_STATUS.package),
    },
    violations,
  };
}

/** One line of the report's body: a `|` in a file's name would split the line, so it is escaped. */
function reportLine(file: FileCheck): string {
  const shown = file.path.replace(/[|\\]/g, (c) => `\\${c}`).replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return [shown, file.checkedAt, CHECKSUM_FUNCTION, file.reference, file.calculated, file.status].join('|');
}

/**
 * The manual's report: a header (host ID, generation time, the checksum function and the
 * checksum of the report, then the separator) and one `|`-separated line per file. The
 * checksum covers the body, the part after the separator, which is what it can vouch for.
 */
export function formatReport(check: IntegrityCheck, hostId: string, generatedAt: string): string {
  const body = check.files.map((file) => `${reportLine(file)}\n`).join('');
  return (
    [
      `Host ID: ${hostId}`,
      `Report generation date and time: ${generatedAt}`,
      `Report checksum function: ${CHECKSUM_FUNCTION}`,
      `Report checksum: ${createHash('sha256').update(body).digest('hex')}`,
      REPORT_SEPARATOR,
      '',
    ].join('\n') + body
  );
}

/** Checks a report's checksum against its body: what an administrator (or a test) does with a downloaded report. */
export function reportChecksumMatches(report: string): boolean {
  const at = report.indexOf(`\n${REPORT_SEPARATOR}\n`);
  if (at < 0) return false;
  const declared = /^Report checksum: ([0-9a-f]{64})$/m.exec(report.slice(0, at))?.[1];
  return (
    declared ===
    createHash('sha256')
      .update(report.slice(at + REPORT_SEPARATOR.length + 2))
      .digest('hex')
  );
}

/** A stable identifier of this gateway that reveals nothing of its keys: the report's host ID and the backup's origin. */
export function hostIdOf(keys: DeviceKeys): string {
  return createHash('sha256')
    .update(keys.mac('integrity', '#host-id', 'isogate host id'))
    .digest('hex')
    .slice(0, 16);
}
