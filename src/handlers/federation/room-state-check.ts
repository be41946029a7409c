// Checking the state of a room another server hands us: the `state` and `auth_chain` of a
// `send_join` answer (spec: server-server API §Joining Rooms, and §Checks performed on receipt of
// a PDU: each event must pass the auth rules against its own auth events). The signatures and
// hashes are checked before (by the process that received the answer); here, without I/O, each
// event is checked against its auth events in auth order, and the state before the join is what
// passes.

import { authStateFromEvents, checkAuthEventsList, checkEventAuth } from '../../core/auth-rules.js';
import {
  authEventIdsWithCreate,
  createEventIdForRoom,
  stateKey as makeStateKey,
  type RoomEvent,
  type StateKey,
} from '../../core/events.js';
import type { RoomVersion } from '../../core/room-versions.js';

export interface HeldEvent {
  readonly event: RoomEvent;
  readonly rejected: boolean;
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
  const authOf = (event: RoomEvent) => authEventIdsWithCreate(event, version.roomIdFromCreateEvent);
  // Kahn's algorithm over the auth edges inside the answer.
  const waiting = new Map<string, number>();
  const dependents = new Map<string, string[]>();
  for (const event of pending.values()) {
    let count = 0;
    for (const authId of new Set(authOf(event))) {
      if (!pending.has(authId) || authId === event.eventId) continue;
      count++;
      const list = dependents.get(authId);
      if (list) list.push(event.eventId);
      else dependents.set(authId, [event.eventId]);
    }
    waiting.set(event.eventId, count);
  }
  const outliers: Array<{ event: RoomEvent; status: 'outlier' | 'rejected'; reason?: string }> = [];
  const ready = [...pending.keys()].filter((id) => waiting.get(id) === 0);
  while (ready.length > 0) {
    const id = ready.shift()!;
    const event = pending.get(id)!;
    const authIds = authOf(event);
    if (authIds.every((authId) => verdicts.has(authId))) {
      const listed = [...new Set(event.authEventIds)].map((authId) => verdicts.get(authId)!.event);
      const create = version.roomIdFromCreateEvent ? verdicts.get(createEventIdForRoom(roomId))?.event : undefined;
      let verdict = checkAuthEventsList(event, listed, version, (authId) => verdicts.get(authId)?.rejected === true);
      if (verdict.allowed) {
        try {
          verdict = checkEventAuth(event, authStateFromEvents(listed, create), version);
        } catch (err) {
          verdict = { allowed: false, rule: 'internal', reason: `the auth rules failed: ${String(err)}` };
        }
      }
      const rejected = !verdict.allowed;
      verdicts.set(id, { event, rejected });
      outliers.push(
        verdict.allowed ? { event, status: 'outlier' } : { event, status: 'rejected', reason: `auth events: ${verdict.reason}` },
      );
    }
    for (const dependent of dependents.get(id) ?? []) {
      const left = waiting.get(dependent)! - 1;
      waiting.set(dependent, left);
      if (left === 0) ready.push(dependent);
    }
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
