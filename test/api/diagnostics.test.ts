/**
 * The Self-diagnostics, Settings and Network routes over real HTTPS with client certificates
 * (issue 16, parts 4 and 5; CONTRACT-web.md): the integrity check and its report download, the
 * self-test, the configuration editor validated before save, backup as a download and restore
 * from the file itself, and Network Protector's lists in the pages' shapes. Every answer is
 * validated against the OpenAPI document by the harness.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { BackupService } from '../../platform/backup/index.js';
import { memoryDeviceKeys } from '../../platform/device/index.js';
import { DataDir } from '../../platform/durable/index.js';
import { reportChecksumMatches } from '../../platform/integrity/check.js';
import { sealRecord } from '../../platform/integrity/index.js';
import type { SelfTestReport } from '../../platform/integrity/self-test.js';
import { IntegrityService } from '../../platform/integrity/service.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { type ApiClient, assertError, type Harness, readyClient, startHarness } from './harness.js';

const PASS = 'backup passphrase 1';
const COST = { N: 1024, r: 8, p: 1 };
const keys = memoryDeviceKeys();

describe('REST API self-diagnostics, settings and Network Protector routes', function () {
  this.timeout(60_000);
  let harness: Harness;
  let admin: ApiClient;
  let backup: BackupService;
  let restarts: number;
  let appsDir: string;
  const allowed: { ipAddrSource: string }[] = [];
  const denied = [{ ipAddrSource: '192.0.2.9', signatureName: 'Modbus write to coil', timestamp: 1_764_000_000 }];
  const selfTest: SelfTestReport = {
    startedAt: '2026-12-02T10:00:00.000Z',
    finishedAt: '2026-12-02T10:00:01.000Z',
    ok: true,
    tests: [
      { name: 'audit', ok: true, message: 'written and read back' },
      { name: 'authentication', ok: true, message: 'verifies' },
      { name: 'traffic-blocking', ok: true, message: 'refused' },
      { name: 'network-protector', ok: true, skipped: true, message: 'not installed' },
    ],
  };

  beforeEach(async () => {
    restarts = 0;
    allowed.length = 0;
    appsDir = await makeTempDir('isogate-api-apps-');
    await fs.mkdir(path.join(appsDir, 'com.example.app', 'package'), { recursive: true, mode: 0o700 });
    await fs.writeFile(path.join(appsDir, 'com.example.app', 'package', 'manifest.json'), '{}');
    const digest = createHash('sha256').update('{}').digest('hex');
    const record = sealRecord(
      {
        package_id: 'com.example.app',
        version: '1.0.0',
        installedAt: new Date().toISOString(),
        packageSha256: digest,
        digests: { 'manifest.json': digest },
        signer: null,
      },
      keys,
    );
    await fs.writeFile(path.join(appsDir, 'com.example.app', 'record.json'), JSON.stringify(record));
    const audit = { record: (...args: Parameters<Harness['audit']['record']>) => harness.audit.record(...args), list: () => [] };
    harness = await startHarness(
      {},
      {
        integrity: new IntegrityService({ apps: new DataDir(appsDir), keys, audit }),
        backup: {
          create: (passphrase: string) => backup.create(passphrase),
          restore: (file: Buffer, passphrase: string) => backup.restore(file, passphrase),
        },
        selfTest: async () => selfTest,
        gate: {
          status: () => ({ inspector: null, services: [], alertsRecorded: 0, alertsNotRecorded: 0, recordsFailed: 0, crossings: 0, inspectedItems: 0 }),
        },
        lists: {
          allowlist: () => allowed.map((entry) => ({ ...entry })),
          allow: async (ip: string) => {
            allowed.push({ ipAddrSource: ip });
            return { ipAddrSource: ip };
          },
          disallow: async (ip: string) => ({ ipAddrSource: ip }),
          denylist: () => denied,
          undeny: async (ip: string) => ({ ipAddrSource: ip }),
        },
      },
    );
    backup = new BackupService({
      config: harness.config,
      audit: harness.audit,
      platformVersion: '0.1.0',
      hostId: 'abcdef0123456789',
      installed: () => [],
      running: () => [],
      restart: async () => {
        restarts += 1;
        return { left: null };
      },
      cost: COST,
    });
    admin = await readyClient(harness, 'admin');
  });
  afterEach(async () => {
    await harness.close();
    await removeDir(appsDir);
  });

  it('runs the integrity check and serves its report as a TXT download in the manual format', async () => {
    assertError(await admin.call('GET', '/integrity/last'), 'E_NOT_FOUND', 404);
    const run = await admin.call('POST', '/integrity/check');
    assert.equal(run.status, 200, run.text);
    const body = run.json as { id: string; ok: boolean; files: { path: string; app: string; status: string }[] };
    assert.equal(body.ok, true);
    assert.deepEqual(
      body.files.map((file) => [file.app, file.status]),
      [
        ['com.example.app', 'File integrity verified successfully'],
        ['com.example.app', 'File integrity verified successfully'],
      ],
    );
    assert.deepEqual((await admin.call('GET', '/integrity/last')).json, run.json);
    const report = await admin.call('GET', `/integrity/report/${body.id}`);
    assert.equal(report.status, 200);
    assert.match(String(report.headers['content-type']), /^text\/plain/);
    assert.match(String(report.headers['content-disposition']), /^attachment; filename="integrity_report_[0-9a-f]{16}_.*\.txt"$/);
    assert.match(
      report.text,
      /^Host ID: [0-9a-f]{16}\nReport generation date and time: \S+\nReport checksum function: SHA-256\nReport checksum: [0-9a-f]{64}\n-{80}\n/,
    );
    assert.equal(reportChecksumMatches(report.text), true);
    assertError(await admin.call('GET', '/integrity/report/0123456789abcdef'), 'E_NOT_FOUND', 404);
    // A name that is not a report id never reaches the file system.
    assertError(await admin.call('GET', '/integrity/report/..%2F..%2Fetc%2Fpasswd'), 'E_BAD_REQUEST', 400);
  });

  it('runs the self-test and answers each result', async () => {
    const answer = await admin.call('POST', '/self-test');
    assert.equal(answer.status, 200, answer.text);
    assert.deepEqual(answer.json, selfTest);
  });

  it('serves the configuration with its schema, saves a valid change and refuses an invalid one with details, changing nothing', async () => {
    const got = await admin.call('GET', '/settings');
    assert.equal(got.status, 200);
    const { document, schema } = got.json as { document: Record<string, unknown>; schema: { properties: object } };
    assert.ok(schema.properties && 'USER_SETTINGS' in schema.properties);
    const saved = await admin.call('PUT', '/settings', { body: { document: { ...document, USER_SETTINGS: { idle_minutes: 12 } } } });
    assert.equal(saved.status, 200, saved.text);
    assert.deepEqual(
      harness.config.read((doc) => doc.USER_SETTINGS),
      { idle_minutes: 12 },
    );
    const before = harness.config.snapshot();
    const refused = await admin.call('PUT', '/settings', { body: { document: { ...document, USER_SETTINGS: { idle_minutes: 999 } } } });
    assertError(refused, 'E_CONFIG', 422);
    assert.ok(Object.keys((refused.json as { details: object }).details).length > 0, 'the refusal says where');
    const planted = structuredClone(document) as { APPLICATIONS: { APPS_CONTROL: { applications: unknown[] } } };
    planted.APPLICATIONS.APPS_CONTROL.applications.push({ package_id: 'com.example.planted', execute: true, launchRule: 'auto', logLevel: 3 });
    assertError(await admin.call('PUT', '/settings', { body: { document: planted } }), 'E_CONFIG', 422);
    assertError(await admin.call('PUT', '/settings', { body: { document: 'nope' } }), 'E_BAD_REQUEST', 400);
    assert.deepEqual(harness.config.snapshot(), before);
  });

  it('backs up as a file download and restores from the file itself, refusing a wrong passphrase and a changed file with their codes', async () => {
    await harness.config.update((doc) => {
      doc.USER_SETTINGS = { lockout_minutes: 9 };
    });
    const made = await admin.call('POST', '/backup', { body: { passphrase: PASS } });
    assert.equal(made.status, 200, made.text);
    assert.equal(made.headers['content-type'], 'application/octet-stream');
    assert.match(String(made.headers['content-disposition']), /^attachment; filename="isogate-backup-abcdef0123456789-.*\.igb"$/);
    assert.equal(made.bytes.subarray(0, 15).toString(), 'isogate-backup\n');
    await harness.config.update((doc) => {
      doc.USER_SETTINGS = { lockout_minutes: 20 };
    });

    const restore = (bytes: Buffer, passphrase: string, type = 'application/octet-stream') =>
      admin.call('POST', '/restore', { raw: bytes as unknown as string, headers: { 'content-type': type, 'x-backup-passphrase': passphrase } });
    assertError(await restore(made.bytes, 'not the passphrase'), 'E_BACKUP_PASSPHRASE', 422);
    const changed = Buffer.from(made.bytes);
    changed[changed.length - 60]! ^= 1;
    assertError(await restore(changed, PASS), 'E_BACKUP_TAMPERED', 422);
    assertError(await restore(Buffer.from('{"a":1}'), PASS), 'E_BACKUP_FORMAT', 422);
    assertError(await restore(made.bytes, PASS, 'application/json'), 'E_CONTENT_TYPE', 415);
    assertError(await restore(Buffer.alloc(16 * 1024 * 1024 + 1), PASS), 'E_DOCUMENT_LIMIT', 413);
    assertError(
      await admin.call('POST', '/restore', { raw: made.bytes as unknown as string, headers: { 'content-type': 'application/octet-stream' } }),
      'E_BAD_REQUEST',
      400,
    );
    assert.deepEqual(
      harness.config.read((doc) => doc.USER_SETTINGS),
      { lockout_minutes: 20 },
      'nothing changed by a refusal',
    );
    assert.equal(restarts, 0);

    const done = await restore(made.bytes, PASS);
    assert.equal(done.status, 200, done.text);
    assert.equal((done.json as { restored: boolean }).restored, true);
    assert.deepEqual(
      harness.config.read((doc) => doc.USER_SETTINGS),
      { lockout_minutes: 9 },
    );
    assert.equal(restarts, 1, "a restore is followed by the manual's restart (leaving emergency support mode)");
    assertError(await admin.call('POST', '/backup', { body: { passphrase: 'short' } }), 'E_BAD_REQUEST', 400);
  });

  it('restores with a passphrase beyond ASCII: RFC 8187-encoded as the pages send it, or as raw UTF-8 bytes; refuses bytes that are not UTF-8', async () => {
    const passphrase = 'пароль резервной копии ✓';
    await harness.config.update((doc) => {
      doc.USER_SETTINGS = { lockout_minutes: 7 };
    });
    const made = await admin.call('POST', '/backup', { body: { passphrase } });
    assert.equal(made.status, 200, made.text);
    const restore = (header: string) =>
      admin.call('POST', '/restore', {
        raw: made.bytes as unknown as string,
        headers: { 'content-type': 'application/octet-stream', 'x-backup-passphrase': header },
      });
    const encoded = `UTF-8''${encodeURIComponent(passphrase)}`;
    await harness.config.update((doc) => {
      doc.USER_SETTINGS = { lockout_minutes: 21 };
    });
    const restored = await restore(encoded);
    assert.equal(restored.status, 200, restored.text);
    assert.deepEqual(
      harness.config.read((doc) => doc.USER_SETTINGS),
      { lockout_minutes: 7 },
    );

    // A header value undici sends as given: its UTF-8 bytes, as curl sends a UTF-8 argument.
    await harness.config.update((doc) => {
      doc.USER_SETTINGS = { lockout_minutes: 22 };
    });
    const raw = await restore(Buffer.from(passphrase, 'utf8').toString('latin1'));
    assert.equal(raw.status, 200, raw.text);
    assert.deepEqual(
      harness.config.read((doc) => doc.USER_SETTINGS),
      { lockout_minutes: 7 },
    );

    await harness.config.update((doc) => {
      doc.USER_SETTINGS = { lockout_minutes: 23 };
    });
    const before = restarts;
    assertError(await restore("UTF-8''%D0%BF%FF%FE-not-utf8"), 'E_BAD_REQUEST', 400);
    assertError(await restore(`UTF-8''${encodeURIComponent('another passphrase')}`), 'E_BACKUP_PASSPHRASE', 422);
    assert.deepEqual(
      harness.config.read((doc) => doc.USER_SETTINGS),
      { lockout_minutes: 23 },
      'nothing changed by a refusal',
    );
    assert.equal(restarts, before);
  });

  it("answers Network Protector's lists in the pages' shapes", async () => {
    assert.equal((await admin.call('GET', '/np/status')).status, 200);
    const added = await admin.call('POST', '/np/allowlist', { body: { ip: '192.0.2.1' } });
    assert.deepEqual(added.json, { ip: '192.0.2.1', added: true });
    assert.deepEqual((await admin.call('GET', '/np/allowlist')).json, { entries: [{ ip: '192.0.2.1' }] });
    assert.deepEqual((await admin.call('DELETE', '/np/allowlist/192.0.2.1')).json, { ip: '192.0.2.1', removed: true });
    assert.deepEqual((await admin.call('GET', '/np/denylist')).json, {
      entries: [{ ip: '192.0.2.9', signature: 'Modbus write to coil', blockedAt: new Date(1_764_000_000_000).toISOString() }],
    });
    assert.deepEqual((await admin.call('DELETE', '/np/denylist/192.0.2.9')).json, { ip: '192.0.2.9', removed: true });
  });

  it("lists the Users table's rows for the administrator", async () => {
    const answer = await admin.call('GET', '/users');
    assert.equal(answer.status, 200, answer.text);
    const users = (answer.json as { users: { role: string; blocked: boolean; lastLoginAt: string | null }[] }).users;
    assert.deepEqual(
      users.map((row) => [row.role, row.blocked, typeof row.lastLoginAt]),
      [
        ['admin', false, 'string'],
        ['user', false, 'object'],
      ],
    );
  });
});
