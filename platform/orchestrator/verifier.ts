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
  /** How long an idle worker stays, unless kept warm; default 30 s. */
  idleTimeoutMs?: number;
}

export class WorkerPackageVerifier implements PackageVerifier {
  #pool: Piscina | undefined;
  /** Pools replaced by a warm one, finishing what they were given. */
  readonly #retiring = new Set<Promise<void>>();
  #warm = false;
  readonly #timeoutMs: number;
  readonly #idleTimeoutMs: number;
  readonly #workerUrl: string;

  constructor(options: WorkerVerifierOptions = {}) {
    this.#timeoutMs = options.timeoutMs ?? VERIFY_LIMITS.timeoutMs;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? 30_000;
    // The worker beside this module, compiled (.js) or run from source (.ts) alike.
    this.#workerUrl = options.workerUrl ?? new URL(`./verify-worker${path.extname(fileURLToPath(import.meta.url))}`, import.meta.url).href;
  }

  /**
   * From now on one worker stays started, its modules loaded, even when idle: for developer mode,
   * where pushes come minutes apart and a worker started for each cost it 285 ms (measured from
   * dist/, against 4 ms for a verification in a started one). Left on until the verifier closes.
   */
  keepWarm(): void {
    if (this.#warm) return;
    this.#warm = true;
    const cold = this.#pool;
    this.#pool = this.#newPool();
    if (cold) {
      const closing = cold.close().catch(() => undefined);
      this.#retiring.add(closing);
      void closing.then(() => this.#retiring.delete(closing));
    }
  }

  /** The ids of the worker threads started now (tests). */
  workerThreadIds(): number[] {
    return (this.#pool?.threads ?? []).map((thread) => thread.threadId);
  }

  #newPool(): Piscina {
    // Two threads at most: the machine this runs on has few cores and apps need one.
    return new Piscina({
      filename: this.#workerUrl,
      minThreads: this.#warm ? 1 : 0,
      maxThreads: 2,
      idleTimeout: this.#idleTimeoutMs,
    });
  }

  async verify(task: VerifyTask): Promise<VerifiedPackage> {
    this.#pool ??= this.#newPool();
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
    await Promise.all(this.#retiring);
  }
}
