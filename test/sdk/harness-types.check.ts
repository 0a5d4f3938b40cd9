/**
 * A type test, compiled by `npm run typecheck` and never run: the harness's published
 * declarations (`sdk/app/harness.d.ts`, copied into the SDK package as `harness.d.ts`) must match
 * the harness they describe (`sdk/harness/index.ts`). They are written by hand so that the package
 * carries no internal types: the harness's options and app have members only `isogate-sdk run`
 * uses (`inspector`, `built`, `prepared`, `sandbox`), so there the published type is checked as a view of the
 * real one (every option an app's test may pass is accepted; every member it may read is there).
 * The published `manifest` is the manifest's JSON with its identity typed (the SDK's
 * `AppManifest` is internal), so only those fields are compared. When one drifts from the other,
 * an `Assert` below stops compiling.
 */
import type * as Published from '../../sdk/app/harness.js';
import type * as Harness from '../../sdk/harness/index.js';

/** True only when A and B are the same type (not merely assignable one way). */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Assert<T extends true> = T;
type Extends<A, B> = [A] extends [B] ? true : false;

export type PublishedHarnessMatches = [
  Assert<Equal<Published.HarnessEgressRequest, Harness.HarnessEgressRequest>>,
  Assert<Equal<Published.HarnessEgressResponse, Harness.HarnessEgressResponse>>,
  Assert<Equal<Published.EgressFixture, Harness.EgressFixture>>,
  Assert<Equal<Published.EgressCall, Harness.EgressCall>>,
  Assert<Equal<Published.LogLevel, Harness.LogLevel>>,
  Assert<Extends<Published.HarnessOptions, Harness.HarnessOptions>>,
  Assert<Equal<Omit<Harness.HarnessOptions, 'inspector' | 'built' | 'prepared'>, Published.HarnessOptions>>,
  Assert<Extends<Omit<Harness.HarnessApp, 'manifest'>, Omit<Published.HarnessApp, 'manifest'>>>,
  Assert<Extends<Pick<Harness.HarnessApp['manifest'], 'package_id' | 'version'>, Pick<Published.HarnessApp['manifest'], 'package_id' | 'version'>>>,
  Assert<Equal<keyof Omit<Harness.HarnessApp, 'sandbox'>, keyof Published.HarnessApp>>,
  Assert<Equal<Parameters<typeof Harness.startApp>, [options?: Harness.HarnessOptions]>>,
  Assert<Equal<Parameters<typeof Published.startApp>, [options?: Published.HarnessOptions]>>,
];
