/**
 * Durable, atomic file-system writes: the one helper every subsystem uses for state that must
 * survive a crash (configuration, installs, storage records, integrity records).
 *
 * The recipe is the classic one: write a temporary file beside the target, fsync it, rename it
 * over the target, fsync the directory so the rename itself is on disk. A crash at any instant
 * leaves either the previous or the next content, never a mix.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs, constants as fsConstants } from 'node:fs';
import path from 'node:path';

export async function fsyncDirectory(dir: string): Promise<void> {
  const handle = await fs.open(dir, fsConstants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function temporaryPathBeside(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${randomBytes(6).toString('hex')}.tmp`);
}

export interface WriteOptions {
  /** File mode for a new file; secrets use 0o600. */
  mode?: number;
}

export async function writeFileDurable(target: string, data: string | Uint8Array, options: WriteOptions = {}): Promise<void> {
  const temporary = temporaryPathBeside(target);
  const handle = await fs.open(temporary, 'wx', options.mode ?? 0o644);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await fs.rm(temporary, { force: true });
    throw error;
  }
  await handle.close();
  try {
    await fs.rename(temporary, target);
  } catch (error) {
    await fs.rm(temporary, { force: true });
    throw error;
  }
  await fsyncDirectory(path.dirname(target));
}

export async function writeJsonDurable(target: string, value: unknown, options: WriteOptions = {}): Promise<void> {
  await writeFileDurable(target, `${JSON.stringify(value, null, 2)}\n`, options);
}

/** Renames and makes the rename durable in both directories. */
export async function renameDurable(from: string, to: string): Promise<void> {
  await fs.rename(from, to);
  await fsyncDirectory(path.dirname(to));
  if (path.dirname(from) !== path.dirname(to)) await fsyncDirectory(path.dirname(from));
}

/** fsyncs every file and directory below `root` (for a staged tree before it is renamed in). */
export async function fsyncTree(root: string): Promise<void> {
  const entries = await fs.readdir(root, { withFileTypes: true });
  for (const entry of entries) {
    const full = path.join(root, entry.name);
    if (entry.isDirectory()) {
      await fsyncTree(full);
    } else if (entry.isFile()) {
      const handle = await fs.open(full, fsConstants.O_RDONLY);
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
    }
  }
  await fsyncDirectory(root);
}

/**
 * Deletes a file after overwriting its content twice (ones, then zeros), as the manual's
 * "Processing and storing data" section describes for deleted objects. On journalling or
 * copy-on-write file systems this is best effort; the storage is encrypted anyway, so the
 * overwrite is a second line of defence.
 */
export async function eraseFile(file: string): Promise<void> {
  let handle;
  try {
    handle = await fs.open(file, 'r+');
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
  await fs.unlink(file);
}

/** Erases every regular file below `root`, then removes the tree. */
export async function eraseTree(root: string): Promise<void> {
  let entries;
  try {
    entries = await fs.readdir(root, { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  for (const entry of entries) {
    const full = path.join(root, entry.name);
    if (entry.isDirectory()) await eraseTree(full);
    else if (entry.isFile()) await eraseFile(full);
  }
  await fs.rm(root, { recursive: true, force: true });
}

export async function readJsonIfExists<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await fs.readFile(file, 'utf8')) as T;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
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
