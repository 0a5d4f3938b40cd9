/**
 * The code an isolate runs before the app: the guest SDK (`guest/sdk.ts`, TypeScript) bundled by
 * esbuild. `npm run build` writes the bundle beside the compiled modules (dist/), so the gateway
 * reads it and never loads the bundler; run from the sources (tests through tsx) there is no such
 * file, and the guest is bundled at the first start and kept in memory.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type ivm from 'isolated-vm';

const here = path.dirname(fileURLToPath(import.meta.url));
/** Where `npm run build` puts the bundle, beside this module in dist/. */
export const GUEST_BUNDLE_FILE = path.join(here, 'guest.bundle.js');

let bundled: Promise<string> | undefined;

/** Bundles the guest SDK from the sources beside this module (.ts from the sources, .js in dist/). */
export async function bundleGuest(): Promise<string> {
  const entry = ['sdk.ts', 'sdk.js'].map((name) => path.join(here, 'guest', name)).find((file) => existsSync(file));
  if (!entry) throw new Error(`The guest SDK is missing from ${path.join(here, 'guest')}`);
  // Loaded only here: a gateway run from dist/ reads the prebuilt bundle instead.
  const { build } = await import('esbuild');
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    format: 'iife',
    globalName: '__isogateGuest',
    platform: 'neutral',
    target: 'es2022',
    legalComments: 'none',
    logLevel: 'silent',
  });
  return `${result.outputFiles[0]!.text}\nreturn __isogateGuest.bootstrap($0, $1, $2, $3);`;
}

/**
 * The body of the guest's bootstrap function (compileGuest): $0 the calls reference, $1 the
 * notifications reference, $2 the grants as JSON, $3 the delivered-batch reference; returns the
 * guest's operations. esbuild's IIFE assigns its result to a `var`, which the function keeps
 * local: nothing of the bundle lands on the app's global object.
 */
export function guestBootstrapSource(): Promise<string> {
  bundled ??= (existsSync(GUEST_BUNDLE_FILE) ? readFile(GUEST_BUNDLE_FILE, 'utf8') : bundleGuest()).catch((error: unknown) => {
    bundled = undefined;
    throw error;
  });
  return bundled;
}

/**
 * V8's code cache of the guest, the same for every app: made by the first isolate that compiles
 * it in this process and used by every later one, which then skips parsing and compiling the
 * bundle's top level. It is produced at compile time, before any code runs in that isolate, so
 * no app can shape it; V8 checks it against the source and its own flags and rejects a cache
 * that does not fit (then it is made again).
 */
let codeCache: ivm.ExternalCopy<ArrayBuffer> | undefined;

/**
 * The guest compiled in `isolate` as one function expression of ($0, $1, $2, $3) (see
 * guestBootstrapSource): running the script gives the function, which the sandbox calls with
 * the references. Unlike evalClosure, a script takes a code cache.
 */
export async function compileGuest(isolate: ivm.Isolate): Promise<ivm.Script> {
  const source = `(function ($0, $1, $2, $3) {${await guestBootstrapSource()}\n})`;
  const cached = codeCache;
  // isolated-vm sets these on the script; its typings declare them apart (CachedDataResult).
  const script: ivm.Script & ivm.CachedDataResult & { cachedDataRejected?: boolean } = await isolate.compileScript(source, {
    filename: 'isogate:guest',
    ...(cached ? { cachedData: cached } : { produceCachedData: true }),
  });
  if (cached && script.cachedDataRejected) codeCache = undefined;
  else if (!cached && script.cachedData) codeCache = script.cachedData;
  return script;
}

/** The `isogate:sdk` module: takes the frozen SDK and removes its only global trace. */
export const SDK_MODULE_SOURCE = `
const sdk = globalThis.__isogate_sdk__;
delete globalThis.__isogate_sdk__;
export const { app, log, on, emit, onStop, storage, config, egress, traffic } = sdk;
export default sdk;
`;

export const READY_MODULE = 'isogate:ready';

/** Only the readiness module may import it; it too removes its global before app code runs. */
export const READY_MODULE_SOURCE = `
const ready = globalThis.__isogate_ready__;
delete globalThis.__isogate_ready__;
export default ready;
`;

/**
 * The module the platform evaluates. isolated-vm 5.0.4 does not wait for a module's top-level
 * await, but a module body runs only after its imports finished theirs: so the app has started
 * when this body runs.
 */
export function readinessModuleSource(entry: string): string {
  return `import ready from '${READY_MODULE}';\nimport 'isogate:sdk';\nimport ${JSON.stringify(entry)};\nready();\n`;
}
