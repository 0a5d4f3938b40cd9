/**
 * Two-factor login and the one connection session (the manual's "Connecting to the web
 * interface", "Closing and resuming a connection session", "Configuring connection settings").
 * The first factor, a client certificate the gateway's root vouches for, is checked by TLS; here
 * it must also be the one bound to the account the name names. Then the password. Every outcome
 * is audited with the manual's event.
 *
 * Failed attempts are counted against the account whose certificate made them: only a holder of
 * a certificate can try at all, and one account's failures do not lock the other out.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { fail, type IsogateError } from '../../sdk/errors.js';
import type { Audit, AuditEventKey } from '../audit/index.js';
import type { UserSettingKey } from '../config/index.js';
import type { Account, AccountStore, Role } from './accounts.js';
import { checkName, checkPassword, checkPasswordHistory, hashPassword, MAX_PASSWORD_LENGTH, verifyDecoy, verifyPassword } from './credentials.js';

export type UserSettings = Record<UserSettingKey, number>;

/** Defaults where USER_SETTINGS leaves a key out: the manual's 5 minutes idle; the rest within its ranges. */
export const USER_SETTINGS_DEFAULTS: Readonly<UserSettings> = Object.freeze({
  credentials_validity_days: 180,
  idle_minutes: 5,
  credentials_expiry_notice_days: 14,
  certificate_expiry_notice_days: 14,
  failed_login_attempts: 5,
  lockout_minutes: 5,
});

export interface Session {
  id: string;
  role: Role;
  name: string;
  certificateSha256: string;
  /** Sent back in the X-CSRF-Token header of every changing request. */
  csrfToken: string;
  createdAt: number;
  lastSeen: number;
  mustChange: boolean;
}

export interface LoginResult {
  /** The cookie's value; only its hash is kept. */
  token: string;
  session: Readonly<Session>;
  warnings: { code: 'credentials_expiry' | 'certificate_expiry'; days: number; message: string }[];
}

export interface AuthenticatorOptions {
  accounts: AccountStore;
  audit: Audit;
  /** The connection settings, read at each use so that a change applies at once. */
  settings: () => Readonly<UserSettings>;
  clock?: () => number;
}

const MINUTE = 60_000;
const DAY = 86_400_000;
const ROLE_EVENTS = {
  admin: {
    authenticated: 'adminAuthenticated',
    passwordChanged: 'adminPasswordChanged',
    nameChanged: 'adminNameChanged',
    expiry: 'adminCredentialsExpiry',
    certificateExpiry: 'adminCertificateExpiry',
    expired: 'adminCredentialsExpired',
  },
  user: {
    authenticated: 'userAuthenticated',
    passwordChanged: 'userPasswordChanged',
    nameChanged: 'userNameChanged',
    expiry: 'userCredentialsExpiry',
    certificateExpiry: 'userCertificateExpiry',
    expired: 'userCredentialsExpired',
  },
} as const satisfies Record<Role, Record<string, AuditEventKey>>;

/** One sentence for a wrong name, password or certificate: which of them was wrong is the audit's, not the caller's. */
const REFUSED = 'The name, password or certificate is not right';

function hashToken(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

export class Authenticator {
  readonly #accounts: AccountStore;
  readonly #audit: Audit;
  readonly #settings: () => Readonly<UserSettings>;
  readonly #clock: () => number;
  readonly #failures = new Map<Role, { count: number; lockedUntil: number }>();
  #session: { tokenHash: Buffer; session: Session } | undefined;
  /** Since the gateway started, like the failure counters. */
  readonly #lastLogin = new Map<Role, string>();

  constructor(options: AuthenticatorOptions) {
    this.#accounts = options.accounts;
    this.#audit = options.audit;
    this.#settings = options.settings;
    this.#clock = options.clock ?? Date.now;
  }

  settings(): Readonly<UserSettings> {
    return this.#settings();
  }

  /** The account a verified client certificate is bound to, or E_CERTIFICATE_REQUIRED (audited) when none is. */
  async accountOfCertificate(sha256: string, claimedName: string): Promise<Readonly<Account>> {
    const account = this.#accounts.byCertificate(sha256);
    if (account) return account;
    await this.#audit.record('authInvalidCertificate', { 'user name': claimedName }, { certificateSha256: sha256 });
    throw fail('E_CERTIFICATE_REQUIRED', 'The client certificate is bound to no account; connect with your account certificate');
  }

  async login(certificateSha256: string, name: string, password: string): Promise<LoginResult> {
    const holder = await this.accountOfCertificate(certificateSha256, name);
    const now = this.#clock();
    const lock = this.#failures.get(holder.role);
    if (lock && lock.lockedUntil > now) {
      throw fail('E_LOCKED', `Too many failed login attempts: try again in ${Math.ceil((lock.lockedUntil - now) / MINUTE)} minute(s)`, {
        retryAfterSeconds: Math.ceil((lock.lockedUntil - now) / 1000),
      });
    }
    const named = this.#accounts.byName(name);
    if (!named) {
      await verifyDecoy(password);
      await this.#audit.record('authUnknownUser', { 'user name': name });
      throw await this.#failed(holder.role);
    }
    if (named.role !== holder.role) {
      await verifyDecoy(password);
      await this.#audit.record('authInvalidCertificate', { 'user name': name }, { certificateOf: holder.name });
      throw await this.#failed(holder.role);
    }
    if (password.length > MAX_PASSWORD_LENGTH || !(await verifyPassword(password, named.password))) {
      await this.#audit.record('authWrongPassword', { 'user name': name });
      throw await this.#failed(holder.role);
    }
    this.#failures.delete(holder.role);

    const events = ROLE_EVENTS[named.role];
    const left = this.#validityLeft(named, now);
    let mustChange = named.mustChange;
    if (left <= 0) {
      await this.#audit.record(events.expired);
      // The manual: an expired user account is blocked until the admin updates it; an expired
      // admin is taken to the credentials update.
      if (named.role === 'user') throw fail('E_CREDENTIALS_EXPIRED', 'The user name and password have expired; the administrator must update them');
      mustChange = true;
    }

    const active = this.#current(now);
    if (active) {
      if (active.role === 'admin' && named.role === 'user') {
        await this.#audit.record('requestRefused', { description: `the administrator has an active connection session; ${named.name} was not logged in` });
        throw fail('E_SESSION_ACTIVE', 'The administrator has an active connection session; only one session is possible at a time');
      }
      await this.#end(`replaced by a new login of ${named.name}`);
    }

    const token = randomBytes(32).toString('base64url');
    const session: Session = {
      id: randomBytes(8).toString('hex'),
      role: named.role,
      name: named.name,
      certificateSha256,
      csrfToken: randomBytes(32).toString('base64url'),
      createdAt: now,
      lastSeen: now,
      mustChange,
    };
    this.#session = { tokenHash: hashToken(token), session };
    this.#lastLogin.set(named.role, new Date(now).toISOString());
    await this.#audit.record(events.authenticated, { 'user name': named.name });

    const warnings: LoginResult['warnings'] = [];
    const days = Math.ceil(left / DAY);
    if (left > 0 && days <= this.#settings().credentials_expiry_notice_days) {
      await this.#audit.record(events.expiry, { 'number of days': days });
      warnings.push({ code: 'credentials_expiry', days, message: `User name and password expire in ${days} days` });
    }
    const certificateLeft = named.certificateValidTo === null ? Number.POSITIVE_INFINITY : Date.parse(named.certificateValidTo) - now;
    const certificateDays = Math.ceil(certificateLeft / DAY);
    if (certificateDays <= this.#settings().certificate_expiry_notice_days) {
      await this.#audit.record(events.certificateExpiry, { 'number of days': certificateDays });
      warnings.push({ code: 'certificate_expiry', days: certificateDays, message: `User certificate expires in ${certificateDays} days` });
    }
    return { token, session: structuredClone(session), warnings };
  }

  /**
   * The session a request's cookie and certificate belong to; `activity: false` for a request a
   * page makes by itself, which leaves the idle period running. An idle session is ended
   * ("WebServer: Connection session lock"), as is one whose credentials expired meanwhile.
   */
  async authenticate(token: string | undefined, certificateSha256: string, options: { activity?: boolean } = {}): Promise<Readonly<Session>> {
    const now = this.#clock();
    const held = this.#session;
    const presented = token === undefined ? undefined : hashToken(token);
    if (!held || !presented || !timingSafeEqual(presented, held.tokenHash)) {
      throw fail('E_SESSION', 'No active connection session: log in');
    }
    if (now - held.session.lastSeen > this.#settings().idle_minutes * MINUTE) {
      this.#session = undefined;
      await this.#audit.record('sessionIdleLock', {}, { name: held.session.name });
      throw fail('E_SESSION', 'The connection session ended after inactivity: log in again');
    }
    if (held.session.certificateSha256 !== certificateSha256) {
      // A cookie carried to another certificate's connection is someone else's cookie.
      await this.#audit.record('requestRefused', { description: `a session cookie of ${held.session.name} came with another certificate` });
      throw fail('E_SESSION', 'The session belongs to another certificate: log in');
    }
    const account = this.#accounts.get(held.session.role);
    if (this.#validityLeft(account, now) <= 0 && !held.session.mustChange) {
      await this.#end('the credentials expired');
      await this.#audit.record(ROLE_EVENTS[account.role].expired);
      throw fail('E_CREDENTIALS_EXPIRED', 'The user name and password have expired: update them');
    }
    // A page's own periodic refresh (the audit tables' every 30 s) is not the person's activity.
    if (options.activity !== false) held.session.lastSeen = now;
    return structuredClone(held.session);
  }

  /** Logout: the token is forgotten, so the cookie replayed later is refused. */
  async logout(session: Readonly<Session>): Promise<void> {
    if (this.#session?.session.id === session.id) await this.#end('logged out');
  }

  /** Ends the connection session, if any (emergency support mode calls this with its reason). */
  async endAllSessions(reason: string): Promise<void> {
    await this.#end(reason);
  }

  activeSession(): Readonly<Session> | undefined {
    const current = this.#current(this.#clock());
    return current && structuredClone(current);
  }

  /**
   * Changes an account's name and password (the manual's "Update credentials"): the old password
   * is required, the rules apply, and the admin may update the user's (the user only its own).
   */
  async changeCredentials(session: Readonly<Session>, role: Role, change: { oldPassword: string; newPassword: string; name?: string }): Promise<Account> {
    if (session.role !== 'admin' && role !== session.role) throw fail('E_FORBIDDEN', "Only the administrator may update another account's credentials");
    const before = this.#accounts.get(role);
    if (!(await verifyPassword(change.oldPassword, before.password))) {
      await this.#audit.record('authWrongPassword', { 'user name': before.name });
      throw await this.#failed(session.role);
    }
    if (change.name !== undefined) checkName(change.name);
    checkPassword(change.newPassword);
    await checkPasswordHistory(change.newPassword, [before.password, ...before.previous]);
    const hash = await hashPassword(change.newPassword);
    const now = this.#clock();
    const events = ROLE_EVENTS[session.role];
    const after = await this.#accounts.update(
      role,
      (draft) => {
        draft.previous = [draft.password, ...draft.previous];
        draft.password = hash;
        if (change.name !== undefined) draft.name = change.name;
        draft.changedAt = new Date(now).toISOString();
        // Credentials the admin sets for the user are the admin's knowledge: the user changes them at its next login.
        draft.mustChange = session.role !== role;
        draft.initial = false;
      },
      // Audited before the account file is written (fail closed): new credentials the trail cannot hold are not set.
      async (next) => {
        if (before.initial && role === 'admin') await this.#audit.record('adminInitialPasswordChanged');
        else await this.#audit.record(events.passwordChanged, { 'user name': next.name });
        if (next.name !== before.name) await this.#audit.record(events.nameChanged, { 'user name': next.name }, { previous: before.name });
      },
    );
    if (this.#session && this.#session.session.role === role) {
      if (role === session.role) {
        this.#session.session.mustChange = false;
        this.#session.session.name = after.name;
      } else {
        await this.#end("the administrator changed the account's credentials");
      }
    }
    return after;
  }

  /** Binds an account to another certificate (the manual's "Update certificate"); its session ends unless it is the caller's. */
  async bindCertificate(session: Readonly<Session>, role: Role, certificateSha256: string, validTo: string): Promise<Account> {
    const other = this.#accounts.byCertificate(certificateSha256);
    if (other && other.role !== role) throw fail('E_CONFLICT', `That certificate is bound to the ${other.role} account already`);
    const before = this.#accounts.get(role);
    const after = await this.#accounts.update(
      role,
      (draft) => {
        draft.certificateSha256 = certificateSha256;
        draft.certificateValidTo = validTo;
      },
      (next) => this.#audit.record('adminCertificateChanged', { 'user name': next.name }),
    );
    if (before.certificateSha256 !== certificateSha256 && this.#session?.session.role === role && session.role !== role) {
      await this.#end('its certificate was replaced');
    }
    return after;
  }

  /** What the Users page shows of an account: never its hashes. */
  describe(role: Role): {
    role: Role;
    name: string;
    credentialsExpire: string;
    mustChange: boolean;
    certificateSha256: string | null;
    certificateValidTo: string | null;
  } {
    const account = this.#accounts.get(role);
    return {
      role,
      name: account.name,
      credentialsExpire: new Date(Date.parse(account.changedAt) + this.#settings().credentials_validity_days * DAY).toISOString(),
      mustChange: account.mustChange,
      certificateSha256: account.certificateSha256,
      certificateValidTo: account.certificateValidTo,
    };
  }

  /** The Users table's row of an account: whether it is locked out now, when its password expires, its last login since start. */
  overview(role: Role): {
    name: string;
    role: Role;
    blocked: boolean;
    passwordExpiresAt: string;
    certificateSha256: string | null;
    lastLoginAt: string | null;
  } {
    const described = this.describe(role);
    return {
      name: described.name,
      role,
      blocked: (this.#failures.get(role)?.lockedUntil ?? 0) > this.#clock(),
      passwordExpiresAt: described.credentialsExpire,
      certificateSha256: described.certificateSha256,
      lastLoginAt: this.#lastLogin.get(role) ?? null,
    };
  }

  #validityLeft(account: Readonly<Account>, now: number): number {
    return Date.parse(account.changedAt) + this.#settings().credentials_validity_days * DAY - now;
  }

  #current(now: number): Session | undefined {
    const held = this.#session;
    if (!held) return undefined;
    // An idle session no longer holds the one place: the manual lets it lapse after the idle period.
    if (now - held.session.lastSeen > this.#settings().idle_minutes * MINUTE) return undefined;
    return held.session;
  }

  async #end(reason: string): Promise<void> {
    const held = this.#session;
    this.#session = undefined;
    if (held) await this.#audit.record('sessionEnded', { 'user name': held.session.name, description: reason });
  }

  async #failed(role: Role): Promise<IsogateError> {
    const settings = this.#settings();
    const entry = this.#failures.get(role) ?? { count: 0, lockedUntil: 0 };
    entry.count += 1;
    this.#failures.set(role, entry);
    if (entry.count >= settings.failed_login_attempts) {
      entry.count = 0;
      entry.lockedUntil = this.#clock() + settings.lockout_minutes * MINUTE;
      await this.#audit.record('userBlocked', {}, { account: role });
      return fail('E_LOCKED', `Too many failed login attempts: try again in ${settings.lockout_minutes} minute(s)`, {
        retryAfterSeconds: settings.lockout_minutes * 60,
      });
    }
    return fail('E_AUTH', REFUSED);
  }
}
