/**
 * What the fuzz runs found, each pinned as behaviour (the inputs themselves are replayed from
 * test/fuzz/regressions/ by replay.test.ts).
 */
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { parseManifest } from '../../sdk/manifest.js';
import { sampleManifest } from '../fixtures/packages.js';

const g = globalThis as { isogateInjected?: unknown };

/** Strings that would end a string literal, a comment or a line in generated JavaScript. */
const BREAKOUTS = [
  '"]; globalThis.isogateInjected = 1; //',
  "'; globalThis.isogateInjected = 1; //",
  // A template literal's placeholder, built so that this file holds no placeholder in a plain string.
  `\`$${'{'}globalThis.isogateInjected = 1}\``,
  '*/ globalThis.isogateInjected = 1; /*',
  '\u2028globalThis.isogateInjected = 1',
  '\\"; globalThis.isogateInjected = 1; //',
];

describe('fuzz findings', () => {
  afterEach(() => {
    delete g.isogateInjected;
  });

  it("manifest (jazzer's remote-code-execution detector, first run): a publisher's schema strings stay data in ajv's generated code", () => {
    // The finding: ajv compiled `"pattern": "jaz_zer$"` into its validator's source, the detector's
    // whole test. It is a literal there; these payloads would run if one were not.
    const found = parseManifest(readFileSync(new URL('./regressions/manifest/rce-detector-pattern-literal.json', import.meta.url)));
    assert.equal(found.configuration?.schema && typeof found.configuration.schema, 'object');
    for (const payload of BREAKOUTS) {
      const manifest = sampleManifest({
        configuration: {
          schema: {
            type: 'object',
            title: payload,
            description: payload,
            properties: { [payload]: { type: 'string', const: payload, default: payload, pattern: `^${payload.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')}$` } },
            required: [payload],
          },
          defaults: { [payload]: payload },
        },
        endpoints: [
          { name: 'out', direction: 'source', dataType: 'reading', format: 'json', schema: { type: 'object', properties: { [payload]: { enum: [payload] } } } },
        ],
      });
      parseManifest(Buffer.from(JSON.stringify(manifest)));
      assert.equal(g.isogateInjected, undefined, `no code ran from ${JSON.stringify(payload)}`);
    }
  });
});
