// Client-server API: login (S:data/api/client-server/login.yaml).

import { isJsonObject } from '../../core/json.js';
import { clientPaths, defineRoute } from '../../http/route.js';
import type { ApiServices } from '../services.js';

export const loginRoutes = [
  // GET /_matrix/client/v3/login
  defineRoute<ApiServices>({
    name: 'client.login.flows',
    method: 'GET',
    paths: clientPaths('/login'),
    resource: 'client',
    handle: (_req, { login }) => ({ body: login.flows() }),
  }),
  // POST /_matrix/client/v3/login
  defineRoute<ApiServices>({
    name: 'client.login',
    method: 'POST',
    paths: clientPaths('/login'),
    resource: 'client',
    handle: async (req, { login }) => ({ body: await login.login(isJsonObject(req.body) ? req.body : {}, req.clientIp) }),
  }),
];
