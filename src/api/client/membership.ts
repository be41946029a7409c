// Client-server API: joining, leaving, inviting, kicking, banning, knocking
// (S:data/api/client-server/{joining,leaving,inviting,kicking,banning,knocking}.yaml).

import { clientPaths, defineRoute, requesterOf, type RouteDefinition, type RouteRequest } from '../../http/route.js';
import type { ApiServices } from '../services.js';
import { jsonBody, roomIdParam, stringField } from './params.js';

function reasonOf(req: RouteRequest): { reason?: string } {
  const reason = stringField(jsonBody(req), 'reason');
  return reason === undefined ? {} : { reason };
}

/** POST /rooms/{roomId}/{kick|ban|unban|invite} with `{user_id, reason?}`. */
function actOnUser(action: 'invite' | 'kick' | 'ban' | 'unban') {
  return defineRoute<ApiServices>({
    name: `client.rooms.${action}`,
    method: 'POST',
    paths: clientPaths(`/rooms/{roomId}/${action}`),
    resource: 'client',
    auth: 'user',
    handle: async (req, { membership }) => {
      const target = stringField(jsonBody(req), 'user_id', { required: true });
      const sender = requesterOf(req).userId;
      const roomId = roomIdParam(req);
      const options = reasonOf(req);
      if (action === 'invite') await membership.invite(roomId, sender, target, options);
      else await membership[action](roomId, sender, target, options);
      return { body: {} };
    },
  });
}

export const membershipRoutes: RouteDefinition<ApiServices>[] = [
  // POST /_matrix/client/v3/join/{roomIdOrAlias}
  defineRoute<ApiServices>({
    name: 'client.join',
    method: 'POST',
    paths: clientPaths('/join/{roomIdOrAlias}'),
    resource: 'client',
    auth: 'user',
    body: 'json-optional',
    handle: async (req, { membership }) => {
      const { roomId } = await membership.join(req.params.roomIdOrAlias ?? '', requesterOf(req).userId, reasonOf(req));
      return { body: { room_id: roomId } };
    },
  }),
  // POST /_matrix/client/v3/rooms/{roomId}/join
  defineRoute<ApiServices>({
    name: 'client.rooms.join',
    method: 'POST',
    paths: clientPaths('/rooms/{roomId}/join'),
    resource: 'client',
    auth: 'user',
    body: 'json-optional',
    handle: async (req, { membership }) => {
      const { roomId } = await membership.join(roomIdParam(req), requesterOf(req).userId, reasonOf(req));
      return { body: { room_id: roomId } };
    },
  }),
  // POST /_matrix/client/v3/knock/{roomIdOrAlias}
  defineRoute<ApiServices>({
    name: 'client.knock',
    method: 'POST',
    paths: clientPaths('/knock/{roomIdOrAlias}'),
    resource: 'client',
    auth: 'user',
    body: 'json-optional',
    handle: async (req, { membership }) => {
      const { roomId } = await membership.knock(req.params.roomIdOrAlias ?? '', requesterOf(req).userId, reasonOf(req));
      return { body: { room_id: roomId } };
    },
  }),
  // POST /_matrix/client/v3/rooms/{roomId}/leave
  defineRoute<ApiServices>({
    name: 'client.rooms.leave',
    method: 'POST',
    paths: clientPaths('/rooms/{roomId}/leave'),
    resource: 'client',
    auth: 'user',
    body: 'json-optional',
    handle: async (req, { membership }) => {
      await membership.leave(roomIdParam(req), requesterOf(req).userId, reasonOf(req));
      return { body: {} };
    },
  }),
  // POST /_matrix/client/v3/rooms/{roomId}/forget
  defineRoute<ApiServices>({
    name: 'client.rooms.forget',
    method: 'POST',
    paths: clientPaths('/rooms/{roomId}/forget'),
    resource: 'client',
    auth: 'user',
    body: 'json-optional',
    handle: async (req, { membership }) => {
      await membership.forget(roomIdParam(req), requesterOf(req).userId);
      return { body: {} };
    },
  }),
  actOnUser('invite'),
  actOnUser('kick'),
  actOnUser('ban'),
  actOnUser('unban'),
];
