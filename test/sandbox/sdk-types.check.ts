/**
 * A type test, compiled by `npm run typecheck` and never run: the in-app SDK's declarations
 * (`sdk/app/isogate-sdk.d.ts`, what app developers compile against) must match the protocol the
 * guest SDK and the host implement (`platform/sandbox/protocol.ts`). When one drifts from the
 * other, an `Assert` below stops compiling.
 */
import type * as Sdk from 'isogate:sdk';
import type {
  Args,
  FetchRequest,
  FetchResponse,
  Result,
  TrafficAlert,
  TrafficConnection,
  TrafficDirection,
  TrafficVerdict,
} from '../../platform/sandbox/protocol.js';

/** True only when A and B are the same type (not merely assignable one way). */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Assert<T extends true> = T;
/** An SDK function's parameters as they cross: the SDK fills in its optional arguments. */
type Crossing<F extends (...args: never[]) => unknown> = Required<Parameters<F>>;
type Answer<F extends (...args: never[]) => unknown> = Awaited<ReturnType<F>>;

export type SdkMatchesProtocol = [
  Assert<Equal<Sdk.EgressRequest, FetchRequest>>,
  Assert<Equal<Omit<Sdk.EgressResponse, 'text'>, FetchResponse>>,
  Assert<Equal<ReturnType<Sdk.EgressResponse['text']>, string>>,
  Assert<Equal<Crossing<typeof Sdk.egress.fetch>, Args<'egress.fetch'>>>,
  Assert<Equal<Crossing<typeof Sdk.egress.publish>, Args<'egress.publish'>>>,
  Assert<Equal<Answer<typeof Sdk.egress.publish>, Result<'egress.publish'>>>,
  Assert<Equal<Crossing<typeof Sdk.storage.get>, Args<'storage.get'>>>,
  Assert<Equal<Answer<typeof Sdk.storage.get>, Result<'storage.get'>>>,
  Assert<Equal<Crossing<typeof Sdk.storage.put>, Args<'storage.put'>>>,
  Assert<Equal<Answer<typeof Sdk.storage.put>, Result<'storage.put'>>>,
  Assert<Equal<Crossing<typeof Sdk.storage.delete>, Args<'storage.delete'>>>,
  Assert<Equal<Answer<typeof Sdk.storage.delete>, Result<'storage.delete'>>>,
  Assert<Equal<Crossing<typeof Sdk.storage.list>, Args<'storage.list'>>>,
  Assert<Equal<Answer<typeof Sdk.storage.list>, Result<'storage.list'>>>,
  Assert<Equal<Crossing<typeof Sdk.storage.usage>, Args<'storage.usage'>>>,
  Assert<Equal<Answer<typeof Sdk.storage.usage>, Result<'storage.usage'>>>,
  Assert<Equal<Sdk.TrafficConnection, TrafficConnection>>,
  Assert<Equal<Sdk.TrafficDirection, TrafficDirection>>,
  Assert<Equal<Sdk.TrafficAlert, TrafficAlert>>,
  Assert<Equal<Sdk.TrafficVerdict, TrafficVerdict>>,
  Assert<Equal<Parameters<Sdk.TrafficInspector['data']>, [number, TrafficDirection, Uint8Array, number]>>,
];
