/** The configuration document's TypeScript shape (schema: manifests/config.schema.json). */

/** The manual's `state` codes; Pending and Error are not stored there, they are derived. */
export const APP_STATE = { starting: 0, running: 1, stopped: 4, stopping: 5 } as const;
export type AppStateCode = (typeof APP_STATE)[keyof typeof APP_STATE];

/** The manual's `launchRule` values: auto = Autostart, none = Manual start, forbidden = Block start. */
export type LaunchRule = 'forbidden' | 'auto' | 'none';
export type LogLevel = 0 | 1 | 2 | 3 | 4 | 5;

export interface ApplicationEntry {
  package_id: string;
  name?: string;
  version?: string;
  type?: string;
  subtype?: string;
  /** The manifest, as the manual keeps it: a string. */
  manifest?: string;
  configured?: boolean;
  execute: boolean;
  restart_on_failure?: boolean;
  state?: AppStateCode;
  launchRule: LaunchRule;
  logLevel: LogLevel;
}

export interface RouteEnd {
  application_id: string;
  endpoint: string;
}

export interface RouteEntry {
  /** Not in the manual's table: routes need a stable handle for edit and delete. */
  id: string;
  active: boolean;
  source: RouteEnd;
  destination: RouteEnd;
  /** What a full queue does: wait (lossless, the default) or drop. Not in the manual's table. */
  overflow?: 'block' | 'drop-oldest' | 'drop-newest';
  /** The route's bound in bytes, queued and in flight. Not in the manual's table. */
  queue_bytes?: number;
}

export type UserSettingKey =
  | 'credentials_validity_days'
  | 'idle_minutes'
  | 'credentials_expiry_notice_days'
  | 'certificate_expiry_notice_days'
  | 'failed_login_attempts'
  | 'lockout_minutes';

export interface ConfigDocument {
  ABOUT: { text: string };
  APPLICATIONS: {
    APPS_CONTROL: { applications: ApplicationEntry[] };
    APPS_ROUTING: { routes: RouteEntry[] };
  };
  MARKETPLACE: { apps_requested?: { package_id: string; requested_state?: string; buildSdkVersion?: string; kosappversion?: string }[] };
  MODE_SWITCH: { is_developer_mode?: boolean; is_no_secure_mode?: boolean; router_mode?: boolean };
  NETWORK: Record<string, unknown>;
  SETTINGS: Record<string, unknown>;
  /** The web interface's connection settings (the manual's, keys named after them); platform/accounts reads them. */
  USER_SETTINGS?: Partial<Record<UserSettingKey, number>>;
  /** The egress address policy (not in the manual); platform/egress reads and checks it. */
  EGRESS?: { allowed_ranges?: string[] };
  /** App configuration objects, keyed by package_id. */
  [packageId: string]: unknown;
}

export function defaultDocument(aboutText: string): ConfigDocument {
  return {
    ABOUT: { text: aboutText },
    APPLICATIONS: { APPS_CONTROL: { applications: [] }, APPS_ROUTING: { routes: [] } },
    MARKETPLACE: { apps_requested: [] },
    MODE_SWITCH: { is_developer_mode: false, is_no_secure_mode: false, router_mode: true },
    NETWORK: {},
    SETTINGS: {},
  };
}
