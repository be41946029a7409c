// Client-server API: GET /rooms/{roomId}/context/{eventId} (S:data/api/client-server/event_context.yaml).

import { limitParam, roomEventFilterParam } from '../../handlers/room-reads/input.js';
import { MAX_PAGE_LIMIT } from '../../handlers/room-reads/timeline.js';
import { clientPaths, defineRoute, requesterOf, type RouteDefinition } from '../../http/route.js';
import type { ApiServices } from '../services.js';
import { roomIdParam } from './params.js';

export const eventContextRoutes: RouteDefinition<ApiServices>[] = [
  // GET /_matrix/client/v3/rooms/{roomId}/context/{eventId}
  defineRoute<ApiServices>({
    name: 'client.rooms.context',
    method: 'GET',
    paths: clientPaths('/rooms/{roomId}/context/{eventId}'),
    resource: 'client',
    auth: 'user',
    handle: async (req, { roomReads }) => ({
      body: await roomReads.context(requesterOf(req), roomIdParam(req), req.params.eventId ?? '', {
        limit: limitParam(req.query, 10, MAX_PAGE_LIMIT),
        filter: roomEventFilterParam(req.query),
      }),
    }),
  }),
];
