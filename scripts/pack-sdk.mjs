#!/usr/bin/env node
// `npm run pack:sdk [-- DEST]`: the SDK package as a tarball an app project installs without a
// network (`npm install --offline PATH/isogate-sdk-1.0.0.tgz`). The workspace's own
// package.json cannot carry bundleDependencies: npm then fails to lock the workspace (it fetches
// the link as a tarball), so the package is staged here with them: esbuild with its binary,
// isolated-vm with the addon this checkout built (its install script removed, or npm would try
// to fetch a prebuilt one and then compile it again) and typescript. The tarball is therefore for
// this platform and Node's ABI (linux-x64, Node 20), like the addon in it.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const sdk = path.join(root, 'sdk');
const destination = path.resolve(process.argv[2] ?? root);
const modules = path.join(root, 'node_modules');

if (!existsSync(path.join(sdk, 'dist', 'isogate-sdk.mjs'))) await import('./build-sdk.mjs');

const manifest = JSON.parse(readFileSync(path.join(sdk, 'package.json'), 'utf8'));
const stage = mkdtempSync(path.join(tmpdir(), 'isogate-sdk-pack-'));
try {
  for (const entry of ['bin', 'dist', 'app', 'README.md']) cpSync(path.join(sdk, entry), path.join(stage, entry), { recursive: true });

  const require = createRequire(path.join(root, 'package.json'));
  const platformBinary = `@esbuild/${process.platform}-${process.arch}`;
  const bundled = { esbuild: null, [platformBinary]: null, 'isolated-vm': null, typescript: null };
  for (const name of Object.keys(bundled)) {
    const from = path.join(modules, name);
    const own = JSON.parse(readFileSync(path.join(from, 'package.json'), 'utf8'));
    bundled[name] = own.version;
    const to = path.join(stage, 'node_modules', name);
    // Only what runs: isolated-vm's C++ sources and build files stay behind, so npm sees nothing to compile.
    const skip = name === 'isolated-vm' ? new Set(['src', 'vendor', 'binding.gyp', 'native-example', 'Dockerfile.alpine', 'Dockerfile.debian']) : new Set();
    cpSync(from, to, { recursive: true, filter: (source) => !skip.has(path.relative(from, source)) });
    const stripped = { ...own, scripts: {} };
    if (name === 'isolated-vm') {
      stripped.gypfile = false;
      stripped.dependencies = {};
    }
    if (name === 'esbuild') stripped.optionalDependencies = { [platformBinary]: own.version };
    writeFileSync(path.join(to, 'package.json'), `${JSON.stringify(stripped, null, 2)}\n`);
  }
  require.resolve('isolated-vm');
  if (!existsSync(path.join(stage, 'node_modules', 'isolated-vm', 'out', 'isolated_vm.node'))) throw new Error('pack-sdk: isolated-vm has no built addon');

  const packed = {
    ...manifest,
    dependencies: { ...manifest.dependencies, [platformBinary]: bundled[platformBinary] },
    bundleDependencies: Object.keys(bundled),
    os: [process.platform],
    cpu: [process.arch],
  };
  delete packed.scripts;
  writeFileSync(path.join(stage, 'package.json'), `${JSON.stringify(packed, null, 2)}\n`);
  const output = execFileSync('npm', ['pack', '--json', '--pack-destination', destination], {
    cwd: stage,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [{ filename, size, unpackedSize }] = JSON.parse(output);
  process.stdout.write(`${JSON.stringify({ tarball: path.join(destination, filename), size, unpackedSize })}\n`);
} finally {
  rmSync(stage, { recursive: true, force: true });
}
