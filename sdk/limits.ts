/**
 * Bounds on every document the gateway accepts from outside (manifests and their schemas,
 * configuration, messages, control-socket requests), in one place. A document past a bound is
 * refused with E_DOCUMENT_LIMIT (schemas: E_SCHEMA_LIMIT) before anything parses it further,
 * validates it or stores it, so whatever the gateway accepted it can always serialise, copy and
 * write again: JSON.stringify, structuredClone and ajv recurse once per nesting level and fail
 * with "Maximum call stack size exceeded" a few thousand levels down.
 */
import { type ErrorCode, fail } from './errors.js';

/** A manifest file (sdk/manifest.ts); a manifest is declarations, not payload. */
const MANIFEST_BYTES = 256 * 1024;
/**
 * An app's configuration object, serialised. Configuration is settings, not data: 64 KB holds
 * thousands of values.
 */
const APP_CONFIGURATION_BYTES = 64 * 1024;
/**
 * The configuration of an app holding traffic.inspect (reserved to the gateway's own apps,
 * installed from its image: Network Protector). Its configuration carries its rule lists, two
 * Base64 texts of up to 2 MiB decoded each (about 10,000 rules of a typical 200 bytes), which
 * Base64 makes 2.67 MiB each: 6 MiB holds both and the settings beside them.
 */
const INSPECTOR_CONFIGURATION_BYTES = 6 * 1024 * 1024;
/** Apps holding traffic.inspect at once: the traffic gate takes one inspector, and the image ships one. */
const MAX_INSPECTORS = 1;

/** The manual's limit on installed apps ("up to 20 applications"). */
export const MAX_APPS = 20;

/**
 * Room for the routes, the document's own settings and every entry's fixed fields, generously:
 * a route is two ids and two endpoint names (well under 1 KB), and 20 apps with a few endpoints
 * each make at most a few hundred routes.
 */
const CONFIG_DOCUMENT_HEADROOM = 1024 * 1024;

/**
 * What one app can take in the configuration document at most: its manifest kept as a JSON
 * string (Orchestrator's entry holds JSON.stringify(manifest) as a string value, so each `"` and
 * `\\` of the manifest's JSON doubles: twice the manifest bound at worst, since the manifest
 * file was read as strict UTF-8 and re-serialising it never grows it), plus its configuration.
 */
export const APP_CONFIG_DOCUMENT_BYTES = 2 * MANIFEST_BYTES + 2 + APP_CONFIGURATION_BYTES;

/**
 * 20 apps at their worst, one of them a traffic inspector with its larger configuration, plus
 * routes and headroom: 18.2 MB; a document the other bounds allow always fits.
 */
export const CONFIG_DOCUMENT_BYTES =
  MAX_APPS * APP_CONFIG_DOCUMENT_BYTES + MAX_INSPECTORS * (INSPECTOR_CONFIGURATION_BYTES - APP_CONFIGURATION_BYTES) + CONFIG_DOCUMENT_HEADROOM;

export const DOCUMENT_LIMITS = Object.freeze({
  /**
   * Nesting of a data document (a message, an app's configuration, an API parameter): 32 levels
   * is deeper than any configuration or telemetry record needs and a hundred times below the
   * depth at which the recursive JSON functions of Node run out of stack.
   */
  maxDepth: 32,
  /** An app's configuration object, serialised (APP_CONFIGURATION_BYTES). */
  appConfigurationBytes: APP_CONFIGURATION_BYTES,
  /** A traffic inspector's configuration, serialised (INSPECTOR_CONFIGURATION_BYTES). */
  inspectorConfigurationBytes: INSPECTOR_CONFIGURATION_BYTES,
  /** Apps holding traffic.inspect that the configuration document's bound makes room for. */
  maxInspectors: MAX_INSPECTORS,
  /**
   * The whole configuration document, serialised: CONFIG_DOCUMENT_BYTES above, computed from
   * the bounds it must hold.
   */
  configDocumentBytes: CONFIG_DOCUMENT_BYTES,
  /** The configuration document holds apps' configurations one level down, so one level more. */
  configDocumentDepth: 32 + 1,
  /** A manifest file (MANIFEST_BYTES). */
  manifestBytes: MANIFEST_BYTES,
  /** A manifest nests schemas four levels down (/endpoints/N/schema, /configuration/schema). */
  manifestDepth: 72 + 4,
  /**
   * One control-socket request line (and one JSON body of the web API): an app's configuration
   * fits far below this. A traffic inspector's larger configuration comes through the operations
   * that set a configuration, which have a larger bound of their own (configurationRequestBytes).
   */
  controlRequestBytes: 1024 * 1024,
  /**
   * A request that sets or merges an app's configuration: a traffic inspector's at its bound,
   * each character escaped at worst as JSON re-serialises it (`\"` for `"`), and the request's
   * own fields.
   */
  configurationRequestBytes: 2 * INSPECTOR_CONFIGURATION_BYTES + 4096,
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
   * Work one message may cost per byte, summed over every keyword that scans the value it checks,
   * once references and repeated subschemas are expanded (sdk/schema.ts `SchemaCheck.cost`): a
   * pattern or patternProperties name costs its RE2 program size, a format the RE2 program it runs,
   * uniqueItems 500, each value of an enum 4, const, each required name and each length or key
   * count (minLength, maxProperties ...) 1. Subschemas applied to the same value add up; those
   * applied to different members or items do not (they read different bytes); one subschema twice
   * in an allOf, anyOf or oneOf is refused, and so is a second uniqueItems applying to the same
   * value. A schema past this is refused at install with E_SCHEMA_LIMIT naming the keyword and its
   * place.
   *
   * Worst case measured (test/bench/schema.bench.ts, `npm run bench -- schema`, 256 KB message,
   * 2-core development machine; in brackets the same run while a full test run shared the
   * machine): uniqueItems on four nested arrays 34 ms, 30 times JSON.parse of the message, over
   * an array of objects 28 ms (7 times); an enum of 495 values under `items` 57 to 71 ms, 33 to 47
   * times. RE2 programs vary most: ipv6's
   * 1373 instructions run at 0.01 ns per instruction and byte, ajv-formats' uri-template's 51 at
   * up to 12 ns, so 39 different patterns as slow as uri-template's at one value (each counted at
   * its program size) took 1.0 to 1.2 s per message, about 3000 times parsing (6.4 s). Program
   * size is what RE2 offers to bound matching before running; the bound is therefore about
   * 2000 x 2.5 ns = 5 us per byte of message (24 us on a loaded machine), while real schemas (one
   * format or pattern per field) run in milliseconds.
   */
  maxCostPerByte: 2000,
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
/** A traffic inspector's configuration (INSPECTOR_CONFIGURATION_BYTES): its rule lists are in it. */
export const INSPECTOR_CONFIGURATION_BOUNDS: DocumentBounds = Object.freeze({
  maxDepth: DOCUMENT_LIMITS.maxDepth,
  maxBytes: DOCUMENT_LIMITS.inspectorConfigurationBytes,
});

/**
 * The bounds of an app's configuration, from its manifest: the larger one only for an app that
 * declares traffic.inspect, which the orchestrator installs only from the gateway's image and the
 * launcher starts only so (a store package declaring it is refused, E_RESERVED_CAPABILITY).
 */
export function configurationBoundsOf(manifest: { capabilities?: readonly string[] } | undefined): DocumentBounds {
  return manifest?.capabilities?.includes('traffic.inspect') ? INSPECTOR_CONFIGURATION_BOUNDS : APP_CONFIGURATION_BOUNDS;
}

/**
 * The nesting depth of a JSON value (a scalar is 0, `{}` is 1), stopping as soon as `limit` is
 * passed (then the result is `limit + 1`), so a hostile value costs at most `limit` levels.
 */
export function jsonDepth(value: unknown, limit: number): number {
  return depthBelow(value, 0, limit);
}

// Recursion is safe here: it never goes more than `limit` + 1 levels deep, and it allocates
// nothing per node, which matters on the router's path (every json message is measured).
function depthBelow(value: unknown, depth: number, limit: number): number {
  if (value === null || typeof value !== 'object') return depth;
  const here = depth + 1;
  if (here > limit) return here;
  let deepest = here;
  if (Array.isArray(value)) {
    for (const item of value) {
      const below = depthBelow(item, here, limit);
      if (below > deepest) {
        if (below > limit) return below;
        deepest = below;
      }
    }
    return deepest;
  }
  for (const key in value) {
    if (!Object.hasOwn(value, key)) continue;
    const below = depthBelow((value as Record<string, unknown>)[key], here, limit);
    if (below > deepest) {
      if (below > limit) return below;
      deepest = below;
    }
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
