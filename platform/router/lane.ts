/**
 * One route's queue, bounded in bytes three ways at once: the route's own bound, what its source
 * app may make the host hold across all its routes, and what all queues together may hold. A
 * message counts against all three from the moment it is queued until its destination has
 * handled it (in flight included), so the host's memory for routes is bounded whatever apps do.
 *
 * When a bound is reached the route's overflow policy decides: `block` (the default, lossless)
 * holds the offer until there is room, which is how the source's emit is slowed down;
 * `drop-oldest` and `drop-newest` make room or refuse, and count every message they drop.
 */
import { headOf, messageCount, messagesWithin, type Segment } from './segment.js';

export type OverflowPolicy = 'block' | 'drop-oldest' | 'drop-newest';
export const OVERFLOW_POLICIES: readonly OverflowPolicy[] = ['block', 'drop-oldest', 'drop-newest'];

export class ByteBudget {
  used = 0;
  constructor(public limit: number) {}

  /** Whether `bytes` more fit; with nothing held, anything does, so one large run is never stuck. */
  fits(bytes: number): boolean {
    return this.used === 0 || this.used + bytes <= this.limit;
  }

  get room(): number {
    return Math.max(0, this.limit - this.used);
  }
}

export interface LaneCounters {
  delivered: number;
  dropped: number;
  invalid: number;
  failed: number;
  lastError?: { code: string; message: string; at: string };
}

export interface LaneEvents {
  /** Bytes were released: offers waiting on a shared budget in other lanes may fit now. */
  released(): void;
  /** Every drop, as it happens (the destination endpoint's counters). */
  dropped(count: number): void;
  /** The first drop of a burst, and the burst's total once the queue has drained. */
  dropping(policy: OverflowPolicy, dropped: number): void;
  burstEnded(dropped: number): void;
}

interface Waiter {
  segment: Segment;
  resolve: () => void;
}

export class Lane {
  readonly counters: LaneCounters = { delivered: 0, dropped: 0, invalid: 0, failed: 0 };
  readonly #queue: Segment[] = [];
  #head = 0;
  #queuedMessages = 0;
  #heldBytes = 0;
  readonly #waiters: Waiter[] = [];
  #burstDropped = 0;
  #closed = false;

  constructor(
    public policy: OverflowPolicy,
    /** The route's own budget first, then the source app's, then the gateway's. */
    readonly budgets: readonly ByteBudget[],
    private readonly events: LaneEvents,
  ) {}

  /** The admin changed the route's policy or bound: offers waiting may fit now, or be dropped. */
  reconfigure(policy: OverflowPolicy, bound: number): void {
    this.policy = policy;
    this.budgets[0]!.limit = bound;
    this.pump();
    if (policy !== 'block') {
      // Offers that waited under `block` get the new policy's treatment, in order.
      for (const waiter of this.#waiters.splice(0)) {
        this.offer(waiter.segment);
        waiter.resolve();
      }
    }
  }

  /** Messages waiting for the destination (in flight not included). */
  get queued(): number {
    return this.#queuedMessages;
  }

  /** Bytes held: queued and in flight. */
  get heldBytes(): number {
    return this.#heldBytes;
  }

  get waiting(): boolean {
    return this.#waiters.length > 0;
  }

  get bound(): number {
    return this.budgets[0]!.limit;
  }

  /**
   * Queues a segment, or under `block` returns a promise that settles once it is queued (or the
   * lane is closed). Offers queue in the order they were made.
   */
  offer(segment: Segment): Promise<void> | undefined {
    if (this.#closed || messageCount(segment) === 0) return undefined;
    if (this.#waiters.length === 0 && this.#fits(segment.bytes)) {
      this.#push(segment);
      return undefined;
    }
    if (this.policy === 'block') return new Promise((resolve) => this.#waiters.push({ segment, resolve }));
    if (this.policy === 'drop-oldest') this.#dropOldest(segment.bytes);
    if (this.#fits(segment.bytes)) {
      this.#push(segment);
      return undefined;
    }
    const fitting = messagesWithin(segment, this.#room());
    if (fitting > 0) this.#push(headOf(segment, fitting));
    this.#dropped(messageCount(segment) - fitting);
    return undefined;
  }

  /** Queued offers that fit now; called when any lane released bytes of a shared budget. */
  pump(): void {
    while (this.#waiters.length > 0 && this.#fits(this.#waiters[0]!.segment.bytes)) {
      const waiter = this.#waiters.shift()!;
      this.#push(waiter.segment);
      waiter.resolve();
    }
  }

  /** Takes up to a crossing's worth of segments for the destination; their bytes stay held. */
  take(maxMessages: number, maxBytes: number): Segment[] {
    const taken: Segment[] = [];
    let messages = 0;
    let bytes = 0;
    while (this.#head < this.#queue.length) {
      const next = this.#queue[this.#head]!;
      const count = messageCount(next);
      if (taken.length > 0 && (messages + count > maxMessages || bytes + next.bytes > maxBytes)) break;
      taken.push(next);
      messages += count;
      bytes += next.bytes;
      this.#shift();
    }
    return taken;
  }

  /** What `take` gave back unhandled (the destination stopped first): first in line again. */
  putBack(segments: Segment[]): void {
    if (this.#closed) {
      this.done(segments);
      return;
    }
    this.#compact();
    this.#queue.unshift(...segments);
    for (const segment of segments) this.#queuedMessages += messageCount(segment);
  }

  /** Segments from `take` are handled (delivered, invalid or failed): their bytes are free. */
  done(segments: Segment[]): void {
    let bytes = 0;
    for (const segment of segments) bytes += segment.bytes;
    this.#release(bytes);
  }

  /** Drops everything queued (the destination's endpoint is gone); counted, waiters released. */
  clear(): number {
    let bytes = 0;
    let messages = 0;
    while (this.#head < this.#queue.length) {
      const segment = this.#shift();
      bytes += segment.bytes;
      messages += messageCount(segment);
    }
    this.#countDropped(messages);
    const waiting = this.dropWaiting();
    this.#release(bytes);
    return messages + waiting;
  }

  /**
   * Lets go of offers waiting for room (their source stopped, or the route was disabled): their
   * messages are not queued, and are counted as dropped; returns how many.
   */
  dropWaiting(): number {
    let messages = 0;
    for (const waiter of this.#waiters.splice(0)) {
      messages += messageCount(waiter.segment);
      waiter.resolve();
    }
    this.#countDropped(messages);
    return messages;
  }

  /** Drops that are not a burst's (the route changed or went away): counted, not warned. */
  #countDropped(messages: number): void {
    if (messages === 0) return;
    this.counters.dropped += messages;
    this.events.dropped(messages);
  }

  /** The route is gone: nothing more is queued, and offers waiting are released. */
  close(): void {
    this.clear();
    this.#closed = true;
  }

  #fits(bytes: number): boolean {
    for (const budget of this.budgets) if (!budget.fits(bytes)) return false;
    return true;
  }

  #room(): number {
    let room = Number.POSITIVE_INFINITY;
    for (const budget of this.budgets) room = Math.min(room, budget.room);
    return room;
  }

  #push(segment: Segment): void {
    this.#queue.push(segment);
    this.#queuedMessages += messageCount(segment);
    this.#heldBytes += segment.bytes;
    for (const budget of this.budgets) budget.used += segment.bytes;
  }

  #shift(): Segment {
    const segment = this.#queue[this.#head]!;
    this.#queue[this.#head] = undefined as unknown as Segment;
    this.#head += 1;
    this.#queuedMessages -= messageCount(segment);
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) this.#compact();
    return segment;
  }

  #compact(): void {
    this.#queue.splice(0, this.#head);
    this.#head = 0;
  }

  #unhold(bytes: number): void {
    this.#heldBytes -= bytes;
    for (const budget of this.budgets) budget.used -= bytes;
  }

  #release(bytes: number): void {
    if (bytes === 0) return;
    this.#unhold(bytes);
    if (this.#burstDropped > 0 && this.#queuedMessages === 0) {
      this.events.burstEnded(this.#burstDropped);
      this.#burstDropped = 0;
    }
    this.pump();
    this.events.released();
  }

  /**
   * Drops queued runs from the head until `bytes` more would fit (or nothing is left to drop).
   * Whole runs, as they were queued: splitting one would copy what is kept of it on every offer.
   */
  #dropOldest(bytes: number): void {
    let released = false;
    while (this.#head < this.#queue.length && !this.#fits(bytes)) {
      const head = this.#shift();
      this.#unhold(head.bytes);
      this.#dropped(messageCount(head));
      released = true;
    }
    if (released) this.events.released();
  }

  #dropped(count: number): void {
    if (count <= 0) return;
    this.counters.dropped += count;
    this.events.dropped(count);
    if (this.#burstDropped === 0) this.events.dropping(this.policy, count);
    this.#burstDropped += count;
  }
}
