/** Package verification off the event loop, in a small piscina pool created on first use. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { toIsogateError, type ErrorCode } from '../../sdk/errors.js';
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

export class WorkerPackageVerifier implements PackageVerifier {
  #pool: Piscina | undefined;

  async verify(task: VerifyTask): Promise<VerifiedPackage> {
    // Two threads at most: the machine this runs on has few cores and apps need one.
    this.#pool ??= new Piscina({
      // The worker beside this module, compiled (.js) or run from source (.ts) alike.
      filename: new URL(`./verify-worker${path.extname(fileURLToPath(import.meta.url))}`, import.meta.url).href,
      minThreads: 0,
      maxThreads: 2,
      idleTimeout: 30_000,
    });
    const outcome = (await this.#pool.run(task).catch((error: unknown) => {
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
