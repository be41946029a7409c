// Account data (S:data/api/client-server/account-data.yaml) and room tags (tags.yaml). Reads on
// any worker; writes on the account_data writer.

import { clientPaths, type RouteDefinition } from '../../http/route.js';
import { defineRoute } from '../define-route.js';
import { jsonObject } from '../../errors.js';
import type { ApiServices } from '../services.js';

const GLOBAL = clientPaths('/user/{userId}/account_data/{type}');
const ROOM = clientPaths('/user/{userId}/rooms/{roomId}/account_data/{type}');
const TAGS = clientPaths('/user/{userId}/rooms/{roomId}/tags');
const TAG = clientPaths('/user/{userId}/rooms/{roomId}/tags/{tag}');

export const accountDataRoutes: RouteDefinition<ApiServices>[] = [
  // GET /_matrix/client/v3/user/{userId}/account_data/{type}
  defineRoute({
    name: 'client.account_data.get',
    method: 'GET',
    paths: GLOBAL,
    resource: 'client',
    servedBy: 'any',
    auth: 'guest',
    handle: async ({ requester, params }, services) => ({
      body: await services.accountData.get(requester, params.userId, null, params.type),
    }),
  }),

  // PUT /_matrix/client/v3/user/{userId}/account_data/{type}
  defineRoute({
    name: 'client.account_data.put',
    method: 'PUT',
    paths: GLOBAL,
    resource: 'client',
    servedBy: 'writer:account_data',
    auth: 'guest',
    // The content is any JSON object, stored only as JSON text; the spec lets it hold any string.
    body: jsonObject,
    acceptsNul: true,
    handle: async ({ requester, params, body }, services) => {
      await services.accountData.put(requester, params.userId, null, params.type, body);
      return { body: {} };
    },
  }),

  // GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}
  defineRoute({
    name: 'client.room_account_data.get',
    method: 'GET',
    paths: ROOM,
    resource: 'client',
    servedBy: 'any',
    auth: 'guest',
    handle: async ({ requester, params }, services) => ({
      body: await services.accountData.get(requester, params.userId, params.roomId, params.type),
    }),
  }),

  // PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}
  defineRoute({
    name: 'client.room_account_data.put',
    method: 'PUT',
    paths: ROOM,
    resource: 'client',
    servedBy: 'writer:account_data',
    auth: 'guest',
    // The content is any JSON object, stored only as JSON text; the spec lets it hold any string.
    body: jsonObject,
    acceptsNul: true,
    handle: async ({ requester, params, body }, services) => {
      await services.accountData.put(requester, params.userId, params.roomId, params.type, body);
      return { body: {} };
    },
  }),

  // GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags
  defineRoute({
    name: 'client.tags.get',
    method: 'GET',
    paths: TAGS,
    resource: 'client',
    servedBy: 'any',
    auth: 'guest',
    handle: async ({ requester, params }, services) => ({ body: await services.accountData.tags(requester, params.userId, params.roomId) }),
  }),

  // PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}
  defineRoute({
    name: 'client.tags.put',
    method: 'PUT',
    paths: TAG,
    resource: 'client',
    servedBy: 'writer:account_data',
    auth: 'guest',
    // The tag's content (`order` and anything else), stored only as JSON text.
    body: jsonObject,
    acceptsNul: true,
    handle: async ({ requester, params, body }, services) => {
      await services.accountData.addTag(requester, params.userId, params.roomId, params.tag, body);
      return { body: {} };
    },
  }),

  // DELETE /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}
  defineRoute({
    name: 'client.tags.delete',
    method: 'DELETE',
    paths: TAG,
    resource: 'client',
    servedBy: 'writer:account_data',
    auth: 'guest',
    handle: async ({ requester, params }, services) => {
      await services.accountData.removeTag(requester, params.userId, params.roomId, params.tag);
      return { body: {} };
    },
  }),
];
