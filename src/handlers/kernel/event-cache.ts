// Loads events by id (and rooms' versions), parsing each stored PDU once. Every read path (sync,
// pagination, state) goes through here; the events writer puts what it persists straight in.

import { storedRoomEvent } from '../../core/event-format.js';
import type { RoomEvent } from '../../core/events.js';
import type { JsonObject } from '../../core/json.js';
import { getRoomVersion, type RoomVersion } from '../../core/room-versions.js';
import type { EventGraphStore } from '../../storage/event-graph-store.js';
import type { EventRow, EventsStore } from '../../storage/events-store.js';
import { LruCache } from '../../util/lru.js';

export interface StoredEvent {
  readonly event: RoomEvent;
  /** Position in the events stream. */
  readonly streamOrdering: number;
  readonly roomVersion: RoomVersion;
  /**
   * Set for a state event that is not in the timeline (an outlier or a soft-failed event that
   * state resolution put in the room's state); its `streamOrdering` is 0. Only state reads load
   * such events (`getStateEvents`).
   */
  readonly outsideTimeline?: true;
}

export class EventCache {
  private readonly events = new LruCache<string, StoredEvent>(100_000);
  /** State events outside the timeline, kept apart so `get` never answers them. */
  private readonly stateOnly = new LruCache<string, StoredEvent>(10_000);
  private readonly versions = new Map<string, RoomVersion>();

  constructor(
    private readonly store: EventsStore,
    private readonly graph?: EventGraphStore,
  ) {}

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

  /**
   * The events of room state (`room_state` rows): timeline events, and events that state
   * resolution took into the state without their being in the timeline (spec: server-server API
   * §Soft failure, "the client should be told about the soft failed event in the usual way").
   * Rejected events are never state.
   */
  async getStateEvents(eventIds: Iterable<string>): Promise<Map<string, StoredEvent>> {
    const ids = [...eventIds];
    const found = await this.getMany(ids);
    if (!this.graph || found.size === ids.length) return found;
    const missing: string[] = [];
    for (const id of ids) {
      if (found.has(id)) continue;
      const cached = this.stateOnly.get(id);
      if (cached) found.set(id, cached);
      else missing.push(id);
    }
    if (missing.length === 0) return found;
    for (const [id, row] of await this.graph.get(missing)) {
      if (row.status === 'rejected' || row.stream_ordering !== null) continue;
      const version = await this.roomVersion(row.room_id);
      if (!version) continue;
      const stored: StoredEvent = {
        event: storedRoomEvent(JSON.parse(row.json) as JsonObject, version, id),
        streamOrdering: 0,
        roomVersion: version,
        outsideTimeline: true,
      };
      this.stateOnly.set(id, stored);
      found.set(id, stored);
    }
    return found;
  }

  /** One state event (see `getStateEvents`). */
  async getStateEvent(eventId: string): Promise<StoredEvent | undefined> {
    return (await this.getStateEvents([eventId])).get(eventId);
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
