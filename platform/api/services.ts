/**
 * What the service layer reaches: the subsystems' doors plus a few views that combine them.
 * platform/main.ts builds the one implementation; tests may build smaller ones.
 */
import type { Readable } from 'node:stream';
import type { Audit } from '../audit/index.js';
import type { BackupService } from '../backup/index.js';
import type { ConfigStore } from '../config/index.js';
import type { DebugService } from '../debug/index.js';
import type { CertificateStore } from '../egress/index.js';
import type { AppOrigin } from '../integrity/index.js';
import type { SelfTestReport } from '../integrity/self-test.js';
import type { IntegrityService } from '../integrity/service.js';
import type { Launcher } from '../launcher/index.js';
import type { FollowOptions, LogFollower } from '../logs/index.js';
import type { EmergencyMode, EmergencyState } from '../modes/index.js';
import type { Orchestrator } from '../orchestrator/index.js';
import type { Router } from '../router/index.js';
import type { GateStatus, TrafficGate } from '../traffic/gate.js';
import type { IpLists } from '../traffic/gate-lists.js';

export interface GatewayStatus {
  version: string;
  sdkVersion: string;
  uptimeSeconds: number;
  dataDir: string;
  /** The manual's network device types. */
  mode: 'router' | 'unidirectional gateway';
  developerMode: boolean;
  /** The debug service's URL while it listens (developer mode). */
  debugService: string | null;
  store: string;
  /** `unsigned`: installed apps without a verified signer (pushed through the debug service). */
  apps: { installed: number; limit: number; byStatus: Record<string, number>; unsigned: number };
  routes: { active: number; inactive: number; error: number };
  /** Emergency support mode, while the gateway is in it. */
  emergency: EmergencyState | null;
  /** The traffic gate: its inspector, protected services and their counters. */
  traffic: GateStatus;
}

/** One row of the Installed apps table (the manual's columns) with the machine fields. */
export interface InstalledAppView {
  package_id: string;
  name: string;
  /** The verified signer's subject ('unsigned' without one): what ISSUER shows. Never the manifest's text. */
  publisher: string;
  /** The manifest's free-text publisher: a claim nobody checked. */
  publisher_claim: string;
  origin: AppOrigin;
  /** The developer who pushed it through the debug service (origin `debug` only). */
  owner?: string;
  version: string;
  type: string;
  status: string;
  state: number;
  launch_rule: 'auto' | 'manual' | 'blocked';
  log_level: number;
  configured: boolean;
  restarts: number;
  last_error?: { code: string; message: string; at: string };
  /** Why a `quarantined` app is: its integrity check at start failed (never started, files kept). */
  reason?: string;
  /** `untrusted` for a quarantined app: nothing of it is vouched for any more. */
  signature: 'verified' | 'unsigned' | 'untrusted';
  signer: { subject: string; issuer: string; fingerprint256: string; spkiSha256: string | null; validTo: string } | null;
  installed_at: string;
  manifest: unknown;
}

export interface LogArchiveInfo {
  fileName: string;
  files: number;
  uncompressedBytes: number;
  estimatedBytes: number;
}

export interface GatewayServices {
  orchestrator: Orchestrator;
  debug: DebugService;
  launcher: Launcher;
  router: Router;
  gate: TrafficGate;
  lists: IpLists;
  modes: EmergencyMode;
  /** An admin's restart: leaves emergency support mode and starts the Autostart apps again. */
  restart(): Promise<{ left: EmergencyState | null; status: GatewayStatus }>;
  certificates: CertificateStore;
  /** Integrity control: the manual check and its reports. */
  integrity: IntegrityService;
  /** Self-testing of the audit, authentication, traffic blocking and Network Protector; an error enters emergency support mode. */
  selfTest(): Promise<SelfTestReport>;
  backup: BackupService;
  audit: Audit;
  config: ConfigStore;
  status(): GatewayStatus;
  installedApps(): InstalledAppView[];
  logArchiveInfo(packageId: string): Promise<LogArchiveInfo>;
  logArchive(packageId: string): Promise<Readable>;
  /** A reader of the app's log lines (E_NOT_INSTALLED unless installed); the caller closes it. */
  followLog(packageId: string, options: FollowOptions): Promise<LogFollower>;
  /** E_NOT_INSTALLED unless the app is installed. */
  requireInstalled(packageId: string): void;
}
