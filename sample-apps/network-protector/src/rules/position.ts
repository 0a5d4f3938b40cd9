/**
 * A rule's text as Suricata sees it (continuation lines joined) with the way back to the line and
 * column of the decoded list, so every refusal names the place an admin has to look at.
 */
import { type ErrorCode, fail, type IsogateError } from '../../../../sdk/errors.js';

interface Segment {
  /** Offset in the joined text where this physical line's part starts. */
  readonly start: number;
  readonly line: number;
  /** 1-based column of that part's first character on its line. */
  readonly column: number;
}

export class RuleText {
  readonly #segments: Segment[] = [];
  #text = '';

  /** Appends part of a physical line (without its line break or continuation backslash). */
  append(part: string, line: number, column = 1): void {
    this.#segments.push({ start: this.#text.length, line, column });
    this.#text += part;
  }

  get text(): string {
    return this.#text;
  }

  /** The line the rule starts on, as Suricata reports it. */
  get line(): number {
    return this.#segments[0]?.line ?? 1;
  }

  locate(offset: number): { line: number; column: number } {
    let segment = this.#segments[0] ?? { start: 0, line: 1, column: 1 };
    for (const candidate of this.#segments) {
      if (candidate.start > offset) break;
      segment = candidate;
    }
    return { line: segment.line, column: segment.column + Math.max(0, offset - segment.start) };
  }
}

/** Thrown inside the parser; `at` is an offset in the rule's joined text. */
export class RuleFault {
  constructor(
    readonly code: ErrorCode,
    readonly at: number,
    readonly message: string,
  ) {}
}

export function fault(code: ErrorCode, at: number, message: string): never {
  throw new RuleFault(code, at, message);
}

/** The IsogateError an admin sees: "<list> line L, column C: what was wrong". */
export function toRuleError(f: RuleFault, rule: RuleText, list: string): IsogateError {
  const { line, column } = rule.locate(f.at);
  return fail(f.code, `${list} line ${line}, column ${column}: ${f.message}`, { list, line, column });
}
