// Client-server API: reading room state (S:data/api/client-server/rooms.yaml — GET /state and
// GET /state/{eventType}/{stateKey}). The PUT side is in room-send.ts.

import { clientPaths, defineRoute, requesterOf, type RouteDefinition } from '../../http/route.js';
import { enumParam } from '../../handlers/room-reads/input.js';
import type { ApiServices } from '../services.js';
import { roomIdParam } from './params.js';

const getState = (name: string, paths: string[], withKey: boolean) =>
  defineRoute<ApiServices>({
    name,
    method: 'GET',
    paths,
    resource: 'client',
    auth: 'user',
    handle: async (req, { roomReads }) => {
      // `content` (the default) answers with the content alone; `event` with the client event.
      const format = enumParam(req.query, 'format', ['content', 'event'] as const) ?? 'content';
      const stateKey = withKey ? (req.params.stateKey ?? '') : '';
      const event = await roomReads.stateEvent(requesterOf(req), roomIdParam(req), req.params.eventType ?? '', stateKey);
      return { body: format === 'event' ? event : event.content };
    },
  });

export const roomStateRoutes: RouteDefinition<ApiServices>[] = [
  // GET /_matrix/client/v3/rooms/{roomId}/state
  defineRoute<ApiServices>({
    name: 'client.rooms.state.get_all',
    method: 'GET',
    paths: clientPaths('/rooms/{roomId}/state'),
    resource: 'client',
    auth: 'user',
    handle: async (req, { roomReads }) => ({ body: await roomReads.state(requesterOf(req), roomIdParam(req)) }),
  }),
  // GET /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}
  getState('client.rooms.state.get', clientPaths('/rooms/{roomId}/state/{eventType}/{stateKey}'), true),
  // GET /_matrix/client/v3/rooms/{roomId}/state/{eventType} (and with a trailing slash): empty state key
  getState('client.rooms.state.get.emptyKey', [...clientPaths('/rooms/{roomId}/state/{eventType}'), ...clientPaths('/rooms/{roomId}/state/{eventType}/')], false),
];
