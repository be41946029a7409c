// Client-server API: POST /createRoom (S:data/api/client-server/create_room.yaml).

import { clientPaths, type RouteDefinition } from '../../http/route.js';
import { defineRoute } from '../define-route.js';
import { jsonObject } from '../../errors.js';
import type { ApiServices } from '../services.js';

export const createRoomRoutes: RouteDefinition<ApiServices>[] = [
  // POST /_matrix/client/v3/createRoom
  defineRoute({
    name: 'client.createRoom',
    method: 'POST',
    paths: clientPaths('/createRoom'),
    resource: 'client',
    auth: 'guest',
    // Checked by room creation, field by field, in the order the spec's rules need.
    body: jsonObject,
    handle: async ({ requester, body }, services) => ({ body: await services.roomCreation.createRoom(requester.userId, body) }),
  }),
];
