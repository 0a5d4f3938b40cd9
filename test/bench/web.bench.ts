/**
 * First contentful paint of each page of the web interface (the Performance API's paint entry,
 * in Debian's chromium), beside a static page (HTML and the same stylesheet, no script) served by
 * the same HTTPS server to the same client certificate: the goal is within 2x.
 * Each load is a fresh tab of one logged-in context; the server sends every answer no-store, so
 * neither side is served from the browser's cache.
 */
import type { BrowserContext } from 'playwright-core';
import { type WebAsset, webAssets } from '../../platform/web/assets.js';
import { logIn, startWebHarness } from '../web/harness.js';
import { type BenchResult, compare } from './harness.js';

const PAGES = ['status', 'apps', 'routing', 'certs', 'np', 'events', 'audit', 'diag', 'settings', 'users'];
const STATIC_PATH = '/bench-static.html';
const STATIC_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>isogate</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/app.css">
</head>
<body><main><h1>Status</h1><p>A static page of the same server, for the first contentful paint's baseline.</p></main></body>
</html>
`;

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

export default async function webBench(): Promise<BenchResult[]> {
  // The baseline is served by the gateway's own server: its map of files is the one the server reads.
  const files = await webAssets();
  if (!(files instanceof Map)) throw new Error('The web files are not a map the bench can add its baseline to');
  (files as Map<string, WebAsset>).set(STATIC_PATH, { type: 'text/html; charset=utf-8', body: STATIC_PAGE });
  const web = await startWebHarness();
  try {
    const { context, page } = await web.open('admin');
    await logIn(page, 'admin', 'adminadmin', 'Bench-pass-2026');
    const origin = web.gateway.apiUrl!;
    const results: BenchResult[] = [];
    for (const id of PAGES) {
      results.push(
        await compare({
          name: `web page ${id}: first contentful paint`,
          unit: 'ms',
          baselineName: 'static page, same server',
          higherIsBetter: false,
          target: 1 / 2,
          rounds: 7,
          warmupRounds: 1,
          subject: () => firstContentfulPaint(context, `${origin}/#/${id}`),
          baseline: () => firstContentfulPaint(context, `${origin}${STATIC_PATH}`),
        }),
      );
    }
    return results;
  } finally {
    await web.close();
  }
}
