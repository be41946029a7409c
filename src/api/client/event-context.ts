// Client-server API: GET /rooms/{roomId}/context/{eventId} (S:data/api/client-server/event_context.yaml).

import { MAX_PAGE_LIMIT } from '../../handlers/room-reads/timeline.js';
import { clientPaths, type RouteDefinition } from '../../http/route.js';
import { defineRoute } from '../define-route.js';
import type { ApiServices } from '../services.js';
import { limitParam, roomEventFilterParam } from './timeline-query.js';

export const eventContextRoutes: RouteDefinition<ApiServices>[] = [
  // GET /_matrix/client/v3/rooms/{roomId}/context/{eventId}
  defineRoute({
    name: 'client.rooms.context',
    method: 'GET',
    paths: clientPaths('/rooms/{roomId}/context/{eventId}'),
    resource: 'client',
    auth: 'guest',
    handle: async ({ requester, params, query }, { roomReads }) => ({
      body: await roomReads.context(requester, params.roomId, params.eventId, {
        limit: limitParam(query, 10, MAX_PAGE_LIMIT),
        filter: roomEventFilterParam(query),
      }),
    }),
  }),
];
