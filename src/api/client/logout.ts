// Client-server API: logout (S:data/api/client-server/logout.yaml). Not listed among Synapse's
// worker endpoints, so served by the main process.

import { clientPaths, defineRoute, requesterOf } from '../../http/route.js';
import type { ApiServices } from '../services.js';

export const logoutRoutes = [
  // POST /_matrix/client/v3/logout
  defineRoute<ApiServices>({
    name: 'client.logout',
    method: 'POST',
    paths: clientPaths('/logout'),
    resource: 'client',
    servedBy: 'main',
    auth: 'user',
    body: 'none',
    handle: async (req, { accountManagement }) => {
      await accountManagement.logout(requesterOf(req));
      return { body: {} };
    },
  }),
  // POST /_matrix/client/v3/logout/all
  defineRoute<ApiServices>({
    name: 'client.logout.all',
    method: 'POST',
    paths: clientPaths('/logout/all'),
    resource: 'client',
    servedBy: 'main',
    auth: 'user',
    body: 'none',
    handle: async (req, { accountManagement }) => {
      await accountManagement.logoutAll(requesterOf(req).userId);
      return { body: {} };
    },
  }),
];
