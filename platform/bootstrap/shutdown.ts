/**
 * How the gateway closes: its parts in one order, written down once, whatever order they
 * opened in and however far start-up got. Each part registers its closing step by name as it
 * opens; close() runs the registered steps in the declared order, each once, every one even
 * after another failed, and answers with the failures by part. A second close() is the first
 * one: it runs nothing again and settles when the first has finished.
 */
import { type ErrorCode, fail, toIsogateError } from '../../sdk/errors.js';

export interface CloseFailure {
  /** The part whose closing step failed, as the order names it. */
  subsystem: string;
  code: ErrorCode;
  message: string;
}

export class ShutdownSequence<Name extends string> {
  readonly #order: readonly Name[];
  readonly #steps = new Map<Name, () => unknown>();
  #closing: Promise<CloseFailure[]> | undefined;

  constructor(order: readonly Name[]) {
    if (new Set(order).size !== order.length) throw fail('E_OPTION', 'A shutdown order names each part once');
    this.#order = order;
  }

  /** What closes `name`. A part opened after closing began would outlive it: that is a bug, refused. */
  set(name: Name, close: () => unknown): void {
    if (this.#closing) throw fail('E_INTERNAL', `${name} opened while the gateway was closing`);
    if (this.#steps.has(name)) throw fail('E_INTERNAL', `${name} has a closing step already`);
    this.#steps.set(name, close);
  }

  close(): Promise<CloseFailure[]> {
    this.#closing ??= this.#run();
    return this.#closing;
  }

  async #run(): Promise<CloseFailure[]> {
    const failures: CloseFailure[] = [];
    for (const name of this.#order) {
      const step = this.#steps.get(name);
      if (!step) continue;
      try {
        await step();
      } catch (error) {
        const coded = toIsogateError(error);
        failures.push({ subsystem: name, code: coded.code, message: coded.message });
      }
    }
    return failures;
  }
}

/** One sentence for all of them, for the CLI and a log: each part with its code and message. */
export function describeCloseFailures(failures: readonly CloseFailure[]): string {
  return failures.map((failure) => `${failure.subsystem}: ${failure.code}: ${failure.message}`).join('; ');
}
