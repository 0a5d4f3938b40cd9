/**
 * Backup and restore of the gateway's configuration (the manual's "Backing up and restoring
 * from a backup copy"). A backup holds the configuration document; a restore writes it back,
 * fitted to this gateway: the apps installed here keep their entries (their start rule and log
 * level come from the backup) and get their configuration from it, an app the backup knows but
 * this gateway has not is reported (install it, then restore again), and what belongs to the
 * device, not to its configuration (developer mode, the ABOUT text), stays. A restore leaves
 * emergency support mode (the manual), through the caller's restart.
 */
import { toIsogateError } from '../../sdk/errors.js';
import type { Audit } from '../audit/index.js';
import type { ConfigDocument, ConfigStore } from '../config/index.js';
import { type BackupHeader, openBackup, sealBackup } from './format.js';

export { BACKUP_FORMAT_VERSION, MAX_BACKUP_BYTES, openBackup, PASSPHRASE, sealBackup } from './format.js';

export interface BackupServiceOptions {
  config: ConfigStore;
  audit: Audit;
  platformVersion: string;
  hostId: string;
  /** The package ids installed here, with their versions. */
  installed(): { packageId: string; version: string }[];
  /** Apps running now: a changed configuration applies to them from their next start. */
  running(): string[];
  /** The manual's restart after a restore: leaves emergency support mode and starts the Autostart apps. */
  restart(): Promise<{ left: { reason: string } | null }>;
  clock?: () => Date;
  /** scrypt's cost, lowered only by tests. */
  cost?: { N: number; r: number; p: number };
}

export interface RestoreResult {
  restored: true;
  /** Running apps whose configuration the restore changed: it applies from their next start. */
  restartRequired: boolean;
  appsToRestart: string[];
  /** Apps the backup configures that are not installed here. */
  missingApps: string[];
  leftEmergency: boolean;
  backup: { platformVersion: string; hostId: string; createdAt: string };
}

export class BackupService {
  readonly #options: BackupServiceOptions;

  constructor(options: BackupServiceOptions) {
    this.#options = options;
  }

  #now(): Date {
    return (this.#options.clock ?? (() => new Date()))();
  }

  async create(passphrase: string): Promise<{ fileName: string; bytes: Buffer }> {
    const createdAt = this.#now().toISOString();
    try {
      const bytes = await sealBackup(
        { document: this.#options.config.snapshot() as Record<string, unknown> },
        {
          passphrase,
          platformVersion: this.#options.platformVersion,
          hostId: this.#options.hostId,
          createdAt,
          ...(this.#options.cost ? { cost: this.#options.cost } : {}),
        },
      );
      await this.#options.audit.record('backupCreated', { status: 'completed successfully' }, { bytes: bytes.length });
      return { fileName: `isogate-backup-${this.#options.hostId}-${createdAt.replace(/[:.]/g, '-')}.igb`, bytes };
    } catch (error) {
      await this.#options.audit.record('backupCreated', { status: `failed: ${toIsogateError(error).code}` }).catch(() => undefined);
      throw error;
    }
  }

  async restore(file: Buffer, passphrase: string): Promise<RestoreResult> {
    let header: BackupHeader;
    let missingApps: string[] = [];
    let appsToRestart: string[] = [];
    try {
      const opened = await openBackup(file, passphrase, this.#options.platformVersion);
      header = opened.header;
      const restored = opened.content.document as ConfigDocument;
      const running = new Set(this.#options.running());
      await this.#options.config.update((draft) => {
        const fitted = fitToGateway(draft, restored, this.#options.installed());
        missingApps = fitted.missingApps;
        appsToRestart = fitted.changedApps.filter((id) => running.has(id));
        for (const key of Object.keys(draft)) delete draft[key];
        Object.assign(draft, fitted.document);
      });
    } catch (error) {
      await this.#options.audit.record('configRestored', { status: `refused: ${toIsogateError(error).code}` }).catch(() => undefined);
      throw error;
    }
    await this.#options.audit.record(
      'configRestored',
      { status: 'completed successfully' },
      { backupVersion: header.platformVersion, backupHost: header.hostId, backupCreatedAt: header.createdAt, missingApps },
    );
    const { left } = await this.#options.restart();
    return {
      restored: true,
      restartRequired: appsToRestart.length > 0,
      appsToRestart,
      missingApps,
      leftEmergency: left !== null,
      backup: { platformVersion: header.platformVersion, hostId: header.hostId, createdAt: header.createdAt },
    };
  }
}

const PACKAGE_KEY = /^[a-z][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)+$/;

/**
 * The restored document as this gateway can hold it. Exported for its test: which keys come
 * from the backup and which stay is the restore's whole policy.
 */
export function fitToGateway(
  current: Readonly<ConfigDocument>,
  restored: ConfigDocument,
  installed: readonly { packageId: string; version: string }[],
): { document: ConfigDocument; missingApps: string[]; changedApps: string[] } {
  const here = new Set(installed.map((app) => app.packageId));
  const document = structuredClone(restored) as ConfigDocument;
  for (const key of Object.keys(document)) if (PACKAGE_KEY.test(key) && !here.has(key)) delete document[key];
  const backedUp = Array.isArray(restored.APPLICATIONS?.APPS_CONTROL?.applications) ? restored.APPLICATIONS.APPS_CONTROL.applications : [];
  const entries = current.APPLICATIONS.APPS_CONTROL.applications.map((entry) => {
    const saved = backedUp.find((candidate) => candidate?.package_id === entry.package_id);
    return saved ? { ...entry, launchRule: saved.launchRule, logLevel: saved.logLevel } : { ...entry };
  });
  document.APPLICATIONS = {
    ...document.APPLICATIONS,
    APPS_CONTROL: { ...document.APPLICATIONS?.APPS_CONTROL, applications: entries },
  } as ConfigDocument['APPLICATIONS'];
  const changedApps: string[] = [];
  for (const id of here) {
    if (restored[id] === undefined) {
      if (current[id] !== undefined) document[id] = structuredClone(current[id]);
      continue;
    }
    if (JSON.stringify(restored[id]) !== JSON.stringify(current[id])) changedApps.push(id);
    const entry = entries.find((candidate) => candidate.package_id === id);
    if (entry) entry.configured = true;
  }
  // The device's, not the configuration's: developer mode is left only by a reinstall (the manual), and ABOUT names this build.
  document.ABOUT = structuredClone(current.ABOUT);
  document.MODE_SWITCH = { ...document.MODE_SWITCH, is_developer_mode: current.MODE_SWITCH.is_developer_mode === true };
  if (current.MODE_SWITCH.is_developer_mode === undefined) delete document.MODE_SWITCH.is_developer_mode;
  const missingApps = backedUp.map((entry) => entry?.package_id).filter((id): id is string => typeof id === 'string' && !here.has(id));
  return { document, missingApps, changedApps: changedApps.sort() };
}
