/**
 * The sentence of every refusal of an app's reach, in one place and imported by both sides: the
 * host (`capabilities.ts`, the check that counts) and the guest SDK (which refuses early for a
 * fast error). Both give the same code and the same sentence, so an app cannot tell, and need not
 * care, which side refused. Pure: it is bundled into every isolate.
 */
import type { ErrorCode } from '../../sdk/errors.js';

export type Refusal = [code: ErrorCode, message: string];

export const refusals = {
  notASource: (endpoint: string, isDestination: boolean): Refusal => [
    'E_CAPABILITY',
    isDestination
      ? `"${endpoint}" is a destination endpoint: an app emits only on its source endpoints`
      : `The manifest declares no source endpoint "${endpoint}"`,
  ],
  notADestination: (endpoint: string): Refusal => ['E_CAPABILITY', `The manifest declares no destination endpoint "${endpoint}" to handle`],
  noEgressTarget: (target: string): Refusal => ['E_CAPABILITY', `The manifest declares no egress target "${target}"`],
  egressProtocol: (target: string, declared: string, asked: string): Refusal => [
    'E_EGRESS_PROTOCOL',
    `The egress target "${target}" is ${declared}, not ${asked}`,
  ],
  timerLimit: (max: number): Refusal => ['E_TIMER_LIMIT', `At most ${max} timers may be pending at once`],
  emitsWaiting: (endpoint: string): Refusal => ['E_BACKPRESSURE', `the routes from "${endpoint}" are full; await emit's result to be slowed down instead`],
  noTrafficInspect: (): Refusal => ['E_CAPABILITY', "The app does not hold traffic.inspect: only the platform's own apps inspect traffic"],
  inspectorTwice: (): Refusal => ['E_CONFLICT', "traffic.inspect registers the app's one inspector; it is registered already"],
  emitInFlight: (): Refusal => ['E_BACKPRESSURE', 'An emit batch is in flight already; the next one waits for its answer'],
} as const;
