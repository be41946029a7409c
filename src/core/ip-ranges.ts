// IP addresses, CIDR ranges and the outbound IP range blacklist.
//
// Federation makes this server connect to addresses that other people choose (through DNS, SRV
// and `.well-known`), so every resolved address is checked against a blacklist before connecting:
// otherwise anyone could make us send requests to services on our own network. The rules follow
// Synapse's `ip_range_blacklist` / `ip_range_whitelist` (its configuration manual):
// - the default blacklist is the private, loopback, link-local, CGNAT, documentation, multicast
//   and other unroutable ranges below;
// - `0.0.0.0` and `::` are always blacklisted, whatever the configuration says;
// - the whitelist overrides the blacklist;
// - every IPv4 range also covers the IPv6 forms that carry an IPv4 address: IPv4-mapped
//   (`::ffff:a.b.c.d`, RFC 4291 §2.5.5.2), IPv4-compatible (`::a.b.c.d`, §2.5.5.1) and 6to4
//   (`2002:AABB:CCDD::/48`, RFC 3056 §2). We add the NAT64 well-known prefix (`64:ff9b::/96`,
//   RFC 6052) as well, which Synapse does not: a NAT64 gateway would forward such an address to
//   the embedded IPv4 address, so it must be judged by that address.
//
// Addresses are held as bigints; all checks are a mask and a compare.

export type IpVersion = 4 | 6;

export interface IpAddress {
  readonly version: IpVersion;
  /** The address as an unsigned integer (32 bits for IPv4, 128 for IPv6). */
  readonly value: bigint;
}

export interface CidrRange {
  readonly version: IpVersion;
  /** The first address of the range (host bits cleared). */
  readonly network: bigint;
  readonly prefixLength: number;
}

const BITS: Readonly<Record<IpVersion, number>> = { 4: 32, 6: 128 };

// ---- parsing addresses ----

const IPV4_PART = /^(?:0|[1-9][0-9]{0,2})$/;

/**
 * A dotted-quad IPv4 address. Leading zeros are refused (`010.0.0.1` means 8.0.0.1 to some
 * parsers and 10.0.0.1 to others, so it must not be guessed at).
 */
export function parseIPv4(text: string): IpAddress | undefined {
  if (typeof text !== 'string') return undefined;
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0n;
  for (const part of parts) {
    if (!IPV4_PART.test(part)) return undefined;
    const n = Number(part);
    if (n > 255) return undefined;
    value = (value << 8n) | BigInt(n);
  }
  return { version: 4, value };
}

const HEX_GROUP = /^[0-9A-Fa-f]{1,4}$/;

/**
 * An IPv6 address in any RFC 4291 §2.2 form: full, `::`-compressed, with a trailing dotted-quad
 * IPv4 part. Surrounding brackets (`[::1]`) and a zone id (`fe80::1%eth0`) are accepted and
 * dropped: the zone only says which interface, not which address.
 */
export function parseIPv6(text: string): IpAddress | undefined {
  if (typeof text !== 'string' || text.length > 64) return undefined;
  let s = text;
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  const zone = s.indexOf('%');
  if (zone !== -1) {
    if (zone === s.length - 1) return undefined;
    s = s.slice(0, zone);
  }
  if (s.length < 2) return undefined;

  // A trailing IPv4 part stands for the last two groups.
  let tail: bigint | undefined;
  const lastColon = s.lastIndexOf(':');
  if (s.indexOf('.', lastColon) !== -1) {
    const v4 = parseIPv4(s.slice(lastColon + 1));
    if (!v4) return undefined;
    tail = v4.value;
    s = s.slice(0, lastColon + 1);
    // `::1.2.3.4` leaves `::`; `1::2:1.2.3.4` leaves `1::2:`, whose dangling colon belonged to the
    // IPv4 part.
    if (!s.endsWith('::')) s = s.slice(0, -1);
  }
  const groupsWanted = tail === undefined ? 8 : 6;

  const doubleColon = s.indexOf('::');
  if (doubleColon !== -1 && s.indexOf('::', doubleColon + 1) !== -1) return undefined;

  const readGroups = (part: string): bigint[] | undefined => {
    if (part === '') return [];
    const out: bigint[] = [];
    for (const group of part.split(':')) {
      if (!HEX_GROUP.test(group)) return undefined;
      out.push(BigInt(parseInt(group, 16)));
    }
    return out;
  };

  let groups: bigint[];
  if (doubleColon === -1) {
    const all = readGroups(s);
    if (!all || all.length !== groupsWanted) return undefined;
    groups = all;
  } else {
    const head = readGroups(s.slice(0, doubleColon));
    const rest = readGroups(s.slice(doubleColon + 2));
    if (!head || !rest) return undefined;
    // `::` stands for at least one group of zeros.
    const missing = groupsWanted - head.length - rest.length;
    if (missing < 1) return undefined;
    groups = [...head, ...new Array<bigint>(missing).fill(0n), ...rest];
  }

  let value = 0n;
  for (const group of groups) value = (value << 16n) | group;
  if (tail !== undefined) value = (value << 32n) | tail;
  return { version: 6, value };
}

/** An IPv4 or IPv6 address (brackets and zone ids allowed on IPv6). */
export function parseIpAddress(text: string): IpAddress | undefined {
  if (typeof text !== 'string') return undefined;
  return text.includes(':') || text.startsWith('[') ? parseIPv6(text) : parseIPv4(text);
}

/** 4 or 6 if `text` is an IP address literal, else `undefined`. */
export function ipVersionOf(text: string): IpVersion | undefined {
  return parseIpAddress(text)?.version;
}

// ---- formatting ----

export function formatIpAddress(address: IpAddress): string {
  if (address.version === 4) {
    const v = address.value;
    return [24n, 16n, 8n, 0n].map((shift) => String((v >> shift) & 0xffn)).join('.');
  }
  const groups: number[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) groups.push(Number((address.value >> shift) & 0xffffn));
  // RFC 5952 §4.2: compress the longest run (of at least two) of zero groups, the first if tied.
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart === -1) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

export function formatCidr(range: CidrRange): string {
  return `${formatIpAddress({ version: range.version, value: range.network })}/${range.prefixLength}`;
}

// ---- ranges ----

function mask(version: IpVersion, prefixLength: number): bigint {
  const bits = BITS[version];
  return ((1n << BigInt(prefixLength)) - 1n) << BigInt(bits - prefixLength);
}

const PREFIX = /^(?:0|[1-9][0-9]{0,2})$/;

/**
 * `address/prefix`, or a bare address meaning just that address (Synapse's configuration allows
 * both, e.g. `ip_range_whitelist: [192.168.1.1]`). Host bits below the prefix are cleared, as
 * Synapse's parser does, so `10.1.2.3/8` is `10.0.0.0/8`.
 */
export function parseCidr(text: string): CidrRange | undefined {
  if (typeof text !== 'string') return undefined;
  const trimmed = text.trim();
  const slash = trimmed.indexOf('/');
  const addressText = slash === -1 ? trimmed : trimmed.slice(0, slash);
  if (addressText.includes('%')) return undefined; // a zone id makes no sense in a range
  const address = parseIpAddress(addressText);
  if (!address) return undefined;
  const bits = BITS[address.version];
  let prefixLength = bits;
  if (slash !== -1) {
    const prefixText = trimmed.slice(slash + 1);
    if (!PREFIX.test(prefixText)) return undefined;
    prefixLength = Number(prefixText);
    if (prefixLength > bits) return undefined;
  }
  return { version: address.version, network: address.value & mask(address.version, prefixLength), prefixLength };
}

export function cidrContains(range: CidrRange, address: IpAddress): boolean {
  if (range.version !== address.version) return false;
  return (address.value & mask(range.version, range.prefixLength)) === range.network;
}

const IPV4_MAPPED = parseCidr('::ffff:0:0/96')!;
const IPV4_COMPATIBLE = parseCidr('::/96')!;
const SIX_TO_FOUR = parseCidr('2002::/16')!;
const NAT64 = parseCidr('64:ff9b::/96')!;

/**
 * The IPv4 address an IPv6 address carries and would reach: IPv4-mapped, IPv4-compatible, 6to4
 * or NAT64 (see the top of this file). `undefined` for IPv4 addresses and other IPv6 addresses.
 */
export function embeddedIPv4(address: IpAddress): IpAddress | undefined {
  if (address.version !== 6) return undefined;
  if (cidrContains(IPV4_MAPPED, address) || cidrContains(IPV4_COMPATIBLE, address) || cidrContains(NAT64, address)) {
    return { version: 4, value: address.value & 0xffffffffn };
  }
  if (cidrContains(SIX_TO_FOUR, address)) {
    return { version: 4, value: (address.value >> 80n) & 0xffffffffn };
  }
  return undefined;
}

/** A set of CIDR ranges. IPv4 ranges also match the IPv6 forms of their addresses. */
export class IpRangeSet {
  private readonly v4: readonly CidrRange[];
  private readonly v6: readonly CidrRange[];

  constructor(readonly ranges: readonly CidrRange[]) {
    this.v4 = ranges.filter((r) => r.version === 4);
    this.v6 = ranges.filter((r) => r.version === 6);
  }

  get size(): number {
    return this.ranges.length;
  }

  /** Whether the address (text or parsed) is in the set. Unparseable text is not. */
  contains(address: IpAddress | string): boolean {
    const parsed = typeof address === 'string' ? parseIpAddress(address) : address;
    if (!parsed) return false;
    if (parsed.version === 4) return this.v4.some((r) => cidrContains(r, parsed));
    if (this.v6.some((r) => cidrContains(r, parsed))) return true;
    const inner = embeddedIPv4(parsed);
    return inner !== undefined && this.v4.some((r) => cidrContains(r, inner));
  }
}

export type IpRangeListResult =
  { readonly ok: true; readonly set: IpRangeSet } | { readonly ok: false; readonly invalid: readonly string[] };

/** Parses a configured list of ranges; every entry that is not a range is reported. */
export function parseIpRangeList(entries: readonly string[]): IpRangeListResult {
  const ranges: CidrRange[] = [];
  const invalid: string[] = [];
  for (const entry of entries) {
    const range = parseCidr(entry);
    if (range) ranges.push(range);
    else invalid.push(String(entry));
  }
  return invalid.length > 0 ? { ok: false, invalid } : { ok: true, set: new IpRangeSet(ranges) };
}

/**
 * Synapse's default `ip_range_blacklist` (its configuration manual, `ip_range_blacklist`), in the
 * same order.
 */
export const DEFAULT_IP_RANGE_BLACKLIST: readonly string[] = Object.freeze([
  '127.0.0.0/8', // loopback
  '10.0.0.0/8', // private networks (RFC 1918)
  '172.16.0.0/12',
  '192.168.0.0/16',
  '100.64.0.0/10', // carrier-grade NAT (RFC 6598)
  '192.0.0.0/24', // IETF protocol assignments
  '169.254.0.0/16', // link-local
  '192.88.99.0/24', // formerly the 6to4 relay anycast range
  '198.18.0.0/15', // benchmarking
  '192.0.2.0/24', // documentation (TEST-NET-1, -2, -3)
  '198.51.100.0/24',
  '203.0.113.0/24',
  '224.0.0.0/4', // multicast
  '::1/128', // loopback
  'fe80::/10', // link-local
  'fc00::/7', // unique local addresses
  '2001:db8::/32', // documentation
  'ff00::/8', // multicast
  'fec0::/10', // site-local (deprecated)
]);

/** Unroutable "any" addresses: blacklisted whatever the configuration says (as Synapse). */
export const ALWAYS_BLACKLISTED: readonly string[] = Object.freeze(['0.0.0.0', '::']);

export interface IpAccessPolicyOptions {
  /** `ip_range_blacklist`; default `DEFAULT_IP_RANGE_BLACKLIST`. */
  readonly blacklist?: readonly string[];
  /** `ip_range_whitelist`; default none. */
  readonly whitelist?: readonly string[];
}

/**
 * Decides which resolved addresses outbound requests may connect to: a blacklisted address is
 * refused unless it is also whitelisted. An address that cannot be parsed is refused.
 */
export class IpAccessPolicy {
  readonly blacklist: IpRangeSet;
  readonly whitelist: IpRangeSet;

  constructor(blacklist: IpRangeSet, whitelist: IpRangeSet) {
    this.blacklist = blacklist;
    this.whitelist = whitelist;
  }

  /**
   * From configured lists. Throws `IpRangeError` naming every entry that is not an address or a
   * CIDR range (configuration validation should have caught them first).
   */
  static fromConfig(options: IpAccessPolicyOptions = {}): IpAccessPolicy {
    const blacklist = parseIpRangeList([...(options.blacklist ?? DEFAULT_IP_RANGE_BLACKLIST), ...ALWAYS_BLACKLISTED]);
    const whitelist = parseIpRangeList(options.whitelist ?? []);
    const invalid = [...(blacklist.ok ? [] : blacklist.invalid), ...(whitelist.ok ? [] : whitelist.invalid)];
    if (!blacklist.ok || !whitelist.ok) throw new IpRangeError(invalid);
    return new IpAccessPolicy(blacklist.set, whitelist.set);
  }

  isAllowed(address: IpAddress | string): boolean {
    const parsed = typeof address === 'string' ? parseIpAddress(address) : address;
    if (!parsed) return false;
    return !this.blacklist.contains(parsed) || this.whitelist.contains(parsed);
  }
}

export class IpRangeError extends Error {
  constructor(readonly invalid: readonly string[]) {
    super(`not an IP address or CIDR range: ${invalid.map((e) => JSON.stringify(e)).join(', ')}`);
    this.name = 'IpRangeError';
  }
}
