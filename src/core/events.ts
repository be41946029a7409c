// The shapes of events as core/ sees them.
//
// A `Pdu` is the JSON object that is hashed, signed and sent over federation. Its format differs
// between room versions (v1/v2 carry `event_id` and `[id, hashes]` pairs in `prev_events` and
// `auth_events`; v3+ carry plain id lists; a v12 create event has no `room_id`).
//
// A `RoomEvent` is the same event with those differences normalised away, which is what the auth
// rules, state resolution and the rest of the server work with. It keeps the original `pdu` so
// nothing is lost when the event is stored or sent on.

import type { JsonObject } from './json.js';

export type Pdu = JsonObject;

export interface RoomEvent {
  readonly eventId: string;
  /** For a v12 create event, the room id derived from its event id. */
  readonly roomId: string;
  readonly type: string;
  /** `undefined` for a message event; a string (maybe empty) for a state event. */
  readonly stateKey: string | undefined;
  readonly sender: string;
  readonly content: JsonObject;
  readonly originServerTs: number;
  readonly depth: number;
  readonly prevEventIds: readonly string[];
  /**
   * The ids listed in the PDU's `auth_events`. For v12 rooms the create event is an implicit auth
   * event of every other event and is NOT in this list; use `authEventIdsWithCreate`.
   */
  readonly authEventIds: readonly string[];
  /** The event this one redacts: from `content.redacts` (v11+) or the top-level `redacts`. */
  readonly redacts: string | undefined;
  readonly pdu: Pdu;
}

/** The key of a piece of room state: `(type, state_key)` joined by a NUL, which neither may hold. */
export type StateKey = string;

export function stateKey(type: string, key: string): StateKey {
  return `${type}\u0000${key}`;
}

export function splitStateKey(key: StateKey): [type: string, stateKey: string] {
  const at = key.indexOf('\u0000');
  return [key.slice(0, at), key.slice(at + 1)];
}

/** Room state: one event per `(type, state_key)`. */
export type StateMap<T = RoomEvent> = ReadonlyMap<StateKey, T>;

/**
 * Looks up events by id. core/ is pure, so callers load what an algorithm needs (for state
 * resolution: the events of each state set and their auth chains) before calling it.
 */
export interface EventLookup {
  get(eventId: string): RoomEvent | undefined;
}

/** The event was malformed or broke a limit; `errcode` is what a client-facing API should answer. */
export class InvalidEventError extends Error {
  constructor(
    message: string,
    readonly errcode: 'M_BAD_JSON' | 'M_TOO_LARGE' | 'M_INVALID_PARAM' = 'M_BAD_JSON',
  ) {
    super(message);
    this.name = 'InvalidEventError';
  }
}

/**
 * The auth events of `event` including, for room versions whose room id is derived from the create
 * event (v12), the implicit create event: `$` + the room id's hash part.
 */
export function authEventIdsWithCreate(event: RoomEvent, roomIdFromCreateEvent: boolean): readonly string[] {
  if (!roomIdFromCreateEvent || event.type === 'm.room.create') return event.authEventIds;
  return [...event.authEventIds, createEventIdForRoom(event.roomId)];
}

/** v12 (MSC4291): the create event's id is `$` + the room id without its `!` sigil. */
export function createEventIdForRoom(roomId: string): string {
  return `$${roomId.slice(1)}`;
}
