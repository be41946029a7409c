// Reads the events stream in order and finds, for each of our own events, the servers it must go
// to: the servers with joined members in the room just before the event — before, so that the last
// member of a server who is kicked or banned still hears of it (Synapse does the same) — and, when
// the event rescinds an invite (a leave sent by someone else over an invite), the invitee's server.
//
// The stream is read from the database (the bus only says that it moved), in batches, up to the
// position every writer has completed, so nothing is skipped when several writers commit out of
// order, and the same code serves a live stream and a sender restarted far behind.
//
// The servers in a room before an event are cached per room while no event that may change the
// room's membership has gone by: a state event, an event from another server (which may fork the
// room and be resolved), or one of ours with several prev events (which merges forks). Every other
// event of ours (messages, the bulk) reuses the cached set.

import { serverNameOf } from '../../core/identifiers.js';
import { isJsonObject, type JsonObject } from '../../core/json.js';
import type { FederationSenderReads, StreamEventRow } from '../../storage/federation-sender-reads.js';
import { LruCache } from '../../util/lru.js';
import type { Logger } from '../../util/log.js';
import { hostsOfUsers } from './room-hosts.js';

/** One of our events, with the servers it goes to. */
export interface OutboundPdu {
  readonly position: number;
  readonly eventId: string;
  readonly roomId: string;
  readonly pdu: JsonObject;
}

export interface DistributedEvent extends OutboundPdu {
  readonly destinations: readonly string[];
}

export interface EventsDistributorDeps {
  readonly reads: Pick<FederationSenderReads, 'eventsBetween' | 'joinedMembersAt' | 'membershipAt'>;
  readonly serverName: string;
  /** Whether we federate with a server at all (`federation_domain_whitelist`, a valid name). */
  readonly allowed: (destination: string) => boolean;
  /**
   * Called with each batch before it is handed out (e.g. to record destinations seen for the first
   * time); the batch counts as read only once this resolves.
   */
  readonly prepare: (batch: readonly DistributedEvent[]) => Promise<void>;
  /** Hands a batch out (synchronously: `distributedUpTo` moves right after). */
  readonly deliver: (batch: readonly DistributedEvent[], upTo: number) => void;
  readonly log: Logger;
  /** Events read per query. */
  readonly batchSize?: number;
}

/** The user ids of a room's joined members is the cache's value, reduced to servers. */
const ROOM_CACHE_SIZE = 10_000;

export class EventsDistributor {
  private upTo: number;
  private readonly hostsBefore = new LruCache<string, ReadonlySet<string>>(ROOM_CACHE_SIZE);
  private running: Promise<void> | undefined;
  private target = 0;
  private readonly batchSize: number;
  private stopped = false;

  constructor(
    private readonly deps: EventsDistributorDeps,
    startAt: number,
  ) {
    this.upTo = startAt;
    this.batchSize = deps.batchSize ?? 500;
  }

  /** Every event at or below this has been handed to its destinations. */
  get distributedUpTo(): number {
    return this.upTo;
  }

  /**
   * Reads on up to `readable` (the events position every writer has completed). Concurrent calls
   * share one reader; the promise settles once it has caught up with the highest target given.
   */
  advanceTo(readable: number): Promise<void> {
    if (readable > this.target) this.target = readable;
    if (!this.running) {
      this.running = this.run().finally(() => {
        this.running = undefined;
      });
    }
    return this.running;
  }

  stop(): void {
    this.stopped = true;
  }

  private async run(): Promise<void> {
    while (!this.stopped && this.upTo < this.target) {
      const to = this.target;
      const rows = await this.deps.reads.eventsBetween(this.upTo, to, this.batchSize);
      const upTo = rows.length === this.batchSize ? rows[rows.length - 1]!.stream_ordering : to;
      const batch: DistributedEvent[] = [];
      for (const row of rows) {
        const event = await this.distribute(row);
        if (event) batch.push(event);
      }
      await this.deps.prepare(batch);
      if (this.stopped) return;
      this.deps.deliver(batch, upTo);
      this.upTo = upTo;
    }
  }

  private isOurs(userId: string): boolean {
    return serverNameOf(userId) === this.deps.serverName;
  }

  /** The event's destinations if it is ours; updates the per-room cache either way. */
  private async distribute(row: StreamEventRow): Promise<DistributedEvent | undefined> {
    const ours = row.json !== null && this.isOurs(row.sender);
    let result: DistributedEvent | undefined;
    let mergesForks = false;
    if (ours) {
      let pdu: JsonObject | undefined;
      try {
        const parsed: unknown = JSON.parse(row.json!);
        if (isJsonObject(parsed)) pdu = parsed;
      } catch {
        pdu = undefined;
      }
      if (!pdu) {
        this.deps.log.error({ eventId: row.event_id }, 'a stored event of ours is not a JSON object; not sent to other servers');
      } else {
        mergesForks = Array.isArray(pdu.prev_events) && pdu.prev_events.length > 1;
        const destinations = new Set(await this.hostsBeforeEvent(row.room_id, row.stream_ordering));
        const rescinded = await this.rescindedInviteHost(row, pdu);
        if (rescinded) destinations.add(rescinded);
        result = {
          position: row.stream_ordering,
          eventId: row.event_id,
          roomId: row.room_id,
          pdu,
          destinations: [...destinations].filter((d) => d !== this.deps.serverName && this.deps.allowed(d)),
        };
      }
    }
    if (row.state_key !== null || !ours || mergesForks) this.hostsBefore.delete(row.room_id);
    return result;
  }

  private async hostsBeforeEvent(roomId: string, position: number): Promise<ReadonlySet<string>> {
    const cached = this.hostsBefore.get(roomId);
    if (cached) return cached;
    const hosts = hostsOfUsers(await this.deps.reads.joinedMembersAt(roomId, position - 1), this.deps.serverName);
    this.hostsBefore.set(roomId, hosts);
    return hosts;
  }

  /**
   * A leave sent by someone other than its target, over an invite, rescinds the invite: the
   * invitee's server tracks the invite and must hear of it although none of its users is joined.
   */
  private async rescindedInviteHost(row: StreamEventRow, pdu: JsonObject): Promise<string | undefined> {
    if (row.type !== 'm.room.member' || row.state_key === null || row.state_key === row.sender) return undefined;
    const content = pdu.content;
    if (!isJsonObject(content) || content.membership !== 'leave') return undefined;
    const host = serverNameOf(row.state_key);
    if (host === undefined || host === this.deps.serverName) return undefined;
    const before = await this.deps.reads.membershipAt(row.room_id, row.state_key, row.stream_ordering - 1);
    return before === 'invite' ? host : undefined;
  }
}
