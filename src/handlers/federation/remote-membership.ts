// Membership handshakes where another server is the resident one: our users joining, leaving,
// knocking on rooms this server takes no part in, and inviting other servers' users (spec:
// server-server API §Joining Rooms, §Leaving Rooms (Rejecting Invites), §Knocking upon a room,
// §Inviting to a room; client-server API §Room membership).
//
// A join asks each candidate server in turn for a template (`make_join`), fills it in, signs it and
// submits it (`send_join`); the answer's state and auth chain are checked (signatures and hashes
// here, the auth rules in the events writer) and the room is stored through the events writer
// (`persistRemoteJoin`). Leaves and knocks store the user's own event out of band.

import { serverNameOf } from '../../core/identifiers.js';
import { finaliseEvent } from '../../core/event-format.js';
import { InvalidEventError, type RoomEvent } from '../../core/events.js';
import { generateLegacyEventId } from '../../core/hashes.js';
import { isJsonObject, type JsonObject, type JsonValue } from '../../core/json.js';
import { getRoomVersion, ROOM_VERSIONS, type RoomVersion } from '../../core/room-versions.js';
import { Errors, MatrixError } from '../../errors.js';
import type { FederationClient } from '../../federation/client.js';
import { FederationHttpError, FederationRequestError } from '../../federation/errors.js';
import type { Keyring } from '../../federation/keyring.js';
import { verifyPdus } from '../../federation/pdu-verifier.js';
import type { CoreParts } from '../kernel/core.js';
import type { PersistedEvent } from '../kernel/events-writer.js';
import type { RemoteQueries } from './remote-queries.js';
import { federationPdu, type HandshakeMembership } from './resident-membership.js';

/** How long a handshake request may take (a big room's send_join answer is large). */
const MAKE_TIMEOUT_MS = 30_000;
const SEND_TIMEOUT_MS = 120_000;
/** At most this many candidate servers are tried. */
const MAX_CANDIDATES = 10;

type RemoteCore = CoreParts<'serverName' | 'signingKey' | 'eventsWriter' | 'now' | 'log' | 'eventCache'>;

export class RemoteMembership {
  constructor(
    private readonly core: RemoteCore,
    private readonly client: Pick<FederationClient, 'request'>,
    private readonly keyring: Pick<Keyring, 'getVerifyKeys'>,
    private readonly queries: Pick<RemoteQueries, 'resolveAlias'>,
  ) {}

  /** A room alias of another server, asked of that server (the same lookup as the client's `/directory/room`). */
  resolveAlias(alias: string): Promise<{ roomId: string; servers: string[] }> {
    return this.queries.resolveAlias(alias);
  }

  /** Joins `userId` to `roomId` through the first candidate that lets it; `content` is the join's (profile, reason). */
  async join(roomId: string, userId: string, candidates: readonly string[], content: JsonObject): Promise<PersistedEvent> {
    return this.handshake('join', roomId, userId, candidates, content, async (server, version, event) => {
      const answer = await this.client.request(server, {
        method: 'PUT',
        path: `/_matrix/federation/v2/send_join/${encodeURIComponent(roomId)}/${encodeURIComponent(event.eventId)}`,
        query: { omit_members: 'false' },
        body: event.pdu,
        timeoutMs: SEND_TIMEOUT_MS,
        allowNul: true,
      });
      if (!isJsonObject(answer) || !Array.isArray(answer.state) || !Array.isArray(answer.auth_chain)) {
        throw Errors.badGateway(`${server} answered send_join without state`);
      }
      // A restricted join comes back signed by the resident server too; else ours is the event.
      let joinPdu: JsonObject = event.pdu;
      if (isJsonObject(answer.event)) {
        const [checked] = await verifyPdus(this.keyring, [answer.event], version, roomId, this.core.now());
        if (checked!.outcome === 'ok' && checked!.event.eventId === event.eventId) joinPdu = checked!.event.pdu;
      }
      const state = await this.checkedPdus(answer.state, version, roomId);
      const authChain = await this.checkedPdus(answer.auth_chain, version, roomId);
      return this.core.eventsWriter.persistRemoteJoin({ roomId, roomVersion: version.id, event: joinPdu, state, authChain });
    });
  }

  /** Leaves (or rejects an invite to) a room we are not in, through a resident server. */
  async leave(roomId: string, userId: string, candidates: readonly string[], content: JsonObject): Promise<PersistedEvent> {
    return this.handshake('leave', roomId, userId, candidates, content, async (server, version, event) => {
      await this.client.request(server, {
        method: 'PUT',
        path: `/_matrix/federation/v2/send_leave/${encodeURIComponent(roomId)}/${encodeURIComponent(event.eventId)}`,
        body: event.pdu,
        timeoutMs: SEND_TIMEOUT_MS,
      });
      return this.core.eventsWriter.storeOutOfBandMembership(roomId, version.id, event.pdu);
    });
  }

  /** Knocks on a room we are not in, through a resident server. */
  async knock(roomId: string, userId: string, candidates: readonly string[], content: JsonObject): Promise<PersistedEvent> {
    return this.handshake('knock', roomId, userId, candidates, content, async (server, version, event) => {
      const answer = await this.client.request(server, {
        method: 'PUT',
        path: `/_matrix/federation/v1/send_knock/${encodeURIComponent(roomId)}/${encodeURIComponent(event.eventId)}`,
        body: event.pdu,
        timeoutMs: SEND_TIMEOUT_MS,
        allowNul: true,
      });
      const knockState = isJsonObject(answer) && Array.isArray(answer.knock_room_state) ? answer.knock_room_state.filter(isJsonObject) : [];
      return this.core.eventsWriter.storeOutOfBandMembership(roomId, version.id, {
        ...event.pdu,
        unsigned: { knock_room_state: knockState.slice(0, 50) },
      });
    });
  }

  /**
   * Sends our invite of another server's user to that server (`PUT /v2/invite`), with the room's
   * stripped state; answers the event with the invitee server's signature added.
   */
  async invite(roomId: string, version: RoomVersion, invite: JsonObject, inviteRoomState: JsonObject[]): Promise<JsonObject> {
    const invitee = typeof invite.state_key === 'string' ? invite.state_key : '';
    const server = serverNameOf(invitee);
    if (!server) throw Errors.invalidParam(`${invitee} is not a user id`);
    const [ours] = await verifyPdus(this.keyring, [invite], version, roomId, this.core.now());
    if (ours!.outcome === 'drop') throw new Error(`our own invite does not verify: ${ours!.reason}`);
    const eventId = ours!.event.eventId;
    let answer: JsonValue;
    try {
      answer = await this.client.request(server, {
        method: 'PUT',
        path: `/_matrix/federation/v2/invite/${encodeURIComponent(roomId)}/${encodeURIComponent(eventId)}`,
        body: { room_version: version.id, event: invite, invite_room_state: inviteRoomState.map(federationPdu) },
        timeoutMs: MAKE_TIMEOUT_MS,
      });
    } catch (err) {
      throw this.asClientError(err, `inviting ${invitee}`);
    }
    if (!isJsonObject(answer) || !isJsonObject(answer.event)) throw Errors.badGateway(`${server} answered the invite without an event`);
    const [checked] = await verifyPdus(this.keyring, [answer.event], version, roomId, this.core.now());
    // The invitee's server must have signed the very event we sent (spec: invite v2 response).
    if (checked!.outcome !== 'ok' || checked!.event.eventId !== eventId || !signedBy(answer.event, server)) {
      throw Errors.badGateway(`${server} did not sign the invite`);
    }
    return checked!.event.pdu;
  }

  /**
   * make_X on each candidate in turn until one gives a template; then the event is finished,
   * signed and handed to `submit` (send_X against the same server). Errors: no candidate → 404;
   * a refusal (403, incompatible version...) from the last server asked → that error; none reachable → 502.
   */
  private async handshake(
    membership: HandshakeMembership,
    roomId: string,
    userId: string,
    candidates: readonly string[],
    content: JsonObject,
    submit: (server: string, version: RoomVersion, event: RoomEvent) => Promise<PersistedEvent>,
  ): Promise<PersistedEvent> {
    const servers = [...new Set(candidates)].filter((s) => s !== this.core.serverName).slice(0, MAX_CANDIDATES);
    if (servers.length === 0) throw Errors.notFound(`No known servers for room ${roomId}`);
    let lastError: unknown;
    for (const server of servers) {
      let template: { version: RoomVersion; event: JsonObject };
      try {
        template = await this.makeTemplate(membership, server, roomId, userId);
      } catch (err) {
        this.core.log.info({ roomId, server, err: String(err) }, `make_${membership} failed`);
        lastError = err;
        continue;
      }
      const event = this.finish(template.event, template.version, membership, content);
      try {
        return await submit(server, template.version, event);
      } catch (err) {
        this.core.log.info({ roomId, server, err: String(err) }, `send_${membership} failed`);
        lastError = err;
      }
    }
    throw this.asClientError(lastError, `${membership === 'leave' ? 'leaving' : `${membership}ing`} ${roomId}`);
  }

  private async makeTemplate(
    membership: HandshakeMembership,
    server: string,
    roomId: string,
    userId: string,
  ): Promise<{ version: RoomVersion; event: JsonObject }> {
    const answer = await this.client.request(server, {
      method: 'GET',
      path: `/_matrix/federation/v1/make_${membership}/${encodeURIComponent(roomId)}/${encodeURIComponent(userId)}`,
      ...(membership === 'leave' ? {} : { query: { ver: [...ROOM_VERSIONS.keys()] } }),
      timeoutMs: MAKE_TIMEOUT_MS,
    });
    if (!isJsonObject(answer) || !isJsonObject(answer.event))
      throw Errors.badGateway(`${server} answered make_${membership} without an event`);
    // make_leave may leave the version out (older servers): then the room's, if we know it.
    const versionId =
      typeof answer.room_version === 'string' ? answer.room_version : ((await this.core.eventCache.roomVersion(roomId))?.id ?? '1');
    const version = getRoomVersion(versionId);
    if (!version) throw Errors.incompatibleRoomVersion(versionId);
    const event = answer.event;
    // "The joining server MUST also verify that the type, room_id, sender, state_key and
    // content.membership fields have the expected values" (spec: §Joining Rooms).
    const templateContent = isJsonObject(event.content) ? event.content : {};
    if (
      event.type !== 'm.room.member' ||
      event.room_id !== roomId ||
      event.sender !== userId ||
      event.state_key !== userId ||
      templateContent.membership !== membership
    ) {
      throw Errors.badGateway(`${server} answered make_${membership} with an unexpected template`);
    }
    return { version, event };
  }

  /** The template with our fields: origin, timestamp, content, (v1/v2) event id; hashed and signed. */
  private finish(template: JsonObject, version: RoomVersion, membership: HandshakeMembership, content: JsonObject): RoomEvent {
    const templateContent = isJsonObject(template.content) ? template.content : {};
    const pdu: JsonObject = {
      ...template,
      origin: this.core.serverName,
      origin_server_ts: this.core.now(),
      // A restricted join names the authorising user in the template; keep it.
      content: { ...content, ...pick(templateContent, 'join_authorised_via_users_server'), membership },
    };
    delete pdu.event_id;
    delete pdu.hashes;
    delete pdu.signatures;
    delete pdu.unsigned;
    if (version.eventIdFormat === 'v1') pdu.event_id = generateLegacyEventId(this.core.serverName);
    try {
      return finaliseEvent(pdu, version, this.core.serverName, this.core.signingKey).event;
    } catch (err) {
      if (err instanceof InvalidEventError) throw Errors.badGateway(`the template is not a valid event: ${err.message}`);
      throw err;
    }
  }

  /** What a client is told when a handshake failed. */
  private asClientError(err: unknown, what: string): MatrixError {
    if (err instanceof MatrixError) return err;
    if (err instanceof FederationHttpError) {
      // The resident server's refusal goes to the client as it came (spec: "The error should be
      // passed through to clients"); but its bad requests are ours, a gateway problem.
      if (err.status >= 400 && err.status < 500 && err.errcode && err.errcode !== 'M_MISSING_PARAM' && err.errcode !== 'M_INVALID_PARAM') {
        const extra = isJsonObject(err.body) ? withoutErrorFields(err.body) : {};
        return Errors.relayed(err.status, err.errcode, err.errorText ?? `${what} failed`, extra, {});
      }
      return Errors.badGateway(`${what} failed: ${err.message}`);
    }
    if (err instanceof FederationRequestError) return Errors.badGateway(`${what} failed: no server could be reached (${err.message})`);
    return Errors.badGateway(`${what} failed: ${String(err)}`);
  }

  /** The PDUs of an answer that pass steps 1–3 (format, signatures, hash; a bad hash gives the redacted event). */
  private async checkedPdus(pdus: readonly unknown[], version: RoomVersion, roomId: string): Promise<JsonObject[]> {
    const outcomes = await verifyPdus(this.keyring, pdus, version, roomId, this.core.now());
    const kept: JsonObject[] = [];
    for (const outcome of outcomes) if (outcome.outcome !== 'drop') kept.push(outcome.event.pdu);
    return kept;
  }
}

function pick(object: JsonObject, key: string): JsonObject {
  return key in object ? { [key]: object[key]! } : {};
}

function withoutErrorFields(body: JsonObject): Record<string, unknown> {
  const { errcode: _errcode, error: _error, ...rest } = body;
  return rest;
}

function signedBy(pdu: JsonObject, server: string): boolean {
  return isJsonObject(pdu.signatures) && isJsonObject(pdu.signatures[server]);
}
