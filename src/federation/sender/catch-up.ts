// Catching a destination up from the database: after a restart, a crash or an outage, our events
// it has not acknowledged are read back from the events stream, from its last acknowledged
// position, and sent in order, a transaction at a time.
//
// Which events: ours, in the rooms where the destination's users were joined (or invited: see the
// rescinded invites in events-reader.ts) at some point of the gap, each checked against the
// destination's membership just before it — the same rule as the live path, so a catch-up sends
// exactly what the destination would have got live.
//
// A very large gap (more than `largeGap` events, e.g. a server gone for weeks) is not replayed:
// as Synapse's catch-up does (always), the latest of our events in each shared room is sent, and
// the destination fetches the rest with `/get_missing_events` when it sees their prev events are
// missing (spec: server-server API §Retrieving events, §PDUs).

import { serverNameOf } from '../../core/identifiers.js';
import { isJsonObject, type JsonObject } from '../../core/json.js';
import type { FederationSenderReads, MembershipIntervalRow, StreamEventRow } from '../../storage/federation-sender-reads.js';
import type { Logger } from '../../util/log.js';
import type { OutboundPdu } from './events-reader.js';

export interface CatchUpPage {
  /** Events for the destination, oldest first (possibly none). */
  readonly events: readonly OutboundPdu[];
  /** Everything at or below this has been looked at (the events, or nothing for the destination). */
  readonly upTo: number;
  /** `upTo` reached the bound asked for. */
  readonly done: boolean;
}

export interface CatchUpOptions {
  /** Events per transaction. */
  readonly pageSize: number;
  /** Beyond this many events, only the latest event of each room is sent. */
  readonly largeGap: number;
  readonly log: Logger;
}

type Reads = Pick<
  FederationSenderReads,
  'membershipsOfServer' | 'localEventsInRooms' | 'countLocalEventsInRooms' | 'latestLocalEventsInRoom'
>;

export class DestinationCatchUp {
  /** The destination's users' membership intervals by room, loaded for positions [from, to]. */
  private intervals: { from: number; to: number; byRoom: Map<string, MembershipIntervalRow[]> } | undefined;
  /** The latest-event-per-room plan of a large gap, and the bound it brings the destination to. */
  private plan: { events: OutboundPdu[]; upTo: number } | undefined;
  private sizeChecked = false;

  constructor(
    private readonly destination: string,
    private readonly serverName: string,
    private readonly reads: Reads,
    private readonly options: CatchUpOptions,
  ) {}

  /** The next events after `cursor` up to `bound`. */
  async next(cursor: number, bound: number): Promise<CatchUpPage> {
    if (this.plan) return this.nextOfPlan(cursor);
    if (cursor >= bound) return { events: [], upTo: Math.max(cursor, bound), done: true };
    const byRoom = await this.membershipIntervals(cursor, bound);
    const rooms = [...byRoom.keys()];
    if (rooms.length === 0) return { events: [], upTo: bound, done: true };

    if (!this.sizeChecked) {
      this.sizeChecked = true;
      if (bound - cursor > this.options.largeGap) {
        const count = await this.reads.countLocalEventsInRooms(rooms, cursor, bound);
        if (count > this.options.largeGap) {
          await this.planLatestPerRoom(rooms, byRoom, cursor, bound, count);
          return this.nextOfPlan(cursor);
        }
      }
    }

    const pageSize = this.options.pageSize;
    const rows = await this.reads.localEventsInRooms(rooms, cursor, bound, pageSize);
    const upTo = rows.length === pageSize ? rows[rows.length - 1]!.stream_ordering : bound;
    const events: OutboundPdu[] = [];
    for (const row of rows) {
      const event = this.forDestination(row, byRoom);
      if (event) events.push(event);
    }
    return { events, upTo, done: upTo >= bound };
  }

  /** Forgets what was loaded (the destination went live; the next catch-up starts afresh). */
  reset(): void {
    this.intervals = undefined;
    this.plan = undefined;
    this.sizeChecked = false;
  }

  private nextOfPlan(cursor: number): CatchUpPage {
    const plan = this.plan!;
    const events = plan.events.splice(0, this.options.pageSize);
    if (plan.events.length > 0) return { events, upTo: cursor, done: false };
    this.plan = undefined;
    this.intervals = undefined;
    return { events, upTo: Math.max(cursor, plan.upTo), done: false };
  }

  private async planLatestPerRoom(
    rooms: string[],
    byRoom: Map<string, MembershipIntervalRow[]>,
    cursor: number,
    bound: number,
    count: number,
  ): Promise<void> {
    const events: OutboundPdu[] = [];
    for (const roomId of rooms) {
      // The latest event the destination was in the room for (usually the very latest).
      for (const row of await this.reads.latestLocalEventsInRoom(roomId, cursor, bound, 20)) {
        const event = this.forDestination(row, byRoom);
        if (event) {
          events.push(event);
          break;
        }
      }
    }
    events.sort((a, b) => a.position - b.position);
    this.options.log.info(
      { destination: this.destination, events: count, rooms: events.length, from: cursor, to: bound },
      `${this.destination} missed ${count} events: sending the latest event of each of ${events.length} rooms instead ` +
        '(it fetches the rest with /get_missing_events)',
    );
    this.plan = { events, upTo: bound };
  }

  /** The destination's users' memberships overlapping the positions before events in (cursor, bound]. */
  private async membershipIntervals(cursor: number, bound: number): Promise<Map<string, MembershipIntervalRow[]>> {
    const loaded = this.intervals;
    if (loaded && loaded.from <= cursor && loaded.to >= bound) return loaded.byRoom;
    const rows = await this.reads.membershipsOfServer(this.destination, cursor, bound);
    const byRoom = new Map<string, MembershipIntervalRow[]>();
    for (const row of rows) {
      if (serverNameOf(row.state_key) !== this.destination) continue; // LIKE is case-insensitive on SQLite
      let list = byRoom.get(row.room_id);
      if (!list) byRoom.set(row.room_id, (list = []));
      list.push(row);
    }
    // Only rooms where the destination was in (or invited to) the room can owe it anything.
    for (const [roomId, list] of byRoom) if (!list.some((r) => r.membership === 'join' || r.membership === 'invite')) byRoom.delete(roomId);
    this.intervals = { from: cursor, to: bound, byRoom };
    return byRoom;
  }

  /** The event as sent to the destination, if the destination should get it. */
  private forDestination(row: StreamEventRow, byRoom: Map<string, MembershipIntervalRow[]>): OutboundPdu | undefined {
    if (row.json === null || serverNameOf(row.sender) !== this.serverName) return undefined;
    const intervals = byRoom.get(row.room_id);
    if (!intervals) return undefined;
    const before = row.stream_ordering - 1;
    const holds = (r: MembershipIntervalRow) => r.from_stream <= before && (r.to_stream === null || r.to_stream > before);
    let pdu: JsonObject;
    try {
      const parsed: unknown = JSON.parse(row.json);
      if (!isJsonObject(parsed)) return undefined;
      pdu = parsed;
    } catch {
      return undefined;
    }
    const joined = intervals.some((r) => r.membership === 'join' && holds(r));
    const rescindsInvite =
      row.type === 'm.room.member' &&
      row.state_key !== null &&
      row.state_key !== row.sender &&
      isJsonObject(pdu.content) &&
      pdu.content.membership === 'leave' &&
      intervals.some((r) => r.state_key === row.state_key && r.membership === 'invite' && holds(r));
    if (!joined && !rescindsInvite) return undefined;
    return { position: row.stream_ordering, eventId: row.event_id, roomId: row.room_id, pdu };
  }
}
