/**
 * Runs in a piscina worker thread: unpacking, hashing and signature checks are CPU work that
 * would otherwise stall the gateway's event loop (and every running app's I/O) for the
 * length of an install.
 */
import { toIsogateError } from '../../sdk/errors.js';
import { readPackage } from '../../sdk/package/index.js';
import type { VerifyOutcome, VerifyTask } from './verifier.js';

export default async function verify(task: VerifyTask): Promise<VerifyOutcome> {
  const trust = task.allowUnsigned ? { allowUnsigned: true as const, trustRootsPem: task.trustRootsPem } : { trustRootsPem: task.trustRootsPem };
  try {
    return { ok: true, verified: await readPackage(task.file, { trust, extractTo: task.extractTo, now: new Date(task.now) }) };
  } catch (error) {
    // Structured clone keeps only an Error's message and stack: send the code as data.
    return { ok: false, error: toIsogateError(error).toJSON() };
  }
}
