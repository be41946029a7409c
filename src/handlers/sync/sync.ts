// /sync: everything that changed for a user's device between two sets of stream positions.
//
// A response covers `(since, to]` where `to` is a snapshot of the streams' completed positions
// taken when the response is computed, so nothing written later can be half-included. An
// incremental sync with nothing new waits on the notifier (woken through the replication bus)
// and computes again. The semantics are the spec's (client-server API §Syncing, §Lazy-loading room
// members; `GET /sync` in sync.yaml), Synapse's where the spec is vague.

import type { ClientEvent } from '../../core/client-events.js';
import { strippedStateFromPdus, toStrippedState } from '../../core/client-events.js';
import { stateKey as makeStateKey, splitStateKey } from '../../core/events.js';
import { TYPES_HIDDEN_FROM_CLIENTS } from '../../core/visibility.js';
import {
  eventMatchesFilter,
  filterBlocksAll,
  includeRedundantMembers,
  lazyLoadMembers,
  roomAllowed,
  timelineLimit,
  type EventFilter,
  type Filter,
  type RoomEventFilter,
} from '../../core/filters.js';
import { isJsonObject, type JsonObject } from '../../core/json.js';
import { computeRoomSummary, hasCanonicalAlias, hasRoomName, type SummaryMember } from '../../core/room-summary.js';
import { clampPositions, encodeSyncToken, zeroPositions, type StreamName, type StreamPositions } from '../../streams/streams.js';
import { membersIn } from '../../streams/notifier.js';
import { LruCache } from '../../util/lru.js';
import { SentMembersLedger } from './lazy-members.js';
import type { EventRow } from '../../storage/events-store.js';
import type { CoreParts } from '../kernel/core.js';
import type { StoredEvent } from '../kernel/event-cache.js';
import type { RoomState } from '../kernel/room-state.js';
import type { AccountDataEntry, E2eeSyncSources, SyncSources, UnreadCounts } from './sync-sources.js';
import type { MembershipRow, StateRow } from '../../storage/room-state-store.js';

export interface SyncRequest {
  userId: string;
  deviceId: string;
  since: StreamPositions | undefined;
  timeoutMs: number;
  fullState: boolean;
  filter: Filter;
  setPresence: string | undefined;
  /** MSC4222: answer `state_after` under this key instead of `state`. */
  stateAfterKey: 'state_after' | 'org.matrix.msc4222.state_after' | undefined;
  signal: AbortSignal;
}

/** The most to-device messages one response carries (Synapse's limit). */
const TO_DEVICE_LIMIT = 100;

/** The state types sent to invitees (stripped), as Synapse's `room_prejoin_state` default. */
const INVITE_STATE_TYPES = new Set([
  'm.room.join_rules',
  'm.room.canonical_alias',
  'm.room.avatar',
  'm.room.encryption',
  'm.room.name',
  'm.room.create',
  'm.room.topic',
]);

interface RoomSection {
  roomId: string;
  body: JsonObject;
  /** Whether the section carries anything the client has not seen (drives the long-poll). */
  hasNews: boolean;
  /** With lazy loading: the ids of the member events the section carries (state and timeline). */
  memberEvents?: readonly string[];
}

type Membership = 'join' | 'invite' | 'leave' | 'ban' | 'knock';

/** A request as one computation of its response sees it. */
interface Computation extends SyncRequest {
  /** Lazy loading: the member events the device provably holds at `since` (SentMembersLedger). */
  heldMembers: ReadonlySet<string>;
}

interface ComputedResponse {
  response: JsonObject;
  hasNews: boolean;
  /** With lazy loading: the ids of the member events the response carries. */
  sentMembers: ReadonlySet<string>;
}

const NO_MEMBERS: ReadonlySet<string> = new Set();

export class SyncHandler {
  /** Lazy loading: the member events each device holds, by the sync token it holds them at. */
  private readonly sentMembers = new SentMembersLedger();
  /** Per device: the to-device position last acknowledged. */
  private readonly acknowledged = new LruCache<string, number>(100_000);
  private readonly recentReads = new LruCache<string, Promise<EventRow[]>>(2_000);
  private readonly recentMembers = new LruCache<string, Promise<StateRow | undefined>>(10_000);

  constructor(
    private readonly core: CoreParts<'notifier' | 'memberships' | 'roomState' | 'eventCache' | 'visibility' | 'serializer', 'events'>,
    // End-to-end encryption's sources are merged in by the services composition (see E2eeSyncSources).
    private readonly sources: SyncSources & Partial<E2eeSyncSources>,
  ) {}

  private get memberships() {
    return this.core.memberships;
  }

  async sync(request: SyncRequest): Promise<JsonObject> {
    const { notifier } = this.core;
    await this.sources.userSyncing(request.userId, request.setPresence);
    if (request.since) await this.acknowledgeToDevice(request.userId, request.deviceId, request.since.to_device);
    const ignore = filterBlocksAll(request.filter.presence) ? IGNORE_PRESENCE : undefined;

    // Lazy loading: only an incremental sync continuing a chain of responses may leave out the
    // member events sent along it; an initial or full-state sync starts a new chain.
    const lazy = lazyLoadMembers(request.filter);
    const held =
      lazy && request.since && !request.fullState
        ? this.sentMembers.heldAt(request.userId, request.deviceId, encodeSyncToken(request.since))
        : NO_MEMBERS;
    const answer = ({ response, sentMembers }: ComputedResponse): JsonObject => {
      if (lazy) this.sentMembers.record(request.userId, request.deviceId, response.next_batch as string, held, sentMembers);
      return response;
    };

    const deadline = Date.now() + request.timeoutMs;
    for (;;) {
      const to = notifier.currentPositions();
      const since = request.since ? clampPositions(request.since, to) : undefined;
      const computed = await this.compute({ ...request, since, heldMembers: held }, to);
      const waitFor = deadline - Date.now();
      // An initial or full-state sync answers at once; so does anything with news.
      if (computed.hasNews || !since || request.fullState || waitFor <= 0 || request.signal.aborted) return answer(computed);
      const memberships = await this.memberships.of(request.userId);
      const roomIds = new Set(memberships.filter((m) => m.membership !== 'leave' && m.membership !== 'ban').map((m) => m.room_id));
      await notifier.waitForUpdates({
        userId: request.userId,
        roomIds,
        seen: to,
        timeoutMs: waitFor,
        signal: request.signal,
        ...(ignore ? { ignore } : {}),
      });
      if (Date.now() >= deadline || request.signal.aborted) {
        // Timed out: answer the (empty) incremental sync up to now.
        const now = notifier.currentPositions();
        return answer(await this.compute({ ...request, since, heldMembers: held }, now));
      }
    }
  }

  /** A sync with `since` acknowledges the to-device messages up to it; skip when nothing is new. */
  private async acknowledgeToDevice(userId: string, deviceId: string, position: number): Promise<void> {
    const key = `${userId}\u0000${deviceId}`;
    const done = this.acknowledged.get(key);
    if (done !== undefined && done >= position) return;
    await this.sources.acknowledgeToDevice(userId, deviceId, position);
    this.acknowledged.set(key, position);
  }

  private async compute(request: Computation, to: StreamPositions): Promise<ComputedResponse> {
    const { userId, deviceId, since, filter } = request;
    const initial = since === undefined;
    const from: StreamPositions = since ?? zeroPositions();

    const roomSections = await this.roomSections(request, from, to);
    const response: JsonObject = {};
    let hasNews = roomSections.hasNews;
    const sentMembers = new Set<string>();
    for (const section of [...roomSections.join, ...roomSections.leave]) for (const id of section.memberEvents ?? []) sentMembers.add(id);

    const changed = (stream: keyof StreamPositions) => initial || from[stream] !== to[stream];
    const accountData =
      changed('account_data') || changed('push_rules')
        ? await this.sources.accountData(userId, from.account_data, to.account_data, from.push_rules, to.push_rules)
        : { global: [], rooms: new Map<string, AccountDataEntry[]>() };
    const globalData = accountData.global.filter((e) => eventMatchesFilter(filter.accountData, { type: e.type }));
    if (globalData.length) {
      response.account_data = { events: globalData.map((e) => ({ type: e.type, content: e.content })) };
      hasNews = true;
    }
    for (const section of roomSections.join) {
      const roomData = (accountData.rooms.get(section.roomId) ?? []).filter((e) =>
        eventMatchesFilter(filter.room.accountData, { type: e.type }),
      );
      if (roomData.length) {
        section.body.account_data = { events: roomData.map((e) => ({ type: e.type, content: e.content })) };
        section.hasNews = true;
        hasNews = true;
      }
    }
    // Rooms with only account-data changes (e.g. a new tag) still appear in the join section.
    for (const [roomId, entries] of accountData.rooms) {
      if (roomSections.join.some((s) => s.roomId === roomId) || !roomSections.joinedIds.has(roomId)) continue;
      const roomData = entries.filter((e) => eventMatchesFilter(filter.room.accountData, { type: e.type }));
      if (!roomData.length || !roomAllowed(filter.room, roomId)) continue;
      roomSections.join.push({
        roomId,
        body: { account_data: { events: roomData.map((e) => ({ type: e.type, content: e.content })) } },
        hasNews: true,
      });
      hasNews = true;
    }

    const presence =
      changed('presence') && !filterBlocksAll(filter.presence)
        ? (await this.sources.presence(userId, from.presence, to.presence)).filter((e) =>
            eventMatchesFilter(filter.presence, { type: e.type as string, sender: e.sender as string }),
          )
        : [];
    if (presence.length) {
      response.presence = { events: presence };
      hasNews = true;
    }

    const toDevice = changed('to_device')
      ? await this.sources.toDevice(userId, deviceId, from.to_device, to.to_device, TO_DEVICE_LIMIT)
      : { events: [], upTo: to.to_device };
    if (toDevice.events.length) {
      response.to_device = { events: toDevice.events };
      hasNews = true;
    }

    // Device lists are for incremental syncs only (end_to_end_encryption.md); key changes move the
    // device_lists stream, and joins and leaves of shared rooms the events stream.
    if (!initial && this.sources.deviceLists && (changed('device_lists') || changed('events'))) {
      const deviceLists = await this.sources.deviceLists(userId, from, to);
      if (deviceLists.changed.length || deviceLists.left.length) {
        response.device_lists = { changed: deviceLists.changed, left: deviceLists.left };
        hasNews = true;
      }
    }

    // With `unread_thread_notifications`, the room's counts are the main timeline's and each
    // thread is counted apart; otherwise threads count towards the room (receipts.md, push.md).
    const joinedRoomIds = roomSections.join.map((s) => s.roomId);
    const byThread = filter.room.timeline.unreadThreadNotifications;
    const unread = byThread ? await this.sources.unreadNotifications(userId, joinedRoomIds) : undefined;
    const totals = byThread ? undefined : await this.sources.unreadCounts(userId, joinedRoomIds);
    const zero = { notification_count: 0, highlight_count: 0 };
    for (const section of roomSections.join) {
      if (unread) {
        const room = unread.get(section.roomId);
        section.body.unread_notifications = counts(room?.main ?? zero);
        section.body.unread_thread_notifications = Object.fromEntries(
          [...(room?.threads ?? [])].map(([threadId, c]) => [threadId, counts(c)]),
        );
      } else {
        section.body.unread_notifications = counts(totals!.get(section.roomId) ?? zero);
      }
    }

    const rooms: JsonObject = {};
    const sectionMap = (sections: RoomSection[]) => Object.fromEntries(sections.map((s) => [s.roomId, s.body]));
    if (roomSections.join.length) rooms.join = sectionMap(roomSections.join);
    if (roomSections.invite.length) rooms.invite = sectionMap(roomSections.invite);
    if (roomSections.leave.length) rooms.leave = sectionMap(roomSections.leave);
    if (roomSections.knock.length) rooms.knock = sectionMap(roomSections.knock);
    if (Object.keys(rooms).length) response.rooms = rooms;

    const [oneTimeKeyCounts, unusedFallbackKeyTypes] = await Promise.all([
      this.sources.oneTimeKeyCounts?.(userId, deviceId) ?? {},
      this.sources.unusedFallbackKeyTypes?.(userId, deviceId) ?? [],
    ]);
    response.device_one_time_keys_count = oneTimeKeyCounts;
    response.device_unused_fallback_key_types = unusedFallbackKeyTypes;
    response.next_batch = encodeSyncToken({ ...to, to_device: toDevice.upTo });
    return { response, hasNews: hasNews || roomSections.join.some((s) => s.hasNews), sentMembers };
  }

  private async roomSections(
    request: Computation,
    from: StreamPositions,
    to: StreamPositions,
  ): Promise<{
    join: RoomSection[];
    invite: RoomSection[];
    leave: RoomSection[];
    knock: RoomSection[];
    joinedIds: Set<string>;
    hasNews: boolean;
  }> {
    const { userId, filter } = request;
    const initial = request.since === undefined;
    const { roomState } = this.core;
    const memberships = await this.memberships.at(userId, to.events);
    const eventsChanged = initial || from.events !== to.events;
    // Which rooms changed, from the notifier's recent log when it reaches back far enough.
    const recentRows = eventsChanged && !initial ? this.core.notifier.rowsBetween('events', from.events, to.events) : [];
    const changedRooms = new Set<string>();
    const roomsWithEvents = new Set<string>();
    if (!initial && eventsChanged) {
      if (recentRows) {
        for (const row of recentRows) {
          if (row.stream !== 'events') continue;
          roomsWithEvents.add(row.roomId);
          if ((row.type === 'm.room.member' && row.stateKey === userId) || membersIn(row.stateDelta).includes(userId))
            changedRooms.add(row.roomId);
        }
      } else {
        for (const change of await this.memberships.changesBetween(userId, from.events, to.events)) changedRooms.add(change.room_id);
        for (const roomId of await this.core.stores.events.roomsWithEventsBetween(from.events, to.events)) roomsWithEvents.add(roomId);
      }
    }
    let forgotten: Set<string> | undefined;
    const joinedIds = new Set(memberships.filter((m) => m.membership === 'join').map((m) => m.room_id));
    const typing =
      initial || from.typing !== to.typing
        ? this.sources.typing([...joinedIds], initial ? 0 : from.typing)
        : new Map<string, { user_ids: string[] }>();
    const receipts =
      initial || from.receipts !== to.receipts
        ? await this.sources.receipts(userId, [...joinedIds], initial ? 0 : from.receipts, to.receipts)
        : new Map<string, JsonObject>();

    const join: RoomSection[] = [];
    const invite: RoomSection[] = [];
    const leave: RoomSection[] = [];
    const knock: RoomSection[] = [];
    let hasNews = false;

    for (const membership of memberships) {
      const roomId = membership.room_id;
      if (!roomAllowed(filter.room, roomId)) continue;
      const kind = membership.membership as Membership;
      const changed = changedRooms.has(roomId);
      if (kind === 'join') {
        // Newly joined: the membership was not `join` at `since` (a join, or a rejoin).
        const newlyJoined = !initial && changed && (await roomState.membershipAt(roomId, userId, from.events)) !== 'join';
        const section = await this.joinedRoom(request, roomId, from, to, {
          initial,
          newlyJoined,
          hasNewEvents: initial || roomsWithEvents.has(roomId),
          // Joined throughout (since, to]: everything in that range is visible.
          joinedThroughout: !initial && !changed,
        });
        const ephemeral: JsonObject[] = [];
        const typers = typing.get(roomId);
        if (typers && eventMatchesFilter(filter.room.ephemeral, { type: 'm.typing', roomId }))
          ephemeral.push({ type: 'm.typing', content: typers });
        const receipt = receipts.get(roomId);
        if (receipt && Object.keys(receipt).length && eventMatchesFilter(filter.room.ephemeral, { type: 'm.receipt', roomId }))
          ephemeral.push({ type: 'm.receipt', content: receipt });
        if (ephemeral.length) {
          section.body.ephemeral = { events: ephemeral };
          section.hasNews = true;
        }
        if (initial || section.hasNews || newlyJoined || request.fullState) join.push(section);
      } else if (kind === 'invite' || kind === 'knock') {
        if (!initial && !changed) continue;
        const section = await this.strippedRoom(roomId, membership.event_id, kind);
        (kind === 'invite' ? invite : knock).push(section);
        hasNews = true;
      } else if (kind === 'leave' || kind === 'ban') {
        forgotten ??= await this.memberships.forgottenRooms(userId);
        if (forgotten.has(roomId)) continue;
        // Rooms left before `since` never reappear; on an initial sync only with include_leave.
        if (initial ? !filter.room.includeLeave : !changed) continue;
        const section = await this.leftRoom(request, roomId, membership, from, { initial });
        leave.push(section);
        hasNews = true;
      }
    }
    return { join, invite, leave, knock, joinedIds, hasNews };
  }

  /** A room in the join section. */
  private async joinedRoom(
    request: Computation,
    roomId: string,
    from: StreamPositions,
    to: StreamPositions,
    flags: { initial: boolean; newlyJoined: boolean; hasNewEvents: boolean; joinedThroughout: boolean },
  ): Promise<RoomSection> {
    const fullHistory = flags.initial || flags.newlyJoined || request.fullState;
    const timeline =
      flags.hasNewEvents || fullHistory
        ? await this.timeline(request, roomId, fullHistory ? 0 : from.events, to.events, 'join', true, flags.joinedThroughout)
        : { events: [] as StoredEvent[], limited: false, start: to.events };
    // A newly joined room is always "limited": the client has none of its history.
    const limited = timeline.limited || flags.newlyJoined;
    const startPosition = timeline.events[0] ? timeline.events[0].streamOrdering - 1 : to.events;

    const body: JsonObject = {};
    const state = await this.stateSection(request, roomId, {
      full: fullHistory,
      limited,
      from: from.events,
      timelineStart: startPosition,
      end: to.events,
      timeline: timeline.events,
    });
    const clientTimeline = await this.serialize(request, timeline.events);
    body.timeline = {
      events: clientTimeline,
      limited,
      prev_batch: encodeSyncToken({ ...to, events: startPosition }),
    };
    Object.assign(body, state.block);

    const memberChanged = timeline.events.some((e) => e.event.type === 'm.room.member') || state.memberChange;
    if (fullHistory || memberChanged) body.summary = await this.summary(roomId, request.userId);
    return { roomId, body, hasNews: timeline.events.length > 0 || fullHistory, memberEvents: state.memberEvents };
  }

  /** A room in the leave section: history and state up to the user's leave (or ban). */
  private async leftRoom(
    request: Computation,
    roomId: string,
    membership: MembershipRow,
    from: StreamPositions,
    flags: { initial: boolean },
  ): Promise<RoomSection> {
    const leftAt = Number(membership.from_stream);
    const member = await this.core.eventCache.getStateEvent(membership.event_id);
    if (member?.outsideTimeline) return this.outOfBandLeave(request, roomId, member, leftAt);
    const wasJoinedAtSince = !flags.initial && (await this.core.roomState.membershipAt(roomId, request.userId, from.events)) === 'join';
    const fromPosition = wasJoinedAtSince ? from.events : 0;
    // Shared history is theirs only if they were ever in the room, not if they just declined an invite.
    const wasJoined = (await this.core.roomState.membershipAt(roomId, request.userId, leftAt - 1)) === 'join';
    const timeline = await this.timeline(request, roomId, fromPosition, leftAt, membership.membership, wasJoined);
    const startPosition = timeline.events[0] ? timeline.events[0].streamOrdering - 1 : leftAt;
    const state = await this.stateSection(request, roomId, {
      full: !wasJoinedAtSince,
      limited: timeline.limited,
      from: fromPosition,
      timelineStart: startPosition,
      end: leftAt,
      timeline: timeline.events,
    });
    return {
      roomId,
      body: {
        timeline: {
          events: await this.serialize(request, timeline.events),
          limited: timeline.limited,
          prev_batch: encodeSyncToken({ ...this.core.notifier.currentPositions(), events: startPosition }),
        },
        ...state.block,
        account_data: { events: [] },
      },
      hasNews: true,
      memberEvents: state.memberEvents,
    };
  }

  /**
   * A leave (a rejected invite, a retracted knock) or ban of a room we are not in: an out-of-band
   * membership, the only event we hold of the room for the user: it is the whole timeline, with no
   * state (as Synapse does for an out-of-band leave; spec: client-server API §Syncing, `leave`).
   */
  private async outOfBandLeave(request: Computation, roomId: string, member: StoredEvent, leftAt: number): Promise<RoomSection> {
    return {
      roomId,
      body: {
        timeline: {
          events: await this.serialize(request, [member]),
          limited: false,
          prev_batch: encodeSyncToken({ ...this.core.notifier.currentPositions(), events: leftAt - 1 }),
        },
        [request.stateAfterKey ?? 'state']: { events: [] },
        account_data: { events: [] },
      },
      hasNews: true,
      memberEvents: [],
    };
  }

  /** An invited or knocked room: stripped state, plus the membership event itself. */
  private async strippedRoom(roomId: string, memberEventId: string, kind: 'invite' | 'knock'): Promise<RoomSection> {
    const member = await this.core.eventCache.getStateEvent(memberEventId);
    // An invite from another server, or a knock made through one, carries the room's state as that
    // server gave it (`invite_room_state`, `knock_room_state`): we may know nothing else of the room.
    const unsigned = member?.event.pdu.unsigned;
    const carried = isJsonObject(unsigned) ? unsigned[kind === 'invite' ? 'invite_room_state' : 'knock_room_state'] : undefined;
    const stripped: JsonObject[] = [];
    if (Array.isArray(carried)) {
      stripped.push(...strippedStateFromPdus(carried.filter(isJsonObject)));
    } else {
      const state = await this.core.roomState.currentState(roomId);
      for (const [key, stored] of state) {
        const [type] = splitStateKey(key);
        if (INVITE_STATE_TYPES.has(type)) stripped.push(toStrippedState(stored.event));
      }
    }
    if (member) {
      // Clients find the inviter in the invite event; Synapse sends it whole.
      stripped.push({ ...toStrippedState(member.event), event_id: member.event.eventId, origin_server_ts: member.event.originServerTs });
    }
    const key = kind === 'invite' ? 'invite_state' : 'knock_state';
    return { roomId, body: { [key]: { events: stripped } }, hasNews: true };
  }

  /**
   * The newest events of the room with `from < position <= to` that match the timeline filter and
   * the user may see, oldest first, at most the filter's limit; `limited` when more are left.
   */
  private async timeline(
    request: SyncRequest,
    roomId: string,
    from: number,
    to: number,
    currentMembership: string,
    joinedSinceEvent = true,
    alwaysVisible = false,
  ): Promise<{ events: StoredEvent[]; limited: boolean; start: number }> {
    const filter = request.filter.room.timeline;
    const limit = timelineLimit(request.filter);
    const picked: StoredEvent[] = [];
    let upper = to;
    let limited = false;
    // Filtering can drop events, so read in batches until the limit is reached (SyTest "A filtered
    // timeline reaches its limit").
    while (picked.length <= limit) {
      const batchSize = Math.max(limit + 1, 20) * (picked.length === 0 ? 1 : 2);
      const rows = await this.roomEvents(roomId, from, upper, batchSize);
      if (rows.length === 0) break;
      const batch = (await this.core.eventCache.fromRows(rows)).filter((s) => timelineFilterMatches(filter, s));
      const visible = alwaysVisible
        ? batch.filter((s) => !TYPES_HIDDEN_FROM_CLIENTS.has(s.event.type))
        : (await this.core.visibility.filter(request.userId, roomId, batch, { currentMembership, joinedSinceEvent })).map((v) => v.event);
      for (const event of visible) {
        if (picked.length === limit) {
          limited = true;
          break;
        }
        picked.push(event);
      }
      if (limited || rows.length < batchSize) break;
      upper = Number(rows[rows.length - 1]!.stream_ordering) - 1;
    }
    picked.reverse();
    return { events: picked, limited, start: picked[0] ? picked[0].streamOrdering - 1 : to };
  }

  /**
   * A room's events in `(from, upper]`, newest first. History below `to` never changes, so every
   * sync waking for the same new event (a busy room's members) shares one read.
   */
  private roomEvents(roomId: string, from: number, upper: number, limit: number): Promise<EventRow[]> {
    const key = `${roomId}\u0000${from}\u0000${upper}\u0000${limit}`;
    let rows = this.recentReads.get(key);
    if (!rows) {
      rows = this.core.stores.events.roomEventsBetween(roomId, from, upper, limit, 'backwards');
      this.recentReads.set(key, rows);
      rows.catch(() => this.recentReads.delete(key));
    }
    return rows;
  }

  /**
   * The `state` block (or MSC4222 `state_after`): full state at the timeline's start for initial,
   * full-state and newly joined rooms; for a limited incremental sync, what changed between
   * `since` and the timeline's start; otherwise nothing. State events in the timeline are not
   * repeated. With lazy loading, only the members the client needs (see `lazyMembers`).
   */
  private async stateSection(
    request: Computation,
    roomId: string,
    range: { full: boolean; limited: boolean; from: number; timelineStart: number; end: number; timeline: readonly StoredEvent[] },
  ): Promise<{ block: JsonObject; memberChange: boolean; memberEvents: string[] }> {
    const { roomState } = this.core;
    const stateAfter = request.stateAfterKey !== undefined;
    const lazy = lazyLoadMembers(request.filter);
    // With lazy loading, a full state only needs the members the client will get, not a big room's
    // thousands: read the rest of the state plus those members.
    const needed = lazy ? neededMembers(request.userId, range.full, stateAfter, range.timeline) : undefined;
    const fullStateAt = (position: number) =>
      needed ? roomState.stateRowsAtWithMembers(roomId, position, [...needed]) : roomState.stateRowsAt(roomId, position);
    let rows: StateRow[];
    if (stateAfter) {
      rows = range.full ? await fullStateAt(range.end) : await roomState.stateRowChangesBetween(roomId, range.from, range.end);
    } else if (range.full) {
      rows = await fullStateAt(range.timelineStart);
    } else if (range.limited) {
      rows = await roomState.stateRowChangesBetween(roomId, range.from, range.timelineStart);
    } else {
      rows = [];
    }
    const inTimeline = new Set(range.timeline.map((e) => e.event.eventId));
    const memberChange = rows.some((r) => r.type === 'm.room.member');
    let candidates = rows.filter((r) => stateAfter || !inTimeline.has(r.event_id));
    candidates = candidates.filter((r) => stateFilterMatches(request.filter.room.state, r.type, roomId));
    if (needed) candidates = await this.lazyMembers(request, roomId, range, needed, candidates, inTimeline);

    const events = await this.core.eventCache.getStateEvents(candidates.map((r) => r.event_id));
    const stored = candidates.map((r) => events.get(r.event_id)).filter((e): e is StoredEvent => e !== undefined);
    const serialized = await this.serialize(request, stored);
    const key = request.stateAfterKey ?? 'state';
    // The member events the client now holds as the room's state: those in the block, and with
    // `state` those of the timeline too (clients apply its state events; with `state_after` they
    // take the room's state from the block alone).
    const memberEvents = lazy
      ? [...stored, ...(stateAfter ? [] : range.timeline)].filter((e) => e.event.type === 'm.room.member').map((e) => e.event.eventId)
      : [];
    return { block: { [key]: { events: serialized } }, memberChange, memberEvents };
  }

  /**
   * Lazy loading (spec: client-server API §Lazy-loading room members; sync.yaml): `candidates`
   * narrowed to the members the client needs, plus those it may lack.
   * - A full state (initial sync, full_state, a room joined after `since`) carries the member
   *   events of the timeline's senders and the user's own, never left out as redundant: the
   *   client asked for everything, or has nothing of the room yet.
   * - An incremental sync keeps every membership change in the gap (a limited sync MUST return
   *   them "regardless as to whether or not they are redundant") and adds the senders' member
   *   events. Only a sync whose timeline follows on from `since` without a gap may leave out a
   *   sender's member event, and only one the device provably holds at `since`, unless the
   *   filter asks for redundant members.
   */
  private async lazyMembers(
    request: Computation,
    roomId: string,
    range: { full: boolean; limited: boolean; timelineStart: number; end: number },
    needed: ReadonlySet<string>,
    candidates: StateRow[],
    inTimeline: ReadonlySet<string>,
  ): Promise<StateRow[]> {
    if (range.full) return candidates.filter((r) => r.type !== 'm.room.member' || needed.has(r.state_key));
    if (!stateFilterMatches(request.filter.room.state, 'm.room.member', roomId)) return candidates;
    const stateAfter = request.stateAfterKey !== undefined;
    const present = new Set(candidates.filter((r) => r.type === 'm.room.member').map((r) => r.state_key));
    const mayLeaveOut = !range.limited && !includeRedundantMembers(request.filter);
    // `state` is the state at the timeline's start, `state_after` at its end.
    const position = stateAfter ? range.end : range.timelineStart;
    const missing = [...needed].filter((userId) => !present.has(userId));
    const rows = await Promise.all(missing.map((userId) => this.memberAt(roomId, userId, position)));
    const added = rows.filter(
      (row): row is StateRow =>
        row !== undefined && (stateAfter || !inTimeline.has(row.event_id)) && !(mayLeaveOut && request.heldMembers.has(row.event_id)),
    );
    return [...candidates, ...added];
  }

  /**
   * A member event of the room at a position. State below `to` never changes, so the syncs of a
   * room's members woken by the same event share one read.
   */
  private memberAt(roomId: string, userId: string, position: number): Promise<StateRow | undefined> {
    const key = `${roomId}\u0000${userId}\u0000${position}`;
    let row = this.recentMembers.get(key);
    if (!row) {
      row = this.core.roomState.stateRowAt(roomId, 'm.room.member', userId, position);
      this.recentMembers.set(key, row);
      row.catch(() => this.recentMembers.delete(key));
    }
    return row;
  }

  private async summary(roomId: string, userId: string): Promise<JsonObject> {
    const state = await this.core.roomState.currentState(roomId);
    const members: SummaryMember[] = [];
    for (const [key, stored] of state) {
      const [type, stateKey] = splitStateKey(key);
      if (type !== 'm.room.member') continue;
      const membership = stored.event.content.membership;
      if (typeof membership === 'string') members.push({ userId: stateKey, membership, streamPos: stored.streamOrdering });
    }
    return computeRoomSummary(
      members,
      userId,
      hasRoomName(stateContent(state, 'm.room.name')),
      hasCanonicalAlias(stateContent(state, 'm.room.canonical_alias')),
    ) as unknown as JsonObject;
  }

  private serialize(request: SyncRequest, events: readonly StoredEvent[]): Promise<ClientEvent[]> {
    return this.core.serializer.serialize({ userId: request.userId, deviceId: request.deviceId }, events, {
      includeRoomId: false,
      format: request.filter.eventFormat,
      eventFields: request.filter.eventFields,
    });
  }
}

/** Syncs whose filter drops presence are not woken by it. */
const IGNORE_PRESENCE: ReadonlySet<StreamName> = new Set(['presence']);

function counts(c: UnreadCounts): JsonObject {
  return { notification_count: c.notification_count, highlight_count: c.highlight_count };
}

function stateContent(state: RoomState, type: string): JsonObject | undefined {
  return state.get(makeStateKey(type, ''))?.event.content;
}

/**
 * With lazy loading, whose member events a room's `state` (or `state_after`) block needs: the
 * timeline's senders, and the user's own on a full state (sync.yaml: "servers MUST include the
 * syncing user's own membership event when they join a room, or when the full state of rooms is
 * requested"). For `state`, a sender whose member event comes earlier in the timeline is covered
 * by it (clients apply the timeline's state events in order); `state_after` stands apart from the
 * timeline, so it names every sender.
 */
function neededMembers(userId: string, full: boolean, stateAfter: boolean, timeline: readonly StoredEvent[]): Set<string> {
  const needed = new Set<string>(full ? [userId] : []);
  const inTimeline = new Set<string>();
  for (const { event } of timeline) {
    if (stateAfter || !inTimeline.has(event.sender)) needed.add(event.sender);
    if (event.type === 'm.room.member' && event.stateKey !== undefined) inTimeline.add(event.stateKey);
  }
  return needed;
}

function timelineFilterMatches(filter: RoomEventFilter, stored: StoredEvent): boolean {
  const { event } = stored;
  return eventMatchesFilter(filter, { type: event.type, sender: event.sender, roomId: event.roomId, content: event.content });
}

function stateFilterMatches(filter: EventFilter, type: string, roomId: string): boolean {
  return eventMatchesFilter(filter, { type, roomId });
}
