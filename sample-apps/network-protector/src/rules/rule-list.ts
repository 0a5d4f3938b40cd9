/**
 * Rule lists as the configuration carries them (`industrial_commands_rules`,
 * `industrial_anomaly_rules`: Base64 of a Suricata rules file). Lines are read as Suricata's
 * DetectLoadSigFile reads them: a line that starts with `#`, a space or a tab, and an empty line,
 * is not a rule; a line ending in `\` continues on the next. A list is taken whole or refused
 * with the first fault, naming the list, line and column.
 */
import { fail, type IsogateError } from '../../../../sdk/errors.js';
import { RuleFault, RuleText, toRuleError } from './position.js';
import { parseRule } from './rule.js';
import type { Rule, RuleVariables } from './types.js';

export const RULE_LIMITS = {
  /** Rules in all lists together; evaluation cost grows with it on every frame. */
  rules: 10_000,
  /** Suricata's DETECT_MAX_RULE_SIZE less its terminator: a longer rule Suricata cuts, so it is refused. */
  ruleBytes: 8191,
  /**
   * Decoded bytes of one list: 10,000 rules of a typical 200 bytes. Both lists in Base64 fit in
   * the gateway's bound on a traffic inspector's configuration (6 MiB, sdk/limits.ts).
   */
  listBytes: 2 * 1024 * 1024,
} as const;

/** sid the gateway uses for its own verdicts; a rule list may not claim it. */
export const RESERVED_SID = 90000001;

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_INDEX = new Int16Array(128).fill(-1);
for (let i = 0; i < B64.length; i++) B64_INDEX[B64.charCodeAt(i)] = i;

/** Strict Base64 (RFC 4648 alphabet, padding optional, line breaks allowed) to UTF-8 text. */
export function decodeRuleList(encoded: string, list: string): string {
  const clean = encoded.replace(/[\r\n]/g, '');
  const maxEncoded = Math.ceil(RULE_LIMITS.listBytes / 3) * 4;
  if (clean.length > maxEncoded) {
    throw fail('E_RULE_LIMIT', `${list} is larger than ${RULE_LIMITS.listBytes} bytes decoded; split it or remove rules`, { list });
  }
  const body = clean.replace(/={1,2}$/, '');
  if (body.length % 4 === 1 || (clean.length !== body.length && clean.length % 4 !== 0)) {
    throw fail('E_RULE_ENCODING', `${list} is not valid Base64 (its length does not fit)`, { list });
  }
  const bytes = new Uint8Array(Math.floor((body.length * 3) / 4));
  let out = 0;
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < body.length; i++) {
    const code = body.charCodeAt(i);
    const v = code < 128 ? B64_INDEX[code]! : -1;
    if (v < 0) throw fail('E_RULE_ENCODING', `${list} is not valid Base64: "${body[i]}" at position ${i + 1}`, { list, position: i + 1 });
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes[out++] = (acc >> bits) & 0xff;
    }
  }
  return decodeUtf8(bytes.subarray(0, out), list);
}

/** Strict UTF-8 (no overlongs, no surrogates), reporting the line of a bad byte. */
function decodeUtf8(bytes: Uint8Array, list: string): string {
  // UTF-16 code units gathered in chunks: a string per character would cost more than the parse.
  const parts: string[] = [];
  const units: number[] = [];
  const flush = (): void => {
    parts.push(String.fromCharCode(...units));
    units.length = 0;
  };
  let line = 1;
  let i = 0;
  const bad = (): never => {
    throw fail('E_RULE_ENCODING', `${list} line ${line}: the text is not valid UTF-8`, { list, line });
  };
  while (i < bytes.length) {
    const b = bytes[i]!;
    let code: number;
    let need: number;
    let min: number;
    if (b < 0x80) {
      if (b === 0x0a) line++;
      units.push(b);
      if (units.length >= 8192) flush();
      i++;
      continue;
    } else if (b >= 0xc2 && b < 0xe0) [code, need, min] = [b & 0x1f, 1, 0x80];
    else if (b >= 0xe0 && b < 0xf0) [code, need, min] = [b & 0x0f, 2, 0x800];
    else if (b >= 0xf0 && b < 0xf5) [code, need, min] = [b & 0x07, 3, 0x10000];
    else return bad();
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      if (c === undefined || (c & 0xc0) !== 0x80) bad();
      code = (code << 6) | (c! & 0x3f);
    }
    if (code < min || code > 0x10ffff || (code >= 0xd800 && code < 0xe000)) bad();
    if (code >= 0x10000) units.push(0xd800 + ((code - 0x10000) >> 10), 0xdc00 + ((code - 0x10000) & 0x3ff));
    else units.push(code);
    if (units.length >= 8192) flush();
    i += need + 1;
  }
  flush();
  return parts.join('');
}

/** Splits decoded text into rules, with continuation lines joined and positions kept. */
export function splitRules(text: string, list: string): RuleText[] {
  const rules: RuleText[] = [];
  const lines = text.split('\n');
  let current: RuleText | undefined;
  for (let index = 0; index < lines.length; index++) {
    let line = lines[index]!;
    if (line.endsWith('\r')) line = line.slice(0, -1);
    const lineNo = index + 1;
    if (!current) {
      const first = line[0];
      if (first === undefined || first === '#' || first === ' ' || first === '\t' || first === '\r') continue;
      if (rules.length >= RULE_LIMITS.rules) {
        throw fail('E_RULE_LIMIT', `${list} line ${lineNo}: more than ${RULE_LIMITS.rules} rules`, { list, line: lineNo });
      }
      current = new RuleText();
    }
    const trimmed = line.replace(/[ \t\r\n\v\f]+$/, '');
    const continues = trimmed.endsWith('\\');
    current.append(continues ? trimmed.slice(0, -1) : line, lineNo);
    if (current.text.length > RULE_LIMITS.ruleBytes) {
      throw fail('E_RULE_LIMIT', `${list} line ${current.line}: the rule is longer than ${RULE_LIMITS.ruleBytes} characters`, {
        list,
        line: current.line,
      });
    }
    if (!continues) {
      rules.push(current);
      current = undefined;
    }
  }
  if (current) rules.push(current);
  return rules;
}

export interface RuleListInput {
  /** The configuration key, named in every message. */
  readonly name: string;
  readonly base64: string;
}

/** Parses one rule, for callers that need per-rule verdicts (the differential test). */
export function parseOneRule(rule: RuleText, variables: RuleVariables, list: string): Rule {
  try {
    return parseRule(rule, variables);
  } catch (error) {
    if (error instanceof RuleFault) throw toRuleError(error, rule, list);
    throw error;
  }
}

/**
 * Every rule of every list, or the first refusal. sids are unique across all lists, as the
 * denylist and the audit log name a block by its sid; sid 90000001 is the gateway's own.
 */
export function parseRuleLists(lists: readonly RuleListInput[], variables: RuleVariables): Rule[] {
  return parseRuleTexts(
    lists.map(({ name, base64 }) => ({ name, text: decodeRuleList(base64, name) })),
    variables,
  );
}

/** parseRuleLists for lists already decoded (a rules file of `isogate np replay`). */
export function parseRuleTexts(lists: readonly { readonly name: string; readonly text: string }[], variables: RuleVariables): Rule[] {
  const out: Rule[] = [];
  const seen = new Map<number, { list: string; line: number }>();
  let total = 0;
  for (const { name, text: listText } of lists) {
    const rules = splitRules(listText, name);
    total += rules.length;
    if (total > RULE_LIMITS.rules) {
      throw fail('E_RULE_LIMIT', `the rule lists hold ${total} rules or more, above the limit of ${RULE_LIMITS.rules}`, { list: name });
    }
    for (const text of rules) {
      const rule = parseOneRule(text, variables, name);
      const where = (code: 'E_RULE_RESERVED_SID' | 'E_RULE_DUPLICATE_SID', message: string): IsogateError =>
        fail(code, `${name} line ${text.line}: ${message}`, { list: name, line: text.line, column: 1, sid: rule.sid });
      if (rule.sid === RESERVED_SID) throw where('E_RULE_RESERVED_SID', `sid ${RESERVED_SID} is reserved for the gateway's own verdicts`);
      const first = seen.get(rule.sid);
      if (first) throw where('E_RULE_DUPLICATE_SID', `sid ${rule.sid} is used already (${first.list} line ${first.line})`);
      seen.set(rule.sid, { list: name, line: text.line });
      out.push(rule);
    }
  }
  return out;
}
