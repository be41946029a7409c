// Client-server API: cross-signing (S:data/api/client-server/cross_signing.yaml). Both endpoints
// change device lists, so the device_lists writer serves them (Syn:docs/workers.md).

import { signingKeysOf } from '../../handlers/e2ee/cross-signing.js';
import { clientPaths, type RouteDefinition } from '../../http/route.js';
import { defineRoute } from '../define-route.js';
import { jsonObject } from '../../errors.js';
import type { ApiServices } from '../services.js';

export const crossSigningRoutes: RouteDefinition<ApiServices>[] = [
  // POST /_matrix/client/v3/keys/device_signing/upload
  defineRoute({
    name: 'client.keys.device_signing.upload',
    method: 'POST',
    // Added in v1.1: no r0 path (as Synapse).
    paths: clientPaths('/keys/device_signing/upload', ['v3', 'unstable']),
    resource: 'client',
    servedBy: 'writer:device_lists',
    auth: 'guest',
    // Read by `signingKeysOf`, which also reads the keys a user-interactive auth session kept.
    body: jsonObject,
    handle: async ({ requester, method, path, body }, { crossSigning, deviceListsWriter, accountManagement }) => {
      let keys = signingKeysOf(body);
      // The follow-up of user-interactive auth may carry only `auth`: it continues the request that
      // started the session, whose keys the session keeps.
      const continuing = body.auth !== undefined && Object.keys(keys).length === 0;
      // A retry of an upload that already went through changes nothing: no authentication, no write.
      if (!continuing && !(await crossSigning.changesAnything(requester.userId, keys))) return { body: {} };
      if (continuing || (await crossSigning.requiresAuthentication(requester.userId, keys))) {
        const { params } = await accountManagement.reauthenticate(requester, { method, uri: path, body });
        keys = signingKeysOf(params);
      }
      await deviceListsWriter.uploadSigningKeys(requester.userId, keys);
      return { body: {} };
    },
  }),
  // POST /_matrix/client/v3/keys/signatures/upload
  defineRoute({
    name: 'client.keys.signatures.upload',
    method: 'POST',
    paths: clientPaths('/keys/signatures/upload', ['v3', 'r0', 'unstable']),
    resource: 'client',
    servedBy: 'writer:device_lists',
    auth: 'guest',
    // User id → key id → signed key; each key is checked on its own and refused in `failures`.
    body: jsonObject,
    handle: async ({ requester, body }, { deviceListsWriter }) => ({
      body: { failures: await deviceListsWriter.uploadSignatures(requester.userId, body) },
    }),
  }),
];
