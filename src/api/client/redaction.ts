// Client-server API: PUT /rooms/{roomId}/redact/{eventId}/{txnId} (S:data/api/client-server/redaction.yaml).

import { clientPaths, defineRoute, requesterOf, type RouteDefinition } from '../../http/route.js';
import type { ApiServices } from '../services.js';
import { jsonBody, roomIdParam } from './params.js';

export const redactionRoutes: RouteDefinition<ApiServices>[] = [
  // PUT /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}
  defineRoute<ApiServices>({
    name: 'client.rooms.redact',
    method: 'PUT',
    paths: clientPaths('/rooms/{roomId}/redact/{eventId}/{txnId}'),
    resource: 'client',
    auth: 'user',
    sticky: 'room',
    handle: async (req, { roomMessages }) => {
      const { eventId } = await roomMessages.redact(roomIdParam(req), requesterOf(req), req.params.eventId ?? '', jsonBody(req), req.params.txnId ?? '');
      return { body: { event_id: eventId } };
    },
  }),
];
