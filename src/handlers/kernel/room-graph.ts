// A room's event graph as the rest of the server reads it: events of any status (timeline,
// outlier, rejected, soft-failed), the state after and before any event, state resolution over
// stored states, and what federation serves from the graph (spec: server-server API §Retrieving
// events, §Backfilling and retrieving missing events, §Retrieving event authorisation
// information). Usable in every process: nothing here writes.

import { storedRoomEvent } from '../../core/event-format.js';
import {
  authEventIdsWithCreate,
  createEventIdForRoom,
  stateKey as makeStateKey,
  type RoomEvent,
  type StateKey,
} from '../../core/events.js';
import type { JsonObject } from '../../core/json.js';
import type { RoomVersion } from '../../core/room-versions.js';
import { resolveState, separateStateSets } from '../../core/state-res.js';
import type { EventGraphStore, GraphRow } from '../../storage/event-graph-store.js';
import { LruCache } from '../../util/lru.js';
import { StateGroups, type StateIds } from './state-groups.js';

export interface GraphEvent {
  readonly event: RoomEvent;
  readonly row: GraphRow;
}

/** The most events one state resolution loads (state sets and their auth chains). */
const MAX_RESOLUTION_EVENTS = 500_000;
/** get_missing_events and backfill serve at most this many events per request. */
export const MAX_GRAPH_WALK = 100;

export class RoomGraph {
  /** Parsed PDUs by event id (events never change; their status may, so rows are read afresh). */
  private readonly parsed = new LruCache<string, RoomEvent>(20_000);

  constructor(
    readonly store: EventGraphStore,
    readonly stateGroups: StateGroups,
  ) {}

  /**
   * Graph rows with their parsed events, for the ids we know of in `roomId`; the ids the database
   * holds for events of other rooms are added to `elsewhere` when given.
   */
  async events(
    roomId: string,
    version: RoomVersion,
    eventIds: readonly string[],
    elsewhere?: Set<string>,
  ): Promise<Map<string, GraphEvent>> {
    const found = new Map<string, GraphEvent>();
    if (eventIds.length === 0) return found;
    const rows = await this.store.get(eventIds);
    for (const [eventId, row] of rows) {
      if (row.room_id !== roomId) {
        elsewhere?.add(eventId);
        continue;
      }
      const event = this.parse(row, version);
      if (event) found.set(eventId, { event, row });
    }
    return found;
  }

  private parse(row: GraphRow, version: RoomVersion): RoomEvent | undefined {
    const cached = this.parsed.get(row.event_id);
    if (cached) return cached;
    try {
      const event = storedRoomEvent(JSON.parse(row.json) as JsonObject, version, row.event_id);
      this.parsed.set(row.event_id, event);
      return event;
    } catch {
      return undefined; // stored by us after checking it; unreadable only if the database is damaged
    }
  }

  /** Remembers an event this process is writing (so resolution does not read it back). */
  remember(event: RoomEvent): void {
    this.parsed.set(event.eventId, event);
  }

  /** The state after an event of the graph (undefined for an outlier, whose state we lack). */
  stateAfter(row: GraphRow): Promise<StateIds | undefined> {
    return this.stateGroups.stateAfterEvent(row);
  }

  /**
   * Resolves state sets with the room version's algorithm (spec: §Room State Resolution), loading
   * every event of the sets and of their auth chains first (core's resolution is synchronous).
   * Events we do not have take no part, as core does with any unknown id.
   */
  async resolve(
    roomId: string,
    version: RoomVersion,
    stateSets: readonly StateIds[],
    pending?: (eventId: string) => { event: RoomEvent; rejected: boolean } | undefined,
  ): Promise<Map<StateKey, string>> {
    if (stateSets.length === 0) return new Map();
    if (stateSets.length === 1) return new Map(stateSets[0]);
    const { conflicted, unconflicted } = separateStateSets(stateSets);
    if (conflicted.size === 0) return unconflicted;
    const loaded = new Map<string, { event: RoomEvent; rejected: boolean }>();
    const requested = new Set<string>();
    let frontier: string[] = [];
    const want = (id: string) => {
      if (requested.has(id)) return;
      requested.add(id);
      const staged = pending?.(id);
      if (!staged) {
        frontier.push(id);
        return;
      }
      loaded.set(id, staged);
      for (const authId of authEventIdsWithCreate(staged.event, version.roomIdFromCreateEvent)) want(authId);
    };
    for (const set of stateSets) for (const id of set.values()) want(id);
    while (frontier.length > 0 && requested.size <= MAX_RESOLUTION_EVENTS) {
      const batch = await this.events(roomId, version, frontier);
      frontier = [];
      for (const [id, graphEvent] of batch) {
        loaded.set(id, { event: graphEvent.event, rejected: graphEvent.row.status === 'rejected' });
        for (const authId of authEventIdsWithCreate(graphEvent.event, version.roomIdFromCreateEvent)) want(authId);
      }
    }
    return resolveState(
      version,
      stateSets,
      { get: (id) => loaded.get(id)?.event },
      { isRejected: (id) => loaded.get(id)?.rejected ?? false },
    );
  }

  // ---- what federation serves from the graph ----

  /** The forward extremities of a room (a new event's `prev_events`, e.g. make_join's template). */
  forwardExtremities(roomId: string): Promise<string[]> {
    return this.store.forwardExtremities(roomId);
  }

  /** The state after an event, as ids (make_join / send_join). Undefined for an unknown event or an outlier. */
  async stateIdsAfter(roomId: string, eventId: string): Promise<StateIds | undefined> {
    const row = (await this.store.get([eventId])).get(eventId);
    if (!row || row.room_id !== roomId) return undefined;
    return this.stateAfter(row);
  }

  /**
   * The state before an event, as ids (`/state_ids`, `/state`, send_join's `state`): for a message
   * or a rejected event the state stored with it; for a state event, the state after its prev
   * events (resolved if several). Undefined for an unknown event, an outlier, or a gap before it.
   */
  async stateIdsBefore(roomId: string, version: RoomVersion, eventId: string): Promise<StateIds | undefined> {
    const known = (await this.events(roomId, version, [eventId])).get(eventId);
    if (!known || known.row.status === 'outlier') return undefined;
    if (known.event.stateKey === undefined || known.row.status === 'rejected') return this.stateAfter(known.row);
    const prevs = await this.events(roomId, version, known.event.prevEventIds);
    const states: StateIds[] = [];
    for (const prevId of new Set(known.event.prevEventIds)) {
      const prev = prevs.get(prevId);
      const state = prev ? await this.stateAfter(prev.row) : undefined;
      if (!state) {
        // The state at a gap of our graph: ours after the event, without the event itself.
        const after = await this.stateAfter(known.row);
        if (!after) return undefined;
        const before = new Map(after);
        before.delete(makeStateKey(known.event.type, known.event.stateKey));
        return before;
      }
      states.push(state);
    }
    return this.resolve(roomId, version, states);
  }

  /**
   * The auth chain of some events (`/event_auth`, `/state_ids`' `auth_chain_ids`, send_join): their
   * auth events, recursively, without the events themselves unless one is in another's chain.
   * Only events of `roomId` are followed (a rejected event may cite others).
   */
  async authChainIds(roomId: string, version: RoomVersion, eventIds: Iterable<string>): Promise<Set<string>> {
    const chain = new Set<string>();
    const start = [...new Set(eventIds)];
    const visited = new Set<string>(start);
    // Room v12: the create event is an implicit auth event of every other event (MSC4291).
    const createId = createEventIdForRoom(roomId);
    if (version.roomIdFromCreateEvent && start.some((id) => id !== createId)) chain.add(createId);
    // The first step from the events' own JSON (messages have no auth edge rows), then edges.
    const first = await this.events(roomId, version, start);
    let edges: Array<{ event_id: string; auth_event_id: string }> = [];
    for (const { event } of first.values())
      for (const authId of event.authEventIds) edges.push({ event_id: event.eventId, auth_event_id: authId });
    let frontier: string[] = [];
    for (;;) {
      const next: string[] = [];
      for (const edge of edges) {
        if (visited.has(edge.auth_event_id)) {
          // One of the given events, cited by another: part of the chain too.
          if (first.has(edge.auth_event_id)) chain.add(edge.auth_event_id);
          continue;
        }
        visited.add(edge.auth_event_id);
        next.push(edge.auth_event_id);
      }
      const rows = await this.store.get(next);
      frontier = [];
      for (const id of next) {
        const row = rows.get(id);
        if (!row || row.room_id !== roomId) continue;
        chain.add(id);
        frontier.push(id);
      }
      if (frontier.length === 0) return chain;
      edges = await this.store.authEdges(frontier);
    }
  }

  /**
   * get_missing_events (spec: a breadth-first walk of `prev_events` from `latest`, skipping and not
   * walking past `earliest`, up to `limit`): the events found, oldest first. Rejected events are
   * not served, nor walked through; events below `minDepth` end the walk there.
   */
  async missingEvents(
    roomId: string,
    version: RoomVersion,
    options: { earliest: readonly string[]; latest: readonly string[]; limit: number; minDepth?: number },
  ): Promise<RoomEvent[]> {
    const limit = Math.max(0, Math.min(options.limit, MAX_GRAPH_WALK));
    const stop = new Set(options.earliest);
    const seen = new Set<string>([...options.latest, ...options.earliest]);
    const found: GraphEvent[] = [];
    let frontier = [...new Set(options.latest)];
    while (frontier.length > 0 && found.length < limit) {
      const parents: string[] = [];
      for (const edge of await this.store.prevEdges(frontier)) {
        if (seen.has(edge.prev_event_id)) continue;
        seen.add(edge.prev_event_id);
        parents.push(edge.prev_event_id);
      }
      const known = await this.events(roomId, version, parents);
      frontier = [];
      for (const id of parents) {
        const graphEvent = known.get(id);
        if (!graphEvent || graphEvent.row.status === 'rejected' || stop.has(id)) continue;
        if (options.minDepth !== undefined && graphEvent.event.depth < options.minDepth) continue;
        if (found.length >= limit) break;
        found.push(graphEvent);
        frontier.push(id);
      }
    }
    return found.sort((a, b) => a.event.depth - b.event.depth).map((g) => g.event);
  }

  /**
   * Backfill (spec: the given events and those before them, up to `limit`): a breadth-first walk
   * of `prev_events` from `from`, newest first (as Synapse serves it). Rejected events are left out.
   */
  async backfill(roomId: string, version: RoomVersion, from: readonly string[], limit: number): Promise<RoomEvent[]> {
    const max = Math.max(0, Math.min(limit, MAX_GRAPH_WALK));
    const seen = new Set<string>();
    const found: GraphEvent[] = [];
    let frontier = [...new Set(from)];
    for (const id of frontier) seen.add(id);
    let first = true;
    while (frontier.length > 0 && found.length < max) {
      let candidates = frontier;
      if (!first) {
        candidates = [];
        for (const edge of await this.store.prevEdges(frontier)) {
          if (seen.has(edge.prev_event_id)) continue;
          seen.add(edge.prev_event_id);
          candidates.push(edge.prev_event_id);
        }
      }
      first = false;
      const known = await this.events(roomId, version, candidates);
      frontier = [];
      for (const id of candidates) {
        const graphEvent = known.get(id);
        if (!graphEvent || graphEvent.row.status === 'rejected') continue;
        if (found.length >= max) break;
        found.push(graphEvent);
        if (graphEvent.row.status !== 'outlier') frontier.push(id);
      }
    }
    return found
      .sort((a, b) => b.event.depth - a.event.depth || (b.row.stream_ordering ?? 0) - (a.row.stream_ordering ?? 0))
      .map((g) => g.event);
  }

  /** One event of the room with its status (`/event`); undefined if unknown. */
  async event(roomId: string, version: RoomVersion, eventId: string): Promise<GraphEvent | undefined> {
    return (await this.events(roomId, version, [eventId])).get(eventId);
  }
}

/** `a` as a map of ids (current state held as events). */
export function stateIdsOf(state: ReadonlyMap<StateKey, { readonly eventId: string }>): Map<StateKey, string> {
  const ids = new Map<StateKey, string>();
  for (const [key, event] of state) ids.set(key, event.eventId);
  return ids;
}

/** The keys whose event differs between two states (`null`: removed in `to`). */
export function stateDiff(from: StateIds, to: StateIds): Map<StateKey, string | null> {
  const changes = new Map<StateKey, string | null>();
  for (const [key, eventId] of to) if (from.get(key) !== eventId) changes.set(key, eventId);
  for (const key of from.keys()) if (!to.has(key)) changes.set(key, null);
  return changes;
}

export { StateGroups };
