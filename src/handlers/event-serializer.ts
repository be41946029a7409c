// Turns stored room events into what clients receive: the client event format with
// `unsigned.redacted_because` for redacted events, `unsigned.transaction_id` for the device that
// sent them, and `unsigned.prev_content` / `replaces_state` for state events. Everything a batch
// needs is fetched in a few queries.

import { toClientEvent, type ClientEvent, type ClientEventFormat } from '../core/client-events.js';
import { applyEventFields } from '../core/filters.js';
import type { EventsStore } from '../storage/events-store.js';
import type { RoomStateStore } from '../storage/room-state-store.js';
import type { EventCache, StoredEvent } from './event-cache.js';

export interface SerializeOptions {
  /** /sync omits `room_id` (the room is the key of its section). */
  includeRoomId: boolean;
  format?: ClientEventFormat;
  /** The filter's `event_fields`. */
  eventFields?: readonly string[];
  /** The user's membership at each event, for `unsigned.membership` (MSC4115). */
  membershipOf?: (event: StoredEvent) => string | undefined;
}

export interface Viewer {
  userId: string;
  deviceId: string;
}

export class EventSerializer {
  constructor(
    private readonly events: EventsStore,
    private readonly roomState: RoomStateStore,
    private readonly eventCache: EventCache,
    private readonly now: () => number,
  ) {}

  async serialize(viewer: Viewer, batch: readonly StoredEvent[], options: SerializeOptions): Promise<ClientEvent[]> {
    if (batch.length === 0) return [];
    const ids = batch.map((s) => s.event.eventId);
    const redactions = await this.events.redactionsOf(ids);
    const redactionEvents = await this.eventCache.getMany(redactions.values());
    const previous = await this.previousStateOf(batch);
    const transactions = await this.transactionIdsFor(viewer, batch);
    const now = this.now();
    return batch.map((stored) => {
      const { event } = stored;
      const redactionId = redactions.get(event.eventId);
      const prev = previous.get(event.eventId);
      const membership = options.membershipOf?.(stored);
      const clientEvent = toClientEvent(event, {
        roomVersion: stored.roomVersion,
        format: options.format ?? 'client',
        includeRoomId: options.includeRoomId,
        now,
        ...(redactionId && redactionEvents.get(redactionId) ? { redactedBecause: redactionEvents.get(redactionId)!.event } : {}),
        ...(transactions.has(event.eventId) ? { transactionId: transactions.get(event.eventId)! } : {}),
        ...(prev ? { prevContent: prev.event.content, prevSender: prev.event.sender, replacesState: prev.event.eventId } : {}),
        ...(membership !== undefined ? { membership } : {}),
      });
      return options.eventFields?.length ? (applyEventFields(clientEvent, options.eventFields) as ClientEvent) : clientEvent;
    });
  }

  /** For each state event of the batch, the state event it replaced. */
  private async previousStateOf(batch: readonly StoredEvent[]): Promise<Map<string, StoredEvent>> {
    const byRoom = new Map<string, StoredEvent[]>();
    for (const stored of batch) {
      if (stored.event.stateKey === undefined) continue;
      const list = byRoom.get(stored.event.roomId) ?? [];
      list.push(stored);
      byRoom.set(stored.event.roomId, list);
    }
    const previous = new Map<string, StoredEvent>();
    for (const [roomId, states] of byRoom) {
      const rows = await this.roomState.replacedAt(roomId, states.map((s) => s.streamOrdering));
      const replaced = await this.eventCache.getMany(rows.map((r) => r.event_id));
      for (const row of rows) {
        const replacer = states.find((s) => s.streamOrdering === Number(row.to_stream));
        const old = replaced.get(row.event_id);
        if (replacer && old && old.event.type === replacer.event.type && old.event.stateKey === replacer.event.stateKey) {
          previous.set(replacer.event.eventId, old);
        }
      }
    }
    return previous;
  }

  /** Transaction ids of the events the viewer's own device sent. */
  private async transactionIdsFor(viewer: Viewer, batch: readonly StoredEvent[]): Promise<Map<string, string>> {
    const found = new Map<string, string>();
    for (const stored of batch) {
      if (stored.event.sender !== viewer.userId) continue;
      const txn = await this.events.txnOfEvent(stored.event.eventId);
      if (txn && txn.device_id === viewer.deviceId) found.set(stored.event.eventId, txn.txn_id);
    }
    return found;
  }
}
