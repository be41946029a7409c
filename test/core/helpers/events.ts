// Test fixtures: build `RoomEvent`s without hashing or signing.
//
// Event ids are whatever the test says (`$create`, `$join-bob`…); when none is given one is made
// up from a counter. The `pdu` is filled in consistently with the other fields so code that reads
// `event.pdu` (signatures, `room_id` presence) sees a plausible PDU, but no hash or signature in it
// is real. Use the signing helpers when a test needs real cryptography.
//
//   const room = new TestRoom(getRoomVersion('12')!, '@alice:a.test');
//   room.member('@bob:b.test', 'join');          // appended and applied to room.state
//   const msg = room.build({ type: 'm.room.message', sender: '@bob:b.test', content: {} });
//   checkEventAuth(msg, room.state, room.version);
//
// `TestRoom` does no auth checks: it applies every state event it is given, which lets tests set up
// any state, legal or not.

import { createEventIdForRoom, stateKey, type Pdu, type RoomEvent, type StateKey } from '../../../src/core/events.js';
import type { JsonObject } from '../../../src/core/json.js';
import type { RoomVersion } from '../../../src/core/room-versions.js';

export interface EventSpec {
  type: string;
  sender: string;
  /** Omit for a message event. */
  stateKey?: string;
  content?: JsonObject;
  /** Defaults to a counter-based id such as `$e7`. */
  id?: string;
  /** Defaults to `!room:<sender's server>`. */
  roomId?: string;
  prevEvents?: string[];
  authEvents?: string[];
  /**
   * For redactions: the top-level `redacts` of the PDU (v1–10 style). For v11+ put `redacts` in
   * `content` instead; either way it becomes `RoomEvent.redacts`.
   */
  redacts?: string;
  /** Defaults to one dummy signature from the sender's server. */
  signatures?: Record<string, Record<string, string>>;
  originServerTs?: number;
  depth?: number;
  /**
   * Leave `room_id` out of the PDU (a v12 create event). `roomId` is then still set on the
   * `RoomEvent`, as the real parser would derive it.
   */
  omitRoomIdFromPdu?: boolean;
  /** Extra top-level PDU fields, for tests of format rules. */
  extraPdu?: JsonObject;
}

let counter = 0;

/** The part of a user, room or event id after the first `:`. */
export function serverOf(id: string): string {
  return id.slice(id.indexOf(':') + 1);
}

export function makeEvent(spec: EventSpec): RoomEvent {
  const eventId = spec.id ?? `$e${++counter}`;
  const roomId = spec.roomId ?? `!room:${serverOf(spec.sender)}`;
  const content = spec.content ?? {};
  const prevEvents = spec.prevEvents ?? [];
  const authEvents = spec.authEvents ?? [];
  const originServerTs = spec.originServerTs ?? 1_700_000_000_000 + counter;
  const depth = spec.depth ?? prevEvents.length;
  const signatures = spec.signatures ?? { [serverOf(spec.sender)]: { 'ed25519:test': 'c2ln' } };

  const pdu: Pdu = {
    type: spec.type,
    sender: spec.sender,
    content,
    origin_server_ts: originServerTs,
    depth,
    prev_events: prevEvents,
    auth_events: authEvents,
    hashes: { sha256: 'aGFzaA' },
    signatures,
    ...(spec.omitRoomIdFromPdu ? {} : { room_id: roomId }),
    ...(spec.stateKey !== undefined ? { state_key: spec.stateKey } : {}),
    ...(spec.redacts !== undefined ? { redacts: spec.redacts } : {}),
    ...(spec.extraPdu ?? {}),
  };
  return {
    eventId,
    roomId,
    type: spec.type,
    stateKey: spec.stateKey,
    sender: spec.sender,
    content,
    originServerTs,
    depth,
    prevEventIds: prevEvents,
    authEventIds: authEvents,
    redacts: spec.redacts ?? (typeof content['redacts'] === 'string' ? content['redacts'] : undefined),
    pdu,
  };
}

/** A state map holding `events`, later ones replacing earlier ones with the same key. */
export function stateMapOf(events: Iterable<RoomEvent>): Map<StateKey, RoomEvent> {
  const state = new Map<StateKey, RoomEvent>();
  for (const event of events) {
    if (event.stateKey !== undefined) state.set(stateKey(event.type, event.stateKey), event);
  }
  return state;
}

/**
 * A room's create event for `version`. For room versions whose room id is derived from the create
 * event (v12) the PDU has no `room_id`, and the room id is `!` + the id's hash part (`$abc` →
 * `!abc`); otherwise the room id is `!room:<creator's server>` unless given.
 */
export function makeCreateEvent(
  version: RoomVersion,
  creator: string,
  options: { id?: string; roomId?: string; content?: JsonObject; additionalCreators?: string[] } = {},
): RoomEvent {
  const content: JsonObject = { room_version: version.id, ...(options.content ?? {}) };
  if (!version.creatorIsCreateSender && !('creator' in content)) content['creator'] = creator;
  if (options.additionalCreators) content['additional_creators'] = options.additionalCreators;
  if (version.roomIdFromCreateEvent) {
    const id = options.id ?? `$create-${++counter}`;
    return makeEvent({
      id,
      type: 'm.room.create',
      sender: creator,
      stateKey: '',
      content,
      roomId: `!${id.slice(1)}`,
      omitRoomIdFromPdu: true,
    });
  }
  return makeEvent({
    id: options.id ?? '$create',
    type: 'm.room.create',
    sender: creator,
    stateKey: '',
    content,
    roomId: options.roomId ?? `!room:${serverOf(creator)}`,
  });
}

/**
 * A room under construction: a create event plus whatever state and messages a test adds. Events
 * built here get the room's id, `prev_events` pointing at the previous event, and `auth_events`
 * chosen by the caller-supplied selector (or none), all without any auth check.
 */
export class TestRoom {
  readonly create: RoomEvent;
  readonly state = new Map<StateKey, RoomEvent>();
  readonly events: RoomEvent[] = [];

  constructor(
    readonly version: RoomVersion,
    readonly creator: string,
    options: { additionalCreators?: string[]; createContent?: JsonObject; createId?: string } = {},
  ) {
    this.create = makeCreateEvent(version, creator, {
      ...(options.createId !== undefined ? { id: options.createId } : {}),
      ...(options.createContent !== undefined ? { content: options.createContent } : {}),
      ...(options.additionalCreators !== undefined ? { additionalCreators: options.additionalCreators } : {}),
    });
    this.add(this.create);
  }

  get roomId(): string {
    return this.create.roomId;
  }

  /** The id of the room's create event (for v12 also derivable from the room id). */
  get createEventId(): string {
    return this.version.roomIdFromCreateEvent ? createEventIdForRoom(this.roomId) : this.create.eventId;
  }

  get lastEventId(): string | undefined {
    return this.events.at(-1)?.eventId;
  }

  /** Builds an event in this room without adding it. */
  build(spec: EventSpec): RoomEvent {
    const last = this.lastEventId;
    return makeEvent({
      roomId: this.roomId,
      ...(last !== undefined ? { prevEvents: [last] } : {}),
      depth: this.events.length + 1,
      ...spec,
    });
  }

  /** Appends an already built event, applying it to `state` if it is a state event. */
  add(event: RoomEvent): RoomEvent {
    this.events.push(event);
    if (event.stateKey !== undefined) this.state.set(stateKey(event.type, event.stateKey), event);
    return event;
  }

  /** Builds and appends. */
  send(spec: EventSpec): RoomEvent {
    return this.add(this.build(spec));
  }

  /** Appends an `m.room.member` event; `sender` defaults to the target. */
  member(target: string, membership: string, options: { sender?: string; content?: JsonObject; id?: string } = {}): RoomEvent {
    return this.send({
      type: 'm.room.member',
      sender: options.sender ?? target,
      stateKey: target,
      content: { membership, ...(options.content ?? {}) },
      ...(options.id !== undefined ? { id: options.id } : {}),
    });
  }

  /** Appends an `m.room.power_levels` event sent by the creator unless told otherwise. */
  powerLevels(content: JsonObject, sender: string = this.creator): RoomEvent {
    return this.send({ type: 'm.room.power_levels', sender, stateKey: '', content });
  }

  /** Appends an `m.room.join_rules` event sent by the creator unless told otherwise. */
  joinRules(joinRule: string, sender: string = this.creator, extra: JsonObject = {}): RoomEvent {
    return this.send({
      type: 'm.room.join_rules',
      sender,
      stateKey: '',
      content: { join_rule: joinRule, ...extra },
    });
  }

  /** A copy of the current state, for tests that tweak it. */
  snapshot(): Map<StateKey, RoomEvent> {
    return new Map(this.state);
  }
}
