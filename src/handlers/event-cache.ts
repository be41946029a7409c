// Loads events by id (and rooms' versions), parsing each stored PDU once. Every read path (sync,
// pagination, state) goes through here; the events writer puts what it persists straight in.

import { storedRoomEvent } from '../core/event-format.js';
import type { RoomEvent } from '../core/events.js';
import type { JsonObject } from '../core/json.js';
import { getRoomVersion, type RoomVersion } from '../core/room-versions.js';
import type { EventRow, EventsStore } from '../storage/events-store.js';
import { LruCache } from '../util/lru.js';

export interface StoredEvent {
  readonly event: RoomEvent;
  /** Position in the events stream. */
  readonly streamOrdering: number;
  readonly roomVersion: RoomVersion;
}

export class EventCache {
  private readonly events = new LruCache<string, StoredEvent>(100_000);
  private readonly versions = new Map<string, RoomVersion>();

  constructor(private readonly store: EventsStore) {}

  /** The room's version, or undefined for a room this server does not know. */
  async roomVersion(roomId: string): Promise<RoomVersion | undefined> {
    const known = this.versions.get(roomId);
    if (known) return known;
    const room = await this.store.getRoom(roomId);
    const version = room ? getRoomVersion(room.room_version) : undefined;
    if (version) this.versions.set(roomId, version);
    return version;
  }

  rememberRoomVersion(roomId: string, version: RoomVersion): void {
    this.versions.set(roomId, version);
  }

  add(stored: StoredEvent): void {
    this.events.set(stored.event.eventId, stored);
  }

  async get(eventId: string): Promise<StoredEvent | undefined> {
    const cached = this.events.get(eventId);
    if (cached) return cached;
    const row = await this.store.getEvent(eventId);
    return row ? this.fromRow(row) : undefined;
  }

  /** The events found among `eventIds` (missing ones are absent from the map). */
  async getMany(eventIds: Iterable<string>): Promise<Map<string, StoredEvent>> {
    const found = new Map<string, StoredEvent>();
    const missing: string[] = [];
    for (const id of eventIds) {
      const cached = this.events.get(id);
      if (cached) found.set(id, cached);
      else missing.push(id);
    }
    if (missing.length) {
      for (const row of await this.store.getEvents(missing)) {
        const stored = await this.fromRow(row);
        if (stored) found.set(stored.event.eventId, stored);
      }
    }
    return found;
  }

  /** Parses (or finds in the cache) the event of a row read by a store query. */
  async fromRow(row: EventRow): Promise<StoredEvent | undefined> {
    const cached = this.events.get(row.event_id);
    if (cached) return cached;
    const version = await this.roomVersion(row.room_id);
    if (!version) return undefined;
    const stored: StoredEvent = {
      event: storedRoomEvent(JSON.parse(row.json) as JsonObject, version, row.event_id),
      streamOrdering: Number(row.stream_ordering),
      roomVersion: version,
    };
    this.events.set(row.event_id, stored);
    return stored;
  }

  async fromRows(rows: readonly EventRow[]): Promise<StoredEvent[]> {
    const out: StoredEvent[] = [];
    for (const row of rows) {
      const stored = await this.fromRow(row);
      if (stored) out.push(stored);
    }
    return out;
  }
}
