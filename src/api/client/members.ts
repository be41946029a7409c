// Client-server API: room members (S:data/api/client-server/rooms.yaml — GET /members and
// GET /joined_members).

import { MEMBERSHIPS } from '../../handlers/room-reads/reads.js';
import { enumParam } from '../../handlers/room-reads/input.js';
import { clientPaths, defineRoute, requesterOf, type RouteDefinition } from '../../http/route.js';
import type { ApiServices } from '../services.js';
import { roomIdParam } from './params.js';

export const membersRoutes: RouteDefinition<ApiServices>[] = [
  // GET /_matrix/client/v3/rooms/{roomId}/members
  defineRoute<ApiServices>({
    name: 'client.rooms.members',
    method: 'GET',
    paths: clientPaths('/rooms/{roomId}/members'),
    resource: 'client',
    auth: 'user',
    handle: async (req, { roomReads }) => ({
      body: await roomReads.members(requesterOf(req), roomIdParam(req), {
        at: req.query.get('at') ?? undefined,
        membership: enumParam(req.query, 'membership', MEMBERSHIPS),
        notMembership: enumParam(req.query, 'not_membership', MEMBERSHIPS),
      }),
    }),
  }),
  // GET /_matrix/client/v3/rooms/{roomId}/joined_members
  defineRoute<ApiServices>({
    name: 'client.rooms.joined_members',
    method: 'GET',
    paths: clientPaths('/rooms/{roomId}/joined_members'),
    resource: 'client',
    auth: 'user',
    handle: async (req, { roomReads }) => ({ body: await roomReads.joinedMembers(requesterOf(req), roomIdParam(req)) }),
  }),
];
