/**
 * Per-app encrypted key-value storage.
 *
 * Design: one append-only log per app. Each acknowledged write is one record appended and
 * fdatasync'ed, so a put costs one sync, like writing a file; a crash mid-append leaves a torn
 * tail, which the next open cuts off, so a key keeps its old value or has the new one, never a
 * mix. Records are AES-256-GCM under a key derived for this app from the device key; the
 * additional data binds each record to the app and to its position in the log, so a record
 * moved to another app, another log or another place fails authentication. The live values sit
 * in memory (the quota bounds them); the log is compacted when dead records outweigh live ones.
 *
 * Record: [u32 BE length of what follows][12-byte IV][ciphertext][16-byte tag]
 * Plaintext: [u8 op (1 put, 2 delete)][u8 type (1 string, 2 bytes)][u16 BE key length][key][value]
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { fail } from '../../sdk/errors.js';
import type { DeviceKeys } from '../device/index.js';
import { eraseTree, fsyncDirectory, Mutex, renameDurable } from '../durable/index.js';
import type { StorageHost } from '../sandbox/bridge.js';

const LOG_FILE = 'data.log';
const AAD_PREFIX = 'isogate-storage-v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const OP_PUT = 1;
const OP_DELETE = 2;
const TYPE_STRING = 1;
const TYPE_BYTES = 2;
const COMPACT_MIN_BYTES = 64 * 1024;

export interface StorageOptions {
  /** The app's storage directory. */
  dir: string;
  packageId: string;
  /** 32 bytes, derived for this app. */
  key: Buffer;
  quotaBytes: number;
  maxKeyBytes?: number;
  maxValueBytes?: number;
}

export interface AppStorage extends StorageHost {
  close(): Promise<void>;
}

type Value = string | Uint8Array;

/** Keys never become paths here, but apps port code from file-based stores: refuse what would be a traversal there. */
export function checkStorageKey(key: unknown, maxKeyBytes = 512): string {
  if (typeof key !== 'string' || key.length === 0) throw fail('E_STORAGE_KEY', 'A storage key is a non-empty string');
  if (Buffer.byteLength(key) > maxKeyBytes) throw fail('E_STORAGE_KEY', `A storage key is at most ${maxKeyBytes} bytes`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(key)) throw fail('E_STORAGE_KEY', 'A storage key has no NUL or control characters');
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

class LogStorage implements AppStorage {
  readonly #values = new Map<string, Value>();
  readonly #mutex = new Mutex();
  #handle: FileHandle | undefined;
  #sequence = 0;
  #fileBytes = 0;
  #liveBytes = 0;

  private constructor(private readonly options: Required<StorageOptions>) {}

  static async open(options: StorageOptions): Promise<LogStorage> {
    if (options.key.length !== 32) throw fail('E_INTERNAL', 'A storage key is 32 bytes');
    const storage = new LogStorage({ maxKeyBytes: 512, maxValueBytes: 1024 * 1024, ...options });
    await fs.mkdir(options.dir, { recursive: true, mode: 0o700 });
    await storage.#load();
    return storage;
  }

  get #file(): string {
    return path.join(this.options.dir, LOG_FILE);
  }

  #aad(sequence: number): Buffer {
    return Buffer.from(`${AAD_PREFIX}\u0000${this.options.packageId}\u0000${sequence}`);
  }

  #seal(plain: Buffer, sequence: number): Buffer {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.options.key, iv);
    cipher.setAAD(this.#aad(sequence));
    const body = Buffer.concat([cipher.update(plain), cipher.final()]);
    const length = Buffer.alloc(4);
    length.writeUInt32BE(IV_BYTES + body.length + TAG_BYTES);
    return Buffer.concat([length, iv, body, cipher.getAuthTag()]);
  }

  #open(record: Buffer, sequence: number): Buffer | undefined {
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.options.key, record.subarray(0, IV_BYTES));
      decipher.setAAD(this.#aad(sequence));
      decipher.setAuthTag(record.subarray(record.length - TAG_BYTES));
      return Buffer.concat([decipher.update(record.subarray(IV_BYTES, record.length - TAG_BYTES)), decipher.final()]);
    } catch {
      return undefined;
    }
  }

  async #load(): Promise<void> {
    const bytes = await fs.readFile(this.#file).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return Buffer.alloc(0);
      throw error;
    });
    let offset = 0;
    let goodEnd = 0;
    while (offset + 4 <= bytes.length) {
      const length = bytes.readUInt32BE(offset);
      const end = offset + 4 + length;
      if (length < IV_BYTES + TAG_BYTES + 4 || end > bytes.length) break;
      const plain = this.#open(bytes.subarray(offset + 4, end), this.#sequence);
      if (!plain) {
        // A bad last record is a torn append; a bad record with good ones after it is tampering.
        if (end === bytes.length) break;
        throw fail('E_STORAGE_CORRUPT', `The storage of ${this.options.packageId} fails authentication at byte ${offset}: it was altered or belongs to another app`);
      }
      this.#apply(plain);
      this.#sequence += 1;
      offset = end;
      goodEnd = end;
    }
    const handle = await fs.open(this.#file, 'a+', 0o600);
    try {
      if (goodEnd < bytes.length) {
        await handle.truncate(goodEnd);
        await handle.datasync();
      }
      await fsyncDirectory(this.options.dir);
    } catch (error) {
      await handle.close();
      throw error;
    }
    this.#handle = handle;
    this.#fileBytes = goodEnd;
  }

  #apply(plain: Buffer): void {
    const op = plain[0];
    const type = plain[1];
    const keyLength = plain.readUInt16BE(2);
    const key = plain.subarray(4, 4 + keyLength).toString('utf8');
    const previous = this.#values.get(key);
    if (previous !== undefined) this.#liveBytes -= entrySize(key, previous);
    if (op === OP_DELETE) {
      this.#values.delete(key);
      return;
    }
    const raw = plain.subarray(4 + keyLength);
    const value = type === TYPE_STRING ? raw.toString('utf8') : new Uint8Array(raw);
    this.#values.set(key, value);
    this.#liveBytes += entrySize(key, value);
  }

  #encode(op: number, key: string, value?: Value): Buffer {
    const keyBytes = Buffer.from(key);
    const header = Buffer.alloc(4);
    header[0] = op;
    header[1] = typeof value === 'string' ? TYPE_STRING : TYPE_BYTES;
    header.writeUInt16BE(keyBytes.length, 2);
    const valueBytes = value === undefined ? Buffer.alloc(0) : typeof value === 'string' ? Buffer.from(value) : Buffer.from(value);
    return Buffer.concat([header, keyBytes, valueBytes]);
  }

  async #append(plain: Buffer): Promise<void> {
    if (!this.#handle) throw fail('E_STATE', 'This storage is closed');
    const record = this.#seal(plain, this.#sequence);
    await this.#handle.write(record, 0, record.length, this.#fileBytes);
    await this.#handle.datasync();
    this.#sequence += 1;
    this.#fileBytes += record.length;
  }

  async get(key: string): Promise<Value | undefined> {
    checkStorageKey(key, this.options.maxKeyBytes);
    const value = this.#values.get(key);
    return value instanceof Uint8Array ? new Uint8Array(value) : value;
  }

  async put(key: string, value: Value): Promise<void> {
    checkStorageKey(key, this.options.maxKeyBytes);
    if (typeof value !== 'string' && !(value instanceof Uint8Array)) throw fail('E_STORAGE_KEY', 'A stored value is a string or bytes');
    const size = valueBytes(value);
    if (size > this.options.maxValueBytes) throw fail('E_STORAGE_QUOTA', `A value is at most ${this.options.maxValueBytes} bytes; this one is ${size}`);
    await this.#mutex.run(async () => {
      const previous = this.#values.get(key);
      const after = this.#liveBytes - (previous === undefined ? 0 : entrySize(key, previous)) + entrySize(key, value);
      if (after > this.options.quotaBytes) {
        throw fail('E_STORAGE_QUOTA', `Storage quota of ${this.options.quotaBytes} bytes exceeded: ${after} bytes needed`, { quota: this.options.quotaBytes, needed: after });
      }
      const copy = typeof value === 'string' ? value : new Uint8Array(value);
      await this.#append(this.#encode(OP_PUT, key, copy));
      this.#values.set(key, copy);
      this.#liveBytes = after;
      await this.#compactIfWorthIt();
    });
  }

  async delete(key: string): Promise<boolean> {
    checkStorageKey(key, this.options.maxKeyBytes);
    return this.#mutex.run(async () => {
      const previous = this.#values.get(key);
      if (previous === undefined) return false;
      await this.#append(this.#encode(OP_DELETE, key));
      this.#values.delete(key);
      this.#liveBytes -= entrySize(key, previous);
      await this.#compactIfWorthIt();
      return true;
    });
  }

  async list(prefix = ''): Promise<string[]> {
    if (typeof prefix !== 'string') throw fail('E_STORAGE_KEY', 'A prefix is a string');
    return [...this.#values.keys()].filter((key) => key.startsWith(prefix)).sort();
  }

  async usage(): Promise<{ used: number; quota: number }> {
    return { used: this.#liveBytes, quota: this.options.quotaBytes };
  }

  /** Rewrites the live records into a new log, atomically, when the dead ones dominate. */
  async #compactIfWorthIt(): Promise<void> {
    if (this.#fileBytes < COMPACT_MIN_BYTES || this.#fileBytes < 3 * this.#liveBytes) return;
    const temporary = `${this.#file}.compact`;
    const handle = await fs.open(temporary, 'w', 0o600);
    let sequence = 0;
    let bytes = 0;
    try {
      for (const [key, value] of this.#values) {
        const record = this.#seal(this.#encode(OP_PUT, key, value), sequence);
        await handle.write(record);
        sequence += 1;
        bytes += record.length;
      }
      await handle.sync();
    } finally {
      await handle.close();
    }
    await this.#handle!.close();
    await renameDurable(temporary, this.#file);
    this.#handle = await fs.open(this.#file, 'a+', 0o600);
    this.#sequence = sequence;
    this.#fileBytes = bytes;
  }

  async close(): Promise<void> {
    await this.#mutex.run(async () => {
      await this.#handle?.close();
      this.#handle = undefined;
    });
  }
}

export async function openAppStorage(options: StorageOptions): Promise<AppStorage> {
  return LogStorage.open(options);
}

/** Every app's storage under one root, one open log per app. */
export class StorageService {
  readonly #open = new Map<string, Promise<AppStorage>>();

  constructor(private readonly options: { root: string; keys: DeviceKeys }) {}

  #dir(packageId: string): string {
    return path.join(this.options.root, packageId);
  }

  open(packageId: string, quotaBytes: number): Promise<AppStorage> {
    let storage = this.#open.get(packageId);
    if (!storage) {
      storage = openAppStorage({ dir: this.#dir(packageId), packageId, key: this.options.keys.derive('storage', packageId), quotaBytes });
      storage.catch(() => this.#open.delete(packageId));
      this.#open.set(packageId, storage);
    }
    return storage;
  }

  async close(packageId: string): Promise<void> {
    const storage = this.#open.get(packageId);
    this.#open.delete(packageId);
    await (await storage?.catch(() => undefined))?.close();
  }

  /** Closes and erases an app's storage (overwritten before unlink). */
  async wipe(packageId: string): Promise<void> {
    await this.close(packageId);
    await eraseTree(this.#dir(packageId));
  }

  async closeAll(): Promise<void> {
    for (const packageId of [...this.#open.keys()]) await this.close(packageId);
  }
}
