/**
 * The inspection queue on its own: what crosses, in which order the verdicts are handled with
 * two crossings in flight, and that an inspector's failure stops everything after it.
 */
import { strict as assert } from 'node:assert';
import sinon from 'sinon';
import type { AppInspector, InspectItem, TrafficVerdict } from '../../platform/sandbox/bridge.js';
import { InspectionQueue } from '../../platform/traffic/gate-inspection.js';
import { waitFor } from '../fixtures/wait.js';

const DIRECTION = 'to_server' as const;

interface Crossing {
  items: InspectItem[];
  answer(verdicts: TrafficVerdict[]): void;
  refuse(error: Error): void;
}

/** An inspector whose crossings the test answers by hand, in any order. */
function handInspector(): { inspector: AppInspector; crossings: Crossing[] } {
  const crossings: Crossing[] = [];
  const inspector: AppInspector = {
    packageId: 'com.example.inspector',
    canBlock: false,
    inspect: (items) =>
      new Promise<TrafficVerdict[]>((resolve, reject) => {
        crossings.push({ items, answer: resolve, refuse: reject });
      }),
  };
  return { inspector, crossings };
}

const data = (connection: number, byte: number): InspectItem => ['data', connection, DIRECTION, new Uint8Array([byte]), 0];
const release = (upTo: number): TrafficVerdict => ({ release: upTo });

describe('traffic gate: the inspection queue', () => {
  it('sends the next batch while one is inspected, and handles the verdicts in the order the crossings went', async () => {
    const { inspector, crossings } = handInspector();
    const failures: unknown[] = [];
    const queue = new InspectionQueue({ inspector, deadlineMs: 10_000, onFailure: (error) => failures.push(error) });
    const handled: string[] = [];
    queue.push(data(1, 1), () => handled.push('first'));
    await waitFor(() => crossings.length === 1);
    queue.push(data(1, 2), () => handled.push('second'));
    await waitFor(() => crossings.length === 2);
    queue.push(data(1, 3), () => handled.push('third'));
    // Two in flight: the third waits for a verdict.
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(crossings.length, 2);
    crossings[1]!.answer([release(2)]);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(handled, [], 'the second crossing waits for the first');
    crossings[0]!.answer([release(1)]);
    await waitFor(() => handled.length === 2);
    assert.deepEqual(handled, ['first', 'second']);
    await waitFor(() => crossings.length === 3);
    crossings[2]!.answer([release(3)]);
    await waitFor(() => handled.length === 3);
    assert.deepEqual(handled, ['first', 'second', 'third']);
    assert.deepEqual(failures, []);
    assert.equal(queue.crossings, 3);
  });

  it('splits what waits while nothing is in flight: half crosses at once, the rest right behind it, the verdicts in order', async () => {
    const { inspector, crossings } = handInspector();
    const queue = new InspectionQueue({ inspector, deadlineMs: 10_000, onFailure: () => undefined });
    const handled: number[] = [];
    for (let connection = 1; connection <= 5; connection += 1) queue.push(data(connection, connection), () => handled.push(connection));
    await waitFor(() => crossings.length === 2);
    assert.deepEqual(
      crossings.map((crossing) => crossing.items.map((item) => item[1])),
      [
        [1, 2, 3],
        [4, 5],
      ],
    );
    crossings[1]!.answer([release(1), release(1)]);
    crossings[0]!.answer([release(1), release(1), release(1)]);
    await waitFor(() => handled.length === 5);
    assert.deepEqual(handled, [1, 2, 3, 4, 5]);
    // One alone crosses alone.
    queue.push(data(6, 6), () => handled.push(6));
    await waitFor(() => crossings.length === 3);
    assert.equal(crossings[2]!.items.length, 1);
  });

  it('fails closed when a crossing is refused: the verdicts of the one after it are never handled', async () => {
    const { inspector, crossings } = handInspector();
    const failures: { code: string }[] = [];
    const queue = new InspectionQueue({ inspector, deadlineMs: 10_000, onFailure: (error) => failures.push(error) });
    const handled: string[] = [];
    queue.push(data(1, 1), () => handled.push('first'));
    await waitFor(() => crossings.length === 1);
    queue.push(data(1, 2), () => handled.push('second'));
    await waitFor(() => crossings.length === 2);
    crossings[1]!.answer([release(2)]);
    crossings[0]!.refuse(Object.assign(new Error('forged verdict'), { code: 'E_APP_FAILED' }));
    await waitFor(() => failures.length === 1);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(handled.length, 0, 'the second crossing answered, but after a refused one');
    assert.equal(failures[0]!.code, 'E_APP_FAILED');
    assert.equal(queue.stopped, true);
    queue.push(data(1, 3), () => handled.push('third'));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(crossings.length, 2, 'nothing crosses once stopped');
    assert.equal(handled.length, 0);
  });

  // One timer holds the oldest crossing in flight to the deadline, not one per crossing.
  it('holds each crossing to the deadline from its own start: one answered in time leaves the next its whole time', async () => {
    const clock = sinon.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'performance'] });
    try {
      const { inspector, crossings } = handInspector();
      const failures: { code: string; details: Record<string, unknown> }[] = [];
      const queue = new InspectionQueue({ inspector, deadlineMs: 100, onFailure: (error) => failures.push(error as never) });
      queue.push(data(1, 1), () => undefined);
      await clock.tickAsync(0);
      assert.equal(crossings.length, 1);
      await clock.tickAsync(60);
      queue.push(data(1, 2), () => undefined);
      await clock.tickAsync(0);
      assert.equal(crossings.length, 2);
      crossings[0]!.answer([release(1)]);
      // The first one's deadline has passed, answered: the second has 40 ms left.
      await clock.tickAsync(80);
      assert.equal(failures.length, 0);
      await clock.tickAsync(20);
      assert.equal(failures.length, 1);
      assert.equal(failures[0]!.code, 'E_APP_FAILED');
      assert.equal(failures[0]!.details.notAnswering, true);
      assert.equal(queue.stopped, true);
    } finally {
      clock.restore();
    }
  });

  it('fails closed when the inspector misses the deadline (E_APP_FAILED, not answering)', async () => {
    const { inspector, crossings } = handInspector();
    const failures: { code: string; details: Record<string, unknown> }[] = [];
    const queue = new InspectionQueue({ inspector, deadlineMs: 50, onFailure: (error) => failures.push(error as never) });
    const handled: string[] = [];
    queue.push(data(1, 1), () => handled.push('first'));
    await waitFor(() => failures.length === 1);
    assert.equal(failures[0]!.code, 'E_APP_FAILED');
    assert.equal(failures[0]!.details.notAnswering, true);
    crossings[0]!.answer([release(1)]);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(handled, [], 'a late verdict releases nothing');
  });
});
