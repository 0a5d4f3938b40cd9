/**
 * `content` and its modifiers, as detect-content.c and detect-{depth,offset,distance,within,
 * nocase,isdataat}.c parse them: `|hex|` bytes, `\` escaping only `: ; \ "`, absolute and relative
 * modifiers never on the same content, each modifier once.
 */
import { strictSigned, strictUnsigned } from './numbers.js';
import { fault } from './position.js';

export interface ContentDraft {
  bytes: Uint8Array;
  negated: boolean;
  nocase: boolean;
  offset?: number;
  depth?: number;
  distance?: number;
  within?: number;
  startsWith: boolean;
  endsWith: boolean;
}

const HEX = /^[0-9a-fA-F]$/;
const CONTENT_VALUE_MAX = 1024 * 1024;

/** `value` is the option value with its quotes removed. */
export function parseContentBytes(value: string, at: number): Uint8Array {
  const out: number[] = [];
  let hex = false;
  let escaped = false;
  let pending = '';
  let pipes = 0;
  const utf8 = new TextEncoderLite();
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (c === '|') {
      pipes++;
      if (hex) {
        if (pending) fault('E_RULE_VALUE', at + i, 'an incomplete hex byte in content (hex digits come in pairs)');
        hex = false;
      } else hex = true;
    } else if (!escaped && c === '\\') {
      escaped = true;
    } else if (hex) {
      if (HEX.test(c)) {
        pending += c;
        if (pending.length === 2) {
          out.push(Number.parseInt(pending, 16));
          pending = '';
        }
      } else if (c !== ' ' && c !== ',') fault('E_RULE_VALUE', at + i, `"${c}" is not a hex digit in content's |..| bytes`);
    } else if (escaped) {
      if (c !== ':' && c !== ';' && c !== '\\' && c !== '"') fault('E_RULE_VALUE', at + i, `"\\${c}" is not an escape content knows (only \\: \\; \\\\ \\")`);
      out.push(c.charCodeAt(0));
      escaped = false;
    } else if (c === '"') {
      fault('E_RULE_STRING', at + i, 'an unescaped double quote inside content');
    } else {
      utf8.push(c, out);
    }
  }
  if (pipes % 2 !== 0) fault('E_RULE_VALUE', at, 'content opens |hex| bytes without closing them');
  if (out.length === 0) fault('E_RULE_VALUE', at, 'content is empty');
  return Uint8Array.from(out);
}

/** UTF-8 of one UTF-16 unit at a time, surrogate pairs joined (no TextEncoder in a bare isolate). */
class TextEncoderLite {
  #high = 0;
  push(c: string, out: number[]): void {
    let code = c.charCodeAt(0);
    if (code >= 0xd800 && code < 0xdc00) {
      this.#high = code;
      return;
    }
    if (code >= 0xdc00 && code < 0xe000 && this.#high) {
      code = 0x10000 + ((this.#high - 0xd800) << 10) + (code - 0xdc00);
      this.#high = 0;
    }
    if (code < 0x80) out.push(code);
    else if (code < 0x800) out.push(0xc0 | (code >> 6), 0x80 | (code & 63));
    else if (code < 0x10000) out.push(0xe0 | (code >> 12), 0x80 | ((code >> 6) & 63), 0x80 | (code & 63));
    else out.push(0xf0 | (code >> 18), 0x80 | ((code >> 12) & 63), 0x80 | ((code >> 6) & 63), 0x80 | (code & 63));
  }
}

type Modifier = 'nocase' | 'depth' | 'offset' | 'distance' | 'within' | 'startswith' | 'endswith';

function unsigned16(value: string, at: number, name: string): number {
  const n = strictUnsigned(value);
  if (n === undefined) fault('E_RULE_VALUE', at, `${name} takes a number, not "${value}"`);
  if (n > 65535) fault('E_RULE_RANGE', at, `${name} ${value} is above 65535`);
  return n;
}

function signed(value: string, at: number, name: string): number {
  const n = strictSigned(value);
  if (n === undefined) fault('E_RULE_VALUE', at, `${name} takes a number, not "${value}"`);
  if (n > CONTENT_VALUE_MAX || n < -CONTENT_VALUE_MAX) fault('E_RULE_RANGE', at, `${name} ${value} is outside -${CONTENT_VALUE_MAX}..${CONTENT_VALUE_MAX}`);
  return n;
}

/**
 * Applies a modifier to the rule's last content; `value` is undefined for the flag modifiers.
 * `at` is the value's offset, `optionAt` the modifier's own.
 */
export function applyModifier(content: ContentDraft | undefined, modifier: Modifier, value: string | undefined, at: number, optionAt: number): void {
  if (!content) fault('E_RULE_SYNTAX', optionAt, `${modifier} needs a content before it`);
  if (value === undefined) at = optionAt;
  const relative = content.distance !== undefined || content.within !== undefined;
  const absolute = content.depth !== undefined || content.offset !== undefined;
  const once = (present: boolean): void => {
    if (present) fault('E_RULE_SYNTAX', at, `${modifier} is given twice for the same content`);
  };
  const notRelative = (): void => {
    if (relative) fault('E_RULE_SYNTAX', at, `${modifier} (absolute) cannot be combined with distance or within (relative) on one content`);
  };
  const notAbsolute = (): void => {
    if (absolute) fault('E_RULE_SYNTAX', at, `${modifier} (relative) cannot be combined with depth or offset (absolute) on one content`);
  };
  switch (modifier) {
    case 'nocase':
      once(content.nocase);
      content.nocase = true;
      return;
    case 'endswith':
      content.endsWith = true;
      return;
    case 'startswith':
      if (content.depth !== undefined) fault('E_RULE_SYNTAX', at, 'startswith cannot be combined with depth');
      notRelative();
      if (content.offset !== undefined) fault('E_RULE_SYNTAX', at, 'startswith cannot be combined with offset');
      content.startsWith = true;
      content.depth = content.bytes.length;
      return;
    case 'depth': {
      once(content.depth !== undefined);
      notRelative();
      const depth = unsigned16(value!, at, 'depth');
      if (depth < content.bytes.length) fault('E_RULE_RANGE', at, `depth ${depth} is shorter than the content (${content.bytes.length} bytes)`);
      content.depth = depth;
      return;
    }
    case 'offset':
      if (content.startsWith) fault('E_RULE_SYNTAX', at, 'offset cannot be combined with startswith');
      once(content.offset !== undefined);
      notRelative();
      content.offset = unsigned16(value!, at, 'offset');
      return;
    case 'distance':
      once(content.distance !== undefined);
      notAbsolute();
      content.distance = signed(value!, at, 'distance');
      return;
    case 'within': {
      once(content.within !== undefined);
      notAbsolute();
      const within = signed(value!, at, 'within');
      if (within < content.bytes.length) fault('E_RULE_RANGE', at, `within ${within} is shorter than the content (${content.bytes.length} bytes)`);
      content.within = within;
      return;
    }
  }
}
