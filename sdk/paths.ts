/**
 * Path mistakes (a folder that does not exist, a directory where a file is to be written, a
 * place no directory can be made) are the user's to fix, not internal errors: each is E_PATH
 * with a sentence naming the path and what to do, found before anything is written.
 */
import { constants, promises as fs } from 'node:fs';
import path from 'node:path';
import { fail, type IsogateError } from './errors.js';

/** E_PATH for a failed file-system call on `target`, by what the operating system said. */
export function pathError(error: unknown, target: string, what: string): IsogateError {
  const code = (error as NodeJS.ErrnoException).code;
  const sentence =
    {
      ENOENT: `${what} ${target}: a folder on the way does not exist; create it first or choose a path in an existing folder`,
      ENOTDIR: `${what} ${target}: a part of the path is a file, not a folder; choose another path`,
      EISDIR: `${what} ${target} is a directory; give a file name (for example ${path.join(target, 'FILE')})`,
      EEXIST: `${what} ${target} exists and is not a directory; choose another path`,
      EACCES: `${what} ${target} is not writable by this user (uid ${process.geteuid?.() ?? '?'}); choose a path you may write to`,
      EPERM: `${what} ${target} may not be written here; choose a path you may write to`,
      EROFS: `${what} ${target} is on a read-only file system; choose a writable place`,
    }[code ?? ''] ?? `${what} ${target} cannot be used (${code ?? (error as Error).message}); choose another path`;
  return fail('E_PATH', sentence, { path: target, ...(code ? { errno: code } : {}) });
}

/**
 * Resolves a file to be written and checks, without creating anything, that it can be: its
 * folder exists and is a directory, and the file itself is not one.
 */
export async function checkOutputFile(file: string, what: string, suggestedName = 'FILE'): Promise<string> {
  const target = path.resolve(file);
  const folder = path.dirname(target);
  const folderStat = await fs.stat(folder).catch((error: unknown) => {
    throw pathError(error, target, what);
  });
  if (!folderStat.isDirectory())
    throw fail('E_PATH', `${what} ${target}: ${folder} is a file, not a folder; choose a path in an existing folder`, { path: target });
  const stat = await fs.stat(target).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw pathError(error, target, what);
  });
  if (stat?.isDirectory())
    throw fail('E_PATH', `${what} ${target} is a directory; give a file name (for example ${path.join(target, suggestedName)})`, { path: target });
  if (stat && !stat.isFile()) throw fail('E_PATH', `${what} ${target} exists and is not a regular file; choose another path`, { path: target });
  await fs.access(folder, constants.W_OK).catch((error: unknown) => {
    throw pathError(Object.assign(error as object, { code: 'EACCES' }), target, what);
  });
  return target;
}

/**
 * `mkdir -p`, one level at a time. Not fs.mkdir's `recursive`: on Node 20 it loops for ever
 * where a level cannot be made for a reason other than a missing parent (below /proc, for
 * one). A level that cannot be made is E_PATH naming it, and the levels made before it are
 * removed again, so a failure leaves nothing behind. Returns the levels it made, top first.
 */
export async function makeDirectories(dir: string, what: string, mode = 0o777): Promise<string[]> {
  const absolute = path.resolve(dir);
  const missing: string[] = [];
  for (let at = absolute; !(await exists(at, what)); at = path.dirname(at)) missing.unshift(at);
  const made: string[] = [];
  try {
    for (const level of missing) {
      await fs.mkdir(level, { mode });
      made.push(level);
    }
  } catch (error) {
    for (const level of [...made].reverse()) await fs.rmdir(level).catch(() => undefined);
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    const level = missing[made.length] ?? absolute;
    const why =
      (
        {
          ENOENT: 'the file system there takes no new directories',
          ENOTDIR: 'a part of the path is a file',
          EACCES: 'permission denied',
          EPERM: 'not permitted',
          EROFS: 'a read-only file system',
          ENOSPC: 'no space left',
        } as Record<string, string>
      )[code] ?? code;
    throw fail(
      'E_PATH',
      `${what} ${absolute} cannot be created: making ${level} failed (${why}, ${code}); choose a directory in a writable place, such as below your home directory`,
      { path: absolute, level, errno: code },
    );
  }
  const last = await fs.stat(absolute);
  if (!last.isDirectory()) throw fail('E_PATH', `${what} ${absolute} is a file, not a directory; choose another path`, { path: absolute });
  return made;
}

async function exists(at: string, what: string): Promise<boolean> {
  return fs.lstat(at).then(
    () => true,
    (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return false;
      throw pathError(error, at, what);
    },
  );
}
