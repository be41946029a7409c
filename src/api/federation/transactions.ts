// Server-server API: PUT /_matrix/federation/v1/send/{txnId}
// (S:data/api/server-server/transactions.yaml). The body is read by the transaction handler
// (handlers/federation/transactions.ts), which answers the spec's per-PDU results.

import { jsonObject } from '../../errors.js';
import { defineRoute } from '../define-route.js';

export const federationTransactionRoutes = [
  // PUT /_matrix/federation/v1/send/{txnId}
  defineRoute({
    name: 'federation.send',
    method: 'PUT',
    paths: '/_matrix/federation/v1/send/{txnId}',
    resource: 'federation',
    auth: 'server',
    body: jsonObject,
    // PDUs are kept as JSON text, where U+0000 is the escape `\u0000` (event content may hold it).
    acceptsNul: true,
    handle: async ({ origin, params, body }, services) => ({
      body: await services.federationApi.transactions.receive(origin, params.txnId, body),
    }),
  }),
];
