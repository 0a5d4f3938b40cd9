#!/usr/bin/env node
// The SDK package's command: one bundle (dist/isogate-sdk.mjs). Commands that run the app in an
// isolate (test, run) start Node once more with --no-node-snapshot, which isolated-vm needs on Node 20.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const bundle = fileURLToPath(new URL('../dist/isogate-sdk.mjs', import.meta.url));
if (!existsSync(bundle)) {
  process.stderr.write(
    `E_INTERNAL: ${bundle} is missing: the SDK package was not built ("npm run build" in the isogate repository builds it, "npm run pack:sdk" packs it)\n`,
  );
  process.exitCode = 1;
} else {
  const { main } = await import(pathToFileURL(bundle).href);
  process.exitCode = await main(process.argv.slice(2));
}
