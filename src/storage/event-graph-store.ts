// The event graph of each room (schema 0051): every PDU we know of with its status, its prev and
// auth edges, and the room's forward and backward extremities.

import type { Database, Queryable, SqlValue } from './database.js';

/**
 * What became of an event we know of:
 * - `timeline`: accepted, in `events` at a stream position (what clients see);
 * - `outlier`: known without the state at it (an auth event, state fetched at a gap);
 * - `rejected`: failed the auth rules; never sent to clients nor used as a prev event;
 * - `soft_failed`: passed the state at it but not the current state; kept for state resolution;
 * - `backfilled`: history fetched later, in `events` at a negative position.
 */
export type GraphStatus = 'timeline' | 'outlier' | 'rejected' | 'soft_failed' | 'backfilled';

export interface GraphRow {
  event_id: string;
  room_id: string;
  depth: number;
  status: GraphStatus;
  rejected_reason: string | null;
  /** The state after the event (for a rejected one, the state before it). */
  state_group: number | null;
  /** The PDU: from `event_graph` for events outside the timeline, from `events` otherwise. */
  json: string;
  /** The event's position in the events stream, for timeline and backfilled events. */
  stream_ordering: number | null;
}

export interface NewGraphRow {
  eventId: string;
  roomId: string;
  depth: number;
  status: GraphStatus;
  rejectedReason?: string | undefined;
  stateGroup?: number | undefined;
  /** Only for events that are not in `events`. */
  json?: string | undefined;
  prevEventIds: readonly string[];
  authEventIds: readonly string[];
}

/** Bounded IN lists keep statements cacheable and under parameter limits. */
const CHUNK = 100;

function placeholders(n: number): string {
  return Array.from({ length: n }, () => '?').join(',');
}

async function inChunks<T>(ids: readonly string[], read: (chunk: readonly string[]) => Promise<T[]>): Promise<T[]> {
  const unique = [...new Set(ids)];
  const out: T[] = [];
  for (let i = 0; i < unique.length; i += CHUNK) out.push(...(await read(unique.slice(i, i + CHUNK))));
  return out;
}

function numberOrNull(value: unknown): number | null {
  return value === null || value === undefined ? null : Number(value);
}

export class EventGraphStore {
  constructor(private readonly db: Database) {}

  /**
   * Records an event in the graph with its edges. An outlier that is now accepted, rejected or
   * soft-failed (it arrived again through `/send`, get_missing_events or backfill) has its row
   * replaced; any other known event is left as it is.
   */
  async insert(tx: Queryable, row: NewGraphRow): Promise<void> {
    const inserted = await tx.get<{ nid: number }>(
      `INSERT INTO event_graph (event_id, room_id, depth, status, rejected_reason, state_group, json) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (event_id) DO UPDATE SET status = excluded.status, rejected_reason = excluded.rejected_reason,
         state_group = excluded.state_group, json = excluded.json
       WHERE event_graph.status = 'outlier' AND excluded.status <> 'outlier' AND event_graph.room_id = excluded.room_id
       RETURNING nid`,
      [row.eventId, row.roomId, row.depth, row.status, row.rejectedReason ?? null, row.stateGroup ?? null, row.json ?? null],
    );
    // Nothing returned: the event was known already (and not an outlier), edges and all.
    if (!inserted) return;
    await this.insertEdges(tx, 'event_edges', 'prev', Number(inserted.nid), row.prevEventIds);
    await this.insertEdges(tx, 'event_auth_edges', 'auth', Number(inserted.nid), row.authEventIds);
  }

  /** Edges from an event to `targets`, with each target's nid when we hold it. */
  private async insertEdges(
    tx: Queryable,
    table: string,
    column: 'prev' | 'auth',
    eventNid: number,
    targets: readonly string[],
  ): Promise<void> {
    const unique = [...new Set(targets)];
    if (unique.length === 0) return;
    const params: SqlValue[] = [];
    for (const target of unique) params.push(eventNid, target, target);
    await tx.run(
      `INSERT INTO ${table} (event_nid, ${column}_event_id, ${column}_nid)
       VALUES ${unique.map(() => '(?, ?, (SELECT nid FROM event_graph WHERE event_id = ?))').join(', ')} ON CONFLICT DO NOTHING`,
      params,
    );
  }

  /** Replaces `remove` by `add` among the room's forward extremities. */
  async updateForwardExtremities(tx: Queryable, roomId: string, remove: readonly string[], add: readonly string[]): Promise<void> {
    if (remove.length === 1 && add.length === 1) {
      // The usual case (a new event on the room's only extremity): one statement.
      const moved = await tx.run('UPDATE room_forward_extremities SET event_id = ? WHERE room_id = ? AND event_id = ?', [
        add[0]!,
        roomId,
        remove[0]!,
      ]);
      if (moved.changes === 1) return;
    } else if (remove.length > 0) {
      await tx.run(`DELETE FROM room_forward_extremities WHERE room_id = ? AND event_id IN (${placeholders(remove.length)})`, [
        roomId,
        ...remove,
      ]);
    }
    for (const eventId of add) {
      await tx.run('INSERT INTO room_forward_extremities (room_id, event_id) VALUES (?, ?) ON CONFLICT DO NOTHING', [roomId, eventId]);
    }
  }

  async addBackwardExtremities(tx: Queryable, roomId: string, eventIds: readonly string[]): Promise<void> {
    for (const eventId of new Set(eventIds)) {
      await tx.run('INSERT INTO room_backward_extremities (room_id, event_id) VALUES (?, ?) ON CONFLICT DO NOTHING', [roomId, eventId]);
    }
  }

  async removeBackwardExtremities(tx: Queryable, roomId: string, eventIds: readonly string[]): Promise<void> {
    for (let i = 0; i < eventIds.length; i += CHUNK) {
      const chunk = eventIds.slice(i, i + CHUNK);
      await tx.run(`DELETE FROM room_backward_extremities WHERE room_id = ? AND event_id IN (${placeholders(chunk.length)})`, [
        roomId,
        ...chunk,
      ]);
    }
  }

  async forwardExtremities(roomId: string): Promise<string[]> {
    const rows = await this.db.all<{ event_id: string }>('SELECT event_id FROM room_forward_extremities WHERE room_id = ?', [roomId]);
    return rows.map((r) => r.event_id);
  }

  async backwardExtremities(roomId: string): Promise<string[]> {
    const rows = await this.db.all<{ event_id: string }>('SELECT event_id FROM room_backward_extremities WHERE room_id = ?', [roomId]);
    return rows.map((r) => r.event_id);
  }

  /** The graph rows of the events among `eventIds` that we know of, with their PDUs. */
  async get(eventIds: readonly string[]): Promise<Map<string, GraphRow>> {
    const rows = await inChunks(eventIds, (chunk) =>
      this.db.all<GraphRow>(
        `SELECT g.event_id, g.room_id, g.depth, g.status, g.rejected_reason, g.state_group, COALESCE(g.json, e.json) AS json,
           e.stream_ordering
         FROM event_graph g LEFT JOIN events e ON e.event_id = g.event_id WHERE g.event_id IN (${placeholders(chunk.length)})`,
        chunk,
      ),
    );
    const found = new Map<string, GraphRow>();
    for (const row of rows) {
      if (row.json === null) continue; // a timeline row whose event is gone: unknown
      found.set(row.event_id, {
        ...row,
        depth: Number(row.depth),
        state_group: numberOrNull(row.state_group),
        stream_ordering: numberOrNull(row.stream_ordering),
      });
    }
    return found;
  }

  /** The prev edges of `eventIds`: `[event, prev]` pairs. */
  async prevEdges(eventIds: readonly string[]): Promise<Array<{ event_id: string; prev_event_id: string }>> {
    return inChunks(eventIds, (chunk) =>
      this.db.all(
        `SELECT g.event_id, e.prev_event_id FROM event_graph g JOIN event_edges e ON e.event_nid = g.nid
         WHERE g.event_id IN (${placeholders(chunk.length)})`,
        chunk,
      ),
    );
  }

  /** The events that list any of `eventIds` as a prev event: `[child, prev]` pairs. */
  async childEdges(eventIds: readonly string[]): Promise<Array<{ event_id: string; prev_event_id: string }>> {
    return inChunks(eventIds, (chunk) =>
      this.db.all(
        `SELECT c.event_id, p.event_id AS prev_event_id FROM event_graph p
           JOIN event_edges e ON e.prev_nid = p.nid JOIN event_graph c ON c.nid = e.event_nid
         WHERE p.event_id IN (${placeholders(chunk.length)})
         UNION ALL
         SELECT c.event_id, e.prev_event_id FROM event_edges e JOIN event_graph c ON c.nid = e.event_nid
         WHERE e.prev_nid IS NULL AND e.prev_event_id IN (${placeholders(chunk.length)})`,
        [...chunk, ...chunk],
      ),
    );
  }

  /** The auth edges of `eventIds`: `[event, auth event]` pairs. */
  async authEdges(eventIds: readonly string[]): Promise<Array<{ event_id: string; auth_event_id: string }>> {
    return inChunks(eventIds, (chunk) =>
      this.db.all(
        `SELECT g.event_id, e.auth_event_id FROM event_graph g JOIN event_auth_edges e ON e.event_nid = g.nid
         WHERE g.event_id IN (${placeholders(chunk.length)})`,
        chunk,
      ),
    );
  }

  /** How many events of the room have each status (tests and diagnostics). */
  async countByStatus(roomId: string): Promise<Record<string, number>> {
    const rows = await this.db.all<{ status: string; n: number }>(
      'SELECT status, COUNT(*) AS n FROM event_graph WHERE room_id = ? GROUP BY status',
      [roomId],
    );
    return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
  }
}
