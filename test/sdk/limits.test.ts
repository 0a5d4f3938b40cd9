import { strict as assert } from 'node:assert';
import { jsonDepth } from '../../sdk/limits.js';

describe('jsonDepth', () => {
  it('counts nesting: a scalar is 0, {} and [] are 1, each level one more', () => {
    assert.equal(jsonDepth(7, 32), 0);
    assert.equal(jsonDepth(null, 32), 0);
    assert.equal(jsonDepth({}, 32), 1);
    assert.equal(jsonDepth({ a: [1, { b: 'x' }], c: 2 }, 32), 3);
    assert.equal(jsonDepth([[], [[[]]]], 32), 4);
  });

  it('stops one past the limit, so a value nested a million deep costs only the limit', () => {
    let deep: unknown = 0;
    for (let level = 0; level < 1_000_000; level += 1) deep = [deep];
    assert.equal(jsonDepth(deep, 32), 33);
    assert.equal(jsonDepth({ fine: [[1]], deep }, 32), 33);
  });

  it('counts own keys only, __proto__ from JSON included', () => {
    assert.equal(jsonDepth(JSON.parse('{"__proto__": {"x": {}}}'), 32), 3);
  });
});
