// Server-server API: GET and POST /_matrix/federation/v1/publicRooms
// (S:data/api/server-server/public_rooms.yaml): our room directory, for other servers' users,
// only with `allow_public_rooms_over_federation: true` (default false: 403, as Synapse).

import { booleanParam, integerParam, stringParam } from '../../http/query.js';
import { queryOfBody, searchBody } from '../client/public-rooms.js';
import { defineRoute } from '../define-route.js';

export const federationPublicRoomsRoutes = [
  // GET /_matrix/federation/v1/publicRooms
  defineRoute({
    name: 'federation.public_rooms.get',
    method: 'GET',
    paths: '/_matrix/federation/v1/publicRooms',
    resource: 'federation',
    auth: 'server',
    handle: async ({ query }, services) => {
      const since = stringParam(query, 'since');
      const thirdPartyInstanceId = stringParam(query, 'third_party_instance_id');
      const includeAllNetworks = booleanParam(query, 'include_all_networks');
      return {
        body: await services.federationApi.queries.publicRooms(
          queryOfBody({
            limit: integerParam(query, 'limit', { min: 0 }),
            since,
            filter: undefined,
            include_all_networks: includeAllNetworks,
            third_party_instance_id: thirdPartyInstanceId,
          }),
        ),
      };
    },
  }),
  // POST /_matrix/federation/v1/publicRooms
  defineRoute({
    name: 'federation.public_rooms.post',
    method: 'POST',
    paths: '/_matrix/federation/v1/publicRooms',
    resource: 'federation',
    auth: 'server',
    body: searchBody,
    handle: async ({ body }, services) => ({ body: await services.federationApi.queries.publicRooms(queryOfBody(body)) }),
  }),
];
