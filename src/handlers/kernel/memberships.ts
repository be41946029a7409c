// Each user's current room memberships, cached between requests and dropped when the events stream
// reports a membership change for the user. /sync and unread counts read them on every request.
// Also a user's membership history and the rooms they forgot: everything about "the user's rooms"
// (the room-side view is RoomStateReader).

import type { ReplicationBus } from '../../streams/bus.js';
import { membersIn } from '../../streams/notifier.js';
import type { MembershipRow, RoomStateStore } from '../../storage/room-state-store.js';
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

  /** The user's membership changes with `from < position <= to`, oldest first. */
  changesBetween(userId: string, from: number, to: number): Promise<MembershipRow[]> {
    return this.store.membershipChangesBetween(userId, from, to);
  }

  /** The rooms the user forgot (they appear nowhere for the user until the user is back). */
  forgottenRooms(userId: string): Promise<Set<string>> {
    return this.store.forgottenRooms(userId);
  }

  /** Forgets a room for the user (a join or invite brings it back: see the events writer). */
  forget(userId: string, roomId: string): Promise<void> {
    return this.store.forget(userId, roomId);
  }
}
