// Client-server API: reading room state (S:data/api/client-server/rooms.yaml — GET /state and
// GET /state/{eventType}/{stateKey}). The PUT side is in room-send.ts.

import type { Requester } from '../../handlers/kernel/requester.js';
import { enumParam } from '../../http/query.js';
import { clientPaths, type RouteDefinition } from '../../http/route.js';
import { defineRoute } from '../define-route.js';
import type { ApiServices } from '../services.js';

/**
 * One state event: `content` (the default) answers with the content alone; `event` with the
 * client event.
 */
async function stateEvent(
  { roomReads }: ApiServices,
  requester: Requester,
  query: URLSearchParams,
  where: { roomId: string; eventType: string; stateKey: string },
): Promise<{ body: unknown }> {
  const format = enumParam(query, 'format', ['content', 'event']) ?? 'content';
  const event = await roomReads.stateEvent(requester, where.roomId, where.eventType, where.stateKey);
  return { body: format === 'event' ? event : event.content };
}

export const roomStateRoutes: RouteDefinition<ApiServices>[] = [
  // GET /_matrix/client/v3/rooms/{roomId}/state
  defineRoute({
    name: 'client.rooms.state.get_all',
    method: 'GET',
    paths: clientPaths('/rooms/{roomId}/state'),
    resource: 'client',
    auth: 'guest',
    handle: async ({ requester, params }, { roomReads }) => ({ body: await roomReads.state(requester, params.roomId) }),
  }),
  // GET /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}
  defineRoute({
    name: 'client.rooms.state.get',
    method: 'GET',
    paths: clientPaths('/rooms/{roomId}/state/{eventType}/{stateKey}'),
    resource: 'client',
    auth: 'guest',
    handle: ({ requester, params, query }, services) => stateEvent(services, requester, query, params),
  }),
  // GET /_matrix/client/v3/rooms/{roomId}/state/{eventType} (and with a trailing slash): empty state key
  defineRoute({
    name: 'client.rooms.state.get.emptyKey',
    method: 'GET',
    paths: [...clientPaths('/rooms/{roomId}/state/{eventType}'), ...clientPaths('/rooms/{roomId}/state/{eventType}/')],
    resource: 'client',
    auth: 'guest',
    handle: ({ requester, params, query }, services) => stateEvent(services, requester, query, { ...params, stateKey: '' }),
  }),
];
