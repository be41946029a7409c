// Checking events another server hands us against their own auth events (spec: server-server API,
// §Checks performed on receipt of a PDU: an event must pass the auth rules based on the events
// it names as auth events), in auth order, so an event is checked after the auth events it names.
// Used for fetched auth chains and outliers (the PDU intake) and for the `state` and `auth_chain`
// of a `send_join` answer (§Joining Rooms). Signatures and hashes are checked before, with I/O;
// nothing here does any.

import { authStateFromEvents, checkAuthEventsList, checkEventAuth, type AuthResult } from './auth-rules.js';
import { authEventIdsWithCreate, createEventIdForRoom, stateKey as makeStateKey, type RoomEvent, type StateKey } from './events.js';
import type { RoomVersion } from './room-versions.js';

export interface HeldEvent {
  readonly event: RoomEvent;
  readonly rejected: boolean;
}

/** The auth rules against `state`; a rule that throws on hostile input is a rejection, not a crash. */
export function safeEventAuth(event: RoomEvent, state: ReadonlyMap<StateKey, RoomEvent>, version: RoomVersion): AuthResult {
  try {
    return checkEventAuth(event, state, version);
  } catch (err) {
    return { allowed: false, rule: 'internal', reason: `the auth rules failed: ${String(err)}` };
  }
}

/**
 * `pending` in auth order (Kahn's algorithm over the auth edges inside `pending`): each event
 * after the pending events it names as auth events. Events in an auth cycle are left out.
 */
export function inAuthOrder(pending: ReadonlyMap<string, RoomEvent>, version: RoomVersion): RoomEvent[] {
  const waiting = new Map<string, number>();
  const dependents = new Map<string, string[]>();
  for (const event of pending.values()) {
    let count = 0;
    for (const authId of new Set(authEventIdsWithCreate(event, version.roomIdFromCreateEvent))) {
      if (!pending.has(authId) || authId === event.eventId) continue;
      count++;
      const list = dependents.get(authId);
      if (list) list.push(event.eventId);
      else dependents.set(authId, [event.eventId]);
    }
    waiting.set(event.eventId, count);
  }
  const ready = [...pending.keys()].filter((id) => waiting.get(id) === 0);
  const ordered: RoomEvent[] = [];
  while (ready.length > 0) {
    const id = ready.shift()!;
    ordered.push(pending.get(id)!);
    for (const dependent of dependents.get(id) ?? []) {
      const left = waiting.get(dependent)! - 1;
      waiting.set(dependent, left);
      if (left === 0) ready.push(dependent);
    }
  }
  return ordered;
}

/**
 * `event` checked against the auth events it names (and, from v12, its room's create event),
 * each looked up with `held`: undefined when one of them is not held. An event naming a rejected
 * auth event is rejected.
 */
export function checkAgainstOwnAuthEvents(
  event: RoomEvent,
  version: RoomVersion,
  held: (eventId: string) => HeldEvent | undefined,
): AuthResult | undefined {
  const authIds = authEventIdsWithCreate(event, version.roomIdFromCreateEvent);
  if (authIds.some((authId) => held(authId) === undefined)) return undefined;
  const listed = [...new Set(event.authEventIds)].map((authId) => held(authId)!.event);
  const create = version.roomIdFromCreateEvent ? held(createEventIdForRoom(event.roomId))?.event : undefined;
  const verdict = checkAuthEventsList(event, listed, version, (authId) => held(authId)?.rejected === true);
  return verdict.allowed ? safeEventAuth(event, authStateFromEvents(listed, create), version) : verdict;
}

export interface CheckedRoomState {
  /** Events new to us, to store outside the timeline: `outlier` when they passed, else `rejected`. */
  readonly outliers: Array<{ readonly event: RoomEvent; readonly status: 'outlier' | 'rejected'; readonly reason?: string }>;
  /** The state: every state event of `state` that passed its auth checks. */
  readonly state: Map<StateKey, RoomEvent>;
  /** Events left out because some of their auth events were missing (or formed a cycle). */
  readonly unauthorised: number;
}

/**
 * Checks `state` and `authChain` (events of `roomId`, parsed in its version), with `held` the
 * events we already had among them and their auth events.
 */
export function checkReceivedRoomState(
  version: RoomVersion,
  roomId: string,
  state: readonly RoomEvent[],
  authChain: readonly RoomEvent[],
  held: ReadonlyMap<string, HeldEvent>,
): CheckedRoomState {
  const pending = new Map<string, RoomEvent>();
  for (const event of [...authChain, ...state]) {
    if (event.roomId !== roomId || held.has(event.eventId)) continue;
    pending.set(event.eventId, event);
  }
  const verdicts = new Map<string, HeldEvent>(held);
  const outliers: Array<{ event: RoomEvent; status: 'outlier' | 'rejected'; reason?: string }> = [];
  for (const event of inAuthOrder(pending, version)) {
    const verdict = checkAgainstOwnAuthEvents(event, version, (id) => verdicts.get(id));
    if (!verdict) continue;
    verdicts.set(event.eventId, { event, rejected: !verdict.allowed });
    outliers.push(verdict.allowed ? { event, status: 'outlier' } : { event, status: 'rejected', reason: `auth events: ${verdict.reason}` });
  }
  const result = new Map<StateKey, RoomEvent>();
  for (const event of state) {
    if (event.stateKey === undefined || event.roomId !== roomId) continue;
    const verdict = verdicts.get(event.eventId);
    if (!verdict || verdict.rejected) continue;
    result.set(makeStateKey(event.type, event.stateKey), verdict.event);
  }
  return { outliers, state: result, unauthorised: pending.size - outliers.length };
}
