/**
 * The admin web interface's files: the front end in `web/` (preact, uPlot) bundled by esbuild
 * into an entry script, a chunk per page and one stylesheet, each named by its content's hash
 * and compressed once
 * (brotli and gzip), and the page documents (shell.ts) that link them. `npm run build` writes the
 * files beside this module in dist/ (`web-files/`), so a gateway run from dist/ reads them and
 * never loads the bundler; run from the sources (tests through tsx) the front end is bundled and
 * compressed at the first start and kept in memory (as the guest SDK is: sandbox/guest-bundle.ts).
 * Served by the API's own HTTPS server: no CDN, no inline script, one strict CSP.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { brotliCompress, constants, gzip } from 'node:zlib';
import { pageAt } from '../../web/menu.js';
import { isLang, pageDocument, type ShellAssets, type Viewer } from './shell.js';

const here = path.dirname(fileURLToPath(import.meta.url));
/** Where the build puts the hashed files and their compressed copies. */
export const WEB_FILES_DIR = path.join(here, 'web-files');
/** Where the hashed files are served from: their names change with their content, so they are cached for good. */
export const ASSETS_PREFIX = '/assets/';

/** The pages' policy: only the gateway's own script, style and API; nothing inline, no frames. (The icon is `data:`: a browser asking for /favicon.ico on every visit would fill the audit with refusals.) */
export const PAGE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const TYPES: Readonly<Record<string, string>> = {
  '.js': 'application/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.html': 'text/html; charset=utf-8',
};
const IMMUTABLE = 'public, max-age=31536000, immutable';

/** One file as it is served: its bytes, and the same bytes compressed where that was worth it. */
export interface WebFile {
  type: string;
  body: Buffer;
  br?: Buffer;
  gzip?: Buffer;
  /** `immutable` for a hashed name; a page (the bench's baseline) is `no-store` like the API. */
  cache: 'immutable' | 'no-store';
}

export interface WebRequest {
  path: string;
  acceptEncoding: string;
  /** The language switch's cookie, if any. */
  lang: string | undefined;
  /** The request's session, asked only for a page (an asset does not depend on it). */
  viewer(): Promise<Viewer | undefined>;
}

export interface WebResponse {
  headers: Record<string, string>;
  body: Buffer | string;
}

export interface WebFrontEnd {
  readonly assets: ShellAssets;
  /** The files besides the pages, by path (the bench adds its baseline page here). */
  readonly files: ReadonlyMap<string, WebFile>;
  /** The answer for a GET of `path`, or undefined for a path that is not the web interface's. */
  respond(request: WebRequest): Promise<WebResponse | undefined>;
}

/** One output of the bundler, by its file name (the entry `app.<hash>.js`, its stylesheet, the pages' `chunk.<hash>.js`). */
export interface BundledFile {
  name: string;
  text: string;
}

/**
 * Bundles the front end from `web/` at the project's root (two or three levels up: sources or
 * dist/), split where web/main.ts loads a page, each file named by esbuild's hash of its content.
 */
export async function bundleWeb(): Promise<BundledFile[]> {
  const entry = [path.join(here, '..', '..', 'web', 'main.ts'), path.join(here, '..', '..', '..', 'web', 'main.ts')].find((file) => existsSync(file));
  if (!entry) throw new Error(`The web interface's sources are missing (web/main.ts near ${here})`);
  const { build } = await import('esbuild');
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    outdir: 'out',
    format: 'esm',
    splitting: true,
    entryNames: 'app.[hash]',
    chunkNames: 'chunk.[hash]',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    legalComments: 'none',
    logLevel: 'silent',
  });
  return result.outputFiles.map((file) => ({ name: path.basename(file.path), text: file.text }));
}

/** The bundle's files under `/assets/`, each with its brotli and gzip copies (compressed here, once). */
export async function compressWeb(bundle: readonly BundledFile[]): Promise<Map<string, WebFile>> {
  const files = new Map<string, WebFile>();
  for (const { name, text } of bundle) {
    const type = TYPES[path.extname(name)];
    if (!type || name !== path.basename(name)) throw new Error(`The web bundle's file ${name} is not a script or stylesheet`);
    const body = Buffer.from(text);
    const [br, gz] = await Promise.all([
      promisify(brotliCompress)(body, {
        params: { [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY, [constants.BROTLI_PARAM_SIZE_HINT]: body.length },
      }),
      promisify(gzip)(body, { level: constants.Z_BEST_COMPRESSION }),
    ]);
    files.set(`${ASSETS_PREFIX}${name}`, { type, body, br, gzip: gz, cache: 'immutable' });
  }
  return files;
}

/** Writes the files as the build leaves them in dist/: each name, and beside it `.br` and `.gz`. */
export async function writeWebFiles(files: ReadonlyMap<string, WebFile>, dir: string = WEB_FILES_DIR): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [name, file] of files) {
    const base = path.join(dir, path.basename(name));
    await writeFile(base, file.body);
    if (file.br) await writeFile(`${base}.br`, file.br);
    if (file.gzip) await writeFile(`${base}.gz`, file.gzip);
  }
}

async function readWebFiles(dir: string): Promise<Map<string, WebFile>> {
  const files = new Map<string, WebFile>();
  const names = await readdir(dir);
  for (const name of names.filter((entry) => !entry.endsWith('.br') && !entry.endsWith('.gz'))) {
    const type = TYPES[path.extname(name)];
    if (!type) continue;
    const [body, br, gz] = await Promise.all(
      ['', '.br', '.gz'].map((suffix) => (suffix === '' || names.includes(name + suffix) ? readFile(path.join(dir, name + suffix)) : undefined)),
    );
    files.set(`${ASSETS_PREFIX}${name}`, { type, body: body!, ...(br ? { br } : {}), ...(gz ? { gzip: gz } : {}), cache: 'immutable' });
  }
  return files;
}

/** Whether `accept` (an Accept-Encoding header) takes `coding`: named, or `*`, with a q above 0. */
export function accepts(accept: string, coding: 'br' | 'gzip'): boolean {
  let star = false;
  for (const part of accept.toLowerCase().split(',')) {
    const [name, ...params] = part.trim().split(';');
    const q = params.map((param) => param.trim()).find((param) => param.startsWith('q='));
    const weight = q === undefined ? 1 : Number(q.slice(2));
    if (name === coding) return weight > 0;
    if (name === '*') star = weight > 0;
  }
  return star;
}

function serveFile(file: WebFile, acceptEncoding: string): WebResponse {
  const headers: Record<string, string> = { 'Content-Type': file.type, 'Cache-Control': file.cache === 'immutable' ? IMMUTABLE : 'no-store' };
  if (!file.br && !file.gzip) return { headers, body: file.body };
  // One name, several bodies: a cache between must key them by what the client accepts.
  headers.Vary = 'Accept-Encoding';
  if (file.br && accepts(acceptEncoding, 'br')) return { headers: { ...headers, 'Content-Encoding': 'br' }, body: file.br };
  if (file.gzip && accepts(acceptEncoding, 'gzip')) return { headers: { ...headers, 'Content-Encoding': 'gzip' }, body: file.gzip };
  return { headers, body: file.body };
}

export function webFrontEnd(files: Map<string, WebFile>): WebFrontEnd {
  const name = (ext: string): string => [...files.keys()].find((key) => key.startsWith(`${ASSETS_PREFIX}app.`) && key.endsWith(ext)) ?? '';
  const assets: ShellAssets = { js: name('.js'), css: name('.css') };
  if (!assets.js || !assets.css) throw new Error("The web interface's script or stylesheet is missing from its files");
  return {
    assets,
    files,
    async respond(request) {
      const file = files.get(request.path);
      if (file) return serveFile(file, request.acceptEncoding);
      const page = pageAt(request.path);
      if (!page) return undefined;
      const lang = isLang(request.lang) ? request.lang : 'en';
      // It depends on the session: never kept by the browser or anything between.
      return { headers: { 'Content-Type': TYPES['.html']!, 'Cache-Control': 'no-store' }, body: pageDocument(page, await request.viewer(), lang, assets) };
    },
  };
}

let loaded: Promise<WebFrontEnd> | undefined;

export function webAssets(): Promise<WebFrontEnd> {
  loaded ??= (async () => webFrontEnd(existsSync(WEB_FILES_DIR) ? await readWebFiles(WEB_FILES_DIR) : await compressWeb(await bundleWeb())))().catch(
    (error: unknown) => {
      loaded = undefined;
      throw error;
    },
  );
  return loaded;
}
