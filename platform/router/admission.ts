/**
 * What a message must be to enter a route, checked once on its way in. The sandbox has already
 * checked the run's structure (a declared source endpoint of this format, lengths that add up
 * to the text), so what is left is each message's content, and a source app controls all of it,
 * its own SDK included.
 *
 * Where each check happens, and why it cannot be skipped:
 * - Size, on every message, here: from the lengths alone (UTF-8 needs at most three bytes per
 *   UTF-16 unit), measured only for a message that could be over.
 * - Well-formed text (no lone surrogate, so every message is valid UTF-8), here, once per run,
 *   and at each boundary between two messages (a pair split in two is two lone surrogates).
 * - The endpoint's JSON Schema, here, on json endpoints that declare one: the source must hear
 *   that its message was refused, and only the host sees every message before any destination.
 *   This is the one check that parses on the main thread, and it costs in proportion to the
 *   message (the validator is compiled once per endpoint on the linear-time engine).
 * - JSON well-formedness and nesting depth on json endpoints without a schema: in the
 *   destination's SDK, which parses each message anyway to hand it over. A source cannot reach
 *   into the destination's isolate, and what fails there is counted `invalid`, never handled.
 */
import { fail, toIsogateError } from '../../sdk/errors.js';
import { DOCUMENT_LIMITS, jsonDepth } from '../../sdk/limits.js';
import type { EndpointDeclaration } from '../../sdk/manifest.js';
import { assertValid, compileUntrustedSchema } from '../../sdk/schema.js';
import { maxMessageBytes } from '../sandbox/capabilities.js';
import type { CheckedRun, EmitRefusal } from '../sandbox/protocol.js';
import { binarySegment, type Segment, textSegment } from './segment.js';

/** UTF-8 needs at most 3 bytes per UTF-16 code unit (a surrogate pair: 4 bytes for 2 units). */
const MAX_UTF8_PER_UNIT = 3;

/** The run's messages that may enter, as one segment, and those refused (indexes from `first`). */
export function admit(run: CheckedRun, first: number): { segment: Segment; refusals: EmitRefusal[] } {
  const { endpoint } = run;
  const limit = maxMessageBytes(endpoint);
  const refusals: EmitRefusal[] = [];
  if ('messages' in run) {
    const accepted: Uint8Array[] = [];
    run.messages.forEach((message, index) => {
      if (message.byteLength > limit) refusals.push([first + index, 'E_MESSAGE_SIZE', tooLarge(endpoint, limit, message.byteLength)]);
      else accepted.push(message);
    });
    return { segment: binarySegment(refusals.length ? accepted : run.messages), refusals };
  }

  const { text, lengths } = run;
  const wellFormed = text.isWellFormed();
  const validate = endpoint.format === 'json' && endpoint.schema ? compileUntrustedSchema(endpoint.schema, `schema of endpoint "${endpoint.name}"`) : undefined;
  let refused: Set<number> | undefined;
  let offset = 0;
  for (let index = 0; index < lengths.length; index += 1) {
    const length = lengths[index]!;
    const start = offset;
    offset += length;
    // A well-formed run can still split a surrogate pair between two of its messages.
    const splitsPair = wellFormed && length > 0 && (isLowSurrogate(text.charCodeAt(start)) || isHighSurrogate(text.charCodeAt(offset - 1)));
    if (length * MAX_UTF8_PER_UNIT <= limit && wellFormed && !splitsPair && !validate) continue;
    const message = text.slice(start, offset);
    try {
      if (splitsPair) throw fail('E_MESSAGE', loneSurrogate(endpoint));
      if (length * MAX_UTF8_PER_UNIT > limit) {
        const bytes = Buffer.byteLength(message);
        if (bytes > limit) throw fail('E_MESSAGE_SIZE', tooLarge(endpoint, limit, bytes));
      }
      if (!wellFormed && !message.isWellFormed()) throw fail('E_MESSAGE', `A message on "${endpoint.name}" is not valid UTF-8 text: it has a lone surrogate`);
      if (validate) checkAgainstSchema(endpoint, message, validate);
    } catch (error) {
      const coded = toIsogateError(error);
      refusals.push([first + index, coded.code, coded.message]);
      refused ??= new Set();
      refused.add(index);
    }
  }
  if (!refused) return { segment: textSegment(text, lengths), refusals };
  const keptTexts: string[] = [];
  const keptLengths: number[] = [];
  offset = 0;
  lengths.forEach((length, index) => {
    if (!refused.has(index)) {
      keptTexts.push(text.slice(offset, offset + length));
      keptLengths.push(length);
    }
    offset += length;
  });
  return { segment: textSegment(keptTexts.join(''), keptLengths), refusals };
}

function checkAgainstSchema(endpoint: EndpointDeclaration, message: string, validate: ReturnType<typeof compileUntrustedSchema>): void {
  let value: unknown;
  try {
    value = JSON.parse(message);
  } catch {
    throw fail('E_MESSAGE', `The message on "${endpoint.name}" is not JSON`);
  }
  // Depth before the validator: it recurses. JSON.parse itself does not.
  if (jsonDepth(value, DOCUMENT_LIMITS.maxDepth) > DOCUMENT_LIMITS.maxDepth) {
    throw fail('E_DOCUMENT_LIMIT', `A message on "${endpoint.name}" nests deeper than ${DOCUMENT_LIMITS.maxDepth} levels; flatten it`);
  }
  assertValid(validate, value, 'E_MESSAGE', `The message on "${endpoint.name}"`);
}

const isHighSurrogate = (unit: number): boolean => unit >= 0xd800 && unit <= 0xdbff;
const isLowSurrogate = (unit: number): boolean => unit >= 0xdc00 && unit <= 0xdfff;
const loneSurrogate = (endpoint: EndpointDeclaration): string => `A message on "${endpoint.name}" is not valid UTF-8 text: it has a lone surrogate`;

function tooLarge(endpoint: EndpointDeclaration, limit: number, bytes: number): string {
  return `A message on "${endpoint.name}" is at most ${limit} bytes; this one is ${bytes}`;
}
