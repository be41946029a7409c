// Sending into a room: message events (idempotent per device and transaction id), state events
// (with Synapse's duplicate suppression), and redactions with their permission checks.

import { isValidRoomAlias } from '../../core/identifiers.js';
import type { JsonObject } from '../../core/json.js';
import { powerLevelsFromState } from '../../core/power-levels.js';
import { Errors } from '../../errors.js';
import type { RateLimits } from '../kernel/rate-limit.js';
import type { Requester } from '../kernel/requester.js';
import type { CoreParts } from '../kernel/core.js';
import type { PersistedEvent } from '../kernel/events-writer.js';
import type { MembershipHandler } from './membership.js';

export class RoomMessagesHandler {
  constructor(
    private readonly core: CoreParts<'roomState' | 'eventsWriter' | 'eventCache' | 'serverName', 'directory'>,
    private readonly membership: MembershipHandler,
    private readonly rateLimits: RateLimits,
  ) {}

  async send(roomId: string, requester: Requester, type: string, content: JsonObject, txnId: string): Promise<PersistedEvent> {
    await this.core.roomState.roomVersion(roomId);
    if (type === 'm.room.create') throw Errors.forbidden('Cannot send m.room.create into an existing room');
    // A redaction needs its target checked, whichever endpoint sends it.
    if (type === 'm.room.redaction' && typeof content.redacts === 'string')
      return this.redact(roomId, requester, content.redacts, content, txnId);
    await this.rateLimits.checkMessage(requester.userId);
    return this.core.eventsWriter.sendEvent(
      roomId,
      { type, sender: requester.userId, content },
      { txn: { userId: requester.userId, deviceId: requester.deviceId, txnId } },
    );
  }

  async setState(roomId: string, requester: Requester, type: string, stateKey: string, content: JsonObject): Promise<PersistedEvent> {
    await this.core.roomState.roomVersion(roomId);
    await this.rateLimits.checkMessage(requester.userId);
    if (type === 'm.room.member') return this.setMembershipState(roomId, requester, stateKey, content);
    if (type === 'm.room.create') throw Errors.forbidden('Changing the room create event is forbidden');
    if (type === 'm.room.canonical_alias') await this.checkCanonicalAlias(roomId, content);
    return this.core.eventsWriter.sendEvent(roomId, { type, stateKey, sender: requester.userId, content }, { dedupeState: true });
  }

  async redact(roomId: string, requester: Requester, targetId: string, body: JsonObject, txnId: string): Promise<PersistedEvent> {
    const version = await this.core.roomState.roomVersion(roomId);
    await this.rateLimits.checkMessage(requester.userId);
    const target = await this.core.eventCache.get(targetId);
    if (target) {
      if (target.event.roomId !== roomId) throw Errors.unknown('Cannot redact event from a different room', 400);
      if (target.event.type === 'm.room.create') throw Errors.forbidden('Redacting create events is not permitted');
      if (target.event.type === 'm.room.server_acl') throw Errors.forbidden('Redacting server ACL events is not permitted');
    }
    const state = await this.core.roomState.currentState(roomId);
    const levels = powerLevelsFromState(new Map([...state].map(([k, s]) => [k, s.event])), version);
    if (levels.userLevel(requester.userId) < levels.redact) {
      // Without the redact level a user may only redact their own events.
      if (!target) throw Errors.notFound(`Could not find event ${targetId}`);
      if (target.event.sender !== requester.userId) throw Errors.forbidden("You don't have permission to redact events");
    }
    const content: JsonObject = {};
    if (typeof body.reason === 'string') content.reason = body.reason;
    return this.core.eventsWriter.sendEvent(
      roomId,
      { type: 'm.room.redaction', sender: requester.userId, content, redacts: targetId },
      { txn: { userId: requester.userId, deviceId: requester.deviceId, txnId } },
    );
  }

  /** Member events written through the state API go through the membership rules, as Synapse. */
  private async setMembershipState(roomId: string, requester: Requester, target: string, content: JsonObject): Promise<PersistedEvent> {
    const membership = content.membership;
    const reason = typeof content.reason === 'string' ? content.reason : undefined;
    if (target === requester.userId && (membership === 'join' || membership === 'leave' || membership === 'knock')) {
      // A join (or leave) with extra content, e.g. a per-room display name, is still a member event.
      return this.core.eventsWriter.sendEvent(
        roomId,
        { type: 'm.room.member', stateKey: target, sender: requester.userId, content },
        { dedupeState: true },
      );
    }
    switch (membership) {
      case 'invite':
        return this.membership.invite(roomId, requester.userId, target, { reason });
      case 'ban':
        return this.membership.ban(roomId, requester.userId, target, { reason });
      case 'leave':
        return this.membership.kick(roomId, requester.userId, target, { reason });
      default:
        throw Errors.badJson('"membership" must be one of join, invite, leave, ban, knock');
    }
  }

  private async checkCanonicalAlias(roomId: string, content: JsonObject): Promise<void> {
    const aliases: unknown[] = [];
    if (content.alias !== undefined && content.alias !== null) aliases.push(content.alias);
    if (content.alt_aliases !== undefined) {
      if (!Array.isArray(content.alt_aliases)) throw Errors.invalidParam('"alt_aliases" must be a list');
      aliases.push(...content.alt_aliases);
    }
    for (const alias of aliases) {
      if (typeof alias !== 'string' || !isValidRoomAlias(alias)) throw Errors.invalidParam(`Invalid alias ${String(alias)}`);
      if (alias.endsWith(`:${this.core.serverName}`) && (await this.core.stores.directory.roomIdForAlias(alias)) !== roomId) {
        throw Errors.badAlias(`Room alias ${alias} does not point to the room`);
      }
    }
  }
}
