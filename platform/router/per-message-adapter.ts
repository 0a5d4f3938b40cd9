/**
 * TEMPORARY, until the router takes emit batches itself: hands a checked emit batch to today's
 * per-message `router.emit`, parsing each json message's slice here. Used by platform/main.ts and
 * the test and bench wiring; it goes when the router's emitBatch lands.
 */
import { fail, toIsogateError } from '../../sdk/errors.js';
import type { EndpointDeclaration } from '../../sdk/manifest.js';
import type { CheckedRun, EmitRefusal } from '../sandbox/protocol.js';

export type PerMessageEmit = (endpoint: EndpointDeclaration, message: unknown, json?: string) => void;

export async function emitBatchPerMessage(emit: PerMessageEmit, runs: CheckedRun[]): Promise<EmitRefusal[]> {
  const refusals: EmitRefusal[] = [];
  let index = 0;
  for (const run of runs) {
    const { endpoint } = run;
    const { name, format } = endpoint;
    if ('messages' in run) {
      for (const message of run.messages) attempt(index++, () => emit(endpoint, message));
      continue;
    }
    let offset = 0;
    for (const length of run.lengths) {
      const text = run.text.slice(offset, offset + length);
      offset += length;
      attempt(index++, () => {
        if (format !== 'json') return emit(endpoint, text);
        let message: unknown;
        try {
          message = JSON.parse(text);
        } catch {
          throw fail('E_MESSAGE', `The message on "${name}" is not JSON`);
        }
        emit(endpoint, message, text);
      });
    }
  }
  return refusals;

  function attempt(at: number, send: () => void): void {
    try {
      send();
    } catch (error) {
      const coded = toIsogateError(error);
      refusals.push([at, coded.code, coded.message]);
    }
  }
}
