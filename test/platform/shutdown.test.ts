import assert from 'node:assert/strict';
import { describeCloseFailures, ShutdownSequence } from '../../platform/bootstrap/shutdown.js';
import { fail, isIsogateError } from '../../sdk/errors.js';

describe('shutdown sequence', () => {
  it('runs the registered steps in the declared order, not the order they were registered in, skipping parts never opened', async () => {
    const ran: string[] = [];
    const sequence = new ShutdownSequence(['socket', 'apps', 'store', 'lock'] as const);
    sequence.set('lock', () => {
      ran.push('lock');
    });
    sequence.set('store', async () => {
      ran.push('store');
    });
    sequence.set('socket', async () => {
      ran.push('socket');
    });
    assert.deepEqual(await sequence.close(), []);
    assert.deepEqual(ran, ['socket', 'store', 'lock']);
  });

  it('reports each failing step by name with its code and still runs the others', async () => {
    const ran: string[] = [];
    const sequence = new ShutdownSequence(['a', 'b', 'c'] as const);
    sequence.set('a', async () => {
      ran.push('a');
      throw fail('E_SHUTDOWN', 'one app did not stop');
    });
    sequence.set('b', () => {
      ran.push('b');
      throw new Error('EBADF: bad file descriptor');
    });
    sequence.set('c', async () => {
      ran.push('c');
    });
    const failures = await sequence.close();
    assert.deepEqual(ran, ['a', 'b', 'c']);
    assert.deepEqual(failures, [
      { subsystem: 'a', code: 'E_SHUTDOWN', message: 'one app did not stop' },
      { subsystem: 'b', code: 'E_INTERNAL', message: 'EBADF: bad file descriptor' },
    ]);
    assert.equal(describeCloseFailures(failures), 'a: E_SHUTDOWN: one app did not stop; b: E_INTERNAL: EBADF: bad file descriptor');
  });

  it('closes once: a second close while the first runs waits for it and runs nothing again', async () => {
    let runs = 0;
    let release!: () => void;
    const sequence = new ShutdownSequence(['slow', 'after'] as const);
    sequence.set(
      'slow',
      () =>
        new Promise<void>((resolve) => {
          runs += 1;
          release = resolve;
        }),
    );
    let afterRan = false;
    sequence.set('after', () => {
      afterRan = true;
    });
    const first = sequence.close();
    let secondSettled = false;
    const second = sequence.close().then((failures) => {
      secondSettled = true;
      return failures;
    });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(secondSettled, false, 'the second close waits for the first');
    release();
    assert.deepEqual(await second, await first);
    assert.ok(afterRan);
    assert.equal(runs, 1);
    await sequence.close();
    assert.equal(runs, 1);
  });

  it('refuses a part registered twice, or once closing has begun (it would outlive the close), and an order naming a part twice', async () => {
    const sequence = new ShutdownSequence(['a', 'b'] as const);
    sequence.set('a', () => undefined);
    assert.throws(
      () => sequence.set('a', () => undefined),
      (error: unknown) => isIsogateError(error, 'E_INTERNAL') && /a has a closing step already/.test(error.message),
    );
    const closing = sequence.close();
    assert.throws(
      () => sequence.set('b', () => undefined),
      (error: unknown) => isIsogateError(error, 'E_INTERNAL') && /b opened while the gateway was closing/.test(error.message),
    );
    await closing;
    assert.throws(
      () => new ShutdownSequence(['a', 'a']),
      (error: unknown) => isIsogateError(error, 'E_OPTION'),
    );
  });
});
