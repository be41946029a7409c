// Client-server API: account registration (S:data/api/client-server/registration.yaml).

import { isJsonObject } from '../../core/json.js';
import { Errors } from '../../errors.js';
import { clientPaths, defineRoute } from '../../http/route.js';
import type { ApiServices } from '../services.js';

export const registrationRoutes = [
  // POST /_matrix/client/v3/register
  defineRoute<ApiServices>({
    name: 'client.register',
    method: 'POST',
    paths: clientPaths('/register'),
    resource: 'client',
    handle: async (req, { registration }) => ({
      body: await registration.register({
        method: req.method,
        uri: req.path,
        body: isJsonObject(req.body) ? req.body : {},
        kind: req.query.get('kind'),
        clientIp: req.clientIp,
      }),
    }),
  }),
  // GET /_matrix/client/v3/register/available
  defineRoute<ApiServices>({
    name: 'client.register.available',
    method: 'GET',
    paths: clientPaths('/register/available'),
    resource: 'client',
    handle: async (req, { registration }) => {
      const username = req.query.get('username');
      if (username === null) throw Errors.missingParam('Missing string query parameter "username"');
      await registration.checkAvailable(username);
      return { body: { available: true } };
    },
  }),
];
