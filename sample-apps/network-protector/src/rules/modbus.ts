/**
 * Suricata's `modbus:` keyword, parsed as rust/src/modbus/detect.rs does: the same three regular
 * expressions (unit, function, access) tried in the same order, the same checks, including its
 * quirks (no space needed between `access` and `read`; `value` is refused only after a bare
 * `access read`; `<0` and `>65535` count as single addresses).
 */
import type { ModbusCategory, ModbusConstraint, ModbusRange, ModbusTable } from './types.js';

const S = '[\\t\\n\\v\\f\\r ]';
const ACCESS_RE = new RegExp(
  `^${S}*"?${S}*access${S}*(read|write)${S}*(discretes|coils|input|holding)?` +
    `(?:,${S}*address${S}+([<>]?[0-9]+)(?:<>([0-9]+))?(?:,${S}*value${S}+([<>]?[0-9]+)(?:<>([0-9]+))?)?)?${S}*"?${S}*$`,
);
// [A-z] is Suricata's, and takes [ \ ] ^ _ ` too; such words then fail as unknown categories.
const FUNC_RE = new RegExp(`^${S}*"?${S}*function${S}*(!?[A-z0-9]+)(?:,${S}*subfunction${S}+([0-9]+))?${S}*"?${S}*$`);
const UNIT_RE = new RegExp(`^${S}*"?${S}*unit${S}+([<>]?[0-9]+)(?:<>([0-9]+))?(?:,${S}*(.*))?${S}*"?${S}*$`);

const ALL: readonly ModbusCategory[] = ['public_assigned', 'public_unassigned', 'user_defined', 'reserved'];
const CATEGORIES: Readonly<Record<string, readonly ModbusCategory[]>> = {
  assigned: ['public_assigned'],
  unassigned: ['public_unassigned'],
  public: ['public_assigned', 'public_unassigned'],
  user: ['user_defined'],
  reserved: ['reserved'],
  all: ALL,
};

/** Rust's `str::parse::<u16>()`: digits (an optional `+`), no overflow. */
function u16(text: string): number | undefined {
  if (!/^\+?[0-9]+$/.test(text)) return undefined;
  const n = Number(text);
  return n <= 65535 ? n : undefined;
}

/** parse_range: the Rust Range (start..end), then how check_match reads it. */
function range(min: string, max: string | undefined): { start: number; end: number } | undefined {
  if (max === undefined || max === '') {
    const sign = min[0];
    const n = u16(sign === '<' || sign === '>' ? min.slice(1) : min);
    if (n === undefined) return undefined;
    if (sign === '>') return { start: n, end: 65535 };
    if (sign === '<') return { start: 0, end: n };
    return { start: n, end: n };
  }
  const a = u16(min);
  const b = u16(max);
  if (a === undefined || b === undefined) return undefined;
  return { start: a, end: b };
}

/** check_match's order of cases, so the constraint matches exactly what Suricata matches. */
function toRange(r: { start: number; end: number }): ModbusRange {
  if (r.start === r.end) return { op: 'eq', value: r.start };
  if (r.start === 0) return { op: 'lt', value: r.end };
  if (r.end === 65535) return { op: 'gt', value: r.start };
  return { op: 'between', min: r.start, max: r.end };
}

type Parsed = { unit?: ModbusRange } & Omit<ModbusConstraint, 'unit'>;

function parseAccess(text: string): Parsed | undefined {
  const m = ACCESS_RE.exec(text);
  if (!m) return undefined;
  const type = m[1] as 'read' | 'write';
  const table = m[2] as ModbusTable | undefined;
  if (type === 'write' && (table === 'discretes' || table === 'input')) return undefined;
  if (m[3] === undefined) return { access: { type, ...(table ? { table } : {}) } };
  const address = range(m[3], m[4]);
  if (!address) return undefined;
  if (m[5] === undefined) return { access: { type, ...(table ? { table } : {}), address: toRange(address) } };
  if (address.start !== address.end) return undefined;
  // Suricata compares the whole access type with READ: "read coils" with a value passes.
  if (type === 'read' && !table) return undefined;
  const value = range(m[5], m[6]);
  if (!value) return undefined;
  return { access: { type, ...(table ? { table } : {}), address: toRange(address), value: toRange(value) } };
}

function parseFunction(text: string): Parsed | undefined {
  const m = FUNC_RE.exec(text);
  if (!m) return undefined;
  const word = m[1]!;
  // Rust's parse::<u8>()
  if (/^\+?[0-9]+$/.test(word) && Number(word) <= 255) {
    const fn = Number(word);
    if (fn === 0) return undefined;
    if (m[2] === undefined) return { function: fn };
    const sub = u16(m[2]);
    return sub === undefined ? undefined : { function: fn, subfunction: sub };
  }
  const negated = word.startsWith('!');
  const categories = CATEGORIES[negated ? word.slice(1) : word];
  if (!categories) return undefined;
  return { categories: negated ? ALL.filter((c) => !categories.includes(c)) : categories };
}

function parseUnit(text: string): Parsed | undefined {
  const m = UNIT_RE.exec(text);
  if (!m) return undefined;
  let rest: Parsed = {};
  if (m[3] !== undefined) {
    const parsed = parseFunction(m[3]) ?? parseAccess(m[3]);
    if (!parsed) return undefined;
    rest = parsed;
  }
  const unit = range(m[1]!, m[2]);
  if (!unit) return undefined;
  return { ...rest, unit: toRange(unit) };
}

/** The constraint, or undefined when Suricata would refuse the value ("invalid modbus option"). */
export function parseModbus(value: string): ModbusConstraint | undefined {
  return parseUnit(value) ?? parseFunction(value) ?? parseAccess(value);
}
