// The authorisation rules of room versions 1–12 (`S:content/rooms/v*.md`, fragments
// `v1-auth-rules`, `v3-auth-rules`, `v8-auth-rules`, inline text of v6, v7, v10, v11, v12).
//
// Comments cite rule numbers in v12's numbering. v6–11 have no rule 2 (room id), so from rule 2
// on their rule N is v12's rule N+1. v1–5 number rules 2–3 as v12's 3–4, have the aliases rule
// as rule 4, and from rule 5 on agree with v12. Behaviour branches on the room version's flags,
// never on its number.
//
// `checkEventAuth` is the whole list except the parts of rule 3 that need the `auth_events` list
// itself (duplicates, unexpected entries, rejected entries, other rooms); those are in
// `checkAuthEventsList`. A caller runs both for check 4 of §Checks performed on receipt of a PDU,
// and `checkEventAuth` alone against the state before the event (check 5) and the current state
// (check 6, soft failure). State resolution runs `checkEventAuth` in its iterative auth checks.
//
// Signatures are verified before the auth rules run (§Checks on receipt, step 2). Where a rule
// asks whether the event is "validly signed" by a server (the restricted-join authoriser, rule
// 5.2.1), this module checks that a signature from that server is present and relies on the
// caller's signature check having verified every signature present.

import { authEventKeysFor, thirdPartyInviteToken } from './auth-events.js';
import { createEventIdForRoom, stateKey, type RoomEvent, type StateKey, type StateMap } from './events.js';
import { isValidUserId, serverNameOf } from './identifiers.js';
import { isJsonObject, type JsonObject, type JsonValue } from './json.js';
import { POWER_LEVEL_PROPERTIES, creatorsOf, parsePowerLevelValue, powerLevelsFromState, type PowerLevels } from './power-levels.js';
import { getRoomVersion, type RoomVersion } from './room-versions.js';
import { verifyJsonSignature } from './signing.js';

/**
 * The verdict of the auth rules. `rule` is a stable id naming the rule that rejected the event
 * (`member.join.banned`, `power_levels.users.above_sender`, …); `reason` is for logs.
 */
export type AuthResult = { allowed: true } | { allowed: false; rule: string; reason: string };

const ALLOW: AuthResult = Object.freeze({ allowed: true });

function reject(rule: string, reason: string): AuthResult {
  return { allowed: false, rule, reason };
}

const CREATE_KEY = stateKey('m.room.create', '');
const JOIN_RULES_KEY = stateKey('m.room.join_rules', '');

/**
 * A user id good enough for the `users` keys of a power-levels event: `@`, something, `:`,
 * something. Deliberately as loose as Synapse's check, so both accept the same power-levels
 * events.
 */
function isUserIdShaped(value: string): boolean {
  return value.startsWith('@') && value.indexOf(':') > 0;
}

function membershipIn(state: StateMap, userId: string): string | undefined {
  const membership = state.get(stateKey('m.room.member', userId))?.content['membership'];
  return typeof membership === 'string' ? membership : undefined;
}

/**
 * Whether `event` is allowed by the auth rules of `version`, judged against `authState`: the
 * relevant state (create event, power levels, join rules, the sender's, target's and authorising
 * user's memberships, the third-party invite). For v12 `authState` must hold the create event
 * even though it is never listed in `auth_events`.
 */
export function checkEventAuth(event: RoomEvent, authState: StateMap, version: RoomVersion): AuthResult {
  // Rule 1.
  if (event.type === 'm.room.create') return checkCreate(event, version);

  const create = authState.get(CREATE_KEY);
  if (version.roomIdFromCreateEvent) {
    // Rule 2: the room id names the create event. (That it was accepted is for the caller, see
    // `checkAuthEventsList`.)
    const createId = createEventIdForRoom(event.roomId);
    if (!create || create.eventId !== createId) {
      return reject('room_id.not_create_event', `no create event ${createId} for ${event.roomId}`);
    }
  } else if (!create) {
    // v1–11 rule 2.4: the create event must be among the auth events.
    return reject('auth_events.no_create', 'the create event is missing from the auth state');
  }

  // Rule 4: a room created with `m.federate: false` stays on its creator's server.
  if (create.content['m.federate'] === false && serverNameOf(event.sender) !== serverNameOf(create.sender)) {
    return reject('federate.disallowed', `the room is not federated and ${event.sender} is not on the creator's server`);
  }

  // v1–5 rule 4: aliases belong to the server named by their state key.
  if (version.specialCaseAliasesAuth && event.type === 'm.room.aliases') {
    if (event.stateKey === undefined) {
      return reject('aliases.no_state_key', 'm.room.aliases must be a state event');
    }
    if (event.stateKey !== serverNameOf(event.sender)) {
      return reject('aliases.state_key_not_sender_server', "the state key must be the sender's server name");
    }
    return ALLOW;
  }

  const powerLevels = powerLevelsFromState(authState, version);

  // Rule 5.
  if (event.type === 'm.room.member') {
    return checkMember(event, authState, create, powerLevels, version);
  }

  // Rule 6.
  if (membershipIn(authState, event.sender) !== 'join') {
    return reject('sender.not_joined', `${event.sender} is not joined to the room`);
  }

  const senderLevel = powerLevels.userLevel(event.sender);

  // Rule 7: whoever may invite may issue third-party invites, whatever `events` says.
  if (event.type === 'm.room.third_party_invite') {
    if (senderLevel >= powerLevels.invite) return ALLOW;
    return reject('third_party_invite.insufficient_power', `sender level ${senderLevel} is below the invite level ${powerLevels.invite}`);
  }

  // Rule 8.
  const required = powerLevels.eventLevel(event.type, event.stateKey !== undefined);
  if (senderLevel < required) {
    return reject('event.insufficient_power', `${event.type} needs level ${required}, the sender has ${senderLevel}`);
  }

  // Rule 9: state keyed by a user id belongs to that user.
  const key = event.stateKey;
  if (key !== undefined && key.startsWith('@') && key !== event.sender) {
    return reject('state_key.other_user', `state key ${key} is not the sender's user id`);
  }

  // Rule 10.
  if (event.type === 'm.room.power_levels') {
    return checkPowerLevels(event, authState, create, senderLevel, version);
  }

  // v1–2 rule 11.
  if (version.redactionsInAuthRules && event.type === 'm.room.redaction') {
    if (senderLevel >= powerLevels.redact) return ALLOW;
    const targetServer = event.redacts === undefined ? undefined : serverNameOf(event.redacts);
    if (targetServer !== undefined && targetServer === serverNameOf(event.eventId)) return ALLOW;
    return reject(
      'redaction.insufficient_power',
      `sender level ${senderLevel} is below the redact level ${powerLevels.redact} ` + 'and the redacted event is from another server',
    );
  }

  return ALLOW;
}

function checkCreate(event: RoomEvent, version: RoomVersion): AuthResult {
  if (event.prevEventIds.length > 0) {
    return reject('create.prev_events', 'a create event has no prev_events');
  }

  if (version.roomIdFromCreateEvent) {
    if ('room_id' in event.pdu) {
      return reject('create.has_room_id', 'the create event must not have a room_id');
    }
  } else {
    const roomServer = serverNameOf(event.roomId);
    if (roomServer === undefined || roomServer !== serverNameOf(event.sender)) {
      return reject('create.room_id_server', "the room id's server must be the sender's server");
    }
  }

  if ('room_version' in event.content) {
    const roomVersion = event.content['room_version'];
    if (typeof roomVersion !== 'string' || getRoomVersion(roomVersion) === undefined) {
      return reject('create.unknown_room_version', `unknown room version ${JSON.stringify(roomVersion)}`);
    }
  }

  if (!version.creatorIsCreateSender && !('creator' in event.content)) {
    return reject('create.no_creator', 'content.creator is required in this room version');
  }

  if (version.privilegedCreators && 'additional_creators' in event.content) {
    const additional = event.content['additional_creators'];
    if (!Array.isArray(additional) || !additional.every((user) => isValidUserId(user))) {
      return reject('create.invalid_additional_creators', 'additional_creators must be an array of valid user ids');
    }
  }
  return ALLOW;
}

function checkMember(event: RoomEvent, state: StateMap, create: RoomEvent, powerLevels: PowerLevels, version: RoomVersion): AuthResult {
  // Rule 5.1.
  const target = event.stateKey;
  if (target === undefined) {
    return reject('member.no_state_key', 'm.room.member must be a state event');
  }
  const membership = event.content['membership'];
  if (membership === undefined) {
    return reject('member.no_membership', 'content.membership is missing');
  }

  // Rule 5.2: the server vouching for a restricted join must have signed the event. The spec
  // words this for every membership, not only joins, and so does this check.
  if (version.restrictedJoins && 'join_authorised_via_users_server' in event.content) {
    const authoriser = event.content['join_authorised_via_users_server'];
    const server = typeof authoriser === 'string' ? serverNameOf(authoriser) : undefined;
    if (server === undefined || !hasSignatureFrom(event, server)) {
      return reject(
        'member.authoriser.unsigned',
        `not signed by the server of join_authorised_via_users_server ${JSON.stringify(authoriser)}`,
      );
    }
  }

  const sender = event.sender;
  const senderMembership = membershipIn(state, sender);
  const targetMembership = membershipIn(state, target);
  const senderLevel = powerLevels.userLevel(sender);

  switch (membership) {
    case 'join':
      return checkJoin(event, target, senderMembership, state, create, powerLevels, version);

    case 'invite': {
      // Rule 5.4.1: an invite that redeems a third-party invite.
      if ('third_party_invite' in event.content) {
        return checkThirdPartyInvite(event, target, targetMembership, state);
      }
      if (senderMembership !== 'join') {
        return reject('member.invite.sender_not_joined', `${sender} is not joined`);
      }
      if (targetMembership === 'ban') {
        return reject('member.invite.target_banned', `${target} is banned`);
      }
      if (targetMembership === 'join') {
        return reject('member.invite.target_joined', `${target} is already joined`);
      }
      if (senderLevel >= powerLevels.invite) return ALLOW;
      return reject('member.invite.insufficient_power', `sender level ${senderLevel} is below the invite level ${powerLevels.invite}`);
    }

    case 'leave': {
      if (sender === target) {
        const mayLeave = senderMembership === 'invite' || senderMembership === 'join' || (version.knocking && senderMembership === 'knock');
        if (mayLeave) return ALLOW;
        return reject('member.leave.not_member', `${sender} cannot leave with membership ${senderMembership ?? 'none'}`);
      }
      if (senderMembership !== 'join') {
        return reject('member.leave.sender_not_joined', `${sender} is not joined`);
      }
      if (targetMembership === 'ban' && senderLevel < powerLevels.ban) {
        return reject(
          'member.leave.unban_insufficient_power',
          `unbanning needs the ban level ${powerLevels.ban}, the sender has ${senderLevel}`,
        );
      }
      if (senderLevel < powerLevels.kick) {
        return reject(
          'member.leave.kick_insufficient_power',
          `kicking needs the kick level ${powerLevels.kick}, the sender has ${senderLevel}`,
        );
      }
      const targetLevel = powerLevels.userLevel(target);
      if (targetLevel >= senderLevel) {
        return reject('member.leave.target_not_below_sender', `target level ${targetLevel} is not below sender level ${senderLevel}`);
      }
      return ALLOW;
    }

    case 'ban': {
      if (senderMembership !== 'join') {
        return reject('member.ban.sender_not_joined', `${sender} is not joined`);
      }
      if (senderLevel < powerLevels.ban) {
        return reject('member.ban.insufficient_power', `banning needs the ban level ${powerLevels.ban}, the sender has ${senderLevel}`);
      }
      const targetLevel = powerLevels.userLevel(target);
      if (targetLevel >= senderLevel) {
        return reject('member.ban.target_not_below_sender', `target level ${targetLevel} is not below sender level ${senderLevel}`);
      }
      return ALLOW;
    }

    case 'knock': {
      if (!version.knocking) break;
      const joinRule = joinRuleIn(state);
      const knockable = joinRule === 'knock' || (version.knockRestrictedJoins && joinRule === 'knock_restricted');
      if (!knockable) {
        return reject('member.knock.join_rule', `join rule ${JSON.stringify(joinRule)} does not allow knocking`);
      }
      if (sender !== target) {
        return reject('member.knock.not_self', 'users can only knock for themselves');
      }
      if (senderMembership === 'ban') return reject('member.knock.banned', `${sender} is banned`);
      if (senderMembership === 'invite') {
        return reject('member.knock.invited', `${sender} is already invited`);
      }
      if (senderMembership === 'join') {
        return reject('member.knock.joined', `${sender} is already joined`);
      }
      return ALLOW;
    }
  }
  return reject('member.unknown_membership', `unknown membership ${JSON.stringify(membership)}`);
}

/** Rule 5.3. */
function checkJoin(
  event: RoomEvent,
  target: string,
  senderMembership: string | undefined,
  state: StateMap,
  create: RoomEvent,
  powerLevels: PowerLevels,
  version: RoomVersion,
): AuthResult {
  const sender = event.sender;

  // Rule 5.3.1: the creator's own join right after the create event.
  const creator = version.creatorIsCreateSender ? create.sender : create.content['creator'];
  const onlyPrevIsCreate = event.prevEventIds.length === 1 && event.prevEventIds[0] === create.eventId;
  if (onlyPrevIsCreate && target === creator) return ALLOW;

  if (sender !== target) return reject('member.join.not_self', 'users can only join themselves');
  if (senderMembership === 'ban') return reject('member.join.banned', `${sender} is banned`);

  const joinRule = joinRuleIn(state);
  const inviteOnly = joinRule === 'invite' || (version.knocking && joinRule === 'knock');
  const restricted =
    (version.restrictedJoins && joinRule === 'restricted') || (version.knockRestrictedJoins && joinRule === 'knock_restricted');

  if (inviteOnly) {
    if (senderMembership === 'invite' || senderMembership === 'join') return ALLOW;
    return reject('member.join.not_invited', `join rule is ${joinRule} and ${sender} is not invited`);
  }

  if (restricted) {
    if (senderMembership === 'invite' || senderMembership === 'join') return ALLOW;
    // The `allow` list is not read here: the resident server checked it when it chose to
    // authorise the join.
    const authoriser = event.content['join_authorised_via_users_server'];
    if (typeof authoriser !== 'string') {
      return reject('member.join.no_authoriser', `join rule is ${joinRule} and there is no join_authorised_via_users_server`);
    }
    if (membershipIn(state, authoriser) !== 'join') {
      return reject('member.join.authoriser_not_joined', `authorising user ${authoriser} is not joined`);
    }
    const authoriserLevel = powerLevels.userLevel(authoriser);
    if (authoriserLevel < powerLevels.invite) {
      return reject(
        'member.join.authoriser_cannot_invite',
        `authorising user ${authoriser} has level ${authoriserLevel}, ` + `below the invite level ${powerLevels.invite}`,
      );
    }
    return ALLOW;
  }

  if (joinRule === 'public') return ALLOW;
  return reject('member.join.not_allowed', `join rule ${JSON.stringify(joinRule)} does not allow joining`);
}

/**
 * The room's join rule. With no join-rules event, or one without `join_rule`, the room is
 * invite-only (as in Synapse; the spec's rules would otherwise let nobody but the creator in).
 */
function joinRuleIn(state: StateMap): JsonValue {
  const content = state.get(JOIN_RULES_KEY)?.content;
  if (!content || !('join_rule' in content)) return 'invite';
  return content['join_rule'] ?? null;
}

function hasSignatureFrom(event: RoomEvent, server: string): boolean {
  const signatures = event.pdu['signatures'];
  if (!isJsonObject(signatures)) return false;
  const fromServer = signatures[server];
  return isJsonObject(fromServer) && Object.keys(fromServer).length > 0;
}

/** Rule 5.4.1. A third-party invite that passes is allowed outright (5.4.1.7). */
function checkThirdPartyInvite(event: RoomEvent, target: string, targetMembership: string | undefined, state: StateMap): AuthResult {
  if (targetMembership === 'ban') {
    return reject('member.invite.3pid.target_banned', `${target} is banned`);
  }
  const invite = event.content['third_party_invite'];
  const signed = isJsonObject(invite) ? invite['signed'] : undefined;
  if (!isJsonObject(signed)) {
    return reject('member.invite.3pid.no_signed', 'third_party_invite.signed is missing');
  }
  const mxid = signed['mxid'];
  const token = thirdPartyInviteToken(event.content);
  if (typeof mxid !== 'string' || token === undefined) {
    return reject('member.invite.3pid.signed_incomplete', 'third_party_invite.signed needs mxid and token');
  }
  if (mxid !== target) {
    return reject('member.invite.3pid.mxid_mismatch', `signed mxid ${mxid} is not ${target}`);
  }
  const thirdPartyInvite = state.get(stateKey('m.room.third_party_invite', token));
  if (!thirdPartyInvite) {
    return reject('member.invite.3pid.no_invite_event', `no m.room.third_party_invite with state key ${JSON.stringify(token)}`);
  }
  if (thirdPartyInvite.sender !== event.sender) {
    return reject('member.invite.3pid.sender_mismatch', 'the invite must come from the sender of the m.room.third_party_invite');
  }
  if (thirdPartyInviteSignatureMatches(signed, thirdPartyInvite.content)) return ALLOW;
  return reject('member.invite.3pid.bad_signature', 'no signature in signed verifies with a public key of the m.room.third_party_invite');
}

/** Rule 5.4.1.7: some ed25519 signature in `signed` verifies with some public key of the invite. */
function thirdPartyInviteSignatureMatches(signed: JsonObject, inviteContent: JsonObject): boolean {
  const publicKeys: string[] = [];
  const single = inviteContent['public_key'];
  if (typeof single === 'string') publicKeys.push(single);
  const listed = inviteContent['public_keys'];
  if (Array.isArray(listed)) {
    for (const entry of listed) {
      const key = isJsonObject(entry) ? entry['public_key'] : undefined;
      if (typeof key === 'string') publicKeys.push(key);
    }
  }
  const signatures = signed['signatures'];
  if (!isJsonObject(signatures)) return false;
  for (const publicKey of publicKeys) {
    for (const [server, byKeyId] of Object.entries(signatures)) {
      if (!isJsonObject(byKeyId)) continue;
      for (const keyId of Object.keys(byKeyId)) {
        if (!keyId.startsWith('ed25519:')) continue;
        if (verifyJsonSignature(signed, server, keyId, publicKey)) return true;
      }
    }
  }
  return false;
}

/** The level maps the power-levels rules read in this version. */
function levelMapsOf(version: RoomVersion): readonly ('events' | 'notifications')[] {
  return version.limitNotificationsPowerLevels ? ['events', 'notifications'] : ['events'];
}

/**
 * Rules 10.1–10.4, the shape of a new power-levels content, without comparing it to the previous
 * one. Exported so the client API can refuse the same contents up front (it should also refuse
 * string levels in every version, as §Checks performed on receipt of a PDU advises).
 *
 * v1–9 have no rule 10.1/10.2, but a value that is not a level there would break every later
 * comparison (Synapse fails on such values as well), so it is refused in every version.
 */
export function checkPowerLevelsContent(content: JsonObject, version: RoomVersion, createEvent?: RoomEvent): AuthResult {
  const expected = version.integerPowerLevels ? 'integers' : 'power levels';

  // Rule 10.1.
  for (const name of POWER_LEVEL_PROPERTIES) {
    if (name in content && parsePowerLevelValue(content[name], version) === undefined) {
      return reject('power_levels.invalid_level', `${name} is not one of the ${expected}`);
    }
  }

  // Rule 10.2.
  for (const name of levelMapsOf(version)) {
    if (name in content && !isLevelMap(content[name], version)) {
      return reject(`power_levels.invalid_${name}`, `${name} must be an object whose values are ${expected}`);
    }
  }

  // Rule 10.3.
  if ('users' in content) {
    const users = content['users'];
    if (!isLevelMap(users, version) || !Object.keys(users).every(isUserIdShaped)) {
      return reject('power_levels.invalid_users', `users must map user ids to ${expected}`);
    }
    // Rule 10.4: creators are not listed in `users` at all (v12).
    if (version.privilegedCreators && createEvent) {
      for (const creator of creatorsOf(createEvent, version)) {
        if (Object.hasOwn(users, creator)) {
          return reject('power_levels.users.creator', `creator ${creator} must not be listed in users`);
        }
      }
    }
  }
  return ALLOW;
}

function isLevelMap(value: JsonValue | undefined, version: RoomVersion): value is JsonObject {
  return isJsonObject(value) && Object.values(value).every((level) => parsePowerLevelValue(level, version) !== undefined);
}

/** Rule 10. */
function checkPowerLevels(event: RoomEvent, state: StateMap, create: RoomEvent, senderLevel: number, version: RoomVersion): AuthResult {
  const shape = checkPowerLevelsContent(event.content, version, create);
  if (!shape.allowed) return shape;

  // Rule 10.5.
  const previous = event.stateKey === undefined ? undefined : state.get(stateKey(event.type, event.stateKey));
  if (!previous) return ALLOW;

  const oldContent = previous.content;
  const newContent = event.content;

  // Rule 10.6.
  for (const name of POWER_LEVEL_PROPERTIES) {
    const before = parsePowerLevelValue(oldContent[name], version);
    const after = parsePowerLevelValue(newContent[name], version);
    if (before === after) continue;
    if (before !== undefined && before > senderLevel) {
      return reject('power_levels.property.above_sender', `the current ${name} ${before} is above sender level ${senderLevel}`);
    }
    if (after !== undefined && after > senderLevel) {
      return reject('power_levels.property.above_sender', `the new ${name} ${after} is above sender level ${senderLevel}`);
    }
  }

  // Rules 10.7 and 10.8.
  for (const name of levelMapsOf(version)) {
    for (const [key, before, after] of changedEntries(oldContent[name], newContent[name], version)) {
      if (before !== undefined && before > senderLevel) {
        return reject(`power_levels.${name}.above_sender`, `the current ${name}[${key}] ${before} is above sender level ${senderLevel}`);
      }
      if (after !== undefined && after > senderLevel) {
        return reject(`power_levels.${name}.above_sender`, `the new ${name}[${key}] ${after} is above sender level ${senderLevel}`);
      }
    }
  }

  // Rules 10.9 and 10.10.
  for (const [user, before, after] of changedEntries(oldContent['users'], newContent['users'], version)) {
    if (before !== undefined && user !== event.sender && before >= senderLevel) {
      return reject('power_levels.users.not_below_sender', `${user} has level ${before}, not below sender level ${senderLevel}`);
    }
    if (after !== undefined && after > senderLevel) {
      return reject('power_levels.users.above_sender', `the new level ${after} for ${user} is above sender level ${senderLevel}`);
    }
  }
  return ALLOW;
}

/** Entries of two level maps that were added, changed or removed: `[key, before, after]`. */
function changedEntries(
  oldMap: JsonValue | undefined,
  newMap: JsonValue | undefined,
  version: RoomVersion,
): [string, number | undefined, number | undefined][] {
  const before = isJsonObject(oldMap) ? oldMap : {};
  const after = isJsonObject(newMap) ? newMap : {};
  const changed: [string, number | undefined, number | undefined][] = [];
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const b = Object.hasOwn(before, key) ? parsePowerLevelValue(before[key], version) : undefined;
    const a = Object.hasOwn(after, key) ? parsePowerLevelValue(after[key], version) : undefined;
    if (a !== b) changed.push([key, b, a]);
  }
  return changed;
}

/**
 * Rule 3 (v1–11: rule 2) and, for v12, the "accepted" half of rule 2: the event's `auth_events`
 * list. `authEvents` are the events the event cites (for v12, without the implicit create event);
 * `isRejected` says whether an event was rejected on receipt.
 */
export function checkAuthEventsList(
  event: RoomEvent,
  authEvents: readonly RoomEvent[],
  version: RoomVersion,
  isRejected: (eventId: string) => boolean = () => false,
): AuthResult {
  if (event.type === 'm.room.create') return ALLOW; // rule 1 decides create events alone

  if (version.roomIdFromCreateEvent) {
    const createId = createEventIdForRoom(event.roomId);
    if (isRejected(createId)) {
      return reject('room_id.create_rejected', `the room's create event ${createId} was rejected`);
    }
  }

  const expected = new Set(authEventKeysFor(event.type, event.stateKey, event.sender, event.content, version));
  const seen = new Set<StateKey>();
  for (const authEvent of authEvents) {
    const described = `(${authEvent.type}, ${JSON.stringify(authEvent.stateKey)})`;
    if (authEvent.stateKey === undefined) {
      return reject('auth_events.unexpected', `auth event ${authEvent.eventId} is not state`);
    }
    const key = stateKey(authEvent.type, authEvent.stateKey);
    if (seen.has(key)) {
      return reject('auth_events.duplicate', `more than one auth event for ${described}`);
    }
    seen.add(key);
    if (version.roomIdFromCreateEvent && authEvent.type === 'm.room.create') {
      return reject('auth_events.create_listed', 'the create event is implicit and must not be listed in auth_events');
    }
    if (!expected.has(key)) {
      return reject('auth_events.unexpected', `auth event ${described} is not one the selection algorithm picks`);
    }
    if (isRejected(authEvent.eventId)) {
      return reject('auth_events.rejected', `auth event ${authEvent.eventId} was rejected`);
    }
    if (authEvent.roomId !== event.roomId) {
      return reject('auth_events.other_room', `auth event ${authEvent.eventId} is in room ${authEvent.roomId}`);
    }
  }
  if (!version.roomIdFromCreateEvent && !seen.has(CREATE_KEY)) {
    return reject('auth_events.no_create', 'the create event is not among the auth events');
  }
  return ALLOW;
}

/**
 * The state map to check an event against its own auth events: the listed events by key, plus
 * the implicit create event for v12 (pass it as `createEvent`).
 */
export function authStateFromEvents(authEvents: Iterable<RoomEvent>, createEvent?: RoomEvent): Map<StateKey, RoomEvent> {
  const state = new Map<StateKey, RoomEvent>();
  if (createEvent) state.set(CREATE_KEY, createEvent);
  for (const authEvent of authEvents) {
    if (authEvent.stateKey === undefined) continue;
    state.set(stateKey(authEvent.type, authEvent.stateKey), authEvent);
  }
  return state;
}

/**
 * Whether a redaction that passed the auth rules may be applied to `redacted`
 * (`v3-handling-redactions`): the redactor has the redact level, or is on the same server as the
 * original sender. For v1–2, whose auth rule 11 already decided, the same rule is repeated (the
 * servers of the two event ids), so callers can treat every version alike. `state` is the state
 * the redaction is judged against (the state before it, or its auth state).
 */
export function checkRedactionAllowed(redaction: RoomEvent, redacted: RoomEvent, state: StateMap, version: RoomVersion): AuthResult {
  if (redacted.roomId !== redaction.roomId) {
    return reject('redaction.other_room', `${redacted.eventId} is in another room`);
  }
  const powerLevels = powerLevelsFromState(state, version);
  const senderLevel = powerLevels.userLevel(redaction.sender);
  if (senderLevel >= powerLevels.redact) return ALLOW;
  const [mine, theirs] = version.redactionsInAuthRules ? [redaction.eventId, redacted.eventId] : [redaction.sender, redacted.sender];
  const server = serverNameOf(mine);
  if (server !== undefined && server === serverNameOf(theirs)) return ALLOW;
  return reject(
    'redaction.insufficient_power',
    `sender level ${senderLevel} is below the redact level ${powerLevels.redact} ` + 'and the redacted event is from another server',
  );
}
