// Client-server API: login (S:data/api/client-server/login.yaml).

import { jsonObject } from '../../errors.js';
import { clientPaths } from '../../http/route.js';
import { defineRoute } from '../define-route.js';

export const loginRoutes = [
  // GET /_matrix/client/v3/login
  defineRoute({
    name: 'client.login.flows',
    method: 'GET',
    paths: clientPaths('/login'),
    resource: 'client',
    handle: (_req, { login }) => ({ body: login.flows() }),
  }),
  // POST /_matrix/client/v3/login
  defineRoute({
    name: 'client.login',
    method: 'POST',
    paths: clientPaths('/login'),
    resource: 'client',
    // Read by the login handler, with the password authenticator that user-interactive auth shares.
    body: jsonObject,
    handle: async ({ body, clientIp }, { login }) => ({ body: await login.login(body, clientIp) }),
  }),
];
