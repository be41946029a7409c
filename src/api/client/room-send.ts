// Client-server API: sending message and state events
// (S:data/api/client-server/room_send.yaml, room_state.yaml — the PUT side).

import { clientPaths, defineRoute, requesterOf, type RouteDefinition } from '../../http/route.js';
import type { ApiServices } from '../services.js';
import { jsonBody, roomIdParam } from './params.js';

const putState = (paths: string[], withKey: boolean) =>
  defineRoute<ApiServices>({
    name: withKey ? 'client.rooms.state.put' : 'client.rooms.state.put.emptyKey',
    method: 'PUT',
    paths,
    resource: 'client',
    auth: 'user',
    sticky: 'room',
    // Event content is stored only as JSON text; the spec lets it hold any string.
    acceptsNul: true,
    handle: async (req, { roomMessages }) => {
      const stateKey = withKey ? (req.params.stateKey ?? '') : '';
      const { eventId } = await roomMessages.setState(roomIdParam(req), requesterOf(req), req.params.eventType ?? '', stateKey, jsonBody(req));
      return { body: { event_id: eventId } };
    },
  });

export const roomSendRoutes: RouteDefinition<ApiServices>[] = [
  // PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}
  defineRoute<ApiServices>({
    name: 'client.rooms.send',
    method: 'PUT',
    paths: clientPaths('/rooms/{roomId}/send/{eventType}/{txnId}'),
    resource: 'client',
    auth: 'user',
    sticky: 'room',
    // Event content is stored only as JSON text; the spec lets it hold any string.
    acceptsNul: true,
    handle: async (req, { roomMessages }) => {
      const { eventId } = await roomMessages.send(roomIdParam(req), requesterOf(req), req.params.eventType ?? '', jsonBody(req), req.params.txnId ?? '');
      return { body: { event_id: eventId } };
    },
  }),
  // PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}
  putState(clientPaths('/rooms/{roomId}/state/{eventType}/{stateKey}'), true),
  // PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType} (and with a trailing slash): empty state key
  putState([...clientPaths('/rooms/{roomId}/state/{eventType}'), ...clientPaths('/rooms/{roomId}/state/{eventType}/')], false),
];
