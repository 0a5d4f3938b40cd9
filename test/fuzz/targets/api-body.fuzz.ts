/**
 * REST API bodies (platform/api/http/body.ts). The first byte picks the headers a hostile client
 * sends (content type, a declared length that is right, wrong or absent, chunked); the rest is
 * the body, arriving in pieces.
 */
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { readJsonBody } from '../../../platform/api/http/body.js';
import { broken, refused } from '../refusal.js';

const TYPES = [
  'application/json',
  'application/json; charset=utf-8',
  'application/json; charset="UTF-8"',
  'text/plain',
  'application/json; charset=latin1',
  '',
];

function request(selector: number, body: Buffer): IncomingMessage {
  const headers: Record<string, string> = {};
  const type = TYPES[selector % TYPES.length]!;
  if (type) headers['content-type'] = type;
  const length = (selector >> 3) & 3;
  if (length === 0) headers['content-length'] = String(body.length);
  else if (length === 1) headers['content-length'] = String(body.length + 1);
  else if (length === 2) headers['transfer-encoding'] = 'chunked';
  const piece = 1 + (selector >> 5);
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < body.length; offset += piece) chunks.push(body.subarray(offset, offset + piece));
  return Object.assign(Readable.from(chunks, { objectMode: false }), { headers }) as unknown as IncomingMessage;
}

export async function fuzz(data: Buffer): Promise<void> {
  if (data.length === 0) return;
  try {
    const value = await readJsonBody(request(data[0]!, data.subarray(1)), { maxBytes: 4096, timeoutMs: 5000 });
    if (!value || typeof value !== 'object' || Array.isArray(value)) broken('an accepted body is not a JSON object');
  } catch (error) {
    refused(error);
  }
}
