// Server-server API: GET and POST /_matrix/federation/v1/publicRooms
// (S:data/api/server-server/public_rooms.yaml): our room directory, for other servers' users,
// only with `allow_public_rooms_over_federation: true` (default false: 403, as Synapse).

import { z } from 'zod';
import { absentIfNull } from '../../errors.js';
import { booleanParam, integerParam, stringParam } from '../../http/query.js';
import { queryOfBody, searchBody } from '../client/public-rooms.js';
import { defineRoute } from '../define-route.js';

/**
 * The client POST body, but `include_all_networks` may also be the string `"true"` or `"false"`: Synapse (1.67 at
 * least) sends it as a string in this body (it is one in the GET query), and refusing it would fail every filtered
 * directory search from Synapse users.
 */
const federationSearchBody = searchBody.extend({
  include_all_networks: absentIfNull(z.union([z.boolean(), z.enum(['true', 'false']).transform((value) => value === 'true')]).optional()),
});

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
    body: federationSearchBody,
    handle: async ({ body }, services) => ({ body: await services.federationApi.queries.publicRooms(queryOfBody(body)) }),
  }),
];
