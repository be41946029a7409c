// Reads room state for every handler: the current state (cached, and dropped from the cache when
// the events stream says a room's state changed), state at a past position, and memberships.

import { stateKey as makeStateKey, type StateKey } from '../core/events.js';
import type { RoomVersion } from '../core/room-versions.js';
import { MatrixError } from '../errors.js';
import type { ReplicationBus } from '../replication/bus.js';
import type { RoomStateStore, StateRow } from '../storage/room-state-store.js';
import { LruCache } from '../util/lru.js';
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
        // every join.
        const cached = this.current.get(row.roomId);
        if (!cached) continue;
        const key = makeStateKey(row.type, row.stateKey);
        const updated = Promise.all([cached, this.eventCache.get(row.eventId)]).then(([state, stored]) => {
          if (!stored) throw new Error(`state event ${row.eventId} not found`);
          const next = new Map(state);
          next.set(key, stored);
          return next as RoomState;
        });
        this.current.set(row.roomId, updated);
        updated.catch(() => this.current.delete(row.roomId));
      }
    });
  }

  /** The room's version; 404 M_NOT_FOUND for a room this server does not know. */
  async roomVersion(roomId: string): Promise<RoomVersion> {
    const version = await this.eventCache.roomVersion(roomId);
    if (!version) throw new MatrixError(404, 'M_NOT_FOUND', `Unknown room ${roomId}`);
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
      if (event.type === 'm.room.member' && event.stateKey !== undefined && event.content.membership === membership) users.push(event.stateKey);
    }
    return users;
  }

  /** Rooms where the user's current membership is one of `memberships`. */
  async roomsOf(userId: string, memberships: readonly string[] = ['join']): Promise<string[]> {
    return (await this.store.membershipsOf(userId)).filter((m) => memberships.includes(m.membership)).map((m) => m.room_id);
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
