// Server-server API: GET /_matrix/federation/v1/event_auth/{roomId}/{eventId}
// (S:data/api/server-server/event_auth.yaml).

import { defineRoute } from '../define-route.js';

export const federationEventAuthRoutes = [
  // GET /_matrix/federation/v1/event_auth/{roomId}/{eventId}
  defineRoute({
    name: 'federation.event_auth',
    method: 'GET',
    paths: '/_matrix/federation/v1/event_auth/{roomId}/{eventId}',
    resource: 'federation',
    auth: 'server',
    handle: async ({ origin, params }, services) => ({
      body: await services.federationApi.eventReads.eventAuth(origin, params.roomId, params.eventId),
    }),
  }),
];
