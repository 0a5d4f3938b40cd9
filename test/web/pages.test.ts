/**
 * The admin web interface in chromium against a real gateway: the first login's forced password
 * change, the menu by role, installing from the embedded store with its progress, starting an
 * app, editing its configuration, routing between two apps, the audit pages (filters, Load
 * more, the CSV of exactly the filtered rows, the critical mark on the menu), and what the user
 * account may and may not see and do.
 */
import { strict as assert } from 'node:assert';
import { readFile } from 'node:fs/promises';
import type { Page } from 'playwright-core';
import { waitForAsync } from '../fixtures/wait.js';
import { callFromPage, logIn, logOut, startWebHarness, type WebHarness } from './harness.js';

const TELEMETRY = 'dev.isogate.samples.telemetry';
const THRESHOLD = 'dev.isogate.samples.threshold';
const MENU = ['Status', 'Applications', 'Routing', 'App certificates', 'Network Protector', 'Events', 'Audit', 'Self-diagnostics', 'Settings', 'Users'];
const ADMIN_PASSWORD = 'Admin-pass-2026';
const USER_PASSWORD = 'User-pass-2026';

async function menu(page: Page): Promise<string[]> {
  return (await page.getByRole('navigation', { name: 'menu' }).getByRole('link').allTextContents()).map((text) => text.replace(/\s*!$/, ''));
}

/** The body rows of a table (the header row left out). */
function bodyRows(page: Page, table: string) {
  return page.getByRole('table', { name: table }).locator('tbody tr');
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
    const refused = page.getByRole('alert').filter({ hasText: 'E_AUTH' });
    await refused.waitFor();
    // The refusal says what to do, not only what went wrong.
    assert.match((await refused.textContent()) ?? '', /Check the name and password/);
    await logIn(page, 'admin', 'adminadmin', ADMIN_PASSWORD);
    assert.deepEqual(await menu(page), MENU);
    await page.getByRole('definition').filter({ hasText: web.gateway.services.status().version }).first().waitFor();
    await page.getByRole('button', { name: 'Русский' }).click();
    await page.getByRole('link', { name: 'Приложения' }).waitFor();
    await page.getByRole('button', { name: 'English' }).click();
    await logOut(page);
  });

  it('installs from the store with its progress, starts the app and edits its configuration, refused then saved', async () => {
    const { page } = await web.open('admin');
    await logIn(page, 'admin', ADMIN_PASSWORD);
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
    // The store now says so, and offers no second install of the same version.
    const store = page.getByRole('region', { name: 'Store' });
    await store
      .getByRole('listitem')
      .filter({ hasText: /threshold/i })
      .filter({ hasText: 'installed' })
      .waitFor();
    assert.equal(await store.getByRole('button', { name: `Install ${THRESHOLD}` }).count(), 0);
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
    await logOut(page);
  });

  it('adds a route between the two apps by their names, shows its ends and counters, refuses a reversed one, disables and removes it', async () => {
    const { page } = await web.open('admin');
    await logIn(page, 'admin', ADMIN_PASSWORD);
    await page.getByRole('link', { name: 'Routing' }).click();
    const form = page.getByRole('form', { name: 'Add a route' });
    await form.getByLabel('Source').fill('telemetry-source:readings');
    await form.getByLabel('Destination').fill('threshold-filter:readings');
    await form.getByRole('button', { name: 'Add' }).click();
    await page.getByRole('status').filter({ hasText: 'Route added' }).waitFor();
    const row = bodyRows(page, 'Routing').filter({ hasText: 'telemetry-source:readings' });
    await row.filter({ hasText: 'threshold-filter:readings' }).filter({ hasText: 'Active' }).waitFor();
    assert.equal(await bodyRows(page, 'Routing').count(), 1);
    assert.equal(web.gateway.services.router.list().length, 1);

    // Backwards: a destination endpoint as the source.
    await form.getByLabel('Source').fill('threshold-filter:readings');
    await form.getByLabel('Destination').fill('telemetry-source:readings');
    await form.getByRole('button', { name: 'Add' }).click();
    const refusal = page.getByRole('alert').filter({ hasText: /E_ROUTE/ });
    await refusal.waitFor();
    assert.match((await refusal.textContent()) ?? '', /Check both ends/);
    assert.equal(web.gateway.services.router.list().length, 1);

    await row.getByRole('button', { name: 'Disable' }).click();
    await row.filter({ hasText: 'Inactive' }).waitFor();
    await row.getByRole('button', { name: 'Remove' }).click();
    await row.waitFor({ state: 'detached' });
    assert.equal(web.gateway.services.router.list().length, 0);
    await logOut(page);
  });

  it('filters the system audit by severity, subject and date range, loads more, downloads exactly the filtered rows as CSV, and marks critical events on the menu', async () => {
    const { page } = await web.open('admin');
    await logIn(page, 'admin', ADMIN_PASSWORD);
    const auditLink = page.getByRole('navigation', { name: 'menu' }).getByRole('link', { name: /^Audit/ });
    // A critical event the admin has not seen yet puts the manual's alarm next to Audit.
    await web.gateway.services.audit.record('launchUntrusted', { 'application name': 'web-test' });
    await page.reload();
    await auditLink.getByLabel('New critical events').waitFor();
    await auditLink.click();
    const rows = bodyRows(page, 'Audit');
    await rows.filter({ hasText: 'Launcher: Untrusted application' }).waitFor();
    assert.match((await rows.filter({ hasText: 'Launcher: Untrusted application' }).getAttribute('class')) ?? '', /critical/);
    // Seen on its page: the mark goes.
    await auditLink.getByLabel('New critical events').waitFor({ state: 'detached' });

    const all = await rows.count();
    assert.ok(all > 3, `the audit holds the tour's events (${all})`);
    const filters = page.getByRole('form', { name: 'Filters' });
    await filters.getByLabel('Warning').check();
    await filters.getByRole('button', { name: 'Apply' }).click();
    await waitForAsync(async () => (await rows.count()) < all);
    const warnings = await rows.allInnerTexts();
    assert.ok(warnings.length > 0, 'the wrong password of the first login was a warning');
    for (const text of warnings) assert.match(text, /Warning/);

    const [download] = await Promise.all([page.waitForEvent('download'), filters.getByRole('link', { name: 'Download log' }).click()]);
    const csv = (await readFile((await download.path())!, 'utf8')).trim().split('\n');
    assert.equal(csv.length - 1, warnings.length, 'one CSV line a row shown, under a header');
    for (const line of csv.slice(1)) assert.match(line, /Warning/);

    await filters.getByRole('button', { name: 'Reset all' }).click();
    await waitForAsync(async () => (await rows.count()) >= all);
    await filters.getByLabel('Subject ID').selectOption(['Administrator']);
    await filters.getByRole('button', { name: 'Apply' }).click();
    await waitForAsync(async () => (await rows.count()) < all);
    for (const text of await rows.allInnerTexts()) assert.match(text, /Administrator/);

    // A period entirely in the past holds nothing; a reversed one is refused before asking.
    await filters.getByRole('button', { name: 'Reset all' }).click();
    await filters.getByLabel('From', { exact: true }).fill('2001-01-01T00:00:00');
    await filters.getByLabel('To', { exact: true }).fill('2001-01-02T00:00:00');
    await filters.getByRole('button', { name: 'Apply' }).click();
    await rows.filter({ hasText: 'Nothing yet' }).waitFor();
    await filters.getByLabel('From', { exact: true }).fill('2001-01-03T00:00:00');
    await filters.getByRole('button', { name: 'Apply' }).click();
    await page.getByRole('alert').filter({ hasText: 'swap the two dates' }).waitFor();

    // "Load more" is always there (the manual), and brings nothing twice.
    await filters.getByRole('button', { name: 'Reset all' }).click();
    await waitForAsync(async () => (await rows.count()) >= all);
    const before = await rows.count();
    await page.getByRole('button', { name: 'Load more' }).click();
    await page
      .getByRole('status')
      .filter({ hasText: `Events shown: ${before}` })
      .waitFor();
    await logOut(page);
  });

  it('shows the user only what its role allows, and refuses the admin pages and the admin endpoints', async () => {
    const { page } = await web.open('user');
    await logIn(page, 'user', 'useruser', USER_PASSWORD);
    assert.deepEqual(await menu(page), ['Status', 'Applications', 'Events']);
    await page.getByRole('link', { name: 'Applications' }).click();
    await page
      .getByRole('table', { name: 'Applications' })
      .getByRole('row')
      .filter({ hasText: /telemetry/i })
      .waitFor();
    // Exact: the Start rule column's sort button is no Start button.
    assert.equal(await page.getByRole('button', { name: 'Start', exact: true }).count(), 0);
    assert.equal(await page.getByRole('button', { name: /^Install/ }).count(), 0);
    await page.getByRole('link', { name: 'Events' }).click();
    await page.getByRole('table', { name: 'Events' }).waitFor();
    for (const hidden of ['audit', 'routing', 'settings', 'users', 'np', 'diag', 'certs']) {
      await page.goto(`${web.gateway.apiUrl}/#/${hidden}`);
      await page.getByRole('alert').filter({ hasText: 'may not open this page' }).waitFor();
    }
    // The pages hide what the API refuses anyway: each admin endpoint answers E_FORBIDDEN and changes nothing.
    const routes = web.gateway.services.router.list().length;
    for (const [method, apiPath, body] of [
      ['GET', '/audit/system'],
      ['GET', '/users'],
      ['GET', '/routes'],
      ['POST', '/routes', { source: 'telemetry-source:readings', destination: 'threshold-filter:readings' }],
      ['POST', `/apps/${TELEMETRY}/stop`, {}],
      ['PUT', '/users/settings', { idle_minutes: 60 }],
      ['PUT', '/users/admin/credentials', { oldPassword: ADMIN_PASSWORD, newPassword: 'Taken-over-2026' }],
    ] as const) {
      const answer = await callFromPage(page, method, apiPath, body);
      assert.equal(answer.status, 403, `${method} ${apiPath}`);
      assert.equal(answer.body.code, 'E_FORBIDDEN', `${method} ${apiPath}`);
    }
    assert.equal(web.gateway.services.router.list().length, routes);
    assert.equal(web.gateway.services.installedApps().find((app) => app.package_id === TELEMETRY)?.status, 'running');
    await logOut(page);
  });
});
