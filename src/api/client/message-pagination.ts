// Client-server API: GET /rooms/{roomId}/messages (S:data/api/client-server/message_pagination.yaml).
// Served by any worker, but every request for one room must reach the same one (Synapse's
// workers.md), hence sticky by room.

import { MAX_PAGE_LIMIT } from '../../handlers/room-reads/timeline.js';
import { requiredEnumParam } from '../../http/query.js';
import { clientPaths, type RouteDefinition } from '../../http/route.js';
import { defineRoute } from '../define-route.js';
import type { ApiServices } from '../services.js';
import { limitParam, roomEventFilterParam } from './timeline-query.js';

export const messagePaginationRoutes: RouteDefinition<ApiServices>[] = [
  // GET /_matrix/client/v3/rooms/{roomId}/messages
  defineRoute({
    name: 'client.rooms.messages',
    method: 'GET',
    paths: clientPaths('/rooms/{roomId}/messages'),
    resource: 'client',
    auth: 'guest',
    sticky: 'room',
    handle: async ({ requester, params, query }, { roomReads }) => {
      const dir = requiredEnumParam(query, 'dir', ['b', 'f']);
      return {
        body: await roomReads.messages(requester, params.roomId, {
          dir,
          // An empty token is no token.
          from: query.get('from') || undefined,
          to: query.get('to') || undefined,
          limit: limitParam(query, 10, MAX_PAGE_LIMIT),
          filter: roomEventFilterParam(query),
        }),
      };
    },
  }),
];
