/**
 * Keeps this thread's event loop polling, instead of sleeping in the kernel, for a moment after
 * work was handed to another thread whose reply is expected soon. Waking a sleeping thread costs
 * tens of microseconds on a virtual machine (an inter-processor interrupt through the hypervisor),
 * and an app answering a platform call pays it on every round trip; a loop that is still polling
 * sees the reply at once. The same trade as a mutex that spins before it parks: a hold is short
 * and bounded, and a loop kept hot still runs every other callback in its turn.
 */
export class HotLoop {
  readonly #holds = new Map<object, { deadline: number; onExpired: (() => void) | undefined }>();
  #polling = false;

  /** Keeps the loop polling for `ms`, or until `release(key)`; `onExpired` runs if the time ran out. */
  hold(key: object, ms: number, onExpired?: () => void): void {
    this.#holds.set(key, { deadline: performance.now() + ms, onExpired });
    if (this.#polling) return;
    this.#polling = true;
    // An immediate keeps libuv's poll from blocking; an unref'd one would not, so the hold keeps
    // the process alive for at most its few hundred microseconds.
    setImmediate(this.#poll);
  }

  release(key: object): void {
    this.#holds.delete(key);
  }

  get holding(): number {
    return this.#holds.size;
  }

  readonly #poll = (): void => {
    const now = performance.now();
    for (const [key, hold] of this.#holds) {
      if (hold.deadline > now) continue;
      this.#holds.delete(key);
      hold.onExpired?.();
    }
    if (this.#holds.size === 0) this.#polling = false;
    else setImmediate(this.#poll);
  };
}

/** One per thread: there is one event loop to keep hot. */
export const hotLoop = new HotLoop();
