/**
 * One gateway per data directory. An exclusive flock(2) on DATA/gateway.lock, taken before
 * anything else in the directory is read or written and held for the gateway's lifetime: the
 * kernel drops it when the process ends however it ends (SIGKILL, a crash, power loss), so no
 * stale lock is ever left to clean up, and a PID in a file is never what decides. The PID the
 * file holds is only there to name the holder in the refusal.
 */
import { closeSync, constants, fstatSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fail } from '../../sdk/errors.js';

export const LOCK_FILE = 'gateway.lock';

interface FsExt {
  flockSync(fd: number, flags: 'sh' | 'ex' | 'shnb' | 'exnb' | 'un'): void;
}
// fs-ext ships no type declarations and is CommonJS; this is the one call used. (libuv opens
// every file O_CLOEXEC, so the lock is not inherited by child processes.)
const { flockSync } = createRequire(import.meta.url)('fs-ext') as FsExt;

export interface DataDirectoryLock {
  readonly file: string;
  release(): void;
}

/** Takes the lock in `dataDir` (already checked by the caller), or refuses with E_DATA_DIR_LOCKED. */
export function lockDataDirectory(dataDir: string): DataDirectoryLock {
  const file = path.join(dataDir, LOCK_FILE);
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  } catch (error) {
    throw fail('E_DATA_DIR_UNSAFE', `The lock file ${file} cannot be opened (${(error as Error).message}); it must be a regular file, not a link`, {
      path: file,
    });
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw fail('E_DATA_DIR_UNSAFE', `The lock file ${file} is not a regular file; remove it`, { path: file });
    // O_NOFOLLOW stops a symbolic link, not a hard link: a lock file that is another name of a
    // file elsewhere would have that file truncated and overwritten with our pid below.
    if (stat.nlink !== 1)
      throw fail(
        'E_DATA_DIR_UNSAFE',
        `The lock file ${file} has ${stat.nlink} names (a hard link to another file); find out who made it, remove it and start again`,
        { path: file },
      );
    try {
      flockSync(fd, 'exnb');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN' && (error as NodeJS.ErrnoException).code !== 'EWOULDBLOCK') throw error;
      const holder = Number.parseInt(readFileSync(fd, 'utf8').trim(), 10);
      throw fail(
        'E_DATA_DIR_LOCKED',
        `Another gateway is using the data directory ${dataDir}${Number.isInteger(holder) ? ` (it wrote pid ${holder} into ${file})` : ''}; stop it first, or give this one another --data`,
        {
          path: dataDir,
          ...(Number.isInteger(holder) ? { pid: holder } : {}),
        },
      );
    }
    ftruncateSync(fd, 0);
    writeSync(fd, `${process.pid}\n`, 0);
  } catch (error) {
    closeSync(fd);
    throw error;
  }
  let held = true;
  return {
    file,
    release: () => {
      if (!held) return;
      held = false;
      // Closing the only descriptor releases the flock; the file stays, so it is never recreated
      // under a lock another process is waiting on.
      closeSync(fd);
    },
  };
}
