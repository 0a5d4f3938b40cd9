/**
 * JSON text of an emitted message, exactly what `JSON.stringify(value)` returns, made faster for
 * values that hold long strings.
 *
 * V8 11 (Node 20) escapes a string in JSON.stringify one character at a time: about 200 us for
 * a 64 KB string in Node's own thread, most of what a large json message cost end to end. A long
 * string that needs no escaping (no `"`, `\`, control character or lone surrogate, which is
 * what JSON.stringify would escape) is instead checked by one anchored regular expression
 * (about 4x faster on this machine) and quoted by concatenation, which copies nothing. Every
 * other string, and anything that is not plain data (a `toJSON`, a class instance, a BigInt),
 * goes through JSON.stringify itself, in the context JSON.stringify would give it (its key), so
 * the text is the same in every case; only the speed differs.
 *
 * Walking a value in JavaScript costs more than JSON.stringify for small messages, so the walk
 * is for values that had long strings: `encode` keeps, per endpoint, whether the last message
 * was worth walking.
 */

/** Strings from this length are checked and quoted as they are; shorter ones are JSON.stringify's. */
export const LONG_STRING = 1024;

export interface JsonTextEncoder {
  /** `JSON.stringify(value)`, walking the value when `walk` is true (no object per call: emit is the hot path). */
  encode(value: unknown, walk: boolean): string | undefined;
  /** Whether the last encode walked and quoted a long string as it is: the walk paid off. */
  readonly walkPaidOff: boolean;
}

/** Built once, before any app code runs: it keeps its own references to the builtins it uses. */
export function jsonTextEncoder(): JsonTextEncoder {
  const { stringify } = JSON;
  const { keys, getPrototypeOf } = Object;
  const { isArray } = Array;
  const call = Function.prototype.call;
  const exec = call.bind(RegExp.prototype.exec) as (pattern: RegExp, text: string) => RegExpExecArray | null;
  const wellFormed = call.bind(String.prototype.isWellFormed) as (text: string) => boolean;
  const includes = call.bind(Array.prototype.includes) as (list: unknown[], value: unknown) => boolean;
  const push = call.bind(Array.prototype.push) as (list: unknown[], value: unknown) => number;
  const pop = call.bind(Array.prototype.pop) as (list: unknown[]) => unknown;
  const sliceText = call.bind(String.prototype.slice) as (text: string, start: number, end?: number) => string;
  const objectPrototype = Object.prototype;
  const arrayPrototype = Array.prototype;
  // Anchored and greedy: V8 runs it as one tight loop; an unanchored search for the characters
  // to escape measured three times slower (it restarts at every position).
  const NEEDS_NO_ESCAPE = /^[^\u0000-\u001f"\\]*$/;

  let longSeen = false;

  function quote(text: string): string {
    if (text.length < LONG_STRING) return stringify(text);
    // isWellFormed is immediate on a one-byte string; a lone surrogate is escaped by stringify.
    if (!wellFormed(text) || exec(NEEDS_NO_ESCAPE, text) === null) return stringify(text);
    longSeen = true;
    return `"${text}"`;
  }

  /** JSON.stringify of `value` as the property `key` of an object: its toJSON, if any, sees the key. */
  function inContext(key: string, value: unknown): string | undefined {
    const text = stringify({ [key]: value }) as string;
    return text === '{}' ? undefined : sliceText(text, stringify(key).length + 2, -1);
  }

  function value(key: string, item: unknown, stack: object[]): string | undefined {
    if (typeof item === 'string') return quote(item);
    if (typeof item !== 'object' || item === null) return typeof item === 'bigint' ? inContext(key, item) : (stringify(item) as string | undefined);
    if ('toJSON' in item) return inContext(key, item);
    const prototype = getPrototypeOf(item);
    const array = isArray(item);
    if (array ? prototype !== arrayPrototype : prototype !== objectPrototype && prototype !== null) return inContext(key, item);
    if (includes(stack, item)) throw new TypeError('Converting circular structure to JSON');
    push(stack, item);
    let text: string;
    if (array) {
      const list = item as unknown[];
      text = '[';
      for (let index = 0, length = list.length; index < length; index += 1) {
        if (index > 0) text += ',';
        text += value(`${index}`, list[index], stack) ?? 'null';
      }
      text += ']';
    } else {
      const record = item as Record<string, unknown>;
      text = '{';
      let first = true;
      for (const name of keys(record)) {
        const part = value(name, record[name], stack);
        if (part === undefined) continue;
        text += `${first ? '' : ','}${stringify(name)}:${part}`;
        first = false;
      }
      text += '}';
    }
    pop(stack);
    return text;
  }

  return {
    encode(message, walk) {
      longSeen = false;
      if (!walk && typeof message !== 'string') return stringify(message) as string | undefined;
      return value('', message, []);
    },
    get walkPaidOff() {
      return longSeen;
    },
  };
}
