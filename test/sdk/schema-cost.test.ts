/**
 * The cost of a package's schema per byte of message (issue 11, finding 5 follow-up): every
 * keyword that scans the value it checks (format, uniqueItems, enum, const, required, pattern,
 * patternProperties, propertyNames, contains) counts, once for each time it applies, and a
 * schema past SCHEMA_LIMITS.maxCostPerByte is refused at install with E_SCHEMA_LIMIT naming the
 * keyword and its place. No timing here: the bound is asserted as a computed figure, and the
 * time it stands for is measured by test/bench/schema.bench.ts.
 */
import { strict as assert } from 'node:assert';
import { SCHEMA_LIMITS } from '../../sdk/limits.js';
import { validateManifest } from '../../sdk/manifest.js';
import { compileUntrustedSchema, schemaCostPerByte, untrustedFormatCost, untrustedFormatNames } from '../../sdk/schema.js';
import { refusedWith } from '../fixtures/errors.js';
import { sampleManifest } from '../fixtures/packages.js';

const endpointManifest = (schema: Record<string, unknown>) =>
  sampleManifest({
    package_id: 'dev.t.hostile',
    name: 'hostile',
    endpoints: [{ name: 'out', direction: 'source', dataType: 'x', format: 'json', schema }],
  });

describe('the cost of a package schema per byte of message', () => {
  it("refuses the finding's 1990 x uniqueItems endpoint schema at install with E_SCHEMA_LIMIT naming the place", () => {
    const schema = { type: 'array', allOf: Array.from({ length: 1990 }, () => ({ uniqueItems: true })) };
    const manifest = endpointManifest(schema);
    const before = JSON.stringify(manifest);
    assert.throws(() => validateManifest(manifest), refusedWith('E_SCHEMA_LIMIT', /allOf\/1 repeats allOf\/0.*\(at \/endpoints\/0\/schema\/allOf\/1\)/));
    assert.equal(JSON.stringify(manifest), before);
    // Made distinct, the copies are refused all the same: uniqueItems applies once to a value.
    const distinct = { type: 'array', allOf: Array.from({ length: 1000 }, (_, i) => ({ uniqueItems: true, $comment: String(i) })) };
    assert.throws(
      () => validateManifest(endpointManifest(distinct)),
      refusedWith(
        'E_SCHEMA_LIMIT',
        /uniqueItems at \/endpoints\/0\/schema\/allOf\/1\/uniqueItems and at \/endpoints\/0\/schema\/allOf\/0\/uniqueItems apply to the same value/,
      ),
    );
  });

  it('allows uniqueItems once per value, through $ref or not, and on nested arrays each costs its 500', () => {
    assert.throws(
      () => compileUntrustedSchema({ $defs: { u: { uniqueItems: true } }, uniqueItems: true, $ref: '#/$defs/u' }, 'x'),
      refusedWith('E_SCHEMA_LIMIT', /apply to the same value/),
    );
    assert.throws(
      // biome-ignore lint/suspicious/noThenProperty: `then` is JSON Schema's keyword here, not a thenable
      () => compileUntrustedSchema({ if: { uniqueItems: true }, then: { uniqueItems: true, minItems: 1 } }, 'x'),
      refusedWith('E_SCHEMA_LIMIT', /apply to the same value/),
    );
    const nested = { uniqueItems: true, items: { uniqueItems: true, items: { uniqueItems: true, items: { uniqueItems: true } } } };
    assert.equal(schemaCostPerByte(nested, 'x'), 2000);
    assert.throws(
      () => compileUntrustedSchema({ ...nested, items: { ...nested } }, 'x'),
      refusedWith('E_SCHEMA_LIMIT', /costliest check in it is "uniqueItems"/),
    );
  });

  it("refuses the finding's 1990 x format uri-reference schema with E_SCHEMA_LIMIT naming the format", () => {
    const schema = { allOf: Array.from({ length: 1990 }, () => ({ format: 'uri-reference' })) };
    assert.throws(() => compileUntrustedSchema(schema, '/configuration/schema'), refusedWith('E_SCHEMA_LIMIT', /allOf\/1 repeats allOf\/0/));
    const distinct = { allOf: Array.from({ length: 10 }, (_, i) => ({ format: 'uri-reference', $comment: String(i) })) };
    assert.throws(
      () => compileUntrustedSchema(distinct, '/configuration/schema'),
      refusedWith(
        'E_SCHEMA_LIMIT',
        /"allOf" at \/configuration\/schema\/allOf\/3 .*"format: uri-reference" at \/configuration\/schema\/allOf\/0\/format \(660\)/,
      ),
    );
  });

  it('gives every format its RE2 program size (uri-reference 660, ipv6 1373) and counts it each time it applies', () => {
    assert.equal(untrustedFormatCost('uri-reference'), 660);
    assert.equal(untrustedFormatCost('ipv6'), 1373);
    for (const name of untrustedFormatNames()) assert.ok(untrustedFormatCost(name)! <= SCHEMA_LIMITS.maxCostPerByte, name);
    assert.equal(schemaCostPerByte({ format: 'uri-reference' }, 'x'), 660);
    assert.equal(schemaCostPerByte({ allOf: [{ format: 'uri-reference' }, { format: 'uri-reference', type: 'string' }] }, 'x'), 1320);
  });

  it('counts a subschema reached through $ref each time a $ref applies it, and a definition never used not at all', () => {
    const defs = { $defs: { u: { format: 'uri-reference' }, unused: { format: 'ipv6' } } };
    assert.equal(schemaCostPerByte({ ...defs, $ref: '#/$defs/u' }, 'x'), 660);
    assert.equal(schemaCostPerByte({ ...defs, allOf: [{ $ref: '#/$defs/u' }, { $ref: '#/$defs/u', type: 'string' }] }, 'x'), 1320);
    assert.throws(
      () =>
        compileUntrustedSchema(
          {
            ...defs,
            allOf: [{ $ref: '#/$defs/u' }, { $ref: '#/$defs/u', type: 'string' }, { $ref: '#/$defs/u', minLength: 0 }, { $ref: '#/$defs/u', maxLength: 9 }],
          },
          'x',
        ),
      refusedWith('E_SCHEMA_LIMIT', /"allOf" at x\/allOf\/3 /),
    );
  });

  it('adds what applies to one value and takes the costliest of what applies to different members or items', () => {
    // Different properties read different bytes: a record with many URI fields costs one of them.
    const record = {
      type: 'object',
      properties: Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`u${i}`, { type: 'string', format: 'uri-reference' }])),
    };
    assert.equal(schemaCostPerByte(record, 'x'), 660);
    // A member may match every patternProperties expression; keys are read by each expression.
    assert.equal(schemaCostPerByte({ patternProperties: { '^a': { format: 'ipv4' }, '^b': { format: 'ipv4' } } }, 'x'), 2 * untrustedFormatCost('ipv4')!);
    assert.equal(schemaCostPerByte({ items: { format: 'ipv6' }, contains: { format: 'ipv4' } }, 'x'), 1373 + untrustedFormatCost('ipv4')!);
    assert.equal(schemaCostPerByte({ propertyNames: { format: 'ipv6' }, additionalProperties: { format: 'uri-reference' } }, 'x'), 1373);
    assert.throws(
      () => compileUntrustedSchema({ items: { format: 'ipv6' }, contains: { format: 'uri-reference' } }, 'x'),
      refusedWith('E_SCHEMA_LIMIT', /"items" at x\/items .*"format: ipv6" at x\/items\/format/),
    );
  });

  it('counts enum values, const, required names and length counts: an enum of a few thousand values is refused', () => {
    assert.equal(schemaCostPerByte({ enum: [1, 2, 3] }, 'x'), 12);
    assert.equal(schemaCostPerByte({ const: { a: 1 }, required: ['a', 'b'] }, 'x'), 3);
    assert.equal(schemaCostPerByte({ minLength: 1, maxLength: 9, minProperties: 1 }, 'x'), 3);
    const big = { type: 'array', items: { enum: Array.from({ length: 3000 }, (_, i) => i) } };
    assert.throws(
      () => compileUntrustedSchema(big, '/endpoints/0/schema'),
      refusedWith('E_SCHEMA_LIMIT', /"enum" at \/endpoints\/0\/schema\/items\/enum brings it to 12000/),
    );
  });

  it('installs a schema just under the bound, and it validates the largest message an endpoint takes by default', () => {
    const schema = { type: 'array', uniqueItems: true, items: { type: 'integer', enum: Array.from({ length: 375 }, (_, i) => i) } };
    const cost = schemaCostPerByte(schema, 'x');
    assert.equal(cost, 500 + 4 * 375);
    assert.equal(cost, SCHEMA_LIMITS.maxCostPerByte);
    const manifest = validateManifest(endpointManifest(schema));
    const validate = compileUntrustedSchema(manifest.endpoints![0]!.schema as object, '/endpoints/0/schema');
    // Only 375 distinct values fit the enum, so a 256 KB array of them is refused for its duplicates, after reading it whole.
    const distinct = Array.from({ length: 375 }, (_, i) => i);
    assert.equal(validate(distinct), true);
    const large = Array.from({ length: (256 * 1024) / 4 }, (_, i) => i % 375);
    assert.ok(JSON.stringify(large).length <= 256 * 1024);
    assert.equal(validate(large), false);
    assert.equal(validate.errors?.[0]?.keyword, 'uniqueItems');
    // One more enum value and it no longer installs.
    const over = { ...schema, items: { ...schema.items, enum: [...schema.items.enum, 375] } };
    assert.throws(() => validateManifest(endpointManifest(over)), refusedWith('E_SCHEMA_LIMIT', /brings it to 2004/));
  });
});
