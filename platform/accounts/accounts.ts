/**
 * The web interface's two accounts (the manual's roles: one administrator, one user; no others
 * can be created), kept in DATA/accounts/accounts.json, 0600, written durably. Each is bound to
 * a client certificate by its hash (the manual's "The certificate hash is uploaded"): the SHA-256
 * of the certificate's DER, as `X509Certificate.fingerprint256` gives it.
 */
import path from 'node:path';
import { fail, toIsogateError } from '../../sdk/errors.js';
import { assertValid, compileSchema } from '../../sdk/schema.js';
import { DataDir, Mutex, readJsonIfExists, writeJsonDurable } from '../durable/index.js';
import { hashPassword, type PasswordHash } from './credentials.js';

export type Role = 'admin' | 'user';
export const ROLES: readonly Role[] = ['admin', 'user'];

export interface Account {
  role: Role;
  name: string;
  password: PasswordHash;
  /** Hashes of the passwords used before, newest first (the manual: no matches with previously used passwords). */
  previous: PasswordHash[];
  /** The first-login credentials (or ones the admin set for the user) are still in use: the API refuses all but a change. */
  mustChange: boolean;
  /** Whether the password is still the manual's first-login one ("The administrator password for initial login is changed"). */
  initial: boolean;
  /** When the password was last set: the start of its validity period. */
  changedAt: string;
  /** Uppercase colon-separated SHA-256 of the bound certificate's DER; null until one is bound. */
  certificateSha256: string | null;
  certificateValidTo: string | null;
}

/** How many old passwords are remembered: enough that cycling back is a chore, bounded so a check stays quick. */
const HISTORY = 12;
const HASH = {
  type: 'object',
  additionalProperties: false,
  required: ['salt', 'hash', 'N', 'r', 'p'],
  properties: {
    salt: { type: 'string', maxLength: 64 },
    hash: { type: 'string', maxLength: 128 },
    N: { type: 'integer', minimum: 1024, maximum: 1_048_576 },
    r: { type: 'integer', minimum: 1, maximum: 32 },
    p: { type: 'integer', minimum: 1, maximum: 16 },
  },
};
const ACCOUNT = {
  type: 'object',
  additionalProperties: false,
  required: ['role', 'name', 'password', 'previous', 'mustChange', 'initial', 'changedAt', 'certificateSha256', 'certificateValidTo'],
  properties: {
    role: { enum: ROLES },
    name: { type: 'string', maxLength: 64 },
    password: HASH,
    previous: { type: 'array', maxItems: HISTORY, items: HASH },
    mustChange: { type: 'boolean' },
    initial: { type: 'boolean' },
    changedAt: { type: 'string', format: 'date-time' },
    certificateSha256: { type: ['string', 'null'], pattern: '^([0-9A-F]{2}:){31}[0-9A-F]{2}$' },
    certificateValidTo: { type: ['string', 'null'], maxLength: 64 },
  },
};
const ACCOUNTS_FILE = {
  type: 'object',
  additionalProperties: false,
  required: ['admin', 'user'],
  properties: { admin: ACCOUNT, user: ACCOUNT },
};

export interface InitialAccount {
  name: string;
  password: string;
  certificateSha256: string | null;
  certificateValidTo: string | null;
}

export class AccountStore {
  readonly #dir: DataDir;
  readonly #writes = new Mutex();
  #accounts: Record<Role, Account>;

  private constructor(dir: DataDir, accounts: Record<Role, Account>) {
    this.#dir = dir;
    this.#accounts = accounts;
  }

  /**
   * Opens the accounts in `dir`, creating them from `initial` on first start: the manual's
   * first-login credentials, to be changed at the first login.
   */
  static async open(dir: string, initial: Record<Role, InitialAccount>, clock: () => number = Date.now): Promise<AccountStore> {
    const data = DataDir.of(dir);
    await data.mkdir('', 0o700);
    const file = path.join(dir, 'accounts.json');
    const stored = await readJsonIfExists<unknown>(file, data);
    if (stored !== undefined) {
      assertValid(compileSchema(ACCOUNTS_FILE, 'E_INTERNAL'), stored, 'E_INTERNAL', `The accounts file ${file}`);
      return new AccountStore(data, stored as Record<Role, Account>);
    }
    const accounts = {} as Record<Role, Account>;
    for (const role of ROLES) {
      const seed = initial[role];
      accounts[role] = {
        role,
        name: seed.name,
        password: await hashPassword(seed.password),
        previous: [],
        mustChange: true,
        initial: true,
        changedAt: new Date(clock()).toISOString(),
        certificateSha256: seed.certificateSha256,
        certificateValidTo: seed.certificateValidTo,
      };
    }
    const store = new AccountStore(data, accounts);
    await store.#save(accounts);
    return store;
  }

  get(role: Role): Readonly<Account> {
    return structuredClone(this.#accounts[role]);
  }

  byName(name: string): Readonly<Account> | undefined {
    const found = ROLES.map((role) => this.#accounts[role]).find((account) => account.name === name);
    return found && structuredClone(found);
  }

  byCertificate(sha256: string): Readonly<Account> | undefined {
    const found = ROLES.map((role) => this.#accounts[role]).find((account) => account.certificateSha256 !== null && account.certificateSha256 === sha256);
    return found && structuredClone(found);
  }

  /**
   * Applies `change` to a copy of the account and stores it; the in-memory view changes only once the file did.
   * `audit` writes the change's record once the change is known to be valid and before it is stored (fail
   * closed, as ConfigStore.update): a change the trail cannot hold is refused with the audit's code, unmade.
   */
  update(role: Role, change: (draft: Account) => void | Promise<void>, audit?: (after: Readonly<Account>) => Promise<unknown>): Promise<Account> {
    return this.#writes.run(async () => {
      const next = structuredClone(this.#accounts);
      await change(next[role]);
      next[role].previous = next[role].previous.slice(0, HISTORY);
      const other = next[role === 'admin' ? 'user' : 'admin'];
      if (other.name === next[role].name) throw fail('E_CREDENTIALS_RULE', `The name ${next[role].name} is the other account's`, { rule: 'name' });
      try {
        await audit?.(next[role]);
      } catch (error) {
        throw toIsogateError(error);
      }
      await this.#save(next);
      this.#accounts = next;
      return structuredClone(next[role]);
    });
  }

  async #save(accounts: Record<Role, Account>): Promise<void> {
    await writeJsonDurable(this.#dir.path('accounts.json'), accounts, { mode: 0o600, root: this.#dir });
  }
}
