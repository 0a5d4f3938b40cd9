/**
 * Per-app configuration: the object in the configuration document keyed by package id,
 * validated against the schema in the app's manifest.
 */
import { fail } from '../../sdk/errors.js';
import type { AppManifest } from '../../sdk/manifest.js';
import { APP_CONFIGURATION_BOUNDS, assertDocumentBounds } from '../../sdk/limits.js';
import { assertValid, compileUntrustedSchema } from '../../sdk/schema.js';


const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** Keys that would pollute prototypes wherever the object is merged later. */
function assertNoPrototypeKeys(value: unknown, pointer = ''): void {
  if (Array.isArray(value)) {
    value.forEach((item, index) => assertNoPrototypeKeys(item, `${pointer}/${index}`));
  } else if (value && typeof value === 'object') {
    for (const key of Object.keys(value)) {
      if (FORBIDDEN_KEYS.has(key)) throw fail('E_CONFIG', `Configuration is not valid: ${pointer}/${key} is a reserved name`, { violations: [{ pointer: `${pointer}/${key}`, rule: 'reserved' }] });
      assertNoPrototypeKeys((value as Record<string, unknown>)[key], `${pointer}/${key}`);
    }
  }
}

export function validateAppConfiguration(manifest: AppManifest, value: unknown): Record<string, unknown> {
  if (!manifest.configuration) throw fail('E_CONFIG', `${manifest.package_id} declares no configuration`);
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw fail('E_CONFIG', 'Configuration is not valid: it is an object');
  // Bounds first: the checks after this one, and every later write of config.json, recurse.
  assertDocumentBounds(value, APP_CONFIGURATION_BOUNDS, `The configuration of ${manifest.package_id}`);
  assertNoPrototypeKeys(value);
  assertValid(compileUntrustedSchema(manifest.configuration.schema, `/configuration/schema of ${manifest.package_id}`, 'E_CONFIG'), value, 'E_CONFIG', 'Configuration');
  return JSON.parse(JSON.stringify(value)) as Record<string, unknown>;
}

/** What the app sees: its defaults under what the admin set. */
export function effectiveConfiguration(manifest: AppManifest, stored: unknown): Record<string, unknown> | undefined {
  const defaults = manifest.configuration?.defaults;
  if (stored === undefined && defaults === undefined) return undefined;
  return { ...(defaults ?? {}), ...((stored as Record<string, unknown> | undefined) ?? {}) };
}
