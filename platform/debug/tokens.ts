/**
 * The debug service's developer tokens. A token is shown once, when it is issued; only its
 * SHA-256 is kept (DATA/debug/tokens.json), so a copy of the data directory names the
 * developers but lets nobody push as them. A token is 32 random bytes, so a plain hash is as
 * strong as a slow one: there is nothing to guess. A factory reset erases the file with the
 * rest of the data directory, and every token issued before it is then unknown.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import path from 'node:path';
import { fail } from '../../sdk/errors.js';
import { type DataDir, readJsonIfExists, writeJsonDurable } from '../durable/index.js';

export const TOKEN_PREFIX = 'isgd_';
/** A developer's name: what `apps list` shows as a pushed app's owner. */
const DEVELOPER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** Bounds the file (and a lookup's constant-time loop); far more than one gateway's developers. */
export const MAX_DEVELOPERS = 64;

export interface Developer {
  name: string;
  createdAt: string;
}

interface StoredToken extends Developer {
  sha256: string;
}

interface TokenFile {
  tokens: StoredToken[];
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

export class DeveloperTokens {
  readonly #file: string;
  readonly #root: DataDir | undefined;
  #tokens: StoredToken[];

  private constructor(file: string, root: DataDir | undefined, tokens: StoredToken[]) {
    this.#file = file;
    this.#root = root;
    this.#tokens = tokens;
  }

  static async open(dir: string, root?: DataDir): Promise<DeveloperTokens> {
    const file = path.join(dir, 'tokens.json');
    const stored = await readJsonIfExists<TokenFile>(file, root);
    const tokens = Array.isArray(stored?.tokens)
      ? stored.tokens.filter(
          (t) => typeof t?.name === 'string' && typeof t.sha256 === 'string' && /^[0-9a-f]{64}$/.test(t.sha256) && typeof t.createdAt === 'string',
        )
      : [];
    return new DeveloperTokens(file, root, tokens);
  }

  list(): Developer[] {
    return this.#tokens.map(({ name, createdAt }) => ({ name, createdAt }));
  }

  /** Issues a token for a new developer; the token itself is in the answer and nowhere else. */
  async add(name: string, now: Date): Promise<{ name: string; token: string }> {
    if (typeof name !== 'string' || !DEVELOPER_NAME.test(name)) {
      throw fail(
        'E_OPTION',
        `A developer's name is 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit; got "${String(name).slice(0, 80)}"`,
      );
    }
    if (this.#tokens.some((t) => t.name === name))
      throw fail('E_CONFLICT', `The developer ${name} has a token already; revoke it first to issue another`, { name });
    if (this.#tokens.length >= MAX_DEVELOPERS) throw fail('E_CONFLICT', `${MAX_DEVELOPERS} developers have tokens; revoke one first`);
    const token = `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
    const next = [...this.#tokens, { name, createdAt: now.toISOString(), sha256: digest(token).toString('hex') }];
    await this.#save(next);
    return { name, token };
  }

  async revoke(name: string): Promise<void> {
    if (!this.#tokens.some((t) => t.name === name)) throw fail('E_NOT_FOUND', `No developer ${name} has a token`, { name });
    await this.#save(this.#tokens.filter((t) => t.name !== name));
  }

  /**
   * The developer a presented token belongs to, or undefined. Every stored hash is compared in
   * constant time, so how long a refusal takes says nothing about which token came close.
   */
  developerOf(token: string | undefined): string | undefined {
    if (typeof token !== 'string' || !token.startsWith(TOKEN_PREFIX) || token.length > 200) return undefined;
    const presented = digest(token);
    let found: string | undefined;
    for (const stored of this.#tokens) {
      if (timingSafeEqual(presented, Buffer.from(stored.sha256, 'hex'))) found = stored.name;
    }
    return found;
  }

  async #save(tokens: StoredToken[]): Promise<void> {
    await writeJsonDurable(this.#file, { tokens } satisfies TokenFile, { mode: 0o600, ...(this.#root ? { root: this.#root } : {}) });
    this.#tokens = tokens;
  }
}
