/**
 * What the three command lines (isogate, isogate-sdk, isogate-store) share: bad usage is
 * E_USAGE, and a failure ends as `CODE: sentence` on stderr (plus the error as JSON on stdout
 * with --json), exit 2 for usage and 1 otherwise.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { fail, toIsogateError } from '../errors.js';
import { escapeControls, safeJson } from '../text.js';

export function parseCommandLine<T extends ParseArgsConfig['options']>(args: string[], options: T) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw fail('E_USAGE', (error as Error).message);
  }
}

/**
 * Machine output: JSON, with what JSON.stringify leaves raw (C1 and bidi controls) escaped too,
 * because `--json` output is read on terminals as well as by programs.
 */
export function printJson(value: unknown): void {
  process.stdout.write(`${safeJson(value, 2)}\n`);
}

/** Reports a failure the way every command does; returns the exit code. */
export function reportFailure(error: unknown, json: boolean, usage: string): number {
  const coded = toIsogateError(error);
  if (json) printJson({ error: coded.toJSON() });
  // A message may quote what a store, a package or an app said.
  process.stderr.write(`${coded.code}: ${escapeControls(coded.message)}\n`);
  if (coded.code === 'E_USAGE') process.stderr.write(`\n${usage}\n`);
  return coded.code === 'E_USAGE' ? 2 : 1;
}
