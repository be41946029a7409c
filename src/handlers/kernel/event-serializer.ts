// Turns stored room events into what clients receive: the client event format with
// `unsigned.redacted_because` for redacted events, `unsigned.transaction_id` for the device that
// sent them, and `unsigned.prev_content` / `replaces_state` for state events.
//
// The part of a client event that is the same for every viewer is cached per event (a message in
// a busy room is serialized once, not once per syncing member); a redaction drops its target from
// the cache, learnt from the replication bus so every process forgets it. Per response, only
// `unsigned.age` and the viewer's own fields are added.

import { toClientEvent, type ClientEvent, type ClientEventFormat } from '../../core/client-events.js';
import { applyEventFields } from '../../core/filters.js';
import type { JsonObject } from '../../core/json.js';
import type { ReplicationBus } from '../../streams/bus.js';
import type { EventsStore } from '../../storage/events-store.js';
import { LruCache } from '../../util/lru.js';
import type { EventCache, StoredEvent } from './event-cache.js';
import type { RoomStateReader } from './room-state.js';

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
  /** event id → (format and room-id variant → the viewer-independent client event). */
  private readonly shared = new LruCache<string, Map<string, Promise<ClientEvent>>>(50_000);

  constructor(
    private readonly events: EventsStore,
    private readonly roomState: Pick<RoomStateReader, 'replacedAt'>,
    private readonly eventCache: EventCache,
    private readonly now: () => number,
    bus: ReplicationBus,
  ) {
    bus.subscribe((update) => {
      if (update.stream !== 'events') return;
      for (const row of update.rows) if (row.stream === 'events' && row.redacts !== undefined) this.shared.delete(row.redacts);
    });
  }

  async serialize(viewer: Viewer, batch: readonly StoredEvent[], options: SerializeOptions): Promise<ClientEvent[]> {
    if (batch.length === 0) return [];
    const format = options.format ?? 'client';
    const variant = `${format}/${options.includeRoomId}`;
    const pending = new Map<string, Promise<ClientEvent>>();
    const missing: StoredEvent[] = [];
    for (const stored of batch) {
      const base = this.shared.get(stored.event.eventId)?.get(variant);
      if (base) pending.set(stored.event.eventId, base);
      else missing.push(stored);
    }
    if (missing.length) {
      // Cached as promises, so the syncs of a busy room's members woken together share one build.
      const built = this.buildShared(missing, format, options.includeRoomId);
      for (const stored of missing) {
        const eventId = stored.event.eventId;
        const base = built.then((map) => map.get(eventId)!);
        pending.set(eventId, base);
        let variants = this.shared.get(eventId);
        if (!variants) this.shared.set(eventId, (variants = new Map<string, Promise<ClientEvent>>()));
        variants.set(variant, base);
        base.catch(() => this.shared.delete(eventId));
      }
    }
    const transactions = await this.transactionIdsFor(viewer, batch);
    const now = this.now();
    const out: ClientEvent[] = [];
    for (const stored of batch) {
      const base = await pending.get(stored.event.eventId)!;
      const unsigned: JsonObject = { ...base.unsigned, age: now - stored.event.originServerTs };
      const txnId = transactions.get(stored.event.eventId);
      if (txnId !== undefined) unsigned.transaction_id = txnId;
      const membership = options.membershipOf?.(stored);
      if (membership !== undefined) unsigned.membership = membership;
      const clientEvent: ClientEvent = { ...base, unsigned };
      out.push(options.eventFields?.length ? (applyEventFields(clientEvent, options.eventFields) as ClientEvent) : clientEvent);
    }
    return out;
  }

  /** The viewer-independent client events of `batch`, with redactions and previous state. */
  private async buildShared(
    batch: readonly StoredEvent[],
    format: ClientEventFormat,
    includeRoomId: boolean,
  ): Promise<Map<string, ClientEvent>> {
    const redactions = await this.events.redactionsOf(batch.map((s) => s.event.eventId));
    const redactionEvents = await this.eventCache.getMany(redactions.values());
    const previous = await this.previousStateOf(batch);
    const built = new Map<string, ClientEvent>();
    for (const stored of batch) {
      const { event } = stored;
      const redactionId = redactions.get(event.eventId);
      const redactedBecause = redactionId ? redactionEvents.get(redactionId)?.event : undefined;
      const prev = previous.get(event.eventId);
      built.set(
        event.eventId,
        toClientEvent(event, {
          roomVersion: stored.roomVersion,
          format,
          includeRoomId,
          now: event.originServerTs,
          ...(redactedBecause ? { redactedBecause } : {}),
          ...(prev ? { prevContent: prev.event.content, prevSender: prev.event.sender, replacesState: prev.event.eventId } : {}),
        }),
      );
    }
    return built;
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
      const rows = await this.roomState.replacedAt(
        roomId,
        states.map((s) => s.streamOrdering),
      );
      const replaced = await this.eventCache.getStateEvents(rows.map((r) => r.event_id));
      for (const row of rows) {
        // Each position holds one event, so the row replaced by the event at `to_stream` is its predecessor.
        const replacer = states.find((s) => s.streamOrdering === Number(row.to_stream));
        const old = replaced.get(row.event_id);
        if (replacer && old) previous.set(replacer.event.eventId, old);
      }
    }
    return previous;
  }

  /** Transaction ids of the events the viewer's own device sent. */
  private async transactionIdsFor(viewer: Viewer, batch: readonly StoredEvent[]): Promise<Map<string, string>> {
    const own = batch.filter((stored) => stored.event.sender === viewer.userId).map((stored) => stored.event.eventId);
    const found = new Map<string, string>();
    if (own.length === 0) return found;
    for (const row of await this.events.txnsOfEvents(own)) {
      if (row.user_id === viewer.userId && row.device_id === viewer.deviceId) found.set(row.event_id, row.txn_id);
    }
    return found;
  }
}
