/**
 * First contentful paint of each page of the web interface (the Performance API's paint entry,
 * in Debian's chromium), beside a static page served by the same HTTPS server over the same TLS
 * connections to the same client certificate: the issue's goal is within 2x. The static page has
 * the pages' own head (the same hashed stylesheet, shell.ts's staticDocument) and no script.
 *
 * Fair both ways, in two settings, each the same for both sides:
 * - warm: each load is a fresh tab of one logged-in context, so the hashed files are in the
 *   browser's cache for both sides (as for an admin who has opened the interface before); the
 *   documents themselves are no-store, fetched every time on both sides;
 * - cold: each load is a fresh context (empty cache, new TLS connection) carrying the session's
 *   cookie, for both sides: the first visit, the script and stylesheet fetched compressed.
 */
import type { Browser, BrowserContext } from 'playwright-core';
import { type WebFile, webAssets } from '../../platform/web/assets.js';
import { staticDocument } from '../../platform/web/shell.js';
import { MENU } from '../../web/menu.js';
import { logIn, startWebHarness } from '../web/harness.js';
import { type BenchResult, compare } from './harness.js';

const STATIC_PATH = '/bench-static.html';

/** Milliseconds from navigation to the first contentful paint of a fresh tab at `url`. */
async function firstContentfulPaint(context: BrowserContext, url: string): Promise<number> {
  const page = await context.newPage();
  try {
    await page.goto(url);
    // The paint entry is there once the browser has painted content; wait for it, then read it.
    await page.waitForFunction(() => performance.getEntriesByName('first-contentful-paint').length > 0);
    return await page.evaluate(() => performance.getEntriesByName('first-contentful-paint')[0]!.startTime);
  } finally {
    await page.close();
  }
}

/** The same, in a context of its own made like `like` (certificate, cookies) but with nothing cached. */
async function coldFirstContentfulPaint(browser: Browser, like: BrowserContext, options: Parameters<Browser['newContext']>[0], url: string): Promise<number> {
  const context = await browser.newContext({ ...options, storageState: await like.storageState() });
  try {
    return await firstContentfulPaint(context, url);
  } finally {
    await context.close();
  }
}

export default async function webBench(): Promise<BenchResult[]> {
  // The baseline is served by the gateway's own server: its map of files is the one the server reads.
  const front = await webAssets();
  if (!(front.files instanceof Map)) throw new Error('The web files are not a map the bench can add its baseline to');
  const baselinePage: WebFile = { type: 'text/html; charset=utf-8', body: Buffer.from(staticDocument(front.assets)), cache: 'no-store' };
  (front.files as Map<string, WebFile>).set(STATIC_PATH, baselinePage);
  const web = await startWebHarness();
  try {
    const { context, page } = await web.open('admin');
    await logIn(page, 'admin', 'adminadmin', 'Bench-pass-2026');
    const origin = web.gateway.apiUrl!;
    const demo = web.gateway.demo;
    const coldOptions = {
      ignoreHTTPSErrors: true,
      clientCertificates: [{ origin, certPath: demo.adminCertFile, keyPath: demo.adminKeyFile }],
    };
    const results: BenchResult[] = [];
    for (const { id } of MENU) {
      results.push(
        await compare({
          name: `web page ${id}: first contentful paint`,
          unit: 'ms',
          baselineName: 'static page, same server',
          higherIsBetter: false,
          target: 1 / 2,
          rounds: 7,
          warmupRounds: 1,
          subject: () => firstContentfulPaint(context, `${origin}/${id}`),
          baseline: () => firstContentfulPaint(context, `${origin}${STATIC_PATH}`),
        }),
      );
    }
    for (const { id } of MENU) {
      results.push(
        await compare({
          name: `web page ${id}: first contentful paint, cold cache`,
          unit: 'ms',
          baselineName: 'static page, same server, cold cache',
          higherIsBetter: false,
          target: 1 / 2,
          rounds: 5,
          subject: () => coldFirstContentfulPaint(web.browser, context, coldOptions, `${origin}/${id}`),
          baseline: () => coldFirstContentfulPaint(web.browser, context, coldOptions, `${origin}${STATIC_PATH}`),
        }),
      );
    }
    return results;
  } finally {
    await web.close();
  }
}
