/**
 * Emergency support mode (the manual's "Emergency support mode"): entered when the security
 * application (Network Protector) crashes, starts without its traffic filtering rules or stops
 * answering, or when the gateway is started with a reason (the supervisor after a crash loop).
 * Entering it records the manual's events in the system audit log, and in the firewall audit log
 * too when Network Protector is the cause; ends the active sessions (the hooks: proxied
 * connections, debug and web sessions); stops every app; and blocks all transit traffic. The
 * mode is persisted in the data directory, so a restart of the process comes back in it; it is
 * left only by an admin's restart (`isogate restart`, `clear`) or a restore.
 */
import path from 'node:path';
import { fail } from '../../sdk/errors.js';
import type { Audit } from '../audit/index.js';
import { DataDir, eraseFile, readJsonIfExists, writeJsonDurable } from '../durable/index.js';

export const EMERGENCY_FILE = 'emergency.json';

/** `integrity`: the start-up check of the installed apps; `self-test`: a failed self-test (the manual's causes). */
export type EmergencyCause = 'network-protector' | 'supervisor' | 'start' | 'integrity' | 'self-test';

export interface EmergencyState {
  reason: string;
  cause: EmergencyCause;
  /** ISO time it was entered. */
  since: string;
}

export type EmergencyHook = (state: EmergencyState) => void | Promise<void>;

/** What emergency support mode limits, in the manual's event ("Operating system functions (...) are limited"). */
const LIMITED_FUNCTIONS = 'application start, transit traffic through the protected services';

export class EmergencyMode {
  #state: EmergencyState | undefined;
  readonly #hooks: EmergencyHook[] = [];
  readonly #root: DataDir;
  #entering: Promise<void> | undefined;

  private constructor(
    private readonly dataDir: string,
    private readonly audit: Audit,
    state: EmergencyState | undefined,
  ) {
    this.#root = new DataDir(dataDir);
    this.#state = state;
  }

  /** Reads the persisted mode; a file that is not a mode's record is itself a reason to stay in it. */
  static async open(dataDir: string, audit: Audit): Promise<EmergencyMode> {
    let state: EmergencyState | undefined;
    try {
      state = checkedState(await readJsonIfExists<unknown>(path.join(dataDir, EMERGENCY_FILE), new DataDir(dataDir)));
    } catch (error) {
      // Fail safe: a damaged record must not let the gateway out of the mode it recorded.
      state = { reason: `the emergency mode record cannot be read: ${(error as Error).message}`, cause: 'start', since: new Date().toISOString() };
    }
    return new EmergencyMode(dataDir, audit, state);
  }

  get active(): boolean {
    return this.#state !== undefined;
  }

  state(): EmergencyState | undefined {
    return this.#state && { ...this.#state };
  }

  /** Run on entering the mode: web UI and debug sessions end through these. */
  onEmergency(hook: EmergencyHook): void {
    this.#hooks.push(hook);
  }

  /**
   * Enters the mode (once: a second cause while in it changes nothing). The state is set before
   * anything is awaited, so transit is refused from this moment; the record, the events and the
   * hooks follow, each failure of one not holding the others back.
   */
  enter(reason: string, cause: EmergencyCause): Promise<void> {
    if (this.#state) return this.#entering ?? Promise.resolve();
    const state: EmergencyState = { reason: reason.slice(0, 1024), cause, since: new Date().toISOString() };
    this.#state = state;
    this.#entering = this.#announce(state);
    return this.#entering;
  }

  async #announce(state: EmergencyState): Promise<void> {
    const failures: unknown[] = [];
    const attempt = async (step: () => unknown): Promise<void> => {
      try {
        await step();
      } catch (error) {
        failures.push(error);
      }
    };
    await attempt(() => writeJsonDurable(path.join(this.dataDir, EMERGENCY_FILE), state, { mode: 0o600, root: this.#root }));
    if (state.cause === 'network-protector') await attempt(() => this.audit.record('npEmergencyMode', {}, { reason: state.reason }));
    await attempt(() => this.audit.record('emergencyMode', { description: state.reason }, { cause: state.cause }));
    await attempt(() => this.audit.record('emergencyLimits', { description: LIMITED_FUNCTIONS }, { cause: state.cause }));
    for (const hook of this.#hooks) await attempt(() => hook(state));
    if (failures.length > 0) process.stderr.write(`emergency support mode: ${failures.length} step(s) failed: ${failures.map(String).join('; ')}\n`);
  }

  /** Settles when entering the mode has finished (record, events, hooks): a gateway closing waits for it, not writing after close. */
  settled(): Promise<void> {
    return this.#entering ?? Promise.resolve();
  }

  /** An admin's restart leaves the mode; the cause may bring it back (the manual: "it is possible to re-enter"). */
  async clear(): Promise<EmergencyState | undefined> {
    await this.#entering;
    const state = this.#state;
    if (!state) return undefined;
    await eraseFile(path.join(this.dataDir, EMERGENCY_FILE), this.#root);
    this.#state = undefined;
    this.#entering = undefined;
    return state;
  }

  /** Refuses what the mode forbids (an app's start), with the mode's reason. */
  assertNotActive(what: string): void {
    if (this.#state)
      throw fail(
        'E_EMERGENCY',
        `${what}: the gateway is in emergency support mode since ${this.#state.since} (${this.#state.reason}); "isogate restart" leaves it`,
      );
  }
}

function checkedState(value: unknown): EmergencyState | undefined {
  if (value === undefined) return undefined;
  const record = value as Partial<EmergencyState> | null;
  if (
    !record ||
    typeof record.reason !== 'string' ||
    typeof record.since !== 'string' ||
    !['network-protector', 'supervisor', 'start', 'integrity', 'self-test'].includes(String(record.cause))
  ) {
    throw new Error('it is not a record of the mode');
  }
  return { reason: record.reason, cause: record.cause as EmergencyCause, since: record.since };
}
