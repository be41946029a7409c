// The writers a process uses, given where each stream is written: its own for the streams (and
// rooms) it writes, proxies over replication HTTP for the rest.

import { parsePdu } from '../core/event-format.js';
import { getRoomVersion } from '../core/room-versions.js';
import { Errors } from '../errors.js';
import type { EphemeralPlacement, EphemeralWriters } from '../handlers/ephemeral/index.js';
import { EPHEMERAL_WRITER_METHODS } from '../handlers/ephemeral/index.js';
import type { DeviceListsPlacement } from '../handlers/e2ee/index.js';
import type { DeviceListsWriterApi } from '../handlers/e2ee/device-lists.js';
import type { CreateRoomPlan, EventDraft, EventsWriterApi, PersistedEvent, SendOptions } from '../handlers/events-writer.js';
import type { PduOutcome } from '../handlers/federation/pdu-intake.js';
import type { JsonObject } from '../core/json.js';
import type { ReceiptsWriterApi } from '../handlers/ephemeral/receipts.js';
import type { StreamName } from '../streams/streams.js';
import { writerRouter, type WriterPlacement } from './placement.js';

export const EVENTS_WRITER_METHODS = ['sendEvent', 'createRoom', 'receivePdus'] as const satisfies readonly (keyof EventsWriterApi)[];

export const DEVICE_LISTS_WRITER_METHODS = ['uploadKeys', 'uploadSigningKeys', 'uploadSignatures', 'devicesDeleted'] as const satisfies readonly (keyof DeviceListsWriterApi)[];

const EPHEMERAL_STREAMS: Record<keyof EphemeralWriters, StreamName> = {
  typing: 'typing',
  receipts: 'receipts',
  accountData: 'account_data',
  presence: 'presence',
  toDevice: 'to_device',
  pushRules: 'push_rules',
};

/** The events writer of each room: this process's for the rooms it owns, a proxy otherwise. */
export class RoutedEventsWriter implements EventsWriterApi {
  private readonly route: (roomId?: string) => EventsWriterApi;

  constructor(placement: WriterPlacement, local: EventsWriterApi | undefined) {
    this.route = writerRouter<EventsWriterApi>(placement, 'events', 'events', EVENTS_WRITER_METHODS, local);
  }

  sendEvent(roomId: string, draft: EventDraft, options?: SendOptions): Promise<PersistedEvent> {
    return this.route(roomId).sendEvent(roomId, draft, options);
  }

  receivePdus(origin: string, roomId: string, pdus: JsonObject[]): Promise<PduOutcome[]> {
    return this.route(roomId).receivePdus(origin, roomId, pdus);
  }

  createRoom(plan: CreateRoomPlan): Promise<{ roomId: string; events: PersistedEvent[] }> {
    // The room id (derived from the create event in v12) decides which writer owns the room.
    const version = getRoomVersion(plan.roomVersion);
    if (!version) throw Errors.badJson(`unknown room version ${plan.roomVersion}`);
    return this.route(parsePdu(plan.createEvent, version).roomId).createRoom(plan);
  }
}

/** The ephemeral writers: local where this process writes the stream, proxies elsewhere. */
export function ephemeralPlacement(placement: WriterPlacement): EphemeralPlacement {
  return {
    async writer(name, buildLocal) {
      const stream = EPHEMERAL_STREAMS[name];
      const local = placement.writesHere(stream) ? await buildLocal() : undefined;
      const methods = EPHEMERAL_WRITER_METHODS[name] as unknown as readonly (keyof EphemeralWriters[typeof name] & string)[];
      const route = writerRouter(placement, stream, name, methods, local);
      if (name === 'receipts' && placement.writersOf(stream).length > 1) {
        // Several receipts writers each own some rooms.
        const routed: ReceiptsWriterApi = { putReceipt: (receipt) => (route(receipt.roomId) as ReceiptsWriterApi).putReceipt(receipt) };
        return routed as EphemeralWriters[typeof name];
      }
      return route();
    },
  };
}

/** Whether this process writes the stream behind an ephemeral writer (so serves it to others). */
export function writesEphemeral(placement: WriterPlacement, name: keyof EphemeralWriters): boolean {
  return placement.writesHere(EPHEMERAL_STREAMS[name]);
}

/**
 * The device_lists writer: local where this process writes the stream, a proxy elsewhere. With
 * several writers each owns the users that hash to it, so one user's keys are always written by
 * one process, in order (every method names the user first).
 */
export function deviceListsPlacement(placement: WriterPlacement): DeviceListsPlacement {
  return async (buildLocal) => {
    const local = placement.writesHere('device_lists') ? await buildLocal() : undefined;
    const route = writerRouter<DeviceListsWriterApi>(placement, 'device_lists', 'device_lists', DEVICE_LISTS_WRITER_METHODS, local);
    if (placement.writersOf('device_lists').length === 1) return route();
    return {
      uploadKeys: (userId, ...rest) => route(userId).uploadKeys(userId, ...rest),
      uploadSigningKeys: (userId, ...rest) => route(userId).uploadSigningKeys(userId, ...rest),
      uploadSignatures: (userId, ...rest) => route(userId).uploadSignatures(userId, ...rest),
      devicesDeleted: (userId, ...rest) => route(userId).devicesDeleted(userId, ...rest),
    };
  };
}
