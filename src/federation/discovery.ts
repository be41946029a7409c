// Finds where another server listens (spec: server-server API §Resolving server names): runs the
// plan of `core/server-names.ts`, doing each lookup it asks for — `/.well-known/matrix/server`
// over HTTPS, SRV `_matrix-fed._tcp` then `_matrix._tcp` — until it says where to connect, with
// which `Host` header and TLS server name.
//
// `.well-known` answers are cached in memory by core's rules (headers, default 24 h, at most
// 48 h, errors with backoff) and refreshed in the background when a fifth of their life is left;
// SRV answers for 10 minutes. Concurrent resolutions of one server name, and concurrent fetches of
// one `.well-known`, share one lookup.

import { Client } from 'undici';
import type { Logger } from 'pino';
import {
  classifyWellKnownResponse,
  nextWellKnownCacheEntry,
  planServerDiscovery,
  splitServerName,
  WELL_KNOWN_MAX_BYTES,
  wellKnownCacheState,
  type DiscoveryKnowledge,
  type FederationTarget,
  type HttpHeaders,
  type ServerNameParts,
  type SrvRecord,
  type WellKnownCacheEntry,
  type WellKnownFetchOutcome,
} from '../core/server-names.js';
import { urlTarget, type FederationConnector } from './connector.js';
import { DnsLookupError, type FederationDns } from './dns.js';
import { FederationDeniedError, FederationUnreachableError } from './errors.js';
import { BodyTooLargeError, readBounded, undiciConnect } from './http.js';

/** SRV answers (and "none") are kept this long; the resolver does not give us their TTL. */
export const SRV_CACHE_MS = 10 * 60_000;
/** How many redirects a `.well-known` fetch follows. */
const MAX_REDIRECTS = 10;
const WELL_KNOWN_TIMEOUT_MS = 10_000;

export interface DiscoveryOptions {
  readonly connector: FederationConnector;
  readonly dns: FederationDns;
  readonly log: Logger;
  readonly now?: () => number;
  readonly random?: () => number;
  /** Tests only: the port `.well-known` is fetched on instead of 443. */
  readonly wellKnownPort?: number;
  readonly wellKnownTimeoutMs?: number;
}

interface SrvCacheEntry {
  readonly records: readonly SrvRecord[];
  readonly expiresAt: number;
}

export class ServerDiscovery {
  private readonly wellKnownCache = new Map<string, WellKnownCacheEntry>();
  private readonly wellKnownInFlight = new Map<string, Promise<WellKnownCacheEntry>>();
  private readonly srvCache = new Map<string, SrvCacheEntry>();
  private readonly resolving = new Map<string, Promise<FederationTarget>>();
  private readonly now: () => number;
  private readonly random: () => number;

  constructor(private readonly options: DiscoveryOptions) {
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
  }

  /**
   * Where to send requests for `serverName`. Throws `FederationDeniedError` for a name that is not
   * a server name, `FederationUnreachableError` (`dns`) when an SRV lookup fails outright.
   */
  resolve(serverName: string): Promise<FederationTarget> {
    const pending = this.resolving.get(serverName);
    if (pending) return pending;
    const resolution = this.plan(serverName).finally(() => this.resolving.delete(serverName));
    this.resolving.set(serverName, resolution);
    return resolution;
  }

  private async plan(serverName: string): Promise<FederationTarget> {
    let known: DiscoveryKnowledge = { random: this.random };
    for (;;) {
      const step = planServerDiscovery(serverName, known);
      switch (step.kind) {
        case 'connect':
          this.options.log.debug(
            { destination: serverName, step: step.target.step, endpoints: step.target.endpoints },
            'resolved server name',
          );
          return step.target;
        case 'invalid-server-name':
          throw new FederationDeniedError(serverName, step.reason);
        case 'fetch-well-known':
          known = { ...known, wellKnown: await this.wellKnown(step.hostname) };
          break;
        case 'lookup-srv':
          known = { ...known, srv: { ...known.srv, [step.srvName]: await this.srv(serverName, step.srvName) } };
          break;
      }
    }
  }

  /** The delegation `hostname` publishes, or `null` for none (also when it cannot be fetched). */
  private async wellKnown(hostname: string): Promise<ServerNameParts | null> {
    const cached = this.wellKnownCache.get(hostname);
    const state = wellKnownCacheState(cached, this.now());
    if (state === 'fresh') return cached!.delegated ?? null;
    if (state === 'refresh') {
      // Still usable: answer with it, and fetch a fresh one for the next request.
      void this.refreshWellKnown(hostname).catch(() => undefined);
      return cached!.delegated ?? null;
    }
    const entry = await this.refreshWellKnown(hostname);
    return entry.delegated ?? null;
  }

  private refreshWellKnown(hostname: string): Promise<WellKnownCacheEntry> {
    const pending = this.wellKnownInFlight.get(hostname);
    if (pending) return pending;
    const fetching = this.fetchWellKnown(hostname)
      .then((outcome) => {
        const entry = nextWellKnownCacheEntry(this.wellKnownCache.get(hostname), outcome, this.now(), this.random());
        this.wellKnownCache.set(hostname, entry);
        const log = this.options.log;
        if (outcome.kind === 'delegated')
          log.debug({ hostname, delegated: outcome.delegated.serverName }, '.well-known/matrix/server delegates');
        else log.debug({ hostname, outcome: outcome.kind, reason: outcome.reason }, 'no usable .well-known/matrix/server');
        return entry;
      })
      .finally(() => this.wellKnownInFlight.delete(hostname));
    this.wellKnownInFlight.set(hostname, fetching);
    return fetching;
  }

  /**
   * One `.well-known` fetch: redirects followed (HTTPS only, no loops), the body read up to the
   * size limit, every connection through the connector (IP policy, certificates).
   */
  async fetchWellKnown(hostname: string): Promise<WellKnownFetchOutcome> {
    const port = this.options.wellKnownPort ?? 443;
    let url = new URL(`https://${hostname.includes(':') ? `[${hostname}]` : hostname}:${port}/.well-known/matrix/server`);
    const visited = new Set<string>();
    const signal = AbortSignal.timeout(this.options.wellKnownTimeoutMs ?? WELL_KNOWN_TIMEOUT_MS);
    for (let hop = 0; ; hop++) {
      visited.add(url.href);
      let answer: { status: number; headers: HttpHeaders; location: string | undefined; text: string };
      try {
        answer = await this.get(hostname, url, signal);
      } catch (err) {
        if (err instanceof BodyTooLargeError) return { kind: 'unreachable', reason: err.message };
        return { kind: 'unreachable', reason: (err as Error).message };
      }
      if (answer.status >= 300 && answer.status < 400 && answer.location !== undefined) {
        let next: URL;
        try {
          next = new URL(answer.location, url);
        } catch {
          return { kind: 'invalid', reason: `a redirect to an invalid URL: ${JSON.stringify(answer.location)}` };
        }
        if (next.protocol !== 'https:') return { kind: 'invalid', reason: `a redirect away from HTTPS: ${next.href}` };
        if (visited.has(next.href)) return { kind: 'invalid', reason: `a redirect loop at ${next.href}` };
        if (hop + 1 > MAX_REDIRECTS) return { kind: 'invalid', reason: `more than ${MAX_REDIRECTS} redirects` };
        url = next;
        continue;
      }
      return classifyWellKnownResponse(answer.status, answer.text, answer.headers);
    }
  }

  private async get(
    hostname: string,
    url: URL,
    signal: AbortSignal,
  ): Promise<{ status: number; headers: HttpHeaders; location: string | undefined; text: string }> {
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    const port = url.port === '' ? 443 : Number(url.port);
    const parts = splitServerName(url.port === '' ? url.hostname : `${url.hostname}:${url.port}`);
    const target = urlTarget(host, port, parts?.ipLiteral !== undefined);
    const client = new Client(url.origin, {
      connect: undiciConnect(this.options.connector, hostname, async () => target),
      pipelining: 0,
    });
    try {
      const response = await client.request({
        method: 'GET',
        path: `${url.pathname}${url.search}`,
        headers: { host: url.host, accept: 'application/json' },
        signal,
      });
      const location = response.headers.location;
      if (response.statusCode >= 300 && response.statusCode < 400) {
        await response.body.dump();
        return {
          status: response.statusCode,
          headers: response.headers,
          location: Array.isArray(location) ? location[0] : location,
          text: '',
        };
      }
      const bytes = await readBounded(response.body, WELL_KNOWN_MAX_BYTES);
      return { status: response.statusCode, headers: response.headers, location: undefined, text: bytes.toString('utf8') };
    } finally {
      await client.destroy().catch(() => undefined);
    }
  }

  /** SRV records of `srvName`; `[]` for none. A failed lookup uses the last answer if there is one. */
  private async srv(destination: string, srvName: string): Promise<readonly SrvRecord[]> {
    const cached = this.srvCache.get(srvName);
    if (cached && this.now() < cached.expiresAt) return cached.records;
    try {
      const records = await this.options.dns.srv(srvName);
      this.srvCache.set(srvName, { records, expiresAt: this.now() + SRV_CACHE_MS });
      return records;
    } catch (err) {
      if (cached) return cached.records;
      const code = err instanceof DnsLookupError ? err.code : undefined;
      throw new FederationUnreachableError(destination, 'dns', `SRV lookup of ${srvName} failed${code ? ` (${code})` : ''}`, {
        cause: err,
      });
    }
  }

  /** Forgets cached answers (e.g. when a test changes DNS records). */
  clearCaches(): void {
    this.wellKnownCache.clear();
    this.srvCache.clear();
  }
}
