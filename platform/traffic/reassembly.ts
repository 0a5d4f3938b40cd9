/**
 * TCP reassembly per flow and direction for the offline replay, shaped as Suricata's IDS mode
 * hands data to its app-layer parsers:
 *  - bytes reach the parser in sequence order once the other side has ACKed them (so the chunks a
 *    parser sees follow the ACKs, not the segments), and what is left is flushed at the end;
 *  - out-of-order segments wait; retransmitted and overlapping bytes keep the data seen first
 *    (the outcome of Suricata's default overlap handling for identical retransmissions, and of its
 *    BSD/first policy for differing ones);
 *  - an ACK over bytes that were never captured is a gap: the parser of that flow stops, as
 *    Suricata's Modbus and MQTT parsers do not accept gaps;
 *  - a flow starts at a SYN (Suricata's `stream.midstream: false`); a flow whose SYN was not
 *    captured is not inspected.
 * Buffered out-of-order bytes are bounded per direction; past the bound the direction is a gap.
 * The flow table is bounded too, as Suricata's is by its flow memcap: a capture of many
 * connections never closed (a SYN flood) cannot grow it without end. Past MAX_OPEN_FLOWS open at
 * once, a new connection is not tracked (counted, and the replay says so), as Suricata inspects
 * nothing of a packet it finds no flow for. Closed flows are kept for their last packets, the
 * oldest forgotten first past MAX_CLOSED; whoever keeps state per flow hears when one is.
 */
import { TCP, type TcpSegment } from './pcap.js';

export type Side = 'toserver' | 'toclient';

export interface FlowEndpoints {
  readonly id: number;
  readonly client: { readonly ip: string; readonly port: number };
  readonly server: { readonly ip: string; readonly port: number };
}

export interface ReassemblyHandler {
  data(flow: FlowEndpoints, side: Side, bytes: Uint8Array): void;
  gap(flow: FlowEndpoints, side: Side): void;
  /** No packet will belong to `flow` again: state kept for it can go. */
  forgotten?(flow: FlowEndpoints): void;
  /** Whether to follow a new connection to `server` at all (default: every one). */
  tracks?(server: { readonly ip: string; readonly port: number }): boolean;
}

const MAX_PENDING = 4 * 1024 * 1024;
/** Closed flows kept for their last packets. */
const MAX_CLOSED = 4096;
/** Connections tracked at once (Suricata's default flow memcap holds about as many). */
export const MAX_OPEN_FLOWS = 65_536;

class Stream {
  base: number | undefined;
  /** Relative offset of the next byte to hand on. */
  next = 0;
  /** Out-of-order or not yet ACKed pieces, sorted, not overlapping. */
  pieces: { start: number; data: Uint8Array }[] = [];
  pendingBytes = 0;
  gap = false;
  gapReported = false;
  fin = false;

  insert(seq: number, payload: Uint8Array): void {
    if (this.base === undefined || this.gap || payload.length === 0) return;
    let start = (seq - this.base) | 0;
    let data = payload;
    if (start < this.next) {
      if (start + data.length <= this.next) return;
      data = data.subarray(this.next - start);
      start = this.next;
    }
    // First data wins: only the parts no earlier piece covers are added.
    const added: { start: number; data: Uint8Array }[] = [];
    let cursor = start;
    const end = start + data.length;
    for (const piece of this.pieces) {
      const pieceEnd = piece.start + piece.data.length;
      if (pieceEnd <= cursor) continue;
      if (piece.start >= end) break;
      if (piece.start > cursor) added.push({ start: cursor, data: data.subarray(cursor - start, piece.start - start) });
      cursor = Math.max(cursor, pieceEnd);
      if (cursor >= end) break;
    }
    if (cursor < end) added.push({ start: cursor, data: data.subarray(cursor - start) });
    for (const piece of added) {
      this.pendingBytes += piece.data.length;
      // A view, not a copy: the capture the segment came from outlives the replay.
      this.pieces.push({ start: piece.start, data: piece.data });
    }
    if (added.length > 0) this.pieces.sort((a, b) => a.start - b.start);
    if (this.pendingBytes > MAX_PENDING) this.gap = true;
  }

  /** Contiguous bytes from `next` up to relative offset `limit` (everything when undefined). */
  take(limit: number | undefined): { bytes: Uint8Array[]; gap: boolean } {
    const bytes: Uint8Array[] = [];
    while (this.pieces.length > 0) {
      const piece = this.pieces[0]!;
      if (limit !== undefined && piece.start >= limit) break;
      if (piece.start > this.next) {
        // Acknowledged bytes that never were captured.
        return { bytes, gap: limit !== undefined };
      }
      const end = piece.start + piece.data.length;
      const stop = limit === undefined ? end : Math.min(end, limit);
      bytes.push(piece.data.subarray(this.next - piece.start, stop - piece.start));
      this.pendingBytes -= stop - this.next;
      this.next = stop;
      if (stop === end) this.pieces.shift();
      else break;
    }
    return { bytes, gap: false };
  }
}

interface Flow extends FlowEndpoints {
  readonly key: string;
  readonly streams: Record<Side, Stream>;
}

/** Feeds segments in capture order; `finish` flushes what is left of every flow. */
export class TcpReassembler {
  readonly #flows = new Map<string, Flow>();
  /**
   * Flows both sides closed, by key: their last packets (the ACK of the second FIN) still belong to
   * them, as in Suricata, which keeps a flow until it times out. The oldest go first past the bound.
   */
  readonly #closed = new Map<string, Flow>();
  readonly #maxOpenFlows: number;
  #nextId = 1;
  #untracked = 0;

  constructor(
    readonly handler: ReassemblyHandler,
    options: { maxOpenFlows?: number } = {},
  ) {
    this.#maxOpenFlows = options.maxOpenFlows ?? MAX_OPEN_FLOWS;
  }

  get flowCount(): number {
    return this.#flows.size;
  }

  /** SYNs that came while MAX_OPEN_FLOWS were open (a retransmitted one counts again): none of their connections' packets was inspected. */
  get untrackedFlows(): number {
    return this.#untracked;
  }

  /** Takes one segment; returns the flow it belongs to and its direction, or undefined for one of no tracked flow. */
  segment(s: TcpSegment): { flow: FlowEndpoints; side: Side } | undefined {
    const forward = `${s.src}|${s.sport}|${s.dst}|${s.dport}`;
    const reverse = `${s.dst}|${s.dport}|${s.src}|${s.sport}`;
    let flow = this.#flows.get(forward) ?? this.#flows.get(reverse);
    const syn = (s.flags & TCP.SYN) !== 0;
    const ackFlag = (s.flags & TCP.ACK) !== 0;
    if (!flow) {
      const closed = this.#closed.get(forward) ?? this.#closed.get(reverse);
      if (closed && !(syn && !ackFlag)) return { flow: closed, side: sideOf(closed, s) };
      if (closed) this.#forget(closed);
      if (!syn || ackFlag) return undefined;
      const server = { ip: s.dst, port: s.dport };
      if (this.handler.tracks && !this.handler.tracks(server)) return undefined;
      if (this.#flows.size >= this.#maxOpenFlows) {
        this.#untracked += 1;
        return undefined;
      }
      flow = {
        key: forward,
        id: this.#nextId++,
        client: { ip: s.src, port: s.sport },
        server,
        streams: { toserver: new Stream(), toclient: new Stream() },
      };
      this.#flows.set(forward, flow);
    }
    const side = sideOf(flow, s);
    const other: Side = side === 'toserver' ? 'toclient' : 'toserver';
    const mine = flow.streams[side];
    if (syn) {
      if (mine.base === undefined) mine.base = (s.seq + 1) >>> 0;
      return { flow, side };
    }
    if (ackFlag) this.#deliver(flow, other, (s.ack - (flow.streams[other].base ?? s.ack)) | 0);
    mine.insert(s.seq, s.payload);
    if (mine.gap) this.#reportGap(flow, side);
    if (s.flags & TCP.FIN) mine.fin = true;
    // A connection both sides closed, or one reset, is flushed and forgotten: the table holds open
    // connections only, and a port reused later starts a new flow.
    if (s.flags & TCP.RST || (flow.streams.toserver.fin && flow.streams.toclient.fin)) {
      this.#flush(flow);
      this.#flows.delete(flow.key);
      this.#closed.set(flow.key, flow);
      if (this.#closed.size > MAX_CLOSED) this.#forget(this.#closed.values().next().value!);
    }
    return { flow, side };
  }

  #forget(flow: Flow): void {
    this.#closed.delete(flow.key);
    this.handler.forgotten?.(flow);
  }

  finish(): void {
    for (const flow of this.#flows.values()) this.#flush(flow);
  }

  #flush(flow: Flow): void {
    this.#deliver(flow, 'toserver', undefined);
    this.#deliver(flow, 'toclient', undefined);
  }

  #deliver(flow: Flow, side: Side, limit: number | undefined): void {
    const stream = flow.streams[side];
    if (stream.base === undefined || stream.gap) return;
    const { bytes, gap } = stream.take(limit);
    if (bytes.length > 0) this.handler.data(flow, side, bytes.length === 1 ? bytes[0]! : concat(bytes));
    if (gap) {
      stream.gap = true;
      this.#reportGap(flow, side);
    }
  }

  #reportGap(flow: Flow, side: Side): void {
    const stream = flow.streams[side];
    if (stream.gapReported) return;
    stream.gapReported = true;
    stream.pieces = [];
    stream.pendingBytes = 0;
    this.handler.gap(flow, side);
  }
}

/** The direction of a segment of `flow`: from its client, or from its server. */
function sideOf(flow: FlowEndpoints, s: TcpSegment): Side {
  return s.src === flow.client.ip && s.sport === flow.client.port ? 'toserver' : 'toclient';
}

function concat(parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
