// History visibility: which room events a user may see
// (S:content/client-server-api/modules/history_visibility.md §Server behaviour;
// Syn:synapse/visibility.py `_check_client_allowed_to_see_event`, `_check_history_visibility`,
// `_check_membership`).
//
// Everything is judged by the state *at the event*. This module takes that state as plain values
// (the `history_visibility` in force and the user's membership) so it stays pure; the caller looks
// them up (for Synapse, the state group of the event, i.e. the state after it).
//
// The rule, per event (the spec's five steps):
//   1. `world_readable` → visible;
//   2. the user's membership was `join` → visible;
//   3. `shared` and the user joined at some point after the event → visible;
//   4. `invited` and the user's membership was `invite` → visible;
//   5. otherwise hidden.
// A missing or unknown `history_visibility` counts as `shared`.
//
// Step 3, "joined at any point after the event": the server cannot cheaply know this per event.
// Synapse approximates it per request with `is_peeking`: `shared` history is visible unless the
// user is peeking, i.e. has no membership to speak of (a world-readable /messages or /context
// without ever having been in the room). A user who joined and later left still sees `shared`
// history up to their leave, because the caller (sync for left rooms, /messages for departed
// users) stops at the leave event. We take the same per-request bit as `joinedSinceEvent`, which
// defaults to "`currentMembership` is `join`" — exactly right for a joined user, since someone
// joined now has joined after every earlier event (or was joined at it). Callers serving a
// departed user's history up to their leave pass `joinedSinceEvent: true` like Synapse does.
//
// Boundary events (the spec's last two paragraphs): an `m.room.history_visibility` event is
// visible if the value before *or* after it allows it; the user's own `m.room.member` event is
// visible if their membership before *or* after it allows it. We evaluate the full rule for each
// side. Synapse instead takes the least restrictive visibility / the "most joined" membership and
// evaluates once; that agrees except in one corner (an `invited` → `joined` change seen by an
// invited user, which the spec allows and Synapse hides). We follow the spec there.
//
// One Synapse rule is kept on top of the spec: a user always sees their own `leave` that follows
// an `invite` (a rejected or withdrawn invite), or the room would never disappear from their
// client. (`join` → `leave` is already covered by the before/after rule.)

import type { JsonObject, JsonValue } from './json.js';

export type HistoryVisibility = 'world_readable' | 'shared' | 'invited' | 'joined';

/** The history visibility a `content.history_visibility` value means: unknown or absent → `shared`. */
export function effectiveHistoryVisibility(value: unknown): HistoryVisibility {
  return value === 'world_readable' || value === 'invited' || value === 'joined' ? value : 'shared';
}

/** The value in force given the content of the `m.room.history_visibility` event (if any). */
export function historyVisibilityOf(content: JsonObject | undefined): HistoryVisibility {
  return effectiveHistoryVisibility(content?.history_visibility);
}

export interface VisibilityQuery {
  /**
   * `content.history_visibility` in the state at the event (raw; unknown and `undefined` mean
   * `shared`). For an `m.room.history_visibility` event itself, the value it sets.
   */
  readonly visibility: unknown;
  /**
   * The user's membership in the state at the event (`undefined`: no member event). For the
   * user's own `m.room.member` event, the membership it sets.
   */
  readonly membershipAtEvent: string | undefined;
  /** The user's membership now; only used to default `joinedSinceEvent`. */
  readonly currentMembership: string | undefined;
  /**
   * The spec's "the user joined the room at any point after the event" (Synapse: not peeking).
   * Defaults to `currentMembership === 'join'`.
   */
  readonly joinedSinceEvent?: boolean;
  /**
   * Set only for boundary events: for an `m.room.history_visibility` event, the value before it
   * (`{ visibility }`, `undefined` if there was none); for the user's own `m.room.member` event,
   * their membership before it (`{ membership }`, `undefined` if there was none).
   */
  readonly before?: { readonly visibility: unknown } | { readonly membership: string | undefined };
}

function allowedBy(visibility: HistoryVisibility, membership: string | undefined, joinedSince: boolean): boolean {
  if (visibility === 'world_readable') return true;
  if (membership === 'join') return true;
  if (visibility === 'shared') return joinedSince;
  if (visibility === 'invited') return membership === 'invite';
  return false;
}

/** Whether the user may see one event (see the module comment for the rule). */
export function isEventVisible(query: VisibilityQuery): boolean {
  const visibility = effectiveHistoryVisibility(query.visibility);
  const membership = query.membershipAtEvent;
  const joinedSince = query.joinedSinceEvent ?? query.currentMembership === 'join';
  if (allowedBy(visibility, membership, joinedSince)) return true;

  const before = query.before;
  if (before === undefined) return false;
  if ('visibility' in before) {
    return allowedBy(effectiveHistoryVisibility(before.visibility), membership, joinedSince);
  }
  // Own membership event. A leave following an invite (rejection / withdrawal) is always shown.
  if (membership === 'leave' && before.membership === 'invite') return true;
  return allowedBy(visibility, before.membership, joinedSince);
}

// ---- batches ----

/** What `filterVisibleEvents` reads of an event (a `RoomEvent` fits). */
export interface VisibilityEvent {
  readonly type: string;
  readonly stateKey: string | undefined;
  readonly sender: string;
  /** Read only for the user's own out-of-band membership events. */
  readonly content?: JsonObject;
}

/** The state the caller looked up for one event. */
export interface EventStateContext {
  /** `content.history_visibility` in the state after the event (raw; `undefined`: none). */
  readonly historyVisibility: unknown;
  /** The user's membership in the state after the event (`undefined`: no member event). */
  readonly membership: string | undefined;
  /**
   * The content of the state event this event replaced (what `unsigned.prev_content` carries).
   * Needed for `m.room.history_visibility` events and the user's own member events; ignored for
   * other events.
   */
  readonly prevContent?: JsonObject | undefined;
}

export interface FilterVisibleOptions {
  /** The user's membership now (defaults `joinedSinceEvent`). */
  readonly currentMembership: string | undefined;
  /** See `VisibilityQuery.joinedSinceEvent`; one value for the whole batch, as Synapse. */
  readonly joinedSinceEvent?: boolean;
  /** Senders the user ignores (`m.ignored_user_list`): their non-state events are dropped. */
  readonly ignoredUsers?: ReadonlySet<string>;
}

export interface VisibleEvent<E> {
  readonly event: E;
  /**
   * The user's membership at the event, including any change the event makes; `leave` when they
   * had none. This is `unsigned.membership` (MSC4115, client_event_without_room_id.yaml).
   */
  readonly membership: string;
}

/**
 * Event types Synapse never sends to clients: its own dummy events (used to merge forward
 * extremities) and `m.room.aliases` (abusable and unredactable in old rooms, so hidden outright).
 */
export const TYPES_HIDDEN_FROM_CLIENTS: ReadonlySet<string> = new Set(['org.matrix.dummy_event', 'm.room.aliases']);

function asString(value: JsonValue | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/**
 * The events of `events` (in order) that `userId` may see, each with the user's membership at
 * it. `contextOf` gives the state at each event; returning `undefined` means the event has no
 * state (an outlier), which only the user's own out-of-band membership events survive (invites
 * received over federation, their rejections), as in Synapse.
 */
export function filterVisibleEvents<E extends VisibilityEvent>(
  userId: string,
  events: Iterable<E>,
  contextOf: (event: E) => EventStateContext | undefined,
  options: FilterVisibleOptions,
): VisibleEvent<E>[] {
  const visible: VisibleEvent<E>[] = [];
  const joinedSince = options.joinedSinceEvent ?? options.currentMembership === 'join';
  for (const event of events) {
    if (TYPES_HIDDEN_FROM_CLIENTS.has(event.type)) continue;
    if (event.stateKey === undefined && options.ignoredUsers?.has(event.sender)) continue;
    const ownMember = event.type === 'm.room.member' && event.stateKey === userId;
    const context = contextOf(event);
    if (context === undefined) {
      if (ownMember) visible.push({ event, membership: asString(event.content?.membership) ?? 'leave' });
      continue;
    }
    let before: VisibilityQuery['before'];
    if (event.type === 'm.room.history_visibility' && event.stateKey === '') {
      before = { visibility: context.prevContent?.history_visibility };
    } else if (ownMember) {
      before = { membership: asString(context.prevContent?.membership) };
    }
    const allowed = isEventVisible({
      visibility: context.historyVisibility,
      membershipAtEvent: context.membership,
      currentMembership: options.currentMembership,
      joinedSinceEvent: joinedSince,
      ...(before !== undefined ? { before } : {}),
    });
    if (allowed) visible.push({ event, membership: context.membership ?? 'leave' });
  }
  return visible;
}
