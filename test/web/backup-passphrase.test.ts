/**
 * The Settings page's backup and restore with a passphrase beyond ASCII (a browser sends only
 * ISO-8859-1 header values: the page encodes it as RFC 8187's UTF-8'', the gateway decodes it),
 * and the pages' session probe on every load audited as nothing.
 */
import { strict as assert } from 'node:assert';
import path from 'node:path';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { logIn, logOut, startWebHarness, type WebHarness } from './harness.js';

const PASSPHRASE = 'пароль резервной копии №7';

describe('web interface: backup passphrase beyond ASCII (chromium)', function () {
  this.timeout(180_000);
  let web: WebHarness;
  let dir: string;

  before(async () => {
    dir = await makeTempDir();
    web = await startWebHarness();
  });
  after(async () => {
    await web?.close();
    if (dir) await removeDir(dir);
  });

  it('loads the login page without auditing its session probe as a refused request', async () => {
    const refused = () => web.gateway.services.audit.list({ log: 'system' }).filter((record) => record.event === 'requestRefused').length;
    const before = refused();
    const { page } = await web.open('admin');
    await page.getByRole('button', { name: 'Log in' }).waitFor();
    await page.reload();
    await page.getByRole('button', { name: 'Log in' }).waitFor();
    assert.equal(refused(), before);
  });

  it('backs up under a Russian passphrase and restores with it, refusing another one, from the Settings page', async () => {
    const { page } = await web.open('admin');
    await logIn(page, 'admin', 'adminadmin', 'Admin-pass-2026');
    await page.getByRole('link', { name: 'Settings' }).click();
    const config = web.gateway.services.config;
    await config.update((doc) => {
      doc.USER_SETTINGS = { ...doc.USER_SETTINGS, lockout_minutes: 9 };
    });
    const backupForm = page.getByRole('form', { name: 'Backup' });
    await backupForm.getByLabel('Backup passphrase', { exact: true }).fill(PASSPHRASE);
    await backupForm.getByLabel('Backup passphrase again').fill(PASSPHRASE);
    const [download] = await Promise.all([page.waitForEvent('download'), backupForm.getByRole('button', { name: 'Download backup' }).click()]);
    const file = path.join(dir, download.suggestedFilename());
    await download.saveAs(file);
    await config.update((doc) => {
      doc.USER_SETTINGS = { ...doc.USER_SETTINGS, lockout_minutes: 25 };
    });

    const restoreForm = page.getByRole('form', { name: 'Restore' });
    page.on('dialog', (dialog) => void dialog.accept());
    await restoreForm.getByLabel('Backup file (.igb)').setInputFiles(file);
    await restoreForm.getByLabel('Backup passphrase').fill('пароль, но не тот');
    await restoreForm.getByRole('button', { name: 'Restore' }).click();
    await restoreForm.getByRole('alert').filter({ hasText: 'E_BACKUP_PASSPHRASE' }).waitFor();
    assert.equal(
      config.read((doc) => doc.USER_SETTINGS?.lockout_minutes),
      25,
    );

    await restoreForm.getByLabel('Backup file (.igb)').setInputFiles(file);
    await restoreForm.getByLabel('Backup passphrase').fill(PASSPHRASE);
    await restoreForm.getByRole('button', { name: 'Restore' }).click();
    await restoreForm.getByRole('status').filter({ hasText: 'Restored' }).waitFor();
    assert.equal(
      config.read((doc) => doc.USER_SETTINGS?.lockout_minutes),
      9,
    );
    await logOut(page);
  });
});
