// The events writer: the one place that creates and persists a room's events.
//
// Each room has exactly one writer (in a single process, this one). For each new event it chooses
// prev and auth events, hashes and signs, checks the auth rules against the room's current state,
// and persists, one event at a time per room, in order. That makes each room's history a line
// without any cross-process locking. API handlers reach it through `EventsWriterApi`, which worker
// mode backs with an RPC; arguments and results are therefore plain JSON.

import { checkEventAuth, checkRedactionAllowed } from '../core/auth-rules.js';
import { selectAuthEventIds } from '../core/auth-events.js';
import { finaliseEvent, parsePdu } from '../core/event-format.js';
import { redactEvent } from '../core/redaction.js';
import { InvalidEventError, stateKey as makeStateKey, type RoomEvent, type StateKey } from '../core/events.js';
import { generateLegacyEventId } from '../core/hashes.js';
import { isValidEventId } from '../core/identifiers.js';
import { isJsonObject, type JsonObject, type JsonValue } from '../core/json.js';
import { getRoomVersion, type RoomVersion } from '../core/room-versions.js';
import { verifyJsonSignature, type SigningKey } from '../core/signing.js';
import { Errors, MatrixError } from '../errors.js';
import type { ReplicationBus, StreamRow } from '../streams/bus.js';
import { DatabaseUnavailableError, type Queryable, type TransactionRunner } from '../storage/database.js';
import type { DirectoryStore } from '../storage/directory-store.js';
import type { EventsStore } from '../storage/events-store.js';
import type { RoomStateStore } from '../storage/room-state-store.js';
import type { PositionAllocator } from '../streams/id-generator.js';
import type { Logger } from '../util/log.js';
import { LruCache } from '../util/lru.js';
import { KeyedQueue, StreamPublisher } from '../streams/stream-writer.js';
import type { EventCache, StoredEvent } from './event-cache.js';

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

export interface PersistedEvent {
  eventId: string;
  streamOrdering: number;
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
   * Creates the room the plan's create event names. Refused with `Errors.roomIdTaken` (a 4xx, so
   * an RPC caller does not retry it) when that room id is already a room's or being created.
   */
  createRoom(plan: CreateRoomPlan): Promise<{ roomId: string; events: PersistedEvent[] }>;
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

interface RoomContext {
  readonly roomId: string;
  readonly version: RoomVersion;
  /**
   * Current state events by (type, state_key), including events still being committed. Replaced,
   * never mutated, when state changes, so an event's "state before" stays a stable snapshot.
   */
  state: Map<StateKey, RoomEvent>;
  latest: RoomEvent;
  /** The last staged write of the room: the next one may only commit if this one did. */
  lastWrite: StagedWrite | undefined;
  /** Writes staged but not yet committed (the context may not be evicted meanwhile). */
  inFlight: number;
}

interface StagedWrite {
  failed: boolean;
  settled: Promise<unknown>;
}

/** An earlier event of the room, which this one follows, failed to commit. */
class ChainBrokenError extends Error {}

export interface EventsWriterDeps {
  transactions: TransactionRunner;
  events: EventsStore;
  /** The room's state as the writer records it (readers go through RoomStateReader). */
  roomState: RoomStateStore;
  /** A new room's aliases are created with it. */
  directory: DirectoryStore;
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

  constructor(private readonly deps: EventsWriterDeps) {
    this.now = deps.now ?? Date.now;
    this.publisher = new StreamPublisher('events', deps.ids, deps.bus, deps.instanceName);
    if (deps.sideEffects) this.sideEffects.push(deps.sideEffects);
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
    const staged = await this.roomQueue.run(roomId, async (): Promise<{ done: PersistedEvent | Promise<PersistedEvent> } | { commit: Promise<PersistedEvent[]> }> => {
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
      const { commit } = await this.stage(room, [this.buildEvent(room, draft)], options.txn);
      if (txnKey) {
        const first = commit.then((persisted) => persisted[0]!);
        this.pendingTxns.set(txnKey, first);
        const forget = () => {
          if (this.pendingTxns.get(txnKey) === first) this.pendingTxns.delete(txnKey);
        };
        first.then(forget, forget);
      }
      return { commit };
    });
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
    if (!verifyJsonSignature(redactEvent(create.pdu, version), this.deps.serverName, this.deps.signingKey.keyId, this.deps.signingKey.publicKey)) {
      throw Errors.badJson('the create event is not signed by this server');
    }
    const roomId = create.roomId;
    const room: RoomContext = { roomId, version, state: new Map(), latest: create, lastWrite: undefined, inFlight: 0 };
    this.checkAuth(room, create);

    const staged = await this.roomQueue.run(roomId, async () => {
      // The room id may already be a room's (see `Errors.roomIdTaken`). The queue runs creations
      // of one id in turn, so an earlier one still committing is known here, and this one is
      // refused before it stages anything over that room's context. A room that is only in the
      // database is caught by its unique key when this one commits.
      if (this.active.has(roomId) || this.rooms.get(roomId)) throw Errors.roomIdTaken(roomId);
      const built: RoomEvent[] = [create];
      // Each initial event is checked against the state the ones before it produced.
      const working: RoomContext = { ...room, state: new Map([[makeStateKey(create.type, ''), create]]) };
      for (const draft of plan.initialEvents) {
        const event = this.buildEvent(working, draft);
        this.apply(working, event);
        built.push(event);
      }
      return await this.stage(room, built, undefined, async (tx) => {
        const roomInserted = await this.deps.events.insertRoom(tx, { roomId, version: version.id, creator: plan.creator, isPublic: plan.isPublic, createdTs: create.originServerTs });
        if (!roomInserted) throw Errors.roomIdTaken(roomId);
        for (const alias of plan.aliases) {
          const inserted = await this.deps.directory.createAlias(alias, roomId, plan.creator, tx);
          if (!inserted) throw Errors.roomInUse(`Room alias ${alias} already taken`);
        }
      });
    });
    const persisted = await staged.commit;
    this.deps.eventCache.rememberRoomVersion(roomId, version);
    return { roomId, events: persisted };
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
    const events = await this.deps.eventCache.getMany(rows.map((r) => r.event_id));
    const state = new Map<StateKey, RoomEvent>();
    for (const row of rows) {
      const stored = events.get(row.event_id);
      if (stored) state.set(makeStateKey(row.type, row.state_key), stored.event);
    }
    const latestRow = await this.deps.events.latestEvent(roomId);
    const latest = latestRow ? (await this.deps.eventCache.fromRow(latestRow))?.event : undefined;
    if (!latest) throw Errors.notFound(`Unknown room ${roomId}`);
    const room: RoomContext = { roomId, version, state, latest, lastWrite: undefined, inFlight: 0 };
    this.rooms.set(roomId, room);
    return room;
  }

  /** Builds, hashes, signs and auth-checks a new event following the room's latest event. */
  private buildEvent(room: RoomContext, draft: EventDraft): RoomEvent {
    const { version } = room;
    const stateIds = new Map<StateKey, string>();
    for (const [key, event] of room.state) stateIds.set(key, event.eventId);
    const authIds = selectAuthEventIds(draft.type, draft.stateKey, draft.sender, draft.content, version, stateIds);
    const legacyFormat = version.eventIdFormat === 'v1';
    const reference = (id: string): JsonValue => {
      if (!legacyFormat) return id;
      const event = id === room.latest.eventId ? room.latest : [...room.state.values()].find((e) => e.eventId === id);
      return [id, (event?.pdu.hashes as JsonObject | undefined) ?? {}];
    };
    const pdu: JsonObject = {
      type: draft.type,
      room_id: room.roomId,
      sender: draft.sender,
      content: draft.content,
      origin_server_ts: this.now(),
      depth: room.latest.depth + 1,
      prev_events: [reference(room.latest.eventId)],
      auth_events: authIds.map(reference),
    };
    if (draft.stateKey !== undefined) pdu.state_key = draft.stateKey;
    if (draft.redacts !== undefined) {
      if (version.redactsInContent) pdu.content = { ...draft.content, redacts: draft.redacts };
      else pdu.redacts = draft.redacts;
    }
    if (legacyFormat) pdu.event_id = generateLegacyEventId(this.deps.serverName);
    const event = this.finalise(pdu, version);
    this.checkAuth(room, event);
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

  private checkAuth(room: RoomContext, event: RoomEvent): void {
    const result = checkEventAuth(event, room.state, room.version);
    if (!result.allowed) throw Errors.forbidden(result.reason, { rule: result.rule });
  }

  private apply(room: RoomContext, event: RoomEvent): void {
    if (event.stateKey !== undefined) {
      room.state = new Map(room.state);
      room.state.set(makeStateKey(event.type, event.stateKey), event);
    }
    room.latest = event;
  }

  /**
   * Applies already-built events of one room to its context at once (the next event builds on
   * them) and starts their commit in one transaction, which runs only after the room's previous
   * write committed. Readers learn of the events (cache, bus) only once committed. If the commit
   * fails, the context is dropped (reloaded from the database next time), and writes staged on top
   * of it fail with `ChainBrokenError`, which `sendEvent` retries.
   */
  private async stage(
    room: RoomContext,
    built: RoomEvent[],
    txn: SendOptions['txn'],
    extra?: (tx: Queryable) => Promise<void>,
  ): Promise<{ commit: Promise<PersistedEvent[]> }> {
    const { transactions, events, roomState, instanceName, eventCache } = this.deps;
    const reservation = await this.publisher.reserve(built.length);
    const items = built.map((event, i) => {
      const stateBefore = room.state;
      this.apply(room, event);
      return { stored: { event, streamOrdering: reservation.positions[i]!, roomVersion: room.version } as StoredEvent, stateBefore };
    });
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
          for (const { stored, stateBefore } of items) {
            const { event } = stored;
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
            if (event.type === 'm.room.redaction' && event.redacts) await this.recordRedaction(tx, event, stateBefore, room.version, stored.streamOrdering);
            for (const effect of this.sideEffects) await effect(tx, stored, stateBefore);
            if (event.stateKey !== undefined) {
              const membership = event.type === 'm.room.member' && typeof event.content.membership === 'string' ? event.content.membership : null;
              await roomState.setState(tx, {
                roomId: event.roomId,
                type: event.type,
                stateKey: event.stateKey,
                eventId: event.eventId,
                membership,
                position: stored.streamOrdering,
              });
              if (membership === 'join' || membership === 'invite') await roomState.unforget(tx, event.stateKey, event.roomId);
            }
          }
          if (txn && !(await events.insertTxn(tx, room.roomId, txn.userId, txn.deviceId, txn.txnId, built[built.length - 1]!.eventId, this.now()))) {
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
        for (const { stored } of items) eventCache.add(stored);
        this.settle(room);
        reservation.complete(items.map(({ stored }) => eventRow(stored.event)));
        return items.map(({ stored }) => ({ eventId: stored.event.eventId, streamOrdering: stored.streamOrdering }));
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
          this.deps.log.error({ roomId: room.roomId, events: items.map(({ stored }) => stored.event.eventId) }, 'the outcome of an event commit is unknown; its position is left unannounced');
        } else {
          reservation.abandon();
        }
        throw err;
      },
    );
    items.forEach(({ stored }, i) => {
      const eventId = stored.event.eventId;
      const one = committed.then((persisted) => persisted[i]!);
      this.committing.set(eventId, one);
      const forget = () => this.committing.delete(eventId);
      one.then(forget, forget);
    });
    // Wrapped, so awaiting `stage` (the allocation) does not also wait for the commit.
    return { commit: committed };
  }

  private settle(room: RoomContext): void {
    room.inFlight--;
    if (room.inFlight === 0 && this.active.get(room.roomId) === room) {
      this.active.delete(room.roomId);
      this.rooms.set(room.roomId, room);
    }
  }

  /** Records a redaction that applies (the target is known, in this room, and may be redacted). */
  private async recordRedaction(tx: Queryable, redaction: RoomEvent, state: ReadonlyMap<StateKey, RoomEvent>, version: RoomVersion, position: number): Promise<void> {
    const target = await this.deps.eventCache.get(redaction.redacts!);
    if (!target || target.event.roomId !== redaction.roomId) return;
    if (!checkRedactionAllowed(redaction, target.event, state, version).allowed) return;
    await this.deps.events.insertRedaction(tx, target.event.eventId, redaction.eventId, position);
  }
}

/** The bus row announcing a persisted event (also rebuilt from the database to catch a reader up). */
export function eventRow(event: RoomEvent): StreamRow {
  const row: StreamRow = { stream: 'events', roomId: event.roomId, eventId: event.eventId, type: event.type, sender: event.sender };
  if (event.stateKey !== undefined) row.stateKey = event.stateKey;
  if (event.type === 'm.room.member' && typeof event.content.membership === 'string') row.membership = event.content.membership;
  if (event.redacts !== undefined) row.redacts = event.redacts;
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
  return ak.length === Object.keys(bo).length && ak.every((k) => k in bo && jsonEqual((a as JsonObject)[k], bo[k]));
}
