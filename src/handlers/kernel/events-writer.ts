// The events writer: the one place that creates and persists a room's events.
//
// Each room has exactly one writer (in a single process, this one). For each new event it chooses
// prev and auth events, hashes and signs, checks the auth rules against the room's current state,
// and persists, one event at a time per room, in order, without any cross-process locking. Events
// from other servers (`receivePdus`, see federation/pdu-intake.ts) go through the same per-room
// queue. A room's events form a graph (schema 0051): a new local event follows the room's forward
// extremities, and every event records its graph row, edges and state group in its transaction.
// API handlers reach it through `EventsWriterApi`, which worker mode backs with an RPC; arguments
// and results are therefore plain JSON.

import { checkEventAuth, checkRedactionAllowed } from '../../core/auth-rules.js';
import { selectAuthEventIds } from '../../core/auth-events.js';
import { finaliseEvent, MAX_DEPTH, parsePdu } from '../../core/event-format.js';
import { redactEvent } from '../../core/redaction.js';
import {
  authEventIdsWithCreate,
  InvalidEventError,
  splitStateKey,
  stateKey as makeStateKey,
  type RoomEvent,
  type StateKey,
} from '../../core/events.js';
import { generateLegacyEventId } from '../../core/hashes.js';
import { isValidEventId } from '../../core/identifiers.js';
import { isJsonObject, type JsonObject, type JsonValue } from '../../core/json.js';
import { getRoomVersion, type RoomVersion } from '../../core/room-versions.js';
import { verifyJsonSignature, type SigningKey } from '../../core/signing.js';
import { Errors, MatrixError } from '../../errors.js';
import type { ReplicationBus, StreamRow } from '../../streams/bus.js';
import { DatabaseUnavailableError, type Queryable, type TransactionRunner } from '../../storage/database.js';
import type { DirectoryStore } from '../../storage/directory-store.js';
import type { EventsStore } from '../../storage/events-store.js';
import type { RoomStateStore } from '../../storage/room-state-store.js';
import type { StateGroupsStore } from '../../storage/state-groups-store.js';
import type { PositionAllocator } from '../../streams/id-generator.js';
import type { Logger } from '../../util/log.js';
import { LruCache } from '../../util/lru.js';
import { KeyedQueue, StreamPublisher } from '../../streams/stream-writer.js';
import type { EventCache, StoredEvent } from './event-cache.js';
import { PduIntake, type FederationInbound, type PduOutcome } from '../federation/pdu-intake.js';
import { checkReceivedRoomState, type HeldEvent } from '../../core/auth-chain-checks.js';
import { stateDiff, stateIdsOf, type RoomGraph } from './room-graph.js';
import type { PlannedStateGroup, StateIds } from './state-groups.js';
import {
  type CurrentState,
  type Extremity,
  type GraphWrite,
  type PersistedEvent,
  type RoomContext,
  type StagedWrite,
  type StageItem,
} from './room-context.js';

export type { PersistedEvent } from './room-context.js';

/** A new event as a handler asks for it. */
export interface EventDraft {
  type: string;
  stateKey?: string;
  sender: string;
  content: JsonObject;
  /** For m.room.redaction: the event redacted (placed per the room version). */
  redacts?: string;
}

export interface SendOptions {
  /** Makes the send idempotent per (room, user, device, txn id), across restarts. */
  txn?: { userId: string; deviceId: string; txnId: string };
  /** For state: when the same sender already set identical content, return that event instead. */
  dedupeState?: boolean;
}

export interface CreateRoomPlan {
  roomVersion: string;
  creator: string;
  /**
   * The room's m.room.create event, built and signed by `buildCreateEvent`. The caller builds it
   * because the room id (derived from it in v12) decides which events writer owns the room.
   */
  createEvent: JsonObject;
  initialEvents: EventDraft[];
  /** Published in the room directory. */
  isPublic: boolean;
  /** Local aliases to point at the room, created with it. */
  aliases: string[];
}

function isLocalUser(userId: string, serverName: string): boolean {
  return userId.endsWith(`:${serverName}`);
}

export interface EventsWriterApi {
  sendEvent(roomId: string, draft: EventDraft, options?: SendOptions): Promise<PersistedEvent>;
  /**
   * Events of a room pushed by another server (`/send`), already through the receiving process's
   * format, signature and hash checks (spec: server-server API §Checks performed on receipt of a
   * PDU, steps 1–3). Runs steps 4–6 in the room's queue and answers one outcome per PDU, in order.
   */
  receivePdus(origin: string, roomId: string, pdus: JsonObject[]): Promise<PduOutcome[]>;
  /**
   * Events of a room that `origin` answered `/backfill` with, already through steps 1–3: checked
   * (steps 4–5) and stored as history before the room's oldest events, at negative positions
   * (see federation/pdu-intake.ts). One outcome per PDU, in order.
   */
  backfillPdus(origin: string, roomId: string, pdus: JsonObject[]): Promise<PduOutcome[]>;
  /**
   * Creates the room the plan's create event names. Refused with `Errors.roomIdTaken` (a 4xx, so
   * an RPC caller does not retry it) when that room id is already a room's or being created.
   */
  createRoom(plan: CreateRoomPlan): Promise<{ roomId: string; events: PersistedEvent[] }>;
  /**
   * Builds, signs and auth-checks a local event on the room's forward extremities without
   * persisting it: an invite of another server's user goes to that server to be signed first
   * (spec: server-server API §Inviting to a room), then comes back through `receivePdus`.
   */
  prepareEvent(roomId: string, draft: EventDraft): Promise<JsonObject>;
  /**
   * Persists a room joined through another server (`send_join`): its state and auth chain
   * (signatures already checked) as events outside the timeline, each checked against its own auth
   * events, the join as the room's newest timeline event and only forward extremity, and the
   * room's current state from the state returned. 403 when the join does not pass the auth rules
   * against that state.
   */
  persistRemoteJoin(join: RemoteJoin): Promise<PersistedEvent>;
  /**
   * Stores a membership event of a room this server takes no part in (spec: server-server API
   * §Inviting to a room, §Leaving rooms, §Knocking): an invite of a local user, or a local user's
   * leave or knock made through another server. An out-of-band membership (as Synapse's): an
   * outlier, outside the room's timeline, recorded as the user's membership (`room_state`) at a
   * position of the events stream of its own, where sync finds it.
   */
  storeOutOfBandMembership(roomId: string, roomVersion: string, pdu: JsonObject): Promise<PersistedEvent>;
}

/** What `persistRemoteJoin` takes: the answer of `send_join`, its PDUs checked (signatures, hashes). */
export interface RemoteJoin {
  roomId: string;
  roomVersion: string;
  /** The join event, as the resident server signed it. */
  event: JsonObject;
  /** The state before the join. */
  state: JsonObject[];
  authChain: JsonObject[];
}

/** Events staged but not committed, for state resolution: the intake's and `pending`. */
function pendingLookup(
  room: RoomContext,
  pending?: ReadonlyMap<string, RoomEvent>,
): (eventId: string) => { event: RoomEvent; rejected: boolean } | undefined {
  return (eventId) => {
    const event = pending?.get(eventId);
    if (event) return { event, rejected: false };
    const known = room.known.get(eventId);
    return known ? { event: known.event, rejected: known.status === 'rejected' } : undefined;
  };
}

/** The error of `createRoom` for a room id that is taken, also when it crossed an RPC. */
export function isRoomIdTaken(err: unknown): boolean {
  const taken = Errors.roomIdTaken('');
  return err instanceof MatrixError && err.status === taken.status && err.errcode === taken.errcode;
}

/**
 * Builds and signs a new room's m.room.create event: `room_version` in the content, `creator`
 * before v11, and for v1–11 the room id the caller chose (v12 derives it from this event).
 */
export function buildCreateEvent(
  options: { version: RoomVersion; creator: string; content: JsonObject; roomId?: string; now: number },
  serverName: string,
  key: SigningKey,
): { pdu: JsonObject; roomId: string } {
  const { version } = options;
  const content: JsonObject = { ...options.content, room_version: version.id };
  if (!version.creatorIsCreateSender) content.creator = options.creator;
  const pdu: JsonObject = {
    type: 'm.room.create',
    state_key: '',
    sender: options.creator,
    content,
    origin_server_ts: options.now,
    depth: 1,
    prev_events: [],
    auth_events: [],
  };
  if (!version.roomIdFromCreateEvent) {
    if (!options.roomId) throw new Error('v1–11 rooms need a room id chosen by the caller');
    pdu.room_id = options.roomId;
    if (version.eventIdFormat === 'v1') pdu.event_id = generateLegacyEventId(serverName);
  }
  const { pdu: signed, event } = finaliseEvent(pdu, version, serverName, key);
  return { pdu: signed, roomId: event.roomId };
}

/** Extra rows written in the same transaction as an event (e.g. push notifications). */
export type EventSideEffects = (tx: Queryable, event: StoredEvent, stateBefore: ReadonlyMap<StateKey, RoomEvent>) => Promise<void>;

/** At most this many prev events in a new local event (as Synapse); the spec allows 20. */
export const MAX_PREV_EVENTS = 10;

/** An earlier event of the room, which this one follows, failed to commit. */
class ChainBrokenError extends Error {}

export interface EventsWriterDeps {
  transactions: TransactionRunner;
  events: EventsStore;
  /** The room's state as the writer records it (readers go through RoomStateReader). */
  roomState: RoomStateStore;
  /** A new room's aliases are created with it. */
  directory: DirectoryStore;
  /** The rooms' event graphs and state groups (schema 0051). */
  graph: RoomGraph;
  stateGroupsStore: StateGroupsStore;
  /** Fetching from other servers and checking what is fetched; without it, gaps stay unfilled. */
  federation?: FederationInbound;
  eventCache: EventCache;
  ids: PositionAllocator;
  bus: ReplicationBus;
  instanceName: string;
  serverName: string;
  signingKey: SigningKey;
  log: Logger;
  now?: () => number;
  sideEffects?: EventSideEffects;
}

/** The send's transaction id was used before: the send is a retry of an earlier one. */
class DuplicateTransactionError extends Error {}

export class EventsWriter implements EventsWriterApi {
  private readonly rooms = new LruCache<string, RoomContext>(10_000);
  /** Sends with a transaction id that are still committing, by (room, user, device, txn id). */
  private readonly pendingTxns = new Map<string, Promise<PersistedEvent>>();
  /** Events built and staged but not yet committed: in the room's state, not yet in the database. */
  private readonly committing = new Map<string, Promise<PersistedEvent>>();
  /** Rooms with writes in flight: never evicted, since their state is ahead of the database. */
  private readonly active = new Map<string, RoomContext>();
  /** Builds one event at a time per room. */
  private readonly roomQueue = new KeyedQueue();
  private readonly publisher: StreamPublisher;
  private readonly sideEffects: EventSideEffects[] = [];
  private readonly now: () => number;
  private readonly intake: PduIntake;
  /** The lowest position reserved for backfilled history by this process (0: none yet). */
  private lowestHistoryPosition = 0;

  constructor(private readonly deps: EventsWriterDeps) {
    this.now = deps.now ?? Date.now;
    this.publisher = new StreamPublisher('events', deps.ids, deps.bus, deps.instanceName);
    if (deps.sideEffects) this.sideEffects.push(deps.sideEffects);
    this.intake = new PduIntake({
      graph: deps.graph,
      eventCache: deps.eventCache,
      get federation() {
        return deps.federation;
      },
      log: deps.log,
      loadRoom: (roomId) => this.loadRoom(roomId),
      stage: (room, items) => this.stage(room, items, undefined),
      currentStateFrom: (room, extremities, pending) => this.currentStateFrom(room, extremities, pending),
      reserveHistoryPositions: (count) => this.reserveHistoryPositions(count),
    });
  }

  /**
   * Positions below every event stored (and every one reserved by this process), for backfilled
   * history: allocated downwards, so older history always sits lower. The database's lowest is read
   * each time, so writers of other rooms in other processes are only raced while both backfill.
   */
  private async reserveHistoryPositions(count: number): Promise<number> {
    const lowest = Math.min(this.lowestHistoryPosition, await this.deps.events.minStreamOrdering());
    this.lowestHistoryPosition = lowest - count;
    return this.lowestHistoryPosition;
  }

  /** Plugs in requests to other servers for missing events (the federation client; tests). */
  useFederation(federation: FederationInbound | undefined): void {
    this.deps.federation = federation;
  }

  async backfillPdus(origin: string, roomId: string, pdus: JsonObject[]): Promise<PduOutcome[]> {
    const staged = await this.roomQueue.run(roomId, () => this.intake.backfill(origin, roomId, pdus));
    return staged.settle();
  }

  async receivePdus(origin: string, roomId: string, pdus: JsonObject[]): Promise<PduOutcome[]> {
    if (!Array.isArray(pdus)) throw Errors.badJson('pdus must be a list');
    // Checked and staged in the room's queue; the commits are awaited outside it, as for sends.
    const staged = await this.roomQueue.run(roomId, () => this.intake.receive(origin, roomId, pdus));
    return staged.settle();
  }

  async sendEvent(roomId: string, draft: EventDraft, options: SendOptions = {}): Promise<PersistedEvent> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.sendOnce(roomId, draft, options);
      } catch (err) {
        // The event was built on one that then failed to commit: build it again on what is there.
        if (!(err instanceof ChainBrokenError) || attempt >= 3) throw err;
      }
    }
  }

  /**
   * Builds the event in the room's queue, then lets the queue go while the event commits: the
   * room's next event can be built on top of it meanwhile (its commit waits for this one's).
   */
  private async sendOnce(roomId: string, draft: EventDraft, options: SendOptions): Promise<PersistedEvent> {
    const txnKey = options.txn ? `${roomId}\u0000${options.txn.userId}\u0000${options.txn.deviceId}\u0000${options.txn.txnId}` : undefined;
    const staged = await this.roomQueue.run(
      roomId,
      async (): Promise<{ done: PersistedEvent | Promise<PersistedEvent> } | { commit: Promise<PersistedEvent[]> }> => {
        if (options.txn && txnKey) {
          // A retry of a send still committing gets that send's event; one already committed, its
          // stored event. Checked before building, so a retry never breaks the room's write chain.
          const inFlight = this.pendingTxns.get(txnKey);
          if (inFlight) return { done: inFlight };
          const { userId, deviceId, txnId } = options.txn;
          const existing = await this.deps.events.findTxnEvent(roomId, userId, deviceId, txnId);
          if (existing) return { done: this.persistedOf(existing) };
        }
        const room = await this.loadRoom(roomId);
        if (options.dedupeState && draft.stateKey !== undefined) {
          const current = room.state.get(makeStateKey(draft.type, draft.stateKey));
          if (current && current.sender === draft.sender && jsonEqual(current.content, draft.content)) {
            // The same event may still be committing (two identical joins at once).
            return { done: this.committing.get(current.eventId) ?? (await this.persistedOf(current.eventId)) };
          }
        }
        if (room.extremities.length > MAX_PREV_EVENTS && !room.sendBase) await this.prepareSendBase(room);
        const { commit } = await this.stage(room, [{ event: this.buildEvent(room, draft) }], options.txn);
        if (txnKey) {
          const first = commit.then((persisted) => persisted[0]!);
          this.pendingTxns.set(txnKey, first);
          const forget = () => {
            if (this.pendingTxns.get(txnKey) === first) this.pendingTxns.delete(txnKey);
          };
          first.then(forget, forget);
        }
        return { commit };
      },
    );
    if ('done' in staged) return staged.done;
    try {
      const [persisted] = await staged.commit;
      return persisted!;
    } catch (err) {
      // The database's unique key is the last line of defence against a duplicate.
      if (!(err instanceof DuplicateTransactionError) || !options.txn) throw err;
      const { userId, deviceId, txnId } = options.txn;
      const existing = await this.deps.events.findTxnEvent(roomId, userId, deviceId, txnId);
      if (!existing) throw err;
      return this.persistedOf(existing);
    }
  }

  async createRoom(plan: CreateRoomPlan): Promise<{ roomId: string; events: PersistedEvent[] }> {
    const version = getRoomVersion(plan.roomVersion);
    if (!version) throw Errors.unsupportedRoomVersion(`Unsupported room version ${plan.roomVersion}`);
    let create: RoomEvent;
    try {
      create = parsePdu(plan.createEvent, version);
    } catch (err) {
      if (err instanceof InvalidEventError) throw Errors.fromCore({ status: 400, errcode: err.errcode, message: err.message });
      throw err;
    }
    if (create.type !== 'm.room.create' || create.stateKey !== '' || !isLocalUser(create.sender, this.deps.serverName)) {
      throw Errors.badJson('createRoom needs a create event sent by a local user');
    }
    if (
      !verifyJsonSignature(
        redactEvent(create.pdu, version),
        this.deps.serverName,
        this.deps.signingKey.keyId,
        this.deps.signingKey.publicKey,
      )
    ) {
      throw Errors.badJson('the create event is not signed by this server');
    }
    const roomId = create.roomId;
    const room = this.newContext(roomId, version, new Map(), []);
    this.checkAuth(room, create);

    const staged = await this.roomQueue.run(roomId, async () => {
      // The room id may already be a room's (see `Errors.roomIdTaken`). The queue runs creations
      // of one id in turn, so an earlier one still committing is known here, and this one is
      // refused before it stages anything over that room's context. A room that is only in the
      // database is caught by its unique key when this one commits.
      if (this.active.has(roomId) || this.rooms.get(roomId)) throw Errors.roomIdTaken(roomId);
      const built: RoomEvent[] = [create];
      // Each initial event is checked against the state the ones before it produced.
      const working = this.newContext(roomId, version, new Map([[makeStateKey(create.type, ''), create]]), [
        { event: create, group: undefined, position: undefined },
      ]);
      for (const draft of plan.initialEvents) {
        const event = this.buildEvent(working, draft);
        this.apply(working, event);
        built.push(event);
      }
      return await this.stage(
        room,
        built.map((event) => ({ event })),
        undefined,
        async (tx) => {
          const roomInserted = await this.deps.events.insertRoom(tx, {
            roomId,
            version: version.id,
            creator: plan.creator,
            isPublic: plan.isPublic,
            createdTs: create.originServerTs,
          });
          if (!roomInserted) throw Errors.roomIdTaken(roomId);
          for (const alias of plan.aliases) {
            const inserted = await this.deps.directory.createAlias(alias, roomId, plan.creator, tx);
            if (!inserted) throw Errors.roomInUse(`Room alias ${alias} already taken`);
          }
        },
      );
    });
    const persisted = await staged.commit;
    this.deps.eventCache.rememberRoomVersion(roomId, version);
    return { roomId, events: persisted };
  }

  async prepareEvent(roomId: string, draft: EventDraft): Promise<JsonObject> {
    return this.roomQueue.run(roomId, async () => {
      const room = await this.loadRoom(roomId);
      if (room.extremities.length > MAX_PREV_EVENTS && !room.sendBase) await this.prepareSendBase(room);
      return this.buildEvent(room, draft).pdu;
    });
  }

  async persistRemoteJoin(join: RemoteJoin): Promise<PersistedEvent> {
    const version = getRoomVersion(join.roomVersion);
    if (!version) throw Errors.incompatibleRoomVersion(join.roomVersion);
    const { roomId } = join;
    const parse = (pdu: JsonObject): RoomEvent | undefined => {
      try {
        const event = parsePdu(pdu, version);
        return event.roomId === roomId ? event : undefined;
      } catch {
        return undefined;
      }
    };
    const joinEvent = parse(join.event);
    if (!joinEvent || joinEvent.type !== 'm.room.member' || joinEvent.content.membership !== 'join' || joinEvent.stateKey === undefined) {
      throw Errors.badJson('not a join event of this room');
    }
    const state = join.state.map(parse).filter((e): e is RoomEvent => e !== undefined);
    const authChain = join.authChain.map(parse).filter((e): e is RoomEvent => e !== undefined);
    const joinKey = makeStateKey('m.room.member', joinEvent.stateKey);

    type Staged =
      | { done: Promise<PersistedEvent> }
      | { commit: Promise<PersistedEvent[]>; statePosition: Awaited<ReturnType<StreamPublisher['reserve']>> };
    const staged = await this.roomQueue.run(roomId, async (): Promise<Staged> => {
      const { graph, roomState } = this.deps;
      const ids = new Set<string>([joinEvent.eventId]);
      for (const event of [...state, ...authChain]) {
        ids.add(event.eventId);
        for (const authId of authEventIdsWithCreate(event, version.roomIdFromCreateEvent)) ids.add(authId);
      }
      const heldRows = await graph.events(roomId, version, [...ids]);
      const existingJoin = heldRows.get(joinEvent.eventId);
      if (existingJoin?.row.status === 'timeline') return { done: this.persistedOf(joinEvent.eventId) };
      const held = new Map<string, HeldEvent>();
      for (const [id, { event, row }] of heldRows)
        if (id !== joinEvent.eventId) held.set(id, { event, rejected: row.status === 'rejected' });
      const checked = checkReceivedRoomState(version, roomId, state, authChain, held);
      const before = checked.state;
      // "The resolved current room state prior to the join event": never the join itself.
      if (before.get(joinKey)?.eventId === joinEvent.eventId) before.delete(joinKey);
      if (!before.has(makeStateKey('m.room.create', ''))) throw Errors.forbidden('the state of the room has no valid create event');
      const authResult = checkEventAuth(joinEvent, before, version);
      if (!authResult.allowed) throw Errors.forbidden(`the join is not allowed by the room's state: ${authResult.reason}`);

      let existing: RoomContext | undefined;
      try {
        existing = await this.loadRoom(roomId);
      } catch (err) {
        if (!(err instanceof MatrixError && err.status === 404)) throw err;
      }
      const room = this.newContext(roomId, version, new Map(before), existing?.extremities ?? []);
      const after = new Map(before).set(joinKey, joinEvent);
      const group = await graph.stateGroups.forState(roomId, stateIdsOf(after), undefined);
      // The state before the join is opened at a position of its own just below the join's, so
      // sync's "state at the start of the timeline" of the newly joined room is that state.
      const statePosition = await this.publisher.reserve(1);
      const rows = await roomState.currentState(roomId);
      const current = new Map(rows.map((r) => [makeStateKey(r.type, r.state_key), r.event_id]));
      const changesBefore: Array<[StateKey, RoomEvent | undefined]> = [];
      for (const [key, event] of before) if (current.get(key) !== event.eventId) changesBefore.push([key, event]);
      for (const key of current.keys()) if (!before.has(key) && key !== joinKey) changesBefore.push([key, undefined]);
      const create = before.get(makeStateKey('m.room.create', ''))!;
      const creator = typeof create.content.creator === 'string' && !version.creatorIsCreateSender ? create.content.creator : create.sender;
      const outlierItems: StageItem[] = checked.outliers.map(({ event, status, reason }) => ({
        event,
        write: { status, stateGroup: undefined, ...(reason ? { rejectedReason: reason.slice(0, 1000) } : {}) },
      }));
      const missingPrevs = joinEvent.prevEventIds.filter(
        (id) => !heldRows.has(id) && !checked.outliers.some((o) => o.event.eventId === id),
      );
      const joinWrite: GraphWrite = {
        status: 'timeline',
        stateGroup: group.id,
        newGroup: group,
        extremities: { remove: room.extremities.map((x) => x.event.eventId), add: [joinEvent.eventId] },
        backward: { add: missingPrevs, remove: [] },
        current: {
          state: after,
          group: group.id,
          extremities: [{ event: joinEvent, group: group.id, position: undefined }],
          changes: [[joinKey, joinEvent]],
        },
        announcedChanges: [...changesBefore, [joinKey, joinEvent]],
      };
      try {
        const { commit } = await this.stage(room, [...outlierItems, { event: joinEvent, write: joinWrite }], undefined, async (tx) => {
          await this.deps.events.insertRoom(tx, {
            roomId,
            version: version.id,
            creator,
            isPublic: false,
            createdTs: create.originServerTs,
          });
          const position = statePosition.positions[0]!;
          for (const [key, event] of changesBefore) await this.writeCurrentState(tx, roomId, key, event, position);
        });
        return { commit, statePosition };
      } catch (err) {
        statePosition.abandon();
        throw err;
      }
    });
    if ('done' in staged) return staged.done;
    try {
      const persisted = await staged.commit;
      staged.statePosition.complete([]);
      this.deps.eventCache.rememberRoomVersion(roomId, version);
      return persisted[persisted.length - 1]!;
    } catch (err) {
      staged.statePosition.abandon();
      throw err;
    }
  }

  async storeOutOfBandMembership(roomId: string, roomVersion: string, pdu: JsonObject): Promise<PersistedEvent> {
    const version = getRoomVersion(roomVersion);
    if (!version) throw Errors.incompatibleRoomVersion(roomVersion);
    let event: RoomEvent;
    try {
      event = parsePdu(pdu, version);
    } catch (err) {
      if (err instanceof InvalidEventError) throw Errors.badJson(err.message);
      throw err;
    }
    if (event.roomId !== roomId || event.type !== 'm.room.member' || event.stateKey === undefined) {
      throw Errors.badJson('not a membership event of this room');
    }
    const key = makeStateKey(event.type, event.stateKey);
    const memberId = event.stateKey;
    type Staged =
      | { done: Promise<PersistedEvent> }
      | { commit: Promise<PersistedEvent[]>; reservation: Awaited<ReturnType<StreamPublisher['reserve']>> };
    const staged = await this.roomQueue.run(roomId, async (): Promise<Staged> => {
      const held = (await this.deps.graph.store.get([event.eventId])).get(event.eventId);
      if (held) {
        if (held.room_id !== roomId) throw Errors.badJson('the event id belongs to an event of another room');
        if (held.status === 'rejected') return { done: Promise.reject(Errors.forbidden('event rejected earlier')) };
        if (held.status !== 'outlier') return { done: this.persistedOf(event.eventId) };
        // Held out of band already (a retry), or known as an outlier but not yet the user's membership.
        const current = await this.deps.roomState.currentStateEvent(roomId, 'm.room.member', memberId);
        if (current?.event_id === event.eventId)
          return { done: Promise.resolve({ eventId: event.eventId, streamOrdering: Number(current.from_stream) }) };
      }
      let existing: RoomContext | undefined;
      try {
        existing = await this.loadRoom(roomId);
      } catch (err) {
        if (!(err instanceof MatrixError && err.status === 404)) throw err;
      }
      const room = existing ?? this.newContext(roomId, version, new Map(), []);
      const stateBefore = room.state;
      // The membership is the room's current state for the key (what every membership reader
      // reads), at a position of the events stream of its own, but the event is an outlier: not in
      // `events`, so never part of the room's timeline, nor a prev event of ours.
      room.state = new Map(room.state).set(key, event);
      const reservation = await this.publisher.reserve(1);
      const position = reservation.positions[0]!;
      try {
        const { commit } = await this.stage(
          room,
          [{ event, write: { status: 'outlier', stateGroup: undefined } }],
          undefined,
          async (tx) => {
            // A room we never had: its row, so readers know its version.
            await this.deps.events.insertRoom(tx, {
              roomId,
              version: version.id,
              creator: event.sender,
              isPublic: false,
              createdTs: event.originServerTs,
            });
            await this.writeCurrentState(tx, roomId, key, event, position);
            // An invite notifies as any event would (push rules see only the event and the user).
            const stored: StoredEvent = { event, streamOrdering: position, roomVersion: version };
            for (const effect of this.sideEffects) await effect(tx, stored, stateBefore);
          },
        );
        return { commit, reservation };
      } catch (err) {
        reservation.abandon();
        throw err;
      }
    });
    if ('done' in staged) return staged.done;
    try {
      await staged.commit;
    } catch (err) {
      staged.reservation.abandon();
      throw err;
    }
    this.deps.eventCache.rememberRoomVersion(roomId, version);
    // Announced like a membership change in the timeline: sync, the membership caches and the
    // notifier learn of it from this row.
    staged.reservation.complete([eventRow(event)]);
    return { eventId: event.eventId, streamOrdering: staged.reservation.positions[0]! };
  }

  /** Sets (or clears) one key of `room_state` at a position. */
  private async writeCurrentState(
    tx: Queryable,
    roomId: string,
    key: StateKey,
    current: RoomEvent | undefined,
    position: number,
  ): Promise<void> {
    const [type, stateKey] = splitStateKey(key);
    const { roomState } = this.deps;
    if (!current) {
      await roomState.clearState(tx, { roomId, type, stateKey, position });
      return;
    }
    const membership =
      current.type === 'm.room.member' && typeof current.content.membership === 'string' ? current.content.membership : null;
    await roomState.setState(tx, { roomId, type, stateKey, eventId: current.eventId, membership, position });
    if (membership === 'join' || membership === 'invite') await roomState.unforget(tx, stateKey, roomId);
  }

  /** The position readers may rely on for this writer's events. */
  get currentPosition(): number {
    return this.publisher.current;
  }

  /** Adds work done in the transaction of every persisted event (e.g. push notifications). */
  addSideEffect(effect: EventSideEffects): void {
    this.sideEffects.push(effect);
  }

  /** Forgets cached room state (after an out-of-band change to the database). */
  forgetRoom(roomId: string): void {
    this.rooms.delete(roomId);
  }

  private async persistedOf(eventId: string): Promise<PersistedEvent> {
    const stored = await this.deps.eventCache.get(eventId);
    if (!stored) throw new Error(`event ${eventId} vanished`);
    return { eventId, streamOrdering: stored.streamOrdering };
  }

  private async loadRoom(roomId: string): Promise<RoomContext> {
    const cached = this.active.get(roomId) ?? this.rooms.get(roomId);
    if (cached) return cached;
    const version = await this.deps.eventCache.roomVersion(roomId);
    if (!version) throw Errors.notFound(`Unknown room ${roomId}`);
    const rows = await this.deps.roomState.currentState(roomId);
    const events = await this.deps.eventCache.getStateEvents(rows.map((r) => r.event_id));
    const state = new Map<StateKey, RoomEvent>();
    for (const row of rows) {
      const stored = events.get(row.event_id);
      if (stored) state.set(makeStateKey(row.type, row.state_key), stored.event);
    }
    const extremities = await this.loadExtremities(roomId);
    if (extremities.length === 0) throw Errors.notFound(`Unknown room ${roomId}`);
    const room = this.newContext(roomId, version, state, extremities);
    this.rooms.set(roomId, room);
    return room;
  }

  private newContext(roomId: string, version: RoomVersion, state: Map<StateKey, RoomEvent>, extremities: Extremity[]): RoomContext {
    return {
      roomId,
      version,
      state,
      stateGroup: extremities.length === 1 ? extremities[0]!.group : undefined,
      extremities,
      sendBase: undefined,
      known: new Map(),
      lastWrite: undefined,
      inFlight: 0,
    };
  }

  /** The room's forward extremities (a room written before schema 0051 without one: its latest event). */
  private async loadExtremities(roomId: string): Promise<Extremity[]> {
    let ids = await this.deps.graph.store.forwardExtremities(roomId);
    if (ids.length === 0) {
      const latest = await this.deps.events.latestEvent(roomId);
      ids = latest ? [latest.event_id] : [];
    }
    const [stored, rows] = await Promise.all([this.deps.eventCache.getMany(ids), this.deps.graph.store.get(ids)]);
    const extremities: Extremity[] = [];
    for (const id of ids) {
      const event = stored.get(id);
      if (!event) continue;
      extremities.push({ event: event.event, group: rows.get(id)?.state_group ?? undefined, position: event.streamOrdering });
    }
    return extremities.sort((a, b) => (a.position ?? 0) - (b.position ?? 0));
  }

  /**
   * More than `MAX_PREV_EVENTS` extremities: a local event follows the deepest ten (as Synapse),
   * and the state before it is the state resolved across those ten.
   */
  private async prepareSendBase(room: RoomContext): Promise<void> {
    const prevs = [...room.extremities]
      .sort((a, b) => b.event.depth - a.event.depth || (b.position ?? 0) - (a.position ?? 0))
      .slice(0, MAX_PREV_EVENTS);
    const states = await Promise.all(prevs.map((x) => this.extremityState(room, x)));
    const resolved = await this.deps.graph.resolve(room.roomId, room.version, states, pendingLookup(room));
    room.sendBase = { prevs, state: await this.stateEvents(room, resolved, room.state) };
  }

  /** The state after an extremity. */
  private async extremityState(room: RoomContext, extremity: Extremity): Promise<StateIds> {
    const state = await this.deps.graph.stateGroups.stateAfterEvent({
      room_id: room.roomId,
      state_group: extremity.group ?? null,
      stream_ordering: extremity.position ?? null,
    });
    return state ?? stateIdsOf(room.state);
  }

  /** `ids` as events, taking the ones `reuse` already holds. */
  private async stateEvents(
    room: RoomContext,
    ids: StateIds,
    reuse: ReadonlyMap<StateKey, RoomEvent>,
    known?: ReadonlyMap<string, RoomEvent>,
  ): Promise<Map<StateKey, RoomEvent>> {
    const state = new Map<StateKey, RoomEvent>();
    const missing: Array<[StateKey, string]> = [];
    for (const [key, eventId] of ids) {
      const held = reuse.get(key);
      const event = held?.eventId === eventId ? held : (known?.get(eventId) ?? room.known.get(eventId)?.event);
      if (event) state.set(key, event);
      else missing.push([key, eventId]);
    }
    if (missing.length > 0) {
      const loaded = await this.deps.graph.events(
        room.roomId,
        room.version,
        missing.map(([, id]) => id),
      );
      for (const [key, eventId] of missing) {
        const event = loaded.get(eventId)?.event;
        if (event) state.set(key, event);
      }
    }
    return state;
  }

  /**
   * The room's current state with `extremities` as its forward extremities: the state after the
   * only one, or the state resolved across them all (spec: server-server API §Soft failure, "the
   * resolved state across all forward extremities"). `known` gives the state after extremities
   * that are not committed yet.
   */
  async currentStateFrom(room: RoomContext, extremities: Extremity[], pending?: ReadonlyMap<string, RoomEvent>): Promise<CurrentState> {
    const states = await Promise.all(extremities.map((x) => this.extremityState(room, x)));
    let resolved: StateIds;
    try {
      resolved = await this.deps.graph.resolve(room.roomId, room.version, states, pendingLookup(room, pending));
    } catch (err) {
      // Only malformed stored state can make resolution fail; keep the current state then.
      this.deps.log.warn(
        { roomId: room.roomId, err: String(err) },
        'state resolution across the forward extremities failed; the current state is kept',
      );
      resolved = stateIdsOf(room.state);
    }
    const state = await this.stateEvents(room, resolved, room.state, pending);
    const changes: Array<[StateKey, RoomEvent | undefined]> = [];
    for (const [key, change] of stateDiff(stateIdsOf(room.state), stateIdsOf(state)))
      changes.push([key, change === null ? undefined : state.get(key)]);
    return { state, group: extremities.length === 1 ? extremities[0]!.group : undefined, extremities, changes };
  }

  /** Builds, hashes, signs and auth-checks a new local event following the room's forward extremities. */
  private buildEvent(room: RoomContext, draft: EventDraft): RoomEvent {
    const { version } = room;
    const base = room.sendBase ?? { prevs: room.extremities, state: room.state };
    const stateIds = new Map<StateKey, string>();
    for (const [key, event] of base.state) stateIds.set(key, event.eventId);
    const authIds = selectAuthEventIds(draft.type, draft.stateKey, draft.sender, draft.content, version, stateIds);
    const legacyFormat = version.eventIdFormat === 'v1';
    const reference = (event: RoomEvent): JsonValue =>
      legacyFormat ? [event.eventId, (event.pdu.hashes as JsonObject | undefined) ?? {}] : event.eventId;
    const byId = new Map<string, RoomEvent>();
    for (const event of base.state.values()) byId.set(event.eventId, event);
    const prevs = base.prevs.map((x) => x.event);
    const pdu: JsonObject = {
      type: draft.type,
      room_id: room.roomId,
      sender: draft.sender,
      content: draft.content,
      origin_server_ts: this.now(),
      // "If the room's depth is already at the limit, the depth must be set to the limit" (spec: PDU `depth`).
      depth: Math.min(Math.max(0, ...prevs.map((e) => e.depth)) + 1, MAX_DEPTH),
      prev_events: prevs.map(reference),
      auth_events: authIds.map((id) => reference(byId.get(id)!)),
    };
    if (draft.stateKey !== undefined) pdu.state_key = draft.stateKey;
    if (draft.redacts !== undefined) {
      if (version.redactsInContent) pdu.content = { ...draft.content, redacts: draft.redacts };
      else pdu.redacts = draft.redacts;
    }
    if (legacyFormat) pdu.event_id = generateLegacyEventId(this.deps.serverName);
    const event = this.finalise(pdu, version);
    this.checkAuth({ state: base.state, version }, event);
    return event;
  }

  private finalise(pdu: JsonObject, version: RoomVersion): RoomEvent {
    try {
      return finaliseEvent(pdu, version, this.deps.serverName, this.deps.signingKey).event;
    } catch (err) {
      if (err instanceof InvalidEventError) {
        throw Errors.fromCore({ status: err.errcode === 'M_TOO_LARGE' ? 413 : 400, errcode: err.errcode, message: err.message });
      }
      throw err;
    }
  }

  private checkAuth(room: Pick<RoomContext, 'state' | 'version'>, event: RoomEvent): void {
    const result = checkEventAuth(event, room.state, room.version);
    if (!result.allowed) throw Errors.forbidden(result.reason, { rule: result.rule });
  }

  /** Applies an event built during room creation to the working context the next one builds on. */
  private apply(room: RoomContext, event: RoomEvent): void {
    if (event.stateKey !== undefined) {
      room.state = new Map(room.state);
      room.state.set(makeStateKey(event.type, event.stateKey), event);
    }
    room.extremities = [{ event, group: undefined, position: undefined }];
  }

  /**
   * The graph rows of a local event: it follows the extremities it lists, so the state before it
   * is the current state (or the send base's); a message shares that state's group, a state event
   * makes a new one.
   */
  private async planLocal(room: RoomContext, event: RoomEvent): Promise<GraphWrite> {
    const base = room.sendBase ?? { prevs: room.extremities, state: room.state };
    const baseGroup = room.sendBase ? undefined : room.stateGroup;
    const prevIds = new Set(event.prevEventIds);
    const remaining = room.extremities.filter((x) => !prevIds.has(x.event.eventId));
    const key = event.stateKey !== undefined ? makeStateKey(event.type, event.stateKey) : undefined;
    let stateAfter = base.state;
    if (key !== undefined) {
      stateAfter = new Map(base.state);
      stateAfter.set(key, event);
    }
    let newGroup: PlannedStateGroup | undefined;
    const { stateGroups } = this.deps.graph;
    if (baseGroup === undefined) {
      // The room's first group (a new room, or the first event since schema 0051), or a merge.
      const parent = base.prevs.find((x) => x.group !== undefined)?.group;
      newGroup = await stateGroups.forState(room.roomId, stateIdsOf(stateAfter), parent);
    } else if (key !== undefined) {
      newGroup = await stateGroups.child(room.roomId, baseGroup, new Map([[key, event.eventId]]));
    }
    const group = newGroup?.id ?? baseGroup;
    const extremity: Extremity = { event, group, position: undefined };
    let current: CurrentState;
    if (remaining.length === 0) {
      current = { state: stateAfter, group, extremities: [extremity], changes: key !== undefined ? [[key, event]] : [] };
    } else {
      current = await this.currentStateFrom(room, [...remaining, extremity], new Map([[event.eventId, event]]));
    }
    return {
      status: 'timeline',
      stateGroup: group,
      ...(newGroup ? { newGroup } : {}),
      extremities: {
        remove: room.extremities.filter((x) => prevIds.has(x.event.eventId)).map((x) => x.event.eventId),
        add: [event.eventId],
      },
      current,
    };
  }

  /**
   * Applies events of one room to its context at once (the next event builds on them) and starts
   * their commit in one transaction, which runs only after the room's previous write committed.
   * Local events are planned here (`planLocal`); received ones come with their `write`. Readers
   * learn of timeline events (cache, bus) only once committed. If the commit fails, the context is
   * dropped (reloaded from the database next time), and writes staged on top of it fail with
   * `ChainBrokenError`, which `sendEvent` retries. The commit answers the timeline events, in order.
   */
  private async stage(
    room: RoomContext,
    built: readonly StageItem[],
    txn: SendOptions['txn'],
    extra?: (tx: Queryable) => Promise<void>,
  ): Promise<{ commit: Promise<PersistedEvent[]> }> {
    const { transactions, events, instanceName, eventCache, graph, stateGroupsStore } = this.deps;
    const reservation = await this.publisher.reserve(built.filter((item) => (item.write?.status ?? 'timeline') === 'timeline').length);
    let next = 0;
    const items: Array<{ stored: StoredEvent; stateBefore: ReadonlyMap<StateKey, RoomEvent>; write: GraphWrite }> = [];
    for (const { event, write: given } of built) {
      const stateBefore = room.state;
      const write = given ?? (await this.planLocal(room, event));
      const position = write.status === 'timeline' ? reservation.positions[next++]! : (write.position ?? 0);
      this.applyWrite(room, event, write, position);
      items.push({ stored: { event, streamOrdering: position, roomVersion: room.version }, stateBefore, write });
    }
    const timeline = items.filter((item) => item.write.status === 'timeline');
    const previous = room.lastWrite;
    const write: StagedWrite = { failed: false, settled: Promise.resolve() };
    room.lastWrite = write;
    room.inFlight++;
    this.active.set(room.roomId, room);

    const commit = (async () => {
      // SQLite runs transactions in the order they start, so only the outcome of the previous
      // write matters; elsewhere, wait for it to finish first.
      if (previous && !transactions.orderedWrites) await previous.settled.catch(() => undefined);
      await transactions.transaction(async (tx) => {
        // The database runs this again when a first attempt lost its connection before committing.
        write.failed = false;
        try {
          if (previous?.failed) throw new ChainBrokenError(`an earlier event of ${room.roomId} failed to commit`);
          await extra?.(tx);
          for (const { stored, stateBefore, write: graphWrite } of items) {
            const { event } = stored;
            if (graphWrite.newGroup) await stateGroupsStore.insert(tx, graphWrite.newGroup.row);
            const inTimeline = graphWrite.status === 'timeline';
            // Backfilled history is in `events` too (below the room's other events), but announced to nobody.
            const inEvents = inTimeline || graphWrite.status === 'backfilled';
            await graph.store.insert(tx, {
              eventId: event.eventId,
              roomId: event.roomId,
              depth: event.depth,
              status: graphWrite.status,
              rejectedReason: graphWrite.rejectedReason,
              stateGroup: graphWrite.stateGroup,
              json: inEvents ? undefined : JSON.stringify(event.pdu),
              prevEventIds: event.prevEventIds,
              // Only state events are auth events: a message's auth edges are never walked (schema 0051).
              authEventIds: inEvents && event.stateKey === undefined ? [] : event.authEventIds,
            });
            if (graphWrite.extremities)
              await graph.store.updateForwardExtremities(tx, room.roomId, graphWrite.extremities.remove, graphWrite.extremities.add);
            if (graphWrite.backward) {
              await graph.store.addBackwardExtremities(tx, room.roomId, graphWrite.backward.add);
              await graph.store.removeBackwardExtremities(tx, room.roomId, graphWrite.backward.remove);
            }
            if (!inEvents) continue;
            const relation = relationOf(event.content);
            await events.insertEvent(tx, {
              streamOrdering: stored.streamOrdering,
              eventId: event.eventId,
              roomId: event.roomId,
              type: event.type,
              stateKey: event.stateKey,
              sender: event.sender,
              depth: event.depth,
              originServerTs: event.originServerTs,
              json: JSON.stringify(event.pdu),
              relatesTo: relation?.eventId,
              relationType: relation?.relType,
              threadId: relation?.relType === 'm.thread' ? relation.eventId : undefined,
              instanceName,
            });
            if (event.type === 'm.room.redaction' && event.redacts)
              await this.recordRedaction(tx, event, stateBefore, room.version, stored.streamOrdering);
            // Push notifications are for new events, not for history fetched later.
            if (inTimeline) for (const effect of this.sideEffects) await effect(tx, stored, stateBefore);
            for (const [key, current] of graphWrite.current?.changes ?? [])
              await this.writeCurrentState(tx, event.roomId, key, current, stored.streamOrdering);
          }
          if (
            txn &&
            !(await events.insertTxn(
              tx,
              room.roomId,
              txn.userId,
              txn.deviceId,
              txn.txnId,
              built[built.length - 1]!.event.eventId,
              this.now(),
            ))
          ) {
            throw new DuplicateTransactionError();
          }
        } catch (err) {
          // Marked before the next transaction runs, so writes staged on top of this one fail.
          write.failed = true;
          throw err;
        }
      });
    })();
    write.settled = commit;

    const committed = commit.then(
      () => {
        for (const { stored } of timeline) eventCache.add(stored);
        this.settle(room);
        reservation.complete(
          timeline.map(({ stored, write: graphWrite }) =>
            eventRow(stored.event, graphWrite.announcedChanges ?? graphWrite.current?.changes),
          ),
        );
        return timeline.map(({ stored }) => ({ eventId: stored.event.eventId, streamOrdering: stored.streamOrdering }));
      },
      (err: unknown) => {
        write.failed = true;
        this.settle(room);
        // The context holds events that are not in the database: forget it, reload next time.
        if (this.active.get(room.roomId) === room || this.rooms.get(room.roomId) === room) {
          this.active.delete(room.roomId);
          this.rooms.delete(room.roomId);
        }
        if (err instanceof DatabaseUnavailableError && err.committed === 'unknown') {
          // The database was closed while the COMMIT's outcome was being learned (shutdown): the
          // events may be stored. Their positions are never announced as done without their rows;
          // at the next start the stream's position is read from the database, rows included.
          this.deps.log.error(
            { roomId: room.roomId, events: items.map(({ stored }) => stored.event.eventId) },
            'the outcome of an event commit is unknown; its position is left unannounced',
          );
        } else {
          reservation.abandon();
        }
        throw err;
      },
    );
    timeline.forEach(({ stored }, i) => {
      const eventId = stored.event.eventId;
      const one = committed.then((persisted) => persisted[i]!);
      this.committing.set(eventId, one);
      const forget = () => this.committing.delete(eventId);
      one.then(forget, forget);
    });
    // Wrapped, so awaiting `stage` (the allocation) does not also wait for the commit.
    return { commit: committed };
  }

  /** Moves the room's context past an event being staged. */
  private applyWrite(room: RoomContext, event: RoomEvent, write: GraphWrite, position: number): void {
    this.deps.graph.remember(event);
    if (write.status !== 'timeline') return;
    const { current } = write;
    if (!current) return;
    room.state = current.state;
    room.stateGroup = current.group;
    room.extremities = current.extremities.map((x) => (x.event === event ? { ...x, position } : x));
    room.sendBase = undefined;
  }
  private settle(room: RoomContext): void {
    room.inFlight--;
    if (room.inFlight === 0 && this.active.get(room.roomId) === room) {
      this.active.delete(room.roomId);
      this.rooms.set(room.roomId, room);
    }
  }

  /** Records a redaction that applies (the target is known, in this room, and may be redacted). */
  private async recordRedaction(
    tx: Queryable,
    redaction: RoomEvent,
    state: ReadonlyMap<StateKey, RoomEvent>,
    version: RoomVersion,
    position: number,
  ): Promise<void> {
    const target = await this.deps.eventCache.get(redaction.redacts!);
    if (!target || target.event.roomId !== redaction.roomId) return;
    if (!checkRedactionAllowed(redaction, target.event, state, version).allowed) return;
    await this.deps.events.insertRedaction(tx, target.event.eventId, redaction.eventId, position);
  }
}

/**
 * The bus row announcing a persisted event (also rebuilt from the database to catch a reader up).
 * `changes` are the current-state keys that changed at its position: when they are anything but
 * the event's own key (state resolution moved other keys, or the event lost its key), the row
 * lists them in `stateDelta`, so readers drop what they cached instead of applying the event.
 */
export function eventRow(event: RoomEvent, changes?: ReadonlyArray<readonly [StateKey, RoomEvent | undefined]>): StreamRow {
  const row: StreamRow = { stream: 'events', roomId: event.roomId, eventId: event.eventId, type: event.type, sender: event.sender };
  if (event.stateKey !== undefined) row.stateKey = event.stateKey;
  if (event.type === 'm.room.member' && typeof event.content.membership === 'string') row.membership = event.content.membership;
  if (event.redacts !== undefined) row.redacts = event.redacts;
  if (changes !== undefined) {
    const ownKey = event.stateKey === undefined ? undefined : makeStateKey(event.type, event.stateKey);
    const onlyOwn =
      ownKey === undefined ? changes.length === 0 : changes.length === 1 && changes[0]![0] === ownKey && changes[0]![1] === event;
    if (!onlyOwn) {
      row.stateDelta = changes.map(([key, current]) => {
        const [type, stateKey] = splitStateKey(key);
        return current === undefined ? { type, stateKey, eventId: null } : { type, stateKey, eventId: current.eventId };
      });
    }
  }
  return row;
}

/**
 * The relation an event's content declares (spec: client-server API §Forming relationships
 * between events), or none when `m.relates_to` is not one: an `event_id` that is no event id, or a
 * `rel_type` that is no string. Both end up in text columns, so a `rel_type` holding U+0000 (which
 * event content may otherwise contain) is not taken as a relation either.
 */
export function relationOf(content: JsonObject): { eventId: string; relType: string } | undefined {
  const relatesTo = content['m.relates_to'];
  if (!isJsonObject(relatesTo)) return undefined;
  const eventId = relatesTo.event_id;
  const relType = relatesTo.rel_type;
  if (!isValidEventId(eventId) || typeof relType !== 'string' || relType.includes('\u0000')) return undefined;
  return { eventId: eventId as string, relType };
}

export function jsonEqual(a: JsonValue | undefined, b: JsonValue | undefined): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const other = b as JsonValue[];
    return a.length === other.length && a.every((v, i) => jsonEqual(v, other[i]));
  }
  const ak = Object.keys(a);
  const bo = b as JsonObject;
  return ak.length === Object.keys(bo).length && ak.every((k) => k in bo && jsonEqual(a[k], bo[k]));
}
