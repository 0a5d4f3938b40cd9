/**
 * The one place that wires the gateway together. Subsystems know each other only through the
 * interfaces injected here; reading this file tells how data and control flow between them.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fail, toIsogateError } from '../sdk/errors.js';
import { escapeControls } from '../sdk/text.js';
import { SDK_VERSION } from '../sdk/version.js';
import { type ControlServer, serveControlSocket } from './api/control-socket.js';
import { invokeOperation } from './api/operations.js';
import type { GatewayServices, GatewayStatus, InstalledAppView } from './api/services.js';
import { FileAuditLog } from './audit/index.js';
import { type DemoCredentials, ensureDemoCredentials } from './bootstrap/demo-credentials.js';
import type { EmbeddedStore } from './bootstrap/embedded-store.js';
import { ensurePlatformRoot } from './bootstrap/platform-root.js';
import { type CloseFailure, describeCloseFailures, ShutdownSequence } from './bootstrap/shutdown.js';
import { APP_STATE, ConfigStore } from './config/index.js';
import { ensureOwnDirectory, openDataDirectory } from './datadir/index.js';
import { type DebugHost, DebugService } from './debug/index.js';
import { type DeviceKeyProvider, FileDeviceKeyProvider } from './device/index.js';
import { DataDir } from './durable/index.js';
import { AddressPolicy, CertificateStore, EgressService } from './egress/index.js';
import { originOf } from './integrity/index.js';
import { Launcher } from './launcher/index.js';
import { AppLogs } from './logs/index.js';
import { HttpStoreClient, type InstalledApp, Orchestrator, type QuarantinedApp } from './orchestrator/index.js';
import { Router } from './router/index.js';
import type { AppHost, LogLevelCode } from './sandbox/bridge.js';
import { type AppSandbox, createAppSandbox } from './sandbox/index.js';
import { StorageService } from './storage/index.js';

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
  /** How long an updated app must run before its update is committed (ms; default 5000): a failure within it rolls back. */
  updateWatchMs?: number;
  /** Port of the REST API and web UI (arrive with the admin UI milestone). */
  port?: number;
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
  /**
   * Closes everything, in SHUTDOWN_ORDER, and answers with what failed to close (empty when
   * all closed cleanly). A second call runs nothing again and settles when the first has.
   */
  close(): Promise<CloseFailure[]>;
}

/**
 * The order the gateway closes in. The control socket first, so that no command arrives while
 * the rest goes; the shutdown recorded; the apps stopped while everything they use still
 * works; then the subsystems, users before what they use; the data-directory lock last, for
 * another gateway may take the directory only once this one has let go of everything in it.
 */
const SHUTDOWN_ORDER = [
  'control socket',
  'debug service',
  'audit',
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
  // Checked, locked and migrated before anything in it is read or written (see platform/datadir).
  const opened = await openDataDirectory({ dataDir: options.dataDir, ...(options.storeDataDir ? { storeDir: options.storeDataDir } : {}) });
  const { dataDir } = opened;
  const dir = (name: string): string => path.join(dataDir, name);
  const startedAt = Date.now();
  const shutdown = new ShutdownSequence(SHUTDOWN_ORDER);
  shutdown.set('data directory lock', () => opened.lock.release());

  try {
    const keys = await (options.deviceKeys ?? new FileDeviceKeyProvider(dir('device'))).open();
    const audit = await FileAuditLog.open(dir('audit'));
    shutdown.set('audit', () => audit.record('deviceShutdown'));
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

    const platformTrustRootsPem = [
      options.platformTrustRootFile
        ? await fs.readFile(options.platformTrustRootFile, 'utf8').catch((error: Error) => {
            throw fail('E_OPTION', `The platform root ${options.platformTrustRootFile} cannot be read: ${error.message}`);
          })
        : (await ensurePlatformRoot(dir('platform-ca'))).rootCertPem,
    ];

    const logs = new AppLogs({ root: dir('logs') });
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

    orchestrator = await Orchestrator.open({
      dataDir,
      config,
      audit,
      keys,
      trustRootsPem,
      platformTrustRootsPem,
      store: new HttpStoreClient({ url: storeUrl, maxPackageBytes: MAX_PACKAGE_BYTES }),
      ...(options.updateWatchMs === undefined ? {} : { updateWatchMs: options.updateWatchMs }),
      beforeUninstall: [
        (id) => launcher!.forget(id),
        (id) => egress.closeApp(id),
        (id) => storage.wipe(id),
        (id) => logs.remove(id),
        (id) => certificates.remove(id),
        async (id) => router.appRemoved(id),
      ],
      // An update stops the app and keeps its storage, logs, certificates and routes; storage is
      // closed so that it opens again with the new version's quota.
      updateHooks: {
        hold: async (id) => {
          const wasRunning = await launcher!.hold(id);
          await egress.closeApp(id);
          await storage.close(id);
          return wasRunning;
        },
        run: (id, watchMs) => launcher!.runHeld(id, watchMs),
        halt: (id) => launcher!.haltHeld(id),
        release: (id) => launcher!.release(id),
        replaced: (id) => router.appReplaced(id),
      },
    });
    shutdown.set('orchestrator', () => orchestrator!.close());
    const installed = orchestrator;
    if (options.imageDir) await installImagePackages(installed, options.imageDir);

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
      };
    };

    // Apps the debug service restarted with their inspector on, and the sandboxes it may reach.
    const inspecting = new Set<string>();
    const inspectedSandboxes = new Map<string, AppSandbox>();
    const developerMode = (): boolean => config.read((doc) => doc.MODE_SWITCH.is_developer_mode === true);

    launcher = new Launcher({
      config,
      audit,
      appLog,
      apps: installed,
      platformSdkVersion: SDK_VERSION,
      verifyIntegrity: (app) => installed.verifyIntegrity(app.packageId),
      createSandbox: async (app, files, onFailure) => {
        const record = installed.get(app.packageId)!;
        const origin = originOf(record.record);
        // The inspector only for a pushed app in developer mode, and only when its developer asked for it.
        const inspector = origin === 'debug' && developerMode() && inspecting.has(app.packageId);
        const sandbox = await createAppSandbox({ manifest: record.manifest, files, host: hostFor(record), origin, onFailure, inspector });
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
      }
    });
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

    const services: GatewayServices = {
      orchestrator: installed,
      debug,
      launcher: running,
      router,
      certificates,
      audit,
      config,
      status: () => gatewayStatus(),
      installedApps: () =>
        [...installed.list().map((app) => installedAppView(app, running)), ...installed.quarantined().map((app) => quarantinedAppView(app, config))].sort(
          (a, b) => a.name.localeCompare(b.name),
        ),
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
      const modes = config.read((doc) => doc.MODE_SWITCH);
      return {
        version: PLATFORM_VERSION,
        sdkVersion: SDK_VERSION,
        uptimeSeconds: (Date.now() - startedAt) / 1000,
        dataDir,
        mode: modes.router_mode === false ? 'unidirectional gateway' : 'router',
        developerMode: modes.is_developer_mode === true,
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
      };
    };

    const storeRootCertFile = embedded ? embedded.rootCertFile : path.resolve(options.trustRootFile!);
    const control: ControlServer = await serveControlSocket(path.join(dataDir, 'control.sock'), (op, params, context) =>
      invokeOperation(services, op, params, context),
    );
    shutdown.set('control socket', () => control.close());

    // The debug service comes back with developer mode, where it listened; failing that, the gateway runs without it.
    await debug.resume().catch((error: unknown) => {
      const coded = toIsogateError(error);
      process.stderr.write(`the debug service did not start again: ${coded.code}: ${escapeControls(coded.message)}\n`);
    });
    await running.startAutostartApps();
    return {
      services,
      dataDir,
      controlSocket: control.path,
      storeUrl,
      demo,
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

export interface RunOptions extends GatewayOptions {
  demo?: boolean;
  json?: boolean;
}

/** `isogate start`: runs until SIGINT/SIGTERM, printing where everything is. */
export async function runGateway(options: RunOptions): Promise<void> {
  const gateway = await startGateway(options);
  const say = (text: string): void => {
    if (!options.json) process.stdout.write(`${text}\n`);
  };
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
    status: gateway.services.status(),
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
      `  first login      ${gateway.demo.firstLoginFile}`,
      'Press Ctrl-C to stop.',
    ].join('\n'),
  );
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  say('Stopping...');
  const failures = await gateway.close();
  // The CLI prints it (each part with its code and message) and exits non-zero.
  if (failures.length > 0)
    throw fail('E_SHUTDOWN', `The gateway stopped, but ${failures.length} part(s) did not close cleanly: ${describeCloseFailures(failures)}`, { failures });
}
