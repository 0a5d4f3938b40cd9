/**
 * Every fuzz target over its seed corpus and its regressions (inputs a fuzz run once found to
 * crash or hang, kept in test/fuzz/regressions/<target>/ with their fix), without jazzer: cheap
 * enough for every `npm test`, so a fixed finding stays fixed. A target throws only for a
 * finding (refusal.ts), so "does not throw" is the assertion here: each regression file's own
 * test names the behaviour it pins.
 */
import { strict as assert } from 'node:assert';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FUZZ_TARGETS, type FuzzTargetName } from './targets.js';

const here = path.dirname(fileURLToPath(import.meta.url));

function inputs(folder: string, target: string): string[] {
  const dir = path.join(here, folder, target);
  return existsSync(dir) ? readdirSync(dir).map((name) => path.join(dir, name)) : [];
}

describe('fuzz targets over their corpora', () => {
  for (const target of Object.keys(FUZZ_TARGETS) as FuzzTargetName[]) {
    it(`${target}: every seed and regression is parsed or refused with a code`, async () => {
      const { fuzz } = (await import(`./targets/${target}.fuzz.ts`)) as { fuzz: (data: Buffer) => void | Promise<void> };
      const seeds = inputs('corpus', target);
      assert.ok(seeds.length > 0, `test/fuzz/corpus/${target}/ has seeds`);
      for (const file of [...seeds, ...inputs('regressions', target)]) {
        await assert.doesNotReject(async () => fuzz(readFileSync(file)), path.relative(here, file));
      }
    });
  }
});

describe('fuzz seeds and findings', () => {
  it('counts a coded refusal as handled and anything else as a finding', async () => {
    const { refused } = await import('./refusal.js');
    const { fail } = await import('../../sdk/errors.js');
    assert.doesNotThrow(() => refused(fail('E_CONFIG', 'bad')));
    assert.throws(() => refused(new TypeError('x is undefined')), TypeError);
    assert.throws(() => refused(Object.assign(new Error('not ours'), { code: 'E_NOT_A_CODE' })), /not ours/);
    assert.throws(() => refused('a string'));
  });

  it('starts each parser inside its format: the seeds are accepted, not refused', async () => {
    const { parseManifest } = await import('../../sdk/manifest.js');
    const { parseConfigDocument } = await import('../../platform/config/index.js');
    const { readPackage } = await import('../../sdk/package/index.js');
    const { compileRules } = await import('../../sample-apps/network-protector/src/engine/index.js');
    const { readPcap } = await import('../../platform/traffic/pcap.js');
    const { parseControlRequest } = await import('../../platform/api/control-socket.js');
    const { RULE_VARIABLES } = await import('./targets/rules.fuzz.js');
    for (const file of inputs('corpus', 'manifest')) parseManifest(readFileSync(file));
    for (const file of inputs('corpus', 'config')) parseConfigDocument(readFileSync(file, 'utf8'), file);
    for (const file of inputs('corpus', 'package')) await readPackage(readFileSync(file), { trust: { allowUnsigned: true } });
    for (const file of inputs('corpus', 'rules'))
      assert.ok(compileRules([{ name: 'r', text: readFileSync(file, 'utf8') }], RULE_VARIABLES).rules.length > 10, file);
    for (const file of inputs('corpus', 'pcap')) assert.ok(readPcap(readFileSync(file)).records.length > 5, file);
    for (const file of inputs('corpus', 'control-frame'))
      for (const line of readFileSync(file, 'utf8').split('\n').filter(Boolean)) assert.equal(typeof parseControlRequest(line).op, 'string');
  });
});
