// Client-server API: GET and POST /publicRooms (S:data/api/client-server/list_public_rooms.yaml).
//
// Synapse's default `allow_public_rooms_without_auth: false` is kept: both need an access token.
// With `server=` naming another server, that server's list is asked for over federation.

import { z } from 'zod';
import { isValidServerName } from '../../core/identifiers.js';
import type { PublicRoomsQuery } from '../../handlers/room-reads/directory.js';
import { absentIfNull, Errors, optionalBoolean, optionalString } from '../../errors.js';
import { integerParam } from '../../http/query.js';
import { clientPaths, type RouteDefinition } from '../../http/route.js';
import { defineRoute } from '../define-route.js';
import type { ApiServices } from '../services.js';

/** The POST body; `null` reads as absent everywhere, as in Synapse. */
export const searchBody = z.object({
  limit: absentIfNull(z.int().min(0).optional()),
  since: optionalString,
  filter: absentIfNull(
    z
      .object({
        generic_search_term: optionalString,
        // `null` in the list stands for rooms without a type.
        room_types: absentIfNull(z.array(z.string().nullable()).optional()),
      })
      .optional(),
  ),
  include_all_networks: optionalBoolean,
  third_party_instance_id: optionalString,
});

export const publicRoomsRoutes: RouteDefinition<ApiServices>[] = [
  // GET /_matrix/client/v3/publicRooms
  defineRoute({
    name: 'client.public_rooms.get',
    method: 'GET',
    paths: clientPaths('/publicRooms'),
    resource: 'client',
    auth: 'guest',
    handle: async ({ query }, services) => {
      const remote = remoteServer(query, services.serverName);
      const since = query.get('since');
      if (remote !== undefined) {
        return {
          body: await services.federationApi.remoteDirectory.publicRooms(remote, {
            limit: integerParam(query, 'limit', { min: 0 }),
            since: since || undefined,
            thirdPartyInstanceId: query.get('third_party_instance_id') || undefined,
          }),
        };
      }
      return {
        body: await services.roomDirectory.publicRooms({
          limit: integerParam(query, 'limit', { min: 0 }),
          ...(since ? { since } : {}),
        }),
      };
    },
  }),
  // POST /_matrix/client/v3/publicRooms
  defineRoute({
    name: 'client.public_rooms.post',
    method: 'POST',
    paths: clientPaths('/publicRooms'),
    resource: 'client',
    auth: 'guest',
    body: searchBody,
    handle: async ({ query, body }, services) => {
      const remote = remoteServer(query, services.serverName);
      const local = queryOfBody(body);
      if (remote !== undefined) {
        const filter = body.filter ?? {};
        return {
          body: await services.federationApi.remoteDirectory.publicRooms(remote, {
            limit: body.limit,
            since: body.since,
            filter: {
              ...(filter.generic_search_term === undefined ? {} : { generic_search_term: filter.generic_search_term }),
              ...(filter.room_types === undefined ? {} : { room_types: filter.room_types }),
            },
            includeAllNetworks: body.include_all_networks,
            thirdPartyInstanceId: body.third_party_instance_id,
          }),
        };
      }
      return { body: await services.roomDirectory.publicRooms(local) };
    },
  }),
];

export function queryOfBody(body: z.output<typeof searchBody>): PublicRoomsQuery {
  const includeAllNetworks = body.include_all_networks ?? false;
  const thirdPartyInstanceId = body.third_party_instance_id;
  if (includeAllNetworks && thirdPartyInstanceId !== undefined) {
    throw Errors.invalidParam("Can't use include_all_networks with an explicit network");
  }
  return {
    limit: body.limit,
    since: body.since,
    genericSearchTerm: body.filter?.generic_search_term,
    roomTypes: body.filter?.room_types,
    // Every room here is on the main list (there are no application-service lists), so "all
    // networks" is the main list and a named network is empty.
    ...(!includeAllNetworks && thirdPartyInstanceId !== undefined ? { thirdPartyInstanceId } : {}),
  };
}

/** The server named by `server=` when it is another one (undefined for ours or none). */
function remoteServer(query: URLSearchParams, serverName: string): string | undefined {
  const server = query.get('server');
  if (server === null || server === '' || server === serverName) return undefined;
  if (!isValidServerName(server)) throw Errors.invalidParam(`Invalid server name: ${server.slice(0, 100)}`);
  return server;
}
