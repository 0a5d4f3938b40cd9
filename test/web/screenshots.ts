/**
 * `npm run screenshots`: a PNG of every page of the web interface in test-output/screenshots/, to
 * be looked at: the login and the forced password change, every page of the admin's menu (a
 * gateway with Network Protector from its image, two sample apps installed and routed, one
 * running, a certificate uploaded), one page in Russian, and the user's menu.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { createCertificate, generateKeyPair } from '../../sdk/pki.js';
import { waitForAsync } from '../fixtures/wait.js';
import { logIn, logOut, startWebHarness } from './harness.js';

const OUT = path.resolve('test-output', 'screenshots');
const TELEMETRY = 'dev.isogate.samples.telemetry';
const THRESHOLD = 'dev.isogate.samples.threshold';

/** Settled: no request of the page's own left unanswered (its polling starts new ones later). */
async function settled(page: Page): Promise<void> {
  let pending = 0;
  const started = (): void => {
    pending += 1;
  };
  const ended = (): void => {
    pending -= 1;
  };
  page.on('request', started);
  page.on('requestfinished', ended);
  page.on('requestfailed', ended);
  try {
    // Two frames: what the last answer changed is painted.
    await page.evaluate(() => {
      const frame = (globalThis as unknown as { requestAnimationFrame: (callback: () => void) => void }).requestAnimationFrame;
      return new Promise<void>((resolve) => frame(() => frame(resolve)));
    });
    await waitForAsync(async () => pending <= 0, 10_000, 150);
  } finally {
    page.off('request', started);
    page.off('requestfinished', ended);
    page.off('requestfailed', ended);
  }
}

async function shoot(page: Page, name: string): Promise<void> {
  await settled(page);
  const file = path.join(OUT, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  process.stdout.write(`${file}\n`);
}

await mkdir(OUT, { recursive: true });
const web = await startWebHarness({ platformApps: true });
try {
  const { gateway } = web;
  const { orchestrator, launcher, router, certificates, audit } = gateway.services;
  await orchestrator.install(TELEMETRY);
  await orchestrator.install(THRESHOLD);
  await router.add({ application_id: TELEMETRY, endpoint: 'readings' }, { application_id: THRESHOLD, endpoint: 'readings' });
  await launcher.start(THRESHOLD);
  await launcher.start(TELEMETRY);
  const keys = generateKeyPair();
  const ca = createCertificate({ subject: { commonName: 'Plant cloud CA' }, publicKeyPem: keys.publicKeyPem, signingKeyPem: keys.keyPem, usage: 'ca' });
  await certificates.setCa(TELEMETRY, 'plant-ca.pem', Buffer.from(ca));
  await audit.record('launchUntrusted', { 'application name': 'screenshot example' });

  const { page } = await web.open('admin');
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.getByRole('button', { name: 'Log in' }).waitFor();
  await shoot(page, '00-login');
  await page.getByLabel('Name').fill('admin');
  await page.getByLabel('Password', { exact: true }).fill('adminadmin');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('button', { name: 'Change password' }).waitFor();
  await shoot(page, '01-change-password');
  await page.getByLabel('Current password').fill('adminadmin');
  await page.getByLabel('New password', { exact: true }).fill('Admin-pass-2026');
  await page.getByLabel('New password again').fill('Admin-pass-2026');
  await page.getByRole('button', { name: 'Change password' }).click();
  await page.getByRole('navigation', { name: 'menu' }).waitFor();

  const links = page.getByRole('navigation', { name: 'menu' }).getByRole('link');
  const count = await links.count();
  for (let index = 0; index < count; index++) {
    const link = links.nth(index);
    const id = ((await link.getAttribute('href')) ?? '').replace(/^#?\//, '');
    await link.click();
    await page
      .getByRole('heading', { level: 1 })
      .filter({ hasText: ((await link.textContent()) ?? '').replace(/\s*!$/, '') })
      .waitFor();
    await shoot(page, `${String(index + 2).padStart(2, '0')}-${id}`);
  }
  await page.getByRole('link', { name: 'Status' }).click();
  await page.getByRole('button', { name: 'Русский' }).click();
  await page.getByRole('heading', { level: 1, name: 'Состояние' }).waitFor();
  await shoot(page, '20-status-ru');
  await page.getByRole('link', { name: 'Аудит' }).click();
  await page.getByRole('heading', { level: 1, name: 'Аудит' }).waitFor();
  await shoot(page, '21-audit-ru');
  await page.getByRole('button', { name: 'English' }).click();
  await logOut(page);

  const user = await web.open('user');
  await user.page.setViewportSize({ width: 1280, height: 800 });
  await logIn(user.page, 'user', 'useruser', 'User-pass-2026');
  await shoot(user.page, '30-user-status');
  await user.page.getByRole('link', { name: 'Applications' }).click();
  await user.page.getByRole('table', { name: 'Applications' }).waitFor();
  await shoot(user.page, '31-user-apps');
  await logOut(user.page);
} finally {
  await web.close();
}
