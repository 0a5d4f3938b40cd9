/**
 * Per-app log files, as the manual keeps them: levels 0 (critical) to 5 (all), at most five
 * files of at most 10 MB per app with the oldest dropped, kept across restarts, removed on
 * uninstall, downloadable as log_files_<app_id>.tar.gz.
 *
 * Writing never blocks the caller (an app logging in a loop must not stall the gateway): lines
 * queue in memory up to a bound and are appended by one writer per app; past the bound they
 * are dropped and counted, and the count is written once the queue drains.
 */
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';
import { fail, toIsogateError } from '../../sdk/errors.js';
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
}

export interface AppLogWriter {
  write(level: LogLevelCode, message: string, source?: 'app' | 'platform'): void;
  /** Lines dropped since the writer was made because the queue was full. */
  dropped(): number;
}

const CURRENT = 'app.log';
const LEVEL_NAMES = Object.fromEntries(Object.entries(LOG_LEVELS).map(([name, code]) => [code, name.toUpperCase()])) as Record<number, string>;
const DEFAULT_LEVEL: LogLevelCode = 3;

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
  const cut = Buffer.from(text).subarray(0, maxBytes - 16).toString('utf8').replace(/\uFFFD$/, '');
  return `${cut}...[truncated]`;
}

class FileWriter implements AppLogWriter {
  #queue: string[] = [];
  #queuedBytes = 0;
  #dropped = 0;
  #droppedUnreported = 0;
  #draining: Promise<void> | undefined;
  #currentBytes: number | undefined;
  /** Why the last drain failed, until a flush reports it. */
  #failure: Error | undefined;
  level: LogLevelCode = DEFAULT_LEVEL;

  constructor(private readonly packageId: string, private readonly dir: DataDir, private readonly options: Required<AppLogOptions>) {}

  write(level: LogLevelCode, message: string, source: 'app' | 'platform' = 'app'): void {
    if (level > this.level) return;
    const line = truncateUtf8(`${this.options.clock().toISOString()} ${(LEVEL_NAMES[level] ?? String(level)).padEnd(8)} [${source}] ${escapeMessage(String(message))}`, this.options.maxLineBytes);
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
    this.#draining ??= this.#drain().catch((error: unknown) => this.#failed(error)).finally(() => {
      this.#draining = undefined;
      if (this.#queue.length > 0 || this.#droppedUnreported > 0) this.#enqueueReport();
    });
  }

  /**
   * The queued lines are dropped and counted, but not announced: the announcement would fail
   * the same way. The app's next line tries again.
   */
  #failed(error: unknown): void {
    this.#failure = toIsogateError(error);
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
      this.#enqueue(`${this.options.clock().toISOString()} ${'WARNING'.padEnd(8)} [platform] ${count} log records dropped: the app logged faster than they could be written`);
    } else if (this.#queue.length > 0) {
      this.#draining ??= this.#drain().catch((error: unknown) => this.#failed(error)).finally(() => { this.#draining = undefined; });
    }
  }

  dropped(): number {
    return this.#dropped;
  }

  async #drain(): Promise<void> {
    await this.dir.mkdir('', 0o700);
    this.#currentBytes ??= (await this.dir.statFile(CURRENT))?.size ?? 0;
    while (this.#queue.length > 0) {
      // Fill the current file up to its bound in one append, then rotate.
      let chunk = '';
      let chunkBytes = 0;
      while (this.#queue.length > 0) {
        const lineBytes = Buffer.byteLength(this.#queue[0]!) + 1;
        if (this.#currentBytes + chunkBytes + lineBytes > this.options.maxFileBytes && (this.#currentBytes + chunkBytes) > 0) break;
        const line = this.#queue.shift()!;
        chunk += `${line}\n`;
        chunkBytes += lineBytes;
        this.#queuedBytes -= lineBytes;
      }
      if (chunkBytes > 0) {
        const handle = await this.dir.open(CURRENT, 'a', 0o600);
        try {
          await handle.writeFile(chunk);
        } finally {
          await handle.close();
        }
        this.#currentBytes += chunkBytes;
      }
      if (this.#queue.length > 0) await this.#rotate();
    }
  }

  async #rotate(): Promise<void> {
    const max = this.options.maxFiles;
    await this.dir.remove(`app.${max - 1}.log`);
    const renameIfThere = (from: string, to: string): Promise<void> => this.dir.rename(from, to).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
    for (let index = max - 2; index >= 1; index -= 1) await renameIfThere(`app.${index}.log`, `app.${index + 1}.log`);
    await renameIfThere(CURRENT, 'app.1.log');
    this.#currentBytes = 0;
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
      maxFiles: 5, maxFileBytes: 10 * 1024 * 1024, maxLineBytes: 8 * 1024, maxPendingBytes: 1024 * 1024, clock: () => new Date(),
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
    const names = (await dir.readdir()).map((entry) => entry.name);
    const order = (name: string): number => (name === CURRENT ? 0 : Number(/^app\.(\d+)\.log$/.exec(name)?.[1] ?? -1));
    const logs = names.filter((name) => order(name) >= 0).sort((a, b) => order(b) - order(a));
    const files: { name: string; size: number }[] = [];
    for (const name of logs) {
      const stats = await dir.statFile(name);
      if (stats) files.push({ name, size: stats.size });
    }
    return files;
  }

  async archiveInfo(packageId: string): Promise<LogArchiveInfo> {
    const files = await this.files(packageId);
    if (files.length === 0) throw fail('E_LOG_EMPTY', `${packageId} has no log files yet`);
    const uncompressedBytes = files.reduce((sum, file) => sum + file.size, 0);
    // Log text compresses about tenfold; the tar headers add 512 bytes a file plus the trailer.
    return { fileName: `log_files_${packageId}.tar.gz`, files: files.length, uncompressedBytes, estimatedBytes: Math.ceil(uncompressedBytes / 10) + 512 * (files.length + 2) };
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
