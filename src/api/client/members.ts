// Client-server API: room members (S:data/api/client-server/rooms.yaml — GET /members and
// GET /joined_members).

import { MEMBERSHIPS } from '../../handlers/room-reads/reads.js';
import { enumParam, stringParam } from '../../http/query.js';
import { clientPaths, type RouteDefinition } from '../../http/route.js';
import { defineRoute } from '../define-route.js';
import type { ApiServices } from '../services.js';

export const membersRoutes: RouteDefinition<ApiServices>[] = [
  // GET /_matrix/client/v3/rooms/{roomId}/members
  defineRoute({
    name: 'client.rooms.members',
    method: 'GET',
    paths: clientPaths('/rooms/{roomId}/members'),
    resource: 'client',
    auth: 'guest',
    handle: async ({ requester, params, query }, { roomReads }) => ({
      body: await roomReads.members(requester, params.roomId, {
        at: stringParam(query, 'at'),
        membership: enumParam(query, 'membership', MEMBERSHIPS),
        notMembership: enumParam(query, 'not_membership', MEMBERSHIPS),
      }),
    }),
  }),
  // GET /_matrix/client/v3/rooms/{roomId}/joined_members
  defineRoute({
    name: 'client.rooms.joined_members',
    method: 'GET',
    paths: clientPaths('/rooms/{roomId}/joined_members'),
    resource: 'client',
    auth: 'guest',
    handle: async ({ requester, params }, { roomReads }) => ({ body: await roomReads.joinedMembers(requester, params.roomId) }),
  }),
];
