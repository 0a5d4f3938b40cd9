/**
 * The IntegrityService of the manual's audit table: the start-up check of the installed apps
 * and the administrator's manual check with its report. The last reports are kept in memory
 * for download, the last one also on disk (`DATA/integrity-last.json`), so that the page shows
 * the last manual check's status, time and report after a restart too (the manual).
 */
import { randomBytes } from 'node:crypto';
import { fail } from '../../sdk/errors.js';
import type { Audit } from '../audit/index.js';
import type { DeviceKeys } from '../device/index.js';
import { type DataDir, readJsonIfExists, writeJsonDurable } from '../durable/index.js';
import { checkInstalledApps, formatReport, hostIdOf, type IntegrityCheck } from './check.js';

/** Reports kept for download: the page offers the last one; a few more survive a second click. */
const KEPT_REPORTS = 8;

export interface IntegrityRun extends IntegrityCheck {
  id: string;
}

export interface IntegrityServiceOptions {
  /** DATA/apps. */
  apps: DataDir;
  keys: DeviceKeys;
  audit: Audit;
  clock?: () => Date;
  /** Where the last manual check is kept across restarts; in memory only without. */
  lastFile?: { root: DataDir; path: string };
}

export class IntegrityService {
  readonly #options: IntegrityServiceOptions;
  readonly #clock: () => Date;
  readonly #runs: { run: IntegrityRun; report: string }[] = [];
  #running: Promise<IntegrityRun> | undefined;
  readonly hostId: string;

  constructor(options: IntegrityServiceOptions) {
    this.#options = options;
    this.#clock = options.clock ?? (() => new Date());
    this.hostId = hostIdOf(options.keys);
  }

  /** Reads the last manual check kept on disk; one that is not a check's record is ignored (the next check replaces it). */
  async load(): Promise<void> {
    const kept = this.#options.lastFile;
    if (!kept) return;
    const value = await readJsonIfExists<{ run?: IntegrityRun; report?: unknown }>(kept.path, kept.root).catch(() => undefined);
    const run = value?.run;
    if (run && typeof run.id === 'string' && /^[0-9a-f]{16}$/.test(run.id) && Array.isArray(run.files) && typeof value.report === 'string') {
      this.#runs.splice(0, this.#runs.length, { run, report: value.report });
    }
  }

  /**
   * The automatic check at start: each app with a file not verified is the manual's Critical
   * "Object integrity violation" (except those in `audited`, which the orchestrator recorded
   * already when it quarantined them). The caller enters emergency support mode on a violation.
   */
  async startupCheck(audited: ReadonlySet<string> = new Set()): Promise<IntegrityCheck> {
    const check = await checkInstalledApps(this.#options.apps, this.#options.keys, this.#clock);
    for (const violation of check.violations) {
      if (audited.has(violation.app)) continue;
      await this.#options.audit.record(
        'integrityViolation',
        { object: `The app ${violation.app}`, description: violation.description },
        { packageId: violation.app },
      );
    }
    await this.#options.audit.record('integrityStatus', { status: describe(check) }, { kind: 'start-up', ...check.summary });
    return check;
  }

  /** The administrator's check: never a cause of emergency support mode (the manual: the administrator reads the report and decides). One at a time. */
  manualCheck(): Promise<IntegrityRun> {
    this.#running ??= this.#manualCheck().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #manualCheck(): Promise<IntegrityRun> {
    await this.#options.audit.record('integrityReport', { description: 'the installed apps are checked against their install records' });
    const check = await checkInstalledApps(this.#options.apps, this.#options.keys, this.#clock);
    const run: IntegrityRun = { id: randomBytes(8).toString('hex'), ...check };
    const report = formatReport(check, this.hostId, this.#clock().toISOString());
    this.#runs.push({ run, report });
    if (this.#runs.length > KEPT_REPORTS) this.#runs.shift();
    const kept = this.#options.lastFile;
    if (kept) await writeJsonDurable(kept.path, { run, report }, { mode: 0o600, root: kept.root });
    await this.#options.audit.record('integrityStatus', { status: describe(check) }, { kind: 'manual', id: run.id, ...check.summary });
    return run;
  }

  last(): IntegrityRun {
    const last = this.#runs.at(-1);
    if (!last)
      throw fail('E_NOT_FOUND', 'No integrity check has been run since the gateway started: run one (POST /integrity/check, "isogate integrity check")');
    return last.run;
  }

  report(id: string): { fileName: string; text: string } {
    const found = this.#runs.find((entry) => entry.run.id === id);
    if (!found) throw fail('E_NOT_FOUND', `No integrity report ${id}: only the last ${KEPT_REPORTS} since the gateway started are kept`, { id });
    return { fileName: `integrity_report_${this.hostId}_${found.run.startedAt.replace(/[:.]/g, '-')}.txt`, text: found.report };
  }
}

function describe(check: IntegrityCheck): string {
  if (check.ok) return `completed, ${check.summary.files} file(s) verified successfully`;
  return `completed, integrity violations found in ${check.violations.length} app(s): ${check.violations.map((v) => v.app).join(', ')}`;
}
