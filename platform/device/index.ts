/**
 * The device key: the one master secret every per-app secret (storage keys, certificate-store
 * keys, integrity-record MACs) is derived from with HKDF, so one app's key says nothing about
 * another's and nothing is committed.
 *
 * Where the master key lives is a `DeviceKeyProvider`'s business. This build has one provider,
 * a key file (32 random bytes generated on first start, 0600 in a 0700 directory of the
 * gateway's user): anyone who can read that file, or the disk it is on, can decrypt every app's
 * storage, so the file is refused, not repaired, when anyone else could have read it. A real
 * device keeps the master key in a TPM or secure element instead (see docs/security.md): the
 * provider hands out a `DeviceKeys` whose derivations run inside the chip, and the key itself
 * never reaches the disk or the gateway's memory.
 */
import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { fail, isIsogateError } from '../../sdk/errors.js';
import { DataDir } from '../durable/index.js';

export type KeyPurpose = 'storage' | 'certificates' | 'integrity' | 'logs';

export interface DeviceKeys {
  /** A 32-byte key for one purpose and one subject (usually a package id). */
  derive(purpose: KeyPurpose, subject: string): Buffer;
  /** HMAC-SHA256 under a derived key, for records the device must recognise as its own. */
  mac(purpose: KeyPurpose, subject: string, data: string | Uint8Array): string;
  verifyMac(purpose: KeyPurpose, subject: string, data: string | Uint8Array, mac: string): boolean;
}

/**
 * Where the device's master key comes from. `open` is called once at start, before anything
 * that needs a key; it creates the key on first use where the provider can, and refuses with
 * E_DEVICE_KEY_UNSAFE when the key cannot be trusted to be secret.
 */
export interface DeviceKeyProvider {
  /** Where the key is, for the start-up output and for messages. */
  readonly description: string;
  open(): Promise<DeviceKeys>;
}

const MASTER_KEY_BYTES = 32;

/** Derived keys kept (first derived, first out): every purpose for every app of a full gateway, several times over. */
const DERIVED_KEYS_KEPT = 512;

class HkdfDeviceKeys implements DeviceKeys {
  readonly #master: Buffer;
  readonly #derived = new Map<string, Buffer>();

  constructor(master: Buffer) {
    if (master.length !== MASTER_KEY_BYTES) throw fail('E_INTERNAL', 'The device key must be 32 bytes');
    this.#master = master;
  }

  derive(purpose: KeyPurpose, subject: string): Buffer {
    const info = `${purpose}\u0000${subject}`;
    let key = this.#derived.get(info);
    if (!key) {
      key = Buffer.from(hkdfSync('sha256', this.#master, Buffer.from('isogate-device-v1'), info, 32));
      // Kept as the master key is kept, in this process's memory. A push derived the same few
      // keys five times (records, journal, storage), 0.15 ms of the gateway's thread each.
      if (this.#derived.size >= DERIVED_KEYS_KEPT) this.#derived.delete(this.#derived.keys().next().value!);
      this.#derived.set(info, key);
    }
    // A copy: a caller that zeroes or changes its key changes no one else's.
    return Buffer.from(key);
  }

  mac(purpose: KeyPurpose, subject: string, data: string | Uint8Array): string {
    return createHmac('sha256', this.derive(purpose, subject)).update(data).digest('hex');
  }

  verifyMac(purpose: KeyPurpose, subject: string, data: string | Uint8Array, mac: string): boolean {
    const expected = Buffer.from(this.mac(purpose, subject, data), 'hex');
    const given = Buffer.from(mac, 'hex');
    return given.length === expected.length && timingSafeEqual(given, expected);
  }
}

function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

/** The key file DIR/device.key: base64 of 32 bytes, 0600, in a 0700 directory of the gateway's user. */
export class FileDeviceKeyProvider implements DeviceKeyProvider {
  readonly file: string;
  /**
   * The key's directory checked from its parent (the data directory) down, so neither it nor
   * the key may be a link: through one, a key someone else chose would encrypt every app's storage.
   */
  readonly #data: DataDir;

  constructor(
    readonly dir: string,
    private readonly uid: number = process.geteuid?.() ?? 0,
  ) {
    this.file = path.join(dir, 'device.key');
    this.#data = DataDir.of(dir);
  }

  get description(): string {
    return `key file ${this.file}`;
  }

  async open(): Promise<DeviceKeys> {
    await this.#checkDirectory();
    const existing = await this.#read();
    if (existing) return new HkdfDeviceKeys(existing);
    return new HkdfDeviceKeys(await this.#create());
  }

  async #checkDirectory(): Promise<void> {
    await this.#data.mkdir('', 0o700);
    const stat = (await this.#data.lstat(''))!;
    if (!stat.isDirectory() || stat.uid !== this.uid || (stat.mode & 0o077) !== 0) {
      throw fail(
        'E_DEVICE_KEY_UNSAFE',
        `The device key's directory ${this.dir} must be a directory of uid ${this.uid} with mode 0700 (it is ${stat.isDirectory() ? `uid ${stat.uid}, mode ${octal(stat.mode)}` : 'not a directory'}); others could read or replace the key. If no one else has used this machine, run "chown ${this.uid} ${this.dir} && chmod 700 ${this.dir}"`,
        { path: this.dir },
      );
    }
  }

  async #read(): Promise<Buffer | undefined> {
    let handle: FileHandle;
    try {
      handle = await this.#data.open('device.key', 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      if (isIsogateError(error, 'E_UNSAFE_PATH')) throw error;
      throw fail('E_DEVICE_KEY_UNSAFE', `The device key ${this.file} cannot be opened (${(error as Error).message})`, { path: this.file });
    }
    try {
      // Checked on the handle that is read, so the file cannot change between check and read.
      const stat = await handle.stat();
      if (!stat.isFile() || stat.uid !== this.uid || (stat.mode & 0o077) !== 0) {
        // Refused, not repaired: a key someone else could read may already be copied, and
        // quietly tightening the mode would hide that.
        throw fail(
          'E_DEVICE_KEY_UNSAFE',
          `The device key ${this.file} must be a file of uid ${this.uid} readable by it alone (mode 0600; it is ${stat.isFile() ? `uid ${stat.uid}, mode ${octal(stat.mode)}` : 'not a regular file'}). Whoever could read it can decrypt every app's storage: if that cannot have happened, run "chown ${this.uid} ${this.file} && chmod 600 ${this.file}"; otherwise treat the stored data as disclosed`,
          { path: this.file, mode: octal(stat.mode), uid: stat.uid },
        );
      }
      const master = Buffer.from((await handle.readFile('utf8')).trim(), 'base64');
      if (master.length !== MASTER_KEY_BYTES)
        throw fail('E_DEVICE_KEY_UNSAFE', `The device key ${this.file} does not hold ${MASTER_KEY_BYTES} bytes in base64; restore it from a backup`, {
          path: this.file,
        });
      return master;
    } finally {
      await handle.close();
    }
  }

  async #create(): Promise<Buffer> {
    const master = randomBytes(MASTER_KEY_BYTES);
    // O_EXCL with O_NOFOLLOW: a file or link planted meanwhile makes this fail instead of being written through.
    const temporary = `.device.key.${randomBytes(6).toString('hex')}.tmp`;
    const handle = await this.#data.open(temporary, 'wx', 0o600);
    try {
      await handle.writeFile(`${master.toString('base64')}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    // link(2) never follows a link at the new name: one planted there makes this fail (EEXIST).
    // The temporary name is unlinked by path (DataDir.remove refuses a file with two links, as it has now).
    await fs.link(this.#data.path(temporary), this.file).finally(() => fs.rm(this.#data.path(temporary), { force: true }));
    await this.#data.syncDirectory();
    return master;
  }
}

/** Opens the device key file in `dir`, generating it on first start. */
export async function openDeviceKeys(dir: string): Promise<DeviceKeys> {
  return new FileDeviceKeyProvider(dir).open();
}

/** A device key that lives only in memory: for tests. */
export function memoryDeviceKeys(master: Buffer = randomBytes(32)): DeviceKeys {
  return new HkdfDeviceKeys(master);
}
