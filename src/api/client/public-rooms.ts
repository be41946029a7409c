// Client-server API: GET and POST /publicRooms (S:data/api/client-server/list_public_rooms.yaml).
//
// Synapse's default `allow_public_rooms_without_auth: false` is kept: both need an access token.
// Only this server's list is served.

import { isJsonObject, type JsonObject } from '../../core/json.js';
import { isValidServerName } from '../../core/identifiers.js';
import type { PublicRoomsQuery } from '../../handlers/room-reads/directory.js';
import { integerParam, optionalBoolean, optionalInteger } from '../../handlers/room-reads/input.js';
import { Errors } from '../../errors.js';
import { clientPaths, defineRoute, type RouteDefinition, type RouteRequest } from '../../http/route.js';
import type { ApiServices } from '../services.js';
import { jsonBody, stringField } from './params.js';

export const publicRoomsRoutes: RouteDefinition<ApiServices>[] = [
  // GET /_matrix/client/v3/publicRooms
  defineRoute<ApiServices>({
    name: 'client.public_rooms.get',
    method: 'GET',
    paths: clientPaths('/publicRooms'),
    resource: 'client',
    auth: 'user',
    handle: async (req, services) => {
      requireLocalServer(req, services.serverName);
      const since = req.query.get('since');
      return {
        body: await services.roomDirectory.publicRooms({
          limit: nonNegative(integerParam(req.query, 'limit')),
          ...(since ? { since } : {}),
        }),
      };
    },
  }),
  // POST /_matrix/client/v3/publicRooms
  defineRoute<ApiServices>({
    name: 'client.public_rooms.post',
    method: 'POST',
    paths: clientPaths('/publicRooms'),
    resource: 'client',
    auth: 'user',
    handle: async (req, services) => {
      requireLocalServer(req, services.serverName);
      return { body: await services.roomDirectory.publicRooms(queryOfBody(jsonBody(req))) };
    },
  }),
];

function queryOfBody(body: JsonObject): PublicRoomsQuery {
  const query: { -readonly [K in keyof PublicRoomsQuery]: PublicRoomsQuery[K] } = {
    limit: nonNegative(optionalInteger(body, 'limit')),
    since: stringField(body, 'since'),
  };
  const filter = body.filter;
  if (filter !== undefined && filter !== null) {
    if (!isJsonObject(filter)) throw Errors.badJson('filter must be an object');
    query.genericSearchTerm = stringField(filter, 'generic_search_term');
    const roomTypes = filter.room_types;
    if (roomTypes !== undefined && roomTypes !== null) {
      if (!Array.isArray(roomTypes) || !roomTypes.every((t) => t === null || typeof t === 'string')) {
        throw Errors.badJson('filter.room_types must be an array of strings and nulls');
      }
      query.roomTypes = roomTypes as Array<string | null>;
    }
  }
  const includeAllNetworks = optionalBoolean(body, 'include_all_networks') ?? false;
  const thirdPartyInstanceId = stringField(body, 'third_party_instance_id');
  if (includeAllNetworks && thirdPartyInstanceId !== undefined) {
    throw Errors.invalidParam("Can't use include_all_networks with an explicit network");
  }
  // Every room here is on the main list (there are no application-service lists), so "all
  // networks" is the main list and a named network is empty.
  if (!includeAllNetworks && thirdPartyInstanceId !== undefined) query.thirdPartyInstanceId = thirdPartyInstanceId;
  return query;
}

function nonNegative(limit: number | undefined): number | undefined {
  if (limit !== undefined && limit < 0) throw Errors.invalidParam('limit must be 0 or above');
  return limit;
}

function requireLocalServer(req: RouteRequest, serverName: string): void {
  const server = req.query.get('server');
  if (server === null || server === '' || server === serverName) return;
  if (!isValidServerName(server)) throw Errors.invalidParam(`Invalid server name: ${server.slice(0, 100)}`);
  // Another server's list would come over federation, which this server does not speak yet. A
  // 404 (rather than Synapse's 502 for an unreachable server) says "not available here" without
  // claiming a server failure.
  throw Errors.notFound(`The room directory of ${server} is not available from this server`);
}
