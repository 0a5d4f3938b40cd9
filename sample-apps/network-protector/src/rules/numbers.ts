/** Number syntaxes of Suricata's keyword parsers, with their exact acceptance. */
import type { UintMatch } from './types.js';

/**
 * Suricata's strict StringParse* (strtoull, then nothing may follow): leading white space and a
 * sign are allowed; a negative value wraps around, so only "-0" survives a range check.
 */
export function strictUnsigned(text: string): number | undefined {
  const m = /^[ \t\n\v\f\r]*([+-]?)([0-9]+)$/.exec(text);
  if (!m) return undefined;
  const value = Number(m[2]);
  if (m[1] === '-' && value !== 0) return Number.POSITIVE_INFINITY;
  return value;
}

/** strtol/strtoll with nothing after the digits (distance, within). */
export function strictSigned(text: string): number | undefined {
  const m = /^[ \t\n\v\f\r]*([+-]?[0-9]+)$/.exec(text);
  return m ? Number(m[1]) : undefined;
}

/** strtoul as sid / rev / gid use it: the whole value, base 10, below 2^32 - 1. */
export function strtoul32(text: string): number | undefined {
  const value = strictUnsigned(text);
  return value === undefined || value >= 0xffffffff ? undefined : value;
}

/**
 * rust/src/detect/uint.rs detect_parse_uint for a u8: `n`, `=n`, `<n`, `<=n`, `>n`, `>=n`, `!n`,
 * `!=n`, `a-b` / `a<>b` (exclusive; b must exceed a by 2 or more), spaces between parts. The
 * `k`/`m`/`g` unit suffixes Suricata also takes are not accepted here (no u8 value can carry one).
 */
export function parseUint8(text: string): UintMatch | undefined {
  const max = 255;
  const num = (s: string): number | undefined => {
    const n = Number(s);
    return n <= max ? n : undefined;
  };
  let m = /^ *([0-9]+) *(?:-|<>) *([0-9]+) *$/.exec(text);
  if (m) {
    const a = num(m[1]!);
    const b = num(m[2]!);
    if (a === undefined || b === undefined || !(b > a && b - a > 1)) return undefined;
    return { op: 'range', min: a, max: b };
  }
  m = /^ *=? *([0-9]+) *$/.exec(text);
  if (m) {
    const a = num(m[1]!);
    return a === undefined ? undefined : { op: 'eq', value: a };
  }
  m = /^ *(>=|<=|>|<|!=|!|=) *([0-9]+) *$/.exec(text);
  if (m) {
    const a = num(m[2]!);
    if (a === undefined) return undefined;
    const ops: Readonly<Record<string, 'ge' | 'le' | 'gt' | 'lt' | 'ne' | 'eq'>> = {
      '>=': 'ge',
      '<=': 'le',
      '>': 'gt',
      '<': 'lt',
      '!=': 'ne',
      '!': 'ne',
      '=': 'eq',
    };
    const op = ops[m[1]!]!;
    if ((op === 'lt' || op === 'ge') && a === 0) return undefined;
    if ((op === 'le' || op === 'gt') && a === max) return undefined;
    if (op === 'eq') return undefined; // "=" then a symbol's number is Suricata's MapOpt error path
    return { op, value: a };
  }
  return undefined;
}
