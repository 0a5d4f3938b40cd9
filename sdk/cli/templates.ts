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

export function projectReadme(packageId: string, name: string): string {
  return `# ${name}

An isogate app (\`${packageId}\`).

- \`manifest.json\`: identity, resources, endpoints, egress targets, configuration schema.
- \`src/main.ts\`: the app, an ES module; it reaches the gateway only through \`isogate:sdk\`
  (declared in \`types/\`).

    npx isogate-sdk build                       # -> dist/${packageId}-0.1.0.igp (unsigned)
    npx isogate-sdk keygen --out keys --self-signed   # or a CSR for your store's CA
    npx isogate-sdk sign dist/${packageId}-0.1.0.igp --key keys/key.pem --cert keys/cert.pem
    npx isogate-sdk inspect dist/${packageId}-0.1.0.igp
`;
}
