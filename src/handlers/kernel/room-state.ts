// Reads room state for every handler: the current state (cached, and dropped from the cache when
// the events stream says a room's state changed), state at a past position, and memberships. The
// one door to room state: handlers never read `RoomStateStore` beside it. Past state never changes,
// so it is read as it is stored; the `...Rows` methods give the stored rows (type, state key, event
// id, membership, position) for readers that pick events before loading them (/sync).

import { stateKey as makeStateKey, type StateKey } from '../../core/events.js';
import type { RoomVersion } from '../../core/room-versions.js';
import { Errors } from '../../errors.js';
import type { ReplicationBus } from '../../streams/bus.js';
import type { RoomStateStore, StateRow } from '../../storage/room-state-store.js';
import { LruCache } from '../../util/lru.js';
import type { EventCache, StoredEvent } from './event-cache.js';

export type RoomState = ReadonlyMap<StateKey, StoredEvent>;

export class RoomStateReader {
  private readonly current = new LruCache<string, Promise<RoomState>>(20_000);

  constructor(
    private readonly store: RoomStateStore,
    private readonly eventCache: EventCache,
    bus: ReplicationBus,
  ) {
    bus.subscribe((update) => {
      if (update.stream !== 'events') return;
      for (const row of update.rows) {
        if (row.stream !== 'events') continue;
        if (row.stateDelta) {
          // State resolution moved the current state: read it again.
          this.current.delete(row.roomId);
          continue;
        }
        if (row.stateKey === undefined) continue;
        // Apply the change to the cached state instead of reloading a big room's whole state on
        // every join. A state read: an out-of-band membership is an outlier, outside the timeline.
        const cached = this.current.get(row.roomId);
        if (!cached) continue;
        const key = makeStateKey(row.type, row.stateKey);
        const updated = Promise.all([cached, this.eventCache.getStateEvent(row.eventId)]).then(([state, stored]) => {
          if (!stored) throw new Error(`state event ${row.eventId} not found`);
          const next = new Map(state);
          next.set(key, stored);
          return next;
        });
        this.current.set(row.roomId, updated);
        updated.catch(() => this.current.delete(row.roomId));
      }
    });
  }

  /** The room's version; 404 M_NOT_FOUND for a room this server does not know. */
  async roomVersion(roomId: string): Promise<RoomVersion> {
    const version = await this.eventCache.roomVersion(roomId);
    if (!version) throw Errors.notFound(`Unknown room ${roomId}`);
    return version;
  }

  async roomExists(roomId: string): Promise<boolean> {
    return (await this.eventCache.roomVersion(roomId)) !== undefined;
  }

  currentState(roomId: string): Promise<RoomState> {
    let state = this.current.get(roomId);
    if (!state) {
      state = this.store.currentState(roomId).then((rows) => this.load(rows));
      this.current.set(roomId, state);
      state.catch(() => this.current.delete(roomId));
    }
    return state;
  }

  async currentStateEvent(roomId: string, type: string, stateKey: string): Promise<StoredEvent | undefined> {
    return (await this.currentState(roomId)).get(makeStateKey(type, stateKey));
  }

  /** The state after the event at `position`. */
  async stateAt(roomId: string, position: number): Promise<RoomState> {
    return this.load(await this.store.stateAt(roomId, position));
  }

  async stateEventAt(roomId: string, type: string, stateKey: string, position: number): Promise<StoredEvent | undefined> {
    const row = await this.store.stateEventAt(roomId, type, stateKey, position);
    return row ? this.eventCache.getStateEvent(row.event_id) : undefined;
  }

  /** The user's current membership (`join`, `invite`, `leave`, `ban`, `knock`) or undefined. */
  async membership(roomId: string, userId: string): Promise<string | undefined> {
    const event = await this.currentStateEvent(roomId, 'm.room.member', userId);
    const membership = event?.event.content.membership;
    return typeof membership === 'string' ? membership : undefined;
  }

  /** Current members with `membership`, from the cached state. */
  async members(roomId: string, membership: string): Promise<string[]> {
    const users: string[] = [];
    for (const [, stored] of await this.currentState(roomId)) {
      const { event } = stored;
      if (event.type === 'm.room.member' && event.stateKey !== undefined && event.content.membership === membership)
        users.push(event.stateKey);
    }
    return users;
  }

  /** Rooms where the user's current membership is one of `memberships`. */
  async roomsOf(userId: string, memberships: readonly string[] = ['join']): Promise<string[]> {
    return (await this.store.membershipsOf(userId)).filter((m) => memberships.includes(m.membership)).map((m) => m.room_id);
  }

  /**
   * The user's member state entry as the database has it now, bypassing the cache: a membership
   * another process has just committed counts before its bus row arrives here.
   */
  storedMemberRow(roomId: string, userId: string): Promise<StateRow | undefined> {
    return this.store.currentStateEvent(roomId, 'm.room.member', userId);
  }

  /** The user's membership in the room after the event at `position`. */
  membershipAt(roomId: string, userId: string, position: number): Promise<string | undefined> {
    return this.store.membershipAt(roomId, userId, position);
  }

  /** The state after the event at `position`, as stored rows. */
  stateRowsAt(roomId: string, position: number): Promise<StateRow[]> {
    return this.store.stateAt(roomId, position);
  }

  /** The state after the event at `position`, as stored rows, with only the given users' member events. */
  stateRowsAtWithMembers(roomId: string, position: number, userIds: readonly string[]): Promise<StateRow[]> {
    return this.store.stateAtWithMembers(roomId, position, userIds);
  }

  /** One state entry after the event at `position`, as its stored row. */
  stateRowAt(roomId: string, type: string, stateKey: string, position: number): Promise<StateRow | undefined> {
    return this.store.stateEventAt(roomId, type, stateKey, position);
  }

  /** State entries that changed with `from < position <= to` (the latest per key), as stored rows. */
  stateRowChangesBetween(roomId: string, from: number, to: number): Promise<StateRow[]> {
    return this.store.stateChangesBetween(roomId, from, to);
  }

  /**
   * The intervals of the given state keys that overlap positions `from..to` (inclusive): "what was
   * X at each of these events" in one read.
   */
  intervalsOverlapping(
    roomId: string,
    keys: ReadonlyArray<readonly [type: string, stateKey: string]>,
    from: number,
    to: number,
  ): Promise<Array<StateRow & { to_stream: number | null }>> {
    return this.store.intervalsOverlapping(roomId, keys, from, to);
  }

  /** The state events replaced by events at the given positions (for `unsigned.prev_content`). */
  replacedAt(roomId: string, positions: readonly number[]): Promise<Array<{ event_id: string; to_stream: number }>> {
    return this.store.replacedAt(roomId, positions);
  }

  private async load(rows: readonly StateRow[]): Promise<RoomState> {
    const events = await this.eventCache.getStateEvents(rows.map((r) => r.event_id));
    const state = new Map<StateKey, StoredEvent>();
    for (const row of rows) {
      const stored = events.get(row.event_id);
      if (stored) state.set(makeStateKey(row.type, row.state_key), stored);
    }
    return state;
  }
}
