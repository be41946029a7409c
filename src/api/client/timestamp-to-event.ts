// Client-server API: GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event
// (S:data/api/client-server/room_event_by_timestamp.yaml). v1 only, as the spec.

import { requiredEnumParam, requiredIntegerParam } from '../../http/query.js';
import { clientPaths, type RouteDefinition } from '../../http/route.js';
import { defineRoute } from '../define-route.js';
import type { ApiServices } from '../services.js';

export const timestampToEventRoutes: RouteDefinition<ApiServices>[] = [
  // GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event
  defineRoute({
    name: 'client.rooms.timestamp_to_event',
    method: 'GET',
    paths: clientPaths('/rooms/{roomId}/timestamp_to_event', ['v1']),
    resource: 'client',
    auth: 'guest',
    handle: async ({ requester, params, query }, { roomReads }) => {
      const ts = requiredIntegerParam(query, 'ts');
      const dir = requiredEnumParam(query, 'dir', ['f', 'b']);
      return { body: await roomReads.timestampToEvent(requester, params.roomId, ts, dir) };
    },
  }),
];
