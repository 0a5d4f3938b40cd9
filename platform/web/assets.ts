/**
 * The admin web interface's files: the front end in `web/` (preact, uPlot) bundled by esbuild.
 * `npm run build` writes the bundle beside this module in dist/, so a gateway run from dist/
 * reads it and never loads the bundler; run from the sources (tests through tsx) the front end is
 * bundled at the first start and kept in memory (as the guest SDK is: sandbox/guest-bundle.ts).
 * Served by the API's own HTTPS server: no CDN, no inline script, one strict CSP.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const WEB_BUNDLE_JS = path.join(here, 'web.bundle.js');
export const WEB_BUNDLE_CSS = path.join(here, 'web.bundle.css');

/** The pages' policy: only the gateway's own script, style and API; nothing inline, no frames. (The icon is `data:`: a browser asking for /favicon.ico on every visit would fill the audit with refusals.) */
export const PAGE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

export interface WebAsset {
  type: string;
  body: string;
}

/** The files under `/`, by path. */
export type WebAssets = ReadonlyMap<string, WebAsset>;

const INDEX_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>isogate</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/app.css">
<script src="/app.js" defer></script>
</head>
<body><div id="app"></div><noscript>The isogate web interface needs JavaScript.</noscript></body>
</html>
`;

/** Bundles the front end from `web/` at the project's root (two or three levels up: sources or dist/). */
export async function bundleWeb(): Promise<{ js: string; css: string }> {
  const entry = [path.join(here, '..', '..', 'web', 'main.ts'), path.join(here, '..', '..', '..', 'web', 'main.ts')].find((file) => existsSync(file));
  if (!entry) throw new Error(`The web interface's sources are missing (web/main.ts near ${here})`);
  const { build } = await import('esbuild');
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    outdir: 'out',
    format: 'iife',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    legalComments: 'none',
    logLevel: 'silent',
  });
  const js = result.outputFiles.find((file) => file.path.endsWith('.js'))?.text ?? '';
  const css = result.outputFiles.find((file) => file.path.endsWith('.css'))?.text ?? '';
  return { js, css };
}

let loaded: Promise<WebAssets> | undefined;

export function webAssets(): Promise<WebAssets> {
  loaded ??= (async () => {
    const { js, css } = existsSync(WEB_BUNDLE_JS)
      ? { js: await readFile(WEB_BUNDLE_JS, 'utf8'), css: await readFile(WEB_BUNDLE_CSS, 'utf8').catch(() => '') }
      : await bundleWeb();
    return new Map<string, WebAsset>([
      ['/', { type: 'text/html; charset=utf-8', body: INDEX_HTML }],
      ['/index.html', { type: 'text/html; charset=utf-8', body: INDEX_HTML }],
      ['/app.js', { type: 'application/javascript; charset=utf-8', body: js }],
      ['/app.css', { type: 'text/css; charset=utf-8', body: css }],
    ]);
  })().catch((error: unknown) => {
    loaded = undefined;
    throw error;
  });
  return loaded;
}
