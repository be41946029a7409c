// Client-server API: logout (S:data/api/client-server/logout.yaml). Not listed among Synapse's
// worker endpoints, so served by the main process.

import { clientPaths } from '../../http/route.js';
import { defineRoute } from '../define-route.js';

export const logoutRoutes = [
  // POST /_matrix/client/v3/logout
  defineRoute({
    name: 'client.logout',
    method: 'POST',
    paths: clientPaths('/logout'),
    resource: 'client',
    servedBy: 'main',
    auth: 'guest',
    body: 'none',
    handle: async ({ requester }, { accountManagement }) => {
      await accountManagement.logout(requester);
      return { body: {} };
    },
  }),
  // POST /_matrix/client/v3/logout/all
  defineRoute({
    name: 'client.logout.all',
    method: 'POST',
    paths: clientPaths('/logout/all'),
    resource: 'client',
    servedBy: 'main',
    auth: 'guest',
    body: 'none',
    handle: async ({ requester }, { accountManagement }) => {
      await accountManagement.logoutAll(requester.userId);
      return { body: {} };
    },
  }),
];
