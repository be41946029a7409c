// Account data (S:data/api/client-server/account-data.yaml) and room tags (tags.yaml). Reads on
// any worker; writes on the account_data writer.

import type { JsonObject } from '../../core/json.js';
import { clientPaths, defineRoute, requesterOf, type RouteDefinition } from '../../http/route.js';
import type { ApiServices } from '../services.js';

const GLOBAL = clientPaths('/user/{userId}/account_data/{type}');
const ROOM = clientPaths('/user/{userId}/rooms/{roomId}/account_data/{type}');
const TAGS = clientPaths('/user/{userId}/rooms/{roomId}/tags');
const TAG = clientPaths('/user/{userId}/rooms/{roomId}/tags/{tag}');

export const accountDataRoutes: RouteDefinition<ApiServices>[] = [
  // GET /_matrix/client/v3/user/{userId}/account_data/{type}
  defineRoute<ApiServices>({
    name: 'client.account_data.get',
    method: 'GET',
    paths: GLOBAL,
    resource: 'client',
    servedBy: 'any',
    auth: 'user',
    handle: async (req, services) => ({ body: await services.accountData.get(requesterOf(req), req.params.userId!, null, req.params.type!) }),
  }),

  // PUT /_matrix/client/v3/user/{userId}/account_data/{type}
  defineRoute<ApiServices>({
    name: 'client.account_data.put',
    method: 'PUT',
    paths: GLOBAL,
    resource: 'client',
    servedBy: 'writer:account_data',
    auth: 'user',
    body: 'json',
    // Account data is stored only as JSON text; the spec lets it hold any string.
    acceptsNul: true,
    handle: async (req, services) => {
      await services.accountData.put(requesterOf(req), req.params.userId!, null, req.params.type!, req.body as JsonObject);
      return { body: {} };
    },
  }),

  // GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}
  defineRoute<ApiServices>({
    name: 'client.room_account_data.get',
    method: 'GET',
    paths: ROOM,
    resource: 'client',
    servedBy: 'any',
    auth: 'user',
    handle: async (req, services) => ({
      body: await services.accountData.get(requesterOf(req), req.params.userId!, req.params.roomId!, req.params.type!),
    }),
  }),

  // PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}
  defineRoute<ApiServices>({
    name: 'client.room_account_data.put',
    method: 'PUT',
    paths: ROOM,
    resource: 'client',
    servedBy: 'writer:account_data',
    auth: 'user',
    body: 'json',
    // Account data is stored only as JSON text; the spec lets it hold any string.
    acceptsNul: true,
    handle: async (req, services) => {
      await services.accountData.put(requesterOf(req), req.params.userId!, req.params.roomId!, req.params.type!, req.body as JsonObject);
      return { body: {} };
    },
  }),

  // GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags
  defineRoute<ApiServices>({
    name: 'client.tags.get',
    method: 'GET',
    paths: TAGS,
    resource: 'client',
    servedBy: 'any',
    auth: 'user',
    handle: async (req, services) => ({ body: await services.accountData.tags(requesterOf(req), req.params.userId!, req.params.roomId!) }),
  }),

  // PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}
  defineRoute<ApiServices>({
    name: 'client.tags.put',
    method: 'PUT',
    paths: TAG,
    resource: 'client',
    servedBy: 'writer:account_data',
    auth: 'user',
    body: 'json',
    // Account data is stored only as JSON text; the spec lets it hold any string.
    acceptsNul: true,
    handle: async (req, services) => {
      const { userId, roomId, tag } = req.params;
      await services.accountData.addTag(requesterOf(req), userId!, roomId!, tag!, req.body as JsonObject);
      return { body: {} };
    },
  }),

  // DELETE /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}
  defineRoute<ApiServices>({
    name: 'client.tags.delete',
    method: 'DELETE',
    paths: TAG,
    resource: 'client',
    servedBy: 'writer:account_data',
    auth: 'user',
    handle: async (req, services) => {
      const { userId, roomId, tag } = req.params;
      await services.accountData.removeTag(requesterOf(req), userId!, roomId!, tag!);
      return { body: {} };
    },
  }),
];
