// Room state as intervals of the events stream (see schema 0002): the current state, the state at
// any past position, and memberships.

import type { Database, Queryable } from './database.js';

export interface StateRow {
  type: string;
  state_key: string;
  event_id: string;
  membership: string | null;
  from_stream: number;
}

export interface MembershipRow {
  room_id: string;
  event_id: string;
  membership: string;
  from_stream: number;
}

export class RoomStateStore {
  constructor(private readonly db: Database) {}

  /** Records that `eventId` is the state for its key from `position` on, ending the previous one. */
  async setState(
    tx: Queryable,
    change: { roomId: string; type: string; stateKey: string; eventId: string; membership: string | null; position: number },
  ): Promise<void> {
    await tx.run('UPDATE room_state SET to_stream = ? WHERE room_id = ? AND type = ? AND state_key = ? AND to_stream IS NULL', [
      change.position,
      change.roomId,
      change.type,
      change.stateKey,
    ]);
    await tx.run(
      'INSERT INTO room_state (room_id, type, state_key, event_id, membership, from_stream, to_stream) VALUES (?, ?, ?, ?, ?, ?, NULL)',
      [change.roomId, change.type, change.stateKey, change.eventId, change.membership, change.position],
    );
  }

  /** Records that the key has no state from `position` on (state resolution dropped it). */
  async clearState(tx: Queryable, change: { roomId: string; type: string; stateKey: string; position: number }): Promise<void> {
    await tx.run('UPDATE room_state SET to_stream = ? WHERE room_id = ? AND type = ? AND state_key = ? AND to_stream IS NULL', [
      change.position,
      change.roomId,
      change.type,
      change.stateKey,
    ]);
  }

  /** The highest position a state change holds (an out-of-band membership has no row in `events`). */
  async maxPosition(): Promise<number> {
    const row = await this.db.get<{ s: number | null }>('SELECT MAX(from_stream) AS s FROM room_state');
    return Number(row?.s ?? 0);
  }

  currentState(roomId: string): Promise<StateRow[]> {
    return this.db.all<StateRow>(
      'SELECT type, state_key, event_id, membership, from_stream FROM room_state WHERE room_id = ? AND to_stream IS NULL',
      [roomId],
    );
  }

  currentStateEvent(roomId: string, type: string, stateKey: string): Promise<StateRow | undefined> {
    return this.db.get<StateRow>(
      `SELECT type, state_key, event_id, membership, from_stream FROM room_state
       WHERE room_id = ? AND type = ? AND state_key = ? AND to_stream IS NULL`,
      [roomId, type, stateKey],
    );
  }

  /** The state after the event at `position` (inclusive). */
  stateAt(roomId: string, position: number): Promise<StateRow[]> {
    return this.db.all<StateRow>(
      `SELECT type, state_key, event_id, membership, from_stream FROM room_state
       WHERE room_id = ? AND from_stream <= ? AND (to_stream IS NULL OR to_stream > ?)`,
      [roomId, position, position],
    );
  }

  /** The state after the event at `position`, with only the given users' member events. */
  stateAtWithMembers(roomId: string, position: number, userIds: readonly string[]): Promise<StateRow[]> {
    return this.db.all<StateRow>(
      `SELECT type, state_key, event_id, membership, from_stream FROM room_state
       WHERE room_id = ? AND from_stream <= ? AND (to_stream IS NULL OR to_stream > ?)
         AND (type <> 'm.room.member' OR state_key IN (${userIds.map(() => '?').join(',')}))`,
      [roomId, position, position, ...userIds],
    );
  }

  /** One state entry after the event at `position`. */
  stateEventAt(roomId: string, type: string, stateKey: string, position: number): Promise<StateRow | undefined> {
    return this.db.get<StateRow>(
      `SELECT type, state_key, event_id, membership, from_stream FROM room_state
       WHERE room_id = ? AND type = ? AND state_key = ? AND from_stream <= ? AND (to_stream IS NULL OR to_stream > ?)`,
      [roomId, type, stateKey, position, position],
    );
  }

  /** State entries that changed with `from < position <= to` (the latest per key). */
  async stateChangesBetween(roomId: string, from: number, to: number): Promise<StateRow[]> {
    const rows = await this.db.all<StateRow>(
      `SELECT type, state_key, event_id, membership, from_stream FROM room_state
       WHERE room_id = ? AND from_stream > ? AND from_stream <= ? ORDER BY from_stream`,
      [roomId, from, to],
    );
    const latest = new Map<string, StateRow>();
    for (const row of rows) latest.set(`${row.type}\u0000${row.state_key}`, row);
    return [...latest.values()];
  }

  /** A user's current membership in every room they have one in. */
  membershipsOf(userId: string): Promise<MembershipRow[]> {
    return this.db.all<MembershipRow>(
      `SELECT room_id, event_id, membership, from_stream FROM room_state
       WHERE type = 'm.room.member' AND state_key = ? AND to_stream IS NULL`,
      [userId],
    );
  }

  /** A user's membership in every room as of the events-stream position `position`. */
  membershipsAt(userId: string, position: number): Promise<MembershipRow[]> {
    return this.db.all<MembershipRow>(
      `SELECT room_id, event_id, membership, from_stream FROM room_state
       WHERE type = 'm.room.member' AND state_key = ? AND from_stream <= ? AND (to_stream IS NULL OR to_stream > ?)`,
      [userId, position, position],
    );
  }

  /** A user's membership changes with `from < position <= to`, oldest first. */
  membershipChangesBetween(userId: string, from: number, to: number): Promise<MembershipRow[]> {
    return this.db.all<MembershipRow>(
      `SELECT room_id, event_id, membership, from_stream FROM room_state
       WHERE type = 'm.room.member' AND state_key = ? AND from_stream > ? AND from_stream <= ?
       ORDER BY from_stream`,
      [userId, from, to],
    );
  }

  /** A user's membership in a room after the event at `position`. */
  async membershipAt(roomId: string, userId: string, position: number): Promise<string | undefined> {
    const row = await this.stateEventAt(roomId, 'm.room.member', userId, position);
    return row?.membership ?? undefined;
  }

  /** Current members with the given membership. */
  async membersWith(roomId: string, membership: string): Promise<Array<{ user_id: string; event_id: string }>> {
    return this.db.all(
      `SELECT state_key AS user_id, event_id FROM room_state
       WHERE room_id = ? AND type = 'm.room.member' AND membership = ? AND to_stream IS NULL`,
      [roomId, membership],
    );
  }

  /**
   * The intervals of the given state keys that overlap positions `from..to` (inclusive), for
   * answering "what was X at each of these events" with one query.
   */
  intervalsOverlapping(
    roomId: string,
    keys: ReadonlyArray<readonly [type: string, stateKey: string]>,
    from: number,
    to: number,
  ): Promise<Array<StateRow & { to_stream: number | null }>> {
    if (keys.length === 0) return Promise.resolve([]);
    const conditions = keys.map(() => '(type = ? AND state_key = ?)').join(' OR ');
    return this.db.all(
      `SELECT type, state_key, event_id, membership, from_stream, to_stream FROM room_state
       WHERE room_id = ? AND (${conditions}) AND from_stream <= ? AND (to_stream IS NULL OR to_stream > ?)
       ORDER BY from_stream`,
      [roomId, ...keys.flat(), to, from],
    );
  }

  /** The state events replaced by events at the given positions (for `unsigned.prev_content`). */
  replacedAt(roomId: string, positions: readonly number[]): Promise<Array<{ event_id: string; to_stream: number }>> {
    if (positions.length === 0) return Promise.resolve([]);
    return this.db.all(
      `SELECT event_id, to_stream FROM room_state WHERE room_id = ? AND to_stream IN (${positions.map(() => '?').join(',')})`,
      [roomId, ...positions],
    );
  }

  async forget(userId: string, roomId: string): Promise<void> {
    await this.db.run('INSERT INTO room_forgotten (user_id, room_id) VALUES (?, ?) ON CONFLICT DO NOTHING', [userId, roomId]);
  }

  async unforget(tx: Queryable, userId: string, roomId: string): Promise<void> {
    await tx.run('DELETE FROM room_forgotten WHERE user_id = ? AND room_id = ?', [userId, roomId]);
  }

  async forgottenRooms(userId: string): Promise<Set<string>> {
    const rows = await this.db.all<{ room_id: string }>('SELECT room_id FROM room_forgotten WHERE user_id = ?', [userId]);
    return new Set(rows.map((r) => r.room_id));
  }
}
