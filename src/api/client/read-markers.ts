// Read markers (S:data/api/client-server/read_markers.yaml). Served by a receipts writer, as in
// Synapse's worker routing.

import { z } from 'zod';
import { clientPaths, type RouteDefinition } from '../../http/route.js';
import { defineRoute } from '../define-route.js';
import type { ApiServices } from '../services.js';

export const readMarkersRoutes: RouteDefinition<ApiServices>[] = [
  // POST /_matrix/client/v3/rooms/{roomId}/read_markers
  defineRoute({
    name: 'client.read_markers',
    method: 'POST',
    paths: clientPaths('/rooms/{roomId}/read_markers'),
    resource: 'client',
    servedBy: 'writer:receipts',
    auth: 'guest',
    // Event ids; an empty one is no marker. Unknown keys are other receipt types a client may
    // try; they are ignored (Synapse).
    body: z.object({
      'm.fully_read': z.string().optional(),
      'm.read': z.string().optional(),
      'm.read.private': z.string().optional(),
    }),
    handle: async ({ requester, params, body }, services) => {
      const { 'm.fully_read': fullyRead, 'm.read': read, 'm.read.private': readPrivate } = body;
      await services.receipts.setReadMarkers(requester, params.roomId, {
        ...(fullyRead ? { fullyRead } : {}),
        ...(read ? { read } : {}),
        ...(readPrivate ? { readPrivate } : {}),
      });
      return { body: {} };
    },
  }),
];
