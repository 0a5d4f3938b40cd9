/** The web interface's accounts, their credentials and the one connection session. */
export { type Account, AccountStore, type InitialAccount, ROLES, type Role } from './accounts.js';
export { Authenticator, type AuthenticatorOptions, type LoginResult, type Session, USER_SETTINGS_DEFAULTS, type UserSettings } from './authenticator.js';
export { checkName, checkPassword } from './credentials.js';
