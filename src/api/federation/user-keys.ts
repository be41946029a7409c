// Server-server API: end-to-end encryption and device management for other servers (spec:
// server-server API §End-to-End Encryption, §Device Management; S:data/api/server-server/
// user_keys.yaml, user_devices.yaml): our users' devices and keys, to a signed request. Any
// process serves them (they read, except claims, which take keys as our own clients' claims do).

import { jsonObject } from '../../errors.js';
import { defineRoute } from '../define-route.js';

export const userKeysRoutes = [
  // GET /_matrix/federation/v1/user/devices/{userId}
  defineRoute({
    name: 'federation.user.devices',
    method: 'GET',
    paths: '/_matrix/federation/v1/user/devices/{userId}',
    resource: 'federation',
    auth: 'server',
    handle: async ({ params }, services) => ({ body: await services.deviceKeys.devicesForServer(params.userId) }),
  }),
  // POST /_matrix/federation/v1/user/keys/query
  defineRoute({
    name: 'federation.user.keys.query',
    method: 'POST',
    paths: '/_matrix/federation/v1/user/keys/query',
    resource: 'federation',
    auth: 'server',
    body: jsonObject,
    handle: async ({ body }, services) => ({ body: await services.deviceKeys.queryForServer(body), contentType: 'application/json' }),
  }),
  // POST /_matrix/federation/v1/user/keys/claim
  defineRoute({
    name: 'federation.user.keys.claim',
    method: 'POST',
    paths: '/_matrix/federation/v1/user/keys/claim',
    resource: 'federation',
    auth: 'server',
    body: jsonObject,
    handle: async ({ body }, services) => {
      const { one_time_keys } = await services.deviceKeys.claimForServer(body);
      return { body: { one_time_keys } };
    },
  }),
];
