/**
 * Messages as the router holds them: one run from a source as it crossed, a text with the
 * messages' lengths (json, text) or a list of byte arrays (binary). A run is queued, shared
 * between routes and handed to destinations whole; the main thread never parses, serialises or
 * copies its messages one by one. Only overflow (a drop policy at work) splits a run, and only
 * then are the sizes of single messages measured.
 */
import type { DeliverBatch } from '../sandbox/protocol.js';
import { TEXT_PIECE_UNITS } from '../sandbox/wire-limits.js';

export type Segment = TextSegment | BinarySegment;

export interface TextSegment {
  readonly text: string;
  readonly lengths: readonly number[];
  /** UTF-8 bytes of the whole text: what the segment counts against the byte bounds. */
  readonly bytes: number;
}

export interface BinarySegment {
  readonly messages: readonly Uint8Array[];
  readonly bytes: number;
}

export const messageCount = (segment: Segment): number => ('messages' in segment ? segment.messages.length : segment.lengths.length);

/**
 * What the host holds beside the bytes themselves, charged too: an empty message is not free
 * (its length entry, its Uint8Array object), so no number of them fits in a bound for nothing.
 */
export const OVERHEAD_BYTES = Object.freeze({ segment: 64, textMessage: 16, binaryMessage: 128 });

export function textSegment(text: string, lengths: readonly number[]): TextSegment {
  return { text, lengths, bytes: Buffer.byteLength(text) + OVERHEAD_BYTES.segment + OVERHEAD_BYTES.textMessage * lengths.length };
}

export function binarySegment(messages: readonly Uint8Array[]): BinarySegment {
  let bytes = OVERHEAD_BYTES.segment + OVERHEAD_BYTES.binaryMessage * messages.length;
  for (const message of messages) bytes += message.byteLength;
  return { messages, bytes };
}

/**
 * The first `count` messages of a segment, as a segment of their own that holds only them: a
 * slice of a string keeps its whole parent alive in V8, so the text is copied (the slow path of
 * a drop policy, in proportion to what is kept).
 */
export function headOf(segment: Segment, count: number): Segment {
  if ('messages' in segment) return binarySegment(segment.messages.slice(0, count));
  let offset = 0;
  for (let index = 0; index < count; index += 1) offset += segment.lengths[index]!;
  const copy = Buffer.from(segment.text.slice(0, offset), 'utf16le').toString('utf16le');
  return textSegment(copy, segment.lengths.slice(0, count));
}

/** How many of the segment's first messages fit, as a segment of their own, in `room` bytes. */
export function messagesWithin(segment: Segment, room: number): number {
  let used = OVERHEAD_BYTES.segment;
  let offset = 0;
  const count = messageCount(segment);
  for (let index = 0; index < count; index += 1) {
    let size: number;
    if ('messages' in segment) size = segment.messages[index]!.byteLength + OVERHEAD_BYTES.binaryMessage;
    else {
      const length = segment.lengths[index]!;
      size = Buffer.byteLength(segment.text.slice(offset, offset + length)) + OVERHEAD_BYTES.textMessage;
      offset += length;
    }
    if (used + size > room) return index;
    used += size;
  }
  return count;
}

/**
 * One crossing's worth of segments, as the protocol carries it, no copy of bytes. Texts are
 * joined only while the joined text stays within TEXT_PIECE_UNITS (many small runs cross as one
 * string); larger runs cross as pieces of their own, each a string the copy can take without
 * fresh pages (wire-limits.ts).
 */
export function deliverBatchOf(segments: readonly Segment[]): DeliverBatch {
  if (segments.length === 1) {
    const only = segments[0]!;
    return 'messages' in only ? { messages: [...only.messages] } : { texts: [only.text], lengths: [...only.lengths] };
  }
  if ('messages' in segments[0]!) return { messages: segments.flatMap((segment) => ('messages' in segment ? segment.messages : [])) };
  const texts: string[] = [];
  const lengths: number[] = [];
  let piece: string[] = [];
  let pieceUnits = 0;
  for (const segment of segments) {
    if ('messages' in segment) continue;
    if (pieceUnits > 0 && pieceUnits + segment.text.length > TEXT_PIECE_UNITS) {
      texts.push(piece.length === 1 ? piece[0]! : piece.join(''));
      piece = [];
      pieceUnits = 0;
    }
    piece.push(segment.text);
    pieceUnits += segment.text.length;
    for (const length of segment.lengths) lengths.push(length);
  }
  if (piece.length > 0) texts.push(piece.length === 1 ? piece[0]! : piece.join(''));
  return { texts, lengths };
}
