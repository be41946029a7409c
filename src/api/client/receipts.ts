// Receipts (S:data/api/client-server/receipts.yaml). Served by a receipts writer.

import type { JsonObject } from '../../core/json.js';
import { clientPaths, defineRoute, requesterOf, type RouteDefinition } from '../../http/route.js';
import type { ApiServices } from '../services.js';

export const receiptsRoutes: RouteDefinition<ApiServices>[] = [
  // POST /_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId}
  defineRoute<ApiServices>({
    name: 'client.receipt',
    method: 'POST',
    paths: clientPaths('/rooms/{roomId}/receipt/{receiptType}/{eventId}'),
    resource: 'client',
    servedBy: 'writer:receipts',
    auth: 'user',
    // Older clients send no body at all.
    body: 'json-optional',
    handle: async (req, services) => {
      const { roomId, receiptType, eventId } = req.params;
      await services.receipts.sendReceipt(requesterOf(req), roomId!, receiptType!, eventId!, req.body as JsonObject);
      return { body: {} };
    },
  }),
];
