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

  it("codes the system's full-disk and I/O errors, keeping the original as the cause", () => {
    for (const [errno, code, status] of [
      ['ENOSPC', 'E_STORAGE_FULL', 507],
      ['EDQUOT', 'E_STORAGE_FULL', 507],
      ['EIO', 'E_IO', 500],
      ['EROFS', 'E_IO', 500],
    ] as const) {
      const original = Object.assign(new Error(`${errno}: failed, write`), { code: errno, syscall: 'write' });
      const converted = toIsogateError(original);
      assert.deepEqual([converted.code, converted.status, converted.details], [code, status, { errno, syscall: 'write' }]);
      assert.equal(converted.cause, original);
    }
    assert.equal(toIsogateError(Object.assign(new Error('EBADF: bad file descriptor'), { code: 'EBADF' })).code, 'E_INTERNAL');
  });
});
