/** What `isogate-sdk init` writes: a project that builds, signs and runs as it is. */

import type { AppManifest } from '../manifest.js';
import { SDK_VERSION } from '../version.js';

export function projectManifest(packageId: string, name: string): AppManifest {
  return {
    manifestVersion: 1,
    package_id: packageId,
    name,
    title: name,
    description: `${name}: an isogate app.`,
    version: '0.1.0',
    publisher: 'Example publisher',
    categories: ['Example'],
    type: 'service',
    buildSdkVersion: SDK_VERSION,
    entry: 'app/main.js',
    resources: { memoryMb: 32, cpuMsPerEvent: 200, storageMb: 1 },
    endpoints: [
      {
        name: 'input',
        direction: 'destination',
        dataType: 'example.value',
        format: 'json',
        schema: { type: 'object', required: ['value'], properties: { value: { type: 'number' } } },
      },
      {
        name: 'output',
        direction: 'source',
        dataType: 'example.value',
        format: 'json',
        schema: { type: 'object', required: ['value'], properties: { value: { type: 'number' } } },
      },
    ],
    configuration: {
      schema: { type: 'object', additionalProperties: false, properties: { factor: { type: 'number', minimum: 0, maximum: 1000 } } },
      required: false,
      defaults: { factor: 2 },
    },
    networkZone: 'lan',
    restartOnFailure: true,
    developer: { name: 'Example developer' },
    license: 'Proprietary',
  };
}

export const MAIN_SOURCE = `import { config, emit, log, on, storage } from 'isogate:sdk';

// Every message arriving at the "input" endpoint leaves through "output", scaled by the
// configured factor; the count of handled messages survives restarts in encrypted storage.
let handled = Number((await storage.get('handled')) ?? 0);
log.info(\`started; \${handled} messages handled so far\`);

on('input', async (message) => {
  const { value } = message as { value: number };
  const factor = Number(config.get().factor ?? 1);
  emit('output', { value: value * factor });
  handled += 1;
  await storage.put('handled', String(handled));
});

// A heartbeat in the log: a line that runs by itself every few seconds, for a first breakpoint.
setInterval(() => {
  log.info(\`alive; \${handled} messages handled\`);
}, 5000);
`;

export const PROJECT_TSCONFIG = `${JSON.stringify(
  {
    compilerOptions: {
      target: 'ES2022',
      module: 'ESNext',
      moduleResolution: 'Bundler',
      lib: ['ES2022'],
      types: [],
      strict: true,
      noEmit: true,
      isolatedModules: true,
    },
    include: ['src', 'types'],
  },
  null,
  2,
)}\n`;

/** The template's tests: node's test runner (describe/it from node:test) against the harness. */
export const TEST_SOURCE = `import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startApp } from '@isogate/sdk/harness';

// Each test starts the app in its own isolate, with the gateway's limits from manifest.json.
describe('the app', () => {
  it('scales what arrives at "input" by the configured factor and counts it in storage', async () => {
    const app = await startApp({ config: { factor: 3 }, storage: { handled: '41' } });
    try {
      await app.send('input', { value: 2 });
      assert.deepEqual(await app.nextEmit('output'), { value: 6 });
      assert.equal(app.storage.get('handled'), '42');
    } finally {
      await app.stop();
    }
  });

  it('refuses a message that breaks the endpoint schema', async () => {
    const app = await startApp();
    try {
      await assert.rejects(app.send('input', { value: 'two' }), { code: 'E_MESSAGE' });
      assert.deepEqual(app.emitted('output'), []);
    } finally {
      await app.stop();
    }
  });
});
`;

/** What \`isogate-sdk run --messages test/messages.jsonl\` feeds after each start. */
export const FIXTURE_MESSAGES = `input {"value": 1}
input {"value": 21}
`;

export function projectReadme(packageId: string, name: string): string {
  return `# ${name}

An isogate app (\`${packageId}\`).

- \`manifest.json\`: identity, resources, endpoints, egress targets, configuration schema.
- \`src/main.ts\`: the app, an ES module; it reaches the gateway only through \`isogate:sdk\`
  (declared in \`types/\`).
- \`test/*.test.ts\`: its tests, node's test runner (\`describe\`/\`it\` from \`node:test\`)
  against the harness (\`startApp\` from \`@isogate/sdk/harness\`): the app in a real isolate
  with the gateway's limits, messages fed to its endpoints, emits, storage, configuration and
  egress calls answered by fixtures.

    npx isogate-sdk test                        # the tests, in the harness
    npx isogate-sdk run --messages test/messages.jsonl   # the app here, restarted on save; ENDPOINT JSON on stdin
    npx isogate-sdk build                       # type-check, check against the manifest -> dist/${packageId}-0.1.0.igp (unsigned) + main.js.map

On a gateway in developer mode (its admin ran \`isogate debug-service start\` and gave you a token):

    export ISOGATE_GATEWAY=http://127.0.0.1:PORT ISOGATE_TOKEN=isgd_...
    npx isogate-sdk push                        # installs or updates the unsigned build, keeping storage and configuration
    npx isogate-sdk logs -f                     # its log, following
    npx isogate-sdk debug                       # a DevTools URL: breakpoints in src/main.ts

For a store, a package is signed with a code-signing certificate from the store's CA (a gateway
refuses any other signer, self-signed included):

    npx isogate-sdk keygen --out keys           # a key and a CSR: send the CSR to your store operator
    npx isogate-sdk sign dist/${packageId}-0.1.0.igp --key keys/key.pem --cert keys/cert.pem
    npx isogate-sdk inspect dist/${packageId}-0.1.0.igp
`;
}
