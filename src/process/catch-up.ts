// How a process catches up with stream rows it missed on the bus (Redis was down, the process
// started): rebuilt from the database for the streams stored there, asked of the writer for
// typing, which lives only in the writer's memory. Also where each stream stands at start-up.

import { storedRoomEvent } from '../core/event-format.js';
import type { JsonObject } from '../core/json.js';
import type { EventCache } from '../handlers/kernel/event-cache.js';
import { eventRow } from '../handlers/kernel/events-writer.js';
import type { UserMemberships } from '../handlers/kernel/memberships.js';
import type { StreamRow } from '../streams/bus.js';
import type { StartingPosition, StreamCatchUp } from '../replication/catch-up.js';
import type { RpcCaller } from '../replication/rpc.js';
import type { Stores } from '../storage/stores.js';
import type { StreamName } from '../streams/streams.js';
import type { WriterPlacement } from './placement.js';
import { writerRows } from './writers.js';

/** The stores of the streams kept in the database. */
export type CatchUpStores = Pick<Stores, 'events' | 'receipts' | 'accountData' | 'toDevice' | 'presence' | 'pushRules' | 'deviceKeys'>;

/** The streams other than events that are stored with a position column, and where each stands. */
function storedPositions(stores: CatchUpStores): Partial<Record<StreamName, () => Promise<number>>> {
  return {
    receipts: () => stores.receipts.maxStreamId(),
    account_data: () => stores.accountData.maxStreamId(),
    to_device: () => stores.toDevice.maxInboxStreamId(),
    presence: () => stores.presence.maxStreamId(),
    push_rules: () => stores.pushRules.maxStreamId(),
    device_lists: () => stores.deviceKeys.maxDeviceChangeStreamId(),
  };
}

export interface CatchUpDeps {
  stores: CatchUpStores;
  placement: WriterPlacement;
  eventCache: EventCache;
  memberships: UserMemberships;
  rpc: RpcCaller;
  /** The completed positions of the streams this process writes. */
  written: () => Array<{ stream: StreamName; position: number }>;
}

export function databaseCatchUp(deps: CatchUpDeps): StreamCatchUp {
  const { stores, memberships } = deps;
  const joinedRooms = async (userId: string) => (await memberships.of(userId)).filter((m) => m.membership === 'join').map((m) => m.room_id);

  return {
    writtenStreams: deps.written,

    async rowsBetween(stream, instance, from, to) {
      switch (stream) {
        case 'events': {
          const rows = await stores.events.eventsOfWriterBetween(instance, from, to);
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
          const rows = await stores.receipts.streamChangesBetween(from, to);
          return rows.map((r) => ({ stream: 'receipts', roomId: r.room_id, userId: r.user_id }));
        }
        case 'account_data': {
          const rows = await stores.accountData.streamChangesBetween(from, to);
          return rows.map((r) => ({
            stream: 'account_data',
            userId: r.user_id,
            type: r.type,
            ...(r.room_id === '' ? {} : { roomId: r.room_id }),
          }));
        }
        case 'to_device': {
          const rows = await stores.toDevice.streamChangesBetween(from, to);
          return rows.map((r) => ({ stream: 'to_device', userId: r.user_id, deviceId: r.device_id }));
        }
        case 'presence': {
          const rows = await stores.presence.streamChangesBetween(from, to);
          return Promise.all(
            rows.map(async (r) => ({ stream: 'presence' as const, userId: r.user_id, roomIds: await joinedRooms(r.user_id) })),
          );
        }
        case 'push_rules': {
          const rows = await stores.pushRules.streamChangesBetween(from, to);
          return rows.map((r) => ({ stream: 'push_rules', userId: r.user_id }));
        }
        case 'device_lists': {
          // One row per device changed: one update per user is enough (PostgreSQL refuses DISTINCT
          // together with ORDER BY a column not selected, so deduplicate here).
          const rows = await stores.deviceKeys.streamChangesBetween(from, to);
          const users = [...new Set(rows.map((r) => r.user_id))];
          return Promise.all(
            users.map(async (userId) => ({ stream: 'device_lists' as const, userId, roomIds: await joinedRooms(userId) })),
          );
        }
      }
    },
  };
}

/**
 * Where each writer of each stream stood in the database when this process loaded its state, so
 * the bus catches the process up from there. Typing is not stored: its readers start from the
 * writer's first announcement.
 */
export async function startingPositions(stores: CatchUpStores, placement: WriterPlacement): Promise<StartingPosition[]> {
  const positions: StartingPosition[] = [];
  const byInstance = await stores.events.maxStreamOrderingByWriter();
  for (const writer of placement.writersOf('events')) {
    const row = byInstance.find((r) => r.instance_name === writer);
    positions.push({ stream: 'events', instance: writer, position: Number(row?.position ?? 0) });
  }
  for (const [stream, highest] of Object.entries(storedPositions(stores)) as Array<[StreamName, () => Promise<number>]>) {
    const position = await highest();
    // These tables do not record which writer wrote a row. With several writers (receipts,
    // device_lists) the positions come from one sequence, so the highest stored one is where
    // each of them stands, as far as the database can tell.
    for (const writer of placement.writersOf(stream)) positions.push({ stream, instance: writer, position });
  }
  return positions;
}
