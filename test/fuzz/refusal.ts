/**
 * What bad input may get from a parser: a refusal with a code of the one registry (a clear
 * error, the rule of the whole code base). Anything else thrown (a TypeError, a RangeError from
 * a bad offset, an uncoded Error) is a finding, so the fuzz targets rethrow it for jazzer.
 */
import { isErrorCode } from '../../sdk/errors.js';

export function refused(error: unknown): void {
  if (error instanceof Error && isErrorCode((error as { code?: unknown }).code)) return;
  throw error;
}

/** A finding that is not an exception: a parser broke one of its own promises. */
export function broken(what: string): never {
  throw new Error(`fuzz invariant broken: ${what}`);
}
