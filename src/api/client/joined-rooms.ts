// Client-server API: GET /joined_rooms (S:data/api/client-server/list_joined_rooms.yaml).

import { clientPaths, type RouteDefinition } from '../../http/route.js';
import { defineRoute } from '../define-route.js';
import type { ApiServices } from '../services.js';

export const joinedRoomsRoutes: RouteDefinition<ApiServices>[] = [
  // GET /_matrix/client/v3/joined_rooms
  defineRoute({
    name: 'client.joined_rooms',
    method: 'GET',
    paths: clientPaths('/joined_rooms'),
    resource: 'client',
    auth: 'guest',
    handle: async ({ requester }, { roomReads }) => ({ body: await roomReads.joinedRooms(requester) }),
  }),
];
