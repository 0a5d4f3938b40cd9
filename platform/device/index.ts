/**
 * The device key: 32 random bytes generated on first start, kept 0600 in the data directory.
 * Every per-app secret (storage keys, certificate-store keys, integrity-record MACs) is derived
 * from it with HKDF, so one app's key says nothing about another's and nothing is committed.
 */
import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fail } from '../../sdk/errors.js';
import { writeFileDurable } from '../durable/index.js';

export type KeyPurpose = 'storage' | 'certificates' | 'integrity' | 'logs';

export interface DeviceKeys {
  /** A 32-byte key for one purpose and one subject (usually a package id). */
  derive(purpose: KeyPurpose, subject: string): Buffer;
  /** HMAC-SHA256 under a derived key, for records the device must recognise as its own. */
  mac(purpose: KeyPurpose, subject: string, data: string | Uint8Array): string;
  verifyMac(purpose: KeyPurpose, subject: string, data: string | Uint8Array, mac: string): boolean;
}

class HkdfDeviceKeys implements DeviceKeys {
  readonly #master: Buffer;

  constructor(master: Buffer) {
    if (master.length !== 32) throw fail('E_INTERNAL', 'The device key must be 32 bytes');
    this.#master = master;
  }

  derive(purpose: KeyPurpose, subject: string): Buffer {
    return Buffer.from(hkdfSync('sha256', this.#master, Buffer.from('isogate-device-v1'), `${purpose}\u0000${subject}`, 32));
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

/** Opens the device key in `dir`, generating it on first start. */
export async function openDeviceKeys(dir: string): Promise<DeviceKeys> {
  const file = path.join(dir, 'device.key');
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  try {
    return new HkdfDeviceKeys(Buffer.from((await fs.readFile(file, 'utf8')).trim(), 'base64'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const master = randomBytes(32);
  await writeFileDurable(file, `${master.toString('base64')}\n`, { mode: 0o600 });
  return new HkdfDeviceKeys(master);
}

/** A device key that lives only in memory: for tests. */
export function memoryDeviceKeys(master: Buffer = randomBytes(32)): DeviceKeys {
  return new HkdfDeviceKeys(master);
}
