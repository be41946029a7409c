// Finding another homeserver from its server name (spec: server-server API §Resolving server
// names, §TLS; `/.well-known/matrix/server` in `wellknown.yaml`).
//
// Everything here is decided without I/O. The network code asks `planServerDiscovery` what to do
// next, performs that one lookup (a `.well-known` fetch, an SRV query), adds the answer to what it
// knows and asks again, until the plan says where to connect and with which `Host` header and TLS
// server name. The `.well-known` cache rules are pure functions of the response, the previous
// cache entry and `now`.

import { parseServerName } from './identifiers.js';
import type { IpVersion } from './ip-ranges.js';
import { parseIPv6, parseIpAddress } from './ip-ranges.js';
import { isJsonObject } from './json.js';

/** The port used when neither the server name, `.well-known` nor SRV gives one. */
export const DEFAULT_FEDERATION_PORT = 8448;

// ---- server names ----

export interface ServerNameParts {
  /** The server name as given. */
  readonly serverName: string;
  /** A DNS name, or an IP address without brackets (`::1`, `1.2.3.4`). */
  readonly hostname: string;
  readonly port: number | undefined;
  /** 4 or 6 when the hostname is an IP literal. */
  readonly ipLiteral: IpVersion | undefined;
}

/**
 * Splits a server name (appendices §Server Name) into hostname and port, and says whether the
 * hostname is an IP literal. A dotted quad that is not a valid IPv4 address (`300.1.1.1`) is
 * read as a DNS name, as the grammar allows. `undefined` if the name is not valid, or its port is
 * not a usable TCP port (1–65535; the grammar allows any five digits).
 */
export function splitServerName(serverName: string): ServerNameParts | undefined {
  const parsed = parseServerName(serverName);
  if (!parsed) return undefined;
  if (parsed.port !== undefined && (parsed.port < 1 || parsed.port > 65535)) return undefined;
  if (parsed.host.startsWith('[')) {
    const hostname = parsed.host.slice(1, -1);
    if (!parseIPv6(hostname)) return undefined;
    return { serverName, hostname, port: parsed.port, ipLiteral: 6 };
  }
  const ip = parseIpAddress(parsed.host);
  return { serverName, hostname: parsed.host, port: parsed.port, ipLiteral: ip?.version };
}

/** Whether the server name's hostname is an IP address literal. */
export function isIpLiteralServerName(serverName: string): boolean {
  return splitServerName(serverName)?.ipLiteral !== undefined;
}

/** `host[:port]` for a URL or `Host` header: IPv6 addresses in brackets. */
export function formatHostAndPort(hostname: string, port?: number): string {
  const host = hostname.includes(':') ? `[${hostname}]` : hostname;
  return port === undefined ? host : `${host}:${port}`;
}

// ---- /.well-known/matrix/server ----

/** Synapse reads at most this much of a `.well-known` body; larger answers count as errors. */
export const WELL_KNOWN_MAX_BYTES = 50 * 1024;

export type WellKnownParseResult =
  { readonly ok: true; readonly delegated: ServerNameParts } | { readonly ok: false; readonly reason: string };

/**
 * Reads the `m.server` of a parsed `.well-known/matrix/server` body. It must be a server name
 * (`<delegated_hostname>[:<delegated_port>]`, the same grammar); other properties are ignored.
 */
export function parseWellKnownServer(body: unknown): WellKnownParseResult {
  if (!isJsonObject(body)) return { ok: false, reason: 'the body is not a JSON object' };
  const value = body['m.server'];
  if (typeof value !== 'string') return { ok: false, reason: '"m.server" is missing or not a string' };
  const delegated = splitServerName(value);
  if (!delegated) return { ok: false, reason: `"m.server" is not a valid server name: ${JSON.stringify(value)}` };
  return { ok: true, delegated };
}

/**
 * The same from the body's text. The spec says to read it as JSON whatever its `Content-Type`.
 */
export function parseWellKnownServerText(text: string): WellKnownParseResult {
  if (Buffer.byteLength(text, 'utf8') > WELL_KNOWN_MAX_BYTES) {
    return { ok: false, reason: `the body is larger than ${WELL_KNOWN_MAX_BYTES} bytes` };
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'the body is not JSON' };
  }
  return parseWellKnownServer(body);
}

/** Response headers as Node and undici give them (any case of name is looked up). */
export type HttpHeaders = Readonly<Record<string, string | readonly string[] | undefined>>;

/** What one `.well-known` request came to. */
export type WellKnownFetchOutcome =
  /** 200 with a valid `m.server`. */
  | { readonly kind: 'delegated'; readonly delegated: ServerNameParts; readonly headers: HttpHeaders }
  /**
   * The server answered, but with no usable delegation: a non-200 status other than 5xx, a body
   * that is not JSON, no valid `m.server` (spec: "If the response is invalid ... skip to step 4").
   */
  | { readonly kind: 'invalid'; readonly reason: string }
  /** No answer: connection failure, timeout, TLS error, 5xx, a body over the size limit. */
  | { readonly kind: 'unreachable'; readonly reason: string };

/**
 * Classifies a `.well-known` response. Redirects are followed by the fetcher before this (the spec
 * says to follow 30x and avoid loops). 5xx counts as "unreachable" (temporary), as in Synapse.
 */
export function classifyWellKnownResponse(status: number, bodyText: string, headers: HttpHeaders = {}): WellKnownFetchOutcome {
  if (status >= 500 && status <= 599) return { kind: 'unreachable', reason: `status ${status}` };
  if (status !== 200) return { kind: 'invalid', reason: `status ${status}` };
  if (Buffer.byteLength(bodyText, 'utf8') > WELL_KNOWN_MAX_BYTES) {
    return { kind: 'unreachable', reason: `the body is larger than ${WELL_KNOWN_MAX_BYTES} bytes` };
  }
  const parsed = parseWellKnownServerText(bodyText);
  return parsed.ok ? { kind: 'delegated', delegated: parsed.delegated, headers } : { kind: 'invalid', reason: parsed.reason };
}

// ---- caching .well-known answers ----

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/** The spec's recommended default lifetime of a successful answer without cache headers. */
export const WELL_KNOWN_DEFAULT_CACHE_MS = 24 * HOUR;
/** The spec's recommended maximum lifetime, whatever the headers say. */
export const WELL_KNOWN_MAX_CACHE_MS = 48 * HOUR;
/**
 * The shortest lifetime we give a successful answer (Synapse's floor): a `no-store` or
 * `max-age=0` would otherwise make every federation request to that server fetch it again.
 */
export const WELL_KNOWN_MIN_CACHE_MS = 5 * MINUTE;
/**
 * How long "this server publishes no usable delegation" is remembered. The spec recommends
 * caching errors for up to an hour; an answer that says "no delegation" is not going to change
 * sooner, so it gets the full hour at once (as Synapse does).
 */
export const WELL_KNOWN_INVALID_CACHE_MS = HOUR;
/**
 * The first retry delay after the server could not be reached; it doubles with each further
 * failure in a row up to `WELL_KNOWN_UNREACHABLE_MAX_CACHE_MS` (the spec: errors cached for up to
 * an hour, with exponential backoff for repeated failures). Two minutes is Synapse's delay for a
 * server that recently had a valid answer.
 */
export const WELL_KNOWN_UNREACHABLE_BASE_CACHE_MS = 2 * MINUTE;
export const WELL_KNOWN_UNREACHABLE_MAX_CACHE_MS = HOUR;
/**
 * A cached answer is refetched once this fraction of its lifetime is left, so a busy destination
 * never waits for a fetch (Synapse's grace period).
 */
export const WELL_KNOWN_REFRESH_FRACTION = 0.2;
/** Default and failure lifetimes are spread by ±10 % so that entries do not all expire at once. */
export const WELL_KNOWN_JITTER = 0.1;

function headerValues(headers: HttpHeaders, name: string): string[] {
  const out: string[] = [];
  for (const key of Object.keys(headers)) {
    if (key.toLowerCase() !== name) continue;
    const value = headers[key];
    if (typeof value === 'string') out.push(value);
    else if (Array.isArray(value)) out.push(...(value as readonly string[]).filter((v) => typeof v === 'string'));
  }
  return out;
}

/** Cache-Control directives, names lower-cased, quoted values unquoted (RFC 9111 §5.2). */
export function parseCacheControl(headers: HttpHeaders): Map<string, string | undefined> {
  const directives = new Map<string, string | undefined>();
  for (const header of headerValues(headers, 'cache-control')) {
    for (const part of header.split(',')) {
      const eq = part.indexOf('=');
      const name = (eq === -1 ? part : part.slice(0, eq)).trim().toLowerCase();
      if (name === '') continue;
      let value = eq === -1 ? undefined : part.slice(eq + 1).trim();
      if (value !== undefined && value.length >= 2 && value.startsWith('"') && value.endsWith('"')) {
        value = value.slice(1, -1);
      }
      directives.set(name, value);
    }
  }
  return directives;
}

/**
 * The lifetime in ms the response headers give, before the min/max bounds: `no-store` or
 * `no-cache` → 0; `max-age` → its value; else `Expires` (relative to the response's `Date`, or to
 * `now` without one; an invalid date means "already expired", RFC 9111 §5.3). `undefined` when
 * the headers say nothing.
 */
export function cacheLifetimeFromHeaders(headers: HttpHeaders, now: number): number | undefined {
  const directives = parseCacheControl(headers);
  if (directives.has('no-store') || directives.has('no-cache')) return 0;
  const maxAge = directives.get('max-age');
  if (maxAge !== undefined && /^[0-9]{1,10}$/.test(maxAge)) return Number(maxAge) * 1000;
  const expires = headerValues(headers, 'expires');
  if (expires.length > 0) {
    const expiresAt = Date.parse(expires[expires.length - 1]!);
    if (Number.isNaN(expiresAt)) return 0;
    const dates = headerValues(headers, 'date');
    const date = dates.length > 0 ? Date.parse(dates[dates.length - 1]!) : Number.NaN;
    return Math.max(0, expiresAt - (Number.isNaN(date) ? now : date));
  }
  return undefined;
}

/** A cached `.well-known` answer for one server name. */
export interface WellKnownCacheEntry {
  /** The delegated server, or `undefined` when there is none (resolve the server name itself). */
  readonly delegated: ServerNameParts | undefined;
  /** After this the entry must not be used. */
  readonly expiresAt: number;
  /** From this moment the entry is still used, but a fresh fetch should be started. */
  readonly refreshAt: number;
  /** Failed fetches in a row (0 after a success); drives the backoff. */
  readonly consecutiveFailures: number;
}

export type WellKnownCacheState = 'fresh' | 'refresh' | 'expired';

export function wellKnownCacheState(entry: WellKnownCacheEntry | undefined, now: number): WellKnownCacheState {
  if (!entry || now >= entry.expiresAt) return 'expired';
  return now >= entry.refreshAt ? 'refresh' : 'fresh';
}

/** The ±10 % factor for a random number in [0, 1). */
function jitterFactor(random: number): number {
  const r = Number.isFinite(random) ? Math.min(Math.max(random, 0), 1) : 0.5;
  return 1 - WELL_KNOWN_JITTER + 2 * WELL_KNOWN_JITTER * r;
}

/** How long the n-th unreachable fetch in a row is remembered (n ≥ 1), before jitter. */
export function wellKnownUnreachableCacheMs(consecutiveFailures: number): number {
  const n = Math.max(1, Math.floor(consecutiveFailures));
  // 2^n overflows to Infinity long before n is unsafe; the cap applies either way.
  return Math.min(WELL_KNOWN_UNREACHABLE_MAX_CACHE_MS, WELL_KNOWN_UNREACHABLE_BASE_CACHE_MS * 2 ** (n - 1));
}

function entry(delegated: ServerNameParts | undefined, now: number, lifetime: number, failures: number): WellKnownCacheEntry {
  return {
    delegated,
    expiresAt: now + lifetime,
    refreshAt: now + Math.round(lifetime * (1 - WELL_KNOWN_REFRESH_FRACTION)),
    consecutiveFailures: failures,
  };
}

/**
 * The cache entry after a fetch (spec §Resolving server names, step 3: cache successes and
 * failures; respect cache headers, default 24 h, at most 48 h; errors up to an hour with
 * exponential backoff):
 * - delegated: the header lifetime within [5 min, 48 h], or 24 h ± 10 % without headers;
 * - invalid: no delegation, for an hour ± 10 %;
 * - unreachable: no delegation for 2 min × 2^(failures−1) ± 10 %, at most an hour. But when the
 *   previous entry held a delegation that has not expired yet, that delegation is kept until it
 *   expires (a server that is briefly down keeps its delegation), with only the next retry put
 *   back by the backoff.
 *
 * `random` is a number in [0, 1) for the jitter (pass `Math.random()`); 0.5 means none.
 */
export function nextWellKnownCacheEntry(
  previous: WellKnownCacheEntry | undefined,
  outcome: WellKnownFetchOutcome,
  now: number,
  random = 0.5,
): WellKnownCacheEntry {
  const jitter = jitterFactor(random);
  switch (outcome.kind) {
    case 'delegated': {
      const fromHeaders = cacheLifetimeFromHeaders(outcome.headers, now);
      const lifetime =
        fromHeaders === undefined
          ? Math.round(WELL_KNOWN_DEFAULT_CACHE_MS * jitter)
          : Math.min(WELL_KNOWN_MAX_CACHE_MS, Math.max(WELL_KNOWN_MIN_CACHE_MS, fromHeaders));
      return entry(outcome.delegated, now, lifetime, 0);
    }
    case 'invalid':
      return entry(undefined, now, Math.round(WELL_KNOWN_INVALID_CACHE_MS * jitter), (previous?.consecutiveFailures ?? 0) + 1);
    case 'unreachable': {
      const failures = (previous?.consecutiveFailures ?? 0) + 1;
      const backoff = Math.round(wellKnownUnreachableCacheMs(failures) * jitter);
      if (previous?.delegated && now < previous.expiresAt) {
        return {
          delegated: previous.delegated,
          expiresAt: previous.expiresAt,
          refreshAt: Math.min(previous.expiresAt, now + backoff),
          consecutiveFailures: failures,
        };
      }
      return entry(undefined, now, backoff, failures);
    }
  }
}

// ---- SRV records ----

export interface SrvRecord {
  /** The target host (a DNS name; a trailing dot is allowed). */
  readonly name: string;
  readonly port: number;
  readonly priority: number;
  readonly weight: number;
}

/**
 * Usable SRV records in the order to try them (RFC 2782): lowest priority first; within a
 * priority, a weighted random order (`random` returns numbers in [0, 1); pass `Math.random`).
 * A lone record with target `.` means "no service here" and gives none. Records with an unusable
 * port or an empty target are dropped.
 */
export function orderSrvRecords(records: readonly SrvRecord[], random: () => number = () => 0): SrvRecord[] {
  const usable = records.filter(
    (r) => typeof r.name === 'string' && r.name !== '' && r.name !== '.' && Number.isInteger(r.port) && r.port >= 1 && r.port <= 65535,
  );
  const byPriority = new Map<number, SrvRecord[]>();
  for (const record of usable) {
    const priority = Number.isFinite(record.priority) ? record.priority : Number.MAX_SAFE_INTEGER;
    const group = byPriority.get(priority) ?? [];
    group.push(record);
    byPriority.set(priority, group);
  }
  const ordered: SrvRecord[] = [];
  for (const priority of [...byPriority.keys()].sort((a, b) => a - b)) {
    const remaining = [...byPriority.get(priority)!];
    while (remaining.length > 0) {
      const weightOf = (r: SrvRecord) => (Number.isFinite(r.weight) && r.weight > 0 ? r.weight : 0);
      const total = remaining.reduce((sum, r) => sum + weightOf(r), 0);
      let index = 0;
      if (total > 0) {
        let pick = random() * total;
        index = remaining.findIndex((r) => (pick -= weightOf(r)) < 0);
        if (index === -1) index = remaining.length - 1;
      }
      ordered.push(remaining.splice(index, 1)[0]!);
    }
  }
  return ordered;
}

// ---- the resolution plan ----

/** The SRV service names to try, in order (the second is deprecated, spec steps 3.4 and 5). */
export function srvNamesFor(hostname: string): readonly [string, string] {
  return [`_matrix-fed._tcp.${hostname}`, `_matrix._tcp.${hostname}`];
}

export interface FederationEndpoint {
  /** An IP address (connect to it) or a DNS name (resolve with CNAME/AAAA/A first). */
  readonly host: string;
  readonly port: number;
  readonly isIpLiteral: boolean;
}

/** Where and how to send requests to a server. */
export interface FederationTarget {
  /** Candidates in order of preference (several only when SRV gives several). */
  readonly endpoints: readonly FederationEndpoint[];
  /** The `Host` header of every request. */
  readonly hostHeader: string;
  /**
   * The TLS server name (SNI) to send, or `undefined` when the certificate is expected for an
   * IP address: SNI cannot carry one (spec §TLS).
   */
  readonly tlsServerName: string | undefined;
  /** What the server's certificate must be valid for: a hostname or an IP address. */
  readonly certificateName: string;
  /** The step of the spec's list that decided, e.g. `1`, `3.3`, `6` (for logs and tests). */
  readonly step: string;
}

export interface DiscoveryKnowledge {
  /**
   * The `.well-known` answer for the server name's hostname: the delegation, or `null` for
   * "none / invalid / unreachable". Leave it out until it has been fetched (or taken from cache).
   */
  readonly wellKnown?: ServerNameParts | null;
  /** SRV answers by full SRV name (`_matrix-fed._tcp.example.org`); `[]` when none was found. */
  readonly srv?: Readonly<Record<string, readonly SrvRecord[]>>;
  /** For the weighted order among SRV records of equal priority; default: first record first. */
  readonly random?: () => number;
}

export type DiscoveryStep =
  | { readonly kind: 'fetch-well-known'; readonly hostname: string; readonly url: string }
  | { readonly kind: 'lookup-srv'; readonly srvName: string }
  | { readonly kind: 'connect'; readonly target: FederationTarget }
  | { readonly kind: 'invalid-server-name'; readonly reason: string };

function ipTarget(parts: ServerNameParts, hostHeader: string, step: string): FederationTarget {
  return {
    endpoints: [{ host: parts.hostname, port: parts.port ?? DEFAULT_FEDERATION_PORT, isIpLiteral: true }],
    hostHeader,
    tlsServerName: undefined,
    certificateName: parts.hostname,
    step,
  };
}

/**
 * The rest of the plan for a hostname without a port, after `.well-known` (steps 3.3–3.5 for a
 * delegated hostname, 4–6 for the server name's own): SRV `_matrix-fed._tcp`, then the deprecated
 * `_matrix._tcp`, then the hostname on port 8448. `Host`, SNI and the certificate are always the
 * hostname, never the SRV target.
 */
function srvThenDefault(hostname: string, known: DiscoveryKnowledge, steps: readonly [string, string, string]): DiscoveryStep {
  const names = srvNamesFor(hostname);
  for (let i = 0; i < names.length; i++) {
    const records = known.srv?.[names[i]!];
    if (records === undefined) return { kind: 'lookup-srv', srvName: names[i]! };
    const ordered = orderSrvRecords(records, known.random);
    if (ordered.length > 0) {
      return {
        kind: 'connect',
        target: {
          endpoints: ordered.map((r) => {
            const host = r.name.endsWith('.') ? r.name.slice(0, -1) : r.name;
            return { host, port: r.port, isIpLiteral: parseIpAddress(host) !== undefined };
          }),
          hostHeader: hostname,
          tlsServerName: hostname,
          certificateName: hostname,
          step: steps[i]!,
        },
      };
    }
  }
  return {
    kind: 'connect',
    target: {
      endpoints: [{ host: hostname, port: DEFAULT_FEDERATION_PORT, isIpLiteral: false }],
      hostHeader: hostname,
      tlsServerName: hostname,
      certificateName: hostname,
      step: steps[2],
    },
  };
}

/**
 * The next step of the spec's server name resolution (server-server API §Resolving server names)
 * given what is known so far. Call it again with each lookup's answer added until it returns
 * `connect` (or `invalid-server-name`).
 *
 * 1. IP literal: that address, its port or 8448; `Host` = the server name; no SNI.
 * 2. Hostname with a port: resolve the hostname; `Host` = the server name; SNI = the hostname.
 * 3. Otherwise fetch `https://<hostname>/.well-known/matrix/server`. With a delegation:
 *    3.1 IP literal: that address; `Host` = the `m.server` value; no SNI;
 *    3.2 with a port: resolve it; `Host` = `m.server`; SNI = the delegated hostname;
 *    3.3/3.4 SRV `_matrix-fed._tcp` / `_matrix._tcp` of the delegated hostname;
 *    3.5 the delegated hostname on 8448.
 * 4/5. Without one: SRV `_matrix-fed._tcp` / `_matrix._tcp` of the hostname; 6. the hostname on 8448.
 *
 * The X-Matrix `origin`/`destination` always stay the original server names.
 */
export function planServerDiscovery(serverName: string, known: DiscoveryKnowledge = {}): DiscoveryStep {
  const parts = splitServerName(serverName);
  if (!parts) return { kind: 'invalid-server-name', reason: `not a valid server name: ${JSON.stringify(serverName)}` };

  if (parts.ipLiteral !== undefined) return { kind: 'connect', target: ipTarget(parts, serverName, '1') };

  if (parts.port !== undefined) {
    return {
      kind: 'connect',
      target: {
        endpoints: [{ host: parts.hostname, port: parts.port, isIpLiteral: false }],
        hostHeader: serverName,
        tlsServerName: parts.hostname,
        certificateName: parts.hostname,
        step: '2',
      },
    };
  }

  if (known.wellKnown === undefined) {
    return {
      kind: 'fetch-well-known',
      hostname: parts.hostname,
      url: `https://${parts.hostname}/.well-known/matrix/server`,
    };
  }

  const delegated = known.wellKnown;
  if (delegated === null) return srvThenDefault(parts.hostname, known, ['4', '5', '6']);

  if (delegated.ipLiteral !== undefined) {
    return { kind: 'connect', target: ipTarget(delegated, delegated.serverName, '3.1') };
  }
  if (delegated.port !== undefined) {
    return {
      kind: 'connect',
      target: {
        endpoints: [{ host: delegated.hostname, port: delegated.port, isIpLiteral: false }],
        hostHeader: delegated.serverName,
        tlsServerName: delegated.hostname,
        certificateName: delegated.hostname,
        step: '3.2',
      },
    };
  }
  return srvThenDefault(delegated.hostname, known, ['3.3', '3.4', '3.5']);
}
