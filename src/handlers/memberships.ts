// Each user's current room memberships, cached between requests and dropped when the events stream
// reports a membership change for the user. /sync and unread counts read them on every request.

import type { ReplicationBus } from '../replication/bus.js';
import { membersIn } from '../streams/notifier.js';
import type { MembershipRow, RoomStateStore } from '../storage/room-state-store.js';
import { BusInvalidatedCache } from './bus-cache.js';

export class UserMemberships {
  private readonly cache: BusInvalidatedCache<MembershipRow[]>;

  constructor(
    private readonly store: RoomStateStore,
    bus: ReplicationBus,
  ) {
    this.cache = new BusInvalidatedCache(
      bus,
      100_000,
      (row) =>
        row.stream === 'events'
          ? [...(row.type === 'm.room.member' && row.stateKey !== undefined ? [row.stateKey] : []), ...membersIn(row.stateDelta)]
          : [],
      (userId) => store.membershipsOf(userId),
    );
  }

  /** The user's current memberships (one row per room). */
  of(userId: string): Promise<MembershipRow[]> {
    return this.cache.get(userId);
  }

  /** The user's memberships as of the events-stream position `position`. */
  async at(userId: string, position: number): Promise<MembershipRow[]> {
    const current = await this.of(userId);
    // A change after `position` means the current rows are not the state at `position`.
    if (current.some((row) => Number(row.from_stream) > position)) return this.store.membershipsAt(userId, position);
    return current;
  }
}
