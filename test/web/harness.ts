/**
 * The browser tests' gateway and browser: a real gateway on port 0 with its embedded store (the sample apps), and
 * chromium (playwright-core) whose context presents a demo account's client certificate to the
 * gateway's origin. The gateway's server certificate is the demo root's, which chromium does not
 * know: the context ignores that (the certificate is what the tests are about on the other side).
 */
import path from 'node:path';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { type Gateway, startGateway } from '../../platform/main.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

export const CHROMIUM = '/usr/bin/chromium';

export interface WebHarness {
  gateway: Gateway;
  browser: Browser;
  /** A fresh context and page presenting `role`'s demo certificate, at the gateway's `/`. */
  open(role: 'admin' | 'user'): Promise<{ context: BrowserContext; page: Page }>;
  close(): Promise<void>;
}

export interface WebHarnessOptions {
  /** Network Protector pre-installed from the gateway's own image, as in the demo. */
  platformApps?: boolean;
}

export async function startWebHarness(options: WebHarnessOptions = {}): Promise<WebHarness> {
  const dir = await makeTempDir();
  // The gateway's own embedded store, which publishes the sample apps built from their sources.
  const gateway = await startGateway({ dataDir: path.join(dir, 'data'), port: 0, ...(options.platformApps ? { platformApps: true } : {}) });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const contexts: BrowserContext[] = [];
  return {
    gateway,
    browser,
    async open(role) {
      const demo = gateway.demo;
      const context = await browser.newContext({
        ignoreHTTPSErrors: true,
        clientCertificates: [
          {
            origin: gateway.apiUrl!,
            certPath: role === 'admin' ? demo.adminCertFile : demo.userCertFile,
            keyPath: role === 'admin' ? demo.adminKeyFile : demo.userKeyFile,
          },
        ],
      });
      contexts.push(context);
      const page = await context.newPage();
      await page.goto(`${gateway.apiUrl}/`);
      return { context, page };
    },
    async close() {
      for (const context of contexts) await context.close().catch(() => undefined);
      await browser.close();
      await gateway.close();
      await removeDir(dir);
    },
  };
}

/** Logs in through the form, and does the forced first-login change when asked for it. */
export async function logIn(page: Page, username: string, password: string, newPassword?: string): Promise<void> {
  await page.getByLabel('Name').fill(username);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  if (newPassword) {
    await page.getByLabel('Current password').fill(password);
    await page.getByLabel('New password', { exact: true }).fill(newPassword);
    await page.getByLabel('New password again').fill(newPassword);
    await page.getByRole('button', { name: 'Change password' }).click();
  }
  await page.getByRole('navigation', { name: 'menu' }).waitFor();
}

/** Logs out through the menu: one session at a time, so the next test's login is not refused. */
export async function logOut(page: Page): Promise<void> {
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByRole('button', { name: 'Log in' }).waitFor();
}

export interface PageAnswer {
  status: number;
  body: { code?: string } & Record<string, unknown>;
}

/** The API called from inside the page, with its session cookie and CSRF token, as a script of the page would. */
export async function callFromPage(page: Page, method: string, apiPath: string, body?: unknown): Promise<PageAnswer> {
  return page.evaluate(
    async ({ method, apiPath, body }) => {
      const session = (await (await fetch('/api/v1/session')).json()) as { csrfToken?: string };
      const response = await fetch(`/api/v1${apiPath}`, {
        method,
        headers: { 'content-type': 'application/json', 'x-csrf-token': session.csrfToken ?? '' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      return { status: response.status, body: (await response.json().catch(() => ({}))) as { code?: string } & Record<string, unknown> };
    },
    { method, apiPath, body },
  );
}
