// What our clients read from other servers (spec: server-server API §Querying for information,
// §Public Room Directory; client-server API §Profiles, §Room aliases, §Listing rooms): another
// server's room alias (`/query/directory`), one of its users' profile (`/query/profile`), its
// public room list (`/publicRooms`). One place for each, used by the client endpoints and by
// joins through a remote alias alike.
//
// Errors, as the client sees them: the other server's "not found" is our 404 M_NOT_FOUND (and its
// 403 M_FORBIDDEN, e.g. a room list it does not share over federation, is passed on); a server
// that cannot be reached, times out, or answers anything else is 502 M_UNKNOWN naming it, as
// Synapse answers an unreachable server with a 5xx.
//
// Profiles are cached briefly (found and not found alike): a client showing a room's members
// asks for the same few profiles over and over, and a profile change reaches us anyway through
// the member events of shared rooms. Nothing else is cached: an alias can move, a room list is
// paginated with tokens of the other server.

import { isValidRoomId, isValidServerName, serverNameOf } from '../../core/identifiers.js';
import { isJsonObject, type JsonObject, type JsonValue } from '../../core/json.js';
import { Errors, MatrixError } from '../../errors.js';
import type { FederationClient } from '../../federation/client.js';
import { FederationHttpError, FederationRequestError } from '../../federation/errors.js';
import { LruCache } from '../../util/lru.js';

/** How long a query to another server may take. */
const QUERY_TIMEOUT_MS = 30_000;
/** How long a remote profile answer is kept. */
export const REMOTE_PROFILE_TTL_MS = 30_000;
/** At most this many public rooms taken from another server's page. */
const MAX_REMOTE_PUBLIC_ROOMS = 500;

export interface RemotePublicRoomsQuery {
  readonly limit?: number | undefined;
  readonly since?: string | undefined;
  readonly filter?: { readonly generic_search_term?: string | undefined; readonly room_types?: ReadonlyArray<string | null> | undefined };
  readonly includeAllNetworks?: boolean | undefined;
  readonly thirdPartyInstanceId?: string | undefined;
}

/** Another server's page of its public room list (spec: `public_rooms.yaml`), entries as it gave them. */
export interface RemotePublicRoomsResponse {
  chunk: JsonObject[];
  next_batch?: string;
  prev_batch?: string;
  total_room_count_estimate: number;
}

type ProfileAnswer = { ok: true; profile: JsonObject } | { ok: false };

export class RemoteQueries {
  private readonly profiles = new LruCache<string, { at: number; answer: ProfileAnswer }>(10_000);

  constructor(
    private readonly client: Pick<FederationClient, 'request'>,
    private readonly now: () => number = Date.now,
  ) {}

  /** A room alias of another server: `/query/directory` on that server (its room id and servers, the alias's server first). */
  async resolveAlias(alias: string): Promise<{ roomId: string; servers: string[] }> {
    const server = serverNameOf(alias);
    if (!server) throw Errors.invalidParam(`${alias} is not a room alias`);
    const answer = await this.ask(server, `resolving ${alias}`, {
      method: 'GET',
      path: '/_matrix/federation/v1/query/directory',
      query: { room_alias: alias },
    });
    if (!isJsonObject(answer) || !isValidRoomId(answer.room_id)) throw Errors.badGateway(`${server} gave no room for ${alias}`);
    const servers = Array.isArray(answer.servers)
      ? answer.servers.filter((s): s is string => typeof s === 'string' && isValidServerName(s))
      : [];
    return { roomId: answer.room_id as string, servers: [server, ...new Set(servers.filter((s) => s !== server))].slice(0, 100) };
  }

  /**
   * A user of another server's profile (`field` undefined: the whole of it), from
   * `/query/profile` on their server; 404 when that server has none.
   */
  async profile(userId: string, field?: 'displayname' | 'avatar_url'): Promise<JsonObject> {
    const server = serverNameOf(userId);
    if (!server) throw Errors.invalidParam('Invalid user id');
    const key = `${userId}\u0000${field ?? ''}`;
    const cached = this.profiles.get(key);
    let answer = cached !== undefined && this.now() - cached.at < REMOTE_PROFILE_TTL_MS ? cached.answer : undefined;
    if (answer === undefined) {
      try {
        const json = await this.ask(server, `asking ${server} for the profile of ${userId}`, {
          method: 'GET',
          path: '/_matrix/federation/v1/query/profile',
          query: { user_id: userId, ...(field ? { field } : {}) },
        });
        answer = { ok: true, profile: isJsonObject(json) ? json : {} };
      } catch (err) {
        if (!(err instanceof MatrixError && err.status === 404)) throw err;
        answer = { ok: false };
      }
      this.profiles.set(key, { at: this.now(), answer });
    }
    if (!answer.ok) throw Errors.notFound('Profile was not found');
    // Only strings (or null) for the two fields the spec names; other keys are passed on as given.
    const profile: JsonObject = { ...answer.profile };
    for (const name of ['displayname', 'avatar_url'] as const) {
      if (name in profile && typeof profile[name] !== 'string') delete profile[name];
    }
    if (field !== undefined) {
      if (typeof profile[field] !== 'string') throw Errors.notFound(`The user has no ${field}`);
      return { [field]: profile[field] };
    }
    return profile;
  }

  /**
   * Another server's public room list: `GET /publicRooms` for a plain page, `POST` when the client
   * filters (the search needs the body), as Synapse asks.
   */
  async publicRooms(server: string, query: RemotePublicRoomsQuery): Promise<RemotePublicRoomsResponse> {
    const filtered =
      query.filter !== undefined && (query.filter.generic_search_term !== undefined || query.filter.room_types !== undefined);
    const common = {
      ...(query.limit !== undefined ? { limit: query.limit } : {}),
      ...(query.since !== undefined ? { since: query.since } : {}),
      ...(query.includeAllNetworks !== undefined ? { include_all_networks: query.includeAllNetworks } : {}),
      ...(query.thirdPartyInstanceId !== undefined ? { third_party_instance_id: query.thirdPartyInstanceId } : {}),
    };
    const answer = filtered
      ? await this.ask(server, `asking ${server} for its public rooms`, {
          method: 'POST',
          path: '/_matrix/federation/v1/publicRooms',
          body: {
            ...common,
            filter: {
              ...(query.filter?.generic_search_term !== undefined ? { generic_search_term: query.filter.generic_search_term } : {}),
              ...(query.filter?.room_types !== undefined ? { room_types: [...query.filter.room_types] } : {}),
            },
          },
        })
      : await this.ask(server, `asking ${server} for its public rooms`, {
          method: 'GET',
          path: '/_matrix/federation/v1/publicRooms',
          query: Object.fromEntries(Object.entries(common).map(([k, v]) => [k, String(v)])),
        });
    if (!isJsonObject(answer) || !Array.isArray(answer.chunk)) throw Errors.badGateway(`${server} answered /publicRooms without a chunk`);
    // Each entry must at least name a room and the fields the spec requires; others are left out.
    const chunk = answer.chunk
      .filter(
        (entry): entry is JsonObject =>
          isJsonObject(entry) &&
          isValidRoomId(entry.room_id) &&
          Number.isSafeInteger(entry.num_joined_members) &&
          typeof entry.world_readable === 'boolean' &&
          typeof entry.guest_can_join === 'boolean',
      )
      .slice(0, MAX_REMOTE_PUBLIC_ROOMS);
    const response: RemotePublicRoomsResponse = {
      chunk,
      total_room_count_estimate: Number.isSafeInteger(answer.total_room_count_estimate)
        ? (answer.total_room_count_estimate as number)
        : chunk.length,
    };
    if (typeof answer.next_batch === 'string') response.next_batch = answer.next_batch;
    if (typeof answer.prev_batch === 'string') response.prev_batch = answer.prev_batch;
    return response;
  }

  /** A request to `server`; its failures as the errors a client is given (see the module comment). */
  private async ask(
    server: string,
    what: string,
    request: { method: 'GET' | 'POST'; path: string; query?: Record<string, string>; body?: JsonObject },
  ): Promise<JsonValue> {
    try {
      return await this.client.request(server, { ...request, timeoutMs: QUERY_TIMEOUT_MS });
    } catch (err) {
      throw remoteQueryError(err, what);
    }
  }
}

/** What a client is told when a query to another server failed. */
export function remoteQueryError(err: unknown, what: string): unknown {
  if (err instanceof FederationHttpError) {
    if (err.status === 404) return Errors.notFound(err.errorText ?? `${err.destination} found nothing`);
    if (err.status === 403 && err.errcode === 'M_FORBIDDEN') return Errors.forbidden(err.errorText ?? `${err.destination} refused`);
    return Errors.badGateway(`${what} failed: ${err.message}`);
  }
  if (err instanceof FederationRequestError) return Errors.badGateway(`${what} failed: ${err.message}`);
  return err;
}
