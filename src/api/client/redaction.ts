// Client-server API: PUT /rooms/{roomId}/redact/{eventId}/{txnId} (S:data/api/client-server/redaction.yaml).

import { jsonObject } from '../../errors.js';
import { clientPaths, type RouteDefinition } from '../../http/route.js';
import { defineRoute } from '../define-route.js';
import type { ApiServices } from '../services.js';

export const redactionRoutes: RouteDefinition<ApiServices>[] = [
  // PUT /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}
  defineRoute({
    name: 'client.rooms.redact',
    method: 'PUT',
    paths: clientPaths('/rooms/{roomId}/redact/{eventId}/{txnId}'),
    resource: 'client',
    auth: 'guest',
    sticky: 'room',
    // The redaction's content (`reason`, ...), checked as event content by the events writer.
    body: jsonObject,
    handle: async ({ requester, params, body }, { roomMessages }) => {
      const { eventId } = await roomMessages.redact(params.roomId, requester, params.eventId, body, params.txnId);
      return { body: { event_id: eventId } };
    },
  }),
];
