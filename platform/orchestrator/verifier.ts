/** Package verification off the event loop, in a small piscina pool created on first use. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { type ErrorCode, fail, toIsogateError } from '../../sdk/errors.js';
import { VERIFY_LIMITS } from '../../sdk/limits.js';
import type { VerifiedPackage } from '../../sdk/package/index.js';

export interface VerifyTask {
  file: string;
  extractTo: string;
  trustRootsPem: string[];
  allowUnsigned: boolean;
  /** Epoch ms: certificate validity is judged at this instant. */
  now: number;
}

export type VerifyOutcome =
  | { ok: true; verified: VerifiedPackage }
  | { ok: false; error: { code: ErrorCode; message: string; details: Readonly<Record<string, unknown>> } };

export interface PackageVerifier {
  verify(task: VerifyTask): Promise<VerifiedPackage>;
  close(): Promise<void>;
}

export interface WorkerVerifierOptions {
  /** Default VERIFY_LIMITS.timeoutMs. */
  timeoutMs?: number;
  /** The worker module; tests put a stuck one in its place. */
  workerUrl?: string;
}

export class WorkerPackageVerifier implements PackageVerifier {
  #pool: Piscina | undefined;
  readonly #timeoutMs: number;
  readonly #workerUrl: string;

  constructor(options: WorkerVerifierOptions = {}) {
    this.#timeoutMs = options.timeoutMs ?? VERIFY_LIMITS.timeoutMs;
    // The worker beside this module, compiled (.js) or run from source (.ts) alike.
    this.#workerUrl = options.workerUrl ?? new URL(`./verify-worker${path.extname(fileURLToPath(import.meta.url))}`, import.meta.url).href;
  }

  async verify(task: VerifyTask): Promise<VerifiedPackage> {
    // Two threads at most: the machine this runs on has few cores and apps need one.
    this.#pool ??= new Piscina({
      filename: this.#workerUrl,
      minThreads: 0,
      maxThreads: 2,
      idleTimeout: 30_000,
    });
    // On abort piscina ends the worker running the task (or drops it from the queue) and starts
    // a fresh one when needed: a stuck verification cannot hold a thread for later installs.
    const signal = AbortSignal.timeout(this.#timeoutMs);
    const outcome = (await this.#pool.run(task, { signal }).catch((error: unknown) => {
      if (signal.aborted) {
        throw fail(
          'E_VERIFY_TIMEOUT',
          `Verifying the package took longer than ${this.#timeoutMs / 1000} s and was stopped; the package was not installed. Try again; if it fails again, report the package to its publisher`,
        );
      }
      throw toIsogateError(error);
    })) as VerifyOutcome;
    if (!outcome.ok) throw toIsogateError(outcome.error);
    return outcome.verified;
  }

  async close(): Promise<void> {
    await this.#pool?.destroy();
    this.#pool = undefined;
  }
}
