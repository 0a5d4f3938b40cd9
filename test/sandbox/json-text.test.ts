/**
 * The guest SDK's JSON text for emitted messages (guest/json-text.ts) is JSON.stringify's, to the
 * character, whichever way it is made: walked with long strings quoted as they are, or not.
 */
import { strict as assert } from 'node:assert';
import { jsonTextEncoder, LONG_STRING } from '../../platform/sandbox/guest/json-text.js';

const long = (unit: string, tail = ''): string => unit.repeat(Math.ceil(LONG_STRING / unit.length) + 10) + tail;

class Reading {
  constructor(readonly note: string) {}
  get shown(): string {
    return 'not own';
  }
}

const withJson = { at: { toJSON: (key: string) => `key was ${JSON.stringify(key)}` }, note: long('t') };
const withProto = JSON.parse(`{"__proto__":{"note":"${long('p')}"},"n":1}`) as unknown;
const nullPrototype = Object.assign(Object.create(null) as Record<string, unknown>, { note: long('n'), n: 2 });
const getter = {
  get note(): string {
    return long('g');
  },
  n: 3,
};
const sparse: unknown[] = [long('s')];
sparse[3] = 1;

const VALUES: [string, unknown][] = [
  ['a long clean string', long('x')],
  ['a long string with quotes and backslashes', long('x', '"quoted" and \\ back')],
  ['a long string with a newline and control characters', long('x', '\n\t\u0000\u001f')],
  ['a long string with non-ASCII and an emoji', long('é中', '😀')],
  ['a long string with a lone surrogate', long('x', '\ud83d')],
  ['a long string with a lone low surrogate first', `\ude00${long('x')}`],
  ['a string one short of long', 'y'.repeat(LONG_STRING - 1)],
  ['the bench shape', { sensor: 'temperature', unit: 'degC', at: '2026-11-25T00:00:00.000Z', note: long('x'), value: 10_000 }],
  ['nested long strings', { a: { b: [long('x'), { c: long('y', '"') }] }, d: [] }],
  ['skipped values', { f: () => 1, u: undefined, s: Symbol('s'), note: long('x'), list: [undefined, () => 1, Symbol('t')] }],
  ['a holey array', sparse],
  ['numbers that are not finite', { a: Number.NaN, b: Number.POSITIVE_INFINITY, c: -0, note: long('x') }],
  ['a toJSON that sees its key', withJson],
  ['a Date', { at: new Date(0), note: long('x') }],
  ['a class instance', new Reading(long('r'))],
  ['boxed primitives', { s: new String(long('b')), n: new Number(1), b: new Boolean(false) }],
  ['a __proto__ own key', withProto],
  ['a null-prototype object', nullPrototype],
  ['a getter', getter],
  ['integer-like keys, in their order', { b: 1, 2: long('x'), 1: 'one', a: 2 }],
  ['top-level primitives', [null, true, 1.5, 'short']],
];

describe('guest JSON text', () => {
  for (const [name, value] of VALUES) {
    it(`is JSON.stringify's for ${name}, walked or not`, () => {
      const expected = JSON.stringify(value);
      for (const walk of [true, false]) assert.equal(jsonTextEncoder().encode(value, walk), expected, `walk: ${walk}`);
    });
  }

  it('says a walk paid off only when it quoted a long string as it is', () => {
    const encoder = jsonTextEncoder();
    const paidOff = (value: unknown, walk = true): boolean => {
      encoder.encode(value, walk);
      return encoder.walkPaidOff;
    };
    assert.equal(paidOff({ note: long('x') }), true);
    assert.equal(paidOff({ note: long('x', '"') }), false);
    assert.equal(paidOff({ note: 'short' }), false);
    assert.equal(paidOff({ note: long('x') }, false), false, 'not walked');
  });

  it('gives undefined where JSON.stringify does', () => {
    for (const value of [undefined, () => 1, Symbol('s')]) assert.equal(jsonTextEncoder().encode(value, true), undefined);
  });

  it('throws a TypeError for a cycle and for a BigInt, as JSON.stringify does', () => {
    const cycle: Record<string, unknown> = { note: long('x') };
    cycle.self = { back: cycle };
    assert.throws(() => jsonTextEncoder().encode(cycle, true), TypeError);
    assert.throws(() => jsonTextEncoder().encode({ n: 1n, note: long('x') }, true), TypeError);
  });

  it('keeps to the builtins it was built with when the app replaces them', () => {
    const encoder = jsonTextEncoder();
    const { exec } = RegExp.prototype;
    const { keys } = Object;
    try {
      RegExp.prototype.exec = () => null;
      Object.keys = () => [];
      assert.equal(encoder.encode({ note: long('x') }, true), JSON.stringify({ note: long('x') }));
    } finally {
      RegExp.prototype.exec = exec;
      Object.keys = keys;
    }
  });
});
