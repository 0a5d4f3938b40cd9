/** Header ports: `n`, `a:b`, `a:`, `:b` over sets.ts's list syntax. */
import { fault } from './position.js';
import { normalize, parseSetExpression, type Ranges, type SetAlgebra, subtract } from './sets.js';
import type { PortSet } from './types.js';

function port(text: string, at: number, what: string): bigint {
  if (!/^[0-9]{1,5}$/.test(text)) fault('E_RULE_VALUE', at, `"${text}" is not a valid ${what}`);
  const n = Number(text);
  if (n > 65535) fault('E_RULE_RANGE', at, `the ${what} ${n} is above 65535`);
  return BigInt(n);
}

export function parsePorts(text: string, at: number, variables: Readonly<Record<string, string>>, what: string): PortSet {
  const algebra: SetAlgebra<Ranges> = {
    what,
    all: () => [[0n, 65535n]],
    empty: () => [],
    union: (a, b) => normalize([...a, ...b]),
    subtract,
    isEmpty: (a) => a.length === 0,
    leaf: (word, wordAt) => {
      const colon = word.indexOf(':');
      if (colon < 0) {
        const p = port(word, wordAt, what);
        return [[p, p]];
      }
      if (word === ':') return [[0n, 65535n]];
      const lo = colon === 0 ? 0n : port(word.slice(0, colon), wordAt, what);
      const hi = colon === word.length - 1 ? 65535n : port(word.slice(colon + 1), wordAt + colon + 1, what);
      if (lo > hi) fault('E_RULE_RANGE', wordAt, `the ${what} range "${word}" ends before it starts`);
      return [[lo, hi]];
    },
    variable: (name) => (Object.hasOwn(variables, name) ? variables[name] : undefined),
    resolved: resolvedFor(variables),
    negationInNegation: false,
  };
  return parseSetExpression(text, at, algebra).map(([lo, hi]) => [Number(lo), Number(hi)] as const);
}

const resolvedCache = new WeakMap<object, Map<string, Ranges>>();
function resolvedFor(variables: object): Map<string, Ranges> {
  let cache = resolvedCache.get(variables);
  if (!cache) {
    cache = new Map();
    resolvedCache.set(variables, cache);
  }
  return cache;
}
