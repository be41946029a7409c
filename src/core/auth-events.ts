// Auth events selection (`S:content/server-server-api.md` §Auth events selection): which pieces of
// room state an event cites as its `auth_events`. The event creator uses it to pick them from the
// current state; the auth rules (rule 3.2 in v12 numbering) use it to refuse events that cite
// anything else.

import { stateKey, type StateKey } from './events.js';
import { isJsonObject, type JsonObject } from './json.js';
import type { RoomVersion } from './room-versions.js';

/**
 * The state keys an event of this shape may cite as auth events, in a stable order. A key is
 * listed even when the room has no such state (the creator then simply has nothing to cite).
 *
 * - The create event, except where it is implicit in the room id (v12); none for a create event.
 * - The power levels, and the sender's membership.
 * - For `m.room.member`: the target's membership; the join rules for `join`, `invite` and
 *   `knock`; for a third-party invite the `m.room.third_party_invite` keyed by
 *   `content.third_party_invite.signed.token`; for a join with `join_authorised_via_users_server`
 *   in versions with restricted joins, the authorising user's membership.
 */
export function authEventKeysFor(
  type: string,
  stateKeyOfEvent: string | undefined,
  sender: string,
  content: JsonObject,
  version: RoomVersion,
): StateKey[] {
  if (type === 'm.room.create') return [];

  const keys: StateKey[] = [];
  const add = (key: StateKey) => {
    if (!keys.includes(key)) keys.push(key);
  };
  if (!version.roomIdFromCreateEvent) add(stateKey('m.room.create', ''));
  add(stateKey('m.room.power_levels', ''));
  add(stateKey('m.room.member', sender));

  if (type === 'm.room.member' && stateKeyOfEvent !== undefined) {
    const membership = content['membership'];
    add(stateKey('m.room.member', stateKeyOfEvent));
    if (membership === 'join' || membership === 'invite' || membership === 'knock') {
      add(stateKey('m.room.join_rules', ''));
    }
    if (membership === 'invite') {
      const token = thirdPartyInviteToken(content);
      if (token !== undefined) add(stateKey('m.room.third_party_invite', token));
    }
    if (membership === 'join' && version.restrictedJoins) {
      const authoriser = content['join_authorised_via_users_server'];
      if (typeof authoriser === 'string') add(stateKey('m.room.member', authoriser));
    }
  }
  return keys;
}

/** `content.third_party_invite.signed.token` of a member event, if it is a string. */
export function thirdPartyInviteToken(content: JsonObject): string | undefined {
  const invite = content['third_party_invite'];
  if (!isJsonObject(invite)) return undefined;
  const signed = invite['signed'];
  if (!isJsonObject(signed)) return undefined;
  const token = signed['token'];
  return typeof token === 'string' ? token : undefined;
}

/**
 * Picks the auth event ids for a new event from `state` (a map from state key to event id),
 * following `authEventKeysFor`.
 */
export function selectAuthEventIds(
  type: string,
  stateKeyOfEvent: string | undefined,
  sender: string,
  content: JsonObject,
  version: RoomVersion,
  state: ReadonlyMap<StateKey, string>,
): string[] {
  const ids: string[] = [];
  for (const key of authEventKeysFor(type, stateKeyOfEvent, sender, content, version)) {
    const id = state.get(key);
    if (id !== undefined && !ids.includes(id)) ids.push(id);
  }
  return ids;
}
