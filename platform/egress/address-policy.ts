/**
 * Which addresses egress may reach. An app's declared target is a host name or an address on the
 * internet; the gateway's own side (its loopback, the plant's private networks, link-local
 * services such as a cloud metadata endpoint) is refused unless the admin lists the range in the
 * configuration document's `EGRESS.allowed_ranges`. The decision is made on addresses, never on
 * spellings: a host is read by the WHATWG URL host parser (which turns `2130706433`,
 * `0x7f000001`, `0` and `127.1` into dotted IPv4), a name is resolved here and every answer is
 * checked, and the connection is made to a checked address and checked again once made and
 * once its handshake is done. IPv4 and IPv6 addresses are each judged by their own family's
 * ranges. A refusal says the address and why only to the app's log: the app is told its target
 * is unreachable (see connector.ts).
 */
import dns from 'node:dns';
import net from 'node:net';
import { fail, type IsogateError } from '../../sdk/errors.js';

type Family = 'ipv4' | 'ipv6';

function blockList(ranges: readonly (readonly [string, number])[], family: Family): net.BlockList {
  const list = new net.BlockList();
  for (const [address, prefix] of ranges) list.addSubnet(address, prefix, family);
  return list;
}

/** Ranges that are not somewhere on the internet, with the word an admin reads in a refusal. */
const INTERNAL: readonly { label: string; family: Family; list: net.BlockList }[] = (
  [
    ['unspecified', 'ipv4', [['0.0.0.0', 8]]],
    ['loopback', 'ipv4', [['127.0.0.0', 8]]],
    [
      'private',
      'ipv4',
      [
        ['10.0.0.0', 8],
        ['172.16.0.0', 12],
        ['192.168.0.0', 16],
      ],
    ],
    ['carrier-grade NAT', 'ipv4', [['100.64.0.0', 10]]],
    ['link-local', 'ipv4', [['169.254.0.0', 16]]],
    [
      'special-purpose',
      'ipv4',
      [
        ['192.0.0.0', 24],
        ['198.18.0.0', 15],
      ],
    ],
    ['multicast', 'ipv4', [['224.0.0.0', 4]]],
    ['reserved or broadcast', 'ipv4', [['240.0.0.0', 4]]],
    ['unspecified', 'ipv6', [['::', 128]]],
    ['loopback', 'ipv6', [['::1', 128]]],
    ['link-local', 'ipv6', [['fe80::', 10]]],
    [
      'private',
      'ipv6',
      [
        ['fc00::', 7],
        ['fec0::', 10],
      ],
    ],
    ['multicast', 'ipv6', [['ff00::', 8]]],
    [
      'special-purpose',
      'ipv6',
      [
        ['64:ff9b:1::', 48],
        ['100::', 64],
      ],
    ],
  ] as const
).map(([label, family, ranges]) => ({ label, family, list: blockList(ranges, family) }));

/** The IPv4 address in two 16-bit groups. */
const ipv4Of = (high: number, low: number): string => `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;

/**
 * IPv6 forms that carry an IPv4 address, and where: a connection to one of these reaches (or is
 * translated or tunnelled to) the IPv4 address inside, so that address decides; where a form
 * carries two (Teredo: its server, and its client with the bits inverted), each does.
 */
const EMBEDDINGS: readonly { form: string; list: net.BlockList; inner: (groups: number[]) => [label: string, address: string][] }[] = (
  [
    ['IPv4-mapped', '::ffff:0:0', 96, (g) => [['IPv4-mapped', ipv4Of(g[6]!, g[7]!)]]],
    ['IPv4-translated', '::ffff:0:0:0', 96, (g) => [['IPv4-translated', ipv4Of(g[6]!, g[7]!)]]],
    ['NAT64', '64:ff9b::', 96, (g) => [['NAT64', ipv4Of(g[6]!, g[7]!)]]],
    ['IPv4-compatible', '::', 96, (g) => [['IPv4-compatible', ipv4Of(g[6]!, g[7]!)]]],
    ['6to4', '2002::', 16, (g) => [['6to4', ipv4Of(g[1]!, g[2]!)]]],
    // RFC 4380: 2001:0:SSSS:SSSS:flags:port:CCCC:CCCC, the client's address inverted.
    [
      'Teredo',
      '2001::',
      32,
      (g) => [
        ['Teredo server', ipv4Of(g[2]!, g[3]!)],
        ['Teredo client', ipv4Of(~g[6]! & 0xffff, ~g[7]! & 0xffff)],
      ],
    ],
  ] as const satisfies readonly (readonly [string, string, number, (groups: number[]) => [string, string][]])[]
).map(([form, prefix, bits, inner]) => ({ form, list: blockList([[prefix, bits]], 'ipv6'), inner }));

/**
 * ISATAP (RFC 5214) carries an IPv4 address in the interface identifier under any prefix:
 * ::0:5efe:a.b.c.d or ::200:5efe:a.b.c.d (the universal/local bit set).
 */
function isatapInner(groups: number[]): [label: string, address: string][] {
  return (groups[4] === 0 || groups[4] === 0x200) && groups[5] === 0x5efe ? [['ISATAP', ipv4Of(groups[6]!, groups[7]!)]] : [];
}

/**
 * A host as written may hold only printable ASCII: the manifest's host pattern allows nothing
 * else, and the URL host parser would quietly drop or map what is invisible or looks alike
 * (U+200B, U+00AD, U+FEFF, U+2060, U+034F vanish; U+3002 and full-width digits become "." and
 * digits), so that what an admin reads in a manifest would not be the host that is resolved. An
 * international name is declared in its ASCII (xn--) form.
 */
function unprintable(host: string): string | undefined {
  const found = /[^\x21-\x7e]/u.exec(host)?.[0];
  return found && `U+${found.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** The eight 16-bit groups of an IPv6 address in the URL parser's canonical (compressed) form. */
function hextets(canonical: string): number[] {
  const [head = '', tail] = canonical.split('::');
  const first = head ? head.split(':') : [];
  const last = tail ? tail.split(':') : [];
  const groups = tail === undefined ? first : [...first, ...Array<string>(8 - first.length - last.length).fill('0'), ...last];
  return groups.map((group) => Number.parseInt(group, 16));
}

/** An IPv6 address as the WHATWG URL parser writes it: lower case, compressed, no dotted quad. */
function canonicalIpv6(address: string): string {
  return new URL(`https://[${address}]/`).hostname.slice(1, -1);
}

/**
 * A target's host as an address when it is one in any spelling the URL parser accepts, else as
 * the host name to resolve. Undefined when it is neither.
 */
export function canonicalHost(host: string): { address: string; family: 4 | 6 } | { name: string } | undefined {
  if (host.length === 0 || unprintable(host)) return undefined;
  // A zone (fe80::1%eth0) is kept: the URL parser refuses it, and the address decides anyway.
  if (net.isIPv6(host)) return { address: host.includes('%') ? host : canonicalIpv6(host), family: 6 };
  let hostname: string;
  try {
    hostname = new URL(`https://${host}/`).hostname;
  } catch {
    return undefined;
  }
  if (hostname.startsWith('[')) return { address: hostname.slice(1, -1), family: 6 };
  if (net.isIPv4(hostname)) return { address: hostname, family: 4 };
  return hostname.length > 0 && !/[/?#@:[\]%\s]/.test(hostname) ? { name: hostname } : undefined;
}

/** The host read as canonicalHost reads it, or E_EGRESS_ADDRESS saying why it is no host. */
export function readHost(host: string, describe: string): { address: string; family: 4 | 6 } | { name: string } {
  const character = unprintable(host);
  if (character)
    throw fail(
      'E_EGRESS_ADDRESS',
      `${describe}: ${JSON.stringify(host)} has the character ${character}, which no host name or address has (an invisible or look-alike character; an international name is written in its xn-- form)`,
      { character },
    );
  const canonical = canonicalHost(host);
  if (!canonical) throw fail('E_EGRESS_ADDRESS', `${describe}: "${host}" is not a host name or address`);
  return canonical;
}

export class AddressPolicy {
  /** The admin's list as written, to tell whether a new document changes it. */
  readonly ranges: readonly string[];
  // One list per family: a BlockList matches an IPv4 address against IPv6 rules through
  // ::ffff:0:0/96, so "::/64" in a shared list allowed 127.0.0.1, 10.0.0.1 and 169.254.169.254.
  readonly #allowed: Readonly<Record<Family, net.BlockList>>;

  private constructor(ranges: readonly string[], allowed: Readonly<Record<Family, net.BlockList>>) {
    this.ranges = ranges;
    this.#allowed = allowed;
  }

  /** The policy for `EGRESS.allowed_ranges`; a range that is not CIDR is E_CONFIG, naming it. */
  static fromRanges(ranges: unknown): AddressPolicy {
    const allowed = { ipv4: new net.BlockList(), ipv6: new net.BlockList() };
    if (ranges === undefined) return new AddressPolicy([], allowed);
    if (!Array.isArray(ranges)) throw fail('E_CONFIG', 'EGRESS.allowed_ranges is a list of CIDR ranges, for example ["127.0.0.0/8", "::1/128"]');
    ranges.forEach((range: unknown, index) => {
      const problem = cidrProblem(range);
      if (problem)
        throw fail(
          'E_CONFIG',
          `EGRESS.allowed_ranges[${index}] ${JSON.stringify(range)} is not a CIDR range: ${problem}. Write ADDRESS/PREFIX, for example 10.20.0.0/16 or fd00:1::/64`,
          { index },
        );
      const [address, prefix] = (range as string).split('/') as [string, string];
      const family: Family = net.isIPv4(address) ? 'ipv4' : 'ipv6';
      allowed[family].addSubnet(address, Number(prefix), family);
    });
    return new AddressPolicy([...ranges] as string[], allowed);
  }

  /**
   * Why `address` may not be reached (for example "loopback", "private (IPv4-mapped)"), or
   * undefined when it may: outside every internal range, or inside a range the admin allowed
   * for its own family. An IPv6 address that carries an IPv4 one is judged by that IPv4 address
   * against the IPv4 ranges alone, so no IPv6 range lets an internal IPv4 address through.
   */
  refusal(address: string): string | undefined {
    const bare = address.split('%')[0]!;
    const family = net.isIP(bare);
    if (family === 0) return 'not an IP address';
    const type: Family = family === 4 ? 'ipv4' : 'ipv6';
    // Checked against its own family's lists only (see #allowed); :: and ::1 are IPv6's own
    // before they are IPv4-compatible forms.
    const internal = INTERNAL.find((range) => range.family === type && range.list.check(bare, type));
    if (internal) return this.#allowed[type].check(bare, type) ? undefined : internal.label;
    if (type === 'ipv4') return undefined;
    const groups = hextets(canonicalIpv6(bare));
    const embedding = EMBEDDINGS.find((form) => form.list.check(bare, 'ipv6'));
    for (const [label, inner] of [...(embedding?.inner(groups) ?? []), ...isatapInner(groups)]) {
      const reason = this.refusal(inner);
      if (reason) return `${reason} (${inner}, ${label})`;
    }
    return undefined;
  }

  /**
   * The addresses to connect to for `host`, every one allowed: a host name whose DNS answer
   * holds any refused address is refused as a whole, so a rebinding answer cannot slip one in.
   */
  async addresses(host: string, describe: string): Promise<dns.LookupAddress[]> {
    const canonical = readHost(host, describe);
    const found =
      'address' in canonical
        ? [{ address: canonical.address, family: canonical.family }]
        : await dns.promises.lookup(canonical.name, { all: true, verbatim: true });
    for (const { address } of found) {
      const reason = this.refusal(address);
      if (reason) throw refusedAddress(describe, host, address, reason);
    }
    return found;
  }
}

/**
 * The policy in force, asked afresh at every step of a connection (DNS answer, the address
 * connected to, the finished handshake): an `EGRESS.allowed_ranges` change reaches connections
 * still being opened, not only the ones already handed to an app.
 */
export class PolicyInForce {
  #current: AddressPolicy;

  constructor(policy: AddressPolicy) {
    this.#current = policy;
  }

  get current(): AddressPolicy {
    return this.#current;
  }

  set(policy: AddressPolicy): void {
    this.#current = policy;
  }

  refusal(address: string): string | undefined {
    return this.#current.refusal(address);
  }

  addresses(host: string, describe: string): Promise<dns.LookupAddress[]> {
    return this.#current.addresses(host, describe);
  }
}

/** The admin's sentence (E_EGRESS_ADDRESS) for a refused address; the app is told only that the target is unreachable. */
export function refusedAddress(describe: string, host: string, address: string, reason: string): IsogateError {
  const where = host === address ? address : `${host} (${address})`;
  const article = /^[aeiou]/i.test(reason) ? 'an' : 'a';
  return fail(
    'E_EGRESS_ADDRESS',
    `${describe}: ${where} is ${article} ${reason} address, on the gateway's own side; egress there is refused unless the admin adds its range to EGRESS.allowed_ranges in the configuration`,
    { address, reason },
  );
}

function cidrProblem(range: unknown): string | undefined {
  if (typeof range !== 'string') return 'it is not a string';
  const parts = range.split('/');
  if (parts.length !== 2) return 'it has no /PREFIX';
  const [address, prefix] = parts as [string, string];
  const family = net.isIP(address);
  if (family === 0) return `${JSON.stringify(address)} is not an IPv4 or IPv6 address`;
  const bits = family === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > bits) return `the prefix length of an IPv${family} range is 0 to ${bits}`;
  return undefined;
}
