// Client-server API: GET /rooms/{roomId}/event/{eventId} (S:data/api/client-server/rooms.yaml).

import { clientPaths, defineRoute, requesterOf, type RouteDefinition } from '../../http/route.js';
import type { ApiServices } from '../services.js';
import { roomIdParam } from './params.js';

export const roomEventRoutes: RouteDefinition<ApiServices>[] = [
  // GET /_matrix/client/v3/rooms/{roomId}/event/{eventId}
  defineRoute<ApiServices>({
    name: 'client.rooms.event',
    method: 'GET',
    paths: clientPaths('/rooms/{roomId}/event/{eventId}'),
    resource: 'client',
    auth: 'user',
    handle: async (req, { roomReads }) => ({ body: await roomReads.event(requesterOf(req), roomIdParam(req), req.params.eventId ?? '') }),
  }),
];
