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

export interface MembershipOptions {
  reason?: string;
  isDirect?: boolean;
  /** Makes the change idempotent for the requesting device (e.g. retried joins). */
  txn?: { userId: string; deviceId: string; txnId: string };
}

export class MembershipHandler {
  constructor(
    private readonly core: CoreParts<'roomState' | 'memberships' | 'eventsWriter' | 'serverName', 'users' | 'directory'>,
    private readonly rateLimits: RateLimits,
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

  async join(roomIdOrAlias: string, userId: string, options: MembershipOptions = {}): Promise<{ roomId: string; event: PersistedEvent }> {
    const roomId = await this.resolveRoom(roomIdOrAlias);
    if (!(await this.core.roomState.roomExists(roomId))) {
      // A room on another server would be joined over federation, which this server does not do yet.
      throw Errors.notFound(`No known servers for room ${roomId}`);
    }
    const state = await this.core.roomState.currentState(roomId);
    const current = membershipIn(state, userId);
    // Re-joining a room one is in (e.g. a profile refresh) is not a new join.
    if (current !== 'join') this.rateLimits.joinsLocal.check(userId);
    const content = memberContent('join', await this.core.stores.users.getProfile(userId));
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
    return this.core.eventsWriter.sendEvent(roomId, { type: 'm.room.member', stateKey: target, sender, content }, { txn: options.txn });
  }

  async leave(roomId: string, userId: string, options: MembershipOptions = {}): Promise<PersistedEvent | undefined> {
    const state = await this.requireRoom(roomId);
    const current = membershipIn(state, userId);
    if (current === undefined) throw Errors.forbidden(`You are not a member of room ${roomId}`);
    if (current === 'leave' || current === 'ban') return undefined; // already out: nothing to do
    const content: JsonObject = { membership: 'leave' };
    if (options.reason !== undefined) content.reason = options.reason;
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
    const roomId = await this.resolveRoom(roomIdOrAlias);
    await this.requireRoom(roomId);
    const content = memberContent('knock', await this.core.stores.users.getProfile(userId));
    if (options.reason !== undefined) content.reason = options.reason;
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
