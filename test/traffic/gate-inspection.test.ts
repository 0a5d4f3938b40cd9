import assert from 'node:assert/strict';
import type { AppInspector, InspectItem, TrafficVerdict } from '../../platform/sandbox/bridge.js';
import { CROSSINGS_IN_FLIGHT, InspectionQueue } from '../../platform/traffic/gate-inspection.js';
import type { IsogateError } from '../../sdk/errors.js';
import { waitFor } from '../fixtures/wait.js';

/** An inspector whose crossings the test answers by hand, in any order. */
function manualInspector(): AppInspector & { crossings: { items: InspectItem[]; answer: (v: TrafficVerdict[]) => void; refuse: (e: Error) => void }[] } {
  const crossings: { items: InspectItem[]; answer: (v: TrafficVerdict[]) => void; refuse: (e: Error) => void }[] = [];
  return {
    packageId: 'com.example.inspector',
    canBlock: false,
    crossings,
    inspect(items) {
      return new Promise((answer, refuse) => crossings.push({ items, answer, refuse }));
    },
  };
}

const data = (connection: number, byte: number): InspectItem => ['data', connection, 'to_server', Uint8Array.of(byte), 0];

describe('traffic gate: crossings into the inspector', () => {
  it('keeps two crossings in flight and applies their verdicts in the order they were sent, whichever answers first', async () => {
    const inspector = manualInspector();
    const failures: IsogateError[] = [];
    const queue = new InspectionQueue({ inspector, deadlineMs: 10_000, onFailure: (error) => failures.push(error) });
    const applied: number[] = [];
    queue.push(data(1, 1), (verdict) => applied.push('release' in verdict ? verdict.release : -1));
    await waitFor(() => inspector.crossings.length === 1);
    // Pushed while the first is in flight: it goes at once, as the second crossing.
    queue.push(data(1, 2), (verdict) => applied.push('release' in verdict ? verdict.release : -1));
    await waitFor(() => inspector.crossings.length === 2);
    assert.equal(CROSSINGS_IN_FLIGHT, 2);
    // A third waits for one of the two to come back.
    queue.push(data(1, 3), (verdict) => applied.push('release' in verdict ? verdict.release : -1));
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(inspector.crossings.length, 2);

    inspector.crossings[1]!.answer([{ release: 2 }]);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(applied, [], 'the second crossing waits for the first one');
    inspector.crossings[0]!.answer([{ release: 1 }]);
    await waitFor(() => applied.length === 2);
    assert.deepEqual(applied, [1, 2]);
    await waitFor(() => inspector.crossings.length === 3);
    inspector.crossings[2]!.answer([{ release: 3 }]);
    await waitFor(() => applied.length === 3);
    assert.deepEqual(applied, [1, 2, 3]);
    assert.deepEqual(failures, []);
  });

  it('fails closed once when the first crossing fails, and ignores what the second one answers', async () => {
    const inspector = manualInspector();
    const failures: IsogateError[] = [];
    const queue = new InspectionQueue({ inspector, deadlineMs: 10_000, onFailure: (error) => failures.push(error) });
    const applied: number[] = [];
    queue.push(data(1, 1), () => applied.push(1));
    await waitFor(() => inspector.crossings.length === 1);
    queue.push(data(1, 2), () => applied.push(2));
    await waitFor(() => inspector.crossings.length === 2);
    inspector.crossings[1]!.answer([{ release: 2 }]);
    inspector.crossings[0]!.refuse(Object.assign(new Error('the inspector crashed'), { code: 'E_APP_FAILED' }));
    await waitFor(() => failures.length === 1);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(applied, [], 'nothing after a failed crossing is released');
    assert.equal(queue.stopped, true);
    assert.equal(failures[0]!.code, 'E_APP_FAILED');
  });

  it('counts a crossing that misses the verdict deadline as the inspector not answering, even while another is in flight', async () => {
    const inspector = manualInspector();
    const failures: IsogateError[] = [];
    const queue = new InspectionQueue({ inspector, deadlineMs: 50, onFailure: (error) => failures.push(error) });
    queue.push(data(1, 1), () => undefined);
    await waitFor(() => inspector.crossings.length === 1);
    queue.push(data(1, 2), () => undefined);
    await waitFor(() => failures.length === 1);
    assert.equal(failures[0]!.code, 'E_APP_FAILED');
    assert.match(failures[0]!.message, /did not answer the traffic gate within 50 ms/);
    assert.equal(queue.stopped, true);
  });
});
