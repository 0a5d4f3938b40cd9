/**
 * The admin web interface in chromium against a real gateway: the first login's forced password
 * change, the menu by role, installing from the embedded store with its progress, starting an
 * app, editing its configuration (routing and the audit pages are not covered yet).
 */
import { strict as assert } from 'node:assert';
import type { Page } from 'playwright-core';
import { waitForAsync } from '../fixtures/wait.js';
import { logIn, startWebHarness, type WebHarness } from './harness.js';

const TELEMETRY = 'dev.isogate.samples.telemetry';
const THRESHOLD = 'dev.isogate.samples.threshold';
const MENU = ['Status', 'Applications', 'Routing', 'App certificates', 'Network Protector', 'Events', 'Audit', 'Self-diagnostics', 'Settings', 'Users'];

async function menu(page: Page): Promise<string[]> {
  return page.getByRole('navigation', { name: 'menu' }).getByRole('link').allTextContents();
}

describe('web interface (chromium)', function () {
  this.timeout(180_000);
  let web: WebHarness;

  before(async () => {
    web = await startWebHarness();
  });
  after(async () => {
    await web?.close();
  });

  it('serves the pages with a strict CSP and no inline script, to client certificates only', async () => {
    const { page } = await web.open('admin');
    const answer = await page.request.get(`${web.gateway.apiUrl}/`);
    assert.equal(answer.status(), 200);
    const csp = answer.headers()['content-security-policy'] ?? '';
    assert.match(csp, /script-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.doesNotMatch(await answer.text(), /<script>|<script [^>]*>[^<]/);
    const unknown = await page.request.get(`${web.gateway.apiUrl}/no-such-page`);
    assert.equal(unknown.status(), 404);
    assert.equal(((await unknown.json()) as { code: string }).code, 'E_NOT_FOUND');
  });

  it('walks the admin through the first login and its forced password change to the full menu; logout ends the session', async () => {
    const { page } = await web.open('admin');
    await page.getByLabel('Name').fill('admin');
    await page.getByLabel('Password', { exact: true }).fill('wrong-password');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('alert').filter({ hasText: 'E_AUTH' }).waitFor();
    await logIn(page, 'admin', 'adminadmin', 'Admin-pass-2026');
    assert.deepEqual(await menu(page), MENU);
    await page.getByRole('definition').filter({ hasText: web.gateway.services.status().version }).first().waitFor();
    await page.getByRole('link', { name: 'Network Protector' }).click();
    await page.getByText('has no API on the gateway yet').waitFor();
    await page.getByRole('button', { name: 'Русский' }).click();
    await page.getByRole('link', { name: 'Приложения' }).waitFor();
    await page.getByRole('button', { name: 'English' }).click();
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByRole('button', { name: 'Log in' }).waitFor();
  });

  it('installs from the store with its progress, starts the app and edits its configuration, refused then saved', async () => {
    const { page } = await web.open('admin');
    await logIn(page, 'admin', 'Admin-pass-2026');
    await page.getByRole('link', { name: 'Applications' }).click();
    await page.getByRole('button', { name: `Install ${TELEMETRY}` }).click();
    await page.getByRole('status').filter({ hasText: 'Progress' }).waitFor();
    const apps = page.getByRole('table', { name: 'Applications' });
    await apps
      .getByRole('row')
      .filter({ hasText: TELEMETRY.split('.').pop()! })
      .first()
      .waitFor({ timeout: 90_000 });
    await page.getByRole('button', { name: `Install ${THRESHOLD}` }).click();
    await apps
      .getByRole('row')
      .filter({ hasText: /threshold/i })
      .first()
      .waitFor({ timeout: 90_000 });
    const telemetryRow = apps.getByRole('row').filter({ hasText: /telemetry/i });
    await telemetryRow.getByRole('button', { name: 'Start' }).click();
    await telemetryRow.filter({ hasText: /running/i }).waitFor();

    await telemetryRow.getByRole('button', { name: 'Configuration' }).click();
    const editor = page.getByRole('textbox', { name: 'Configuration' });
    await waitForAsync(async () => (await editor.inputValue()).length > 0);
    await editor.fill('{"intervalMs": 10}');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('alert').filter({ hasText: /E_/ }).waitFor();
    await editor.fill('{"intervalMs": 1000}');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('status').filter({ hasText: 'Saved' }).waitFor();

    // One session at a time: the user's test needs this one ended.
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByRole('button', { name: 'Log in' }).waitFor();
  });

  it('shows the user only what its role allows, and a page outside it refuses', async () => {
    const { page } = await web.open('user');
    await logIn(page, 'user', 'useruser', 'User-pass-2026');
    assert.deepEqual(await menu(page), ['Status', 'Applications', 'Events']);
    await page.getByRole('link', { name: 'Applications' }).click();
    await page.getByRole('table', { name: 'Applications' }).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Start' }).count(), 0);
    await page.goto(`${web.gateway.apiUrl}/#/audit`);
    await page.getByRole('alert').filter({ hasText: 'may not open this page' }).waitFor();
  });
});
