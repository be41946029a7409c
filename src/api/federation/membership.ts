// Server-server API: joining, leaving, knocking and inviting (S:data/api/server-server/
// joins-v1.yaml (make_join), joins-v2.yaml, leaving-v1.yaml (make_leave), leaving-v2.yaml,
// knocks.yaml, invites-v2.yaml). This server is the resident one; the handshakes our own users
// make with other servers are in handlers/federation/remote-membership.ts.

import { Errors, jsonObject } from '../../errors.js';
import type { RouteDefinition } from '../../http/route.js';
import { defineRoute } from '../define-route.js';
import type { ApiServices } from '../services.js';

/** `ver` may repeat; absent means version 1 only (spec: make_join `ver`). */
function versionsOf(query: URLSearchParams): string[] {
  const versions = query.getAll('ver');
  return versions.length > 0 ? versions : ['1'];
}

export const federationMembershipRoutes: RouteDefinition<ApiServices>[] = [
  // GET /_matrix/federation/v1/make_join/{roomId}/{userId}
  defineRoute({
    name: 'federation.make_join',
    method: 'GET',
    paths: '/_matrix/federation/v1/make_join/{roomId}/{userId}',
    resource: 'federation',
    auth: 'server',
    handle: async ({ origin, params, query }, { residentMembership }) => ({
      body: await residentMembership.makeMembership(origin, params.roomId, params.userId, 'join', versionsOf(query)),
    }),
  }),
  // PUT /_matrix/federation/v2/send_join/{roomId}/{eventId}
  defineRoute({
    name: 'federation.send_join',
    method: 'PUT',
    paths: '/_matrix/federation/v2/send_join/{roomId}/{eventId}',
    resource: 'federation',
    auth: 'server',
    body: jsonObject,
    acceptsNul: true,
    handle: async ({ origin, params, body }, { residentMembership }) => {
      const { event, version } = await residentMembership.sendMembership(origin, params.roomId, params.eventId, body, 'join');
      return { body: await residentMembership.joinAnswer(params.roomId, version, event) };
    },
  }),
  // GET /_matrix/federation/v1/make_leave/{roomId}/{userId}
  defineRoute({
    name: 'federation.make_leave',
    method: 'GET',
    paths: '/_matrix/federation/v1/make_leave/{roomId}/{userId}',
    resource: 'federation',
    auth: 'server',
    handle: async ({ origin, params }, { residentMembership }) => ({
      body: await residentMembership.makeMembership(origin, params.roomId, params.userId, 'leave', undefined),
    }),
  }),
  // PUT /_matrix/federation/v2/send_leave/{roomId}/{eventId}
  defineRoute({
    name: 'federation.send_leave',
    method: 'PUT',
    paths: '/_matrix/federation/v2/send_leave/{roomId}/{eventId}',
    resource: 'federation',
    auth: 'server',
    body: jsonObject,
    acceptsNul: true,
    handle: async ({ origin, params, body }, { residentMembership }) => {
      await residentMembership.sendMembership(origin, params.roomId, params.eventId, body, 'leave');
      return { body: {} };
    },
  }),
  // GET /_matrix/federation/v1/make_knock/{roomId}/{userId}
  defineRoute({
    name: 'federation.make_knock',
    method: 'GET',
    paths: '/_matrix/federation/v1/make_knock/{roomId}/{userId}',
    resource: 'federation',
    auth: 'server',
    handle: async ({ origin, params, query }, { residentMembership }) => {
      // `ver` is required here (spec: knocks.yaml).
      if (query.getAll('ver').length === 0) throw Errors.missingParam('ver is required');
      return { body: await residentMembership.makeMembership(origin, params.roomId, params.userId, 'knock', query.getAll('ver')) };
    },
  }),
  // PUT /_matrix/federation/v1/send_knock/{roomId}/{eventId}
  defineRoute({
    name: 'federation.send_knock',
    method: 'PUT',
    paths: '/_matrix/federation/v1/send_knock/{roomId}/{eventId}',
    resource: 'federation',
    auth: 'server',
    body: jsonObject,
    acceptsNul: true,
    handle: async ({ origin, params, body }, { residentMembership }) => {
      await residentMembership.sendMembership(origin, params.roomId, params.eventId, body, 'knock');
      return { body: { knock_room_state: await residentMembership.knockRoomState(params.roomId) } };
    },
  }),
  // PUT /_matrix/federation/v2/invite/{roomId}/{eventId}
  defineRoute({
    name: 'federation.invite',
    method: 'PUT',
    paths: '/_matrix/federation/v2/invite/{roomId}/{eventId}',
    resource: 'federation',
    auth: 'server',
    body: jsonObject,
    acceptsNul: true,
    handle: async ({ origin, params, body }, { residentMembership }) => ({
      body: await residentMembership.receiveInvite(origin, params.roomId, params.eventId, body),
    }),
  }),
];
