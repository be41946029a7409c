// What the federation sender reads from other areas' tables: events and room state (which servers
// are in a room at an event), receipts, device-list changes, keys and presence. Read-only; the
// tables belong to their own stores, and the queries are gathered here because only the sender
// asks them in this shape (by server rather than by user or room).
//
// Server names never hold `%` or `_` (a DNS name, an IP literal, a port), so `LIKE '%:' || name`
// finds the ids of a server; LIKE is case-insensitive on SQLite, so callers check the exact suffix
// again where it matters.

import type { Database, SqlValue } from './database.js';

/** An event of the events stream, with its JSON when its sender is ours (else null). */
export interface StreamEventRow {
  stream_ordering: number;
  event_id: string;
  room_id: string;
  type: string;
  state_key: string | null;
  sender: string;
  json: string | null;
}

export interface MembershipIntervalRow {
  room_id: string;
  state_key: string;
  membership: string;
  from_stream: number;
  to_stream: number | null;
}

export interface OutboundReceiptRow {
  room_id: string;
  user_id: string;
  thread_id: string;
  event_id: string;
  data: string;
  stream_id: number;
}

export interface DeviceChangeRow {
  stream_id: number;
  user_id: string;
  device_id: string;
}

export interface KeyJsonRow {
  user_id: string;
  device_id: string;
  key_json: string;
}

export interface CrossSigningRow {
  user_id: string;
  key_type: string;
  public_key: string;
  key_json: string;
}

export interface SelfSignatureRow {
  user_id: string;
  key_id: string;
  target_device_id: string;
  signature: string;
}

export interface PresenceStateRow {
  user_id: string;
  state: string;
  status_msg: string | null;
  last_active_ts: number;
  stream_id: number;
}

const IN_BATCH = 200;

function batches<T>(items: readonly T[], size = IN_BATCH): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function marks(count: number): string {
  return Array.from({ length: count }, () => '?').join(',');
}

/** PostgreSQL may hand BIGINT columns back as strings: read them as numbers. */
function num<T extends object>(row: T, ...keys: Array<keyof T>): T {
  const values = row as Record<keyof T, unknown>;
  for (const key of keys) if (values[key] !== null && values[key] !== undefined) values[key] = Number(values[key]);
  return row;
}

export class FederationSenderReads {
  private readonly ours: string;

  constructor(
    private readonly db: Database,
    serverName: string,
  ) {
    this.ours = `%:${serverName}`;
  }

  // ---- events ----

  /** Events with `from < stream_ordering <= to`, oldest first; JSON only for our own events. */
  async eventsBetween(from: number, to: number, limit: number): Promise<StreamEventRow[]> {
    const rows = await this.db.all<StreamEventRow>(
      `SELECT stream_ordering, event_id, room_id, type, state_key, sender, CASE WHEN sender LIKE ? THEN json ELSE NULL END AS json
       FROM events WHERE stream_ordering > ? AND stream_ordering <= ? ORDER BY stream_ordering LIMIT ?`,
      [this.ours, from, to, limit],
    );
    return rows.map((r) => num(r, 'stream_ordering'));
  }

  /** Our events in `roomIds` with `from < stream_ordering <= to`, oldest first, at most `limit`. */
  async localEventsInRooms(roomIds: readonly string[], from: number, to: number, limit: number): Promise<StreamEventRow[]> {
    const found: StreamEventRow[] = [];
    for (const batch of batches(roomIds)) {
      const rows = await this.db.all<StreamEventRow>(
        `SELECT stream_ordering, event_id, room_id, type, state_key, sender, json FROM events
         WHERE room_id IN (${marks(batch.length)}) AND stream_ordering > ? AND stream_ordering <= ? AND sender LIKE ?
         ORDER BY stream_ordering LIMIT ?`,
        [...batch, from, to, this.ours, limit],
      );
      found.push(...rows.map((r) => num(r, 'stream_ordering')));
    }
    found.sort((a, b) => a.stream_ordering - b.stream_ordering);
    return found.slice(0, limit);
  }

  /** How many of our events `roomIds` have with `from < stream_ordering <= to`. */
  async countLocalEventsInRooms(roomIds: readonly string[], from: number, to: number): Promise<number> {
    let count = 0;
    for (const batch of batches(roomIds)) {
      const row = await this.db.get<{ n: number }>(
        `SELECT COUNT(*) AS n FROM events
         WHERE room_id IN (${marks(batch.length)}) AND stream_ordering > ? AND stream_ordering <= ? AND sender LIKE ?`,
        [...batch, from, to, this.ours],
      );
      count += Number(row?.n ?? 0);
    }
    return count;
  }

  /** Our latest events of a room with `from < stream_ordering <= to`, newest first. */
  async latestLocalEventsInRoom(roomId: string, from: number, to: number, limit: number): Promise<StreamEventRow[]> {
    const rows = await this.db.all<StreamEventRow>(
      `SELECT stream_ordering, event_id, room_id, type, state_key, sender, json FROM events
       WHERE room_id = ? AND stream_ordering > ? AND stream_ordering <= ? AND sender LIKE ?
       ORDER BY stream_ordering DESC LIMIT ?`,
      [roomId, from, to, this.ours, limit],
    );
    return rows.map((r) => num(r, 'stream_ordering'));
  }

  // ---- who is in a room ----

  /** Users joined to the room after the event at `position` (its state then). */
  async joinedMembersAt(roomId: string, position: number): Promise<string[]> {
    const rows = await this.db.all<{ state_key: string }>(
      `SELECT state_key FROM room_state WHERE room_id = ? AND type = 'm.room.member' AND membership = 'join'
       AND from_stream <= ? AND (to_stream IS NULL OR to_stream > ?)`,
      [roomId, position, position],
    );
    return rows.map((r) => r.state_key);
  }

  /** A user's membership in a room after the event at `position`. */
  async membershipAt(roomId: string, userId: string, position: number): Promise<string | undefined> {
    const row = await this.db.get<{ membership: string | null }>(
      `SELECT membership FROM room_state WHERE room_id = ? AND type = 'm.room.member' AND state_key = ?
       AND from_stream <= ? AND (to_stream IS NULL OR to_stream > ?)`,
      [roomId, userId, position, position],
    );
    return row?.membership ?? undefined;
  }

  /** Users joined to the room now. */
  async currentJoinedMembers(roomId: string): Promise<string[]> {
    const rows = await this.db.all<{ state_key: string }>(
      `SELECT state_key FROM room_state WHERE room_id = ? AND type = 'm.room.member' AND membership = 'join' AND to_stream IS NULL`,
      [roomId],
    );
    return rows.map((r) => r.state_key);
  }

  /** The rooms a user is joined to now. */
  async joinedRoomsOf(userId: string): Promise<string[]> {
    const rows = await this.db.all<{ room_id: string }>(
      `SELECT room_id FROM room_state WHERE type = 'm.room.member' AND state_key = ? AND membership = 'join' AND to_stream IS NULL`,
      [userId],
    );
    return rows.map((r) => r.room_id);
  }

  /**
   * The membership intervals of `serverName`'s users that hold at some position `p` with
   * `from <= p <= to` (the state after each event), in every room.
   */
  async membershipsOfServer(serverName: string, from: number, to: number): Promise<MembershipIntervalRow[]> {
    const rows = await this.db.all<MembershipIntervalRow>(
      `SELECT room_id, state_key, membership, from_stream, to_stream FROM room_state
       WHERE type = 'm.room.member' AND state_key LIKE ? AND membership IS NOT NULL
       AND from_stream <= ? AND (to_stream IS NULL OR to_stream > ?)`,
      [`%:${serverName}`, to, from],
    );
    return rows.map((r) => num(r, 'from_stream', 'to_stream'));
  }

  // ---- receipts ----

  /** Our users' public read receipts with `from < stream_id <= to`, oldest first, at most `limit`. */
  async localReadReceipts(from: number, to: number, limit: number): Promise<OutboundReceiptRow[]> {
    const rows = await this.db.all<OutboundReceiptRow>(
      `SELECT room_id, user_id, thread_id, event_id, data, stream_id FROM receipts
       WHERE receipt_type = 'm.read' AND stream_id > ? AND stream_id <= ? AND user_id LIKE ?
       ORDER BY stream_id LIMIT ?`,
      [from, to, this.ours, limit],
    );
    return rows.map((r) => num(r, 'stream_id'));
  }

  // ---- device lists ----

  /** Our users' device-list changes with `from < stream_id <= to`, oldest first, at most `limit`. */
  async localDeviceChanges(from: number, to: number, limit: number): Promise<DeviceChangeRow[]> {
    const rows = await this.db.all<DeviceChangeRow>(
      `SELECT stream_id, user_id, device_id FROM device_lists_stream
       WHERE stream_id > ? AND stream_id <= ? AND user_id LIKE ? ORDER BY stream_id, user_id, device_id LIMIT ?`,
      [from, to, this.ours, limit],
    );
    return rows.map((r) => num(r, 'stream_id'));
  }

  /** The user's latest device-list change below `before`, leaving out `excludedIds` (cross-signing keys). */
  async previousDeviceChange(userId: string, before: number, excludedIds: readonly string[]): Promise<number | undefined> {
    const params: SqlValue[] = [userId, before, ...excludedIds];
    const row = await this.db.get<{ s: number | null }>(
      `SELECT MAX(stream_id) AS s FROM device_lists_stream WHERE user_id = ? AND stream_id < ?
       ${excludedIds.length > 0 ? `AND device_id NOT IN (${marks(excludedIds.length)})` : ''}`,
      params,
    );
    return row?.s === null || row?.s === undefined ? undefined : Number(row.s);
  }

  /** Keys of the user's devices among `deviceIds` that still exist. */
  async deviceKeys(userId: string, deviceIds: readonly string[]): Promise<KeyJsonRow[]> {
    const rows: KeyJsonRow[] = [];
    for (const batch of batches(deviceIds)) {
      rows.push(
        ...(await this.db.all<KeyJsonRow>(
          `SELECT k.user_id, k.device_id, k.key_json FROM e2e_device_keys k
           JOIN devices d ON d.user_id = k.user_id AND d.device_id = k.device_id
           WHERE k.user_id = ? AND k.device_id IN (${marks(batch.length)})`,
          [userId, ...batch],
        )),
      );
    }
    return rows;
  }

  /** The user's devices among `deviceIds` that exist (with or without keys). */
  async existingDevices(userId: string, deviceIds: readonly string[]): Promise<Set<string>> {
    const found = new Set<string>();
    for (const batch of batches(deviceIds)) {
      const rows = await this.db.all<{ device_id: string }>(
        `SELECT device_id FROM devices WHERE user_id = ? AND device_id IN (${marks(batch.length)})`,
        [userId, ...batch],
      );
      for (const row of rows) found.add(row.device_id);
    }
    return found;
  }

  /** The user's master and self-signing keys (the user-signing key never leaves its owner). */
  crossSigningKeys(userId: string): Promise<CrossSigningRow[]> {
    return this.db.all<CrossSigningRow>(
      `SELECT user_id, key_type, public_key, key_json FROM e2e_cross_signing_keys
       WHERE user_id = ? AND key_type IN ('master', 'self_signing')`,
      [userId],
    );
  }

  /** Signatures the user made on their own keys (devices, cross-signing keys) kept beside them. */
  selfSignatures(userId: string): Promise<SelfSignatureRow[]> {
    return this.db.all<SelfSignatureRow>(
      'SELECT user_id, key_id, target_device_id, signature FROM e2e_cross_signing_signatures WHERE target_user_id = ? AND user_id = ?',
      [userId, userId],
    );
  }

  // ---- presence ----

  async presenceOf(userIds: readonly string[]): Promise<PresenceStateRow[]> {
    const rows: PresenceStateRow[] = [];
    for (const batch of batches(userIds)) {
      rows.push(
        ...(
          await this.db.all<PresenceStateRow>(
            `SELECT user_id, state, status_msg, last_active_ts, stream_id FROM presence WHERE user_id IN (${marks(batch.length)})`,
            batch,
          )
        ).map((r) => num(r, 'last_active_ts', 'stream_id')),
      );
    }
    return rows;
  }
}
