// Presence (S:data/api/client-server/presence.yaml). Reads on any worker; writes on the presence
// writer.

import type { JsonObject } from '../../core/json.js';
import { optionalField, requiredField } from '../../handlers/ephemeral/checks.js';
import { isPresenceState, PRESENCE_STATES } from '../../handlers/ephemeral/presence.js';
import { Errors } from '../../errors.js';
import { clientPaths, defineRoute, requesterOf, type RouteDefinition } from '../../http/route.js';
import type { ApiServices } from '../services.js';

const PATHS = clientPaths('/presence/{userId}/status');

export const presenceRoutes: RouteDefinition<ApiServices>[] = [
  // GET /_matrix/client/v3/presence/{userId}/status
  defineRoute<ApiServices>({
    name: 'client.presence.get',
    method: 'GET',
    paths: PATHS,
    resource: 'client',
    servedBy: 'any',
    auth: 'user',
    handle: async (req, services) => ({ body: await services.presence.get(requesterOf(req), req.params.userId!) }),
  }),

  // PUT /_matrix/client/v3/presence/{userId}/status
  defineRoute<ApiServices>({
    name: 'client.presence.set',
    method: 'PUT',
    paths: PATHS,
    resource: 'client',
    servedBy: 'writer:presence',
    auth: 'user',
    body: 'json',
    handle: async (req, services) => {
      const body = req.body as JsonObject;
      const presence = requiredField(body, 'presence', 'string');
      if (!isPresenceState(presence)) throw Errors.invalidParam(`'presence' must be one of ${PRESENCE_STATES.join(', ')}`);
      const statusMsg = body.status_msg === null ? null : (optionalField(body, 'status_msg', 'string') ?? null);
      await services.presence.set(requesterOf(req), req.params.userId!, presence, statusMsg);
      return { body: {} };
    },
  }),
];
