/**
 * Opening the data directory, in the one order that is safe: check who can change it and every
 * directory above it, create it 0700 if new, lock it, then bring its format up to date. Nothing
 * else in the directory is read or written before this returns.
 */
import path from 'node:path';
import { fail } from '../../sdk/errors.js';
import { ensureOwnDirectory } from './checks.js';
import { type MigrationResult, migrateDataDirectory } from './format.js';
import { type DataDirectoryLock, lockDataDirectory } from './lock.js';

export { checkAncestors, checkOwnDirectory, currentUid, ensureOwnDirectory } from './checks.js';
export { CURRENT_FORMAT, FORMAT_FILE, MIGRATIONS, type MigrationStep } from './format.js';
export { LOCK_FILE } from './lock.js';

export interface OpenedDataDirectory {
  dataDir: string;
  /** The embedded store's own directory, outside the data directory. */
  storeDir: string;
  migration: MigrationResult;
  lock: DataDirectoryLock;
}

/** `<DATA>-store`, beside the data directory: the embedded store is a party of its own. */
export function defaultStoreDir(dataDir: string): string {
  const absolute = path.resolve(dataDir);
  return path.join(path.dirname(absolute), `${path.basename(absolute)}-store`);
}

export async function openDataDirectory(options: { dataDir: string; storeDir?: string }): Promise<OpenedDataDirectory> {
  const dataDir = await ensureOwnDirectory(options.dataDir, 'the data directory');
  const storeDir = path.resolve(options.storeDir ?? defaultStoreDir(dataDir));
  const inside = (a: string, b: string): boolean => !path.relative(a, b).startsWith('..') && !path.isAbsolute(path.relative(a, b));
  if (inside(dataDir, storeDir) || inside(storeDir, dataDir)) {
    throw fail(
      'E_OPTION',
      `The embedded store's directory ${storeDir} must be outside the data directory ${dataDir} (and not contain it): the store's CA key must not be readable wherever the gateway's data is`,
      { storeDir, dataDir },
    );
  }
  const lock = lockDataDirectory(dataDir);
  try {
    const migration = await migrateDataDirectory({ dataDir, storeDir });
    return { dataDir, storeDir, migration, lock };
  } catch (error) {
    lock.release();
    throw error;
  }
}
