#!/usr/bin/env node
// The SDK package (sdk/, the @isogate/sdk workspace): its command and its harness bundled by
// esbuild into sdk/dist/, with everything pure JavaScript inside, so that an app project outside
// this repository installs the tarball without a network. What cannot be bundled (esbuild's
// binary, isolated-vm's addon, typescript, which the type-check loads as a whole) is in the
// package's bundleDependencies. Run by scripts/build.mjs (after tsc, whose guest bundle it copies)
// and by `npm pack -w sdk` (prepack).
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = path.join(root, 'sdk', 'dist');
const guest = path.join(root, 'dist', 'platform', 'sandbox', 'guest.bundle.js');
if (!existsSync(guest)) {
  process.stderr.write(`E_INTERNAL: ${guest} is missing: run npm run build (it builds the SDK package too)\n`);
  process.exit(1);
}

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const result = await esbuild.build({
  entryPoints: { 'isogate-sdk': path.join(root, 'sdk', 'cli', 'main.ts'), harness: path.join(root, 'sdk', 'harness', 'index.ts') },
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  outdir: out,
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunks/[name]-[hash]',
  external: ['esbuild', 'isolated-vm', 'typescript'],
  // CommonJS dependencies (node-forge, ...) call require() for Node's modules.
  banner: { js: "import { createRequire as __isogateRequire } from 'node:module'; const require = __isogateRequire(import.meta.url);" },
  legalComments: 'linked',
  logLevel: 'warning',
  write: false,
});
// The sources find the JSON Schemas relative to themselves (../manifests/, ../../manifests/); in
// the bundle they sit in dist/manifests/ beside it. Each rewrite must happen, or the package
// would look outside itself.
const PATHS = [/new URL\("(\.\.\/)+manifests\//g, 'new URL("./manifests/'];
for (const file of result.outputFiles) {
  let text = file.text;
  const chunk = path.dirname(file.path) !== out;
  text = text.replace(PATHS[0], chunk ? 'new URL("../manifests/' : PATHS[1]);
  text = text.replace(/new URL\("\.\.\/app\/"/g, chunk ? 'new URL("../../app/"' : 'new URL("../app/"');
  mkdirSync(path.dirname(file.path), { recursive: true });
  writeFileSync(file.path, text);
}
const all = result.outputFiles.map((file) => readFileSync(file.path, 'utf8')).join('\n');
for (const schema of ['app-manifest.schema.json', 'package-digests.schema.json']) {
  if (!all.includes(`manifests/${schema}`)) throw new Error(`build-sdk: the bundle no longer names ${schema}; check the path rewrite`);
}
if (/new URL\("\.\.\/\.\.\/manifests/.test(all.replace(/chunks/g, ''))) throw new Error('build-sdk: a schema path still leaves the package');
cpSync(path.join(root, 'manifests'), path.join(out, 'manifests'), { recursive: true });
// The guest SDK the sandbox evaluates first in every isolate (platform/sandbox/guest-bundle.ts
// reads it beside the module that bundles the sandbox); in a chunk or not, both places.
cpSync(guest, path.join(out, 'guest.bundle.js'));
mkdirSync(path.join(out, 'chunks'), { recursive: true });
cpSync(guest, path.join(out, 'chunks', 'guest.bundle.js'));
// The harness API's typings, for tests in TypeScript.
cpSync(path.join(root, 'sdk', 'app', 'harness.d.ts'), path.join(out, 'harness.d.ts'));
