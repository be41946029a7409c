// Client-server API: joining, leaving, inviting, kicking, banning, knocking
// (S:data/api/client-server/{joining,leaving,inviting,kicking,banning,knocking}.yaml).

import { z } from 'zod';
import { optionalString, requiredString } from '../../errors.js';
import { clientPaths, type RouteDefinition } from '../../http/route.js';
import { defineRoute } from '../define-route.js';
import { optionalBody } from '../schemas.js';
import type { ApiServices } from '../services.js';

/** Joining, knocking, leaving and forgetting: an optional `reason`, and older clients send no body. */
const withReason = optionalBody(z.object({ reason: optionalString }));

/** `{reason?}` as the handlers take it. */
function reasonOf(body: { reason?: string | undefined }): { reason?: string } {
  return body.reason === undefined ? {} : { reason: body.reason };
}

/**
 * The servers to join or knock through, for a room on another server: `via` (spec v1.12) and its
 * deprecated name `server_name`, both repeatable.
 */
function viaOf(query: URLSearchParams): { via?: string[] } {
  const via = [...query.getAll('via'), ...query.getAll('server_name')];
  return via.length > 0 ? { via } : {};
}

/** POST /rooms/{roomId}/{kick|ban|unban|invite} with `{user_id, reason?}`. */
function actOnUser(action: 'invite' | 'kick' | 'ban' | 'unban') {
  return defineRoute({
    name: `client.rooms.${action}`,
    method: 'POST',
    paths: clientPaths(`/rooms/{roomId}/${action}`),
    resource: 'client',
    auth: 'guest',
    body: z.object({ user_id: requiredString, reason: optionalString }),
    handle: async ({ requester, params, body }, { membership }) => {
      const options = reasonOf(body);
      if (action === 'invite') await membership.invite(params.roomId, requester.userId, body.user_id, options);
      else await membership[action](params.roomId, requester.userId, body.user_id, options);
      return { body: {} };
    },
  });
}

export const membershipRoutes: RouteDefinition<ApiServices>[] = [
  // POST /_matrix/client/v3/join/{roomIdOrAlias}
  defineRoute({
    name: 'client.join',
    method: 'POST',
    paths: clientPaths('/join/{roomIdOrAlias}'),
    resource: 'client',
    auth: 'guest',
    body: withReason,
    handle: async ({ requester, params, body, query }, { membership }) => {
      const { roomId } = await membership.join(params.roomIdOrAlias, requester.userId, { ...reasonOf(body), ...viaOf(query) });
      return { body: { room_id: roomId } };
    },
  }),
  // POST /_matrix/client/v3/rooms/{roomId}/join
  defineRoute({
    name: 'client.rooms.join',
    method: 'POST',
    paths: clientPaths('/rooms/{roomId}/join'),
    resource: 'client',
    auth: 'guest',
    body: withReason,
    handle: async ({ requester, params, body }, { membership }) => {
      const { roomId } = await membership.join(params.roomId, requester.userId, reasonOf(body));
      return { body: { room_id: roomId } };
    },
  }),
  // POST /_matrix/client/v3/knock/{roomIdOrAlias}
  defineRoute({
    name: 'client.knock',
    method: 'POST',
    paths: clientPaths('/knock/{roomIdOrAlias}'),
    resource: 'client',
    auth: 'guest',
    body: withReason,
    handle: async ({ requester, params, body, query }, { membership }) => {
      const { roomId } = await membership.knock(params.roomIdOrAlias, requester.userId, { ...reasonOf(body), ...viaOf(query) });
      return { body: { room_id: roomId } };
    },
  }),
  // POST /_matrix/client/v3/rooms/{roomId}/leave
  defineRoute({
    name: 'client.rooms.leave',
    method: 'POST',
    paths: clientPaths('/rooms/{roomId}/leave'),
    resource: 'client',
    auth: 'guest',
    body: withReason,
    handle: async ({ requester, params, body }, { membership }) => {
      await membership.leave(params.roomId, requester.userId, reasonOf(body));
      return { body: {} };
    },
  }),
  // POST /_matrix/client/v3/rooms/{roomId}/forget
  defineRoute({
    name: 'client.rooms.forget',
    method: 'POST',
    paths: clientPaths('/rooms/{roomId}/forget'),
    resource: 'client',
    auth: 'guest',
    // Nothing is read from it.
    body: optionalBody(z.object({})),
    handle: async ({ requester, params }, { membership }) => {
      await membership.forget(params.roomId, requester.userId);
      return { body: {} };
    },
  }),
  actOnUser('invite'),
  actOnUser('kick'),
  actOnUser('ban'),
  actOnUser('unban'),
];
