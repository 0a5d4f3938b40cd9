/**
 * The crossings between the traffic gate and the inspecting app: every open, data and close of
 * every proxied connection is queued here and handed over in batches, one crossing in flight at
 * a time (what queued meanwhile goes in the next), verdicts back as one array. A crossing that
 * does not come back within the verdict deadline, or comes back rejected, is the inspector's
 * failure: the gate fails closed and the caller decides what that means (emergency support mode).
 */
import { fail, type IsogateError, toIsogateError } from '../../sdk/errors.js';
import type { AppInspector, InspectItem, TrafficVerdict } from '../sandbox/bridge.js';

/** Bounds of one crossing: a few hundred Modbus frames, or one large MQTT publish. */
export const CROSSING_LIMITS = { items: 1024, bytes: 4 * 1024 * 1024 } as const;

/** What the gate learns back for one data item. */
export type VerdictHandler = (verdict: TrafficVerdict) => void;

interface Queued {
  item: InspectItem;
  /** Set for data items only: where the verdict goes. */
  onVerdict?: VerdictHandler;
  bytes: number;
}

export interface InspectionQueueOptions {
  inspector: AppInspector;
  deadlineMs: number;
  /** The inspector failed (rejected, or missed the deadline); called once, and the queue stops. */
  onFailure(error: IsogateError): void;
}

export class InspectionQueue {
  #queue: Queued[] = [];
  #inFlight = false;
  #scheduled = false;
  #stopped = false;
  /** Crossings made and data items inspected, for the gate's counters and the bench. */
  crossings = 0;
  items = 0;

  constructor(private readonly options: InspectionQueueOptions) {}

  get inspector(): AppInspector {
    return this.options.inspector;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  push(item: InspectItem, onVerdict?: VerdictHandler): void {
    if (this.#stopped) return;
    this.#queue.push({ item, ...(onVerdict ? { onVerdict } : {}), bytes: item[0] === 'data' ? item[3].byteLength : 0 });
    if (this.#inFlight || this.#scheduled) return;
    this.#scheduled = true;
    // Everything the sockets delivered in this turn of the event loop crosses together.
    setImmediate(() => {
      this.#scheduled = false;
      void this.#cross();
    });
  }

  /** No more crossings; one in flight is ignored when it returns. */
  stop(): void {
    this.#stopped = true;
    this.#queue = [];
  }

  async #cross(): Promise<void> {
    if (this.#inFlight || this.#stopped || this.#queue.length === 0) return;
    let take = 0;
    let bytes = 0;
    while (take < this.#queue.length && take < CROSSING_LIMITS.items && (take === 0 || bytes + this.#queue[take]!.bytes <= CROSSING_LIMITS.bytes)) {
      bytes += this.#queue[take]!.bytes;
      take += 1;
    }
    const batch = this.#queue.splice(0, take);
    const handlers = batch.flatMap((entry) => (entry.onVerdict ? [entry.onVerdict] : []));
    this.#inFlight = true;
    this.crossings += 1;
    this.items += handlers.length;
    let deadline: NodeJS.Timeout | undefined;
    let verdicts: TrafficVerdict[];
    try {
      verdicts = await Promise.race([
        this.options.inspector.inspect(batch.map((entry) => entry.item)),
        new Promise<never>((_, reject) => {
          deadline = setTimeout(
            () => reject(fail('E_APP_FAILED', `did not answer the traffic gate within ${this.options.deadlineMs} ms`, { notAnswering: true })),
            this.options.deadlineMs,
          );
        }),
      ]);
    } catch (error) {
      this.#inFlight = false;
      if (!this.#stopped) {
        this.stop();
        this.options.onFailure(toIsogateError(error));
      }
      return;
    } finally {
      clearTimeout(deadline);
    }
    this.#inFlight = false;
    if (this.#stopped) return;
    // The sandbox decoded one verdict per data item; the gate checks what each releases.
    for (let index = 0; index < handlers.length; index += 1) {
      handlers[index]!(verdicts[index]!);
      if (this.#stopped) return;
    }
    if (this.#queue.length > 0) void this.#cross();
  }
}
