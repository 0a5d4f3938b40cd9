/**
 * Messages as the router holds them: one run from a source as it crossed, a text with the
 * messages' lengths (json, text) or a list of byte arrays (binary). A run is queued, shared
 * between routes and handed to destinations whole; the main thread never parses, serialises or
 * copies its messages one by one. Only overflow (a drop policy at work) splits a run, and only
 * then are the sizes of single messages measured.
 */
import type { DeliverBatch } from '../sandbox/protocol.js';

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

export function textSegment(text: string, lengths: readonly number[]): TextSegment {
  return { text, lengths, bytes: Buffer.byteLength(text) };
}

export function binarySegment(messages: readonly Uint8Array[]): BinarySegment {
  let bytes = 0;
  for (const message of messages) bytes += message.byteLength;
  return { messages, bytes };
}

/** The first `count` messages and the rest, each with its own byte count (the slow path). */
export function splitSegment(segment: Segment, count: number): [Segment, Segment] {
  if ('messages' in segment) return [binarySegment(segment.messages.slice(0, count)), binarySegment(segment.messages.slice(count))];
  let offset = 0;
  for (let index = 0; index < count; index += 1) offset += segment.lengths[index]!;
  return [textSegment(segment.text.slice(0, offset), segment.lengths.slice(0, count)), textSegment(segment.text.slice(offset), segment.lengths.slice(count))];
}

/** How many of the segment's first messages fit in `room` bytes. */
export function messagesWithin(segment: Segment, room: number): number {
  let used = 0;
  let offset = 0;
  const count = messageCount(segment);
  for (let index = 0; index < count; index += 1) {
    let size: number;
    if ('messages' in segment) size = segment.messages[index]!.byteLength;
    else {
      const length = segment.lengths[index]!;
      size = Buffer.byteLength(segment.text.slice(offset, offset + length));
      offset += length;
    }
    if (used + size > room) return index;
    used += size;
  }
  return count;
}

/** One crossing's worth of segments, as the protocol carries it: one join for text, no copy of bytes. */
export function deliverBatchOf(segments: readonly Segment[]): DeliverBatch {
  if (segments.length === 1) {
    const only = segments[0]!;
    return 'messages' in only ? { messages: [...only.messages] } : { text: only.text, lengths: [...only.lengths] };
  }
  if ('messages' in segments[0]!) return { messages: segments.flatMap((segment) => ('messages' in segment ? segment.messages : [])) };
  const texts: string[] = [];
  const lengths: number[] = [];
  for (const segment of segments) {
    if ('messages' in segment) continue;
    texts.push(segment.text);
    for (const length of segment.lengths) lengths.push(length);
  }
  return { text: texts.join(''), lengths };
}
