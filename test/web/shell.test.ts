/**
 * The page's chrome arrives with the document (issue 16, part 6): in chromium with the script
 * held back, each path already shows the session's menu with the current page marked, the
 * page's heading and a loading line, in the chosen language, and nothing but the login card
 * without a session; with the script, the menu changes pages in place and Back works.
 */
import { strict as assert } from 'node:assert';
import type { Page } from 'playwright-core';
import { ru } from '../../web/strings/ru.js';
import { logIn, logOut, startWebHarness, type WebHarness } from './harness.js';

const PASSWORD = 'Shell-pass-2026';

/** What the document alone paints: the page's script refused, so only the gateway's markup is there. */
async function withoutScript(page: Page, url: string): Promise<{ menu: string[]; current: string[]; heading: string; loading: boolean; nav: number }> {
  await page.route('**/assets/*.js', (route) => route.abort());
  try {
    await page.goto(url);
    const nav = page.getByRole('navigation', { name: 'menu' });
    return {
      nav: await nav.count(),
      menu: await nav.getByRole('link').allTextContents(),
      current: await nav.locator('[aria-current="page"]').allTextContents(),
      heading: (await page.getByRole('heading', { level: 1 }).textContent()) ?? '',
      loading: await page
        .getByRole('status')
        .filter({ hasText: /Loading…|Загрузка…/ })
        .isVisible(),
    };
  } finally {
    await page.unroute('**/assets/*.js');
  }
}

describe('web interface chrome before the script (chromium)', function () {
  this.timeout(180_000);
  let web: WebHarness;

  before(async () => {
    web = await startWebHarness();
    // The first login's change, once, so that each test starts from a plain login.
    const { page } = await web.open('admin');
    await logIn(page, 'admin', 'adminadmin', PASSWORD);
    await logOut(page);
  });
  after(async () => {
    await web?.close();
  });

  it("paints the login card's heading without a session, then the session's menu, current page and heading on every path", async () => {
    const { page } = await web.open('admin');
    const origin = web.gateway.apiUrl!;
    const anonymous = await withoutScript(page, `${origin}/audit`);
    assert.deepEqual(
      { nav: anonymous.nav, heading: anonymous.heading, loading: anonymous.loading },
      { nav: 0, heading: 'isogate secure gateway', loading: true },
    );

    await page.goto(`${origin}/`);
    await logIn(page, 'admin', PASSWORD);
    for (const [path, label] of [
      ['/audit', 'Audit'],
      ['/certs', 'App certificates'],
      ['/', 'Status'],
    ] as const) {
      const chrome = await withoutScript(page, `${origin}${path}`);
      assert.equal(chrome.menu.length, 10, path);
      assert.deepEqual(chrome.current, [label], path);
      assert.equal(chrome.heading, label, path);
      assert.ok(chrome.loading, path);
    }
    await page.goto(`${origin}/status`);
    await logOut(page);
  });

  it('changes pages in place from the menu, with Back, and opens an old /#/ link at its path', async () => {
    const { page } = await web.open('admin');
    const origin = web.gateway.apiUrl!;
    await logIn(page, 'admin', PASSWORD);
    await page.evaluate(() => {
      (globalThis as unknown as { stayed: boolean }).stayed = true;
    });
    await page.getByRole('link', { name: 'Users' }).click();
    await page.getByRole('heading', { name: 'Users', level: 1 }).waitFor();
    assert.equal(new URL(page.url()).pathname, '/users');
    await page.goBack();
    await page.getByRole('heading', { name: 'Status', level: 1 }).waitFor();
    assert.equal(
      await page.evaluate(() => (globalThis as unknown as { stayed?: boolean }).stayed),
      true,
      'no document was loaded: the same page, its script and its state',
    );
    await page.goto(`${origin}/#/diag`);
    await page.getByRole('heading', { name: 'Self-diagnostics', level: 1 }).waitFor();
    assert.equal(new URL(page.url()).pathname, '/diag');
    await logOut(page);
  });

  it('sends the chrome in the language the switch chose', async () => {
    const { page } = await web.open('admin');
    const origin = web.gateway.apiUrl!;
    await logIn(page, 'admin', PASSWORD);
    await page.getByRole('button', { name: 'Русский' }).click();
    await page.getByRole('button', { name: 'English' }).waitFor();
    const chrome = await withoutScript(page, `${origin}/certs`);
    assert.deepEqual(chrome.current, [ru.certs]);
    assert.equal(chrome.heading, ru.certs);
    assert.ok(chrome.menu.includes(ru.status), 'the menu in Russian too');
    assert.equal(await page.locator('html').getAttribute('lang'), 'ru');
    await page.goto(`${origin}/status`);
    await page.getByRole('button', { name: 'English' }).click();
    await page.getByRole('button', { name: 'Русский' }).waitFor();
  });
});
