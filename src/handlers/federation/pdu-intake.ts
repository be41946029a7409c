// The inbound PDU pipeline: what the events writer does with events of a room that another server
// sent us (spec: server-server API §Checks performed on receipt of a PDU, §Rejection, §Soft
// failure, §Backfilling and retrieving missing events).
//
// The receiving process has already run steps 1–3 (format, signatures, content hash: core's
// `checkReceivedPdu`) on pushed events. Here, in the room's queue (one writer per room, so no
// locks), for each event in `orderForProcessing` order:
//
// 0. an event we already hold is skipped (an outlier is taken up again: it now has a place);
// 4. its auth events must be known — missing ones are fetched (`/event_auth`, then `/event`),
//    checked like any received PDU (`verify`) and stored as outliers, each checked against its own
//    auth events — and it must pass the auth rules against them, else it is **rejected**;
// 3. its prev events must be known with the state after them. For a pushed event, missing ones
//    are fetched with `/get_missing_events` (10 at most, our forward extremities as `earliest`)
//    and processed first as pulled events; if some are still missing the event is not stored (as
//    Synapse: a pushed event must not become an extremity whose state the sender chose). For a
//    pulled event, the state at each missing prev comes from `/state_ids` (+ `/event` for what we
//    lack, stored as outliers) and that prev becomes a backward extremity;
// 5. the state before it — the state after its only prev, or the prevs' states resolved with the
//    room version's algorithm — must authorise it, else it is **rejected** (stored with the state
//    before it: a rejected state event changes nothing; never sent to clients, never a prev event);
// 6. the current state (resolved across the forward extremities) must authorise it, else it is
//    **soft-failed** (stored with its state, so later events can resolve it in; not in the
//    timeline, not an extremity);
// then it is accepted: a timeline position, graph rows, state group, forward extremities, and the
// current state's changes written into `room_state` at its position, so every read path sees it.
//
// Backfilled events (`backfill`: history before our oldest events, fetched with `/backfill` when a
// client pages back past it) take steps 4 and 5 the same way, their missing prev events' state
// coming from `/state_ids` as for pulled events, but not step 6: they are history, checked against
// the state at them and never against the current state (as Synapse). An accepted one is stored
// with status `backfilled` at the negative stream position the writer reserved for it — oldest
// lowest, below every event of the room we hold — so /messages walks on into it while /sync,
// which reads positions above its token, never sees it; it changes neither the current state nor
// the forward extremities, and its missing prev events become the room's backward extremities.
//
// Nothing a remote server sends can make this throw: every failure is an outcome of its PDU. Only
// a database that cannot answer (`DatabaseUnavailableError`) ends a batch, so the sender retries.

import { checkAgainstOwnAuthEvents, inAuthOrder, safeEventAuth } from '../../core/auth-chain-checks.js';
import { authEventKeysFor } from '../../core/auth-events.js';
import { authStateFromEvents, checkAuthEventsList, type AuthResult } from '../../core/auth-rules.js';
import {
  authEventIdsWithCreate,
  createEventIdForRoom,
  stateKey as makeStateKey,
  type RoomEvent,
  type StateKey,
} from '../../core/events.js';
import { isJsonObject } from '../../core/json.js';
import { parseReceivedPdu, trimReceivedPdu, type PduCheckOutcome } from '../../core/pdu-checks.js';
import type { RoomVersion } from '../../core/room-versions.js';
import { orderForProcessing } from '../../core/transactions.js';
import { MatrixError } from '../../errors.js';
import { DatabaseUnavailableError } from '../../storage/database.js';
import type { GraphStatus } from '../../storage/event-graph-store.js';
import type { Logger } from '../../util/log.js';
import type { EventCache } from '../kernel/event-cache.js';
import {
  rememberKnown,
  type CurrentState,
  type Extremity,
  type GraphWrite,
  type PersistedEvent,
  type RoomContext,
  type StageItem,
} from '../kernel/room-context.js';
import type { RoomGraph } from '../kernel/room-graph.js';
import type { PlannedStateGroup, StateIds } from '../kernel/state-groups.js';

// ---- what the intake needs from the network ----

export interface MissingEventsRequest {
  /** Events we have: the walk skips them and does not go past them. */
  readonly earliest: readonly string[];
  /** Events whose missing ancestors we want. */
  readonly latest: readonly string[];
  readonly limit: number;
  readonly minDepth: number;
}

/**
 * Requests to another server on behalf of the intake (built by the federation client). Each
 * answers the raw JSON the server sent; the intake checks everything. Failures throw.
 */
export interface FederationFetcher {
  /** `GET /_matrix/federation/v1/event/{eventId}`: the one PDU of the answer. */
  getEvent(server: string, eventId: string): Promise<unknown>;
  /** `GET /_matrix/federation/v1/event_auth/{roomId}/{eventId}`: the `auth_chain` PDUs. */
  getEventAuth(server: string, roomId: string, eventId: string): Promise<unknown[]>;
  /** `POST /_matrix/federation/v1/get_missing_events/{roomId}`: the `events`. */
  getMissingEvents(server: string, roomId: string, request: MissingEventsRequest): Promise<unknown[]>;
  /** `GET /_matrix/federation/v1/state_ids/{roomId}?event_id=`: the state before the event. */
  getStateIds(server: string, roomId: string, eventId: string): Promise<{ pduIds: unknown; authChainIds: unknown }>;
}

/**
 * Steps 1–3 of §Checks performed on receipt of a PDU (format in `roomVersion` and in `roomId`,
 * signatures with fetched keys, content hash) on a PDU fetched from another server — the same
 * checks `/send` runs (core's `checkReceivedPdu`). `unsigned` has already been trimmed.
 */
export type PduVerifier = (pdu: unknown, roomVersion: RoomVersion, roomId: string) => Promise<PduCheckOutcome>;

export interface FederationInbound {
  readonly fetcher: FederationFetcher;
  readonly verify: PduVerifier;
}

// ---- outcomes ----

export type PduOutcomeKind =
  /** In the timeline. */
  | 'accepted'
  /** Stored, not in the timeline (§Soft failure). */
  | 'soft_failed'
  /** Stored as rejected (§Rejection). */
  | 'rejected'
  /** Already held (any status but outlier). */
  | 'known'
  /** Not a valid event of this room (step 1). */
  | 'dropped'
  /** Not stored: what it needs could not be had (auth or prev events), or it could not be written. */
  | 'failed'
  /** Stored as history before the room's oldest events (backfill). */
  | 'backfilled';

export interface PduOutcome {
  /** Undefined for a PDU that has no id (not an event of the room's format). */
  readonly eventId: string | undefined;
  readonly outcome: PduOutcomeKind;
  readonly reason?: string;
}

/**
 * The per-PDU `error` of a `/send` answer (spec: `transactions.yaml`): none for an event handled
 * (accepted, soft-failed, already held), a reason otherwise.
 */
export function sendAnswerError(outcome: PduOutcome): string | undefined {
  switch (outcome.outcome) {
    case 'accepted':
    case 'soft_failed':
    case 'known':
    case 'backfilled':
      return undefined;
    default:
      return outcome.reason ?? outcome.outcome;
  }
}

// ---- limits ----

/** The PDU format allows at most 20 prev events and 10 auth events (spec: PDU definitions). */
const MAX_PREV_EVENTS_RECEIVED = 20;
const MAX_AUTH_EVENTS_RECEIVED = 10;
/** get_missing_events asks for this many events (as Synapse). */
const MISSING_EVENTS_LIMIT = 10;
/** At most this many events fetched for one batch (auth chains, state at gaps). */
const MAX_FETCHED_PER_BATCH = 50_000;
/** At most this many ids taken from a `/state_ids` or `/event_auth` answer. */
const MAX_IDS_PER_ANSWER = 100_000;
/** Concurrent `/event` requests. */
const FETCH_CONCURRENCY = 8;

// ---- the intake ----

export interface IntakeHost {
  readonly graph: RoomGraph;
  readonly eventCache: EventCache;
  readonly federation: FederationInbound | undefined;
  readonly log: Logger;
  loadRoom(roomId: string): Promise<RoomContext>;
  stage(room: RoomContext, items: readonly StageItem[]): Promise<{ commit: Promise<PersistedEvent[]> }>;
  currentStateFrom(room: RoomContext, extremities: Extremity[], pending?: ReadonlyMap<string, RoomEvent>): Promise<CurrentState>;
  /** Reserves `count` stream positions below every event held (backfill); answers the lowest. */
  reserveHistoryPositions(count: number): Promise<number>;
}

export interface StagedBatch {
  /** Waits for the batch's commits; the outcomes, one per PDU in the order received. */
  settle(): Promise<PduOutcome[]>;
}

export class PduIntake {
  constructor(private readonly host: IntakeHost) {}

  /** Processes a room's PDUs; call in the room's queue. The commits are awaited by `settle`. */
  receive(origin: string, roomId: string, pdus: readonly unknown[]): Promise<StagedBatch> {
    return this.run(origin, roomId, pdus, 'push');
  }

  /**
   * Processes PDUs a server answered `/backfill` with (already through steps 1–3) as history
   * before the room's oldest events; call in the room's queue.
   */
  backfill(origin: string, roomId: string, pdus: readonly unknown[]): Promise<StagedBatch> {
    return this.run(origin, roomId, pdus, 'backfill');
  }

  private async run(origin: string, roomId: string, pdus: readonly unknown[], mode: 'push' | 'backfill'): Promise<StagedBatch> {
    let room: RoomContext;
    try {
      room = await this.host.loadRoom(roomId);
    } catch (err) {
      if (err instanceof MatrixError && err.status === 404)
        return settled(pdus.map(() => ({ eventId: undefined, outcome: 'failed', reason: `unknown room ${roomId}` })));
      throw err;
    }
    const run = new IntakeRun(this.host, room, origin);
    const outcomes = new Array<PduOutcome | undefined>(pdus.length);
    const events: RoomEvent[] = [];
    const indexOf = new Map<string, number[]>();
    pdus.forEach((pdu, i) => {
      const parsed = run.parse(pdu);
      if (!parsed.ok) {
        outcomes[i] = { eventId: parsed.eventId, outcome: 'dropped', reason: parsed.reason };
        return;
      }
      events.push(parsed.event);
      const slots = indexOf.get(parsed.event.eventId);
      if (slots) slots.push(i);
      else indexOf.set(parsed.event.eventId, [i]);
    });
    // What the database holds of the batch's events, their prev and auth events, and who already
    // follows them: read once for the batch, not once per event.
    await run.prefetch(events);
    const results = new Map<string, PduOutcome>();
    if (mode === 'backfill') {
      // Oldest first; positions reserved for the whole batch, the oldest lowest (a rejected event leaves a hole).
      const ordered = orderForProcessing([...events].sort((a, b) => a.depth - b.depth));
      const base = ordered.length === 0 ? 0 : await this.host.reserveHistoryPositions(ordered.length);
      for (const [i, event] of ordered.entries()) {
        results.set(event.eventId, await run.guarded(event, () => run.processPushed(event, base + i)));
      }
    } else {
      for (const event of orderForProcessing(events)) {
        results.set(event.eventId, await run.guarded(event, () => run.processPushed(event)));
      }
    }
    for (const [eventId, slots] of indexOf) for (const i of slots) outcomes[i] = results.get(eventId);
    return {
      settle: async () => {
        const failures = await run.settleCommits();
        return outcomes.map((outcome) => {
          const result = outcome ?? { eventId: undefined, outcome: 'failed' as const, reason: 'not processed' };
          const failure = result.eventId === undefined ? undefined : failures.get(result.eventId);
          return failure ? { eventId: result.eventId, outcome: 'failed', reason: failure } : result;
        });
      },
    };
  }
}

function settled(outcomes: PduOutcome[]): StagedBatch {
  return { settle: async () => outcomes };
}

/** What the intake knows of an event of the room. */
interface Known {
  readonly event: RoomEvent;
  readonly status: GraphStatus;
  readonly stateGroup: number | undefined;
  readonly position: number | undefined;
}

type Parsed = { ok: true; event: RoomEvent } | { ok: false; eventId: string | undefined; reason: string };

/** One batch's processing: the room, the origin, what was fetched and staged. */
class IntakeRun {
  private readonly version: RoomVersion;
  private readonly roomId: string;
  private readonly commits: Array<{ eventIds: string[]; commit: Promise<unknown> }> = [];
  private fetched = 0;
  /** Ids asked of the origin already in this batch (not asked twice). */
  private readonly asked = new Set<string>();
  /**
   * What the database held of this room's events when this run first looked (undefined: none).
   * The room's writes all go through its queue, in which this run is, and the run's own writes go
   * to the room's `known` first (`stage`), which `lookup` reads before this.
   */
  private readonly stored = new Map<string, Known | undefined>();
  /** Ids the database holds for events of another room (rooms v1/v2: senders choose event ids). */
  private readonly elsewhere = new Set<string>();
  /** The batch's events' children in the database when the batch began (see `childrenOf`). */
  private prefetchedChildren: Map<string, string[]> | undefined;

  constructor(
    private readonly host: IntakeHost,
    private readonly room: RoomContext,
    private readonly origin: string,
  ) {
    this.version = room.version;
    this.roomId = room.roomId;
  }

  // ---- parsing ----

  /**
   * Step 1 again (the receiving process checked it; PDUs may also come from elsewhere) and the
   * PDU format's limits: at most 20 prev and 10 auth events, and an event cannot cite itself.
   */
  parse(pdu: unknown): Parsed {
    const parsed = parseReceivedPdu(pdu, this.version, this.roomId);
    if (!parsed.ok) {
      const id = isJsonObject(pdu) && typeof pdu.event_id === 'string' ? pdu.event_id : undefined;
      return { ok: false, eventId: id, reason: parsed.outcome.reason };
    }
    const { event } = parsed;
    const problem = formatProblem(event);
    if (problem) return { ok: false, eventId: event.eventId, reason: problem };
    return { ok: true, event };
  }

  /** Runs one event's processing; anything it throws but a database outage becomes its outcome. */
  async guarded(event: RoomEvent, work: () => Promise<PduOutcome>): Promise<PduOutcome> {
    try {
      return await work();
    } catch (err) {
      if (err instanceof DatabaseUnavailableError) throw err;
      this.host.log.warn(
        { roomId: this.roomId, eventId: event.eventId, origin: this.origin, err: String(err) },
        'failed to process a received event',
      );
      return { eventId: event.eventId, outcome: 'failed', reason: 'internal error while processing the event' };
    }
  }

  // ---- what we know ----

  /**
   * Reads, in one query each, what the database holds of a batch's events and of the events they
   * cite, and which events already follow them.
   */
  async prefetch(events: readonly RoomEvent[]): Promise<void> {
    const ids = new Set<string>();
    for (const event of events) {
      ids.add(event.eventId);
      for (const id of event.prevEventIds) ids.add(id);
      for (const id of authEventIdsWithCreate(event, this.version.roomIdFromCreateEvent)) ids.add(id);
    }
    await this.lookup(ids);
    const children = new Map<string, string[]>();
    for (const edge of await this.host.graph.store.childEdges(events.map((e) => e.eventId))) {
      const list = children.get(edge.prev_event_id);
      if (list) list.push(edge.event_id);
      else children.set(edge.prev_event_id, [edge.event_id]);
    }
    this.prefetchedChildren = children;
  }

  /**
   * The events that cite `eventId` as a prev event. What was read for the batch serves while
   * nothing has been fetched from the origin: until then every event this run stored is one of
   * the batch, processed after its prev events (`orderForProcessing`), so none of them cites an
   * event processed later.
   */
  private async childrenOf(eventId: string): Promise<string[]> {
    if (this.prefetchedChildren && this.asked.size === 0 && this.fetched === 0) return this.prefetchedChildren.get(eventId) ?? [];
    return (await this.host.graph.store.childEdges([eventId])).map((c) => c.event_id);
  }

  /** Known events among `ids`: what this room's context staged, then the database. */
  private async lookup(ids: Iterable<string>): Promise<Map<string, Known>> {
    const found = new Map<string, Known>();
    const rest: string[] = [];
    for (const id of new Set(ids)) {
      const staged = this.room.known.get(id);
      if (staged) {
        found.set(id, { ...staged, position: undefined });
      } else if (this.stored.has(id)) {
        const known = this.stored.get(id);
        if (known) found.set(id, known);
      } else {
        rest.push(id);
      }
    }
    if (rest.length > 0) {
      const rows = await this.host.graph.events(this.roomId, this.version, rest, this.elsewhere);
      for (const id of rest) {
        const graphEvent = rows.get(id);
        const known: Known | undefined = graphEvent && {
          event: graphEvent.event,
          status: graphEvent.row.status,
          stateGroup: graphEvent.row.state_group ?? undefined,
          position: graphEvent.row.stream_ordering ?? undefined,
        };
        this.stored.set(id, known);
        if (known) found.set(id, known);
      }
    }
    return found;
  }

  /** The state after a known event (before it, for a rejected one); undefined for an outlier. */
  private async stateAfter(known: Known): Promise<StateIds | undefined> {
    if (known.status === 'outlier') return undefined;
    return this.host.graph.stateGroups.stateAfterEvent({
      room_id: this.roomId,
      state_group: known.stateGroup ?? null,
      stream_ordering: known.position ?? null,
    });
  }

  // ---- the steps ----

  /** An event sent to us, or with `historyPosition` one backfilled (stored there if accepted). */
  async processPushed(event: RoomEvent, historyPosition?: number): Promise<PduOutcome> {
    if (await this.inAnotherRoom(event.eventId))
      return { eventId: event.eventId, outcome: 'dropped', reason: 'the event id belongs to an event of another room' };
    const existing = (await this.lookup([event.eventId])).get(event.eventId);
    if (existing && existing.status !== 'outlier') {
      return {
        eventId: event.eventId,
        outcome: existing.status === 'rejected' ? 'rejected' : 'known',
        reason: existing.status === 'rejected' ? 'rejected earlier' : undefined,
      };
    }
    return historyPosition === undefined ? this.process(event, 'push') : this.process(event, 'backfill', historyPosition);
  }

  /** Rooms v1/v2, where senders choose event ids: an id that another room's event has is not taken. */
  private async inAnotherRoom(eventId: string): Promise<boolean> {
    if (this.room.known.has(eventId)) return false;
    if (!this.stored.has(eventId)) await this.lookup([eventId]);
    return this.elsewhere.has(eventId);
  }

  /**
   * Steps 3–6 for an event that is to take its place in the graph: `push` (sent to us) fetches
   * missing prev events with get_missing_events; `pull` (fetched that way) takes the state at a
   * gap from /state_ids.
   */
  private async process(event: RoomEvent, mode: 'push' | 'pull' | 'backfill', historyPosition = 0): Promise<PduOutcome> {
    const id = event.eventId;
    // Step 4: the auth events.
    const auth = await this.authEventsOf(event);
    if (!auth.ok) return { eventId: id, outcome: 'failed', reason: auth.reason };
    let verdict = checkAuthEventsList(event, auth.listed, this.version, (authId) => auth.known.get(authId)?.status === 'rejected');
    if (verdict.allowed) verdict = safeEventAuth(event, authStateFromEvents(auth.listed, auth.create), this.version);

    // Step 3: the prev events, with the state after each.
    const prevIds = [...new Set(event.prevEventIds)];
    let prevs = await this.lookup(prevIds);
    const states = new Map<string, StateIds>();
    const collect = async () => {
      for (const prevId of prevIds) {
        const prev = prevs.get(prevId);
        const state = prev ? await this.stateAfter(prev) : undefined;
        if (state) states.set(prevId, state);
      }
      return prevIds.filter((prevId) => !states.has(prevId));
    };
    let missing = await collect();

    if (!verdict.allowed) {
      // Rejected against its own auth events; kept with the state before it when we have it.
      const stateBefore = missing.length === 0 ? await this.resolveOrUndefined(prevIds.map((p) => states.get(p)!)) : undefined;
      return this.reject(event, `auth events: ${verdict.reason}`, stateBefore, prevs);
    }

    const gaps: string[] = [];
    if (missing.length > 0) {
      if (mode === 'push') {
        await this.fetchMissingPrevs(event);
        prevs = await this.lookup(prevIds);
        missing = await collect();
        if (missing.length > 0)
          return { eventId: id, outcome: 'failed', reason: `prev events unavailable: ${missing.slice(0, 5).join(', ')}` };
      } else {
        for (const prevId of missing) {
          const state = await this.stateAtGap(prevId);
          if (!state) return { eventId: id, outcome: 'failed', reason: `no state for the gap at ${prevId}` };
          states.set(prevId, state);
          gaps.push(prevId);
        }
      }
    }

    // Step 5: the state before the event.
    const stateBefore = await this.resolveOrUndefined(prevIds.map((p) => states.get(p)!));
    if (!stateBefore) return this.reject(event, 'the states of its prev events could not be resolved', undefined, prevs);
    const atEvent = await this.authStateFrom(stateBefore, event);
    verdict = safeEventAuth(event, atEvent, this.version);
    if (!verdict.allowed) return this.reject(event, verdict.reason, stateBefore, prevs, gaps);

    const key = event.stateKey !== undefined ? makeStateKey(event.type, event.stateKey) : undefined;
    if (mode === 'backfill') {
      // History: not checked against the current state, changes neither it nor the forward extremities.
      const stateAfter = key === undefined ? stateBefore : new Map(stateBefore).set(key, id);
      const { group, newGroup } = await this.groupFor(stateAfter, key, id, prevIds, prevs, gaps);
      await this.stage(event, {
        status: 'backfilled',
        stateGroup: group,
        ...(newGroup ? { newGroup } : {}),
        position: historyPosition,
        backward: { add: gaps, remove: [id] },
      });
      return { eventId: id, outcome: 'backfilled' };
    }

    // Step 6: the current state (soft failure). An event that follows exactly the forward
    // extremities has the current state as its state before, which it passed already.
    const extremityIds = new Set(this.room.extremities.map((x) => x.event.eventId));
    const followsAll = gaps.length === 0 && prevIds.length === extremityIds.size && prevIds.every((p) => extremityIds.has(p));
    let softFailure: AuthResult = { allowed: true };
    if (!followsAll)
      softFailure = safeEventAuth(event, await this.currentAuthState(event, gaps.length > 0 ? stateBefore : undefined), this.version);

    const stateAfter = key === undefined ? stateBefore : new Map(stateBefore).set(key, id);
    const { group, newGroup } = await this.groupFor(stateAfter, key, id, prevIds, prevs, gaps);

    if (!softFailure.allowed) {
      this.host.log.info(
        { roomId: this.roomId, eventId: id, origin: this.origin, reason: softFailure.reason },
        'soft-failed a received event',
      );
      await this.stage(event, {
        status: 'soft_failed',
        stateGroup: group,
        ...(newGroup ? { newGroup } : {}),
        ...(gaps.length ? { backward: { add: gaps, remove: [] } } : {}),
      });
      return { eventId: id, outcome: 'soft_failed', reason: softFailure.reason };
    }

    // Accepted.
    const current = await this.currentAfter(event, prevIds, key, group, followsAll);
    await this.stage(event, {
      status: 'timeline',
      stateGroup: group,
      ...(newGroup ? { newGroup } : {}),
      extremities: {
        remove: this.room.extremities.filter((x) => prevIds.includes(x.event.eventId)).map((x) => x.event.eventId),
        add: current.extremities.some((x) => x.event === event) ? [id] : [],
      },
      backward: { add: gaps, remove: [id] },
      current,
    });
    return { eventId: id, outcome: 'accepted' };
  }

  /** Step 4's inputs: the event's auth events, fetching those we lack. */
  private async authEventsOf(
    event: RoomEvent,
  ): Promise<{ ok: true; listed: RoomEvent[]; create: RoomEvent | undefined; known: Map<string, Known> } | { ok: false; reason: string }> {
    const ids = authEventIdsWithCreate(event, this.version.roomIdFromCreateEvent);
    let known = await this.lookup(ids);
    let missing = ids.filter((authId) => !known.has(authId));
    if (missing.length > 0 && this.host.federation) {
      await this.fetchAuthChain(event.eventId);
      known = await this.lookup(ids);
      missing = ids.filter((authId) => !known.has(authId));
      if (missing.length > 0) {
        await this.fetchEvents(missing, { withAuthChains: true });
        known = await this.lookup(ids);
        missing = ids.filter((authId) => !known.has(authId));
      }
    }
    if (missing.length > 0) return { ok: false, reason: `auth events unavailable: ${missing.slice(0, 5).join(', ')}` };
    const listed = [...new Set(event.authEventIds)].map((authId) => known.get(authId)!.event);
    const create = this.version.roomIdFromCreateEvent ? known.get(createEventIdForRoom(this.roomId))?.event : undefined;
    return { ok: true, listed, create, known };
  }

  /** The state the auth rules need from `state` (the create event always), as events. */
  private async authStateFrom(state: StateIds, event: RoomEvent): Promise<Map<StateKey, RoomEvent>> {
    let keys: StateKey[];
    try {
      keys = authEventKeysFor(event.type, event.stateKey, event.sender, event.content, this.version);
    } catch {
      keys = [];
    }
    keys.push(makeStateKey('m.room.create', ''));
    const ids = new Map<StateKey, string>();
    for (const key of keys) {
      const stateId = state.get(key);
      if (stateId !== undefined) ids.set(key, stateId);
    }
    const events = await this.lookup(ids.values());
    const authState = new Map<StateKey, RoomEvent>();
    for (const [key, stateId] of ids) {
      const known = events.get(stateId);
      if (known) authState.set(key, known.event);
    }
    return authState;
  }

  /**
   * The current state to soft-fail against: the room's (resolved across its forward
   * extremities), or for an event after a gap, that resolved with the state before the event
   * (as Synapse: a gap is easy to manufacture, and we may have missed a ban meanwhile).
   */
  private async currentAuthState(event: RoomEvent, stateBeforeAtGap: StateIds | undefined): Promise<Map<StateKey, RoomEvent>> {
    if (!stateBeforeAtGap) return this.room.state;
    const states = await Promise.all(this.room.extremities.map((x) => this.extremityState(x)));
    const resolved = await this.resolveOrUndefined([...states, stateBeforeAtGap]);
    return this.authStateFrom(resolved ?? idsOf(this.room.state), event);
  }

  private async extremityState(extremity: Extremity): Promise<StateIds> {
    const state = await this.host.graph.stateGroups.stateAfterEvent({
      room_id: this.roomId,
      state_group: extremity.group ?? null,
      stream_ordering: extremity.position ?? null,
    });
    return state ?? idsOf(this.room.state);
  }

  /** State resolution over some states, or undefined when it cannot be done (malformed input). */
  private async resolveOrUndefined(states: StateIds[]): Promise<StateIds | undefined> {
    try {
      return await this.host.graph.resolve(this.roomId, this.version, states, (eventId) => {
        const known = this.room.known.get(eventId);
        return known ? { event: known.event, rejected: known.status === 'rejected' } : undefined;
      });
    } catch (err) {
      if (err instanceof DatabaseUnavailableError) throw err;
      this.host.log.warn({ roomId: this.roomId, err: String(err) }, 'state resolution failed');
      return undefined;
    }
  }

  /**
   * The state group after an event: its only prev's group for a message, a child of it for a
   * state event, else (several prevs, a gap) a group built on the first prev's.
   */
  private async groupFor(
    stateAfter: StateIds,
    key: StateKey | undefined,
    eventId: string,
    prevIds: readonly string[],
    prevs: ReadonlyMap<string, Known>,
    gaps: readonly string[],
  ): Promise<{ group: number; newGroup: PlannedStateGroup | undefined }> {
    const { stateGroups } = this.host.graph;
    const only = prevIds.length === 1 && gaps.length === 0 ? prevs.get(prevIds[0]!) : undefined;
    if (only?.stateGroup !== undefined) {
      if (key === undefined) return { group: only.stateGroup, newGroup: undefined };
      const newGroup = await stateGroups.child(this.roomId, only.stateGroup, new Map([[key, eventId]]));
      return { group: newGroup.id, newGroup };
    }
    const parent = prevIds.map((p) => prevs.get(p)?.stateGroup).find((g) => g !== undefined);
    const newGroup = await stateGroups.forState(this.roomId, stateAfter, parent);
    return { group: newGroup.id, newGroup };
  }

  /** The room's forward extremities and current state once `event` is accepted. */
  private async currentAfter(
    event: RoomEvent,
    prevIds: readonly string[],
    key: StateKey | undefined,
    group: number,
    followsAll: boolean,
  ): Promise<CurrentState> {
    const prevSet = new Set(prevIds);
    const remaining = this.room.extremities.filter((x) => !prevSet.has(x.event.eventId));
    // An event some accepted event already follows (it came back as an outlier first) is no extremity.
    const children = await this.childrenOf(event.eventId);
    const followed = children.length > 0 && [...(await this.lookup(children)).values()].some((k) => k.status === 'timeline');
    const extremities = followed ? remaining : [...remaining, { event, group, position: undefined }];
    if (!followed && followsAll) {
      // The usual case: the event follows every extremity, so the state before it is the current state.
      const state = key === undefined ? this.room.state : new Map(this.room.state).set(key, event);
      return { state, group, extremities, changes: key === undefined ? [] : [[key, event]] };
    }
    if (extremities.length === 0)
      return { state: this.room.state, group: this.room.stateGroup, extremities: this.room.extremities, changes: [] };
    return this.host.currentStateFrom(this.room, extremities, new Map([[event.eventId, event]]));
  }

  private async reject(
    event: RoomEvent,
    reason: string,
    stateBefore: StateIds | undefined,
    prevs: ReadonlyMap<string, Known>,
    gaps: readonly string[] = [],
  ): Promise<PduOutcome> {
    this.host.log.info({ roomId: this.roomId, eventId: event.eventId, origin: this.origin, reason }, 'rejected a received event');
    let group: number | undefined;
    let newGroup: PlannedStateGroup | undefined;
    if (stateBefore) {
      const planned = await this.groupFor(stateBefore, undefined, event.eventId, [...new Set(event.prevEventIds)], prevs, gaps);
      group = planned.group;
      newGroup = planned.newGroup;
    }
    await this.stage(event, {
      status: 'rejected',
      rejectedReason: reason.slice(0, 1000),
      stateGroup: group,
      ...(newGroup ? { newGroup } : {}),
    });
    return { eventId: event.eventId, outcome: 'rejected', reason };
  }

  private async stage(event: RoomEvent, write: GraphWrite): Promise<void> {
    const { commit } = await this.host.stage(this.room, [{ event, write }]);
    rememberKnown(this.room, { event, status: write.status, stateGroup: write.stateGroup });
    // The room's context has it now; should it forget it, the database is asked again.
    this.stored.delete(event.eventId);
    this.commits.push({ eventIds: [event.eventId], commit });
  }

  /** Waits for every commit; the events whose commit failed, with why. */
  async settleCommits(): Promise<Map<string, string>> {
    const failures = new Map<string, string>();
    const results = await Promise.allSettled(this.commits.map((c) => c.commit));
    let unavailable: DatabaseUnavailableError | undefined;
    results.forEach((result, i) => {
      if (result.status === 'fulfilled') return;
      if (result.reason instanceof DatabaseUnavailableError) unavailable ??= result.reason;
      for (const eventId of this.commits[i]!.eventIds) failures.set(eventId, 'the event could not be stored');
    });
    // The sender retries a transaction answered with an error; nothing is lost.
    if (unavailable) throw unavailable;
    return failures;
  }

  // ---- fetching ----

  /** Checks fetched PDUs (steps 1–3) and keeps the valid events of this room. */
  private async verifyAll(pdus: readonly unknown[]): Promise<RoomEvent[]> {
    const federation = this.host.federation;
    if (!federation) return [];
    const now = Date.now();
    const events: RoomEvent[] = [];
    await forEachConcurrently(pdus, FETCH_CONCURRENCY * 2, async (pdu) => {
      const trimmed = trimReceivedPdu(pdu, now).pdu;
      let checked: PduCheckOutcome;
      try {
        checked = await federation.verify(trimmed, this.version, this.roomId);
      } catch (err) {
        if (err instanceof DatabaseUnavailableError) throw err;
        return;
      }
      if (checked.outcome === 'drop') return;
      if (checked.event.roomId !== this.roomId || formatProblem(checked.event)) return;
      events.push(checked.event);
    });
    return events;
  }

  /** `/event_auth` for an event, stored as outliers. */
  private async fetchAuthChain(eventId: string): Promise<void> {
    const federation = this.host.federation;
    if (!federation || this.asked.has(`auth:${eventId}`)) return;
    this.asked.add(`auth:${eventId}`);
    const chain = await this.ask(() => federation.fetcher.getEventAuth(this.origin, this.roomId, eventId));
    if (!Array.isArray(chain)) return;
    const pdus = chain.slice(0, Math.max(0, MAX_FETCHED_PER_BATCH - this.fetched));
    this.fetched += pdus.length;
    await this.storeOutliers(await this.verifyAll(pdus));
  }

  /** `/event` for each id (those not asked for already), stored as outliers. */
  private async fetchEvents(ids: readonly string[], options: { withAuthChains: boolean }): Promise<void> {
    const federation = this.host.federation;
    if (!federation) return;
    const wanted = ids.filter((id) => !this.asked.has(id)).slice(0, Math.max(0, MAX_FETCHED_PER_BATCH - this.fetched));
    for (const id of wanted) this.asked.add(id);
    this.fetched += wanted.length;
    const pdus: unknown[] = [];
    await forEachConcurrently(wanted, FETCH_CONCURRENCY, async (id) => {
      const pdu = await this.ask(() => federation.fetcher.getEvent(this.origin, id));
      if (pdu !== undefined) pdus.push(pdu);
    });
    const wantedIds = new Set(wanted);
    const events = (await this.verifyAll(pdus)).filter((e) => wantedIds.has(e.eventId));
    if (options.withAuthChains) {
      // Their own auth events may be missing too: one /event_auth each, no deeper.
      const have = await this.lookup(events.flatMap((e) => authEventIdsWithCreate(e, this.version.roomIdFromCreateEvent)));
      const fetchedIds = new Set(events.map((e) => e.eventId));
      for (const e of events) {
        if (authEventIdsWithCreate(e, this.version.roomIdFromCreateEvent).some((a) => !have.has(a) && !fetchedIds.has(a)))
          await this.fetchAuthChain(e.eventId);
      }
    }
    await this.storeOutliers(events);
  }

  /** A request to the origin; a failure is an empty answer (logged), a database outage is not. */
  private async ask<T>(request: () => Promise<T>): Promise<T | undefined> {
    try {
      return await request();
    } catch (err) {
      if (err instanceof DatabaseUnavailableError) throw err;
      this.host.log.debug({ roomId: this.roomId, origin: this.origin, err: String(err) }, 'a federation request for missing events failed');
      return undefined;
    }
  }

  /**
   * Stores fetched events as outliers, in auth order, each checked against its own auth events
   * (rejected if it fails; left out if its auth events are unknown or form a cycle).
   */
  private async storeOutliers(events: readonly RoomEvent[]): Promise<void> {
    const known = await this.lookup(events.map((e) => e.eventId));
    const pending = new Map<string, RoomEvent>();
    for (const event of events) if (!known.has(event.eventId)) pending.set(event.eventId, event);
    if (pending.size === 0) return;
    const authOf = (event: RoomEvent) => authEventIdsWithCreate(event, this.version.roomIdFromCreateEvent);
    const have = await this.lookup([...pending.values()].flatMap(authOf));
    for (const event of inAuthOrder(pending, this.version)) {
      const status = this.outlierVerdict(event, have);
      if (status) {
        await this.stage(event, {
          status: status.status,
          ...(status.reason ? { rejectedReason: status.reason.slice(0, 1000) } : {}),
          stateGroup: undefined,
        });
        have.set(event.eventId, { event, status: status.status, stateGroup: undefined, position: undefined });
      }
    }
  }

  /** An outlier's own auth check; undefined when its auth events are not all known. */
  private outlierVerdict(
    event: RoomEvent,
    have: ReadonlyMap<string, Known>,
  ): { status: 'outlier' | 'rejected'; reason?: string } | undefined {
    const verdict = checkAgainstOwnAuthEvents(event, this.version, (authId) => {
      const known = have.get(authId);
      return known && { event: known.event, rejected: known.status === 'rejected' };
    });
    if (!verdict) return undefined;
    return verdict.allowed ? { status: 'outlier' } : { status: 'rejected', reason: `auth events: ${verdict.reason}` };
  }

  /**
   * A pushed event's missing prev events: get_missing_events between our forward extremities and
   * the event, processed oldest first as pulled events.
   */
  private async fetchMissingPrevs(event: RoomEvent): Promise<void> {
    const federation = this.host.federation;
    if (!federation || this.asked.has(`missing:${event.eventId}`)) return;
    this.asked.add(`missing:${event.eventId}`);
    const answer = await this.ask(() =>
      federation.fetcher.getMissingEvents(this.origin, this.roomId, {
        earliest: this.room.extremities.map((x) => x.event.eventId),
        latest: [event.eventId],
        limit: MISSING_EVENTS_LIMIT,
        minDepth: 0,
      }),
    );
    if (!Array.isArray(answer)) return;
    const pdus = answer.slice(0, MISSING_EVENTS_LIMIT * 2);
    this.fetched += pdus.length;
    const pulled = (await this.verifyAll(pdus)).filter((e) => e.eventId !== event.eventId);
    for (const missing of orderForProcessing(pulled)) {
      const existing = (await this.lookup([missing.eventId])).get(missing.eventId);
      if ((existing && existing.status !== 'outlier') || (await this.inAnotherRoom(missing.eventId))) continue;
      const outcome = await this.guarded(missing, () => this.process(missing, 'pull'));
      this.host.log.debug(
        { roomId: this.roomId, eventId: missing.eventId, outcome: outcome.outcome, reason: outcome.reason },
        'processed a missing event',
      );
    }
  }

  /**
   * The state after a prev event we lack (spec: §Backfilling and retrieving missing events): the
   * state before it from `/state_ids`, with the prev event itself applied, every event of it we
   * lack fetched and stored as an outlier.
   */
  private async stateAtGap(prevId: string): Promise<StateIds | undefined> {
    const federation = this.host.federation;
    if (!federation) return undefined;
    const answer = await this.ask(() => federation.fetcher.getStateIds(this.origin, this.roomId, prevId));
    if (typeof answer !== 'object' || answer === null) return undefined;
    const pduIds = stringList(answer.pduIds);
    const authChainIds = stringList(answer.authChainIds);
    if (!pduIds || !authChainIds) return undefined;
    const need = [...new Set([prevId, ...pduIds, ...authChainIds])];
    const known = await this.lookup(need);
    await this.fetchEvents(
      need.filter((id) => !known.has(id)),
      { withAuthChains: false },
    );
    const have = await this.lookup(need);
    const prev = have.get(prevId);
    if (!prev) return undefined;
    const state = new Map<StateKey, string>();
    for (const id of pduIds) {
      const entry = have.get(id);
      if (!entry || entry.event.stateKey === undefined || entry.status === 'rejected') continue;
      const key = makeStateKey(entry.event.type, entry.event.stateKey);
      if (!state.has(key)) state.set(key, id);
    }
    if (prev.event.stateKey !== undefined && prev.status !== 'rejected')
      state.set(makeStateKey(prev.event.type, prev.event.stateKey), prevId);
    return state;
  }
}

/** The auth rules, which are meant to answer, never to throw; if they do, the event is not allowed. */
/** Limits of the PDU format that parsing leaves to us (received events only, not backfill). */
function formatProblem(event: RoomEvent): string | undefined {
  if (event.prevEventIds.length > MAX_PREV_EVENTS_RECEIVED) return `more than ${MAX_PREV_EVENTS_RECEIVED} prev_events`;
  if (event.authEventIds.length > MAX_AUTH_EVENTS_RECEIVED) return `more than ${MAX_AUTH_EVENTS_RECEIVED} auth_events`;
  if (event.prevEventIds.includes(event.eventId) || event.authEventIds.includes(event.eventId)) return 'the event cites itself';
  return undefined;
}

function stringList(value: unknown): string[] | undefined {
  if (!Array.isArray(value) || value.length > MAX_IDS_PER_ANSWER) return undefined;
  return value.filter((v): v is string => typeof v === 'string' && v.startsWith('$') && v.length <= 255);
}

function idsOf(state: ReadonlyMap<StateKey, { readonly eventId: string }>): Map<StateKey, string> {
  const ids = new Map<StateKey, string>();
  for (const [key, event] of state) ids.set(key, event.eventId);
  return ids;
}

async function forEachConcurrently<T>(items: readonly T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) await work(items[next++]!);
  });
  await Promise.all(workers);
}
