// Typing notifications (S:data/api/client-server/typing.yaml). Served by the typing writer: the
// typing stream lives in its memory.

import { z } from 'zod';
import { clientPaths, type RouteDefinition } from '../../http/route.js';
import { defineRoute } from '../define-route.js';
import type { ApiServices } from '../services.js';

export const typingRoutes: RouteDefinition<ApiServices>[] = [
  // PUT /_matrix/client/v3/rooms/{roomId}/typing/{userId}
  defineRoute({
    name: 'client.typing',
    method: 'PUT',
    paths: clientPaths('/rooms/{roomId}/typing/{userId}'),
    resource: 'client',
    servedBy: 'writer:typing',
    auth: 'guest',
    // `timeout` in milliseconds; its range is checked by the handler, after who may type.
    body: z.object({ typing: z.boolean(), timeout: z.number().optional() }),
    handle: async ({ requester, params, body }, services) => {
      await services.typing.setTyping(requester, params.roomId, params.userId, body.typing, body.timeout);
      return { body: {} };
    },
  }),
];
