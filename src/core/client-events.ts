// Room events as clients see them (S:content/client-server-api/_index.md §Room event format;
// S:data/api/client-server/definitions/client_event.yaml and client_event_without_room_id.yaml;
// facts from Syn:rust/src/events/serialize.rs).
//
// `toClientEvent` runs for every event of every /sync, /messages and /context response, so it
// builds one small object per event and shares `content` (and every other nested value) with the
// stored event; content is copied only when it must differ (redacted events, and pre-v11
// redactions, which gain `content.redacts`). Callers must therefore treat the result as
// read-only, or copy before changing it.
//
// `client` format: `event_id, type, content, sender, origin_server_ts, room_id?, state_key?,
// redacts?, unsigned`. `room_id` is left out where the response implies it (/sync).
// `federation` format: the stored PDU as it is (redacted if the event was), plus `event_id` (v3+
// PDUs have none) and the same `unsigned`; `room_id` and `redacts` are left as the PDU has them.
//
// Decisions:
//   - `unsigned.age` is `now - ageTs`, with `ageTs` defaulting to `origin_server_ts` when the
//     caller does not know when the event arrived, so `age` is always present (js-sdk uses it for
//     local timestamps; Synapse omits it only when it lacks `age_ts`).
//   - `redacts` is served top-level and in `content` for every room version (spec: room version 11,
//     §Moving the `redacts` property of `m.room.redaction` events to a `content` property),
//     taken from the event's version-correct place.
//   - A redacted event gets the room version's redacted content, `unsigned.redacted_because`, and
//     loses `prev_content`/`prev_sender` (Synapse keeps only `age_ts` and `replaces_state` of a
//     pruned event's `unsigned`); `transaction_id` and `membership` are still added, as Synapse.
//     `redacted_because` is formatted with the same options (so no `room_id` in /sync), without
//     a transaction id or membership. Synapse's non-spec `unsigned.redacted_by` is not sent.

import type { RoomEvent } from './events.js';
import { isJsonObject, type JsonObject } from './json.js';
import { redactEvent } from './redaction.js';
import type { RoomVersion } from './room-versions.js';

export type ClientEventFormat = 'client' | 'federation';

/** The fields every client event has; the optional ones are reached through the index. */
export interface ClientEvent extends JsonObject {
  event_id: string;
  type: string;
  content: JsonObject;
  sender: string;
  origin_server_ts: number;
  unsigned: JsonObject;
}

export interface ClientEventOptions {
  readonly roomVersion: RoomVersion;
  /** Default `client`. */
  readonly format?: ClientEventFormat;
  /** Default `true`; /sync passes `false`. Ignored by the `federation` format. */
  readonly includeRoomId?: boolean;
  /** The current time in ms, for `unsigned.age`. */
  readonly now: number;
  /** When this server received the event (Synapse's `age_ts`); default `origin_server_ts`. */
  readonly ageTs?: number;
  /** Only when the requesting device sent the event (spec: client-server API §Transaction identifiers). */
  readonly transactionId?: string;
  /** Set if the event is redacted: the redaction event. */
  readonly redactedBecause?: RoomEvent;
  /** State events: the content of the state this one replaced, if the user may see it. */
  readonly prevContent?: JsonObject;
  /** State events: the sender of the state this one replaced. */
  readonly prevSender?: string;
  /** State events: the id of the state event this one replaced (sent whatever the visibility). */
  readonly replacesState?: string;
  /** The requesting user's membership at the event (MSC4115; `VisibleEvent.membership`). */
  readonly membership?: string;
}

/** The event as `options` asks. See the module comment for what is shared and what is copied. */
export function toClientEvent(event: RoomEvent, options: ClientEventOptions): ClientEvent {
  const redaction = options.redactedBecause;
  const redactedPdu = redaction !== undefined ? redactEvent(event.pdu, options.roomVersion) : undefined;

  const unsigned: JsonObject = { age: options.now - (options.ageTs ?? event.originServerTs) };
  if (options.transactionId !== undefined) unsigned.transaction_id = options.transactionId;
  if (event.stateKey !== undefined) {
    if (redaction === undefined) {
      if (options.prevContent !== undefined) unsigned.prev_content = options.prevContent;
      if (options.prevSender !== undefined) unsigned.prev_sender = options.prevSender;
    }
    if (options.replacesState !== undefined) unsigned.replaces_state = options.replacesState;
  }
  if (options.membership !== undefined) unsigned.membership = options.membership;
  if (redaction !== undefined) {
    unsigned.redacted_because = toClientEvent(redaction, {
      roomVersion: options.roomVersion,
      now: options.now,
      ...(options.format !== undefined ? { format: options.format } : {}),
      ...(options.includeRoomId !== undefined ? { includeRoomId: options.includeRoomId } : {}),
    });
  }

  if (options.format === 'federation') {
    const pdu = redactedPdu ?? event.pdu;
    return { ...pdu, event_id: event.eventId, unsigned } as ClientEvent;
  }

  let content: JsonObject = redactedPdu !== undefined ? (redactedPdu.content as JsonObject) : event.content;
  // For a redacted redaction, only what survived redaction counts: v11 keeps `content.redacts`,
  // older versions drop the top-level `redacts` entirely.
  const redacts =
    event.type !== 'm.room.redaction'
      ? undefined
      : redactedPdu === undefined
        ? event.redacts
        : typeof content.redacts === 'string'
          ? content.redacts
          : undefined;
  if (redacts !== undefined && content.redacts !== redacts) content = { ...content, redacts };

  const out: ClientEvent = {
    event_id: event.eventId,
    type: event.type,
    content,
    sender: event.sender,
    origin_server_ts: event.originServerTs,
    unsigned,
  };
  if (options.includeRoomId !== false) out.room_id = event.roomId;
  if (event.stateKey !== undefined) out.state_key = event.stateKey;
  if (redacts !== undefined) out.redacts = redacts;
  return out;
}

/** A stripped state event (S:data/event-schemas/schema/core-event-schema/stripped_state.yaml). */
export interface StrippedStateEvent extends JsonObject {
  type: string;
  state_key: string;
  sender: string;
  content: JsonObject;
}

/**
 * The stripped form of a state event, for `invite_state`/`knock_state` and
 * `unsigned.invite_room_state`: only `type`, `state_key`, `sender` and `content` (content shared,
 * not copied). Throws if `event` is not a state event.
 */
export function toStrippedState(event: Pick<RoomEvent, 'type' | 'stateKey' | 'sender' | 'content'>): StrippedStateEvent {
  if (event.stateKey === undefined) throw new TypeError(`stripped state needs a state event, got ${event.type}`);
  return {
    type: event.type,
    state_key: event.stateKey,
    sender: event.sender,
    content: isJsonObject(event.content) ? event.content : {},
  };
}

/**
 * Stripped state from the events another server gave with an invite or a knock
 * (`invite_room_state`, `knock_room_state`: full PDUs since spec v1.16, stripped ones before):
 * each entry with a string `type`, `state_key` and `sender` and an object `content`, stripped.
 */
export function strippedStateFromPdus(events: readonly JsonObject[]): StrippedStateEvent[] {
  const stripped: StrippedStateEvent[] = [];
  for (const event of events) {
    const { type, state_key: stateKey, sender, content } = event;
    if (typeof type !== 'string' || typeof stateKey !== 'string' || typeof sender !== 'string' || !isJsonObject(content)) continue;
    stripped.push({ type, state_key: stateKey, sender, content });
  }
  return stripped;
}
