// Client-server API: room aliases (S:data/api/client-server/directory.yaml) and a room's entry in
// the published room directory (list_public_rooms.yaml — /directory/list/room/{roomId}).
//
// Where Synapse serves them (workers.md): aliases and /rooms/{roomId}/aliases on any worker; the
// published-list entry on the main process only.

import { z } from 'zod';
import { absentIfNull, checked, requiredString } from '../../errors.js';
import { clientPaths, type RouteDefinition } from '../../http/route.js';
import { defineRoute } from '../define-route.js';
import { optionalBody } from '../schemas.js';
import type { ApiServices } from '../services.js';

const aliasPaths = clientPaths('/directory/room/{roomAlias}');
const listPaths = clientPaths('/directory/list/room/{roomId}');

/** `visibility` defaults to `public` (list_public_rooms.yaml). */
const visibilityField = absentIfNull(
  checked(z.string(), (value) => value === 'public' || value === 'private', 'M_BAD_JSON', 'must be "public" or "private"')
    .transform((value) => value as 'public' | 'private')
    .default('public'),
);

export const directoryRoutes: RouteDefinition<ApiServices>[] = [
  // GET /_matrix/client/v3/directory/room/{roomAlias} (no access token needed, as in Synapse)
  defineRoute({
    name: 'client.directory.alias.get',
    method: 'GET',
    paths: aliasPaths,
    resource: 'client',
    handle: async ({ params }, { roomDirectory }) => ({ body: await roomDirectory.resolveAlias(params.roomAlias) }),
  }),
  // PUT /_matrix/client/v3/directory/room/{roomAlias}
  defineRoute({
    name: 'client.directory.alias.put',
    method: 'PUT',
    paths: aliasPaths,
    resource: 'client',
    auth: 'guest',
    body: z.object({ room_id: requiredString }),
    handle: async ({ requester, params, body }, { roomDirectory }) => {
      await roomDirectory.createAlias(requester, params.roomAlias, body.room_id);
      return { body: {} };
    },
  }),
  // DELETE /_matrix/client/v3/directory/room/{roomAlias}
  defineRoute({
    name: 'client.directory.alias.delete',
    method: 'DELETE',
    paths: aliasPaths,
    resource: 'client',
    auth: 'guest',
    handle: async ({ requester, params }, { roomDirectory }) => {
      await roomDirectory.deleteAlias(requester, params.roomAlias);
      return { body: {} };
    },
  }),
  // GET /_matrix/client/v3/rooms/{roomId}/aliases
  defineRoute({
    name: 'client.rooms.aliases',
    method: 'GET',
    paths: clientPaths('/rooms/{roomId}/aliases'),
    resource: 'client',
    auth: 'guest',
    handle: async ({ requester, params }, { roomDirectory }) => ({ body: await roomDirectory.roomAliases(requester, params.roomId) }),
  }),
  // GET /_matrix/client/v3/directory/list/room/{roomId} (no access token needed)
  defineRoute({
    name: 'client.directory.list.get',
    method: 'GET',
    paths: listPaths,
    resource: 'client',
    servedBy: 'main',
    handle: async ({ params }, { roomDirectory }) => ({ body: await roomDirectory.visibility(params.roomId) }),
  }),
  // PUT /_matrix/client/v3/directory/list/room/{roomId}
  defineRoute({
    name: 'client.directory.list.put',
    method: 'PUT',
    paths: listPaths,
    resource: 'client',
    servedBy: 'main',
    auth: 'guest',
    body: optionalBody(z.object({ visibility: visibilityField })),
    handle: async ({ requester, params, body }, { roomDirectory }) => {
      await roomDirectory.setVisibility(requester, params.roomId, body.visibility);
      return { body: {} };
    },
  }),
];
