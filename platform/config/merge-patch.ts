/**
 * JSON Merge Patch (RFC 7396): how an admin changes some keys of a configuration without
 * restating the rest. The algorithm is the RFC's section 2, word for word, except that keys are
 * written as own data properties: a patch is parsed from untrusted JSON, where `__proto__` is an
 * ordinary key, and assigning it would replace the result's prototype instead.
 */
type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function isObject(value: unknown): value is Record<string, Json> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return patch;
  const result: Record<string, unknown> = {};
  if (isObject(target)) for (const key of Object.keys(target)) define(result, key, target[key]);
  for (const key of Object.keys(patch)) {
    if (patch[key] === null) delete result[key];
    else define(result, key, applyMergePatch(Object.hasOwn(result, key) ? result[key] : undefined, patch[key]));
  }
  return result;
}

function define(object: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
}

/**
 * `apps config ID KEY VALUE`: the patch that sets one dotted key. VALUE is JSON where it parses
 * as JSON (numbers, true, null, objects), a string otherwise, so `mode fast` needs no quotes.
 */
export function patchForKey(dottedKey: string, text: string): Record<string, unknown> {
  const parts = dottedKey.split('.');
  if (parts.some((part) => part === '')) throw new RangeError(`"${dottedKey}" is not a key: use names separated by dots, like limits.temperature`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = text;
  }
  let patch: unknown = value;
  for (const part of parts.reverse()) {
    const level: Record<string, unknown> = {};
    define(level, part, patch);
    patch = level;
  }
  return patch as Record<string, unknown>;
}
