/**
 * Classic pcap (not pcapng) for the offline replay: both byte orders, micro- and nanosecond
 * timestamps, and the packet decoding the replay needs (Ethernet with VLAN tags, Linux cooked
 * SLL/SLL2, raw IP, BSD loopback; IPv4 and IPv6; TCP). A bad file header or a record header that
 * runs past the file is E_PCAP; a frame that does not decode (truncated, garbage, not TCP) is
 * counted and skipped, never thrown, so one bad frame does not hide the rest of a capture.
 */
import { IsogateError } from '../../sdk/errors.js';

export interface PcapRecord {
  /** Seconds since the epoch. */
  readonly seconds: number;
  /** Sub-second part in nanoseconds (microsecond files are scaled). */
  readonly nanos: number;
  /** Captured bytes (may be shorter than on the wire). */
  readonly data: Uint8Array;
  readonly originalLength: number;
}

export interface PcapFile {
  readonly linkType: number;
  readonly snapLength: number;
  readonly records: PcapRecord[];
}

export const LINKTYPE = { NULL: 0, ETHERNET: 1, RAW: 101, LINUX_SLL: 113, IPV4: 228, IPV6: 229, LINUX_SLL2: 276 } as const;
const SUPPORTED = new Set<number>(Object.values(LINKTYPE));

/** Records larger than this are refused: no link carries them, and it bounds what one record costs. */
const MAX_RECORD = 256 * 1024;

export function readPcap(file: Uint8Array, name = 'capture'): PcapFile {
  if (file.length < 24) throw new IsogateError('E_PCAP', `${name} is ${file.length} bytes, shorter than a pcap file header (24).`);
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const magic = view.getUint32(0, false);
  let little: boolean;
  let nano: boolean;
  if (magic === 0xa1b2c3d4 || magic === 0xa1b23c4d) {
    little = false;
    nano = magic === 0xa1b23c4d;
  } else if (magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1) {
    little = true;
    nano = magic === 0x4d3cb2a1;
  } else if (magic === 0x0a0d0d0a) {
    throw new IsogateError('E_PCAP', `${name} is pcapng; the replay reads classic pcap (convert it with "editcap -F pcap").`);
  } else {
    throw new IsogateError('E_PCAP', `${name} does not start with a pcap magic number (found 0x${magic.toString(16).padStart(8, '0')}).`);
  }
  const major = view.getUint16(4, little);
  if (major !== 2) throw new IsogateError('E_PCAP', `${name} is pcap version ${major}; only version 2 exists.`);
  const snapLength = view.getUint32(16, little);
  const linkType = view.getUint32(20, little) & 0x0fffffff;
  if (!SUPPORTED.has(linkType))
    throw new IsogateError('E_PCAP', `${name} has link type ${linkType}; the replay reads Ethernet, Linux cooked (SLL, SLL2), raw IP and loopback.`);
  const records: PcapRecord[] = [];
  let offset = 24;
  while (offset < file.length) {
    if (offset + 16 > file.length) throw new IsogateError('E_PCAP', `${name}: record ${records.length + 1} at byte ${offset} has a truncated header.`);
    const seconds = view.getUint32(offset, little);
    const fraction = view.getUint32(offset + 4, little);
    const captured = view.getUint32(offset + 8, little);
    const originalLength = view.getUint32(offset + 12, little);
    if (captured > MAX_RECORD)
      throw new IsogateError('E_PCAP', `${name}: record ${records.length + 1} at byte ${offset} claims ${captured} bytes, more than ${MAX_RECORD}.`);
    if (offset + 16 + captured > file.length)
      throw new IsogateError('E_PCAP', `${name}: record ${records.length + 1} at byte ${offset} runs past the end of the file.`);
    records.push({ seconds, nanos: nano ? fraction : fraction * 1000, data: file.subarray(offset + 16, offset + 16 + captured), originalLength });
    offset += 16 + captured;
  }
  return { linkType, snapLength, records };
}

export interface TcpSegment {
  readonly family: 4 | 6;
  readonly src: string;
  readonly dst: string;
  readonly sport: number;
  readonly dport: number;
  readonly seq: number;
  readonly ack: number;
  readonly flags: number;
  readonly payload: Uint8Array;
}

export const TCP = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10, URG: 0x20 } as const;

/** The TCP segment in one link-layer frame, or undefined when it carries none or does not decode. */
export function decodeTcp(linkType: number, frame: Uint8Array): TcpSegment | undefined {
  const ip = network(linkType, frame);
  if (!ip) return undefined;
  const { etherType, offset } = ip;
  if (etherType === 0x0800) return ipv4(frame, offset);
  if (etherType === 0x86dd) return ipv6(frame, offset);
  return undefined;
}

const u16 = (b: Uint8Array, o: number): number => (b[o]! << 8) | b[o + 1]!;
const u32 = (b: Uint8Array, o: number): number => (b[o]! * 0x1000000 + ((b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!)) >>> 0;

function network(linkType: number, f: Uint8Array): { etherType: number; offset: number } | undefined {
  switch (linkType) {
    case LINKTYPE.ETHERNET: {
      if (f.length < 14) return undefined;
      let etherType = u16(f, 12);
      let offset = 14;
      // 802.1Q / 802.1ad tags, at most two as on real links.
      for (let i = 0; i < 2 && (etherType === 0x8100 || etherType === 0x88a8); i++) {
        if (f.length < offset + 4) return undefined;
        etherType = u16(f, offset + 2);
        offset += 4;
      }
      return { etherType, offset };
    }
    case LINKTYPE.LINUX_SLL:
      return f.length < 16 ? undefined : { etherType: u16(f, 14), offset: 16 };
    case LINKTYPE.LINUX_SLL2:
      return f.length < 20 ? undefined : { etherType: u16(f, 0), offset: 20 };
    case LINKTYPE.NULL: {
      if (f.length < 4) return undefined;
      // The address family in host byte order of the capturing machine: 2 is IPv4; 24, 28, 30 are IPv6 on the BSDs.
      const family = f[0] === 0 ? f[3]! : f[0]!;
      return { etherType: family === 2 ? 0x0800 : [10, 24, 28, 30].includes(family) ? 0x86dd : 0, offset: 4 };
    }
    case LINKTYPE.RAW:
    case LINKTYPE.IPV4:
    case LINKTYPE.IPV6: {
      if (f.length < 1) return undefined;
      const version = f[0]! >> 4;
      return { etherType: version === 4 ? 0x0800 : version === 6 ? 0x86dd : 0, offset: 0 };
    }
    default:
      return undefined;
  }
}

function ipv4(f: Uint8Array, o: number): TcpSegment | undefined {
  if (f.length < o + 20 || f[o]! >> 4 !== 4) return undefined;
  const ihl = (f[o]! & 0x0f) * 4;
  const total = u16(f, o + 2);
  if (ihl < 20 || total < ihl || f.length < o + ihl) return undefined;
  // A fragment (offset set, or more-fragments) is not reassembled: loopback captures have none.
  if (u16(f, o + 6) & 0x3fff) return undefined;
  if (f[o + 9] !== 6) return undefined;
  const end = Math.min(f.length, o + total);
  const src = `${f[o + 12]}.${f[o + 13]}.${f[o + 14]}.${f[o + 15]}`;
  const dst = `${f[o + 16]}.${f[o + 17]}.${f[o + 18]}.${f[o + 19]}`;
  return tcp(f, o + ihl, end, 4, src, dst);
}

function ipv6(f: Uint8Array, o: number): TcpSegment | undefined {
  if (f.length < o + 40 || f[o]! >> 4 !== 6) return undefined;
  const payloadLength = u16(f, o + 4);
  let next = f[o + 6]!;
  const end = Math.min(f.length, o + 40 + payloadLength);
  let at = o + 40;
  // Hop-by-hop, routing and destination options may precede TCP; a fragment header means no TCP to read.
  for (let i = 0; i < 8 && (next === 0 || next === 43 || next === 60); i++) {
    if (end < at + 8) return undefined;
    const length = (f[at + 1]! + 1) * 8;
    next = f[at]!;
    at += length;
  }
  if (next !== 6) return undefined;
  return tcp(f, at, end, 6, v6(f, o + 8), v6(f, o + 24));
}

function v6(f: Uint8Array, o: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(u16(f, o + i).toString(16));
  // RFC 5952 form: the longest run of two or more zero groups becomes "::".
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLength) {
      best = i;
      bestLength = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLength).join(':')}`;
}

function tcp(f: Uint8Array, o: number, end: number, family: 4 | 6, src: string, dst: string): TcpSegment | undefined {
  if (end < o + 20) return undefined;
  const dataOffset = (f[o + 12]! >> 4) * 4;
  if (dataOffset < 20 || end < o + dataOffset) return undefined;
  return {
    family,
    src,
    dst,
    sport: u16(f, o),
    dport: u16(f, o + 2),
    seq: u32(f, o + 4),
    ack: u32(f, o + 8),
    flags: f[o + 13]!,
    payload: f.subarray(o + dataOffset, end),
  };
}

/** An address as Suricata's eve.json writes it: IPv6 in full, eight zero-padded groups. */
export function suricataIp(ip: string): string {
  if (!ip.includes(':')) return ip;
  const [head, tail] = ip.split('::') as [string, string | undefined];
  const a = head ? head.split(':') : [];
  const b = tail ? tail.split(':') : [];
  const groups = tail === undefined ? a : [...a, ...new Array<string>(8 - a.length - b.length).fill('0'), ...b];
  return groups.map((g) => g.padStart(4, '0')).join(':');
}
