/**
 * The one way into files below the data directory, for a gateway that runs as root while other
 * users may have planted links there.
 *
 * O_NOFOLLOW guards only the last component of a path: a link anywhere above it is followed, and
 * a root process then truncates, appends to or deletes whatever the link names. So every
 * component below the trusted root is checked with lstat (a link or a non-directory is refused
 * with E_UNSAFE_PATH, naming the path), the file is opened with O_NOFOLLOW, and the opened
 * handle's device and inode are compared with what lstat saw before and what the path leads to
 * after, so a swap between check and open is caught before anything is written. Truncation is
 * done on the verified handle, never by O_TRUNC at open, and removal never follows a link at
 * any depth.
 *
 * What remains without openat(2) in Node: a parent swapped between the check and open(O_CREAT)
 * can make the kernel create an empty file elsewhere; it is refused before a byte is written.
 * The data directory's own owner and permissions (checked elsewhere) keep other users out of it
 * in the first place; this module is the second wall.
 */
import { type Dirent, promises as fs, constants as fsConstants, fstatSync, lstatSync, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { fail, type IsogateError } from '../../sdk/errors.js';

const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_APPEND, O_TRUNC, O_NOFOLLOW, O_NONBLOCK, O_DIRECTORY, O_DSYNC } = fsConstants;

/** The ways this code base opens files; `w` truncates only after the handle is verified. */
export type OpenMode = 'r' | 'r+' | 'rw+' | 'rw+dsync' | 'a' | 'w' | 'wx' | 'wx+' | 'wx+dsync';

const FLAGS: Record<OpenMode, number> = {
  r: O_RDONLY,
  'r+': O_RDWR,
  // Read-write, created if missing, never truncated: a log written at explicit offsets.
  'rw+': O_RDWR | O_CREAT,
  // The same, each write durable when it returns (O_DSYNC: the data and what reading it back
  // needs, as fdatasync would make them) in one call instead of a write and a sync.
  'rw+dsync': O_RDWR | O_CREAT | O_DSYNC,
  a: O_WRONLY | O_CREAT | O_APPEND,
  w: O_WRONLY | O_CREAT | O_TRUNC,
  wx: O_WRONLY | O_CREAT | O_EXCL,
  'wx+': O_RDWR | O_CREAT | O_EXCL,
  'wx+dsync': O_RDWR | O_CREAT | O_EXCL | O_DSYNC,
};

function unsafe(full: string, why: string): IsogateError {
  return fail(
    'E_UNSAFE_PATH',
    `${full} ${why}; the gateway does not follow links or act on unexpected files in its data directory. Find out who put it there, remove it and try again`,
    { path: full },
  );
}

/** The error fs itself gives for a missing path, so callers keep testing `code === 'ENOENT'`. */
function missing(syscall: string, full: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`ENOENT: no such file or directory, ${syscall} '${full}'`), { code: 'ENOENT', syscall, path: full });
}

/**
 * The entry itself, not followed; undefined if it is missing. Synchronous on purpose: these
 * checks lstat folders the gateway itself walks all the time, which the kernel answers from its
 * dentry cache in a microsecond or two, while through the thread pool each lstat cost about 27 us
 * of CPU (a request, a wake-up, a promise, and for a missing path an Error with its stack), and
 * an open checks every level twice: a push of an app made some 250 of them, 8 ms of the gateway's
 * thread. A level whose inode is not cached makes the loop wait for that one read, as rarely as
 * the data directory is cold.
 */
function lstatOrUndefined(full: string): Stats | undefined {
  return lstatSync(full, { throwIfNoEntry: false });
}

function splitRelative(relative: string): string[] {
  if (relative === '' || relative === '.') return [];
  if (path.isAbsolute(relative)) throw fail('E_INTERNAL', `${relative} is not a relative path`);
  const segments = relative.split(/[\\/]+/).filter((segment) => segment !== '' && segment !== '.');
  if (segments.some((segment) => segment === '..')) throw fail('E_UNSAFE_PATH', `${relative} leaves the data directory`, { path: relative });
  return segments;
}

function sameFile(a: Stats, b: Stats): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

/**
 * A directory below a trusted root. Every path handed to it is relative to it; the checks run
 * from the root down, so a folder of the data directory that is itself a link is refused too.
 */
export class DataDir {
  readonly #root: string;
  readonly #prefix: readonly string[];

  /** `root` is trusted as it is (the data directory); everything below it is checked. */
  constructor(root: string, prefix: readonly string[] = []) {
    this.#root = path.resolve(root);
    this.#prefix = prefix;
  }

  /** A subsystem's folder checked from its parent: DATA/storage as DATA + "storage". */
  static of(dir: string): DataDir {
    const full = path.resolve(dir);
    return new DataDir(path.dirname(full), [path.basename(full)]);
  }

  /** The directory `relative` below this one, checked from the same root. */
  sub(relative: string): DataDir {
    return new DataDir(this.#root, [...this.#prefix, ...splitRelative(relative)]);
  }

  /** The absolute path of `relative` (for messages and for code that only names a path). */
  path(relative = ''): string {
    return path.join(this.#root, ...this.#prefix, ...splitRelative(relative));
  }

  /** `absolute` as a path relative to this directory; refused if it lies outside. */
  relative(absolute: string): string {
    const relative = path.relative(this.path(), path.resolve(absolute));
    if (relative === '..' || relative.startsWith(`..${path.sep}`) || path.isAbsolute(relative))
      throw fail('E_UNSAFE_PATH', `${absolute} is outside ${this.path()}`, { path: absolute });
    return relative;
  }

  #segments(relative: string): string[] {
    return [...this.#prefix, ...splitRelative(relative)];
  }

  /** Every directory from the root down to the parent of the last segment is a real directory. Returns false if one is missing. */
  #checkParents(segments: readonly string[]): boolean {
    let current = this.#root;
    for (let at = 0; at < segments.length - 1; at += 1) {
      current = path.join(current, segments[at]!);
      const stats = lstatOrUndefined(current);
      if (!stats) return false;
      if (stats.isSymbolicLink()) throw unsafe(current, 'is a symbolic link');
      if (!stats.isDirectory()) throw unsafe(current, 'is not a directory');
    }
    return true;
  }

  /** The entry itself (not followed) after its parents are checked; undefined if it or a parent is missing. */
  async lstat(relative: string): Promise<Stats | undefined> {
    const segments = this.#segments(relative);
    // The root itself is trusted as it is, even if it is a link (/var/lib/isogate -> /data/isogate).
    if (segments.length === 0)
      return fs.stat(this.#root).catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return undefined;
        throw error;
      });
    if (!this.#checkParents(segments)) return undefined;
    return lstatOrUndefined(path.join(this.#root, ...segments));
  }

  /** Like lstat, but a link or anything but a regular file is refused. */
  async statFile(relative: string): Promise<Stats | undefined> {
    const stats = await this.lstat(relative);
    if (stats) assertKind(this.path(relative), stats, 'file');
    return stats;
  }

  /** Makes the directory and any missing parents, refusing a link or a file on the way. */
  async mkdir(relative = '', mode = 0o700): Promise<void> {
    let current = this.#root;
    for (const segment of this.#segments(relative)) {
      current = path.join(current, segment);
      let stats = lstatOrUndefined(current);
      if (!stats) {
        await fs.mkdir(current, { mode }).catch((error: NodeJS.ErrnoException) => {
          if (error.code !== 'EEXIST') throw error;
        });
        stats = lstatSync(current);
      }
      assertKind(current, stats, 'directory');
    }
  }

  /** The entries of a real directory (empty if it is missing). */
  async readdir(relative = ''): Promise<Dirent[]> {
    const stats = await this.lstat(relative);
    if (!stats) return [];
    assertKind(this.path(relative), stats, 'directory');
    return fs.readdir(this.path(relative), { withFileTypes: true });
  }

  /**
   * Opens a regular file without following a link at any depth. Writable handles are refused
   * for a file with other hard links: one planted to a file elsewhere would be written through.
   */
  async open(relative: string, mode: OpenMode, createMode = 0o600): Promise<FileHandle> {
    const segments = this.#segments(relative);
    const full = path.join(this.#root, ...segments);
    const flags = FLAGS[mode];
    if (!this.#checkParents(segments)) throw missing('open', full);
    const before = lstatOrUndefined(full);
    if (before) assertKind(full, before, 'file');
    let handle: FileHandle;
    try {
      // O_NONBLOCK: a FIFO swapped in after the check must not hang the open; no effect on files.
      handle = await fs.open(full, (flags & ~O_TRUNC) | O_NOFOLLOW | O_NONBLOCK, createMode);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ELOOP') throw unsafe(full, 'is a symbolic link');
      throw error;
    }
    try {
      // The open handle's own inode: no disk to wait for.
      const opened = fstatSync(handle.fd);
      if (!opened.isFile()) throw unsafe(full, 'is not a regular file');
      if (before && !sameFile(before, opened)) throw unsafe(full, 'was replaced while it was being opened');
      // After the open the path must still lead, through real directories, to this very file.
      if (!this.#checkParents(segments)) throw unsafe(full, 'lost a parent directory while it was being opened');
      const after = lstatOrUndefined(full);
      if (!after || !sameFile(after, opened)) throw unsafe(full, 'was replaced while it was being opened');
      if ((flags & (O_WRONLY | O_RDWR)) !== 0 && opened.nlink > 1) throw unsafe(full, `has ${opened.nlink} hard links`);
      if ((flags & O_TRUNC) !== 0 && opened.size > 0) await handle.truncate(0);
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
    return handle;
  }

  /** The whole file, or undefined if it does not exist. */
  async readFile(relative: string): Promise<Buffer | undefined> {
    let handle: FileHandle;
    try {
      handle = await this.open(relative, 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    try {
      return await handle.readFile();
    } finally {
      await handle.close();
    }
  }

  /** Renames a file or directory within this tree; neither end may be a link. */
  async rename(from: string, to: string): Promise<void> {
    const source = await this.lstat(from);
    if (!source) throw missing('rename', this.path(from));
    if (source.isSymbolicLink()) throw unsafe(this.path(from), 'is a symbolic link');
    const target = await this.lstat(to);
    if (!this.#checkParents(this.#segments(to))) throw missing('rename', this.path(to));
    if (target?.isSymbolicLink()) throw unsafe(this.path(to), 'is a symbolic link');
    await fs.rename(this.path(from), this.path(to));
  }

  /** fsyncs a directory (so a rename or a new file in it is on disk). */
  async syncDirectory(relative = ''): Promise<void> {
    const full = this.path(relative);
    const stats = await this.lstat(relative);
    if (!stats) throw missing('open', full);
    assertKind(full, stats, 'directory');
    let handle: FileHandle;
    try {
      handle = await fs.open(full, O_RDONLY | O_DIRECTORY | (this.#segments(relative).length > 0 ? O_NOFOLLOW : 0));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ELOOP') throw unsafe(full, 'is a symbolic link');
      throw error;
    }
    try {
      if (!sameFile(stats, fstatSync(handle.fd))) throw unsafe(full, 'was replaced while it was being opened');
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  /**
   * Every entry of the tree at `relative`, deepest first, without following anything. A link,
   * a special file or a file with other hard links anywhere in it is refused before anything is
   * removed, so a refused removal changes nothing.
   */
  async #walk(relative: string): Promise<{ relative: string; stats: Stats }[]> {
    const stats = await this.lstat(relative);
    if (!stats) return [];
    const full = this.path(relative);
    if (stats.isSymbolicLink()) throw unsafe(full, 'is a symbolic link');
    if (stats.isFile()) {
      if (stats.nlink > 1) throw unsafe(full, `has ${stats.nlink} hard links`);
      return [{ relative, stats }];
    }
    if (!stats.isDirectory()) throw unsafe(full, 'is not a regular file or directory');
    const out: { relative: string; stats: Stats }[] = [];
    for (const name of await fs.readdir(full)) out.push(...(await this.#walk(path.join(relative, name))));
    out.push({ relative, stats });
    return out;
  }

  /**
   * Removes a file or a tree; missing is fine. With `overwrite`, each file's bytes are
   * overwritten (ones, then zeros) before it is unlinked.
   */
  async remove(relative: string, options: { overwrite?: boolean } = {}): Promise<void> {
    const entries = await this.#walk(relative);
    for (const entry of entries) {
      if (entry.stats.isDirectory()) {
        this.#checkParents(this.#segments(entry.relative));
        await fs.rmdir(this.path(entry.relative)).catch((error: NodeJS.ErrnoException) => {
          if (error.code !== 'ENOENT') throw error;
        });
        continue;
      }
      if (options.overwrite) await this.#overwrite(entry.relative);
      // Checked again right before the unlink: the parents must still be real directories.
      if (!this.#checkParents(this.#segments(entry.relative))) continue;
      await fs.unlink(this.path(entry.relative)).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') throw error;
      });
    }
  }

  async #overwrite(relative: string): Promise<void> {
    let handle: FileHandle;
    try {
      handle = await this.open(relative, 'r+');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    try {
      const { size } = await handle.stat();
      const chunk = 64 * 1024;
      for (const fill of [0xff, 0x00]) {
        const block = Buffer.alloc(Math.min(chunk, Math.max(size, 1)), fill);
        for (let offset = 0; offset < size; offset += block.length) {
          await handle.write(block, 0, Math.min(block.length, size - offset), offset);
        }
        await handle.sync();
      }
    } finally {
      await handle.close();
    }
  }
}

function assertKind(full: string, stats: Stats, kind: 'file' | 'directory'): void {
  if (stats.isSymbolicLink()) throw unsafe(full, 'is a symbolic link');
  if (kind === 'file' && !stats.isFile()) throw unsafe(full, 'is not a regular file');
  if (kind === 'directory' && !stats.isDirectory()) throw unsafe(full, 'is not a directory');
}
