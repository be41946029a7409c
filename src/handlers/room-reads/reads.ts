// Reading rooms: state, members, single events, context, /messages, timestamp lookup and the
// rooms a user is in. Every path that returns room events goes through history visibility with
// the reader's standing in the room (./access.ts); events reach clients through the shared
// serializer (redactions, transaction ids, prev_content).

import type { ClientEvent } from '../../core/client-events.js';
import { stateKey as makeStateKey } from '../../core/events.js';
import { eventMatchesFilter, type RoomEventFilter } from '../../core/filters.js';
import type { VisibleEvent } from '../../core/visibility.js';
import { Errors } from '../../errors.js';
import type { CoreParts } from '../kernel/core.js';
import type { StoredEvent } from '../kernel/event-cache.js';
import type { Viewer } from '../kernel/event-serializer.js';
import type { RoomState } from '../kernel/room-state.js';
import type { BackfillApi } from '../federation/backfill.js';
import type { ReadScope, RoomAccess } from './access.js';
import type { Direction, Timeline, Walk } from './timeline.js';
import { positionOfToken, tokenOfPosition } from './tokens.js';

/** The user reading, and their device (which alone is shown its own transaction ids). */
export type Reader = Viewer;

/** Backfills one /messages request may wait for (each asks for 100 events). */
const MAX_BACKFILLS_PER_PAGE = 3;

export const MEMBERSHIPS = ['join', 'invite', 'knock', 'leave', 'ban'] as const;
export type Membership = (typeof MEMBERSHIPS)[number];

export interface MembersQuery {
  /** A pagination or sync token: the members as of that point. */
  readonly at?: string | undefined;
  readonly membership?: Membership | undefined;
  readonly notMembership?: Membership | undefined;
}

export interface MessagesQuery {
  readonly dir: Direction;
  readonly from?: string | undefined;
  readonly to?: string | undefined;
  readonly limit: number;
  readonly filter?: RoomEventFilter | undefined;
}

export interface MessagesResponse {
  chunk: ClientEvent[];
  start: string;
  end?: string;
  state?: ClientEvent[];
}

export interface ContextQuery {
  readonly limit: number;
  readonly filter?: RoomEventFilter | undefined;
}

export interface ContextResponse {
  start: string;
  end: string;
  events_before: ClientEvent[];
  event: ClientEvent;
  events_after: ClientEvent[];
  state: ClientEvent[];
}

export interface JoinedMember {
  display_name?: string;
  avatar_url?: string;
}

export interface RoomReadsApi {
  /** GET /rooms/{roomId}/state */
  state(reader: Reader, roomId: string): Promise<ClientEvent[]>;
  /** GET /rooms/{roomId}/state/{type}/{stateKey}: the whole client event; 404 if there is none. */
  stateEvent(reader: Reader, roomId: string, type: string, stateKey: string): Promise<ClientEvent>;
  /** GET /rooms/{roomId}/members */
  members(reader: Reader, roomId: string, query: MembersQuery): Promise<{ chunk: ClientEvent[] }>;
  /** GET /rooms/{roomId}/joined_members */
  joinedMembers(reader: Reader, roomId: string): Promise<{ joined: Record<string, JoinedMember> }>;
  /** GET /joined_rooms */
  joinedRooms(reader: Reader): Promise<{ joined_rooms: string[] }>;
  /** GET /rooms/{roomId}/event/{eventId}: 404 when unknown or not visible. */
  event(reader: Reader, roomId: string, eventId: string): Promise<ClientEvent>;
  /** GET /rooms/{roomId}/context/{eventId} */
  context(reader: Reader, roomId: string, eventId: string, query: ContextQuery): Promise<ContextResponse>;
  /** GET /rooms/{roomId}/messages */
  messages(reader: Reader, roomId: string, query: MessagesQuery): Promise<MessagesResponse>;
  /** GET /rooms/{roomId}/timestamp_to_event */
  timestampToEvent(reader: Reader, roomId: string, ts: number, dir: Direction): Promise<{ event_id: string; origin_server_ts: number }>;
}

export class RoomReads implements RoomReadsApi {
  constructor(
    private readonly core: CoreParts<'roomState' | 'eventCache' | 'notifier' | 'serializer', 'events'>,
    private readonly access: RoomAccess,
    private readonly timeline: Timeline,
    /** Fetches history from other servers when /messages runs out of it (rooms joined over federation). */
    private readonly backfiller?: BackfillApi,
  ) {}

  async state(reader: Reader, roomId: string): Promise<ClientEvent[]> {
    const state = await this.readableState(reader.userId, roomId);
    return this.serializeState(reader, [...state.values()]);
  }

  async stateEvent(reader: Reader, roomId: string, type: string, stateKey: string): Promise<ClientEvent> {
    const state = await this.readableState(reader.userId, roomId);
    const stored = state.get(makeStateKey(type, stateKey));
    if (stored === undefined) throw Errors.notFound('Event not found.');
    const [event] = await this.serializeState(reader, [stored]);
    return event!;
  }

  async members(reader: Reader, roomId: string, query: MembersQuery): Promise<{ chunk: ClientEvent[] }> {
    const state =
      query.at === undefined ? await this.readableState(reader.userId, roomId) : await this.stateAtToken(reader.userId, roomId, query.at);
    const members: StoredEvent[] = [];
    for (const stored of state.values()) {
      if (stored.event.type !== 'm.room.member') continue;
      const membership = stored.event.content.membership;
      // The spec joins the two filters with "or": either the membership is `membership`, or it is
      // not `not_membership`. (Synapse requires both.)
      const unfiltered = query.membership === undefined && query.notMembership === undefined;
      const wanted = query.membership !== undefined && membership === query.membership;
      const notExcluded = query.notMembership !== undefined && membership !== query.notMembership;
      if (unfiltered || wanted || notExcluded) members.push(stored);
    }
    return { chunk: await this.serializeState(reader, members) };
  }

  async joinedMembers(reader: Reader, roomId: string): Promise<{ joined: Record<string, JoinedMember> }> {
    await this.access.requireReader(roomId, reader.userId, { allowDeparted: false });
    const joined: Record<string, JoinedMember> = {};
    for (const { event } of (await this.core.roomState.currentState(roomId)).values()) {
      if (event.type !== 'm.room.member' || event.stateKey === undefined || event.content.membership !== 'join') continue;
      const member: JoinedMember = {};
      if (typeof event.content.displayname === 'string') member.display_name = event.content.displayname;
      if (typeof event.content.avatar_url === 'string') member.avatar_url = event.content.avatar_url;
      joined[event.stateKey] = member;
    }
    return { joined };
  }

  async joinedRooms(reader: Reader): Promise<{ joined_rooms: string[] }> {
    return { joined_rooms: await this.core.roomState.roomsOf(reader.userId, ['join']) };
  }

  async event(reader: Reader, roomId: string, eventId: string): Promise<ClientEvent> {
    const stored = await this.core.eventCache.get(eventId);
    if (stored === undefined || stored.event.roomId !== roomId) throw Errors.notFound('Event not found.');
    const scope = await this.access.scopeOf(roomId, reader.userId);
    // Not being allowed to see an event looks the same as its absence (rooms.yaml).
    const shown = await this.access.visibleEvents(roomId, reader.userId, scope, [stored]);
    if (shown.length === 0) throw Errors.notFound('Event not found.');
    const [event] = await this.serializeTimeline(reader, shown);
    return event!;
  }

  async context(reader: Reader, roomId: string, eventId: string, query: ContextQuery): Promise<ContextResponse> {
    const stored = await this.core.eventCache.get(eventId);
    if (stored === undefined || stored.event.roomId !== roomId) throw Errors.notFound('Event not found.');
    const scope = await this.access.scopeOf(roomId, reader.userId);
    const [shown] = await this.access.visibleEvents(roomId, reader.userId, scope, [stored]);
    if (shown === undefined) throw Errors.forbidden("You don't have permission to access that event.");

    // Half before (rounded down), the rest after, as Synapse's get_event_context.
    const beforeLimit = Math.floor(query.limit / 2);
    const position = stored.streamOrdering;
    const walk = { filter: query.filter };
    const [before, after] = await Promise.all([
      this.timeline.walk(roomId, reader.userId, scope, { ...walk, dir: 'b', from: position - 1, limit: beforeLimit }),
      this.timeline.walk(roomId, reader.userId, scope, { ...walk, dir: 'f', from: position, limit: query.limit - beforeLimit }),
    ]);

    const last = after.events.at(-1)?.event ?? stored;
    let state = [...(await this.core.roomState.stateAt(roomId, last.streamOrdering)).values()];
    if (query.filter?.lazyLoadMembers) {
      const senders = new Set([...before.events, shown, ...after.events].map((e) => e.event.event.sender));
      state = state.filter(({ event }) => event.type !== 'm.room.member' || senders.has(event.stateKey ?? ''));
    }
    if (query.filter !== undefined) state = state.filter(({ event }) => eventMatchesFilter(query.filter!, event));

    const [eventsBefore, [event], eventsAfter, stateEvents] = await Promise.all([
      this.serializeTimeline(reader, before.events),
      this.serializeTimeline(reader, [shown]),
      this.serializeTimeline(reader, after.events),
      this.serializeState(reader, state),
    ]);
    return {
      start: tokenOfPosition(before.cursor),
      end: tokenOfPosition(after.cursor),
      events_before: eventsBefore,
      event: event!,
      events_after: eventsAfter,
      state: stateEvents,
    };
  }

  async messages(reader: Reader, roomId: string, query: MessagesQuery): Promise<MessagesResponse> {
    const scope = await this.access.requireReader(roomId, reader.userId, { allowDeparted: true });
    const from =
      query.from !== undefined ? positionOfToken(query.from) : query.dir === 'b' ? this.core.notifier.currentPositions().events : 0;
    const to = query.to !== undefined ? positionOfToken(query.to) : undefined;
    let walk = await this.timeline.walk(roomId, reader.userId, scope, {
      dir: query.dir,
      from,
      to,
      limit: query.limit,
      filter: query.filter,
    });
    if (query.dir === 'b' && to === undefined && this.backfiller)
      walk = await this.backfillWhileShort(roomId, reader.userId, scope, walk, query);

    const response: MessagesResponse = {
      chunk: await this.serializeTimeline(reader, walk.events),
      start: query.from ?? tokenOfPosition(from),
    };
    if (walk.more) response.end = tokenOfPosition(walk.cursor);
    const first = walk.events[0];
    if (query.filter?.lazyLoadMembers && first !== undefined) {
      // The senders' member events as of the first event returned, as Synapse does.
      const senders = [...new Set(walk.events.map((e) => e.event.event.sender))];
      const members = await Promise.all(
        senders.map((sender) => this.core.roomState.stateEventAt(roomId, 'm.room.member', sender, first.event.streamOrdering)),
      );
      response.state = await this.serializeState(
        reader,
        members.filter((m): m is StoredEvent => m !== undefined),
      );
    }
    return response;
  }

  /**
   * Backwards pagination that reached the oldest event we hold with fewer events than asked for:
   * history is backfilled from another server and the walk goes on into it, a few times at most.
   * When the last backfill stored something, `end` is kept (more may be there: the client asks
   * again); once none brings anything (the room's create event reached, or no server answers),
   * pagination ends.
   */
  private async backfillWhileShort(roomId: string, userId: string, scope: ReadScope, first: Walk, query: MessagesQuery): Promise<Walk> {
    const events = [...first.events];
    let { cursor, more } = first;
    let stored = false;
    for (let round = 0; round < MAX_BACKFILLS_PER_PAGE && !more && events.length < query.limit; round++) {
      stored = (await this.backfiller!.backfill(roomId)) === 'stored';
      if (!stored) break;
      const next = await this.timeline.walk(roomId, userId, scope, {
        dir: 'b',
        from: cursor,
        limit: query.limit - events.length,
        filter: query.filter,
      });
      events.push(...next.events);
      cursor = next.cursor;
      more = next.more;
    }
    // A full page that used up what we hold: the next page backfills, if there is history left to fetch.
    if (!more && !stored && events.length >= query.limit) more = await this.backfiller!.hasHistoryToFetch(roomId);
    return { events, cursor, more: more || stored };
  }

  async timestampToEvent(
    reader: Reader,
    roomId: string,
    ts: number,
    dir: Direction,
  ): Promise<{ event_id: string; origin_server_ts: number }> {
    await this.access.requireReader(roomId, reader.userId, { allowDeparted: false });
    const row = await this.core.stores.events.eventNearTimestamp(roomId, ts, dir);
    if (row === undefined) {
      throw Errors.notFound(`Unable to find event from ${ts} in ${dir === 'f' ? 'forward' : 'backward'} direction`);
    }
    return { event_id: row.event_id, origin_server_ts: Number(row.origin_server_ts) };
  }

  /** Timeline events carry the reader's membership at each (`unsigned.membership`). */
  private serializeTimeline(reader: Reader, events: readonly VisibleEvent<StoredEvent>[]): Promise<ClientEvent[]> {
    const membership = new Map(events.map((v) => [v.event, v.membership]));
    return this.core.serializer.serialize(
      reader,
      events.map((v) => v.event),
      { includeRoomId: true, membershipOf: (stored) => membership.get(stored) },
    );
  }

  private serializeState(reader: Reader, events: readonly StoredEvent[]): Promise<ClientEvent[]> {
    return this.core.serializer.serialize(reader, events, { includeRoomId: true });
  }

  /** The state a reader sees: current for members and peekers, as it was at their leave for departed users. */
  private async readableState(userId: string, roomId: string): Promise<RoomState> {
    const scope = await this.access.requireReader(roomId, userId, { allowDeparted: true });
    return scope.upTo === undefined ? this.core.roomState.currentState(roomId) : this.core.roomState.stateAt(roomId, scope.upTo);
  }

  /**
   * The state as of a token (`/members?at=`): after the room's last event at or before it, if the
   * reader could see the room at that point (Synapse's `_user_can_see_state_at_event`).
   */
  private async stateAtToken(userId: string, roomId: string, token: string): Promise<RoomState> {
    const position = Math.min(positionOfToken(token), this.core.notifier.currentPositions().events);
    const [row] = await this.core.stores.events.roomEventsBetween(roomId, Number.MIN_SAFE_INTEGER, position, 1, 'backwards');
    const last = row === undefined ? undefined : await this.core.eventCache.fromRow(row);
    if (last === undefined) {
      if (!(await this.core.roomState.roomExists(roomId))) throw Errors.forbidden(`User ${userId} not in room ${roomId}`);
      throw Errors.notFound(`Can't find event for token ${token.slice(0, 100)}`);
    }
    const scope = await this.access.scopeOf(roomId, userId);
    if (!(await this.access.canSeeStateAt(roomId, userId, scope, last))) {
      throw Errors.forbidden(`User ${userId} not allowed to view events in room ${roomId} at token ${token.slice(0, 100)}`);
    }
    return this.core.roomState.stateAt(roomId, last.streamOrdering);
  }
}
