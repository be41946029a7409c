// Membership handshakes where this server is the resident one (spec: server-server API §Joining
// Rooms, §Leaving Rooms (Rejecting Invites), §Knocking upon a room, §Inviting to a room): the
// event templates of make_join / make_leave / make_knock, the signed events of send_join /
// send_leave / send_knock, and invites of our users by other servers. Events go through the events
// writer (`receivePdus`), so the room's order and state stay right and the federation sender and
// local clients see them as any received event.

import { selectAuthEventIds } from '../../core/auth-events.js';
import { checkEventAuth } from '../../core/auth-rules.js';
import { finaliseEvent } from '../../core/event-format.js';
import type { RoomEvent, StateKey } from '../../core/events.js';
import { generateLegacyEventId } from '../../core/hashes.js';
import { serverNameOf } from '../../core/identifiers.js';
import { isJsonObject, type JsonObject, type JsonValue } from '../../core/json.js';
import type { PduCheckOutcome } from '../../core/pdu-checks.js';
import { redactEvent } from '../../core/redaction.js';
import { getRoomVersion, type RoomVersion } from '../../core/room-versions.js';
import { signBytes, signedBytes, withSignature } from '../../core/signing.js';
import { Errors } from '../../errors.js';
import type { Keyring } from '../../federation/keyring.js';
import { verifyPdus } from '../../federation/pdu-verifier.js';
import type { CoreParts } from '../kernel/core.js';
import type { PduOutcome } from './pdu-intake.js';

export type HandshakeMembership = 'join' | 'leave' | 'knock';

/** The stripped state types a knock answer and an invite carry (spec: client-server API §Stripped state). */
export const STRIPPED_STATE_TYPES: ReadonlySet<string> = new Set([
  'm.room.create',
  'm.room.name',
  'm.room.avatar',
  'm.room.topic',
  'm.room.join_rules',
  'm.room.canonical_alias',
  'm.room.encryption',
]);

/** At most this many events of `invite_room_state` are kept. */
const MAX_INVITE_ROOM_STATE = 50;

type ResidentCore = CoreParts<'serverName' | 'signingKey' | 'eventCache' | 'roomGraph' | 'roomState' | 'eventsWriter' | 'now' | 'log'>;

export class ResidentMembership {
  constructor(
    private readonly core: ResidentCore,
    private readonly keyring: Pick<Keyring, 'getVerifyKeys'>,
  ) {}

  /**
   * `make_join` / `make_leave` / `make_knock`: an event template for `userId`, built on the room's
   * forward extremities and current state, refused (403) when the auth rules would refuse it now.
   * `supportedVersions` (the `ver` parameters; join and knock only) must include the room's.
   */
  async makeMembership(
    origin: string,
    roomId: string,
    userId: string,
    membership: HandshakeMembership,
    supportedVersions: readonly string[] | undefined,
  ): Promise<{ room_version: string; event: JsonObject }> {
    if (serverNameOf(userId) !== origin) throw Errors.forbidden(`${userId} is not a user of ${origin}`);
    const version = await this.residentRoom(roomId);
    // Without `ver`, the requesting server supports version 1 only (spec: make_join `ver`).
    if (supportedVersions !== undefined && !supportedVersions.includes(version.id)) throw Errors.incompatibleRoomVersion(version.id);
    const state = await this.core.roomState.currentState(roomId);
    const stateEvents = new Map<StateKey, RoomEvent>();
    const stateIds = new Map<StateKey, string>();
    for (const [key, stored] of state) {
      stateEvents.set(key, stored.event);
      stateIds.set(key, stored.event.eventId);
    }
    const content: JsonObject = { membership };
    const prevs = await this.prevEvents(roomId);
    const authIds = selectAuthEventIds('m.room.member', userId, userId, content, version, stateIds);
    const byId = new Map([...stateEvents.values()].map((e) => [e.eventId, e]));
    const reference = (event: RoomEvent): JsonValue =>
      version.eventIdFormat === 'v1' ? [event.eventId, (event.pdu.hashes as JsonObject | undefined) ?? {}] : event.eventId;
    const template: JsonObject = {
      type: 'm.room.member',
      room_id: roomId,
      sender: userId,
      state_key: userId,
      content,
      origin,
      origin_server_ts: this.core.now(),
      depth: Math.max(0, ...prevs.map((e) => e.depth)) + 1,
      prev_events: prevs.map(reference),
      auth_events: authIds.map((id) => reference(byId.get(id)!)),
    };
    // Would the event pass the auth rules now? Checked on a copy we finish ourselves.
    const probe: JsonObject = { ...template };
    if (version.eventIdFormat === 'v1') probe.event_id = generateLegacyEventId(origin);
    const { event } = finaliseEvent(probe, version, this.core.serverName, this.core.signingKey);
    const verdict = checkEventAuth(event, stateEvents, version);
    if (!verdict.allowed) throw Errors.forbidden(`${userId} may not ${membership} ${roomId}: ${verdict.reason}`);
    return { room_version: version.id, event: template };
  }

  /**
   * `send_join` / `send_leave` / `send_knock`: checks the event (signatures, id, the membership
   * asked for, a user of the origin), adds our signature and hands it to the events writer.
   */
  async sendMembership(
    origin: string,
    roomId: string,
    eventId: string,
    pdu: JsonObject,
    membership: HandshakeMembership,
  ): Promise<{ event: RoomEvent; version: RoomVersion }> {
    const version = await this.residentRoom(roomId);
    const [checked] = await verifyPdus(this.keyring, [pdu], version, roomId, this.core.now());
    const event = acceptedEvent(checked!);
    if (event.eventId !== eventId) throw Errors.invalidParam(`the event's id is ${event.eventId}, not ${eventId}`);
    if (event.type !== 'm.room.member' || event.stateKey !== event.sender || event.content.membership !== membership) {
      throw Errors.invalidParam(`not a ${membership} event of its sender`);
    }
    if (serverNameOf(event.sender) !== origin) throw Errors.forbidden(`${event.sender} is not a user of ${origin}`);
    const signed = this.countersign(event.pdu, version);
    const [outcome] = await this.core.eventsWriter.receivePdus(origin, roomId, [signed]);
    refuseUnless(outcome);
    return { event: { ...event, pdu: signed }, version };
  }

  /** send_join's answer: the state before the join, its auth chain, the servers in the room. */
  async joinAnswer(roomId: string, version: RoomVersion, join: RoomEvent): Promise<JsonObject> {
    const { roomGraph } = this.core;
    const before = (await roomGraph.stateIdsBefore(roomId, version, join.eventId)) ?? new Map<StateKey, string>();
    const stateIds = [...before.values()];
    const chainIds = await roomGraph.authChainIds(roomId, version, [...stateIds, ...join.authEventIds]);
    const events = await roomGraph.events(roomId, version, [...new Set([...stateIds, ...chainIds])]);
    const pduOf = (id: string) => {
      const found = events.get(id);
      return found ? federationPdu(found.event.pdu) : undefined;
    };
    const servers = new Set<string>();
    for (const [key, id] of before) {
      const event = events.get(id)?.event;
      if (!key.startsWith('m.room.member\u0000') || event?.content.membership !== 'join' || event.stateKey === undefined) continue;
      const server = serverNameOf(event.stateKey);
      if (server) servers.add(server);
    }
    return {
      origin: this.core.serverName,
      state: stateIds.map(pduOf).filter((p) => p !== undefined),
      auth_chain: [...chainIds].map(pduOf).filter((p) => p !== undefined),
      event: federationPdu(join.pdu),
      members_omitted: false,
      servers_in_room: [...servers],
    };
  }

  /** send_knock's answer: the room's stripped state for the knocking user. */
  async knockRoomState(roomId: string): Promise<JsonObject[]> {
    const state = await this.core.roomState.currentState(roomId);
    const events: JsonObject[] = [];
    for (const [, stored] of state) if (STRIPPED_STATE_TYPES.has(stored.event.type)) events.push(federationPdu(stored.event.pdu));
    return events;
  }

  /**
   * `PUT /v2/invite`: another server invites one of our users. Checked as the spec says (the
   * room version ours, the event signed, an invite by a user of the origin for a user of ours),
   * countersigned, and stored with its `invite_room_state` so the invitee's /sync shows it.
   */
  async receiveInvite(origin: string, roomId: string, eventId: string, body: JsonObject): Promise<JsonObject> {
    const versionId = body.room_version;
    if (typeof versionId !== 'string') throw Errors.missingParam('room_version is required');
    const version = getRoomVersion(versionId);
    if (!version) throw Errors.incompatibleRoomVersion(versionId);
    if (!isJsonObject(body.event)) throw Errors.missingParam('event is required');
    const [checked] = await verifyPdus(this.keyring, [body.event], version, roomId, this.core.now());
    if (checked!.outcome === 'drop') throw Errors.invalidParam(`the invite is not valid: ${checked!.reason}`);
    const event = checked!.event;
    if (event.eventId !== eventId) throw Errors.invalidParam(`the event's id is ${event.eventId}, not ${eventId}`);
    if (event.type !== 'm.room.member' || event.content.membership !== 'invite' || event.stateKey === undefined) {
      throw Errors.invalidParam('not an invite');
    }
    if (serverNameOf(event.sender) !== origin) throw Errors.invalidParam(`${event.sender} is not a user of ${origin}`);
    if (serverNameOf(event.stateKey) !== this.core.serverName) throw Errors.invalidParam(`${event.stateKey} is not a user of this server`);
    const roomState = inviteRoomState(body.invite_room_state, roomId);
    const signed = this.countersign(event.pdu, version);
    if ((await this.core.eventCache.roomVersion(roomId)) && (await this.hasLocalMember(roomId))) {
      // We are in the room: the invite is an event of its graph like any other.
      const [outcome] = await this.core.eventsWriter.receivePdus(origin, roomId, [signed]);
      refuseUnless(outcome);
    } else {
      await this.core.eventsWriter.storeOutOfBandMembership(roomId, version.id, { ...signed, unsigned: { invite_room_state: roomState } });
    }
    return { event: signed };
  }

  /** The room's version, when this server is in the room (a local member joined); else 404. */
  private async residentRoom(roomId: string): Promise<RoomVersion> {
    const version = await this.core.eventCache.roomVersion(roomId);
    if (!version || !(await this.hasLocalMember(roomId))) throw Errors.notFound(`This server is not in room ${roomId}`);
    return version;
  }

  private async hasLocalMember(roomId: string): Promise<boolean> {
    const joined = await this.core.roomState.members(roomId, 'join');
    return joined.some((userId) => serverNameOf(userId) === this.core.serverName);
  }

  /** The room's forward extremities (at most 10, the deepest), as events. */
  private async prevEvents(roomId: string): Promise<RoomEvent[]> {
    let ids = await this.core.roomGraph.forwardExtremities(roomId);
    const stored = await this.core.eventCache.getMany(ids);
    ids = ids.filter((id) => stored.has(id));
    const events = ids.map((id) => stored.get(id)!.event).sort((a, b) => b.depth - a.depth);
    if (events.length === 0) throw Errors.notFound(`This server is not in room ${roomId}`);
    return events.slice(0, 10);
  }

  /** The event with our signature added (over its redacted form, as every event signature). */
  private countersign(pdu: JsonObject, version: RoomVersion): JsonObject {
    const { serverName, signingKey } = this.core;
    const signature = signBytes(signedBytes(redactEvent(pdu, version)), signingKey);
    return withSignature(pdu, serverName, signingKey.keyId, signature);
  }
}

/** The event of a check that passed; 403 when its signatures do not verify, 400 when malformed. */
function acceptedEvent(checked: PduCheckOutcome): RoomEvent {
  if (checked.outcome === 'drop') {
    if (checked.stage === 'signatures') throw Errors.forbidden(`the event's signatures do not verify: ${checked.reason}`);
    throw Errors.badJson(`the event is not valid: ${checked.reason}`);
  }
  return checked.event;
}

/** 403 for an event the room's auth rules refuse (rejected or soft-failed); 400 when it could not be taken. */
function refuseUnless(outcome: PduOutcome | undefined): void {
  if (!outcome) throw Errors.unknown('the event was not processed', 400);
  switch (outcome.outcome) {
    case 'accepted':
    case 'known':
      return;
    case 'rejected':
    case 'soft_failed':
      throw Errors.forbidden(`the event is not allowed: ${outcome.reason ?? outcome.outcome}`);
    case 'dropped':
      throw Errors.badJson(`the event is not valid: ${outcome.reason ?? 'dropped'}`);
    default:
      throw Errors.unknown(`the event could not be accepted: ${outcome.reason ?? outcome.outcome}`, 400);
  }
}

/** A PDU as we hand it to other servers: without our local `unsigned`. */
export function federationPdu(pdu: JsonObject): JsonObject {
  if (!('unsigned' in pdu)) return pdu;
  const { unsigned: _unsigned, ...rest } = pdu;
  return rest;
}

/** The `invite_room_state` we keep: objects of this room with a type, at most 50. */
function inviteRoomState(value: unknown, roomId: string): JsonObject[] {
  if (!Array.isArray(value)) return [];
  const kept: JsonObject[] = [];
  for (const entry of value) {
    if (!isJsonObject(entry) || typeof entry.type !== 'string' || typeof entry.state_key !== 'string') continue;
    if (entry.room_id !== undefined && entry.room_id !== roomId) continue;
    kept.push(entry);
    if (kept.length >= MAX_INVITE_ROOM_STATE) break;
  }
  return kept;
}
