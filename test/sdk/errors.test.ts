import { strict as assert } from 'node:assert';
import { ERROR_CODES, fail, toIsogateError } from '../../sdk/errors.js';

describe('error registry', () => {
  it('keeps an unknown error as the cause of its E_INTERNAL, stack included', () => {
    const original = new TypeError('x is not a function');
    const converted = toIsogateError(original);
    assert.equal(converted.code, 'E_INTERNAL');
    assert.equal(converted.message, 'x is not a function');
    assert.equal(converted.cause, original);
    assert.match(String((converted.cause as Error).stack), /TypeError: x is not a function/);
  });

  it('keeps a code that crossed a boundary as plain data, and its status from the registry', () => {
    const crossed = JSON.parse(JSON.stringify(fail('E_RANGE', 'outside', { size: 3 }))) as unknown;
    const converted = toIsogateError(crossed);
    assert.deepEqual(converted.toJSON(), { code: 'E_RANGE', message: 'outside', details: { size: 3 } });
    assert.equal(converted.status, ERROR_CODES.E_RANGE.status);
  });
});
