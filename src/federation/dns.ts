// DNS for finding other servers: SRV records (spec: server-server API §Resolving server names,
// steps 3.3–5) and the A/AAAA addresses of hostnames.
//
// By default SRV queries go to the system's DNS servers and addresses come from the system
// resolver (`getaddrinfo`, so /etc/hosts and `localhost` work as everywhere else). Tests give their
// own DNS server (`servers`), which then answers both; names it does not know fall back to the
// system resolver (so `localhost` still works).

import { promises as dns } from 'node:dns';
import type { SrvRecord } from '../core/server-names.js';

export class DnsLookupError extends Error {
  constructor(
    message: string,
    /** The resolver's code, e.g. `ETIMEOUT`, `ESERVFAIL`, `ENOTFOUND`. */
    readonly code: string | undefined,
  ) {
    super(message);
    this.name = 'DnsLookupError';
  }
}

export interface FederationDns {
  /**
   * The SRV records of `name`: `[]` when the name has none (NXDOMAIN, no SRV data). A failed
   * lookup (timeout, server failure) throws `DnsLookupError`: "no records" must not be assumed
   * from a lookup that did not answer.
   */
  srv(name: string): Promise<SrvRecord[]>;
  /** The IPv6 and IPv4 addresses of `hostname`; throws `DnsLookupError` when there are none. */
  addresses(hostname: string): Promise<string[]>;
}

export interface DnsOptions {
  /** DNS servers (`ip` or `ip:port`) to ask instead of the system's; for tests. */
  readonly servers?: readonly string[];
  /** Per-query timeout (default 5 s) and attempts (default 2). */
  readonly timeoutMs?: number;
  readonly tries?: number;
}

/** Codes that mean "the name has no such records", as opposed to "the lookup failed". */
const NO_RECORDS = new Set(['ENOTFOUND', 'ENODATA', 'ENONAME']);

function codeOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException)?.code;
}

export function createDns(options: DnsOptions = {}): FederationDns {
  const resolver = new dns.Resolver({ timeout: options.timeoutMs ?? 5_000, tries: options.tries ?? 2 });
  if (options.servers) resolver.setServers([...options.servers]);
  const ownServers = options.servers !== undefined;

  const systemAddresses = async (hostname: string): Promise<string[]> => {
    try {
      const found = await dns.lookup(hostname, { all: true, verbatim: true });
      return found.map((a) => a.address);
    } catch (err) {
      throw new DnsLookupError(`cannot resolve ${hostname}: ${codeOf(err) ?? (err as Error).message}`, codeOf(err));
    }
  };

  return {
    async srv(name) {
      try {
        const records = await resolver.resolveSrv(name);
        return records.map((r) => ({ name: r.name, port: r.port, priority: r.priority, weight: r.weight }));
      } catch (err) {
        if (NO_RECORDS.has(codeOf(err) ?? '')) return [];
        throw new DnsLookupError(`SRV lookup of ${name} failed: ${codeOf(err) ?? (err as Error).message}`, codeOf(err));
      }
    },
    async addresses(hostname) {
      if (!ownServers) return systemAddresses(hostname);
      const results = await Promise.allSettled([resolver.resolve6(hostname), resolver.resolve4(hostname)]);
      const found = results.flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
      if (found.length > 0) return found;
      const failure = results.find((r) => r.status === 'rejected' && !NO_RECORDS.has(codeOf(r.reason) ?? ''));
      if (failure) {
        const err: unknown = (failure as PromiseRejectedResult).reason;
        throw new DnsLookupError(`cannot resolve ${hostname}: ${codeOf(err) ?? (err as Error).message}`, codeOf(err));
      }
      return systemAddresses(hostname);
    },
  };
}
