// Client-server API: the current account (S:data/api/client-server/{whoami,password_management,
// account_deactivation}.yaml).

import { isJsonObject } from '../../core/json.js';
import { clientPaths, defineRoute, requesterOf, type RouteRequest } from '../../http/route.js';
import type { UiaContext } from '../../handlers/accounts/account.js';
import type { ApiServices } from '../services.js';

function uiaContext(req: RouteRequest): UiaContext {
  return { method: req.method, uri: req.path, body: isJsonObject(req.body) ? req.body : {} };
}

export const accountRoutes = [
  // GET /_matrix/client/v3/account/whoami
  defineRoute<ApiServices>({
    name: 'client.account.whoami',
    method: 'GET',
    paths: clientPaths('/account/whoami'),
    resource: 'client',
    auth: 'user',
    handle: (req) => {
      const { userId, deviceId, isGuest } = requesterOf(req);
      return { body: { user_id: userId, device_id: deviceId, is_guest: isGuest } };
    },
  }),
  // POST /_matrix/client/v3/account/password
  defineRoute<ApiServices>({
    name: 'client.account.password',
    method: 'POST',
    paths: clientPaths('/account/password'),
    resource: 'client',
    servedBy: 'main',
    auth: 'user',
    handle: async (req, { accountManagement }) => {
      await accountManagement.changePassword(requesterOf(req), uiaContext(req));
      return { body: {} };
    },
  }),
  // POST /_matrix/client/v3/account/deactivate
  defineRoute<ApiServices>({
    name: 'client.account.deactivate',
    method: 'POST',
    paths: clientPaths('/account/deactivate'),
    resource: 'client',
    auth: 'user',
    handle: async (req, { accountManagement }) => ({ body: await accountManagement.deactivate(requesterOf(req), uiaContext(req)) }),
  }),
];
