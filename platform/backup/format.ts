/**
 * The backup file (`.igb`): the configuration document encrypted and authenticated with keys
 * derived from the administrator's backup passphrase, never from the device key, so that the
 * file restores after a factory reset or on a replacement gateway.
 *
 *   isogate-backup\n            the magic line
 *   {header JSON}\n             format version, platform version, host, time, KDF, cipher, IV, key check
 *   ciphertext | GCM tag (16)   AES-256-GCM of {"document": ...}, the two lines above as its AAD
 *   HMAC-SHA-256 (32)           over everything before it
 *
 * scrypt gives 64 bytes: the cipher's key and the MAC's. The key check (an HMAC of a constant)
 * tells a wrong passphrase from a changed file; the MAC then covers every byte, and GCM again
 * covers the header and the content.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { fail } from '../../sdk/errors.js';

export const BACKUP_FORMAT_VERSION = 1;
const MAGIC = Buffer.from('isogate-backup\n');
const TAG_BYTES = 16;
const MAC_BYTES = 32;
/** 32 MiB and ~0.1 s a derivation: costly to guess offline, bearable once per backup. */
export const BACKUP_SCRYPT = { N: 32_768, r: 8, p: 1 } as const;
/** A file may not ask for more than this (a crafted header would otherwise cost the gateway gigabytes). */
const MAX_SCRYPT = { N: 1 << 17, r: 16, p: 4 } as const;
const KEY_CHECK = 'isogate-backup key check';
/** Larger than any configuration document the gateway accepts, smaller than a body worth refusing. */
export const MAX_BACKUP_BYTES = 16 * 1024 * 1024;
export const PASSPHRASE = { minLength: 8, maxLength: 1024 } as const;

export interface BackupHeader {
  formatVersion: number;
  platformVersion: string;
  hostId: string;
  createdAt: string;
  kdf: { name: 'scrypt'; N: number; r: number; p: number; salt: string };
  cipher: 'aes-256-gcm';
  iv: string;
  keyCheck: string;
}

export interface BackupContent {
  document: Record<string, unknown>;
}

function derive(passphrase: string, salt: Buffer, cost: { N: number; r: number; p: number }): Promise<{ cipherKey: Buffer; macKey: Buffer }> {
  return new Promise((resolve, reject) => {
    scrypt(passphrase.normalize('NFC'), salt, 64, { ...cost, maxmem: 256 * cost.N * cost.r * cost.p }, (error, key) =>
      error ? reject(error) : resolve({ cipherKey: key.subarray(0, 32), macKey: key.subarray(32) }),
    );
  });
}

function checkPassphrase(passphrase: string): void {
  if (typeof passphrase !== 'string' || passphrase.length < PASSPHRASE.minLength || passphrase.length > PASSPHRASE.maxLength) {
    throw fail('E_BAD_REQUEST', `The backup passphrase has ${PASSPHRASE.minLength} to ${PASSPHRASE.maxLength} characters`);
  }
}

const hmac = (key: Buffer, ...parts: Buffer[]): Buffer => {
  const mac = createHmac('sha256', key);
  for (const part of parts) mac.update(part);
  return mac.digest();
};

export async function sealBackup(
  content: BackupContent,
  options: { passphrase: string; platformVersion: string; hostId: string; createdAt: string; cost?: { N: number; r: number; p: number } },
): Promise<Buffer> {
  checkPassphrase(options.passphrase);
  const cost = options.cost ?? BACKUP_SCRYPT;
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const { cipherKey, macKey } = await derive(options.passphrase, salt, cost);
  const header: BackupHeader = {
    formatVersion: BACKUP_FORMAT_VERSION,
    platformVersion: options.platformVersion,
    hostId: options.hostId,
    createdAt: options.createdAt,
    kdf: { name: 'scrypt', ...cost, salt: salt.toString('base64') },
    cipher: 'aes-256-gcm',
    iv: iv.toString('base64'),
    keyCheck: hmac(macKey, Buffer.from(KEY_CHECK)).toString('hex'),
  };
  const head = Buffer.concat([MAGIC, Buffer.from(`${JSON.stringify(header)}\n`)]);
  const cipher = createCipheriv('aes-256-gcm', cipherKey, iv);
  cipher.setAAD(head);
  const body = Buffer.concat([cipher.update(JSON.stringify(content), 'utf8'), cipher.final(), cipher.getAuthTag()]);
  return Buffer.concat([head, body, hmac(macKey, head, body)]);
}

function readHeader(file: Buffer): { header: BackupHeader; head: Buffer } {
  if (file.length < MAGIC.length || !file.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw fail('E_BACKUP_FORMAT', 'The file is not an isogate configuration backup (it does not begin with "isogate-backup")');
  }
  const end = file.indexOf(0x0a, MAGIC.length);
  if (end < 0 || end - MAGIC.length > 4096) throw fail('E_BACKUP_FORMAT', "The backup's header is missing or too long");
  let header: BackupHeader;
  try {
    header = JSON.parse(file.subarray(MAGIC.length, end).toString('utf8')) as BackupHeader;
  } catch {
    throw fail('E_BACKUP_FORMAT', "The backup's header is not JSON");
  }
  if (!header || typeof header !== 'object' || typeof header.formatVersion !== 'number' || typeof header.platformVersion !== 'string') {
    throw fail('E_BACKUP_FORMAT', "The backup's header has no format or platform version");
  }
  return { header, head: file.subarray(0, end + 1) };
}

/**
 * Opens a backup: the format, then the versions (the manual: only the version that made a
 * backup restores it), then the passphrase, then every byte's MAC, then the content. Each
 * refusal has its own code; nothing is changed by any of them.
 */
export async function openBackup(file: Buffer, passphrase: string, platformVersion: string): Promise<{ header: BackupHeader; content: BackupContent }> {
  checkPassphrase(passphrase);
  const { header, head } = readHeader(file);
  if (header.formatVersion !== BACKUP_FORMAT_VERSION) {
    throw fail('E_BACKUP_VERSION', `The backup is in format ${header.formatVersion}; this gateway reads format ${BACKUP_FORMAT_VERSION}`, {
      formatVersion: header.formatVersion,
    });
  }
  if (header.platformVersion !== platformVersion) {
    throw fail(
      'E_BACKUP_VERSION',
      `The backup was made by isogate ${header.platformVersion}; this gateway is ${platformVersion}, and only the same version restores it`,
      {
        backupVersion: header.platformVersion,
        platformVersion,
      },
    );
  }
  const kdf = header.kdf;
  const salt = typeof kdf?.salt === 'string' ? Buffer.from(kdf.salt, 'base64') : Buffer.alloc(0);
  const iv = typeof header.iv === 'string' ? Buffer.from(header.iv, 'base64') : Buffer.alloc(0);
  const bounded = (value: unknown, max: number): boolean => Number.isSafeInteger(value) && (value as number) >= 1 && (value as number) <= max;
  if (
    kdf?.name !== 'scrypt' ||
    !bounded(kdf.N, MAX_SCRYPT.N) ||
    (kdf.N & (kdf.N - 1)) !== 0 ||
    kdf.N < 2 ||
    !bounded(kdf.r, MAX_SCRYPT.r) ||
    !bounded(kdf.p, MAX_SCRYPT.p) ||
    salt.length < 16 ||
    header.cipher !== 'aes-256-gcm' ||
    iv.length !== 12 ||
    typeof header.keyCheck !== 'string'
  ) {
    throw fail('E_BACKUP_FORMAT', "The backup's key derivation or cipher is not one this gateway uses");
  }
  const { cipherKey, macKey } = await derive(passphrase, salt, kdf);
  const keyCheck = Buffer.from(header.keyCheck, 'hex');
  const expectedCheck = hmac(macKey, Buffer.from(KEY_CHECK));
  if (keyCheck.length !== expectedCheck.length || !timingSafeEqual(keyCheck, expectedCheck)) {
    throw fail('E_BACKUP_PASSPHRASE', 'The passphrase is not the one this backup was made with');
  }
  if (file.length < head.length + TAG_BYTES + MAC_BYTES) throw fail('E_BACKUP_TAMPERED', 'The backup is truncated');
  const body = file.subarray(head.length, file.length - MAC_BYTES);
  const mac = file.subarray(file.length - MAC_BYTES);
  if (!timingSafeEqual(mac, hmac(macKey, head, body))) throw fail('E_BACKUP_TAMPERED', 'The backup was changed after it was made: its MAC does not match');
  let content: BackupContent;
  try {
    const decipher = createDecipheriv('aes-256-gcm', cipherKey, iv);
    decipher.setAAD(head);
    decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
    const plain = Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]);
    content = JSON.parse(plain.toString('utf8')) as BackupContent;
  } catch {
    throw fail('E_BACKUP_TAMPERED', 'The backup was changed after it was made: its content does not authenticate');
  }
  if (!content || typeof content.document !== 'object' || content.document === null || Array.isArray(content.document)) {
    throw fail('E_BACKUP_FORMAT', 'The backup holds no configuration document');
  }
  return { header, content };
}
