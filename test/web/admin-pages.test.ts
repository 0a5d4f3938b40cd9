/**
 * The admin's remaining pages in chromium against a real gateway (Network Protector pre-installed
 * from its image, as in the demo): App certificates, Users, Network Protector's rules; then the
 * pages over the routes of CONTRACT-web (np lists, self-test, integrity, settings, backup and
 * restore). Those are tagged `@after-merge`: until the backend's routes are in the gateway's
 * OpenAPI document they are skipped, said once why; once any is there, every one runs.
 * Run them alone with `npx mocha test/web/admin-pages.test.ts -g @after-merge`.
 */
import { strict as assert } from 'node:assert';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { createCertificate, generateKeyPair } from '../../sdk/pki.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { waitForAsync } from '../fixtures/wait.js';
import { logIn, logOut, startWebHarness, type WebHarness } from './harness.js';

const TELEMETRY = 'dev.isogate.samples.telemetry';
const PROTECTOR = 'dev.isogate.network-protector';
const PASSWORD = 'Admin-pass-2026';
/** The routes the pages tagged @after-merge need (CONTRACT-web.md, "New"). */
const CONTRACT_PATHS = ['/np/status', '/np/allowlist', '/np/denylist', '/integrity/check', '/integrity/last', '/self-test', '/settings', '/backup', '/restore'];
const RULE = 'alert modbus any any -> any any (msg:"write single register"; modbus: function 6; sid:1000001; rev:1;)';

function bodyRows(page: Page, table: string) {
  return page.getByRole('table', { name: table }).locator('tbody tr');
}

describe('web interface: the admin pages (chromium)', function () {
  this.timeout(180_000);
  let web: WebHarness;
  let page: Page;
  let dir: string;
  let contractRoutes: string[] = [];

  before(async () => {
    dir = await makeTempDir();
    web = await startWebHarness({ platformApps: true });
    await web.gateway.services.orchestrator.install(TELEMETRY);
    ({ page } = await web.open('admin'));
    const openapi = (await (await page.request.get(`${web.gateway.apiUrl}/api/v1/openapi.json`)).json()) as { paths: Record<string, unknown> };
    contractRoutes = CONTRACT_PATHS.filter((route) => Object.hasOwn(openapi.paths, route));
    await logIn(page, 'admin', 'adminadmin', PASSWORD);
  });
  after(async () => {
    if (page) await logOut(page).catch(() => undefined);
    await web?.close();
    if (dir) await removeDir(dir);
  });

  it('uploads an app’s CA and client certificate with key, refuses a file that is no certificate, and deletes them', async () => {
    const caKeys = generateKeyPair();
    const caPem = createCertificate({
      subject: { commonName: 'Plant cloud CA' },
      publicKeyPem: caKeys.publicKeyPem,
      signingKeyPem: caKeys.keyPem,
      usage: 'ca',
    });
    const clientKeys = generateKeyPair();
    const clientPem = createCertificate({
      subject: { commonName: 'gateway uplink' },
      publicKeyPem: clientKeys.publicKeyPem,
      issuer: { certPem: caPem, keyPem: caKeys.keyPem },
      usage: 'client',
    });
    const files = {
      ca: path.join(dir, 'plant-ca.pem'),
      cert: path.join(dir, 'client.pem'),
      key: path.join(dir, 'client.key'),
      junk: path.join(dir, 'notes.pem'),
    };
    await writeFile(files.ca, caPem);
    await writeFile(files.cert, clientPem);
    await writeFile(files.key, clientKeys.keyPem);
    await writeFile(files.junk, 'not a certificate\n');

    await page.getByRole('link', { name: 'App certificates' }).click();
    await page.getByLabel('Application').selectOption(TELEMETRY);
    const rows = bodyRows(page, 'App certificates');
    await rows.filter({ hasText: 'Nothing yet' }).waitFor();

    const caForm = page.getByRole('form', { name: 'Upload the CA certificate' });
    await caForm.getByLabel('CA certificate').setInputFiles(files.junk);
    await caForm.getByRole('button', { name: 'Upload' }).click();
    const refusal = page.getByRole('alert').filter({ hasText: 'E_CERT_FILE' });
    await refusal.waitFor();
    assert.match((await refusal.textContent()) ?? '', /PEM or DER/);
    assert.deepEqual(await web.gateway.services.certificates.list(TELEMETRY), []);

    await caForm.getByLabel('CA certificate').setInputFiles(files.ca);
    await caForm.getByRole('button', { name: 'Upload' }).click();
    await rows.filter({ hasText: 'Plant cloud CA' }).filter({ hasText: 'plant-ca.pem' }).first().waitFor();

    const clientForm = page.getByRole('form', { name: 'Upload the client certificate and key' });
    await clientForm.getByLabel('Client certificate').setInputFiles(files.cert);
    await clientForm.getByLabel('Client key').setInputFiles(files.key);
    await clientForm.getByRole('button', { name: 'Upload' }).click();
    await rows.filter({ hasText: 'client.pem + client.key' }).waitFor();
    assert.deepEqual((await web.gateway.services.certificates.list(TELEMETRY)).map((cert) => cert.kind).sort(), ['ca', 'client']);

    page.once('dialog', (dialog) => void dialog.accept());
    await rows.filter({ hasText: 'client.pem' }).getByRole('button', { name: 'Delete client' }).click();
    await rows.filter({ hasText: 'client.pem' }).waitFor({ state: 'detached' });
    assert.deepEqual(
      (await web.gateway.services.certificates.list(TELEMETRY)).map((cert) => cert.kind),
      ['ca'],
    );
    // Dismissed: nothing deleted.
    page.once('dialog', (dialog) => void dialog.dismiss());
    await rows.filter({ hasText: 'plant-ca.pem' }).getByRole('button', { name: 'Delete ca' }).click();
    await waitForAsync(async () => (await page.getByRole('button', { name: 'Upload' }).first().isEnabled()) === true);
    assert.equal((await web.gateway.services.certificates.list(TELEMETRY)).length, 1);
  });

  it('shows both accounts in a table and saves a connection setting, refusing one out of range', async () => {
    await page.getByRole('link', { name: 'Users' }).click();
    const rows = bodyRows(page, 'Accounts');
    await rows.filter({ hasText: 'Administrator' }).filter({ hasText: 'admin' }).waitFor();
    await rows.filter({ hasText: 'User' }).filter({ hasText: 'user' }).waitFor();
    assert.equal(await rows.count(), 2);
    // The table sorts: by name descending puts "user" first.
    await page.getByRole('table', { name: 'Accounts' }).getByRole('button', { name: 'Name' }).click();
    await page.getByRole('table', { name: 'Accounts' }).getByRole('button', { name: /^Name/ }).click();
    assert.match((await rows.first().textContent()) ?? '', /^User/);

    const settings = page.getByRole('form', { name: 'General settings' });
    const idle = settings.getByLabel('Idle period, minutes');
    await waitForAsync(async () => (await idle.inputValue()) !== '');
    // The manual's range is 1 to 30 minutes: the gateway refuses 45.
    await idle.fill('45');
    await settings.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('alert').filter({ hasText: 'E_BAD_REQUEST' }).waitFor();
    const unchanged = (await (await page.request.get(`${web.gateway.apiUrl}/api/v1/users/settings`)).json()) as { idle_minutes: number };
    assert.notEqual(unchanged.idle_minutes, 45);
    await idle.fill('25');
    await settings.getByRole('button', { name: 'Save' }).click();
    await settings.getByRole('status').filter({ hasText: 'Saved' }).waitFor();
    const saved = (await (await page.request.get(`${web.gateway.apiUrl}/api/v1/users/settings`)).json()) as { idle_minutes: number };
    assert.equal(saved.idle_minutes, 25);
  });

  it("edits Network Protector's rules as text, stored Base64 in its APP_CONFIGURATION, and refuses emptying a list", async () => {
    await page.getByRole('link', { name: 'Network Protector' }).click();
    const rules = page.getByRole('form', { name: 'Rules' });
    const commands = rules.getByLabel(/industrial_commands_rules/);
    await commands.fill(RULE);
    await rules.getByRole('button', { name: 'Save rules' }).click();
    await rules.getByRole('status').filter({ hasText: 'Saved' }).waitFor();
    const stored = web.gateway.services.launcher.getConfiguration(PROTECTOR) as { APP_CONFIGURATION: Record<string, string> };
    assert.equal(Buffer.from(stored.APP_CONFIGURATION.industrial_commands_rules!, 'base64').toString('utf8'), RULE);
    assert.equal(stored.APP_CONFIGURATION.industrial_anomaly_rules, undefined, 'a list never filled stays absent');

    await page.reload();
    await waitForAsync(async () => (await rules.getByLabel(/industrial_commands_rules/).inputValue()) === RULE);
    await rules.getByLabel(/industrial_commands_rules/).fill('');
    await rules.getByRole('button', { name: 'Save rules' }).click();
    const refusal = page.getByRole('alert').filter({ hasText: 'E_RULE_LIST_REMOVED' });
    await refusal.waitFor();
    assert.match((await refusal.textContent()) ?? '', /put a rule back/);
    const after = web.gateway.services.launcher.getConfiguration(PROTECTOR) as { APP_CONFIGURATION: Record<string, string> };
    assert.equal(after.APP_CONFIGURATION.industrial_commands_rules, stored.APP_CONFIGURATION.industrial_commands_rules);
  });

  describe('over the routes of CONTRACT-web @after-merge', () => {
    before(function () {
      if (contractRoutes.length === 0) {
        console.log('    (skipped: none of the routes of CONTRACT-web is in this gateway yet; they come with branch i16-backend)');
        this.skip();
      }
    });

    it('has every route the pages call', () => {
      assert.deepEqual(contractRoutes, CONTRACT_PATHS);
    });

    it('adds an address to the allowlist, refuses a malformed one with what to type, removes it; shows the denylist', async () => {
      await page.getByRole('link', { name: 'Network Protector' }).click();
      await page.getByRole('region', { name: 'Traffic gate' }).getByRole('table', { name: 'Protected services' }).waitFor();
      const form = page.getByRole('form', { name: 'Add to the allowlist' });
      const rows = bodyRows(page, 'IP address allowlist');
      await form.getByLabel('IP address').fill('010.1.1.1');
      await form.getByRole('button', { name: 'Add' }).click();
      const refusal = page.getByRole('alert').filter({ hasText: 'E_IP_FORMAT' });
      await refusal.waitFor();
      assert.match((await refusal.textContent()) ?? '', /four numbers from 0 to 255/);
      await form.getByLabel('IP address').fill('192.168.1.20');
      await form.getByRole('button', { name: 'Add' }).click();
      await rows.filter({ hasText: '192.168.1.20' }).waitFor();
      assert.deepEqual(
        web.gateway.services.lists.allowlist().map((entry) => entry.ipAddrSource),
        ['192.168.1.20'],
      );
      await rows.filter({ hasText: '192.168.1.20' }).getByRole('button', { name: 'Remove 192.168.1.20' }).click();
      await rows.filter({ hasText: '192.168.1.20' }).waitFor({ state: 'detached' });
      assert.deepEqual(web.gateway.services.lists.allowlist(), []);

      await web.gateway.services.lists.deny('10.0.0.7', 'test drop rule');
      await page.reload();
      const denied = bodyRows(page, 'IP address denylist').filter({ hasText: '10.0.0.7' });
      await denied.filter({ hasText: 'test drop rule' }).waitFor();
      await denied.getByRole('button', { name: 'Remove 10.0.0.7' }).click();
      await denied.waitFor({ state: 'detached' });
      assert.deepEqual(web.gateway.services.lists.denylist(), []);
    });

    it('runs the self-test with a result per test, and the integrity check with its progress and report download', async () => {
      await page.getByRole('link', { name: 'Self-diagnostics' }).click();
      await page.getByRole('button', { name: 'Start testing' }).click();
      const results = bodyRows(page, 'Self-testing results');
      await results.first().waitFor({ timeout: 60_000 });
      const texts = await results.allTextContents();
      for (const name of ['Audit', 'User identification and authentication', 'Network traffic blocking', 'Network Protector']) {
        assert.ok(
          texts.some((text) => text.startsWith(name)),
          `${name} in ${texts.join(' | ')}`,
        );
      }

      await page.getByRole('button', { name: 'Start check' }).click();
      const files = bodyRows(page, 'Checked files');
      await files.filter({ hasText: TELEMETRY }).first().waitFor({ timeout: 60_000 });
      assert.match((await files.first().textContent()) ?? '', /File integrity verified successfully/);
      const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download report' }).click()]);
      const report = await readFile((await download.path())!, 'utf8');
      assert.match(report, /\|File integrity verified successfully/);
    });

    it('checks the configuration against its schema before sending it, saves a valid one, and backs it up and restores it', async () => {
      await page.getByRole('link', { name: 'Settings' }).click();
      const editor = page.getByRole('textbox', { name: 'Configuration' });
      await waitForAsync(async () => (await editor.inputValue()).length > 0);
      const original = JSON.parse(await editor.inputValue()) as Record<string, unknown>;
      const requests: string[] = [];
      page.on('request', (request) => {
        if (request.method() === 'PUT' && request.url().endsWith('/api/v1/settings')) requests.push(request.url());
      });
      await editor.fill(JSON.stringify({ ...original, ABOUT: { text: 42 } }, null, 2));
      await page.getByRole('button', { name: 'Save', exact: true }).click();
      await page.getByRole('alert').filter({ hasText: 'does not match the schema' }).filter({ hasText: '/ABOUT/text' }).waitFor();
      assert.equal(requests.length, 0, 'an invalid document is never sent');
      await editor.fill(JSON.stringify({ ...original, ABOUT: { text: 'Plant 7 gateway' } }, null, 2));
      await page.getByRole('button', { name: 'Save', exact: true }).click();
      await page.getByRole('region', { name: 'Configuration' }).getByRole('status').filter({ hasText: 'Saved' }).waitFor();
      assert.equal(requests.length, 1);

      const backupForm = page.getByRole('form', { name: 'Backup' });
      await backupForm.getByLabel('Backup passphrase', { exact: true }).fill('correct horse battery');
      await backupForm.getByLabel('Backup passphrase again').fill('correct horse battery');
      const [download] = await Promise.all([page.waitForEvent('download'), backupForm.getByRole('button', { name: 'Download backup' }).click()]);
      assert.match(download.suggestedFilename(), /\.igb$/);
      const backupFile = path.join(dir, download.suggestedFilename());
      await download.saveAs(backupFile);

      const restoreForm = page.getByRole('form', { name: 'Restore' });
      page.on('dialog', (dialog) => void dialog.accept());
      await restoreForm.getByLabel('Backup file (.igb)').setInputFiles(backupFile);
      await restoreForm.getByLabel('Backup passphrase').fill('wrong horse battery');
      await restoreForm.getByRole('button', { name: 'Restore' }).click();
      await restoreForm.getByRole('alert').waitFor();
      await restoreForm.getByLabel('Backup file (.igb)').setInputFiles(backupFile);
      await restoreForm.getByLabel('Backup passphrase').fill('correct horse battery');
      await restoreForm.getByRole('button', { name: 'Restore' }).click();
      await restoreForm.getByRole('status').filter({ hasText: 'Restored' }).waitFor();
    });
  });
});
