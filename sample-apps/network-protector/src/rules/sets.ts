/**
 * Sets of integers as sorted, disjoint, inclusive ranges, and the list syntax Suricata uses for
 * addresses and ports: `any`, `!x`, `[a,b,!c]` nested, `$VAR`. A list is the union of its
 * positive items minus the union of its negated ones (all of the space when it has no positive
 * item), which is how Suricata resolves `[$HOME_NET,!10.0.0.1]`.
 */
import { fault, RuleFault } from './position.js';

export type Ranges = Array<[bigint, bigint]>;

export function normalize(ranges: Ranges): Ranges {
  const sorted = [...ranges].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const out: Ranges = [];
  for (const [lo, hi] of sorted) {
    const last = out[out.length - 1];
    if (last && lo <= last[1] + 1n) {
      if (hi > last[1]) last[1] = hi;
    } else out.push([lo, hi]);
  }
  return out;
}

export function subtract(from: Ranges, minus: Ranges): Ranges {
  let current = normalize(from);
  for (const [mlo, mhi] of normalize(minus)) {
    const next: Ranges = [];
    for (const [lo, hi] of current) {
      if (mhi < lo || mlo > hi) {
        next.push([lo, hi]);
        continue;
      }
      if (lo < mlo) next.push([lo, mlo - 1n]);
      if (hi > mhi) next.push([mhi + 1n, hi]);
    }
    current = next;
  }
  return current;
}

/** A value over one or more dimensions (IPv4 and IPv6 for addresses; one for ports). */
export interface SetAlgebra<T> {
  readonly all: () => T;
  readonly empty: () => T;
  readonly union: (a: T, b: T) => T;
  readonly subtract: (a: T, b: T) => T;
  readonly isEmpty: (a: T) => boolean;
  /** Parses one literal (address, CIDR, range, port, port range) at `at`. */
  readonly leaf: (text: string, at: number) => T;
  /** The variable's value (text to parse again), or undefined when it is not defined. */
  readonly variable: (name: string) => string | undefined;
  /** What the field is called in messages: "source address", "destination port". */
  readonly what: string;
  /** Suricata's port lists refuse a negation inside a negated list; its address lists take it. */
  readonly negationInNegation: boolean;
  /**
   * Resolved variables, shared by every rule parsed with the same variables: a variable is parsed
   * once, so values that refer to others many times over (`[$A,$A]`, 16 deep) cost no more than
   * one parse each instead of doubling per level.
   */
  readonly resolved: Map<string, T>;
}

const MAX_VARIABLE_DEPTH = 16;
const MAX_LIST_DEPTH = 32;

/** Parses a header field; `base` is its offset in the rule, for error positions. */
export function parseSetExpression<T>(text: string, base: number, algebra: SetAlgebra<T>): T {
  return new SetParser(algebra).parseTop(text, base, 0);
}

class SetParser<T> {
  constructor(private readonly algebra: SetAlgebra<T>) {}

  parseTop(text: string, base: number, varDepth: number): T {
    if (text.length === 0) fault('E_RULE_SYNTAX', base, `the ${this.algebra.what} is missing`);
    let depth = 0;
    for (let i = 0; i < text.length; i++) {
      if (text[i] === '[') depth++;
      else if (text[i] === ']') {
        depth--;
        if (depth < 0) fault('E_RULE_BRACKETS', base + i, `the ${this.algebra.what} has a "]" without its "["`);
      }
    }
    if (depth > 0) fault('E_RULE_BRACKETS', base + text.length, `the ${this.algebra.what} has a "[" that is never closed`);
    const state = { text, pos: 0, base, varDepth, negated: false };
    const value = this.item(state, 0);
    if (state.pos !== text.length) fault('E_RULE_SYNTAX', base + state.pos, `unexpected "${text.slice(state.pos)}" in the ${this.algebra.what}`);
    return value;
  }

  private item(s: { text: string; pos: number; base: number; varDepth: number; negated: boolean }, listDepth: number): T {
    const { algebra } = this;
    const start = s.pos;
    while (s.text[s.pos] === ' ') s.pos++;
    if (s.text[s.pos] === '!') {
      s.pos++;
      const inner = this.negatedItem(s, listDepth);
      return this.nonEmpty(algebra.subtract(algebra.all(), inner), s.base + start);
    }
    if (s.text[s.pos] === '[') {
      if (listDepth >= MAX_LIST_DEPTH) fault('E_RULE_LIMIT', s.base + start, `the ${algebra.what} nests lists deeper than ${MAX_LIST_DEPTH}`);
      s.pos++;
      let positive: T | undefined;
      let negative = algebra.empty();
      for (;;) {
        while (s.text[s.pos] === ' ') s.pos++;
        const itemStart = s.pos;
        const negated = s.text[s.pos] === '!';
        // Suricata takes a trailing comma ("[a,]"), not an empty item elsewhere.
        if (s.text[s.pos] === ']' && positive !== undefined && s.text[s.pos - 1] === ',') {
          s.pos++;
          break;
        }
        if (s.text[s.pos] === ']' || s.text[s.pos] === ',' || s.pos >= s.text.length) {
          fault('E_RULE_SYNTAX', s.base + s.pos, `an empty item in the ${algebra.what} list`);
        }
        if (negated) {
          s.pos++;
          negative = algebra.union(negative, this.negatedItem(s, listDepth + 1));
        } else {
          const value = this.item(s, listDepth + 1);
          positive = positive === undefined ? value : algebra.union(positive, value);
        }
        while (s.text[s.pos] === ' ') s.pos++;
        if (s.pos === itemStart) fault('E_RULE_SYNTAX', s.base + s.pos, `unexpected character in the ${algebra.what}`);
        if (s.text[s.pos] === ',') {
          s.pos++;
          continue;
        }
        if (s.text[s.pos] === ']') {
          s.pos++;
          break;
        }
        fault('E_RULE_SYNTAX', s.base + s.pos, `expected "," or "]" in the ${algebra.what}`);
      }
      return this.nonEmpty(algebra.subtract(positive ?? algebra.all(), negative), s.base + start);
    }
    // A literal or variable runs to the next list punctuation.
    let end = s.pos;
    while (end < s.text.length && !',[]'.includes(s.text[end]!)) end++;
    const word = s.text.slice(s.pos, end).replace(/ +$/, '');
    s.pos = end;
    if (word.startsWith('$')) {
      const name = word.slice(1);
      const value = algebra.variable(name);
      if (value === undefined) fault('E_RULE_VARIABLE', s.base + start, `the variable "${word}" is not defined for the ${algebra.what}`);
      if (s.varDepth >= MAX_VARIABLE_DEPTH)
        fault('E_RULE_VARIABLE', s.base + start, `the variable "${word}" refers to itself, or variables nest deeper than ${MAX_VARIABLE_DEPTH}`);
      const known = algebra.resolved.get(name);
      if (known !== undefined) return known;
      try {
        const resolved = this.parseTop(value.trim(), s.base + start, s.varDepth + 1);
        algebra.resolved.set(name, resolved);
        return resolved;
      } catch (error) {
        // A fault inside a variable's value points at the variable's use.
        if (error instanceof RuleFault) fault(error.code, s.base + start, `in "${word}": ${error.message}`);
        throw error;
      }
    }
    if (word.toLowerCase() === 'any') return algebra.all();
    return algebra.leaf(word, s.base + start);
  }

  private negatedItem(s: { text: string; pos: number; base: number; varDepth: number; negated: boolean }, listDepth: number): T {
    if (s.negated && !this.algebra.negationInNegation) fault('E_RULE_SYNTAX', s.base + s.pos - 1, `a negation inside a negated ${this.algebra.what} list`);
    const outer = s.negated;
    s.negated = true;
    try {
      return this.item(s, listDepth);
    } finally {
      s.negated = outer;
    }
  }

  private nonEmpty(value: T, at: number): T {
    if (this.algebra.isEmpty(value)) fault('E_RULE_RANGE', at, `the ${this.algebra.what} matches nothing (everything is negated)`);
    return value;
  }
}
