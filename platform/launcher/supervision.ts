/** When a failed app is started again, and when the launcher gives up on it. */
import { fail } from '../../sdk/errors.js';

export interface RestartPolicy {
  initialBackoffMs: number;
  maxBackoffMs: number;
  multiplier: number;
  /** Failures within `windowMs` after which the app stays in Error until started by hand. */
  maxRestarts: number;
  windowMs: number;
}

export const DEFAULT_RESTART_POLICY: Readonly<RestartPolicy> = Object.freeze({
  initialBackoffMs: 1000,
  maxBackoffMs: 30_000,
  multiplier: 2,
  maxRestarts: 5,
  windowMs: 10 * 60_000,
});

export function restartPolicy(overrides: Partial<RestartPolicy> = {}): RestartPolicy {
  const policy = { ...DEFAULT_RESTART_POLICY, ...overrides };
  for (const [name, value] of Object.entries(policy)) {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw fail('E_OPTION', `restart.${name} is a non-negative number`);
  }
  if (policy.multiplier < 1) throw fail('E_OPTION', 'restart.multiplier is at least 1');
  if (policy.maxBackoffMs < policy.initialBackoffMs) throw fail('E_OPTION', 'restart.maxBackoffMs is at least restart.initialBackoffMs');
  return policy;
}

/** Tracks one app's recent failures. */
export class FailureHistory {
  #times: number[] = [];

  constructor(private readonly policy: RestartPolicy) {}

  /** Records a failure; the delay before the next attempt, or undefined to give up. */
  recordFailure(now: number): number | undefined {
    this.#times = [...this.#times.filter((time) => now - time < this.policy.windowMs), now];
    if (this.#times.length > this.policy.maxRestarts) return undefined;
    const delay = this.policy.initialBackoffMs * this.policy.multiplier ** (this.#times.length - 1);
    return Math.min(this.policy.maxBackoffMs, delay);
  }

  get recent(): number {
    return this.#times.length;
  }

  reset(): void {
    this.#times = [];
  }
}
