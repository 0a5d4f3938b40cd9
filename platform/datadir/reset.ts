/**
 * `isogate reset --factory`: the gateway's stand-in for the manual's "completely reinstalling",
 * the only way out of developer mode. Everything in the data directory is overwritten and
 * removed (device key, configuration, apps, storage, logs, audit, debug service tokens), so
 * nothing issued before it (a developer token, an install record's MAC) is valid after it.
 * The embedded store's directory beside it is the store's, not the gateway's, and stays.
 */
import { lstat } from 'node:fs/promises';
import path from 'node:path';
import { fail } from '../../sdk/errors.js';
import { DataDir, eraseTree } from '../durable/index.js';
import { checkAncestors, checkOwnDirectory } from './checks.js';
import { FORMAT_FILE } from './format.js';
import { LOCK_FILE, lockDataDirectory } from './lock.js';

export async function factoryReset(dataDir: string): Promise<{ dataDir: string; removed: string[] }> {
  const absolute = path.resolve(dataDir);
  const exists = await lstat(absolute).catch(() => undefined);
  if (!exists) throw fail('E_PATH', `There is no data directory ${absolute} to reset`, { path: absolute });
  await checkAncestors(absolute, 'the data directory');
  await checkOwnDirectory(absolute, 'the data directory');
  // A directory that was never a gateway's is refused: a mistyped --data must not wipe a home directory.
  if (!(await lstat(path.join(absolute, FORMAT_FILE)).catch(() => undefined))) {
    throw fail('E_PATH', `${absolute} is not an isogate data directory (it has no ${FORMAT_FILE}); nothing was removed`, { path: absolute });
  }
  // Taken for the whole wipe: a running gateway refuses it, and none can start meanwhile.
  const lock = lockDataDirectory(absolute);
  const data = new DataDir(absolute);
  const removed: string[] = [];
  try {
    for (const { name } of await data.readdir('')) {
      if (name === LOCK_FILE) continue;
      await eraseTree(path.join(absolute, name), data);
      removed.push(name);
    }
  } finally {
    lock.release();
  }
  return { dataDir: absolute, removed: removed.sort() };
}
