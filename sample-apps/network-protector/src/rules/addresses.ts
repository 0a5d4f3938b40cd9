/** Header addresses: IPv4 and IPv6 literals, CIDRs, v4 netmasks, `a-b` ranges, over sets.ts's list syntax. */
import { fault } from './position.js';
import { normalize, parseSetExpression, type Ranges, type SetAlgebra, subtract } from './sets.js';
import type { AddressSet } from './types.js';

interface Space {
  v4: Ranges;
  v6: Ranges;
}

const V4_MAX = (1n << 32n) - 1n;
const V6_MAX = (1n << 128n) - 1n;

export function parseIpv4(text: string): bigint | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0n;
  for (const part of parts) {
    // inet_pton's rules: decimal, no leading zero, at most 255.
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) return undefined;
    const n = Number(part);
    if (n > 255) return undefined;
    value = (value << 8n) | BigInt(n);
  }
  return value;
}

export function parseIpv6(text: string): bigint | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(text)) return undefined;
  let head = text;
  let tailV4: bigint | undefined;
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.')) {
    tailV4 = parseIpv4(text.slice(lastColon + 1));
    if (tailV4 === undefined) return undefined;
    head = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const halves = head.split('::');
  if (halves.length > 2) return undefined;
  const group = (s: string): string[] | undefined => {
    if (s === '') return [];
    const groups = s.split(':');
    return groups.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g)) ? groups : undefined;
  };
  const left = group(halves[0]!);
  const right = halves.length === 2 ? group(halves[1]!) : [];
  if (!left || !right) return undefined;
  const total = left.length + right.length;
  if (halves.length === 2 ? total > 7 : total !== 8) return undefined;
  const groups = [...left, ...new Array<string>(8 - total).fill('0'), ...right];
  let value = 0n;
  for (const g of groups) value = (value << 16n) | BigInt(Number.parseInt(g, 16));
  if (tailV4 !== undefined) value = (value & ~0xffffffffn) | tailV4;
  return value;
}

function prefixRange(address: bigint, prefix: number, bits: number): [bigint, bigint] {
  const hostBits = BigInt(bits - prefix);
  const lo = (address >> hostBits) << hostBits;
  return [lo, lo + (1n << hostBits) - 1n];
}

function leaf(text: string, at: number, what: string): Space {
  const slash = text.indexOf('/');
  const dash = text.indexOf('-');
  const bad = (detail: string): never => fault('E_RULE_VALUE', at, `"${text}" is not a valid ${what}: ${detail}`);
  if (slash >= 0) {
    const base = text.slice(0, slash);
    const mask = text.slice(slash + 1);
    const v4 = parseIpv4(base);
    if (v4 !== undefined) {
      let prefix: number | undefined;
      if (/^[0-9]{1,2}$/.test(mask) && Number(mask) <= 32) prefix = Number(mask);
      else {
        const netmask = parseIpv4(mask);
        if (netmask !== undefined) {
          const ones = netmask.toString(2).padStart(32, '0');
          if (/^1*0*$/.test(ones)) prefix = ones.indexOf('0') < 0 ? 32 : ones.indexOf('0');
        }
      }
      if (prefix === undefined) bad('the netmask must be 0 to 32 or a dotted mask');
      return { v4: [prefixRange(v4, prefix!, 32)], v6: [] };
    }
    const v6 = parseIpv6(base);
    if (v6 === undefined) bad('not an IPv4 or IPv6 address');
    if (!/^[0-9]{1,3}$/.test(mask) || Number(mask) > 128) bad('the prefix length must be 0 to 128');
    return { v4: [], v6: [prefixRange(v6!, Number(mask), 128)] };
  }
  if (dash >= 0) {
    const a = text.slice(0, dash);
    const b = text.slice(dash + 1);
    const a4 = parseIpv4(a);
    const b4 = parseIpv4(b);
    if (a4 !== undefined && b4 !== undefined) {
      if (a4 > b4) fault('E_RULE_RANGE', at, `the address range "${text}" ends before it starts`);
      return { v4: [[a4, b4]], v6: [] };
    }
    // Suricata 7 refuses IPv6 ranges written a-b (CIDRs work).
    return bad('a range needs two IPv4 addresses');
  }
  const v4 = parseIpv4(text);
  if (v4 !== undefined) return { v4: [[v4, v4]], v6: [] };
  const v6 = parseIpv6(text);
  if (v6 !== undefined) return { v4: [], v6: [[v6, v6]] };
  return bad('not an IPv4 or IPv6 address, CIDR, range, "any" or $VARIABLE');
}

export function parseAddresses(text: string, at: number, variables: Readonly<Record<string, string>>, what: string): AddressSet {
  const algebra: SetAlgebra<Space> = {
    what,
    all: () => ({ v4: [[0n, V4_MAX]], v6: [[0n, V6_MAX]] }),
    empty: () => ({ v4: [], v6: [] }),
    union: (a, b) => ({ v4: normalize([...a.v4, ...b.v4]), v6: normalize([...a.v6, ...b.v6]) }),
    subtract: (a, b) => ({ v4: subtract(a.v4, b.v4), v6: subtract(a.v6, b.v6) }),
    isEmpty: (a) => a.v4.length === 0 && a.v6.length === 0,
    leaf: (word, wordAt) => leaf(word, wordAt, what),
    variable: (name) => (Object.hasOwn(variables, name) ? variables[name] : undefined),
    resolved: resolvedFor(variables),
    negationInNegation: true,
  };
  const space = parseSetExpression(text, at, algebra);
  return {
    v4: space.v4.map(([lo, hi]) => [Number(lo), Number(hi)] as const),
    v6: space.v6.map(([lo, hi]) => [lo.toString(16).padStart(32, '0'), hi.toString(16).padStart(32, '0')] as const),
  };
}

const resolvedCache = new WeakMap<object, Map<string, Space>>();
function resolvedFor(variables: object): Map<string, Space> {
  let cache = resolvedCache.get(variables);
  if (!cache) {
    cache = new Map();
    resolvedCache.set(variables, cache);
  }
  return cache;
}
