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

export async function startWebHarness(): Promise<WebHarness> {
  const dir = await makeTempDir();
  // The gateway's own embedded store, which publishes the sample apps built from their sources.
  const gateway = await startGateway({ dataDir: path.join(dir, 'data'), port: 0 });
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
