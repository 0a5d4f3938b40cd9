/**
 * `content` over one buffer as Suricata's DetectEngineContentInspection does: absolute offset and
 * depth (depth counted from offset), relative distance and within (from the end of the previous
 * content's match, within counted from where distance puts the start), startswith / endswith,
 * nocase on ASCII letters, negation (the window must not hold the bytes), and backtracking: when a
 * relative content fails, the previous content is tried at its next occurrence.
 */
import type { ContentMatch } from '../rules/types.js';

const lower = (b: number): number => (b >= 0x41 && b <= 0x5a ? b | 0x20 : b);

function at(buffer: Uint8Array, pattern: Uint8Array, pos: number, nocase: boolean): boolean {
  if (nocase) {
    for (let k = 0; k < pattern.length; k++) if (lower(buffer[pos + k]!) !== lower(pattern[k]!)) return false;
  } else {
    for (let k = 0; k < pattern.length; k++) if (buffer[pos + k] !== pattern[k]) return false;
  }
  return true;
}

/** The first start in [from, lastStart] where `pattern` is, or -1. */
function find(buffer: Uint8Array, pattern: Uint8Array, from: number, lastStart: number, nocase: boolean): number {
  const first = pattern[0]!;
  const firstLower = lower(first);
  for (let pos = Math.max(0, from); pos <= lastStart; pos++) {
    const b = buffer[pos]!;
    if ((nocase ? lower(b) !== firstLower : b !== first) || !at(buffer, pattern, pos, nocase)) continue;
    return pos;
  }
  return -1;
}

/** The window a content may match in, as [first start, end limit], given the previous match end. */
function window(c: ContentMatch, prevEnd: number, length: number): { start: number; end: number } {
  let start = 0;
  let end = length;
  if (c.startsWith) end = Math.min(end, c.bytes.length);
  if (c.offset !== undefined) start = c.offset;
  if (c.depth !== undefined) end = Math.min(end, (c.offset ?? 0) + c.depth);
  if (c.distance !== undefined || c.within !== undefined) {
    const distance = c.distance ?? 0;
    start = prevEnd + distance;
    if (c.within !== undefined) end = Math.min(end, prevEnd + distance + c.within);
  }
  return { start: Math.max(0, start), end };
}

function matchFrom(buffer: Uint8Array, contents: readonly ContentMatch[], index: number, prevEnd: number, budget: { steps: number }): boolean {
  if (index === contents.length) return true;
  if (--budget.steps < 0) return false;
  const c = contents[index]!;
  const { start, end } = window(c, prevEnd, buffer.length);
  const lastStart = end - c.bytes.length;
  if (c.negated) {
    let found = false;
    if (c.endsWith) found = lastStart >= start && end === buffer.length && at(buffer, c.bytes, lastStart, c.nocase);
    else found = lastStart >= start && find(buffer, c.bytes, start, lastStart, c.nocase) >= 0;
    // A negated content does not move the position the next relative content counts from.
    return !found && matchFrom(buffer, contents, index + 1, prevEnd, budget);
  }
  if (c.endsWith) {
    const pos = buffer.length - c.bytes.length;
    if (pos < start || buffer.length > end || !at(buffer, c.bytes, pos, c.nocase)) return false;
    return matchFrom(buffer, contents, index + 1, pos + c.bytes.length, budget);
  }
  let pos = find(buffer, c.bytes, start, lastStart, c.nocase);
  while (pos >= 0) {
    if (matchFrom(buffer, contents, index + 1, pos + c.bytes.length, budget)) return true;
    // Only a later relative content can succeed with this content matched further on.
    const next = contents[index + 1];
    if (!next || (next.distance === undefined && next.within === undefined)) return false;
    pos = find(buffer, c.bytes, pos + 1, lastStart, c.nocase);
  }
  return false;
}

/**
 * Backtracking is bounded (Suricata's inspection_recursion_limit is 3000): a hostile buffer full
 * of near-matches costs at most that many steps per rule and buffer.
 */
export const CONTENT_RECURSION_LIMIT = 3000;

export function contentsMatch(buffer: Uint8Array, contents: readonly ContentMatch[]): boolean {
  return matchFrom(buffer, contents, 0, 0, { steps: CONTENT_RECURSION_LIMIT });
}
