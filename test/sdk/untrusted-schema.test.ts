/**
 * Schemas and regular expressions from packages (issue 11, finding 5): every pattern runs on
 * RE2 in linear time; what RE2 cannot run, formats the gateway does not check and schemas that
 * expand without bound are refused with their own codes, naming the place.
 */
import { strict as assert } from 'node:assert';
import { SCHEMA_LIMITS } from '../../sdk/limits.js';
import { validateManifest } from '../../sdk/manifest.js';
import { compileUntrustedRegExp, compileUntrustedSchema, untrustedFormatNames } from '../../sdk/schema.js';
import { refusedWith } from '../fixtures/errors.js';
import { sampleManifest } from '../fixtures/packages.js';

/** The finding's input: 28 "a"s and a "!" make a backtracking engine try 2^28 ways. */
const CATASTROPHIC = `${'a'.repeat(28)}!`;

describe('schemas from packages', () => {
  it('runs ^(a+)+$ on the linear-time engine: the 29-character input is simply refused', () => {
    const validate = compileUntrustedSchema({ type: 'object', properties: { s: { type: 'string', pattern: '^(a+)+$' } } }, '/endpoints/0/schema');
    assert.equal(validate({ s: CATASTROPHIC }), false);
    assert.equal(validate.errors?.[0]?.keyword, 'pattern');
    assert.equal(validate({ s: 'aaaa' }), true);
  });

  it('runs patternProperties and propertyNames patterns on the same engine', () => {
    const validate = compileUntrustedSchema(
      {
        type: 'object',
        patternProperties: { '^(a+)+$': { type: 'number' } },
        propertyNames: { pattern: '^(b|a+)+$' },
      },
      'x',
    );
    assert.equal(validate({ [CATASTROPHIC]: 1 }), false);
    assert.equal(validate({ aaa: 'not a number' }), false);
    assert.equal(validate({ aaa: 1 }), true);
  });

  it('refuses lookahead and backreferences with E_SCHEMA_PATTERN naming the place', () => {
    assert.throws(
      () => compileUntrustedSchema({ properties: { host: { type: 'string', pattern: '^(?=.{1,9}$)[a-z]+$' } } }, '/configuration/schema'),
      refusedWith('E_SCHEMA_PATTERN', /\/configuration\/schema\/properties\/host\/pattern/),
    );
    assert.throws(
      () => compileUntrustedSchema({ patternProperties: { '^(a)\\1$': {} } }, '/endpoints/1/schema'),
      refusedWith('E_SCHEMA_PATTERN', /\/endpoints\/1\/schema\/patternProperties\/\^\(a\)\\1\$/),
    );
  });

  it('refuses a pattern whose RE2 program is past the bound, and patterns that together are', () => {
    const pattern = `^${'[a-z]{1000}'.repeat(2)}$`;
    assert.throws(() => compileUntrustedSchema({ pattern }, 'x'), refusedWith('E_SCHEMA_PATTERN', /RE2 instructions/));
    // Each within the bound, together past the schema's: they would all run on the same string.
    const stacked = { allOf: Array.from({ length: 5 }, (_, i) => ({ pattern: `[a-z]{${500 + i}}` })) };
    assert.throws(
      () => compileUntrustedSchema(stacked, 'x'),
      refusedWith('E_SCHEMA_LIMIT', new RegExp(`cost more than ${SCHEMA_LIMITS.maxCostPerByte} per byte of message.*"allOf" at x/allOf/3`)),
    );
  });

  it('refuses recursive and outside references, and references that expand past the bound, with E_SCHEMA_LIMIT', () => {
    assert.throws(
      () => compileUntrustedSchema({ type: 'array', items: { anyOf: [{ $ref: '#' }, { type: 'number' }] } }, 'x'),
      refusedWith('E_SCHEMA_LIMIT', /recursive/),
    );
    assert.throws(
      () => compileUntrustedSchema({ $defs: { a: { $ref: '#/$defs/b' }, b: { items: { $ref: '#/$defs/a' } } }, $ref: '#/$defs/a' }, 'x'),
      refusedWith('E_SCHEMA_LIMIT', /recursive/),
    );
    assert.throws(() => compileUntrustedSchema({ $ref: 'https://isogate.dev/schemas/config.schema.json' }, 'x'), refusedWith('E_SCHEMA_LIMIT', /only "#"/));
    // 40 definitions, each twice the one before: a 2 KB schema standing for 2^40 subschemas.
    const $defs: Record<string, unknown> = { d0: { type: 'string' } };
    for (let i = 1; i < 40; i += 1) $defs[`d${i}`] = { allOf: [{ $ref: `#/$defs/d${i - 1}` }, { $ref: `#/$defs/d${i - 1}`, $comment: 'twice' }] };
    assert.throws(
      () => compileUntrustedSchema({ $defs, $ref: '#/$defs/d39' }, 'x'),
      refusedWith('E_SCHEMA_LIMIT', new RegExp(`more than ${SCHEMA_LIMITS.maxExpandedNodes} subschemas`)),
    );
  });

  it('refuses a schema deeper or larger than the bound with E_SCHEMA_LIMIT', () => {
    let deep: Record<string, unknown> = { type: 'number' };
    for (let i = 0; i < 200; i += 1) deep = { type: 'object', properties: { x: deep } };
    assert.throws(() => compileUntrustedSchema(deep, 'x'), refusedWith('E_SCHEMA_LIMIT', /nests deeper/));
    const wide = { enum: Array.from({ length: 10_000 }, (_, i) => `value-${i}`) };
    assert.throws(() => compileUntrustedSchema(wide, 'x'), refusedWith('E_SCHEMA_LIMIT', /bytes as JSON/));
  });

  it('checks only the formats it offers, each on safe code; url and unknown formats are E_SCHEMA_FORMAT', () => {
    const samples: Record<string, [unknown, unknown]> = {
      date: ['2024-02-29', '2023-02-29'],
      time: ['12:30:00Z', '25:00:00Z'],
      'date-time': ['2024-01-01T00:00:00Z', '2024-01-01'],
      email: ['a@example.com', 'a@'],
      hostname: ['gw.example.com', '-bad-.example'],
      ipv4: ['10.1.2.3', '10.1.2.300'],
      ipv6: ['::1', '1::2::3'],
      uuid: ['123e4567-e89b-12d3-a456-426614174000', '123'],
      uri: ['https://example.com/a?b#c', 'no scheme'],
      'uri-reference': ['/a/b', 'a b'],
      duration: ['P1DT2H', 'PT'],
      byte: ['aGk=', 'a'],
      'json-pointer': ['/a/b', 'a'],
      int32: [5, 2 ** 40],
    };
    for (const [format, [good, bad]] of Object.entries(samples)) {
      assert.ok(untrustedFormatNames().includes(format), format);
      const validate = compileUntrustedSchema({ format }, `format ${format}`);
      assert.equal(validate(good), true, `${format} accepts ${String(good)}`);
      assert.equal(validate(bad), false, `${format} refuses ${String(bad)}`);
    }
    assert.throws(
      () => compileUntrustedSchema({ properties: { link: { format: 'url' } } }, '/endpoints/0/schema'),
      refusedWith('E_SCHEMA_FORMAT', /\/endpoints\/0\/schema\/properties\/link\/format/),
    );
    assert.throws(() => compileUntrustedSchema({ format: 'credit-card' }, 'x'), refusedWith('E_SCHEMA_FORMAT'));
  });

  it('keeps uniqueItems linear and JSON-equal: key order does not make two objects different', () => {
    const validate = compileUntrustedSchema({ type: 'array', uniqueItems: true }, 'x');
    assert.equal(
      validate([
        { a: 1, b: [1, 2] },
        { b: [1, 2], a: 1 },
      ]),
      false,
    );
    assert.equal(validate(Array.from({ length: 20_000 }, (_, i) => ({ i }))), true);
  });

  it('counts maxLength and minLength in code points, a pair as one and a lone surrogate as one, as ajv does', () => {
    const validate = compileUntrustedSchema({ type: 'string', minLength: 2, maxLength: 3 }, 'of the test');
    const cases: [string, boolean][] = [
      ['a', false],
      ['ab', true],
      ['abc', true],
      ['abcd', false],
      ['\u{1F600}', false],
      ['\u{1F600}\u{1F600}\u{1F600}', true],
      ['\u{1F600}\u{1F600}\u{1F600}\u{1F600}', false],
      ['\ud800', false],
      ['\ud800\ud800', true],
      ['\udc00\ud800x', true],
      ['\u{1F600}\u{1F600}\u{1F600}\ud800', false],
    ];
    for (const [text, valid] of cases) assert.equal(validate(text), valid, JSON.stringify(text));
    validate('abcd');
    assert.equal(validate.errors?.[0]?.message, 'must NOT have more than 3 characters');
    validate('a');
    assert.deepEqual(validate.errors?.[0]?.params, { limit: 2 });
  });

  it('compiles a schema object once', () => {
    const schema = { type: 'object', properties: { v: { type: 'number' } } };
    assert.equal(compileUntrustedSchema(schema, 'x'), compileUntrustedSchema(schema, 'x'));
  });

  it('lets two packages use the same $id without meeting', () => {
    const first = compileUntrustedSchema({ $id: 'https://example.com/s', type: 'number' }, 'a');
    const second = compileUntrustedSchema({ $id: 'https://example.com/s', type: 'string' }, 'b');
    assert.equal(first(1), true);
    assert.equal(second(1), false);
  });

  it('refuses, in a manifest, a lookahead pattern with E_SCHEMA_PATTERN and a schema nested in a too-deep manifest with E_DOCUMENT_LIMIT', () => {
    const manifest = sampleManifest({
      endpoints: [{ name: 'out', direction: 'source', dataType: 'x', format: 'json', schema: { type: 'string', pattern: '^(?!admin).*$' } }],
    });
    assert.throws(() => validateManifest(manifest), refusedWith('E_SCHEMA_PATTERN', /\/endpoints\/0\/schema\/pattern/));
    let deep: unknown = 1;
    for (let i = 0; i < 2000; i += 1) deep = [deep];
    assert.throws(() => validateManifest({ ...sampleManifest(), description: deep }), refusedWith('E_DOCUMENT_LIMIT'));
  });

  it("checks configuration defaults on the linear-time engine: the finding's defaults are E_MANIFEST, refused at once", () => {
    const manifest = sampleManifest({
      configuration: { schema: { type: 'object', properties: { s: { type: 'string', pattern: '^(a+)+$' } } }, defaults: { s: CATASTROPHIC } },
    });
    assert.throws(() => validateManifest(manifest), refusedWith('E_MANIFEST', /\/configuration\/defaults/));
  });
});

describe('compileUntrustedRegExp', () => {
  it('matches anywhere as RegExp.test does, with i, m, s and u', () => {
    assert.equal(compileUntrustedRegExp('b').test('abc'), true);
    assert.equal(compileUntrustedRegExp('^B$', 'im').test('a\nb'), true);
    assert.equal(compileUntrustedRegExp('a.c', 's').test('a\nc'), true);
    assert.equal(compileUntrustedRegExp('a.c').test('a\nc'), false);
    assert.equal(compileUntrustedRegExp('^(a+)+$', 'u').test(CATASTROPHIC), false);
  });

  it('reads ECMAScript code point escapes', () => {
    const printable = compileUntrustedRegExp('^[^\\u0000-\\u001f\\u{7f}]+$');
    assert.equal(printable.test('ok'), true);
    assert.equal(printable.test('no\u0007'), false);
    assert.equal(compileUntrustedRegExp('\\\\u0041').test('\\u0041'), true, 'an escaped backslash before u is a backslash');
  });

  it('refuses what RE2 cannot run and unknown flags with E_SCHEMA_PATTERN', () => {
    for (const [source, flags] of [
      ['(?<=a)b', ''],
      ['(a)\\1', ''],
      ['a', 'g'],
      ['a', 'y'],
    ] as const) {
      assert.throws(() => compileUntrustedRegExp(source, flags), refusedWith('E_SCHEMA_PATTERN'), `/${source}/${flags}`);
    }
  });
});

describe('compiling a package schema once per schema text', () => {
  it('gives the validator compiled for the same text to a new parse of it, and checks each new text', () => {
    const text = JSON.stringify({ type: 'object', required: ['value'], properties: { value: { type: 'number', maximum: 7 } } });
    const first = compileUntrustedSchema(JSON.parse(text), '/first');
    const again = compileUntrustedSchema(JSON.parse(text), '/again');
    assert.equal(again, first, 'a new object of the same text is not compiled again');
    assert.equal(again({ value: 8 }), false);
    assert.equal(again({ value: 7 }), true);
    const other = compileUntrustedSchema(JSON.parse(text.replace('7', '9')), '/other');
    assert.notEqual(other, first);
    assert.equal(other({ value: 8 }), true);
    // A hostile text is refused every time, cached nowhere.
    for (let i = 0; i < 2; i += 1) {
      assert.throws(() => compileUntrustedSchema({ type: 'string', pattern: '(a)\\1' }, '/hostile'), refusedWith('E_SCHEMA_PATTERN'));
    }
  });
});
