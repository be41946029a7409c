// Client-server API: room aliases (S:data/api/client-server/directory.yaml) and a room's entry in
// the published room directory (list_public_rooms.yaml — /directory/list/room/{roomId}).
//
// Where Synapse serves them (workers.md): aliases and /rooms/{roomId}/aliases on any worker; the
// published-list entry on the main process only.

import { isJsonObject } from '../../core/json.js';
import type { DirectoryVisibility } from '../../handlers/room-reads/directory.js';
import { Errors } from '../../errors.js';
import { clientPaths, defineRoute, requesterOf, type RouteDefinition } from '../../http/route.js';
import type { ApiServices } from '../services.js';
import { jsonBody, roomIdParam, stringField } from './params.js';

const aliasPaths = clientPaths('/directory/room/{roomAlias}');
const listPaths = clientPaths('/directory/list/room/{roomId}');

export const directoryRoutes: RouteDefinition<ApiServices>[] = [
  // GET /_matrix/client/v3/directory/room/{roomAlias} (no access token needed, as in Synapse)
  defineRoute<ApiServices>({
    name: 'client.directory.alias.get',
    method: 'GET',
    paths: aliasPaths,
    resource: 'client',
    handle: async (req, { roomDirectory }) => ({ body: await roomDirectory.resolveAlias(req.params.roomAlias ?? '') }),
  }),
  // PUT /_matrix/client/v3/directory/room/{roomAlias}
  defineRoute<ApiServices>({
    name: 'client.directory.alias.put',
    method: 'PUT',
    paths: aliasPaths,
    resource: 'client',
    auth: 'user',
    handle: async (req, { roomDirectory }) => {
      const roomId = stringField(jsonBody(req), 'room_id', { required: true });
      await roomDirectory.createAlias(requesterOf(req), req.params.roomAlias ?? '', roomId);
      return { body: {} };
    },
  }),
  // DELETE /_matrix/client/v3/directory/room/{roomAlias}
  defineRoute<ApiServices>({
    name: 'client.directory.alias.delete',
    method: 'DELETE',
    paths: aliasPaths,
    resource: 'client',
    auth: 'user',
    handle: async (req, { roomDirectory }) => {
      await roomDirectory.deleteAlias(requesterOf(req), req.params.roomAlias ?? '');
      return { body: {} };
    },
  }),
  // GET /_matrix/client/v3/rooms/{roomId}/aliases
  defineRoute<ApiServices>({
    name: 'client.rooms.aliases',
    method: 'GET',
    paths: clientPaths('/rooms/{roomId}/aliases'),
    resource: 'client',
    auth: 'user',
    handle: async (req, { roomDirectory }) => ({ body: await roomDirectory.roomAliases(requesterOf(req), roomIdParam(req)) }),
  }),
  // GET /_matrix/client/v3/directory/list/room/{roomId} (no access token needed)
  defineRoute<ApiServices>({
    name: 'client.directory.list.get',
    method: 'GET',
    paths: listPaths,
    resource: 'client',
    servedBy: 'main',
    handle: async (req, { roomDirectory }) => ({ body: await roomDirectory.visibility(roomIdParam(req)) }),
  }),
  // PUT /_matrix/client/v3/directory/list/room/{roomId}
  defineRoute<ApiServices>({
    name: 'client.directory.list.put',
    method: 'PUT',
    paths: listPaths,
    resource: 'client',
    servedBy: 'main',
    auth: 'user',
    body: 'json-optional',
    handle: async (req, { roomDirectory }) => {
      await roomDirectory.setVisibility(requesterOf(req), roomIdParam(req), visibilityOf(req.body));
      return { body: {} };
    },
  }),
];

/** `visibility` defaults to `public` (list_public_rooms.yaml). */
function visibilityOf(body: unknown): DirectoryVisibility {
  const value = isJsonObject(body) ? body.visibility : undefined;
  if (value === undefined || value === null) return 'public';
  if (value !== 'public' && value !== 'private') throw Errors.badJson('visibility must be "public" or "private"');
  return value;
}
