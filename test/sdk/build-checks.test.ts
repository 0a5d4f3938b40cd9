/**
 * `isogate-sdk build`'s checks: the type-check with the app's tsconfig and the literal endpoint
 * and egress names against the manifest, each failure naming file:line:column; and the source
 * map, inline for DevTools and beside for the developer, with the TypeScript text.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { buildProject } from '../../sdk/build/project.js';
import { PROJECT_TSCONFIG, projectManifest } from '../../sdk/cli/templates.js';
import { isIsogateError } from '../../sdk/errors.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

const ID = 'com.example.checked';

async function project(dir: string, main: string, extra: Record<string, unknown> = {}): Promise<void> {
  await fs.mkdir(path.join(dir, 'src'), { recursive: true });
  await fs.mkdir(path.join(dir, 'types'), { recursive: true });
  await fs.writeFile(path.join(dir, 'manifest.json'), JSON.stringify({ ...projectManifest(ID, 'checked'), ...extra }));
  await fs.writeFile(path.join(dir, 'tsconfig.json'), PROJECT_TSCONFIG);
  for (const file of ['isogate-sdk.d.ts', 'globals.d.ts']) await fs.copyFile(path.resolve('sdk/app', file), path.join(dir, 'types', file));
  await fs.writeFile(path.join(dir, 'src', 'main.ts'), main);
}

const EGRESS = {
  egress: [
    { name: 'cloud', host: 'cloud.example.com', port: 443, protocol: 'https' },
    { name: 'broker', host: 'mq.example.com', port: 8883, protocol: 'mqtts' },
  ],
};

describe('isogate-sdk build: type-check, manifest references, source maps', function () {
  this.timeout(60_000);
  let dir: string;
  beforeEach(async () => {
    dir = await makeTempDir();
  });
  afterEach(async () => {
    await removeDir(dir);
  });

  it('builds a correct app with its source map inline and apart, sources included', async () => {
    const main =
      "import { emit, on, egress } from 'isogate:sdk';\non('input', async () => {\n  emit('output', { value: 1 });\n  await egress.fetch('cloud');\n});\n";
    await project(dir, main, EGRESS);
    const built = await buildProject(dir, { typeCheck: true });
    assert.equal(built.typeChecked, true);
    const bundle = Buffer.from(built.files.get('app/main.js')!).toString('utf8');
    const inline = bundle.match(/\/\/# sourceMappingURL=data:application\/json;base64,([A-Za-z0-9+/=]+)\s*$/);
    assert.ok(inline, 'the map is inline');
    const map = JSON.parse(built.sourceMap);
    assert.deepEqual(JSON.parse(Buffer.from(inline[1]!, 'base64').toString('utf8')).sources, map.sources);
    assert.ok(map.sources.some((source: string) => source.endsWith('src/main.ts')));
    assert.equal(map.sourcesContent[map.sources.findIndex((source: string) => source.endsWith('src/main.ts'))], main);
  });

  it('refuses a type error that esbuild alone would bundle, naming file:line:column (E_TYPECHECK)', async () => {
    await project(dir, "import { log } from 'isogate:sdk';\nconst count: number = 'three';\nlog.info(count);\n");
    await buildProject(dir); // the bundler alone does not see it
    await assert.rejects(buildProject(dir, { typeCheck: true }), (error: unknown) => {
      assert.ok(isIsogateError(error, 'E_TYPECHECK'));
      assert.match(error.message, /src\/main\.ts:2:7: TS2322/);
      assert.deepEqual((error.details as any).errors[0], { file: 'src/main.ts', line: 2, column: 7, text: (error.details as any).errors[0].text });
      return true;
    });
  });

  it('refuses endpoint and egress names the manifest does not declare, or with the wrong direction or protocol (E_MANIFEST_REFERENCE)', async () => {
    const main = [
      "import * as sdk from 'isogate:sdk';",
      "import { emit as send, on, egress } from 'isogate:sdk';",
      "send('outptu', { value: 1 });",
      "on('output', () => {});",
      "sdk.emit('input', { value: 1 });",
      "void egress.fetch('broker');",
      "void sdk.egress.publish('nowhere', 't', 'x');",
      "const name = 'computed';",
      'send(name, {});',
      "emit2('elsewhere');",
      'function emit2(_: string) {}',
      '',
    ].join('\n');
    await project(dir, main, EGRESS);
    await assert.rejects(buildProject(dir), (error: unknown) => {
      assert.ok(isIsogateError(error, 'E_MANIFEST_REFERENCE'));
      const errors = (error.details as any).errors as { file: string; line: number; text: string }[];
      assert.deepEqual(
        errors.map((e) => [e.file, e.line]),
        [
          ['src/main.ts', 3],
          ['src/main.ts', 4],
          ['src/main.ts', 5],
          ['src/main.ts', 6],
          ['src/main.ts', 7],
        ],
      );
      assert.match(errors[0]!.text, /no endpoint "outptu" \(its source endpoints: "output"\)/);
      assert.match(errors[1]!.text, /"output" is a source endpoint/);
      assert.match(errors[3]!.text, /the target is mqtts/);
      assert.match(errors[4]!.text, /no egress target "nowhere"/);
      return true;
    });
    // The same code builds when the check is off (push's inner loop): the gateway refuses at run time.
    await buildProject(dir, { checkReferences: false });
  });

  it('does not type-check a project without tsconfig.json, and says so', async () => {
    await project(dir, "import { log } from 'isogate:sdk';\nlog.info('js');\n");
    await fs.rm(path.join(dir, 'tsconfig.json'));
    assert.equal((await buildProject(dir, { typeCheck: true })).typeChecked, false);
  });
});
