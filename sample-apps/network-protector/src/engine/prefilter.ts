/**
 * Suricata's prefilter for packet rules (its multi-pattern matcher on each rule's fast pattern):
 * a rule's content can only match a chunk that holds the rule's longest plain content somewhere,
 * so one pass over the chunk, looking each byte up in a table of fast-pattern first bytes, finds
 * the few rules worth the full content inspection. Without it every packet rule scanned every
 * chunk, and a list of a few dozen content rules cost more than parsing the protocol.
 *
 * Only a necessary condition is checked here (the bytes occur, wherever); offsets, depth,
 * relative contents and negation are the full inspection's, on the rules that pass.
 */
import type { ContentMatch } from '../rules/types.js';
import type { CompiledRule } from './compile.js';

const lower = (b: number): number => (b >= 0x41 && b <= 0x5a ? b | 0x20 : b);
const upper = (b: number): number => (b >= 0x61 && b <= 0x7a ? b & ~0x20 : b);

interface Pattern {
  /** The rule's index in the list the prefilter was built from. */
  readonly index: number;
  readonly bytes: Uint8Array;
  readonly nocase: boolean;
}

/** The content a rule's match needs most surely: its longest non-negated payload content. */
function fastPattern(rule: CompiledRule): ContentMatch | undefined {
  let best: ContentMatch | undefined;
  for (const buffer of rule.rule.buffers) {
    if (buffer.buffer !== 'payload') continue;
    for (const content of buffer.contents) {
      if (content.negated || content.bytes.length === 0) continue;
      if (!best || content.bytes.length > best.bytes.length) best = content;
    }
  }
  return best;
}

function occursAt(buffer: Uint8Array, pattern: Pattern, pos: number): boolean {
  const bytes = pattern.bytes;
  if (pos + bytes.length > buffer.length) return false;
  if (pattern.nocase) {
    for (let k = 1; k < bytes.length; k++) if (lower(buffer[pos + k]!) !== lower(bytes[k]!)) return false;
  } else {
    for (let k = 1; k < bytes.length; k++) if (buffer[pos + k] !== bytes[k]) return false;
  }
  return true;
}

export class PacketPrefilter {
  /** By a chunk's byte: the patterns that start with it. */
  readonly #table: (Pattern[] | undefined)[] = new Array(256);
  /** Rules with no plain payload content: inspected on every chunk. */
  readonly #always: boolean[];
  /** The rules a chunk without any fast pattern gets (the `always` ones), made once. */
  readonly #alwaysRules: readonly CompiledRule[];
  /** Which patterns the chunk being scanned holds, by rule index; reset through `#found` alone. */
  readonly #hits: Uint8Array;
  /** Indexes set in `#hits` by this scan, so that only those are read and reset. */
  readonly #found: number[] = [];
  #patterns = 0;

  constructor(readonly rules: readonly CompiledRule[]) {
    this.#always = rules.map(() => false);
    this.#hits = new Uint8Array(rules.length);
    rules.forEach((rule, index) => {
      const content = fastPattern(rule);
      if (!content) {
        this.#always[index] = true;
        return;
      }
      const pattern: Pattern = { index, bytes: content.bytes, nocase: content.nocase };
      const first = content.bytes[0]!;
      const firsts = content.nocase ? new Set([lower(first), upper(first)]) : new Set([first]);
      for (const b of firsts) {
        const list = this.#table[b] ?? [];
        list.push(pattern);
        this.#table[b] = list;
      }
      this.#patterns += 1;
    });
    this.#alwaysRules = Object.freeze(rules.filter((_, index) => this.#always[index]));
  }

  /**
   * The rules worth inspecting on this chunk, in the list's order (the order verdicts depend
   * on: a pass rule before what it silences, the first drop). Most chunks hold no fast pattern:
   * they get the `always` rules as made once, and the scan costs one table read per byte.
   */
  candidates(chunk: Uint8Array): readonly CompiledRule[] {
    if (this.#patterns === 0) return this.#alwaysRules;
    const hits = this.#hits;
    const found = this.#found;
    const table = this.#table;
    let left = this.#patterns;
    for (let pos = 0; pos < chunk.length && left > 0; pos++) {
      const patterns = table[chunk[pos]!];
      if (patterns === undefined) continue;
      for (const pattern of patterns) {
        if (hits[pattern.index] === 0 && occursAt(chunk, pattern, pos)) {
          hits[pattern.index] = 1;
          found.push(pattern.index);
          left -= 1;
        }
      }
    }
    if (found.length === 0) return this.#alwaysRules;
    const out: CompiledRule[] = [];
    if (this.#alwaysRules.length === 0 && found.length === 1) out.push(this.rules[found[0]!]!);
    else for (let index = 0; index < this.rules.length; index++) if (hits[index] === 1 || this.#always[index]) out.push(this.rules[index]!);
    for (const index of found) hits[index] = 0;
    found.length = 0;
    return out;
  }
}
