/**
 * The supervisor `isogate start` runs the gateway under, for machines without systemd (with
 * systemd, the unit in packaging/ is the supervisor and the gateway runs with --no-supervisor).
 *
 * - A crash (the gateway ends by a signal or a non-zero exit after it was once ready) is
 *   followed by a restart after a backoff that doubles with each crash in the window, capped.
 *   The restarted gateway is told why in ISOGATE_RESTART_REASON and audits it: the one that
 *   crashed could not.
 * - `crashLimit` crashes within `crashWindowMs` start it with ISOGATE_EMERGENCY_REASON set, which
 *   enters emergency support mode (persisted by the gateway, so these restarts do not clear it).
 * - The gateway is the supervisor's child with an IPC channel: if the supervisor dies, the
 *   channel closes and the gateway stops in order, instead of living on, orphaned, holding the
 *   data directory's lock.
 * - A gateway that never became ready (a bad option, a data directory it refuses) is not
 *   restarted: that would fail the same way; its exit code is the supervisor's.
 * - SIGTERM/SIGINT go to the gateway, and the supervisor exits with its exit code.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { fail } from '../../sdk/errors.js';
import { gatewayEnv } from '../bootstrap/gateway-env.js';

export interface SupervisorOptions {
  /** The gateway's command line: the executable and its arguments. */
  command: string;
  args: readonly string[];
  env?: NodeJS.ProcessEnv;
  /** Crashes within `crashWindowMs` that make the next start an emergency one (default 5). */
  crashLimit?: number;
  /** The window crashes are counted in (ms; default 10 minutes). */
  crashWindowMs?: number;
  /** The wait before the first restart, doubled for each further crash in the window (ms; default 1000). */
  backoffMs?: number;
  /** The longest wait before a restart (ms; default 30000). */
  maxBackoffMs?: number;
  /** Where the supervisor says what it does (stderr by default). */
  log?: (line: string) => void;
}

export const SUPERVISOR_DEFAULTS = { crashLimit: 5, crashWindowMs: 600_000, backoffMs: 1000, maxBackoffMs: 30_000 } as const;

export interface CrashReport {
  /** How the gateway ended: "exit code 1" or "signal SIGKILL". */
  how: string;
  /** Crashes within the window, this one included. */
  crashesInWindow: number;
  /** The wait before the restart (ms). */
  delayMs: number;
  /** Set when this crash makes the next start an emergency one. */
  emergencyReason?: string;
}

export interface SupervisorEvents {
  spawned: [ChildProcess];
  ready: [ChildProcess];
  crashed: [CrashReport];
}

function checkInteger(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max)
    throw fail('E_OPTION', `supervisor option ${name} must be an integer from ${min} to ${max}, got ${String(value)}`);
  return value;
}

export class Supervisor extends EventEmitter<SupervisorEvents> {
  readonly #options: Required<Omit<SupervisorOptions, 'env'>> & { env: NodeJS.ProcessEnv };
  #child: ChildProcess | undefined;
  #timer: NodeJS.Timeout | undefined;
  #everReady = false;
  #stopping = false;
  #crashes: number[] = [];
  #restarts = 0;
  #restartReason: string | undefined;
  #emergencyReason: string | undefined;
  #finish!: (code: number) => void;

  constructor(options: SupervisorOptions) {
    super();
    const merged = { ...SUPERVISOR_DEFAULTS, log: (line: string) => process.stderr.write(`isogate supervisor: ${line}\n`), env: process.env, ...options };
    if (typeof merged.command !== 'string' || merged.command === '') throw fail('E_OPTION', 'supervisor option command must name the gateway executable');
    checkInteger('crashLimit', merged.crashLimit, 1, 1000);
    checkInteger('crashWindowMs', merged.crashWindowMs, 1000, 7 * 24 * 3600 * 1000);
    checkInteger('backoffMs', merged.backoffMs, 0, 600_000);
    checkInteger('maxBackoffMs', merged.maxBackoffMs, merged.backoffMs, 3_600_000);
    this.#options = merged;
  }

  /** The running gateway, if one runs. */
  get child(): ChildProcess | undefined {
    return this.#child;
  }

  /** Runs the gateway until it stops for good; settles with the exit code the supervisor should end with. */
  run(): Promise<number> {
    const done = new Promise<number>((resolve) => {
      this.#finish = resolve;
    });
    this.#start();
    return done;
  }

  /** Passes the signal to the gateway and ends once it has stopped (at once if it is waiting for a restart). */
  stop(signal: NodeJS.Signals = 'SIGTERM'): void {
    this.#stopping = true;
    clearTimeout(this.#timer);
    if (this.#child && this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill(signal);
    else this.#finish(0);
  }

  #start(): void {
    if (this.#stopping) return;
    // The gateway's allocator settings (gateway-env.ts) take effect only from its start.
    const env: NodeJS.ProcessEnv = gatewayEnv({ ...this.#options.env, ISOGATE_SUPERVISED: '1' });
    delete env.ISOGATE_RESTART_REASON;
    delete env.ISOGATE_EMERGENCY_REASON;
    if (this.#restartReason) env.ISOGATE_RESTART_REASON = this.#restartReason;
    if (this.#emergencyReason) env.ISOGATE_EMERGENCY_REASON = this.#emergencyReason;
    const child = spawn(this.#options.command, [...this.#options.args], { stdio: ['inherit', 'inherit', 'inherit', 'ipc'], env });
    this.#child = child;
    child.on('message', (message: unknown) => {
      if (message && typeof message === 'object' && (message as { type?: unknown }).type === 'ready') {
        this.#everReady = true;
        this.emit('ready', child);
      }
    });
    child.on('error', (error) => this.#options.log(`the gateway could not be started: ${error.message}`));
    child.on('exit', (code, signal) => this.#exited(code, signal));
    this.emit('spawned', child);
  }

  #exited(code: number | null, signal: NodeJS.Signals | null): void {
    this.#child = undefined;
    if (this.#stopping) {
      this.#finish(code ?? 1);
      return;
    }
    if (code === 0) {
      this.#options.log('the gateway stopped');
      this.#finish(0);
      return;
    }
    const how = signal ? `signal ${signal}` : `exit code ${code}`;
    if (!this.#everReady) {
      this.#options.log(`the gateway ended before it was ready (${how}); not restarting it`);
      this.#finish(code ?? 1);
      return;
    }
    const now = Date.now();
    this.#crashes = [...this.#crashes.filter((at) => now - at < this.#options.crashWindowMs), now];
    this.#restarts += 1;
    const crashesInWindow = this.#crashes.length;
    const delayMs = Math.min(this.#options.maxBackoffMs, this.#options.backoffMs * 2 ** (crashesInWindow - 1));
    const windowSeconds = Math.round(this.#options.crashWindowMs / 1000);
    this.#restartReason = `the gateway ended unexpectedly (${how}); restart ${this.#restarts} by the supervisor, ${crashesInWindow} crash(es) within ${windowSeconds} s`;
    let emergencyReason: string | undefined;
    if (crashesInWindow >= this.#options.crashLimit && !this.#emergencyReason) {
      emergencyReason = `the gateway crashed ${crashesInWindow} times within ${windowSeconds} s (the last: ${how})`;
      this.#emergencyReason = emergencyReason;
    }
    this.#options.log(`${this.#restartReason}; restarting in ${delayMs} ms${emergencyReason ? ` in emergency support mode: ${emergencyReason}` : ''}`);
    this.emit('crashed', { how, crashesInWindow, delayMs, ...(emergencyReason ? { emergencyReason } : {}) });
    this.#timer = setTimeout(() => this.#start(), delayMs);
  }
}
