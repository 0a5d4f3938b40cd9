/**
 * Bounds on every document the gateway accepts from outside (manifests and their schemas,
 * configuration, messages, control-socket requests), in one place. A document past a bound is
 * refused with E_DOCUMENT_LIMIT (schemas: E_SCHEMA_LIMIT) before anything parses it further,
 * validates it or stores it, so whatever the gateway accepted it can always serialise, copy and
 * write again: JSON.stringify, structuredClone and ajv recurse once per nesting level and fail
 * with "Maximum call stack size exceeded" a few thousand levels down.
 */
import { fail, type ErrorCode } from './errors.js';

export const DOCUMENT_LIMITS = Object.freeze({
  /**
   * Nesting of a data document (a message, an app's configuration, an API parameter): 32 levels
   * is deeper than any configuration or telemetry record needs and a hundred times below the
   * depth at which the recursive JSON functions of Node run out of stack.
   */
  maxDepth: 32,
  /**
   * An app's configuration object, serialised. Configuration is settings, not data: 64 KB holds
   * thousands of values, and twenty apps at the bound add 1.3 MB to config.json.
   */
  appConfigurationBytes: 64 * 1024,
  /**
   * The whole configuration document, serialised: 20 apps, each with its manifest kept as a
   * string (at most 256 KB) and its configuration (64 KB), plus routes, with room to spare.
   */
  configDocumentBytes: 8 * 1024 * 1024,
  /** The configuration document holds apps' configurations one level down, so one level more. */
  configDocumentDepth: 32 + 1,
  /** A manifest file (sdk/manifest.ts); a manifest is declarations, not payload. */
  manifestBytes: 256 * 1024,
  /** A manifest nests schemas four levels down (/endpoints/N/schema, /configuration/schema). */
  manifestDepth: 72 + 4,
  /** One control-socket request line: the largest is a configuration, far below this. */
  controlRequestBytes: 1024 * 1024,
  /** A request carries its parameters two levels down ({"params": {"value": ...}}). */
  controlRequestDepth: 32 + 2,
});

/**
 * Bounds on a JSON Schema that comes from a package (endpoint and configuration schemas). The
 * gateway validates every message against its endpoint's schema on its own thread, so the work
 * one message can cost must be bounded by these numbers times the message's size.
 */
export const SCHEMA_LIMITS = Object.freeze({
  /** Serialised size of one schema: a detailed record schema is a few KB. */
  maxBytes: 64 * 1024,
  /** A data level takes two schema levels ("properties", the name), so 2 x 32 plus some wrappers. */
  maxDepth: 72,
  /**
   * Subschemas once every $ref is expanded (references may share a target, so a small schema can
   * stand for an exponentially large one; this counts what ajv actually evaluates). Each data
   * value is checked against at most this many subschemas.
   */
  maxExpandedNodes: 2000,
  /** Characters in one regular expression (pattern, patternProperties key). */
  maxPatternLength: 1024,
  /**
   * Instructions of one compiled RE2 program. Matching is linear: about one step per instruction
   * and input character at worst. `{1,64}` costs 64 copies, so 1000 is ample for real patterns.
   */
  maxPatternProgram: 1000,
  /**
   * RE2 instructions of all patterns in one schema once expanded: bounds the cost per message
   * byte. Measured worst case about 0.5 ns per instruction and character, so a message of the
   * default 256 KB costs at most about 0.25 s however its schema is written (1 s at the 1 MB an
   * endpoint may declare); real anchored patterns run far below that.
   */
  maxExpandedPatternProgram: 2000,
});

export const VERIFY_LIMITS = Object.freeze({
  /**
   * Wall time of one package verification in a worker thread (unpack, hash, signature, manifest,
   * schemas), including its wait for a free worker. The largest package the format allows
   * verifies in a few seconds on the target device; a task still running after this is stuck and
   * its worker is ended, so it cannot hold the pool for every later install.
   */
  timeoutMs: 60_000,
});

export interface DocumentBounds {
  maxDepth: number;
  /** Serialised UTF-8 bytes; checked only when given. */
  maxBytes?: number;
}

/** One app's configuration: written into config.json whole, and handed to the app. */
export const APP_CONFIGURATION_BOUNDS: DocumentBounds = Object.freeze({ maxDepth: DOCUMENT_LIMITS.maxDepth, maxBytes: DOCUMENT_LIMITS.appConfigurationBytes });

/**
 * The nesting depth of a JSON value (a scalar is 0, `{}` is 1), without recursion, stopping as
 * soon as `limit` is passed (then the result is `limit + 1`).
 */
export function jsonDepth(value: unknown, limit: number): number {
  if (value === null || typeof value !== 'object') return 0;
  let deepest = 0;
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (depth > deepest) {
      deepest = depth;
      if (deepest > limit) return deepest;
    }
    const children = Array.isArray(node) ? node : Object.values(node as object);
    for (const child of children) if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
  }
  return deepest;
}

/**
 * Throws `code` (E_DOCUMENT_LIMIT unless told) when `value` nests deeper or serialises larger than
 * `bounds`. Depth is checked first: serialising a too-deep value is what fails.
 */
export function assertDocumentBounds(value: unknown, bounds: DocumentBounds, what: string, code: ErrorCode = 'E_DOCUMENT_LIMIT'): void {
  const depth = jsonDepth(value, bounds.maxDepth);
  if (depth > bounds.maxDepth) {
    throw fail(code, `${what} nests deeper than ${bounds.maxDepth} levels; flatten it`, { limit: 'depth', maxDepth: bounds.maxDepth });
  }
  if (bounds.maxBytes !== undefined) {
    const bytes = Buffer.byteLength(JSON.stringify(value) ?? '');
    if (bytes > bounds.maxBytes) {
      throw fail(code, `${what} is ${bytes} bytes as JSON; the limit is ${bounds.maxBytes}`, { limit: 'bytes', bytes, maxBytes: bounds.maxBytes });
    }
  }
}
