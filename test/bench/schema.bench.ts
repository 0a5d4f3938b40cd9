/**
 * The worst publisher schemas that install (each at SCHEMA_LIMITS.maxCostPerByte), each
 * validating the largest message of an endpoint without its own limit, beside JSON.parse of the
 * same message: the router parses what an app emits and then validates it, on the gateway's
 * thread. Target: validation within the documented bound (sdk/limits.ts), stated as a ratio to
 * parsing; the figures are the worst case a hostile publisher can buy per message.
 */
import { strict as assert } from 'node:assert';
import * as formatsModule from 'ajv-formats/dist/formats.js';
import { PLATFORM_LIMITS } from '../../platform/sandbox/capabilities.js';
import { SCHEMA_LIMITS } from '../../sdk/limits.js';
import { compileUntrustedSchema, schemaCostPerByte } from '../../sdk/schema.js';
import { type BenchResult, compare } from './harness.js';

const { fullFormats } = formatsModule as unknown as { fullFormats: Record<string, RegExp> };
const BYTES = PLATFORM_LIMITS.defaultMaxMessageBytes;
/**
 * Validation may cost this many times parsing: the documented bound (sdk/limits.ts, about 5 us
 * per byte, 24 us on a loaded machine) against JSON.parse's 1 to 10 ns per byte. The aim was
 * 20x; uniqueItems and enum at the bound come within 20 to 50x, but RE2 programs of one size
 * differ a thousandfold in speed, so what the cost model can promise for patterns is this.
 */
const TARGET_RATIO = 20_000;

/** As many variants of `one` in an allOf as the cost bound takes (the same subschema twice is refused). */
const stacked = (one: (i: number) => object, cost: number) => ({
  allOf: Array.from({ length: Math.floor(SCHEMA_LIMITS.maxCostPerByte / cost) }, (_, i) => one(i)),
});

/** An array of small objects filling `bytes` of JSON, all distinct (uniqueItems must read them all). */
function objects(bytes: number): unknown[] {
  const out: unknown[] = [];
  let size = 2;
  for (let i = 0; size < bytes - 40; i += 1) {
    const item = { id: i, v: 'x' };
    size += JSON.stringify(item).length + 1;
    out.push(item);
  }
  return out;
}

/** Arrays four deep, all distinct at every level, filling about `bytes` of JSON. */
function nested(bytes: number): unknown[] {
  const leaves = Math.floor(bytes / 8 / 8 / 8 / 6);
  let next = 0;
  return Array.from({ length: 8 }, () =>
    Array.from({ length: 8 }, () => Array.from({ length: 8 }, () => Array.from({ length: leaves }, () => next++ % 100_000))),
  );
}

interface Case {
  name: string;
  schema: object;
  message: unknown;
}

function cases(): Case[] {
  const uriTemplate = fullFormats['uri-template']!.source;
  const string = 'a'.repeat(BYTES - 2);
  const enumValues = Array.from({ length: Math.floor(SCHEMA_LIMITS.maxCostPerByte / 4) - 5 }, (_, i) => i + 1);
  const last = enumValues.at(-1)!;
  const enumItems = Array.from({ length: Math.floor(BYTES / (String(last).length + 1)) - 1 }, () => last);
  return [
    // uniqueItems applies once per value, so its worst is four nested arrays, each byte read four times.
    {
      name: 'uniqueItems on 4 nested levels',
      schema: { uniqueItems: true, items: { uniqueItems: true, items: { uniqueItems: true, items: { uniqueItems: true } } } },
      message: nested(BYTES),
    },
    { name: 'uniqueItems over objects', schema: { uniqueItems: true }, message: objects(BYTES) },
    { name: 'format uri-template stacked', schema: stacked((i) => ({ format: 'uri-template', $comment: String(i) }), 51), message: string },
    { name: 'pattern uri-template stacked', schema: stacked((i) => ({ pattern: `${'(?:)'.repeat(i)}${uriTemplate}` }), 51), message: string },
    // ipv6 last: the first violation ends validation, so the twelve that pass run first.
    {
      name: '12 uri-template + ipv6 formats',
      schema: { allOf: [...Array.from({ length: 12 }, (_, i) => ({ format: 'uri-template', $comment: String(i) })), { format: 'ipv6' }] },
      message: string,
    },
    { name: 'enum of 495 under items', schema: { type: 'array', items: { enum: enumValues } }, message: enumItems },
  ];
}

export default async function schemaBench(): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  for (const { name, schema, message } of cases()) {
    const cost = schemaCostPerByte(schema, `/bench/${name}`);
    assert.ok(cost <= SCHEMA_LIMITS.maxCostPerByte);
    const validate = compileUntrustedSchema(schema, `/bench/${name}`);
    const json = JSON.stringify(message);
    validate(message);
    const valid = validate(message);
    const timed = (run: () => void) => async () => {
      const start = process.hrtime.bigint();
      run();
      return Number(process.hrtime.bigint() - start) / 1e6;
    };
    const result = await compare({
      name: `schema: ${name}`,
      unit: 'ms per validation',
      baselineName: 'JSON.parse of the message',
      higherIsBetter: false,
      target: 1 / TARGET_RATIO,
      rounds: 5,
      warmupRounds: 1,
      subject: timed(() => validate(message)),
      baseline: timed(() => JSON.parse(json)),
      notes: () => [`cost ${cost} per byte of ${SCHEMA_LIMITS.maxCostPerByte}; message ${json.length} bytes; valid ${valid}`],
    });
    results.push(result);
  }
  return results;
}
