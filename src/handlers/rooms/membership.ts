// Membership changes: join (by id or alias, including restricted rooms), invite, leave, kick, ban,
// unban, knock and forget. Each becomes an m.room.member event built by the room's events writer,
// whose auth rules have the last word; the checks here give clients Synapse's clearer errors.

import type { JsonObject } from '../../core/json.js';
import { isValidUserId } from '../../core/identifiers.js';
import { powerLevelsFromState } from '../../core/power-levels.js';
import { isJsonObject } from '../../core/json.js';
import { Errors } from '../../errors.js';
import type { CoreParts } from '../kernel/core.js';
import type { PersistedEvent } from '../kernel/events-writer.js';
import type { RateLimits } from '../kernel/rate-limit.js';
import type { RoomState } from '../kernel/room-state.js';
import { serverNameOf } from '../../core/identifiers.js';
import type { RemoteMembership } from '../federation/remote-membership.js';
import { STRIPPED_STATE_TYPES } from '../federation/resident-membership.js';

export interface MembershipOptions {
  reason?: string;
  /** Servers to join or knock through when the room is on another server (`via`, `server_name`). */
  via?: readonly string[];
  isDirect?: boolean;
  /** Makes the change idempotent for the requesting device (e.g. retried joins). */
  txn?: { userId: string; deviceId: string; txnId: string };
}

export class MembershipHandler {
  constructor(
    private readonly core: CoreParts<'roomState' | 'memberships' | 'eventsWriter' | 'serverName' | 'eventCache', 'users' | 'directory'>,
    private readonly rateLimits: RateLimits,
    /** Joins, leaves, knocks and invites through other servers; without it, local rooms only. */
    private readonly remote?: RemoteMembership,
  ) {}

  /** `!room:server` or `#alias:server` → the room id; 404 for unknown aliases. */
  async resolveRoom(roomIdOrAlias: string): Promise<string> {
    if (roomIdOrAlias.startsWith('#')) {
      const roomId = await this.core.stores.directory.roomIdForAlias(roomIdOrAlias);
      if (!roomId) throw Errors.notFound(`Room alias ${roomIdOrAlias} not found`);
      return roomId;
    }
    if (!roomIdOrAlias.startsWith('!')) throw Errors.invalidParam(`${roomIdOrAlias} is not a room id or alias`);
    return roomIdOrAlias;
  }

  /**
   * A room id or alias → the room id, and for an alias of another server the servers its
   * directory names (spec: server-server API §Joining Rooms, `/query/directory`).
   */
  private async locateRoom(roomIdOrAlias: string): Promise<{ roomId: string; servers: string[] }> {
    if (roomIdOrAlias.startsWith('#') && this.remote && serverNameOf(roomIdOrAlias) !== this.core.serverName) {
      const local = await this.core.stores.directory.roomIdForAlias(roomIdOrAlias);
      if (local) return { roomId: local, servers: [] };
      return this.remote.resolveAlias(roomIdOrAlias);
    }
    return { roomId: await this.resolveRoom(roomIdOrAlias), servers: [] };
  }

  /**
   * Whether a membership change must go through another server: a remote handshake is needed when
   * no local user is joined to the room (we may not know it, or our copy of its state is stale: a
   * user banned then unbanned elsewhere must ask a resident server, matrix-org/synapse#1563).
   * Answers the candidate servers to ask, or undefined for a local change.
   */
  private async remoteCandidates(roomId: string, userId: string, given: readonly string[]): Promise<string[] | undefined> {
    if (!this.remote) return undefined;
    const known = await this.core.roomState.roomExists(roomId);
    const state = known ? await this.core.roomState.currentState(roomId) : undefined;
    const servers: string[] = [...given];
    if (state) {
      let localJoined = false;
      const own = state.get(`m.room.member\u0000${userId}`)?.event;
      // Whoever invited (or let knock) the user is likely still in the room.
      if (own && own.sender !== userId) servers.push(serverNameOf(own.sender) ?? '');
      for (const [key, stored] of state) {
        const { event } = stored;
        if (!key.startsWith('m.room.member\u0000') || event.content.membership !== 'join' || event.stateKey === undefined) continue;
        const server = serverNameOf(event.stateKey);
        if (server === this.core.serverName) localJoined = true;
        else if (server) servers.push(server);
      }
      if (localJoined) return undefined;
    }
    const roomServer = serverNameOf(roomId);
    if (roomServer) servers.push(roomServer);
    const candidates = [...new Set(servers)].filter((s) => s !== '' && s !== this.core.serverName);
    // A room of ours that every local user left, with nobody elsewhere: the local rules decide.
    if (candidates.length === 0 && known) return undefined;
    return candidates;
  }

  async join(roomIdOrAlias: string, userId: string, options: MembershipOptions = {}): Promise<{ roomId: string; event: PersistedEvent }> {
    const { roomId, servers } = await this.locateRoom(roomIdOrAlias);
    const profile = await this.core.stores.users.getProfile(userId);
    const candidates = await this.remoteCandidates(roomId, userId, [...(options.via ?? []), ...servers]);
    if (candidates && this.remote) {
      this.rateLimits.joinsLocal.check(userId);
      const content = memberContent('join', profile);
      if (options.reason !== undefined) content.reason = options.reason;
      return { roomId, event: await this.remote.join(roomId, userId, candidates, content) };
    }
    if (!(await this.core.roomState.roomExists(roomId))) {
      throw Errors.notFound(`No known servers for room ${roomId}`);
    }
    const state = await this.core.roomState.currentState(roomId);
    const current = membershipIn(state, userId);
    // Re-joining a room one is in (e.g. a profile refresh) is not a new join.
    if (current !== 'join') this.rateLimits.joinsLocal.check(userId);
    const content = memberContent('join', profile);
    if (options.reason !== undefined) content.reason = options.reason;
    if (current !== 'join' && current !== 'invite') {
      const authoriser = await this.restrictedJoinAuthoriser(roomId, state, userId);
      if (authoriser) content.join_authorised_via_users_server = authoriser;
    }
    const event = await this.core.eventsWriter.sendEvent(
      roomId,
      { type: 'm.room.member', stateKey: userId, sender: userId, content },
      { dedupeState: true, txn: options.txn },
    );
    return { roomId, event };
  }

  async invite(roomId: string, sender: string, target: string, options: MembershipOptions = {}): Promise<PersistedEvent> {
    if (!isValidUserId(target)) throw Errors.invalidParam(`"${target}" is not a valid user id`);
    const state = await this.requireRoom(roomId);
    const currentTarget = membershipIn(state, target);
    if (currentTarget === 'join') throw Errors.forbidden(`${target} is already in the room.`);
    if (currentTarget === 'ban') throw Errors.forbidden(`${target} is banned from the room`);
    // Invites carry the invitee's profile so clients can show who is invited.
    const profile = this.isLocal(target) ? await this.core.stores.users.getProfile(target) : undefined;
    const content = memberContent('invite', profile);
    if (options.isDirect) content.is_direct = true;
    if (options.reason !== undefined) content.reason = options.reason;
    if (!this.isLocal(target) && this.remote) return this.inviteRemote(roomId, sender, target, content, state);
    return this.core.eventsWriter.sendEvent(roomId, { type: 'm.room.member', stateKey: target, sender, content }, { txn: options.txn });
  }

  async leave(roomId: string, userId: string, options: MembershipOptions = {}): Promise<PersistedEvent | undefined> {
    const state = await this.requireRoom(roomId);
    const current = membershipIn(state, userId);
    if (current === undefined) throw Errors.forbidden(`You are not a member of room ${roomId}`);
    if (current === 'leave' || current === 'ban') return undefined; // already out: nothing to do
    const content: JsonObject = { membership: 'leave' };
    if (options.reason !== undefined) content.reason = options.reason;
    // Rejecting an invite (or withdrawing a knock) to a room we are not in: through a resident
    // server (spec: server-server API §Leaving Rooms (Rejecting Invites)). A joined user leaves
    // with a local event, which the federation sender sends to the room's servers.
    if (current !== 'join') {
      const candidates = await this.remoteCandidates(roomId, userId, []);
      if (candidates && this.remote) return this.remote.leave(roomId, userId, candidates, content);
    }
    return this.core.eventsWriter.sendEvent(
      roomId,
      { type: 'm.room.member', stateKey: userId, sender: userId, content },
      { txn: options.txn },
    );
  }

  async kick(roomId: string, sender: string, target: string, options: MembershipOptions = {}): Promise<PersistedEvent> {
    return this.changeOther(roomId, sender, target, 'leave', options, (current) => {
      if (current === undefined || current === 'leave' || current === 'ban') throw Errors.forbidden(`${target} is not in the room`);
    });
  }

  async ban(roomId: string, sender: string, target: string, options: MembershipOptions = {}): Promise<PersistedEvent> {
    return this.changeOther(roomId, sender, target, 'ban', options);
  }

  async unban(roomId: string, sender: string, target: string, options: MembershipOptions = {}): Promise<PersistedEvent> {
    return this.changeOther(roomId, sender, target, 'leave', options, (current) => {
      if (current !== 'ban') throw Errors.forbidden(`${target} is not banned`);
    });
  }

  async knock(roomIdOrAlias: string, userId: string, options: MembershipOptions = {}): Promise<{ roomId: string; event: PersistedEvent }> {
    const { roomId, servers } = await this.locateRoom(roomIdOrAlias);
    const content = memberContent('knock', await this.core.stores.users.getProfile(userId));
    if (options.reason !== undefined) content.reason = options.reason;
    const candidates = await this.remoteCandidates(roomId, userId, [...(options.via ?? []), ...servers]);
    if (candidates && this.remote) return { roomId, event: await this.remote.knock(roomId, userId, candidates, content) };
    await this.requireRoom(roomId);
    const event = await this.core.eventsWriter.sendEvent(
      roomId,
      { type: 'm.room.member', stateKey: userId, sender: userId, content },
      { txn: options.txn },
    );
    return { roomId, event };
  }

  async forget(roomId: string, userId: string): Promise<void> {
    const membership = await this.core.roomState.membership(roomId, userId);
    if (membership === 'join' || membership === 'invite' || membership === 'knock') {
      throw Errors.unknown(`User ${userId} is in room ${roomId}`, 400);
    }
    await this.core.memberships.forget(userId, roomId);
  }

  private async changeOther(
    roomId: string,
    sender: string,
    target: string,
    membership: 'leave' | 'ban',
    options: MembershipOptions,
    check?: (current: string | undefined) => void,
  ): Promise<PersistedEvent> {
    if (!isValidUserId(target)) throw Errors.invalidParam(`"${target}" is not a valid user id`);
    const state = await this.requireRoom(roomId);
    check?.(membershipIn(state, target));
    const content: JsonObject = { membership };
    if (options.reason !== undefined) content.reason = options.reason;
    return this.core.eventsWriter.sendEvent(roomId, { type: 'm.room.member', stateKey: target, sender, content }, { txn: options.txn });
  }

  /**
   * An invite of another server's user: the event goes to the invitee's server first, which signs
   * it (spec: server-server API §Inviting to a room), then into the room like a received event.
   */
  private async inviteRemote(
    roomId: string,
    sender: string,
    target: string,
    content: JsonObject,
    state: RoomState,
  ): Promise<PersistedEvent> {
    const remote = this.remote!;
    const version = await this.core.roomState.roomVersion(roomId);
    const pdu = await this.core.eventsWriter.prepareEvent(roomId, { type: 'm.room.member', stateKey: target, sender, content });
    const inviteRoomState: JsonObject[] = [];
    for (const [, stored] of state) {
      const { event } = stored;
      if (STRIPPED_STATE_TYPES.has(event.type) || (event.type === 'm.room.member' && event.stateKey === sender))
        inviteRoomState.push(event.pdu);
    }
    const signed = await remote.invite(roomId, version, pdu, inviteRoomState);
    const [outcome] = await this.core.eventsWriter.receivePdus(this.core.serverName, roomId, [signed]);
    if (!outcome || (outcome.outcome !== 'accepted' && outcome.outcome !== 'known')) {
      throw Errors.forbidden(`The invite could not be stored: ${outcome?.reason ?? 'unknown'}`);
    }
    const stored = await this.core.eventCache.get(outcome.eventId!);
    return { eventId: outcome.eventId!, streamOrdering: stored?.streamOrdering ?? 0 };
  }

  private async requireRoom(roomId: string): Promise<RoomState> {
    if (!(await this.core.roomState.roomExists(roomId))) throw Errors.notFound(`Unknown room ${roomId}`);
    return this.core.roomState.currentState(roomId);
  }

  private isLocal(userId: string): boolean {
    return userId.endsWith(`:${this.core.serverName}`);
  }

  /**
   * For a restricted room the user may join without an invite when they are in one of the rooms
   * its `allow` list names; the join must then name a local member who can invite, whose server
   * vouches for it (S:content/client-server-api/_index.md §Restricted rooms).
   */
  private async restrictedJoinAuthoriser(roomId: string, state: RoomState, userId: string): Promise<string | undefined> {
    const joinRules = state.get('m.room.join_rules\u0000');
    const rule = joinRules?.event.content.join_rule;
    if (rule !== 'restricted' && rule !== 'knock_restricted') return undefined;
    const version = await this.core.roomState.roomVersion(roomId);
    if (!version.restrictedJoins) return undefined;
    const allow = joinRules!.event.content.allow;
    if (!Array.isArray(allow)) return undefined;
    let permitted = false;
    for (const entry of allow) {
      if (!isJsonObject(entry) || entry.type !== 'm.room_membership' || typeof entry.room_id !== 'string') continue;
      if ((await this.core.roomState.membership(entry.room_id, userId)) === 'join') {
        permitted = true;
        break;
      }
    }
    if (!permitted) return undefined;
    const authState = new Map([...state].map(([key, stored]) => [key, stored.event]));
    const levels = powerLevelsFromState(authState, version);
    for (const [, stored] of state) {
      const { event } = stored;
      if (event.type !== 'm.room.member' || event.content.membership !== 'join' || event.stateKey === undefined) continue;
      if (this.isLocal(event.stateKey) && levels.userLevel(event.stateKey) >= levels.invite) return event.stateKey;
    }
    throw Errors.forbidden('No member of this room on this server can authorise the join');
  }
}

export function membershipIn(state: RoomState, userId: string): string | undefined {
  const membership = state.get(`m.room.member\u0000${userId}`)?.event.content.membership;
  return typeof membership === 'string' ? membership : undefined;
}

/** The content of a member event: the membership, with the user's display name and avatar when set. */
export function memberContent(
  membership: string,
  profile: { displayname: string | null; avatar_url: string | null } | undefined,
): JsonObject {
  const content: JsonObject = { membership };
  if (profile?.displayname) content.displayname = profile.displayname;
  if (profile?.avatar_url) content.avatar_url = profile.avatar_url;
  return content;
}
