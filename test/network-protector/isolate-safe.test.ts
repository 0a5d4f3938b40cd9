import { strict as assert } from 'node:assert';
import { promises as fs } from 'node:fs';
import { fileURLToPath } from 'node:url';

const DIR = fileURLToPath(new URL('../../sample-apps/network-protector/src/protocols/', import.meta.url));

describe('protocol parsers are isolate-safe', () => {
  it('import nothing but each other and use no Node or web globals an isolate lacks', async () => {
    const files = (await fs.readdir(DIR)).filter((f) => f.endsWith('.ts'));
    assert.ok(files.length >= 5);
    for (const file of files) {
      const code = (await fs.readFile(DIR + file, 'utf8')).replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
      for (const match of code.matchAll(/from '([^']+)'/g)) assert.match(match[1]!, /^\.\/[\w-]+\.js$/, `${file} imports ${match[1]}`);
      for (const name of ['Buffer', 'process', 'require', 'TextDecoder', 'TextEncoder', 'setTimeout', 'globalThis'])
        assert.ok(!new RegExp(`(^|[^\\w#.])${name}\\b`).test(code), `${file} uses ${name}`);
      assert.ok(!/\bimport\s*\(/.test(code), `${file} imports dynamically`);
    }
  });
});
