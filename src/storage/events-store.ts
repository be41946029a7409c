// Room events (the events stream), the rooms they belong to (`rooms`, with the room directory's
// published flag), redactions and send transaction ids.

import type { Database, Queryable } from './database.js';

export interface EventRow {
  stream_ordering: number;
  event_id: string;
  room_id: string;
  type: string;
  state_key: string | null;
  sender: string;
  depth: number;
  origin_server_ts: number;
  json: string;
}

export interface RoomRow {
  room_id: string;
  room_version: string;
  creator: string;
  is_public: number;
  created_ts: number;
}

export interface NewEventRow {
  streamOrdering: number;
  eventId: string;
  roomId: string;
  type: string;
  stateKey: string | undefined;
  sender: string;
  depth: number;
  originServerTs: number;
  json: string;
  relatesTo?: string;
  relationType?: string;
  threadId?: string;
  instanceName: string;
}

const EVENT_COLUMNS = 'stream_ordering, event_id, room_id, type, state_key, sender, depth, origin_server_ts, json';

export class EventsStore {
  constructor(private readonly db: Database) {}

  async insertEvent(tx: Queryable, row: NewEventRow): Promise<void> {
    await tx.run(
      `INSERT INTO events (stream_ordering, event_id, room_id, type, state_key, sender, depth, origin_server_ts, json,
         relates_to, relation_type, thread_id, instance_name)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [
        row.streamOrdering,
        row.eventId,
        row.roomId,
        row.type,
        row.stateKey ?? null,
        row.sender,
        row.depth,
        row.originServerTs,
        row.json,
        row.relatesTo ?? null,
        row.relationType ?? null,
        row.threadId ?? null,
        row.instanceName,
      ],
    );
  }

  /** Records a new room; false if a room with that id exists. */
  async insertRoom(
    tx: Queryable,
    room: { roomId: string; version: string; creator: string; isPublic: boolean; createdTs: number },
  ): Promise<boolean> {
    const inserted = await tx.run(
      'INSERT INTO rooms (room_id, room_version, creator, is_public, created_ts) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
      [room.roomId, room.version, room.creator, room.isPublic ? 1 : 0, room.createdTs],
    );
    return inserted.changes > 0;
  }

  getRoom(roomId: string): Promise<RoomRow | undefined> {
    return this.db.get<RoomRow>('SELECT * FROM rooms WHERE room_id = ?', [roomId]);
  }

  async setRoomPublic(roomId: string, isPublic: boolean): Promise<void> {
    await this.db.run('UPDATE rooms SET is_public = ? WHERE room_id = ?', [isPublic ? 1 : 0, roomId]);
  }

  listPublicRooms(): Promise<RoomRow[]> {
    return this.db.all<RoomRow>('SELECT * FROM rooms WHERE is_public = 1 ORDER BY created_ts');
  }

  getEvent(eventId: string): Promise<EventRow | undefined> {
    return this.db.get<EventRow>(`SELECT ${EVENT_COLUMNS} FROM events WHERE event_id = ?`, [eventId]);
  }

  async getEvents(eventIds: readonly string[]): Promise<EventRow[]> {
    if (eventIds.length === 0) return [];
    const rows: EventRow[] = [];
    // Bounded IN lists keep statements cacheable and under parameter limits.
    for (let i = 0; i < eventIds.length; i += 100) {
      const chunk = eventIds.slice(i, i + 100);
      rows.push(
        ...(await this.db.all<EventRow>(
          `SELECT ${EVENT_COLUMNS} FROM events WHERE event_id IN (${chunk.map(() => '?').join(',')})`,
          chunk,
        )),
      );
    }
    return rows;
  }

  /** The room's newest event (the one new events follow). */
  latestEvent(roomId: string): Promise<EventRow | undefined> {
    return this.db.get<EventRow>(`SELECT ${EVENT_COLUMNS} FROM events WHERE room_id = ? ORDER BY stream_ordering DESC LIMIT 1`, [roomId]);
  }

  /**
   * Events of a room with `from < stream_ordering <= to`, newest first when `direction` is
   * 'backwards', oldest first otherwise.
   */
  roomEventsBetween(roomId: string, from: number, to: number, limit: number, direction: 'forwards' | 'backwards'): Promise<EventRow[]> {
    const order = direction === 'backwards' ? 'DESC' : 'ASC';
    return this.db.all<EventRow>(
      `SELECT ${EVENT_COLUMNS} FROM events WHERE room_id = ? AND stream_ordering > ? AND stream_ordering <= ?
       ORDER BY stream_ordering ${order} LIMIT ?`,
      [roomId, from, to, limit],
    );
  }

  /** Rooms that have events with `from < stream_ordering <= to` (an incremental sync's candidates). */
  async roomsWithEventsBetween(from: number, to: number): Promise<string[]> {
    const rows = await this.db.all<{ room_id: string }>(
      'SELECT DISTINCT room_id FROM events WHERE stream_ordering > ? AND stream_ordering <= ?',
      [from, to],
    );
    return rows.map((r) => r.room_id);
  }

  /** The lowest position of any event (negative once history was backfilled), 0 with none below 0. */
  async minStreamOrdering(): Promise<number> {
    const row = await this.db.get<{ m: number | null }>('SELECT MIN(stream_ordering) AS m FROM events');
    return Math.min(0, Number(row?.m ?? 0));
  }

  /** The highest position an event holds. */
  async maxStreamOrdering(): Promise<number> {
    const row = await this.db.get<{ m: number | null }>('SELECT MAX(stream_ordering) AS m FROM events');
    return Number(row?.m ?? 0);
  }

  /** The highest position each events writer has stored (catch-up at start-up). */
  async maxStreamOrderingByWriter(): Promise<Array<{ instance_name: string; position: number | null }>> {
    return this.db.all<{ instance_name: string; position: number | null }>(
      'SELECT instance_name, MAX(stream_ordering) AS position FROM events GROUP BY instance_name',
    );
  }

  /** The events one writer stored with `from < stream_ordering <= to`, in order (catch-up). */
  eventsOfWriterBetween(
    instanceName: string,
    from: number,
    to: number,
  ): Promise<Array<{ event_id: string; room_id: string; json: string }>> {
    return this.db.all<{ event_id: string; room_id: string; json: string }>(
      `SELECT event_id, room_id, json FROM events
       WHERE instance_name = ? AND stream_ordering > ? AND stream_ordering <= ? ORDER BY stream_ordering`,
      [instanceName, from, to],
    );
  }

  /** The event closest to `ts` in the given direction (timestamp_to_event). */
  eventNearTimestamp(roomId: string, ts: number, direction: 'f' | 'b'): Promise<EventRow | undefined> {
    return direction === 'f'
      ? this.db.get<EventRow>(
          `SELECT ${EVENT_COLUMNS} FROM events
           WHERE room_id = ? AND origin_server_ts >= ? ORDER BY origin_server_ts ASC, stream_ordering ASC LIMIT 1`,
          [roomId, ts],
        )
      : this.db.get<EventRow>(
          `SELECT ${EVENT_COLUMNS} FROM events
           WHERE room_id = ? AND origin_server_ts <= ? ORDER BY origin_server_ts DESC, stream_ordering DESC LIMIT 1`,
          [roomId, ts],
        );
  }

  async insertRedaction(tx: Queryable, redacts: string, eventId: string, streamOrdering: number): Promise<void> {
    await tx.run('INSERT INTO redactions (redacts, event_id, stream_ordering) VALUES (?, ?, ?) ON CONFLICT DO NOTHING', [
      redacts,
      eventId,
      streamOrdering,
    ]);
  }

  /** The first applied redaction of each of `eventIds`. */
  async redactionsOf(eventIds: readonly string[]): Promise<Map<string, string>> {
    const found = new Map<string, string>();
    for (let i = 0; i < eventIds.length; i += 100) {
      const chunk = eventIds.slice(i, i + 100);
      const rows = await this.db.all<{ redacts: string; event_id: string }>(
        `SELECT redacts, event_id FROM redactions WHERE redacts IN (${chunk.map(() => '?').join(',')}) ORDER BY stream_ordering`,
        chunk,
      );
      for (const row of rows) if (!found.has(row.redacts)) found.set(row.redacts, row.event_id);
    }
    return found;
  }

  async findTxnEvent(roomId: string, userId: string, deviceId: string, txnId: string): Promise<string | undefined> {
    const row = await this.db.get<{ event_id: string }>(
      'SELECT event_id FROM event_txn_ids WHERE room_id = ? AND user_id = ? AND device_id = ? AND txn_id = ?',
      [roomId, userId, deviceId, txnId],
    );
    return row?.event_id;
  }

  /** The senders' (user, device, txn id) of the given events, in one query. */
  async txnsOfEvents(
    eventIds: readonly string[],
  ): Promise<Array<{ event_id: string; user_id: string; device_id: string; txn_id: string }>> {
    if (eventIds.length === 0) return [];
    const rows: Array<{ event_id: string; user_id: string; device_id: string; txn_id: string }> = [];
    for (let i = 0; i < eventIds.length; i += 100) {
      const chunk = eventIds.slice(i, i + 100);
      rows.push(
        ...(await this.db.all<{ event_id: string; user_id: string; device_id: string; txn_id: string }>(
          `SELECT event_id, user_id, device_id, txn_id FROM event_txn_ids WHERE event_id IN (${chunk.map(() => '?').join(',')})`,
          chunk,
        )),
      );
    }
    return rows;
  }

  /** Records the send's transaction id; false if it was already used (the send is a retry). */
  async insertTxn(
    tx: Queryable,
    roomId: string,
    userId: string,
    deviceId: string,
    txnId: string,
    eventId: string,
    now: number,
  ): Promise<boolean> {
    const inserted = await tx.run(
      `INSERT INTO event_txn_ids (room_id, user_id, device_id, txn_id, event_id, created_ts) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT DO NOTHING`,
      [roomId, userId, deviceId, txnId, eventId, now],
    );
    return inserted.changes > 0;
  }
}
