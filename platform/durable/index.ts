/**
 * Durable, atomic file-system writes: the one helper every subsystem uses for state that must
 * survive a crash (configuration, installs, storage records, integrity records).
 *
 * The recipe is the classic one: write a temporary file beside the target, fsync it, rename it
 * over the target, fsync the directory so the rename itself is on disk. A crash at any instant
 * leaves either the previous or the next content, never a mix.
 *
 * Every path goes through DataDir (safe-path.ts), so none of these follows a link planted in
 * the data directory: writing, renaming, syncing and erasing refuse one with E_UNSAFE_PATH.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fail } from '../../sdk/errors.js';
import { DataDir } from './safe-path.js';

export { DataDir } from './safe-path.js';

/**
 * Where a path is checked from. Subsystems pass their DataDir, so every component below the
 * data directory is checked; without one, only the path's last component is (for files that
 * are not in the data directory: the SDK's output, the store's folder), and it is still never
 * followed if it is a link.
 */
function locate(target: string, root: DataDir | undefined): { dir: DataDir; relative: string } {
  if (root) return { dir: root, relative: root.relative(target) };
  const full = path.resolve(target);
  return { dir: new DataDir(path.dirname(full)), relative: path.basename(full) };
}

export async function fsyncDirectory(dir: string, root?: DataDir): Promise<void> {
  if (root) {
    await root.syncDirectory(root.relative(dir));
    return;
  }
  await new DataDir(path.resolve(dir)).syncDirectory();
}

function temporaryPathBeside(relative: string): string {
  return path.join(path.dirname(relative), `.${path.basename(relative)}.${randomBytes(6).toString('hex')}.tmp`);
}

/** The name `temporaryPathBeside` gives (and the device key's own temporary): nothing else matches. */
const TEMPORARY_NAME = /^\..+\.[0-9a-f]{12}\.tmp$/;

/**
 * Removes the temporaries of atomic writes a crash interrupted (issue 17 found 29 in one
 * directory). Only below `root`, never through a link (a link is not a directory here and is
 * not descended into), and never below `skip`: the trees the orchestrator reconciles itself,
 * where an app's own files live and a name alone proves nothing. Called at start-up, with the
 * data directory locked, so no write of this gateway is under way. Returns what it removed.
 */
export async function removeStaleTemporaries(root: DataDir, skip: readonly string[] = []): Promise<string[]> {
  const removed: string[] = [];
  const walk = async (relative: string): Promise<void> => {
    for (const entry of await root.readdir(relative)) {
      const child = path.join(relative, entry.name);
      if (entry.isDirectory()) {
        if (!skip.includes(child)) await walk(child);
      } else if (entry.isFile() && TEMPORARY_NAME.test(entry.name)) {
        await root.remove(child);
        removed.push(child);
      }
    }
  };
  await walk('');
  const dirs = new Set(removed.map((file) => path.dirname(file)));
  for (const dir of dirs) await root.syncDirectory(dir === '.' ? '' : dir);
  return removed;
}

export interface WriteOptions {
  /** File mode for a new file; secrets use 0o600. */
  mode?: number;
  /** The data-directory folder `target` lies in, checked from its root down. */
  root?: DataDir;
}

export async function writeFileDurable(target: string, data: string | Uint8Array, options: WriteOptions = {}): Promise<void> {
  const { dir, relative } = locate(target, options.root);
  const temporary = temporaryPathBeside(relative);
  const handle = await dir.open(temporary, 'wx', options.mode ?? 0o644);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await dir.remove(temporary).catch(() => undefined);
    throw error;
  }
  await handle.close();
  try {
    await dir.rename(temporary, relative);
  } catch (error) {
    await dir.remove(temporary).catch(() => undefined);
    throw error;
  }
  await dir.syncDirectory(path.dirname(relative));
}

export async function writeJsonDurable(target: string, value: unknown, options: WriteOptions = {}): Promise<void> {
  await writeFileDurable(target, `${JSON.stringify(value, null, 2)}\n`, options);
}

/** Renames and makes the rename durable in both directories; neither end may be a link. */
export async function renameDurable(from: string, to: string, root?: DataDir): Promise<void> {
  if (root) {
    const source = root.relative(from);
    const target = root.relative(to);
    await root.rename(source, target);
    await root.syncDirectory(path.dirname(target));
    if (path.dirname(source) !== path.dirname(target)) await root.syncDirectory(path.dirname(source));
    return;
  }
  const source = locate(from, undefined);
  const target = locate(to, undefined);
  for (const end of [source, target]) {
    if ((await end.dir.lstat(end.relative))?.isSymbolicLink()) {
      throw fail('E_UNSAFE_PATH', `${end.dir.path(end.relative)} is a symbolic link; it is not renamed over or moved`, { path: end.dir.path(end.relative) });
    }
  }
  await fs.rename(source.dir.path(source.relative), target.dir.path(target.relative));
  await target.dir.syncDirectory();
  if (source.dir.path() !== target.dir.path()) await source.dir.syncDirectory();
}

/** How many fsyncs fsyncTree keeps in flight: enough for the file system to commit them together, few enough for the descriptor limit. */
const TREE_SYNCS_IN_FLIGHT = 8;

/**
 * fsyncs every file and directory below `root` (for a staged tree before it is renamed in); a
 * link in it is refused. Every file and directory is synced side by side: one after
 * another, each fsync waited for its own journal commit (a 400 KB bundle and its three small
 * neighbours took 18 to 27 ms here; side by side, 4 to 13 ms), and nothing reads the tree
 * before all of them are done.
 */
export async function fsyncTree(tree: string, root?: DataDir): Promise<void> {
  const dir = root ? root.sub(root.relative(tree)) : DataDir.of(tree);
  const files: string[] = [];
  const directories: string[] = [];
  const walk = async (relative: string): Promise<void> => {
    for (const entry of await dir.readdir(relative)) {
      const child = path.join(relative, entry.name);
      if (entry.isDirectory()) await walk(child);
      else files.push(child);
    }
    directories.push(relative);
  };
  await walk('');
  const syncFile = async (relative: string): Promise<void> => {
    const handle = await dir.open(relative, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  };
  // Files and directories in one pass: a directory's entries and its files' data are made
  // durable by separate fsyncs that need no order between them, only all done before the rename.
  const syncs = [...files.map((relative) => () => syncFile(relative)), ...directories.map((relative) => () => dir.syncDirectory(relative))];
  await inParallel(syncs, TREE_SYNCS_IN_FLIGHT, (sync) => sync());
}

/** `work` for every item, at most `limit` at once; the first failure is thrown once all have settled. */
async function inParallel<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await work(items[next++]!);
  });
  const settled = await Promise.allSettled(lanes);
  const failed = settled.find((outcome) => outcome.status === 'rejected');
  if (failed) throw (failed as PromiseRejectedResult).reason;
}

/**
 * Deletes a file after overwriting its content twice (ones, then zeros), as the manual's
 * "Processing and storing data" section describes for deleted objects. On journalling or
 * copy-on-write file systems this is best effort; the storage is encrypted anyway, so the
 * overwrite is a second line of defence. A link is refused, never followed.
 */
export async function eraseFile(file: string, root?: DataDir): Promise<void> {
  const { dir, relative } = locate(file, root);
  await dir.remove(relative, { overwrite: true });
}

/** Erases every regular file below `tree`, then removes the tree; a link anywhere in it is refused first. */
export async function eraseTree(tree: string, root?: DataDir): Promise<void> {
  const { dir, relative } = locate(tree, root);
  await dir.remove(relative, { overwrite: true });
}

export async function readJsonIfExists<T>(file: string, root?: DataDir): Promise<T | undefined> {
  const { dir, relative } = locate(file, root);
  const bytes = await dir.readFile(relative);
  return bytes === undefined ? undefined : (JSON.parse(bytes.toString('utf8')) as T);
}

/** Serialises async critical sections (one writer per document). */
export class Mutex {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(work: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(work, work);
    this.#tail = result.catch(() => undefined);
    return result;
  }
}
