// Synapse admin API: shared-secret registration (`Syn:docs/admin_api/register_api.md`). Served by
// the main process only, because the nonce from GET lives in that process's memory; on the client
// resource, as Synapse serves its admin API.

import { jsonObject } from '../../errors.js';
import { defineRoute } from '../define-route.js';

const PATH = '/_synapse/admin/v1/register';

export const adminRegisterRoutes = [
  // GET /_synapse/admin/v1/register
  defineRoute({
    name: 'admin.register.nonce',
    method: 'GET',
    paths: PATH,
    resource: 'client',
    servedBy: 'main',
    handle: (_req, { sharedSecretRegistration }) => ({ body: { nonce: sharedSecretRegistration.newNonce() } }),
  }),
  // POST /_synapse/admin/v1/register
  defineRoute({
    name: 'admin.register',
    method: 'POST',
    paths: PATH,
    resource: 'client',
    servedBy: 'main',
    // `nonce`, `username`, `password`, `mac`, ...: checked by the handler, the MAC first.
    body: jsonObject,
    handle: async ({ body }, { sharedSecretRegistration }) => ({ body: await sharedSecretRegistration.register(body) }),
  }),
];
