/**
 * Reading a request's JSON body as hostile input: declared and counted size bounded before a
 * byte is parsed, application/json only, strict UTF-8, an object, nested no deeper than the
 * control socket allows; a body that trickles in slower than the deadline is refused.
 */
import type { IncomingMessage } from 'node:http';
import { fail } from '../../../sdk/errors.js';
import { assertDocumentBounds, DOCUMENT_LIMITS } from '../../../sdk/limits.js';

export interface BodyLimits {
  maxBytes: number;
  /** The whole body must have arrived this long after its headers. */
  timeoutMs: number;
}

const JSON_TYPE = /^application\/json\s*(;\s*charset\s*=\s*"?utf-8"?\s*)?$/i;

export function hasBody(request: IncomingMessage): boolean {
  const length = request.headers['content-length'];
  return request.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

export async function readJsonBody(request: IncomingMessage, limits: BodyLimits): Promise<Record<string, unknown>> {
  if (!hasBody(request)) return {};
  const type = request.headers['content-type'] ?? '';
  if (!JSON_TYPE.test(type)) throw fail('E_CONTENT_TYPE', `The body must be application/json (UTF-8), not "${type.slice(0, 64)}"`);
  const declared = Number(request.headers['content-length'] ?? 0);
  if (declared > limits.maxBytes) throw tooLarge(limits.maxBytes, declared);
  const bytes = await collect(request, limits);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw fail('E_BAD_REQUEST', 'The body is not valid UTF-8');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw fail('E_BAD_REQUEST', `The body is not JSON: ${(error as Error).message.slice(0, 120)}`);
  }
  assertDocumentBounds(value, { maxDepth: DOCUMENT_LIMITS.controlRequestDepth - 1 }, 'The body');
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw fail('E_BAD_REQUEST', 'The body must be a JSON object');
  return value as Record<string, unknown>;
}

const FILE_TYPE = /^application\/octet-stream\s*$/i;

/** A file sent as the body (a backup to restore): application/octet-stream, bounded like a JSON body. */
export async function readFileBody(request: IncomingMessage, limits: BodyLimits): Promise<Buffer> {
  if (!hasBody(request)) throw fail('E_BAD_REQUEST', 'The body must be the file');
  const type = request.headers['content-type'] ?? '';
  if (!FILE_TYPE.test(type)) throw fail('E_CONTENT_TYPE', `The body must be application/octet-stream (the file), not "${type.slice(0, 64)}"`);
  const declared = Number(request.headers['content-length'] ?? 0);
  if (declared > limits.maxBytes) throw tooLarge(limits.maxBytes, declared);
  return collect(request, limits);
}

function tooLarge(maxBytes: number, bytes: number): Error {
  return fail('E_DOCUMENT_LIMIT', `The body is larger than ${maxBytes} bytes; send a smaller request`, { limit: 'bytes', bytes, maxBytes });
}

function collect(request: IncomingMessage, limits: BodyLimits): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const finish = (error?: Error): void => {
      clearTimeout(timer);
      request.off('data', onData);
      request.off('end', onEnd);
      request.off('error', onError);
      if (error) {
        // What else the client sends is not read; the connection goes once the refusal is sent.
        request.pause();
        reject(error);
      } else resolve(Buffer.concat(chunks, total));
    };
    const onData = (chunk: Buffer): void => {
      total += chunk.length;
      if (total > limits.maxBytes) finish(tooLarge(limits.maxBytes, total));
      else chunks.push(chunk);
    };
    const onEnd = (): void => finish();
    const onError = (error: Error): void => finish(fail('E_BAD_REQUEST', `The body could not be read: ${error.message}`));
    const timer = setTimeout(
      () => finish(fail('E_REQUEST_TIMEOUT', `The body did not arrive within ${limits.timeoutMs / 1000} s; send it at once`)),
      limits.timeoutMs,
    );
    request.on('data', onData);
    request.on('end', onEnd);
    request.on('error', onError);
  });
}
