// Filters (S:data/api/client-server/filter.yaml). Any worker may serve them.

import { jsonObject } from '../../errors.js';
import { clientPaths, type RouteDefinition } from '../../http/route.js';
import { defineRoute } from '../define-route.js';
import type { ApiServices } from '../services.js';

export const filterRoutes: RouteDefinition<ApiServices>[] = [
  // POST /_matrix/client/v3/user/{userId}/filter
  defineRoute({
    name: 'client.filter.create',
    method: 'POST',
    paths: clientPaths('/user/{userId}/filter'),
    resource: 'client',
    servedBy: 'any',
    auth: 'guest',
    // A sync filter, checked by `parseFilter` (src/core/filters.ts), as inline /sync filters are.
    body: jsonObject,
    handle: async ({ requester, params, body }, services) => ({
      body: { filter_id: await services.filters.create(requester, params.userId, body) },
    }),
  }),

  // GET /_matrix/client/v3/user/{userId}/filter/{filterId}
  defineRoute({
    name: 'client.filter.get',
    method: 'GET',
    paths: clientPaths('/user/{userId}/filter/{filterId}'),
    resource: 'client',
    servedBy: 'any',
    auth: 'guest',
    handle: async ({ requester, params }, services) => ({
      body: await services.filters.getJson(requester, params.userId, params.filterId),
    }),
  }),
];
