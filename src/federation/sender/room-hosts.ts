// Which servers are in a room: the servers of its joined members, ourselves left out (spec:
// server-server API §Room State Resolution and §EDUs — EDUs about a room go to the servers in it).

import { serverNameOf } from '../../core/identifiers.js';
import type { FederationSenderReads } from '../../storage/federation-sender-reads.js';
import { LruCache } from '../../util/lru.js';

/** The servers of `userIds`, without `ourServerName`. */
export function hostsOfUsers(userIds: Iterable<string>, ourServerName: string): Set<string> {
  const hosts = new Set<string>();
  for (const userId of userIds) {
    const host = serverNameOf(userId);
    if (host !== undefined && host !== ourServerName) hosts.add(host);
  }
  return hosts;
}

/**
 * The servers in each room now, for EDUs. Cached per room; an entry is dropped when the room's
 * state may have changed (a state event, or any event from another server, which can fork and be
 * resolved) and after a minute in any case. A read that started before a change does not fill the
 * cache with what it found.
 */
export class CurrentRoomHosts {
  private readonly cache = new LruCache<string, { hosts: ReadonlySet<string>; at: number }>(10_000);
  private readonly generation = new Map<string, number>();

  constructor(
    private readonly reads: Pick<FederationSenderReads, 'currentJoinedMembers'>,
    private readonly ourServerName: string,
    private readonly now: () => number,
    private readonly ttlMs = 60_000,
  ) {}

  async hostsOf(roomId: string): Promise<ReadonlySet<string>> {
    const cached = this.cache.get(roomId);
    if (cached && this.now() - cached.at < this.ttlMs) return cached.hosts;
    const generation = this.generation.get(roomId) ?? 0;
    const hosts = hostsOfUsers(await this.reads.currentJoinedMembers(roomId), this.ourServerName);
    if ((this.generation.get(roomId) ?? 0) === generation) this.cache.set(roomId, { hosts, at: this.now() });
    return hosts;
  }

  invalidate(roomId: string): void {
    this.cache.delete(roomId);
    this.generation.set(roomId, (this.generation.get(roomId) ?? 0) + 1);
    if (this.generation.size > 100_000) this.generation.clear();
  }
}
