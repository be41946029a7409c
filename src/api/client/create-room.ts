// Client-server API: POST /createRoom (S:data/api/client-server/create_room.yaml).

import { clientPaths, defineRoute, requesterOf, type RouteDefinition } from '../../http/route.js';
import type { ApiServices } from '../services.js';
import { jsonBody } from './params.js';

export const createRoomRoutes: RouteDefinition<ApiServices>[] = [
  // POST /_matrix/client/v3/createRoom
  defineRoute<ApiServices>({
    name: 'client.createRoom',
    method: 'POST',
    paths: clientPaths('/createRoom'),
    resource: 'client',
    auth: 'user',
    handle: async (req, services) => ({ body: await services.roomCreation.createRoom(requesterOf(req).userId, jsonBody(req)) }),
  }),
];
