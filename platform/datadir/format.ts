/**
 * The data directory's format version, in DATA/format.json (`{ "format": N }`), and the ordered
 * steps that bring an older directory up to it. 0.1.0 wrote no version: a directory without the
 * file is format 1. Each step is idempotent and the version is written durably after each one,
 * so a gateway that crashes in the middle of a migration resumes it at the next start.
 *
 * A change to what is on disk adds a step here (`from` = the current format, `to` = from + 1)
 * and never edits an old one: a directory may have stopped at any of them.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fail } from '../../sdk/errors.js';
import { eraseTree, fsyncTree, readJsonIfExists, renameDurable, writeJsonDurable } from '../durable/index.js';
import { checkAncestors } from './checks.js';
import { LOCK_FILE } from './lock.js';

export const FORMAT_FILE = 'format.json';
/** What 0.1.0 wrote (no format file). */
export const FIRST_FORMAT = 1;

export interface MigrationContext {
  dataDir: string;
  /** Where the embedded store's directory belongs (outside the data directory). */
  storeDir: string;
}

export interface MigrationStep {
  from: number;
  to: number;
  /** One sentence for the audit/start output. */
  description: string;
  run(context: MigrationContext): Promise<void>;
}

async function exists(target: string): Promise<boolean> {
  return fs.lstat(target).then(
    () => true,
    () => false,
  );
}

async function sameFile(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([fs.readFile(a).catch(() => undefined), fs.readFile(b).catch(() => undefined)]);
  return x !== undefined && y !== undefined && x.equals(y);
}

/**
 * 1 -> 2: the embedded store, a separate party holding the root CA's private key, leaves the
 * gateway's data directory (DATA/store) for its own (by default `<DATA>-store`). It moves even
 * when the gateway now uses an external store, so no key is destroyed; it is simply no longer
 * where the gateway's data is.
 */
async function moveEmbeddedStoreOut({ dataDir, storeDir }: MigrationContext): Promise<void> {
  const old = path.join(dataDir, 'store');
  if (!(await exists(old))) return;
  const partial = `${storeDir}.migrating`;
  await checkAncestors(storeDir, "the embedded store's directory");
  if (await exists(storeDir)) {
    // Only a copy this step finished before a crash is taken as the same store.
    if (await sameFile(path.join(old, 'ca', 'root.cert.pem'), path.join(storeDir, 'ca', 'root.cert.pem'))) {
      await eraseTree(old);
      return;
    }
    throw fail(
      'E_MIGRATION',
      `The data directory holds the 0.1.0 embedded store in ${old}, and ${storeDir}, where it moves to, already holds another one; move one of them away (or start with --store-data DIR to name another place) and start again`,
      { from: old, to: storeDir },
    );
  }
  await fs.rm(partial, { recursive: true, force: true });
  try {
    await renameDurable(old, storeDir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
    // Another file system: copy whole, make it durable, rename it into place, then erase the old.
    await fs.cp(old, partial, { recursive: true, errorOnExist: true, force: false, preserveTimestamps: true });
    await fsyncTree(partial);
    await renameDurable(partial, storeDir);
    await eraseTree(old);
  }
}

export const MIGRATIONS: readonly MigrationStep[] = [
  { from: 1, to: 2, description: 'The embedded store moves out of the data directory', run: moveEmbeddedStoreOut },
];

export const CURRENT_FORMAT = MIGRATIONS.reduce((latest, step) => Math.max(latest, step.to), FIRST_FORMAT);

export async function readFormat(dataDir: string): Promise<number> {
  const file = path.join(dataDir, FORMAT_FILE);
  let value: unknown;
  try {
    value = await readJsonIfExists<unknown>(file);
  } catch (error) {
    throw fail('E_DATA_DIR_FORMAT', `${file} cannot be read (${(error as Error).message}); it should hold {"format": N}`, { path: file });
  }
  if (value === undefined) return FIRST_FORMAT;
  const format = (value as { format?: unknown } | null)?.format;
  if (!Number.isSafeInteger(format) || (format as number) < FIRST_FORMAT) {
    throw fail('E_DATA_DIR_FORMAT', `${file} does not hold a format version ({"format": N} with N a whole number from ${FIRST_FORMAT})`, { path: file });
  }
  return format as number;
}

export interface MigrationResult {
  from: number;
  to: number;
  applied: string[];
}

/** Brings the (locked) data directory to CURRENT_FORMAT, or refuses one written by newer code. */
export async function migrateDataDirectory(context: MigrationContext, steps: readonly MigrationStep[] = MIGRATIONS): Promise<MigrationResult> {
  const target = steps.reduce((latest, step) => Math.max(latest, step.to), FIRST_FORMAT);
  const from = await readFormat(context.dataDir);
  if (from > target) {
    throw fail(
      'E_DATA_DIR_FORMAT',
      `The data directory ${context.dataDir} has format ${from}, written by a newer isogate; this one knows formats up to ${target}. Run the newer version, or restore a backup made for this one`,
      { path: context.dataDir, format: from, known: target },
    );
  }
  // A directory this start just created (nothing in it but the lock) is born at the current
  // format: there is nothing to migrate, and saying it was migrated would be wrong.
  if (from === FIRST_FORMAT && (await fs.readdir(context.dataDir)).every((name) => name === LOCK_FILE)) {
    await writeJsonDurable(path.join(context.dataDir, FORMAT_FILE), { format: target }, { mode: 0o600 });
    return { from: target, to: target, applied: [] };
  }
  const applied: string[] = [];
  let format = from;
  while (format < target) {
    const step = steps.find((s) => s.from === format);
    if (!step || step.to !== format + 1) throw fail('E_INTERNAL', `No migration step from data directory format ${format}`);
    await step.run(context);
    await writeJsonDurable(path.join(context.dataDir, FORMAT_FILE), { format: step.to }, { mode: 0o600 });
    applied.push(step.description);
    format = step.to;
  }
  // A new directory gets its version at once, so it is never mistaken for a 0.1.0 one.
  if (!(await exists(path.join(context.dataDir, FORMAT_FILE)))) {
    await writeJsonDurable(path.join(context.dataDir, FORMAT_FILE), { format }, { mode: 0o600 });
  }
  return { from, to: format, applied };
}
