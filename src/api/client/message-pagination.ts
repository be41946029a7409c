// Client-server API: GET /rooms/{roomId}/messages (S:data/api/client-server/message_pagination.yaml).
// Served by any worker, but every request for one room must reach the same one (Synapse's
// workers.md), hence sticky by room.

import { enumParam, limitParam, roomEventFilterParam } from '../../handlers/room-reads/input.js';
import { MAX_PAGE_LIMIT } from '../../handlers/room-reads/timeline.js';
import { Errors } from '../../errors.js';
import { clientPaths, defineRoute, requesterOf, type RouteDefinition } from '../../http/route.js';
import type { ApiServices } from '../services.js';
import { roomIdParam } from './params.js';

export const messagePaginationRoutes: RouteDefinition<ApiServices>[] = [
  // GET /_matrix/client/v3/rooms/{roomId}/messages
  defineRoute<ApiServices>({
    name: 'client.rooms.messages',
    method: 'GET',
    paths: clientPaths('/rooms/{roomId}/messages'),
    resource: 'client',
    auth: 'user',
    sticky: 'room',
    handle: async (req, { roomReads }) => {
      const dir = enumParam(req.query, 'dir', ['b', 'f'] as const);
      if (dir === undefined) throw Errors.missingParam('Missing query parameter: dir');
      return {
        body: await roomReads.messages(requesterOf(req), roomIdParam(req), {
          dir,
          from: req.query.get('from') || undefined,
          to: req.query.get('to') || undefined,
          limit: limitParam(req.query, 10, MAX_PAGE_LIMIT),
          filter: roomEventFilterParam(req.query),
        }),
      };
    },
  }),
];
