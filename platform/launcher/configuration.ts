/**
 * Per-app configuration: the object in the configuration document keyed by package id,
 * validated against the schema in the app's manifest.
 */
import { fail } from '../../sdk/errors.js';
import { assertDocumentBounds, configurationBoundsOf } from '../../sdk/limits.js';
import type { AppManifest } from '../../sdk/manifest.js';
import { assertValid, compileUntrustedSchema } from '../../sdk/schema.js';

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** Keys that would pollute prototypes wherever the object is merged later. */
function assertNoPrototypeKeys(value: unknown, pointer = ''): void {
  if (Array.isArray(value)) {
    for (const [index, item] of value.entries()) assertNoPrototypeKeys(item, `${pointer}/${index}`);
  } else if (value && typeof value === 'object') {
    for (const key of Object.keys(value)) {
      if (FORBIDDEN_KEYS.has(key))
        throw fail('E_CONFIG', `Configuration is not valid: ${pointer}/${key} is a reserved name`, {
          violations: [{ pointer: `${pointer}/${key}`, rule: 'reserved' }],
        });
      assertNoPrototypeKeys((value as Record<string, unknown>)[key], `${pointer}/${key}`);
    }
  }
}

export function validateAppConfiguration(manifest: AppManifest, value: unknown): Record<string, unknown> {
  if (!manifest.configuration) throw fail('E_CONFIG', `${manifest.package_id} declares no configuration`);
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw fail('E_CONFIG', 'Configuration is not valid: it is an object');
  // Bounds first: the checks after this one, and every later write of config.json, recurse.
  assertDocumentBounds(value, configurationBoundsOf(manifest), `The configuration of ${manifest.package_id}`);
  assertNoPrototypeKeys(value);
  assertValid(
    compileUntrustedSchema(manifest.configuration.schema, `/configuration/schema of ${manifest.package_id}`, 'E_CONFIG'),
    value,
    'E_CONFIG',
    'Configuration',
  );
  return JSON.parse(JSON.stringify(value)) as Record<string, unknown>;
}

/** What the app sees: its defaults under what the admin set. */
export function effectiveConfiguration(manifest: AppManifest, stored: unknown): Record<string, unknown> | undefined {
  const defaults = manifest.configuration?.defaults;
  if (stored === undefined && defaults === undefined) return undefined;
  return { ...(defaults ?? {}), ...((stored as Record<string, unknown> | undefined) ?? {}) };
}

export interface CarriedConfiguration {
  /** What to store for the new version; undefined when nothing the admin set survives. */
  value: Record<string, unknown> | undefined;
  /** Top-level keys the admin had set that the new version's schema refuses: back to its default (or gone). */
  reset: string[];
}

/**
 * An in-place update keeps what the admin set where the new version's schema still accepts it.
 * Checked by top-level key (what `apps config ID KEY VALUE` names first): a key the new schema
 * refuses, or the whole of which it refuses below, returns to the new version's default, or goes
 * when the new version has none; repeated until the document is valid. What cannot be made valid
 * that way (a newly required key without a default) leaves nothing stored, so the app is Pending
 * until the admin configures it.
 */
export function carryConfiguration(manifest: AppManifest, stored: unknown): CarriedConfiguration {
  if (!stored || typeof stored !== 'object' || Array.isArray(stored)) return { value: undefined, reset: [] };
  const keys = Object.keys(stored);
  if (!manifest.configuration) return { value: undefined, reset: keys.sort() };
  const defaults = (manifest.configuration.defaults ?? {}) as Record<string, unknown>;
  const candidate = JSON.parse(JSON.stringify(stored)) as Record<string, unknown>;
  const reset = new Set<string>();
  // Each round sets at least one key to its default or removes it: a key is touched at most twice.
  const rounds = 2 * new Set([...keys, ...Object.keys(defaults)]).size + 1;
  for (let round = 0; round <= rounds; round += 1) {
    let violations: { pointer: string }[];
    try {
      validateAppConfiguration(manifest, candidate);
      return { value: candidate, reset: [...reset].sort() };
    } catch (error) {
      violations = (error as { details?: { violations?: { pointer: string }[] } }).details?.violations ?? [];
    }
    const named = new Set(violations.map((v) => decodePointerToken(v.pointer.split('/')[1] ?? '')).filter((key) => key !== ''));
    // A key the admin set that is refused, or one the new version requires and has a default for.
    const changeable = [...named].filter((key) => Object.hasOwn(candidate, key) || Object.hasOwn(defaults, key));
    if (changeable.length === 0) break;
    for (const key of changeable) {
      const atDefault = Object.hasOwn(candidate, key) && Object.hasOwn(defaults, key) && JSON.stringify(candidate[key]) === JSON.stringify(defaults[key]);
      if (Object.hasOwn(defaults, key) && !atDefault) candidate[key] = structuredClone(defaults[key]);
      else delete candidate[key];
      if (Object.hasOwn(stored, key)) reset.add(key);
    }
  }
  return { value: undefined, reset: keys.sort() };
}

function decodePointerToken(token: string): string {
  return token.replace(/~1/g, '/').replace(/~0/g, '~');
}
