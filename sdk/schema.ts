/**
 * JSON Schema validation with ajv (draft 2020-12), in two kinds:
 *
 * - Platform schemas (manifests/*.json, the control socket's parameters, the store's catalog):
 *   written by us, trusted, compiled by `compileSchema` with JavaScript regular expressions
 *   (they use lookahead) and every ajv-formats format.
 * - Schemas from packages (endpoint and configuration schemas in a manifest): hostile until
 *   checked. `compileUntrustedSchema` is the one door for them. It checks the schema's size,
 *   depth, references, patterns and formats, then compiles it in an ajv instance of its own
 *   whose every regular expression runs on RE2 (re2js), which matches in time linear in the
 *   input: a publisher's `^(a+)+$` cannot stall the gateway's thread.
 *
 * Both kinds are compiled once per schema object (the manifests the gateway holds do not change),
 * package schemas also once per schema text, and never re-serialised per message.
 */
import { _, Ajv2020, type ErrorObject, type KeywordCxt, str, type ValidateFunction } from 'ajv/dist/2020.js';
import * as addFormatsModule from 'ajv-formats';
import * as formatsModule from 'ajv-formats/dist/formats.js';
import { RE2JS } from 're2js';
import { type ErrorCode, fail, IsogateError } from './errors.js';
import { jsonDepth, SCHEMA_LIMITS } from './limits.js';

// ajv-formats is CommonJS; under NodeNext its default import is the module object.
const addFormats = (addFormatsModule as unknown as { default: (ajv: Ajv2020) => Ajv2020 }).default;
const { fullFormats } = formatsModule as unknown as { fullFormats: Record<string, unknown> };

export interface SchemaViolation {
  /** JSON pointer of the offending value ("" for the document itself). */
  pointer: string;
  /** The schema keyword that failed (required, maximum, pattern, ...). */
  rule: string;
  message: string;
}

// ---------------------------------------------------------------------------------------------
// Regular expressions on a linear-time engine

export interface UntrustedRegExp {
  readonly source: string;
  readonly flags: string;
  /** Whether the expression matches anywhere in `input` (as RegExp.prototype.test). */
  test(input: string): boolean;
  /** Also ajv's cache key for a compiled pattern: it must differ between expressions. */
  toString(): string;
}

const RE2_FLAGS: Readonly<Record<string, number>> = {
  i: RE2JS.CASE_INSENSITIVE,
  m: RE2JS.MULTILINE,
  s: RE2JS.DOTALL,
  // RE2 always matches by code point, which is what ECMAScript's `u` asks for.
  u: 0,
};

/**
 * ECMAScript spells a code point `\uXXXX` or `\u{X}`, RE2 `\x{X}`; JSON Schemas use the former
 * for control characters. Every other escape is passed as written: RE2 refuses what it lacks.
 */
function toRe2Syntax(source: string): string {
  let out = '';
  for (let i = 0; i < source.length; i += 1) {
    const char = source[i];
    if (char !== '\\' || i + 1 >= source.length) {
      out += char;
      continue;
    }
    const next = source[i + 1];
    if (next === 'u') {
      const fixed = /^[0-9A-Fa-f]{4}/.exec(source.slice(i + 2, i + 6));
      const braced = /^\{([0-9A-Fa-f]{1,6})\}/.exec(source.slice(i + 2, i + 10));
      if (fixed) {
        out += `\\x{${fixed[0]}}`;
        i += 5;
        continue;
      }
      if (braced) {
        out += `\\x{${braced[1]}}`;
        i += 1 + braced[0].length;
        continue;
      }
    }
    out += char + next;
    i += 1;
  }
  return out;
}

/**
 * Compiles a regular expression from outside the platform (a schema's `pattern`, a Network
 * Protector rule's `pcre`) on RE2: matching takes time linear in the input. RE2 has no
 * lookaround and no backreferences; such an expression, an unknown flag or a program larger than
 * SCHEMA_LIMITS.maxPatternProgram is refused with `code`. Differences from ECMAScript kept: `\s`
 * is ASCII white space, `.` excludes only `\n` (without `s`), `\d` `\w` `\b` are ASCII as in
 * ECMAScript.
 */
export function compileUntrustedRegExp(source: string, flags = '', what = 'The regular expression', code: ErrorCode = 'E_SCHEMA_PATTERN'): UntrustedRegExp {
  return compileRe2(source, flags, what, code).regexp;
}

function compileRe2(source: string, flags: string, what: string, code: ErrorCode, bounded = true): { regexp: UntrustedRegExp; program: number } {
  if (typeof source !== 'string') throw fail(code, `${what} is not a string`);
  if (bounded && source.length > SCHEMA_LIMITS.maxPatternLength) {
    throw fail(code, `${what} is ${source.length} characters; the limit is ${SCHEMA_LIMITS.maxPatternLength}`);
  }
  let bits = 0;
  for (const flag of new Set(flags)) {
    if (!Object.hasOwn(RE2_FLAGS, flag)) throw fail(code, `${what} has flag "${flag}"; the flags allowed are i, m, s and u`);
    bits |= RE2_FLAGS[flag]!;
  }
  let compiled: RE2JS;
  try {
    compiled = RE2JS.compile(toRe2Syntax(source), bits);
  } catch (error) {
    throw fail(
      code,
      `${what} /${source}/ cannot run on the gateway's linear-time engine (RE2 has no lookahead, lookbehind or backreferences): ${(error as Error).message}`,
      { pattern: source },
    );
  }
  const program = compiled.programSize();
  if (bounded && program > SCHEMA_LIMITS.maxPatternProgram) {
    throw fail(
      code,
      `${what} /${source}/ compiles to ${program} RE2 instructions; the limit is ${SCHEMA_LIMITS.maxPatternProgram} (write fewer or smaller counted repeats)`,
      { pattern: source },
    );
  }
  const text = `/${source}/${flags}`;
  return { regexp: { source, flags, test: (input) => compiled.test(input), toString: () => text }, program };
}

/** ajv's `code.regExp` engine: ajv calls it with a schema's pattern and "u". */
const re2Engine = Object.assign((pattern: string, flags: string) => compileUntrustedRegExp(pattern, flags, `Pattern "${pattern}"`), {
  code: 'compileUntrustedRegExp',
});

// ---------------------------------------------------------------------------------------------
// Formats a package's schema may use

type FormatDefinition = { type?: 'string' | 'number'; validate: ((value: never) => boolean) | true; compare?: unknown };

/**
 * A format the gateway offers, and what it costs per byte of the string it checks, in the units
 * of SCHEMA_LIMITS.maxCostPerByte: its RE2 program size, or for a function of ajv-formats a fixed
 * cost (those scan the string once with an anchored, fixed-width expression).
 */
interface UntrustedFormat {
  definition: FormatDefinition;
  cost: number;
}

/** ajv-formats' date, time and number functions: measured below 0.5 ns per byte, the cost of a small RE2 program. */
const FUNCTION_FORMAT_COST = 16;

/** ajv-formats' own expressions: ours to trust for size (one is 1157 characters), run on RE2 all the same. */
function re2Format(source: string, flags: string): UntrustedFormat {
  const { regexp, program } = compileRe2(source, flags, `format expression ${source}`, 'E_INTERNAL', false);
  return { definition: { validate: (value: string) => regexp.test(value) }, cost: program };
}

function fromAjvFormats(name: string): RegExp {
  const format = fullFormats[name];
  if (!(format instanceof RegExp)) throw new Error(`ajv-formats no longer defines ${name} as a regular expression`);
  return format;
}

function buildUntrustedFormats(): Record<string, UntrustedFormat> {
  const reuse = (name: string): UntrustedFormat => ({ definition: fullFormats[name] as FormatDefinition, cost: FUNCTION_FORMAT_COST });
  const viaRe2 = (name: string): UntrustedFormat => {
    const regex = fromAjvFormats(name);
    return re2Format(regex.source, regex.flags);
  };
  const test = (format: UntrustedFormat) => format.definition.validate as (value: string) => boolean;
  const hostname = fromAjvFormats('hostname');
  const hostnameBody = re2Format(hostname.source.replace('(?=.{1,253}\\.?$)', ''), hostname.flags);
  const duration = fromAjvFormats('duration');
  const durationBody = re2Format(duration.source.replace('(?!$)', '').replace('(?=\\d)', ''), duration.flags);
  const uriReference = viaRe2('uri-reference');
  const uriScheme = compileRe2('^[a-z][a-z0-9+\\-.]*:', 'i', 'uri scheme', 'E_INTERNAL');
  const notFragment = compileRe2('[/:]', '', 'uri separator', 'E_INTERNAL');
  return {
    // Functions of ajv-formats whose own expressions are anchored, fixed-width or a single `\d+`:
    // linear on V8, reused as they are.
    date: reuse('date'),
    time: reuse('time'),
    'date-time': reuse('date-time'),
    'iso-time': reuse('iso-time'),
    'iso-date-time': reuse('iso-date-time'),
    int32: reuse('int32'),
    int64: reuse('int64'),
    float: reuse('float'),
    double: reuse('double'),
    password: { definition: { validate: true }, cost: 0 },
    binary: { definition: { validate: true }, cost: 0 },
    // ajv-formats' expressions, run on RE2 instead of V8.
    email: viaRe2('email'),
    ipv4: viaRe2('ipv4'),
    ipv6: viaRe2('ipv6'),
    uuid: viaRe2('uuid'),
    'uri-reference': uriReference,
    'uri-template': viaRe2('uri-template'),
    'json-pointer': viaRe2('json-pointer'),
    'json-pointer-uri-fragment': viaRe2('json-pointer-uri-fragment'),
    'relative-json-pointer': viaRe2('relative-json-pointer'),
    byte: re2Format('^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$', ''),
    // Lookahead rewritten as plain checks around the rest of the expression.
    hostname: {
      definition: {
        validate: (value: string) => {
          const bare = value.endsWith('.') ? value.slice(0, -1) : value;
          return bare.length >= 1 && bare.length <= 253 && test(hostnameBody)(value);
        },
      },
      cost: hostnameBody.cost,
    },
    duration: {
      definition: { validate: (value: string) => value !== 'P' && !value.endsWith('T') && test(durationBody)(value) },
      cost: durationBody.cost,
    },
    uri: {
      definition: { validate: (value: string) => notFragment.regexp.test(value) && uriScheme.regexp.test(value) && test(uriReference)(value) },
      cost: notFragment.program + uriScheme.program + uriReference.cost,
    },
    // Not offered: `url` (an expression with negative lookahead and nested repeats, slow on V8
    // for some inputs) and `regex` (it would compile the data as an ECMAScript expression).
  };
}

let untrustedFormats: Record<string, UntrustedFormat> | undefined;
function formats(): Record<string, UntrustedFormat> {
  untrustedFormats ??= buildUntrustedFormats();
  return untrustedFormats;
}

/** The formats a package's schema may name; anything else is refused at install (E_SCHEMA_FORMAT). */
export function untrustedFormatNames(): string[] {
  return Object.keys(formats());
}

/** What `format` costs per byte of the string it checks (SCHEMA_LIMITS.maxCostPerByte's units). */
export function untrustedFormatCost(name: string): number | undefined {
  return Object.hasOwn(formats(), name) ? formats()[name]!.cost : undefined;
}

// ---------------------------------------------------------------------------------------------
// Checks on a package's schema before it is compiled

/** Keywords whose subschemas apply to the value itself (its every byte again). */
const SAME_VALUE = ['not', 'if', 'then', 'else'];
const SAME_VALUE_ARRAY = ['allOf', 'anyOf', 'oneOf'];
const SAME_VALUE_MAP = ['dependentSchemas', 'dependencies'];
/** Keywords whose subschemas apply to the members of an object or the items of an array. */
const MEMBER = ['additionalProperties', 'unevaluatedProperties'];
const ITEM = ['additionalItems', 'unevaluatedItems', 'contains'];
/** Keywords whose subschemas apply only where a `$ref` points at them. */
const DEFINITIONS = ['$defs', 'definitions'];
/** Keywords that move the base of `$ref` or reach outside the schema: references would not be ours to count. */
const REFUSED_KEYWORDS = ['$dynamicRef', '$recursiveRef', '$dynamicAnchor', '$recursiveAnchor', '$anchor'];

/**
 * Costs per byte of message of the keywords that scan the whole value they check, in the units of
 * SCHEMA_LIMITS.maxCostPerByte (one RE2 instruction per byte). Measured by
 * test/bench/schema.bench.ts on the 2-core development machine, in ns per byte of value:
 * uniqueItems 45 to 320 (canonical JSON is a sort and a stringify of every item), so it applies
 * once per value (a second one at the same value is refused) and to four nested arrays at most; an
 * enum 3 ns per value compared, per item however short; const, each required name and a length or
 * key count (minLength, maxProperties ...) about 1.
 */
const KEYWORD_COST = Object.freeze({ uniqueItems: 500, equality: 1, enumValue: 4, requiredName: 1, count: 1 });
/** Keywords that count the value's characters (ajv counts code points) or keys: one pass each. */
const COUNTING = ['minLength', 'maxLength', 'minProperties', 'maxProperties'];

const escapePointer = (key: string): string => key.replace(/~/g, '~0').replace(/\//g, '~1');

const isSchema = (value: unknown): boolean => typeof value === 'boolean' || (!!value && typeof value === 'object' && !Array.isArray(value));

interface Cost {
  /** Subschemas once references are expanded (compile size). */
  nodes: number;
  /**
   * Work per byte of the value this subschema checks: its own keywords, plus every subschema
   * applied to the same value, plus the costliest of what applies to one member, one key or one
   * item (members, keys and items are disjoint bytes of the value).
   */
  perByte: number;
  /** The single check that costs most in it: named when a schema is refused. */
  worst?: Leaf;
  /** Where uniqueItems applies to this very value (through allOf, $ref ...), if anywhere. */
  unique?: string;
}

interface Leaf {
  keyword: string;
  at: string;
  cost: number;
}

class SchemaCheck {
  readonly #root: unknown;
  readonly #place: string;
  readonly #code: ErrorCode;
  readonly #memo = new Map<string, Cost>();
  readonly #active = new Set<string>();
  readonly #programs = new Map<string, number>();

  constructor(root: unknown, place: string, code: ErrorCode) {
    this.#root = root;
    this.#place = place;
    this.#code = code;
  }

  #at(pointer: string): string {
    return `${this.#place}${pointer}`;
  }

  #limit(message: string, pointer: string): IsogateError {
    return fail('E_SCHEMA_LIMIT', `The schema ${this.#place}: ${message} (at ${this.#at(pointer) || '/'})`, { pointer: this.#at(pointer) });
  }

  #pattern(source: unknown, flags: string, pointer: string): number {
    const what = `The pattern at ${this.#at(pointer)}`;
    if (typeof source !== 'string') throw fail(this.#code, `${what} is not a string`);
    let size = this.#programs.get(source);
    if (size === undefined) {
      size = compileRe2(source, flags, what, 'E_SCHEMA_PATTERN').program;
      this.#programs.set(source, size);
    }
    return size;
  }

  #resolve(ref: unknown, pointer: string): string {
    if (typeof ref !== 'string' || !(ref === '#' || ref.startsWith('#/'))) {
      throw this.#limit(`$ref ${JSON.stringify(ref)} does not point inside the schema; only "#" and "#/..." references are allowed`, pointer);
    }
    let target: string;
    try {
      target = decodeURIComponent(ref.slice(1));
    } catch {
      throw fail(this.#code, `The schema ${this.#place}: $ref ${ref} at ${this.#at(pointer)} is not a valid URI fragment`);
    }
    let node: unknown = this.#root;
    for (const segment of target.split('/').slice(1)) {
      const key = segment.replace(/~1/g, '/').replace(/~0/g, '~');
      if (!node || typeof node !== 'object' || !Object.hasOwn(node, key)) {
        throw fail(this.#code, `The schema ${this.#place}: $ref ${ref} at ${this.#at(pointer)} points at nothing`);
      }
      node = (node as Record<string, unknown>)[key];
    }
    return target;
  }

  #node(pointer: string): unknown {
    let node: unknown = this.#root;
    for (const segment of pointer.split('/').slice(1)) node = (node as Record<string, unknown>)[segment.replace(/~1/g, '/').replace(/~0/g, '~')];
    return node;
  }

  /**
   * What ajv evaluates for `schema` once references are expanded: its subschemas and its work
   * per byte of the value. A subschema reached by several `$ref`s or repeated in an `allOf` counts
   * each time it applies. Refuses past SCHEMA_LIMITS naming the keyword that crossed the bound.
   */
  cost(schema: unknown, pointer: string, level: number): Cost {
    const known = this.#memo.get(pointer);
    if (known) return known;
    if (level > SCHEMA_LIMITS.maxDepth * 2) throw this.#limit(`subschemas and references nest more than ${SCHEMA_LIMITS.maxDepth * 2} deep`, pointer);
    const total: Cost = { nodes: 1, perByte: 0 };
    if (!schema || typeof schema !== 'object' || Array.isArray(schema)) {
      this.#memo.set(pointer, total);
      return total;
    }
    const node = schema as Record<string, unknown>;
    this.#active.add(pointer);
    const nodes = (count: number): void => {
      total.nodes += count;
      if (total.nodes > SCHEMA_LIMITS.maxExpandedNodes) {
        throw this.#limit(`it stands for more than ${SCHEMA_LIMITS.maxExpandedNodes} subschemas once its references are expanded`, pointer);
      }
    };
    const charge = (perByte: number, keyword: string, at: string, worst: Leaf | undefined = { keyword, at, cost: perByte }): void => {
      total.perByte += perByte;
      if (worst && worst.cost > (total.worst?.cost ?? 0)) total.worst = worst;
      if (total.perByte > SCHEMA_LIMITS.maxCostPerByte) {
        const costliest = total.worst
          ? `; the costliest check in it is "${total.worst.keyword}" at ${this.#at(total.worst.at) || '/'} (${total.worst.cost})`
          : '';
        throw this.#limit(
          `its checks cost more than ${SCHEMA_LIMITS.maxCostPerByte} per byte of message once references and repeated subschemas are expanded; "${keyword}" at ${this.#at(at) || '/'} brings it to ${total.perByte}${costliest} (check a value once: one uniqueItems, one format or pattern per value)`,
          pointer,
        );
      }
    };
    const worstOf = (at: string): Leaf | undefined => this.#memo.get(at)?.worst;
    // uniqueItems reads the whole array; once per value is all it can mean.
    const unique = (at: string | undefined): void => {
      if (at === undefined) return;
      if (total.unique !== undefined)
        throw this.#limit(`uniqueItems at ${this.#at(at)} and at ${this.#at(total.unique)} apply to the same value; keep one`, at);
      total.unique = at;
    };
    const uniqueOf = (at: string): void => unique(this.#memo.get(at)?.unique);
    /** A subschema: its nodes always count; its work per byte is the caller's to place. */
    const sub = (value: unknown, at: string): number => {
      if (!isSchema(value)) return 0;
      const cost = this.cost(value, at, level + 1);
      nodes(cost.nodes);
      return cost.perByte;
    };
    const entries = (keyword: string): [string, unknown][] => {
      const value = node[keyword];
      return Object.hasOwn(node, keyword) && value && typeof value === 'object' && !Array.isArray(value) ? Object.entries(value) : [];
    };
    const list = (keyword: string): unknown[] => (Object.hasOwn(node, keyword) && Array.isArray(node[keyword]) ? (node[keyword] as unknown[]) : []);

    for (const keyword of REFUSED_KEYWORDS) {
      if (Object.hasOwn(node, keyword))
        throw this.#limit(`${keyword} is not supported in a package's schema; use "$ref": "#/$defs/NAME"`, `${pointer}/${escapePointer(keyword)}`);
    }
    if (pointer !== '' && Object.hasOwn(node, '$id')) throw this.#limit('$id is allowed only at the top of a schema', `${pointer}/$id`);

    // Keywords of this subschema that scan the value.
    if (Object.hasOwn(node, 'pattern')) charge(this.#pattern(node.pattern, 'u', `${pointer}/pattern`), 'pattern', `${pointer}/pattern`);
    if (Object.hasOwn(node, 'format')) {
      const cost = typeof node.format === 'string' ? untrustedFormatCost(node.format) : undefined;
      if (cost === undefined) {
        throw fail(
          'E_SCHEMA_FORMAT',
          `The schema ${this.#place}: format ${JSON.stringify(node.format)} at ${this.#at(`${pointer}/format`)} is not one the gateway checks; use one of ${untrustedFormatNames().join(', ')}, or a pattern`,
          { pointer: this.#at(`${pointer}/format`) },
        );
      }
      charge(cost, `format: ${node.format as string}`, `${pointer}/format`);
    }
    if (node.uniqueItems === true) unique(`${pointer}/uniqueItems`);
    if (node.uniqueItems === true) charge(KEYWORD_COST.uniqueItems, 'uniqueItems', `${pointer}/uniqueItems`);
    if (Object.hasOwn(node, 'const')) charge(KEYWORD_COST.equality, 'const', `${pointer}/const`);
    if (Array.isArray(node.enum)) charge(KEYWORD_COST.enumValue * node.enum.length, 'enum', `${pointer}/enum`);
    for (const keyword of COUNTING) if (Object.hasOwn(node, keyword)) charge(KEYWORD_COST.count, keyword, `${pointer}/${keyword}`);
    if (Array.isArray(node.required)) charge(KEYWORD_COST.requiredName * node.required.length, 'required', `${pointer}/required`);
    for (const [key, names] of entries('dependentRequired')) {
      if (Array.isArray(names))
        charge(KEYWORD_COST.requiredName * (1 + names.length), 'dependentRequired', `${pointer}/dependentRequired/${escapePointer(key)}`);
    }

    // Subschemas applied to the same value: each adds its whole cost.
    for (const keyword of SAME_VALUE) {
      charge(sub(node[keyword], `${pointer}/${keyword}`), keyword, `${pointer}/${keyword}`, worstOf(`${pointer}/${keyword}`));
      uniqueOf(`${pointer}/${keyword}`);
    }
    for (const keyword of SAME_VALUE_ARRAY) {
      // The same subschema twice in one list checks the value twice for nothing but the cost.
      const seen = new Map<string, number>();
      list(keyword).forEach((item, index) => {
        const text = canonicalJson(item);
        const first = seen.get(text);
        if (first !== undefined)
          throw this.#limit(`${keyword}/${index} repeats ${keyword}/${first}; list each subschema once`, `${pointer}/${keyword}/${index}`);
        seen.set(text, index);
        charge(sub(item, `${pointer}/${keyword}/${index}`), keyword, `${pointer}/${keyword}/${index}`, worstOf(`${pointer}/${keyword}/${index}`));
        uniqueOf(`${pointer}/${keyword}/${index}`);
      });
    }
    for (const keyword of SAME_VALUE_MAP) {
      for (const [key, item] of entries(keyword)) {
        const at = `${pointer}/${keyword}/${escapePointer(key)}`;
        charge(sub(item, at), keyword, at, worstOf(at));
        uniqueOf(at);
      }
    }
    if (Object.hasOwn(node, '$ref')) {
      const target = this.#resolve(node.$ref, `${pointer}/$ref`);
      if (this.#active.has(target)) {
        throw this.#limit(
          `$ref ${JSON.stringify(node.$ref)} refers back to a schema that contains it; recursive schemas are not accepted from packages`,
          `${pointer}/$ref`,
        );
      }
      const cost = this.cost(this.#node(target), target, level + 1);
      nodes(cost.nodes);
      charge(cost.perByte, '$ref', `${pointer}/$ref`, cost.worst);
      unique(cost.unique);
    }
    // Definitions count as subschemas (ajv compiles them) but cost only where a $ref applies them.
    for (const keyword of DEFINITIONS) for (const [key, item] of entries(keyword)) sub(item, `${pointer}/${keyword}/${escapePointer(key)}`);

    // One member of an object: the costliest `properties` entry, every `patternProperties` entry
    // (a name may match them all) and the catch-alls. One key: every patternProperties expression
    // and propertyNames. One item: the costliest positional schema, plus items, contains and the rest.
    const group = () => ({ sum: 0, worst: undefined as Leaf | undefined });
    const add = (into: ReturnType<typeof group>, cost: number, worst: Leaf | undefined): void => {
      into.sum += cost;
      if (worst && worst.cost > (into.worst?.cost ?? 0)) into.worst = worst;
    };
    const member = group();
    const key = group();
    const item = group();
    let widest = { sum: 0, worst: undefined as Leaf | undefined };
    for (const [name, entry] of entries('properties')) {
      const at = `${pointer}/properties/${escapePointer(name)}`;
      const cost = sub(entry, at);
      if (cost > widest.sum) widest = { sum: cost, worst: worstOf(at) };
    }
    add(member, widest.sum, widest.worst);
    for (const [name, entry] of entries('patternProperties')) {
      const at = `${pointer}/patternProperties/${escapePointer(name)}`;
      const program = this.#pattern(name, 'u', at);
      add(key, program, { keyword: 'patternProperties', at, cost: program });
      add(member, sub(entry, at), worstOf(at));
    }
    for (const keyword of MEMBER) add(member, sub(node[keyword], `${pointer}/${keyword}`), worstOf(`${pointer}/${keyword}`));
    add(key, sub(node.propertyNames, `${pointer}/propertyNames`), worstOf(`${pointer}/propertyNames`));
    widest = { sum: 0, worst: undefined };
    for (const keyword of ['prefixItems', 'items'])
      list(keyword).forEach((entry, index) => {
        const at = `${pointer}/${keyword}/${index}`;
        const cost = sub(entry, at);
        if (cost > widest.sum) widest = { sum: cost, worst: worstOf(at) };
      });
    add(item, widest.sum, widest.worst);
    if (!Array.isArray(node.items)) add(item, sub(node.items, `${pointer}/items`), worstOf(`${pointer}/items`));
    for (const keyword of ITEM) add(item, sub(node[keyword], `${pointer}/${keyword}`), worstOf(`${pointer}/${keyword}`));
    const inner = [
      { ...member, keyword: 'properties', at: `${pointer}/properties` },
      { ...key, keyword: 'propertyNames', at: `${pointer}/propertyNames` },
      { ...item, keyword: 'items', at: `${pointer}/items` },
    ].reduce((a, b) => (b.sum > a.sum ? b : a));
    charge(inner.sum, inner.keyword, inner.at, inner.worst);

    this.#active.delete(pointer);
    this.#memo.set(pointer, total);
    return total;
  }
}

/**
 * Refuses a package's schema the gateway cannot validate in bounded time: larger or deeper than
 * SCHEMA_LIMITS (E_SCHEMA_LIMIT), references outside itself or recursive (E_SCHEMA_LIMIT),
 * a pattern RE2 cannot run (E_SCHEMA_PATTERN), a format not offered (E_SCHEMA_FORMAT).
 * `place` names the schema in messages ("/endpoints/0/schema").
 */
export function checkUntrustedSchema(schema: unknown, place: string, code: ErrorCode = 'E_MANIFEST'): number {
  return checkedSchema(schema, place, code).cost;
}

/** The schema texts that passed checkUntrustedSchema last, with their cost, least recently used first out. */
const checkedByText = new Map<string, number>();
const CHECKED_BY_TEXT_MAX = 256;

/**
 * checkUntrustedSchema, with the schema's JSON text. A text that passed once passes again at
 * the same cost (the checks read nothing but the schema), so the walk is made once per text:
 * a push parses its manifest in the gateway, the verify worker and the launcher, each time into
 * new objects, and the walk was a quarter of a parse.
 */
function checkedSchema(schema: unknown, place: string, code: ErrorCode): { text: string; cost: number } {
  if (typeof schema !== 'boolean' && (!schema || typeof schema !== 'object' || Array.isArray(schema))) {
    throw fail(code, `The schema ${place} is not a JSON Schema (an object or a boolean)`);
  }
  if (typeof schema === 'boolean') return { text: String(schema), cost: 0 };
  // Before the text is made: JSON.stringify recurses.
  const depth = jsonDepth(schema, SCHEMA_LIMITS.maxDepth);
  if (depth > SCHEMA_LIMITS.maxDepth) {
    throw fail('E_SCHEMA_LIMIT', `The schema ${place} nests deeper than ${SCHEMA_LIMITS.maxDepth} levels`, { pointer: place });
  }
  const text = JSON.stringify(schema);
  const bytes = Buffer.byteLength(text);
  if (bytes > SCHEMA_LIMITS.maxBytes) {
    throw fail('E_SCHEMA_LIMIT', `The schema ${place} is ${bytes} bytes as JSON; the limit is ${SCHEMA_LIMITS.maxBytes}`, { pointer: place });
  }
  let cost = checkedByText.get(text);
  if (cost === undefined) {
    cost = new SchemaCheck(schema, place, code).cost(schema, '', 0).perByte;
    if (checkedByText.size >= CHECKED_BY_TEXT_MAX) checkedByText.delete(checkedByText.keys().next().value!);
  } else checkedByText.delete(text);
  checkedByText.set(text, cost);
  return { text, cost };
}

/** A package's schema's work per byte of message (SCHEMA_LIMITS.maxCostPerByte's units), after the checks of checkUntrustedSchema. */
export function schemaCostPerByte(schema: unknown, place: string): number {
  return checkUntrustedSchema(schema, place);
}

/** A value's JSON with object keys sorted, so that equal JSON values give equal text. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const keys = Object.keys(value).sort();
    return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** uniqueItems in time near-linear in the array: ajv's own compares every pair of objects. */
function addLinearUniqueItems(ajv: Ajv2020): void {
  ajv.removeKeyword('uniqueItems');
  ajv.addKeyword({
    keyword: 'uniqueItems',
    type: 'array',
    schemaType: 'boolean',
    error: { message: 'must NOT have duplicate items' },
    validate: (unique: boolean, data: unknown[]) => {
      if (!unique) return true;
      const seen = new Set<string>();
      for (const item of data) {
        const key = canonicalJson(item);
        if (seen.has(key)) return false;
        seen.add(key);
      }
      return true;
    },
  });
}

/** Code points in `text` (what maxLength and minLength count): its length unless it has a surrogate. */
function codePointLength(text: string): number {
  if (!SURROGATE.test(text)) return text.length;
  let length = 0;
  for (let index = 0; index < text.length; index += 1) {
    const unit = text.charCodeAt(index);
    // A high surrogate followed by a low one is one code point; a lone surrogate counts as one.
    if (unit >= 0xd800 && unit <= 0xdbff && index + 1 < text.length && (text.charCodeAt(index + 1) & 0xfc00) === 0xdc00) index += 1;
    length += 1;
  }
  return length;
}
const SURROGATE = /[\ud800-\udfff]/;

/**
 * maxLength and minLength as ajv's own (code points, draft 2020-12), without counting a string's
 * code points where its UTF-16 length decides: there are never more code points than units, so a
 * string no longer than maxLength units passes it and one shorter than minLength units fails it.
 * ajv's own counts every string unit by unit, and on the router's path that was the largest part
 * of checking a small message against a schema of a few bounded strings.
 */
function addFastStringLength(ajv: Ajv2020): void {
  for (const keyword of ['maxLength', 'minLength'] as const) ajv.removeKeyword(keyword);
  ajv.addKeyword({
    keyword: ['maxLength', 'minLength'],
    type: 'string',
    schemaType: 'number',
    $data: true,
    error: {
      message: ({ keyword, schemaCode }) => str`must NOT have ${keyword === 'maxLength' ? 'more' : 'fewer'} than ${schemaCode} characters`,
      params: ({ schemaCode }) => _`{limit: ${schemaCode}}`,
    },
    code(cxt: KeywordCxt) {
      const { keyword, data, schemaCode } = cxt;
      const count = cxt.gen.scopeValue('func', { ref: codePointLength });
      cxt.fail$data(
        keyword === 'maxLength'
          ? _`${data}.length > ${schemaCode} && ${count}(${data}) > ${schemaCode}`
          : _`${data}.length < ${schemaCode} || ${count}(${data}) < ${schemaCode}`,
      );
    },
  });
}

let untrustedAjv: Ajv2020 | undefined;
function sharedUntrustedAjv(): Ajv2020 {
  if (!untrustedAjv) {
    // allErrors off: with it ajv keeps an error object per failed keyword per value, so one
    // `required` list under `items` made millions of objects for one message. The first violation
    // is reported, which is what a refused emit or configuration needs.
    untrustedAjv = new Ajv2020({ allErrors: false, strict: false, allowUnionTypes: true, logger: false, code: { regExp: re2Engine } });
    for (const [name, format] of Object.entries(formats())) untrustedAjv.addFormat(name, format.definition as never);
    addLinearUniqueItems(untrustedAjv);
    addFastStringLength(untrustedAjv);
  }
  return untrustedAjv;
}

const untrustedCompiled = new WeakMap<object, ValidateFunction>();
/** The validators of the schema texts compiled last, least recently used first out. */
const untrustedByText = new Map<string, ValidateFunction>();
const UNTRUSTED_BY_TEXT_MAX = 256;

/**
 * The one way to compile a schema that came in a package. Checks it (checkUntrustedSchema), then
 * compiles it once per schema text (kept for the last 256) in the instance for package schemas. The schema is taken out
 * of ajv's registry right after: publishers' `$id`s never meet (a nested `$id` is refused) and the
 * instance does not keep manifests of uninstalled apps. A schema ajv refuses is `code`.
 */
export function compileUntrustedSchema(schema: object, place: string, code: ErrorCode = 'E_MANIFEST'): ValidateFunction {
  let validate = untrustedCompiled.get(schema);
  if (validate) return validate;
  // Checked first (size and depth bound the text). The same text compiles to the same validator:
  // each parse of a manifest (a push reads it in the gateway, the verify worker, the launcher and
  // the router) makes new objects, and ajv's compile was the largest CPU cost of a push in the
  // gateway's thread.
  const { text } = checkedSchema(schema, place, code);
  validate = untrustedByText.get(text);
  if (validate) {
    untrustedByText.delete(text);
    untrustedByText.set(text, validate);
    untrustedCompiled.set(schema, validate);
    return validate;
  }
  const ajv = sharedUntrustedAjv();
  try {
    validate = ajv.compile(schema);
  } catch (error) {
    if (error instanceof IsogateError) throw error;
    throw fail(code, `The schema ${place} is not a valid JSON Schema: ${(error as Error).message}`);
  } finally {
    ajv.removeSchema(schema);
  }
  untrustedCompiled.set(schema, validate);
  untrustedByText.set(text, validate);
  if (untrustedByText.size > UNTRUSTED_BY_TEXT_MAX) untrustedByText.delete(untrustedByText.keys().next().value!);
  return validate;
}

// ---------------------------------------------------------------------------------------------
// Platform schemas

function newAjv(): Ajv2020 {
  const ajv = new Ajv2020({ allErrors: true, strict: false, allowUnionTypes: true });
  addFormats(ajv);
  return ajv;
}

const sharedAjv = newAjv();
const compiled = new WeakMap<object, ValidateFunction>();

/**
 * Compiles (or returns the cached validator of) one of the platform's own schemas; a schema that
 * does not compile is `code`. Never for a schema from a package: that is compileUntrustedSchema.
 */
export function compileSchema(schema: object, code: ErrorCode = 'E_BAD_REQUEST', what = 'schema'): ValidateFunction {
  let validate = compiled.get(schema);
  if (!validate) {
    try {
      // A schema with its own $id would collide when compiled twice in one Ajv instance.
      validate = Object.hasOwn(schema, '$id') ? newAjv().compile(schema) : sharedAjv.compile(schema);
    } catch (error) {
      throw fail(code, `The ${what} is not a valid JSON Schema: ${(error as Error).message}`);
    }
    compiled.set(schema, validate);
  }
  return validate;
}

export function describeViolations(errors: ErrorObject[] | null | undefined): SchemaViolation[] {
  return (errors ?? []).map((error) => {
    let pointer = error.instancePath;
    let message = error.message ?? 'is not valid';
    if (error.keyword === 'required') pointer = `${pointer}/${String(error.params.missingProperty)}`;
    if (error.keyword === 'additionalProperties') {
      pointer = `${pointer}/${String(error.params.additionalProperty)}`;
      message = 'is not an allowed property';
    }
    if (error.keyword === 'enum') message = `must be one of ${JSON.stringify(error.params.allowedValues)}`;
    return { pointer, rule: error.keyword, message };
  });
}

export function formatViolations(violations: SchemaViolation[], limit = 5): string {
  const shown = violations.slice(0, limit).map((v) => `${v.pointer || '/'} ${v.message} (${v.rule})`);
  const more = violations.length > limit ? `; and ${violations.length - limit} more` : '';
  return shown.join('; ') + more;
}

/** Validates `value` and throws `code` naming each JSON pointer and rule broken. */
export function assertValid(validate: ValidateFunction, value: unknown, code: ErrorCode, what: string): void {
  if (validate(value)) return;
  const violations = describeViolations(validate.errors);
  throw fail(code, `${what} is not valid: ${formatViolations(violations)}`, { violations });
}
