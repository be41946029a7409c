// Client-server API: sending message and state events
// (S:data/api/client-server/room_send.yaml, room_state.yaml — the PUT side).

import { jsonObject } from '../../errors.js';
import { clientPaths, type RouteDefinition } from '../../http/route.js';
import { defineRoute } from '../define-route.js';
import type { ApiServices } from '../services.js';

/** What sending an event declares: the content is any JSON object, checked by the events writer. */
const sending = {
  method: 'PUT',
  resource: 'client',
  auth: 'guest',
  sticky: 'room',
  body: jsonObject,
  // Event content is stored only as JSON text; the spec lets it hold any string.
  acceptsNul: true,
} as const;

export const roomSendRoutes: RouteDefinition<ApiServices>[] = [
  // PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}
  defineRoute({
    ...sending,
    name: 'client.rooms.send',
    paths: clientPaths('/rooms/{roomId}/send/{eventType}/{txnId}'),
    handle: async ({ requester, params, body }, { roomMessages }) => {
      const { eventId } = await roomMessages.send(params.roomId, requester, params.eventType, body, params.txnId);
      return { body: { event_id: eventId } };
    },
  }),
  // PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}
  defineRoute({
    ...sending,
    name: 'client.rooms.state.put',
    paths: clientPaths('/rooms/{roomId}/state/{eventType}/{stateKey}'),
    handle: async ({ requester, params, body }, { roomMessages }) => {
      const { eventId } = await roomMessages.setState(params.roomId, requester, params.eventType, params.stateKey, body);
      return { body: { event_id: eventId } };
    },
  }),
  // PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType} (and with a trailing slash): empty state key
  defineRoute({
    ...sending,
    name: 'client.rooms.state.put.emptyKey',
    paths: [...clientPaths('/rooms/{roomId}/state/{eventType}'), ...clientPaths('/rooms/{roomId}/state/{eventType}/')],
    handle: async ({ requester, params, body }, { roomMessages }) => {
      const { eventId } = await roomMessages.setState(params.roomId, requester, params.eventType, '', body);
      return { body: { event_id: eventId } };
    },
  }),
];
