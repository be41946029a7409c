// The writers a process uses, given where each stream is written: its own for the streams (and
// rooms) it writes, proxies over replication HTTP for the rest.

import { parsePdu } from '../core/event-format.js';
import { getRoomVersion } from '../core/room-versions.js';
import { Errors } from '../errors.js';
import type { EphemeralPlacement, EphemeralWriters } from '../handlers/ephemeral/index.js';
import { EPHEMERAL_WRITER_METHODS } from '../handlers/ephemeral/index.js';
import type { CreateRoomPlan, EventDraft, EventsWriterApi, PersistedEvent, SendOptions } from '../handlers/events-writer.js';
import type { ReceiptsWriterApi } from '../handlers/ephemeral/receipts.js';
import type { StreamName } from '../streams/streams.js';
import { writerRouter, type WriterPlacement } from './placement.js';

export const EVENTS_WRITER_METHODS = ['sendEvent', 'createRoom'] as const satisfies readonly (keyof EventsWriterApi)[];

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
