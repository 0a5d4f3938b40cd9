/**
 * The launcher: runs installed apps, one sandbox each, following the manual's states (0
 * starting, 1 running, 4 stopped, 5 stopping; Pending and Error derived), start rules (auto /
 * none / forbidden), restart on failure, and the checks before every launch: the start rule,
 * the configuration, the SDK version and the integrity of every file.
 */
import { EventEmitter } from 'node:events';
import semver from 'semver';
import { fail, isIsogateError, toIsogateError } from '../../sdk/errors.js';
import type { AppManifest } from '../../sdk/manifest.js';
import type { Audit } from '../audit/index.js';
import { APP_STATE, type ApplicationEntry, type AppStateCode, type ConfigStore, type LaunchRule, type LogLevel } from '../config/index.js';
import { applyMergePatch } from '../config/merge-patch.js';
import { Mutex } from '../durable/index.js';
import type { AppGuest, LogLevelCode } from '../sandbox/bridge.js';
import { effectiveConfiguration, validateAppConfiguration } from './configuration.js';
import { FailureHistory, type RestartPolicy, restartPolicy } from './supervision.js';

export { DEFAULT_RESTART_POLICY, type RestartPolicy } from './supervision.js';

/** The launcher's view of an installed app. */
export interface LaunchableApp {
  packageId: string;
  version: string;
  manifest: AppManifest;
}

export interface LaunchedSandbox extends AppGuest {
  /** Starts the app; its code runs only once `before` (if given) has resolved, and the start fails if it rejects. */
  start(before?: Promise<unknown>): Promise<void>;
  stop(deadlineMs?: number): Promise<void>;
  dispose(): void;
}

/** What an update did for the start of the app it holds, so that the launch does not do it again. */
export interface HeldLaunch {
  /** The integrity check of the files to launch, under way already: its outcome is the launch's, as its own check's would be. */
  checked?: Promise<Map<string, Buffer>>;
  /**
   * The caller's entry write, durable before this start, recorded Starting: the launch writes no
   * Starting state of its own (a durable write in front of the app's first line).
   */
  startingRecorded?: boolean;
}

export interface LaunchFailure {
  code: string;
  message: string;
}

export interface LauncherOptions {
  config: ConfigStore;
  audit: Audit;
  /** `getQuarantined`: an installed app that failed its check at start (never launched, see the orchestrator). */
  apps: {
    list(): LaunchableApp[];
    get(packageId: string): LaunchableApp | undefined;
    getQuarantined?(packageId: string): { name: string; reason: string } | undefined;
  };
  /** Checks every file against the install record and returns the verified contents: the launcher runs exactly what was checked. */
  verifyIntegrity(app: LaunchableApp): Promise<Map<string, Buffer>>;
  createSandbox(app: LaunchableApp, files: Map<string, Buffer>, onFailure: (failure: LaunchFailure) => void): Promise<LaunchedSandbox>;
  appLog(packageId: string, level: LogLevelCode, message: string): void;
  platformSdkVersion: string;
  restart?: Partial<RestartPolicy>;
  stopDeadlineMs?: number;
  clock?: () => number;
}

export type AppStatus = 'starting' | 'running' | 'stopping' | 'stopped' | 'pending' | 'error';

export interface AppStatusInfo {
  packageId: string;
  name: string;
  version: string;
  status: AppStatus;
  /** The manual's state code. */
  state: AppStateCode;
  launchRule: LaunchRule;
  logLevel: LogLevel;
  configured: boolean;
  restartOnFailure: boolean;
  restarts: number;
  lastError?: { code: string; message: string; at: string };
  startedAt?: string;
}

/** What a configuration change returns: the app's status, and whether the running app took it. */
export interface ConfigurationChange extends AppStatusInfo {
  /**
   * The configuration is saved, but the running app failed while taking it (a CPU or memory
   * limit in its handler): that failure is handled as any other (audited, restarted with the
   * saved configuration by the restart rule). Absent when the app took it or was not running.
   */
  deliveryError?: { code: string; message: string };
}

/** Top-level keys a configuration change named, at most this many (names only: values may be secrets). */
const AUDITED_KEYS = 32;

interface Runtime {
  status: 'starting' | 'running' | 'stopping' | 'stopped' | 'error';
  sandbox?: LaunchedSandbox;
  restarts: number;
  failures: FailureHistory;
  restartTimer?: NodeJS.Timeout;
  lastError?: AppStatusInfo['lastError'];
  startedAt?: string;
}

const STATE_OF: Record<Runtime['status'], AppStateCode> = {
  starting: APP_STATE.starting,
  running: APP_STATE.running,
  stopping: APP_STATE.stopping,
  stopped: APP_STATE.stopped,
  error: APP_STATE.stopped,
};

export class Launcher extends EventEmitter<{ status: [AppStatusInfo] }> {
  readonly #options: LauncherOptions;
  readonly #policy: RestartPolicy;
  readonly #runtimes = new Map<string, Runtime>();
  readonly #locks = new Map<string, Mutex>();
  /** Apps an in-place update holds stopped: nothing starts them or changes their configuration but the update. */
  readonly #held = new Set<string>();
  #shuttingDown = false;

  constructor(options: LauncherOptions) {
    super();
    if (!semver.valid(options.platformSdkVersion)) throw fail('E_OPTION', 'platformSdkVersion is a semantic version');
    if (options.stopDeadlineMs !== undefined && !(options.stopDeadlineMs > 0)) throw fail('E_OPTION', 'stopDeadlineMs is a positive number of milliseconds');
    this.#options = options;
    this.#policy = restartPolicy(options.restart);
  }

  #now(): number {
    return this.#options.clock?.() ?? Date.now();
  }

  #app(packageId: string): LaunchableApp {
    const quarantined = this.#options.apps.getQuarantined?.(packageId);
    if (quarantined) {
      throw fail(
        'E_INTEGRITY',
        `${packageId} is quarantined: ${quarantined.reason}. It is never started or changed; uninstall it ("isogate apps uninstall ${packageId}") and install it again`,
        { packageId, quarantined: true },
      );
    }
    const app = this.#options.apps.get(packageId);
    if (!app) throw fail('E_NOT_INSTALLED', `${packageId} is not installed`, { packageId });
    return app;
  }

  #entry(packageId: string): ApplicationEntry {
    const entry = this.#options.config.read((doc) => doc.APPLICATIONS.APPS_CONTROL.applications.find((e) => e.package_id === packageId));
    if (!entry) throw fail('E_NOT_INSTALLED', `${packageId} has no entry in the configuration document`, { packageId });
    return entry;
  }

  async #updateEntry(packageId: string, change: (entry: ApplicationEntry) => void, audit?: () => Promise<unknown>): Promise<void> {
    await this.#options.config.update(
      (doc) => {
        const entry = doc.APPLICATIONS.APPS_CONTROL.applications.find((e) => e.package_id === packageId);
        if (entry) change(entry);
      },
      audit ? { audit } : {},
    );
  }

  #runtime(packageId: string): Runtime {
    let runtime = this.#runtimes.get(packageId);
    if (!runtime) {
      runtime = { status: 'stopped', restarts: 0, failures: new FailureHistory(this.#policy) };
      this.#runtimes.set(packageId, runtime);
    }
    return runtime;
  }

  #lock(packageId: string): Mutex {
    let lock = this.#locks.get(packageId);
    if (!lock) {
      lock = new Mutex();
      this.#locks.set(packageId, lock);
    }
    return lock;
  }

  #appName(packageId: string): string {
    return this.#options.apps.get(packageId)?.manifest.name ?? packageId;
  }

  status(packageId: string): AppStatusInfo {
    const app = this.#app(packageId);
    const entry = this.#entry(packageId);
    const runtime = this.#runtime(packageId);
    const configured = entry.configured !== false;
    const status: AppStatus = runtime.status === 'stopped' && !configured ? 'pending' : runtime.status;
    return {
      packageId,
      name: app.manifest.name,
      version: app.version,
      status,
      state: STATE_OF[runtime.status],
      launchRule: entry.launchRule,
      logLevel: entry.logLevel,
      configured,
      restartOnFailure: entry.restart_on_failure ?? app.manifest.restartOnFailure ?? true,
      restarts: runtime.restarts,
      ...(runtime.lastError ? { lastError: runtime.lastError } : {}),
      ...(runtime.startedAt && runtime.status === 'running' ? { startedAt: runtime.startedAt } : {}),
    };
  }

  list(): AppStatusInfo[] {
    return this.#options.apps
      .list()
      .map((app) => this.status(app.packageId))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  guest(packageId: string): AppGuest | undefined {
    const runtime = this.#runtimes.get(packageId);
    return runtime?.status === 'running' ? runtime.sandbox : undefined;
  }

  #announce(packageId: string): AppStatusInfo {
    const info = this.status(packageId);
    this.emit('status', info);
    return info;
  }

  /** What went wrong where nobody waits for an answer goes to the app's log, which the admin reads. */
  #report(packageId: string, level: LogLevelCode, what: string, error: unknown): void {
    const coded = toIsogateError(error);
    this.#options.appLog(packageId, level, `${what}: ${coded.code}: ${coded.message}`);
  }

  /**
   * A step whose failure must not end the work around it (recording a failure, a stop, a
   * start that already happened): a full disk must not also keep an app from restarting.
   */
  async #attempt(packageId: string, what: string, step: () => Promise<unknown>): Promise<void> {
    try {
      await step();
    } catch (error) {
      this.#report(packageId, 0, `Could not ${what}`, error);
    }
  }

  /** The status changes in memory, and is announced, even when writing it to the document fails. */
  async #setStatus(packageId: string, status: Runtime['status'], execute?: boolean): Promise<void> {
    this.#runtime(packageId).status = status;
    try {
      await this.#updateEntry(packageId, (entry) => {
        entry.state = STATE_OF[status];
        if (execute !== undefined) entry.execute = execute;
      });
    } finally {
      this.#announce(packageId);
    }
  }

  /** A state in memory and announced, nothing written: where an update's own write of the entry records it (its hold and its start). */
  #showStatus(packageId: string, status: Runtime['status']): void {
    this.#runtime(packageId).status = status;
    this.#announce(packageId);
  }

  #refuseHeld(packageId: string): void {
    if (this.#held.has(packageId)) throw fail('E_BUSY', `${packageId} is being updated; try again when the update has finished`, { packageId });
  }

  start(packageId: string): Promise<AppStatusInfo> {
    return this.#lock(packageId).run(async () => {
      const quarantined = this.#options.apps.getQuarantined?.(packageId);
      if (quarantined) {
        await this.#options.audit.record(
          'launchUntrusted',
          { 'application name': quarantined.name },
          { packageId, code: 'E_INTEGRITY', reason: quarantined.reason, quarantined: true },
        );
        this.#app(packageId);
      }
      this.#refuseHeld(packageId);
      const runtime = this.#runtime(packageId);
      if (runtime.restartTimer) clearTimeout(runtime.restartTimer);
      runtime.restartTimer = undefined;
      // Starting by hand forgives earlier failures: the admin has looked.
      runtime.failures.reset();
      await this.#launch(packageId);
      return this.status(packageId);
    });
  }

  /**
   * Every check the manual asks for, then the sandbox. Throws with the refusal's code.
   * `held`: how runHeld's caller prepared the start (see HeldLaunch); otherwise the files are
   * checked and the Starting state written here.
   */
  async #launch(packageId: string, held: HeldLaunch = {}): Promise<void> {
    const app = this.#app(packageId);
    const entry = this.#entry(packageId);
    const runtime = this.#runtime(packageId);
    const name = app.manifest.name;
    // A start queued behind the shutdown (a command or a restart in flight) would outlive it.
    if (this.#shuttingDown) throw fail('E_UNAVAILABLE', `The gateway is shutting down; ${packageId} is not started`);
    if (runtime.status === 'running' || runtime.status === 'starting' || runtime.status === 'stopping') {
      throw fail('E_STATE', `${packageId} is already ${runtime.status}`);
    }
    // A refusal stands even when its audit record cannot be written; that failure goes to the app's log.
    if (entry.launchRule === 'forbidden') {
      await this.#attempt(packageId, 'audit the refusal', () => this.#options.audit.record('launchBlocked', { 'application name': name }, { packageId }));
      throw fail('E_BLOCKED', `${packageId} has the Block start rule`, { packageId });
    }
    if (entry.configured === false) throw fail('E_PENDING', `${packageId} needs its configuration before it can start`, { packageId });
    const built = app.manifest.buildSdkVersion;
    const platform = this.#options.platformSdkVersion;
    if (semver.major(built) !== semver.major(platform) || semver.gt(built, platform)) {
      await this.#attempt(packageId, 'audit the refusal', () =>
        this.#options.audit.record('launchIncompatible', { 'application name': name }, { packageId, buildSdkVersion: built, platformSdkVersion: platform }),
      );
      throw fail('E_INCOMPATIBLE', `${packageId} was built with SDK ${built}; this gateway runs SDK ${platform}`, { packageId });
    }

    // The Starting state is written (a durable write of the configuration document) while the
    // files are checked, the sandbox is made and the app's code is compiled and linked; the
    // app's code runs only once the write is done (the sandbox waits for it before evaluating).
    // Each outcome is then handled as if one came after the other, the write's first.
    let starting: Promise<{ error: unknown } | undefined>;
    if (held.startingRecorded) {
      this.#showStatus(packageId, 'starting');
      starting = Promise.resolve(undefined);
    } else {
      starting = this.#setStatus(packageId, 'starting').then(
        () => undefined,
        (error: unknown) => ({ error }),
      );
    }
    // Not left Starting, which nothing leaves: Error, from which a start or a stop goes on.
    const refuseUnwritten = async (unwritten: { error: unknown }): Promise<never> => {
      const coded = toIsogateError(unwritten.error);
      await this.#attempt(packageId, 'record the Error state', () => this.#recordError(packageId, { code: coded.code, message: coded.message }));
      throw unwritten.error;
    };
    const integrity = await (held.checked ?? this.#options.verifyIntegrity(app)).then(
      (files) => ({ files }),
      (error: unknown) => ({ error }),
    );
    if ('error' in integrity) {
      const unwritten = await starting;
      if (unwritten) await refuseUnwritten(unwritten);
    }
    let files: Map<string, Buffer>;
    try {
      if ('error' in integrity) throw integrity.error;
      files = integrity.files;
    } catch (error) {
      const coded = toIsogateError(error);
      this.#options.appLog(packageId, 0, `Launch refused: ${coded.message}`);
      await this.#attempt(packageId, 'audit the refusal', () =>
        this.#options.audit.record('launchUntrusted', { 'application name': name }, { packageId, code: coded.code, reason: coded.message }),
      );
      await this.#attempt(packageId, 'record the Error state', () => this.#recordError(packageId, { code: 'E_INTEGRITY', message: coded.message }));
      throw fail('E_INTEGRITY', `${packageId} failed its integrity check: ${coded.message}`, { packageId });
    }

    const written = starting.then((unwritten) => {
      if (unwritten) throw unwritten.error;
    });
    // Handled below, by `starting`, when the sandbox fails before it waits for this.
    written.catch(() => undefined);
    let sandbox: LaunchedSandbox | undefined;
    try {
      sandbox = await this.#options.createSandbox(app, files, (failure) => void this.#onFailure(packageId, sandbox!, failure));
      runtime.sandbox = sandbox;
      await sandbox.start(written);
    } catch (error) {
      sandbox?.dispose();
      runtime.sandbox = undefined;
      const unwritten = await starting;
      if (unwritten) await refuseUnwritten(unwritten);
      const coded = toIsogateError(error);
      this.#options.appLog(packageId, 1, `Start failed: ${coded.code}: ${coded.message}`);
      await this.#attempt(packageId, 'audit the failed start', () =>
        this.#options.audit.record('launchError', { 'application name': name }, { packageId, code: coded.code, reason: coded.message }),
      );
      await this.#attempt(packageId, 'record the Error state', () => this.#recordError(packageId, { code: coded.code, message: coded.message }));
      throw isIsogateError(error) && error.code !== 'E_INTERNAL' ? error : fail('E_LAUNCH', `${packageId} failed to start: ${coded.message}`);
    }
    runtime.startedAt = new Date(this.#now()).toISOString();
    runtime.lastError = undefined;
    // The app runs: a record that cannot be written is reported, and the start is not undone.
    this.#options.appLog(packageId, 3, `Started ${name} ${app.version}`);
    await this.#attempt(packageId, 'record the Running state', () => this.#setStatus(packageId, 'running', true));
    await this.#attempt(packageId, 'audit the start', () =>
      this.#options.audit.record('launchStarted', { 'application name': name }, { packageId, version: app.version }),
    );
  }

  async #recordError(packageId: string, error: { code: string; message: string }): Promise<void> {
    this.#runtime(packageId).lastError = { ...error, at: new Date(this.#now()).toISOString() };
    await this.#setStatus(packageId, 'error');
  }

  async #onFailure(packageId: string, sandbox: LaunchedSandbox, failure: LaunchFailure): Promise<void> {
    await this.#lock(packageId)
      .run(async () => {
        const runtime = this.#runtimes.get(packageId);
        if (!runtime || runtime.sandbox !== sandbox || runtime.status !== 'running') return;
        sandbox.dispose();
        runtime.sandbox = undefined;
        this.#options.appLog(packageId, 0, `The app failed: ${failure.code}: ${failure.message}`);
        await this.#attempt(packageId, 'audit the failure', () =>
          this.#options.audit.record('appFailed', { 'application name': this.#appName(packageId) }, { packageId, code: failure.code, reason: failure.message }),
        );
        await this.#attempt(packageId, 'record the Error state', () => this.#recordError(packageId, failure));
        this.#scheduleRestart(packageId);
      })
      .catch((error: unknown) => this.#report(packageId, 0, 'Handling the failure failed', error));
  }

  #scheduleRestart(packageId: string): void {
    const info = this.status(packageId);
    const runtime = this.#runtime(packageId);
    if (!info.restartOnFailure || this.#shuttingDown || this.#held.has(packageId)) return;
    const delay = runtime.failures.recordFailure(this.#now());
    if (delay === undefined) {
      this.#options.appLog(
        packageId,
        1,
        `Not restarting: ${runtime.failures.recent} failures within ${this.#policy.windowMs / 1000} s. Start it by hand once the cause is fixed.`,
      );
      return;
    }
    this.#options.appLog(packageId, 2, `Restarting in ${delay} ms (failure ${runtime.failures.recent} of at most ${this.#policy.maxRestarts})`);
    runtime.restartTimer = setTimeout(() => {
      runtime.restartTimer = undefined;
      void this.#lock(packageId)
        .run(async () => {
          if (runtime.status !== 'error' || !this.#options.apps.get(packageId) || this.#held.has(packageId)) return;
          runtime.restarts += 1;
          try {
            await this.#launch(packageId);
          } catch (error) {
            // #launch audits its refusals and failures; this says what became of the attempt, and
            // carries what #launch could not write down (a failed audit or configuration write).
            this.#report(packageId, 1, `Restart ${runtime.restarts} did not start the app`, error);
            // A refusal (a rule changed to Block start) ends the retries.
            if (this.#runtime(packageId).status === 'error' && this.#entry(packageId).launchRule !== 'forbidden') this.#scheduleRestart(packageId);
          }
        })
        .catch((error: unknown) => this.#report(packageId, 0, 'The restart failed', error));
    }, delay);
    runtime.restartTimer.unref();
  }

  /**
   * Stops a running app, and also one in Error, waiting to be restarted or given up on: either
   * way it ends in Stopped, which no restart leaves, with the stop audited.
   */
  stop(packageId: string): Promise<AppStatusInfo> {
    return this.#lock(packageId).run(async () => {
      this.#app(packageId);
      const runtime = this.#runtime(packageId);
      const name = this.#appName(packageId);
      if (runtime.status === 'error') {
        const waiting = runtime.restartTimer !== undefined;
        clearTimeout(runtime.restartTimer);
        runtime.restartTimer = undefined;
        await this.#setStatus(packageId, 'stopped', false);
        await this.#options.audit.record('appStopped', { 'application name': name }, { packageId, from: waiting ? 'restart backoff' : 'error' });
        this.#options.appLog(packageId, 3, waiting ? 'Stopped; the pending restart is cancelled' : 'Stopped after its failure; it is restarted no more');
        return this.status(packageId);
      }
      if (runtime.status !== 'running') throw fail('E_STATE', `${packageId} is not running (${this.status(packageId).status})`);
      // Stopped and audited even if its state cannot be written; the caller then hears of that.
      const unwritten = await this.#halt(packageId, false).then(
        () => undefined,
        (error: unknown) => error,
      );
      await this.#options.audit.record('appStopped', { 'application name': name }, { packageId });
      this.#options.appLog(packageId, 3, 'Stopped');
      if (unwritten !== undefined) throw unwritten;
      return this.status(packageId);
    });
  }

  /**
   * The app stops whatever can be written; a failed write of its state is thrown after. The
   * Stopping state is written while the sandbox stops: the stored state only tells (nothing
   * decides by it at start-up, where the entry's Execute flag does), and the Stopped state is
   * written once both are done, so it is the one that stays.
   */
  async #halt(packageId: string, execute: boolean, writeStates = true): Promise<void> {
    const runtime = this.#runtime(packageId);
    let unwritten: unknown;
    // Without writes (an update's hold), neither Stopping nor Stopped is written: the update's
    // write of the entry records the state, and a crash before it leaves the Running the entry
    // says, which start-up reads as it reads either (by the Execute flag).
    const stopping = writeStates
      ? this.#setStatus(packageId, 'stopping').catch((error: unknown) => {
          unwritten = error;
        })
      : undefined;
    if (!writeStates) this.#showStatus(packageId, 'stopping');
    const sandbox = runtime.sandbox;
    runtime.sandbox = undefined;
    const stopped = sandbox?.stop(this.#options.stopDeadlineMs ?? 2000).catch((error: unknown) => {
      this.#report(packageId, 2, 'Its stop failed, so it was ended', error);
      sandbox.dispose();
    });
    await Promise.all([stopping, stopped]);
    if (!writeStates) {
      this.#showStatus(packageId, 'stopped');
    } else {
      await this.#setStatus(packageId, 'stopped', execute).catch((error: unknown) => {
        unwritten ??= error;
      });
    }
    if (unwritten !== undefined) throw unwritten;
  }

  /** The new rule governs the next launch; a running app keeps running until it stops. */
  setLaunchRule(packageId: string, rule: LaunchRule): Promise<AppStatusInfo> {
    return this.#lock(packageId).run(async () => {
      this.#app(packageId);
      if (!['auto', 'none', 'forbidden'].includes(rule)) throw fail('E_BAD_REQUEST', `Unknown launch rule "${String(rule)}"`);
      if (this.#entry(packageId).configured === false) {
        await this.#options.audit.record('autorunChangeError', {}, { packageId, reason: 'not configured' });
        throw fail('E_PENDING', `${packageId} needs its configuration before its start rule can be set`);
      }
      // Audited before it is written (fail closed): a rule change the trail cannot hold is not made.
      await this.#updateEntry(
        packageId,
        (entry) => {
          entry.launchRule = rule;
        },
        () => this.#options.audit.record('autorunChanged', {}, { packageId, launchRule: rule }),
      );
      return this.#announce(packageId);
    });
  }

  setLogLevel(packageId: string, level: LogLevel): Promise<AppStatusInfo> {
    return this.#lock(packageId).run(async () => {
      this.#app(packageId);
      if (!Number.isInteger(level) || level < 0 || level > 5) throw fail('E_BAD_REQUEST', 'A log level is 0 to 5');
      await this.#updateEntry(packageId, (entry) => {
        entry.logLevel = level;
      });
      return this.#announce(packageId);
    });
  }

  setRestartOnFailure(packageId: string, enabled: boolean): Promise<AppStatusInfo> {
    return this.#lock(packageId).run(async () => {
      this.#app(packageId);
      await this.#updateEntry(packageId, (entry) => {
        entry.restart_on_failure = enabled;
      });
      return this.#announce(packageId);
    });
  }

  getConfiguration(packageId: string): Record<string, unknown> | undefined {
    const app = this.#app(packageId);
    return effectiveConfiguration(
      app.manifest,
      this.#options.config.read((doc) => doc[packageId]),
    );
  }

  /** Validated before anything changes; a running app is told, not restarted. */
  setConfiguration(packageId: string, value: unknown): Promise<ConfigurationChange> {
    return this.#lock(packageId).run(() => this.#changeConfiguration(packageId, 'set', () => value));
  }

  /**
   * An RFC 7396 merge patch over the app's current configuration: keys the patch leaves out keep
   * their values, a key set to null returns to its default. Read and written under the app's
   * lock, so two admins' changes to different keys both survive.
   */
  mergeConfiguration(packageId: string, patch: unknown): Promise<ConfigurationChange> {
    return this.#lock(packageId).run(() => this.#changeConfiguration(packageId, 'merge', () => applyMergePatch(this.getConfiguration(packageId) ?? {}, patch)));
  }

  /** Every change is audited, made or refused; the caller learns whether a running app took it. */
  async #changeConfiguration(packageId: string, how: 'set' | 'merge', compute: () => unknown): Promise<ConfigurationChange> {
    this.#refuseHeld(packageId);
    const app = this.#app(packageId);
    const name = app.manifest.name;
    const before = this.#options.config.read((doc) => doc[packageId]);
    let valid: Record<string, unknown>;
    try {
      valid = validateAppConfiguration(app.manifest, compute());
      const keys = changedKeys(before, valid);
      // Audited before it is written (fail closed): a change the trail cannot hold is not made.
      await this.#options.config.update(
        (doc) => {
          doc[packageId] = valid;
          const entry = doc.APPLICATIONS.APPS_CONTROL.applications.find((e) => e.package_id === packageId);
          if (entry) entry.configured = true;
        },
        {
          audit: () =>
            this.#options.audit.record(
              'appConfigChanged',
              { 'application name': name },
              { packageId, how, keys: keys.slice(0, AUDITED_KEYS), keyCount: keys.length },
            ),
        },
      );
    } catch (error) {
      const coded = toIsogateError(error);
      // On a full disk this record fails too; the refusal stands with the first error's code.
      await this.#options.audit
        .record('appConfigChangeError', { 'application name': name }, { packageId, how, code: coded.code, reason: coded.message })
        .catch(() => undefined);
      throw coded;
    }
    let deliveryError: ConfigurationChange['deliveryError'];
    const guest = this.guest(packageId);
    if (guest) {
      try {
        await guest.configChanged(this.getConfiguration(packageId));
      } catch (error) {
        const coded = toIsogateError(error);
        deliveryError = { code: coded.code, message: coded.message };
        this.#report(packageId, 1, 'The new configuration is saved, but the app failed while taking it', coded);
      }
    }
    return { ...this.#announce(packageId), ...(deliveryError ? { deliveryError } : {}) };
  }

  /**
   * An in-place update begins: the app stops (a pending restart is cancelled) and stays held
   * until `release`, so that no admin command or restart launches it while its files change.
   * `also` runs last, inside the hold (the update's own closing of the app's other resources).
   * Says whether it was running or about to run again, so the update starts the new version.
   * All or nothing: a hold that fails (a state or audit record the disk refuses, `also`) leaves
   * the app as it was, not held and running again if it ran, and rejects with its failure;
   * otherwise nothing would ever start the app again, and no admin command could.
   */
  hold(packageId: string, also?: () => Promise<void>): Promise<boolean> {
    return this.#lock(packageId).run(async () => {
      this.#app(packageId);
      this.#refuseHeld(packageId);
      const runtime = this.#runtime(packageId);
      const before = runtime.status;
      const restarting = runtime.restartTimer !== undefined;
      this.#held.add(packageId);
      try {
        if (before === 'running') {
          // `execute` stays as the Running state wrote it (true): the app is meant to run, and after
          // a crash mid-update it comes back with its Autostart rule. Neither its Stopping nor
          // its Stopped state is written here: the update's next write of the app's entry records
          // it (UpdateHooks.hold), two durable writes of the configuration document fewer.
          await this.#halt(packageId, true, false);
          this.#options.appLog(packageId, 3, 'Stopped for an update');
          // Side by side: both wait mostly for the disk, and a failure of either undoes the hold.
          const held = await Promise.allSettled([
            this.#options.audit.record('appStopped', { 'application name': this.#appName(packageId) }, { packageId, reason: 'update' }),
            also?.(),
          ]);
          for (const outcome of held) if (outcome.status === 'rejected') throw outcome.reason;
        } else {
          if (before === 'error') await this.#setStatus(packageId, 'stopped');
          await also?.();
        }
      } catch (error) {
        await this.#unhold(packageId, before, error);
        throw toIsogateError(error);
      }
      // Cancelled only once the hold stands: a restart that came due meanwhile waited for this
      // lock and found the app held; after a failed hold it runs as it would have.
      if (runtime.restartTimer) clearTimeout(runtime.restartTimer);
      runtime.restartTimer = undefined;
      return before === 'running' || before === 'starting' || restarting;
    });
  }

  /** A hold that failed, undone (in the app's lock): not held, running again if it ran, in Error again if it was. */
  async #unhold(packageId: string, before: Runtime['status'], failure: unknown): Promise<void> {
    this.#held.delete(packageId);
    const runtime = this.#runtime(packageId);
    this.#report(packageId, 1, 'The update could not hold the app, so it was not updated', failure);
    if (before === 'error' && runtime.status !== 'error') {
      await this.#attempt(packageId, 'record the Error state again', () => this.#setStatus(packageId, 'error'));
      return;
    }
    if (before !== 'running' || runtime.status === 'running') return;
    try {
      await this.#launch(packageId);
      this.#options.appLog(packageId, 3, 'Started again after the failed hold');
    } catch (error) {
      // #launch audits its refusals and failures; the app that ran is then one that failed, and its restart rule applies.
      this.#report(packageId, 1, 'It could not be started again after the failed hold', error);
      if (runtime.status === 'error') this.#scheduleRestart(packageId);
    }
  }

  /**
   * Starts a held app (the start rule and configuration checks apply as always) and watches it
   * for `watchMs`: resolves when it is still running then, rejects with the failure when it
   * could not start or failed within the window. A failed app is left stopped, never restarted
   * while held. `held`: what the caller (UpdateHooks.run) did for the start already.
   */
  async runHeld(packageId: string, watchMs: number, held: HeldLaunch = {}): Promise<void> {
    if (!this.#held.has(packageId)) throw fail('E_STATE', `${packageId} is not held for an update`);
    let failed: ((failure: { code: string; message: string }) => void) | undefined;
    const failure = new Promise<{ code: string; message: string }>((resolve) => {
      failed = resolve;
    });
    const watch = (info: AppStatusInfo): void => {
      if (info.packageId === packageId && info.status === 'error') failed!(info.lastError ?? { code: 'E_APP_FAILED', message: `${packageId} failed` });
    };
    await this.#lock(packageId).run(async () => {
      this.#runtime(packageId).failures.reset();
      await this.#launch(packageId, held);
      this.on('status', watch);
    });
    let timer: NodeJS.Timeout | undefined;
    try {
      const outcome = await Promise.race([
        failure,
        new Promise<undefined>((resolve) => {
          timer = setTimeout(() => resolve(undefined), watchMs);
        }),
      ]);
      if (outcome)
        throw fail('E_APP_FAILED', `${packageId} failed within ${watchMs} ms of its start: ${outcome.code}: ${outcome.message}`, {
          packageId,
          failure: outcome,
        });
    } finally {
      clearTimeout(timer);
      this.off('status', watch);
    }
  }

  /** Stops a held app that is running (the new version that has to go), quietly keeping `execute`. */
  haltHeld(packageId: string): Promise<void> {
    return this.#lock(packageId).run(async () => {
      const runtime = this.#runtime(packageId);
      if (runtime.status === 'running') await this.#halt(packageId, true);
      else if (runtime.status === 'error') await this.#setStatus(packageId, 'stopped');
    });
  }

  /** The update has finished (either way): the app is the admin's again. */
  release(packageId: string): void {
    this.#held.delete(packageId);
    // It failed after its watch ended but while still held (a push is confirmed by the ready
    // signal alone, and the update's records follow): its restart rule applies now, as to any
    // failure, instead of leaving it in Error for good.
    const runtime = this.#runtimes.get(packageId);
    if (runtime?.status === 'error' && runtime.restartTimer === undefined && this.#options.apps.get(packageId)) this.#scheduleRestart(packageId);
  }

  /** At gateway start, an admin's restart and a restore: every Autostart app not running, each on its own (one failure does not stop the others). */
  async startAutostartApps(): Promise<void> {
    for (const app of this.#options.apps.list()) {
      const entry = this.#options.config.read((doc) => doc.APPLICATIONS.APPS_CONTROL.applications.find((e) => e.package_id === app.packageId));
      if (entry?.launchRule !== 'auto') continue;
      // An admin's restart and a restore run this too, with apps still running: those need no start.
      const status = this.#runtimes.get(app.packageId)?.status;
      if (status === 'running' || status === 'starting') continue;
      // Refusals and failures are audited by the launch; this also tells of the ones it cannot
      // audit (a Pending app, a failed write), which would otherwise leave no trace at all.
      await this.start(app.packageId).catch((error: unknown) => this.#report(app.packageId, 1, 'Not started at gateway start', error));
    }
  }

  /** Before uninstall: stop it, cancel restarts, forget it. */
  async forget(packageId: string): Promise<void> {
    await this.#lock(packageId).run(async () => {
      const runtime = this.#runtimes.get(packageId);
      if (runtime?.restartTimer) clearTimeout(runtime.restartTimer);
      if (runtime?.sandbox) {
        const sandbox = runtime.sandbox;
        runtime.sandbox = undefined;
        await sandbox.stop(this.#options.stopDeadlineMs ?? 2000).catch(() => sandbox.dispose());
        await this.#options.audit.record('appStopped', { 'application name': this.#appName(packageId) }, { packageId });
      }
      this.#runtimes.delete(packageId);
    });
    this.#locks.delete(packageId);
  }

  /**
   * Gateway exit: apps stop, each audited, but keep `execute`, so Autostart apps come back. An
   * app that cannot be stopped cleanly does not keep the others running: all are stopped, then
   * the ones that failed are reported together.
   */
  async shutdown(): Promise<void> {
    this.#shuttingDown = true;
    const failed: string[] = [];
    for (const [packageId, runtime] of this.#runtimes) {
      clearTimeout(runtime.restartTimer);
      runtime.restartTimer = undefined;
      if (runtime.status !== 'running') continue;
      try {
        await this.#lock(packageId).run(async () => {
          if (runtime.status !== 'running') return;
          const unwritten = await this.#halt(packageId, true).then(
            () => undefined,
            (error: unknown) => error,
          );
          await this.#options.audit.record('appStopped', { 'application name': this.#appName(packageId) }, { packageId, from: 'gateway shutdown' });
          this.#options.appLog(packageId, 3, 'Stopped: the gateway is shutting down');
          if (unwritten !== undefined) throw unwritten;
        });
      } catch (error) {
        const coded = toIsogateError(error);
        this.#report(packageId, 0, 'Stopping at gateway shutdown failed', coded);
        failed.push(`${packageId}: ${coded.code}: ${coded.message}`);
      }
    }
    if (failed.length > 0) throw fail('E_SHUTDOWN', `${failed.length} app(s) did not stop cleanly: ${failed.join('; ')}`, { failed });
  }
}

/** Top-level keys whose values differ between two stored configurations, added and removed ones too. */
function changedKeys(before: unknown, after: Record<string, unknown>): string[] {
  const old = before && typeof before === 'object' && !Array.isArray(before) ? (before as Record<string, unknown>) : {};
  const keys = new Set([...Object.keys(old), ...Object.keys(after)]);
  return [...keys].filter((key) => JSON.stringify(old[key]) !== JSON.stringify(after[key])).sort();
}
