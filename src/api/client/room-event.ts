// Client-server API: GET /rooms/{roomId}/event/{eventId} (S:data/api/client-server/rooms.yaml).

import { clientPaths, type RouteDefinition } from '../../http/route.js';
import { defineRoute } from '../define-route.js';
import type { ApiServices } from '../services.js';

export const roomEventRoutes: RouteDefinition<ApiServices>[] = [
  // GET /_matrix/client/v3/rooms/{roomId}/event/{eventId}
  defineRoute({
    name: 'client.rooms.event',
    method: 'GET',
    paths: clientPaths('/rooms/{roomId}/event/{eventId}'),
    resource: 'client',
    auth: 'guest',
    handle: async ({ requester, params }, { roomReads }) => ({ body: await roomReads.event(requester, params.roomId, params.eventId) }),
  }),
];
