/**
 * Passwords and names of the web interface's accounts: the manual's credentials rules
 * ("Managing accounts": a name of English letters, digits and @ . _ - only; a password of eight
 * or more unique characters that matches no previously used one) and scrypt hashes with a salt
 * per password (node's crypto, the standard library's memory-hard function).
 */
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { fail } from '../../sdk/errors.js';

export interface PasswordHash {
  salt: string;
  hash: string;
  /** scrypt's cost parameters, kept with each hash so that they can be raised without a migration. */
  N: number;
  r: number;
  p: number;
}

/** 16 MiB of memory a hash (128 * N * r): costly to guess offline, ~50 ms on the gateway. */
const SCRYPT = { N: 16_384, r: 8, p: 1, keyLength: 32 } as const;
export const NAME_PATTERN = /^[A-Za-z0-9@._-]{1,64}$/;
export const MIN_UNIQUE_PASSWORD_CHARACTERS = 8;
/** Far above any password a person types; bounds the work one login costs before scrypt runs. */
export const MAX_PASSWORD_LENGTH = 256;

function derive(password: string, salt: Buffer, params: { N: number; r: number; p: number }): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFC'), salt, SCRYPT.keyLength, { N: params.N, r: params.r, p: params.p, maxmem: 256 * params.N * params.r }, (error, key) =>
      error ? reject(error) : resolve(key),
    );
  });
}

export async function hashPassword(password: string): Promise<PasswordHash> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, SCRYPT);
  return { salt: salt.toString('base64'), hash: key.toString('base64'), N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p };
}

export async function verifyPassword(password: string, stored: PasswordHash): Promise<boolean> {
  if (password.length > MAX_PASSWORD_LENGTH) return false;
  const expected = Buffer.from(stored.hash, 'base64');
  const key = await derive(password, Buffer.from(stored.salt, 'base64'), stored);
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/** A hash of nothing, verified against when no account matches, so that a refusal takes as long either way. */
let decoy: Promise<PasswordHash> | undefined;
export async function verifyDecoy(password: string): Promise<void> {
  decoy ??= hashPassword(randomBytes(16).toString('hex'));
  await verifyPassword(password, await decoy);
}

export function checkName(name: string): void {
  if (!NAME_PATTERN.test(name)) {
    throw fail('E_CREDENTIALS_RULE', 'The name can include English letters, numbers, and the special characters @ . _ - only (1 to 64 of them)', {
      rule: 'name',
    });
  }
}

/** The manual's rule on a new password, except the history, which checkPasswordHistory applies. */
export function checkPassword(password: string): void {
  if (password.length > MAX_PASSWORD_LENGTH) {
    throw fail('E_CREDENTIALS_RULE', `The password may be at most ${MAX_PASSWORD_LENGTH} characters`, { rule: 'length' });
  }
  if (new Set(password).size < MIN_UNIQUE_PASSWORD_CHARACTERS) {
    throw fail('E_CREDENTIALS_RULE', `The password must contain at least ${MIN_UNIQUE_PASSWORD_CHARACTERS} unique characters`, { rule: 'unique' });
  }
  // Controls cannot be typed into the credentials window and would be invisible in any record of it.
  if (/\p{Cc}/u.test(password)) throw fail('E_CREDENTIALS_RULE', 'The password may not contain control characters', { rule: 'charset' });
}

export async function checkPasswordHistory(password: string, used: readonly PasswordHash[]): Promise<void> {
  for (const old of used) {
    if (await verifyPassword(password, old))
      throw fail('E_CREDENTIALS_RULE', 'The password matches a previously used one: choose a new one', { rule: 'history' });
  }
}
