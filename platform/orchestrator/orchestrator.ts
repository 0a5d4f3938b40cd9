/**
 * The orchestrator: install apps from the store (download, verify, atomic install, integrity
 * record) and uninstall them (everything the app owned goes). Follows the manual's "Managing
 * apps": at most 20 apps, no automatic updates (a second version needs an uninstall first, or
 * the admin's in-place `update`, which keeps the app's data), compromised apps cannot be
 * installed, and every step is in the system audit log.
 */
import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import path from 'node:path';
import { debuglog } from 'node:util';
import semver from 'semver';
import { type ErrorCode, fail, IsogateError, isIsogateError, toIsogateError } from '../../sdk/errors.js';
import { type AppManifest, reservedCapabilitiesOf, validateManifest } from '../../sdk/manifest.js';
import { readManifestUnverified, type SignerInfo, type VerifiedPackage } from '../../sdk/package/index.js';
import type { Audit } from '../audit/index.js';
import type { ApplicationEntry, ConfigDocument, ConfigStore } from '../config/index.js';
import { APP_STATE } from '../config/index.js';
import type { DeviceKeys } from '../device/index.js';
import { DataDir, eraseTree, fsyncTree, readJsonIfExists, renameDurable, writeJsonDurable } from '../durable/index.js';
import { type AppOrigin, canonicalJson, type IntegrityRecord, originOf, recordIsAuthentic, sealRecord, verifyInstalledFiles } from '../integrity/index.js';
import { carryConfiguration } from '../launcher/configuration.js';
import type { HeldLaunch } from '../launcher/index.js';
import { RemovalJournal } from './removal.js';
import { type SignerBinding, SignerBindings, type SignerIdentity } from './signer-bindings.js';
import type { CatalogEntry, StoreClient } from './store-client.js';
import { type PackageVerifier, WorkerPackageVerifier } from './verifier.js';

export interface InstalledApp {
  packageId: string;
  version: string;
  manifest: AppManifest;
  /** Root of the installed package files (manifest.json, app/, META-INF/). */
  dir: string;
  record: IntegrityRecord;
}

/**
 * An uninstall past its commit point that has not finished: the app is out (not loaded as
 * installed, never launched; listed as uninstalling), and `uninstall` again finishes it.
 * `failure` says what stopped it.
 */
export interface UnfinishedUninstall {
  packageId: string;
  name: string;
  /** The app's origin as its uninstall record kept it; absent for a record written before it was kept (or an app with no readable record). */
  origin?: AppOrigin;
  failure?: { code: string; message: string; at: string };
}

/**
 * An installed app that failed the check at start (the manual's integrity violation): its
 * record fails its MAC, cannot be read or parsed, or its manifest no longer validates. It is
 * never started and its files stay where they are, for the integrity report, until the admin
 * uninstalls it; each start that finds it records an "Object integrity violation".
 */
export interface QuarantinedApp {
  packageId: string;
  /** From the configuration entry written at install (verified then), else the package id. */
  name: string;
  version: string | null;
  /** What the check found, in a sentence. */
  reason: string;
  detectedAt: string;
  /** The app's directory, DATA/apps/<id>. */
  dir: string;
  /** The install record, when it is authentic (a manifest that no longer validates). */
  record?: IntegrityRecord;
}

export type InstallPhase = 'download' | 'verify' | 'install' | 'start' | 'done';

export interface InstallProgress {
  packageId: string;
  phase: InstallPhase;
  /** Bytes downloaded so far and the package size (download phase). */
  received: number;
  total: number;
  /** 0..100 over the whole install. */
  percent: number;
}

export interface AvailableApp extends CatalogEntry {
  /** The installed version of this app, if any. */
  installedVersion: string | null;
}

export interface OrchestratorOptions {
  /** Data directory: installed apps live in DATA/apps, work in progress in DATA/staging. */
  dataDir: string;
  store: StoreClient;
  /** Roots a store package's signature must chain to. */
  trustRootsPem: string[];
  /**
   * Roots of the platform's own packages (pre-installed from the gateway's image): distinct
   * from the store's roots, held by no store publisher. Without them nothing installs from an image.
   */
  platformTrustRootsPem?: string[];
  config: ConfigStore;
  audit: Audit;
  keys: DeviceKeys;
  /** The manual's limit is 20 apps. */
  maxApps?: number;
  verifier?: PackageVerifier;
  /** Run, in order, before an app's files go: stop it, wipe its storage, logs, certificates, routes. */
  beforeUninstall?: ((packageId: string) => Promise<void>)[];
  /**
   * The ids of the routes from or to an app. An uninstall keeps them, in Error, as the manual has
   * it ("their status changes to Error"; the admin reconfigures or deletes them); its record names them.
   */
  routesOf?: (packageId: string) => string[];
  /** What an in-place update needs of the launcher and the router; without it `update` is refused. */
  updateHooks?: UpdateHooks;
  /**
   * How long a new version must run after an update's start before the update is committed: a
   * failure within it (a start failure, or the app failing) rolls the update back. Default 5 s.
   */
  updateWatchMs?: number;
  /** Called after each step of an update; tests stop there to stand for a crash. */
  onUpdateStep?: (step: UpdateStep, packageId: string) => void | Promise<void>;
  /** Called after each step of an uninstall; tests stop (or kill the process) there to stand for a crash. */
  onUninstallStep?: (step: UninstallStep, packageId: string) => void | Promise<void>;
  clock?: () => Date;
}

export const ORCHESTRATOR_DEFAULTS = { maxApps: 20, updateWatchMs: 5000 } as const;
/**
 * The watch window of an in-place update by a push (ms): none past the start. A pushed version
 * is confirmed by its readiness (the sandbox's ready signal, once its module and start-up ran),
 * which is what "fails to start" means; the developer waits for every push, and a version that
 * fails later is the developer's to see in `logs -f`, under the app's restart rule.
 */
export const PUSH_WATCH_MS = 0;
/** `NODE_DEBUG=isogate-push`: each phase of a push and its swap, with the time (ms) it ended, to stderr. */
const tracePush = debuglog('isogate-push');
const tracePhase = (name: string, packageId: string): void => tracePush('%s %s %d', name, packageId, Math.round(performance.now()));

/** The launcher's and the router's part in an update, wired in platform/main.ts. */
export interface UpdateHooks {
  /**
   * Stops the app if it runs and holds it (nothing starts it) until `release`; true if it ran or
   * was about to. A running app's Stopped state is left for the update to write with its entry
   * (the stored state only tells; start-up decides by the entry's Execute flag). A hold that
   * rejects has left the app as it was: not held, and running again if it ran (the update then
   * calls nothing else, `release` included).
   */
  hold(packageId: string): Promise<boolean>;
  /**
   * Starts the held app and watches it for `watchMs`; rejects with its failure (the app then
   * stopped). `held`: the launch's integrity check already under way (the new version's files,
   * checked where they were staged), and whether the update's entry write recorded Starting.
   */
  run(packageId: string, watchMs: number, held?: HeldLaunch): Promise<void>;
  /** Stops the held app if it runs (the new version that failed). */
  halt(packageId: string): Promise<void>;
  release(packageId: string): void;
  /** The app's files changed version: its routes whose endpoints no longer fit, now in Error. */
  replaced(packageId: string): { id: string; problem?: string }[];
  /**
   * A pushed version is about to be verified and, swapped in, started: its isolate may be made
   * meanwhile, while this thread waits for the verification worker. Given the manifest as the
   * package claims it, of which only the memory limit is read (a sandbox that finds the verified
   * one's different makes its own isolate). Returns what discards it if nothing starts.
   */
  prepare?(packageId: string, claimed: AppManifest): () => void;
}

/**
 * The steps of an update, in order. Up to `committed` a crash leaves the old version (rolled
 * back at the next start); from `committed` on, the new one. `old-erased`: the old version's
 * files are gone, the committed journal not yet.
 */
export type UpdateStep = 'staged' | 'old-moved' | 'new-moved' | 'configured' | 'started' | 'committed' | 'old-erased';

/**
 * The steps of an uninstall, in order (`started`: audited, nothing written yet). `recorded` is its commit point: before it a crash leaves
 * the app as it was; from it on, the next start finishes the uninstall. `hook N` follows the
 * Nth `beforeUninstall` hook (stop, egress, storage, logs, certificates, routes in the gateway).
 */
export type UninstallStep = 'started' | 'recorded' | `hook ${number}` | 'files moved' | 'configuration removed' | 'files erased' | 'done';
export const UNINSTALL_STEPS_AFTER_HOOKS = ['files moved', 'configuration removed', 'files erased', 'done'] as const satisfies readonly UninstallStep[];

/** What a push through the debug service did: installed (`updated` false) or updated in place. */
export interface PushResult extends Omit<UpdateResult, 'previousVersion'> {
  updated: boolean;
  previousVersion: string | null;
}

export interface UpdateResult {
  app: InstalledApp;
  previousVersion: string;
  /** Configuration keys the admin had set that the new schema refuses: back to their defaults. */
  resetKeys: string[];
  /** The app's routes whose endpoints the new version no longer has (or changed): kept, in Error. */
  routesInError: { id: string; problem: string }[];
  /** Whether the new version was started (it is when the old one was running). */
  started: boolean;
}

/**
 * DATA/updates/<id>/journal.json: what an update interrupted by a crash needs to be undone,
 * sealed with the device key like the install records (a forged one could restore any files
 * and configuration it liked).
 */
interface UpdateJournal {
  package_id: string;
  from: string;
  to: string;
  phase: 'swapping' | 'committed';
  startedAt: string;
  /** The app's entry and stored configuration before the update (null: none). */
  entry: ApplicationEntry;
  configuration: unknown;
  mac: string;
}

/** Failures that mean "this package is not authentic": audited as signature errors (Critical). */
const AUTHENTICITY_FAILURES = new Set<ErrorCode>(['E_SIGNATURE', 'E_CERTIFICATE', 'E_DIGEST', 'E_FILE_SET', 'E_SIGNER_MISMATCH']);

export interface OrchestratorEvents {
  installed: [InstalledApp];
  uninstalled: [string];
  progress: [InstallProgress];
}

export class Orchestrator extends EventEmitter<OrchestratorEvents> {
  readonly #options: Required<Omit<OrchestratorOptions, 'verifier' | 'updateHooks' | 'onUpdateStep' | 'onUninstallStep' | 'routesOf'>> &
    Pick<OrchestratorOptions, 'updateHooks' | 'onUpdateStep' | 'onUninstallStep' | 'routesOf'> & { verifier: PackageVerifier };
  #bindings!: SignerBindings;
  readonly #apps = new Map<string, InstalledApp>();
  readonly #quarantined = new Map<string, QuarantinedApp>();
  readonly #busy = new Set<string>();
  /** Uninstalls past their commit point that failed before finishing: the app is gone, `uninstall` finishes it. */
  readonly #removing = new Map<string, Omit<UnfinishedUninstall, 'packageId'>>();
  #removals!: RemovalJournal;
  /** Set by close(): no operation begins, and one under way is let finish or roll back first. */
  #closing = false;
  #idleWaiters: (() => void)[] = [];
  /** Every file access below the data directory goes through it: no link there is followed. */
  readonly #data: DataDir;
  #installsInProgress = 0;

  private constructor(options: OrchestratorOptions) {
    super();
    const maxApps = options.maxApps ?? ORCHESTRATOR_DEFAULTS.maxApps;
    if (!Number.isInteger(maxApps) || maxApps < 1 || maxApps > 20) {
      throw fail('E_OPTION', `orchestrator option maxApps must be an integer from 1 to 20, got ${String(maxApps)}`);
    }
    if (!Array.isArray(options.trustRootsPem) || options.trustRootsPem.length === 0) {
      throw fail('E_OPTION', 'orchestrator option trustRootsPem must name at least one trusted root certificate');
    }
    const storeRoots = new Set(options.trustRootsPem.map((pem) => createHash('sha256').update(pem.replace(/\s+/g, '')).digest('hex')));
    if ((options.platformTrustRootsPem ?? []).some((pem) => storeRoots.has(createHash('sha256').update(pem.replace(/\s+/g, '')).digest('hex')))) {
      throw fail('E_OPTION', "orchestrator option platformTrustRootsPem must not repeat a store root: the platform's roots are its own");
    }
    const updateWatchMs = options.updateWatchMs ?? ORCHESTRATOR_DEFAULTS.updateWatchMs;
    if (!Number.isInteger(updateWatchMs) || updateWatchMs < 0 || updateWatchMs > 600_000) {
      throw fail('E_OPTION', `orchestrator option updateWatchMs must be an integer from 0 to 600000 (ms), got ${String(updateWatchMs)}`);
    }
    this.#options = {
      maxApps,
      updateWatchMs,
      platformTrustRootsPem: [],
      beforeUninstall: [],
      clock: () => new Date(),
      ...options,
      verifier: options.verifier ?? new WorkerPackageVerifier(),
    };
    this.#data = new DataDir(options.dataDir);
  }

  static async open(options: OrchestratorOptions): Promise<Orchestrator> {
    const orchestrator = new Orchestrator(options);
    orchestrator.#bindings = await SignerBindings.open(options.dataDir, options.keys);
    orchestrator.#removals = new RemovalJournal(orchestrator.#data, options.keys);
    // Before #reconcile: an update interrupted between its two renames has no apps/<id>, which
    // #reconcile would take for an uninstalled app and drop its configuration entry.
    await orchestrator.#resumeUpdates();
    // Before #reconcile too, and so before the launcher exists: an uninstall past its commit
    // point is finished before anything could start the app.
    await orchestrator.#resumeUninstalls();
    await orchestrator.#reconcile();
    // Every installed app is bound to its signer, also in a data directory written before
    // bindings existed, and after a crash between an install's commit and its binding.
    await orchestrator.#bindings.seed(
      [...orchestrator.#apps.values()],
      [...options.trustRootsPem, ...(options.platformTrustRootsPem ?? [])],
      orchestrator.#options.clock(),
    );
    return orchestrator;
  }

  /** How many apps may be installed at once (the status shows it beside the count). */
  get maxApps(): number {
    return this.#options.maxApps;
  }

  get #appsDir(): string {
    return path.join(this.#options.dataDir, 'apps');
  }

  get #stagingDir(): string {
    return path.join(this.#options.dataDir, 'staging');
  }

  get #trashDir(): string {
    return path.join(this.#options.dataDir, 'trash');
  }

  get #updatesDir(): string {
    return path.join(this.#options.dataDir, 'updates');
  }

  /**
   * Brings disk and configuration back in line after a crash: half-done work in staging and
   * trash is erased; an app whose directory was renamed in but whose configuration entry was
   * not written is finished; an entry whose directory is gone is dropped. An app that fails
   * the check is quarantined, never moved or erased: its files are the evidence.
   */
  async #reconcile(): Promise<void> {
    const data = this.#data;
    for (const dir of [this.#appsDir, this.#stagingDir, this.#trashDir]) await data.mkdir(data.relative(dir), 0o700);
    for (const { name: leftover } of await data.readdir('staging')) await eraseTree(path.join(this.#stagingDir, leftover), data);
    for (const { name: leftover } of await data.readdir('trash')) await eraseTree(path.join(this.#trashDir, leftover), data);

    const entries = this.#options.config.read((doc) =>
      doc.APPLICATIONS.APPS_CONTROL.applications.map((a) => ({ id: a.package_id, name: a.name, version: a.version })),
    );
    for (const { name } of await data.readdir('apps')) {
      // An uninstall that could not finish at start: its files are on their way out, not an app.
      if (this.#removing.has(name)) continue;
      const loaded = await this.#loadInstalled(name);
      if ('app' in loaded) {
        this.#apps.set(name, loaded.app);
        continue;
      }
      const entry = entries.find((candidate) => candidate.id === name);
      const quarantined: QuarantinedApp = {
        packageId: name,
        name: entry?.name ?? name,
        version: entry?.version ?? loaded.record?.version ?? null,
        reason: loaded.problem,
        detectedAt: this.#options.clock().toISOString(),
        dir: path.join(this.#appsDir, name),
        ...(loaded.record ? { record: loaded.record } : {}),
      };
      this.#quarantined.set(name, quarantined);
      await this.#options.audit.record(
        'integrityViolation',
        {
          object: `The app ${name}`,
          description: `${loaded.problem}. It is quarantined: it is not started, and its files stay in ${quarantined.dir} for the integrity report until it is uninstalled ("isogate apps uninstall ${name}")`,
        },
        { packageId: name, reason: loaded.problem, path: quarantined.dir },
      );
    }
    const missingEntries = [...this.#apps.values()].filter((app) => !entries.some((entry) => entry.id === app.packageId));
    // A quarantined app keeps its entry (start rule, configuration) until it is uninstalled.
    const orphanEntries = entries.map((entry) => entry.id).filter((id) => !this.#apps.has(id) && !this.#quarantined.has(id) && !this.#removing.has(id));
    if (missingEntries.length || orphanEntries.length) {
      await this.#options.config.update((doc) => {
        const list = doc.APPLICATIONS.APPS_CONTROL.applications.filter((entry) => !orphanEntries.includes(entry.package_id));
        for (const app of missingEntries) list.push(this.#newEntry(app.manifest));
        doc.APPLICATIONS.APPS_CONTROL.applications = list;
        // An app's configuration goes with its entry: a later install of the id starts afresh.
        for (const id of orphanEntries) delete doc[id];
      });
    }
  }

  /**
   * An app's integrity record, read and checked, or what is wrong with it. A link on the way is
   * not a finding but a refusal (E_UNSAFE_PATH): the gateway acts on nothing planted there.
   * Read from the app's folder under apps/, or from `folder` (relative to the data directory: a
   * new version's staging).
   */
  async #readRecord(name: string, folder = path.join('apps', name)): Promise<{ record: IntegrityRecord } | { problem: string; record?: undefined }> {
    let bytes: Buffer | undefined;
    try {
      bytes = await this.#data.readFile(path.join(folder, 'record.json'));
    } catch (error) {
      if (isIsogateError(error, 'E_UNSAFE_PATH')) throw error;
      return { problem: `its integrity record cannot be read (${(error as Error).message})` };
    }
    if (bytes === undefined) return { problem: 'its integrity record (record.json) is missing' };
    let parsed: unknown;
    try {
      parsed = JSON.parse(bytes.toString('utf8'));
    } catch (error) {
      return { problem: `its integrity record is not JSON (${(error as Error).message}): it is truncated or was overwritten` };
    }
    if (!isRecordShaped(parsed)) return { problem: 'its integrity record is not an install record (fields are missing or of the wrong type)' };
    if (!recordIsAuthentic(parsed, this.#options.keys)) {
      return {
        problem: 'its integrity record is not authentic: it fails its MAC check, so it was changed after the install or was not written by this gateway',
      };
    }
    if (parsed.package_id !== name) return { problem: `its integrity record is that of another app (${parsed.package_id})` };
    return { record: parsed };
  }

  async #loadInstalled(name: string): Promise<{ app: InstalledApp } | { problem: string; record?: IntegrityRecord }> {
    const read = await this.#readRecord(name);
    if (!read.record) return read;
    const { record } = read;
    const relative = path.join('apps', name, 'package', 'manifest.json');
    let bytes: Buffer | undefined;
    try {
      bytes = await this.#data.readFile(relative);
    } catch (error) {
      if (isIsogateError(error, 'E_UNSAFE_PATH')) throw error;
      return { problem: `its manifest cannot be read (${(error as Error).message})`, record };
    }
    if (bytes === undefined) return { problem: 'its manifest (package/manifest.json) is missing', record };
    // The record's digest first: the launcher would refuse a changed manifest too, but routes and
    // listings read it before any launch.
    if (createHash('sha256').update(bytes).digest('hex') !== record.digests['manifest.json']) {
      return { problem: 'its manifest (package/manifest.json) was changed after the install', record };
    }
    let manifest: AppManifest;
    try {
      manifest = validateManifest(JSON.parse(bytes.toString('utf8')));
    } catch (error) {
      const coded = toIsogateError(error);
      return {
        problem: `its manifest no longer validates under this gateway's rules (${coded.code}: ${coded.message}); install a version built for them`,
        record,
      };
    }
    if (manifest.package_id !== record.package_id || manifest.version !== record.version) {
      return { problem: `its manifest is of ${manifest.package_id} ${manifest.version}, its record of ${record.package_id} ${record.version}`, record };
    }
    return { app: { packageId: record.package_id, version: record.version, manifest, dir: path.join(this.#appsDir, name, 'package'), record } };
  }

  /** Installed apps quarantined at start (see QuarantinedApp), by name. */
  quarantined(): QuarantinedApp[] {
    return [...this.#quarantined.values()].map((app) => ({ ...app })).sort((a, b) => a.name.localeCompare(b.name));
  }

  getQuarantined(packageId: string): QuarantinedApp | undefined {
    const app = this.#quarantined.get(packageId);
    return app && { ...app };
  }

  list(): InstalledApp[] {
    return [...this.#apps.values()].sort((a, b) => a.manifest.name.localeCompare(b.manifest.name));
  }

  get(packageId: string): InstalledApp | undefined {
    return this.#apps.get(packageId);
  }

  /** The store's catalog with each app's installed version beside it. */
  async available(): Promise<AvailableApp[]> {
    const catalog = await this.#options.store.catalog();
    return catalog
      .map((entry) => ({ ...entry, installedVersion: this.#apps.get(entry.package_id)?.version ?? null }))
      .sort((a, b) => a.name.localeCompare(b.name) || compareVersions(a.version, b.version));
  }

  #newEntry(manifest: AppManifest): ApplicationEntry {
    const hasConfig = this.#options.config.read((doc) => doc[manifest.package_id] !== undefined);
    return {
      package_id: manifest.package_id,
      name: manifest.name,
      version: manifest.version,
      type: manifest.type,
      manifest: JSON.stringify(manifest),
      configured: !manifest.configuration?.required || hasConfig || manifest.configuration.defaults !== undefined,
      execute: false,
      restart_on_failure: manifest.restartOnFailure ?? true,
      state: APP_STATE.stopped,
      // The manual: "By default, the manual start rule is applied to the application after it is installed."
      launchRule: 'none',
      logLevel: 3,
    };
  }

  async #chooseEntry(packageId: string, version: string | undefined): Promise<CatalogEntry> {
    const offered = (await this.#options.store.catalog()).filter((entry) => entry.package_id === packageId);
    if (offered.length === 0) throw fail('E_NOT_FOUND', `The store offers no app ${packageId}`, { packageId });
    if (version !== undefined) {
      const exact = offered.find((entry) => entry.version === version);
      if (!exact) {
        throw fail(
          'E_DELISTED',
          `The store no longer offers version ${version} of ${packageId} (it may have been delisted); offered: ${offered.map((e) => e.version).join(', ')}`,
          { packageId, version },
        );
      }
      if (!semver.valid(exact.version, true)) {
        throw fail('E_STORE', `The store lists ${packageId} "${version}", which is no version (a package's version is semver); nothing was changed`, {
          packageId,
          version,
        });
      }
      return exact;
    }
    // Every version the store lists, in semver order; one it lists that is no version cannot be the newest of anything.
    const ordered = offered.filter((entry) => semver.valid(entry.version, true));
    if (ordered.length === 0) throw fail('E_STORE', `The store lists no semver version of ${packageId}`, { packageId });
    const available = ordered.filter((entry) => entry.status === 'available');
    const pool = available.length ? available : ordered;
    return pool.reduce((best, entry) => (semver.gt(entry.version, best.version, true) ? entry : best));
  }

  /**
   * Installs `packageId` (the newest available version, or `version`). Nothing is left on
   * disk or in the configuration when any step fails.
   */
  async install(packageId: string, options: { version?: string; onProgress?: (progress: InstallProgress) => void } = {}): Promise<InstalledApp> {
    if (this.#busy.has(packageId)) throw fail('E_BUSY', `${packageId} is being installed or uninstalled already`);
    this.#refuseRemoving(packageId);
    this.#begin(packageId);
    try {
      return await this.#install(packageId, options);
    } finally {
      this.#end(packageId);
    }
  }

  async #install(packageId: string, options: { version?: string; onProgress?: (progress: InstallProgress) => void }): Promise<InstalledApp> {
    const audit = this.#options.audit;
    this.#refuseQuarantined(packageId);
    const installed = this.#apps.get(packageId);
    if (installed) {
      if (options.version === undefined || options.version === installed.version) {
        throw fail('E_ALREADY_INSTALLED', `${installed.manifest.name} ${installed.version} is installed already`, { packageId, version: installed.version });
      }
      // The manual: an install does not replace an installed version; uninstall first (which
      // erases the app's data), or update it in place with `update`, which keeps it.
      await audit.record('newVersionAttempt', {}, { packageId, installed: installed.version, requested: options.version });
      throw fail(
        'E_NEW_VERSION',
        `${installed.manifest.name} ${installed.version} is installed; run "isogate apps update ${packageId} --version ${options.version}" to update it keeping its data, or uninstall it before installing ${options.version}`,
        { packageId },
      );
    }

    const entry = await this.#chooseEntry(packageId, options.version);
    const appName = entry.name;
    if (entry.status === 'compromised') {
      await audit.record('installError', { 'application name': appName }, { packageId, version: entry.version, code: 'E_COMPROMISED' });
      throw fail('E_COMPROMISED', `${appName} ${entry.version} is marked compromised in the store and cannot be installed`, {
        packageId,
        version: entry.version,
      });
    }
    await this.#refuseOverLimit(packageId, appName);

    const report = (phase: InstallPhase, received: number, percent: number): void => {
      const progress = { packageId, phase, received, total: entry.size, percent };
      options.onProgress?.(progress);
      this.emit('progress', progress);
    };
    const app = await this.#stageAndCommit('store', appName, async (work) => {
      const download = await this.#download(entry, work, appName, report);
      report('verify', entry.size, 70);
      const verified = await this.#verify(download, path.join(work, 'package'), entry, appName, 'store');
      report('install', entry.size, 90);
      return verified;
    });
    report('done', entry.size, 100);
    this.emit('installed', app);
    return app;
  }

  /** An install past the app limit (a quarantined app keeps its slot) is refused and audited, before anything is staged. */
  async #refuseOverLimit(packageId: string, appName: string): Promise<void> {
    if (this.#occupied() < this.#options.maxApps) return;
    await this.#options.audit.record('installLimitError', { 'application name': appName }, { packageId, limit: this.#options.maxApps });
    throw fail('E_APP_LIMIT', `${this.#options.maxApps} apps are installed; uninstall one before installing ${appName}`, { limit: this.#options.maxApps });
  }

  /**
   * The install path every origin shares: a fresh staging folder, the origin's own steps up to a
   * verified package in it, the commit, the audit record. Whatever fails leaves nothing in staging;
   * while it runs, the install holds a slot among the apps.
   */
  async #stageAndCommit(origin: AppOrigin, appName: string, stage: (work: string) => Promise<VerifiedPackage>, owner?: string): Promise<InstalledApp> {
    this.#installsInProgress += 1;
    const work = path.join(this.#stagingDir, randomBytes(8).toString('hex'));
    try {
      const verified = await stage(work);
      if (this.#closing) {
        const abandoned = fail('E_UNAVAILABLE', `The gateway is stopping: the install of ${appName} was abandoned before its commit and rolled back`);
        // Audited like any install that did not happen: the stop's own record does not name it.
        await this.#options.audit.record(
          'installError',
          { 'application name': appName },
          { packageId: verified.manifest.package_id, version: verified.manifest.version, origin, code: abandoned.code, reason: abandoned.message },
        );
        throw abandoned;
      }
      // Audited inside the commit, before the configuration entry that makes the app installed is
      // written (fail closed): an install the trail cannot hold is rolled back, refused with the audit's code.
      return await this.#commit(work, verified, origin, owner, (record) =>
        this.#options.audit.record(
          'installSucceeded',
          { 'application name': appName },
          {
            packageId: verified.manifest.package_id,
            version: verified.manifest.version,
            origin,
            signer: signerDetails(record),
            ...(origin === 'debug' ? { signature: 'unsigned', owner } : {}),
          },
        ),
      );
    } catch (error) {
      await eraseTree(work, this.#data);
      throw error;
    } finally {
      this.#installsInProgress -= 1;
    }
  }

  /** Downloads a catalog entry into `work`/package.igp, audited as the manual's download events. */
  async #download(
    entry: CatalogEntry,
    work: string,
    appName: string,
    report: (phase: InstallPhase, received: number, percent: number) => void,
  ): Promise<string> {
    const audit = this.#options.audit;
    const packageId = entry.package_id;
    await this.#data.mkdir(this.#data.relative(path.join(work, 'package')), 0o700);
    const download = path.join(work, 'package.igp');
    await audit.record('downloadStarted', { 'application name': appName }, { packageId, version: entry.version });
    report('download', 0, 0);
    try {
      await this.#options.store.download(entry, download, ({ received, total }) =>
        report('download', received, Math.floor((received / Math.max(total, 1)) * 70)),
      );
    } catch (error) {
      await audit.record('downloadError', { 'application name': appName }, { packageId, code: toIsogateError(error).code });
      throw error;
    }
    await audit.record('downloadSucceeded', { 'application name': appName }, { packageId, bytes: entry.size });
    return download;
  }

  /** Slots taken: a quarantined app keeps its slot until it is uninstalled. */
  #occupied(): number {
    return this.#apps.size + this.#quarantined.size + this.#installsInProgress;
  }

  #refuseQuarantined(packageId: string): void {
    const quarantined = this.#quarantined.get(packageId);
    if (!quarantined) return;
    throw fail(
      'E_ALREADY_INSTALLED',
      `${quarantined.name} is installed and quarantined (${quarantined.reason}); uninstall it ("isogate apps uninstall ${packageId}") before installing it again`,
      { packageId, quarantined: true },
    );
  }

  /**
   * Verifies a package against the roots of its origin only (the store's, or the platform's
   * for an image), then the rules that need the verified manifest and signer: the catalog
   * entry it was offered as, reserved capabilities, and the id's bound signer. Nothing is
   * committed before all of them hold.
   */
  async #verify(file: string, extractTo: string, entry: { package_id: string; version: string }, appName: string, origin: AppOrigin): Promise<VerifiedPackage> {
    const audit = this.#options.audit;
    try {
      const roots = origin === 'image' ? this.#options.platformTrustRootsPem : this.#options.trustRootsPem;
      if (roots.length === 0) throw fail('E_SIGNATURE', 'No platform root is configured, so no package can be installed from the image');
      // The manual's developer mode: a package installed through the debug service is not
      // signature-verified; every other check of the package (paths, limits, the exact file
      // list and digests, the manifest) still runs.
      const verified = await this.#options.verifier.verify({
        file,
        extractTo,
        trustRootsPem: roots,
        // Only a push through the debug service skips the signature: store packages stay
        // verified in developer mode too (the manual's rule).
        allowUnsigned: origin === 'debug',
        now: this.#options.clock().getTime(),
      });
      if (verified.manifest.package_id !== entry.package_id || verified.manifest.version !== entry.version) {
        throw fail(
          'E_CATALOG_MISMATCH',
          `The package is ${verified.manifest.package_id} ${verified.manifest.version} but the catalog offered ${entry.package_id} ${entry.version}`,
          {
            expected: { package_id: entry.package_id, version: entry.version },
            actual: { package_id: verified.manifest.package_id, version: verified.manifest.version },
          },
        );
      }
      const reserved = reservedCapabilitiesOf(verified.manifest);
      if (reserved.length && origin !== 'image') {
        throw fail(
          'E_RESERVED_CAPABILITY',
          `${verified.manifest.package_id} claims ${reserved.join(', ')}, which only the platform's own apps (pre-installed from the gateway's image and signed by a platform root) may hold; a store package cannot. Nothing was installed.`,
          { packageId: verified.manifest.package_id, capabilities: reserved },
        );
      }
      // A pushed package is unsigned whatever it carries, so an id bound to a signer (one that
      // came from the store, installed now or before) cannot be taken over by a push.
      const pushed = origin === 'debug';
      this.#bindings.check(verified.manifest.package_id, pushed ? null : signerIdentity(verified.signer));
      return pushed ? { ...verified, signer: null, signatureChecked: false } : verified;
    } catch (error) {
      const coded = toIsogateError(error);
      const event = AUTHENTICITY_FAILURES.has(coded.code) ? 'signatureError' : 'installError';
      await audit.record(
        event,
        { 'application name': appName },
        {
          packageId: entry.package_id,
          version: entry.version,
          origin,
          code: coded.code,
          reason: coded.message,
          ...(coded.code === 'E_SIGNER_MISMATCH' ? { bound: coded.details.bound, offered: coded.details.offered } : {}),
        },
      );
      throw coded;
    }
  }

  /**
   * Staging -> apps/<id> in one rename, then the configuration entry (undone if that fails), then the signer binding.
   * The entry is the commit point: `audit` writes the install's record just before it, and a record that cannot be
   * written undoes the rename and refuses the install with the audit's code (E_STORAGE_FULL, E_IO).
   */
  async #commit(
    work: string,
    verified: VerifiedPackage,
    origin: AppOrigin,
    owner: string | undefined,
    audit: (record: IntegrityRecord) => Promise<unknown>,
  ): Promise<InstalledApp> {
    const { manifest, signer } = verified;
    const data = this.#data;
    const record = await this.#seal(work, verified, origin, owner);
    const root = path.join(this.#appsDir, manifest.package_id);
    await renameDurable(work, root, data);
    const app: InstalledApp = { packageId: manifest.package_id, version: manifest.version, manifest, dir: path.join(root, 'package'), record };
    let auditFailed = false;
    try {
      await this.#options.config.update(
        (doc) => {
          doc.APPLICATIONS.APPS_CONTROL.applications.push(this.#newEntry(manifest));
        },
        {
          audit: () =>
            audit(record).catch((error: unknown) => {
              auditFailed = true;
              throw error;
            }),
        },
      );
    } catch (error) {
      await eraseTree(root, data);
      const coded = toIsogateError(error);
      if (auditFailed) {
        throw fail(coded.code, `${manifest.name} was not installed: its audit record could not be written (${coded.message})`, {
          packageId: manifest.package_id,
        });
      }
      throw fail('E_INSTALL', `The configuration could not record ${manifest.name}: ${coded.message}`);
    }
    this.#apps.set(app.packageId, app);
    // Should this write fail, the next start binds the id from the record just committed.
    const identity = signerIdentity(signer);
    if (identity) await this.#bindings.bind(app.packageId, identity, this.#options.clock());
    return app;
  }

  /** Writes the 0.1.0-compatible, MAC'd install record beside a verified package in `work`, and syncs it all to disk. */
  async #seal(work: string, verified: VerifiedPackage, origin: AppOrigin, owner?: string): Promise<IntegrityRecord> {
    const { manifest, digests: signedDigests, packageSha256, signer } = verified;
    // The signature files are not in the signed list; their digests, taken as the verifier wrote
    // them (META-INF holds nothing else: the package format refuses any other name there), are
    // recorded too, so that the launch-time check covers every file on disk, not only the signed ones.
    const digests: Record<string, string> = { ...signedDigests };
    for (const [name, digest] of Object.entries(verified.metaDigests)) digests[name] = digest;
    const data = this.#data;
    const record = sealRecord(
      {
        package_id: manifest.package_id,
        version: manifest.version,
        installedAt: this.#options.clock().toISOString(),
        packageSha256,
        digests,
        signer: signer && {
          subject: signer.subject,
          issuer: signer.issuer,
          serialNumber: signer.serialNumber,
          fingerprint256: signer.fingerprint256,
          validTo: signer.validTo,
          spkiSha256: signer.spkiSha256,
          ...(signer.issuingCa ? { issuerSpkiSha256: signer.issuingCa.spkiSha256 } : {}),
        },
        origin,
        ...(owner === undefined ? {} : { owner }),
      },
      this.#options.keys,
    );
    // Written in place, not by the atomic temporary-and-rename: staging is erased whole after a
    // crash, and the one pass of fsyncs below (every file and directory) makes the record
    // durable with the files before the rename that installs them, one fsync fewer. The
    // download goes at the same time: the two touch different files.
    const writeRecord = async (): Promise<void> => {
      const handle = await data.open(data.relative(path.join(work, 'record.json')), 'wx', 0o600);
      try {
        await handle.writeFile(`${JSON.stringify(record, null, 2)}\n`);
      } finally {
        await handle.close();
      }
    };
    const prepared = await Promise.allSettled([data.remove(data.relative(path.join(work, 'package.igp'))), writeRecord()]);
    for (const outcome of prepared) if (outcome.status === 'rejected') throw outcome.reason;
    await fsyncTree(work, data);
    return record;
  }

  /**
   * Installs one of the platform's own packages from a directory of the gateway's image,
   * verified against the platform roots only: the one way an app gets origin `image` and
   * with it the reserved capabilities its manifest claims.
   */
  async installFromImage(packageFile: string): Promise<InstalledApp> {
    const manifest = await readImageManifest(packageFile);
    const packageId = manifest.package_id;
    if (this.#busy.has(packageId)) throw fail('E_BUSY', `${packageId} is being installed or uninstalled already`);
    this.#refuseRemoving(packageId);
    this.#refuseQuarantined(packageId);
    if (this.#apps.has(packageId))
      throw fail('E_ALREADY_INSTALLED', `${manifest.name} ${this.#apps.get(packageId)!.version} is installed already`, { packageId });
    await this.#refuseOverLimit(packageId, manifest.name);
    this.#begin(packageId);
    try {
      const app = await this.#stageAndCommit('image', manifest.name, async (work) => {
        await this.#data.mkdir(this.#data.relative(path.join(work, 'package')), 0o700);
        // The image's own file, read in place: the signature, not the path, makes it the platform's.
        return this.#verify(packageFile, path.join(work, 'package'), manifest, manifest.name, 'image');
      });
      this.emit('installed', app);
      return app;
    } finally {
      this.#end(packageId);
    }
  }

  /**
   * `isogate apps update ID [--version V] [--allow-downgrade]`: replaces an installed app by
   * another version of itself in place, keeping what the app owns beside its files (storage,
   * certificates, logs), its start rule, the configuration values the new schema still accepts
   * and its routes. The manual's uninstall-then-install path stays as it is.
   *
   * Atomicity. The new version is downloaded, verified (the id's bound signer or its renewal,
   * no reserved capability) and sealed in staging while the old one keeps running; nothing has
   * changed yet. Then, with the app stopped and held:
   *   1. staging -> DATA/updates/<id>/new, and the sealed journal (old entry and configuration)
   *      is written: `staged`;
   *   2. apps/<id> -> updates/<id>/old: `old-moved`;
   *   3. updates/<id>/new -> apps/<id>: `new-moved`;
   *   4. the configuration entry and values for the new version: `configured`;
   *   5. the new version starts and runs for the watch window: `started`;
   *   6. the journal's phase becomes `committed`: THE COMMIT POINT;
   *   7. updates/<id> (the old version) is erased.
   * A failure at 2-5 is undone at once (files, record, configuration, the old version started
   * again if it ran). A crash anywhere is resolved by the next open (`#resumeUpdates`): no
   * journal, or one not committed, means the old version (moved back, its entry and
   * configuration restored from the journal); a committed journal means the new one (the old
   * files erased). Every rename is within the data directory and made durable before the next
   * step, so each state on disk is one of these.
   */
  async update(
    packageId: string,
    options: { version?: string; allowDowngrade?: boolean; onProgress?: (progress: InstallProgress) => void } = {},
  ): Promise<UpdateResult> {
    const quarantined = this.#quarantined.get(packageId);
    if (quarantined) {
      throw fail(
        'E_INTEGRITY',
        `${quarantined.name} is quarantined (${quarantined.reason}); an update would replace the evidence: uninstall it ("isogate apps uninstall ${packageId}") and install it again`,
        { packageId, quarantined: true },
      );
    }
    const installed = this.#apps.get(packageId);
    if (!installed) throw fail('E_NOT_INSTALLED', `${packageId} is not installed; install it with "isogate apps install ${packageId}"`, { packageId });
    if (this.#busy.has(packageId)) throw fail('E_BUSY', `${packageId} is being installed, updated or uninstalled already`);
    const hooks = this.#options.updateHooks;
    if (!hooks) throw fail('E_UNAVAILABLE', 'In-place updates are not wired in this gateway');
    if (originOf(installed.record) === 'image') {
      throw fail('E_CONFLICT', `${installed.manifest.name} comes from the gateway's image and is updated with the image, not from the store`, { packageId });
    }
    if (originOf(installed.record) === 'debug') {
      throw fail('E_CONFLICT', `${installed.manifest.name} was pushed through the debug service and is updated by pushing it again, not from the store`, {
        packageId,
      });
    }
    this.#begin(packageId);
    try {
      return await this.#update(installed, hooks, options);
    } finally {
      this.#end(packageId);
    }
  }

  async #update(
    installed: InstalledApp,
    hooks: UpdateHooks,
    options: { version?: string; allowDowngrade?: boolean; onProgress?: (progress: InstallProgress) => void },
  ): Promise<UpdateResult> {
    const audit = this.#options.audit;
    const { packageId } = installed;
    const appName = installed.manifest.name;
    const from = installed.version;
    const entry = await this.#chooseEntry(packageId, options.version);
    if (semver.eq(entry.version, from, true)) {
      throw fail(
        'E_ALREADY_INSTALLED',
        `${appName} ${from} is installed already${options.version === undefined ? ': it is the newest version the store offers' : ''}; nothing was changed`,
        { packageId, version: from },
      );
    }
    if (semver.lt(entry.version, from, true) && !options.allowDowngrade) {
      throw fail(
        'E_DOWNGRADE',
        `${appName} ${from} is installed and ${entry.version} is older; to go back to it, add --allow-downgrade. Nothing was changed.`,
        { packageId, installed: from, requested: entry.version },
      );
    }
    const names = { 'application name': appName, 'installed version': from, 'new version': entry.version };
    const refused = async (error: unknown): Promise<never> => {
      const coded = toIsogateError(error);
      await audit.record('updateError', { ...names, description: coded.code }, { packageId, from, to: entry.version, code: coded.code, reason: coded.message });
      throw coded;
    };
    if (entry.status === 'compromised') {
      await refused(
        fail('E_COMPROMISED', `${appName} ${entry.version} is marked compromised in the store and cannot be installed; ${from} is unchanged`, {
          packageId,
          version: entry.version,
        }),
      );
    }
    await audit.record('updateStarted', names, { packageId, from, to: entry.version });

    const report = (phase: InstallPhase, received: number, percent: number): void => {
      const progress = { packageId, phase, received, total: entry.size, percent };
      options.onProgress?.(progress);
      this.emit('progress', progress);
    };
    const data = this.#data;
    const work = path.join(this.#stagingDir, randomBytes(8).toString('hex'));
    let verified: VerifiedPackage;
    try {
      const download = await this.#download(entry, work, appName, report);
      report('verify', entry.size, 70);
      verified = await this.#verify(download, path.join(work, 'package'), entry, appName, 'store');
      await this.#seal(work, verified, 'store');
    } catch (error) {
      await eraseTree(work, data);
      return refused(error);
    }
    return this.#swapIn(installed, hooks, { work, verified, size: entry.size, names, report, refused, watchMs: this.#options.updateWatchMs });
  }

  /**
   * The swap of an update (steps 1 to 7 of `update`), for a new version verified and sealed in
   * `work`, whether it came from the store or was pushed through the debug service.
   */
  async #swapIn(
    installed: InstalledApp,
    hooks: UpdateHooks,
    context: {
      work: string;
      verified: VerifiedPackage;
      size: number;
      names: Record<string, string>;
      report: (phase: InstallPhase, received: number, percent: number) => void;
      refused: (error: unknown) => Promise<never>;
      /** How long the new version must run before the swap is committed. */
      watchMs: number;
    },
  ): Promise<UpdateResult> {
    const { work, verified, names, report, refused } = context;
    const entry = { size: context.size };
    const audit = this.#options.audit;
    const data = this.#data;
    const { packageId } = installed;
    const appName = installed.manifest.name;
    const from = installed.version;
    const manifest = verified.manifest;
    const oldEntry = this.#options.config.read((doc) => structuredClone(doc.APPLICATIONS.APPS_CONTROL.applications.find((e) => e.package_id === packageId)));
    if (!oldEntry) {
      await eraseTree(work, data);
      return refused(fail('E_INSTALL', `${packageId} has no entry in the configuration document`));
    }
    report('install', entry.size, 80);
    const dir = path.join(this.#updatesDir, packageId);
    const step = async (name: UpdateStep): Promise<void> => {
      tracePhase(name, packageId);
      await this.#options.onUpdateStep?.(name, packageId);
    };
    const root = path.join(this.#appsDir, packageId);
    // The new version's launch check, made on its staged files while the old version is stopped
    // (the launch takes the bytes it checked, so they are what runs), settled before those files move.
    const checked = this.#checkFiles(packageId, manifest.version, data.relative(work));
    const settled = checked.then(
      () => undefined,
      () => undefined,
    );
    let wasRunning: boolean;
    try {
      wasRunning = await hooks.hold(packageId);
      tracePhase('held', packageId);
    } catch (error) {
      await settled;
      await eraseTree(work, data);
      const coded = toIsogateError(error);
      return refused(
        fail(coded.code, `${appName} was not updated: it could not be stopped and held for the update (${coded.message}); ${from} is as it was`, {
          ...coded.details,
          packageId,
          from,
          to: manifest.version,
        }),
      );
    }
    // Read once the app is held: a configuration saved until then is the one carried and journalled
    // (read before, it was overwritten by the carried older one when a save came between).
    const oldConfiguration = this.#options.config.read((doc) => (doc[packageId] === undefined ? null : structuredClone(doc[packageId])));
    const carried = carryConfiguration(manifest, oldConfiguration ?? undefined);
    const newEntry: ApplicationEntry = {
      ...oldEntry,
      name: manifest.name,
      version: manifest.version,
      type: manifest.type,
      manifest: JSON.stringify(manifest),
      configured: !manifest.configuration?.required || carried.value !== undefined || manifest.configuration.defaults !== undefined,
      // Held, the app is stopped (the hold leaves it to this write to record), or about to start
      // again: then this write records Starting, and the start that follows writes none of its own.
      // Before the commit point a crash restores the journal's entry, so no state written here outlives one.
      state: wasRunning ? APP_STATE.starting : APP_STATE.stopped,
    };
    const journal: Omit<UpdateJournal, 'mac'> = {
      package_id: packageId,
      from,
      to: manifest.version,
      phase: 'swapping',
      startedAt: this.#options.clock().toISOString(),
      entry: oldEntry,
      configuration: oldConfiguration,
    };
    let swapped = false;
    let configured = false;
    let starting = false;
    let auditFailed = false;
    const newApp: InstalledApp = { packageId, version: manifest.version, manifest, dir: path.join(root, 'package'), record: {} as IntegrityRecord };
    try {
      let routesInError: UpdateResult['routesInError'];
      try {
        await data.mkdir(data.relative(this.#updatesDir), 0o700);
        await eraseTree(dir, data);
        await data.mkdir(data.relative(dir), 0o700);
        await settled;
        // Side by side: a crash leaves either, both or neither, and the start-up's recovery
        // handles each (a journal without new/ rolls back to the entry it holds, the one in use;
        // new/ without a journal is erased). Both are done, or failed, before the old files move.
        const staged = await Promise.allSettled([renameDurable(work, path.join(dir, 'new'), data), this.#writeJournal(dir, journal)]);
        for (const outcome of staged) if (outcome.status === 'rejected') throw outcome.reason;
        await step('staged');
        const record = await readJsonIfExists<IntegrityRecord>(path.join(dir, 'new', 'record.json'), data);
        if (!record) throw fail('E_INSTALL', 'The staged record of the new version disappeared');
        newApp.record = record;

        // The two renames, then the two folders they changed synced side by side: each crash
        // state of the pair (neither, the old aside, both) is one the start-up's recovery
        // undoes from the journal, so neither needs its own syncs before the other; both are
        // on disk before anything else of the swap is written.
        await data.rename(data.relative(root), data.relative(path.join(dir, 'old')));
        swapped = true;
        await step('old-moved');
        await data.rename(data.relative(path.join(dir, 'new')), data.relative(root));
        this.#apps.set(packageId, newApp);
        const synced = await Promise.allSettled([data.syncDirectory(data.relative(this.#appsDir)), data.syncDirectory(data.relative(dir))]);
        for (const outcome of synced) if (outcome.status === 'rejected') throw outcome.reason;
        await step('new-moved');
        await this.#options.config.update((doc) => this.#applyEntry(doc, newEntry, carried.value));
        configured = true;
        routesInError = hooks.replaced(packageId).map((route) => ({ id: route.id, problem: route.problem ?? 'its endpoints no longer fit' }));
        await step('configured');
        if (wasRunning) {
          report('start', entry.size, 90);
          starting = true;
          await hooks.run(packageId, context.watchMs, { checked, startingRecorded: true });
          await step('started');
        }
        // Audited before the commit point (fail closed): an update the trail cannot hold is rolled back.
        await audit
          .record('updateSucceeded', names, {
            packageId,
            from,
            to: manifest.version,
            resetKeys: carried.reset,
            routesInError: routesInError.map((route) => route.id),
            signer: signerDetails(newApp.record),
          })
          .catch((error: unknown) => {
            auditFailed = true;
            throw error;
          });
      } catch (error) {
        // Undone at once: the old files, record, entry and configuration, and the old version running again if it ran.
        const coded = toIsogateError(error);
        if (starting) await hooks.halt(packageId);
        await this.#undoUpdate(installed, dir, { swapped, configured, oldEntry, oldConfiguration });
        hooks.replaced(packageId);
        let restarted = false;
        if (wasRunning)
          restarted = await hooks.run(packageId, 0).then(
            () => true,
            () => false,
          );
        const rolledBack = audit.record(
          'updateRolledBack',
          { ...names, description: coded.code },
          { packageId, from, to: manifest.version, code: coded.code, reason: coded.message, restarted },
        );
        // The trail that refused the success may take the rollback once space returns; the refusal is the audit's either way.
        if (auditFailed) {
          await rolledBack.catch(() => undefined);
          throw fail(coded.code, `${appName} was not updated: its audit record could not be written (${coded.message}); ${from} was restored`, {
            packageId,
            from,
            to: manifest.version,
            restarted,
          });
        }
        await rolledBack;
        if (!starting) throw coded;
        throw new IsogateError(
          'E_UPDATE_ROLLED_BACK',
          `${appName} ${manifest.version} failed to start (${coded.code}: ${coded.message}); ${from} was restored with its configuration${restarted ? ' and runs again' : ''}. Nothing the app stored was lost.`,
          { packageId, from, to: manifest.version, failure: { code: coded.code, message: coded.message }, restarted },
        );
      }

      // The commit point: from here on a crash leaves the new version.
      await this.#writeJournal(dir, { ...journal, phase: 'committed' });
      await step('committed');
      await this.#eraseUpdateDir(dir, () => step('old-erased'));
      tracePhase('erased', packageId);
      const identity = signerIdentity(verified.signer);
      if (identity) await this.#bindings.bind(packageId, identity, this.#options.clock());
      report('done', entry.size, 100);
      this.emit('installed', newApp);
      return { app: newApp, previousVersion: from, resetKeys: carried.reset, routesInError, started: wasRunning };
    } finally {
      hooks.release(packageId);
    }
  }

  /**
   * A package pushed through the debug service by `owner` (developer mode): installed, or the
   * pushed app updated in place by the same swap as `update` (storage, certificates, logs, the
   * configuration the new schema accepts and routes kept; the old version back if the new one
   * fails to start). Not signature-verified, so it is marked unsigned everywhere; every other
   * check runs. Refused for an id that came from the store or the image (its signer binding
   * holds in developer mode too) and for an app another developer pushed.
   */
  async push(file: string, owner: string, options: { onProgress?: (progress: InstallProgress) => void } = {}): Promise<PushResult> {
    const audit = this.#options.audit;
    let claimed: AppManifest;
    try {
      claimed = await readManifestUnverified(file);
    } catch (error) {
      const coded = toIsogateError(error);
      await audit.record('installError', { 'application name': 'a pushed package' }, { origin: 'debug', owner, code: coded.code, reason: coded.message });
      throw coded;
    }
    const packageId = claimed.package_id;
    tracePhase('read', packageId);
    const installed = this.#apps.get(packageId);
    const refusedBefore = async (error: IsogateError): Promise<never> => {
      await audit.record('installError', { 'application name': claimed.name }, { packageId, origin: 'debug', owner, code: error.code, reason: error.message });
      throw error;
    };
    if (this.#quarantined.has(packageId)) {
      await refusedBefore(fail('E_INTEGRITY', `${packageId} is quarantined; uninstall it before pushing it again`, { packageId, quarantined: true }));
    }
    if (installed && originOf(installed.record) !== 'debug') {
      await refusedBefore(
        fail(
          'E_SIGNER_MISMATCH',
          `${packageId} is installed from the ${originOf(installed.record) === 'image' ? "gateway's image" : 'store'} and belongs to its signer; a push (unsigned) cannot replace it`,
          { packageId, bound: installed.record.signer, offered: null },
        ),
      );
    }
    if (installed && installed.record.owner !== owner) {
      await refusedBefore(fail('E_FORBIDDEN', `${packageId} was pushed by another developer; only that developer's token may push it`, { packageId }));
    }
    if (this.#busy.has(packageId)) throw fail('E_BUSY', `${packageId} is being installed, updated or uninstalled already`);
    const report = (phase: InstallPhase, received: number, percent: number): void => {
      const progress = { packageId, phase, received, total: 0, percent };
      options.onProgress?.(progress);
      this.emit('progress', progress);
    };
    this.#begin(packageId);
    try {
      if (!installed) {
        await this.#refuseOverLimit(packageId, claimed.name);
        const app = await this.#stageAndCommit(
          'debug',
          claimed.name,
          async (work) => {
            await this.#data.mkdir(this.#data.relative(path.join(work, 'package')), 0o700);
            return this.#verify(file, path.join(work, 'package'), claimed, claimed.name, 'debug');
          },
          owner,
        );
        report('done', 0, 100);
        this.emit('installed', app);
        return { app, updated: false, previousVersion: null, resetKeys: [], routesInError: [], started: false };
      }
      const hooks = this.#options.updateHooks;
      if (!hooks) throw fail('E_UNAVAILABLE', 'In-place updates are not wired in this gateway');
      const names = { 'application name': installed.manifest.name, 'installed version': installed.version, 'new version': claimed.version };
      const refused = async (error: unknown): Promise<never> => {
        const coded = toIsogateError(error);
        await audit.record(
          'updateError',
          { ...names, description: coded.code },
          { packageId, from: installed.version, to: claimed.version, origin: 'debug', owner, code: coded.code, reason: coded.message },
        );
        throw coded;
      };
      // Appended while the package is verified (the trail keeps the order of the calls, so this
      // comes before whatever the verification records); nothing is sealed until it is written,
      // and a trail that cannot take it refuses the update with its own error, as it would first.
      const startAudited = audit.record('updateStarted', names, { packageId, from: installed.version, to: claimed.version, origin: 'debug', owner }).then(
        () => undefined,
        (error: unknown) => ({ error }),
      );
      const work = path.join(this.#stagingDir, randomBytes(8).toString('hex'));
      let discard: (() => void) | undefined;
      try {
        let verified: VerifiedPackage;
        try {
          await this.#data.mkdir(this.#data.relative(path.join(work, 'package')), 0o700);
          const verifying = this.#verify(file, path.join(work, 'package'), claimed, claimed.name, 'debug');
          // After the task went to the worker: the isolate is made while the worker verifies.
          discard = hooks.prepare?.(packageId, claimed);
          verified = await verifying;
          tracePhase('verified', packageId);
          const unaudited = await startAudited;
          if (unaudited) throw unaudited.error;
          await this.#seal(work, verified, 'debug', owner);
          tracePhase('sealed', packageId);
        } catch (error) {
          await eraseTree(work, this.#data);
          const unaudited = await startAudited;
          if (unaudited) throw unaudited.error;
          return refused(error);
        }
        const result = await this.#swapIn(installed, hooks, { work, verified, size: 0, names, report, refused, watchMs: PUSH_WATCH_MS });
        tracePhase('done', packageId);
        return { ...result, updated: true };
      } finally {
        // Taken by the new version's start, this does nothing.
        discard?.();
      }
    } finally {
      this.#end(packageId);
    }
  }

  /** The new version's entry and configuration, or the old ones restored (`configuration` null: none stored). */
  #applyEntry(doc: ConfigDocument, entry: ApplicationEntry, configuration: unknown): void {
    const list = doc.APPLICATIONS.APPS_CONTROL.applications;
    const at = list.findIndex((e) => e.package_id === entry.package_id);
    if (at >= 0) list[at] = structuredClone(entry);
    else list.push(structuredClone(entry));
    if (configuration === undefined || configuration === null) delete doc[entry.package_id];
    else doc[entry.package_id] = structuredClone(configuration);
  }

  /** Back to the old version within the running gateway: the same moves #resumeUpdates makes after a crash. */
  async #undoUpdate(
    old: InstalledApp,
    dir: string,
    state: { swapped: boolean; configured: boolean; oldEntry: ApplicationEntry; oldConfiguration: unknown },
  ): Promise<void> {
    const data = this.#data;
    const root = path.join(this.#appsDir, old.packageId);
    if (state.swapped) {
      if (await data.lstat(data.relative(root))) await renameDurable(root, path.join(dir, 'failed'), data);
      await renameDurable(path.join(dir, 'old'), root, data);
    }
    this.#apps.set(old.packageId, old);
    if (state.configured) await this.#options.config.update((doc) => this.#applyEntry(doc, state.oldEntry, state.oldConfiguration));
    await this.#eraseUpdateDir(dir);
  }

  /**
   * An update's directory goes with its journal last: erased in readdir order, a crash after
   * the journal was overwritten but before old/ was left the old version without its record
   * of the commit, and the next start put it back over the committed one (the crash harness,
   * seed 1775760123). Until the journal goes, the next start reads what it says.
   */
  async #eraseUpdateDir(dir: string, beforeJournal?: () => Promise<void>): Promise<void> {
    const data = this.#data;
    if (!(await data.lstat(data.relative(dir)))) return;
    for (const { name } of await data.readdir(data.relative(dir))) {
      if (name !== 'journal.json') await eraseTree(path.join(dir, name), data);
    }
    await data.syncDirectory(data.relative(dir));
    await beforeJournal?.();
    await eraseTree(dir, data);
  }

  async #writeJournal(dir: string, body: Omit<UpdateJournal, 'mac'>): Promise<void> {
    await writeJsonDurable(
      path.join(dir, 'journal.json'),
      { ...body, mac: this.#options.keys.mac('integrity', `#update:${body.package_id}`, canonicalJson(body)) },
      { mode: 0o600, root: this.#data },
    );
  }

  /** The journal if it is there and authentic; undefined otherwise. */
  async #readJournal(dir: string): Promise<UpdateJournal | undefined> {
    const journal = await readJsonIfExists<UpdateJournal>(path.join(dir, 'journal.json'), this.#data);
    if (!journal || typeof journal !== 'object' || typeof journal.package_id !== 'string' || typeof journal.mac !== 'string') return undefined;
    const { mac, ...body } = journal;
    return this.#options.keys.verifyMac('integrity', `#update:${body.package_id}`, canonicalJson(body), mac) ? journal : undefined;
  }

  /**
   * At open, before anything else reads DATA/apps: finishes or undoes each update a crash
   * interrupted (see `update`). A committed journal keeps the new version; anything else
   * restores the old one, its entry and its configuration, and says so in the audit log.
   */
  async #resumeUpdates(): Promise<void> {
    const data = this.#data;
    await data.mkdir(data.relative(this.#updatesDir), 0o700);
    for (const { name } of await data.readdir('updates')) {
      const dir = path.join(this.#updatesDir, name);
      const root = path.join(this.#appsDir, name);
      const journal = await this.#readJournal(dir).catch(() => undefined);
      const hasOld = (await data.lstat(data.relative(path.join(dir, 'old')))) !== undefined;
      if (journal && journal.package_id === name && journal.phase === 'committed') {
        await this.#eraseUpdateDir(dir);
        await this.#options.audit.record(
          'updateSucceeded',
          { 'application name': journal.entry.name ?? name, 'new version': journal.to },
          { packageId: name, from: journal.from, to: journal.to, resumed: true },
        );
        continue;
      }
      if (hasOld) {
        if (await data.lstat(data.relative(root))) await renameDurable(root, path.join(dir, 'failed'), data);
        await renameDurable(path.join(dir, 'old'), root, data);
      }
      if (journal && journal.package_id === name) {
        await this.#options.config.update((doc) => this.#applyEntry(doc, journal.entry, journal.configuration));
        await this.#options.audit.record(
          'updateRolledBack',
          { 'application name': journal.entry.name ?? name, 'installed version': journal.from, description: 'the gateway stopped' },
          { packageId: name, from: journal.from, to: journal.to, reason: 'The gateway stopped before the update was committed' },
        );
      } else if (hasOld) {
        // Cannot happen from a crash (the journal is written before apps/<id> moves): someone changed the directory.
        await this.#options.audit.record(
          'integrityViolation',
          { object: `The update journal of ${name}`, description: 'it is missing or fails its authentication; the previous files were put back' },
          { packageId: name },
        );
      }
      await this.#eraseUpdateDir(dir);
    }
  }

  /** The signer bound to a package id, installed or not. */
  signerBinding(packageId: string): SignerBinding | undefined {
    return this.#bindings.get(packageId);
  }

  /**
   * `isogate apps forget ID`: drops the binding of an uninstalled app's id to its signer, so
   * that another signer may install that id. Refused while the app is installed.
   */
  async forgetSigner(packageId: string): Promise<SignerBinding> {
    if (this.#apps.has(packageId) || this.#busy.has(packageId)) {
      throw fail('E_CONFLICT', `${packageId} is installed; uninstall it before forgetting its signer`, { packageId });
    }
    return this.#bindings.forget(packageId, (binding) =>
      this.#options.audit.record('signerForgotten', { 'application name': packageId }, { packageId, signer: binding }),
    );
  }

  /**
   * Uninstalls an app. The manual: "The application and its configuration, log, and files are
   * removed"; deleted objects are overwritten before unlinking. The commit point comes first: a
   * durable "removing <id>" record (removal.ts); then the hooks stop the app and erase what other
   * subsystems keep for it (storage, logs, certificates, routes), its files move to trash, its
   * entry and configuration go, the files are erased, and the record is dropped. A crash or a
   * failure after the record leaves the app uninstalled-to-be: the next start finishes it
   * (`#resumeUninstalls`), and so does `uninstall` again meanwhile.
   */
  async uninstall(packageId: string): Promise<void> {
    const app = this.#apps.get(packageId);
    const quarantined = this.#quarantined.get(packageId);
    const unfinished = this.#removing.get(packageId)?.name;
    if (!app && !quarantined && unfinished === undefined) throw fail('E_NOT_INSTALLED', `${packageId} is not installed`, { packageId });
    if (this.#busy.has(packageId)) throw fail('E_BUSY', `${packageId} is being installed or uninstalled already`);
    this.#begin(packageId);
    const audit = this.#options.audit;
    const appName = app?.manifest.name ?? quarantined?.name ?? unfinished!;
    // A quarantined app's record is shown only when authentic: otherwise nothing in it is the gateway's.
    const record = app?.record ?? quarantined?.record;
    const signer = record ? signerDetails(record) : null;
    try {
      await audit.record('uninstallStarted', { 'application name': appName }, { packageId, signer, ...(quarantined ? { quarantined: true } : {}) });
      try {
        if (unfinished === undefined) {
          await this.#options.onUninstallStep?.('started', packageId);
          const origin = record ? originOf(record) : undefined;
          await this.#removals.begin({ removing: packageId, name: appName, startedAt: this.#options.clock().toISOString(), ...(origin ? { origin } : {}) });
          this.#apps.delete(packageId);
          this.#quarantined.delete(packageId);
          this.#removing.set(packageId, { name: appName, ...(origin ? { origin } : {}) });
          await this.#options.onUninstallStep?.('recorded', packageId);
        }
        await this.#finishUninstall(packageId);
      } catch (error) {
        const coded = toIsogateError(error);
        this.#failedRemoval(packageId, coded);
        await audit.record('uninstallError', { 'application name': appName }, { packageId, code: coded.code });
        if (isIsogateError(error)) throw error;
        throw fail('E_UNINSTALL', `${appName} could not be uninstalled: ${(error as Error).message}`);
      }
      await audit.record(
        'uninstallSucceeded',
        { 'application name': appName },
        {
          packageId,
          ...(record ? { origin: originOf(record) } : {}),
          signer,
          ...(quarantined ? { quarantined: true } : {}),
          routesInError: this.#options.routesOf?.(packageId) ?? [],
        },
      );
      this.emit('uninstalled', packageId);
    } finally {
      this.#end(packageId);
    }
  }

  /** Everything after the commit point; each step may run again after a crash, so each is idempotent. */
  async #finishUninstall(packageId: string): Promise<void> {
    const data = this.#data;
    const step = async (name: UninstallStep): Promise<void> => this.#options.onUninstallStep?.(name, packageId);
    for (const [index, hook] of this.#options.beforeUninstall.entries()) {
      await hook(packageId);
      await step(`hook ${index + 1}`);
    }
    const installedDir = path.join(this.#appsDir, packageId);
    if (await data.lstat(data.relative(installedDir))) {
      await renameDurable(installedDir, path.join(this.#trashDir, `${packageId}-${randomBytes(4).toString('hex')}`), data);
    }
    await step('files moved');
    await this.#options.config.update((doc) => {
      doc.APPLICATIONS.APPS_CONTROL.applications = doc.APPLICATIONS.APPS_CONTROL.applications.filter((entry) => entry.package_id !== packageId);
      delete doc[packageId];
    });
    await step('configuration removed');
    // Every uninstall's trash, this one's and any a crash left: nothing in trash is kept.
    for (const { name } of await data.readdir('trash')) await eraseTree(path.join(this.#trashDir, name), data);
    await step('files erased');
    await this.#removals.end(packageId);
    this.#removing.delete(packageId);
    await step('done');
  }

  /**
   * At open: finishes each uninstall a crash interrupted after its commit point, audited as
   * the uninstall's success (resumed). A record that fails its authentication removes nothing:
   * it is audited as an integrity violation and dropped.
   */
  async #resumeUninstalls(): Promise<void> {
    const data = this.#data;
    for (const dir of [this.#appsDir, this.#trashDir]) await data.mkdir(data.relative(dir), 0o700);
    const pending = await this.#removals.pending();
    for (const name of pending.forged) {
      await this.#options.audit.record(
        'integrityViolation',
        {
          object: `The uninstall record ${name}`,
          description: 'it fails its authentication, so this gateway did not write it; it was removed and nothing it names was',
        },
        { path: data.path(path.join('uninstalls', name)) },
      );
      await this.#removals.discard(name);
    }
    for (const record of pending.records) {
      const packageId = record.removing;
      this.#removing.set(packageId, { name: record.name, ...(record.origin ? { origin: record.origin } : {}) });
      try {
        await this.#finishUninstall(packageId);
      } catch (error) {
        // Past the commit point the app is gone whatever stopped the erasures: it stays out
        // (never loaded, never launched, listed as uninstalling), and the gateway starts anyway,
        // for refusing to start would leave every other app down and no way to finish it.
        const coded = toIsogateError(error);
        this.#failedRemoval(packageId, coded);
        await this.#options.audit.record(
          'uninstallError',
          { 'application name': record.name },
          { packageId, resumed: true, startedAt: record.startedAt, code: coded.code, reason: coded.message },
        );
        continue;
      }
      await this.#options.audit.record(
        'uninstallSucceeded',
        { 'application name': record.name },
        {
          packageId,
          resumed: true,
          startedAt: record.startedAt,
          ...(record.origin ? { origin: record.origin } : {}),
          routesInError: this.#options.routesOf?.(packageId) ?? [],
        },
      );
    }
  }

  #failedRemoval(packageId: string, error: IsogateError): void {
    const unfinished = this.#removing.get(packageId);
    if (unfinished) unfinished.failure = { code: error.code, message: error.message, at: this.#options.clock().toISOString() };
  }

  /** Uninstalls past their commit point that failed before finishing (see UnfinishedUninstall), by name. */
  unfinishedUninstalls(): UnfinishedUninstall[] {
    return [...this.#removing].map(([packageId, unfinished]) => ({ packageId, ...structuredClone(unfinished) })).sort((a, b) => a.name.localeCompare(b.name));
  }

  #refuseRemoving(packageId: string): void {
    const name = this.#removing.get(packageId)?.name;
    if (name !== undefined)
      throw fail('E_BUSY', `${name} is being uninstalled: its uninstall failed before finishing; run "isogate apps uninstall ${packageId}" to finish it`, {
        packageId,
      });
  }

  /**
   * The launch-time check: the record is re-read from disk (its MAC proves it is the one the
   * gateway wrote) and every file is re-hashed. Returns the verified file contents.
   */
  async verifyIntegrity(packageId: string): Promise<Map<string, Buffer>> {
    const app = this.#apps.get(packageId);
    if (!app) throw fail('E_NOT_INSTALLED', `${packageId} is not installed`, { packageId });
    return this.#checkFiles(packageId, app.version, this.#data.relative(path.dirname(app.dir)));
  }

  /**
   * The launch-time check of the files in `folder` (relative to the data directory: an app's
   * folder, or a new version's staging): the record re-read from disk (its MAC proves it is the
   * one the gateway wrote) and every file re-hashed. Returns the verified file contents.
   */
  async #checkFiles(packageId: string, version: string, folder: string): Promise<Map<string, Buffer>> {
    const read = await this.#readRecord(packageId, folder);
    if (!read.record)
      throw fail('E_INTEGRITY', `${packageId} failed its integrity check: ${read.problem}`, {
        packageId,
        violations: [{ path: 'record.json', problem: 'record' }],
      });
    const { record } = read;
    if (record.version !== version) {
      throw fail('E_INTEGRITY', `The integrity record of ${packageId} names another version (${record.version}, installed ${version})`, { packageId });
    }
    return verifyInstalledFiles(this.#data.sub(path.join(folder, 'package')), record, this.#options.keys);
  }

  #begin(packageId: string): void {
    if (this.#closing) throw fail('E_UNAVAILABLE', `The gateway is stopping: ${packageId} is not changed`, { packageId });
    this.#busy.add(packageId);
  }

  #end(packageId: string): void {
    this.#busy.delete(packageId);
    if (this.#busy.size > 0) return;
    for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }

  /**
   * At shutdown: nothing new begins; an install under way is abandoned at its commit (its
   * staging erased), an uninstall or update goes on to its end or its journal's next state;
   * the verifier closes only once they are done, for a verification under way needs it.
   */
  async close(): Promise<void> {
    this.#closing = true;
    if (this.#busy.size > 0) await new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
    await this.#options.verifier.close();
  }
}

/**
 * Semver order, for a catalog whose entries a store wrote: what is no version (the catalog's
 * pattern lets "latest" through) sorts after every version, by text, instead of throwing and
 * hiding the whole catalog.
 */
function compareVersions(a: string, b: string): number {
  const validA = semver.valid(a, true) !== null;
  const validB = semver.valid(b, true) !== null;
  if (validA && validB) return semver.compareLoose(a, b);
  if (validA !== validB) return validA ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Enough of an install record to check its MAC and use it; anything else is not one. */
function isRecordShaped(value: unknown): value is IntegrityRecord {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return false;
  const record = value as Record<string, unknown>;
  const digests = record.digests;
  return (
    typeof record.package_id === 'string' &&
    typeof record.version === 'string' &&
    typeof record.mac === 'string' &&
    typeof record.installedAt === 'string' &&
    !!digests &&
    typeof digests === 'object' &&
    !Array.isArray(digests) &&
    Object.values(digests).every((digest) => typeof digest === 'string') &&
    (record.signer === null || (!!record.signer && typeof record.signer === 'object' && !Array.isArray(record.signer)))
  );
}

/** The verified signer as the binding compares it; null for an unsigned package. */
function signerIdentity(signer: SignerInfo | null): SignerIdentity | null {
  if (!signer) return null;
  return {
    subject: signer.subject,
    spkiSha256: signer.spkiSha256,
    fingerprint256: signer.fingerprint256,
    issuer: signer.issuingCa?.subject ?? signer.issuer,
    issuerSpkiSha256: signer.issuingCa?.spkiSha256 ?? null,
  };
}

/** The verified signer of an installed app for audit records: never the manifest's publisher text. */
function signerDetails(record: IntegrityRecord): { subject: string; issuer: string; spkiSha256: string | null } | null {
  return record.signer && { subject: record.signer.subject, issuer: record.signer.issuer, spkiSha256: record.signer.spkiSha256 ?? null };
}

/** An image package's manifest, to name it before it is verified (the verification decides everything). */
async function readImageManifest(packageFile: string): Promise<AppManifest> {
  try {
    return await readManifestUnverified(packageFile);
  } catch (error) {
    const coded = toIsogateError(error);
    throw fail(coded.code, `The image package ${packageFile} cannot be read: ${coded.message}`, coded.details as Record<string, unknown>);
  }
}
