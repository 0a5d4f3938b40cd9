/**
 * The one place that wires the gateway together. Subsystems know each other only through the
 * interfaces injected here; reading this file tells how data and control flow between them.
 */
import { X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fail, toIsogateError } from '../sdk/errors.js';
import { escapeControls } from '../sdk/text.js';
import { SDK_VERSION } from '../sdk/version.js';
import { AccountStore, Authenticator, USER_SETTINGS_DEFAULTS } from './accounts/index.js';
import { type ControlServer, serveControlSocket } from './api/control-socket.js';
import type { HttpApi, HttpLimits } from './api/http/index.js';
import { invokeOperation, requestBytesFor } from './api/operations.js';
import type { GatewayServices, GatewayStatus, InstalledAppView } from './api/services.js';
import { FileAuditLog } from './audit/index.js';
import { BackupService } from './backup/index.js';
import { type DemoCredentials, ensureDemoCredentials, FIRST_LOGIN } from './bootstrap/demo-credentials.js';
import type { EmbeddedStore } from './bootstrap/embedded-store.js';
import { installPlatformApps } from './bootstrap/platform-apps.js';
import { ensurePlatformRoot } from './bootstrap/platform-root.js';
import { type CloseFailure, describeCloseFailures, ShutdownSequence } from './bootstrap/shutdown.js';
import { holdStopSignals } from './bootstrap/signals.js';
import { APP_STATE, ConfigStore } from './config/index.js';
import { ensureOwnDirectory, openDataDirectory } from './datadir/index.js';
import { type DebugHost, DebugService } from './debug/index.js';
import { type DeviceKeyProvider, FileDeviceKeyProvider } from './device/index.js';
import { DataDir, removeStaleTemporaries } from './durable/index.js';
import { AddressPolicy, CertificateStore, EgressService } from './egress/index.js';
import { originOf } from './integrity/index.js';
import { runSelfTest } from './integrity/self-test.js';
import { IntegrityService } from './integrity/service.js';
import { Launcher } from './launcher/index.js';
import { AppLogs } from './logs/index.js';
import { type EmergencyHook, EmergencyMode, type EmergencyState } from './modes/index.js';
import {
  HttpStoreClient,
  type InstalledApp,
  Orchestrator,
  type QuarantinedApp,
  type UnfinishedUninstall,
  type UninstallStep,
  WorkerPackageVerifier,
} from './orchestrator/index.js';
import { Router } from './router/index.js';
import type { AppHost, LogLevelCode } from './sandbox/bridge.js';
import { type AppSandbox, createAppSandbox, PreparedIsolate } from './sandbox/index.js';
import { StorageService } from './storage/index.js';
import { SystemdNotifier } from './supervisor/notify.js';
import { TrafficGate } from './traffic/gate.js';
import { IpLists } from './traffic/gate-lists.js';
import { checkRuleListsKept } from './traffic/protector-configuration.js';

export const PLATFORM_VERSION = '0.1.0';
const MAX_PACKAGE_BYTES = 64 * 1024 * 1024;

export interface GatewayOptions {
  dataDir: string;
  /** An external store and the root its publishers chain to; without them an embedded store runs. */
  storeUrl?: string;
  trustRootFile?: string;
  /** Starts the store that runs when no external one is given; by default store-mock with the sample apps. */
  embeddedStore?: (storeDir: string) => Promise<EmbeddedStore>;
  /** The embedded store's own directory; by default `<dataDir>-store`, beside the data directory. */
  storeDataDir?: string;
  /** Where the device's master key comes from; by default a 0600 key file in DATA/device. */
  deviceKeys?: DeviceKeyProvider;
  /**
   * The root the platform's own packages chain to, distinct from the store's. Without it the
   * gateway makes one on first start in DATA/platform-ca (the demo's stand-in for a vendor key).
   */
  platformTrustRootFile?: string;
  /** A directory of the gateway's image with pre-installed packages (*.igp), installed at start when absent. */
  imageDir?: string;
  /**
   * Builds the platform's own apps (Network Protector) from their sources, signs them with the
   * gateway's own platform root (only when no platformTrustRootFile is given) and installs them
   * as from the image when absent: the demo's stand-in for a vendor's image.
   */
  platformApps?: boolean;
  /** How long an updated app must run before its update is committed (ms; default 5000): a failure within it rolls back. */
  updateWatchMs?: number;
  /**
   * The size at which an app's log file is rotated (bytes, 4 KiB to 10 MiB; default the manual's
   * 10 MB): smaller for the crash harness, which must catch rotations under way.
   */
  appLogFileBytes?: number;
  /** Port of the REST API over HTTPS (0: any free one); without it the gateway has only its control socket. */
  port?: number;
  /**
   * Enter emergency support mode at start, with this reason (the start command takes it from
   * ISOGATE_EMERGENCY_REASON, which the supervisor sets after a crash loop).
   */
  emergencyReason?: string;
  /** How long Network Protector may take over one crossing of traffic (ms); NETWORK.IDS_PROXY.verdictDeadlineMs wins. */
  verdictDeadlineMs?: number;
  /** Address the REST API listens on; loopback (127.0.0.1) unless told. */
  host?: string;
  /** The REST API's transport limits (tests shorten the timeouts). */
  httpLimits?: Partial<HttpLimits>;
  /** The clock of the accounts (credentials expiry, idle period, lockout); tests move it. */
  accountsClock?: () => number;
  /** Set when the supervisor restarted the gateway after a crash: its account, audited as the manual's restart event. */
  restartedAfter?: string;
  /** Called after each step of an uninstall: the crash tests kill the process there. */
  onUninstallStep?: (step: UninstallStep, packageId: string) => void | Promise<void>;
}

export interface Gateway {
  services: GatewayServices;
  dataDir: string;
  controlSocket: string;
  storeUrl: string;
  /** The embedded store's directory, when the embedded store runs. */
  storeDir?: string;
  /** The root the store's packages chain to, as a file (`isogate-sdk verify --trust` takes it). */
  storeRootCertFile?: string;
  /** What opening the data directory migrated (empty when it was current). */
  migrated: string[];
  demo: DemoCredentials;
  /** The REST API's address, when a port was given. */
  apiUrl?: string;
  /** The web interface's accounts and its one session; `endAllSessions(reason)` is for emergency support mode. */
  authenticator: Authenticator;
  /**
   * Runs `hook` when the gateway enters emergency support mode, after the proxied connections
   * ended and before the apps stop: the web UI and debug service end their sessions here.
   */
  onEmergency(hook: EmergencyHook): void;
  /**
   * Closes everything, in SHUTDOWN_ORDER, and answers with what failed to close (empty when
   * all closed cleanly). A second call runs nothing again and settles when the first has.
   */
  close(): Promise<CloseFailure[]>;
}

/**
 * The order the gateway closes in. The control socket first, so that no command arrives while
 * the rest goes (the REST API before it, for the same reason); the shutdown recorded; the apps stopped while everything they use still
 * works; then the subsystems, users before what they use; the data-directory lock last, for
 * another gateway may take the directory only once this one has let go of everything in it.
 */
const SHUTDOWN_ORDER = [
  'web api',
  'control socket',
  'debug service',
  'emergency mode',
  'audit',
  'traffic gate',
  'launcher',
  'orchestrator',
  'router',
  'egress',
  'storage',
  'logs',
  'embedded store',
  'data directory lock',
] as const;

export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const logFileBytes = options.appLogFileBytes;
  if (logFileBytes !== undefined && (!Number.isInteger(logFileBytes) || logFileBytes < 4096 || logFileBytes > 10 * 1024 * 1024)) {
    throw fail('E_OPTION', `appLogFileBytes is an integer from 4096 to 10485760 (bytes), got ${String(logFileBytes)}`);
  }
  // Checked, locked and migrated before anything in it is read or written (see platform/datadir).
  const opened = await openDataDirectory({ dataDir: options.dataDir, ...(options.storeDataDir ? { storeDir: options.storeDataDir } : {}) });
  const { dataDir } = opened;
  const dir = (name: string): string => path.join(dataDir, name);
  const startedAt = Date.now();
  const shutdown = new ShutdownSequence(SHUTDOWN_ORDER);
  shutdown.set('data directory lock', () => opened.lock.release());

  try {
    // The orchestrator's trees are its own to reconcile (an app's files may have any name).
    await removeStaleTemporaries(new DataDir(dataDir), ['apps', 'staging', 'trash', 'updates']);
    const keys = await (options.deviceKeys ?? new FileDeviceKeyProvider(dir('device'))).open();
    const audit = await FileAuditLog.open(dir('audit'));
    shutdown.set('audit', () => audit.record('deviceShutdown'));
    if (options.restartedAfter !== undefined) {
      await audit.record('deviceReboot', {}, { cause: 'restarted by the supervisor after a crash', description: options.restartedAfter });
    }
    const config = await ConfigStore.open(dir('config.json'), `isogate\n\nVersion: ${PLATFORM_VERSION}\n\nisogate SDK version: ${SDK_VERSION}`);
    for (const repair of config.repairs) {
      await audit.record(
        'integrityViolation',
        {
          object: `The configuration of ${repair.packageId}`,
          description: `${repair.reason}; it was removed, set it again with "isogate apps config ${repair.packageId} --set FILE"`,
        },
        { packageId: repair.packageId },
      );
    }
    const demo = await ensureDemoCredentials(dir('demo'));
    // Read before any app can start: a gateway that was in emergency support mode comes back in it.
    const modes = await EmergencyMode.open(dataDir, audit);
    shutdown.set('emergency mode', () => modes.settled());

    let embedded: EmbeddedStore | undefined;
    let storeUrl: string;
    let trustRootsPem: string[];
    if (options.storeUrl) {
      if (!options.trustRootFile) throw fail('E_OPTION', 'An external store needs --trust ROOT, the root certificate its publishers chain to');
      storeUrl = options.storeUrl;
      trustRootsPem = [
        await fs.readFile(options.trustRootFile, 'utf8').catch((error: Error) => {
          throw fail('E_OPTION', `The trust root ${options.trustRootFile} cannot be read: ${error.message}`);
        }),
      ];
    } else {
      // Loaded only here: the store brings koa and esbuild, which a gateway with an external store never needs.
      const startStore = options.embeddedStore ?? (await import('./bootstrap/embedded-store.js')).startEmbeddedStore;
      embedded = await startStore(await ensureOwnDirectory(opened.storeDir, "the embedded store's directory"));
      shutdown.set('embedded store', () => embedded!.close());
      storeUrl = embedded.url;
      trustRootsPem = [embedded.rootCertPem];
    }

    const ownPlatformRoot = options.platformTrustRootFile ? undefined : await ensurePlatformRoot(dir('platform-ca'));
    const platformTrustRootsPem = [
      ownPlatformRoot
        ? ownPlatformRoot.rootCertPem
        : await fs.readFile(options.platformTrustRootFile!, 'utf8').catch((error: Error) => {
            throw fail('E_OPTION', `The platform root ${options.platformTrustRootFile} cannot be read: ${error.message}`);
          }),
    ];

    const logs = new AppLogs({ root: dir('logs'), ...(logFileBytes === undefined ? {} : { maxFileBytes: logFileBytes }) });
    shutdown.set('logs', () => logs.close());
    const appLog = (packageId: string, level: LogLevelCode, message: string): void => logs.writer(packageId).write(level, message, 'platform');
    const storage = new StorageService({ root: dir('storage'), keys });
    shutdown.set('storage', () => storage.closeAll());
    const certificates = new CertificateStore({ root: dir('certs'), keys, audit });
    // EGRESS.allowed_ranges is checked on every configuration change and applied live.
    const egress = new EgressService({ certificates, appLog, allowedRanges: config.read((doc) => doc.EGRESS?.allowed_ranges) });
    shutdown.set('egress', () => egress.close());
    config.addCheck((doc) => AddressPolicy.fromRanges(doc.EGRESS?.allowed_ranges));
    config.on('change', ({ after }) => egress.setAllowedRanges(after.EGRESS?.allowed_ranges));

    // The launcher and the router refer to each other (routes deliver into running apps,
    // apps emit into routes); they meet only through these two late-bound functions.
    let launcher: Launcher | undefined;
    let orchestrator: Orchestrator | undefined;
    const router = new Router({
      config,
      audit,
      appLog,
      manifestOf: (packageId) => orchestrator?.get(packageId)?.manifest,
      guestOf: (packageId) => launcher?.guest(packageId),
    });
    shutdown.set('router', () => router.close());

    /** Isolates made for pushed versions while they were verified, until their start takes them. */
    const preparedIsolates = new Map<string, PreparedIsolate>();
    const verifier = new WorkerPackageVerifier();
    orchestrator = await Orchestrator.open({
      verifier,
      dataDir,
      config,
      audit,
      keys,
      trustRootsPem,
      platformTrustRootsPem,
      store: new HttpStoreClient({ url: storeUrl, maxPackageBytes: MAX_PACKAGE_BYTES }),
      ...(options.updateWatchMs === undefined ? {} : { updateWatchMs: options.updateWatchMs }),
      ...(options.onUninstallStep ? { onUninstallStep: options.onUninstallStep } : {}),
      // These also run at open, finishing an uninstall a crash interrupted, before the launcher
      // exists: nothing runs then, so there is nothing to stop.
      beforeUninstall: [
        async (id) => launcher?.forget(id),
        (id) => egress.closeApp(id),
        (id) => storage.wipe(id),
        (id) => logs.remove(id),
        (id) => certificates.remove(id),
        async (id) => router.appRemoved(id),
      ],
      routesOf: (id) =>
        router
          .list()
          .filter((route) => route.source.application_id === id || route.destination.application_id === id)
          .map((route) => route.id),
      // An update stops the app and keeps its storage, logs, certificates and routes; storage is
      // closed so that it opens again with the new version's quota.
      updateHooks: {
        // Inside the launcher's hold: if closing these fails, the app is released and runs again as it did.
        hold: (id) =>
          launcher!.hold(id, async () => {
            await egress.closeApp(id);
            await storage.close(id);
          }),
        run: (id, watchMs, held) => launcher!.runHeld(id, watchMs, held),
        halt: (id) => launcher!.haltHeld(id),
        release: (id) => launcher!.release(id),
        replaced: (id) => router.appReplaced(id),
        prepare: (id, claimed) => {
          preparedIsolates.get(id)?.dispose();
          let prepared: PreparedIsolate;
          try {
            prepared = new PreparedIsolate(claimed);
          } catch {
            // Only time is lost: the start makes its isolate as it always did.
            return () => undefined;
          }
          preparedIsolates.set(id, prepared);
          return () => {
            prepared.dispose();
            if (preparedIsolates.get(id) === prepared) preparedIsolates.delete(id);
          };
        },
      },
    });
    shutdown.set('orchestrator', () => orchestrator!.close());
    const installed = orchestrator;
    if (options.imageDir) await installImagePackages(installed, options.imageDir);
    if (options.platformApps && ownPlatformRoot) await installPlatformApps(installed, ownPlatformRoot);

    // The traffic gate and its inspector: only an app from the image holding traffic.inspect
    // (Network Protector) is given the gate; its failure is the manual's cause of emergency mode.
    const lists = new IpLists(config, audit);
    const inspectorName = (id: string): string => installed.get(id)?.manifest.name ?? id;
    const gate = new TrafficGate({
      config,
      audit,
      lists,
      blocked: () => modes.active,
      onInspectorFailure: (id, error) => void modes.enter(`${inspectorName(id)} failed: ${error.code}: ${error.message}`, 'network-protector'),
      ...(options.verdictDeadlineMs === undefined ? {} : { verdictDeadlineMs: options.verdictDeadlineMs }),
    });
    shutdown.set('traffic gate', () => gate.close());
    const inspects = (app: InstalledApp): boolean => originOf(app.record) === 'image' && (app.manifest.capabilities ?? []).includes('traffic.inspect');
    // Network Protector's rule lists, once added, stay (the manual); an app's configuration
    // removed with the app is not a change of it.
    config.addCheck((draft) => {
      for (const app of installed.list()) {
        if (!inspects(app) || draft[app.packageId] === undefined) continue;
        checkRuleListsKept(
          app.packageId,
          config.read((doc) => doc[app.packageId]),
          draft[app.packageId],
        );
      }
    });
    /** The manual: Network Protector needs at least one of its two rule lists, or the gateway enters emergency mode. */
    const hasRules = (id: string): boolean => {
      const rules = (launcher!.getConfiguration(id)?.APP_CONFIGURATION ?? {}) as Record<string, unknown>;
      return ['industrial_commands_rules', 'industrial_anomaly_rules'].some((key) => typeof rules[key] === 'string' && rules[key] !== '');
    };

    const hostFor = (app: InstalledApp): AppHost => {
      const id = app.packageId;
      const quota = app.manifest.resources.storageMb * 1024 * 1024;
      const appStorage = () => storage.open(id, quota);
      return {
        packageId: id,
        log: (level, message) => logs.writer(id).write(level, message, 'app'),
        storage: {
          get: async (key) => (await appStorage()).get(key),
          put: async (key, value) => (await appStorage()).put(key, value),
          delete: async (key) => (await appStorage()).delete(key),
          list: async (prefix) => (await appStorage()).list(prefix),
          usage: async () => (await appStorage()).usage(),
        },
        config: () => launcher!.getConfiguration(id),
        emitBatch: (runs) => router.emitBatch(id, runs),
        egress: egress.forApp(id, app.manifest.egress ?? []),
        ...(inspects(app)
          ? {
              traffic: {
                register: (inspector) => {
                  modes.assertNotActive(`${id} does not inspect traffic`);
                  if (!hasRules(id)) {
                    void modes.enter(`${app.manifest.name} started without traffic filtering rules`, 'network-protector');
                    return;
                  }
                  gate.register(inspector);
                },
              },
            }
          : {}),
      };
    };

    // Apps the debug service restarted with their inspector on, and the sandboxes it may reach.
    const inspecting = new Set<string>();
    const inspectedSandboxes = new Map<string, AppSandbox>();
    const developerMode = (): boolean => config.read((doc) => doc.MODE_SWITCH.is_developer_mode === true);
    // Pushes come often in developer mode: their verification does not wait for a worker to start.
    if (developerMode()) verifier.keepWarm();

    launcher = new Launcher({
      config,
      audit,
      appLog,
      apps: installed,
      platformSdkVersion: SDK_VERSION,
      verifyIntegrity: (app) => installed.verifyIntegrity(app.packageId),
      createSandbox: async (app, files, onFailure) => {
        modes.assertNotActive(`${app.packageId} is not started`);
        const record = installed.get(app.packageId)!;
        const origin = originOf(record.record);
        // Its storage is opened beside the isolate's start (the log's read and folder sync are
        // disk, the start CPU); an update closed it, and an app's top level often reads it first.
        void storage.openIfStored(app.packageId, record.manifest.resources.storageMb * 1024 * 1024);
        // The inspector only for a pushed app in developer mode, and only when its developer asked for it.
        const inspector = origin === 'debug' && developerMode() && inspecting.has(app.packageId);
        // A pushed version's isolate, made while its package was verified (UpdateHooks.prepare).
        const prepared = preparedIsolates.get(app.packageId);
        preparedIsolates.delete(app.packageId);
        const sandbox = await createAppSandbox({
          manifest: record.manifest,
          files,
          host: hostFor(record),
          origin,
          onFailure,
          inspector,
          ...(prepared ? { prepared } : {}),
        });
        if (inspector) inspectedSandboxes.set(app.packageId, sandbox);
        else inspectedSandboxes.delete(app.packageId);
        return sandbox;
      },
    });
    const running = launcher;
    shutdown.set('launcher', () => running.shutdown());
    running.on('status', (info) => {
      logs.setLevel(info.packageId, info.logLevel);
      if (info.status === 'running') router.appStarted(info.packageId);
      if (info.status === 'stopped' || info.status === 'error') {
        inspectedSandboxes.delete(info.packageId);
        router.appStopped(info.packageId);
        void egress.closeApp(info.packageId);
        // Stopped: transit fails closed. Failed (crashed, refused at launch): emergency support mode.
        gate.unregister(info.packageId);
        const app = installed.get(info.packageId);
        if (info.status === 'error' && app && inspects(app) && !modes.active) {
          const why = info.lastError ? `${info.lastError.code}: ${info.lastError.message}` : 'no reason recorded';
          void modes.enter(`${app.manifest.name} failed: ${why}`, 'network-protector');
        }
      }
    });
    // Emergency support mode: sessions end (the proxied connections here, the web UI's and
    // debug service's through onEmergency), then every app stops. Started apps are not awaited
    // from inside the launcher's own status event, where the mode may have been entered.
    modes.onEmergency(() => gate.closeAll());
    const stopAllApps = async (): Promise<void> => {
      for (const info of running.list()) {
        if (info.status === 'running' || info.status === 'starting' || info.status === 'error') await running.stop(info.packageId).catch(() => undefined);
      }
    };
    for (const info of running.list()) logs.setLevel(info.packageId, info.logLevel);

    const ownerOf = (id: string): string | null | undefined => {
      const app = installed.get(id);
      if (!app) return undefined;
      return originOf(app.record) === 'debug' ? (app.record.owner ?? null) : null;
    };
    const debugHost: DebugHost = {
      developerMode,
      enableDeveloperMode: async () => {
        if (developerMode()) return;
        // The manual: developer mode is left only by reinstalling; `isogate reset --factory` stands for that.
        await config.update((doc) => {
          doc.MODE_SWITCH.is_developer_mode = true;
        });
        verifier.keepWarm();
        await audit.record('developerMode');
      },
      push: async (file, owner) => {
        const result = await installed.push(file, owner);
        const id = result.app.packageId;
        // A new build starts without the inspector; `isogate-sdk debug` turns it on again.
        inspecting.delete(id);
        let startError: { code: string; message: string } | undefined;
        if (running.status(id).status !== 'running') {
          await running.start(id).catch((error: unknown) => {
            const coded = toIsogateError(error);
            startError = { code: coded.code, message: coded.message };
          });
        }
        return {
          package_id: id,
          name: result.app.manifest.name,
          version: result.app.version,
          updated: result.updated,
          previous_version: result.previousVersion,
          signature: 'unsigned',
          reset_keys: result.resetKeys,
          routes_in_error: result.routesInError,
          status: running.status(id).status,
          ...(startError ? { start_error: startError } : {}),
        };
      },
      ownerOf,
      appsOf: (owner) =>
        installed
          .list()
          .filter((app) => ownerOf(app.packageId) === owner)
          .map((app) => ({ package_id: app.packageId, name: app.manifest.name, version: app.version, status: running.status(app.packageId).status })),
      followLog: (id, followOptions) => logs.follow(id, followOptions),
      inspect: async (id) => {
        inspecting.add(id);
        const status = running.status(id).status;
        if (status === 'running' || status === 'starting' || status === 'error') await running.stop(id);
        try {
          await running.start(id);
        } catch (error) {
          inspecting.delete(id);
          throw error;
        }
      },
      inspectable: (id) => {
        const sandbox = inspectedSandboxes.get(id);
        if (!sandbox || sandbox.disposed || !inspecting.has(id) || running.status(id).status !== 'running') return undefined;
        return { openSession: (onMessage, onEnd) => sandbox.openInspectorSession(onMessage, onEnd) };
      },
    };
    const debug = new DebugService({ dir: dir('debug'), data: new DataDir(dataDir), audit, host: debugHost, maxPackageBytes: MAX_PACKAGE_BYTES });
    shutdown.set('debug service', () => debug.close());

    const integrity = new IntegrityService({
      apps: new DataDir(dataDir).sub('apps'),
      keys,
      audit,
      lastFile: { root: new DataDir(dataDir), path: dir('integrity-last.json') },
    });
    await integrity.load();
    // Late-bound: the accounts open after the services exist; the self-test reads them through this.
    let accounts: Authenticator | undefined;
    const networkProtector = (): { id: string; name: string; status: string; hasRules: boolean } | undefined => {
      const app = installed.list().find(inspects);
      return app && { id: app.packageId, name: app.manifest.name, status: running.status(app.packageId).status, hasRules: hasRules(app.packageId) };
    };
    const restartGateway = async (): Promise<{ left: EmergencyState | null; status: GatewayStatus }> => {
      const left = await modes.clear();
      await running.startAutostartApps();
      return { left: left ?? null, status: gatewayStatus() };
    };
    const backup = new BackupService({
      config,
      audit,
      platformVersion: PLATFORM_VERSION,
      hostId: integrity.hostId,
      installed: () => installed.list().map((app) => ({ packageId: app.packageId, version: app.version })),
      running: () =>
        running
          .list()
          .filter((info) => info.status === 'running' || info.status === 'starting')
          .map((info) => info.packageId),
      restart: restartGateway,
    });

    const services: GatewayServices = {
      orchestrator: installed,
      debug,
      launcher: running,
      router,
      gate,
      lists,
      modes,
      restart: restartGateway,
      certificates,
      integrity,
      backup,
      selfTest: () =>
        runSelfTest({
          audit,
          readAccounts: () => {
            if (!accounts) throw new Error('the accounts are not open yet');
            for (const role of ['admin', 'user'] as const) accounts.describe(role);
          },
          gate: {
            inspector: () => gate.inspector,
            listenError: () => gate.status().listenError,
            services: () =>
              gate.status().services.map((service) => ({ name: service.name, listen: service.listen, refusedFailClosed: service.counters.refusedFailClosed })),
            denylisted: () => lists.denylist().map((entry) => entry.ipAddrSource),
            allowlisted: () => lists.allowlist().map((entry) => entry.ipAddrSource),
            verdictAtAccept: (ip) => lists.verdictAtAccept(ip),
            blocked: () => modes.active,
            inspectSelfTestFrame: () => gate.inspectSelfTestFrame(),
          },
          networkProtector,
          enterEmergency: (reason, cause) => modes.enter(reason, cause),
        }),
      audit,
      config,
      status: () => gatewayStatus(),
      installedApps: () =>
        [
          ...installed.list().map((app) => installedAppView(app, running)),
          ...installed.quarantined().map((app) => quarantinedAppView(app, config)),
          ...installed.unfinishedUninstalls().map((app) => uninstallingAppView(app, config)),
        ].sort((a, b) => a.name.localeCompare(b.name)),
      logArchiveInfo: (id) => {
        services.requireInstalled(id);
        return logs.archiveInfo(id);
      },
      logArchive: (id) => {
        services.requireInstalled(id);
        return logs.archive(id);
      },
      followLog: async (id, followOptions) => {
        services.requireInstalled(id);
        return logs.follow(id, followOptions);
      },
      requireInstalled: (id) => {
        if (!installed.get(id)) throw fail('E_NOT_INSTALLED', `${id} is not installed`, { packageId: id });
      },
    };

    const gatewayStatus = (): GatewayStatus => {
      const byStatus: Record<string, number> = {};
      for (const info of running.list()) byStatus[info.status] = (byStatus[info.status] ?? 0) + 1;
      const quarantined = installed.quarantined().length;
      if (quarantined > 0) byStatus.quarantined = quarantined;
      const routes = router.list();
      const switches = config.read((doc) => doc.MODE_SWITCH);
      return {
        version: PLATFORM_VERSION,
        sdkVersion: SDK_VERSION,
        uptimeSeconds: (Date.now() - startedAt) / 1000,
        dataDir,
        mode: switches.router_mode === false ? 'unidirectional gateway' : 'router',
        developerMode: switches.is_developer_mode === true,
        debugService: debug.url ?? null,
        store: storeUrl,
        apps: {
          installed: installed.list().length + quarantined,
          limit: installed.maxApps,
          byStatus,
          unsigned: installed.list().filter((app) => app.record.signer === null).length,
        },
        routes: {
          active: routes.filter((r) => r.status === 'Active').length,
          inactive: routes.filter((r) => r.status === 'Inactive').length,
          error: routes.filter((r) => r.status === 'Error').length,
        },
        emergency: modes.state() ?? null,
        traffic: gate.status(),
      };
    };

    const authenticator = await openAccounts(dir('accounts'), demo, audit, config, options.accountsClock);
    accounts = authenticator;
    let api: HttpApi | undefined;
    if (options.port !== undefined) {
      const [keyPem, certPem, rootCertPem] = await Promise.all(
        [demo.serverKeyFile, demo.serverCertFile, demo.rootCertFile].map((file) => fs.readFile(file, 'utf8')),
      );
      // Loaded only here: a gateway without a port never needs koa (nor the embedded store's).
      const { serveHttpApi } = await import('./api/http/index.js');
      const { webAssets, PAGE_CSP } = await import('./web/assets.js');
      api = await serveHttpApi({
        port: options.port,
        ...(options.host ? { host: options.host } : {}),
        tls: { keyPem: keyPem!, certPem: certPem!, rootCertPem: rootCertPem! },
        services,
        authenticator,
        audit,
        version: PLATFORM_VERSION,
        web: await webAssets(),
        webCsp: PAGE_CSP,
        ...(options.httpLimits ? { limits: options.httpLimits } : {}),
      });
      const serving = api;
      shutdown.set('web api', async () => {
        await authenticator.endAllSessions('the gateway is shutting down');
        await serving.close();
      });
    }

    const storeRootCertFile = embedded ? embedded.rootCertFile : path.resolve(options.trustRootFile!);
    const control: ControlServer = await serveControlSocket(
      path.join(dataDir, 'control.sock'),
      (op, params, context) => invokeOperation(services, op, params, context),
      { requestBytes: requestBytesFor },
    );
    shutdown.set('control socket', () => control.close());

    await gate.start();
    const userHooks: EmergencyHook[] = [];
    modes.onEmergency(async (state) => {
      // The manual: entering emergency support mode ends every active session, the web one too.
      await authenticator.endAllSessions('emergency support mode').catch(() => undefined);
      debug.endSessions('emergency support mode');
      for (const hook of userHooks) await Promise.resolve(hook(state)).catch(() => undefined);
      await stopAllApps();
    });
    if (options.emergencyReason !== undefined) await modes.enter(options.emergencyReason, 'supervisor');
    // The debug service comes back with developer mode, where it listened; failing that, the gateway runs without it.
    await debug.resume().catch((error: unknown) => {
      const coded = toIsogateError(error);
      process.stderr.write(`the debug service did not start again: ${coded.code}: ${escapeControls(coded.message)}\n`);
    });
    // The manual's automatic integrity check at start: a violated app is a Critical event and emergency support mode.
    const atStart = await integrity.startupCheck(new Set(installed.quarantined().map((app) => app.packageId)));
    if (!atStart.ok) {
      await modes.enter(
        `the integrity check at start found violations: ${atStart.violations.map((violation) => `${violation.app} (${violation.description})`).join('; ')}`,
        'integrity',
      );
    }
    if (!modes.active) await running.startAutostartApps();
    return {
      services,
      onEmergency: (hook) => userHooks.push(hook),
      dataDir,
      controlSocket: control.path,
      storeUrl,
      demo,
      authenticator,
      ...(api ? { apiUrl: api.url } : {}),
      close: () => shutdown.close(),
      ...(embedded ? { storeDir: opened.storeDir } : {}),
      migrated: opened.migration.applied,
      ...(storeRootCertFile ? { storeRootCertFile } : {}),
    };
  } catch (error) {
    // The start-up error is the one to report; what then failed to close is said beside it.
    const failures = await shutdown.close();
    if (failures.length > 0) process.stderr.write(`closing after a failed start: ${escapeControls(describeCloseFailures(failures))}\n`);
    throw error;
  }
}

/**
 * The two accounts of the web interface, created at first start with the manual's first-login
 * credentials and bound to the demo's admin and user certificates (by their SHA-256 hash).
 */
async function openAccounts(
  dir: string,
  demo: DemoCredentials,
  audit: FileAuditLog,
  config: ConfigStore,
  clock: (() => number) | undefined,
): Promise<Authenticator> {
  const bound = async (file: string): Promise<{ certificateSha256: string; certificateValidTo: string }> => {
    const cert = new X509Certificate(await fs.readFile(file));
    return { certificateSha256: cert.fingerprint256, certificateValidTo: new Date(cert.validTo).toISOString() };
  };
  const accounts = await AccountStore.open(
    dir,
    {
      admin: { ...FIRST_LOGIN.admin, ...(await bound(demo.adminCertFile)) },
      user: { ...FIRST_LOGIN.user, ...(await bound(demo.userCertFile)) },
    },
    clock,
  );
  return new Authenticator({
    accounts,
    audit,
    settings: () => ({ ...USER_SETTINGS_DEFAULTS, ...config.read((doc) => doc.USER_SETTINGS ?? {}) }),
    ...(clock ? { clock } : {}),
  });
}

/**
 * Installs the image's packages that are not installed yet. One that fails verification is
 * audited by the orchestrator and reported here; the gateway still starts.
 */
async function installImagePackages(orchestrator: Orchestrator, imageDir: string): Promise<void> {
  const names = await fs.readdir(imageDir).catch((error: Error) => {
    throw fail('E_OPTION', `The image directory ${imageDir} cannot be read: ${error.message}`);
  });
  for (const name of names.filter((file) => file.endsWith('.igp')).sort()) {
    try {
      await orchestrator.installFromImage(path.join(imageDir, name));
    } catch (error) {
      const coded = toIsogateError(error);
      if (coded.code !== 'E_ALREADY_INSTALLED') process.stderr.write(`image package ${name}: ${coded.code}: ${coded.message}\n`);
    }
  }
}

function installedAppView(app: InstalledApp, launcher: Launcher): InstalledAppView {
  const info = launcher.status(app.packageId);
  const rules = { auto: 'auto', none: 'manual', forbidden: 'blocked' } as const;
  return {
    package_id: app.packageId,
    name: app.manifest.name,
    publisher: app.record.signer?.subject ?? 'unsigned',
    publisher_claim: app.manifest.publisher,
    origin: originOf(app.record),
    ...(app.record.owner === undefined ? {} : { owner: app.record.owner }),
    version: app.version,
    type: app.manifest.type,
    status: info.status,
    state: info.state,
    launch_rule: rules[info.launchRule],
    log_level: info.logLevel,
    configured: info.configured,
    restarts: info.restarts,
    ...(info.lastError ? { last_error: info.lastError } : {}),
    signature: app.record.signer ? 'verified' : 'unsigned',
    signer: app.record.signer && {
      subject: app.record.signer.subject,
      issuer: app.record.signer.issuer,
      fingerprint256: app.record.signer.fingerprint256,
      spkiSha256: app.record.signer.spkiSha256 ?? null,
      validTo: app.record.signer.validTo,
    },
    installed_at: app.record.installedAt,
    manifest: app.manifest,
  };
}

/** A quarantined app's row: what its configuration entry (written at install) says, and why it is quarantined. */
function quarantinedAppView(app: QuarantinedApp, config: ConfigStore): InstalledAppView {
  const entry = config.read((doc) => doc.APPLICATIONS.APPS_CONTROL.applications.find((candidate) => candidate.package_id === app.packageId));
  const rules = { auto: 'auto', none: 'manual', forbidden: 'blocked' } as const;
  return {
    package_id: app.packageId,
    name: app.name,
    publisher: app.record?.signer?.subject ?? (app.record ? 'unsigned' : 'unknown'),
    publisher_claim: '',
    origin: app.record ? originOf(app.record) : 'store',
    version: app.version ?? '',
    type: entry?.type ?? '',
    status: 'quarantined',
    state: APP_STATE.stopped,
    launch_rule: rules[entry?.launchRule ?? 'none'],
    log_level: entry?.logLevel ?? 3,
    configured: entry?.configured !== false,
    restarts: 0,
    reason: app.reason,
    last_error: { code: 'E_INTEGRITY', message: app.reason, at: app.detectedAt },
    signature: 'untrusted',
    signer: null,
    installed_at: app.record?.installedAt ?? '',
    manifest: null,
  };
}

/** An uninstall past its commit point that failed: the app is out, and an uninstall again finishes it. */
function uninstallingAppView(app: UnfinishedUninstall, config: ConfigStore): InstalledAppView {
  const entry = config.read((doc) => doc.APPLICATIONS.APPS_CONTROL.applications.find((candidate) => candidate.package_id === app.packageId));
  const reason = `its uninstall did not finish${app.failure ? ` (${app.failure.code}: ${app.failure.message})` : ''}; it is not started, and "isogate apps uninstall ${app.packageId}" finishes it`;
  return {
    package_id: app.packageId,
    name: app.name,
    publisher: 'unknown',
    publisher_claim: '',
    // As its uninstall record kept it (the install record may be erased by now); a record from before origins were kept is a store install's, as originOf reads 0.1.0 records.
    origin: app.origin ?? 'store',
    version: entry?.version ?? '',
    type: entry?.type ?? '',
    status: 'uninstalling',
    state: APP_STATE.stopped,
    launch_rule: 'blocked',
    log_level: entry?.logLevel ?? 3,
    configured: entry?.configured !== false,
    restarts: 0,
    reason,
    ...(app.failure ? { last_error: app.failure } : {}),
    signature: 'untrusted',
    signer: null,
    installed_at: '',
    manifest: null,
  };
}

export interface RunOptions extends GatewayOptions {
  demo?: boolean;
  json?: boolean;
  /** How long the whole shutdown may take before the process gives up on it and exits 1 (ms; default 30000). */
  shutdownDeadlineMs?: number;
}

export const SHUTDOWN_DEADLINE_MS = 30_000;

/**
 * `isogate start`: runs until SIGINT/SIGTERM (or until the supervisor that started it is gone),
 * printing where everything is. The signal handlers are the process's first (signals.ts); a stop
 * asked for during start-up waits for start-up to finish, then stops in order.
 */
export async function runGateway(options: RunOptions): Promise<void> {
  const stop = holdStopSignals();
  // Started by the supervisor (platform/supervisor): when it dies, its channel closes, and the
  // gateway must not live on as an orphan holding the data directory's lock.
  if (process.send) {
    process.once('disconnect', () => stop.request('the supervisor is gone'));
    // The channel alone must not keep a stopped gateway's process alive.
    process.channel?.unref();
  }
  // Before anything opens: a NOTIFY_SOCKET systemd never sets is refused with nothing to undo.
  const notifier = SystemdNotifier.fromEnv();
  const gateway = await startGateway(options.demo ? { platformApps: true, ...options } : options);
  const say = (text: string): void => {
    if (!options.json) process.stdout.write(`${text}\n`);
  };
  if (!stop.isRequested) {
    // Ready: to the supervisor (which restarts only a gateway that once was) and to systemd;
    // written to the channel before anything is printed, so whoever reads the output and kills
    // the gateway kills one the supervisor knows was ready.
    const send = process.send?.bind(process);
    if (send) await new Promise<void>((resolve) => send({ type: 'ready' }, undefined, {}, () => resolve()));
    await notifier?.ready();
    await announce(gateway, options, say);
  }
  const reason = await stop.requested;
  await notifier?.stopping();
  if (options.json) process.stdout.write(`${JSON.stringify({ stopping: reason })}\n`);
  say(`Stopping (${reason})...`);
  const deadlineMs = options.shutdownDeadlineMs ?? SHUTDOWN_DEADLINE_MS;
  stop.onRepeat((signal) =>
    process.stderr.write(`${signal} while stopping: ignored; the gateway stops in order within ${Math.round(deadlineMs / 1000)} s of the first signal\n`),
  );
  let timer: NodeJS.Timeout | undefined;
  const overdue = new Promise<'overdue'>((resolve) => {
    timer = setTimeout(() => resolve('overdue'), deadlineMs);
  });
  const failures = await Promise.race([gateway.close(), overdue]);
  clearTimeout(timer);
  if (failures === 'overdue') {
    process.stderr.write(`E_SHUTDOWN: the gateway did not stop within ${deadlineMs} ms; exiting with parts still open\n`);
    // Whatever hangs holds handles that would keep the process alive: exiting is the deadline.
    process.exit(1);
  }
  // The CLI prints it (each part with its code and message) and exits non-zero.
  if (failures.length > 0)
    throw fail('E_SHUTDOWN', `The gateway stopped, but ${failures.length} part(s) did not close cleanly: ${describeCloseFailures(failures)}`, { failures });
}

async function announce(gateway: Gateway, options: RunOptions, say: (text: string) => void): Promise<void> {
  if (options.demo) {
    const { setUpDemo } = await import('./bootstrap/demo.js');
    await setUpDemo(gateway.services, (line) => say(line));
  }
  const info = {
    dataDir: gateway.dataDir,
    controlSocket: gateway.controlSocket,
    store: gateway.storeUrl,
    ...(gateway.storeDir ? { storeDir: gateway.storeDir } : {}),
    migrated: gateway.migrated,
    ...(gateway.storeRootCertFile ? { storeRootCert: gateway.storeRootCertFile } : {}),
    demo: gateway.demo,
    ...(gateway.apiUrl ? { apiUrl: gateway.apiUrl } : {}),
    status: gateway.services.status(),
    pid: process.pid,
  };
  if (options.json) process.stdout.write(`${JSON.stringify(info)}\n`);
  say(
    [
      `isogate ${PLATFORM_VERSION} is running.`,
      `  data directory   ${gateway.dataDir}`,
      `  control socket   ${gateway.controlSocket}   (isogate apps list --data ${gateway.dataDir})`,
      ...gateway.migrated.map((step) => `  migrated         ${step}`),
      `  app store        ${gateway.storeUrl}${gateway.storeDir ? ` (its data, CA and publisher keys in ${gateway.storeDir})` : ''}`,
      ...(gateway.storeRootCertFile
        ? [`  store root CA    ${gateway.storeRootCertFile}   (what its packages chain to: isogate-sdk verify PKG --trust ${gateway.storeRootCertFile})`]
        : []),
      `  demo root CA     ${gateway.demo.rootCertFile}   (of the demo admin identity below; not the store's)`,
      `  admin identity   ${gateway.demo.adminP12File} (password "${gateway.demo.p12Password}"), ${gateway.demo.adminCertFile}, ${gateway.demo.adminKeyFile}`,
      ...(gateway.apiUrl
        ? [
            `  web API          ${gateway.apiUrl}/api/v1   (OpenAPI: ${gateway.apiUrl}/api/v1/openapi.json; client certificate required)`,
            `  user identity    ${gateway.demo.userP12File} (password "${gateway.demo.userP12Password}")`,
          ]
        : []),
      `  first login      ${gateway.demo.firstLoginFile}   (admin / adminadmin, user / useruser: the manual's; change them at first login)`,
      'Press Ctrl-C to stop.',
    ].join('\n'),
  );
}
