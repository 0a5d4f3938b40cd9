/**
 * Audit events, word for word from the manual's "Operating system audit events" and
 * "Firewall audit events" tables. `<...>` in a text is a placeholder filled when the event is
 * recorded. Events are referred to by key so a typo is a compile error, not a silent new event.
 */
import { escapeControls } from '../../sdk/text.js';

export type Severity = 'Informational' | 'Warning' | 'Critical';
export type AuditLogName = 'system' | 'firewall';

export interface AuditEventSpec {
  readonly name: string;
  readonly text: string;
  readonly severity: Severity;
  readonly subject: string;
  readonly log: AuditLogName;
}

const system = (name: string, text: string, severity: Severity, subject: string): AuditEventSpec => ({ name, text, severity, subject, log: 'system' });
const firewall = (name: string, text: string, severity: Severity, subject: string): AuditEventSpec => ({ name, text, severity, subject, log: 'firewall' });

export const AUDIT_EVENTS = {
  auditStart: system('Audit: Audit subsystem start', 'Audit subsystem is running', 'Informational', 'System: Audit'),
  auditOverwrite: system('Audit: Audit log overwrite', 'Audit log is overwritten due to full storage', 'Informational', 'System: Audit'),
  auditRunningOut: system(
    'Audit: Audit log is running out of space',
    'The audit log will be overwritten after <number or entries>',
    'Warning',
    'System: Audit',
  ),
  logExport: system('admin: Log export', 'The log is exported', 'Informational', 'Administrator'),
  logExportError: system('admin: Log export error', 'Failed to export the log', 'Warning', 'Administrator'),
  userLogExport: system('user: Log export', 'The log is exported', 'Informational', 'User'),
  // Not in the manual (it has no publisher bindings); worded after its admin events.
  signerForgotten: system(
    'admin: Forgetting the application publisher',
    'The publisher bound to the application <application name> is forgotten; the next installation binds a new publisher',
    'Warning',
    'Administrator',
  ),

  // Not in the manual's tables, which record a reboot and a change of routes but neither a
  // shutdown nor a change of an app's configuration; worded after "KscController: Rebooting
  // the device" and "KscController: Changing the application routes".
  // The manual's event for a restart, recorded by the gateway the supervisor restarted after a
  // crash (the one that crashed could not), with the supervisor's account of it in its details.
  deviceReboot: system('KscController: Rebooting the device', 'The device is being rebooted', 'Informational', 'System: KscController'),
  deviceShutdown: system('KscController: Shutting down the device', 'The device is being shut down', 'Informational', 'System: KscController'),
  appConfigChanged: system(
    'KscController: Changing the application configuration',
    'The configuration of the application <application name> is changed',
    'Informational',
    'System: KscController',
  ),
  appConfigChangeError: system(
    'KscController: Error changing the application configuration',
    'Failed to change the configuration of the application <application name>',
    'Warning',
    'System: KscController',
  ),
  uploadAppCertificate: system(
    'KscController: Uploading the application certificate',
    'Application certificate is uploaded to the certificate storage',
    'Informational',
    'System: KscController',
  ),
  // Not in the manual's table, which records an upload but no deletion; worded after the upload.
  deleteAppCertificate: system(
    'KscController: Deleting the application certificate',
    'Application certificate is deleted from the certificate storage',
    'Informational',
    'System: KscController',
  ),

  launchIncompatible: system(
    'Launcher: Attempting to launch an incompatible version of the application',
    'An attempt to launch the application version incompatible with the system was detected',
    'Warning',
    'System: Launcher',
  ),
  launchBlocked: system(
    'Launcher: Attempting to launch a blocked application',
    'An attempt to run a blocked application is detected',
    'Warning',
    'System: Launcher',
  ),
  launchStarted: system('Launcher: Launching an application', 'The application <application name> was started', 'Informational', 'System: Launcher'),
  launchError: system('Launcher: Error launching an application', 'Failed to start the application <application name>', 'Warning', 'System: Launcher'),
  launchUntrusted: system(
    'Launcher: Untrusted application',
    'Failed to verify the integrity of the application <application name>',
    'Critical',
    'System: Launcher',
  ),
  appStopped: system('Launcher: Stopping an application', 'The application <application name> was stopped', 'Informational', 'System: Launcher'),
  appFailed: system('Launcher: Application has failed', 'The application <application name> failed with an error', 'Warning', 'System: Launcher'),
  autorunChanged: system('Launcher: Changing application autorun', 'The list of applications for autorun is changed', 'Informational', 'System: Launcher'),
  autorunChangeError: system(
    'Launcher: Error changing application autorun',
    'Failed to change the list of applications for autorun',
    'Warning',
    'System: Launcher',
  ),
  nonImmuneMode: system(
    'Launcher: Enabling the non-immune mode',
    'The device is running in non-immune mode; immunity is not guaranteed',
    'Warning',
    'System: Launcher',
  ),
  developerMode: system('Launcher: Enabling the developer mode', 'The device is running in developer mode', 'Warning', 'System: Launcher'),
  // Not in the manual, which names the debug service (KDS) but lists no events of its own;
  // worded after its Launcher events, Warning like the mode they belong to.
  debugTokenIssued: system('KDS: Issuing a developer token', 'A debug service token is issued to the developer <developer>', 'Warning', 'System: KDS'),
  debugTokenRevoked: system('KDS: Revoking a developer token', 'The debug service token of the developer <developer> is revoked', 'Warning', 'System: KDS'),
  debugRefused: system('KDS: Refusing a request', 'The debug service refused <request>: <code>', 'Warning', 'System: KDS'),
  inspectorAttached: system('KDS: Attaching a debugger', 'A debugger is attached to the application <application name>', 'Warning', 'System: KDS'),
  newVersionAttempt: system(
    'Launcher: Attempting to download a new version of the application',
    'An attempt to download a new version of an installed application is detected.',
    'Critical',
    'System: Launcher',
  ),

  downloadStarted: system(
    'Orchestrator: Downloading the application',
    'Download of the application <application name> was started',
    'Informational',
    'System: Orchestrator',
  ),
  downloadSucceeded: system(
    'Orchestrator: Successful application download',
    'The application <application name> was successfully downloaded to device',
    'Informational',
    'System: Orchestrator',
  ),
  installSucceeded: system(
    'Orchestrator: Successful application installation',
    'The application <application name> was successfully installed',
    'Informational',
    'System: Orchestrator',
  ),
  uninstallStarted: system(
    'Orchestrator: Uninstalling the application',
    'Uninstallation of the application <application name> was started',
    'Informational',
    'System: Orchestrator',
  ),
  uninstallSucceeded: system(
    'Orchestrator: Successful application uninstallation',
    '<application name> was successfully uninstalled',
    'Informational',
    'System: Orchestrator',
  ),
  downloadError: system('Orchestrator: Application download error', 'Failed to download the application <application name>', 'Warning', 'System: Orchestrator'),
  signatureError: system(
    'Orchestrator: Application signature verification error',
    'Failed to verify authenticity of the <application name> application signature',
    'Critical',
    'System: Orchestrator',
  ),
  installError: system(
    'Orchestrator: Application installation error',
    'Failed to install the application <application name>',
    'Warning',
    'System: Orchestrator',
  ),
  installLimitError: system(
    'Orchestrator: Application installation error',
    'Failed to install the application <application name>. You have reached the limit on the number of applications that can be installed on the device.',
    'Warning',
    'System: Orchestrator',
  ),
  uninstallError: system(
    'Orchestrator: Application uninstallation error',
    'Failed to uninstall the application <application name>',
    'Warning',
    'System: Orchestrator',
  ),
  // In-place updates of an app are not in the manual (it uninstalls first); worded after its Updater events.
  updateStarted: system(
    'Updater: Application update',
    'Update of the application <application name> from version <installed version> to version <new version> is started',
    'Informational',
    'System: Updater',
  ),
  updateSucceeded: system(
    'Updater: Application update successful',
    'The application <application name> was successfully updated to version <new version>',
    'Informational',
    'System: Updater',
  ),
  updateError: system(
    'Updater: Application update error',
    'Failed to update the application <application name>: <description>. Version <installed version> is unchanged',
    'Warning',
    'System: Updater',
  ),
  updateRolledBack: system(
    'Updater: Application update rolled back',
    'Error <description> occurred during the update of the application <application name>; version <installed version> is restored',
    'Critical',
    'System: Updater',
  ),

  emergencyMode: system(
    'EmergencyManager: Enabling the Emergency support mode',
    'A critical operating system error is detected. Emergency support mode is enabled: <description>',
    'Critical',
    'System: EmergencyManager',
  ),
  emergencyLimits: system(
    'EmergencyManager: Limiting the operating system functions',
    'Operating system functions (<description>) are limited as emergency support mode is active',
    'Critical',
    'System: EmergencyManager',
  ),
  integrityReport: system(
    'admin: Generation of the integrity check report',
    'Generation of the integrity check report started: <description>',
    'Informational',
    'Administrator',
  ),
  integrityStatus: system('IntegrityService: Integrity check status', 'Integrity check status: <status>', 'Informational', 'System: IntegrityService'),
  integrityViolation: system(
    'IntegrityService: Object integrity violation',
    '<object> integrity violated: <description>',
    'Critical',
    'System: IntegrityService',
  ),

  selfTestStart: system('admin: Operating system self-testing start', 'Operating system self-testing started', 'Informational', 'Administrator'),
  selfTestError: system(
    'SelfTestManager: Operating system error during self-testing',
    'Operating system error during self-testing detected: <description>',
    'Critical',
    'System: SelfTestManager',
  ),
  selfTestPassed: system(
    'SelfTestManager: Operating system self-testing result',
    'Operating system self-testing result: completed successfully',
    'Informational',
    'System: SelfTestManager',
  ),
  selfTestFailed: system(
    'SelfTestManager: Operating system self-testing result',
    'Operating system self-testing result: errors detected',
    'Informational',
    'System: SelfTestManager',
  ),
  backupCreated: system(
    'admin: Backing up the system configuration',
    'Status of the backup creation from the operating system configuration: <status>',
    'Informational',
    'Administrator',
  ),
  configRestored: system(
    'admin: Restoring the system configuration',
    'Status of the operating system configuration restoring from the backup: <status>',
    'Informational',
    'Administrator',
  ),

  // Accounts and the web interface. The manual names an account's own events "admin: ..." or
  // "user: ..." by the role that acted, with subject Administrator or User: one key per role.
  adminAuthenticated: system('admin: User authentication', '<user name> logged in', 'Informational', 'Administrator'),
  userAuthenticated: system('user: User authentication', '<user name> logged in', 'Informational', 'User'),
  authWrongPassword: system(
    'Authenticator: User authentication error',
    'User <user name> authentication error: incorrect password',
    'Warning',
    'System: Authenticator',
  ),
  authInvalidCertificate: system(
    'Authenticator: User authentication error',
    'User <user name> authentication error: invalid certificate',
    'Warning',
    'System: Authenticator',
  ),
  authUnknownUser: system(
    'Authenticator: User authentication error',
    'User <user name> authentication error: no user found with specified name',
    'Warning',
    'System: Authenticator',
  ),
  userBlocked: system('Authenticator: User blocked', 'User blocked due to exceeding the number of failed login attempts', 'Critical', 'System: Authenticator'),
  sessionIdleLock: system('WebServer: Connection session lock', 'Connection session blocked due to inactivity', 'Informational', 'System: WebServer'),
  adminInitialPasswordChanged: system('admin: Change credentials', 'The administrator password for initial login is changed', 'Informational', 'Administrator'),
  adminPasswordChanged: system('admin: Change credentials', 'Password for user <user name> changed', 'Informational', 'Administrator'),
  userPasswordChanged: system('user: Change credentials', 'Password for user <user name> changed', 'Informational', 'User'),
  adminCertificateChanged: system('admin: Change credentials', 'Certificate for user <user name> changed', 'Informational', 'Administrator'),
  adminNameChanged: system('admin: Change credentials', '<user name> user name changed', 'Informational', 'Administrator'),
  userNameChanged: system('user: Change credentials', '<user name> user name changed', 'Informational', 'User'),
  adminCredentialsExpiry: system(
    'admin: Account credentials expiry',
    'User name and password expire in <number of days> days',
    'Informational',
    'Administrator',
  ),
  userCredentialsExpiry: system('user: Account credentials expiry', 'User name and password expire in <number of days> days', 'Informational', 'User'),
  adminCertificateExpiry: system('admin: Certificate expiry', 'User certificate expires in <number of days> days', 'Informational', 'Administrator'),
  userCertificateExpiry: system('user: Certificate expiry', 'User certificate expires in <number of days> days', 'Informational', 'User'),
  adminCredentialsExpired: system(
    'admin: User account credentials expired',
    'User name and password expired, refresh the account credentials',
    'Warning',
    'Administrator',
  ),
  userCredentialsExpired: system(
    'user: User account credentials expired',
    'User name and password expired, refresh the account credentials',
    'Warning',
    'User',
  ),
  lockoutMinutesChanged: system(
    'admin: Modified lockout duration after failed password entry attempts',
    'Lockout duration after failed password attempts changed. New value: <new value> minutes',
    'Informational',
    'Administrator',
  ),
  idleMinutesChanged: system(
    'admin: Modified user idle time before locking',
    'User idle time before locking changed, new value: <new value> min',
    'Informational',
    'Administrator',
  ),
  failedAttemptsChanged: system(
    'admin: Modified maximum number of failed login attempts',
    'Maximum number of failed login attempts changed. New value: <new value>',
    'Informational',
    'Administrator',
  ),
  // Not in the manual, which records a login but neither a logout nor a refused request;
  // worded after its WebServer event.
  sessionEnded: system('WebServer: Connection session end', 'Connection session of <user name> ended: <description>', 'Informational', 'System: WebServer'),
  requestRefused: system('WebServer: Request refused', 'A request to the web interface was refused: <description>', 'Warning', 'System: WebServer'),

  routesChanged: firewall('KscController: Changing the application routes', 'Application routes are changed', 'Informational', 'System: KscController'),
  trafficBlocked: firewall(
    'TrafficController: Traffic blocking',
    'The traffic from the device <IP address> is blocked',
    'Warning',
    'System: TrafficController',
  ),
  blockRuleLimit: firewall(
    'TrafficController: Rule creation limit for IDSPProxy',
    'Failed to block device <IP address>: maximum limit on blocking rules reached(<maximum number of rules>)',
    'Critical',
    'System: TrafficController',
  ),
  firewallRulesChanged: firewall(
    'TrafficController: Changing the configuration of firewall rules',
    'Configuration of the firewall rules is changed',
    'Informational',
    'System: TrafficController',
  ),
  npEmergencyMode: firewall(
    'Launcher: Switching Kaspersky IoT Secure Gateway Network Protector to emergency mode',
    'Emergency mode activated for Kaspersky IoT Secure Gateway Network Protector application',
    'Critical',
    'System: Launcher',
  ),
  /**
   * Not in the manual's table: what an `alert` rule records ("alert rules only record"), and the
   * signature of every drop, the manual's Suricata-style rule matches.
   */
  trafficAlert: firewall(
    'NetworkProtector: Rule triggered',
    'Rule <sid> "<signature>" triggered on traffic from the device <IP address>',
    'Warning',
    'System: NetworkProtector',
  ),
  routeError: firewall('TrafficController: Error creating route', 'User-defined route not applied: <description>', 'Warning', 'System: TrafficController'),
} as const satisfies Record<string, AuditEventSpec>;

export type AuditEventKey = keyof typeof AUDIT_EVENTS;

/**
 * Fills `<placeholder>`s; a placeholder without a value stays visible rather than vanishing.
 * Values come from outside (an app's name is what a store or a publisher called it), so their
 * control characters are stored escaped: the event text reads the same wherever it is shown.
 */
export function renderText(template: string, values: Readonly<Record<string, string | number>>): string {
  return template.replace(/<([^<>]+)>/g, (whole, key: string) => (Object.hasOwn(values, key) ? escapeControls(String(values[key])) : whole));
}
