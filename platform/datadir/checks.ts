/**
 * Who may change the data directory. Everything the gateway trusts (its device key, its
 * installed apps, its control socket) lives below it, so anyone who can write to it, or to any
 * directory above it, can swap those for their own: the rule is checked before anything in
 * it is read or written, by the gateway at start and by the CLI before it talks to the socket.
 *
 * The rule, for a directory D the gateway is to use:
 *  1. D is a directory owned by the gateway's user, not writable by group or others.
 *  2. Every directory above D, up to `/` (not only up to the first root-owned one: whoever can
 *     write a grandparent can rename a root-owned parent away and put their own in its place),
 *     is owned by the gateway's user or root, and
 *  3. is not writable by group or others, unless it has the sticky bit (like `/tmp`): there
 *     only an entry's owner may rename or remove it, so a sticky directory is accepted when
 *     the next directory down the path is owned by the gateway's user or root. A sticky
 *     directory does not make D itself acceptable: rule 1 applies to D always.
 *  4. Symbolic links on the way are resolved and the rule applies to both the path as given
 *     and the real path, so a link cannot lead around it.
 */
import { promises as fs, type Stats } from 'node:fs';
import path from 'node:path';
import { fail } from '../../sdk/errors.js';
import { makeDirectories } from '../../sdk/paths.js';

const GROUP_OTHER_WRITE = 0o022;
const STICKY = 0o1000;

export function currentUid(): number {
  return process.geteuid?.() ?? 0;
}

function modeText(stat: Stats): string {
  return (stat.mode & 0o7777).toString(8).padStart(4, '0');
}

async function lstatOrUndefined(target: string): Promise<Stats | undefined> {
  return fs.lstat(target).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    // A file where a folder of the path belongs is a mistake in the path given, not a threat.
    if (error.code === 'ENOTDIR') throw fail('E_PATH', `${target}: a part of this path is a file, not a directory; choose another place`, { path: target });
    throw fail('E_DATA_DIR_UNSAFE', `${target} cannot be examined: ${error.message}`, { path: target });
  });
}

/** The directories from `dir`'s parent up to `/`, nearest first. */
function ancestorsOf(dir: string): string[] {
  const result: string[] = [];
  let current = dir;
  while (path.dirname(current) !== current) {
    current = path.dirname(current);
    result.push(current);
  }
  return result;
}

/**
 * Checks rules 2-4 for the directories above `dir` (which need not exist yet). `what` names the
 * directory in the sentence ("the data directory", "the embedded store's directory").
 */
export async function checkAncestors(dir: string, what: string, uid = currentUid()): Promise<void> {
  const absolute = path.resolve(dir);
  const chains = [absolute];
  // The real path of the nearest existing ancestor, with the rest of the path appended.
  let existing = absolute;
  while (!(await lstatOrUndefined(existing)) && path.dirname(existing) !== existing) existing = path.dirname(existing);
  const resolved = await fs.realpath(existing).catch((error: NodeJS.ErrnoException) => {
    throw fail(
      'E_DATA_DIR_UNSAFE',
      `${existing}, on the way to ${what}, cannot be resolved (${error.code === 'ENOENT' ? 'a link to nothing' : error.message}); give the real path`,
      { path: existing },
    );
  });
  const real = path.join(resolved, path.relative(existing, absolute));
  if (real !== absolute) chains.push(real);

  for (const chain of chains) {
    let below: Stats | undefined = await lstatOrUndefined(chain);
    let belowPath = chain;
    for (const ancestor of ancestorsOf(chain)) {
      const stat = await lstatOrUndefined(ancestor);
      if (!stat) {
        below = undefined;
        belowPath = ancestor;
        continue;
      }
      // A link's own owner and mode mean nothing; the directory holding it is checked next, and
      // where it leads is checked as the real path.
      if (!stat.isSymbolicLink()) checkAncestor(ancestor, stat, below, belowPath, what, uid);
      below = stat;
      belowPath = ancestor;
    }
  }
}

function checkAncestor(ancestor: string, stat: Stats, below: Stats | undefined, belowPath: string, what: string, uid: number): void {
  if (!stat.isDirectory()) throw fail('E_PATH', `${ancestor}, above ${what}, is a file, not a directory; choose another place`, { path: ancestor });
  if (stat.uid !== uid && stat.uid !== 0) {
    throw fail(
      'E_DATA_DIR_UNSAFE',
      `${ancestor}, above ${what}, is owned by uid ${stat.uid}, who could replace everything below it; use a directory whose parents belong to root or to uid ${uid}`,
      { path: ancestor, uid: stat.uid },
    );
  }
  if ((stat.mode & GROUP_OTHER_WRITE) === 0) return;
  const stickyAndSafeBelow = (stat.mode & STICKY) !== 0 && (below === undefined || below.uid === uid || below.uid === 0);
  if (!stickyAndSafeBelow) {
    throw fail(
      'E_DATA_DIR_UNSAFE',
      `${ancestor}, above ${what}, is writable by group or others (mode ${modeText(stat)}) without the sticky bit for ${belowPath}, so another user could replace what is below it; run "chmod go-w ${ancestor}" or choose another place`,
      { path: ancestor, mode: modeText(stat) },
    );
  }
}

/** Rule 1 for a directory that exists: a directory of `uid`'s, writable only by it. */
export async function checkOwnDirectory(dir: string, what: string, uid = currentUid()): Promise<void> {
  const stat = await lstatOrUndefined(dir);
  if (!stat) throw fail('E_DATA_DIR_UNSAFE', `${what} ${dir} does not exist`, { path: dir });
  if (stat.isSymbolicLink()) {
    // The link's target is what will be used; the link's place was checked as an ancestor.
    return checkOwnDirectory(await fs.realpath(dir), what, uid);
  }
  if (!stat.isDirectory()) throw fail('E_PATH', `${what} ${dir} is a file, not a directory; give a directory (a missing one is created)`, { path: dir });
  if (stat.uid !== uid) {
    throw fail(
      'E_DATA_DIR_UNSAFE',
      `${what} ${dir} is owned by uid ${stat.uid}, not by the gateway's user (uid ${uid}); whoever owns it can replace its keys and its control socket. Use a directory of your own, or "chown ${uid} ${dir}" if you trust its content`,
      { path: dir, uid: stat.uid },
    );
  }
  if ((stat.mode & GROUP_OTHER_WRITE) !== 0) {
    throw fail('E_DATA_DIR_UNSAFE', `${what} ${dir} is writable by group or others (mode ${modeText(stat)}); run "chmod 700 ${dir}" if you trust its content`, {
      path: dir,
      mode: modeText(stat),
    });
  }
}

/**
 * Makes sure `dir` is a safe directory of the gateway's user, creating it 0700 (and missing
 * parents 0700) when absent. Nothing is created when a parent already fails the rule.
 */
export async function ensureOwnDirectory(dir: string, what: string, uid = currentUid()): Promise<string> {
  const absolute = path.resolve(dir);
  await checkAncestors(absolute, what, uid);
  if (!(await lstatOrUndefined(absolute))) {
    await makeDirectories(absolute, what, 0o700);
    await checkAncestors(absolute, what, uid);
  }
  await checkOwnDirectory(absolute, what, uid);
  return absolute;
}
