// Typing notifications (S:data/api/client-server/typing.yaml). Served by the typing writer: the
// typing stream lives in its memory.

import type { JsonObject } from '../../core/json.js';
import { optionalField, requiredField } from '../../handlers/ephemeral/checks.js';
import { clientPaths, defineRoute, requesterOf, type RouteDefinition } from '../../http/route.js';
import type { ApiServices } from '../services.js';

export const typingRoutes: RouteDefinition<ApiServices>[] = [
  // PUT /_matrix/client/v3/rooms/{roomId}/typing/{userId}
  defineRoute<ApiServices>({
    name: 'client.typing',
    method: 'PUT',
    paths: clientPaths('/rooms/{roomId}/typing/{userId}'),
    resource: 'client',
    servedBy: 'writer:typing',
    auth: 'user',
    body: 'json',
    handle: async (req, services) => {
      const body = req.body as JsonObject;
      const typing = requiredField(body, 'typing', 'boolean');
      const timeout = optionalField(body, 'timeout', 'number');
      await services.typing.setTyping(requesterOf(req), req.params.roomId!, req.params.userId!, typing, timeout);
      return { body: {} };
    },
  }),
];
