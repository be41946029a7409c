// How a process catches up with stream rows it missed on the bus (Redis was down, the process
// started): rebuilt from the database for the streams stored there, asked of the writer for
// typing, which lives only in the writer's memory. Also where each stream stands at start-up.

import { storedRoomEvent } from '../core/event-format.js';
import type { JsonObject } from '../core/json.js';
import type { EventCache } from '../handlers/event-cache.js';
import { eventRow } from '../handlers/events-writer.js';
import type { UserMemberships } from '../handlers/memberships.js';
import type { StreamRow } from '../streams/bus.js';
import type { StartingPosition, StreamCatchUp } from '../replication/catch-up.js';
import type { RpcCaller } from '../replication/rpc.js';
import type { Database } from '../storage/database.js';
import type { StreamName } from '../streams/streams.js';
import type { WriterPlacement } from './placement.js';
import { writerRows } from './writers.js';

/** The streams stored in a table with a position column, and how to rebuild their rows. */
const TABLE_STREAMS: Partial<Record<StreamName, { table: string; column: string }>> = {
  receipts: { table: 'receipts', column: 'stream_id' },
  account_data: { table: 'account_data', column: 'stream_id' },
  to_device: { table: 'to_device_inbox', column: 'stream_id' },
  presence: { table: 'presence', column: 'stream_id' },
  push_rules: { table: 'push_rules', column: 'stream_id' },
  device_lists: { table: 'device_lists_stream', column: 'stream_id' },
};

export interface CatchUpDeps {
  db: Database;
  placement: WriterPlacement;
  eventCache: EventCache;
  memberships: UserMemberships;
  rpc: RpcCaller;
  /** The completed positions of the streams this process writes. */
  written: () => Array<{ stream: StreamName; position: number }>;
}

export function databaseCatchUp(deps: CatchUpDeps): StreamCatchUp {
  const { db, memberships } = deps;
  const joinedRooms = async (userId: string) => (await memberships.of(userId)).filter((m) => m.membership === 'join').map((m) => m.room_id);

  return {
    writtenStreams: deps.written,

    async rowsBetween(stream, instance, from, to) {
      switch (stream) {
        case 'events': {
          const rows = await db.all<{ event_id: string; room_id: string; json: string }>(
            'SELECT event_id, room_id, json FROM events WHERE instance_name = ? AND stream_ordering > ? AND stream_ordering <= ? ORDER BY stream_ordering',
            [instance, from, to],
          );
          const out: StreamRow[] = [];
          for (const row of rows) {
            const version = await deps.eventCache.roomVersion(row.room_id);
            if (version) out.push(eventRow(storedRoomEvent(JSON.parse(row.json) as JsonObject, version, row.event_id)));
          }
          return out;
        }
        case 'typing':
          // In memory (WRITERS.typing.inMemory): asked of its writer.
          return writerRows(deps.rpc, stream, instance, from, to);
        case 'receipts': {
          const rows = await db.all<{ room_id: string; user_id: string }>(rangeQuery('receipts', 'room_id, user_id'), [from, to]);
          return rows.map((r) => ({ stream: 'receipts', roomId: r.room_id, userId: r.user_id }));
        }
        case 'account_data': {
          const rows = await db.all<{ user_id: string; room_id: string; type: string }>(rangeQuery('account_data', 'user_id, room_id, type'), [from, to]);
          return rows.map((r) => ({ stream: 'account_data', userId: r.user_id, type: r.type, ...(r.room_id === '' ? {} : { roomId: r.room_id }) }));
        }
        case 'to_device': {
          const rows = await db.all<{ user_id: string; device_id: string }>(rangeQuery('to_device', 'user_id, device_id'), [from, to]);
          return rows.map((r) => ({ stream: 'to_device', userId: r.user_id, deviceId: r.device_id }));
        }
        case 'presence': {
          const rows = await db.all<{ user_id: string }>(rangeQuery('presence', 'user_id'), [from, to]);
          return Promise.all(rows.map(async (r) => ({ stream: 'presence' as const, userId: r.user_id, roomIds: await joinedRooms(r.user_id) })));
        }
        case 'push_rules': {
          const rows = await db.all<{ user_id: string }>(rangeQuery('push_rules', 'user_id'), [from, to]);
          return rows.map((r) => ({ stream: 'push_rules', userId: r.user_id }));
        }
        case 'device_lists': {
          // One row per device changed: one update per user is enough (PostgreSQL refuses DISTINCT
          // together with ORDER BY a column not selected, so deduplicate here).
          const rows = await db.all<{ user_id: string }>(rangeQuery('device_lists', 'user_id'), [from, to]);
          const users = [...new Set(rows.map((r) => r.user_id))];
          return Promise.all(users.map(async (userId) => ({ stream: 'device_lists' as const, userId, roomIds: await joinedRooms(userId) })));
        }
      }
    },
  };
}

function rangeQuery(stream: StreamName, columns: string): string {
  const { table, column } = TABLE_STREAMS[stream]!;
  return `SELECT ${columns} FROM ${table} WHERE ${column} > ? AND ${column} <= ? ORDER BY ${column}`;
}

/**
 * Where each writer of each stream stood in the database when this process loaded its state, so
 * the bus catches the process up from there. Typing is not stored: its readers start from the
 * writer's first announcement.
 */
export async function startingPositions(db: Database, placement: WriterPlacement): Promise<StartingPosition[]> {
  const positions: StartingPosition[] = [];
  const byInstance = await db.all<{ instance_name: string; position: number | null }>(
    'SELECT instance_name, MAX(stream_ordering) AS position FROM events GROUP BY instance_name',
  );
  for (const writer of placement.writersOf('events')) {
    const row = byInstance.find((r) => r.instance_name === writer);
    positions.push({ stream: 'events', instance: writer, position: Number(row?.position ?? 0) });
  }
  for (const [stream, { table, column }] of Object.entries(TABLE_STREAMS) as Array<[StreamName, { table: string; column: string }]>) {
    const row = await db.get<{ position: number | null }>(`SELECT MAX(${column}) AS position FROM ${table}`);
    // These tables do not record which writer wrote a row. With several writers (receipts,
    // device_lists) the positions come from one sequence, so the highest stored one is where
    // each of them stands, as far as the database can tell.
    for (const writer of placement.writersOf(stream)) positions.push({ stream, instance: writer, position: Number(row?.position ?? 0) });
  }
  return positions;
}
