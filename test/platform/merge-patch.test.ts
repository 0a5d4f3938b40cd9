import { strict as assert } from 'node:assert';
import { applyMergePatch, patchForKey } from '../../platform/config/merge-patch.js';

describe('JSON Merge Patch (RFC 7396)', () => {
  it("passes the RFC's appendix A examples", () => {
    const cases: [unknown, unknown, unknown][] = [
      [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
      [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
      [{ a: 'b' }, { a: null }, {}],
      [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
      [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
      [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
      [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
      [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
      [
        ['a', 'b'],
        ['c', 'd'],
        ['c', 'd'],
      ],
      [{ a: 'b' }, ['c'], ['c']],
      [{ a: 'foo' }, null, null],
      [{ a: 'foo' }, 'bar', 'bar'],
      [{ e: null }, { a: 1 }, { e: null, a: 1 }],
      [[1, 2], { a: 'b', c: null }, { a: 'b' }],
      [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
    ];
    for (const [target, patch, expected] of cases) assert.deepEqual(applyMergePatch(target, patch), expected, JSON.stringify([target, patch]));
  });

  it('keeps __proto__ from a hostile patch as a plain key, never as the prototype', () => {
    const merged = applyMergePatch({ a: 1 }, JSON.parse('{"__proto__": {"polluted": true}, "b": 2}')) as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(merged), Object.prototype);
    assert.equal((merged as { polluted?: boolean }).polluted, undefined);
    assert.deepEqual(Object.keys(merged), ['a', '__proto__', 'b']);
    assert.equal(({} as { polluted?: boolean }).polluted, undefined);
  });

  it('builds the patch for one dotted key, JSON where it parses and text otherwise', () => {
    assert.deepEqual(patchForKey('limits.temperature.warning', '40'), { limits: { temperature: { warning: 40 } } });
    assert.deepEqual(patchForKey('mode', 'fast'), { mode: 'fast' });
    assert.deepEqual(patchForKey('sensors', '["a","b"]'), { sensors: ['a', 'b'] });
    assert.deepEqual(patchForKey('intervalMs', 'null'), { intervalMs: null });
    assert.throws(() => patchForKey('a..b', '1'), RangeError);
  });
});
