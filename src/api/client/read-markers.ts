// Read markers (S:data/api/client-server/read_markers.yaml). Served by a receipts writer, as in
// Synapse's worker routing.

import type { JsonObject } from '../../core/json.js';
import { optionalField } from '../../handlers/ephemeral/checks.js';
import { clientPaths, defineRoute, requesterOf, type RouteDefinition } from '../../http/route.js';
import type { ApiServices } from '../services.js';

export const readMarkersRoutes: RouteDefinition<ApiServices>[] = [
  // POST /_matrix/client/v3/rooms/{roomId}/read_markers
  defineRoute<ApiServices>({
    name: 'client.read_markers',
    method: 'POST',
    paths: clientPaths('/rooms/{roomId}/read_markers'),
    resource: 'client',
    servedBy: 'writer:receipts',
    auth: 'user',
    body: 'json',
    handle: async (req, services) => {
      const body = req.body as JsonObject;
      // Unknown keys are other receipt types a client may try; they are ignored (Synapse).
      const fullyRead = optionalField(body, 'm.fully_read', 'string');
      const read = optionalField(body, 'm.read', 'string');
      const readPrivate = optionalField(body, 'm.read.private', 'string');
      await services.receipts.setReadMarkers(requesterOf(req), req.params.roomId!, {
        ...(fullyRead ? { fullyRead } : {}),
        ...(read ? { read } : {}),
        ...(readPrivate ? { readPrivate } : {}),
      });
      return { body: {} };
    },
  }),
];
