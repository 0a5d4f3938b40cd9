/**
 * Per-app log files, as the manual keeps them: levels 0 (critical) to 5 (all), at most five
 * files of at most 10 MB per app with the oldest dropped, kept across restarts, removed on
 * uninstall, downloadable as log_files_<app_id>.tar.gz.
 *
 * Writing never blocks the caller (an app logging in a loop must not stall the gateway): lines
 * queue in memory up to a bound and are appended by one writer per app; past the bound they
 * are dropped and counted, and the count is written once the queue drains.
 *
 * A file is rotated only when the next line does not fit in it. Readers (`follow`) get the
 * lines the files hold and then each line as it is appended; a reader that falls behind holds
 * at most `maxFollowerBytes` (256 KiB) and loses what comes past it, counted and announced.
 */
import type { FileHandle } from 'node:fs/promises';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';
import { fail, isIsogateError, toIsogateError } from '../../sdk/errors.js';
import { escapeControls } from '../../sdk/text.js';
import type { LogArchiveInfo } from '../api/services.js';
import { DataDir, eraseTree } from '../durable/index.js';
import { LOG_LEVELS, type LogLevelCode } from '../sandbox/bridge.js';

export interface AppLogOptions {
  root: string;
  maxFiles?: number;
  maxFileBytes?: number;
  maxLineBytes?: number;
  maxPendingBytes?: number;
  clock?: () => Date;
  /** A write that failed (the lines are dropped and counted); process warnings if not given. */
  onError?: (packageId: string, error: Error) => void;
  /** What one follower may hold of lines it has not taken yet; past it they are dropped and counted. */
  maxFollowerBytes?: number;
}

/** The most lines `tail` may ask for. */
export const MAX_TAIL_LINES = 10_000;

export interface FollowOptions {
  /** The last N lines (at `level`) first; without it, every line the files hold. */
  tail?: number;
  /** Only lines at this level or more severe (0 critical .. 5 all, the default). */
  level?: LogLevelCode;
  /** After the lines already written, each new one as it is written, across rotations, until closed. */
  follow?: boolean;
}

export interface LogFollower {
  /** The next lines, oldest first; undefined once there are no more (the files are read and it does not follow, or it was closed). */
  next(): Promise<string[] | undefined>;
  close(): Promise<void>;
  /** New lines not delivered because this reader fell behind by more than its bound. */
  dropped(): number;
}

export interface AppLogWriter {
  write(level: LogLevelCode, message: string, source?: 'app' | 'platform'): void;
  /** Lines dropped since the writer was made because the queue was full. */
  dropped(): number;
}

const CURRENT = 'app.log';
const LEVEL_NAMES = Object.fromEntries(Object.entries(LOG_LEVELS).map(([name, code]) => [code, name.toUpperCase()])) as Record<number, string>;
const DEFAULT_LEVEL: LogLevelCode = 3;
const LEVEL_CODES = new Map(Object.entries(LOG_LEVELS).map(([name, code]) => [name.toUpperCase(), code as number]));
const READ_BLOCK = 64 * 1024;
/** The writer's lines are at most maxLineBytes; anything longer was not written by it and is cut here. */
const MAX_READ_LINE = 64 * 1024;

/** A line's level from its second field; a line this module did not write counts as 5 (shown only for all). */
function levelOf(line: string): number {
  const name = /^\S+ (\S+)/.exec(line)?.[1];
  return (name === undefined ? undefined : LEVEL_CODES.get(name)) ?? 5;
}

function levelLine(clock: () => Date, name: string, text: string): string {
  return `${clock().toISOString()} ${name.padEnd(8)} [platform] ${text}`;
}

/** The lines of a file between two offsets, with where each starts; what follows the last newline counts as a line. */
async function* readLines(handle: FileHandle, start: number, end: number): AsyncGenerator<{ offset: number; line: string }> {
  const block = Buffer.alloc(READ_BLOCK);
  let carry = Buffer.alloc(0);
  let carryOffset = start;
  let position = start;
  while (position < end) {
    const { bytesRead } = await handle.read(block, 0, Math.min(block.length, end - position), position);
    if (bytesRead === 0) break;
    position += bytesRead;
    const data = carry.length > 0 ? Buffer.concat([carry, block.subarray(0, bytesRead)]) : block.subarray(0, bytesRead);
    let from = 0;
    for (let newline = data.indexOf(0x0a, from); newline >= 0; newline = data.indexOf(0x0a, from)) {
      yield { offset: carryOffset + from, line: data.toString('utf8', from, newline) };
      from = newline + 1;
    }
    carry = Buffer.from(data.subarray(from));
    carryOffset += from;
    if (carry.length > MAX_READ_LINE) {
      yield { offset: carryOffset, line: carry.toString('utf8') };
      carryOffset += carry.length;
      carry = Buffer.alloc(0);
    }
  }
  if (carry.length > 0) yield { offset: carryOffset, line: carry.toString('utf8') };
}

interface SnapshotFile {
  handle: FileHandle;
  size: number;
}

/**
 * One reader of an app's log. What the files held when it started is read from handles opened
 * then (a rotation meanwhile renames or removes the files, not what the handles read); each line
 * written after that is handed to it by the writer. New lines wait in a buffer of at most
 * `maxBytes`: a reader that falls further behind loses the lines past it, counted and announced
 * in one line where they were, and the gateway's memory stays bounded whatever it does.
 */
class Follower implements LogFollower {
  #live: string[] = [];
  #liveBytes = 0;
  /** Set from the first line dropped until the reader takes what is buffered, so the notice sits where the gap is. */
  #overflowed = 0;
  #dropped = 0;
  #closed = false;
  #wake: (() => void) | undefined;
  #tail: AsyncGenerator<string[]> | undefined;
  #reading = false;

  constructor(
    private readonly snapshot: SnapshotFile[],
    private readonly options: { tail?: number; level: number; follow: boolean; maxBytes: number; clock: () => Date; detach: (follower: Follower) => void },
  ) {
    this.#tail = this.#readTail();
  }

  push(lines: string[]): void {
    if (this.#closed) return;
    for (const line of lines) {
      if (levelOf(line) > this.options.level) continue;
      const bytes = Buffer.byteLength(line) + 1;
      if (this.#overflowed > 0 || this.#liveBytes + bytes > this.options.maxBytes) {
        this.#overflowed += 1;
        this.#dropped += 1;
        continue;
      }
      this.#live.push(line);
      this.#liveBytes += bytes;
    }
    this.#wake?.();
  }

  async next(): Promise<string[] | undefined> {
    if (this.#tail) {
      this.#reading = true;
      const read = await this.#tail.next().finally(() => {
        this.#reading = false;
      });
      if (!read.done && !this.#closed) return read.value;
      this.#tail = undefined;
      await this.#closeSnapshot();
    }
    if (!this.options.follow) await this.close();
    while (!this.#closed && this.#live.length === 0 && this.#overflowed === 0)
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
    this.#wake = undefined;
    if (this.#closed) return undefined;
    const batch = this.#live;
    if (this.#overflowed > 0) {
      batch.push(
        levelLine(
          this.options.clock,
          'WARNING',
          `${this.#overflowed} log lines not shown here: this reader fell more than ${this.options.maxBytes} bytes behind (the log files keep them)`,
        ),
      );
    }
    this.#live = [];
    this.#liveBytes = 0;
    this.#overflowed = 0;
    return batch;
  }

  /** The last `tail` matching lines: one pass notes where each matching line starts (positions only), the next reads from the first kept. */
  async *#readTail(): AsyncGenerator<string[]> {
    const { tail, level } = this.options;
    if (tail === 0) return;
    let from = { file: 0, offset: 0 };
    if (tail !== undefined) {
      const files: number[] = new Array<number>(tail);
      const offsets: number[] = new Array<number>(tail);
      let seen = 0;
      for (const [index, file] of this.snapshot.entries()) {
        for await (const { offset, line } of readLines(file.handle, 0, file.size)) {
          if (this.#closed) return;
          if (levelOf(line) > level) continue;
          files[seen % tail] = index;
          offsets[seen % tail] = offset;
          seen += 1;
        }
      }
      if (seen === 0) return;
      const first = seen < tail ? 0 : seen % tail;
      from = { file: files[first]!, offset: offsets[first]! };
    }
    let batch: string[] = [];
    let bytes = 0;
    for (let index = from.file; index < this.snapshot.length; index += 1) {
      const file = this.snapshot[index]!;
      for await (const { line } of readLines(file.handle, index === from.file ? from.offset : 0, file.size)) {
        if (this.#closed) return;
        if (levelOf(line) > level) continue;
        batch.push(line);
        bytes += Buffer.byteLength(line) + 1;
        if (bytes >= this.options.maxBytes) {
          yield batch;
          batch = [];
          bytes = 0;
        }
      }
    }
    if (batch.length > 0) yield batch;
  }

  async #closeSnapshot(): Promise<void> {
    const files = this.snapshot.splice(0);
    await Promise.all(files.map((file) => file.handle.close().catch(() => undefined)));
  }

  dropped(): number {
    return this.#dropped;
  }

  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.options.detach(this);
      this.#live = [];
      this.#liveBytes = 0;
      this.#wake?.();
    }
    // A read in progress closes the handles when it returns; otherwise they close here.
    if (this.#tail && !this.#reading) {
      await this.#tail.return(undefined);
      this.#tail = undefined;
    }
    if (!this.#tail) await this.#closeSnapshot();
  }
}

/**
 * One record is one line: every control, bidi and line-separator character is escaped
 * (sdk/text.ts), so a multi-line message stays one record with its newlines shown as \n, and
 * neither a C1 NEL (a line break for Unicode-aware readers) nor a CSI reaches the file raw.
 * Backslashes are doubled first, so an escape in the file always stands for a character the
 * app wrote, never for the four characters it typed.
 */
function escapeMessage(message: string): string {
  return escapeControls(message.replace(/\\/g, '\\\\'));
}

function truncateUtf8(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text;
  const cut = Buffer.from(text)
    .subarray(0, maxBytes - 16)
    .toString('utf8')
    .replace(/\uFFFD$/, '');
  return `${cut}...[truncated]`;
}

/** The log files in a folder, oldest first. */
async function logNames(dir: DataDir): Promise<string[]> {
  const names = (await dir.readdir()).map((entry) => entry.name);
  const order = (name: string): number => (name === CURRENT ? 0 : Number(/^app\.(\d+)\.log$/.exec(name)?.[1] ?? -1));
  return names.filter((name) => order(name) >= 0).sort((a, b) => order(b) - order(a));
}

class FileWriter implements AppLogWriter {
  #queue: string[] = [];
  #queuedBytes = 0;
  #dropped = 0;
  #droppedUnreported = 0;
  /** Lines a failed write dropped (a full or failing disk), announced by the first write that succeeds again. */
  #unwritten = 0;
  #unwrittenCode = '';
  #draining: Promise<void> | undefined;
  #currentBytes: number | undefined;
  /** Why the last drain failed, until a flush reports it. */
  #failure: Error | undefined;
  #lock: Promise<void> = Promise.resolve();
  /** Whether app.log's tail was checked for a line a crash cut (once per writer, before it is appended to or read). */
  #tailChecked = false;
  readonly #followers = new Set<Follower>();
  level: LogLevelCode = DEFAULT_LEVEL;

  constructor(
    private readonly packageId: string,
    private readonly dir: DataDir,
    private readonly options: Required<AppLogOptions>,
  ) {}

  write(level: LogLevelCode, message: string, source: 'app' | 'platform' = 'app'): void {
    if (level > this.level) return;
    const line = truncateUtf8(
      `${this.options.clock().toISOString()} ${(LEVEL_NAMES[level] ?? String(level)).padEnd(8)} [${source}] ${escapeMessage(String(message))}`,
      this.options.maxLineBytes,
    );
    this.#enqueue(line);
  }

  #enqueue(line: string): void {
    const bytes = Buffer.byteLength(line) + 1;
    if (this.#queuedBytes + bytes > this.options.maxPendingBytes) {
      this.#dropped += 1;
      this.#droppedUnreported += 1;
      return;
    }
    this.#queue.push(line);
    this.#queuedBytes += bytes;
    this.#draining ??= this.#drain()
      .catch((error: unknown) => this.#failed(error))
      .finally(() => {
        this.#draining = undefined;
        if (this.#queue.length > 0 || this.#droppedUnreported > 0) this.#enqueueReport();
      });
  }

  /**
   * The queued lines are dropped and counted, but not announced: the announcement would fail
   * the same way. The app's next line tries again.
   */
  #failed(error: unknown): void {
    const coded = toIsogateError(error);
    this.#failure = coded;
    this.#unwritten += this.#queue.length;
    this.#unwrittenCode = coded.code;
    this.#dropped += this.#queue.length;
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#currentBytes = undefined;
    this.options.onError(this.packageId, this.#failure);
  }

  #enqueueReport(): void {
    if (this.#droppedUnreported > 0) {
      const count = this.#droppedUnreported;
      this.#droppedUnreported = 0;
      this.#enqueue(
        `${this.options.clock().toISOString()} ${'WARNING'.padEnd(8)} [platform] ${count} log records dropped: the app logged faster than they could be written`,
      );
    } else if (this.#queue.length > 0) {
      this.#draining ??= this.#drain()
        .catch((error: unknown) => this.#failed(error))
        .finally(() => {
          this.#draining = undefined;
        });
    }
  }

  dropped(): number {
    return this.#dropped;
  }

  /**
   * A crash (or a full disk the process did not live to cut back) mid-append leaves app.log
   * ending inside a line; the next line would be glued to it. The torn line is kept (what it
   * holds may be what an investigator needs) but ended, and marked by a platform line after it
   * that says so. Run once, under the lock, before the first append or read.
   */
  async #repairTail(): Promise<void> {
    if (this.#tailChecked) return;
    const stats = await this.dir.statFile(CURRENT);
    if (!stats || stats.size === 0) {
      this.#tailChecked = true;
      return;
    }
    const handle = await this.dir.open(CURRENT, 'r+');
    try {
      const size = (await handle.stat()).size;
      const last = Buffer.alloc(1);
      if (size > 0 && (await handle.read(last, 0, 1, size - 1)).bytesRead === 1 && last[0] !== 0x0a) {
        await handle.write('\n', size);
        await handle.sync();
        // Ahead of whatever is queued: it belongs right after the cut line.
        const notice = `${this.options.clock().toISOString()} ${'WARNING'.padEnd(8)} [platform] the line above was cut off when the gateway stopped while writing it (the log was repaired at start)`;
        this.#queue.unshift(notice);
        this.#queuedBytes += Buffer.byteLength(notice) + 1;
        this.#currentBytes = undefined;
      }
    } finally {
      await handle.close();
    }
    this.#tailChecked = true;
  }

  async #drain(): Promise<void> {
    await this.dir.mkdir('', 0o700);
    await this.#exclusive(() => this.#repairTail());
    this.#currentBytes ??= (await this.dir.statFile(CURRENT))?.size ?? 0;
    while (this.#queue.length > 0) {
      // Fill the current file up to its bound in one append, then rotate.
      await this.#exclusive(async () => {
        let chunk = '';
        let chunkBytes = 0;
        const lines: string[] = [];
        // Full only when the next line does not fit: lines that arrive while this chunk is being
        // appended go into the same file if they fit (they used to rotate it at any size).
        let full = false;
        // The lines a failed write dropped are announced where the gap is, once a write succeeds.
        const unwritten = this.#unwritten;
        let announced = false;
        if (unwritten > 0) {
          const notice = `${this.options.clock().toISOString()} ${'WARNING'.padEnd(8)} [platform] ${unwritten} log records dropped: the log could not be written (${this.#unwrittenCode})`;
          const noticeBytes = Buffer.byteLength(notice) + 1;
          if (this.#currentBytes! + noticeBytes > this.options.maxFileBytes && this.#currentBytes! > 0) full = true;
          else {
            lines.push(notice);
            chunk += `${notice}\n`;
            chunkBytes += noticeBytes;
            announced = true;
          }
        }
        while (!full && this.#queue.length > 0) {
          const lineBytes = Buffer.byteLength(this.#queue[0]!) + 1;
          if (this.#currentBytes! + chunkBytes + lineBytes > this.options.maxFileBytes && this.#currentBytes! + chunkBytes > 0) {
            full = true;
            break;
          }
          const line = this.#queue.shift()!;
          lines.push(line);
          chunk += `${line}\n`;
          chunkBytes += lineBytes;
          this.#queuedBytes -= lineBytes;
        }
        if (chunkBytes > 0) {
          const handle = await this.dir.open(CURRENT, 'a', 0o600);
          try {
            const { size } = await handle.stat();
            try {
              await handle.writeFile(chunk);
            } catch (error) {
              // A full disk takes part of the chunk: cut it off, or the next line is glued to half a one.
              await handle.truncate(size).catch(() => undefined);
              const lost = lines.length - (announced ? 1 : 0);
              this.#unwritten += lost;
              this.#dropped += lost;
              throw error;
            }
          } finally {
            await handle.close();
          }
          this.#currentBytes! += chunkBytes;
          if (announced) this.#unwritten -= unwritten;
          for (const follower of this.#followers) follower.push(lines);
        }
        if (full) await this.#rotate();
      });
    }
  }

  /**
   * Appends and rotations run one at a time with whatever must see the files still (a
   * follower taking its snapshot): a follower gets every line once, from the files or live.
   */
  #exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(work);
    this.#lock = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /**
   * A step that fails ends the drain: its lines are dropped and counted and the failure is
   * reported (onError, then the next flush), never swallowed, and the full file is not written
   * past its bound. A link met on the way keeps its own code (E_UNSAFE_PATH).
   */
  async #rotate(): Promise<void> {
    const max = this.options.maxFiles;
    const step = async (what: string, work: () => Promise<void>): Promise<void> => {
      try {
        await work();
      } catch (error) {
        if (isIsogateError(error)) throw error;
        throw fail(
          'E_LOG_ROTATE',
          `The log of ${this.packageId} could not be rotated: ${what} failed (${(error as Error).message}); ` +
            `lines past its ${this.options.maxFileBytes} bytes are dropped and counted until it can be. Check the log folder's permissions and free space`,
          { packageId: this.packageId, step: what, cause: (error as NodeJS.ErrnoException).code ?? (error as Error).message },
        );
      }
    };
    await step(`removing app.${max - 1}.log`, () => this.dir.remove(`app.${max - 1}.log`));
    const renameIfThere = (from: string, to: string): Promise<void> =>
      step(`renaming ${from} to ${to}`, () =>
        this.dir.rename(from, to).catch((error: NodeJS.ErrnoException) => {
          if (error.code !== 'ENOENT') throw error;
        }),
      );
    for (let index = max - 2; index >= 1; index -= 1) await renameIfThere(`app.${index}.log`, `app.${index + 1}.log`);
    await renameIfThere(CURRENT, 'app.1.log');
    this.#currentBytes = 0;
  }

  /** A reader of the files as they are between two appends, then of every line appended after. */
  follow(options: FollowOptions, maxBytes: number): Promise<Follower> {
    return this.#exclusive(async () => {
      const queued = this.#queue.length;
      await this.#repairTail();
      // The repair's notice goes out like any line (live to this follower, if it follows).
      if (this.#queue.length > queued) this.#enqueueReport();
      const snapshot: SnapshotFile[] = [];
      try {
        for (const name of await logNames(this.dir)) {
          const handle = await this.dir.open(name, 'r');
          snapshot.push({ handle, size: 0 });
          snapshot[snapshot.length - 1]!.size = (await handle.stat()).size;
        }
      } catch (error) {
        await Promise.all(snapshot.map((file) => file.handle.close().catch(() => undefined)));
        throw error;
      }
      const follower = new Follower(snapshot, {
        ...(options.tail === undefined ? {} : { tail: options.tail }),
        level: options.level ?? 5,
        follow: options.follow === true,
        maxBytes,
        clock: this.options.clock,
        detach: (gone) => this.#followers.delete(gone),
      });
      if (options.follow) this.#followers.add(follower);
      return follower;
    });
  }

  /** Ends every follower (the app is being removed). */
  async closeFollowers(): Promise<void> {
    await Promise.all([...this.#followers].map((follower) => follower.close()));
  }

  /** Waits until the queue is written; rejects once with the error of a drain that failed. */
  async flush(): Promise<void> {
    while (this.#draining) await this.#draining;
    const failure = this.#failure;
    this.#failure = undefined;
    if (failure) throw failure;
  }
}

export class AppLogs {
  readonly #writers = new Map<string, FileWriter>();
  readonly #options: Required<AppLogOptions>;
  readonly #root: DataDir;

  constructor(options: AppLogOptions) {
    this.#options = {
      maxFiles: 5,
      maxFileBytes: 10 * 1024 * 1024,
      maxLineBytes: 8 * 1024,
      maxPendingBytes: 1024 * 1024,
      maxFollowerBytes: 256 * 1024,
      clock: () => new Date(),
      onError: (packageId, error) => process.emitWarning(`log of ${packageId}: lines could not be written: ${error.message}`, { code: 'ISOGATE_APP_LOG' }),
      ...options,
    };
    this.#root = DataDir.of(this.#options.root);
  }

  #dir(packageId: string): DataDir {
    return this.#root.sub(packageId);
  }

  writer(packageId: string): AppLogWriter {
    let writer = this.#writers.get(packageId);
    if (!writer) {
      writer = new FileWriter(packageId, this.#dir(packageId), this.#options);
      this.#writers.set(packageId, writer);
    }
    return writer;
  }

  /** Records above the level are dropped; each level includes the ones before it. */
  setLevel(packageId: string, level: LogLevelCode): void {
    (this.writer(packageId) as FileWriter).level = level;
  }

  /** Oldest first, so an archive reads in order. */
  async files(packageId: string): Promise<{ name: string; size: number }[]> {
    // A failed write was reported already; what is on disk is listed (and a link in it refused).
    await this.flush(packageId).catch(() => undefined);
    const dir = this.#dir(packageId);
    const logs = await logNames(dir);
    const files: { name: string; size: number }[] = [];
    for (const name of logs) {
      const stats = await dir.statFile(name);
      if (stats) files.push({ name, size: stats.size });
    }
    return files;
  }

  /**
   * Reads an app's log: the last `tail` lines (every line without), then, with `follow`, each
   * line as it is written until the follower is closed. Lines are as the file holds them
   * (escaped when written).
   */
  async follow(packageId: string, options: FollowOptions = {}): Promise<LogFollower> {
    if (options.tail !== undefined && (!Number.isInteger(options.tail) || options.tail < 0 || options.tail > MAX_TAIL_LINES)) {
      throw fail('E_OPTION', `tail is a number of lines from 0 to ${MAX_TAIL_LINES}, not ${String(options.tail)}`);
    }
    if (options.level !== undefined && !(Number.isInteger(options.level) && options.level >= 0 && options.level <= 5)) {
      throw fail('E_OPTION', `level is a log level from 0 (critical) to 5 (all), not ${String(options.level)}`);
    }
    return (this.writer(packageId) as FileWriter).follow(options, this.#options.maxFollowerBytes);
  }

  async archiveInfo(packageId: string): Promise<LogArchiveInfo> {
    const files = await this.files(packageId);
    if (files.length === 0) throw fail('E_LOG_EMPTY', `${packageId} has no log files yet`);
    const uncompressedBytes = files.reduce((sum, file) => sum + file.size, 0);
    // Log text compresses about tenfold; the tar headers add 512 bytes a file plus the trailer.
    return {
      fileName: `log_files_${packageId}.tar.gz`,
      files: files.length,
      uncompressedBytes,
      estimatedBytes: Math.ceil(uncompressedBytes / 10) + 512 * (files.length + 2),
    };
  }

  /** The archive as a stream: a long log never sits in memory whole. */
  async archive(packageId: string): Promise<Readable> {
    const files = await this.files(packageId);
    if (files.length === 0) throw fail('E_LOG_EMPTY', `${packageId} has no log files yet`);
    const pack = tar.pack();
    const output = new PassThrough();
    void (async () => {
      for (const file of files) {
        // The size is fixed when the file is reached; lines appended meanwhile wait for the next archive.
        const handle = await this.#dir(packageId).open(file.name, 'r');
        const { size, mtime } = await handle.stat().catch(async (error: Error) => {
          await handle.close();
          throw error;
        });
        const header = { name: `${packageId}/${file.name}`, size, mtime, mode: 0o600 };
        if (size === 0) {
          await handle.close();
          pack.entry(header, '');
        } else {
          await pipeline(handle.createReadStream({ start: 0, end: size - 1 }), pack.entry(header));
        }
      }
      pack.finalize();
    })().catch((error: Error) => pack.destroy(error));
    pipeline(pack, createGzip(), output).catch((error: Error) => output.destroy(error));
    return output;
  }

  async remove(packageId: string): Promise<void> {
    const writer = this.#writers.get(packageId);
    this.#writers.delete(packageId);
    await writer?.closeFollowers();
    // A write that failed was reported already; the files go either way.
    await writer?.flush().catch(() => undefined);
    await eraseTree(this.#root.path(packageId), this.#root);
  }

  async flush(packageId?: string): Promise<void> {
    const writers = packageId ? [this.#writers.get(packageId)] : [...this.#writers.values()];
    for (const writer of writers) await writer?.flush();
  }

  async close(): Promise<void> {
    await this.flush();
  }
}
