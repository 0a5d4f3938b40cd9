/**
 * Text from outside the gateway (a store's catalog, a publisher's manifest, an app's log
 * message, a certificate's subject, an error that quotes any of them) is shown on operators'
 * terminals and written to logs that are read line by line. A character that a terminal or a
 * line reader acts on instead of showing would let that text clear a screen, recolour or
 * rewrite what follows, reorder a line (bidi overrides) or start a forged line (a newline, NEL,
 * the Unicode line separators). This module is the one place that decides which characters
 * those are and how they are made visible; every human-readable output and every log line goes
 * through it. Ordinary Unicode text (accents, CJK, emoji with their joiners) stays as it is.
 */

// C0 controls and DEL, C1 controls (U+0080-U+009F: CSI U+009B, NEL U+0085 ...), the Arabic
// letter mark, the bidi marks, embeddings, overrides and isolates, and the line and paragraph
// separators.
// eslint-disable-next-line no-control-regex
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/g;
// eslint-disable-next-line no-control-regex
const ANY_CONTROL = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/;
// What JSON.stringify leaves raw but a terminal or a Unicode-aware line reader would act on.
const JSON_RAW_CONTROLS = /[\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/g;

const NAMED: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function visible(char: string): string {
  const named = NAMED[char];
  if (named) return named;
  const code = char.charCodeAt(0);
  // C0 and DEL as the familiar \x1b; everything above as a code point (\u{85}), so that a C1
  // control is not mistaken for a byte of UTF-8.
  return code < 0x80 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
}

/** `text` with every control, bidi and line-separator character turned into a visible escape. */
export function escapeControls(text: string): string {
  return text.replace(CONTROLS, visible);
}

/** Whether `text` holds a character that `escapeControls` would escape. */
export function hasControls(text: string): boolean {
  return ANY_CONTROL.test(text);
}

/**
 * A copy of a JSON-like value with every string in it (keys too) escaped, for building human
 * output from data without escaping each field by hand.
 */
export function escapeControlsDeep<T>(value: T): T {
  if (typeof value === 'string') return escapeControls(value) as T;
  if (Array.isArray(value)) return value.map((item) => escapeControlsDeep(item)) as T;
  if (value && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [escapeControls(key), escapeControlsDeep(item)])) as T;
  }
  return value;
}

/**
 * JSON.stringify, also escaping as `\uXXXX` what it leaves raw: DEL, C1 controls, bidi
 * controls and U+2028/U+2029. These can only occur inside JSON strings, so the result parses
 * back to exactly the same value; only a terminal or a line reader no longer sees them.
 */
export function safeJson(value: unknown, space?: number): string {
  // JSON.stringify gives undefined for undefined; `null` keeps the output JSON.
  const text = (JSON.stringify(value, null, space) as string | undefined) ?? 'null';
  return text.replace(JSON_RAW_CONTROLS, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
