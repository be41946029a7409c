// Server-server API, queries (S:data/api/server-server/query.yaml): GET /query/directory and
// GET /query/profile. The generic /query/{queryType} has no other types we answer: 404
// M_UNRECOGNIZED, as for any unknown path.

import { requiredStringParam, stringParam } from '../../http/query.js';
import { defineRoute } from '../define-route.js';

export const federationQueryRoutes = [
  // GET /_matrix/federation/v1/query/directory?room_alias=
  defineRoute({
    name: 'federation.query.directory',
    method: 'GET',
    paths: '/_matrix/federation/v1/query/directory',
    resource: 'federation',
    auth: 'server',
    handle: async ({ query }, services) => ({
      body: await services.federationApi.queries.directory(requiredStringParam(query, 'room_alias')),
    }),
  }),
  // GET /_matrix/federation/v1/query/profile?user_id=&field=
  defineRoute({
    name: 'federation.query.profile',
    method: 'GET',
    paths: '/_matrix/federation/v1/query/profile',
    resource: 'federation',
    auth: 'server',
    handle: async ({ query }, services) => ({
      body: await services.federationApi.queries.profile(requiredStringParam(query, 'user_id'), stringParam(query, 'field')),
    }),
  }),
];
