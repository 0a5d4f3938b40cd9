export type {
  AvailableApp,
  InstalledApp,
  InstallPhase,
  InstallProgress,
  OrchestratorOptions,
  PushResult,
  QuarantinedApp,
  UnfinishedUninstall,
  UninstallStep,
  UpdateHooks,
  UpdateResult,
  UpdateStep,
} from './orchestrator.js';
export { ORCHESTRATOR_DEFAULTS, Orchestrator, UNINSTALL_STEPS_AFTER_HOOKS } from './orchestrator.js';
export type { SignerBinding, SignerIdentity } from './signer-bindings.js';
export { SIGNER_BINDINGS_FILE, SignerBindings } from './signer-bindings.js';
export type { CatalogEntry, DownloadProgress, StoreClient } from './store-client.js';
export { HttpStoreClient } from './store-client.js';
export type { PackageVerifier, VerifyTask } from './verifier.js';
export { WorkerPackageVerifier } from './verifier.js';
