#!/usr/bin/env node
// Compiles the platform, the SDK and the store to JavaScript in dist/, which is what the isogate*
// commands run (`npm ci` runs this through the prepare script; `npm test` runs it before the tests
// so that the commands the tests start are never older than the sources). Beside the compiled
// code it puts what that code finds relative to itself: the JSON Schemas, the in-app type
// declarations and the sample apps' sources.
import { execFileSync } from 'node:child_process';
import { cpSync, lstatSync, mkdirSync, readdirSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = path.join(root, 'dist');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

// The platform imports Network Protector's code (the offline replay runs its parsers and rule
// engine), so tsc emits it under dist/sample-apps/. The links an earlier build left there (the
// whole folder once, then each project entry by entry, e.g. .../src/rules -> the sources) would make
// tsc write JavaScript through them into the source tree: every link under it goes first.
// A folder link stood where tsc's output for that folder belongs: tsc's incremental state may
// think that output written already, so it is forgotten and everything emitted again.
const samples = path.join(dist, 'sample-apps');
let folderLinks = 0;
function unlinkAll(dir) {
  const stat = lstatSync(dir, { throwIfNoEntry: false });
  if (!stat) return;
  if (stat.isSymbolicLink()) {
    if (statSync(dir, { throwIfNoEntry: false })?.isDirectory()) folderLinks++;
    return unlinkSync(dir);
  }
  if (!stat.isDirectory()) return;
  for (const entry of readdirSync(dir)) unlinkAll(path.join(dir, entry));
}
unlinkAll(samples);
if (folderLinks > 0) rmSync(path.join(dist, '.tsbuildinfo'), { force: true });

execFileSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], { stdio: 'inherit' });

// The guest SDK, bundled once here so that the gateway never loads the bundler (guest-bundle.ts).
const guestBundle = await import(new URL('../dist/platform/sandbox/guest-bundle.js', import.meta.url).href);
writeFileSync(guestBundle.GUEST_BUNDLE_FILE, await guestBundle.bundleGuest());

// The web interface, bundled here too (platform/web/assets.ts).
const web = await import(new URL('../dist/platform/web/assets.js', import.meta.url).href);
// Hashed names, compressed once here; an earlier build's files go first (their hashes are stale).
rmSync(web.WEB_FILES_DIR, { recursive: true, force: true });
await web.writeWebFiles(await web.compressWeb(await web.bundleWeb()));

// Copies, not links: dist/ is then a self-contained install of the same version.
rmSync(path.join(dist, 'manifests'), { recursive: true, force: true });
cpSync(path.join(root, 'manifests'), path.join(dist, 'manifests'), { recursive: true });
mkdirSync(path.join(dist, 'sdk', 'app'), { recursive: true });
cpSync(path.join(root, 'sdk', 'app'), path.join(dist, 'sdk', 'app'), {
  recursive: true,
  filter: (source) => !path.extname(source) || source.endsWith('.d.ts'),
});
// The embedded store builds the sample apps from their sources with the SDK, as a developer would.
// Each project is linked in beside what tsc emitted (entry by entry where both have a directory).
function linkMissing(source, target) {
  for (const entry of readdirSync(source, { withFileTypes: true })) {
    const from = path.join(source, entry.name);
    const to = path.join(target, entry.name);
    const existing = lstatSync(to, { throwIfNoEntry: false });
    if (!existing) symlinkSync(path.relative(target, from), to);
    else if (existing.isDirectory() && entry.isDirectory()) linkMissing(from, to);
  }
}
mkdirSync(samples, { recursive: true });
linkMissing(path.join(root, 'sample-apps'), samples);

// The SDK as its own npm package (sdk/, @isogate/sdk): its bundle in sdk/dist/.
await import('./build-sdk.mjs');
