// Presence (S:data/api/client-server/presence.yaml). Reads on any worker; writes on the presence
// writer.

import { z } from 'zod';
import { PRESENCE_STATES } from '../../handlers/ephemeral/presence.js';
import { clientPaths, type RouteDefinition } from '../../http/route.js';
import { defineRoute } from '../define-route.js';
import type { ApiServices } from '../services.js';

const PATHS = clientPaths('/presence/{userId}/status');

export const presenceRoutes: RouteDefinition<ApiServices>[] = [
  // GET /_matrix/client/v3/presence/{userId}/status
  defineRoute({
    name: 'client.presence.get',
    method: 'GET',
    paths: PATHS,
    resource: 'client',
    servedBy: 'any',
    auth: 'guest',
    handle: async ({ requester, params }, services) => ({ body: await services.presence.get(requester, params.userId) }),
  }),

  // PUT /_matrix/client/v3/presence/{userId}/status
  defineRoute({
    name: 'client.presence.set',
    method: 'PUT',
    paths: PATHS,
    resource: 'client',
    servedBy: 'writer:presence',
    auth: 'guest',
    body: z.object({
      // A string (400 M_BAD_JSON otherwise), and one of the states (400 M_INVALID_PARAM).
      presence: z.string().pipe(z.enum(PRESENCE_STATES)),
      // `null` or absent clears it.
      status_msg: z
        .string()
        .nullable()
        .optional()
        .transform((value) => value ?? null),
    }),
    handle: async ({ requester, params, body }, services) => {
      await services.presence.set(requester, params.userId, body.presence, body.status_msg);
      return { body: {} };
    },
  }),
];
