/**
 * Integrity control (issue 16, part 4): each installed app's files against the reference
 * checksums of its authenticated install record, with the manual's exact status texts, and the
 * manual's report (header with host ID, time, checksum function and the report's checksum, the
 * separator, one `|`-separated line per file).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { MemoryAuditLog } from '../../platform/audit/index.js';
import { memoryDeviceKeys } from '../../platform/device/index.js';
import { DataDir } from '../../platform/durable/index.js';
import {
  CHECKSUM_FUNCTION,
  checkInstalledApps,
  FILE_STATUS,
  formatReport,
  REPORT_SEPARATOR,
  reportChecksumMatches,
  ZERO_CHECKSUM,
} from '../../platform/integrity/check.js';
import { sealRecord } from '../../platform/integrity/index.js';
import { IntegrityService } from '../../platform/integrity/service.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

const sha = (text: string): string => createHash('sha256').update(text).digest('hex');
const keys = memoryDeviceKeys();
const AT = new Date('2026-12-02T10:00:00.000Z');

async function installApp(apps: string, id: string, files: Record<string, string>): Promise<void> {
  for (const [name, text] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(apps, id, 'package', name)), { recursive: true });
    await fs.writeFile(path.join(apps, id, 'package', name), text);
  }
  const record = sealRecord(
    {
      package_id: id,
      version: '1.0.0',
      installedAt: AT.toISOString(),
      packageSha256: sha(id),
      digests: Object.fromEntries(Object.entries(files).map(([name, text]) => [name, sha(text)])),
      signer: null,
    },
    keys,
  );
  await fs.writeFile(path.join(apps, id, 'record.json'), JSON.stringify(record));
}

describe('integrity control', () => {
  let dir: string;
  let apps: string;

  beforeEach(async () => {
    dir = await makeTempDir('isogate-integrity-');
    apps = path.join(dir, 'apps');
    await fs.mkdir(apps, { mode: 0o700 });
  });
  afterEach(() => removeDir(dir));

  it('verifies an untouched app, every file and the record', async () => {
    await installApp(apps, 'com.example.good', { 'manifest.json': '{}', 'app/main.js': '1;' });
    const check = await checkInstalledApps(new DataDir(apps), keys, () => AT);
    assert.equal(check.ok, true);
    assert.deepEqual(
      check.files.map((file) => [file.path, file.status]),
      [
        ['apps/com.example.good/package/app/main.js', FILE_STATUS.verified],
        ['apps/com.example.good/package/manifest.json', FILE_STATUS.verified],
        ['apps/com.example.good/record.json', FILE_STATUS.verified],
      ],
    );
    assert.equal(check.files[0]!.reference, sha('1;'));
    assert.equal(check.files[0]!.calculated, sha('1;'));
    assert.deepEqual(check.violations, []);
  });

  it("finds a changed, an unknown and a removed file, each with the manual's status and zeros where a checksum does not exist", async () => {
    await installApp(apps, 'com.example.bad', { 'manifest.json': '{}', 'app/main.js': '1;', 'app/lib.js': '2;' });
    await fs.writeFile(path.join(apps, 'com.example.bad/package/app/main.js'), 'evil();');
    await fs.writeFile(path.join(apps, 'com.example.bad/package/app/planted.js'), 'planted();');
    await fs.rm(path.join(apps, 'com.example.bad/package/app/lib.js'));
    const check = await checkInstalledApps(new DataDir(apps), keys, () => AT);
    assert.equal(check.ok, false);
    const byPath = new Map(check.files.map((file) => [file.path.replace('apps/com.example.bad/', ''), file]));
    assert.equal(byPath.get('package/app/main.js')!.status, 'File content changed against reference!');
    assert.equal(byPath.get('package/app/main.js')!.calculated, sha('evil();'));
    assert.equal(byPath.get('package/app/planted.js')!.status, "File isn't present in integrity database!");
    assert.equal(byPath.get('package/app/planted.js')!.reference, ZERO_CHECKSUM);
    assert.equal(byPath.get('package/app/lib.js')!.status, 'The file under integrity control was deleted or moved!');
    assert.equal(byPath.get('package/app/lib.js')!.calculated, ZERO_CHECKSUM);
    assert.equal(byPath.get('package/manifest.json')!.status, FILE_STATUS.verified);
    assert.deepEqual(check.summary, { files: 5, verified: 2, changed: 1, unknown: 1, missing: 1, package: 0 });
    assert.deepEqual(
      check.violations.map((violation) => violation.app),
      ['com.example.bad'],
    );
  });

  it('reports every file of an app whose record was edited as a package integrity violation', async () => {
    await installApp(apps, 'com.example.edited', { 'manifest.json': '{}' });
    const file = path.join(apps, 'com.example.edited/record.json');
    const record = JSON.parse(await fs.readFile(file, 'utf8'));
    // Edited to match a changed file: the MAC no longer holds.
    record.digests['manifest.json'] = sha('{"evil":true}');
    await fs.writeFile(file, JSON.stringify(record));
    await fs.writeFile(path.join(apps, 'com.example.edited/package/manifest.json'), '{"evil":true}');
    const check = await checkInstalledApps(new DataDir(apps), keys, () => AT);
    assert.equal(check.ok, false);
    assert.deepEqual(
      check.files.map((entry) => entry.status),
      ['Package integrity violation!', 'Package integrity violation!'],
    );
    await fs.rm(file);
    const missing = await checkInstalledApps(new DataDir(apps), keys, () => AT);
    assert.equal(missing.files[0]!.status, FILE_STATUS.package);
    assert.equal(missing.files[0]!.calculated, ZERO_CHECKSUM);
  });

  it("writes the manual's report: header, separator, one |-separated line per file, a checksum that vouches for the body", async () => {
    await installApp(apps, 'com.example.good', { 'manifest.json': '{}', 'we|ird.js': 'x' });
    const check = await checkInstalledApps(new DataDir(apps), keys, () => AT);
    const report = formatReport(check, 'abcdef0123456789', AT.toISOString());
    const lines = report.split('\n');
    assert.equal(lines[0], 'Host ID: abcdef0123456789');
    assert.equal(lines[1], 'Report generation date and time: 2026-12-02T10:00:00.000Z');
    assert.equal(lines[2], `Report checksum function: ${CHECKSUM_FUNCTION}`);
    assert.match(lines[3]!, /^Report checksum: [0-9a-f]{64}$/);
    assert.equal(lines[4], REPORT_SEPARATOR);
    assert.equal(lines.at(-1), '', 'the report ends with a newline');
    const body = lines.slice(5, -1);
    assert.equal(body.length, check.files.length);
    assert.deepEqual(body[0]!.split('|'), [
      'apps/com.example.good/package/manifest.json',
      AT.toISOString(),
      'SHA-256',
      sha('{}'),
      sha('{}'),
      'File integrity verified successfully',
    ]);
    // A | in a name is escaped, so every line keeps its six fields.
    assert.equal(body[1], `apps/com.example.good/package/we\\|ird.js|${AT.toISOString()}|SHA-256|${sha('x')}|${sha('x')}|File integrity verified successfully`);
    assert.equal(reportChecksumMatches(report), true);
    assert.equal(
      reportChecksumMatches(report.replace('verified successfully\napps', 'verified successfully\nxapps')),
      false,
      'an edited body fails its checksum',
    );
  });

  it('audits the manual check without a violation event, and the start-up check with one per violated app', async () => {
    await installApp(apps, 'com.example.good', { 'manifest.json': '{}' });
    await installApp(apps, 'com.example.bad', { 'manifest.json': '{}' });
    await fs.writeFile(path.join(apps, 'com.example.bad/package/manifest.json'), '{"x":1}');
    const audit = new MemoryAuditLog();
    const service = new IntegrityService({ apps: new DataDir(apps), keys, audit, clock: () => AT });
    assert.throws(() => service.last(), { code: 'E_NOT_FOUND' });
    const run = await service.manualCheck();
    assert.equal(run.ok, false);
    assert.deepEqual(service.last(), run);
    assert.deepEqual(
      audit.records.map((record) => [record.name, record.text]),
      [
        [
          'admin: Generation of the integrity check report',
          'Generation of the integrity check report started: the installed apps are checked against their install records',
        ],
        ['IntegrityService: Integrity check status', 'Integrity check status: completed, integrity violations found in 1 app(s): com.example.bad'],
      ],
    );
    const report = service.report(run.id);
    assert.match(report.fileName, /^integrity_report_[0-9a-f]{16}_2026-12-02T10-00-00-000Z\.txt$/);
    assert.equal(reportChecksumMatches(report.text), true);
    assert.throws(() => service.report('0123456789abcdef'), { code: 'E_NOT_FOUND' });

    // The last manual check survives a restart: a new service reads it back.
    const lastFile = { root: new DataDir(dir), path: path.join(dir, 'integrity-last.json') };
    const kept = new IntegrityService({ apps: new DataDir(apps), keys, audit, clock: () => AT, lastFile });
    const keptRun = await kept.manualCheck();
    const reopened = new IntegrityService({ apps: new DataDir(apps), keys, audit, clock: () => AT, lastFile });
    assert.throws(() => reopened.last(), { code: 'E_NOT_FOUND' });
    await reopened.load();
    assert.deepEqual(reopened.last(), keptRun);
    assert.equal(reopened.report(keptRun.id).text, kept.report(keptRun.id).text);
    await fs.writeFile(lastFile.path, '{"run": 1}');
    const damaged = new IntegrityService({ apps: new DataDir(apps), keys, audit, lastFile });
    await damaged.load();
    assert.throws(() => damaged.last(), { code: 'E_NOT_FOUND' }, 'a record that is not a check is ignored');

    audit.records.length = 0;
    const atStart = await service.startupCheck();
    assert.equal(atStart.ok, false);
    const violation = audit.records.find((record) => record.event === 'integrityViolation')!;
    assert.equal(violation.severity, 'Critical');
    assert.match(violation.text, /^The app com\.example\.bad integrity violated: 1 file\(s\) not verified/);
    audit.records.length = 0;
    await service.startupCheck(new Set(['com.example.bad']));
    assert.equal(
      audit.records.filter((record) => record.event === 'integrityViolation').length,
      0,
      'an app the orchestrator quarantined (and audited) is not audited twice',
    );
  });
});
