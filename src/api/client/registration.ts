// Client-server API: account registration (S:data/api/client-server/registration.yaml).

import { jsonObject } from '../../errors.js';
import { requiredStringParam } from '../../http/query.js';
import { clientPaths } from '../../http/route.js';
import { defineRoute } from '../define-route.js';

export const registrationRoutes = [
  // POST /_matrix/client/v3/register
  defineRoute({
    name: 'client.register',
    method: 'POST',
    paths: clientPaths('/register'),
    resource: 'client',
    // Read by the registration handler: its fields may also come from the user-interactive auth session.
    body: jsonObject,
    handle: async ({ method, path, body, query, clientIp }, { registration }) => ({
      body: await registration.register({ method, uri: path, body, kind: query.get('kind'), clientIp }),
    }),
  }),
  // GET /_matrix/client/v3/register/available
  defineRoute({
    name: 'client.register.available',
    method: 'GET',
    paths: clientPaths('/register/available'),
    resource: 'client',
    handle: async ({ query }, { registration }) => {
      await registration.checkAvailable(requiredStringParam(query, 'username'));
      return { body: { available: true } };
    },
  }),
];
