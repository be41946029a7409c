// Client-server API: GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event
// (S:data/api/client-server/room_event_by_timestamp.yaml). v1 only, as the spec.

import { enumParam, integerParam } from '../../handlers/room-reads/input.js';
import { Errors } from '../../errors.js';
import { clientPaths, defineRoute, requesterOf, type RouteDefinition } from '../../http/route.js';
import type { ApiServices } from '../services.js';
import { roomIdParam } from './params.js';

export const timestampToEventRoutes: RouteDefinition<ApiServices>[] = [
  // GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event
  defineRoute<ApiServices>({
    name: 'client.rooms.timestamp_to_event',
    method: 'GET',
    paths: clientPaths('/rooms/{roomId}/timestamp_to_event', ['v1']),
    resource: 'client',
    auth: 'user',
    handle: async (req, { roomReads }) => {
      const ts = integerParam(req.query, 'ts');
      if (ts === undefined) throw Errors.missingParam('Missing query parameter: ts');
      const dir = enumParam(req.query, 'dir', ['f', 'b'] as const);
      if (dir === undefined) throw Errors.missingParam('Missing query parameter: dir');
      return { body: await roomReads.timestampToEvent(requesterOf(req), roomIdParam(req), ts, dir) };
    },
  }),
];
