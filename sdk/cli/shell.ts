/**
 * What the three command lines (isogate, isogate-sdk, isogate-store) share: bad usage is
 * E_USAGE, and a failure ends as `CODE: sentence` on stderr (plus the error as JSON on stdout
 * with --json), exit 2 for usage and 1 otherwise.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { fail, toIsogateError } from '../errors.js';

export function parseCommandLine<T extends ParseArgsConfig['options']>(args: string[], options: T) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw fail('E_USAGE', (error as Error).message);
  }
}

/** Reports a failure the way every command does; returns the exit code. */
export function reportFailure(error: unknown, json: boolean, usage: string): number {
  const coded = toIsogateError(error);
  if (json) process.stdout.write(`${JSON.stringify({ error: coded.toJSON() }, null, 2)}\n`);
  process.stderr.write(`${coded.code}: ${coded.message}\n`);
  if (coded.code === 'E_USAGE') process.stderr.write(`\n${usage}\n`);
  return coded.code === 'E_USAGE' ? 2 : 1;
}
