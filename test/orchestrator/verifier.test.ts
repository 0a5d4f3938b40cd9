/**
 * The verification workers' lifetime: started on demand and ended when idle, or, kept warm for
 * developer mode, one started ahead of any push and kept through idle time.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { WorkerPackageVerifier } from '../../platform/orchestrator/index.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { waitFor } from '../fixtures/wait.js';

describe('package verifier workers', () => {
  let dir: string;
  const opened: WorkerPackageVerifier[] = [];
  const verifier = (idleTimeoutMs: number): WorkerPackageVerifier => {
    const made = new WorkerPackageVerifier({ idleTimeoutMs });
    opened.push(made);
    return made;
  };
  /** A verification that fails at once (no such package): what matters is the worker it ran in. */
  const verifyNothing = (of: WorkerPackageVerifier) =>
    of.verify({ file: path.join(dir, 'missing.igp'), extractTo: path.join(dir, 'out'), trustRootsPem: [], allowUnsigned: true, now: Date.now() });

  beforeEach(async () => {
    dir = await makeTempDir('isogate-verifier-');
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((made) => made.close()));
    await removeDir(dir);
  });

  it('kept warm, starts a worker before any verification and keeps it past the idle time that ends a cold one', async () => {
    const cold = verifier(20);
    const warm = verifier(20);
    assert.deepEqual(warm.workerThreadIds(), []);
    warm.keepWarm();
    await waitFor(() => warm.workerThreadIds().length === 1);
    const [thread] = warm.workerThreadIds();
    await assert.rejects(verifyNothing(warm), { code: 'E_PACKAGE_FORMAT' });
    await assert.rejects(verifyNothing(cold), { code: 'E_PACKAGE_FORMAT' });
    assert.equal(cold.workerThreadIds().length, 1);
    // The cold one's worker ending is the clock: the same idle time has passed for the warm one.
    await waitFor(() => cold.workerThreadIds().length === 0);
    assert.deepEqual(warm.workerThreadIds(), [thread]);
    await assert.rejects(verifyNothing(warm), { code: 'E_PACKAGE_FORMAT' });
    assert.deepEqual(warm.workerThreadIds(), [thread], 'the verification ran in the worker started ahead');
  });

  it('kept warm after a cold start, moves on to a warm pool and lets the cold one finish', async () => {
    const made = verifier(60_000);
    await assert.rejects(verifyNothing(made), { code: 'E_PACKAGE_FORMAT' });
    const [coldThread] = made.workerThreadIds();
    made.keepWarm();
    await waitFor(() => made.workerThreadIds().length === 1 && made.workerThreadIds()[0] !== coldThread);
    await assert.rejects(verifyNothing(made), { code: 'E_PACKAGE_FORMAT' });
  });
});
