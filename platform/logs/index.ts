/**
 * Per-app log files, as the manual keeps them: levels 0 (critical) to 5 (all), at most five
 * files of at most 10 MB per app with the oldest dropped, kept across restarts, removed on
 * uninstall, downloadable as log_files_<app_id>.tar.gz.
 *
 * Writing never blocks the caller (an app logging in a loop must not stall the gateway): lines
 * queue in memory up to a bound and are appended by one writer per app; past the bound they
 * are dropped and counted, and the count is written once the queue drains.
 */
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';
import { fail } from '../../sdk/errors.js';
import { escapeControls } from '../../sdk/text.js';
import type { LogArchiveInfo } from '../api/services.js';
import { eraseTree } from '../durable/index.js';
import { LOG_LEVELS, type LogLevelCode } from '../sandbox/bridge.js';

export interface AppLogOptions {
  root: string;
  maxFiles?: number;
  maxFileBytes?: number;
  maxLineBytes?: number;
  maxPendingBytes?: number;
  clock?: () => Date;
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
  level: LogLevelCode = DEFAULT_LEVEL;

  constructor(private readonly dir: string, private readonly options: Required<AppLogOptions>) {}

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
    this.#draining ??= this.#drain().finally(() => {
      this.#draining = undefined;
      if (this.#queue.length > 0 || this.#droppedUnreported > 0) this.#enqueueReport();
    });
  }

  #enqueueReport(): void {
    if (this.#droppedUnreported > 0) {
      const count = this.#droppedUnreported;
      this.#droppedUnreported = 0;
      this.#enqueue(`${this.options.clock().toISOString()} ${'WARNING'.padEnd(8)} [platform] ${count} log records dropped: the app logged faster than they could be written`);
    } else if (this.#queue.length > 0) {
      this.#draining ??= this.#drain().finally(() => { this.#draining = undefined; });
    }
  }

  dropped(): number {
    return this.#dropped;
  }

  async #drain(): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const current = path.join(this.dir, CURRENT);
    this.#currentBytes ??= await fs.stat(current).then((s) => s.size, () => 0);
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
        await fs.appendFile(current, chunk, { mode: 0o600 });
        this.#currentBytes += chunkBytes;
      }
      if (this.#queue.length > 0) await this.#rotate();
    }
  }

  async #rotate(): Promise<void> {
    const max = this.options.maxFiles;
    await fs.rm(path.join(this.dir, `app.${max - 1}.log`), { force: true });
    for (let index = max - 2; index >= 1; index -= 1) {
      await fs.rename(path.join(this.dir, `app.${index}.log`), path.join(this.dir, `app.${index + 1}.log`)).catch(() => undefined);
    }
    await fs.rename(path.join(this.dir, CURRENT), path.join(this.dir, 'app.1.log')).catch(() => undefined);
    this.#currentBytes = 0;
  }

  async flush(): Promise<void> {
    while (this.#draining) await this.#draining;
  }
}

export class AppLogs {
  readonly #writers = new Map<string, FileWriter>();
  readonly #options: Required<AppLogOptions>;

  constructor(options: AppLogOptions) {
    this.#options = {
      maxFiles: 5, maxFileBytes: 10 * 1024 * 1024, maxLineBytes: 8 * 1024, maxPendingBytes: 1024 * 1024, clock: () => new Date(),
      ...options,
    };
  }

  #dir(packageId: string): string {
    return path.join(this.#options.root, packageId);
  }

  writer(packageId: string): AppLogWriter {
    let writer = this.#writers.get(packageId);
    if (!writer) {
      writer = new FileWriter(this.#dir(packageId), this.#options);
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
    await this.flush(packageId);
    const names = await fs.readdir(this.#dir(packageId)).catch(() => [] as string[]);
    const order = (name: string): number => (name === CURRENT ? 0 : Number(/^app\.(\d+)\.log$/.exec(name)?.[1] ?? -1));
    const logs = names.filter((name) => order(name) >= 0).sort((a, b) => order(b) - order(a));
    return Promise.all(logs.map(async (name) => ({ name, size: (await fs.stat(path.join(this.#dir(packageId), name))).size })));
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
        const full = path.join(this.#dir(packageId), file.name);
        const { size, mtime } = await fs.stat(full);
        const header = { name: `${packageId}/${file.name}`, size, mtime, mode: 0o600 };
        if (size === 0) pack.entry(header, '');
        else await pipeline(createReadStream(full, { start: 0, end: size - 1 }), pack.entry(header));
      }
      pack.finalize();
    })().catch((error: Error) => pack.destroy(error));
    pipeline(pack, createGzip(), output).catch((error: Error) => output.destroy(error));
    return output;
  }

  async remove(packageId: string): Promise<void> {
    const writer = this.#writers.get(packageId);
    this.#writers.delete(packageId);
    await writer?.flush();
    await eraseTree(this.#dir(packageId));
  }

  async flush(packageId?: string): Promise<void> {
    const writers = packageId ? [this.#writers.get(packageId)] : [...this.#writers.values()];
    for (const writer of writers) await writer?.flush();
  }

  async close(): Promise<void> {
    await this.flush();
  }
}
