// The replication resource: calls from other processes of this deployment to the stream writers
// this process runs (see src/replication/rpc.ts for the wire format, authentication and
// idempotency). The process composition fills `services.rpcServer` with the writers it serves.

import { MAX_JSON_DEPTH } from '../core/json.js';
import { Errors } from '../errors.js';
import type { RouteDefinition } from '../http/route.js';
import { RPC_ROUTE_PATH } from '../replication/rpc.js';
import { defineRoute } from './define-route.js';
import { jsonObject } from '../errors.js';
import type { ApiServices } from './services.js';

export const replicationRoutes: RouteDefinition<ApiServices>[] = [
  // POST /_synapse/replication/{name}/{txnId}
  defineRoute({
    name: 'replication.call',
    method: 'POST',
    paths: RPC_ROUTE_PATH,
    resource: 'replication',
    servedBy: 'any',
    // The replication secret is checked by the RPC server; there is no user access token here.
    auth: 'none',
    // The envelope `{args, positions}` is read by the RPC server.
    body: jsonObject,
    // A call carries what a client sent (already checked by the client route, U+0000 included
    // where that route accepts it) inside an envelope a few levels deep.
    acceptsNul: true,
    maxJsonDepth: MAX_JSON_DEPTH + 28,
    handle: async ({ params, headers, body }, services) => {
      if (!services.rpcServer) throw Errors.unrecognized(404, 'This process serves no replication calls');
      return services.rpcServer.serve({ name: params.name, txnId: params.txnId, authorization: headers.authorization, body });
    },
  }),
];
