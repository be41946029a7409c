// Client-server API: the current account (S:data/api/client-server/{whoami,password_management,
// account_deactivation}.yaml).

import { clientPaths } from '../../http/route.js';
import { defineRoute } from '../define-route.js';
import { jsonObject } from '../../errors.js';

export const accountRoutes = [
  // GET /_matrix/client/v3/account/whoami
  defineRoute({
    name: 'client.account.whoami',
    method: 'GET',
    paths: clientPaths('/account/whoami'),
    resource: 'client',
    auth: 'guest',
    handle: ({ requester: { userId, deviceId, isGuest } }) => ({ body: { user_id: userId, device_id: deviceId, is_guest: isGuest } }),
  }),
  // POST /_matrix/client/v3/account/password
  defineRoute({
    name: 'client.account.password',
    method: 'POST',
    paths: clientPaths('/account/password'),
    resource: 'client',
    servedBy: 'main',
    auth: 'guest',
    // Read by the handler: its fields may also come from the user-interactive auth session.
    body: jsonObject,
    handle: async ({ requester, method, path, body }, { accountManagement }) => {
      await accountManagement.changePassword(requester, { method, uri: path, body });
      return { body: {} };
    },
  }),
  // POST /_matrix/client/v3/account/deactivate
  defineRoute({
    name: 'client.account.deactivate',
    method: 'POST',
    paths: clientPaths('/account/deactivate'),
    resource: 'client',
    auth: 'guest',
    body: jsonObject,
    handle: async ({ requester, method, path, body }, { accountManagement }) => ({
      body: await accountManagement.deactivate(requester, { method, uri: path, body }),
    }),
  }),
];
