// Filters (S:data/api/client-server/filter.yaml). Any worker may serve them.

import type { JsonObject } from '../../core/json.js';
import { clientPaths, defineRoute, requesterOf, type RouteDefinition } from '../../http/route.js';
import type { ApiServices } from '../services.js';

export const filterRoutes: RouteDefinition<ApiServices>[] = [
  // POST /_matrix/client/v3/user/{userId}/filter
  defineRoute<ApiServices>({
    name: 'client.filter.create',
    method: 'POST',
    paths: clientPaths('/user/{userId}/filter'),
    resource: 'client',
    servedBy: 'any',
    auth: 'user',
    body: 'json',
    handle: async (req, services) => ({
      body: { filter_id: await services.filters.create(requesterOf(req), req.params.userId!, req.body as JsonObject) },
    }),
  }),

  // GET /_matrix/client/v3/user/{userId}/filter/{filterId}
  defineRoute<ApiServices>({
    name: 'client.filter.get',
    method: 'GET',
    paths: clientPaths('/user/{userId}/filter/{filterId}'),
    resource: 'client',
    servedBy: 'any',
    auth: 'user',
    handle: async (req, services) => ({ body: await services.filters.getJson(requesterOf(req), req.params.userId!, req.params.filterId!) }),
  }),
];
