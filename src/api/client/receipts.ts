// Receipts (S:data/api/client-server/receipts.yaml). Served by a receipts writer.

import { jsonObject } from '../../errors.js';
import { clientPaths, type RouteDefinition } from '../../http/route.js';
import { defineRoute } from '../define-route.js';
import { optionalBody } from '../schemas.js';
import type { ApiServices } from '../services.js';

export const receiptsRoutes: RouteDefinition<ApiServices>[] = [
  // POST /_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId}
  defineRoute({
    name: 'client.receipt',
    method: 'POST',
    paths: clientPaths('/rooms/{roomId}/receipt/{receiptType}/{eventId}'),
    resource: 'client',
    servedBy: 'writer:receipts',
    auth: 'guest',
    // `thread_id`, read by the receipts handler; older clients send no body at all.
    body: optionalBody(jsonObject),
    handle: async ({ requester, params, body }, services) => {
      await services.receipts.sendReceipt(requester, params.roomId, params.receiptType, params.eventId, body);
      return { body: {} };
    },
  }),
];
