/**
 * The one registry of isogate error codes.
 *
 * It lives in the SDK because app developers see these codes too: inside an isolate a failed
 * platform call rejects with an error whose `code` is one of these. The platform, the store and
 * the CLIs throw only `IsogateError`s built from this table; the REST API and the control socket
 * map `status` once, in one place, and the CLIs print `code: message`.
 */

interface ErrorSpec {
  /** HTTP status the API answers with. */
  readonly status: number;
  /** What the code means, for documentation and for the UI's fallback sentence. */
  readonly summary: string;
}

export const ERROR_CODES = {
  // Input at any interface
  E_BAD_REQUEST: { status: 400, summary: 'The request is malformed.' },
  E_DOCUMENT_LIMIT: { status: 413, summary: 'A document (request, configuration, message, manifest) nests deeper or is larger than the gateway accepts.' },
  E_USAGE: { status: 400, summary: 'The command line is not valid.' },
  E_OPTION: { status: 400, summary: 'An option has an invalid value.' },
  E_PATH: { status: 400, summary: 'A path given is missing, the wrong kind (a file where a directory belongs, or the reverse) or cannot be created.' },
  E_NOT_FOUND: { status: 404, summary: 'No such object.' },
  E_CONFLICT: { status: 409, summary: 'The request conflicts with the current state.' },
  E_INTERNAL: { status: 500, summary: 'An internal error occurred.' },
  E_UNAVAILABLE: { status: 503, summary: 'The service is not reachable.' },
  E_SHUTDOWN: { status: 500, summary: 'The gateway stopped, but a part of it did not close cleanly.' },

  // Manifest and package format
  E_MANIFEST: { status: 422, summary: 'The app manifest is not valid.' },
  E_PACKAGE_FORMAT: { status: 422, summary: 'The package is not a well-formed isogate package.' },
  E_PACKAGE_LIMIT: { status: 422, summary: 'The package exceeds a size or count limit.' },
  E_PACKAGE_PATH: { status: 422, summary: 'The package contains an unsafe entry.' },
  E_DIGEST: { status: 422, summary: 'A file does not match its signed digest.' },
  E_FILE_SET: { status: 422, summary: 'The package files differ from the signed file list.' },
  E_SIGNATURE: { status: 422, summary: 'The package signature could not be verified.' },
  E_CERTIFICATE: { status: 422, summary: 'A certificate is not acceptable.' },
  E_SIGNER_MISMATCH: { status: 409, summary: 'The package id is bound to another signer; the admin must forget the binding first.' },
  E_RESERVED_CAPABILITY: { status: 403, summary: "The package claims a capability only the platform's own apps may hold." },
  E_BUILD: { status: 422, summary: 'The app could not be built.' },
  E_TYPECHECK: { status: 422, summary: "The app's TypeScript has type errors." },
  E_MANIFEST_REFERENCE: { status: 422, summary: 'The code names an endpoint or egress target its manifest does not declare.' },
  E_TESTS_FAILED: { status: 422, summary: "The app's tests failed." },
  E_HARNESS_TIMEOUT: { status: 504, summary: 'What the harness waited for did not happen in time.' },
  E_SCHEMA_PATTERN: { status: 422, summary: "A regular expression in a package's schema cannot run on the gateway's linear-time engine (RE2)." },
  E_SCHEMA_FORMAT: { status: 422, summary: "A package's schema uses a format the gateway does not check." },
  E_SCHEMA_LIMIT: { status: 422, summary: "A package's schema is larger, deeper or more self-referencing than the gateway validates in bounded time." },

  // Store and orchestrator
  E_STORE: { status: 502, summary: 'The app store failed or answered unexpectedly.' },
  E_STORE_REDIRECT: { status: 502, summary: 'The app store answered with a redirect, which the gateway never follows.' },
  E_STORE_TIMEOUT: { status: 504, summary: 'The app store sent nothing for longer than the idle timeout.' },
  E_DOWNLOAD: { status: 502, summary: 'The package download failed.' },
  E_CATALOG_MISMATCH: { status: 422, summary: 'The package does not match its catalog entry.' },
  E_COMPROMISED: { status: 409, summary: 'The app is marked compromised and cannot be installed.' },
  E_DELISTED: { status: 404, summary: 'That app version is no longer offered.' },
  E_VERSION_EXISTS: { status: 409, summary: 'That app version is already published with other content.' },
  E_RANGE: { status: 416, summary: 'The requested byte range is outside the package.' },
  E_APP_LIMIT: { status: 409, summary: 'The limit on the number of installed apps is reached.' },
  E_ALREADY_INSTALLED: { status: 409, summary: 'The app is already installed.' },
  E_NEW_VERSION: { status: 409, summary: 'Another version of the app is installed; update it in place or uninstall it first.' },
  E_DOWNGRADE: { status: 409, summary: 'The version asked for is older than the installed one; a downgrade must be asked for explicitly.' },
  E_UPDATE_ROLLED_BACK: { status: 500, summary: 'The new version failed to start; the previous version was restored and runs again.' },
  E_NOT_INSTALLED: { status: 404, summary: 'The app is not installed.' },
  E_BUSY: { status: 409, summary: 'Another operation on this app is in progress.' },
  E_INSTALL: { status: 500, summary: 'The app could not be installed.' },
  E_VERIFY_TIMEOUT: { status: 504, summary: 'Package verification took too long and was stopped.' },
  E_UNINSTALL: { status: 500, summary: 'The app could not be uninstalled.' },

  // Launcher, sandbox, integrity
  E_STATE: { status: 409, summary: 'The app is not in a state that allows this.' },
  E_BLOCKED: { status: 409, summary: 'The app is blocked from starting.' },
  E_PENDING: { status: 409, summary: 'The app needs its required configuration first.' },
  E_INTEGRITY: { status: 409, summary: 'The installed app failed its integrity check.' },
  E_INCOMPATIBLE: { status: 409, summary: 'The app was built for an incompatible SDK version.' },
  E_LAUNCH: { status: 500, summary: 'The app could not be started.' },
  E_APP_FAILED: { status: 500, summary: 'The app failed.' },
  E_MEMORY_LIMIT: { status: 500, summary: 'The app exceeded its memory limit.' },
  E_CPU_LIMIT: { status: 500, summary: 'The app exceeded its CPU time limit.' },
  E_CAPABILITY: { status: 403, summary: 'The app has no capability for this.' },
  E_TIMER_LIMIT: { status: 429, summary: 'The app has too many timers.' },

  // Configuration
  E_CONFIG: { status: 422, summary: 'The configuration is not valid.' },

  // Network Protector's rule lists (Suricata's rule language). Every refusal names the line and
  // column in the decoded list; the list is taken whole or not at all.
  E_RULE_ENCODING: { status: 422, summary: 'A rule list is not Base64 of UTF-8 text.' },
  E_RULE_SYNTAX: { status: 422, summary: 'A rule does not follow the rule syntax.' },
  E_RULE_STRING: { status: 422, summary: 'A quoted string in a rule is not terminated or not closed where it should be.' },
  E_RULE_BRACKETS: { status: 422, summary: 'A list in a rule has unbalanced brackets.' },
  E_RULE_KEYWORD: { status: 422, summary: 'A rule uses a keyword the gateway does not know.' },
  E_RULE_VALUE: { status: 422, summary: "A rule keyword's value is not valid." },
  E_RULE_RANGE: { status: 422, summary: 'A number or range in a rule is out of bounds or empty.' },
  E_RULE_VARIABLE: { status: 422, summary: 'A rule uses a variable the configuration does not define, or one that refers to itself.' },
  E_RULE_MISSING_SID: { status: 422, summary: 'A rule has no sid.' },
  E_RULE_DUPLICATE_SID: { status: 422, summary: 'Two rules have the same sid.' },
  E_RULE_RESERVED_SID: { status: 422, summary: 'A rule uses a sid reserved for the gateway.' },
  E_RULE_LIMIT: { status: 413, summary: 'A rule list has more rules, or a rule more bytes, than the gateway accepts.' },
  E_RULE_LIST_REMOVED: { status: 409, summary: "A rule list of Network Protector's configuration, once added, cannot be emptied or removed." },

  // Storage
  E_STORAGE_KEY: { status: 400, summary: 'The storage key is not valid.' },
  E_STORAGE_VALUE: { status: 400, summary: 'A stored value is a string or bytes.' },
  E_STORAGE_QUOTA: { status: 413, summary: 'The app storage quota is exceeded.' },
  E_STORAGE_CORRUPT: { status: 500, summary: 'A stored record failed authentication.' },

  // Files in the data directory. A write that cannot be made durable is refused with one of the
  // first two (toIsogateError maps the system's ENOSPC/EDQUOT and EIO/EROFS to them), and
  // nothing is acknowledged that was not synced.
  E_STORAGE_FULL: { status: 507, summary: "The gateway's disk is full: the change was not made. Free space (old log archives, unused apps) and try again." },
  E_IO: { status: 500, summary: "The gateway's disk failed to read or write: the change was not made." },
  E_UNSAFE_PATH: { status: 500, summary: 'A path in the data directory is a link or not the kind of file expected; it was not followed.' },

  // Logs
  E_LOG_EMPTY: { status: 404, summary: 'The app has no log records yet.' },
  E_LOG_ROTATE: { status: 500, summary: "The app's log could not be rotated; lines past its size bound are dropped and counted until it can be." },

  // Router
  E_ROUTE: { status: 422, summary: 'The route is not valid.' },
  E_ROUTE_DUPLICATE: { status: 409, summary: 'The same route exists already.' },
  E_ROUTE_DIRECTION: { status: 422, summary: 'The route goes against the gateway mode.' },
  E_MESSAGE: { status: 422, summary: 'The message is not valid for its endpoint.' },
  E_MESSAGE_SIZE: { status: 413, summary: 'The message is too large.' },
  E_BACKPRESSURE: { status: 429, summary: 'The routes from this endpoint are full: the app must await its emits to be slowed down.' },

  // Traffic gate: the manual's IP address rules for the allowlist (each broken rule its own code)
  // and emergency support mode.
  E_IP_BLANK: { status: 422, summary: 'The IP address is blank.' },
  E_IP_FORMAT: { status: 422, summary: 'The IP address is not four numbers from 0 to 255 separated by dots.' },
  E_IP_LEADING_ZERO: { status: 422, summary: 'The IP address starts with 0.' },
  E_IP_BROADCAST: { status: 422, summary: 'The IP address is 255.255.255.255.' },
  E_EMERGENCY: {
    status: 503,
    summary: 'The gateway is in emergency support mode: apps do not start and transit traffic is blocked until an admin restarts it.',
  },

  // Traffic: captures read by the offline replay
  E_PCAP: { status: 422, summary: 'The capture is not a classic pcap file the replay reads (its header, link type or a record header is wrong).' },

  // Egress and certificates. What each egress code means to an app, and nothing else:
  //   E_CAPABILITY (above)   the manifest declares no such target (the sandbox's check, and the
  //                          terminator's own for a host calling it directly: one code, one sentence);
  //   E_EGRESS_PROTOCOL      the target is declared for another protocol;
  //   E_EGRESS_UNREACHABLE   no TLS connection came about: no DNS answer, an address the policy
  //                          refuses, refused, reset, closed, not TLS or no answer in time; one
  //                          sentence whatever the cause, so it cannot be used to scan ports nor to
  //                          tell which declared names resolve to the plant's side (the cause, and
  //                          any refused address, go to the app's log for the admin);
  //   E_EGRESS_ADDRESS       never reaches an app: the admin's log names it as the cause of an
  //                          E_EGRESS_UNREACHABLE whose address (as written, any DNS answer, the
  //                          address connected to, or that address once the handshake is done) is
  //                          on the gateway's own side and not in EGRESS.allowed_ranges;
  //   E_EGRESS_TLS           the server spoke TLS but is not trusted, or refused the handshake;
  //   E_EGRESS_TIMEOUT       kept for a verified server that was connected but did not answer
  //                          (or, for MQTT, accept the session) in time;
  //   E_EGRESS_LIMIT, E_EGRESS_CLOSED  the app's own limits, and a stream it used after its end or
  //                          that was still connecting when the app was closed.
  E_EGRESS_ADDRESS: { status: 403, summary: "The egress target's address is on the gateway's own side and not in the allowed ranges." },
  E_EGRESS_UNREACHABLE: { status: 502, summary: 'The egress target cannot be reached.' },
  E_EGRESS_TLS: { status: 502, summary: 'The TLS connection to the target failed.' },
  E_EGRESS_TIMEOUT: { status: 504, summary: 'The connected egress target did not answer in time.' },
  E_EGRESS_LIMIT: { status: 429, summary: 'An egress limit was reached.' },
  E_EGRESS_PROTOCOL: { status: 422, summary: 'The target does not support this protocol.' },
  E_EGRESS_CLOSED: { status: 409, summary: 'The egress connection is closed.' },
  E_CALL_LIMIT: { status: 429, summary: 'Too many platform calls from one app are in flight at once.' },
  E_CERT_FILE: { status: 422, summary: 'The certificate or key file is not valid.' },
  E_CERT_KEY_MISMATCH: { status: 422, summary: 'The client certificate and key do not match.' },

  // Data directory, device key, control socket (start-up and the local user)
  E_DATA_DIR_UNSAFE: { status: 500, summary: 'The data directory, or a directory above it, can be changed by another user.' },
  E_DATA_DIR_LOCKED: { status: 409, summary: 'Another gateway is using the data directory.' },
  E_DATA_DIR_FORMAT: { status: 500, summary: 'The data directory has a format this version cannot read.' },
  E_MIGRATION: { status: 500, summary: 'The data directory could not be brought to the current format.' },
  E_DEVICE_KEY_UNSAFE: { status: 500, summary: 'The device key is readable or replaceable by someone other than the gateway.' },
  E_CONTROL_SOCKET_UNSAFE: { status: 403, summary: "The control socket does not belong to the data directory's owner; nothing was sent." },

  // Authentication (API, control socket)
  E_AUTH: { status: 401, summary: 'Authentication failed.' },
  E_FORBIDDEN: { status: 403, summary: 'Not allowed.' },
  E_CERTIFICATE_REQUIRED: {
    status: 401,
    summary: "The connection has no client certificate the gateway's root vouches for, or one bound to no account.",
  },
  E_SESSION: { status: 401, summary: 'No active connection session: log in (again).' },
  E_SESSION_ACTIVE: { status: 409, summary: 'The administrator has an active connection session; only one session is possible at a time.' },
  E_LOCKED: { status: 429, summary: 'The account is temporarily blocked after too many failed login attempts.' },
  E_CREDENTIALS_EXPIRED: { status: 403, summary: 'The account credentials have expired; the administrator must update them.' },
  E_PASSWORD_CHANGE: { status: 403, summary: 'The password must be changed before anything else is done.' },
  E_CREDENTIALS_RULE: { status: 422, summary: 'The new name or password does not meet the credentials rules.' },
  E_CSRF: { status: 403, summary: 'The request came from another origin or without the connection session token.' },

  // Backup and restore of the configuration (platform/backup)
  E_BACKUP_FORMAT: { status: 422, summary: 'The file is not an isogate configuration backup.' },
  E_BACKUP_VERSION: { status: 409, summary: 'The backup was made by another isogate version or in another backup format; only the same version restores it.' },
  E_BACKUP_PASSPHRASE: { status: 422, summary: 'The backup passphrase is not the one the backup was made with.' },
  E_BACKUP_TAMPERED: { status: 422, summary: 'The backup file was changed after it was made (its MAC does not match).' },

  // HTTP (the REST API's own transport checks)
  E_CONTENT_TYPE: { status: 415, summary: 'The request body must be application/json.' },
  E_METHOD: { status: 405, summary: 'The resource does not support this method.' },
  E_REQUEST_TIMEOUT: { status: 408, summary: 'The request was not received in time.' },
  E_CONNECTION_LIMIT: { status: 429, summary: 'Too many connections to the gateway are open at once.' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class IsogateError extends Error {
  override readonly name = 'IsogateError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: Readonly<Record<string, unknown>> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  get status(): number {
    return ERROR_CODES[this.code].status;
  }

  toJSON(): { code: ErrorCode; message: string; details: Readonly<Record<string, unknown>> } {
    return { code: this.code, message: this.message, details: this.details };
  }
}

/** Builds a coded error; the sentence should say what was wrong and, where it helps, what to do. */
export function fail(code: ErrorCode, message: string, details: Record<string, unknown> = {}): IsogateError {
  return new IsogateError(code, message, details);
}

export function isIsogateError(value: unknown, code?: ErrorCode): value is IsogateError {
  return value instanceof IsogateError && (code === undefined || value.code === code);
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

/**
 * The system's errors that mean "the disk could not take this", whichever subsystem met them:
 * one code each, so an app, the API and the CLI tell a full disk from a bug. EROFS is what a
 * file system remounted read-only after an I/O error answers.
 */
const DISK_ERRORS: Readonly<Record<string, ErrorCode>> = { ENOSPC: 'E_STORAGE_FULL', EDQUOT: 'E_STORAGE_FULL', EIO: 'E_IO', EROFS: 'E_IO' };

function diskDetails(error: object): Record<string, unknown> {
  const { code, syscall } = error as { code?: unknown; syscall?: unknown };
  return { errno: code, ...(typeof syscall === 'string' ? { syscall } : {}) };
}

/**
 * Turns anything thrown into an IsogateError without losing a code that crossed a boundary as
 * plain data (worker threads, the control socket, an isolate). Unknown errors become E_INTERNAL.
 */
export function toIsogateError(error: unknown): IsogateError {
  if (error instanceof IsogateError) return error;
  if (error && typeof error === 'object') {
    const { code, message, details } = error as { code?: unknown; message?: unknown; details?: unknown };
    if (isErrorCode(code)) {
      return new IsogateError(
        code,
        String(message ?? ERROR_CODES[code].summary),
        details && typeof details === 'object' ? (details as Record<string, unknown>) : {},
      );
    }
    const disk = typeof code === 'string' ? DISK_ERRORS[code] : undefined;
    if (disk) return new IsogateError(disk, typeof message === 'string' ? message : String(code), diskDetails(error), { cause: error });
    // The original stays reachable as `cause` (with its stack) for logs and debugging.
    if (typeof message === 'string') return new IsogateError('E_INTERNAL', message, {}, { cause: error });
  }
  return new IsogateError('E_INTERNAL', String(error), {}, { cause: error });
}
