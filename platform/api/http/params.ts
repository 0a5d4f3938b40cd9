/**
 * Where a request's parameters come from: the query of a GET or DELETE, turned into the types
 * of the operation's schema where they read as them, or the JSON body of the others.
 */
import type { IncomingMessage } from 'node:http';
import { fail } from '../../../sdk/errors.js';
import { hasBody } from './body.js';

/** The methods whose parameters are a JSON body; the others' are the query. */
export function takesBody(method: string): boolean {
  return method === 'POST' || method === 'PUT' || method === 'PATCH';
}

/**
 * A query's values are strings (or lists of them, for a repeated key); each is turned into its
 * schema's type where it reads as one, else left as it came, for the schema to refuse.
 */
export function queryParams(
  request: IncomingMessage,
  query: Record<string, string | string[] | undefined>,
  schema: Record<string, unknown>,
): Record<string, unknown> {
  if (hasBody(request)) throw fail('E_BAD_REQUEST', `${request.method} takes no body; give its parameters in the query`);
  const properties = (schema.properties ?? {}) as Record<string, { type?: string; items?: { type?: string } }>;
  const result: Record<string, unknown> = {};
  for (const [key, raw] of Object.entries(query)) {
    if (raw === undefined) continue;
    const type = Object.hasOwn(properties, key) ? properties[key]?.type : undefined;
    if (type === 'array') {
      const items = (Array.isArray(raw) ? raw : [raw]).flatMap((value) => value.split(','));
      result[key] = items.map((value) => coerce(value, properties[key]?.items?.type));
    } else result[key] = Array.isArray(raw) ? raw : coerce(raw, type);
  }
  return result;
}

function coerce(value: string, type: string | undefined): unknown {
  if (type === 'integer' && /^-?\d{1,15}$/.test(value)) return Number(value);
  if (type === 'boolean' && (value === 'true' || value === 'false')) return value === 'true';
  return value;
}

/** RFC 8187's attr-char, and the ' ( ) * that encodeURIComponent leaves unescaped too. */
const EXT_VALUE = /^UTF-8''((?:[A-Za-z0-9!#$&+.^_`|~'()*-]|%[0-9A-Fa-f]{2})*)$/i;

/**
 * A header's text. Browsers send only ISO-8859-1 header values, so text beyond ASCII (a backup
 * passphrase in Russian) comes as RFC 8187's `UTF-8''` followed by its percent-encoded UTF-8, as
 * the pages send it; raw bytes (what curl sends for a UTF-8 argument) are read as UTF-8. Bytes
 * that are not UTF-8 are refused rather than guessed at: a passphrase read wrong opens nothing.
 */
export function headerText(value: string, header: string): string {
  const encoded = EXT_VALUE.exec(value);
  // Named as RFC 8187 but not its grammar (a stray %, a space): refused, not read as the literal text.
  if (!encoded && /^UTF-8''/i.test(value)) {
    throw fail('E_BAD_REQUEST', `The ${header} header is not RFC 8187: after UTF-8'' come only unreserved characters and %XX escapes`, { header });
  }
  const bytes = encoded
    ? Buffer.from(
        encoded[1]!.replace(/%([0-9A-Fa-f]{2})|./gs, (char, hex: string | undefined) => (hex ? String.fromCharCode(Number.parseInt(hex, 16)) : char)),
        'latin1',
      )
    : Buffer.from(value, 'latin1');
  // ignoreBOM keeps a leading U+FEFF: dropped, two passphrases would read as one.
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw fail('E_BAD_REQUEST', `The ${header} header is not UTF-8: send text beyond ASCII as UTF-8'' and its percent-encoded UTF-8 (RFC 8187)`, { header });
  }
}
