/**
 * Per-app encrypted key-value storage.
 *
 * Design: one append-only log per app. Each acknowledged write is one record appended with a
 * synchronous write (the log is opened O_DSYNC: the write returns once the record and what
 * reading it back needs are on disk, what a write then fdatasync guarantee, in one call into the
 * thread pool instead of two), so a put costs one sync, like writing a file; a crash mid-append
 * leaves a torn tail, which the next open cuts off, so a key keeps its old value or has the new
 * one, never a mix. Records are AES-256-GCM under a key derived for this app from the device key; the
 * additional data binds each record to the app and to its position in the log, so a record
 * moved to another app, another log or another place fails authentication.
 *
 * Only the index lives in memory: for each live key, where its latest record starts in the log,
 * how long it is, its position (for the additional data) and its size. Values stay on disk and
 * are read back with one positional read and authenticated again on every cache miss, so a value
 * altered on disk after the open fails with E_STORAGE_CORRUPT too. Decrypted values are kept in
 * one LRU cache bounded in bytes and shared by every app of a gateway (ValueCache), so what the
 * gateway holds does not grow with what its apps store. The log is compacted when dead records
 * outweigh live ones; compaction is housekeeping after a write is acknowledged, never part of it.
 *
 * Group commit: puts and deletes that arrive while a sync is under way wait for it and are then
 * written together, one synchronous write for all of them, each acknowledged only once that
 * write is done. They are judged (quota, whether a deleted key exists) one after another in the
 * order they came, as if each were alone; a group the disk refuses is refused whole and cut off.
 * An app awaiting each put pays one sync per put, as before; one with many in flight pays one
 * per group instead of one per put.
 *
 * Record: [u32 BE length of what follows][12-byte IV][ciphertext][16-byte tag]
 * Plaintext: [u8 op (1 put, 2 delete)][u8 type (1 string, 2 bytes)][u16 BE key length][key][value]
 * (the format 0.1.0 wrote, unchanged)
 */
import { type CipherGCM, createCipheriv, createDecipheriv, createSecretKey, type KeyObject, randomFillSync } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { LRUCache } from 'lru-cache';
import { fail, toIsogateError } from '../../sdk/errors.js';
import type { DeviceKeys } from '../device/index.js';
import { DataDir, eraseTree, Mutex } from '../durable/index.js';
import type { StorageHost } from '../sandbox/bridge.js';

const LOG_FILE = 'data.log';
const COMPACT_FILE = 'data.log.compact';
const AAD_PREFIX = 'isogate-storage-v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const OP_PUT = 1;
const OP_DELETE = 2;
const TYPE_STRING = 1;
const TYPE_BYTES = 2;
const COMPACT_MIN_BYTES = 64 * 1024;
/**
 * At most this many bytes of records go into one group commit: the largest value (1 MiB) still
 * fits with room to spare, and a failed group never refuses more than a few MiB of writes.
 */
const GROUP_MAX_BYTES = 4 * 1024 * 1024;
/** Reads and writes of whole stretches of the log (opening, compaction) go in pieces of this size. */
const IO_CHUNK_BYTES = 1024 * 1024;
/**
 * Random IVs are drawn this many at a time: one call into the CSPRNG costs several microseconds
 * whatever its size, and a put pays it on its way to the disk. Each IV is still fresh random
 * bytes, used once (IVs are written in the clear, so holding the next few reveals nothing).
 */
const IV_POOL = Buffer.allocUnsafe(IV_BYTES * 256);
let ivPoolUsed = IV_POOL.length;

function fillIv(iv: Buffer): void {
  if (ivPoolUsed === IV_POOL.length) {
    randomFillSync(IV_POOL);
    ivPoolUsed = 0;
  }
  IV_POOL.copy(iv, 0, ivPoolUsed, ivPoolUsed + IV_BYTES);
  ivPoolUsed += IV_BYTES;
}
/**
 * What a cached entry costs beyond its value: the key (kept as a JS string, up to 2 bytes a
 * character) and the cache's own node and map entry. Counting it keeps a flood of tiny values
 * within the bound as well.
 */
const CACHE_ENTRY_OVERHEAD = 96;
/**
 * The cache bound of a gateway: 8 MiB for all its apps together. That holds any 7 values of
 * the largest size (1 MiB) or tens of thousands of small readings (the common case, which is
 * what makes a get after a put cost no read), and stays a fifth of the 40 MB the memory
 * benchmark allows 20 running apps in all.
 */
export const DEFAULT_CACHE_BYTES = 8 * 1024 * 1024;

export interface StorageOptions {
  /** The app's storage directory. */
  dir: string;
  packageId: string;
  /** 32 bytes, derived for this app. */
  key: Buffer;
  quotaBytes: number;
  maxKeyBytes?: number;
  maxValueBytes?: number;
  /** The app's storage directory as checked from the data directory's root; `DataDir.of(dir)` if not given. */
  root?: DataDir;
  /** Shared by every app of a gateway; a store of its own (DEFAULT_CACHE_BYTES) if not given. */
  cache?: ValueCache;
  /** A failure of background work (compaction): the write that led to it has succeeded already. */
  onError?: (error: Error) => void;
}

export interface AppStorage extends StorageHost {
  /** Bytes of this app's decrypted values (with their keys' overhead) held in memory now. */
  readonly cachedBytes: number;
  close(): Promise<void>;
}

type Value = string | Uint8Array;

/** Keys never become paths here, but apps port code from file-based stores: refuse what would be a traversal there. */
export function checkStorageKey(key: unknown, maxKeyBytes = 512): string {
  if (typeof key !== 'string' || key.length === 0) throw fail('E_STORAGE_KEY', 'A storage key is a non-empty string');
  if (Buffer.byteLength(key) > maxKeyBytes) throw fail('E_STORAGE_KEY', `A storage key is at most ${maxKeyBytes} bytes`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(key)) throw fail('E_STORAGE_KEY', 'A storage key has no NUL or control characters');
  // Stored as UTF-8, a lone surrogate comes back as U+FFFD: two keys would become one after a restart.
  if (!key.isWellFormed()) throw fail('E_STORAGE_KEY', 'A storage key has no lone surrogate (UTF-16 that is not text); it could not be stored as UTF-8');
  if (key.startsWith('/') || key.includes('\\') || key.split('/').some((segment) => segment === '..' || segment === '.')) {
    throw fail('E_STORAGE_KEY', `"${key}" looks like a path escape (leading /, backslash, . or .. segment); storage keys are plain names`);
  }
  return key;
}

function valueBytes(value: Value): number {
  return typeof value === 'string' ? Buffer.byteLength(value) : value.byteLength;
}

function entrySize(key: string, value: Value): number {
  return Buffer.byteLength(key) + valueBytes(value);
}

function copyOut(value: Value): Value {
  return typeof value === 'string' ? value : new Uint8Array(value);
}

/** Where a key's latest record is in the log. */
interface IndexEntry {
  /** Byte offset of the record's length prefix. */
  offset: number;
  /** The whole record, length prefix included. */
  length: number;
  /** Its position in the log, bound into the additional data. */
  sequence: number;
  /** Key plus value bytes, what the quota counts. */
  bytes: number;
}

/** A put or delete waiting for the next group commit. */
interface PendingWrite {
  op: typeof OP_PUT | typeof OP_DELETE;
  key: string;
  /** A put's value, the app's copy taken when it was asked for. */
  value?: Value;
  /** A put's key plus value bytes. */
  bytes: number;
  resolve(deleted: boolean): void;
  reject(error: Error): void;
}

interface CacheScope {
  readonly prefix: string;
  bytes: number;
  readonly keys: Set<string>;
}

interface Cached {
  readonly value: Value;
  readonly size: number;
  readonly scope: CacheScope;
  readonly key: string;
}

/** Decrypted values of every app of a gateway, bounded in bytes (lru-cache's maxSize). */
export class ValueCache {
  readonly #lru: LRUCache<string, Cached>;
  #scopes = 0;

  constructor(readonly maxBytes: number = DEFAULT_CACHE_BYTES) {
    this.#lru = new LRUCache<string, Cached>({
      maxSize: maxBytes,
      sizeCalculation: (entry) => entry.size,
      dispose: (entry) => {
        entry.scope.bytes -= entry.size;
        entry.scope.keys.delete(entry.key);
      },
    });
  }

  /** Bytes held for all apps together; never above maxBytes. */
  get bytes(): number {
    return this.#lru.calculatedSize;
  }

  scope(): CacheScope {
    this.#scopes += 1;
    return { prefix: `${this.#scopes}\u0000`, bytes: 0, keys: new Set() };
  }

  get(scope: CacheScope, key: string): Value | undefined {
    return this.#lru.get(scope.prefix + key)?.value;
  }

  set(scope: CacheScope, key: string, value: Value): void {
    const entry: Cached = { value, size: valueBytes(value) + 2 * key.length + CACHE_ENTRY_OVERHEAD, scope, key };
    this.#lru.set(scope.prefix + key, entry);
    // A value larger than the whole bound is not kept (and an older one for the key is dropped).
    if (this.#lru.peek(scope.prefix + key) === entry) {
      scope.bytes += entry.size;
      scope.keys.add(key);
    }
  }

  delete(scope: CacheScope, key: string): void {
    this.#lru.delete(scope.prefix + key);
  }

  clear(scope: CacheScope): void {
    for (const key of [...scope.keys]) this.#lru.delete(scope.prefix + key);
  }
}

/** An open log file; a handle retired by compaction or close stays open for reads under way. */
class LogFile {
  readers = 0;
  #retired = false;

  constructor(readonly handle: FileHandle) {}

  async read(offset: number, length: number): Promise<Buffer> {
    this.readers += 1;
    try {
      const buffer = Buffer.allocUnsafe(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await this.handle.read(buffer, done, length - done, offset + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return done === length ? buffer : buffer.subarray(0, done);
    } finally {
      this.readers -= 1;
      if (this.#retired && this.readers === 0) void this.handle.close().catch(() => undefined);
    }
  }

  async write(data: Buffer, offset: number): Promise<void> {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.handle.write(data, done, data.length - done, offset + done);
      done += bytesWritten;
    }
  }

  retire(): void {
    this.#retired = true;
    if (this.readers === 0) void this.handle.close().catch(() => undefined);
  }
}

class LogStorage implements AppStorage {
  readonly #index = new Map<string, IndexEntry>();
  readonly #mutex = new Mutex();
  readonly #dir: DataDir;
  readonly #cache: ValueCache;
  readonly #scope: CacheScope;
  #file: LogFile | undefined;
  #sequence = 0;
  #fileBytes = 0;
  #liveBytes = 0;
  #compactionQueued = false;
  /** After a failed compaction the next attempt waits until the log has grown this far. */
  #compactRetryAt = 0;
  /** A compacted log renamed in whose directory entry is not yet known to be on disk. */
  #directorySyncOwed = false;
  /** Bytes past #fileBytes from a write that failed. */
  #tailUncommitted = false;
  /** Puts and deletes waiting for the next group commit, in the order they were asked for. */
  #pending: PendingWrite[] = [];
  #committing = false;
  /** The app's key as a KeyObject, made once: no key copy and check per record. */
  readonly #key: KeyObject;
  /**
   * A cipher for the next record, made while the disk writes the last one: making one (a fresh
   * IV, the cipher, its additional data) is most of what sealing a small record costs, and this
   * takes it off the way of the next put. Used once, and only for the sequence number it was
   * made for; anything else gets a cipher of its own.
   */
  #nextCipher: { sequence: number; iv: Buffer; cipher: CipherGCM } | undefined;
  /** The additional data: its fixed part, then room for a record's sequence number, written per record. */
  readonly #aadBuffer: Buffer;
  readonly #aadPrefixBytes: number;

  private constructor(
    private readonly options: Required<Omit<StorageOptions, 'root' | 'cache'>>,
    dir: DataDir,
    cache: ValueCache,
  ) {
    this.#dir = dir;
    this.#cache = cache;
    this.#scope = cache.scope();
    this.#key = createSecretKey(options.key);
    const prefix = Buffer.from(`${AAD_PREFIX}\u0000${options.packageId}\u0000`);
    this.#aadPrefixBytes = prefix.length;
    // A sequence number is a safe integer: at most 16 decimal digits.
    this.#aadBuffer = Buffer.alloc(prefix.length + 16);
    prefix.copy(this.#aadBuffer);
  }

  static async open(options: StorageOptions): Promise<LogStorage> {
    if (options.key.length !== 32) throw fail('E_INTERNAL', 'A storage key is 32 bytes');
    const { root, cache, ...rest } = options;
    const storage = new LogStorage(
      { maxKeyBytes: 512, maxValueBytes: 1024 * 1024, onError: reportInBackground(options.packageId), ...rest },
      root ?? DataDir.of(options.dir),
      cache ?? new ValueCache(),
    );
    await storage.#dir.mkdir('', 0o700);
    await storage.#load();
    return storage;
  }

  get cachedBytes(): number {
    return this.#scope.bytes;
  }

  get #maxRecordBytes(): number {
    return 4 + IV_BYTES + 4 + this.options.maxKeyBytes + this.options.maxValueBytes + TAG_BYTES;
  }

  /**
   * The same bytes 0.1.0 bound: prefix, then the sequence number in decimal. One buffer reused:
   * setAAD takes the bytes in at once, so the next record may write over them.
   */
  #aad(sequence: number): Buffer {
    const digits = this.#aadBuffer.write(String(sequence), this.#aadPrefixBytes, 'latin1');
    return this.#aadBuffer.subarray(0, this.#aadPrefixBytes + digits);
  }

  /** A fresh random IV and a cipher with it and the record's additional data. */
  #cipher(sequence: number): { sequence: number; iv: Buffer; cipher: CipherGCM } {
    const iv = Buffer.allocUnsafe(IV_BYTES);
    fillIv(iv);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv);
    cipher.setAAD(this.#aad(sequence));
    return { sequence, iv, cipher };
  }

  /** One record, built in one buffer: length, a fresh random IV, ciphertext, tag. */
  #seal(plain: Buffer, sequence: number): Buffer {
    const record = Buffer.allocUnsafe(4 + IV_BYTES + plain.length + TAG_BYTES);
    record.writeUInt32BE(IV_BYTES + plain.length + TAG_BYTES, 0);
    const next = this.#nextCipher;
    this.#nextCipher = undefined;
    const { iv, cipher } = next?.sequence === sequence ? next : this.#cipher(sequence);
    iv.copy(record, 4);
    // GCM is a stream cipher: update gives exactly as many bytes as it is given, final none.
    // Checked all the same: the record is unzeroed memory, and no byte of it may go to disk unset.
    const written = cipher.update(plain).copy(record, 4 + IV_BYTES) + cipher.final().length;
    if (written !== plain.length) throw fail('E_INTERNAL', `AES-GCM gave ${written} bytes for ${plain.length}`);
    cipher.getAuthTag().copy(record, 4 + IV_BYTES + plain.length);
    return record;
  }

  #open(record: Buffer, sequence: number): Buffer | undefined {
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, record.subarray(0, IV_BYTES));
      decipher.setAAD(this.#aad(sequence));
      decipher.setAuthTag(record.subarray(record.length - TAG_BYTES));
      return Buffer.concat([decipher.update(record.subarray(IV_BYTES, record.length - TAG_BYTES)), decipher.final()]);
    } catch {
      return undefined;
    }
  }

  #corrupt(offset: number): Error {
    return fail(
      'E_STORAGE_CORRUPT',
      `The storage of ${this.options.packageId} fails authentication at byte ${offset}: it was altered or belongs to another app`,
    );
  }

  /**
   * Reads the log front to back in pieces (never whole), authenticating every record and
   * keeping only where each live key's latest record is.
   */
  async #load(): Promise<void> {
    const file = new LogFile(await this.#dir.open(LOG_FILE, 'rw+dsync', 0o600));
    try {
      const size = (await file.handle.stat()).size;
      let window: Buffer = Buffer.alloc(0);
      let windowStart = 0;
      const bytesAt = async (offset: number, length: number): Promise<Buffer> => {
        if (offset < windowStart || offset + length > windowStart + window.length) {
          window = await file.read(offset, Math.min(Math.max(length, IO_CHUNK_BYTES), size - offset));
          windowStart = offset;
        }
        return window.subarray(offset - windowStart, offset - windowStart + length);
      };
      let offset = 0;
      while (offset + 4 <= size) {
        const length = (await bytesAt(offset, 4)).readUInt32BE(0);
        const end = offset + 4 + length;
        // A length no record of this store has is not a torn append (whose length, written
        // first, is whole or absent) but bytes someone else wrote: a log overwritten by an
        // erasure (ones, then zeros) or damaged. Cutting there would silently empty the store.
        if (length < IV_BYTES + TAG_BYTES + 4 || 4 + length > this.#maxRecordBytes) throw this.#corrupt(offset);
        if (end > size) break;
        const plain = this.#open(await bytesAt(offset + 4, length), this.#sequence);
        if (!plain) {
          // A bad last record is a torn append; a bad record with good ones after it is tampering.
          if (end === size) break;
          throw this.#corrupt(offset);
        }
        this.#apply(plain, { offset, length: 4 + length, sequence: this.#sequence, bytes: 0 });
        this.#sequence += 1;
        offset = end;
      }
      if (offset < size) {
        await file.handle.truncate(offset);
        await file.handle.datasync();
      }
      await this.#dir.syncDirectory();
      this.#fileBytes = offset;
    } catch (error) {
      await file.handle.close();
      throw error;
    }
    this.#file = file;
  }

  #apply(plain: Buffer, entry: IndexEntry): void {
    const keyLength = plain.readUInt16BE(2);
    const key = plain.subarray(4, 4 + keyLength).toString('utf8');
    const previous = this.#index.get(key);
    if (previous) this.#liveBytes -= previous.bytes;
    if (plain[0] === OP_DELETE) {
      this.#index.delete(key);
      return;
    }
    entry.bytes = keyLength + (plain.length - 4 - keyLength);
    this.#index.set(key, entry);
    this.#liveBytes += entry.bytes;
  }

  #decode(plain: Buffer): { key: string; value: Value | undefined } {
    const keyLength = plain.readUInt16BE(2);
    const key = plain.subarray(4, 4 + keyLength).toString('utf8');
    if (plain[0] !== OP_PUT) return { key, value: undefined };
    const raw = plain.subarray(4 + keyLength);
    return { key, value: plain[1] === TYPE_STRING ? raw.toString('utf8') : new Uint8Array(raw) };
  }

  #encode(op: number, key: string, value?: Value): Buffer {
    const keyLength = Buffer.byteLength(key);
    const valueLength = value === undefined ? 0 : valueBytes(value);
    const plain = Buffer.allocUnsafe(4 + keyLength + valueLength);
    plain[0] = op;
    plain[1] = typeof value === 'string' ? TYPE_STRING : TYPE_BYTES;
    plain.writeUInt16BE(keyLength, 2);
    plain.write(key, 4, 'utf8');
    if (typeof value === 'string') plain.write(value, 4 + keyLength, 'utf8');
    else if (value !== undefined) plain.set(value, 4 + keyLength);
    return plain;
  }

  /**
   * Records written together at the end of what is committed and synced; returns where each
   * is. A write the disk cannot take (full, failing) is refused with E_STORAGE_FULL or E_IO and
   * leaves the index as it was: the app is told, and nothing it was told succeeded is lost.
   */
  async #append(plains: Buffer[]): Promise<IndexEntry[]> {
    try {
      return await this.#appendRecords(plains);
    } catch (error) {
      throw toIsogateError(error);
    }
  }

  async #appendRecords(plains: Buffer[]): Promise<IndexEntry[]> {
    const file = this.#file;
    if (!file) throw fail('E_STATE', 'This storage is closed');
    if (this.#directorySyncOwed) {
      await this.#dir.syncDirectory();
      this.#directorySyncOwed = false;
    }
    if (this.#tailUncommitted) {
      await file.handle.truncate(this.#fileBytes);
      this.#tailUncommitted = false;
    }
    const entries: IndexEntry[] = [];
    const records: Buffer[] = [];
    let offset = this.#fileBytes;
    for (const [i, plain] of plains.entries()) {
      const record = this.#seal(plain, this.#sequence + i);
      entries.push({ offset, length: record.length, sequence: this.#sequence + i, bytes: 0 });
      records.push(record);
      offset += record.length;
    }
    const record = records.length === 1 ? records[0]! : Buffer.concat(records, offset - this.#fileBytes);
    // At an explicit offset, not O_APPEND, and cut off before the next one: a record whose write
    // or sync failed was never acknowledged and must not stay in the log, where it would take
    // the position (and so the additional data) of the next record, which does get acknowledged.
    try {
      // The log is opened O_DSYNC: the write returns once it is on disk, as write then
      // fdatasync would, with one call into the thread pool instead of two.
      const writing = file.write(record, this.#fileBytes);
      // The thread pool writes meanwhile; this thread is idle until it is done.
      this.#nextCipher = this.#cipher(this.#sequence + entries.length);
      await writing;
    } catch (error) {
      // Cut off now where the disk allows it: a record whose sync failed may still reach the
      // disk, and a refused put must not come back after a restart.
      this.#tailUncommitted = true;
      await file.handle.truncate(this.#fileBytes).then(
        () => {
          this.#tailUncommitted = false;
        },
        () => undefined,
      );
      throw error;
    }
    this.#sequence += entries.length;
    this.#fileBytes = offset;
    return entries;
  }

  /** The record of `entry` authenticated and decrypted, from `file`. */
  async #readPlain(file: LogFile, entry: IndexEntry): Promise<Buffer> {
    const { offset, length, sequence } = entry;
    const record = await file.read(offset, length);
    const plain = record.length === length && record.readUInt32BE(0) === length - 4 ? this.#open(record.subarray(4), sequence) : undefined;
    if (!plain) throw this.#corrupt(offset);
    return plain;
  }

  async get(key: string): Promise<Value | undefined> {
    checkStorageKey(key, this.options.maxKeyBytes);
    const cached = this.#cache.get(this.#scope, key);
    if (cached !== undefined) return copyOut(cached);
    // The entry and the file are taken together: compaction swaps both at once, and a retired
    // file stays open until this read is done.
    const entry = this.#index.get(key);
    const file = this.#file;
    if (!entry) return undefined;
    if (!file) throw fail('E_STATE', 'This storage is closed');
    const { key: stored, value } = this.#decode(await this.#readPlain(file, entry));
    if (stored !== key || value === undefined) throw this.#corrupt(entry.offset);
    // Cached only if no put or delete of this key came in meanwhile.
    if (this.#index.get(key) === entry) this.#cache.set(this.#scope, key, value);
    return copyOut(value);
  }

  async put(key: string, value: Value): Promise<void> {
    checkStorageKey(key, this.options.maxKeyBytes);
    if (typeof value !== 'string' && !(value instanceof Uint8Array))
      throw fail('E_STORAGE_VALUE', `A stored value is a string or bytes, not ${value === null ? 'null' : typeof value}`);
    if (typeof value === 'string' && !value.isWellFormed()) {
      throw fail('E_STORAGE_VALUE', 'A stored string has no lone surrogate: it is stored as UTF-8, which cannot hold one; store such data as bytes');
    }
    const size = valueBytes(value);
    if (size > this.options.maxValueBytes) throw fail('E_STORAGE_QUOTA', `A value is at most ${this.options.maxValueBytes} bytes; this one is ${size}`);
    // The value as it is now: the caller may change its bytes while the put waits for its group.
    const copy = copyOut(value);
    await this.#enqueue(OP_PUT, key, copy, entrySize(key, copy));
    this.#compactLater();
  }

  async delete(key: string): Promise<boolean> {
    checkStorageKey(key, this.options.maxKeyBytes);
    const deleted = await this.#enqueue(OP_DELETE, key, undefined, 0);
    if (deleted) this.#compactLater();
    return deleted;
  }

  #enqueue(op: PendingWrite['op'], key: string, value: Value | undefined, bytes: number): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      this.#pending.push({ op, key, ...(value === undefined ? {} : { value }), bytes, resolve, reject });
      if (this.#committing) return;
      this.#committing = true;
      void this.#mutex.run(() => this.#commitPending());
    });
  }

  /** Commits what is pending, group after group, until nothing is; the mutex keeps compaction out meanwhile. */
  async #commitPending(): Promise<void> {
    try {
      while (this.#pending.length > 0) {
        let take = 0;
        let bytes = 0;
        while (take < this.#pending.length && (take === 0 || bytes + this.#pending[take]!.bytes <= GROUP_MAX_BYTES)) {
          bytes += this.#pending[take]!.bytes;
          take += 1;
        }
        await this.#commitGroup(this.#pending.splice(0, take));
      }
    } finally {
      this.#committing = false;
    }
  }

  /**
   * Judges each write of the group in order against the state the ones before it leave (quota,
   * whether a deleted key exists), writes the records of those that stand with one write and one
   * sync, and only then applies them and answers. A refused group changes nothing.
   */
  async #commitGroup(group: PendingWrite[]): Promise<void> {
    /** Key -> its bytes after the group's writes so far (undefined: deleted). */
    const after = new Map<string, number | undefined>();
    const bytesOf = (key: string): number | undefined => (after.has(key) ? after.get(key) : this.#index.get(key)?.bytes);
    let live = this.#liveBytes;
    const writing: PendingWrite[] = [];
    /** Deletes of keys that do not exist: no record; answered false once the group is decided. */
    const absent: { write: PendingWrite; dependsOnGroup: boolean }[] = [];
    for (const write of group) {
      const previous = bytesOf(write.key);
      if (write.op === OP_DELETE) {
        if (previous === undefined) {
          absent.push({ write, dependsOnGroup: after.has(write.key) });
          continue;
        }
        live -= previous;
        after.set(write.key, undefined);
        writing.push(write);
        continue;
      }
      const needed = live - (previous ?? 0) + write.bytes;
      if (needed > this.options.quotaBytes) {
        write.reject(
          fail('E_STORAGE_QUOTA', `Storage quota of ${this.options.quotaBytes} bytes exceeded: ${needed} bytes needed`, {
            quota: this.options.quotaBytes,
            needed,
          }),
        );
        continue;
      }
      live = needed;
      after.set(write.key, write.bytes);
      writing.push(write);
    }
    let entries: IndexEntry[] = [];
    try {
      if (writing.length > 0) entries = await this.#append(writing.map((write) => this.#encode(write.op, write.key, write.value)));
    } catch (error) {
      const refusal = error as Error;
      for (const write of writing) write.reject(refusal);
      // Absent only because of a write that was refused: not known to be absent after all.
      for (const { write, dependsOnGroup } of absent) {
        if (dependsOnGroup) write.reject(refusal);
        else write.resolve(false);
      }
      return;
    }
    for (const [i, write] of writing.entries()) {
      if (write.op === OP_PUT) {
        entries[i]!.bytes = write.bytes;
        this.#index.set(write.key, entries[i]!);
        this.#cache.set(this.#scope, write.key, write.value!);
      } else {
        this.#index.delete(write.key);
        this.#cache.delete(this.#scope, write.key);
      }
    }
    this.#liveBytes = live;
    for (const write of writing) write.resolve(write.op === OP_DELETE);
    for (const { write } of absent) write.resolve(false);
  }

  async list(prefix = ''): Promise<string[]> {
    if (typeof prefix !== 'string') throw fail('E_STORAGE_KEY', 'A prefix is a string');
    return [...this.#index.keys()].filter((key) => key.startsWith(prefix)).sort();
  }

  async usage(): Promise<{ used: number; quota: number }> {
    return { used: this.#liveBytes, quota: this.options.quotaBytes };
  }

  #compactionWorthIt(): boolean {
    return this.#fileBytes >= COMPACT_MIN_BYTES && this.#fileBytes >= 3 * this.#liveBytes && this.#fileBytes >= this.#compactRetryAt;
  }

  /**
   * Queues a compaction behind the write that made it worth it. The write is acknowledged
   * already; a failed compaction is reported and tried again once the log has grown by half.
   */
  #compactLater(): void {
    if (this.#compactionQueued || !this.#compactionWorthIt()) return;
    this.#compactionQueued = true;
    void this.#mutex.run(async () => {
      this.#compactionQueued = false;
      if (!this.#file || !this.#compactionWorthIt()) return;
      try {
        await this.#compact(this.#file);
        this.#compactRetryAt = 0;
      } catch (error) {
        this.#compactRetryAt = this.#fileBytes + Math.max(COMPACT_MIN_BYTES, this.#fileBytes / 2);
        this.options.onError(toIsogateError(error));
      }
    });
  }

  /**
   * Rewrites the live records into a new log and renames it over the old one. Until the rename
   * has happened the old log and its handle stay as they are, so a failure anywhere before it
   * leaves the store working on its old file; from the rename on, the new file is the log.
   */
  async #compact(source: LogFile): Promise<void> {
    await this.#dir.remove(COMPACT_FILE);
    const target = new LogFile(await this.#dir.open(COMPACT_FILE, 'wx+dsync', 0o600));
    const entries = [...this.#index].sort(([, a], [, b]) => a.offset - b.offset);
    const placed: IndexEntry[] = [];
    let sequence = 0;
    let bytes = 0;
    try {
      let batch: Buffer[] = [];
      let batchBytes = 0;
      let batchStart = 0;
      const flush = async (): Promise<void> => {
        if (batchBytes === 0) return;
        await target.write(Buffer.concat(batch, batchBytes), batchStart);
        batch = [];
        batchStart += batchBytes;
        batchBytes = 0;
      };
      for (const [, entry] of entries) {
        const record = this.#seal(await this.#readPlain(source, entry), sequence);
        placed.push({ offset: bytes, length: record.length, sequence, bytes: entry.bytes });
        batch.push(record);
        batchBytes += record.length;
        sequence += 1;
        bytes += record.length;
        if (batchBytes >= IO_CHUNK_BYTES) await flush();
      }
      await flush();
      await target.handle.sync();
      await this.#dir.rename(COMPACT_FILE, LOG_FILE);
    } catch (error) {
      await target.handle.close().catch(() => undefined);
      await this.#dir.remove(COMPACT_FILE).catch(() => undefined);
      throw error;
    }
    // New entries, not the old ones changed: a read under way keeps the place it started from.
    for (const [i, [key]] of entries.entries()) this.#index.set(key, placed[i]!);
    this.#file = target;
    this.#tailUncommitted = false;
    this.#sequence = sequence;
    this.#fileBytes = bytes;
    source.retire();
    try {
      await this.#dir.syncDirectory();
    } catch (error) {
      // The rename is done but maybe not on disk yet: no write is acknowledged until it is.
      this.#directorySyncOwed = true;
      throw error;
    }
  }

  async close(): Promise<void> {
    await this.#mutex.run(async () => {
      this.#file?.retire();
      this.#file = undefined;
      this.#cache.clear(this.#scope);
    });
  }
}

/** Background failures go to the process's warnings unless the caller routes them elsewhere. */
function reportInBackground(packageId: string): (error: Error) => void {
  return (error) =>
    process.emitWarning(`storage of ${packageId}: compaction failed and will be retried: ${error.message}`, { code: 'ISOGATE_STORAGE_COMPACTION' });
}

export async function openAppStorage(options: StorageOptions): Promise<AppStorage> {
  return LogStorage.open(options);
}

/** Every app's storage under one root, one open log per app, one value cache for all. */
export class StorageService {
  readonly #open = new Map<string, Promise<AppStorage>>();
  readonly #root: DataDir;
  readonly #cache: ValueCache;

  constructor(
    private readonly options: {
      root: string;
      keys: DeviceKeys;
      /** Bound of the decrypted values held for all apps together. */
      cacheBytes?: number;
      /** Background failures (compaction) of an app's storage; process warnings if not given. */
      onError?: (packageId: string, error: Error) => void;
    },
  ) {
    this.#root = DataDir.of(options.root);
    this.#cache = new ValueCache(options.cacheBytes ?? DEFAULT_CACHE_BYTES);
  }

  /** Bytes of decrypted values held for all apps; at most the cache bound. */
  get cachedBytes(): number {
    return this.#cache.bytes;
  }

  open(packageId: string, quotaBytes: number): Promise<AppStorage> {
    let storage = this.#open.get(packageId);
    if (!storage) {
      const onError = this.options.onError;
      storage = openAppStorage({
        dir: this.#root.path(packageId),
        root: this.#root.sub(packageId),
        cache: this.#cache,
        packageId,
        key: this.options.keys.derive('storage', packageId),
        quotaBytes,
        ...(onError ? { onError: (error: Error) => onError(packageId, error) } : {}),
      });
      storage.catch(() => this.#open.delete(packageId));
      this.#open.set(packageId, storage);
    }
    return storage;
  }

  /**
   * Opens an app's storage ahead of its first call, if the app has stored anything before (an
   * app that never did is not given an empty store by this): at its start, so that the read of
   * its log runs beside the isolate's start. A failed open is not kept (see `open`): the app's
   * own call meets the failure.
   */
  async openIfStored(packageId: string, quotaBytes: number): Promise<void> {
    if (this.#open.has(packageId)) return;
    const stats = await this.#root.lstat(packageId).catch(() => undefined);
    if (stats) await this.open(packageId, quotaBytes).catch(() => undefined);
  }

  async close(packageId: string): Promise<void> {
    const storage = this.#open.get(packageId);
    this.#open.delete(packageId);
    await (await storage?.catch(() => undefined))?.close();
  }

  /** Closes and erases an app's storage (overwritten before unlink); a link in it is refused, not followed. */
  async wipe(packageId: string): Promise<void> {
    await this.close(packageId);
    await eraseTree(this.#root.path(packageId), this.#root);
  }

  async closeAll(): Promise<void> {
    for (const packageId of [...this.#open.keys()]) await this.close(packageId);
  }
}
