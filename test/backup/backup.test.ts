/**
 * Backup and restore of the configuration (issue 16, part 5): encrypted and authenticated with
 * keys the passphrase derives (so a fresh gateway restores it), refusing another version, a
 * wrong passphrase and a changed file each with its own code, and changing nothing when it refuses.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { MemoryAuditLog } from '../../platform/audit/index.js';
import { BackupService, fitToGateway, openBackup, sealBackup } from '../../platform/backup/index.js';
import { ConfigStore } from '../../platform/config/index.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

// Tests lower scrypt's cost; the format keeps the cost in the header, so the same code reads either.
const COST = { N: 1024, r: 8, p: 1 };
const PASS = 'correct horse battery';
const VERSION = '0.1.0';
const ID = 'com.example.telemetry';

function entry(packageId: string, launchRule: 'auto' | 'none' | 'forbidden' = 'auto') {
  return { package_id: packageId, name: packageId, version: '1.0.0', execute: false, launchRule, logLevel: 3 as const, configured: false };
}

describe('configuration backup', function () {
  this.timeout(30_000);
  let dir: string;

  beforeEach(async () => {
    dir = await makeTempDir('isogate-backup-');
  });
  afterEach(() => removeDir(dir));

  const seal = (document: Record<string, unknown>, options: Partial<Parameters<typeof sealBackup>[1]> = {}) =>
    sealBackup({ document }, { passphrase: PASS, platformVersion: VERSION, hostId: 'host-a', createdAt: '2026-12-02T10:00:00.000Z', cost: COST, ...options });

  it('opens with the passphrase it was made with, and holds nothing readable without it', async () => {
    const file = await seal({ secret: 'plant-password-123' });
    assert.equal(file.includes(Buffer.from('plant-password-123')), false, 'the content is encrypted');
    assert.equal(file.subarray(0, 15).toString(), 'isogate-backup\n');
    const opened = await openBackup(file, PASS, VERSION);
    assert.deepEqual(opened.content.document, { secret: 'plant-password-123' });
    assert.equal(opened.header.hostId, 'host-a');
    assert.equal(opened.header.formatVersion, 1);
  });

  it('refuses a wrong passphrase, a changed byte anywhere, another version and what is not a backup, each with its code', async () => {
    const file = await seal({ a: 1 });
    await assert.rejects(openBackup(file, 'not the passphrase', VERSION), { code: 'E_BACKUP_PASSPHRASE' });
    await assert.rejects(openBackup(file, PASS, '0.2.0'), { code: 'E_BACKUP_VERSION', message: /isogate 0\.1\.0; this gateway is 0\.2\.0/ });
    const headerEnd = file.indexOf(0x0a, 15) + 1;
    for (const at of [headerEnd, headerEnd + 3, file.length - 40, file.length - 1]) {
      const changed = Buffer.from(file);
      changed[at]! ^= 0x01;
      await assert.rejects(openBackup(changed, PASS, VERSION), { code: 'E_BACKUP_TAMPERED' }, `a byte changed at ${at}`);
    }
    await assert.rejects(openBackup(file.subarray(0, headerEnd + 10), PASS, VERSION), { code: 'E_BACKUP_TAMPERED' });
    // The header is covered too: a changed host id is found by the MAC.
    const renamed = Buffer.from(file.toString('latin1').replace('"hostId":"host-a"', '"hostId":"host-b"'), 'latin1');
    await assert.rejects(openBackup(renamed, PASS, VERSION), { code: 'E_BACKUP_TAMPERED' });
    const otherFormat = Buffer.from(file.toString('latin1').replace('"formatVersion":1', '"formatVersion":2'), 'latin1');
    await assert.rejects(openBackup(otherFormat, PASS, VERSION), { code: 'E_BACKUP_VERSION' });
    await assert.rejects(openBackup(Buffer.from('{"APPLICATIONS":{}}'), PASS, VERSION), { code: 'E_BACKUP_FORMAT' });
    await assert.rejects(openBackup(Buffer.from('isogate-backup\nnot json\n'), PASS, VERSION), { code: 'E_BACKUP_FORMAT' });
    // A header that asks for gigabytes of scrypt memory is refused before any is spent.
    const costly = Buffer.from(file.toString('latin1').replace('"N":1024', `"N":${2 ** 24}`), 'latin1');
    await assert.rejects(openBackup(costly, PASS, VERSION), { code: 'E_BACKUP_FORMAT' });
    await assert.rejects(openBackup(file, 'short', VERSION), { code: 'E_BAD_REQUEST' });
  });

  it('restores on a fresh gateway: its installed apps get the configuration and start rule, the device keeps its own, missing apps are named', () => {
    const current = {
      ABOUT: { text: 'this build' },
      APPLICATIONS: { APPS_CONTROL: { applications: [entry(ID)] }, APPS_ROUTING: { routes: [] } },
      MARKETPLACE: {},
      MODE_SWITCH: { is_developer_mode: true },
      NETWORK: {},
      SETTINGS: {},
    };
    const backedUp = {
      ABOUT: { text: 'the old build' },
      APPLICATIONS: { APPS_CONTROL: { applications: [entry(ID, 'forbidden'), entry('com.example.gone')] }, APPS_ROUTING: { routes: [] } },
      MARKETPLACE: {},
      MODE_SWITCH: { is_developer_mode: false, router_mode: false },
      NETWORK: {},
      SETTINGS: {},
      USER_SETTINGS: { idle_minutes: 9 },
      [ID]: { APP_CONFIGURATION: { intervalMs: 500 } },
      'com.example.gone': { APP_CONFIGURATION: {} },
    };
    const { document, missingApps, changedApps } = fitToGateway(current as never, backedUp as never, [{ packageId: ID, version: '1.0.0' }]);
    assert.deepEqual(missingApps, ['com.example.gone']);
    assert.deepEqual(changedApps, [ID]);
    assert.deepEqual(document[ID], { APP_CONFIGURATION: { intervalMs: 500 } });
    assert.equal(document['com.example.gone'], undefined, 'an app not installed here gets no configuration');
    assert.deepEqual(
      document.APPLICATIONS.APPS_CONTROL.applications.map((app) => [app.package_id, app.launchRule, app.configured]),
      [[ID, 'forbidden', true]],
    );
    assert.deepEqual(document.ABOUT, { text: 'this build' });
    assert.deepEqual(
      document.MODE_SWITCH,
      { is_developer_mode: true, router_mode: false },
      'developer mode is the device’s, the router mode the configuration’s',
    );
    assert.deepEqual(document.USER_SETTINGS, { idle_minutes: 9 });
  });

  it('restores through the service, audited, and changes nothing when it refuses', async () => {
    const config = await ConfigStore.open(path.join(dir, 'config.json'), 'isogate tests');
    const audit = new MemoryAuditLog();
    let restarts = 0;
    const service = new BackupService({
      config,
      audit,
      platformVersion: VERSION,
      hostId: 'host-a',
      installed: () => [],
      running: () => [],
      restart: async () => {
        restarts += 1;
        return { left: { reason: 'the integrity check at start found violations' } };
      },
      cost: COST,
    });
    await config.update((doc) => {
      doc.USER_SETTINGS = { idle_minutes: 7 };
    });
    const made = await service.create(PASS);
    assert.match(made.fileName, /^isogate-backup-host-a-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z\.igb$/);
    await config.update((doc) => {
      doc.USER_SETTINGS = { idle_minutes: 20 };
    });
    const before = config.snapshot();
    await assert.rejects(service.restore(made.bytes, 'wrong passphrase'), { code: 'E_BACKUP_PASSPHRASE' });
    const changed = Buffer.from(made.bytes);
    changed[changed.length - 50]! ^= 0xff;
    await assert.rejects(service.restore(changed, PASS), { code: 'E_BACKUP_TAMPERED' });
    assert.deepEqual(config.snapshot(), before, 'a refused restore changes nothing');
    assert.equal(restarts, 0);

    const result = await service.restore(made.bytes, PASS);
    assert.equal(result.restored, true);
    assert.equal(result.leftEmergency, true, 'a restore leaves emergency support mode');
    assert.equal(restarts, 1);
    assert.deepEqual(
      config.read((doc) => doc.USER_SETTINGS),
      { idle_minutes: 7 },
    );
    assert.deepEqual(
      audit.records.map((record) => record.text),
      [
        'Status of the backup creation from the operating system configuration: completed successfully',
        'Status of the operating system configuration restoring from the backup: refused: E_BACKUP_PASSPHRASE',
        'Status of the operating system configuration restoring from the backup: refused: E_BACKUP_TAMPERED',
        'Status of the operating system configuration restoring from the backup: completed successfully',
      ],
    );
    assert.ok(audit.records.every((record) => record.subject === 'Administrator' && record.severity === 'Informational'));
  });

  it('refuses a backup whose document this gateway would not accept, with the configuration code, changing nothing', async () => {
    const config = await ConfigStore.open(path.join(dir, 'config.json'), 'isogate tests');
    const service = new BackupService({
      config,
      audit: new MemoryAuditLog(),
      platformVersion: VERSION,
      hostId: 'host-a',
      installed: () => [],
      running: () => [],
      restart: async () => ({ left: null }),
      cost: COST,
    });
    const before = config.snapshot();
    const bad = await seal({ ...before, USER_SETTINGS: { idle_minutes: 999 } });
    await assert.rejects(service.restore(bad, PASS), { code: 'E_CONFIG' });
    assert.deepEqual(config.snapshot(), before);
  });
});
